//! Benchmarks: Envoy with and without filters, side by side in one run, with wrk.
//!
//! Method (the same as in ENVOY-FACTS.md's baseline): Envoy runs one worker pinned to CPU 0
//! (`taskset -c 0 --concurrency 1`), wrk runs on CPU 1 (`taskset -c 1 wrk -t1 -c16`), the route
//! answers itself (`direct_response`), so only the filters' cost varies. Cases are interleaved within
//! each round and each figure is the median over the rounds. Absolute numbers drift between runs and
//! machines; compare the ratios within one run.

use crate::deploy::filters::module_path;
use crate::lab::bootstrap::{Cluster, Setup, WasmFilter};
use crate::lab::envoy::EnvoyBinary;
use crate::lab::run::{EnvoyOptions, RunningEnvoy};
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

/// The suites `meshplug bench` knows; `all` is every case of the others, each once, in one run.
pub const SUITES: [&str; 12] = [
    "all",
    "rate-limit",
    "jwt-authz",
    "canary",
    "fault",
    "chain",
    "steps",
    "hostcalls",
    "global",
    "calls",
    "finish",
    "profile",
];

/// The cases of a suite by name (see [`SUITES`]).
pub fn suite(name: &str) -> anyhow::Result<Vec<BenchCase>> {
    let parts: Vec<Vec<BenchCase>> = match name {
        "rate-limit" => vec![rate_limit_cases()?],
        "jwt-authz" => vec![jwt_cases(&Tokens::mint())?],
        "canary" => vec![canary_cases()?],
        "fault" => vec![fault_cases()?],
        "chain" => vec![chain_cases(&Tokens::mint())?],
        // Not in `all`: where the bundle's time goes, one filter more per case.
        "steps" => vec![step_cases(&Tokens::mint())?],
        // Not in `all`: what each kind of host call costs (the no-op module repeating it 10 times).
        "hostcalls" => vec![hostcall_cases()?],
        // Not in `all`: needs Redis, meshplug-rls and an upstream, started here (see [`stop_services`]).
        "global" => return global_cases(),
        // Not in `all`: what the step after cargo buys (`deploy::finish`): each module as cargo built it
        // and as shipped.
        "finish" => vec![finish_cases(&Tokens::mint())?],
        // Not timed: the host calls of every Wasm case of `all` ([`crate::load::calls`]).
        "calls" => return suite("all"),
        // Not timed in Envoy: where each Wasm case's module time goes ([`crate::load::profile`]).
        "profile" => return suite("all"),
        "all" => {
            let tokens = Tokens::mint();
            vec![rate_limit_cases()?, jwt_cases(&tokens)?, canary_cases()?, fault_cases()?, chain_cases(&tokens)?]
        }
        other => anyhow::bail!("unknown benchmark suite {other:?}; known: {}", SUITES.join(", ")),
    };
    // Every suite compares with bare Envoy and the no-op module; each case runs once.
    let mut cases = vec![bare(), noop_case()?];
    for case in parts.into_iter().flatten() {
        if !cases.iter().any(|c| c.name == case.name) {
            cases.push(case);
        }
    }
    Ok(cases)
}

/// Servers a suite runs beside Envoy (the rate limit service, Redis, an upstream), kept until
/// [`stop_services`].
static SERVICES: std::sync::Mutex<Vec<Box<dyn std::any::Any + Send>>> = std::sync::Mutex::new(Vec::new());

/// Stops the servers a suite started.
pub fn stop_services() {
    if let Ok(mut s) = SERVICES.lock() {
        s.clear();
    }
}

