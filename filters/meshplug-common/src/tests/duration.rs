//! Tests of `duration` (kept apart from the filter code, which must never unwrap).

use super::*;

#[test]
fn parses_the_usual_forms() {
    assert_eq!(parse_duration("150ms").unwrap(), Duration::from_millis(150));
    assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
    assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
    assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
}

#[test]
fn refuses_bad_forms_with_a_reason() {
    for bad in ["", "150", "-1s", "1.2.3s", "5 parsecs", "ms", "1d", "9999999h", "."] {
        assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
    }
    assert!(parse_duration("150").unwrap_err().contains("no unit"));
    assert!(parse_duration("-1s").unwrap_err().contains("negative"));
}
