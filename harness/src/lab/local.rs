//! A local lab: echo upstreams plus a real Envoy running a chain of meshplug filters in front of them.
//! Used by `meshplug up` and by the end-to-end tests; dropping it stops Envoy, then the upstreams.

use crate::deploy::composition::{Composition, Upstream};
use crate::deploy::filters::{lookup, module, module_path, workspace_root, BUNDLE};
use crate::lab::bootstrap::{Cluster, RouteSpec, Setup, WasmFilter};
use crate::lab::echo::EchoServer;
use crate::lab::envoy::{find_envoy, EnvoyBinary};
use crate::lab::run::{EnvoyOptions, RunningEnvoy};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a rendered static config (`render-envoy`) expects the rate limit service of global rules.
pub const STATIC_RATE_LIMIT_SERVICE_PORT: u16 = 8081;

/// A running Envoy with its upstreams. Fields drop in order: Envoy first.
pub struct Lab {
    pub envoy: RunningEnvoy,
    pub upstreams: Vec<EchoServer>,
    pub binary: EnvoyBinary,
    /// The bootstrap Envoy was started with.
    pub config: Value,
    /// The rate limit service (meshplug-rls on a local Redis) a chain with global rules gets.
    pub rate_limit_service: Option<(meshplug_rls::Running, crate::lab::redis::RedisServer)>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LabBuilder {
    pub filters: Vec<(String, Value)>,
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<RouteSpec>,
    pub port: u16,
    pub admin_port: u16,
    pub concurrency: u32,
    pub envoy: Option<PathBuf>,
    /// Clusters to servers the caller runs itself (name, port on 127.0.0.1, HTTP/2), e.g. a JWKS stub
    /// or a gRPC rate limit service.
    pub extra_clusters: Vec<(String, u16, bool)>,
    /// Run the suite's filters as one bundle (`meshplug.wasm`) instead of one module each.
    pub bundle: bool,
    /// Envoy `failure_policy` per module name (default `FAIL_CLOSED`).
    pub failure_policies: BTreeMap<String, String>,
    /// Extra environment for the Envoy process.
    pub envoy_env: Vec<(String, String)>,
}

impl Default for LabBuilder {
    fn default() -> Self {
        Self {
            filters: vec![],
            upstreams: vec![Upstream { name: "echo".into(), http2: false }],
            routes: vec![],
            port: 0,
            admin_port: 0,
            concurrency: 2,
            envoy: None,
            extra_clusters: vec![],
            bundle: false,
            failure_policies: BTreeMap::new(),
            envoy_env: Vec::new(),
        }
    }
}

impl LabBuilder {
    /// Appends a filter to the chain.
    pub fn filter(mut self, name: &str, plugin_config: Value) -> Self {
        self.filters.push((name.into(), plugin_config));
        self
    }

    /// Sets Envoy's `failure_policy` (`FAIL_CLOSED`, `FAIL_OPEN`, `FAIL_RELOAD`) of the module `name`.
    pub fn failure_policy(mut self, name: &str, policy: &str) -> Self {
        self.failure_policies.insert(name.into(), policy.into());
        self
    }

    /// Runs the suite's filters in one bundle module (test fixtures stay separate and must come first).
    pub fn bundled(mut self, bundle: bool) -> Self {
        self.bundle = bundle;
        self
    }

    /// The modules Envoy runs, in order, with their pluginConfigs.
    pub fn modules(&self) -> anyhow::Result<Vec<(String, Value)>> {
        if !self.bundle {
            return Ok(self.filters.clone());
        }
        let (chain, fixtures): (Vec<_>, Vec<_>) = self.filters.iter().partition(|(name, _)| lookup(name).is_some());
        if let Some(first) = self.filters.iter().position(|(name, _)| lookup(name).is_some()) {
            anyhow::ensure!(
                self.filters.iter().skip(first).all(|(name, _)| lookup(name).is_some()),
                "a bundled chain keeps test fixtures before the suite's filters"
            );
        }
        let mut modules: Vec<(String, Value)> = fixtures.into_iter().cloned().collect();
        if !chain.is_empty() {
            let config =
                crate::deploy::filters::bundle_config(chain.iter().map(|(name, config)| (name.as_str(), config)));
            modules.push((BUNDLE.name.to_string(), config));
        }
        Ok(modules)
    }

    pub fn upstreams(mut self, upstreams: Vec<Upstream>) -> Self {
        self.upstreams = upstreams;
        self
    }

