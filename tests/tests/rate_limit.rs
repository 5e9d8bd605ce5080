//! The rate-limit filter against the real Envoy 1.40 with two workers sharing the buckets.

use meshplug_tests::{eventually, lab_with, metric, per_worker_connections, Lab, Req, Resp};
use serde_json::json;
use std::time::Duration;

const RL: &str = "rate-limit";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn rule_metric(lab: &Lab, rule: &str, name: &str) -> u64 {
    metric(lab, RL, &format!("{rule}.{name}"))
}

fn statuses(results: Vec<anyhow::Result<Resp>>) -> Vec<Resp> {
    results.into_iter().map(|r| r.unwrap()).collect()
}

fn count(rs: &[Resp], status: u16) -> usize {
    rs.iter().filter(|r| r.status == status).count()
}

#[test]
fn a_limit_admits_n_plus_burst_across_both_workers() {
    let lab =
        lab_with(RL, json!({"rules": [{"name": "global", "limits": [{"requests": 50, "per": "1h", "burst": 10}]}]}));
    let client = lab.envoy.client().unwrap();
    let rs = statuses(client.send_all((0..400).map(|i| Req::get(&format!("/r/{i}"))).collect(), 16));
    let admitted = count(&rs, 200);
    println!("admitted {admitted} of 400 (limit 50 + burst 10), refused {}", count(&rs, 429));
    assert!((59..=61).contains(&admitted), "admitted {admitted}, expected 60 ± 1");
    assert_eq!(admitted + count(&rs, 429), 400);
    assert!(
        per_worker_connections(&lab).iter().all(|c| *c > 0),
        "both workers served: {:?}",
        per_worker_connections(&lab)
    );
    assert!(eventually(ms(3000), || rule_metric(&lab, "global", "allowed") == admitted as u64
        && rule_metric(&lab, "global", "limited") == (400 - admitted) as u64));
}

#[test]
fn keys_are_isolated_and_missing_keys_share_the_unknown_bucket() {
    let lab = lab_with(
        RL,
        json!({"rules": [{"name": "per-user", "key": {"header": "x-user"}, "limits": [{"requests": 5, "per": "1h"}]}]}),
    );
    let client = lab.envoy.client().unwrap();
    for user in ["alice", "bob", "carol"] {
        let rs = statuses(client.send_all((0..12).map(|_| Req::get("/").header("x-user", user)).collect(), 4));
        assert_eq!(count(&rs, 200), 5, "{user}");
    }
    let rs = statuses(client.send_all((0..12).map(|_| Req::get("/")).collect(), 4));
    assert_eq!(count(&rs, 200), 5, "keyless requests share one `unknown` bucket");
    assert!(eventually(ms(3000), || rule_metric(&lab, "per-user", "missing_key") == 12));
}

#[test]
fn on_missing_key_allow_lets_keyless_requests_through() {
    let lab = lab_with(
        RL,
        json!({"rules": [{"name": "u", "key": {"header": "x-user"}, "onMissingKey": "allow",
                          "limits": [{"requests": 1, "per": "1h"}]}]}),
    );
    let client = lab.envoy.client().unwrap();
    let rs = statuses(client.send_all((0..10).map(|_| Req::get("/")).collect(), 4));
    assert_eq!(count(&rs, 200), 10);
}

#[test]
fn several_limits_and_several_rules() {
    let lab = lab_with(
        RL,
        json!({"rules": [
            {"name": "burst", "match": [{"uri": {"prefix": "/api"}}], "limits": [{"requests": 2, "per": "1s"}, {"requests": 3, "per": "1h"}]},
            {"name": "all", "limits": [{"requests": 6, "per": "1h"}]}]}),
    );
    let client = lab.envoy.client().unwrap();
    let get = |p: &str| client.get(p).unwrap().status;
    assert_eq!((get("/api/a"), get("/api/a"), get("/api/a")), (200, 200, 429), "per-second limit");
    std::thread::sleep(ms(1100));
    assert_eq!(get("/api/a"), 200, "third of the hour");
    std::thread::sleep(ms(1100));
    let r = client.get("/api/a").unwrap();
    assert_eq!(r.status, 429, "hourly limit");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1190..=1200).contains(&retry), "retry-after {retry}");
    // `all` was charged for every /api request, refused ones included (as Envoy's rate limit service
    // does): 5 so far, so one more request anywhere passes, then `all` refuses.
    assert_eq!(get("/other"), 200);
    assert_eq!(get("/other"), 429);
}

