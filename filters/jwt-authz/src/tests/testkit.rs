//! Test keys and token minting (tests only; feature `testkit`). The keys in `testdata/` were made with
//! `openssl genpkey` for these tests and must never be used for anything else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

pub const ISSUER: &str = "https://auth.example.com";
pub const RSA_PEM: &str = include_str!("../../testdata/rsa.pem");
pub const RSA2_PEM: &str = include_str!("../../testdata/rsa2.pem");
pub const P256_PEM: &str = include_str!("../../testdata/p256.pem");
pub const P384_PEM: &str = include_str!("../../testdata/p384.pem");
pub const ED25519_PEM: &str = include_str!("../../testdata/ed25519.pem");
pub const HMAC_SECRET: &[u8] = b"meshplug-test-secret-0123456789abcdef";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Which key signs: `rsa` (kid `rsa-1`), `rsa2` (kid `rsa-2`), `p256` (`ec-256`), `p384` (`ec-384`),
/// `ed25519` (`ed-1`), `hmac` (`hs-1`).
pub fn kid_of(key: &str) -> &'static str {
    match key {
        "rsa" => "rsa-1",
        "rsa2" => "rsa-2",
        "p256" => "ec-256",
        "p384" => "ec-384",
        "ed25519" => "ed-1",
        "hmac" => "hs-1",
        other => panic!("no test key {other}"),
    }
}

/// The JWK of a test key.
pub fn jwk(key: &str) -> Value {
    let kid = kid_of(key);
    match key {
        "rsa" | "rsa2" => {
            let pem = if key == "rsa" { RSA_PEM } else { RSA2_PEM };
            let c = RS256KeyPair::from_pem(pem).unwrap().public_key().to_components();
            json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
        }
        "p256" => {
            let p = ES256KeyPair::from_pem(P256_PEM).unwrap().public_key().public_key().to_bytes_uncompressed();
            json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
        }
        "p384" => {
            let p = ES384KeyPair::from_pem(P384_PEM).unwrap().public_key().public_key().to_bytes_uncompressed();
            json!({"kty": "EC", "kid": kid, "crv": "P-384", "x": b64(&p[1..49]), "y": b64(&p[49..97])})
        }
        "ed25519" => {
            let p = Ed25519KeyPair::from_pem(ED25519_PEM).unwrap().public_key().to_bytes();
            json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(&p)})
        }
        "hmac" => json!({"kty": "oct", "kid": kid, "k": b64(HMAC_SECRET)}),
        other => panic!("no test key {other}"),
    }
}

/// A JWKS (as a JSON string) of the named test keys.
pub fn jwks(keys: &[&str]) -> String {
    json!({"keys": keys.iter().map(|k| jwk(k)).collect::<Vec<_>>()}).to_string()
}

/// Standard claims for `ISSUER` valid for an hour from `now` (seconds since the epoch).
pub fn claims(now: u64, sub: &str) -> Map<String, Value> {
    let v = json!({"iss": ISSUER, "sub": sub, "aud": "payment-api", "iat": now, "nbf": now, "exp": now + 3600});
    v.as_object().cloned().unwrap()
}

/// Signs `claims` (exactly these, nothing added) with `alg` and the named key, with `kid` in the header
/// unless `kid` is `None`.
pub fn mint(alg: &str, key: &str, kid: Option<&str>, claims: Map<String, Value>) -> String {
    let mut c: JWTClaims<Map<String, Value>> = Claims::with_custom_claims(claims, Duration::from_secs(1));
    c.issued_at = None;
    c.expires_at = None;
    c.invalid_before = None;
    macro_rules! sign {
        ($kp:expr) => {{
            let kp = $kp;
            match kid {
                Some(k) => kp.with_key_id(k).sign(c).unwrap(),
                None => kp.sign(c).unwrap(),
            }
        }};
    }
    macro_rules! mac {
        ($k:expr) => {{
            let k = $k;
            match kid {
                Some(id) => k.with_key_id(id).authenticate(c).unwrap(),
                None => k.authenticate(c).unwrap(),
            }
        }};
    }
    let rsa = if key == "rsa2" { RSA2_PEM } else { RSA_PEM };
    match alg {
        "RS256" => sign!(RS256KeyPair::from_pem(rsa).unwrap()),
        "RS384" => sign!(RS384KeyPair::from_pem(rsa).unwrap()),
        "RS512" => sign!(RS512KeyPair::from_pem(rsa).unwrap()),
        "PS256" => sign!(PS256KeyPair::from_pem(rsa).unwrap()),
        "PS384" => sign!(PS384KeyPair::from_pem(rsa).unwrap()),
        "PS512" => sign!(PS512KeyPair::from_pem(rsa).unwrap()),
        "ES256" => sign!(ES256KeyPair::from_pem(P256_PEM).unwrap()),
        "ES384" => sign!(ES384KeyPair::from_pem(P384_PEM).unwrap()),
        "EdDSA" => sign!(Ed25519KeyPair::from_pem(ED25519_PEM).unwrap()),
        "HS256" => mac!(HS256Key::from_bytes(HMAC_SECRET)),
        "HS384" => mac!(HS384Key::from_bytes(HMAC_SECRET)),
        "HS512" => mac!(HS512Key::from_bytes(HMAC_SECRET)),
        other => panic!("no such alg {other}"),
    }
}

/// The usual key for an algorithm.
pub fn key_for(alg: &str) -> &'static str {
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => "rsa",
        "ES256" => "p256",
        "ES384" => "p384",
        "EdDSA" => "ed25519",
        _ => "hmac",
    }
}

/// A valid token for `sub`, signed with `alg` and its usual key.
pub fn token(alg: &str, now: u64, sub: &str) -> String {
    let key = key_for(alg);
    mint(alg, key, Some(kid_of(key)), claims(now, sub))
}

/// A token like [`token`] whose claims are overlaid with `extra` (a JSON object): a claim set to a
/// new value, of another type, or added.
pub fn token_with(alg: &str, now: u64, sub: &str, extra: Value) -> String {
    let mut c = claims(now, sub);
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        c.insert(k, v);
    }
    let key = key_for(alg);
    mint(alg, key, Some(kid_of(key)), c)
}

/// A compact token from raw header and payload JSON and a signature (for hostile tokens).
pub fn raw(header: &str, payload: &str, signature: &[u8]) -> String {
    format!("{}.{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()), b64(signature))
}

/// Every algorithm the filter accepts.
pub const ALGS: [&str; 12] =
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256", "HS384", "HS512"];
