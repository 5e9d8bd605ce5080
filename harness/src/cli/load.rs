//! Commands that put load on a lab: `bench` and `soak`.

use clap::Args;
use meshplug_harness::deploy::filters::{build_modules, workspace_root};
use meshplug_harness::lab::envoy::find_envoy;
use meshplug_harness::load::{bench, profile, soak};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct Bench {
    /// The suite: `all` (default: every case below in one run), `rate-limit`, `jwt-authz`, `canary`,
    /// `fault` or `chain`; not in `all`: `steps`, `hostcalls`, `global`, `finish`, `calls` (host calls
    /// counted per request, not timed) and `profile` (where each Wasm case's module time goes, sampled
    /// under Node's V8; not timed in Envoy).
    #[arg(default_value = "all")]
    suite: String,
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds of load per case and round.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 16)]
    connections: u32,
    #[arg(long)]
    envoy: Option<PathBuf>,
    /// Also write the run as an SVG bar chart of each case's µs added over bare Envoy to this file
    /// (default: bench-<suite>.svg under the target directory).
    #[arg(long)]
    chart: Option<PathBuf>,
    /// A directory of other builds of the modules (same file names, e.g. another commit's
    /// target/modules): every Wasm case also runs with those, in the same rounds, compared with the
    /// case as built here.
    #[arg(long)]
    against: Option<PathBuf>,
    /// `profile` only: requests profiled per case.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// `profile` only: functions listed per case.
    #[arg(long, default_value_t = 12)]
    top: usize,
}

impl Bench {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.suite == "profile" {
            anyhow::ensure!(self.against.is_none(), "--against does not apply to `bench profile`");
            println!("{}", profile::report(&bench::suite("profile")?, self.requests, self.top)?);
            return Ok(ExitCode::SUCCESS);
        }
        let envoy = find_envoy(self.envoy.as_deref(), &workspace_root()).map_err(anyhow::Error::msg)?;
        let opts = bench::BenchOptions {
            envoy,
            rounds: self.rounds,
            duration: Duration::from_secs(self.seconds),
            connections: self.connections,
        };
        let chart = self.chart.unwrap_or_else(|| {
            meshplug_harness::deploy::filters::target_dir().join(format!("bench-{}.svg", self.suite))
        });
        println!("{}", bench::report(&self.suite, &opts, Some(&chart), self.against.as_deref())?);
        if self.suite != "calls" {
            println!("chart: {}", chart.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct Soak {
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Run the chain as one bundle module (meshplug.wasm) instead of four modules.
    #[arg(long)]
    bundle: bool,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Hostile requests per 100 ordinary ones.
    #[arg(long, default_value_t = 5)]
    hostile_percent: u64,
    #[arg(long)]
    composition: Option<PathBuf>,
    #[arg(long)]
    envoy: Option<PathBuf>,
    /// Do not rebuild the filter modules first.
    #[arg(long)]
    no_build: bool,
}

impl Soak {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if !self.no_build {
            build_modules()?;
        }
        let mut opts = soak::SoakOptions::new(Duration::from_secs_f64(self.minutes * 60.0));
        opts.bundle = self.bundle;
        opts.connections = self.connections;
        opts.hostile_percent = self.hostile_percent;
        opts.envoy = self.envoy;
        if let Some(c) = self.composition {
            opts.composition = c;
        }
        eprintln!("meshplug soak: {} min, {} ...", self.minutes, opts.composition.display());
        let report = soak::run(&opts)?;
        println!("{}", report.summary(&opts));
        Ok(if report.met_targets() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}
