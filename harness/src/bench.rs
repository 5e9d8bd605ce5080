//! Benchmarks: Envoy with and without filters, side by side in one run, with wrk.
//!
//! Method (the same as in ENVOY-FACTS.md's baseline): Envoy runs one worker pinned to CPU 0
//! (`taskset -c 0 --concurrency 1`), wrk runs on CPU 1 (`taskset -c 1 wrk -t1 -c16`), the route
//! answers itself (`direct_response`), so only the filters' cost varies. Cases are interleaved within
//! each round and each figure is the median over the rounds. Absolute numbers drift between runs and
//! machines; compare the ratios within one run.

use crate::bootstrap::{Setup, WasmFilter};
use crate::envoy::EnvoyBinary;
use crate::filters::module_path;
use crate::run::{EnvoyOptions, RunningEnvoy};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// What wrk sends.
#[derive(Debug, Clone, Default)]
pub enum Load {
    /// `GET /bench`, nothing else.
    #[default]
    Plain,
    /// The same header on every request (e.g. one repeated token).
    Header(String, String),
    /// `authorization: Bearer <token>` cycling through these tokens, one per request.
    Tokens(std::sync::Arc<Vec<String>>),
}

/// One configuration to measure.
#[derive(Debug, Clone)]
pub struct BenchCase {
    pub name: String,
    /// What this case is compared with (by name), for the ratio column.
    pub baseline: Option<String>,
    pub setup: Setup,
    pub load: Load,
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub envoy: EnvoyBinary,
    pub rounds: usize,
    pub duration: Duration,
    pub connections: u32,
}

/// Results of one case.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub name: String,
    pub baseline: Option<String>,
    pub rps: Vec<f64>,
    pub rss_bytes: Option<u64>,
}

impl BenchResult {
    pub fn median_rps(&self) -> f64 {
        let mut v = self.rps.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
}

fn setup_with(filters: Vec<WasmFilter>, native: Vec<Value>) -> Setup {
    Setup {
        port: 0,
        admin_port: 0,
        filters,
        clusters: vec![],
        routes: vec![],
        native_filters: native,
        direct_response: Some(200),
        raw_routes: None,
    }
}

/// Envoy with no filter but the router.
pub fn bare() -> BenchCase {
    BenchCase { name: "bare Envoy".into(), baseline: None, setup: setup_with(vec![], vec![]), load: Load::Plain }
}

/// The cases of a suite by name: `rate-limit`.
pub fn suite(name: &str) -> anyhow::Result<Vec<BenchCase>> {
    match name {
        "rate-limit" => {
            let native = json!({
                "name": "envoy.filters.http.local_ratelimit",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                    "stat_prefix": "local_rate_limit",
                    "token_bucket": { "max_tokens": 1_000_000_000u64, "tokens_per_fill": 1_000_000_000u64, "fill_interval": "1s" },
                    "filter_enabled": { "runtime_key": "lrl_enabled", "default_value": { "numerator": 100, "denominator": "HUNDRED" } },
                    "filter_enforced": { "runtime_key": "lrl_enforced", "default_value": { "numerator": 100, "denominator": "HUNDRED" } },
                    "enable_x_ratelimit_headers": "DRAFT_VERSION_03"
                }
            });
            let wasm = WasmFilter::new(
                "rate-limit",
                module_path("rate-limit")?,
                json!({"rules": [{"name": "bench", "limits": [{"requests": 1_000_000_000u64, "per": "1s"}]}]}),
            );
            Ok(vec![
                bare(),
                floor_case(),
                BenchCase {
                    name: "native local_ratelimit".into(),
                    baseline: Some("bare Envoy".into()),
                    setup: setup_with(vec![], vec![native]),
                    load: Load::Plain,
                },
                BenchCase {
                    name: "rate_limit.wasm".into(),
                    baseline: Some("native local_ratelimit".into()),
                    setup: setup_with(vec![wasm], vec![]),
                    load: Load::Plain,
                },
            ])
        }
        "jwt-authz" => jwt_suite(),
        "canary" => canary_suite(),
        other => anyhow::bail!("unknown benchmark suite {other:?}; known: rate-limit, jwt-authz, canary"),
    }
}

/// The Wasm floor: the `publish-claims` test module, which reads one header and does nothing else.
fn floor_case() -> BenchCase {
    let floor = WasmFilter::new("publish-claims", crate::filters::module_dir().join("publish_claims.wasm"), json!({}));
    BenchCase {
        name: "Wasm floor (near no-op module)".into(),
        baseline: Some("bare Envoy".into()),
        setup: setup_with(vec![floor], vec![]),
        load: Load::Plain,
    }
}

/// Distinct tokens for the fresh-token cases: five times jwt-authz's default cache and fifty times the
/// native filter's configured cache, so every request verifies a signature.
pub const FRESH_TOKENS: usize = 5000;