/// A global rule (rate-limit.wasm asking meshplug-rls) against Envoy's native `ratelimit` filter
/// asking the same service with the same descriptor (`user` = the `x-user` header), both in front of
/// the same echo upstream, the limit far above the load (every request is counted and allowed); with
/// the same Envoy and upstream without a filter as the baseline.
fn global_cases() -> anyhow::Result<Vec<BenchCase>> {
    let redis = crate::lab::redis::RedisServer::start()?;
    let config =
        "domain: bench\ndescriptors:\n  - key: user\n    rate_limit: {unit: second, requests_per_unit: 1000000000}\n";
    let rls =
        meshplug_rls::start(meshplug_rls::parse_config(config)?, &redis.url(), ([127, 0, 0, 1], 0).into(), "bench:")?;
    let echo = crate::lab::echo::EchoServer::start("echo", 0)?;
    let clusters = vec![
        Cluster { name: "echo".into(), port: echo.addr.port(), http2: false },
        Cluster { name: "rls".into(), port: rls.addr.port(), http2: true },
    ];
    let route = |rate_limits: bool| {
        let mut r = json!({ "match": { "prefix": "/" }, "route": { "cluster": "echo" } });
        if rate_limits {
            r["route"]["rate_limits"] =
                json!([{ "actions": [{ "request_headers": { "header_name": "x-user", "descriptor_key": "user" } }] }]);
        }
        r
    };
    let setup = |filters: Vec<WasmFilter>, native: Vec<Value>, rate_limits: bool| Setup {
        port: 0,
        admin_port: 0,
        filters,
        clusters: clusters.clone(),
        routes: vec![],
        native_filters: native,
        direct_response: None,
        raw_routes: Some(vec![route(rate_limits)]),
    };
    let native = json!({
        "name": "envoy.filters.http.ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
            "domain": "bench", "failure_mode_deny": true, "timeout": "0.1s",
            "rate_limit_service": { "grpc_service": { "envoy_grpc": { "cluster_name": "rls" } }, "transport_api_version": "V3" }
        }
    });
    let rate_limit = module_path("rate-limit")?;
    let global_rule = |quota_headers: bool| {
        WasmFilter::new(
            "rate-limit",
            rate_limit.clone(),
            json!({
                "rateLimitService": { "cluster": "rls", "domain": "bench", "timeout": "100ms" },
                "rules": [{ "name": "user", "global": { "descriptors": [{ "key": "user", "header": "x-user" }] } }],
                "response": { "headers": quota_headers }
            }),
        )
    };
    // The same call from a module that does nothing else (tests/fixtures/noop): Envoy's Wasm gRPC path
    // alone, once with the cluster named as text and once with the GrpcService rate-limit sends.
    let noop = noop_module()?;
    let bare_call = |op: &str| WasmFilter::new("noop", noop.clone(), json!({ "op": op }));
    let load = Load::Header("x-user".into(), "bench-user".into());
    const UPSTREAM: &str = "Envoy → echo upstream, no filter";
    const NATIVE: &str = "native ratelimit → meshplug-rls";
    const BARE_CALL: &str = "no-op module, one gRPC call (cluster name) → meshplug-rls";
    const BARE_SERVICE: &str = "no-op module, one gRPC call (GrpcService) → meshplug-rls";
    const NO_HEADERS: &str = "rate_limit.wasm global rule, no quota headers → meshplug-rls";
    let cases = vec![
        BenchCase { name: UPSTREAM.into(), baseline: None, setup: setup(vec![], vec![], false), load: load.clone() },
        case(NATIVE, UPSTREAM, setup(vec![], vec![native], true), load.clone()),
        case(BARE_CALL, NATIVE, setup(vec![bare_call("grpc")], vec![], false), load.clone()),
        case(BARE_SERVICE, BARE_CALL, setup(vec![bare_call("grpc_service")], vec![], false), load.clone()),
        case(NO_HEADERS, BARE_SERVICE, setup(vec![global_rule(false)], vec![], false), load.clone()),
        case(
            "rate_limit.wasm global rule → meshplug-rls",
            NO_HEADERS,
            setup(vec![global_rule(true)], vec![], false),
            load,
        ),
    ];
    if let Ok(mut s) = SERVICES.lock() {
        s.push(Box::new(rls));
        s.push(Box::new(echo));
        s.push(Box::new(redis));
    }
    Ok(cases)
}

const BARE: &str = "bare Envoy";
const NOOP: &str = "no-op Wasm filter (floor)";

/// The Wasm floor: a module whose HTTP context does nothing (tests/fixtures/noop).
fn noop_case() -> anyhow::Result<BenchCase> {
    let noop = WasmFilter::new("noop", noop_module()?, json!({}));
    Ok(BenchCase {
        name: NOOP.into(),
        baseline: Some(BARE.into()),
        setup: setup_with(vec![noop], vec![]),
        load: Load::Plain,
    })
}

/// The no-op module (tests/fixtures/noop), finished as every shipped module is: the floor is what an
/// empty module we ship costs.
fn noop_module() -> anyhow::Result<std::path::PathBuf> {
    crate::deploy::filters::module_file("noop.wasm")
}

