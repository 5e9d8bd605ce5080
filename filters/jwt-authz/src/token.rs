//! Decoding a JWT (compact JWS) strictly, before any signature work: every way a token can be
//! malformed is refused here with a reason, and nothing panics whatever the input.

use crate::jwks::Alg;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use meshplug_common::json::StrictValue;
use serde_json::{Map, Value};
use std::fmt;

/// Why a token was refused. Goes to the log and the `tokens_invalid_<reason>` metric, never to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    TooLarge,
    Malformed,
    UnsupportedAlg,
    Crit,
    ClaimType,
    UnknownIssuer,
    UnknownKid,
    NoKeys,
    BadSignature,
    Expired,
    MissingExp,
    NotYetValid,
    IssuedInFuture,
    Audience,
    /// The token is not ASCII (a JWT is base64url and dots).
    NotAscii,
    /// A configured location holds more than one value (the header twice, two `access_token`
    /// parameters, two cookies of the name), or the request carries two different tokens.
    Ambiguous,
    /// The token was found in a location its issuer's rule does not list (as Envoy's jwt_authn).
    WrongLocation,
}

impl Reason {
    pub const ALL: [Reason; 17] = [
        Reason::TooLarge,
        Reason::Malformed,
        Reason::UnsupportedAlg,
        Reason::Crit,
        Reason::ClaimType,
        Reason::UnknownIssuer,
        Reason::UnknownKid,
        Reason::NoKeys,
        Reason::BadSignature,
        Reason::Expired,
        Reason::MissingExp,
        Reason::NotYetValid,
        Reason::IssuedInFuture,
        Reason::Audience,
        Reason::NotAscii,
        Reason::Ambiguous,
        Reason::WrongLocation,
    ];

    /// The metric suffix: `meshplug.jwt_authz.tokens_invalid_<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::Malformed => "malformed",
            Reason::UnsupportedAlg => "unsupported_alg",
            Reason::Crit => "crit",
            Reason::ClaimType => "claim_type",
            Reason::UnknownIssuer => "unknown_issuer",
            Reason::UnknownKid => "unknown_kid",
            Reason::NoKeys => "no_keys",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::MissingExp => "missing_exp",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IssuedInFuture => "issued_in_future",
            Reason::Audience => "audience",
            Reason::NotAscii => "not_ascii",
            Reason::Ambiguous => "ambiguous",
            Reason::WrongLocation => "wrong_location",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A token decoded and checked for form, not yet verified.
#[derive(Debug, Clone)]
pub struct Decoded<'t> {
    pub token: &'t str,
    pub alg: Alg,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// The payload's JSON, decoded from base64url (what is published in filter state).
    pub payload_json: Vec<u8>,
    /// The payload segment as sent (base64url JSON), for `outputPayloadToHeader`.
    pub payload_b64: &'t str,
    /// `header.payload`, the signed bytes.
    pub signing_input: &'t str,
    pub signature: Vec<u8>,
}

impl Decoded<'_> {
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

fn b64(segment: &str) -> Result<Vec<u8>, Reason> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| Reason::Malformed)
}

fn object(bytes: &[u8]) -> Result<Map<String, Value>, Reason> {
    match serde_json::from_slice::<StrictValue>(bytes) {
        Ok(StrictValue(Value::Object(m))) => Ok(m),
        _ => Err(Reason::Malformed),
    }
}

/// Decodes `token` and checks its form: size, three base64url segments, JSON objects without
/// duplicate keys, a supported `alg`, no `crit`, a string `kid`, and claim types (`iss`/`sub` strings,
/// `exp`/`nbf`/`iat` numbers, `aud` a string or an array of strings).
pub fn decode(token: &str, max_bytes: usize) -> Result<Decoded<'_>, Reason> {
    if token.len() > max_bytes {
        return Err(Reason::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Reason::Malformed);
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(Reason::Malformed);
    }
    let header = object(&b64(h)?)?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => Alg::parse(a).ok_or(Reason::UnsupportedAlg)?,
        _ => return Err(Reason::UnsupportedAlg),
    };
    if header.contains_key("crit") {
        return Err(Reason::Crit);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Reason::Malformed),
    };
    let payload_json = b64(p)?;
    let claims = object(&payload_json)?;
    let signature = b64(s)?;
    for name in ["iss", "sub", "azp"] {
        if claims.get(name).is_some_and(|v| !v.is_string()) {
            return Err(Reason::ClaimType);
        }
    }
    for name in ["exp", "nbf", "iat"] {
        if claims.get(name).is_some_and(|v| !v.is_number()) {
            return Err(Reason::ClaimType);
        }
        if claims.get(name).and_then(Value::as_f64).is_some_and(|t| !time_in_range(t)) {
            return Err(Reason::ClaimType);
        }
    }
    match claims.get("aud") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Err(Reason::ClaimType),
    }
    let signing_input = token.get(..h.len() + 1 + p.len()).ok_or(Reason::Malformed)?;
    Ok(Decoded { token, alg, kid, claims, payload_json, payload_b64: p, signing_input, signature })
}

/// Whether a time claim is in the range Envoy's jwt_authn accepts: jwt_verify_lib reads `exp`, `nbf`
/// and `iat` as an unsigned 64-bit integer and refuses a number below 0 or from 2^64 on
/// (`StructUtils::GetUInt64`, OUT_OF_RANGE); a fraction is truncated.
pub fn time_in_range(t: f64) -> bool {
    t.is_finite() && (0.0..18_446_744_073_709_551_616.0).contains(&t)
}

/// A time claim as whole seconds since the epoch (truncated, as Envoy does).
pub fn numeric(claims: &Map<String, Value>, name: &str) -> Option<f64> {
    claims.get(name).and_then(Value::as_f64).map(f64::trunc)
}

/// The `aud` claim as a list.
pub fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

#[cfg(test)]
#[path = "tests/token.rs"]
mod tests;
