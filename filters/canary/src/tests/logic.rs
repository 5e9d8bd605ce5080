//! Tests of `logic`: order of decisions, stickiness, monotonic growth, shares, cookies, kill switch.

use super::*;
use meshplug_common::host::SeededRandom;
use meshplug_common::testing::{RecordingMetrics, TestRequest};
use serde_json::{json, Value};

fn canary(extra: Value, weights: (u32, u32)) -> Canary {
    let mut c = json!({
        "rules": [{"match": [{"headers": {"x-version": {"exact": "v2"}}}], "variant": "canary"}],
        "split": {"stickyBy": {"cookie": "uid"},
                  "variants": [{"name": "stable", "weight": weights.0}, {"name": "canary", "weight": weights.1}]},
        "override": {"header": "x-meshplug-override", "allowed": ["canary"]}
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    Canary::from_json(c.to_string().as_bytes()).unwrap()
}

fn run(c: &Canary, req: &TestRequest) -> Decision {
    c.on_request(req, &mut SeededRandom::new(9), &RecordingMetrics::default())
}

fn user(i: u32) -> TestRequest {
    TestRequest::new("GET", "/").with("cookie", &format!("theme=x; uid=user-{i}"))
}

#[test]
fn shares_are_close_to_the_weights_and_sticky() {
    let c = canary(json!({}), (90, 10));
    let n = 10_000;
    let on_canary = (0..n).filter(|i| run(&c, &user(*i)).variant == "canary").count();
    let pct = on_canary as f64 * 100.0 / n as f64;
    assert!((pct - 10.0).abs() < 1.0, "{pct}%");
    for i in 0..100 {
        let first = run(&c, &user(i)).variant;
        assert!((0..5).all(|_| run(&c, &user(i)).variant == first));
        assert_eq!(run(&c, &user(i)).via, Via::Sticky);
    }
}

#[test]
fn raising_the_canary_keeps_its_users() {
    let (c10, c20) = (canary(json!({}), (90, 10)), canary(json!({}), (80, 20)));
    let c20b = canary(json!({}), (90, 20));
    for i in 0..5_000 {
        if run(&c10, &user(i)).variant == "canary" {
            assert_eq!(run(&c20, &user(i)).variant, "canary", "user-{i} left the canary at 80/20");
            assert_eq!(run(&c20b, &user(i)).variant, "canary", "user-{i} left the canary at 90/20");
        }
    }
}

#[test]
fn override_then_rules_then_split() {
    let c = canary(json!({}), (100, 0));
    let r = run(&c, &user(1).with("x-meshplug-override", "canary").with("x-version", "v1"));
    assert_eq!((r.variant.as_str(), r.via), ("canary", Via::Override));
    let r = run(&c, &user(1).with("x-meshplug-override", "stable"));
    assert_eq!(r.via, Via::Sticky, "stable is not an allowed override");
    let r = run(&c, &user(1).with("x-version", "v2"));
    assert_eq!((r.variant.as_str(), r.via), ("canary", Via::Rule), "rules reach a variant with weight 0");
    let r = run(&c, &user(1));
    assert_eq!(r.variant, "stable", "kill switch");
    assert_eq!(r.route_header, ("x-meshplug-variant".into(), "stable".into()));
}

#[test]
fn without_a_key_random_and_pinned_by_cookie() {
    let c = canary(
        json!({"split": {"variants": [{"name": "stable", "weight": 50}, {"name": "canary", "weight": 50}],
                                   "setCookie": {"name": "mv", "maxAge": "1h"}}, "exposeVariant": true}),
        (0, 0),
    );
    let r = run(&c, &TestRequest::new("GET", "/"));
    assert_eq!(r.via, Via::Random);
    let cookie = r.response_headers.iter().find(|(k, _)| k == "set-cookie").unwrap().1.clone();
    assert_eq!(cookie.as_str(), format!("mv={}; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax", r.variant));
    assert!(r.response_headers.contains(&("x-meshplug-variant".into(), r.variant.clone())));
    let again = run(&c, &TestRequest::new("GET", "/").with("cookie", &format!("mv={}", r.variant)));
    assert_eq!((again.variant.clone(), again.via), (r.variant.clone(), Via::Cookie));
    assert!(!again.response_headers.iter().any(|(k, _)| k == "set-cookie"));
    let bogus = run(&c, &TestRequest::new("GET", "/").with("cookie", "mv=admin"));
    assert_eq!(bogus.via, Via::Random, "an unknown variant in the cookie is ignored");
}

#[test]
fn a_killed_variant_in_a_cookie_is_ignored() {
    let c = canary(
        json!({"split": {"variants": [{"name": "stable", "weight": 1}, {"name": "canary", "weight": 0}],
                                   "setCookie": {"name": "mv"}}}),
        (0, 0),
    );
    let r = run(&c, &TestRequest::new("GET", "/").with("cookie", "mv=canary"));
    assert_eq!((r.variant.as_str(), r.via), ("stable", Via::Random));
}

#[test]
fn sticky_by_header_claim_and_client_ip() {
    let by = |sticky: Value| {
        canary(
            json!({"split": {"stickyBy": sticky, "variants": [{"name": "stable", "weight": 50}, {"name": "canary", "weight": 50}]}}),
            (0, 0),
        )
    };
    let h = by(json!({"header": "x-user"}));
    let a = run(&h, &TestRequest::new("GET", "/").with("x-user", "u1")).variant;
    assert!((0..10).all(|_| run(&h, &TestRequest::new("GET", "/").with("x-user", "u1")).variant == a));
    let cl = by(json!({"claim": "sub"}));
    let req = TestRequest::new("GET", "/").with_property(&["meshplug_claims"], br#"{"sub":"u1"}"#);
    assert_eq!(run(&cl, &req).via, Via::Sticky);
    assert_eq!(run(&cl, &TestRequest::new("GET", "/").with("meshplug_claims", "{}")).via, Via::Random);
    let ip = by(json!({"clientIp": {}}));
    let req = TestRequest::new("GET", "/").with_property(&["source", "address"], b"10.0.0.1:3333");
    assert_eq!(run(&ip, &req).via, Via::Sticky);
}

#[test]
fn metrics_count_per_variant_and_path() {
    let c = canary(json!({}), (90, 10));
    let m = RecordingMetrics::default();
    let _ = c.on_request(&user(1).with("x-version", "v2"), &mut SeededRandom::new(1), &m);
    let names = metric_names(c.config());
    let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert_eq!(m.get(idx("canary.routed")), 1);
    assert_eq!(m.get(idx("canary.rule")), 1);
    let _ = c.on_request(&user(1).with("x-meshplug-override", "nope"), &mut SeededRandom::new(1), &m);
    assert_eq!(m.get(idx("override_refused")), 1);
}