fn case(name: &str, baseline: &str, setup: Setup, load: Load) -> BenchCase {
    BenchCase { name: name.into(), baseline: Some(baseline.into()), setup, load }
}

fn with_routes(mut setup: Setup, routes: Vec<Value>) -> Setup {
    setup.raw_routes = Some(routes);
    setup
}

// ---- the filters' configs, alone and in the chain ----

fn rate_limit_config(key: Option<Value>) -> Value {
    let mut rule = json!({"name": "bench", "limits": [{"requests": 1_000_000_000u64, "per": "1s"}]});
    if let Some(k) = key {
        rule["key"] = k;
    }
    json!({ "rules": [rule] })
}

fn native_local_ratelimit() -> Value {
    json!({
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "local_rate_limit",
            "token_bucket": { "max_tokens": 1_000_000_000u64, "tokens_per_fill": 1_000_000_000u64, "fill_interval": "1s" },
            "filter_enabled": { "runtime_key": "lrl_enabled", "default_value": { "numerator": 100, "denominator": "HUNDRED" } },
            "filter_enforced": { "runtime_key": "lrl_enforced", "default_value": { "numerator": 100, "denominator": "HUNDRED" } },
            "enable_x_ratelimit_headers": "DRAFT_VERSION_03"
        }
    })
}

fn jwt_config(keys: &str) -> Value {
    use jwt_authz::testkit::ISSUER;
    json!({
        "jwtRules": [{ "issuer": ISSUER, "audiences": ["payment-api"], "jwks": keys }],
        "policies": [{ "action": "ALLOW", "rules": [{
            "from": [{ "source": { "requestPrincipals": [format!("{ISSUER}/*")] } }],
            "to": [{ "operation": { "paths": ["/bench*"] } }]
        }] }]
    })
}

fn native_jwt(keys: &str) -> Vec<Value> {
    use jwt_authz::testkit::ISSUER;
    vec![
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
    ]
}

fn canary_config(sticky_by: Value) -> Value {
    json!({
        "rules": [{ "match": [{ "headers": { "x-version": { "exact": "v2" } } }], "variant": "canary" }],
        "split": { "stickyBy": sticky_by,
                   "variants": [{ "name": "stable", "weight": 90 }, { "name": "canary", "weight": 10 }] }
    })
}

fn answer(m: Value, body: &str) -> Value {
    json!({ "match": m, "direct_response": { "status": 200, "body": { "inline_string": body } } })
}

/// Envoy's own canary: a header-match route plus a 90/10 percentage split. The routes answer themselves
/// (`direct_response`): `weighted_clusters` needs upstream clusters, whose cost would blur the
/// comparison, so the native split is the route-level equivalent, `runtime_fraction`.
fn native_canary_routes() -> Vec<Value> {
    vec![
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
    ]
}

/// The routes behind canary.wasm: one header match on the variant it writes.
fn variant_routes() -> Vec<Value> {
    vec![
        answer(
            json!({ "prefix": "/", "headers": [{ "name": "x-meshplug-variant", "string_match": { "exact": "canary" } }] }),
            "canary\n",
        ),
        answer(json!({ "prefix": "/" }), "stable\n"),
    ]
}

/// Faults that never fire: an abort and a delay for requests with a header the load never sends.
fn fault_config() -> Value {
    json!({ "rules": [
        { "match": [{ "headers": { "x-fault": { "exact": "abort" } } }], "abort": { "httpStatus": 503 } },
        { "match": [{ "headers": { "x-fault": { "exact": "delay" } } }], "delay": { "fixedDelay": "1s" } }
    ] })
}

fn native_fault() -> Value {
    json!({
        "name": "envoy.filters.http.fault",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "abort": { "http_status": 503, "percentage": { "numerator": 100, "denominator": "HUNDRED" } },
            "headers": [{ "name": "x-fault", "string_match": { "exact": "abort" } }]
        }
    })
}

// ---- the cases ----

fn rate_limit_cases() -> anyhow::Result<Vec<BenchCase>> {
    let wasm = WasmFilter::new("rate-limit", module_path("rate-limit")?, rate_limit_config(None));
    Ok(vec![
        case("native local_ratelimit", BARE, setup_with(vec![], vec![native_local_ratelimit()]), Load::Plain),
        case("rate_limit.wasm", "native local_ratelimit", setup_with(vec![wasm], vec![]), Load::Plain),
    ])
}

