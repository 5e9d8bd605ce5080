//! Tests of `throttle`.

use super::*;

#[test]
fn one_line_per_period_counting_what_was_held() {
    let t = LogThrottle::default();
    let s = Duration::from_secs;
    assert_eq!(t.event(s(100), s(10)), Some(1));
    assert_eq!(t.event(s(101), s(10)), None);
    assert_eq!(t.event(s(105), s(10)), None);
    assert_eq!(t.event(s(110), s(10)), Some(3));
    assert_eq!(t.event(s(50), s(10)), Some(1), "a clock going backwards does not silence the log");
}
