//! Commands that make what we ship: `build`, `validate`, `render`, `package`, `push`, `pull`, `schema`.

use clap::Args;
use meshplug_harness::deploy::composition::Composition;
use meshplug_harness::deploy::oci::{self, Format};
use meshplug_harness::deploy::render::{self, RenderOptions};
use meshplug_harness::deploy::{filters, manifests};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct Build {}

impl Build {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        filters::build_modules()?;
        println!("modules in {}:\n{}", filters::module_dir().display(), filters::size_table());
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct Validate {
    path: PathBuf,
}

impl Validate {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let path = &self.path;
        let (what, errors) = if path.is_dir() {
            let (count, errors) = manifests::check_dir(path)?;
            (format!("{count} resource(s)"), errors.iter().map(ToString::to_string).collect::<Vec<_>>())
        } else {
            let c = Composition::load(path)?;
            let errors = c.validate().iter().map(|e| format!("{}: {e}", path.display())).collect();
            (format!("{} workload(s)", c.workloads.len()), errors)
        };
        if errors.is_empty() {
            println!("{}: ok ({what})", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        for e in &errors {
            eprintln!("{e}");
        }
        Ok(ExitCode::FAILURE)
    }
}

#[derive(Args)]
pub struct Render {
    composition: PathBuf,
    #[arg(short, long)]
    out: PathBuf,
    /// EnvoyFilter resources instead of WasmPlugins.
    #[arg(long)]
    envoyfilter: bool,
    /// Do not pin `sha256` to the local builds' image digests (modules without `defaults.digests`
    /// are then rendered unpinned: replicas may run different builds).
    #[arg(long)]
    no_pin: bool,
    /// The image shape whose digest is pinned (as `meshplug push --format`).
    #[arg(long, value_enum, default_value_t = Format::Compat)]
    format: Format,
    /// Deploy every workload's chain as one bundle module (meshplug.wasm) instead of one module per
    /// filter (same as `bundle: true` on each workload).
    #[arg(long)]
    bundle: bool,
}

impl Render {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let opts = RenderOptions {
            envoyfilter: self.envoyfilter,
            bundle: self.bundle,
            pin: !self.no_pin,
            format: self.format,
        };
        let written = render::render_composition(&self.composition, &self.out, opts)?;
        for (module, digest) in written.pinned {
            let format = self.format;
            eprintln!(
                "pinned {module} to {digest}: push this build (`meshplug push {module} <url> --format {format:?}`)"
            );
        }
        for path in written.files {
            println!("{}", path.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct Package {
    filter: String,
    /// Image shape: `compat` (one tar+gzip layer holding plugin.wasm) or `artifact` (two-layer Wasm artifact).
    #[arg(long, value_enum, default_value_t = Format::Compat)]
    format: Format,
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
    /// Output directory (default: <target>/oci/<filter>).
    #[arg(short, long)]
    out: Option<PathBuf>,
}

impl Package {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let (module, digest, dir) = oci::package(&self.filter, self.format, &self.tag, self.out.as_deref())?;
        println!("{} ({}): {digest} → {}", self.filter, module.display(), dir.display());
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct Push {
    filter: String,
    target: String,
    /// Image shape: `compat` (one tar+gzip layer holding plugin.wasm) or `artifact` (two-layer Wasm artifact).
    #[arg(long, value_enum, default_value_t = Format::Compat)]
    format: Format,
}

impl Push {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let digest = oci::push_module(&self.filter, &self.target, self.format)?;
        println!("{}@{digest}", self.target);
        println!("render with: defaults.digests.{}: \"{digest}\"", self.filter);
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct Pull {
    url: String,
    /// The WasmPlugin `sha256` to check (the manifest digest, hex).
    #[arg(long)]
    sha256: Option<String>,
    #[arg(short, long)]
    out: PathBuf,
}

impl Pull {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let (digest, wasm) = oci::pull(&self.url, self.sha256.as_deref())?;
        std::fs::write(&self.out, &wasm)?;
        println!("{}@sha256:{digest}: {} bytes → {}", self.url, wasm.len(), self.out.display());
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct Schema {
    filter: String,
}

impl Schema {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let kind = filters::module(&self.filter)
            .ok_or_else(|| anyhow::anyhow!("unknown module {:?}; known: {}", self.filter, filters::module_names()))?;
        println!("{}", serde_json::to_string_pretty(&(kind.schema)())?);
        Ok(ExitCode::SUCCESS)
    }
}
