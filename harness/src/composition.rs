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
    pub workloads: Vec<Workload>,
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
    pub filters: Vec<FilterEntry>,
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
