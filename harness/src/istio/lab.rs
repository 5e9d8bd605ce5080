//! `meshplug up --istio <dir>`: a real Envoy fed a directory of rendered WasmPlugins the way istiod and
//! istio-agent feed a sidecar, on one machine without Kubernetes.
//!
//! - The listener is shaped like a sidecar's (`use_remote_address: false`; path normalization as
//!   Istio's default `BASE`: `normalize_path`, escaped slashes kept, slashes not merged), with one HTTP
//!   filter per selected plugin named `extensions.istio.io/wasmplugin/<namespace>.<name>`, in istiod's
//!   phase and priority order, each with `config_discovery` (type URLs [Wasm, RBAC],
//!   `initial_fetch_timeout: 0s`).
//! - Envoy reads the listener (LDS) and each plugin's extension config (ECDS) from files in watched
//!   directories; [`IstioLab::sync`] re-reads the manifests and rewrites only what changed, so an edit
//!   reaches Envoy without a restart, through the same ECDS update a mesh would send.
//! - Each extension config goes through [`super::agent::convert`] first: modules are fetched from the
//!   manifest's `url` by istio-agent's rules and cache, and a failure sends the agent's RBAC stand-in.
//! - Upstreams: an echo server as the application (inbound), or one echo server per canary variant,
//!   routed by the canary header (outbound / gateway). Each `remoteJwks` cluster named
//!   `outbound|<port>||<host>` gets a local JWKS server with the demo key (`meshplug demo-token`), as the
//!   ServiceEntry + DestinationRule `render` adds would provide in a mesh. A rate-limit plugin with
//!   global rules gets meshplug-rls on a local Redis under its `rateLimitService.cluster`, configured
//!   from the rules' `global.limit` as `render`'s ConfigMap is.

use super::agent::{self, Cache, Outcome};
use super::envoyfilter::{self, ChainFilter};
use super::istiod::{self, ListenerClass, WasmPlugin};
use crate::deploy::filters::workspace_root;
use crate::lab::echo::EchoServer;
use crate::lab::envoy::{find_envoy, EnvoyBinary};
use crate::lab::run::{EnvoyOptions, RunningEnvoy};
use crate::lab::stub::StubServer;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to run.
#[derive(Debug, Clone)]
pub struct IstioOptions {
    /// Rendered manifests (searched recursively for `.yaml`/`.yml`).
    pub dir: PathBuf,
    /// The proxy's namespace (default: the first WasmPlugin's).
    pub namespace: Option<String>,
    /// The pod's labels (default: every label the plugins select on, and a gateway name label for
    /// Gateway targets, so every plugin in the directory applies).
    pub labels: Option<BTreeMap<String, String>>,
    /// The listener (default: inbound, unless every plugin's `match` is CLIENT-only: then outbound,
    /// or gateway when they target a Gateway).
    pub class: Option<ListenerClass>,
    /// The container port the listener stands for, matched against `match[].ports` (default: the
    /// first port a plugin lists, else 8080).
    pub target_port: Option<u16>,
    /// Listener and admin ports on 127.0.0.1 (0 = any free port).
    pub port: u16,
    pub admin_port: u16,
    pub concurrency: u32,
    pub envoy: Option<PathBuf>,
    /// meshConfig `rootNamespace` (default `istio-system`).
    pub root_namespace: Option<String>,
    /// istio-agent's `WASM_INSECURE_REGISTRIES`: hosts whose TLS certificate is not verified (`*`: all).
    pub insecure_registries: Vec<String>,
    /// Serve the images from a local registry holding this machine's builds: every `oci://` URL's
    /// host becomes the local registry, where the build of the plugin's module (`pluginName`) is pushed
    /// under the URL's path and tag first (as `meshplug push` packages it). A pinned `sha256` still
    /// applies: a digest that is not this build's is refused, as the agent would.
    pub mirror: bool,
}

impl IstioOptions {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            namespace: None,
            labels: None,
            class: None,
            target_port: None,
            port: 0,
            admin_port: 0,
            concurrency: 2,
            envoy: None,
            root_namespace: None,
            insecure_registries: Vec::new(),
            mirror: false,
        }
    }
}

