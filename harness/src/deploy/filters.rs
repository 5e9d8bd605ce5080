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

/// The bundle (`meshplug.wasm`): any chain of the filters in one module. Its pluginConfig is
/// `{"chain": [{"filter": <name>, "config": <the filter's pluginConfig>}, ...]}`.
pub const BUNDLE: FilterKind = FilterKind {
    name: meshplug::NAME,
    validate: |bytes| {
        meshplug::validate(bytes, |filter, config| match lookup(filter) {
            Some(kind) => (kind.validate)(config),
            None => Err(ConfigError::new("", format!("unknown filter {filter:?}"))),
        })
    },
    schema: bundle_schema,
};

/// A deployable module: one of the [`FILTERS`] or the [`BUNDLE`].
pub fn module(name: &str) -> Option<&'static FilterKind> {
    lookup(name).or(if name == BUNDLE.name { Some(&BUNDLE) } else { None })
}

/// The names of all modules, for error messages.
pub fn module_names() -> String {
    format!("{}, {}", names(), BUNDLE.name)
}

/// The bundle's pluginConfig for a chain of (filter, pluginConfig).
pub fn bundle_config<'a>(chain: impl IntoIterator<Item = (&'a str, &'a serde_json::Value)>) -> serde_json::Value {
    let entries: Vec<serde_json::Value> =
        chain.into_iter().map(|(filter, config)| serde_json::json!({"filter": filter, "config": config})).collect();
    serde_json::json!({ "chain": entries })
}

/// The bundle's JSON Schema: each chain entry is one filter with that filter's own schema (its
/// definitions moved to the top as `<filter>.<name>`).
fn bundle_schema() -> serde_json::Value {
    let mut defs = serde_json::Map::new();
    let entries: Vec<serde_json::Value> = FILTERS
        .iter()
        .map(|f| {
            let mut config = (f.schema)();
            rename_refs(&mut config, f.name);
            if let Some(o) = config.as_object_mut() {
                o.remove("$schema");
                if let Some(serde_json::Value::Object(own)) = o.remove("$defs") {
                    defs.extend(own.into_iter().map(|(k, v)| (format!("{}.{k}", f.name), v)));
                }
            }
            serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["filter"],
                "properties": { "filter": { "const": f.name }, "config": config },
            })
        })
        .collect();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "meshplug bundle pluginConfig",
        "description": "An ordered chain of meshplug filters, each with its usual pluginConfig; each filter at most once.",
        "type": "object",
        "additionalProperties": false,
        "required": ["chain"],
        "properties": { "chain": { "type": "array", "minItems": 1, "items": { "oneOf": entries } } },
        "$defs": defs,
    })
}

/// Points every `#/$defs/<name>` reference in `schema` at `#/$defs/<filter>.<name>`.
fn rename_refs(schema: &mut serde_json::Value, filter: &str) {
    match schema {
        serde_json::Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                match v {
                    serde_json::Value::String(r) if k == "$ref" => {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            *r = format!("#/$defs/{filter}.{name}");
                        }
                    }
                    _ => rename_refs(v, filter),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|v| rename_refs(v, filter)),
        _ => {}
    }
}

/// The names of all filters, for error messages.
pub fn names() -> String {
    FILTERS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

/// The workspace root (where the top-level Cargo.toml is).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// The target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .map(|p| if p.is_relative() { workspace_root().join(p) } else { p })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Where cargo puts the release Wasm modules, before they are finished ([`crate::deploy::finish`]).
pub fn cargo_module_dir() -> PathBuf {
    target_dir().join("wasm32-wasip1").join("release")
}

/// Where the modules we ship are: cargo's output, finished (`target/modules`). Everything that loads,
/// packages, pins or measures a module takes it from here.
pub fn module_dir() -> PathBuf {
    target_dir().join("modules")
}

/// The commands that build every module: the filters (the workspace's default members), then the
/// bundle in its own invocation (it links the filters without their `module` feature; see Cargo.toml).
pub const BUILD_COMMANDS: [&[&str]; 2] = [
    &["build", "--release", "--target", "wasm32-wasip1"],
    &["build", "--release", "--target", "wasm32-wasip1", "-p", "meshplug-bundle"],
];

/// Builds every module ([`BUILD_COMMANDS`]) and finishes each ([`finish_modules`]).
pub fn build_modules() -> anyhow::Result<()> {
    run_build_commands(&[])?;
    finish_modules().map(|_| ())
}

/// Runs [`BUILD_COMMANDS`] with `env` set for cargo (e.g. another profile setting or target directory).
pub fn run_build_commands(env: &[(&str, &std::ffi::OsStr)]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for args in BUILD_COMMANDS {
        let status = std::process::Command::new(&cargo)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(workspace_root())
            .status()?;
        anyhow::ensure!(status.success(), "`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Finishes every module cargo built (the filters, the bundle, the test fixtures) into
/// [`module_dir`], which it returns; a module already finished from the same bytes is left as it is.
pub fn finish_modules() -> anyhow::Result<PathBuf> {
    let mut files: Vec<String> = std::fs::read_dir(cargo_module_dir())
        .map_err(|e| {
            anyhow::anyhow!("{}: {e}; build the modules first (`meshplug build`)", cargo_module_dir().display())
        })?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".wasm"))
        .collect();
    files.sort();
    for file in files {
        module_file(&file)?;
    }
    Ok(module_dir())
}

/// The shipped module `file` (e.g. `noop.wasm`, a test fixture), finished from cargo's output if
/// that changed; fails with a hint when cargo has not built it.
pub fn module_file(file: &str) -> anyhow::Result<PathBuf> {
    let built = cargo_module_dir().join(file);
    anyhow::ensure!(
        built.is_file(),
        "{} is missing: build the modules with `meshplug build` (or `cargo {}`, then `cargo {}`, at the workspace root)",
        built.display(),
        BUILD_COMMANDS[0].join(" "),
        BUILD_COMMANDS[1].join(" ")
    );
    crate::deploy::finish::finished(&cargo_module_dir(), &module_dir(), file)
}

/// The shipped module of `filter` (or of the bundle); fails with a hint when it has not been built.
pub fn module_path(filter: &str) -> anyhow::Result<PathBuf> {
    let kind = module(filter).ok_or_else(|| anyhow::anyhow!("unknown module {filter:?}; known: {}", module_names()))?;
    module_file(&kind.module_file())
}

/// The modules' sizes as a Markdown table, as cargo built them and as shipped (finished); `meshplug
/// bench` prints it under its figures. A module not built is left out.
pub fn size_table() -> String {
    let mut out = String::from(
        "| Module | cargo build (bytes) | shipped (bytes) | shipped KiB |\n| --- | ---: | ---: | ---: |\n",
    );
    for f in FILTERS.iter().chain([&BUNDLE]) {
        let built = std::fs::metadata(cargo_module_dir().join(f.module_file())).map(|m| m.len());
        let shipped = module_path(f.name).and_then(|p| Ok(std::fs::metadata(p)?.len()));
        if let (Ok(built), Ok(shipped)) = (built, shipped) {
            out.push_str(&format!("| {} | {built} | {shipped} | {:.0} |\n", f.module_file(), shipped as f64 / 1024.0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundle's own list (it cannot link the harness) names the same filters as [`FILTERS`].
    #[test]
    fn the_bundle_contains_every_filter() {
        let mut harness: Vec<&str> = FILTERS.iter().map(|f| f.name).collect();
        let mut bundle = meshplug::FILTERS.to_vec();
        harness.sort_unstable();
        bundle.sort_unstable();
        assert_eq!(harness, bundle);
    }
}
