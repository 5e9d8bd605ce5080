//! istiod's side for EnvoyFilters, and the HTTP filter chain istiod builds around plugins, mirrored from
//! istio/istio 1.29.6 so that where a rendered EnvoyFilter lands is tested, not assumed:
//!
//! - `pilot/pkg/model/push_context.go` `EnvoyFilters(proxy)`: the root namespace's and the proxy's
//!   EnvoyFilters that `ShouldAttachPolicy` selects (by `workloadSelector`, or Gateway/GatewayClass
//!   targets), sorted by priority, root namespace first, creation time, then `name.namespace`;
//! - `pilot/pkg/networking/core/envoyfilter/listener_patch.go` `patchHTTPFilters` (and `util.go`): the
//!   HTTP_FILTER operations — ADD appends, INSERT_FIRST prepends, INSERT_BEFORE/INSERT_AFTER place at the
//!   first filter named by `subFilter` (without a `subFilter`: first / last; with one that is absent:
//!   nowhere), REPLACE the first match, REMOVE every match;
//! - `pilot/pkg/networking/core/envoyfilter/extension_configuration_patch.go`
//!   `InsertedExtensionConfigurations`: the ECDS resources are the EXTENSION_CONFIG `ADD` values;
//! - `pilot/pkg/networking/core/listener_builder.go` `buildHTTPConnectionManager`: the chain order —
//!   metadata exchange, CUSTOM ext_authz, AUTHN plugins, `jwt_authn`, AUTHZ plugins, `rbac`, STATS and
//!   UNSPECIFIED_PHASE plugins, `grpc_web`, `grpc_stats`, `alpn` (outbound), `fault`, `cors`, telemetry
//!   (`istio.stats`), router.

use super::istiod::{self, ListenerClass, Proxy, WasmPlugin, PHASES};
use serde_json::{json, Value};

/// One EnvoyFilter as istiod holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyFilter {
    pub namespace: String,
    pub name: String,
    pub spec: Value,
    pub created: Option<String>,
}

impl EnvoyFilter {
    /// From one parsed YAML document; `None` when it is not an EnvoyFilter.
    pub fn from_doc(doc: &Value) -> Option<Self> {
        if doc["kind"] != "EnvoyFilter" {
            return None;
        }
        Some(Self {
            namespace: doc["metadata"]["namespace"].as_str().unwrap_or("default").to_string(),
            name: doc["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            spec: doc["spec"].clone(),
            created: doc["metadata"]["creationTimestamp"].as_str().map(str::to_string),
        })
    }

    fn priority(&self) -> i64 {
        self.spec["priority"].as_i64().unwrap_or(0)
    }

    fn patches(&self, apply_to: &str) -> impl Iterator<Item = &Value> + '_ {
        let apply_to = apply_to.to_string();
        self.spec["configPatches"].as_array().into_iter().flatten().filter(move |p| p["applyTo"] == apply_to)
    }

    /// `ShouldAttachPolicy` with the EnvoyFilter's `workloadSelector` and `targetRefs`.
    pub fn selects(&self, proxy: &Proxy) -> bool {
        let refs: Vec<&Value> = self.spec["targetRefs"].as_array().into_iter().flatten().collect();
        istiod::should_attach(&self.namespace, self.spec["workloadSelector"]["labels"].as_object(), &refs, proxy)
    }
}

/// What the lab reads of an EnvoyFilter's plugins before it runs them (upstreams to start, JWKS and
/// rate limit services to stand in, the proxy's labels and listener): each Wasm EXTENSION_CONFIG seen as
/// a WasmPlugin with its `pluginName`, `pluginConfig`, selector, targets and the mode of its HTTP_FILTER
/// patches' contexts. Not used for selection, which is [`matched`]'s.
pub fn plugin_views(f: &EnvoyFilter) -> Vec<WasmPlugin> {
    let modes: Vec<&str> = f
        .patches("HTTP_FILTER")
        .map(|p| if p["match"]["context"] == "SIDECAR_INBOUND" { "SERVER" } else { "CLIENT" })
        .collect();
    let mode = if modes.iter().all(|m| *m == "CLIENT") && !modes.is_empty() { "CLIENT" } else { "SERVER" };
    extension_configs(&[f])
        .into_iter()
        .filter(|ec| ec["typed_config"]["@type"] == crate::deploy::istio_api::WASM_TYPE_URL)
        .map(|ec| {
            let config = &ec["typed_config"]["config"];
            let plugin_config: Value = config["configuration"]["value"]
                .as_str()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_else(|| json!({}));
            let mut spec = json!({
                "pluginName": config["root_id"],
                "pluginConfig": plugin_config,
                "match": [{ "mode": mode }],
            });
            if let Some(labels) = f.spec["workloadSelector"]["labels"].as_object() {
                spec["selector"] = json!({ "matchLabels": labels });
            }
            if let Some(refs) = f.spec.get("targetRefs") {
                spec["targetRefs"] = refs.clone();
            }
            WasmPlugin {
                namespace: f.namespace.clone(),
                name: f.name.clone(),
                file: String::new(),
                spec,
                resource_version: 1,
                created: f.created.clone(),
            }
        })
        .collect()
}

