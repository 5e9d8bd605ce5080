//! Tests of `wire`: round trips, and hostile maps never panic.

use super::*;

#[test]
fn round_trip_with_non_utf8_bytes() {
    let pairs: Vec<(&[u8], &[u8])> = vec![(b":path", b"/"), (b"user-agent", b"\xe4\xb8"), (b"\xff", b"")];
    let decoded = decode_map(&encode_map(&pairs)).unwrap();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = pairs.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    assert_eq!(decoded, expected);
    assert_eq!(decode_map(&[]), Some(vec![]));
}

#[test]
fn truncated_or_lying_maps_are_refused() {
    let good = encode_map(&[(b"a", b"b")]);
    for cut in 1..good.len() - 1 {
        assert_eq!(decode_map(&good[..cut]), None, "cut at {cut}");
    }
    assert_eq!(decode_map(&[0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0]), None);
    let mut huge = good.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(decode_map(&huge), None);
}

#[test]
fn property_paths() {
    assert_eq!(encode_path(&["source", "address"]), b"source\0address".to_vec());
    assert_eq!(encode_path(&["x"]), b"x".to_vec());
}