/// The manifests of a directory as istiod would see them: WasmPlugins, and pull Secrets by
/// `<namespace>/<name>` (their `.dockerconfigjson`).
pub struct Manifests {
    pub plugins: Vec<WasmPlugin>,
    /// EnvoyFilters (the `render --envoyfilter` form), applied to the chain as istiod applies them.
    pub envoy_filters: Vec<super::envoyfilter::EnvoyFilter>,
    pub secrets: BTreeMap<String, Vec<u8>>,
}

/// Reads every YAML file under `dir`.
pub fn read_manifests(dir: &Path) -> anyhow::Result<Manifests> {
    use base64::Engine as _;
    use serde::Deserialize;
    let files = crate::deploy::manifests::yaml_files(dir)?;
    let mut plugins = Vec::new();
    let mut envoy_filters = Vec::new();
    let mut secrets = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        for de in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc = Value::deserialize(de).map_err(|e| anyhow::anyhow!("{}: not YAML: {e}", f.display()))?;
            if let Some(p) = WasmPlugin::from_doc(&doc, &f.display().to_string()) {
                plugins.push(p);
            } else if let Some(e) = super::envoyfilter::EnvoyFilter::from_doc(&doc) {
                envoy_filters.push(e);
            } else if doc["kind"] == "Secret" && doc["type"] == "kubernetes.io/dockerconfigjson" {
                let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
                let name = doc["metadata"]["name"].as_str().unwrap_or_default();
                let data = doc["data"][".dockerconfigjson"].as_str().unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD.decode(data).unwrap_or_default();
                secrets.insert(format!("{ns}/{name}"), bytes);
            }
        }
    }
    Ok(Manifests { plugins, envoy_filters, secrets })
}

/// What one sync did (for `up --istio`'s output and the tests).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Plugins whose extension config was (re)sent, by resource name, with the agent's outcome.
    pub sent: Vec<(String, Outcome)>,
    /// The listener's filter list changed (LDS rewritten).
    pub listener_changed: bool,
}

/// A running Envoy fed as a sidecar is. Drops Envoy first, then the servers.
pub struct IstioLab {
    pub envoy: RunningEnvoy,
    pub binary: EnvoyBinary,
    pub upstreams: Vec<EchoServer>,
    pub jwks: Vec<(String, StubServer)>,
    /// For rate-limit plugins with global rules: meshplug-rls on a local Redis under the service's
    /// cluster name, with the configuration `render` generates from the rules.
    pub rate_limit_services: Vec<(String, meshplug_rls::Running, crate::lab::redis::RedisServer)>,
    pub feed: Feed,
    /// The local registry of `mirror`.
    pub registry: Option<crate::lab::registry::Registry>,
    /// What was sent before Envoy started.
    pub initial: SyncReport,
}

/// What istiod and the agent have sent to the proxy, and the files Envoy watches.
pub struct Feed {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// The proxy is an ambient waypoint serving `services`.
    pub waypoint: bool,
    pub services: Vec<istiod::ServedService>,
    pub root_namespace: String,
    pub class: ListenerClass,
    pub target_port: u16,
    opts: IstioOptions,
    state: PathBuf,
    cache: Cache,
    /// Per resource name: the spec last sent and its resource version.
    sent: BTreeMap<String, (Value, u64)>,
    /// The meshplug filters of the listener, in order.
    filters: Vec<String>,
    /// Every HTTP filter of the listener as istiod would build it, in order.
    chain: Vec<String>,
    route_config: Value,
    listener_version: u64,
    /// `host:port` of the mirror registry, and the references pushed to it.
    mirror: Option<String>,
    pushed: std::collections::BTreeSet<String>,
}

fn write_atomically(dir: &Path, file: &str, value: &Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
    // A rename into the watched directory is what Envoy's watch reacts to.
    std::fs::rename(&tmp, dir.join(file))?;
    Ok(())
}

fn path_source(dir: &Path, file: &str) -> Value {
    json!({ "path_config_source": {
        "path": dir.join(file).display().to_string(),
        "watched_directory": { "path": dir.display().to_string() }
    } })
}

