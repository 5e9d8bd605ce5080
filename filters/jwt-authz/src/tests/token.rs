//! Tests of `token`.

use super::*;

#[test]
fn nothing_panics_on_garbage() {
    for t in ["", ".", "..", "...", "a.b.c", "\u{0}.\u{0}.\u{0}", "é.é.é", &"A".repeat(10_000)] {
        assert!(decode(t, 8192).is_err(), "{t:?}");
    }
}
