//! The composition file: one YAML document a platform engineer writes by hand, saying which filters
//! each workload gets (in order, with their pluginConfig) and how to run the chain locally.
//!
//! ```yaml
//! local:                      # how `meshplug up` runs it (all optional)
//!   port: 10000               # listener port
//!   adminPort: 9901
//!   upstreams:                # echo upstreams started by meshplug (default: one named `echo`)
//!     - name: echo
//!       http2: false
//!   routes:                   # default: everything to the first upstream
//!     - prefix: /
//!       cluster: echo
//! workloads:
//!   - name: demo
//!     filters:
//!       - name: fault
//!         pluginConfig: { rules: [ { abort: { httpStatus: 503 } } ] }
//! ```

use crate::deploy::filters;
use crate::deploy::istio_api::WAYPOINT_CLASS;
use meshplug_common::config::{child, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Composition {
    #[serde(default)]
    pub local: Local,
    /// What every workload's manifests share (image registry and tag, failStrategy per filter, …).
    #[serde(default)]
    pub defaults: Defaults,
    pub workloads: Vec<Workload>,
}

/// Deployment defaults for `meshplug render`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Defaults {
    /// Images are `oci://<registry>/<filter>:<tag>`.
    #[serde(default = "default_registry")]
    pub registry: String,
    #[serde(default = "default_tag")]
    pub tag: String,
    #[serde(default = "default_pull_policy")]
    pub image_pull_policy: String,
    /// Name of a Secret (docker-registry type) in the workload's namespace, for a private registry:
    /// rendered as the WasmPlugin's `imagePullSecret`.
    #[serde(default)]
    pub image_pull_secret: Option<String>,
    /// Per filter name: `FAIL_CLOSE`, `FAIL_OPEN` or `FAIL_RELOAD` (overrides meshplug's defaults).
    #[serde(default)]
    pub fail_strategy: BTreeMap<String, String>,
    /// Per filter name: the image's manifest digest (`sha256:<64 hex>`), rendered as `sha256`.
    #[serde(default)]
    pub digests: BTreeMap<String, String>,
    /// When set, modules are referenced as `file://<moduleDir>/<module>.wasm` instead of OCI images.
    pub module_dir: Option<String>,
    /// The mesh's root namespace (meshConfig `rootNamespace`, Istio's default `istio-system`): plugins
    /// there apply mesh-wide, and a GatewayClass `istio-waypoint` target attaches only from there.
    #[serde(default = "default_root_namespace")]
    pub root_namespace: String,
}

fn default_registry() -> String {
    "ghcr.io/meshplug".into()
}
fn default_tag() -> String {
    env!("CARGO_PKG_VERSION").into()
}
fn default_pull_policy() -> String {
    "IfNotPresent".into()
}
fn default_root_namespace() -> String {
    crate::deploy::istio_api::ROOT_NAMESPACE.into()
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            registry: default_registry(),
            tag: default_tag(),
            image_pull_policy: default_pull_policy(),
            image_pull_secret: None,
            fail_strategy: BTreeMap::new(),
            digests: BTreeMap::new(),
            module_dir: None,
            root_namespace: default_root_namespace(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Local {
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_admin_port")]
    pub admin_port: u16,
    #[serde(default = "default_upstreams")]
    pub upstreams: Vec<Upstream>,
    #[serde(default)]
    pub routes: Vec<Route>,
}

fn default_port() -> u16 {
    10000
}
fn default_admin_port() -> u16 {
    9901
}
fn default_upstreams() -> Vec<Upstream> {
    vec![Upstream { name: "echo".into(), http2: false }]
}

impl Default for Local {
    fn default() -> Self {
        Self { port: default_port(), admin_port: default_admin_port(), upstreams: default_upstreams(), routes: vec![] }
    }
}

/// An echo upstream started by the harness; the cluster of the same name points at it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Upstream {
    pub name: String,
    /// Envoy talks HTTP/2 (h2c) to it instead of HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
}

/// A route of the local Envoy: a path prefix and exact header values, to a cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Route {
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub cluster: String,
}

