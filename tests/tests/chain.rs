//! All four filters in one chain, in the order a workload gets them (jwt-authz → rate-limit → canary →
//! fault), against the real Envoy: each sees what the one before decided, and a request stopped early
//! never reaches the filters after it. `tests/bundle.rs` runs these again with the chain in one bundle
//! module.

use jwt_authz::testkit::token;
use meshplug_harness::deploy::composition::Composition;
use meshplug_tests::{eventually, metric, LabBuilder, Req};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[test]
fn jwt_claim_keys_the_rate_limit_and_the_canary_and_a_denied_request_is_never_counted() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    // The chain exactly as examples/chain/composition.yaml declares it, on free ports.
    let path = meshplug_harness::deploy::filters::workspace_root().join("examples/chain/composition.yaml");
    let composition = Composition::load(&path).unwrap();
    let mut builder = LabBuilder::from_composition(&composition, None).unwrap();
    builder.port = 0;
    builder.admin_port = 0;
    builder.bundle |= meshplug_tests::bundled();
    let order: Vec<&str> = builder.filters.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(order, ["jwt-authz", "rate-limit", "canary", "fault"]);
    let lab = builder.start().unwrap();
    let client = lab.envoy.client().unwrap();

    // Denied by the JWT policy (no token): stopped before the rate limiter, which never counts it.
    for _ in 0..5 {
        assert_eq!(client.get("/").unwrap().status, 403);
    }
    // A valid token: the claim keys the limit and the canary split.
    let alice = token("RS256", now, "alice");
    let served: Vec<String> = (0..3)
        .map(|_| {
            let r = client.send(Req::get("/").header("authorization", &format!("Bearer {alice}"))).unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["upstream"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(served.iter().all(|u| *u == served[0]), "alice sticks to one variant by her sub: {served:?}");
    let r = client.send(Req::get("/").header("authorization", &format!("Bearer {alice}"))).unwrap();
    assert_eq!(r.status, 429, "the fourth request of alice is over her limit");
    // Refused by the limiter: never reaches the fault filter (its abort rule would say 503).
    let r = client
        .send(Req::get("/").header("authorization", &format!("Bearer {alice}")).header("x-test-fault", "abort"))
        .unwrap();
    assert_eq!(r.status, 429);
    let bob = token("RS256", now, "bob");
    let r = client
        .send(Req::get("/").header("authorization", &format!("Bearer {bob}")).header("x-test-fault", "abort"))
        .unwrap();
    assert_eq!(
        (r.status, r.header("x-meshplug-fault")),
        (503, Some("abort")),
        "bob has budget; the fault filter answers"
    );

    let patience = Duration::from_secs(3);
    assert!(eventually(patience, || metric(&lab, "jwt-authz", "policy_deny") == 5));
    assert!(
        eventually(patience, || metric(&lab, "rate-limit", "per-sub.allowed") == 4
            && metric(&lab, "rate-limit", "per-sub.limited") == 2
            && metric(&lab, "rate-limit", "per-sub.missing_key") == 0),
        "denied requests reached the rate limiter"
    );
    assert!(eventually(patience, || metric(&lab, "fault", "aborts_injected") == 1));
    let routed = || metric(&lab, "canary", "stable.routed") + metric(&lab, "canary", "canary.routed");
    assert!(eventually(patience, || routed() == 4), "only requests that passed the limiter are routed: {}", routed());
}

/// A delay early in the chain pauses the request; when it is over the rest of the chain runs (the limiter
/// counts it, canary routes it), and a delay followed by an abort never reaches the filters after it.
#[test]
fn a_delay_resumes_the_chain_at_the_next_filter() {
    let delay = Duration::from_millis(300);
    let lab = meshplug_tests::with_variant_upstreams(meshplug_tests::builder())
        .filter(
            "fault",
            json!({"rules": [
                {"match": [{"headers": {"x-test-fault": {"exact": "delay"}}}], "delay": {"fixedDelay": "300ms"}},
                {"match": [{"headers": {"x-test-fault": {"exact": "delay-abort"}}}],
                 "delay": {"fixedDelay": "300ms"}, "abort": {"httpStatus": 503}}
            ]}),
        )
        .filter("rate-limit", json!({"rules": [{"name": "g", "limits": [{"requests": 3, "per": "1h"}]}]}))
        .filter(
            "canary",
            json!({"split": {"variants": [{"name": "stable", "weight": 100}, {"name": "canary", "weight": 0}]},
                                  "override": {"header": "x-meshplug-override", "allowed": ["canary"]}}),
        )
        .start()
        .unwrap();
    let client = lab.envoy.client().unwrap();
    let send = |fault: &str| {
        let started = Instant::now();
        let r =
            client.send(Req::get("/").header("x-test-fault", fault).header("x-meshplug-override", "canary")).unwrap();
        (r, started.elapsed())
    };

    let (r, took) = send("delay");
    assert!(took >= delay, "delayed {took:?}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upstream"], "canary", "canary ran after the delay");
    assert_eq!(r.header("x-meshplug-fault"), Some("delay"));
    assert_eq!(r.header("ratelimit-remaining"), Some("2"), "the limiter ran after the delay");

    let (r, took) = send("delay-abort");
    assert!(took >= delay, "delayed {took:?}");
    assert_eq!((r.status, r.header("x-meshplug-fault")), (503, Some("delay,abort")));

    for remaining in ["1", "0"] {
        let (r, _) = send("delay");
        assert_eq!((r.status, r.header("ratelimit-remaining")), (200, Some(remaining)), "the abort was not counted");
    }
    let (r, took) = send("delay");
    assert!(took >= delay, "delayed {took:?}");
    assert_eq!(r.status, 429, "the limiter answers after the delay");
    // Envoy runs every filter's response step on a local reply, so the delay is marked on the 429 too.
    assert_eq!(r.header("x-meshplug-fault"), Some("delay"), "the delayed request is marked even when refused");

    let patience = Duration::from_secs(3);
    assert!(eventually(patience, || metric(&lab, "fault", "delays_injected") == 5));
    assert!(eventually(patience, || metric(&lab, "fault", "aborts_injected") == 1));
    assert!(eventually(patience, || metric(&lab, "rate-limit", "g.allowed") == 3
        && metric(&lab, "rate-limit", "g.limited") == 1));
    assert!(eventually(patience, || metric(&lab, "canary", "canary.routed") == 3));
}

/// A header one filter writes is what the next filter reads: jwt-authz replaces `x-user` with the
/// verified `sub` (dropping the client's own value), and rate-limit keys on that header. In the bundle
/// the second filter reads the chain's copy of the headers, so this also checks that copy is kept
/// up to date.
#[test]
fn a_header_set_by_one_filter_is_read_by_the_next() {
    use jwt_authz::testkit::{jwks, ISSUER};
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let lab = meshplug_tests::builder()
        .filter(
            "jwt-authz",
            json!({"jwtRules": [{"issuer": ISSUER, "jwks": jwks(&["rsa"]),
                                 "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]}]}),
        )
        .filter(
            "rate-limit",
            json!({"rules": [{"name": "per-user", "key": {"header": "x-user"}, "onMissingKey": "allow",
                              "limits": [{"requests": 1, "per": "1h"}]}]}),
        )
        .start()
        .unwrap();
    let client = lab.envoy.client().unwrap();
    let as_user = |sub: &str, spoof: &str| {
        let t = token("RS256", now, sub);
        let r =
            client.send(Req::get("/").header("authorization", &format!("Bearer {t}")).header("x-user", spoof)).unwrap();
        (r.status, r.json()["headers"]["x-user"].as_str().map(str::to_string))
    };
    assert_eq!(as_user("alice", "mallory"), (200, Some("alice".to_string())), "the upstream sees the verified sub");
    assert_eq!(as_user("alice", "eve").0, 429, "alice's second request is limited under her verified sub");
    assert_eq!(as_user("bob", "alice").0, 200, "bob is keyed as bob, whatever x-user he sends");
    let patience = Duration::from_secs(3);
    assert!(eventually(patience, || metric(&lab, "rate-limit", "per-user.allowed") == 2
        && metric(&lab, "rate-limit", "per-user.limited") == 1));
}

/// A filter that decides after another waited for a service reads the clock again: rate-limit asks a
/// slow rate limit service (it answers after 2.5 s) after charging its local limit (which reads the
/// clock), then jwt-authz (`clockSkew: 0s`) checks a token
/// that expires 1 s after it was sent. In the bundle both run in one context, which reads the clock
/// once per request: judged at the time read before the wait (as the chain did), the token was let
/// through (`tests/bundle.rs` fails without the re-read; with a module each, each reads its own).
#[test]
fn a_filter_after_a_service_wait_reads_the_clock_again() {
    let service = meshplug_harness::lab::stub::StubServer::grpc(&[0x08, 0x01]).unwrap(); // overall_code OK
    service.delay(Duration::from_millis(2500));
    let rate_limit = json!({
        "rateLimitService": {"cluster": "rls", "domain": "d", "timeout": "5s"},
        "rules": [{"name": "all", "key": {"header": "x-user"}, "limits": [{"requests": 100, "per": "60s"}],
                   "global": {"descriptors": [{"key": "k", "value": "v"}]}}]
    });
    let jwt = json!({"clockSkew": "0s", "jwtRules": [{"issuer": jwt_authz::testkit::ISSUER,
        "jwks": jwt_authz::testkit::jwks(&["rsa"])}]});
    let builder = meshplug_tests::builder().filter("rate-limit", rate_limit).filter("jwt-authz", jwt);
    let lab = builder.grpc_cluster("rls", service.addr.port()).start().unwrap();
    let client = lab.envoy.client().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let long = jwt_authz::testkit::token_with("RS256", now, "alice", json!({}));
    let r =
        client.send(Req::get("/").header("x-user", "a").header("authorization", &format!("Bearer {long}"))).unwrap();
    assert_eq!(r.status, 200, "a token valid for an hour passes after the wait: {}", r.text());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let short = jwt_authz::testkit::token_with("RS256", now, "bob", json!({"exp": now + 1}));
    let started = Instant::now();
    let r =
        client.send(Req::get("/").header("x-user", "b").header("authorization", &format!("Bearer {short}"))).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(2500), "the service made it wait");
    assert_eq!(r.status, 401, "expired while rate-limit waited for the service: {}", r.text());
}