/// The pluginConfigs a plugin carries for `filter`: its own, or the bundle chain's entries for it.
fn filter_configs<'a>(p: &'a WasmPlugin, filter: &str) -> Vec<&'a Value> {
    let config = &p.spec["pluginConfig"];
    if p.spec["pluginName"] == filter {
        return vec![config];
    }
    config["chain"].as_array().into_iter().flatten().filter(|e| e["filter"] == filter).map(|e| &e["config"]).collect()
}

/// Who the proxy is, as istiod sees it, unless the options say: its namespace and labels, whether it
/// is a waypoint and which services it serves, its listener class and container port — chosen so
/// that the plugins in the directory apply.
struct ProxyShape {
    namespace: String,
    labels: BTreeMap<String, String>,
    waypoint: bool,
    services: Vec<istiod::ServedService>,
    root_namespace: String,
    class: ListenerClass,
    target_port: u16,
}

impl ProxyShape {
    fn of(views: &[WasmPlugin], opts: &IstioOptions) -> Self {
        let root_namespace =
            opts.root_namespace.clone().unwrap_or_else(|| crate::deploy::istio_api::ROOT_NAMESPACE.to_string());
        // A waypoint proxy when the plugins target waypoints (Service, ServiceEntry, GatewayClass): it
        // serves the targeted services, in their plugins' namespaces.
        let mut services: Vec<istiod::ServedService> = Vec::new();
        let mut waypoint = false;
        for p in views {
            for r in p.target_refs() {
                let kind = r["kind"].as_str().unwrap_or_default();
                waypoint |= matches!(kind, "Service" | "ServiceEntry" | "GatewayClass");
                if matches!(kind, "Service" | "ServiceEntry") {
                    let s = istiod::ServedService {
                        name: r["name"].as_str().unwrap_or_default().to_string(),
                        namespace: p.namespace.clone(),
                        kind: kind.to_string(),
                    };
                    if !services.contains(&s) {
                        services.push(s);
                    }
                }
            }
        }
        let namespace = opts.namespace.clone().unwrap_or_else(|| {
            // A waypoint runs in its services' namespace; a plugin from the root namespace applies anyway.
            services
                .first()
                .map(|s| s.namespace.clone())
                .or_else(|| views.iter().find(|p| p.namespace != root_namespace).map(|p| p.namespace.clone()))
                .or_else(|| views.first().map(|p| p.namespace.clone()))
                .unwrap_or_default()
        });
        let labels = opts.labels.clone().unwrap_or_else(|| {
            let mut l = BTreeMap::new();
            for p in views {
                for (k, v) in p.spec["selector"]["matchLabels"].as_object().into_iter().flatten() {
                    l.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
                for r in p.target_refs().into_iter().filter(|r| r["kind"] == "Gateway") {
                    l.insert(istiod::GATEWAY_NAME_LABEL.into(), r["name"].as_str().unwrap_or_default().into());
                }
            }
            if waypoint {
                l.entry(istiod::GATEWAY_NAME_LABEL.into()).or_insert_with(|| "waypoint".into());
            }
            l
        });
        let client_only = views.iter().all(|p| {
            p.spec["match"].as_array().is_some_and(|ms| !ms.is_empty() && ms.iter().all(|x| x["mode"] == "CLIENT"))
        });
        let gateway = views.iter().any(|p| p.target_refs().iter().any(|r| r["kind"] == "Gateway"));
        // A waypoint's plugins run on its inbound (HBONE-terminated) chain: SERVER traffic.
        let class = opts.class.unwrap_or(match (client_only || gateway, gateway) {
            _ if waypoint => ListenerClass::SidecarInbound,
            (true, true) => ListenerClass::Gateway,
            (true, false) => ListenerClass::SidecarOutbound,
            _ => ListenerClass::SidecarInbound,
        });
        let target_port = opts.target_port.unwrap_or_else(|| {
            views
                .iter()
                .flat_map(|p| p.spec["match"].as_array().cloned().unwrap_or_default())
                .flat_map(|x| x["ports"].as_array().cloned().unwrap_or_default())
                .find_map(|p| p["number"].as_u64().and_then(|n| u16::try_from(n).ok()))
                .unwrap_or(8080)
        });

        Self { namespace, labels, waypoint, services, root_namespace, class, target_port }
    }
}

/// Upstreams: the application behind an inbound listener; the canary's variants otherwise (routed by
/// the canary header). Returns the clusters naming them and the routes.
#[allow(clippy::type_complexity)]
fn start_upstreams(
    views: &[WasmPlugin],
    class: ListenerClass,
    target_port: u16,
) -> anyhow::Result<(Vec<(String, u16, bool)>, Vec<EchoServer>, Vec<Value>)> {
    let mut clusters: Vec<(String, u16, bool)> = Vec::new();
    let mut upstreams = Vec::new();
    let mut routes = Vec::new();
    if class == ListenerClass::SidecarInbound {
        let app = EchoServer::start("app", 0)?;
        let name = format!("inbound|{target_port}||");
        clusters.push((name.clone(), app.addr.port(), false));
        routes.push(json!({ "match": { "prefix": "/" }, "route": { "cluster": name, "timeout": "60s" } }));
        upstreams.push(app);
    } else {
        let mut header = "x-meshplug-variant".to_string();
        let mut variants: Vec<String> = Vec::new();
        for p in views {
            for c in filter_configs(p, "canary") {
                if let Some(h) = c["header"].as_str() {
                    header = h.to_string();
                }
                let names = c["split"]["variants"].as_array().into_iter().flatten().map(|v| &v["name"]);
                let ruled = c["rules"].as_array().into_iter().flatten().map(|r| &r["variant"]);
                for n in names.chain(ruled).filter_map(Value::as_str) {
                    if !variants.iter().any(|v| v == n) {
                        variants.push(n.to_string());
                    }
                }
            }
        }
        if variants.is_empty() {
            variants.push("stable".into());
        }
        for v in &variants {
            let e = EchoServer::start(v, 0)?;
            let name = format!("outbound|{target_port}|{v}|app");
            clusters.push((name.clone(), e.addr.port(), false));
            routes.push(
                json!({ "match": { "prefix": "/", "headers": [{ "name": header, "string_match": { "exact": v } }] },
                                "route": { "cluster": name, "timeout": "60s" } }),
            );
            upstreams.push(e);
        }
        let first = clusters.first().map(|c| c.0.clone()).unwrap_or_default();
        routes.push(json!({ "match": { "prefix": "/" }, "route": { "cluster": first, "timeout": "60s" } }));
    }
    Ok((clusters, upstreams, routes))
}

/// Remote JWKS clusters: a local server with the demo key under each cluster's name.
fn start_jwks_servers(
    views: &[WasmPlugin],
    clusters: &mut Vec<(String, u16, bool)>,
) -> anyhow::Result<Vec<(String, StubServer)>> {
    let mut jwks = Vec::new();
    for p in views {
        for c in filter_configs(p, "jwt-authz") {
            for rule in c["jwtRules"].as_array().into_iter().flatten() {
                let Some(cluster) = rule["remoteJwks"]["cluster"].as_str() else { continue };
                if jwks.iter().any(|(n, _): &(String, StubServer)| n == cluster) {
                    continue;
                }
                let body = jwt_authz::testkit::jwks(&["rsa"]);
                let stub = StubServer::start(0, 200, body.as_bytes())?;
                clusters.push((cluster.to_string(), stub.addr.port(), false));
                jwks.push((cluster.to_string(), stub));
            }
        }
    }

    Ok(jwks)
}

/// Global rate limits: the rate limit service the plugins' rules name, run locally (meshplug-rls on a
/// local Redis) with the configuration `render` generates.
#[allow(clippy::type_complexity)]
fn start_rate_limit_services(
    views: &[WasmPlugin],
    clusters: &mut Vec<(String, u16, bool)>,
) -> anyhow::Result<Vec<(String, meshplug_rls::Running, crate::lab::redis::RedisServer)>> {
    let mut rate_limit_services = Vec::new();
    for p in views {
        for c in filter_configs(p, "rate-limit") {
            let Ok(Some(need)) = crate::deploy::global::service_need(c) else { continue };
            if clusters.iter().any(|(name, _, _)| *name == need.cluster) {
                continue;
            }
            let redis = crate::lab::redis::RedisServer::start()?;
            let config = serde_yaml_ng::to_string(&crate::deploy::global::ratelimit_config(&need))?;
            let rls = meshplug_rls::start(
                meshplug_rls::parse_config(&config)?,
                &redis.url(),
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                "meshplug-istio:",
            )?;
            clusters.push((need.cluster.clone(), rls.addr.port(), true));
            rate_limit_services.push((need.cluster, rls, redis));
        }
    }

    Ok(rate_limit_services)
}

/// The sidecar's bootstrap: LDS from the watched state directory, the static clusters (HTTP/2 where
/// marked), and the stats a sidecar keeps.
fn bootstrap(namespace: &str, admin_port: u16, state: &Path, clusters: &[(String, u16, bool)]) -> Value {
    let cluster_values: Vec<Value> = clusters
        .iter()
        .map(|(name, port, http2)| {
            let mut c = json!({
                "name": name, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": { "cluster_name": name, "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address":
                    { "socket_address": { "address": "127.0.0.1", "port_value": port } } } }] }] }
            });
            if *http2 {
                c["typed_extension_protocol_options"] = json!({
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": { "http2_protocol_options": {} }
                    }
                });
            }
            c
        })
        .collect();
    json!({
        "node": { "id": format!("sidecar~127.0.0.1~meshplug.{namespace}~{namespace}.svc.cluster.local"), "cluster": "meshplug" },
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": admin_port } } },
        "dynamic_resources": { "lds_config": { "resource_api_version": "V3", "path_config_source": {
            "path": state.join("lds").join("listeners.json").display().to_string(),
            "watched_directory": { "path": state.join("lds").display().to_string() } } } },
        "static_resources": { "clusters": cluster_values },
        // Only the stats a sidecar keeps by default.
        "stats_config": super::stats_config(),
    })
}

