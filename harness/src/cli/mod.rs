//! The command table: one variant per command, its arguments in the file of its group — [`lab`]
//! (`up`, `render-envoy`, `which-envoy`, `demo-token`), [`deploy`] (`build`, `validate`, `render`, `package`,
//! `push`, `pull`, `schema`), [`load`] (`bench`, `soak`). Each command maps its arguments onto one call
//! into the library and prints what it returns; nothing here is needed by a test of the library.

mod deploy;
mod lab;
mod load;

use clap::{Parser, Subcommand};
use meshplug_harness::deploy::filters::workspace_root;
use meshplug_harness::lab::envoy;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "meshplug", version, about = "Envoy proxy-wasm filters: run, check and render compositions")]
pub struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Run this Envoy version (installed by `scripts/setup --envoy <version>`; default: 1.40.0, or
    /// the MESHPLUG_ENVOY_VERSION variable). `--envoy <path>` still wins.
    #[arg(long, global = true, value_name = "VERSION")]
    envoy_version: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a local Envoy with a workload's filter chain and echo upstreams until Ctrl-C.
    Up(lab::Up),
    /// Build every module (cargo, release, wasm32-wasip1) and finish it as shipped (binaryen: the
    /// callbacks no module uses taken out) into target/modules; print their sizes.
    Build(deploy::Build),
    /// Check a composition (every pluginConfig through the filter's own parser), or a directory of
    /// manifests (Istio 1.29 CRD schemas plus meshplug's checks). Errors name file, resource, JSON pointer.
    Validate(deploy::Validate),
    /// Render a composition's workloads as Istio WasmPlugins (or EnvoyFilters) with a kustomization each.
    Render(deploy::Render),
    /// Print the Envoy bootstrap `meshplug up` would run (upstreams on the given port, default 8080).
    RenderEnvoy(lab::RenderEnvoy),
    /// Benchmark side by side with wrk (Envoy pinned to CPU 0, wrk to CPU 1), print a table.
    Bench(load::Bench),
    /// Soak: all four filters chained (examples/soak/composition.yaml) under steady load with hostile
    /// requests mixed in; prints requests, unintended answers, VM restarts and Envoy's RSS at start and
    /// end. Targets: 0 unintended, 0 restarts, RSS growth < 5 % after warm-up. Exit 1 when missed.
    Soak(load::Soak),
    /// Print a JWT signed with the examples' demo key (filters/jwt-authz/testdata/rsa.pem, kid rsa-1,
    /// issuer https://auth.example.com), valid for an hour. For trying the examples only.
    DemoToken(lab::DemoToken),
    /// Build a module's OCI image (a filter, or `meshplug` for the bundle) (Wasm artifact istio-agent accepts) as an OCI layout directory.
    Package(deploy::Package),
    /// Push a filter's image to a registry: `meshplug push rate-limit oci://registry.example.com/meshplug/rate-limit:0.1.0`.
    /// Credentials from MESHPLUG_REGISTRY_USER / MESHPLUG_REGISTRY_PASSWORD; plain HTTP for 127.0.0.1/localhost.
    Push(deploy::Push),
    /// Pull a module the way istio-agent does (its acceptance rules, its reasons when it refuses) and
    /// write it to a file: `meshplug pull oci://127.0.0.1:5000/meshplug/fault:0.1.0 -o fault.wasm`.
    Pull(deploy::Pull),
    /// Print the JSON Schema of a module's pluginConfig (generated from its config types; `meshplug`: the bundle's).
    Schema(deploy::Schema),
    /// Say which Envoy binary would be used, and why.
    WhichEnvoy(lab::WhichEnvoy),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(v) = &cli.envoy_version {
        envoy::find_envoy_version(v, &workspace_root()).map_err(anyhow::Error::msg)?;
        // Every Envoy this process starts is looked up through this variable (harness/src/lab/envoy.rs).
        std::env::set_var(envoy::VERSION_VAR, v);
    }
    match cli.command {
        Cmd::Up(a) => a.run(),
        Cmd::Build(a) => a.run(),
        Cmd::RenderEnvoy(a) => a.run(),
        Cmd::WhichEnvoy(a) => a.run(),
        Cmd::DemoToken(a) => a.run(),
        Cmd::Validate(a) => a.run(),
        Cmd::Render(a) => a.run(),
        Cmd::Package(a) => a.run(),
        Cmd::Push(a) => a.run(),
        Cmd::Pull(a) => a.run(),
        Cmd::Schema(a) => a.run(),
        Cmd::Bench(a) => a.run(),
        Cmd::Soak(a) => a.run(),
    }
}
