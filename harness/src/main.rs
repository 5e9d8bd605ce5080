//! `meshplug`: run, check and render meshplug filter compositions.

use clap::{Parser, Subcommand};
use meshplug_harness::composition::Composition;
use meshplug_harness::envoy::find_envoy;
use meshplug_harness::filters::{build_modules, workspace_root};
use meshplug_harness::local::LabBuilder;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "meshplug", version, about = "Envoy proxy-wasm filters: run, check and render compositions")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Run this Envoy version (installed by `scripts/setup --envoy <version>`; default: 1.40.0, or
    /// the MESHPLUG_ENVOY_VERSION variable). `--envoy <path>` still wins.
    #[arg(long, global = true, value_name = "VERSION")]
    envoy_version: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ListenerArg {
    Inbound,
    Outbound,
    Gateway,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a local Envoy with a workload's filter chain and echo upstreams until Ctrl-C.
    Up {
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
    },
    /// Check a composition (every pluginConfig through the filter's own parser), or a directory of
    /// manifests (Istio 1.29 CRD schemas plus meshplug's checks). Errors name file, resource, JSON pointer.
    Validate { path: PathBuf },
    /// Render a composition's workloads as Istio WasmPlugins (or EnvoyFilters) with a kustomization each.
    Render {
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
        #[arg(long, value_enum, default_value_t = meshplug_harness::oci::Format::Compat)]
        format: meshplug_harness::oci::Format,
        /// Deploy every workload's chain as one bundle module (meshplug.wasm) instead of one module per
        /// filter (same as `bundle: true` on each workload).
        #[arg(long)]
        bundle: bool,
    },
    /// Print the Envoy bootstrap `meshplug up` would run (upstreams on the given port, default 8080).
    RenderEnvoy {
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
    },
    /// Benchmark side by side with wrk (Envoy pinned to CPU 0, wrk to CPU 1), print a table.
    Bench {
        /// The suite: `all` (default: every case below in one run), `rate-limit`, `jwt-authz`, `canary`,
        /// `fault` or `chain`.
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
    },
    /// Soak: all four filters chained (examples/soak/composition.yaml) under steady load with hostile
    /// requests mixed in; prints requests, unintended answers, VM restarts and Envoy's RSS at start and
    /// end. Targets: 0 unintended, 0 restarts, RSS growth < 5 % after warm-up. Exit 1 when missed.
    Soak {
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
    },
    /// Print a JWT signed with the examples' demo key (filters/jwt-authz/testdata/rsa.pem, kid rsa-1,
    /// issuer https://auth.example.com), valid for an hour. For trying the examples only.
    DemoToken {
        #[arg(long, default_value = "alice")]
        sub: String,
        /// Extra claims as a JSON object, e.g. '{"groups":["payments"]}'.
        #[arg(long, default_value = "{}")]
        claims: String,
        /// Print the demo key's public JWKS instead of a token.
        #[arg(long)]
        jwks: bool,
    },
    /// Build a module's OCI image (a filter, or `meshplug` for the bundle) (Wasm artifact istio-agent accepts) as an OCI layout directory.
    Package {
        filter: String,
        /// Image shape: `compat` (one tar+gzip layer holding plugin.wasm) or `artifact` (two-layer Wasm artifact).
        #[arg(long, value_enum, default_value_t = meshplug_harness::oci::Format::Compat)]
        format: meshplug_harness::oci::Format,
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        tag: String,
        /// Output directory (default: <target>/oci/<filter>).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Push a filter's image to a registry: `meshplug push rate-limit oci://registry.example.com/meshplug/rate-limit:0.1.0`.
    /// Credentials from MESHPLUG_REGISTRY_USER / MESHPLUG_REGISTRY_PASSWORD; plain HTTP for 127.0.0.1/localhost.
    Push {
        filter: String,
        target: String,
        /// Image shape: `compat` (one tar+gzip layer holding plugin.wasm) or `artifact` (two-layer Wasm artifact).
        #[arg(long, value_enum, default_value_t = meshplug_harness::oci::Format::Compat)]
        format: meshplug_harness::oci::Format,
    },
    /// Pull a module the way istio-agent does (its acceptance rules, its reasons when it refuses) and
    /// write it to a file: `meshplug pull oci://127.0.0.1:5000/meshplug/fault:0.1.0 -o fault.wasm`.
    Pull {
        url: String,
        /// The WasmPlugin `sha256` to check (the manifest digest, hex).
        #[arg(long)]
        sha256: Option<String>,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Print the JSON Schema of a module's pluginConfig (generated from its config types; `meshplug`: the bundle's).
    Schema { filter: String },
    /// Say which Envoy binary would be used, and why.
    WhichEnvoy {
        #[arg(long)]
        envoy: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meshplug: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(v) = &cli.envoy_version {
        meshplug_harness::envoy::find_envoy_version(v, &workspace_root()).map_err(anyhow::Error::msg)?;
        // Every Envoy this process starts is looked up through this variable (harness/src/envoy.rs).
        std::env::set_var(meshplug_harness::envoy::VERSION_VAR, v);
    }
    match cli.command {
        Cmd::Validate { path } if path.is_dir() => {
            let (count, errors) = meshplug_harness::manifests::check_dir(&path)?;
            if errors.is_empty() {
                println!("{}: ok ({count} resource(s))", path.display());
                return Ok(ExitCode::SUCCESS);
            }
            for e in &errors {
                eprintln!("{e}");
            }
            Ok(ExitCode::FAILURE)
        }
        Cmd::Render { composition, out, envoyfilter, bundle, no_pin, format } => {
            let mut c = Composition::load(&composition)?.bundled(bundle);
            check(&c, &composition)?;
            if !no_pin {
                for (module, digest) in meshplug_harness::render::pin_local_builds(&mut c, format)? {
                    eprintln!("pinned {module} to {digest}: push this build (`meshplug push {module} <url> --format {format:?}`)");
                }
            }
            let rendered = meshplug_harness::render::render(&c, envoyfilter)?;
            meshplug_harness::render::write(&rendered, &out)?;
            for path in rendered.keys() {
                println!("{}", out.join(path).display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Validate { path: composition } => {
            let c = Composition::load(&composition)?;
            let errors = c.validate();
            if errors.is_empty() {
                println!("{}: ok ({} workload(s))", composition.display(), c.workloads.len());
                return Ok(ExitCode::SUCCESS);
            }
            for e in &errors {
                eprintln!("{}: {e}", composition.display());
            }
            Ok(ExitCode::FAILURE)
        }
        Cmd::Soak { minutes, bundle, connections, hostile_percent, composition, envoy, no_build } => {
            if !no_build {
                build_modules()?;
            }
            let mut opts = meshplug_harness::soak::SoakOptions::new(std::time::Duration::from_secs_f64(minutes * 60.0));
            opts.bundle = bundle;
            opts.connections = connections;
            opts.hostile_percent = hostile_percent;
            opts.envoy = envoy;
            if let Some(c) = composition {
                opts.composition = c;
            }
            eprintln!("meshplug soak: {minutes} min, {} ...", opts.composition.display());
            let report = meshplug_harness::soak::run(&opts)?;
            println!("\nmeshplug soak --minutes {minutes}{}: Envoy with 2 workers, {connections} connections, {hostile_percent} hostile per 100\n", if bundle { " --bundle" } else { "" });
            println!("{}", report.table());
            let met = report.met_targets();
            println!(
                "\ntargets (0 unintended, 0 VM restarts, RSS growth < 5 %): {}",
                if met { "met" } else { "MISSED" }
            );
            Ok(if met { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Cmd::Bench { suite, rounds, seconds, connections, envoy } => {
            let binary = find_envoy(envoy.as_deref(), &workspace_root()).map_err(anyhow::Error::msg)?;
            let cases = meshplug_harness::bench::suite(&suite)?;
            let opts = meshplug_harness::bench::BenchOptions {
                envoy: binary.clone(),
                rounds,
                duration: std::time::Duration::from_secs(seconds),
                connections,
            };
            let results = meshplug_harness::bench::run(&cases, &opts);
            meshplug_harness::bench::stop_services();
            let results = results?;
            println!(
                "\nmeshplug bench {suite}: Envoy {} ({}), --concurrency 1 pinned to CPU 0; wrk -t1 -c{connections} -d{seconds}s \
                 pinned to CPU 1; direct_response route; median of {rounds} interleaved rounds\n",
                binary.path.display(),
                binary.source
            );
            println!("{}", meshplug_harness::bench::table(&results));
            println!("| Module | bytes | KiB |\n| --- | ---: | ---: |");
            let modules = meshplug_harness::filters::FILTERS.iter().chain([&meshplug_harness::filters::BUNDLE]);
            for f in modules {
                if let Ok(path) = meshplug_harness::filters::module_path(f.name) {
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    println!("| {} | {} | {:.0} |", f.module_file(), size, size as f64 / 1024.0);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::DemoToken { jwks: true, .. } => {
            println!("{}", jwt_authz::testkit::jwks(&["rsa"]));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::DemoToken { sub, claims, .. } => {
            let extra: serde_json::Value = serde_json::from_str(&claims)?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let mut c = jwt_authz::testkit::claims(now, &sub);
            for (k, v) in extra.as_object().ok_or_else(|| anyhow::anyhow!("--claims must be a JSON object"))? {
                c.insert(k.clone(), v.clone());
            }
            println!("{}", jwt_authz::testkit::mint("RS256", "rsa", Some("rsa-1"), c));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Package { filter, format, tag, out } => {
            let module = meshplug_harness::filters::module_path(&filter)?;
            let img = meshplug_harness::oci::image(&std::fs::read(&module)?, format)?;
            let dir = out.unwrap_or_else(|| meshplug_harness::filters::module_dir().join("../../oci").join(&filter));
            meshplug_harness::oci::write_layout(&img, &dir, &tag)?;
            println!("{} ({}): {} → {}", filter, module.display(), img.digest, dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Pull { url, sha256, out } => {
            let (digest, wasm) = meshplug_harness::oci::pull(&url, sha256.as_deref())?;
            std::fs::write(&out, &wasm)?;
            println!("{url}@sha256:{digest}: {} bytes → {}", wasm.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Push { filter, target, format } => {
            let module = meshplug_harness::filters::module_path(&filter)?;
            let img = meshplug_harness::oci::image(&std::fs::read(&module)?, format)?;
            let digest = meshplug_harness::oci::push(&img, &target)?;
            anyhow::ensure!(
                digest == img.digest,
                "the registry stored manifest {digest}, not the one packaged ({})",
                img.digest
            );
            println!("{target}@{digest}");
            println!("render with: defaults.digests.{filter}: \"{digest}\"");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Schema { filter } => {
            let kind = meshplug_harness::filters::module(&filter).ok_or_else(|| {
                anyhow::anyhow!("unknown module {filter:?}; known: {}", meshplug_harness::filters::module_names())
            })?;
            println!("{}", serde_json::to_string_pretty(&(kind.schema)())?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::WhichEnvoy { envoy } => {
            let found = find_envoy(envoy.as_deref(), &workspace_root()).map_err(anyhow::Error::msg)?;
            println!("{} (found via {})", found.path.display(), found.source);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::RenderEnvoy { composition, workload, upstream_port, module_dir, bundle } => {
            let c = Composition::load(&composition)?.bundled(bundle);
            check(&c, &composition)?;
            let builder = LabBuilder::from_composition(&c, workload.as_deref())?;
            let config = builder.render_static(upstream_port, module_dir.as_deref())?;
            print!("{RENDERED_HEADER}{}", serde_yaml_ng::to_string(&config)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Up {
            istio: Some(dir),
            listener,
            target_port,
            no_mirror,
            root_namespace,
            port,
            admin_port,
            envoy,
            no_build,
            ..
        } => {
            if !no_build {
                build_modules()?;
            }
            let mirror = !no_mirror;
            up_istio(UpIstio { dir, listener, target_port, mirror, root_namespace, port, admin_port, envoy })
        }
        Cmd::Up { composition, workload, envoy, no_build, bundle, .. } => {
            let composition = composition.ok_or_else(|| anyhow::anyhow!("a composition, or --istio DIR"))?;
            let c = Composition::load(&composition)?.bundled(bundle);
            check(&c, &composition)?;
            if !no_build {
                build_modules()?;
            }
            let mut builder = LabBuilder::from_composition(&c, workload.as_deref())?;
            builder.envoy = envoy;
            let w = c.workload(workload.as_deref())?;
            let mut lab = builder.start()?;
            println!("Envoy {} (found via {})", lab.binary.path.display(), lab.binary.source);
            if let Some((rls, redis)) = &lab.rate_limit_service {
                println!(
                    "rate limit service: meshplug-rls on {} (Redis {}), for the global rules",
                    rls.addr,
                    redis.url()
                );
            }
            println!(
                "workload {:?}: {}{}",
                w.name,
                w.filters.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(" → "),
                if w.bundle { " (one bundle module, meshplug.wasm)" } else { "" }
            );
            for u in &lab.upstreams {
                println!("echo upstream {:?} on {}", u.name, u.addr);
            }
            println!("listening on {}   admin on http://{}", lab.envoy.url(), lab.envoy.admin);
            println!("\ntry:");
            if w.filters.iter().any(|f| f.name == "jwt-authz") {
                println!("  T=$(cargo run -q -p meshplug-harness -- demo-token --sub alice)   # signed by the examples' demo key");
                println!("  curl -si {}/hello -H \"authorization: Bearer $T\"", lab.envoy.url());
            }
            println!("  curl -si {}/hello", lab.envoy.url());
            println!("  curl -s http://{}/stats | grep meshplug", lab.envoy.admin);
            println!("\nCtrl-C stops Envoy and the upstreams.");
            let status = lab.envoy.wait()?;
            eprintln!("Envoy exited: {status}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `meshplug up --istio DIR`: runs the directory's WasmPlugins as a sidecar gets them and applies
/// edits to the directory while Envoy runs (polled every second).
struct UpIstio {
    dir: PathBuf,
    listener: Option<ListenerArg>,
    target_port: Option<u16>,
    mirror: bool,
    root_namespace: Option<String>,
    port: u16,
    admin_port: u16,
    envoy: Option<PathBuf>,
}

fn up_istio(args: UpIstio) -> anyhow::Result<ExitCode> {
    let UpIstio { dir, listener, target_port, mirror, root_namespace, port, admin_port, envoy } = args;
    use meshplug_harness::istio::istiod::ListenerClass;
    let mut opts = meshplug_harness::istio::lab::IstioOptions::new(&dir);
    opts.class = listener.map(|l| match l {
        ListenerArg::Inbound => ListenerClass::SidecarInbound,
        ListenerArg::Outbound => ListenerClass::SidecarOutbound,
        ListenerArg::Gateway => ListenerClass::Gateway,
    });
    opts.target_port = target_port;
    opts.root_namespace = root_namespace;
    opts.mirror = mirror;
    opts.port = port;
    opts.admin_port = admin_port;
    opts.envoy = envoy;
    meshplug_harness::istio::lab::up(opts)?;
    Ok(ExitCode::SUCCESS)
}

const RENDERED_HEADER: &str =
    "# Rendered by `meshplug render-envoy` from the composition next to it; do not edit by hand.\n";

fn check(c: &Composition, path: &std::path::Path) -> anyhow::Result<()> {
    let errors = c.validate();
    if errors.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = errors.iter().map(|e| format!("{}: {e}", path.display())).collect();
    anyhow::bail!("invalid composition:\n{}", lines.join("\n"))
}
