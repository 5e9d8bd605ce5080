//! The filters meshplug knows: their names, Wasm modules and config parsers (the filters' own code,
//! compiled natively, so `validate` accepts exactly what the filter accepts in Envoy).

use meshplug_common::config::ConfigError;
use std::path::PathBuf;

/// One filter of the suite.
#[derive(Debug, Clone, Copy)]
pub struct FilterKind {
    /// Its one name: directory `filters/<name>`, crate `<name>`, WasmPlugin `<name>`.
    pub name: &'static str,
    /// Checks a pluginConfig with the filter's own parser.
    pub validate: fn(&[u8]) -> Result<(), ConfigError>,
    /// The JSON Schema of the pluginConfig, generated from the config types.
    pub schema: fn() -> serde_json::Value,
}

impl FilterKind {
    /// The module file name: `rate-limit` → `rate_limit.wasm`.
    pub fn module_file(&self) -> String {
        format!("{}.wasm", self.name.replace('-', "_"))
    }
}

/// Every filter, in the order they usually run.
pub const FILTERS: &[FilterKind] = &[
    FilterKind {
        name: "jwt-authz",
        validate: |bytes| {
            let mut random = meshplug_common::host::SeededRandom::new(0);
            jwt_authz::logic::JwtAuthz::from_json(bytes, "validate", &mut random).map(|_| ())
        },
        schema: || schema::<jwt_authz::config::JwtAuthzConfig>(),
    },
    FilterKind {
        name: "rate-limit",
        validate: |bytes| rate_limit::logic::RateLimit::from_json(bytes, "validate").map(|_| ()),
        schema: || schema::<rate_limit::config::RateLimitConfig>(),
    },
    FilterKind {
        name: "fault",
        validate: |bytes| fault::config::FaultConfig::from_json(bytes).map(|_| ()),
        schema: || schema::<fault::config::FaultConfig>(),
    },
    FilterKind {
        name: "canary",
        validate: |bytes| canary::config::CanaryConfig::from_json(bytes).map(|_| ()),
        schema: || schema::<canary::config::CanaryConfig>(),
    },
];

fn schema<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

pub fn lookup(name: &str) -> Option<&'static FilterKind> {
    FILTERS.iter().find(|f| f.name == name)
}

/// The names of all filters, for error messages.
pub fn names() -> String {
    FILTERS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

/// The workspace root (where the top-level Cargo.toml is).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// Where cargo puts the release Wasm modules, honouring `CARGO_TARGET_DIR`.
pub fn module_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .map(|p| if p.is_relative() { workspace_root().join(p) } else { p })
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("wasm32-wasip1").join("release")
}

/// Builds every filter module (`cargo build --release --target wasm32-wasip1` at the root).
pub fn build_modules() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip1"])
        .current_dir(workspace_root())
        .status()?;
    anyhow::ensure!(status.success(), "building the filter modules failed ({status})");
    Ok(())
}

/// The module of `filter`; fails with a hint when it has not been built.
pub fn module_path(filter: &str) -> anyhow::Result<PathBuf> {
    let kind = lookup(filter).ok_or_else(|| anyhow::anyhow!("unknown filter {filter:?}; known: {}", names()))?;
    let path = module_dir().join(kind.module_file());
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build the filters with `cargo build --release --target wasm32-wasip1` at the workspace root",
        path.display()
    );
    Ok(path)
}
