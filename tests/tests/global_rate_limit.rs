//! Global rate limits through Envoy's rate limit service protocol, against a real service backed by a
//! real Redis (both started here on 127.0.0.1, stopped at the end even on failure).
//!
//! First the service itself is held to the consumer's rules: Envoy's own `envoy.filters.http.ratelimit`
//! filter (source/extensions/filters/http/ratelimit in Envoy) sends it descriptors and must get the
//! counts its configuration promises — which is what envoyproxy/ratelimit gives it.

use meshplug_harness::deploy::filters::workspace_root;
use meshplug_harness::lab::bootstrap::{Cluster, Setup};
use meshplug_harness::lab::echo::EchoServer;
use meshplug_harness::lab::envoy::find_envoy;
use meshplug_harness::lab::redis::RedisServer;
use meshplug_harness::lab::run::{EnvoyOptions, RunningEnvoy};
use meshplug_harness::lab::stub::StubServer;
use meshplug_tests::{Client, Req};
use serde_json::json;

/// An hour window: a test never straddles two windows unless it runs across the top of an hour.
const RLS_CONFIG: &str = "domain: shop\ndescriptors:\n  - key: user\n    rate_limit: {unit: hour, requests_per_unit: 5}\n  - key: path\n    value: /admin\n    descriptors:\n      - key: user\n        rate_limit: {unit: hour, requests_per_unit: 2}\n";

fn rls(redis: &RedisServer, prefix: &str) -> meshplug_rls::Running {
    let domains = meshplug_rls::parse_config(RLS_CONFIG).unwrap();
    meshplug_rls::start(domains, &redis.url(), "127.0.0.1:0".parse().unwrap(), prefix).unwrap()
}

/// Envoy with its native ratelimit filter: descriptors `[user=<x-user>]` and `[path=<:path>, user]`.
fn native_envoy(rls_port: u16, echo: &EchoServer) -> RunningEnvoy {
    let ratelimit = json!({
        "name": "envoy.filters.http.ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
            "domain": "shop",
            "failure_mode_deny": true,
            "timeout": "1s",
            "rate_limit_service": { "grpc_service": { "envoy_grpc": { "cluster_name": "rls" } }, "transport_api_version": "V3" }
        }
    });
    let route = json!({
        "match": { "prefix": "/" },
        "route": { "cluster": "echo", "rate_limits": [
            { "actions": [ { "request_headers": { "header_name": "x-user", "descriptor_key": "user" } } ] },
            { "actions": [ { "request_headers": { "header_name": ":path", "descriptor_key": "path" } },
                           { "request_headers": { "header_name": "x-user", "descriptor_key": "user" } } ] }
        ] }
    });
    let setup = Setup {
        port: 0,
        admin_port: 0,
        filters: vec![],
        clusters: vec![
            Cluster { name: "echo".into(), port: echo.addr.port(), http2: false },
            Cluster { name: "rls".into(), port: rls_port, http2: true },
        ],
        routes: vec![],
        native_filters: vec![ratelimit],
        direct_response: None,
        raw_routes: Some(vec![route]),
    };
    let binary = find_envoy(None, &workspace_root()).unwrap();
    RunningEnvoy::start(&setup.render(), &EnvoyOptions::new(binary)).unwrap()
}

fn statuses(c: &Client, n: usize, req: impl Fn() -> Req) -> (usize, usize) {
    let codes: Vec<u16> = (0..n).map(|_| c.send(req()).unwrap().status).collect();
    let other: Vec<&u16> = codes.iter().filter(|s| **s != 200 && **s != 429).collect();
    assert!(other.is_empty(), "only 200 and 429 expected: {codes:?}");
    (codes.iter().filter(|s| **s == 200).count(), codes.iter().filter(|s| **s == 429).count())
}

