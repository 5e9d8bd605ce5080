//! `meshplug render`: a composition's workloads as Istio resources — one WasmPlugin per filter (one for
//! the whole chain when the workload is bundled), or the same as EnvoyFilters — plus a
//! `kustomization.yaml` per workload directory. The output is
//! deterministic: the same composition gives the same bytes.
//!
//! Order: Istio runs Wasm filters by phase (AUTHN, then Istio's jwt_authn, AUTHZ, rbac, STATS,
//! UNSPECIFIED_PHASE, …, router) and, within a phase, by descending `priority`. Each filter has a
//! preferred phase — jwt-authz AUTHN, rate-limit AUTHZ, canary STATS, fault UNSPECIFIED_PHASE — and takes
//! the later of its preference and the previous filter's phase, so the listed order always holds;
//! priorities fall along the list.

use crate::deploy::composition::{Composition, FilterEntry, Workload};
use crate::deploy::filters::{module, BUNDLE};
use crate::deploy::istio_api;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const PHASES: [&str; 4] = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"];

/// The phase a filter prefers (index into [`PHASES`]).
pub fn preferred_phase(filter: &str) -> usize {
    match filter {
        "jwt-authz" => 0,
        "rate-limit" => 1,
        "canary" => 2,
        _ => 3,
    }
}

/// meshplug's default failStrategy: authentication and limits fail closed (a broken module must not
/// open the door); canary and fault fail open (without canary the routing header is absent and
/// everyone gets the stable route; fault injection is a testing tool, never worth an outage).
pub fn default_fail_strategy(filter: &str) -> &'static str {
    match filter {
        "jwt-authz" | "rate-limit" => "FAIL_CLOSE",
        _ => "FAIL_OPEN",
    }
}

/// One rendered file: its path under the output directory and its YAML.
pub type Rendered = BTreeMap<String, String>;

struct Placed<'a> {
    filter: &'a str,
    phase: &'static str,
    priority: i64,
    config: &'a Value,
    fail_strategy: String,
}

fn place<'a>(c: &Composition, w: &Workload, modules: &'a [FilterEntry]) -> Vec<Placed<'a>> {
    let n = modules.len() as i64;
    let mut phase = 0usize;
    modules
        .iter()
        .enumerate()
        .map(|(i, f)| {
            // The bundle runs where its first filter would.
            let first = if f.name == BUNDLE.name { w.filters.first().map_or("", |f| f.name.as_str()) } else { &f.name };
            phase = phase.max(preferred_phase(first));
            Placed {
                filter: &f.name,
                phase: PHASES.get(phase).copied().unwrap_or("UNSPECIFIED_PHASE"),
                priority: (n - i as i64) * 10,
                config: &f.plugin_config,
                fail_strategy: module_fail_strategy(c, w, &f.name),
            }
        })
        .collect()
}

fn url(c: &Composition, filter: &str) -> String {
    let file = module(filter).map(|k| k.module_file()).unwrap_or_else(|| format!("{filter}.wasm"));
    match &c.defaults.module_dir {
        Some(dir) => format!("file://{}/{file}", dir.trim_end_matches('/')),
        None => format!("oci://{}/{filter}:{}", c.defaults.registry.trim_end_matches('/'), c.defaults.tag),
    }
}

/// Pins every module the composition deploys that `defaults.digests` does not name to the digest of
/// the local build as `meshplug package`/`push` would package it (images are deterministic): what
/// `meshplug render` does unless told `--no-pin`. Returns the modules pinned, with their digests;
/// refuses when a module is not built (pinning nothing would let replicas run different builds).
pub fn pin_local_builds(
    c: &mut Composition,
    format: crate::deploy::oci::Format,
) -> anyhow::Result<Vec<(String, String)>> {
    if c.defaults.module_dir.is_some() {
        return Ok(vec![]);
    }
    let mut pinned = Vec::new();
    let names: std::collections::BTreeSet<String> =
        c.workloads.iter().flat_map(|w| w.modules()).map(|m| m.name).collect();
    for name in names {
        if c.defaults.digests.contains_key(&name) {
            continue;
        }
        let (_, img) = crate::deploy::oci::module_image(&name, format).map_err(|e| {
            anyhow::anyhow!("cannot pin {name}: {e:#}; build the modules first, set defaults.digests.{name}, or render with --no-pin")
        })?;
        let digest = img.digest;
        c.defaults.digests.insert(name.clone(), digest.clone());
        pinned.push((name, digest));
    }
    Ok(pinned)
}

