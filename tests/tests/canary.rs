//! The canary filter against the real Envoy 1.40 (two workers), with two echo upstreams, `stable` and
//! `canary`, behind routes that match the routing header: the echo reply names the upstream that served.

use meshplug_tests::{eventually, metric, Lab, Req, Resp};
use serde_json::{json, Value};
use std::time::Duration;

const CANARY: &str = "canary";

fn lab(config: Value) -> Lab {
    meshplug_tests::with_variant_upstreams(meshplug_tests::builder().filter(CANARY, config)).start().unwrap()
}

fn config(stable: u32, canary: u32, extra: Value) -> Value {
    let mut c = json!({
        "rules": [{"match": [{"headers": {"x-version": {"exact": "v2"}}}], "variant": "canary"}],
        "split": {"stickyBy": {"cookie": "uid"},
                  "variants": [{"name": "stable", "weight": stable}, {"name": "canary", "weight": canary}]},
        "override": {"header": "x-meshplug-override", "allowed": ["canary"]}
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn served_by(r: &Resp) -> String {
    r.json()["upstream"].as_str().unwrap_or("?").to_string()
}

fn as_user(i: usize) -> Req {
    Req::get("/").header("cookie", &format!("uid=user-{i}"))
}

#[test]
fn the_split_holds_over_10000_users_and_each_user_sticks() {
    let lab = lab(config(90, 10, json!({})));
    let client = lab.envoy.client().unwrap();
    let n = 10_000;
    let first: Vec<String> =
        client.send_all((0..n).map(as_user).collect(), 16).into_iter().map(|r| served_by(&r.unwrap())).collect();
    let on_canary = first.iter().filter(|u| *u == "canary").count();
    let pct = on_canary as f64 * 100.0 / n as f64;
    println!("canary share over {n} users: {pct:.2}% (weight 10%)");
    assert!((pct - 10.0).abs() <= 1.5, "canary share {pct}%");
    assert!(first.iter().all(|u| u == "stable" || u == "canary"));
    // Every user, asked again (on other connections, so other workers), lands on the same variant.
    let again: Vec<String> =
        client.send_all((0..2000).map(as_user).collect(), 16).into_iter().map(|r| served_by(&r.unwrap())).collect();
    let same = again.iter().zip(&first).filter(|(a, b)| a == b).count();
    assert_eq!(same, 2000, "{} of 2000 repeated requests changed variant", 2000 - same);
    assert!(eventually(Duration::from_secs(3), || metric(&lab, CANARY, "canary.sticky")
        == on_canary as u64 + again.iter().filter(|u| *u == "canary").count() as u64));
}

#[test]
fn raising_the_canary_weight_keeps_every_canary_user() {
    let users = 3000;
    let at10: Vec<String> = {
        let lab = lab(config(90, 10, json!({})));
        let client = lab.envoy.client().unwrap();
        client.send_all((0..users).map(as_user).collect(), 16).into_iter().map(|r| served_by(&r.unwrap())).collect()
    };
    let lab = lab(config(80, 20, json!({})));
    let client = lab.envoy.client().unwrap();
    let at20: Vec<String> =
        client.send_all((0..users).map(as_user).collect(), 16).into_iter().map(|r| served_by(&r.unwrap())).collect();
    let kept = at10.iter().zip(&at20).filter(|(a, b)| *a == "canary" && *b == "canary").count();
    let was = at10.iter().filter(|u| *u == "canary").count();
    assert_eq!(kept, was, "{} canary users moved back to stable", was - kept);
    assert!(at20.iter().filter(|u| *u == "canary").count() > was, "the canary grew");
}

#[test]
fn rules_override_and_spoofing() {
    let lab = lab(config(100, 0, json!({})));
    let client = lab.envoy.client().unwrap();
    let via = |req: Req| served_by(&client.send(req).unwrap());
    assert_eq!(via(as_user(1)), "stable", "weights 100/0");
    assert_eq!(via(as_user(1).header("x-version", "v2")), "canary", "a rule beats the split");
    assert_eq!(via(as_user(1).header("x-meshplug-override", "canary")), "canary", "allowed override");
    assert_eq!(via(as_user(1).header("x-meshplug-override", "stable")), "stable");
    assert_eq!(via(as_user(1).header("x-meshplug-override", "admin")), "stable", "unknown override ignored");
    assert_eq!(via(as_user(1).header("x-meshplug-variant", "canary")), "stable", "a spoofed routing header is ignored");
    let r = client.send(as_user(1).header("x-meshplug-variant", "canary")).unwrap();
    assert_eq!(r.json()["headers"]["x-meshplug-variant"], "stable", "the upstream sees the filter's choice only");
    assert!(
        eventually(Duration::from_secs(3), || metric(&lab, CANARY, "override_refused") == 2),
        "stable (not allowed) and admin (unknown)"
    );
}

/// The variant header re-selects the route on this Envoy, and the module says how: through Envoy's
/// `clear_route_cache` foreign function, or (a host without it) Envoy's own clearing after a Wasm header
/// change. The smoke matrix runs this on every Envoy minor; the README's version table comes from it.
#[test]
fn the_route_is_selected_again_and_the_log_says_how() {
    let lab = lab(config(0, 100, json!({})));
    let client = lab.envoy.client().unwrap();
    assert_eq!(served_by(&client.send(as_user(7)).unwrap()), "canary", "the header set by the filter routes");
    let log = lab.envoy.log();
    let how = log
        .lines()
        .find_map(|l| l.split_once("route re-selection: ").map(|(_, how)| how.to_string()))
        .unwrap_or_else(|| panic!("no route re-selection line in the log:\n{log}"));
    eprintln!("route re-selection on this Envoy: {how}");
}

#[test]
fn set_cookie_pins_clients_without_a_key_and_expose_variant() {
    let lab = lab(json!({
        "split": {"variants": [{"name": "stable", "weight": 50}, {"name": "canary", "weight": 50}],
                  "setCookie": {"name": "mv", "maxAge": "1h"}},
        "exposeVariant": true
    }));
    let client = lab.envoy.client().unwrap();
    for _ in 0..20 {
        let first = client.get("/").unwrap();
        let variant = served_by(&first);
        assert_eq!(first.header("x-meshplug-variant"), Some(variant.as_str()));
        let cookie = first.header("set-cookie").unwrap().to_string();
        assert!(cookie.starts_with(&format!("mv={variant}; Max-Age=3600; Path=/")), "{cookie}");
        let pair = cookie.split(';').next().unwrap().to_string();
        for _ in 0..5 {
            let next = client.send(Req::get("/").header("cookie", &pair)).unwrap();
            assert_eq!(served_by(&next), variant, "the cookie pins the client");
            assert!(next.header("set-cookie").is_none());
        }
    }
}

#[test]
fn the_kill_switch_sends_everything_to_stable() {
    let lab = lab(json!({
        "split": {"stickyBy": {"header": "x-user"},
                  "variants": [{"name": "stable", "weight": 1}, {"name": "canary", "weight": 0}],
                  "setCookie": {"name": "mv"}}
    }));
    let client = lab.envoy.client().unwrap();
    let mut reqs: Vec<Req> = (0..500).map(|i| Req::get("/").header("x-user", &format!("u{i}"))).collect();
    reqs.extend((0..100).map(|_| Req::get("/").header("cookie", "mv=canary")));
    let all = client.send_all(reqs, 16);
    assert!(all.into_iter().all(|r| served_by(&r.unwrap()) == "stable"));
}

#[test]
fn invalid_configs_are_refused_at_load_with_the_field_named() {
    let cases = [
        (
            config(90, 10, json!({"rules": [{"variant": "beta"}]})),
            "[canary] invalid config at /rules/0/variant: unknown variant \"beta\"",
        ),
        (
            json!({"split": {"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 2}]}}),
            "[canary] invalid config at /split/variants/1/name: duplicate variant",
        ),
        (
            json!({"split": {"variants": [{"name": "a", "weight": -5}]}}),
            "[canary] invalid config at /split/variants/0/weight",
        ),
        (json!({"split": {"variants": []}}), "[canary] invalid config at /split/variants: at least one variant"),
    ];
    meshplug_tests::assert_refused(CANARY, cases);
}