static LABS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl IstioLab {
    /// Reads the manifests, starts the upstreams and Envoy, sends every selected plugin.
    pub fn start(opts: IstioOptions) -> anyhow::Result<Self> {
        let m = read_manifests(&opts.dir)?;
        // The EnvoyFilter form's plugins are read the same way for what the run needs around them.
        let views: Vec<WasmPlugin> = m
            .plugins
            .iter()
            .cloned()
            .chain(m.envoy_filters.iter().flat_map(super::envoyfilter::plugin_views))
            .collect();
        anyhow::ensure!(!views.is_empty(), "no WasmPlugin or meshplug EnvoyFilter under {}", opts.dir.display());
        let shape = ProxyShape::of(&views, &opts);
        let (mut clusters, upstreams, routes) = start_upstreams(&views, shape.class, shape.target_port)?;
        let jwks = start_jwks_servers(&views, &mut clusters)?;
        let rate_limit_services = start_rate_limit_services(&views, &mut clusters)?;

        let n = LABS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let state = std::env::temp_dir().join(format!("meshplug-istio-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state)?;
        let mut cache = Cache::new(state.join("wasm-cache"))?;
        cache.insecure = opts.insecure_registries.iter().cloned().collect();
        let route_config =
            json!({ "name": "local", "virtual_hosts": [{ "name": "all", "domains": ["*"], "routes": routes }] });
        let bootstrap = bootstrap(&shape.namespace, opts.admin_port, &state, &clusters);
        let binary = find_envoy(opts.envoy.as_deref(), &workspace_root()).map_err(anyhow::Error::msg)?;
        let registry = if opts.mirror { Some(crate::lab::registry::Registry::start()?) } else { None };
        let ProxyShape { namespace, labels, waypoint, services, root_namespace, class, target_port } = shape;
        let mut feed = Feed {
            namespace,
            labels,
            waypoint,
            services,
            root_namespace,
            class,
            target_port,
            opts: opts.clone(),
            state,
            cache,
            sent: BTreeMap::new(),
            filters: Vec::new(),
            chain: Vec::new(),
            route_config,
            listener_version: 0,
            mirror: registry.as_ref().map(crate::lab::registry::Registry::host),
            pushed: Default::default(),
        };
        // The first ECDS and LDS files exist before Envoy starts: it reads them during initialization.
        let initial = feed.sync_with(&m)?;
        let mut envoy_opts = EnvoyOptions::new(binary.clone());
        envoy_opts.concurrency = opts.concurrency;
        let envoy = RunningEnvoy::start(&bootstrap, &envoy_opts)?;
        Ok(Self { envoy, binary, upstreams, jwks, rate_limit_services, feed, registry, initial })
    }

    /// Re-reads the manifests and sends what changed: an ECDS update per plugin whose spec changed (its
    /// resource version bumped, as Kubernetes does on an edit), a new listener when the set or order of
    /// plugins changed.
    pub fn sync(&mut self) -> anyhow::Result<SyncReport> {
        let m = read_manifests(&self.feed.opts.dir)?;
        self.feed.sync_with(&m)
    }

    /// Remote fetches the agent made so far.
    pub fn fetches(&self) -> u64 {
        self.feed.cache.fetches
    }
}

impl Feed {
    /// The plugins this proxy's listener runs, in order.
    pub fn plugin_names(&self) -> &[String] {
        &self.filters
    }

    /// Every HTTP filter of the listener as istiod builds it (Istio's own included), in order.
    pub fn chain(&self) -> &[String] {
        &self.chain
    }

    fn ecds_dir(&self, resource: &str) -> PathBuf {
        let safe: String =
            resource.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        self.state.join("ecds").join(safe)
    }

    fn sync_with(&mut self, m: &Manifests) -> anyhow::Result<SyncReport> {
        let mut report = SyncReport::default();
        let proxy = istiod::Proxy {
            namespace: &self.namespace,
            labels: &self.labels,
            waypoint: self.waypoint,
            services: &self.services,
            root_namespace: &self.root_namespace,
        };
        let selected: Vec<WasmPlugin> =
            istiod::listener_plugins(&m.plugins, &proxy, self.class, self.target_port).into_iter().cloned().collect();
        let matched: Vec<envoyfilter::EnvoyFilter> =
            envoyfilter::matched(&m.envoy_filters, &proxy).into_iter().cloned().collect();
        let envoy_filters: Vec<&envoyfilter::EnvoyFilter> = matched.iter().collect();
        for p in &selected {
            let name = p.resource_name();
            let mut plugin = p.clone();
            let (version, changed) = match self.sent.get(&name) {
                Some((spec, v)) if *spec == p.spec => (*v, false),
                Some((_, v)) => (v + 1, true),
                None => (1, true),
            };
            if !changed {
                continue;
            }
            plugin.resource_version = version;
            if let Some(host) = self.mirror.clone() {
                let url = plugin.spec["url"].as_str().unwrap_or_default().to_string();
                let module = plugin.spec["pluginName"].as_str().unwrap_or_default().to_string();
                plugin.spec["url"] = json!(self.mirrored_url(&url, &module, &host)?);
            }
            let mut resource = plugin.extension_config();
            // istiod's updatePluginConfig: the Secret's content in place of its name ("" when absent).
            let env = &mut resource["typed_config"]["config"]["vm_config"]["environment_variables"]["key_values"];
            if let Some(secret) =
                env.get(crate::deploy::istio_api::PULL_SECRET_ENV).and_then(Value::as_str).map(str::to_string)
            {
                let content = m.secrets.get(&format!("{}/{secret}", p.namespace)).cloned().unwrap_or_default();
                env[crate::deploy::istio_api::PULL_SECRET_ENV] = json!(String::from_utf8_lossy(&content));
            }
            self.send(&name, &resource, version, &mut report)?;
            self.sent.insert(name, (p.spec.clone(), version));
        }
        // The EnvoyFilter form: its EXTENSION_CONFIG resources through the same agent, a new version
        // whenever the resource changes (the agent sees the resource version the rendering carries).
        for mut resource in envoyfilter::extension_configs(&envoy_filters) {
            let name = resource["name"].as_str().unwrap_or_default().to_string();
            let version = match self.sent.get(&name) {
                Some((sent, v)) if *sent == resource => continue,
                Some((_, v)) => v + 1,
                None => 1,
            };
            let original = resource.clone();
            if let Some(host) = self.mirror.clone() {
                self.mirror_resource(&mut resource, &host)?;
            }
            self.send(&name, &resource, version, &mut report)?;
            self.sent.insert(name, (original, version));
        }
        let mut chain = envoyfilter::istio_chain(self.class, &selected);
        envoyfilter::patch_http_filters(
            &mut chain,
            &envoy_filters,
            envoyfilter::patch_context(self.class),
            self.target_port,
        );
        let chain_names: Vec<String> = chain.iter().map(envoyfilter::ChainFilter::name).collect();
        if chain_names != self.chain || self.listener_version == 0 {
            self.filters = chain
                .iter()
                .filter(|f| matches!(f, ChainFilter::Plugin(_) | ChainFilter::Patched(_)))
                .map(ChainFilter::name)
                .collect();
            self.chain = chain_names;
            self.listener_version += 1;
            self.write_listener(&chain)?;
            report.listener_changed = true;
        }
        Ok(report)
    }

    /// One extension config through istio-agent, then to Envoy's ECDS file for it.
    fn send(&mut self, name: &str, resource: &Value, version: u64, report: &mut SyncReport) -> anyhow::Result<()> {
        let (converted, outcome) = agent::convert(resource, &mut self.cache);
        if let Outcome::Replaced { error, .. } = &outcome {
            eprintln!("istio-agent: {error}");
        }
        let mut typed = converted;
        typed["@type"] = json!("type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig");
        let response = json!({ "version_info": version.to_string(), "resources": [typed] });
        write_atomically(&self.ecds_dir(name), "config.json", &response)?;
        report.sent.push((name.to_string(), outcome));
        Ok(())
    }

    /// An EnvoyFilter's extension config with its `oci://` URI at the mirror.
    fn mirror_resource(&mut self, resource: &mut Value, host: &str) -> anyhow::Result<()> {
        let config = &resource["typed_config"]["config"];
        let Some(uri) = config["vm_config"]["code"]["remote"]["http_uri"]["uri"].as_str() else { return Ok(()) };
        let module = config["root_id"].as_str().unwrap_or_default().to_string();
        let mirrored = self.mirrored_url(uri, &module, host)?;
        resource["typed_config"]["config"]["vm_config"]["code"]["remote"]["http_uri"]["uri"] = json!(mirrored);
        Ok(())
    }

    /// `url` (an `oci://` URL, or one without a scheme) pointed at the mirror, with the local build of
    /// `module` pushed there once; any other URL unchanged.
    fn mirrored_url(&mut self, url: &str, module: &str, host: &str) -> anyhow::Result<String> {
        let Some(rest) = url.strip_prefix("oci://").or((!url.contains("://")).then_some(url)) else {
            return Ok(url.to_string());
        };
        let path = rest.split_once('/').map_or(rest, |(_, p)| p);
        let target = format!("oci://{host}/{path}");
        if !self.pushed.contains(&target) && crate::deploy::filters::module(module).is_some() {
            crate::deploy::oci::push_module(module, &target, crate::deploy::oci::Format::Compat)?;
            self.pushed.insert(target.clone());
        }
        Ok(target)
    }

    fn write_listener(&self, chain: &[ChainFilter]) -> anyhow::Result<()> {
        let http_filters: Vec<Value> = chain
            .iter()
            .filter_map(|f| match f {
                ChainFilter::IstioOnly(_) => None,
                ChainFilter::Istio(name, config) => Some(json!({ "name": name, "typed_config": config })),
                ChainFilter::Plugin(p) => {
                    Some(istiod::http_filter(p, path_source(&self.ecds_dir(&p.resource_name()), "config.json")))
                }
                ChainFilter::Patched(v) => {
                    let mut v = v.clone();
                    // ADS in a mesh; here the file the ECDS resource of that name is written to.
                    if v.get("config_discovery").is_some() {
                        let name = v["name"].as_str().unwrap_or_default().to_string();
                        let mut source = path_source(&self.ecds_dir(&name), "config.json");
                        source["initial_fetch_timeout"] =
                            v["config_discovery"]["config_source"]["initial_fetch_timeout"].clone();
                        source["resource_api_version"] = json!("V3");
                        v["config_discovery"]["config_source"] = source;
                    }
                    Some(v)
                }
            })
            .collect();
        let listener = json!({
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "meshplug-istio",
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": self.opts.port } },
            "filter_chains": [{ "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": format!("{}_{}", if self.class == ListenerClass::SidecarInbound { "inbound" } else { "outbound" }, self.target_port),
                    "codec_type": "AUTO",
                    // A sidecar's listeners: the client address is not taken from this hop's peer.
                    "use_remote_address": self.class == ListenerClass::Gateway,
                    // Istio's default path normalization (meshConfig pathNormalization BASE).
                    "normalize_path": true,
                    "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                    "route_config": self.route_config,
                    "http_filters": http_filters,
                }
            }] }],
        });
        let response = json!({ "version_info": self.listener_version.to_string(), "resources": [listener] });
        write_atomically(&self.state.join("lds"), "listeners.json", &response)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

/// `meshplug up --istio DIR`: warns with what `meshplug validate` says (the run goes on, as istiod takes
/// what the API server took), starts the lab, prints what was sent, and applies edits to the
/// directory while Envoy runs (polled every second). Returns when Envoy exits.
pub fn up(opts: IstioOptions) -> anyhow::Result<()> {
    for e in crate::deploy::manifests::check_dir(&opts.dir)?.1 {
        eprintln!("warning: {e}");
    }
    let dir = opts.dir.clone();
    let mut lab = IstioLab::start(opts)?;
    println!("Envoy {} (found via {})", lab.binary.path.display(), lab.binary.source);
    println!(
        "proxy: namespace {}, labels {:?}, {:?} listener for container port {}",
        lab.feed.namespace, lab.feed.labels, lab.feed.class, lab.feed.target_port
    );
    println!("HTTP filters, in order: {}", lab.feed.plugin_names().join(" → "));
    print_report(&lab.initial);
    for (cluster, stub) in &lab.jwks {
        println!("cluster {cluster}: a local JWKS with the demo key on {} (tokens: meshplug demo-token)", stub.addr);
    }
    println!(
        "\nTry:\n  curl -si {}/health\n  curl -s http://{}/config_dump | grep wasmplugin",
        lab.envoy.url(),
        lab.envoy.admin
    );
    println!("Edit or re-render {} and the change is applied. Ctrl-C stops everything.", dir.display());
    let mut last = fingerprint(&dir);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if let Some(status) = lab.envoy.exited() {
            eprintln!("Envoy exited: {status}");
            return Ok(());
        }
        let now = fingerprint(&dir);
        if now != last {
            last = now;
            match lab.sync() {
                Ok(r) => {
                    print_report(&r);
                    if r.listener_changed {
                        println!("listener updated: {}", lab.feed.plugin_names().join(" → "));
                    }
                }
                Err(e) => eprintln!("cannot apply the edit: {e:#}"),
            }
        }
    }
}

/// One line per extension config sent: what the agent did with it.
fn print_report(r: &SyncReport) {
    for (name, outcome) in &r.sent {
        match outcome {
            Outcome::Local { path, fetched } => println!(
                "ECDS {name}: module {} ({})",
                path.display(),
                if *fetched { "fetched" } else { "from the agent's cache" }
            ),
            Outcome::Replaced { error, fail_open } => {
                println!("ECDS {name}: RBAC stand-in ({}): {error}", if *fail_open { "allow-all" } else { "deny-all" })
            }
            Outcome::Unchanged => println!("ECDS {name}: as rendered (local file)"),
        }
    }
}

/// The contents of every file under `dir`, to see an edit.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}