fn digest(c: &Composition, filter: &str) -> Option<String> {
    c.defaults.digests.get(filter).map(|d| d.trim_start_matches("sha256:").to_string())
}

fn fail_strategy(c: &Composition, filter: &str) -> String {
    c.defaults.fail_strategy.get(filter).cloned().unwrap_or_else(|| default_fail_strategy(filter).to_string())
}

/// A module's failStrategy; a bundle's is `FAIL_CLOSE` when any of its filters' is (unless
/// `defaults.failStrategy.meshplug` says otherwise): one broken module must not open the door.
fn module_fail_strategy(c: &Composition, w: &Workload, module: &str) -> String {
    if module != BUNDLE.name || c.defaults.fail_strategy.contains_key(module) {
        return fail_strategy(c, module);
    }
    let closes = w.filters.iter().any(|f| fail_strategy(c, &f.name) == "FAIL_CLOSE");
    if closes { "FAIL_CLOSE" } else { "FAIL_OPEN" }.to_string()
}

fn yaml(docs: &[Value]) -> anyhow::Result<String> {
    let mut out =
        String::from("# Rendered by `meshplug render`; do not edit: change the composition and render again.\n");
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(d)?);
    }
    Ok(out)
}

fn metadata(w: &Workload, filter: &str) -> Value {
    let mut m = json!({
        "name": format!("{}-{filter}", w.name),
        "namespace": w.namespace,
        "labels": { "app.kubernetes.io/managed-by": "meshplug", "meshplug.dev/workload": w.name, "meshplug.dev/filter": filter }
    });
    if w.namespace_wide {
        m["annotations"] = json!({ NAMESPACE_WIDE: "true" });
    }
    m
}

/// The annotation that says a plugin with neither selector nor targetRefs applies to its whole
/// namespace on purpose (`meshplug validate` refuses one without it).
pub const NAMESPACE_WIDE: &str = "meshplug.dev/namespace-wide";

/// The WasmPlugin's `match`: always written, so a plugin never lands on listeners it was not meant for
/// (with no `match` Istio attaches it to every listener: inbound, outbound and gateway).
fn traffic_match(w: &Workload, module: &str) -> Value {
    let mut m = json!({ "mode": w.mode(module) });
    if !w.ports.is_empty() {
        m["ports"] = json!(w.ports.iter().map(|p| json!({ "number": p })).collect::<Vec<_>>());
    }
    json!([m])
}

/// The WasmPlugin of one filter of a workload.
fn wasm_plugin(c: &Composition, w: &Workload, p: &Placed) -> Value {
    let mut spec = json!({
        "url": url(c, p.filter),
        "imagePullPolicy": c.defaults.image_pull_policy,
        "pluginName": p.filter,
        "pluginConfig": p.config,
        "phase": p.phase,
        "priority": p.priority,
        "failStrategy": p.fail_strategy,
        "type": "HTTP",
        "match": traffic_match(w, p.filter),
    });
    if let Some(d) = digest(c, p.filter) {
        spec["sha256"] = json!(d);
    }
    if let Some(secret) = &c.defaults.image_pull_secret {
        spec["imagePullSecret"] = json!(secret);
    }
    if let Some(sel) = &w.selector {
        spec["selector"] = json!({ "matchLabels": sel });
    }
    if let Some(refs) = &w.target_refs {
        spec["targetRefs"] = json!(refs);
    }
    json!({ "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin", "metadata": metadata(w, p.filter), "spec": spec })
}

/// The EnvoyFilter `match.context`s equivalent to a WasmPlugin's `match.mode` (Istio's
/// `workloadModeForListenerClass`: SERVER = sidecar inbound; CLIENT = sidecar outbound and gateways).
fn contexts(w: &Workload, module: &str) -> &'static [&'static str] {
    match w.mode(module) {
        "SERVER" => &["SIDECAR_INBOUND"],
        "CLIENT" if w.target_refs.is_some() => &["GATEWAY"],
        "CLIENT" => &["SIDECAR_OUTBOUND", "GATEWAY"],
        _ => &["ANY"],
    }
}