fn jwt_suite() -> anyhow::Result<Vec<BenchCase>> {
    use jwt_authz::testkit::{claims, jwks, mint, ISSUER};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let keys = jwks(&["rsa"]);
    eprintln!("minting {FRESH_TOKENS} RS256 tokens…");
    let fresh: Vec<String> =
        (0..FRESH_TOKENS).map(|i| mint("RS256", "rsa", Some("rsa-1"), claims(now, &format!("user-{i}")))).collect();
    let fresh = std::sync::Arc::new(fresh);
    let repeated = mint("RS256", "rsa", Some("rsa-1"), claims(now, "alice"));
    let native = vec![
        json!({
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": { "bench": {
                    "issuer": ISSUER,
                    "audiences": ["payment-api"],
                    "local_jwks": { "inline_string": keys },
                    "payload_in_metadata": "jwt_payload",
                    "jwt_cache_config": { "jwt_cache_size": 100 }
                } },
                "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "bench" } }]
            }
        }),
        json!({
            "name": "envoy.filters.http.rbac",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                "rules": { "action": "ALLOW", "policies": { "bench": {
                    "permissions": [{ "url_path": { "path": { "prefix": "/bench" } } }],
                    "principals": [{ "metadata": {
                        "filter": "envoy.filters.http.jwt_authn",
                        "path": [{ "key": "jwt_payload" }, { "key": "iss" }],
                        "value": { "string_match": { "exact": ISSUER } }
                    } }]
                } } }
            }
        }),
    ];
    let wasm = WasmFilter::new(
        "jwt-authz",
        module_path("jwt-authz")?,
        json!({
            "jwtRules": [{ "issuer": ISSUER, "audiences": ["payment-api"], "jwks": keys }],
            "policies": [{ "action": "ALLOW", "rules": [{
                "from": [{ "source": { "requestPrincipals": [format!("{ISSUER}/*")] } }],
                "to": [{ "operation": { "paths": ["/bench*"] } }]
            }] }]
        }),
    );
    let header = Load::Header("authorization".into(), format!("Bearer {repeated}"));
    Ok(vec![
        bare(),
        floor_case(),
        BenchCase {
            name: "native jwt_authn+rbac, repeated token".into(),
            baseline: Some("bare Envoy".into()),
            setup: setup_with(vec![], native.clone()),
            load: header.clone(),
        },
        BenchCase {
            name: "jwt_authz.wasm, repeated token".into(),
            baseline: Some("native jwt_authn+rbac, repeated token".into()),
            setup: setup_with(vec![wasm.clone()], vec![]),
            load: header,
        },
        BenchCase {
            name: "native jwt_authn+rbac, fresh token".into(),
            baseline: Some("bare Envoy".into()),
            setup: setup_with(vec![], native),
            load: Load::Tokens(fresh.clone()),
        },
        BenchCase {
            name: "jwt_authz.wasm, fresh token".into(),
            baseline: Some("native jwt_authn+rbac, fresh token".into()),
            setup: setup_with(vec![wasm], vec![]),
            load: Load::Tokens(fresh),
        },
    ])
}

fn answer(m: Value, body: &str) -> Value {
    json!({ "match": m, "direct_response": { "status": 200, "body": { "inline_string": body } } })
}

/// canary.wasm against Envoy's own header-match route plus a 90/10 percentage split. The routes answer
/// themselves (`direct_response`): `weighted_clusters` needs upstream clusters, whose cost would blur
/// the comparison, so the native split is the route-level equivalent, `runtime_fraction`.
fn canary_suite() -> anyhow::Result<Vec<BenchCase>> {
    let native_routes = vec![
        answer(
            json!({ "prefix": "/", "headers": [{ "name": "x-version", "string_match": { "exact": "v2" } }] }),
            "canary\n",
        ),
        answer(
            json!({ "prefix": "/", "runtime_fraction": { "default_value": { "numerator": 10, "denominator": "HUNDRED" },
                                                          "runtime_key": "bench.canary" } }),
            "canary\n",
        ),
        answer(json!({ "prefix": "/" }), "stable\n"),
    ];
    let wasm_routes = vec![
        answer(
            json!({ "prefix": "/", "headers": [{ "name": "x-meshplug-variant", "string_match": { "exact": "canary" } }] }),
            "canary\n",
        ),
        answer(json!({ "prefix": "/" }), "stable\n"),
    ];
    let wasm = WasmFilter::new(
        "canary",
        module_path("canary")?,
        json!({
            "rules": [{ "match": [{ "headers": { "x-version": { "exact": "v2" } } }], "variant": "canary" }],
            "split": { "stickyBy": { "cookie": "uid" },
                       "variants": [{ "name": "stable", "weight": 90 }, { "name": "canary", "weight": 10 }] }
        }),
    );
    let load = Load::Header("cookie".into(), "uid=user-42".into());
    let mut native = setup_with(vec![], vec![]);
    native.raw_routes = Some(native_routes);
    let mut with_wasm = setup_with(vec![wasm], vec![]);
    with_wasm.raw_routes = Some(wasm_routes);
    Ok(vec![
        BenchCase { load: load.clone(), ..bare() },
        BenchCase { load: load.clone(), ..floor_case() },
        BenchCase {
            name: "native header route + 90/10 split".into(),
            baseline: Some("bare Envoy".into()),
            setup: native,
            load: load.clone(),
        },
        BenchCase {
            name: "canary.wasm (sticky by cookie) + header route".into(),
            baseline: Some("native header route + 90/10 split".into()),
            setup: with_wasm,
            load,
        },
    ])
}

