//! Verified JWT claims handed from the jwt-authz filter to later filters (rate-limit keys, canary
//! stickiness) through Envoy filter state — never through a request header, which a client could forge.
//!
//! jwt-authz stores the verified payload (a JSON object) with `set_property(["meshplug_claims"], json)`;
//! Envoy keeps it as filter state `wasm.meshplug_claims`, readable by every later Wasm filter of the
//! request. With several tokens on one request, the first validated token's claims are published.
//! Inside the bundle the claims stay in the module, already parsed: later stages read them through
//! [`crate::host::RequestProperties::claim`] without parsing the JSON again.

use serde_json::{Map, Value};

/// The property path jwt-authz writes and other filters read.
pub const CLAIMS_PROPERTY: &str = "meshplug_claims";

/// A verified token's claims, parsed.
pub type Claims = Map<String, Value>;

/// The published claims parsed, or `None` when they are not a JSON object.
pub fn parse(published: &[u8]) -> Option<Claims> {
    match serde_json::from_slice(published).ok()? {
        Value::Object(claims) => Some(claims),
        _ => None,
    }
}

/// The claim `name` as a key string: strings as they are, numbers and booleans in their JSON form;
/// `None` when absent, `null`, an object or an array.
pub fn claim_of(claims: &Claims, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The claim `name` of the published claims as a key string ([`claim_of`]); `None` also when the
/// published value is not a JSON object.
pub fn claim_value(published: &[u8], name: &str) -> Option<String> {
    claim_of(&parse(published)?, name)
}

#[cfg(test)]
#[path = "tests/claims.rs"]
mod tests;