/// Envoy's `failure_policy` for a WasmPlugin `failStrategy` (istiod's `buildPluginConfig`).
fn failure_policy(strategy: &str) -> &'static str {
    match strategy {
        "FAIL_OPEN" => "FAIL_OPEN",
        "FAIL_RELOAD" => "FAIL_RELOAD",
        _ => "FAIL_CLOSED",
    }
}

/// The Istio filter the EnvoyFilter form inserts before for AUTHZ and the later phases: Istio's listener
/// builder (`pilot/pkg/networking/core/listener_builder.go`, 1.28 and 1.29) appends
/// `envoy.filters.http.grpc_stats` to every HTTP chain, after `jwt_authn` and `rbac`.
pub const AFTER_ISTIO_FILTERS: &str = "envoy.filters.http.grpc_stats";

/// The EnvoyFilter of one filter of a workload, delivered as istiod delivers a WasmPlugin
/// (`pilot/pkg/networking/core/extension/wasmplugin.go`, `pilot/pkg/model/extensions.go`): the module
/// through ECDS — `file://` modules too, so a bad file is one rejected extension config, not a rejected
/// listener — as an `EXTENSION_CONFIG` resource named `extensions.istio.io/wasmplugin/<namespace>.<name>`
/// (its Wasm config `<namespace>.<name>`), so istio-agent fetches it and, on a failure, swaps in its RBAC
/// stand-in, which the filter's `type_urls` accept; an `initial_fetch_timeout` of 0 so the listener waits
/// for it; the VM environment istiod writes (pull policy, and a resource version: here a digest of the
/// rendered config, so `imagePullPolicy: Always` re-pulls whenever the rendering changes, as the agent
/// re-pulls a WasmPlugin whose resource version changed); one `HTTP_FILTER` patch per port and context.
///
/// Placement (istiod's order: metadata exchange, CUSTOM ext_authz, AUTHN plugins, `jwt_authn`, AUTHZ
/// plugins, `rbac`, STATS/UNSPECIFIED plugins, `grpc_web`, `grpc_stats`, …): an EnvoyFilter patch
/// relative to a filter that is absent applies nowhere (listener_patch.go `patchHTTPFilters`), and
/// `jwt_authn`, `rbac`, ext_authz and `grpc_web` exist only when a RequestAuthentication, an
/// AuthorizationPolicy or a gRPC-web port does — even metadata exchange is absent on HBONE chains. So
/// each plugin is anchored where it always applies: AUTHN plugins `INSERT_FIRST` (applied in reverse so
/// the listed order holds: before `jwt_authn` and `rbac`, also before metadata exchange and ext_authz);
/// AUTHZ, STATS and UNSPECIFIED_PHASE plugins right before `envoy.filters.http.grpc_stats`, in list order
/// (after `jwt_authn`, so an AUTHZ plugin sees what RequestAuthentication verified; after `rbac` and
/// `grpc_web` too). README (manifests/) says what differs from istiod's order and why.
fn envoy_filter(c: &Composition, w: &Workload, p: &Placed, ef_priority: i64) -> Value {
    let config_name = format!("{}.{}-{}", w.namespace, w.name, p.filter);
    let name = format!("{}{config_name}", istio_api::RESOURCE_PREFIX);
    let url = url(c, p.filter);
    let mut code = match url.strip_prefix("file://") {
        Some(path) => json!({ "local": { "filename": path } }),
        None => json!({ "remote": { "http_uri": { "uri": url, "timeout": "30s", "cluster": "_" } } }),
    };
    if let (Some(d), Some(remote)) = (digest(c, p.filter), code.get_mut("remote")) {
        remote["sha256"] = json!(d);
    }
    let mut config = json!({
        "name": config_name,
        "root_id": p.filter,
        "vm_config": { "runtime": "envoy.wasm.runtime.v8", "code": code },
        "configuration": { "@type": "type.googleapis.com/google.protobuf.StringValue", "value": istio_api::plugin_config_json(p.config) },
        "failure_policy": failure_policy(&p.fail_strategy),
    });
    // The resource version: what makes the agent's `Always` pull again (cache.go getEntry compares it).
    let version = crate::deploy::oci::sha256(config.to_string().as_bytes());
    let version = version.trim_start_matches("sha256:").get(..16).unwrap_or_default().to_string();
    let mut env = serde_json::Map::new();
    env.insert(istio_api::PULL_POLICY_ENV.into(), json!(c.defaults.image_pull_policy));
    env.insert(istio_api::RESOURCE_VERSION_ENV.into(), json!(version));
    config["vm_config"]["environment_variables"] = json!({ "key_values": env });
    let wasm = json!({ "@type": istio_api::WASM_TYPE_URL, "config": config });
    let first = p.phase == "AUTHN";
    let filter = json!({ "name": name, "config_discovery": {
        "config_source": { "ads": {}, "initial_fetch_timeout": "0s" },
        "type_urls": [istio_api::WASM_TYPE_URL, istio_api::RBAC_TYPE_URL] } });
    let mut patches = vec![
        json!({ "applyTo": "EXTENSION_CONFIG", "patch": { "operation": "ADD", "value": { "name": name, "typed_config": wasm } } }),
    ];
    let ports: Vec<Option<u32>> =
        if w.ports.is_empty() { vec![None] } else { w.ports.iter().copied().map(Some).collect() };
    for context in contexts(w, p.filter) {
        for port in &ports {
            let mut hcm = json!({ "name": "envoy.filters.network.http_connection_manager" });
            if !first {
                hcm["subFilter"] = json!({ "name": AFTER_ISTIO_FILTERS });
            }
            let mut listener = json!({ "filterChain": { "filter": hcm } });
            if let Some(port) = port {
                listener["portNumber"] = json!(port);
            }
            let operation = if first { "INSERT_FIRST" } else { "INSERT_BEFORE" };
            patches.push(json!({ "applyTo": "HTTP_FILTER",
                                 "match": { "context": context, "listener": listener },
                                 "patch": { "operation": operation, "value": filter.clone() } }));
        }
    }
    let mut spec = json!({ "configPatches": patches, "priority": ef_priority });
    if let Some(sel) = &w.selector {
        spec["workloadSelector"] = json!({ "labels": sel });
    }
    if let Some(refs) = &w.target_refs {
        spec["targetRefs"] = json!(refs);
    }
    json!({ "apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter", "metadata": metadata(w, p.filter), "spec": spec })
}