fn default_prefix() -> String {
    "/".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Workload {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Pod labels (`selector.matchLabels`). Exactly one of `selector`, `targetRefs` and
    /// `namespaceWide: true` is required: a WasmPlugin with neither applies to every workload of its
    /// namespace, which must be said, not fallen into.
    pub selector: Option<BTreeMap<String, String>>,
    /// Policy targets (`targetRefs`), e.g. `[{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]`.
    /// Kinds Istio accepts: Gateway and GatewayClass (`gateway.networking.k8s.io`), Service (core),
    /// ServiceEntry (`networking.istio.io`) — the last two attach to the service's waypoint.
    pub target_refs: Option<Vec<TargetRef>>,
    /// Every workload of the namespace (neither `selector` nor `targetRefs`).
    #[serde(default)]
    pub namespace_wide: bool,
    /// Which traffic: `SERVER` (inbound), `CLIENT` (outbound and gateways) or `CLIENT_AND_SERVER`.
    /// Default: each filter's own side (see [`default_mode`]); `CLIENT` for Gateway targets and
    /// `SERVER` for waypoint targets (Service, ServiceEntry, GatewayClass `istio-waypoint`).
    pub mode: Option<String>,
    /// Only these ports (1–65535). On the server side these are the **container ports** (a Service's
    /// `targetPort`), not the Service's ports: Istio matches inbound traffic by the port the pod
    /// listens on, and a Service port that differs silently skips the plugin.
    #[serde(default)]
    pub ports: Vec<u32>,
    /// Deploy the chain as one module (`meshplug.wasm`, one WasmPlugin) instead of one module per filter.
    /// Same behaviour, less per-request cost (see BENCHMARKS.md). `meshplug render/up --bundle` sets it
    /// for every workload.
    #[serde(default)]
    pub bundle: bool,
    pub filters: Vec<FilterEntry>,
}

impl Workload {
    /// The traffic a module of this workload gets (`match[].mode`): the workload's `mode`, else
    /// `CLIENT` for Gateway targets, `SERVER` for waypoint targets, else the filter's own
    /// side ([`default_mode`]); a bundle takes its filters' common side (a bundle mixing sides needs
    /// `mode`, which `validate` says).
    pub fn mode(&self, module: &str) -> &str {
        if let Some(m) = &self.mode {
            return m;
        }
        if let Some(refs) = &self.target_refs {
            // Waypoint filters are matched as inbound (SERVER) traffic: listener_waypoint.go builds
            // them with ListenerClassSidecarInbound; gateway listeners are CLIENT.
            return if refs.iter().any(TargetRef::is_gateway) { "CLIENT" } else { "SERVER" };
        }
        if module == filters::BUNDLE.name {
            return self.filters.first().map_or("SERVER", |f| default_mode(&f.name));
        }
        default_mode(module)
    }

    /// The modules this workload deploys, in order: its filters, or the bundle with its filters as the
    /// chain.
    pub fn modules(&self) -> Vec<FilterEntry> {
        if !self.bundle {
            return self.filters.clone();
        }
        let chain = filters::bundle_config(self.filters.iter().map(|f| (f.name.as_str(), &f.plugin_config)));
        vec![FilterEntry { name: filters::BUNDLE.name.to_string(), plugin_config: chain }]
    }
}

/// A `targetRefs` entry (Istio's `PolicyTargetReference`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub kind: String,
    pub name: String,
    /// Istio refuses cross-namespace references; kept only to give that error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The target kinds Istio accepts, as (group, kind): `allowedTargetRefs` in istio/istio
/// `pkg/config/validation/validation.go` (1.29), the group `""` being core.
pub const TARGET_KINDS: [(&str, &str); 4] = [
    ("", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

impl TargetRef {
    /// Attaches to a gateway (Istio treats gateway listeners as `CLIENT` traffic).
    pub fn is_gateway(&self) -> bool {
        self.kind == "Gateway"
    }

    /// Attaches to a waypoint (ambient mode): a Service or ServiceEntry's waypoint, or every waypoint
    /// through GatewayClass `istio-waypoint`. Waypoints match plugins as SERVER traffic with port 0.
    pub fn is_waypoint(&self) -> bool {
        matches!(self.kind.as_str(), "Service" | "ServiceEntry" | "GatewayClass")
    }
}

/// The side a filter protects when the workload does not say: jwt-authz, rate-limit and fault guard
/// the server they run in front of (`SERVER`: inbound); canary steers the calls a workload makes
/// (`CLIENT`: outbound).
pub fn default_mode(filter: &str) -> &'static str {
    if filter == "canary" {
        "CLIENT"
    } else {
        "SERVER"
    }
}

fn default_namespace() -> String {
    "default".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilterEntry {
    /// One of the suite's filters (`fault`, ...).
    pub name: String,
    /// The filter's config, as it would go into a WasmPlugin's `pluginConfig`.
    #[serde(default = "empty_object")]
    pub plugin_config: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl Composition {
    /// Reads a composition file (YAML, or JSON which is YAML too).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let value: serde_json::Value =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::new("", format!("not valid YAML: {e}")))?;
        meshplug_common::config::parse_value(&value)
    }

    /// Reads a composition (every workload bundled when `bundle`) and refuses it, with every problem
    /// listed as `<file>: <pointer>: <reason>`, unless [`Composition::validate`] finds none: what every
    /// command that runs or renders a composition starts with.
    pub fn load_valid(path: &Path, bundle: bool) -> anyhow::Result<Self> {
        let c = Self::load(path)?.bundled(bundle);
        let errors = c.validate();
        if errors.is_empty() {
            return Ok(c);
        }
        let lines: Vec<String> = errors.iter().map(|e| format!("{}: {e}", path.display())).collect();
        anyhow::bail!("invalid composition:\n{}", lines.join("\n"))
    }

    /// The same composition with every workload deployed as a bundle (`--bundle`).
    pub fn bundled(mut self, bundle: bool) -> Self {
        if bundle {
            self.workloads.iter_mut().for_each(|w| w.bundle = true);
        }
        self
    }

    /// The named workload, or the only/first one.
    pub fn workload(&self, name: Option<&str>) -> anyhow::Result<&Workload> {
        match name {
            Some(n) => self.workloads.iter().find(|w| w.name == n).ok_or_else(|| {
                let known: Vec<_> = self.workloads.iter().map(|w| w.name.as_str()).collect();
                anyhow::anyhow!("no workload {n:?} in the composition; it has: {}", known.join(", "))
            }),
            None => self.workloads.first().ok_or_else(|| anyhow::anyhow!("the composition has no workloads")),
        }
    }

    /// Every problem, each with its JSON pointer inside the composition: unknown filters, pluginConfigs
    /// the filter's own parser refuses, routes to unknown upstreams.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.workloads.is_empty() {
            errors.push(ConfigError::new("/workloads", "at least one workload is needed"));
        }
        for (w, workload) in self.workloads.iter().enumerate() {
            let wp = child("/workloads", w);
            errors.extend(chain_errors(workload, &wp));
        }
        errors.extend(self.defaults_errors());
        for (w, workload) in self.workloads.iter().enumerate() {
            let wp = child("/workloads", w);
            if !dns_label(&workload.name) {
                errors.push(ConfigError::new(
                    child(&wp, "name"),
                    "must be a DNS label (lower-case letters, digits, '-')",
                ));
            }
            if !dns_label(&workload.namespace) {
                errors.push(ConfigError::new(child(&wp, "namespace"), "must be a DNS label"));
            }
            if self.workloads.iter().take(w).any(|o| o.name == workload.name) {
                errors.push(ConfigError::new(child(&wp, "name"), format!("duplicate workload {:?}", workload.name)));
            }
            errors.extend(scope_errors(workload, &wp, &self.defaults.root_namespace));
            if workload.filters.is_empty() {
                errors.push(ConfigError::new(child(&wp, "filters"), "a workload needs at least one filter"));
            }
        }
        errors.extend(self.route_errors());
        errors
    }

    /// `defaults`: known modules with a fail strategy Istio knows, digests as `sha256:<hex>`, a pull
    /// policy Istio knows.
    fn defaults_errors(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        const FAIL: [&str; 3] = ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"];
        for (name, strategy) in &self.defaults.fail_strategy {
            let p = child("/defaults/failStrategy", name);
            if filters::module(name).is_none() {
                errors.push(ConfigError::new(
                    p.clone(),
                    format!("unknown module {name:?}; known: {}", filters::module_names()),
                ));
            }
            if !FAIL.contains(&strategy.as_str()) {
                errors.push(ConfigError::new(
                    p,
                    format!("{strategy:?} is not one of FAIL_CLOSE, FAIL_OPEN, FAIL_RELOAD"),
                ));
            }
        }
        for (name, digest) in &self.defaults.digests {
            let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                errors.push(ConfigError::new(
                    child("/defaults/digests", name),
                    "expected sha256:<64 lower-case hex digits>",
                ));
            }
        }
        if !["IfNotPresent", "Always"].contains(&self.defaults.image_pull_policy.as_str()) {
            errors.push(ConfigError::new("/defaults/imagePullPolicy", "expected IfNotPresent or Always"));
        }
        errors
    }

    /// `local.routes`: each to an upstream the composition names.
    fn route_errors(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let upstreams: Vec<&str> = self.local.upstreams.iter().map(|u| u.name.as_str()).collect();
        for (r, route) in self.local.routes.iter().enumerate() {
            if !upstreams.contains(&route.cluster.as_str()) {
                errors.push(ConfigError::new(
                    child(&child("/local/routes", r), "cluster"),
                    format!("no upstream named {:?}; upstreams: {}", route.cluster, upstreams.join(", ")),
                ));
            }
        }
        errors
    }
}