/// `EnvoyFilters(proxy)`: the EnvoyFilters that apply to `proxy`, in the order istiod applies them.
pub fn matched<'a>(filters: &'a [EnvoyFilter], proxy: &Proxy) -> Vec<&'a EnvoyFilter> {
    let mut out: Vec<&EnvoyFilter> = filters
        .iter()
        .filter(|f| f.namespace == proxy.root_namespace || f.namespace == proxy.namespace)
        .filter(|f| f.selects(proxy))
        .collect();
    out.sort_by(|a, b| {
        a.priority()
            .cmp(&b.priority())
            .then_with(|| (b.namespace == proxy.root_namespace).cmp(&(a.namespace == proxy.root_namespace)))
            .then_with(|| a.created.as_deref().unwrap_or("").cmp(b.created.as_deref().unwrap_or("")))
            .then_with(|| format!("{}.{}", a.name, a.namespace).cmp(&format!("{}.{}", b.name, b.namespace)))
    });
    out
}

/// `InsertedExtensionConfigurations`: the extension configs the EnvoyFilters ADD, in order.
pub fn extension_configs(filters: &[&EnvoyFilter]) -> Vec<Value> {
    filters
        .iter()
        .flat_map(|f| f.patches("EXTENSION_CONFIG"))
        .filter(|p| p["patch"]["operation"] == "ADD")
        .map(|p| p["patch"]["value"].clone())
        .collect()
}

/// The EnvoyFilter `match.context` of a listener class.
pub fn patch_context(class: ListenerClass) -> &'static str {
    match class {
        ListenerClass::SidecarInbound => "SIDECAR_INBOUND",
        ListenerClass::SidecarOutbound => "SIDECAR_OUTBOUND",
        ListenerClass::Gateway => "GATEWAY",
    }
}

