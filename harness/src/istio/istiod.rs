//! istiod's side: WasmPlugins as istiod reads, selects, orders and renders them for one proxy
//! (istio/istio 1.29.6: `pilot/pkg/model/extensions.go`, `pilot/pkg/model/push_context.go`
//! `WasmPluginsByListenerInfo`, `pilot/pkg/networking/core/listener_builder.go`,
//! `pilot/pkg/networking/core/extension/wasmplugin.go`, `pilot/pkg/util/protomarshal`).

use super::{PULL_POLICY_ENV, PULL_SECRET_ENV, RBAC_TYPE_URL, RESOURCE_PREFIX, RESOURCE_VERSION_ENV, WASM_TYPE_URL};
use serde_json::{json, Value};
use std::fmt::Write as _;

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
            let port_ok = ports.is_empty() || ports.iter().any(|p| p["number"].as_u64() == Some(u64::from(port)));
            mode_ok && port_ok
        })
    }

    /// Whether a proxy with these pod labels in `namespace` gets the plugin: same namespace (or the
    /// root namespace `istio-system`), and `selector.matchLabels` a subset of the labels (no selector:
    /// every workload). Gateway `targetRefs` attach to a gateway proxy named after the Gateway
    /// (label `gateway.networking.k8s.io/gateway-name`), as Istio labels the Deployments it creates.
    pub fn selects(&self, namespace: &str, labels: &std::collections::BTreeMap<String, String>) -> bool {
        if self.namespace != namespace && self.namespace != "istio-system" {
            return false;
        }
        if let Some(refs) = self.spec["targetRefs"].as_array() {
            return refs.iter().any(|r| {
                r["kind"] == "Gateway"
                    && labels.get("gateway.networking.k8s.io/gateway-name").map(String::as_str) == r["name"].as_str()
            });
        }
        match self.spec["selector"]["matchLabels"].as_object() {
            None => true,
            Some(want) => want.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()),
        }
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
        if self.spec["pluginConfig"].as_object().is_some_and(|o| !o.is_empty()) {
            config["configuration"] = json!({
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": plugin_config_json(&self.spec["pluginConfig"]),
            });
        }
        let policy = match self.str("failStrategy") {
            "FAIL_OPEN" => Some("FAIL_OPEN"),
            "FAIL_CLOSE" => Some("FAIL_CLOSED"),
            "FAIL_RELOAD" => Some("FAIL_RELOAD"),
            _ => None,
        };
        if let Some(p) = policy {
            config["failure_policy"] = json!(p);
        }
        json!({ "name": self.resource_name(), "typed_config": { "@type": WASM_TYPE_URL, "config": config } })
    }
}

/// The plugins of one listener in the order its HTTP filters run (`WasmPluginsByListenerInfo` then
/// `PopAppendHTTP` per phase): by phase, then by descending priority, ties in istiod's listing order
/// (creation time, then name; here: name).
pub fn listener_plugins<'a>(
    plugins: &'a [WasmPlugin],
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
    class: ListenerClass,
    port: u16,
) -> Vec<&'a WasmPlugin> {
    let mut selected: Vec<&WasmPlugin> = plugins
        .iter()
        .filter(|p| p.spec["type"].as_str().unwrap_or("HTTP") != "NETWORK")
        .filter(|p| p.selects(namespace, labels) && p.matches_listener(class, port))
        .collect();
    selected.sort_by(|a, b| a.name.cmp(&b.name).then(a.namespace.cmp(&b.namespace)));
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

/// A WasmPlugin's `pluginConfig` as the filter receives it: istiod's `protomarshal.ToJSON` of the
/// `google.protobuf.Struct`, i.e. golang/protobuf `jsonpb` without indent: object keys sorted, every
/// number a float64 written as Go's `encoding/json` writes one (shortest digits, fixed notation for
/// 1e-6 ≤ |x| < 1e21, else `1e-7`/`1e+21`), strings as `encoding/json` escapes them (`<`, `>`, `&`,
/// U+2028 and U+2029 as `\u` escapes). An integer above 2^53 therefore reaches the filter rounded.
pub fn plugin_config_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_float(out, n.as_f64().unwrap_or(0.0)),
        Value::String(s) => write_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, x);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                if let Some(x) = o.get(k) {
                    write_value(out, x);
                }
            }
            out.push('}');
        }
    }
}

/// Go `encoding/json` `floatEncoder` for float64.
fn write_float(out: &mut String, f: f64) {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = format!("{f:e}");
        // Rust writes `1e21`/`1e-7`; Go writes `1e+21`/`1e-07`, then trims to `1e-7`.
        match e.split_once('e') {
            Some((m, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{m}e+{exp}");
            }
            _ => out.push_str(&e),
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

/// Go `encoding/json` string encoding with HTML escaping (its default).
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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
        let names = |class, port| -> Vec<String> {
            listener_plugins(&plugins, "ns", &labels, class, port).iter().map(|p| p.name.clone()).collect()
        };
        assert_eq!(
            names(ListenerClass::SidecarInbound, 8080),
            ["authn-high", "authn-none", "authz", "this-app", "stats-high", "stats-low", "unspecified"]
        );
        assert!(names(ListenerClass::SidecarInbound, 9090).contains(&"port-9090".to_string()));
        let outbound = names(ListenerClass::SidecarOutbound, 8080);
        assert!(outbound.contains(&"client-only".to_string()) && !outbound.contains(&"port-9090".to_string()));
        assert!(names(ListenerClass::Gateway, 8080).contains(&"client-only".to_string()), "gateways are CLIENT");
        assert!(listener_plugins(&plugins, "elsewhere", &labels, ListenerClass::SidecarInbound, 8080).is_empty());
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

    #[test]
    fn plugin_config_is_encoded_as_istiod_encodes_it() {
        let v =
            json!({"b": [1, 2.5, 1e21, 0.0000001, -0.0], "a": {"z": "<&>", "y": 9007199254740993_u64}, "c": "\u{1}\n"});
        assert_eq!(
            plugin_config_json(&v),
            r#"{"a":{"y":9007199254740992,"z":"\u003c\u0026\u003e"},"b":[1,2.5,1e+21,1e-7,-0],"c":"\u0001\n"}"#
        );
    }
}