/// What a workload's global rate limits need: the rate limit service's configuration generated from the
/// rules' `global.limit` — envoyproxy/ratelimit's format (`config.yaml`) and Limitador's
/// (`limitador-limits.yaml`) — in a ConfigMap `meshplug-ratelimit-<workload>` to mount into the
/// service; and, for a service outside the cluster, the ServiceEntry that makes Istio create its
/// `outbound|<port>||<host>` cluster (gRPC). A cluster name Istio never creates is refused.
pub fn rate_limit_service_resources(w: &Workload) -> anyhow::Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for (f, entry) in w.filters.iter().enumerate() {
        if entry.name != "rate-limit" {
            continue;
        }
        let Some(need) = crate::deploy::global::service_need(&entry.plugin_config)? else { continue };
        let at = format!("/workloads/{}/filters/{f}/pluginConfig/rateLimitService/cluster", w.name);
        let (port, host) = istio_cluster(&need.cluster).ok_or_else(|| {
            anyhow::anyhow!(
                "{at}: {:?} is not a cluster Istio creates; in a mesh, name the rate limit service \
                 `outbound|<port>||<host>` (e.g. outbound|8081||ratelimit.ratelimit.svc.cluster.local)",
                need.cluster
            )
        })?;
        let labels = json!({ "app.kubernetes.io/managed-by": "meshplug", "meshplug.dev/workload": w.name });
        let config = serde_yaml_ng::to_string(&crate::deploy::global::ratelimit_config(&need))?;
        // Limitador's form only where it says the same; otherwise a mapping saying why, which Limitador
        // refuses to load (it reads a list of limits), rather than limits that enforce less.
        let limitador = match crate::deploy::global::limitador_limits(&need) {
            Ok(limits) => serde_yaml_ng::to_string(&limits)?,
            Err(why) => serde_yaml_ng::to_string(&json!({
                "notExpressibleInLimitador": format!("{why}; use envoyproxy/ratelimit (config.yaml) or meshplug-rls")
            }))?,
        };
        let map = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": format!("meshplug-ratelimit-{}", w.name), "namespace": w.namespace, "labels": labels },
            "data": { "config.yaml": config, "limitador-limits.yaml": limitador }
        });
        let mut docs = vec![map];
        if !(host.ends_with(".svc.cluster.local") || host.ends_with(".svc")) {
            docs.push(json!({
                "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                "metadata": { "name": format!("meshplug-rls-{}", host.replace('.', "-")), "namespace": w.namespace, "labels": labels },
                "spec": { "hosts": [host], "location": "MESH_EXTERNAL", "resolution": "DNS", "exportTo": ["."],
                          "ports": [{ "number": port, "name": format!("grpc-{port}"), "protocol": "GRPC" }] }
            }));
        }
        out.push(("ratelimit-service.yaml".to_string(), json!(docs)));
    }
    Ok(out)
}