#[test]
fn headers_retry_after_and_refill() {
    let lab = lab_with(RL, json!({"rules": [{"name": "g", "limits": [{"requests": 2, "per": "4s"}]}]}));
    let client = lab.envoy.client().unwrap();
    let r = client.get("/").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["upstream"], "echo");
    assert_eq!((r.header("ratelimit-limit"), r.header("ratelimit-remaining")), (Some("2"), Some("1")));
    assert_eq!(r.header("ratelimit-reset"), Some("2"));
    let r = client.get("/").unwrap();
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let r = client.get("/").unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), "rate limited\n");
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "one request refills every 2 s: retry-after {retry}");
    std::thread::sleep(Duration::from_secs(retry) + ms(100));
    assert_eq!(client.get("/").unwrap().status, 200, "refilled after waiting retry-after");
    assert_eq!(client.get("/").unwrap().status, 429);
}

#[test]
fn custom_response_and_no_headers() {
    let lab = lab_with(
        RL,
        json!({"rules": [{"name": "g", "limits": [{"requests": 1, "per": "1h"}]}],
               "response": {"status": 503, "body": "busy", "headers": false}}),
    );
    let client = lab.envoy.client().unwrap();
    let r = client.get("/").unwrap();
    assert!(r.header("ratelimit-limit").is_none());
    let r = client.get("/").unwrap();
    assert_eq!((r.status, r.text().as_str()), (503, "busy"));
    assert!(r.header("retry-after").is_none());
}

#[test]
fn shadow_mode_counts_logs_and_lets_through() {
    let lab =
        lab_with(RL, json!({"rules": [{"name": "trial", "shadow": true, "limits": [{"requests": 3, "per": "1h"}]}]}));
    let client = lab.envoy.client().unwrap();
    let rs = statuses(client.send_all((0..10).map(|_| Req::get("/")).collect(), 2));
    assert_eq!(count(&rs, 200), 10);
    assert!(rs.iter().any(|r| r.header("ratelimit-remaining") == Some("0")), "headers still set");
    assert!(eventually(ms(3000), || rule_metric(&lab, "trial", "shadow_limited") == 7));
    assert_eq!(rule_metric(&lab, "trial", "limited"), 0);
    assert!(eventually(ms(3000), || lab.envoy.log().contains("[rate-limit] shadow: rule trial would have refused")));
}

