//! Global rate limits through Envoy's rate limit service protocol, against a real service backed by a
//! real Redis (both started here on 127.0.0.1, stopped at the end even on failure).
//!
//! First the service itself is held to the consumer's rules: Envoy's own `envoy.filters.http.ratelimit`
//! filter (source/extensions/filters/http/ratelimit in Envoy) sends it descriptors and must get the
//! counts its configuration promises — which is what envoyproxy/ratelimit gives it.

use meshplug_harness::bootstrap::{Cluster, Setup};
use meshplug_harness::echo::EchoServer;
use meshplug_harness::envoy::find_envoy;
use meshplug_harness::filters::workspace_root;
use meshplug_harness::redis::RedisServer;
use meshplug_harness::run::{EnvoyOptions, RunningEnvoy};
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