/// `outbound|<port>||<host>` → (port, host).
fn istio_cluster(cluster: &str) -> Option<(u16, String)> {
    match cluster.split('|').collect::<Vec<_>>().as_slice() {
        ["outbound", port, "", host] if !host.is_empty() => {
            port.parse::<u16>().ok().filter(|p| *p > 0).map(|p| (p, host.to_string()))
        }
        _ => None,
    }
}

/// The mesh resources a workload's filters need to reach a cluster outside the mesh: for each
/// jwt-authz `remoteJwks.cluster` named `outbound|<port>||<host>` with a host outside the cluster
/// (`*.svc.cluster.local` and `*.svc` are in the mesh already), a ServiceEntry that creates the cluster
/// and a DestinationRule that originates TLS to it (a JWKS fetched in clear text could be forged on the
/// way). Refuses a cluster name Istio never creates, saying what to write instead.
pub fn mesh_resources(w: &Workload) -> anyhow::Result<Vec<(String, Value)>> {
    let mut hosts = BTreeMap::new();
    for (f, entry) in w.filters.iter().enumerate() {
        if entry.name != "jwt-authz" {
            continue;
        }
        let rules = entry.plugin_config.get("jwtRules").and_then(Value::as_array).cloned().unwrap_or_default();
        for (r, rule) in rules.iter().enumerate() {
            let Some(cluster) = rule.pointer("/remoteJwks/cluster").and_then(Value::as_str) else { continue };
            let at = format!("/workloads/{}/filters/{f}/pluginConfig/jwtRules/{r}/remoteJwks/cluster", w.name);
            let parts: Vec<&str> = cluster.split('|').collect();
            let (port, host) = match parts.as_slice() {
                ["outbound", port, "", host] if !host.is_empty() => match port.parse::<u16>() {
                    Ok(p) if p > 0 => (p, host.to_string()),
                    _ => anyhow::bail!("{at}: {cluster:?}: {port:?} is not a port"),
                },
                _ => anyhow::bail!(
                    "{at}: {cluster:?} is not a cluster Istio creates; in a mesh, name it `outbound|<port>||<host>` \
                     (e.g. outbound|443||auth.example.com): meshplug renders the ServiceEntry and DestinationRule \
                     that make it exist"
                ),
            };
            if host.ends_with(".svc.cluster.local") || host.ends_with(".svc") {
                continue;
            }
            hosts.entry(host).or_insert_with(Vec::new).push(port);
        }
    }
    let mut out = Vec::new();
    for (host, mut ports) in hosts {
        ports.sort_unstable();
        ports.dedup();
        let name = format!("meshplug-jwks-{}", host.replace('.', "-").to_ascii_lowercase());
        let labels = json!({ "app.kubernetes.io/managed-by": "meshplug", "meshplug.dev/workload": w.name });
        let service_entry = json!({
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": { "name": name, "namespace": w.namespace, "labels": labels },
            "spec": {
                "hosts": [host],
                "location": "MESH_EXTERNAL",
                "resolution": "DNS",
                "ports": ports.iter().map(|p| json!({ "number": p, "name": format!("https-{p}"), "protocol": "HTTPS" })).collect::<Vec<_>>(),
                "exportTo": ["."],
            }
        });
        let destination_rule = json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": { "name": name, "namespace": w.namespace, "labels": labels },
            "spec": {
                "host": host,
                "exportTo": ["."],
                "trafficPolicy": { "portLevelSettings": ports.iter().map(|p| json!({
                    "port": { "number": p }, "tls": { "mode": "SIMPLE", "sni": host } })).collect::<Vec<_>>() },
            }
        });
        out.push((format!("{name}.yaml"), json!([service_entry, destination_rule])));
    }
    Ok(out)
}