    /// Adds a cluster named `name` to a server on `127.0.0.1:port` that the caller runs.
    pub fn cluster(mut self, name: &str, port: u16) -> Self {
        self.extra_clusters.push((name.into(), port, false));
        self
    }

    /// Adds an HTTP/2 cluster named `name` to a gRPC server on `127.0.0.1:port` that the caller runs.
    pub fn grpc_cluster(mut self, name: &str, port: u16) -> Self {
        self.extra_clusters.push((name.into(), port, true));
        self
    }

    pub fn route(mut self, prefix: &str, headers: &[(&str, &str)], cluster: &str) -> Self {
        self.routes.push(RouteSpec {
            prefix: prefix.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            cluster: cluster.into(),
        });
        self
    }

    /// The chain and local settings of one workload of a composition, on the composition's ports.
    pub fn from_composition(c: &Composition, workload: Option<&str>) -> anyhow::Result<Self> {
        let w = c.workload(workload)?;
        Ok(Self {
            filters: w.filters.iter().map(|f| (f.name.clone(), f.plugin_config.clone())).collect(),
            bundle: w.bundle,
            upstreams: c.local.upstreams.clone(),
            routes: c
                .local
                .routes
                .iter()
                .map(|r| RouteSpec { prefix: r.prefix.clone(), headers: r.headers.clone(), cluster: r.cluster.clone() })
                .collect(),
            port: c.local.port,
            admin_port: c.local.admin_port,
            concurrency: 2,
            envoy: None,
            extra_clusters: vec![],
            failure_policies: BTreeMap::new(),
            envoy_env: Vec::new(),
        })
    }

    /// The Envoy bootstrap for upstreams listening on `ports` (by upstream name), with the modules
    /// from the build (which must exist).
    pub fn setup(&self, ports: &BTreeMap<String, u16>) -> anyhow::Result<Setup> {
        self.setup_with(ports, None)
    }