/// One HTTP filter of a chain: its name and what Envoy runs for it.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainFilter {
    /// A filter of Istio's proxy build that upstream Envoy lacks (`istio.metadata_exchange`,
    /// `istio.alpn`, `istio.stats`): kept in the chain so patches anchored on it apply as in a mesh,
    /// left out of the lab's Envoy.
    IstioOnly(&'static str),
    /// One of Istio's filters that Envoy has, with a configuration that lets every request through
    /// (`jwt_authn` with no rules, `rbac` with no policies: as if a RequestAuthentication and an
    /// AuthorizationPolicy that require nothing existed), so where plugins land around them is real.
    Istio(&'static str, Value),
    /// A WasmPlugin's ECDS filter.
    Plugin(WasmPlugin),
    /// An HttpFilter an EnvoyFilter patch inserted.
    Patched(Value),
}

impl ChainFilter {
    pub fn name(&self) -> String {
        match self {
            ChainFilter::IstioOnly(n) | ChainFilter::Istio(n, _) => n.to_string(),
            ChainFilter::Plugin(p) => p.resource_name(),
            ChainFilter::Patched(v) => v["name"].as_str().unwrap_or_default().to_string(),
        }
    }
}

pub const METADATA_EXCHANGE: &str = "istio.metadata_exchange";
pub const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";
pub const RBAC: &str = "envoy.filters.http.rbac";
pub const GRPC_STATS: &str = "envoy.filters.http.grpc_stats";
pub const ROUTER: &str = "envoy.filters.http.router";

/// The HTTP filters istiod builds for a listener of `class` with these WasmPlugins (already in
/// phase and priority order): `buildHTTPConnectionManager`, with a RequestAuthentication and an
/// AuthorizationPolicy present, no CUSTOM action, not gRPC-web.
pub fn istio_chain(class: ListenerClass, plugins: &[WasmPlugin]) -> Vec<ChainFilter> {
    let phase = |ph: &str| -> Vec<ChainFilter> {
        plugins.iter().filter(|p| p.phase() == ph).cloned().map(ChainFilter::Plugin).collect()
    };
    let [authn, authz, stats, unspecified] = PHASES;
    let mut chain = vec![ChainFilter::IstioOnly(METADATA_EXCHANGE)];
    chain.extend(phase(authn));
    if class != ListenerClass::SidecarOutbound {
        // authn BuildHTTP: jwt_authn on inbound and gateway listeners only.
        chain.push(ChainFilter::Istio(
            JWT_AUTHN,
            json!({ "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication", "providers": {} }),
        ));
    }
    chain.extend(phase(authz));
    chain.push(ChainFilter::Istio(RBAC, json!({ "@type": crate::deploy::istio_api::RBAC_TYPE_URL })));
    chain.extend(phase(stats));
    chain.extend(phase(unspecified));
    chain.push(ChainFilter::Istio(
        GRPC_STATS,
        json!({ "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig", "emit_filter_state": true }),
    ));
    if class != ListenerClass::SidecarInbound {
        chain.push(ChainFilter::IstioOnly("istio.alpn"));
    }
    chain.push(ChainFilter::Istio(
        "envoy.filters.http.fault",
        json!({ "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault" }),
    ));
    chain.push(ChainFilter::Istio(
        "envoy.filters.http.cors",
        json!({ "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors" }),
    ));
    chain.push(ChainFilter::IstioOnly("istio.stats"));
    chain.push(ChainFilter::Istio(
        ROUTER,
        json!({ "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }),
    ));
    chain
}

/// `patchHTTPFilters` for one HTTP connection manager of a listener of `context` on `port`.
pub fn patch_http_filters(chain: &mut Vec<ChainFilter>, filters: &[&EnvoyFilter], context: &str, port: u16) {
    for patch in filters.iter().flat_map(|f| f.patches("HTTP_FILTER")) {
        let m = &patch["match"];
        // commonConditionMatch: no context is ANY (the enum's zero value).
        let ctx = m["context"].as_str().unwrap_or("ANY");
        if ctx != context && ctx != "ANY" {
            continue;
        }
        let listener = &m["listener"];
        if listener["portNumber"].as_u64().is_some_and(|n| n != 0 && n != u64::from(port)) {
            continue;
        }
        let network = &listener["filterChain"]["filter"];
        if network["name"].as_str().is_some_and(|n| n != "envoy.filters.network.http_connection_manager") {
            continue;
        }
        // hasHTTPFilterMatch: a network filter match and a subFilter.
        let sub = network["subFilter"]["name"].as_str().filter(|_| network["name"].is_string());
        let value = ChainFilter::Patched(patch["patch"]["value"].clone());
        let at = sub.and_then(|s| chain.iter().position(|f| f.name() == s));
        match patch["patch"]["operation"].as_str().unwrap_or("") {
            "ADD" => chain.push(value),
            "INSERT_FIRST" => chain.insert(0, value),
            "INSERT_AFTER" => match (sub, at) {
                (None, _) => chain.push(value),
                (Some(_), Some(i)) => chain.insert(i + 1, value),
                (Some(_), None) => {}
            },
            "INSERT_BEFORE" => match (sub, at) {
                (None, _) => chain.insert(0, value),
                (Some(_), Some(i)) => chain.insert(i, value),
                (Some(_), None) => {}
            },
            "REPLACE" => {
                if let Some(i) = at {
                    chain[i] = value;
                }
            }
            "REMOVE" => {
                if let Some(s) = sub {
                    chain.retain(|f| f.name() != s);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ef(ns: &str, name: &str, spec: Value) -> EnvoyFilter {
        EnvoyFilter::from_doc(
            &json!({"kind": "EnvoyFilter", "metadata": {"name": name, "namespace": ns}, "spec": spec}),
        )
        .unwrap()
    }

    fn insert(op: &str, sub: Option<&str>, name: &str) -> Value {
        let mut filter = json!({"name": "envoy.filters.network.http_connection_manager"});
        if let Some(s) = sub {
            filter["subFilter"] = json!({"name": s});
        }
        json!({"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {"filter": filter}}},
               "patch": {"operation": op, "value": {"name": name}}})
    }

    /// listener_patch.go: an anchor that is absent applies nowhere; no anchor means first/last; priority,
    /// then root namespace first, then name order.
    #[test]
    fn patches_apply_as_istiod_applies_them() {
        let labels = BTreeMap::new();
        let proxy = Proxy { namespace: "ns", labels: &labels, waypoint: false, services: &[], root_namespace: "root" };
        let filters = vec![
            ef("ns", "b", json!({"priority": 1, "configPatches": [insert("INSERT_BEFORE", Some(GRPC_STATS), "late")]})),
            ef(
                "root",
                "z",
                json!({"priority": 1, "configPatches": [insert("INSERT_BEFORE", Some(GRPC_STATS), "root-late")]}),
            ),
            ef(
                "ns",
                "a",
                json!({"configPatches": [insert("INSERT_AFTER", Some(JWT_AUTHN), "after-jwt"),
                                                   insert("INSERT_BEFORE", Some("ext_authz.absent"), "nowhere"),
                                                   insert("INSERT_FIRST", None, "first"),
                                                   insert("INSERT_AFTER", None, "last")]}),
            ),
            ef("other", "c", json!({"configPatches": [insert("INSERT_FIRST", None, "other-ns")]})),
            ef(
                "ns",
                "d",
                json!({"workloadSelector": {"labels": {"app": "x"}}, "configPatches": [insert("INSERT_FIRST", None, "unselected")]}),
            ),
        ];
        let matched = matched(&filters, &proxy);
        assert_eq!(matched.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["a", "z", "b"]);
        let mut chain = istio_chain(ListenerClass::SidecarInbound, &[]);
        patch_http_filters(&mut chain, &matched, "SIDECAR_INBOUND", 8080);
        let names: Vec<String> = chain.iter().map(ChainFilter::name).collect();
        let pos = |n: &str| names.iter().position(|x| x == n);
        assert_eq!(pos("first"), Some(0));
        assert_eq!(pos("last"), Some(names.len() - 1));
        assert_eq!(pos("after-jwt"), pos(JWT_AUTHN).map(|i| i + 1));
        assert_eq!(pos("nowhere"), None);
        assert!(pos("root-late") < pos("late") && pos("late").map(|i| i + 1) == pos(GRPC_STATS), "{names:?}");
    }
}