/// wrk's Lua script for `Load::Tokens`: reads the tokens file given after `--`, one per request.
const TOKENS_LUA: &str = r#"
local tokens = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
end
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/bench", { ["authorization"] = "Bearer " .. tokens[i] })
end
"#;

/// Runs wrk once against `url`; returns requests per second.
fn wrk(url: &str, duration: Duration, connections: u32, load: &Load) -> anyhow::Result<f64> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1", "wrk", "-t1"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)));
    let dir = std::env::temp_dir().join(format!("meshplug-bench-{}", std::process::id()));
    match load {
        Load::Plain => {}
        Load::Header(name, value) => {
            cmd.arg("-H").arg(format!("{name}: {value}"));
        }
        Load::Tokens(tokens) => {
            std::fs::create_dir_all(&dir)?;
            let (script, file) = (dir.join("tokens.lua"), dir.join("tokens.txt"));
            std::fs::write(&script, TOKENS_LUA)?;
            std::fs::write(&file, tokens.join("\n") + "\n")?;
            cmd.arg("-s").arg(&script);
            cmd.arg(url).arg("--").arg(&file);
        }
    }
    if !matches!(load, Load::Tokens(_)) {
        cmd.arg(url);
    }
    let out = cmd.output().map_err(|e| {
        anyhow::anyhow!("cannot run wrk ({e}); install it with `apt-get install wrk` (or `make bench`)")
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx or 3xx responses")) {
        anyhow::bail!(
            "the benchmark saw error responses ({}), so it would not measure the filters:\n{text}",
            line.trim()
        );
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in wrk's output:\n{text}"))
}

/// Runs every case `rounds` times, interleaved, and reports progress on stderr.
pub fn run(cases: &[BenchCase], opts: &BenchOptions) -> anyhow::Result<Vec<BenchResult>> {
    let mut results: Vec<BenchResult> = cases
        .iter()
        .map(|c| BenchResult { name: c.name.clone(), baseline: c.baseline.clone(), rps: vec![], rss_bytes: None })
        .collect();
    for round in 1..=opts.rounds {
        for (case, result) in cases.iter().zip(results.iter_mut()) {
            let mut eo = EnvoyOptions::new(opts.envoy.clone());
            eo.concurrency = 1;
            eo.cpus = Some("0".into());
            eo.log_level = "warning".into();
            let envoy = RunningEnvoy::start(&case.setup.render(), &eo)?;
            let url = format!("{}/bench", envoy.url());
            wrk(&url, Duration::from_secs(1), opts.connections, &case.load)?; // warm-up
            let rps = wrk(&url, opts.duration, opts.connections, &case.load)?;
            result.rps.push(rps);
            result.rss_bytes = envoy.rss_bytes();
            eprintln!("round {round}/{}: {:<34} {rps:>10.0} req/s", opts.rounds, case.name);
        }
    }
    Ok(results)
}

/// The results as a Markdown table: req/s, µs per request, µs added over bare Envoy, ratios.
pub fn table(results: &[BenchResult]) -> String {
    let bare = results.iter().find(|r| r.baseline.is_none()).map(BenchResult::median_rps).unwrap_or(0.0);
    let us = |rps: f64| if rps > 0.0 { 1e6 / rps } else { f64::NAN };
    let mut out = String::from(
        "| Case | req/s (median) | µs/request | µs added over bare | × bare | compared with | × that |\n\
         | --- | ---: | ---: | ---: | ---: | --- | ---: |\n",
    );
    for r in results {
        let rps = r.median_rps();
        let (vs, ratio) = match &r.baseline {
            Some(b) => {
                let base = results.iter().find(|x| &x.name == b).map(BenchResult::median_rps).unwrap_or(0.0);
                (b.clone(), format!("{:.2}", rps / base))
            }
            None => ("—".into(), "—".into()),
        };
        out.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:+.1} | {:.2} | {} | {} |\n",
            r.name,
            rps,
            us(rps),
            us(rps) - us(bare),
            rps / bare,
            vs,
            ratio
        ));
    }
    out
}