/// Tokens for the JWT cases: one repeated, and [`FRESH_TOKENS`] distinct ones.
pub struct Tokens {
    keys: String,
    repeated: String,
    fresh: std::sync::Arc<Vec<String>>,
}

impl Tokens {
    fn mint() -> Self {
        use jwt_authz::testkit::{claims, jwks, mint};
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        eprintln!("minting {FRESH_TOKENS} RS256 tokens…");
        let fresh =
            (0..FRESH_TOKENS).map(|i| mint("RS256", "rsa", Some("rsa-1"), claims(now, &format!("user-{i}")))).collect();
        Self {
            keys: jwks(&["rsa"]),
            repeated: mint("RS256", "rsa", Some("rsa-1"), claims(now, "alice")),
            fresh: std::sync::Arc::new(fresh),
        }
    }

    fn repeated(&self) -> Load {
        Load::Header("authorization".into(), format!("Bearer {}", self.repeated))
    }
}

/// Distinct tokens for the fresh-token cases: five times jwt-authz's default cache and fifty times the
/// native filter's configured cache, so every request verifies a signature.
pub const FRESH_TOKENS: usize = 5000;

fn jwt_cases(tokens: &Tokens) -> anyhow::Result<Vec<BenchCase>> {
    let native = native_jwt(&tokens.keys);
    let wasm = WasmFilter::new("jwt-authz", module_path("jwt-authz")?, jwt_config(&tokens.keys));
    const NATIVE_REPEATED: &str = "native jwt_authn+rbac, repeated token";
    const NATIVE_FRESH: &str = "native jwt_authn+rbac, fresh token";
    Ok(vec![
        case(NATIVE_REPEATED, BARE, setup_with(vec![], native.clone()), tokens.repeated()),
        case(
            "jwt_authz.wasm, repeated token",
            NATIVE_REPEATED,
            setup_with(vec![wasm.clone()], vec![]),
            tokens.repeated(),
        ),
        case(NATIVE_FRESH, BARE, setup_with(vec![], native), Load::Tokens(tokens.fresh.clone())),
        case(
            "jwt_authz.wasm, fresh token",
            NATIVE_FRESH,
            setup_with(vec![wasm], vec![]),
            Load::Tokens(tokens.fresh.clone()),
        ),
    ])
}

fn canary_cases() -> anyhow::Result<Vec<BenchCase>> {
    let wasm = WasmFilter::new("canary", module_path("canary")?, canary_config(json!({ "cookie": "uid" })));
    let load = Load::Header("cookie".into(), "uid=user-42".into());
    const NATIVE: &str = "native header route + 90/10 split";
    Ok(vec![
        case(NATIVE, BARE, with_routes(setup_with(vec![], vec![]), native_canary_routes()), load.clone()),
        case(
            "canary.wasm (sticky by cookie) + header route",
            NATIVE,
            with_routes(setup_with(vec![wasm], vec![]), variant_routes()),
            load,
        ),
    ])
}

fn fault_cases() -> anyhow::Result<Vec<BenchCase>> {
    let wasm = WasmFilter::new("fault", module_path("fault")?, fault_config());
    let empty = WasmFilter::new("fault", module_path("fault")?, json!({}));
    Ok(vec![
        case("native fault, not firing", BARE, setup_with(vec![], vec![native_fault()]), Load::Plain),
        case("fault.wasm, not firing", NOOP, setup_with(vec![wasm], vec![]), Load::Plain),
        case("fault.wasm, no rules (the chain host alone)", NOOP, setup_with(vec![empty], vec![]), Load::Plain),
    ])
}

