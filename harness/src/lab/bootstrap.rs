//! Renders an Envoy bootstrap (JSON, which Envoy reads as YAML) from a chain of Wasm filters, routes
//! and upstream clusters. The same rendering serves `meshplug up`, the end-to-end tests and the
//! committed example configs.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One Wasm filter in the chain.
#[derive(Debug, Clone)]
pub struct WasmFilter {
    /// The filter's name; also its `root_id` (as Istio sets `pluginName`).
    pub name: String,
    /// The plugin instance's name (Envoy's Wasm config `name` and the HTTP filter's name): unique in
    /// the chain, as Istio's `<namespace>.<name>` is. The filters key their shared data by it.
    pub instance: String,
    pub module: PathBuf,
    /// The pluginConfig, passed to the filter as a JSON string.
    pub plugin_config: Value,
    /// Envoy's `failure_policy`: `FAIL_CLOSED` (default), `FAIL_OPEN` or `FAIL_RELOAD`.
    pub failure_policy: String,
}

impl WasmFilter {
    pub fn new(name: &str, module: PathBuf, plugin_config: Value) -> Self {
        Self { name: name.into(), instance: name.into(), module, plugin_config, failure_policy: "FAIL_CLOSED".into() }
    }
}

/// An upstream cluster on loopback.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub port: u16,
    pub http2: bool,
}

/// A route: path prefix plus exact header values, to a cluster.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub prefix: String,
    pub headers: BTreeMap<String, String>,
    pub cluster: String,
}

/// Everything the rendered Envoy needs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Listener port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Admin port on 127.0.0.1 (0 = any free port).
    pub admin_port: u16,
    pub filters: Vec<WasmFilter>,
    pub clusters: Vec<Cluster>,
    /// Checked in order; when empty, everything goes to the first cluster.
    pub routes: Vec<RouteSpec>,
    /// Native Envoy HTTP filters (full filter entries), placed before the Wasm filters.
    pub native_filters: Vec<Value>,
    /// Answer every request with this status from the route itself (`direct_response`), with no
    /// upstream: used by benchmarks to measure only the filters.
    pub direct_response: Option<u16>,
    /// Envoy route entries used as they are (overrides `routes` and `direct_response`).
    pub raw_routes: Option<Vec<Value>>,
}

fn socket(port: u16) -> Value {
    json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } })
}

/// The `envoy.filters.http.wasm` filter entry for one Wasm filter.
pub fn wasm_http_filter(f: &WasmFilter) -> Value {
    json!({
        "name": f.instance,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": f.instance,
                "root_id": f.name,
                "vm_config": {
                    "vm_id": "",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": f.module.display().to_string() } }
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": f.plugin_config.to_string()
                },
                "failure_policy": f.failure_policy
            }
        }
    })
}

impl Setup {
    /// The bootstrap as a JSON value.
    pub fn render(&self) -> Value {
        let mut http_filters: Vec<Value> = self.native_filters.clone();
        http_filters.extend(self.filters.iter().map(wasm_http_filter));
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
        }));
        let routes = self.routes_json();
        let clusters = self.clusters_json();
        json!({
            "admin": { "address": socket(self.admin_port) },
            "static_resources": {
                "listeners": [{
                    "name": "meshplug",
                    "address": socket(self.port),
                    "filter_chains": [{
                        "filters": [{
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                "stat_prefix": "ingress_http",
                                "codec_type": "AUTO",
                                // An edge proxy: the client address is the TCP peer (appended to
                                // x-forwarded-for), never taken from a header the client sent.
                                "use_remote_address": true,
                                // Paths as an Istio sidecar normalizes them (meshConfig pathNormalization
                                // BASE: RFC 3986 and backslashes; escaped slashes kept), plus merged
                                // slashes; the filters match on the same normalized path themselves.
                                "normalize_path": true,
                                "merge_slashes": true,
                                "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                                // HTTP/1 trailers reach the filters (as HTTP/2 trailers always do).
                                "http_protocol_options": { "enable_trailers": true },
                                "route_config": {
                                    "name": "local",
                                    "virtual_hosts": [{ "name": "all", "domains": ["*"], "routes": routes }]
                                },
                                "http_filters": http_filters
                            }
                        }]
                    }]
                }],
                "clusters": clusters
            }
        })
    }

    /// The virtual host's routes: raw ones if given, else a direct response, else one route per
    /// [`RouteSpec`] (or everything to the first cluster).
    fn routes_json(&self) -> Vec<Value> {
        if let Some(raw) = &self.raw_routes {
            raw.clone()
        } else if let Some(status) = self.direct_response {
            vec![
                json!({ "match": { "prefix": "/" }, "direct_response": { "status": status, "body": { "inline_string": "ok\n" } } }),
            ]
        } else if self.routes.is_empty() {
            let cluster = self.clusters.first().map(|c| c.name.clone()).unwrap_or_default();
            vec![json!({ "match": { "prefix": "/" }, "route": { "cluster": cluster, "timeout": "60s" } })]
        } else {
            self.routes
                .iter()
                .map(|r| {
                    let headers: Vec<Value> =
                        r.headers.iter().map(|(k, v)| json!({ "name": k, "string_match": { "exact": v } })).collect();
                    let mut m = json!({ "prefix": r.prefix });
                    if !headers.is_empty() {
                        m["headers"] = Value::Array(headers);
                    }
                    json!({ "match": m, "route": { "cluster": r.cluster, "timeout": "60s" } })
                })
                .collect()
        }
    }

    /// The static clusters, each one loopback endpoint (HTTP/2 when asked).
    fn clusters_json(&self) -> Vec<Value> {
        self.clusters
            .iter()
            .map(|c| {
                let mut cluster = json!({
                    "name": c.name,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": c.name,
                        "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket(c.port) } }] }]
                    }
                });
                if c.http2 {
                    cluster["typed_extension_protocol_options"] = json!({
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": { "http2_protocol_options": {} }
                        }
                    });
                }
                cluster
            })
            .collect()
    }
}
