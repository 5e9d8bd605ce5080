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
