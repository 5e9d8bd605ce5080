//! What every meshplug filter needs, in one place and with one name per thing.
//!
//! Pure logic (no proxy-wasm): [`config`] (strict parsing, JSON-pointer errors), [`json`] (JSON without
//! duplicate keys), [`matching`] (Istio's
//! `HTTPMatchRequest`), [`duration`], [`percent`], [`metrics`] (naming), [`host`] (the traits filter
//! logic talks to), [`counter`] (a CAS counter shared by all workers), [`timers`] (parked requests),
//! [`reply`] (the filter's decision). The proxy-wasm implementations of the host traits, the logger,
//! the panic hook and request parking are in `wasm` (Wasm builds only).

pub mod chain;
pub mod claims;
pub mod config;
pub mod counter;
pub mod duration;
pub mod host;
pub mod json;
pub mod matching;
pub mod metrics;
pub mod path;
pub mod percent;
pub mod proto;
pub mod reply;
#[cfg(feature = "schema")]
pub mod schema;
pub mod testing;
pub mod throttle;
pub mod timers;
pub mod wire;

#[cfg(all(target_arch = "wasm32", not(test)))]
pub mod wasm;

/// The git commit this module was built from (`unknown` outside a git checkout).
pub const GIT_HASH: &str = env!("MESHPLUG_GIT_HASH");
/// The meshplug release.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The line every filter logs when its VM starts.
pub fn version_line(filter: &str) -> String {
    // The bundle's module name is `meshplug`.
    let what = if filter == "meshplug" { "bundle" } else { filter };
    format!("meshplug {what} {VERSION} (git {GIT_HASH}) starting")
}

/// The name of a plugin instance in its shared-data keys, from Envoy's plugin `name` and `root_id`:
/// the name, then `/root_id` when the root id differs from it; `fallback` (the filter's name) when the
/// host gives neither. Two plugins in one Envoy are told apart by their Wasm config `name` (Istio:
/// `<namespace>.<WasmPlugin name>`; `meshplug up`: `<workload>.<filter>`), so their buckets, counters
/// and JWKS never share a key.
pub fn instance_key(name: Option<&str>, root_id: Option<&str>, fallback: &str) -> String {
    match (name, root_id) {
        (Some(n), Some(r)) if n != r => format!("{n}/{r}"),
        (Some(n), _) => n.to_string(),
        (None, Some(r)) => r.to_string(),
        (None, None) => fallback.to_string(),
    }
}

/// The log prefix for a filter: `[fault]`, `[rate-limit]`. Derived from the crate name in a log
/// record's target (`rate_limit::logic` → `rate-limit`), so it is right inside the bundle too.
pub fn log_prefix(target: &str) -> String {
    let krate = target.split("::").next().unwrap_or(target);
    format!("[{}]", krate.replace('_', "-"))
}

#[cfg(test)]
#[path = "tests/lib.rs"]
mod tests;
