use super::*;

#[test]
fn hostile_answers_are_errors_not_panics() {
    for bad in [&[0x12, 0x05, 0x08][..], &[0x1a, 0x02, 0x0a, 0x01, 0xff], &[0xff; 12], &[0x08]] {
        assert!(decode_response(bad).is_err(), "{bad:?}");
    }
    assert_eq!(decode_response(&[]).unwrap(), Response::default(), "an empty message is all defaults");
}

#[test]
fn values_that_are_not_utf8_stay_distinct() {
    assert_eq!(descriptor_value(b"alice"), "alice");
    assert_eq!(descriptor_value(b"\xe4\xb8"), "%E4%B8");
    assert_eq!(descriptor_value(b"%E4%B8"), "%25E4%25B8", "an escaped-looking value is not the same counter");
    assert_ne!(descriptor_value(b"\xff"), descriptor_value(b"\xfe"));
}

#[test]
fn only_clean_headers_are_taken_from_the_service() {
    assert!(safe_header(&("x-ratelimit-limit".into(), "5, 5;w=60".into())));
    assert!(!safe_header(&("X-Upper".into(), "v".into())));
    assert!(!safe_header(&("x-a".into(), "v\r\nset-cookie: a=b".into())));
    assert!(!safe_header(&("".into(), "v".into())));
}
