//! Tests of `verify`: the foreign function's protobuf.

use super::*;

#[test]
fn arguments_encode_as_protobuf() {
    let a = encode_verify_arguments("sha256", &[1, 2], &[3], b"hi");
    assert_eq!(a, vec![0x0a, 6, b's', b'h', b'a', b'2', b'5', b'6', 0x12, 2, 1, 2, 0x1a, 1, 3, 0x22, 2, b'h', b'i']);
    let long = encode_verify_arguments("", &[0u8; 300], &[], &[]);
    assert_eq!(&long[..5], &[0x0a, 0, 0x12, 0xac, 0x02]);
}

#[test]
fn results_decode() {
    assert!(decode_verify_result(&[0x08, 0x01]));
    assert!(!decode_verify_result(&[0x08, 0x00]));
    assert!(!decode_verify_result(&[]));
    assert!(!decode_verify_result(&[0x12, 0x03, b'b', b'a', b'd']), "only an error");
    assert!(decode_verify_result(&[0x12, 0x01, b'x', 0x08, 0x01]));
    assert!(!decode_verify_result(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]), "hostile length does not panic");
}