/// Renders every workload: `<workload>/<filter>.yaml` (WasmPlugin) or `<workload>/envoyfilter-<filter>.yaml`,
/// and `<workload>/kustomization.yaml`. The composition must be valid.
pub fn render(c: &Composition, envoyfilter: bool) -> anyhow::Result<Rendered> {
    if envoyfilter && c.defaults.image_pull_secret.is_some() {
        anyhow::bail!(
            "/defaults/imagePullSecret: an EnvoyFilter cannot carry a pull secret (istiod resolves the Secret \
             only for WasmPlugins); render WasmPlugins, or make the images public"
        );
    }
    if envoyfilter {
        if let Some((i, w)) = c
            .workloads
            .iter()
            .enumerate()
            .find(|(_, w)| w.target_refs.iter().flatten().any(crate::deploy::composition::TargetRef::is_waypoint))
        {
            anyhow::bail!(
                "/workloads/{i}/targetRefs: workload {:?} targets a waypoint (Service, ServiceEntry or GatewayClass), \
                 which an EnvoyFilter cannot do: istiod selects EnvoyFilters by workload labels or Gateway, never \
                 by service (pilot/pkg/model/push_context.go), and a waypoint takes GATEWAY-context patches only, \
                 so the rendering would apply nowhere. Render WasmPlugins (without --envoyfilter), which attach to \
                 waypoints; or target the waypoint's own Gateway (`kind: Gateway`, its name)",
                w.name
            );
        }
    }
    let mut out = Rendered::new();
    for w in &c.workloads {
        let mut resources = Vec::new();
        let modules = w.modules();
        let placed = place(c, w, &modules);
        let early = placed.iter().filter(|p| p.phase == "AUTHN").count() as i64;
        for (i, p) in placed.iter().enumerate() {
            let (file, doc) = if envoyfilter {
                // INSERT_FIRST patches apply in reverse, INSERT_BEFORE ones in order (EnvoyFilters apply by
                // ascending priority), so the listed order holds either way.
                let i = i as i64;
                let priority = if i < early { early - i } else { i + 1 };
                (format!("envoyfilter-{}.yaml", p.filter), envoy_filter(c, w, p, priority))
            } else {
                (format!("{}.yaml", p.filter), wasm_plugin(c, w, p))
            };
            out.insert(format!("{}/{file}", w.name), yaml(&[doc])?);
            resources.push(file);
        }
        for (file, docs) in mesh_resources(w)?.into_iter().chain(rate_limit_service_resources(w)?) {
            let docs = docs.as_array().cloned().unwrap_or_default();
            out.insert(format!("{}/{file}", w.name), yaml(&docs)?);
            resources.push(file);
        }
        let kustomization = json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": w.namespace,
            "resources": resources,
        });
        out.insert(format!("{}/kustomization.yaml", w.name), yaml(&[kustomization])?);
    }
    Ok(out)
}

/// How `meshplug render` renders a composition.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    /// EnvoyFilter resources instead of WasmPlugins.
    pub envoyfilter: bool,
    /// Every workload's chain as one bundle module.
    pub bundle: bool,
    /// Pin `sha256` to the local builds' image digests ([`pin_local_builds`]).
    pub pin: bool,
    /// The image shape whose digest is pinned.
    pub format: crate::deploy::oci::Format,
}

/// What `meshplug render` did.
#[derive(Debug, Clone)]
pub struct Written {
    /// The modules pinned to the local builds, with their digests.
    pub pinned: Vec<(String, String)>,
    /// The files written.
    pub files: Vec<std::path::PathBuf>,
}

/// `meshplug render`: loads and checks the composition, pins the local builds unless told not to,
/// renders and writes the files under `out`.
pub fn render_composition(
    composition: &std::path::Path,
    out: &std::path::Path,
    opts: RenderOptions,
) -> anyhow::Result<Written> {
    let mut c = Composition::load_valid(composition, opts.bundle)?;
    let pinned = if opts.pin { pin_local_builds(&mut c, opts.format)? } else { vec![] };
    let rendered = render(&c, opts.envoyfilter)?;
    write(&rendered, out)?;
    Ok(Written { pinned, files: rendered.keys().map(|p| out.join(p)).collect() })
}

/// Writes rendered files under `dir`.
pub fn write(rendered: &Rendered, dir: &std::path::Path) -> anyhow::Result<()> {
    for (path, text) in rendered {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, text)?;
    }
    Ok(())
}
