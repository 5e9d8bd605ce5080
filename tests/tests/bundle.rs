//! The end-to-end cases of every filter and of the chain again, with the filters running inside the
//! bundle (`meshplug.wasm`, one Wasm context per request) instead of one module each: the same test
//! functions, included as modules. The helpers in `meshplug_tests` see from this binary's name that it
//! is the bundle's run (`meshplug_tests::bundled`) and start the lab with `.bundled(true)`.

#[path = "canary.rs"]
mod canary;
#[path = "chain.rs"]
mod chain;
#[path = "fault.rs"]
mod fault;
#[path = "global_rate_limit.rs"]
mod global_rate_limit;
#[path = "hostile.rs"]
mod hostile;
#[path = "jwt_authz.rs"]
mod jwt_authz;
#[path = "rate_limit.rs"]
mod rate_limit;

#[test]
fn this_binary_runs_the_bundle() {
    assert!(meshplug_tests::bundled());
    let lab = meshplug_tests::lab_with("fault", serde_json::json!({}));
    let config = lab.config.to_string();
    assert!(config.contains("/meshplug.wasm"), "the lab runs meshplug.wasm: {config}");
    assert!(!config.contains("/fault.wasm"), "{config}");
}

/// Inside the bundle jwt-authz keeps the verified claims in the module: its later stages read them
/// (the chain tests above), but Envoy's filter state gets them only with `publishClaims: true`. Shown
/// with a separate rate_limit.wasm after the bundle, keyed by the `sub` claim from filter state.
#[test]
fn a_bundle_publishes_claims_to_modules_outside_it_only_when_asked() {
    use ::jwt_authz::testkit::{jwks, token, ISSUER};
    use meshplug_tests::{eventually, metric, LabBuilder, Req};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let limit = serde_json::json!({"rules": [{"name": "per-sub", "key": {"claim": "sub"}, "onMissingKey": "allow",
        "limits": [{"requests": 1, "per": "1h"}]}]});
    for publish in [None, Some(false), Some(true)] {
        let mut jwt = serde_json::json!({"jwtRules": [{"issuer": ISSUER, "jwks": jwks(&["rsa"])}]});
        if let Some(p) = publish {
            jwt["publishClaims"] = serde_json::json!(p);
        }
        let bundle = meshplug_harness::deploy::filters::bundle_config([("jwt-authz", &jwt)]);
        let lab = LabBuilder::default().filter("meshplug", bundle).filter("rate-limit", limit.clone()).start().unwrap();
        let client = lab.envoy.client().unwrap();
        let as_sub = |sub: &str| {
            let t = token("RS256", now, sub);
            client.send(Req::get("/").header("authorization", &format!("Bearer {t}"))).unwrap().status
        };
        let statuses = [as_sub("alice"), as_sub("alice"), as_sub("bob")];
        if publish == Some(true) {
            assert_eq!(statuses, [200, 429, 200], "published: the module outside keys on each sub");
        } else {
            assert_eq!(statuses, [200, 200, 200], "{publish:?}: no claims outside the bundle, the rule is skipped");
            assert!(eventually(Duration::from_secs(3), || metric(&lab, "rate-limit", "per-sub.missing_key") == 3));
        }
    }
}