    /// Like [`LabBuilder::setup`]; with `module_dir`, module paths point into that directory instead
    /// (for configs committed to the repository, e.g. `target/modules`).
    pub fn setup_with(&self, ports: &BTreeMap<String, u16>, module_dir: Option<&Path>) -> anyhow::Result<Setup> {
        let filters = self
            .modules()?
            .iter()
            .map(|(name, config)| {
                let module = match module_dir {
                    Some(dir) => {
                        let kind = module(name).ok_or_else(|| anyhow::anyhow!("unknown module {name:?}"))?;
                        dir.join(kind.module_file())
                    }
                    // Test fixtures (e.g. `publish-claims`) are modules of the build that are not filters.
                    None => module_path(name).or_else(|e| {
                        crate::deploy::filters::module_file(&format!("{}.wasm", name.replace('-', "_"))).map_err(|_| e)
                    })?,
                };
                let mut filter = WasmFilter::new(name, module, config.clone());
                if let Some(policy) = self.failure_policies.get(name) {
                    filter.failure_policy = policy.clone();
                }
                Ok(filter)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let filters = unique_instances(filters);
        let clusters = self
            .upstreams
            .iter()
            .map(|u| Cluster { name: u.name.clone(), port: ports.get(&u.name).copied().unwrap_or(0), http2: u.http2 })
            .chain(self.extra_clusters.iter().map(|(name, port, http2)| Cluster {
                name: name.clone(),
                port: *port,
                http2: *http2,
            }))
            .collect();
        Ok(Setup {
            port: self.port,
            admin_port: self.admin_port,
            filters,
            clusters,
            routes: self.routes.clone(),
            native_filters: vec![],
            direct_response: None,
            raw_routes: None,
        })
    }

    /// The static bootstrap for a committed example: every upstream on `upstream_port`.
    /// A rate limit service the chain's global rules call is expected on 127.0.0.1:8081 (e.g.
    /// `meshplug-rls --config … --listen 127.0.0.1:8081`), under the cluster name the rules use.
    pub fn render_static(&self, upstream_port: u16, module_dir: Option<&Path>) -> anyhow::Result<Value> {
        let ports = self.upstreams.iter().map(|u| (u.name.clone(), upstream_port)).collect();
        let mut builder = self.clone();
        for (name, config) in &self.filters {
            if name != "rate-limit" {
                continue;
            }
            if let Ok(Some(need)) = crate::deploy::global::service_need(config) {
                if !builder.extra_clusters.iter().any(|(c, _, _)| *c == need.cluster) {
                    builder.extra_clusters.push((need.cluster, STATIC_RATE_LIMIT_SERVICE_PORT, true));
                }
            }
        }
        Ok(builder.setup_with(&ports, module_dir)?.render())
    }

    /// Starts the upstreams, then Envoy; returns when Envoy is ready.
    pub fn start(mut self) -> anyhow::Result<Lab> {
        let binary = find_envoy(self.envoy.as_deref(), &workspace_root()).map_err(anyhow::Error::msg)?;
        // Global rules whose service cluster the caller did not provide: run meshplug-rls on a local
        // Redis with the configuration `render` would generate, under that cluster name.
        let mut rate_limit_service = None;
        for (name, config) in &self.filters {
            if name != "rate-limit" {
                continue;
            }
            // An invalid config is Envoy's to refuse (the filter logs the field): no service for it.
            let Ok(Some(need)) = crate::deploy::global::service_need(config) else { continue };
            if self.extra_clusters.iter().any(|(c, _, _)| *c == need.cluster) {
                continue;
            }
            let redis = crate::lab::redis::RedisServer::start()?;
            let domains = meshplug_rls::parse_config(&serde_yaml_ng::to_string(
                &crate::deploy::global::ratelimit_config(&need),
            )?)?;
            let rls = meshplug_rls::start(
                domains,
                &redis.url(),
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                "meshplug-up:",
            )?;
            self.extra_clusters.push((need.cluster.clone(), rls.addr.port(), true));
            rate_limit_service = Some((rls, redis));
            break;
        }
        let upstreams =
            self.upstreams.iter().map(|u| EchoServer::start(&u.name, 0)).collect::<anyhow::Result<Vec<_>>>()?;
        let ports = upstreams.iter().map(|e| (e.name.clone(), e.addr.port())).collect();
        let config = self.setup(&ports)?.render();
        let mut opts = EnvoyOptions::new(binary.clone());
        opts.concurrency = self.concurrency;
        opts.env = self.envoy_env.clone();
        let envoy = RunningEnvoy::start(&config, &opts)?;
        Ok(Lab { envoy, upstreams, binary, config, rate_limit_service })
    }
}

/// Gives a filter that appears more than once in the chain a distinct instance name (`rate-limit`,
/// `rate-limit.2`, …): Envoy's Wasm config `name`, by which the filters keep their shared data apart.
pub fn unique_instances(mut filters: Vec<WasmFilter>) -> Vec<WasmFilter> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for f in &mut filters {
        let n = seen.entry(f.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            f.instance = format!("{}.{n}", f.name);
        }
    }
    filters
}

impl Lab {
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }
}

/// The header `meshplug render-envoy` puts above a rendered bootstrap.
pub const RENDERED_HEADER: &str =
    "# Rendered by `meshplug render-envoy` from the composition next to it; do not edit by hand.\n";

/// `meshplug render-envoy`: the bootstrap `meshplug up` would run for a workload, as YAML with
/// [`RENDERED_HEADER`], every upstream on `upstream_port`, module paths relative to `module_dir` if given.
pub fn render_envoy(
    c: &Composition,
    workload: Option<&str>,
    upstream_port: u16,
    module_dir: Option<&Path>,
) -> anyhow::Result<String> {
    let config = LabBuilder::from_composition(c, workload)?.render_static(upstream_port, module_dir)?;
    Ok(format!("{RENDERED_HEADER}{}", serde_yaml_ng::to_string(&config)?))
}

/// `meshplug up COMPOSITION`: runs a workload's chain in front of its echo upstreams, says on stdout
/// where everything listens and what to try, and returns when Envoy exits (Ctrl-C).
pub fn up(c: &Composition, workload: Option<&str>, envoy: Option<PathBuf>) -> anyhow::Result<()> {
    let mut builder = LabBuilder::from_composition(c, workload)?;
    builder.envoy = envoy;
    let w = c.workload(workload)?;
    let mut lab = builder.start()?;
    println!("Envoy {} (found via {})", lab.binary.path.display(), lab.binary.source);
    if let Some((rls, redis)) = &lab.rate_limit_service {
        println!("rate limit service: meshplug-rls on {} (Redis {}), for the global rules", rls.addr, redis.url());
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
        println!(
            "  T=$(cargo run -q -p meshplug-harness -- demo-token --sub alice)   # signed by the examples' demo key"
        );
        println!("  curl -si {}/hello -H \"authorization: Bearer $T\"", lab.envoy.url());
    }
    println!("  curl -si {}/hello", lab.envoy.url());
    println!("  curl -s http://{}/stats | grep meshplug", lab.envoy.admin);
    println!("\nCtrl-C stops Envoy and the upstreams.");
    let status = lab.envoy.wait()?;
    eprintln!("Envoy exited: {status}");
    Ok(())
}
