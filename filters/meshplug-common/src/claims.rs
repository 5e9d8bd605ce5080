//! Verified JWT claims handed from the jwt-authz filter to later filters (rate-limit keys, canary
//! stickiness) through Envoy filter state — never through a request header, which a client could forge.
//!
//! jwt-authz stores the verified payload (a JSON object) with `set_property(["meshplug_claims"], json)`;
//! Envoy keeps it as filter state `wasm.meshplug_claims`, readable by every later Wasm filter of the
//! request. With several tokens on one request, the first validated token's claims are published.

/// The property path jwt-authz writes and other filters read.
pub const CLAIMS_PROPERTY: &str = "meshplug_claims";

/// The claim `name` of the published claims as a key string: strings as they are, numbers and
/// booleans in their JSON form; `None` when absent, `null`, an object or an array, or when the
/// published value is not a JSON object.
pub fn claim_value(published: &[u8], name: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(published).ok()?;
    match value.as_object()?.get(name)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
#[path = "tests/claims.rs"]
mod tests;
