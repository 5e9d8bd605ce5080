//! Tests of `jwks`.

use super::*;
use crate::testkit::{jwk, jwks};
use jwt_simple::prelude::*;
use serde_json::json;

#[test]
fn test_keys_parse_and_spki_matches_the_reference_encoding() {
    let set = KeySet::parse(jwks(&["rsa", "p256", "p384", "ed25519", "hmac"]).as_bytes()).unwrap();
    assert_eq!(set.keys.len(), 5);
    let rsa = RS256KeyPair::from_pem(crate::testkit::RSA_PEM).unwrap().public_key();
    let p256 = ES256KeyPair::from_pem(crate::testkit::P256_PEM).unwrap().public_key();
    let p384 = ES384KeyPair::from_pem(crate::testkit::P384_PEM).unwrap().public_key();
    for k in &set.keys {
        match &k.material {
            KeyMaterial::Rsa { spki, .. } => assert_eq!(spki, &rsa.to_der().unwrap()),
            KeyMaterial::P256 { spki, .. } => assert_eq!(spki, &p256.to_der().unwrap()),
            KeyMaterial::P384 { spki, .. } => assert_eq!(spki, &p384.to_der().unwrap()),
            _ => {}
        }
    }
}

#[test]
fn bad_jwks_are_refused_with_a_reason() {
    assert!(KeySet::parse(b"not json").unwrap_err().contains("not a JWKS"));
    assert!(KeySet::parse(br#"{"keys":[]}"#).unwrap_err().contains("no usable key"));
    let weak = json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}).to_string();
    assert!(KeySet::parse(weak.as_bytes()).unwrap_err().contains("2048"));
    let short = json!({"keys": [{"kty": "oct", "k": "c2hvcnQ"}]}).to_string();
    assert!(KeySet::parse(short.as_bytes()).unwrap_err().contains("32 bytes"));
    let mut mismatched = jwk("p256");
    mismatched["alg"] = json!("RS256");
    let e = KeySet::parse(json!({"keys": [mismatched]}).to_string().as_bytes()).unwrap_err();
    assert!(e.contains("does not fit"), "{e}");
    let huge = vec![b' '; crate::config::MAX_JWKS_BYTES + 1];
    assert!(KeySet::parse(&huge).unwrap_err().contains("maximum"));
}

#[test]
fn encryption_keys_are_skipped() {
    let mut enc = jwk("rsa");
    enc["use"] = json!("enc");
    let set = KeySet::parse(json!({"keys": [enc, jwk("p256")]}).to_string().as_bytes()).unwrap();
    assert_eq!(set.keys.len(), 1);
}

#[test]
fn ecdsa_signatures_become_der() {
    let mut raw = vec![0u8; 64];
    raw[0] = 0x80; // r needs a leading zero byte, s is small
    raw[63] = 1;
    let der = ecdsa_sig_to_der(&raw, 32).unwrap();
    assert_eq!(&der[..4], &[0x30, 0x26, 0x02, 0x21]);
    assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x01]);
    assert!(ecdsa_sig_to_der(&raw[..63], 32).is_none());
}
