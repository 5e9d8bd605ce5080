//! istiod's side: WasmPlugins as istiod reads, selects, orders and renders them for one proxy
//! (istio/istio 1.29.6: `pilot/pkg/model/extensions.go`, `pilot/pkg/model/push_context.go`
//! `WasmPluginsByListenerInfo`, `pilot/pkg/networking/core/listener_builder.go`,
//! `pilot/pkg/networking/core/extension/wasmplugin.go`, `pilot/pkg/util/protomarshal`).

use crate::deploy::istio_api::{
    plugin_config_json, PULL_POLICY_ENV, PULL_SECRET_ENV, RBAC_TYPE_URL, RESOURCE_PREFIX, RESOURCE_VERSION_ENV,
    WASM_TYPE_URL,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One WasmPlugin as istiod holds it (`WasmPluginWrapper`).
#[derive(Debug, Clone, PartialEq)]
pub struct WasmPlugin {
    pub namespace: String,
    pub name: String,
    /// The file it came from (for messages).
    pub file: String,
    pub spec: Value,
    /// Kubernetes' `metadata.resourceVersion`: here a counter the lab bumps on every change of `spec`.
    pub resource_version: u64,
    /// `metadata.creationTimestamp`, when the manifest carries one.
    pub created: Option<String>,
}

/// The label Istio puts on a Gateway API gateway's pods (waypoints included):
/// `gateway.networking.k8s.io/gateway-name`.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// A service a waypoint serves (`ServiceInfoForPolicyMatcher`): its name, namespace and kind
/// (`Service` for the Kubernetes registry, `ServiceEntry` for the external one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedService {
    pub name: String,
    pub namespace: String,
    pub kind: String,
}

/// The proxy plugins are selected for (`WorkloadPolicyMatcher`).
#[derive(Debug, Clone, Copy)]
pub struct Proxy<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// An ambient waypoint (a Gateway API gateway of class `istio-waypoint`).
    pub waypoint: bool,
    /// The services the waypoint serves.
    pub services: &'a [ServedService],
    /// meshConfig `rootNamespace`.
    pub root_namespace: &'a str,
}

/// `WorkloadPolicyMatcher.ShouldAttachPolicy` (pilot/pkg/model/policyattachment.go, 1.29.6) for a
/// policy (WasmPlugin or EnvoyFilter) in `policy_namespace` with this selector and these targets, and
/// the namespaces istiod looks policies up in (the proxy's, the root namespace, a waypoint's services').
pub fn should_attach(
    policy_namespace: &str,
    selector: Option<&serde_json::Map<String, Value>>,
    refs: &[&Value],
    proxy: &Proxy,
) -> bool {
    let looked_in = policy_namespace == proxy.namespace
        || policy_namespace == proxy.root_namespace
        || proxy.services.iter().any(|s| s.namespace == policy_namespace);
    if !looked_in {
        return false;
    }
    let selected = || match selector {
        None => true,
        Some(want) => want.iter().all(|(k, v)| proxy.labels.get(k).map(String::as_str) == v.as_str()),
    };
    let Some(gateway_name) = proxy.labels.get(GATEWAY_NAME_LABEL) else {
        return refs.is_empty() && selected();
    };
    if refs.is_empty() {
        return !proxy.waypoint && selected();
    }
    refs.iter().any(|r| {
        let name = r["name"].as_str().unwrap_or_default();
        let served = |kind: &str| {
            proxy.services.iter().any(|s| s.kind == kind && s.name == name && s.namespace == policy_namespace)
        };
        if proxy.waypoint && group_kind(r, "core", "Service") && served("Service") {
            return true;
        }
        if proxy.waypoint && group_kind(r, "networking.istio.io", "ServiceEntry") && served("ServiceEntry") {
            return true;
        }
        if policy_namespace == proxy.root_namespace
            && proxy.waypoint
            && group_kind(r, "gateway.networking.k8s.io", "GatewayClass")
            && name == crate::deploy::istio_api::WAYPOINT_CLASS
        {
            return true;
        }
        let other_namespace = r["namespace"].as_str().is_some_and(|n| !n.is_empty() && n != proxy.namespace);
        policy_namespace == proxy.namespace
            && !other_namespace
            && group_kind(r, "gateway.networking.k8s.io", "Gateway")
            && name == gateway_name
    })
}