#[test]
fn envoys_native_ratelimit_filter_gets_the_counts_its_config_promises() {
    let redis = RedisServer::start().unwrap();
    let service = rls(&redis, "native:");
    let echo = EchoServer::start("echo", 0).unwrap();
    let envoy = native_envoy(service.addr.port(), &echo);
    let c = envoy.client().unwrap();
    assert_eq!(statuses(&c, 9, || Req::get("/x").header("x-user", "alice")), (5, 4), "5 per hour for alice");
    assert_eq!(statuses(&c, 3, || Req::get("/x").header("x-user", "bob")), (3, 0), "bob has his own counter");
    // /admin: both descriptors apply; the nested [path=/admin, user] one allows 2.
    assert_eq!(statuses(&c, 4, || Req::get("/admin").header("x-user", "carol")), (2, 2));
    // Each request is one ShouldRateLimit call (Envoy sends all of a request's descriptors at once).
    assert_eq!(service.calls(), 16);
    let r = c.send(Req::get("/x").header("x-user", "alice")).unwrap();
    assert_eq!(r.status, 429);
    // Envoy counts the service's answers under the route's cluster.
    assert_eq!(envoy.stat("cluster.echo.ratelimit.over_limit"), 7);
    assert_eq!(envoy.stat("cluster.echo.ratelimit.ok"), 10);
    // The counters live in Redis: a second service on the same Redis continues them.
    drop(envoy);
    let second = rls(&redis, "native:");
    let envoy = native_envoy(second.addr.port(), &echo);
    let c = envoy.client().unwrap();
    assert_eq!(statuses(&c, 2, || Req::get("/x").header("x-user", "bob")), (2, 0), "bob had 3 of 5");
    assert_eq!(statuses(&c, 1, || Req::get("/x").header("x-user", "bob")), (0, 1));
}

// ---- The rate-limit filter's global rules against the same service ----

const GLOBAL_CONFIG: &str = "domain: shop\ndescriptors:\n  - key: user\n    rate_limit: {unit: hour, requests_per_unit: 5}\n  - key: team\n    rate_limit: {unit: hour, requests_per_unit: 20}\n";

fn service(redis: &RedisServer, config: &str, prefix: &str) -> meshplug_rls::Running {
    let domains = meshplug_rls::parse_config(config).unwrap();
    meshplug_rls::start(domains, &redis.url(), "127.0.0.1:0".parse().unwrap(), prefix).unwrap()
}

fn global_config(extra_rule: serde_json::Value, service: serde_json::Value) -> serde_json::Value {
    let mut rule = json!({"name": "per-user", "global": {"descriptors": [{"key": "user", "header": "x-user"}]}});
    if let (Some(r), Some(extra)) = (rule.as_object_mut(), extra_rule.as_object()) {
        r.extend(extra.clone());
    }
    let mut svc = json!({"cluster": "rls", "domain": "shop", "timeout": "1s"});
    if let (Some(s), Some(extra)) = (svc.as_object_mut(), service.as_object()) {
        s.extend(extra.clone());
    }
    json!({"rateLimitService": svc, "rules": [rule]})
}

fn lab(config: serde_json::Value, rls_port: u16) -> meshplug_tests::Lab {
    meshplug_tests::builder()
        .filter("rate-limit", config)
        .grpc_cluster("rls", rls_port)
        .start()
        .unwrap_or_else(|e| panic!("could not start Envoy: {e:#}"))
}

fn metric(lab: &meshplug_tests::Lab, name: &str) -> u64 {
    meshplug_tests::metric(lab, "rate-limit", name)
}

