//! Tests of `timers` (kept apart from the filter code, which must never unwrap).

use super::*;

#[test]
fn pops_due_items_in_deadline_order() {
    let ms = Duration::from_millis;
    let mut t = Timers::default();
    t.push(ms(30), "c");
    t.push(ms(10), "a");
    t.push(ms(20), "b");
    t.push(ms(10), "a2");
    assert_eq!(t.next_deadline(), Some(ms(10)));
    assert!(t.pop_due(ms(9)).is_empty());
    assert_eq!(t.pop_due(ms(20)), vec!["a", "a2", "b"]);
    assert_eq!(t.len(), 1);
    assert_eq!(t.pop_due(ms(1000)), vec!["c"]);
    assert!(t.is_empty());
}

#[test]
fn an_entry_taken_out_early_is_gone() {
    let ms = Duration::from_millis;
    let mut t = Timers::default();
    let a = t.push(ms(10), "a");
    t.push(ms(10), "b");
    assert_eq!(t.remove(a), Some("a"));
    assert_eq!(t.remove(a), None);
    assert_eq!(t.len(), 1);
    assert_eq!(t.pop_due(ms(10)), vec!["b"]);
}
