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

use crate::filters;
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
    /// Pod labels (`selector.matchLabels`); at most one of `selector` and `targetRefs`.
    pub selector: Option<BTreeMap<String, String>>,
    /// Gateway API targets (`targetRefs`), e.g. `[{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]`.
    pub target_refs: Option<Vec<serde_json::Value>>,
    /// Which traffic: `SERVER` (inbound), `CLIENT` (outbound) or `CLIENT_AND_SERVER`.
    pub mode: Option<String>,
    /// Only these ports.
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
            for (f, entry) in workload.filters.iter().enumerate() {
                let fp = child(&child(&wp, "filters"), f);
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
        }
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
            if workload.selector.is_some() && workload.target_refs.is_some() {
                errors.push(ConfigError::new(wp.clone(), "at most one of `selector` and `targetRefs`"));
            }
            if let Some(m) = &workload.mode {
                if !["SERVER", "CLIENT", "CLIENT_AND_SERVER"].contains(&m.as_str()) {
                    errors.push(ConfigError::new(child(&wp, "mode"), "expected SERVER, CLIENT or CLIENT_AND_SERVER"));
                }
            }
            if workload.filters.is_empty() {
                errors.push(ConfigError::new(child(&wp, "filters"), "a workload needs at least one filter"));
            }
        }
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
            "workloads:\n- name: a\n  filters:\n  - name: fault\n    pluginConfig: {rules: [{abort: {httpStatus: 42}}]}\n  - name: nope\n",
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
