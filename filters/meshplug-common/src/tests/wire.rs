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

#[test]
fn a_header_map_reads_in_place_and_changes_like_envoys() {
    let pairs: Vec<(&[u8], &[u8])> =
        vec![(b":path", b"/"), (b"cookie", b"a=1"), (b"x-v", b"\xff"), (b"Cookie", b"b=2"), (b"e", b"")];
    let mut map = HeaderMap::decode(encode_map(&pairs)).unwrap();
    assert_eq!(map.iter().collect::<Vec<_>>(), pairs);
    assert_eq!(map.values(b"cookie").collect::<Vec<_>>(), vec![&b"a=1"[..], b"b=2"]);
    assert!(map.contains(b"COOKIE") && map.contains(b"e") && !map.contains(b"x"));
    map.remove(b"cookie");
    assert!(!map.contains(b"cookie"));
    map.append(b"x-v", b"two");
    map.append(b"new", b"");
    assert_eq!(map.values(b"x-v").collect::<Vec<_>>(), vec![&b"\xff"[..], b"two"]);
    assert_eq!(map.len(), 5);
    assert_eq!(
        map.iter().collect::<Vec<_>>(),
        vec![(&b":path"[..], &b"/"[..]), (b"x-v", b"\xff"), (b"e", b""), (b"x-v", b"two"), (b"new", b"")]
    );
    assert!(HeaderMap::decode(Vec::new()).unwrap().is_empty());
}