/// A workload's chain: known filters, each pluginConfig through the filter's own parser, a filter at
/// most once in a bundle.
fn chain_errors(workload: &Workload, wp: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (f, entry) in workload.filters.iter().enumerate() {
        let fp = child(&child(wp, "filters"), f);
        match filters::lookup(&entry.name) {
            None => errors.push(ConfigError::new(
                child(&fp, "name"),
                format!("unknown filter {:?}; known: {}", entry.name, filters::names()),
            )),
            Some(kind) => {
                let bytes = entry.plugin_config.to_string();
                if let Err(e) = (kind.validate)(bytes.as_bytes()) {
                    errors.push(e.under(&child(&fp, "pluginConfig")));
                }
            }
        }
        if workload.bundle && workload.filters.iter().take(f).any(|o| o.name == entry.name) {
            errors.push(ConfigError::new(
                child(&fp, "name"),
                format!("{} is listed twice; a bundle runs each filter at most once", entry.name),
            ));
        }
    }
    errors
}

/// Where a workload's plugins attach, checked as Istio would apply them: exactly one of `selector`,
/// `targetRefs`, `namespaceWide`; target kinds Istio accepts, in the workload's namespace; a `mode` that
/// can match the targets' listeners; ports 1–65535. The listener matching mirrored is
/// `matchTrafficSelectors` in istio/istio `pilot/pkg/model/extensions.go` (1.29): gateways are `CLIENT`,
/// waypoints (Service/ServiceEntry targets, GatewayClass `istio-waypoint` from the root namespace:
/// `ShouldAttachPolicy` in `pilot/pkg/model/policyattachment.go`) `SERVER` with port 0.
fn scope_errors(w: &Workload, wp: &str, root_namespace: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let scopes = [w.selector.is_some(), w.target_refs.is_some(), w.namespace_wide].iter().filter(|s| **s).count();
    if scopes == 0 {
        errors.push(ConfigError::new(
            wp,
            "needs `selector` (pod labels) or `targetRefs`: without them Istio applies the plugins to every \
             workload of the namespace; say `namespaceWide: true` if that is meant",
        ));
    } else if scopes > 1 {
        errors.push(ConfigError::new(wp, "exactly one of `selector`, `targetRefs` and `namespaceWide: true`"));
    }
    errors.extend(selector_errors(w, wp));
    let (target_errors, kinds) = target_errors(w, wp, root_namespace);
    errors.extend(target_errors);
    errors.extend(mode_and_port_errors(w, wp, &kinds));
    errors
}

