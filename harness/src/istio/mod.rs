//! What istiod and istio-agent do to a WasmPlugin before Envoy sees it, mirrored from their source
//! (istio/istio at 1.29.6) so the local run (`meshplug up --istio`) and `render` deliver filters the
//! way a mesh does:
//!
//! - `pilot/pkg/model/extensions.go`: resource names (`extensions.istio.io/wasmplugin/<ns>.<name>`),
//!   the Wasm config istiod builds (`buildPluginConfig`, `buildDataSource`, `buildVMConfig`),
//!   listener matching (`matchTrafficSelectors`, `workloadModeForListenerClass`);
//! - `pilot/pkg/networking/core/extension/wasmplugin.go`: the ECDS filter (`toEnvoyHTTPFilter`: type URLs
//!   [Wasm, RBAC], `initial_fetch_timeout: 0s`);
//! - `pilot/pkg/networking/core/listener_builder.go` and `pilot/pkg/model/push_context.go`
//!   (`WasmPluginsByListenerInfo`): placement by phase, then descending priority;
//! - `pkg/util/protomarshal/protomarshal.go` → `github.com/golang/protobuf/jsonpb/encode.go`: how the
//!   `pluginConfig` Struct becomes the JSON the filter receives (in `deploy::istio_api`, since
//!   `render --envoyfilter` must encode it the same way);
//! - `pkg/model/wasm.go`, `pkg/wasm/convert.go`: the VM environment variables istio-agent reads and
//!   strips, and the RBAC filter it substitutes when a fetch fails.
//!
//! [`istiod`] turns WasmPlugin manifests into the Envoy resources istiod sends (one ECDS extension
//! config per plugin, one HTTP filter per plugin in the listener, in phase and priority order);
//! [`envoyfilter`] mirrors how istiod selects, orders and applies EnvoyFilter patches to the chain it
//! builds (`pilot/pkg/networking/core/envoyfilter/listener_patch.go`);
//! [`agent`] applies istio-agent's conversion of each extension config (fetch the module by its rules
//! and cache, or substitute the RBAC filter); [`lab`] runs a real Envoy fed that way, through files
//! Envoy watches, so `meshplug up --istio` and the tests see what a sidecar would.
//!
//! May use: `deploy` (manifests, OCI pulls, Istio's API names) and `lab` (Envoy, upstreams, daemons).
//! Never `load`.

pub mod agent;
pub mod envoyfilter;
pub mod istiod;
pub mod lab;

/// The stats a sidecar keeps by default: the `stats_matcher` inclusion list of istio-agent's bootstrap
/// (istio/istio 1.29.6, the same at 1.28.0: `tools/packaging/common/envoy_bootstrap.json` — `reporter=`,
/// `component`, `istio` — plus `pkg/bootstrap/config.go`'s required prefixes `cluster_manager`,
/// `listener_manager`, `server`, `cluster.xds-grpc`, `wasm` and suffixes `rbac.allowed`, `rbac.denied`,
/// `shadow_allowed`, `shadow_denied`). The required entries are appended whatever a workload's
/// `proxyStatsMatcher` or `sidecar.istio.io/statsInclusion*` annotations add, so `wasm` — which
/// prefixes every custom Wasm metric, `wasmcustom.meshplug.*` — is always kept.
pub const STATS_INCLUSION_PREFIXES: [&str; 8] =
    ["reporter=", "cluster_manager", "listener_manager", "server", "cluster.xds-grpc", "wasm", "component", "istio"];
pub const STATS_INCLUSION_SUFFIXES: [&str; 4] = ["rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied"];

/// [`STATS_INCLUSION_PREFIXES`] and [`STATS_INCLUSION_SUFFIXES`] as the bootstrap's `stats_config`.
pub fn stats_config() -> serde_json::Value {
    let prefixes = STATS_INCLUSION_PREFIXES.iter().map(|p| serde_json::json!({ "prefix": p }));
    let suffixes = STATS_INCLUSION_SUFFIXES.iter().map(|s| serde_json::json!({ "suffix": s }));
    serde_json::json!({ "stats_matcher": { "inclusion_list": { "patterns": prefixes.chain(suffixes).collect::<Vec<_>>() } } })
}

/// Whether a sidecar keeps the stat `name` by default (the inclusion list's string matchers).
pub fn stat_kept(name: &str) -> bool {
    STATS_INCLUSION_PREFIXES.iter().any(|p| name.starts_with(p))
        || STATS_INCLUSION_SUFFIXES.iter().any(|s| name.ends_with(s))
}
