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

use crate::composition::{Composition, FilterEntry, Workload};
use crate::filters::{module, BUNDLE};
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
pub fn pin_local_builds(c: &mut Composition, format: crate::oci::Format) -> anyhow::Result<Vec<(String, String)>> {
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
        let path = crate::filters::module_path(&name)?;
        let wasm = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!("cannot pin {name}: {} ({e}); build the modules first, set defaults.digests.{name}, or render with --no-pin", path.display())
        })?;
        let digest = crate::oci::image(&wasm, format)?.digest;
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
    json!({
        "name": format!("{}-{filter}", w.name),
        "namespace": w.namespace,
        "labels": { "app.kubernetes.io/managed-by": "meshplug", "meshplug.dev/workload": w.name, "meshplug.dev/filter": filter }
    })
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
    if w.mode.is_some() || !w.ports.is_empty() {
        let mut m = json!({ "mode": w.mode.clone().unwrap_or_else(|| "CLIENT_AND_SERVER".into()) });
        if !w.ports.is_empty() {
            m["ports"] = json!(w.ports.iter().map(|p| json!({ "number": p })).collect::<Vec<_>>());
        }
        spec["match"] = json!([m]);
    }
    json!({ "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin", "metadata": metadata(w, p.filter), "spec": spec })
}

fn context(w: &Workload) -> &'static str {
    if w.target_refs.is_some() {
        return "GATEWAY";
    }
    match w.mode.as_deref() {
        Some("CLIENT") => "SIDECAR_OUTBOUND",
        Some("CLIENT_AND_SERVER") => "ANY",
        _ => "SIDECAR_INBOUND",
    }
}

/// The EnvoyFilter of one filter of a workload: local modules (`file://`) are inserted inline before
/// the router; remote ones through an ECDS `EXTENSION_CONFIG` that istio-agent fetches.
fn envoy_filter(c: &Composition, w: &Workload, index: usize, p: &Placed) -> Value {
    let name = format!("{}-{}", w.name, p.filter);
    let url = url(c, p.filter);
    let mut code = match url.strip_prefix("file://") {
        Some(path) => json!({ "local": { "filename": path } }),
        None => json!({ "remote": { "http_uri": { "uri": url, "timeout": "30s" } } }),
    };
    if let (Some(d), Some(remote)) = (digest(c, p.filter), code.get_mut("remote")) {
        remote["sha256"] = json!(d);
    }
    let wasm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": p.filter,
            "root_id": p.filter,
            "vm_config": { "vm_id": "", "runtime": "envoy.wasm.runtime.v8", "code": code },
            "configuration": { "@type": "type.googleapis.com/google.protobuf.StringValue", "value": p.config.to_string() },
            "failure_policy": if p.fail_strategy == "FAIL_OPEN" { "FAIL_OPEN" } else { "FAIL_CLOSED" }
        }
    });
    let mut listener_match = json!({ "filterChain": { "filter": { "name": "envoy.filters.network.http_connection_manager",
                                                                  "subFilter": { "name": "envoy.filters.http.router" } } } });
    if let Some(port) = w.ports.first() {
        listener_match["portNumber"] = json!(port);
    }
    let insert = |value: Value| {
        json!({ "applyTo": "HTTP_FILTER",
                "match": { "context": context(w), "listener": listener_match.clone() },
                "patch": { "operation": "INSERT_BEFORE", "value": value } })
    };
    let patches = if url.starts_with("file://") {
        vec![insert(json!({ "name": name, "typed_config": wasm }))]
    } else {
        vec![
            json!({ "applyTo": "EXTENSION_CONFIG", "patch": { "operation": "ADD", "value": { "name": name, "typed_config": wasm } } }),
            insert(json!({ "name": name, "config_discovery": {
                "config_source": { "ads": {} },
                "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"] } })),
        ]
    };
    let mut spec = json!({ "configPatches": patches, "priority": index as i64 });
    if let Some(sel) = &w.selector {
        spec["workloadSelector"] = json!({ "labels": sel });
    }
    if let Some(refs) = &w.target_refs {
        spec["targetRefs"] = json!(refs);
    }
    json!({ "apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter", "metadata": metadata(w, p.filter), "spec": spec })
}

/// Renders every workload: `<workload>/<filter>.yaml` (WasmPlugin) or `<workload>/envoyfilter-<filter>.yaml`,
/// and `<workload>/kustomization.yaml`. The composition must be valid.
pub fn render(c: &Composition, envoyfilter: bool) -> anyhow::Result<Rendered> {
    let mut out = Rendered::new();
    for w in &c.workloads {
        let mut resources = Vec::new();
        let modules = w.modules();
        for (i, p) in place(c, w, &modules).iter().enumerate() {
            let (file, doc) = if envoyfilter {
                (format!("envoyfilter-{}.yaml", p.filter), envoy_filter(c, w, i, p))
            } else {
                (format!("{}.yaml", p.filter), wasm_plugin(c, w, p))
            };
            out.insert(format!("{}/{file}", w.name), yaml(&[doc])?);
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