/// A `selector` names at least one label, without wildcards.
fn selector_errors(w: &Workload, wp: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Some(sel) = &w.selector {
        if sel.is_empty() {
            errors.push(ConfigError::new(
                child(wp, "selector"),
                "no labels: this selects every workload; use `namespaceWide: true` if that is meant",
            ));
        }
        for (k, v) in sel {
            if k.is_empty() || k.contains('*') || v.contains('*') {
                errors.push(ConfigError::new(
                    child(&child(wp, "selector"), k),
                    "labels must be non-empty and without wildcards",
                ));
            }
        }
    }
    errors
}

/// `targetRefs`: kinds Istio accepts, in the workload's namespace, named; GatewayClass only for
/// waypoints from the root namespace; gateways and services not mixed. Also returns, per target,
/// whether it is a gateway.
fn target_errors(w: &Workload, wp: &str, root_namespace: &str) -> (Vec<ConfigError>, Vec<bool>) {
    let mut errors = Vec::new();
    let mut kinds = Vec::new();
    for (i, r) in w.target_refs.iter().flatten().enumerate() {
        let rp = child(&child(wp, "targetRefs"), i);
        if !TARGET_KINDS.contains(&(r.group.as_str(), r.kind.as_str())) {
            let known: Vec<String> = TARGET_KINDS
                .iter()
                .map(|(g, k)| if g.is_empty() { k.to_string() } else { format!("{g}/{k}") })
                .collect();
            errors.push(ConfigError::new(
                rp.clone(),
                format!("Istio cannot attach a WasmPlugin to {}/{}; targets: {}", r.group, r.kind, known.join(", ")),
            ));
        }
        if r.namespace.as_deref().is_some_and(|n| !n.is_empty()) {
            errors.push(ConfigError::new(
                child(&rp, "namespace"),
                "cross-namespace targets are not supported by Istio; leave it out",
            ));
        }
        if r.name.is_empty() {
            errors.push(ConfigError::new(child(&rp, "name"), "must not be empty"));
        }
        // policyattachment.go ShouldAttachPolicy: a GatewayClass target attaches only to waypoints,
        // only for the istio-waypoint class, and only from the root namespace; any other never applies.
        if r.kind == "GatewayClass" && r.name != WAYPOINT_CLASS {
            errors.push(ConfigError::new(
                child(&rp, "name"),
                format!(
                    "Istio attaches a GatewayClass target only for the `{WAYPOINT_CLASS}` class (every waypoint); \
                     for one gateway target its Gateway instead"
                ),
            ));
        }
        if r.kind == "GatewayClass" && w.namespace != root_namespace {
            errors.push(ConfigError::new(
                child(wp, "namespace"),
                format!(
                    "a GatewayClass target attaches only from the root namespace ({root_namespace:?}; \
                     `defaults.rootNamespace`); in {:?} it never applies: target the Service or ServiceEntry \
                     whose waypoint it is, or move the workload to the root namespace",
                    w.namespace
                ),
            ));
        }
        kinds.push(r.is_gateway());
    }
    if w.target_refs.as_ref().is_some_and(|r| r.is_empty()) {
        errors.push(ConfigError::new(child(wp, "targetRefs"), "at least one target"));
    }
    let gateway = kinds.iter().any(|g| *g);
    if gateway && kinds.iter().any(|g| !*g) {
        errors.push(ConfigError::new(
            child(wp, "targetRefs"),
            "gateways and services in one workload: their listeners match different modes; use two workloads",
        ));
    }
    (errors, kinds)
}