/// The no-op module, fault.wasm and the bundle, each as cargo built it and as shipped (finished by
/// `deploy::finish`: the callbacks no module uses taken out), judged against the
/// cargo build.
fn finish_cases(tokens: &Tokens) -> anyhow::Result<Vec<BenchCase>> {
    let built = |file: &str| crate::deploy::filters::cargo_module_dir().join(file);
    let noop = |path: std::path::PathBuf| WasmFilter::new("noop", path, json!({}));
    let fault = |path: std::path::PathBuf| WasmFilter::new("fault", path, fault_config());
    let configs = chain_configs(tokens);
    let bundle_config = crate::deploy::filters::bundle_config(configs.iter().map(|(name, config)| (*name, config)));
    let bundle_kind = crate::deploy::filters::BUNDLE;
    let bundle = |path: std::path::PathBuf| WasmFilter::new(bundle_kind.name, path, bundle_config.clone());
    const NOOP_BUILT: &str = "no-op module as cargo built it";
    const FAULT_BUILT: &str = "fault.wasm as cargo built it, not firing";
    const BUNDLE_BUILT: &str = "bundle (meshplug.wasm) as cargo built it, same chain";
    Ok(vec![
        case(NOOP_BUILT, BARE, setup_with(vec![noop(built("noop.wasm"))], vec![]), Load::Plain),
        case("no-op module as shipped", NOOP_BUILT, setup_with(vec![noop(noop_module()?)], vec![]), Load::Plain),
        case(FAULT_BUILT, BARE, setup_with(vec![fault(built("fault.wasm"))], vec![]), Load::Plain),
        case(
            "fault.wasm as shipped, not firing",
            FAULT_BUILT,
            setup_with(vec![fault(module_path("fault")?)], vec![]),
            Load::Plain,
        ),
        case(
            BUNDLE_BUILT,
            BARE,
            with_routes(setup_with(vec![bundle(built(&bundle_kind.module_file()))], vec![]), variant_routes()),
            tokens.repeated(),
        ),
        case(
            "bundle as shipped, same chain",
            BUNDLE_BUILT,
            with_routes(setup_with(vec![bundle(module_path(bundle_kind.name)?)], vec![]), variant_routes()),
            tokens.repeated(),
        ),
    ])
}

