//! Tests of `percent` (kept apart from the filter code, which must never unwrap).

use super::*;
use crate::host::SeededRandom;

#[test]
fn range_is_checked() {
    assert_eq!(Percentage::from_percent(12.5).unwrap().ppm(), 125_000);
    assert_eq!(Percentage::from_percent(0.0001).unwrap().ppm(), 1);
    for bad in [-0.1, 100.01, f64::NAN, f64::INFINITY] {
        assert!(Percentage::from_percent(bad).is_err());
    }
}

#[test]
fn rolls_match_the_probability() {
    let mut rng = SeededRandom::new(7);
    let p = Percentage::from_percent(10.0).unwrap();
    let hits = (0..100_000).filter(|_| p.roll(&mut rng)).count();
    assert!((9_500..=10_500).contains(&hits), "{hits}");
    assert!(!Percentage::NEVER.roll(&mut rng));
    assert!(Percentage::ALWAYS.roll(&mut rng));
}