/// A `mode` that can match the targets' listeners (gateways are CLIENT, waypoints SERVER), an explicit
/// mode for a bundle of both sides, ports 1–65535 and none for waypoints (they match port 0).
/// `kinds`: per target, whether it is a gateway.
fn mode_and_port_errors(w: &Workload, wp: &str, kinds: &[bool]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let gateway = kinds.iter().any(|g| *g);
    match w.mode.as_deref() {
        None | Some("CLIENT_AND_SERVER") => {}
        Some(m @ ("SERVER" | "CLIENT")) => {
            if gateway && m == "SERVER" {
                errors.push(ConfigError::new(
                    child(wp, "mode"),
                    "gateway listeners are CLIENT traffic in Istio: SERVER never attaches to a Gateway target",
                ));
            }
            if !kinds.is_empty() && !gateway && m == "CLIENT" {
                errors.push(ConfigError::new(child(wp, "mode"), "a waypoint target (Service, ServiceEntry, GatewayClass istio-waypoint) attaches to waypoints, whose filters Istio matches as SERVER traffic (listener_waypoint.go): CLIENT never attaches"));
            }
        }
        Some(_) => errors.push(ConfigError::new(child(wp, "mode"), "expected SERVER, CLIENT or CLIENT_AND_SERVER")),
    }
    if w.mode.is_none() && w.bundle && w.target_refs.is_none() {
        let sides: std::collections::BTreeSet<&str> = w.filters.iter().map(|f| default_mode(&f.name)).collect();
        if sides.len() > 1 {
            errors.push(ConfigError::new(
                child(wp, "mode"),
                "a bundle of server-side filters (jwt-authz, rate-limit, fault) and client-side ones (canary) needs an explicit `mode`",
            ));
        }
    }
    for (i, p) in w.ports.iter().enumerate() {
        if !(1..=65535).contains(p) {
            errors.push(ConfigError::new(child(&child(wp, "ports"), i), format!("{p} is not a port (1-65535)")));
        }
    }
    if !w.ports.is_empty() && !kinds.is_empty() && !gateway {
        errors.push(ConfigError::new(
            child(wp, "ports"),
            "a waypoint (Service, ServiceEntry or GatewayClass target) matches plugins with port 0 (listener_waypoint.go): with ports the plugin never attaches",
        ));
    }
    errors
}

/// A Kubernetes DNS label: 1–63 of `a-z0-9-`, starting and ending alphanumeric.
pub fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_pointers_into_the_composition() {
        let c = Composition::parse(
            "workloads:\n- name: a\n  namespaceWide: true\n  filters:\n  - name: fault\n    pluginConfig: {rules: [{abort: {httpStatus: 42}}]}\n  - name: nope\n",
        )
        .unwrap();
        let errors = c.validate();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].pointer, "/workloads/0/filters/0/pluginConfig/rules/0/abort/httpStatus");
        assert_eq!(errors[1].pointer, "/workloads/0/filters/1/name");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = Composition::parse("workloads: []\nlocl: {}\n").unwrap_err();
        assert_eq!(e.pointer, "/locl");
    }
}