#[test]
fn claim_keys_come_from_filter_state_never_from_headers() {
    let lab = meshplug_tests::builder()
        .filter("publish-claims", json!({}))
        .filter(
            RL,
            json!({"rules": [{"name": "per-sub", "key": {"claim": "sub"}, "limits": [{"requests": 2, "per": "1h"}]}]}),
        )
        .start()
        .unwrap();
    let client = lab.envoy.client().unwrap();
    let as_sub = |sub: &str| Req::get("/").header("x-test-claims", &format!(r#"{{"sub":"{sub}"}}"#));
    let rs = statuses(client.send_all((0..5).map(|_| as_sub("u1")).collect(), 2));
    assert_eq!(count(&rs, 200), 2);
    let rs = statuses(client.send_all((0..5).map(|_| as_sub("u2")).collect(), 2));
    assert_eq!(count(&rs, 200), 2);
    // A client cannot pick its key with a header: without published claims, it is keyless.
    let forged = statuses(client.send_all(
        (0..5).map(|i| Req::get("/").header("meshplug_claims", &format!(r#"{{"sub":"f{i}"}}"#))).collect(),
        2,
    ));
    assert_eq!(count(&forged, 200), 2, "all forged requests share the unknown bucket");
}

#[test]
fn client_ip_keys_with_trusted_hops() {
    let lab = lab_with(
        RL,
        json!({"rules": [
            {"name": "xff", "match": [{"uri": {"prefix": "/xff"}}], "key": {"clientIp": {"trustedHops": 2}}, "limits": [{"requests": 2, "per": "1h"}]},
            {"name": "src", "match": [{"uri": {"prefix": "/src"}}], "key": {"clientIp": {}}, "limits": [{"requests": 1, "per": "1h"}]}]}),
    );
    let client = lab.envoy.client().unwrap();
    // The local Envoy is an edge proxy (use_remote_address): it appends the peer, 127.0.0.1, to
    // x-forwarded-for. With trustedHops 2 the key is the entry our (simulated) load balancer added.
    let via_lb = |ip: &str| Req::get("/xff").header("x-forwarded-for", &format!("203.0.113.77, {ip}"));
    let a = statuses(client.send_all((0..4).map(|_| via_lb("198.51.100.1")).collect(), 2));
    let b = statuses(client.send_all((0..4).map(|_| via_lb("198.51.100.2")).collect(), 2));
    assert_eq!((count(&a, 200), count(&b, 200)), (2, 2), "one bucket per client behind the load balancer");
    // Without trusted hops the key is Envoy's downstream address: a forged x-forwarded-for changes nothing.
    let r1 = client.send(Req::get("/src").header("x-forwarded-for", "192.0.2.1")).unwrap();
    let r2 = client.send(Req::get("/src").header("x-forwarded-for", "192.0.2.2")).unwrap();
    assert_eq!((r1.status, r2.status), (200, 429));
}

#[test]
fn a_flood_of_a_million_keys_stays_within_max_keys() {
    let max_keys = 1000u64;
    let lab = lab_with(
        RL,
        json!({"rules": [{"name": "per-user", "key": {"header": "x-user"}, "limits": [{"requests": 3, "per": "1h"}]}],
               "maxKeys": max_keys}),
    );
    let client = lab.envoy.client().unwrap();
    for who in ["victim", "flooder"] {
        let rs = statuses(client.send_all((0..5).map(|_| Req::get("/").header("x-user", who)).collect(), 1));
        assert_eq!(count(&rs, 200), 3, "{who}");
    }
    // Warm up a full table first, so the memory figure below measures the flood, not start-up.
    let _ = client.send_all((0..20_000).map(|i| Req::get("/").header("x-user", &format!("warm{i}"))).collect(), 32);
    let rss_before = lab.envoy.rss_bytes().unwrap();
    let total = 1_000_000u64;
    let batch = 50_000u64;
    let start = std::time::Instant::now();
    for b in 0..total / batch {
        let reqs = (0..batch).map(|i| Req::get("/").header("x-user", &format!("flood-{b}-{i}"))).collect();
        for r in client.send_all(reqs, 32) {
            let s = r.unwrap().status;
            assert!(s == 200 || s == 429, "{s}");
        }
    }
    let rss_after = lab.envoy.rss_bytes().unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // past the workers' next metric flush
    let created = rule_metric(&lab, "per-user", "slots_created");
    println!(
        "flood: {total} distinct keys in {:.0} s; slots created {created} (maxKeys {max_keys}); shared-bucket requests {}; \
         Envoy RSS {:.1} MiB → {:.1} MiB",
        start.elapsed().as_secs_f64(),
        rule_metric(&lab, "per-user", "shared_bucket"),
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    assert!(created <= max_keys, "{created} slots for maxKeys {max_keys}");
    // A million keys of unbounded state would cost Envoy well over 100 MiB; the bound keeps it flat.
    assert!(rss_after < rss_before + 32 * 1048576, "RSS grew from {rss_before} to {rss_after}");
    for who in ["victim", "flooder"] {
        assert_eq!(
            client.send(Req::get("/").header("x-user", who)).unwrap().status,
            429,
            "{who}'s exhausted bucket was reset"
        );
    }
}

#[test]
fn invalid_configs_are_refused_at_load_with_the_field_named() {
    let cases = [
        (
            json!({"rules": [{"name": "a", "limits": [{"requests": 0, "per": "1s"}]}]}),
            "[rate-limit] invalid config at /rules/0/limits/0/requests: must be at least 1",
        ),
        (
            json!({"rules": [{"name": "a", "key": {"cookie": "x"}, "limits": [{"requests": 1, "per": "1s"}]}]}),
            "[rate-limit] invalid config at /rules/0/key: unknown variant `cookie`",
        ),
        (
            json!({"rules": [{"name": "a", "limits": [{"requests": 1, "per": "a while"}]}]}),
            "[rate-limit] invalid config at /rules/0/limits/0/per:",
        ),
    ];
    meshplug_tests::assert_refused(RL, cases);
}
