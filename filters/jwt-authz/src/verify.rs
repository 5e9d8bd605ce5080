//! Signature verification: through the host's BoringSSL (Envoy's `verify_signature` foreign function,
//! ~30 µs for RS256) when it has it, else with jwt-simple's pure-Rust code (~1 ms for RS256 in V8).

use crate::jwks::{ecdsa_sig_to_der, Alg, Jwk, KeyMaterial};
use crate::token::Decoded;
use jwt_simple::prelude::*;

/// The host's signature check: `Some(valid)`, or `None` when the host has no such service (or cannot
/// check this key), in which case the pure-Rust fallback runs.
pub trait CryptoHost {
    /// `hash`: `sha256`/`sha384`/`sha512`; `spki`: the public key as SubjectPublicKeyInfo DER;
    /// `signature`: PKCS#1 v1.5 for RSA, DER `ECDSA-Sig-Value` for ECDSA.
    fn verify_signature(&self, hash: &str, spki: &[u8], signature: &[u8], text: &[u8]) -> Option<bool>;
}

/// A host without a signature service (native tests, hosts other than Envoy).
pub struct NoCrypto;

impl CryptoHost for NoCrypto {
    fn verify_signature(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        None
    }
}

/// Checks the token's signature with `key`. `now_secs` is the host time, used for nothing but jwt-simple's
/// own (disabled) time checks; the filter checks times itself.
pub fn verify(host: &dyn CryptoHost, token: &Decoded, key: &Jwk, now_secs: u64) -> bool {
    if !token.alg.fits(&key.material) {
        return false;
    }
    let text = token.signing_input.as_bytes();
    let boring = match (&key.material, token.alg) {
        (KeyMaterial::Rsa { spki, .. }, Alg::RS256) => host.verify_signature("sha256", spki, &token.signature, text),
        (KeyMaterial::Rsa { spki, .. }, Alg::RS384) => host.verify_signature("sha384", spki, &token.signature, text),
        (KeyMaterial::Rsa { spki, .. }, Alg::RS512) => host.verify_signature("sha512", spki, &token.signature, text),
        (KeyMaterial::P256 { spki, .. }, Alg::ES256) => match ecdsa_sig_to_der(&token.signature, 32) {
            Some(sig) => host.verify_signature("sha256", spki, &sig, text),
            None => return false,
        },
        (KeyMaterial::P384 { spki, .. }, Alg::ES384) => match ecdsa_sig_to_der(&token.signature, 48) {
            Some(sig) => host.verify_signature("sha384", spki, &sig, text),
            None => return false,
        },
        _ => None,
    };
    match boring {
        Some(valid) => valid,
        None => pure_rust(token, key, now_secs),
    }
}

fn options(now_secs: u64) -> VerificationOptions {
    VerificationOptions {
        accept_future: true,
        // coarsetime durations are 32.32 fixed point (at most ~136 years): 50 years disables the check.
        time_tolerance: Some(Duration::from_days(365 * 50)),
        max_token_length: Some(usize::MAX),
        max_header_length: Some(usize::MAX),
        artificial_time: Some(UnixTimeStamp::from_secs(now_secs)),
        ..Default::default()
    }
}

fn pure_rust(token: &Decoded, key: &Jwk, now_secs: u64) -> bool {
    let t = token.token;
    let o = Some(options(now_secs));
    match (&key.material, token.alg) {
        (KeyMaterial::Rsa { n, e, .. }, alg) => match alg {
            Alg::RS256 => {
                RS256PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(t, o)).is_ok()
            }
            Alg::RS384 => {
                RS384PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(t, o)).is_ok()
            }
            Alg::RS512 => {
                RS512PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(t, o)).is_ok()
            }
            Alg::PS256 => {
                PS256PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(t, o)).is_ok()
            }
            Alg::PS384 => {
                PS384PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(t, o)).is_ok()
            }
            Alg::PS512 => {
                PS512PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(t, o)).is_ok()
            }
            _ => false,
        },
        (KeyMaterial::P256 { point, .. }, Alg::ES256) => {
            ES256PublicKey::from_bytes(point).and_then(|k| k.verify_token::<NoCustomClaims>(t, o)).is_ok()
        }
        (KeyMaterial::P384 { point, .. }, Alg::ES384) => {
            ES384PublicKey::from_bytes(point).and_then(|k| k.verify_token::<NoCustomClaims>(t, o)).is_ok()
        }
        (KeyMaterial::Ed25519 { public }, Alg::EdDSA) => {
            Ed25519PublicKey::from_bytes(public).and_then(|k| k.verify_token::<NoCustomClaims>(t, o)).is_ok()
        }
        (KeyMaterial::Oct { secret }, Alg::HS256) => {
            HS256Key::from_bytes(secret).verify_token::<NoCustomClaims>(t, o).is_ok()
        }
        (KeyMaterial::Oct { secret }, Alg::HS384) => {
            HS384Key::from_bytes(secret).verify_token::<NoCustomClaims>(t, o).is_ok()
        }
        (KeyMaterial::Oct { secret }, Alg::HS512) => {
            HS512Key::from_bytes(secret).verify_token::<NoCustomClaims>(t, o).is_ok()
        }
        _ => false,
    }
}

/// The `VerifySignatureArguments` protobuf of Envoy's `verify_signature` foreign function:
/// `{ string hash_function = 1; bytes public_key = 2; bytes signature = 3; bytes text = 4; }`.
pub fn encode_verify_arguments(hash: &str, spki: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hash.len() + spki.len() + signature.len() + text.len() + 20);
    for (field, bytes) in [(1u8, hash.as_bytes()), (2, spki), (3, signature), (4, text)] {
        out.push(field << 3 | 2);
        let mut len = bytes.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(bytes);
    }
    out
}

/// Reads `VerifySignatureResult { bool result = 1; string error = 2; }`: the `result` field.
pub fn decode_verify_result(bytes: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&tag) = bytes.get(i) {
        i += 1;
        match (tag >> 3, tag & 7) {
            (1, 0) => return bytes.get(i).is_some_and(|b| *b == 1),
            (_, 0) => {
                while bytes.get(i).is_some_and(|b| b & 0x80 != 0) {
                    i += 1;
                }
                i += 1;
            }
            (_, 2) => {
                let mut len = 0usize;
                let mut shift = 0;
                while let Some(&b) = bytes.get(i) {
                    i += 1;
                    len |= usize::from(b & 0x7f) << shift;
                    shift += 7;
                    if b & 0x80 == 0 || shift > 28 {
                        break;
                    }
                }
                i = i.saturating_add(len);
            }
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
#[path = "tests/verify.rs"]
mod tests;
