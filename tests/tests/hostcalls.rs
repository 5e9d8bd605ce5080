//! Host calls counted (`meshplug_harness::load::calls`, the shipped modules in the counting proxy-wasm
//! host `scripts/proxy-wasm-host.mjs`): what each filter's fast path skips, and that it still does the
//! work it must — a skip that forgot a header a rule names, or claims a module outside needs, fails
//! here. What the calls cost is measured in Envoy (`meshplug bench`), never asserted in a test.

use meshplug_harness::deploy::filters::{bundle_config, module_path};
use meshplug_harness::lab::bootstrap::WasmFilter;
use meshplug_harness::load::calls::{bench_request, count, RequestCalls};
use serde_json::{json, Value};

fn filter(name: &str, config: Value) -> WasmFilter {
    WasmFilter::new(name, module_path(name).unwrap(), config)
}

fn header(k: &str, v: &str) -> Vec<(String, String)> {
    bench_request(&[(k.to_string(), v.to_string())])
}

/// The third request's cost (the first ones fill caches), and every request's answer.
fn run(filters: &[WasmFilter], requests: &[Vec<(String, String)>]) -> Vec<RequestCalls> {
    count(filters, requests).unwrap()
}

/// fault with rules on a header the request does not carry: one read of the request headers (it
/// cannot know the rule does not match without it), nothing else; the same request with the header
/// is aborted — the read is not skipped.
#[test]
fn fault_idle_reads_the_headers_once_and_nothing_else() {
    let fault = filter(
        "fault",
        json!({"rules": [{"match": [{"headers": {"x-fault": {"exact": "abort"}}}], "abort": {"httpStatus": 503}}]}),
    );
    let r = run(&[fault], &[bench_request(&[]), bench_request(&[]), header("x-fault", "abort")]);
    let idle = &r[1];
    assert_eq!(
        idle.calls.iter().map(|(k, n)| (k.as_str(), *n)).collect::<Vec<_>>(),
        [("proxy_get_header_map_pairs", 1)]
    );
    assert_eq!(idle.local_response, None);
    // The shipped module does not export what it never uses, so the host does not enter it for them.
    let entered: Vec<&String> = idle.callbacks.keys().collect();
    for unused in meshplug_harness::deploy::finish::UNUSED_CALLBACKS {
        assert!(!idle.callbacks.contains_key(unused), "{unused} entered: {entered:?}");
    }
    assert!(idle.callbacks.contains_key("proxy_on_request_headers"), "{entered:?}");
    assert_eq!(r[2].local_response, Some(503), "a request the rule names is still aborted");
    let empty = run(&[filter("fault", json!({}))], &[bench_request(&[]), bench_request(&[])]);
    assert_eq!(empty[1].total_calls(), 0, "no rules: no host call at all ({:?})", empty[1].calls);
}

fn jwt_config(publish: Option<bool>) -> Value {
    let mut c =
        json!({"jwtRules": [{"issuer": jwt_authz::testkit::ISSUER, "jwks": jwt_authz::testkit::jwks(&["rsa"])}]});
    if let Some(p) = publish {
        c["publishClaims"] = json!(p);
    }
    c
}

fn with_token(sub: &str) -> Vec<(String, String)> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    header("authorization", &format!("Bearer {}", jwt_authz::testkit::token("RS256", now, sub)))
}

/// In the bundle, the verified claims reach rate-limit without a host call and without filter
/// state, unless `publishClaims: true`; jwt_authz.wasm alone always publishes them (a separate
/// rate-limit or canary module reads them there).
#[test]
fn the_bundle_keeps_claims_inside_unless_asked_to_publish() {
    let limit =
        json!({"rules": [{"name": "per-sub", "key": {"claim": "sub"}, "limits": [{"requests": 1, "per": "1h"}]}]});
    for publish in [None, Some(false), Some(true)] {
        let bundle = bundle_config([("jwt-authz", &jwt_config(publish)), ("rate-limit", &limit)]);
        let r = run(&[filter("meshplug", bundle)], &[with_token("alice"), with_token("alice"), with_token("bob")]);
        let expected = u64::from(publish == Some(true));
        for (i, req) in r.iter().enumerate() {
            assert_eq!(req.of("proxy_set_property"), expected, "{publish:?}, request {i}: {:?}", req.calls);
            assert_eq!(req.of("proxy_get_property"), 0, "claims read from the chain's copy: {:?}", req.calls);
        }
        let answers: Vec<_> = r.iter().map(|q| q.local_response).collect();
        assert_eq!(answers, [None, Some(429), None], "{publish:?}: the limit keys on each verified sub");
    }
    let alone = run(&[filter("jwt-authz", jwt_config(None))], &[with_token("alice")]);
    assert_eq!(alone[0].of("proxy_set_property"), 1, "the module alone publishes: {:?}", alone[0].calls);
    let refused = run(&[filter("jwt-authz", jwt_config(Some(false)))], &[with_token("alice")]);
    assert_eq!(refused[0].of("proxy_set_property"), 0);
}

/// canary writes its routing header and asks Envoy to re-select the route only when the header
/// changes: a request already carrying exactly the decided value costs neither call; any other value,
/// a missing one or a repeated one is replaced (a client's spoofed value never survives).
#[test]
fn canary_touches_the_route_only_when_the_routing_header_changes() {
    let canary = filter(
        "canary",
        json!({"rules": [{"match": [{"headers": {"x-version": {"exact": "v2"}}}], "variant": "canary"}],
               "split": {"variants": [{"name": "stable", "weight": 100}, {"name": "canary", "weight": 0}]}}),
    );
    let v2 = |extra: &[(&str, &str)]| {
        let mut h = vec![("x-version".to_string(), "v2".to_string())];
        h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        bench_request(&h)
    };
    let r = run(
        &[canary],
        &[
            v2(&[("x-meshplug-variant", "canary")]),
            v2(&[]),
            v2(&[("x-meshplug-variant", "stable")]),
            v2(&[("x-meshplug-variant", "canary"), ("x-meshplug-variant", "canary")]),
        ],
    );
    let touched = |q: &RequestCalls| (q.of("proxy_replace_header_map_value"), q.of("proxy_call_foreign_function"));
    assert_eq!(touched(&r[0]), (0, 0), "already right: {:?}", r[0].calls);
    for (i, q) in r.iter().enumerate().skip(1) {
        assert_eq!(touched(q), (1, 1), "request {i}: {:?}", q.calls);
    }
    for (i, q) in r.iter().enumerate() {
        let sent: Vec<_> = q
            .upstream_headers
            .iter()
            .flatten()
            .filter(|(k, _)| k == "x-meshplug-variant")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(sent, ["canary"], "request {i} goes upstream with exactly the decided variant");
    }
}