/// A global rule: the service counts, the filter refuses OVER_LIMIT with 429, `retry-after` and the
/// service's quota in `ratelimit-*`; per user.
#[test]
fn a_global_rule_is_enforced_by_the_service() {
    let redis = RedisServer::start().unwrap();
    let rls = service(&redis, GLOBAL_CONFIG, "global:");
    let lab = lab(global_config(json!({}), json!({})), rls.addr.port());
    let c = lab.envoy.client().unwrap();
    let (ok, limited) = statuses(&c, 8, || Req::get("/x").header("x-user", "alice"));
    assert_eq!((ok, limited), (5, 3), "5 per hour for alice");
    let r = c.send(Req::get("/x").header("x-user", "alice")).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("ratelimit-limit"), Some("5"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let r = c.send(Req::get("/x").header("x-user", "bob")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit-remaining"), Some("4"), "the service's quota on allowed responses");
    assert_eq!(rls.calls(), 10);
    assert!(
        meshplug_tests::eventually(std::time::Duration::from_secs(3), || metric(&lab, "per-user.global_limited") == 4)
    );
    assert_eq!(metric(&lab, "per-user.global_allowed"), 6);
}

/// Cluster names of any length Envoy accepts reach the service: an Istio cluster name
/// (`outbound|<port>||<host>`, whose host is also the calls' `:authority`) of 60, 127 and 200 bytes.
/// Past about 123 bytes for both names together the serialized GrpcService needs two-byte lengths,
/// which are not UTF-8; when they were converted lossily on the way to the host, Envoy could not parse
/// the service and every request got `statusOnError` (this test then saw 500 for 127 and 200).
#[test]
fn long_cluster_names_reach_the_service() {
    let redis = RedisServer::start().unwrap();
    let rls = service(&redis, GLOBAL_CONFIG, "long-names:");
    for len in [60usize, 127, 200] {
        let prefix = "outbound|8081||";
        let suffix = ".rate-limiting.svc.cluster.local";
        let host = format!("{}{suffix}", "r".repeat(len - prefix.len() - suffix.len()));
        let cluster = format!("{prefix}{host}");
        assert_eq!(cluster.len(), len);
        let config = global_config(json!({}), json!({"cluster": cluster}));
        let lab = meshplug_tests::builder()
            .filter("rate-limit", config)
            .grpc_cluster(&cluster, rls.addr.port())
            .start()
            .unwrap_or_else(|e| panic!("could not start Envoy: {e:#}"));
        let c = lab.envoy.client().unwrap();
        let user = format!("user-{len}");
        let (ok, limited) = statuses(&c, 7, || Req::get("/x").header("x-user", &user));
        assert_eq!((ok, limited), (5, 2), "{len}-byte cluster name: the service's 5 per hour, enforced");
    }
    assert_eq!(rls.calls(), 21, "every request asked the service");
}

/// A `RateLimitResponse` with overall code `code`, `response_headers_to_add` and
/// `request_headers_to_add` (fields 1, 3, 4), and a `raw_body` of `padding` bytes (field 5).
fn rls_answer(code: u64, response: &[(&str, &str)], request: &[(&str, &str)], padding: usize) -> Vec<u8> {
    use meshplug_common::proto::Writer;
    let mut w = Writer::default();
    w.uint(1, code);
    for (field, headers) in [(3, response), (4, request)] {
        for (k, v) in headers {
            let mut h = Writer::default();
            h.bytes(1, k.as_bytes()).bytes(2, v.as_bytes());
            w.message(field, &h.bytes);
        }
    }
    w.bytes(5, &vec![b'x'; padding]);
    w.bytes
}

/// What a service may send is bounded: an answer over 64 KiB is a bad response (never copied into the
/// VM), and headers that would break framing or hop routing are dropped and counted, while the rest of
/// the answer holds.
#[test]
fn oversized_answers_and_framing_headers_from_the_service_are_refused() {
    // 100 KiB: over the cap. The filter answers as for any bad response (onError: deny → 500).
    let big = StubServer::grpc(&rls_answer(1, &[], &[], 100 * 1024)).unwrap();
    let lab_big = lab(global_config(json!({}), json!({})), big.addr.port());
    let r = lab_big.envoy.client().unwrap().send(Req::get("/").header("x-user", "a")).unwrap();
    assert_eq!((r.status, r.text().as_str()), (500, "rate limit service unavailable\n"), "over 64 KiB");
    assert!(meshplug_tests::eventually(std::time::Duration::from_secs(3), || metric(
        &lab_big,
        "per-user.global_bad_response"
    ) == 1));
    // Just under the cap: an answer like any other.
    let fits = StubServer::grpc(&rls_answer(1, &[], &[], 60 * 1024)).unwrap();
    let lab_fits = lab(global_config(json!({}), json!({})), fits.addr.port());
    assert_eq!(lab_fits.envoy.client().unwrap().send(Req::get("/").header("x-user", "a")).unwrap().status, 200);

    // OK, with headers to add: the framing and hop ones are dropped, the others kept.
    let answer = rls_answer(
        1,
        &[("content-length", "0"), ("transfer-encoding", "chunked"), ("connection", "close"), ("x-quota-note", "kept")],
        &[("host", "evil.example"), ("x-rls-tag", "tagged"), ("upgrade", "websocket")],
        0,
    );
    let headers = StubServer::grpc(&answer).unwrap();
    let lab_headers = lab(global_config(json!({}), json!({})), headers.addr.port());
    let r = lab_headers.envoy.client().unwrap().send(Req::get("/h").header("x-user", "a")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-quota-note"), Some("kept"));
    assert_ne!(r.header("connection"), Some("close"));
    let seen = r.json();
    assert_eq!(seen["headers"]["x-rls-tag"], "tagged", "a request header the service adds reaches the upstream");
    assert_ne!(seen["headers"]["host"], "evil.example");
    assert_ne!(seen["headers"]["upgrade"], "websocket");
    assert!(meshplug_tests::eventually(std::time::Duration::from_secs(3), || metric(
        &lab_headers,
        "per-user.global_headers_dropped"
    ) == 5));
}

/// Two Envoys (two replicas, two workers each) sharing one global limit admit the limit in total under
/// concurrent load from both.
#[test]
fn two_replicas_share_one_global_limit() {
    let redis = RedisServer::start().unwrap();
    let rls = service(&redis, GLOBAL_CONFIG, "replicas:");
    let config = json!({
        "rateLimitService": {"cluster": "rls", "domain": "shop", "timeout": "1s"},
        "rules": [{"name": "team", "global": {"descriptors": [{"key": "team", "value": "payments"}]}}]
    });
    let (a, b) = (lab(config.clone(), rls.addr.port()), lab(config, rls.addr.port()));
    let admitted: usize = std::thread::scope(|s| {
        let threads: Vec<_> = [&a, &b, &a, &b]
            .into_iter()
            .map(|l| {
                let url = l.envoy.url();
                s.spawn(move || {
                    let c = Client::new(&url).unwrap();
                    (0..15).filter(|_| c.send(Req::get("/")).unwrap().status == 200).count()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert!((19..=21).contains(&admitted), "the team's 20 per hour across both replicas: {admitted} of 60");
    assert_eq!(rls.calls(), 60);
}

/// A local limit in the same rule is checked first: only locally admitted requests reach the service.
#[test]
fn local_limits_are_checked_before_the_service_is_asked() {
    let redis = RedisServer::start().unwrap();
    let rls = service(&redis, GLOBAL_CONFIG, "local-first:");
    let rule = json!({"key": {"header": "x-user"}, "limits": [{"requests": 3, "per": "60s"}]});
    let lab = lab(global_config(rule, json!({})), rls.addr.port());
    let c = lab.envoy.client().unwrap();
    let (ok, limited) = statuses(&c, 10, || Req::get("/x").header("x-user", "carol"));
    assert_eq!((ok, limited), (3, 7), "the local limit (3) is the tighter one");
    assert_eq!(rls.calls(), 3, "only the 3 locally admitted requests were sent to the service");
}

/// The service down, too slow, or answering something that is not its protocol: the configured
/// failure mode, within the timeout, counted.
#[test]
fn service_failures_take_the_configured_mode_within_the_timeout() {
    use std::time::{Duration, Instant};
    // Down: nothing listens on the port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let denied = lab(global_config(json!({}), json!({"timeout": "300ms"})), closed);
    let c = denied.envoy.client().unwrap();
    let r = c.send(Req::get("/").header("x-user", "a")).unwrap();
    assert_eq!((r.status, r.text().as_str()), (500, "rate limit service unavailable\n"), "onError: deny (the default)");
    assert!(meshplug_tests::eventually(Duration::from_secs(3), || metric(&denied, "per-user.global_unavailable") >= 1));
    let allowed = lab(global_config(json!({}), json!({"onError": "allow", "timeout": "300ms"})), closed);
    assert_eq!(allowed.envoy.client().unwrap().send(Req::get("/").header("x-user", "a")).unwrap().status, 200);

    // Slow: accepts connections, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hold = std::thread::spawn({
        let silent = silent.try_clone().unwrap();
        move || {
            let mut held = Vec::new();
            silent.set_nonblocking(true).unwrap();
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end {
                if let Ok((s, _)) = silent.accept() {
                    held.push(s);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    let slow = lab(
        global_config(json!({}), json!({"timeout": "200ms", "statusOnError": 503})),
        silent.local_addr().unwrap().port(),
    );
    let c = slow.envoy.client().unwrap();
    let started = Instant::now();
    let r = c.send(Req::get("/").header("x-user", "a")).unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status, 503, "statusOnError");
    assert!(waited < Duration::from_secs(2), "the request waited {waited:?}: the 200 ms timeout did not bound it");
    assert!(meshplug_tests::eventually(Duration::from_secs(3), || metric(&slow, "per-user.global_timeout") >= 1));
    drop(slow);
    drop(hold);

    // Not gRPC: an HTTP/2 server answering JSON (the echo upstream). Envoy's gRPC client fails the
    // call (the body is not a gRPC frame), so the filter sees a failed call.
    let echo = EchoServer::start("not-grpc", 0).unwrap();
    let not_grpc = lab(global_config(json!({}), json!({})), echo.addr.port());
    let r = not_grpc.envoy.client().unwrap().send(Req::get("/").header("x-user", "a")).unwrap();
    assert_eq!(r.status, 500);
    assert!(
        meshplug_tests::eventually(Duration::from_secs(3), || metric(&not_grpc, "per-user.global_unavailable") == 1)
    );
    assert_eq!(metric(&not_grpc, "per-user.global_bad_response"), 0);

    // gRPC, but not the protocol's message: status OK with bytes that are no RateLimitResponse.
    let garbage_service = StubServer::grpc(&[0xff; 7]).unwrap();
    let garbage = lab(global_config(json!({}), json!({})), garbage_service.addr.port());
    let r = garbage.envoy.client().unwrap().send(Req::get("/").header("x-user", "a")).unwrap();
    assert_eq!((r.status, r.text().as_str()), (500, "rate limit service unavailable\n"));
    assert!(
        meshplug_tests::eventually(Duration::from_secs(3), || metric(&garbage, "per-user.global_bad_response") == 1)
    );
    assert_eq!(metric(&garbage, "per-user.global_unavailable"), 0);
    assert_eq!(garbage_service.hits(), 1, "the call reached the service");
    // A well-formed answer with two statuses for the one descriptor asked about is as bad.
    let two = StubServer::grpc(&[0x08, 0x01, 0x12, 0x02, 0x08, 0x01, 0x12, 0x02, 0x08, 0x01]).unwrap(); // OK, [OK, OK]
    let short = lab(global_config(json!({}), json!({"onError": "allow"})), two.addr.port());
    let r = short.envoy.client().unwrap().send(Req::get("/").header("x-user", "a")).unwrap();
    assert_eq!(r.status, 200, "onError: allow");
    assert!(meshplug_tests::eventually(Duration::from_secs(3), || metric(&short, "per-user.global_bad_response") == 1));
}

/// Shadow mode for a global rule: OVER_LIMIT is counted and logged, never enforced.
#[test]
fn a_shadow_global_rule_counts_but_lets_through() {
    let redis = RedisServer::start().unwrap();
    let rls = service(&redis, GLOBAL_CONFIG, "shadow:");
    let lab = lab(global_config(json!({"shadow": true}), json!({})), rls.addr.port());
    let c = lab.envoy.client().unwrap();
    assert_eq!(statuses(&c, 8, || Req::get("/x").header("x-user", "dave")), (8, 0));
    assert!(meshplug_tests::eventually(std::time::Duration::from_secs(3), || metric(
        &lab,
        "per-user.global_shadow_limited"
    ) == 3));
}

/// `meshplug up` for a composition with global rules starts Redis and meshplug-rls with the limits the
/// rules declare, under the cluster name the filter calls; `render` writes the same configuration.
#[test]
fn the_example_composition_runs_with_its_service_and_renders_its_config() {
    let root = meshplug_harness::deploy::filters::workspace_root();
    let c = meshplug_harness::deploy::composition::Composition::load(
        &root.join("examples/global-rate-limit/composition.yaml"),
    )
    .unwrap();
    assert_eq!(c.validate(), vec![]);
    let mut builder = meshplug_harness::lab::local::LabBuilder::from_composition(&c, None)
        .unwrap()
        .bundled(meshplug_tests::bundled());
    builder.port = 0;
    builder.admin_port = 0;
    let lab = builder.start().unwrap();
    assert!(lab.rate_limit_service.is_some(), "up started the service");
    let client = lab.envoy.client().unwrap();
    let free = || Req::get("/").header("x-user", "erin").header("x-plan", "free");
    assert_eq!(statuses(&client, 5, free), (3, 2), "the free tier's 3 an hour");
    assert_eq!(
        statuses(&client, 2, || Req::get("/").header("x-user", "erin")),
        (2, 0),
        "other plans are not limited by it"
    );
    let rendered = meshplug_harness::deploy::render::render(&c, false).unwrap();
    let text = &rendered["api/ratelimit-service.yaml"];
    assert!(text.contains("kind: ConfigMap") && text.contains("requests_per_unit: 3"), "{text}");
    for (path, text) in &rendered {
        for doc in text.split("\n---\n") {
            let doc: serde_json::Value = serde_yaml_ng::from_str(doc).unwrap();
            assert_eq!(meshplug_harness::deploy::manifests::check_document(path, &doc), vec![], "{path}");
        }
    }
}

/// Hostile bytes in a value a global descriptor reads: sent with the bad bytes escaped (protobuf
/// strings are UTF-8), counted as their own key, and nothing traps the VM.
#[test]
fn hostile_values_in_global_descriptors_get_their_own_counter() {
    let redis = RedisServer::start().unwrap();
    let rls = service(&redis, GLOBAL_CONFIG, "hostile:");
    let lab = lab(global_config(json!({}), json!({})), rls.addr.port());
    let raw = |user: &[u8]| {
        let mut req = b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\nx-user: ".to_vec();
        req.extend_from_slice(user);
        req.extend_from_slice(b"\r\n\r\n");
        meshplug_harness::load::hostile::raw_status(lab.envoy.listener, &req)
    };
    let statuses: Vec<Option<u16>> = (0..7).map(|_| raw(b"\xe4\xb8\xff%")).collect();
    assert_eq!(statuses.iter().filter(|s| **s == Some(200)).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == Some(429)).count(), 2, "{statuses:?}");
    assert_eq!(raw(b"\xe4\xb8\xfe%"), Some(200), "another byte, another counter");
    let log = lab.envoy.log();
    assert!(!log.contains("panicked") && !log.contains("Wasm VM failed"), "{log}");
    assert_eq!(rls.calls(), 8);
}

/// A global rule after a fault delay: the request is resumed by the worker's root context, which then
/// makes the call; the chain acts on the answer on the request's own context (it sets it explicitly
/// whichever context the SDK hands the answer to).
#[test]
fn a_global_rule_after_a_delay_answers_on_the_requests_context() {
    let redis = RedisServer::start().unwrap();
    let rls = service(&redis, GLOBAL_CONFIG, "delayed:");
    let lab = meshplug_tests::builder()
        .filter("fault", json!({"rules": [{"delay": {"fixedDelay": "30ms"}}]}))
        .filter("rate-limit", global_config(json!({}), json!({})))
        .grpc_cluster("rls", rls.addr.port())
        .start()
        .unwrap_or_else(|e| panic!("could not start Envoy: {e:#}"));
    let c = lab.envoy.client().unwrap();
    let (ok, limited) = statuses(&c, 7, || Req::get("/x").header("x-user", "gina"));
    assert_eq!((ok, limited), (5, 2));
    let r = c.send(Req::get("/x").header("x-user", "gina")).unwrap();
    assert_eq!(r.header("ratelimit-limit"), Some("5"), "the refusal carries the service's quota");
}

// ---- Limitador: the configuration `render` generates, run on Limitador's own library ----

/// Two global rules, both sent with every request: `per-user` (descriptor 0) and `team` (descriptor 1,
/// with a constant that needs CEL escaping), each request counting 2 hits.
fn limitador_plugin_config() -> serde_json::Value {
    json!({
        "rateLimitService": {"cluster": "rls", "domain": "shop", "timeout": "1s"},
        "rules": [
            {"name": "per-user", "global": {"descriptors": [{"key": "user", "header": "x-user"}],
                                             "hitsAddend": 2, "limit": {"requests": 8, "unit": "hour"}}},
            {"name": "team", "global": {"descriptors": [{"key": "team", "value": "a'b\\c"}, {"key": "user", "header": "x-user"}],
                                         "hitsAddend": 2, "limit": {"requests": 4, "unit": "hour"}}}
        ]
    })
}

/// The limits `render` writes to `limitador-limits.yaml`, read by Limitador's parser, counting what the
/// filter sends: the `team` limit (4 hits an hour, 2 a request) admits 2 requests per user, which it
/// does only if Limitador finds the second descriptor and counts the request's hits_addend; and the
/// filter reads Limitador's answer (an overall code, no statuses) as Envoy's ratelimit filter does.
#[test]
fn limitador_enforces_the_limits_render_generates() {
    let config = limitador_plugin_config();
    let need = meshplug_harness::deploy::global::service_need(&config).unwrap().unwrap();
    let yaml = serde_yaml_ng::to_string(&meshplug_harness::deploy::global::limitador_limits(&need).unwrap()).unwrap();
    let limits = meshplug_tests::limitador::parse_limits(&yaml).unwrap_or_else(|e| panic!("{e}: {yaml}"));
    let service = meshplug_tests::limitador::start(limits).unwrap();
    let lab = lab(config, service.addr.port());
    let c = lab.envoy.client().unwrap();
    assert_eq!(statuses(&c, 5, || Req::get("/x").header("x-user", "alice")), (2, 3), "team: 4 hits, 2 per request");
    assert_eq!(statuses(&c, 3, || Req::get("/x").header("x-user", "bob")), (2, 1), "a counter per user");
    assert_eq!(service.calls(), 8, "every request asked");
    assert!(meshplug_tests::eventually(std::time::Duration::from_secs(3), || metric(&lab, "team.global_limited") == 4));
    assert_eq!(metric(&lab, "team.global_bad_response"), 0, "an answer without statuses is an answer");
    // The example composition's limits (a conditional rule last) load in Limitador too.
    let example = meshplug_harness::deploy::composition::Composition::load(
        &workspace_root().join("examples/global-rate-limit/composition.yaml"),
    )
    .unwrap();
    let docs = meshplug_harness::deploy::render::rate_limit_service_resources(&example.workloads[0]).unwrap();
    let text = docs[0].1[0]["data"]["limitador-limits.yaml"].as_str().unwrap().to_string();
    assert_eq!(meshplug_tests::limitador::parse_limits(&text).unwrap().len(), 2, "{text}");
}

/// What Limitador's form cannot say, `render` does not write as limits: the file is a mapping saying
/// why, which Limitador refuses to load (rather than limits that enforce less than the rules).
#[test]
fn limitador_is_not_given_limits_that_would_enforce_otherwise() {
    let mut conditional = limitador_plugin_config();
    conditional["rules"][0]["match"] = json!([{"uri": {"prefix": "/api"}}]);
    let mut shadow = limitador_plugin_config();
    shadow["rules"][1]["shadow"] = json!(true);
    let mut hits = limitador_plugin_config();
    hits["rules"][1]["global"]["hitsAddend"] = json!(3);
    for (config, why) in [(conditional, "no fixed position"), (shadow, "no shadow mode"), (hits, "hitsAddend differ")] {
        let need = meshplug_harness::deploy::global::service_need(&config).unwrap().unwrap();
        let err = meshplug_harness::deploy::global::limitador_limits(&need).unwrap_err();
        assert!(err.contains(why), "{err}");
    }
    // The rendered ConfigMap then holds only the reason, and Limitador's parser refuses it.
    let composition = format!(
        "workloads:\n  - name: api\n    namespace: shop\n    selector: {{app: api}}\n    filters:\n      - name: rate-limit\n        pluginConfig: {}\n",
        {
            let mut c = limitador_plugin_config();
            c["rateLimitService"]["cluster"] = json!("outbound|8081||ratelimit.ratelimit.svc.cluster.local");
            c["rules"][1]["shadow"] = json!(true);
            c
        }
    );
    let dir = std::env::temp_dir().join(format!("meshplug-limitador-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("composition.yaml"), composition).unwrap();
    let c = meshplug_harness::deploy::composition::Composition::load(&dir.join("composition.yaml")).unwrap();
    let workload = c.workloads.first().unwrap();
    let resources = meshplug_harness::deploy::render::rate_limit_service_resources(workload).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let file = &resources[0].1[0]["data"]["limitador-limits.yaml"];
    let text = file.as_str().unwrap();
    assert!(text.starts_with("notExpressibleInLimitador: 'rule team: Limitador has no shadow mode"), "{text}");
    assert!(meshplug_tests::limitador::parse_limits(text).is_err(), "Limitador would not load it");
}