/// `matchesGroupKind`: the target's group (empty = `core`) and kind.
fn group_kind(r: &Value, group: &str, kind: &str) -> bool {
    let g = match r["group"].as_str().unwrap_or("") {
        "" => "core",
        g => g,
    };
    g == group && r["kind"] == kind
}

/// The kind of listener a plugin is matched against (`istionetworking.ListenerClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerClass {
    SidecarInbound,
    SidecarOutbound,
    Gateway,
}

impl ListenerClass {
    /// `workloadModeForListenerClass`: inbound is SERVER; outbound and gateways are CLIENT.
    pub fn mode(self) -> &'static str {
        match self {
            ListenerClass::SidecarInbound => "SERVER",
            _ => "CLIENT",
        }
    }
}

/// The phases in the order `buildHTTPConnectionManager` appends them (`PopAppendHTTP` calls).
pub const PHASES: [&str; 4] = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"];

impl WasmPlugin {
    /// From one parsed YAML document; `None` when it is not a WasmPlugin.
    pub fn from_doc(doc: &Value, file: &str) -> Option<Self> {
        if doc["kind"] != "WasmPlugin" {
            return None;
        }
        Some(Self {
            namespace: doc["metadata"]["namespace"].as_str().unwrap_or("default").to_string(),
            name: doc["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            file: file.to_string(),
            spec: doc["spec"].clone(),
            resource_version: 1,
            created: doc["metadata"]["creationTimestamp"].as_str().map(str::to_string),
        })
    }

    /// `extensions.istio.io/wasmplugin/<namespace>.<name>`: the ECDS resource and HTTP filter name.
    pub fn resource_name(&self) -> String {
        format!("{RESOURCE_PREFIX}{}.{}", self.namespace, self.name)
    }

    fn str(&self, field: &str) -> &str {
        self.spec[field].as_str().unwrap_or("")
    }

    pub fn phase(&self) -> &str {
        match self.str("phase") {
            "" => "UNSPECIFIED_PHASE",
            p => p,
        }
    }

    /// `priority` (absent sorts as the lowest: `math.MinInt32`).
    pub fn priority(&self) -> i64 {
        self.spec["priority"].as_i64().unwrap_or(i64::from(i32::MIN))
    }

    /// `matchTrafficSelectors`: no `match` matches every listener; else some entry whose mode
    /// (`CLIENT_AND_SERVER`/`UNDEFINED` match both) and ports (none = all) fit.
    pub fn matches_listener(&self, class: ListenerClass, port: u16) -> bool {
        let Some(selectors) = self.spec["match"].as_array().filter(|m| !m.is_empty()) else { return true };
        selectors.iter().any(|m| {
            let mode = m["mode"].as_str().unwrap_or("UNDEFINED");
            let mode_ok = mode == "CLIENT_AND_SERVER" || mode == "UNDEFINED" || mode == class.mode();
            let ports = m["ports"].as_array().cloned().unwrap_or_default();
            // matchPorts: a selector's number 0 never matches, so a waypoint (port 0) never matches `ports`.
            let port_ok = ports.is_empty()
                || ports.iter().any(|p| p["number"].as_u64().is_some_and(|n| n != 0 && n == u64::from(port)));
            mode_ok && port_ok
        })
    }

    /// The policy targets: `targetRefs`, else the singular `targetRef` (`GetTargetRefs` in
    /// pilot/pkg/model/policyattachment.go).
    pub fn target_refs(&self) -> Vec<&Value> {
        match self.spec["targetRefs"].as_array().filter(|r| !r.is_empty()) {
            Some(refs) => refs.iter().collect(),
            None => self.spec.get("targetRef").filter(|r| r.is_object()).into_iter().collect(),
        }
    }

    /// Whether istiod attaches the plugin to `proxy`: the plugin's namespace is one istiod looks in
    /// (`WasmPluginsByListenerInfo`: the proxy's, the root namespace, the waypoint's services'), then
    /// `WorkloadPolicyMatcher.ShouldAttachPolicy` (pilot/pkg/model/policyattachment.go, 1.29.6):
    /// - a proxy that is not a Gateway API gateway uses `selector` and ignores any plugin with targets;
    /// - a gateway without targets in the plugin uses `selector` (ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY,
    ///   default on), a waypoint never;
    /// - targets: a Service (core group) or ServiceEntry (`networking.istio.io`) the waypoint serves, in
    ///   the plugin's namespace; GatewayClass `istio-waypoint` from the root namespace, on a waypoint;
    ///   a Gateway (`gateway.networking.k8s.io`) named as the proxy's `gateway-name` label, from the
    ///   proxy's namespace, with no other namespace named in the target.
    pub fn selects(&self, proxy: &Proxy) -> bool {
        let selector = self.spec["selector"]["matchLabels"].as_object();
        should_attach(&self.namespace, selector, &self.target_refs(), proxy)
    }

    /// `metadata.creationTimestamp` (RFC 3339, so it sorts as text; absent sorts first, as Kubernetes
    /// objects applied together share one second and then sort by name).
    fn created(&self) -> &str {
        self.created.as_deref().unwrap_or("")
    }

    /// The Wasm extension config istiod sends for this plugin (`InsertedExtensionConfigurations` →
    /// `BuildHTTPWasmFilter` → `buildPluginConfig`), as a `TypedExtensionConfig`.
    pub fn extension_config(&self) -> Value {
        let url = self.str("url");
        let url = if url.contains("://") { url.to_string() } else { format!("oci://{url}") };
        let code = match url.strip_prefix("file://") {
            Some(path) => json!({ "local": { "filename": path } }),
            None => json!({ "remote": {
                "http_uri": { "uri": url, "timeout": "30s", "cluster": "_" },
                "sha256": self.str("sha256"),
            } }),
        };
        let mut env = serde_json::Map::new();
        if !self.str("imagePullSecret").is_empty() {
            // istiod swaps the Secret's name for its content (`updatePluginConfig`); the lab does that.
            env.insert(PULL_SECRET_ENV.into(), json!(self.str("imagePullSecret")));
        }
        if !self.str("imagePullPolicy").is_empty() && self.str("imagePullPolicy") != "UNSPECIFIED_POLICY" {
            env.insert(PULL_POLICY_ENV.into(), json!(self.str("imagePullPolicy")));
        }
        env.insert(RESOURCE_VERSION_ENV.into(), json!(self.resource_version.to_string()));
        let mut host_keys = Vec::new();
        for e in self.spec["vmConfig"]["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap_or_default();
            match e["valueFrom"].as_str().unwrap_or("INLINE") {
                "HOST" => host_keys.push(json!(name)),
                _ => {
                    env.insert(name.into(), e["value"].clone());
                }
            }
        }
        let mut env_vars = json!({ "key_values": env });
        if !host_keys.is_empty() {
            env_vars["host_env_keys"] = json!(host_keys);
        }
        let mut config = json!({
            "name": format!("{}.{}", self.namespace, self.name),
            "root_id": self.str("pluginName"),
            "vm_config": { "runtime": "envoy.wasm.runtime.v8", "code": code, "environment_variables": env_vars },
        });
        // buildPluginConfig: the pluginConfig as a StringValue of its JSON, or, when it is absent or
        // empty, an empty Any (no type URL): the filter then gets an empty configuration.
        config["configuration"] = if self.spec["pluginConfig"].as_object().is_some_and(|o| !o.is_empty()) {
            json!({
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": plugin_config_json(&self.spec["pluginConfig"]),
            })
        } else {
            json!({})
        };
        // FAIL_CLOSE is the enum's zero value: an absent failStrategy is FAIL_CLOSE, so istiod always
        // sends a failure policy.
        config["failure_policy"] = json!(match self.str("failStrategy") {
            "FAIL_OPEN" => "FAIL_OPEN",
            "FAIL_RELOAD" => "FAIL_RELOAD",
            _ => "FAIL_CLOSED",
        });
        json!({ "name": self.resource_name(), "typed_config": { "@type": WASM_TYPE_URL, "config": config } })
    }
}

/// The plugins of one listener in the order its HTTP filters run (`WasmPluginsByListenerInfo` then
/// `PopAppendHTTP` per phase, pilot/pkg/model/push_context.go): namespaces in istiod's lookup order (the
/// proxy's, the root namespace, the waypoint's services'), within one by creation time then name
/// (`sortConfigByCreationTime`, pilot/pkg/model/config.go); then per phase a stable sort by descending
/// priority. A waypoint's plugins are matched as inbound traffic with port 0 (listener_waypoint.go).
pub fn listener_plugins<'a>(
    plugins: &'a [WasmPlugin],
    proxy: &Proxy,
    class: ListenerClass,
    port: u16,
) -> Vec<&'a WasmPlugin> {
    let (class, port) = if proxy.waypoint { (ListenerClass::SidecarInbound, 0) } else { (class, port) };
    let mut namespaces: Vec<&str> = vec![proxy.namespace, proxy.root_namespace];
    namespaces.extend(proxy.services.iter().map(|s| s.namespace.as_str()));
    let mut seen = std::collections::BTreeSet::new();
    namespaces.retain(|n| seen.insert(*n));
    let mut selected: Vec<&WasmPlugin> = Vec::new();
    for ns in namespaces {
        let mut in_ns: Vec<&WasmPlugin> = plugins
            .iter()
            .filter(|p| p.namespace == ns)
            .filter(|p| p.spec["type"].as_str().unwrap_or("HTTP") != "NETWORK")
            .filter(|p| p.selects(proxy) && p.matches_listener(class, port))
            .collect();
        in_ns.sort_by(|a, b| a.created().cmp(b.created()).then(a.name.cmp(&b.name)));
        selected.extend(in_ns);
    }
    let mut ordered = Vec::new();
    for phase in PHASES {
        let mut in_phase: Vec<&WasmPlugin> = selected.iter().copied().filter(|p| p.phase() == phase).collect();
        in_phase.sort_by_key(|p| std::cmp::Reverse(p.priority()));
        ordered.extend(in_phase);
    }
    ordered
}

