//! All four filters in one chain, in the order a workload gets them (jwt-authz → rate-limit → canary →
//! fault), against the real Envoy: each sees what the one before decided, and a request stopped early
//! never reaches the filters after it.

use jwt_authz::testkit::token;
use meshplug_harness::composition::Composition;
use meshplug_tests::{eventually, metric, LabBuilder, Req};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[test]
fn jwt_claim_keys_the_rate_limit_and_the_canary_and_a_denied_request_is_never_counted() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    // The chain exactly as examples/chain/composition.yaml declares it, on free ports.
    let path = meshplug_harness::filters::workspace_root().join("examples/chain/composition.yaml");
    let composition = Composition::load(&path).unwrap();
    let mut builder = LabBuilder::from_composition(&composition, None).unwrap();
    builder.port = 0;
    builder.admin_port = 0;
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