fn chain_configs(tokens: &Tokens) -> [(&'static str, Value); 4] {
    [
        ("jwt-authz", jwt_config(&tokens.keys)),
        ("rate-limit", rate_limit_config(Some(json!({ "claim": "sub" })))),
        ("canary", canary_config(json!({ "claim": "sub" }))),
        ("fault", fault_config()),
    ]
}

/// Host calls priced: the no-op module making one kind of call ten times per request.
fn hostcall_cases() -> anyhow::Result<Vec<BenchCase>> {
    const OPS: [&str; 10] = [
        "get_header",
        "get_headers",
        "set_header",
        "remove_header",
        "get_property",
        "set_property",
        "get_shared",
        "set_shared",
        "time",
        "response_header",
    ];
    let module = noop_module()?;
    let repeated = |op: &str, times: usize| {
        let noop = WasmFilter::new("noop", module.clone(), json!({ "op": op, "times": times }));
        case(&format!("no-op module + {times} × {op}"), NOOP, setup_with(vec![noop], vec![]), Load::Plain)
    };
    // The first header read of a request is priced apart: it may cost more than the next ones.
    let mut cases = vec![repeated("get_header", 1), repeated("get_headers", 1), repeated("set_property", 1)];
    cases.extend(OPS.iter().map(|op| repeated(op, 10)));
    // What jwt-authz does once per request: remove the token header (a present, ~800-byte header).
    let token = format!("Bearer {}", "x".repeat(800));
    let mut remove = repeated("remove_authorization", 1);
    remove.load = Load::Header("authorization".into(), token.clone());
    let mut floor = noop_case()?;
    floor.name = format!("{NOOP}, with an authorization header");
    floor.load = Load::Header("authorization".into(), token);
    remove.baseline = Some(floor.name.clone());
    cases.extend([floor, remove]);
    Ok(cases)
}

/// The bundle with the chain's first 1, 2, 3 and 4 filters: what each filter adds inside the bundle.
fn step_cases(tokens: &Tokens) -> anyhow::Result<Vec<BenchCase>> {
    let configs = chain_configs(tokens);
    let mut cases = Vec::new();
    let mut previous = NOOP.to_string();
    for n in 1..=configs.len() {
        let chain = configs.iter().take(n);
        let names: Vec<&str> = chain.clone().map(|(name, _)| *name).collect();
        let config = crate::deploy::filters::bundle_config(chain.map(|(name, config)| (*name, config)));
        let bundle = WasmFilter::new(
            crate::deploy::filters::BUNDLE.name,
            module_path(crate::deploy::filters::BUNDLE.name)?,
            config,
        );
        let name = format!("bundle: {}", names.join(" → "));
        cases.push(case(
            &name,
            &previous,
            with_routes(setup_with(vec![bundle], vec![]), variant_routes()),
            tokens.repeated(),
        ));
        previous = name;
    }
    Ok(cases)
}

/// The four filters chained (jwt-authz → rate-limit keyed by `sub` → canary sticky by `sub` → fault not
/// firing), as four modules and as the bundle, against Envoy's native chain (jwt_authn + rbac +
/// local_ratelimit + fault + header route with a 90/10 split). One repeated token.
fn chain_cases(tokens: &Tokens) -> anyhow::Result<Vec<BenchCase>> {
    let configs = chain_configs(tokens);
    let modules = configs
        .iter()
        .map(|(name, config)| Ok(WasmFilter::new(name, module_path(name)?, config.clone())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bundle_config = crate::deploy::filters::bundle_config(configs.iter().map(|(name, config)| (*name, config)));
    let bundle = WasmFilter::new(
        crate::deploy::filters::BUNDLE.name,
        module_path(crate::deploy::filters::BUNDLE.name)?,
        bundle_config,
    );
    // The same bundle publishing the claims to filter state as well (what it did before they stayed
    // inside the module): what the kept claims buy, in the same run.
    let mut published = configs.clone();
    published[0].1["publishClaims"] = json!(true);
    let published = WasmFilter::new(
        crate::deploy::filters::BUNDLE.name,
        module_path(crate::deploy::filters::BUNDLE.name)?,
        crate::deploy::filters::bundle_config(published.iter().map(|(name, config)| (*name, config))),
    );
    let mut native = native_jwt(&tokens.keys);
    native.push(native_local_ratelimit());
    native.push(native_fault());
    const NATIVE: &str = "native chain (jwt_authn+rbac+local_ratelimit+fault+route split)";
    Ok(vec![
        case(NATIVE, BARE, with_routes(setup_with(vec![], native), native_canary_routes()), tokens.repeated()),
        case(
            "four modules chained",
            NATIVE,
            with_routes(setup_with(modules, vec![]), variant_routes()),
            tokens.repeated(),
        ),
        case(
            "bundle (meshplug.wasm), same chain",
            NATIVE,
            with_routes(setup_with(vec![bundle], vec![]), variant_routes()),
            tokens.repeated(),
        ),
        case(
            "bundle, claims also published (publishClaims: true)",
            "bundle (meshplug.wasm), same chain",
            with_routes(setup_with(vec![published], vec![]), variant_routes()),
            tokens.repeated(),
        ),
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
            eprintln!("round {round}/{}: {:<60} {rps:>10.0} req/s", opts.rounds, case.name);
        }
    }
    // Memory: Envoy's resident set with the case's filters loaded at two workers (one VM each), after a
    // second of load.
    for (case, result) in cases.iter().zip(results.iter_mut()) {
        let mut eo = EnvoyOptions::new(opts.envoy.clone());
        eo.concurrency = 2;
        eo.log_level = "warning".into();
        let envoy = RunningEnvoy::start(&case.setup.render(), &eo)?;
        wrk(&format!("{}/bench", envoy.url()), Duration::from_secs(1), opts.connections, &case.load)?;
        result.rss_bytes = envoy.rss_bytes();
    }
    Ok(results)
}

/// `meshplug bench SUITE`: runs the suite (stopping the services it started, also when it fails) and
/// returns the report: how it was run, the figures side by side, the modules' sizes; with `chart`,
/// also writes the run there as an SVG bar chart ([`crate::load::chart`]).
///
/// With `against`, a directory of other builds of the modules (e.g. another commit's
/// `target/modules`, or the same code built another way): every Wasm case runs a second time with the
/// modules taken from there, in the same rounds, compared with the case as built here.
pub fn report(
    suite_name: &str,
    opts: &BenchOptions,
    chart: Option<&std::path::Path>,
    against: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    let mut cases = suite(suite_name)?;
    if let Some(dir) = against {
        cases = with_modules_from(cases, dir)?;
    }
    if suite_name == "calls" {
        return Ok(format!(
            "\nmeshplug bench calls: host calls and callbacks per request in steady state (the third request of \
             each case's load), counted by scripts/proxy-wasm-host.mjs\n\n{}",
            crate::load::calls::report(&cases)?
        ));
    }
    let results = run(&cases, opts);
    stop_services();
    let results = results?;
    if let Some(path) = chart {
        let title = format!("meshplug bench {suite_name}: µs added per request over bare Envoy");
        std::fs::write(path, crate::load::chart::svg(&title, &results)?)
            .map_err(|e| anyhow::anyhow!("cannot write the chart to {}: {e}", path.display()))?;
    }
    Ok(format!(
        "\nmeshplug bench {suite_name}: Envoy {} ({}), --concurrency 1 pinned to CPU 0; wrk -t1 -c{} -d{}s \
         pinned to CPU 1; direct_response route; median of {} interleaved rounds\n\n{}\n{}",
        opts.envoy.path.display(),
        opts.envoy.source,
        opts.connections,
        opts.duration.as_secs(),
        opts.rounds,
        table(&results),
        crate::deploy::filters::size_table()
    ))
}

/// `cases`, each Wasm case followed by the same case with its modules (same file names) from `dir`,
/// named `<case>, modules from <dir>` and compared with the case: its "× that" is the other build's
/// throughput over this one's.
pub fn with_modules_from(cases: Vec<BenchCase>, dir: &std::path::Path) -> anyhow::Result<Vec<BenchCase>> {
    let mut out = Vec::with_capacity(cases.len() * 2);
    for case in cases {
        let mut other = case.clone();
        for filter in &mut other.setup.filters {
            let file = filter
                .module
                .file_name()
                .ok_or_else(|| anyhow::anyhow!("{}: not a module file", filter.module.display()))?;
            filter.module = dir.join(file);
            anyhow::ensure!(
                filter.module.is_file(),
                "{} is missing (--against {})",
                filter.module.display(),
                dir.display()
            );
        }
        let wasm = !case.setup.filters.is_empty();
        other.name = format!("{}, modules from {}", case.name, dir.display());
        other.baseline = Some(case.name.clone());
        out.push(case);
        if wasm {
            out.push(other);
        }
    }
    Ok(out)
}

/// The results as a Markdown table: req/s, µs per request, µs added over bare Envoy, ratios.
pub fn table(results: &[BenchResult]) -> String {
    let bare = results.iter().find(|r| r.baseline.is_none()).map(BenchResult::median_rps).unwrap_or(0.0);
    let us = |rps: f64| if rps > 0.0 { 1e6 / rps } else { f64::NAN };
    let mut out = String::from(
        "| Case | req/s (median) | µs/request | µs added over bare | × bare | compared with | × that | RSS MiB, 2 workers |\n\
         | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |\n",
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
        let rss = r.rss_bytes.map(|b| format!("{:.1}", b as f64 / (1024.0 * 1024.0))).unwrap_or_else(|| "?".into());
        out.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:+.1} | {:.2} | {} | {} | {} |\n",
            r.name,
            rps,
            us(rps),
            us(rps) - us(bare),
            rps / bare,
            vs,
            ratio,
            rss
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[&str]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("meshplug-against-{}-{}", std::process::id(), files.len()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), b"\0asm").unwrap();
        }
        dir
    }

    #[test]
    fn against_runs_each_wasm_case_again_with_the_other_modules() {
        let other = dir_with(&["fault.wasm"]);
        let here = std::path::Path::new("/here/target/modules/fault.wasm");
        let wasm = case(
            "fault",
            BARE,
            setup_with(vec![WasmFilter::new("fault", here.into(), json!({}))], vec![]),
            Load::Plain,
        );
        let cases = with_modules_from(vec![bare(), wasm], &other).unwrap();
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        let again = format!("fault, modules from {}", other.display());
        assert_eq!(names, ["bare Envoy", "fault", again.as_str()], "bare Envoy has no module to swap");
        assert_eq!(cases[2].baseline.as_deref(), Some("fault"));
        assert_eq!(cases[2].setup.filters[0].module, other.join("fault.wasm"));
        assert_eq!(cases[1].setup.filters[0].module, here, "the case itself keeps this build's module");
        std::fs::remove_dir_all(other).unwrap();
    }

    #[test]
    fn against_refuses_a_directory_without_the_module() {
        let other = dir_with(&[]);
        let here = std::path::PathBuf::from("/here/target/modules/canary.wasm");
        let wasm =
            case("canary", BARE, setup_with(vec![WasmFilter::new("canary", here, json!({}))], vec![]), Load::Plain);
        let err = with_modules_from(vec![wasm], &other).unwrap_err().to_string();
        assert!(err.contains("canary.wasm is missing"), "{err}");
        std::fs::remove_dir_all(other).unwrap();
    }
}