/// The HTTP filter istiod puts in the listener for a plugin (`toEnvoyHTTPFilter`), with the config
/// source given (istiod: ADS; the lab: a file Envoy watches). `initial_fetch_timeout: 0s`: the listener
/// waits for the config ("they might be critical for security").
pub fn http_filter(p: &WasmPlugin, config_source: Value) -> Value {
    let mut source = config_source;
    source["initial_fetch_timeout"] = json!("0s");
    source["resource_api_version"] = json!("V3");
    json!({
        "name": p.resource_name(),
        "config_discovery": { "config_source": source, "type_urls": [WASM_TYPE_URL, RBAC_TYPE_URL] }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plugin(name: &str, spec: Value) -> WasmPlugin {
        WasmPlugin::from_doc(
            &json!({"kind": "WasmPlugin", "metadata": {"name": name, "namespace": "ns"}, "spec": spec}),
            "t",
        )
        .unwrap()
    }

    /// WasmPluginsByListenerInfo + PopAppendHTTP: phase order, then descending priority (absent =
    /// lowest), ties by name; only plugins whose selector, mode and ports fit the listener.
    #[test]
    fn listener_plugins_are_selected_and_ordered_as_istiod_does() {
        let plugins = vec![
            plugin("stats-low", json!({"phase": "STATS", "priority": 1})),
            plugin("unspecified", json!({})),
            plugin("authz", json!({"phase": "AUTHZ", "priority": 5})),
            plugin("stats-high", json!({"phase": "STATS", "priority": 10})),
            plugin("authn-none", json!({"phase": "AUTHN"})),
            plugin("authn-high", json!({"phase": "AUTHN", "priority": 100})),
            plugin("client-only", json!({"phase": "AUTHN", "match": [{"mode": "CLIENT"}]})),
            plugin("port-9090", json!({"phase": "AUTHN", "match": [{"mode": "SERVER", "ports": [{"number": 9090}]}]})),
            plugin("other-app", json!({"phase": "AUTHN", "selector": {"matchLabels": {"app": "other"}}})),
            plugin("this-app", json!({"phase": "AUTHZ", "selector": {"matchLabels": {"app": "a"}}})),
        ];
        let labels = [("app".to_string(), "a".to_string())].into_iter().collect();
        let proxy =
            Proxy { namespace: "ns", labels: &labels, waypoint: false, services: &[], root_namespace: "istio-system" };
        let names = |class, port| -> Vec<String> {
            listener_plugins(&plugins, &proxy, class, port).iter().map(|p| p.name.clone()).collect()
        };
        assert_eq!(
            names(ListenerClass::SidecarInbound, 8080),
            ["authn-high", "authn-none", "authz", "this-app", "stats-high", "stats-low", "unspecified"]
        );
        assert!(names(ListenerClass::SidecarInbound, 9090).contains(&"port-9090".to_string()));
        let outbound = names(ListenerClass::SidecarOutbound, 8080);
        assert!(outbound.contains(&"client-only".to_string()) && !outbound.contains(&"port-9090".to_string()));
        assert!(names(ListenerClass::Gateway, 8080).contains(&"client-only".to_string()), "gateways are CLIENT");
        let elsewhere = Proxy { namespace: "elsewhere", ..proxy };
        assert!(listener_plugins(&plugins, &elsewhere, ListenerClass::SidecarInbound, 8080).is_empty());
    }

    fn in_ns(ns: &str, name: &str, created: Option<&str>, spec: Value) -> WasmPlugin {
        let mut meta = json!({"name": name, "namespace": ns});
        if let Some(c) = created {
            meta["creationTimestamp"] = json!(c);
        }
        WasmPlugin::from_doc(&json!({"kind": "WasmPlugin", "metadata": meta, "spec": spec}), "t").unwrap()
    }

    /// Equal priorities: the proxy's namespace before the root namespace (push_context.go
    /// `lookupInNamespaces`), then creation time, then name (config.go `sortConfigByCreationTime`);
    /// the root namespace is the configured one, not always istio-system.
    #[test]
    fn equal_priorities_keep_istiods_namespace_creation_and_name_order() {
        let plugins = vec![
            in_ns("mesh-root", "a-root", None, json!({"priority": 1})),
            in_ns("ns", "z-old", Some("2026-01-01T00:00:00Z"), json!({"priority": 1})),
            in_ns("ns", "b-new", Some("2026-06-01T00:00:00Z"), json!({"priority": 1})),
            in_ns("istio-system", "not-root-here", None, json!({"priority": 1})),
            in_ns("ns", "high", Some("2026-09-01T00:00:00Z"), json!({"priority": 2})),
        ];
        let labels = BTreeMap::new();
        let proxy =
            Proxy { namespace: "ns", labels: &labels, waypoint: false, services: &[], root_namespace: "mesh-root" };
        let names: Vec<&str> = listener_plugins(&plugins, &proxy, ListenerClass::SidecarInbound, 80)
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["high", "z-old", "b-new", "a-root"]);
    }

    /// ShouldAttachPolicy (policyattachment.go): GatewayClass `istio-waypoint` only from the root
    /// namespace and only on waypoints, which match plugins as SERVER with port 0; Service and
    /// ServiceEntry targets only on the waypoint that serves them; group and kind checked; the singular
    /// `targetRef` read; a Gateway target never attaches from another namespace or to a sidecar.
    #[test]
    fn targets_attach_where_istiod_attaches_them() {
        let class_ref = json!({"group": "gateway.networking.k8s.io", "kind": "GatewayClass", "name": "istio-waypoint"});
        let plugins = vec![
            in_ns(
                "istio-system",
                "class-server",
                None,
                json!({"targetRefs": [class_ref], "match": [{"mode": "SERVER"}]}),
            ),
            in_ns(
                "istio-system",
                "class-client",
                None,
                json!({"targetRefs": [class_ref], "match": [{"mode": "CLIENT"}]}),
            ),
            in_ns(
                "istio-system",
                "class-ported",
                None,
                json!({"targetRefs": [class_ref], "match": [{"mode": "SERVER", "ports": [{"number": 8080}]}]}),
            ),
            in_ns("ns", "class-from-ns", None, json!({"targetRefs": [class_ref]})),
            in_ns(
                "istio-system",
                "other-class",
                None,
                json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "GatewayClass", "name": "istio"}]}),
            ),
            in_ns("ns", "svc", None, json!({"targetRef": {"kind": "Service", "name": "reviews"}})),
            in_ns(
                "ns",
                "svc-wrong-group",
                None,
                json!({"targetRefs": [{"group": "networking.istio.io", "kind": "Service", "name": "reviews"}]}),
            ),
            in_ns("ns", "svc-other", None, json!({"targetRefs": [{"kind": "Service", "name": "ratings"}]})),
            in_ns(
                "ns",
                "se",
                None,
                json!({"targetRefs": [{"group": "networking.istio.io", "kind": "ServiceEntry", "name": "ext"}]}),
            ),
            in_ns(
                "ns",
                "gw",
                None,
                json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}]}),
            ),
            in_ns(
                "ns",
                "gw-ns",
                None,
                json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint", "namespace": "other"}]}),
            ),
            in_ns("ns", "selector", None, json!({"selector": {"matchLabels": {"app": "a"}}})),
        ];
        let labels: BTreeMap<String, String> =
            [(GATEWAY_NAME_LABEL.to_string(), "waypoint".to_string()), ("app".into(), "a".into())]
                .into_iter()
                .collect();
        let services = [
            ServedService { name: "reviews".into(), namespace: "ns".into(), kind: "Service".into() },
            ServedService { name: "ext".into(), namespace: "ns".into(), kind: "ServiceEntry".into() },
        ];
        let waypoint = Proxy {
            namespace: "ns",
            labels: &labels,
            waypoint: true,
            services: &services,
            root_namespace: "istio-system",
        };
        let names = |proxy: &Proxy, class| -> Vec<String> {
            let mut n: Vec<String> =
                listener_plugins(&plugins, proxy, class, 8080).iter().map(|p| p.name.clone()).collect();
            n.sort();
            n
        };
        assert_eq!(names(&waypoint, ListenerClass::Gateway), ["class-server", "gw", "se", "svc"]);
        let gateway = Proxy { waypoint: false, services: &[], ..waypoint };
        assert_eq!(
            names(&gateway, ListenerClass::Gateway),
            ["gw", "selector"],
            "a gateway: its Gateway target, or a selector"
        );
        let sidecar_labels: BTreeMap<String, String> = [("app".to_string(), "a".to_string())].into_iter().collect();
        let sidecar = Proxy { labels: &sidecar_labels, ..gateway };
        assert_eq!(names(&sidecar, ListenerClass::SidecarInbound), ["selector"], "targets never attach to sidecars");
    }

    #[test]
    fn the_extension_config_is_built_as_istiod_builds_it() {
        let p = plugin(
            "p",
            json!({"url": "ghcr.io/x/y:1", "pluginName": "fault", "failStrategy": "FAIL_RELOAD", "sha256": "ab",
                   "imagePullPolicy": "Always", "pluginConfig": {"b": 1, "a": 2},
                   "vmConfig": {"env": [{"name": "K", "value": "v"}, {"name": "H", "valueFrom": "HOST"}]}}),
        );
        let ec = p.extension_config();
        assert_eq!(ec["name"], "extensions.istio.io/wasmplugin/ns.p");
        let c = &ec["typed_config"]["config"];
        assert_eq!((c["name"].as_str(), c["root_id"].as_str()), (Some("ns.p"), Some("fault")));
        assert_eq!(c["failure_policy"], "FAIL_RELOAD");
        let bare = plugin("bare", json!({"url": "oci://x/y:1", "pluginName": "fault", "pluginConfig": {}}));
        let b = &bare.extension_config()["typed_config"]["config"];
        assert_eq!(b["failure_policy"], "FAIL_CLOSED", "FAIL_CLOSE is the enum's zero value");
        assert_eq!(b["configuration"], json!({}), "an empty pluginConfig is an empty Any");
        assert_eq!(c["configuration"]["value"], r#"{"a":2,"b":1}"#);
        let remote = &c["vm_config"]["code"]["remote"];
        assert_eq!(remote["http_uri"]["uri"], "oci://ghcr.io/x/y:1", "no scheme means oci");
        assert_eq!(remote["sha256"], "ab");
        let env = &c["vm_config"]["environment_variables"];
        assert_eq!(env["key_values"]["ISTIO_META_WASM_IMAGE_PULL_POLICY"], "Always");
        assert_eq!(env["key_values"]["ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION"], "1");
        assert_eq!(env["key_values"]["K"], "v");
        assert_eq!(env["host_env_keys"], json!(["H"]));
    }
}
