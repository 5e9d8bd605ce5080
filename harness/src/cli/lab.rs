//! Commands that run things locally: `up` (with or without `--istio`), `render-envoy`, `which-envoy`,
//! `demo-token`.

use clap::Args;
use meshplug_harness::deploy::composition::Composition;
use meshplug_harness::deploy::filters::{build_modules, workspace_root};
use meshplug_harness::istio::istiod::ListenerClass;
use meshplug_harness::istio::lab::IstioOptions;
use meshplug_harness::lab::{demo, envoy, local};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
enum ListenerArg {
    Inbound,
    Outbound,
    Gateway,
}

#[derive(Args)]
pub struct Up {
    /// The composition (not with --istio).
    #[arg(required_unless_present = "istio", conflicts_with = "istio")]
    composition: Option<PathBuf>,
    /// Run a directory of rendered WasmPlugins as istiod and istio-agent deliver them (ECDS from
    /// watched files, the agent's fetch and cache, the RBAC stand-in on a fetch failure); edits to
    /// the directory are applied while Envoy runs.
    #[arg(long, value_name = "DIR")]
    istio: Option<PathBuf>,
    /// With --istio: the listener the plugins are matched against (default: inbound, or outbound
    /// / gateway when every plugin is CLIENT-side).
    #[arg(long, value_enum, requires = "istio")]
    listener: Option<ListenerArg>,
    /// With --istio: the container port the listener stands for (matched against `match[].ports`).
    #[arg(long, requires = "istio")]
    target_port: Option<u16>,
    /// With --istio: fetch the images from the URLs as written instead of a local registry holding
    /// this machine's builds.
    #[arg(long, requires = "istio")]
    no_mirror: bool,
    /// With --istio: the mesh's root namespace (meshConfig `rootNamespace`; default istio-system).
    #[arg(long, requires = "istio")]
    root_namespace: Option<String>,
    /// With --istio: listener and admin ports (default 10000 and 9901).
    #[arg(long, requires = "istio", default_value_t = 10000)]
    port: u16,
    #[arg(long, requires = "istio", default_value_t = 9901)]
    admin_port: u16,
    /// The workload whose chain to run (default: the first).
    #[arg(long)]
    workload: Option<String>,
    /// Envoy binary (else ENVOY_BIN, ENVOY_PATH, func-e, .venv, PATH).
    #[arg(long)]
    envoy: Option<PathBuf>,
    /// Do not rebuild the filter modules first.
    #[arg(long)]
    no_build: bool,
    /// Deploy every workload's chain as one bundle module (meshplug.wasm) instead of one module per
    /// filter (same as `bundle: true` on each workload).
    #[arg(long)]
    bundle: bool,
}

impl Up {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Some(dir) = self.istio else {
            let path = self.composition.ok_or_else(|| anyhow::anyhow!("a composition, or --istio DIR"))?;
            // The composition is checked before the (slow) build.
            let c = Composition::load_valid(&path, self.bundle)?;
            if !self.no_build {
                build_modules()?;
            }
            local::up(&c, self.workload.as_deref(), self.envoy)?;
            return Ok(ExitCode::SUCCESS);
        };
        if !self.no_build {
            build_modules()?;
        }
        let mut opts = IstioOptions::new(&dir);
        opts.class = self.listener.map(|l| match l {
            ListenerArg::Inbound => ListenerClass::SidecarInbound,
            ListenerArg::Outbound => ListenerClass::SidecarOutbound,
            ListenerArg::Gateway => ListenerClass::Gateway,
        });
        opts.target_port = self.target_port;
        opts.root_namespace = self.root_namespace;
        opts.mirror = !self.no_mirror;
        opts.port = self.port;
        opts.admin_port = self.admin_port;
        opts.envoy = self.envoy;
        meshplug_harness::istio::lab::up(opts)?;
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct RenderEnvoy {
    composition: PathBuf,
    #[arg(long)]
    workload: Option<String>,
    /// Port of the echo upstreams in the rendered config.
    #[arg(long, default_value_t = 8080)]
    upstream_port: u16,
    /// Write module paths relative to this directory (default: absolute paths).
    #[arg(long)]
    module_dir: Option<PathBuf>,
    /// Deploy every workload's chain as one bundle module (meshplug.wasm) instead of one module per
    /// filter (same as `bundle: true` on each workload).
    #[arg(long)]
    bundle: bool,
}

impl RenderEnvoy {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let c = Composition::load_valid(&self.composition, self.bundle)?;
        print!(
            "{}",
            local::render_envoy(&c, self.workload.as_deref(), self.upstream_port, self.module_dir.as_deref())?
        );
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct WhichEnvoy {
    #[arg(long)]
    envoy: Option<PathBuf>,
}

impl WhichEnvoy {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let found = envoy::find_envoy(self.envoy.as_deref(), &workspace_root()).map_err(anyhow::Error::msg)?;
        println!("{} (found via {})", found.path.display(), found.source);
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct DemoToken {
    #[arg(long, default_value = "alice")]
    sub: String,
    /// Extra claims as a JSON object, e.g. '{"groups":["payments"]}'.
    #[arg(long, default_value = "{}")]
    claims: String,
    /// Print the demo key's public JWKS instead of a token.
    #[arg(long)]
    jwks: bool,
}

impl DemoToken {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        println!("{}", if self.jwks { demo::jwks() } else { demo::token(&self.sub, &self.claims)? });
        Ok(ExitCode::SUCCESS)
    }
}
