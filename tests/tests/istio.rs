//! The Istio path end to end: rendered WasmPlugins delivered to a real Envoy the way istiod and
//! istio-agent deliver them (`meshplug_harness::istio`: ECDS from watched files, the agent's fetch
//! rules and cache against a real OCI registry, the RBAC stand-in on a fetch failure), and hot-reloaded
//! on an edit. The committed manifests are used as they are; only their registry is mirrored
//! (`IstioOptions::mirror`, what `meshplug up --istio` does by default): the built modules are pushed
//! to a local registry under the manifests' paths and tags, and their `oci://` URLs point there.

use meshplug_harness::deploy::oci::{image, push, push_module, Format};
use meshplug_harness::istio::agent::Outcome;
use meshplug_harness::istio::lab::{IstioLab, IstioOptions};
use meshplug_harness::lab::registry::Registry;
use meshplug_tests::{Client, Req};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Pushes each module to the registry as `<host>/meshplug/<module>:0.1.0` (compat images, as
/// `meshplug push` makes them); returns the manifest digests by module.
fn push_modules(registry: &Registry) -> std::collections::BTreeMap<String, String> {
    let mut digests = std::collections::BTreeMap::new();
    for module in ["jwt-authz", "rate-limit", "fault", "canary", "meshplug"] {
        // push_module checks that the registry stored the manifest that was packaged.
        let target = format!("oci://{}/meshplug/{module}:0.1.0", registry.host());
        let digest = push_module(module, &target, Format::Compat).unwrap();
        digests.insert(module.to_string(), digest.trim_start_matches("sha256:").to_string());
    }
    digests
}

static DIRS: AtomicU64 = AtomicU64::new(0);

/// Held by the tests that load Envoy as hard as they can, so that they do not slow each other down
/// (cargo runs a binary's tests in parallel on a 2-core machine).
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scratch(name: &str) -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("meshplug-istio-test-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A committed manifest directory, its images served from a local registry with this build.
fn start_committed(committed: &str) -> IstioLab {
    let mut opts = IstioOptions::new(&root().join(committed));
    opts.mirror = true;
    IstioLab::start(opts).unwrap_or_else(|e| panic!("could not start the Istio lab: {e:#}"))
}

fn start(dir: &Path) -> IstioLab {
    IstioLab::start(IstioOptions::new(dir)).unwrap_or_else(|e| panic!("could not start the Istio lab: {e:#}"))
}

fn token(sub: &str, extra: serde_json::Value) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut c = jwt_authz::testkit::claims(now, sub);
    for (k, v) in extra.as_object().unwrap() {
        c.insert(k.clone(), v.clone());
    }
    jwt_authz::testkit::mint("RS256", "rsa", Some("rsa-1"), c)
}

fn status(client: &Client, req: Req) -> u16 {
    client.send(req).map(|r| r.status).unwrap_or(0)
}

/// payments (jwt-authz → rate-limit → fault, inbound, FAIL_CLOSE for the first two) as rendered, and as
/// one bundle: the listener runs istiod's filters in phase order, the JWKS comes through the
/// `outbound|443||auth.example.com` cluster, and the workload answers as its policies say.
#[test]
fn the_payments_manifests_serve_the_payments_answers() {
    for (committed, filters) in [
        (
            "manifests/rendered/payments",
            vec![
                "extensions.istio.io/wasmplugin/shop.payments-jwt-authz",
                "extensions.istio.io/wasmplugin/shop.payments-rate-limit",
                "extensions.istio.io/wasmplugin/shop.payments-fault",
            ],
        ),
        ("manifests/bundle/payments", vec!["extensions.istio.io/wasmplugin/shop.payments-meshplug"]),
        // The EnvoyFilter form, patched into istiod's chain as istiod patches (listener_patch.go).
        (
            "manifests/envoyfilter/payments",
            vec![
                "extensions.istio.io/wasmplugin/shop.payments-jwt-authz",
                "extensions.istio.io/wasmplugin/shop.payments-rate-limit",
                "extensions.istio.io/wasmplugin/shop.payments-fault",
            ],
        ),
    ] {
        let lab = start_committed(committed);
        assert_eq!(lab.feed.plugin_names(), filters.as_slice(), "{committed}");
        assert_eq!(lab.feed.target_port, 8080, "the container port the plugins match");
        let c = lab.envoy.client().unwrap();
        let alice = format!("Bearer {}", token("alice", serde_json::json!({})));
        // The JWKS fetch is asynchronous: wait for the first verified request.
        assert!(
            meshplug_tests::eventually(Duration::from_secs(10), || {
                status(&c, Req::get("/api/orders").header("authorization", &alice)) == 200
            }),
            "{committed}: a valid token never got through: {}",
            lab.envoy.log()
        );
        let r = c.send(Req::get("/api/orders").header("authorization", &alice)).unwrap();
        assert_eq!(r.json()["headers"]["x-user"], "alice", "{committed}: the verified subject reaches the app");
        assert_eq!(status(&c, Req::get("/health")), 200, "{committed}");
        assert_eq!(status(&c, Req::get("/api/orders")), 403, "{committed}: no token, no principal");
        assert_eq!(status(&c, Req::get("/api/orders").header("authorization", "Bearer x.y.z")), 401, "{committed}");
        let banned = format!("Bearer {}", token("mallory", serde_json::json!({"role": "banned"})));
        assert_eq!(status(&c, Req::get("/api/orders").header("authorization", &banned)), 403, "{committed}");
        assert_eq!(status(&c, Req::get("/%61pi/orders")), 403, "{committed}: the sidecar normalizes, the filter too");
        let bob = format!("Bearer {}", token("bob", serde_json::json!({})));
        // 4 connections send bob's requests until the first 429 (at most 20 s): over 100/s with a burst
        // of 20 the limit must answer 429. Sent until seen, not a fixed count, so a machine slowed by
        // other tests needs longer, not a different answer.
        let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        let limited = AtomicBool::new(false);
        let sent = AtomicU64::new(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (url, bob, limited, sent) = (lab.envoy.url(), bob.clone(), &limited, &sent);
                s.spawn(move || {
                    let c = Client::new(&url).unwrap();
                    while !limited.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                        sent.fetch_add(1, Ordering::SeqCst);
                        if status(&c, Req::get("/api/x").header("authorization", &bob)) == 429 {
                            limited.store(true, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        if !limited.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1200)); // counters reach /stats on the next flush
        }
        let stats = lab.envoy.stats().unwrap();
        let custom: Vec<_> = stats.iter().filter(|(k, _)| k.starts_with("wasmcustom")).collect();
        let sent = sent.load(Ordering::SeqCst);
        assert!(
            limited.load(Ordering::SeqCst),
            "{committed}: {sent} requests in 20 s never exceeded bob's limit: {custom:?}"
        );
        assert_eq!(status(&c, Req::get("/api/x").header("authorization", &alice)), 200, "{committed}: per user");
        assert!(!lab.envoy.log().contains("wasm-default-deny"), "no stand-in");
    }
}

/// storefront (canary, CLIENT) runs on an outbound listener: the override header and the sticky cookie
/// pick the subset the route sends to.
#[test]
fn the_storefront_manifests_steer_outbound_calls() {
    for committed in ["manifests/rendered/storefront", "manifests/bundle/storefront"] {
        let lab = start_committed(committed);
        assert_eq!(lab.feed.class, meshplug_harness::istio::istiod::ListenerClass::SidecarOutbound, "{committed}");
        let c = lab.envoy.client().unwrap();
        let upstream = |req: Req| c.send(req).unwrap().json()["upstream"].as_str().unwrap_or_default().to_string();
        assert_eq!(upstream(Req::get("/").header("x-meshplug-override", "canary")), "canary", "{committed}");
        for uid in ["u1", "u2", "u3"] {
            let first = upstream(Req::get("/").header("cookie", &format!("uid={uid}")));
            assert!(first == "stable" || first == "canary", "{first}");
            for _ in 0..5 {
                assert_eq!(
                    upstream(Req::get("/").header("cookie", &format!("uid={uid}"))),
                    first,
                    "{committed}: sticky"
                );
            }
        }
    }
}

fn plugin(name: &str, module: &str, url: &str, extra: &str, config: &str) -> String {
    format!(
        "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: {name}, namespace: t}}\n\
         spec:\n  selector: {{matchLabels: {{app: t}}}}\n  url: {url}\n  pluginName: {module}\n  \
         match: [{{mode: SERVER}}]\n{extra}  pluginConfig: {config}\n"
    )
}

/// A module the agent cannot fetch is replaced by its RBAC stand-in, as istio-agent does
/// (pkg/wasm/convert.go): 403 "RBAC: access denied" unless the plugin fails open (FAIL_RELOAD is
/// denied too); the agent's error names the cause.
#[test]
fn a_fetch_failure_gives_403_unless_the_plugin_fails_open() {
    let registry = Registry::start().unwrap();
    let digests = push_modules(&registry);
    let host = registry.host();
    let wrong = "0".repeat(64);
    let cases = [
        (
            "missing-image",
            format!("oci://{host}/meshplug/nothing:1"),
            "failStrategy: FAIL_CLOSE\n".to_string(),
            403,
            "could not fetch Wasm OCI image",
        ),
        (
            "missing-open",
            format!("oci://{host}/meshplug/nothing:1"),
            "failStrategy: FAIL_OPEN\n".to_string(),
            200,
            "applying allow RBAC filter",
        ),
        (
            "missing-reload",
            format!("oci://{host}/meshplug/nothing:1"),
            "failStrategy: FAIL_RELOAD\n".to_string(),
            403,
            "applying deny RBAC filter",
        ),
        (
            "wrong-digest",
            format!("oci://{host}/meshplug/fault:0.1.0"),
            format!("sha256: {wrong}\n"),
            403,
            "which does not match",
        ),
        (
            "no-secret",
            format!("oci://{host}/meshplug/fault:0.1.0"),
            "imagePullSecret: regcred\n".to_string(),
            403,
            "missing image pulling secret",
        ),
    ];
    for (name, url, extra, expected, reason) in cases {
        let dir = scratch(name);
        let extra = extra.lines().map(|l| format!("  {l}\n")).collect::<String>();
        std::fs::write(dir.join("p.yaml"), plugin(name, "fault", &url, &extra, "{}")).unwrap();
        let mut lab = start(&dir);
        let Some((_, Outcome::Replaced { error, .. })) = lab.initial.sent.first() else {
            panic!("{name}: {:?}", lab.initial)
        };
        assert!(error.contains(reason), "{name}: {error}");
        let c = lab.envoy.client().unwrap();
        let r = c.send(Req::get("/")).unwrap();
        assert_eq!(r.status, expected, "{name}: {}", r.text());
        if expected == 403 {
            assert_eq!(r.text(), "RBAC: access denied", "{name}");
            // Only the stand-in can answer this: the lab's Istio `rbac` filter has no policy. Its own
            // stats (`…rbac.wasm-default-deny.denied`) are not among those a sidecar keeps (Istio's
            // inclusion list keeps the `rbac.denied` suffix only), and the lab keeps what a sidecar keeps.
            let stats = lab.envoy.stats().unwrap();
            assert!(!stats.keys().any(|k| k.contains("wasm-default-deny")), "{name}: dropped as in a sidecar");
        }
        // The same plugin fixed: the next sync fetches it and the stand-in is gone.
        std::fs::write(
            dir.join("p.yaml"),
            plugin(
                name,
                "fault",
                &format!("oci://{host}/meshplug/fault:0.1.0"),
                &format!("  sha256: {}\n", digests["fault"]),
                "{}",
            ),
        )
        .unwrap();
        let report = lab.sync().unwrap();
        let Some((_, Outcome::Local { .. })) = report.sent.first() else { panic!("{name}: {report:?}") };
        assert!(
            meshplug_tests::eventually(Duration::from_secs(10), || status(&c, Req::get("/")) == 200),
            "{name}: fixed"
        );
    }
}

fn fault_plugin(registry: &Registry, digest: &str, header: &str) -> String {
    let config =
        format!("{{rules: [{{match: [{{headers: {{{header}: {{exact: '1'}}}}}}], abort: {{httpStatus: 503}}}}]}}");
    let url = format!("oci://{}/meshplug/fault:0.1.0", registry.host());
    plugin("chaos", "fault", &url, &format!("  sha256: {digest}\n  failStrategy: FAIL_CLOSE\n"), &config)
}

/// One pinned fault WasmPlugin (`p.yaml` in a scratch directory, the module pushed to its own
/// registry) that answers 503 to requests with `<header>: 1`, run through the Istio path.
struct FaultLab {
    lab: IstioLab,
    dir: PathBuf,
    digest: String,
    registry: Registry,
}

impl FaultLab {
    fn start(name: &str, header: &str) -> Self {
        let registry = Registry::start().unwrap();
        let digest = push_modules(&registry).remove("fault").unwrap();
        let dir = scratch(name);
        std::fs::write(dir.join("p.yaml"), fault_plugin(&registry, &digest, header)).unwrap();
        FaultLab { lab: start(&dir), dir, digest, registry }
    }

    fn plugin(&self, header: &str) -> String {
        fault_plugin(&self.registry, &self.digest, header)
    }

    /// Edits the plugin's file to `text` and syncs.
    fn write(&mut self, text: &str) -> meshplug_harness::istio::lab::SyncReport {
        std::fs::write(self.dir.join("p.yaml"), text).unwrap();
        self.lab.sync().unwrap()
    }

    /// Moves the abort to `header`; returns once a request shows the new config in effect.
    fn update(&mut self, header: &str) {
        let report = self.write(&self.plugin(header));
        assert!(!report.listener_changed, "a config edit is an ECDS update, not a new listener: {report:?}");
        let c = self.lab.envoy.client().unwrap();
        assert!(
            meshplug_tests::eventually(Duration::from_secs(10), || status(&c, Req::get("/").header(header, "1"))
                == 503),
            "the update to {header} never took effect: {}",
            self.lab.envoy.log()
        );
    }
}

/// Requests from 4 threads until `stop`; returns (requests, answers other than 200).
fn steady_load(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, Vec<u16>)> {
    std::thread::spawn(move || {
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (url, stop) = (url.clone(), stop.clone());
                    s.spawn(move || {
                        let c = Client::new(&url).unwrap();
                        let (mut n, mut bad) = (0u64, Vec::new());
                        while !stop.load(Ordering::SeqCst) {
                            n += 1;
                            let st = status(&c, Req::get("/steady"));
                            if st != 200 {
                                bad.push(st);
                            }
                        }
                        (n, bad)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).fold((0, Vec::new()), |(n, mut b), (m, c)| {
                b.extend(c);
                (n + m, b)
            })
        })
    })
}

/// pluginConfig edits under steady load reach Envoy through ECDS without a restart and without one
/// failed request; the agent does not fetch the pinned module again.
#[test]
fn plugin_config_updates_under_load_fail_no_request() {
    let mut f = FaultLab::start("updates", "x-fault-0");
    let pid = f.lab.envoy.pid();
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(f.lab.envoy.url(), stop.clone());
    for i in 1..=20 {
        f.update(&format!("x-fault-{i}"));
        let c = f.lab.envoy.client().unwrap();
        assert_eq!(status(&c, Req::get("/").header(&format!("x-fault-{}", i - 1), "1")), 200, "the old rule is gone");
    }
    stop.store(true, Ordering::SeqCst);
    let (requests, bad) = load.join().unwrap();
    assert!(requests > 100, "the load ran: {requests}");
    assert_eq!(bad, Vec::<u16>::new(), "{requests} requests during 20 updates");
    assert_eq!(f.lab.envoy.pid(), pid, "same Envoy process");
    assert_eq!(f.lab.fetches(), 1, "the module is cached by its digest");
}

/// A pluginConfig the filter refuses: Envoy rejects the ECDS update, keeps serving with the last good
/// config, and the log names the field and the reason.
#[test]
fn a_broken_update_keeps_the_last_good_config_and_names_the_field() {
    let mut f = FaultLab::start("broken", "x-fault-good");
    f.write(&f.plugin("x-fault-new").replace("httpStatus: 503", "httpStatus: 42"));
    let lab = &f.lab;
    let field = "[fault] invalid config at /rules/0/abort/httpStatus: HTTP status 42 is out of range";
    assert!(
        meshplug_tests::eventually(Duration::from_secs(10), || lab.envoy.log().contains(field)),
        "the log names the field: {}",
        lab.envoy.log()
    );
    let c = lab.envoy.client().unwrap();
    for _ in 0..20 {
        assert_eq!(status(&c, Req::get("/").header("x-fault-good", "1")), 503, "the last good config still applies");
        assert_eq!(status(&c, Req::get("/")), 200);
        assert_eq!(status(&c, Req::get("/").header("x-fault-new", "1")), 200);
    }
    // And a good edit after it applies.
    f.update("x-fault-fixed");
}

/// 100 edits in a row: Envoy's memory stays bounded (each update replaces the plugin's config; the
/// VM is shared by code, so no VM piles up).
#[test]
fn a_hundred_updates_leave_memory_bounded() {
    let mut f = FaultLab::start("hundred", "x-fault-0");
    for i in 1..=10 {
        f.update(&format!("x-fault-{i}"));
    }
    let lab = &f.lab;
    let before = lab.envoy.rss_bytes().unwrap();
    let vms = lab.envoy.stat("wasm.envoy.wasm.runtime.v8.active");
    for i in 11..=110 {
        f.update(&format!("x-fault-{i}"));
    }
    let lab = &f.lab;
    let after = lab.envoy.rss_bytes().unwrap();
    let growth = after as f64 / (1 << 20) as f64 - before as f64 / (1 << 20) as f64;
    eprintln!(
        "RSS after 10 updates {:.1} MiB, after 110 {:.1} MiB (+{growth:.1} MiB); active VMs {vms} -> {}",
        before as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64,
        lab.envoy.stat("wasm.envoy.wasm.runtime.v8.active")
    );
    assert!(growth < 16.0, "+{growth:.1} MiB over 100 updates");
    assert!(lab.envoy.stat("wasm.envoy.wasm.runtime.v8.active") <= vms, "no VM piles up");
}

/// istio-agent's cache (pkg/wasm/cache.go): a pinned digest is fetched once whatever the edits; an
/// unpinned tag with `imagePullPolicy: Always` is fetched again on every edit (the resource version
/// changes); with `IfNotPresent` it is not.
#[test]
fn the_agent_cache_honours_digests_and_pull_policy() {
    let registry = Registry::start().unwrap();
    let digests = push_modules(&registry);
    let url = format!("oci://{}/meshplug/fault:0.1.0", registry.host());
    for (name, extra, fetches_after_two_edits) in [
        ("pinned-always", format!("  sha256: {}\n  imagePullPolicy: Always\n", digests["fault"]), 1),
        ("tag-always", "  imagePullPolicy: Always\n".to_string(), 3),
        ("tag-ifnotpresent", "  imagePullPolicy: IfNotPresent\n".to_string(), 1),
        ("tag-default", String::new(), 1),
    ] {
        let dir = scratch(name);
        let config = |h: &str| {
            format!("{{rules: [{{match: [{{headers: {{{h}: {{exact: '1'}}}}}}], abort: {{httpStatus: 503}}}}]}}")
        };
        std::fs::write(dir.join("p.yaml"), plugin(name, "fault", &url, &extra, &config("x-a"))).unwrap();
        let mut lab = start(&dir);
        assert_eq!(lab.fetches(), 1, "{name}");
        for h in ["x-b", "x-c"] {
            std::fs::write(dir.join("p.yaml"), plugin(name, "fault", &url, &extra, &config(h))).unwrap();
            let report = lab.sync().unwrap();
            assert!(matches!(report.sent.first(), Some((_, Outcome::Local { .. }))), "{name}: {report:?}");
            let c = lab.envoy.client().unwrap();
            assert!(
                meshplug_tests::eventually(Duration::from_secs(10), || status(&c, Req::get("/").header(h, "1")) == 503),
                "{name}"
            );
        }
        assert_eq!(lab.fetches(), fetches_after_two_edits, "{name}");
    }
}

/// FAIL_RELOAD end to end through the Istio path: the WasmPlugin's `failStrategy: FAIL_RELOAD` reaches
/// Envoy as `failure_policy: FAIL_RELOAD` (istiod's `buildPluginConfig`), so a VM that traps is
/// reloaded and the next requests succeed (the test-only `trap` module traps on `x-trap`).
#[test]
fn fail_reload_in_a_wasmplugin_reloads_the_vm() {
    let registry = Registry::start().unwrap();
    let wasm = std::fs::read(meshplug_harness::deploy::filters::module_file("trap.wasm").unwrap()).unwrap();
    let img = image(&wasm, Format::Compat).unwrap();
    push(&img, &format!("oci://{}/meshplug/trap:1", registry.host())).unwrap();
    let dir = scratch("fail-reload");
    let url = format!("oci://{}/meshplug/trap:1", registry.host());
    let extra = format!("  sha256: {}\n  failStrategy: FAIL_RELOAD\n", img.sha256_hex());
    std::fs::write(dir.join("p.yaml"), plugin("reloading", "trap", &url, &extra, "{}")).unwrap();
    let lab = start(&dir);
    let raw = |req: &[u8]| meshplug_harness::load::hostile::raw_status(lab.envoy.listener, req);
    const PLAIN: &[u8] = b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n";
    const TRAP: &[u8] = b"GET / HTTP/1.1\r\nhost: t\r\nx-trap: now\r\nconnection: close\r\n\r\n";
    assert_eq!(raw(PLAIN), Some(200));
    for _ in 0..40 {
        let _ = raw(TRAP);
    }
    // Envoy reloads a failed VM at most once per backoff interval (1 s by default).
    std::thread::sleep(Duration::from_millis(1500));
    let after: Vec<_> = (0..20).map(|_| raw(PLAIN)).collect();
    assert!(after.iter().all(|s| *s == Some(200)), "the VM was reloaded: {after:?}");
    assert!(lab.envoy.log().contains("trapping the VM"), "the fixture did trap");
    assert!(lab.envoy.stat("wasm.t.reloading.vm_reload_success") >= 1, "{:?}", lab.envoy.stats());
}

/// Global rate limits through the Istio path: the rendered WasmPlugin of examples/global-rate-limit,
/// its rate limit service run under the Istio cluster name it calls (`outbound|8081||ratelimit…`).
#[test]
fn a_rendered_global_rate_limit_is_enforced_through_the_istio_path() {
    let c = meshplug_harness::deploy::composition::Composition::load(
        &root().join("examples/global-rate-limit/composition.yaml"),
    )
    .unwrap();
    let dir = scratch("global");
    meshplug_harness::deploy::render::write(&meshplug_harness::deploy::render::render(&c, false).unwrap(), &dir)
        .unwrap();
    let mut opts = IstioOptions::new(&dir.join("api"));
    opts.mirror = true;
    let lab = IstioLab::start(opts).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(lab.rate_limit_services.len(), 1);
    assert_eq!(lab.rate_limit_services[0].0, "outbound|8081||ratelimit.ratelimit.svc.cluster.local");
    let client = lab.envoy.client().unwrap();
    let free = || Req::get("/").header("x-user", "frank").header("x-plan", "free");
    let codes: Vec<u16> = (0..5).map(|_| status(&client, free())).collect();
    assert_eq!(codes, [200, 200, 200, 429, 429], "the free tier's 3 an hour, counted by the service");
    assert_eq!(lab.rate_limit_services[0].1.calls(), 5);
}

/// A jwt-authz plugin for every waypoint (GatewayClass `istio-waypoint`, from the root namespace), as
/// `render` writes it, runs on a waypoint proxy as istiod attaches it (policyattachment.go; waypoint
/// filters matched as SERVER with port 0, listener_waypoint.go): requests without a token are refused.
/// Rendered CLIENT (the earlier default), the plugin is not attached at all and every request passes.
#[test]
fn a_gatewayclass_plugin_authenticates_on_the_waypoint() {
    let jwks = jwt_authz::testkit::jwks(&["rsa"]);
    let text = format!(
        "defaults: {{registry: ghcr.io/meshplug, tag: 0.1.0}}\nworkloads:\n- name: mesh-auth\n  namespace: istio-system\n  \
         targetRefs: [{{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}}]\n  filters:\n  \
         - name: jwt-authz\n    pluginConfig:\n      jwtRules: [{{issuer: '{}', jwks: {}}}]\n      \
         policies: [{{action: ALLOW, rules: [{{from: [{{source: {{requestPrincipals: ['*']}}}}]}}]}}]\n",
        jwt_authz::testkit::ISSUER,
        serde_json::to_string(&jwks).unwrap()
    );
    let c = meshplug_harness::deploy::composition::Composition::parse(&text).unwrap();
    assert_eq!(c.validate(), vec![]);
    let dir = scratch("waypoint");
    meshplug_harness::deploy::render::write(&meshplug_harness::deploy::render::render(&c, false).unwrap(), &dir)
        .unwrap();
    let plugin = std::fs::read_to_string(dir.join("mesh-auth/jwt-authz.yaml")).unwrap();
    let mut opts = IstioOptions::new(&dir.join("mesh-auth"));
    opts.mirror = true;
    opts.namespace = Some("shop".into());
    let lab = IstioLab::start(opts).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(lab.feed.waypoint, "the plugins target waypoints: the lab's proxy is one");
    assert_eq!(lab.feed.plugin_names(), ["extensions.istio.io/wasmplugin/istio-system.mesh-auth-jwt-authz"]);
    let client = lab.envoy.client().unwrap();
    assert_eq!(status(&client, Req::get("/api")), 403, "no token: RBAC: access denied");
    let bearer = format!("Bearer {}", token("alice", serde_json::json!({})));
    assert_eq!(status(&client, Req::get("/api").header("authorization", &bearer)), 200);
    drop(lab);

    // The same plugin with `match: [{mode: CLIENT}]`: istiod never attaches it to a waypoint.
    std::fs::write(dir.join("mesh-auth/jwt-authz.yaml"), plugin.replace("mode: SERVER", "mode: CLIENT")).unwrap();
    let mut opts = IstioOptions::new(&dir.join("mesh-auth"));
    opts.mirror = true;
    opts.namespace = Some("shop".into());
    let lab = IstioLab::start(opts).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(lab.feed.plugin_names().is_empty(), "{:?}", lab.feed.plugin_names());
    assert_eq!(status(&lab.envoy.client().unwrap(), Req::get("/api")), 200, "unauthenticated: the plugin never runs");
}

/// The EnvoyFilter form through istiod's patching and istio-agent (pkg/wasm/cache.go): with
/// `imagePullPolicy: Always` a changed rendering is pulled again (its resource version is a digest of
/// the rendered config; without one the agent compared "" with "" and never pulled again); and a
/// `file://` module goes through ECDS as istiod sends one, so a missing file is one rejected extension
/// config while the listener keeps serving with the last good one.
#[test]
fn the_envoyfilter_form_pulls_again_on_always_and_survives_a_bad_file() {
    use meshplug_harness::deploy::composition::Composition;
    use meshplug_harness::deploy::render::{render, write};
    let registry = Registry::start().unwrap();
    push_modules(&registry);
    let composition = |header: &str, defaults: &str| {
        format!(
            "defaults: {{{defaults}}}\nworkloads:\n- name: api\n  namespace: shop\n  selector: {{app: api}}\n  filters:\n  \
             - name: fault\n    pluginConfig: {{rules: [{{match: [{{headers: {{{header}: {{exact: '1'}}}}}}], abort: {{httpStatus: 503}}}}]}}\n"
        )
    };
    let render_to = |text: &str, dir: &Path| {
        let c = Composition::parse(text).unwrap();
        assert_eq!(c.validate(), vec![]);
        write(&render(&c, true).unwrap(), dir).unwrap();
    };
    let dir = scratch("ef-always");
    let remote = format!("registry: '{}/meshplug', tag: 0.1.0, imagePullPolicy: Always", registry.host());
    render_to(&composition("x-a", &remote), &dir);
    let mut lab = start(&dir.join("api"));
    assert_eq!(lab.feed.plugin_names(), ["extensions.istio.io/wasmplugin/shop.api-fault"]);
    let c = lab.envoy.client().unwrap();
    assert!(meshplug_tests::eventually(Duration::from_secs(10), || status(&c, Req::get("/").header("x-a", "1")) == 503));
    assert_eq!(lab.fetches(), 1);
    render_to(&composition("x-b", &remote), &dir);
    let report = lab.sync().unwrap();
    assert!(!report.listener_changed, "only the extension config changed: {report:?}");
    assert!(meshplug_tests::eventually(Duration::from_secs(10), || status(&c, Req::get("/").header("x-b", "1")) == 503));
    assert_eq!(lab.fetches(), 2, "Always: the changed rendering was pulled again");
    drop(lab);

    let modules = scratch("ef-modules");
    std::fs::copy(meshplug_harness::deploy::filters::module_path("fault").unwrap(), modules.join("fault.wasm"))
        .unwrap();
    let dir = scratch("ef-file");
    let local = |m: &Path| format!("moduleDir: '{}'", m.display());
    render_to(&composition("x-a", &local(&modules)), &dir);
    let mut lab = start(&dir.join("api"));
    let c = lab.envoy.client().unwrap();
    assert!(meshplug_tests::eventually(Duration::from_secs(10), || status(&c, Req::get("/").header("x-a", "1")) == 503));
    // The module file is gone from the new moduleDir: Envoy rejects that extension config only.
    render_to(&composition("x-b", &local(&modules.join("missing"))), &dir);
    lab.sync().unwrap();
    assert!(
        meshplug_tests::eventually(Duration::from_secs(10), || lab.envoy.log().contains("missing/fault.wasm")),
        "Envoy names the file it could not read: {}",
        lab.envoy.log()
    );
    for _ in 0..10 {
        assert_eq!(status(&c, Req::get("/").header("x-a", "1")), 503, "the last good config still applies");
        assert_eq!(status(&c, Req::get("/").header("x-b", "1")), 200);
    }
}

/// The filters' counters reach Prometheus in a default Istio install: the lab's Envoy keeps only what
/// istio-agent's bootstrap keeps (`meshplug_harness::istio::stats_config`, mirrored from
/// tools/packaging/common/envoy_bootstrap.json and pkg/bootstrap/config.go), and every `wasmcustom.*`
/// counter the payments plugins define is still there, and in `/stats/prometheus` under
/// `meshplug_<filter>_…` (Envoy strips the custom namespace; istio-agent's merged endpoint serves
/// Envoy's Prometheus output). Stats outside the list (`http.*.downstream_rq_total`) are gone, so the
/// matcher is in force.
#[test]
fn the_filters_counters_survive_istios_stats_inclusion_list() {
    let lab = start_committed("manifests/rendered/payments");
    let c = lab.envoy.client().unwrap();
    let alice = format!("Bearer {}", token("alice", serde_json::json!({})));
    assert!(meshplug_tests::eventually(Duration::from_secs(10), || {
        status(&c, Req::get("/api/orders").header("authorization", &alice)) == 200
    }));
    std::thread::sleep(Duration::from_millis(1200)); // the filters flush their counters once a second
    let stats = lab.envoy.stats().unwrap();
    assert!(!stats.keys().any(|k| k.ends_with("downstream_rq_total")), "the inclusion list is in force");
    let custom: Vec<&String> = stats.keys().filter(|k| k.starts_with("wasmcustom.")).collect();
    for filter in ["jwt_authz", "rate_limit", "fault"] {
        assert!(
            custom.iter().any(|k| k.starts_with(&format!("wasmcustom.meshplug.{filter}."))),
            "{filter}'s counters kept: {custom:?}"
        );
    }
    assert!(custom.iter().all(|k| meshplug_harness::istio::stat_kept(k)));
    assert!(
        meshplug_tests::eventually(Duration::from_secs(5), || lab
            .envoy
            .stat("wasmcustom.meshplug.jwt_authz.tokens_valid")
            >= 1),
        "{custom:?}"
    );
    let prometheus =
        Client::new(&format!("http://{}", lab.envoy.admin)).unwrap().get("/stats/prometheus").unwrap().text();
    let line = prometheus.lines().find(|l| l.starts_with("meshplug_jwt_authz_tokens_valid")).unwrap_or_default();
    assert!(line.split_whitespace().last().and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v >= 1), "{prometheus}");
}

/// A WasmPlugin with an empty `pluginConfig` and no `failStrategy` reaches Envoy as istiod sends it
/// (extensions.go `buildPluginConfig`): `configuration` an empty Any, `failure_policy` FAIL_CLOSED
/// (FAIL_CLOSE is the enum's zero value); Envoy takes it and the filter runs with its defaults.
#[test]
fn an_empty_plugin_config_and_no_fail_strategy_load_as_istiod_sends_them() {
    let registry = Registry::start().unwrap();
    push_modules(&registry);
    let dir = scratch("empty-config");
    let url = format!("oci://{}/meshplug/fault:0.1.0", registry.host());
    std::fs::write(dir.join("p.yaml"), plugin("bare", "fault", &url, "", "{}")).unwrap();
    let lab = start(&dir);
    let Some((_, Outcome::Local { path, .. })) = lab.initial.sent.first() else { panic!("{:?}", lab.initial) };
    assert!(path.exists());
    assert_eq!(status(&lab.envoy.client().unwrap(), Req::get("/")), 200, "{}", lab.envoy.log());
    assert!(!lab.envoy.log().contains("invalid config"), "{}", lab.envoy.log());
}
