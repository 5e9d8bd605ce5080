//! Hostile requests against the real Envoy (two workers), for each filter's module and (through
//! `tests/bundle.rs`) inside the bundle: bytes outside UTF-8 in header values (the SDK's `get_map`
//! once trapped every module on one `User-Agent: \xe4\xb8`), a randomized batch of hostile requests,
//! and request trailers while a delay holds a request. After each, ordinary requests still get their
//! ordinary answers and Envoy's log shows no VM failure.

use jwt_authz::testkit::{jwks, token, ISSUER};
use meshplug_tests::{builder, eventually, hostile_request, metric, raw_status, vm_failures, Lab, Rng};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Every filter, configured so that it reads what clients control: headers, cookies, the path, query.
fn configs() -> Vec<(&'static str, Value)> {
    let m = json!([{"headers": {"user-agent": {"regex": ".*x.*"}}, "uri": {"prefix": "/admin"}}]);
    vec![
        (
            "fault",
            json!({"rules": [{"match": m, "abort": {"httpStatus": 418}}], "headerControl": {"enabled": true, "maxDelay": "50ms"}}),
        ),
        (
            "rate-limit",
            json!({"rules": [
                {"name": "ua", "key": {"header": "user-agent"}, "limits": [{"requests": 100000, "per": "1s"}]},
                {"name": "path", "key": {"path": {}}, "match": m, "limits": [{"requests": 100000, "per": "1s"}]},
                {"name": "ip", "key": {"clientIp": {"trustedHops": 1}}, "limits": [{"requests": 100000, "per": "1s"}]}]}),
        ),
        (
            "jwt-authz",
            json!({"jwtRules": [{"issuer": ISSUER, "jwks": jwks(&["rsa"]), "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}],
                    "fromParams": ["access_token"], "fromCookies": ["session"],
                    "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]}],
                   "policies": [{"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]},
                                                          {"when": [{"key": "request.headers[user-agent]", "values": ["*evil*"]}]}]}]}),
        ),
        (
            "canary",
            json!({"split": {"variants": [{"name": "stable", "weight": 50}, {"name": "canary", "weight": 50}],
                             "stickyBy": {"header": "user-agent"}, "setCookie": {"name": "canary"}},
                   "override": {"header": "x-canary", "allowed": ["canary"]},
                   "rules": [{"match": m, "variant": "canary"}]}),
        ),
    ]
}

fn start(filters: &[(&str, Value)]) -> Lab {
    let mut b = builder();
    for (name, config) in filters {
        b = b.filter(name, config.clone());
    }
    b.start().expect("Envoy starts")
}

/// Ordinary requests on fresh connections (so both workers serve some) get `expected`.
fn ordinary_answers(lab: &Lab, expected: u16, authorization: Option<&str>) {
    for i in 0..24 {
        let mut req =
            format!("GET /ok/{i} HTTP/1.1\r\nhost: t\r\nuser-agent: curl\r\nconnection: close\r\n").into_bytes();
        if let Some(a) = authorization {
            req.extend_from_slice(format!("authorization: {a}\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        assert_eq!(raw_status(lab, &req), Some(expected), "ordinary request {i}; Envoy log:\n{}", lab.envoy.log());
    }
}

fn assert_no_vm_failure(lab: &Lab) {
    let failures = vm_failures(&lab.envoy.log());
    assert!(failures.is_empty(), "VM failures in Envoy's log:\n{}", failures.join("\n"));
}

#[test]
fn a_header_value_outside_utf8_crashes_no_module() {
    let t = token("RS256", now(), "alice");
    for (name, config) in configs() {
        let lab = start(&[(name, config)]);
        // (Control bytes are refused by Envoy's own codec, 400, before any filter: the randomized test
        // sends them too.)
        for value in [&b"\xe4\xb8"[..], b"caf\xe9", b"\xff\xfe\xfd", b"ok\xa0\x80"] {
            for header in ["user-agent", "x-user", "cookie", "x-envoy-fault-abort-request", "x-canary"] {
                let mut req = b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n".to_vec();
                req.extend_from_slice(format!("authorization: Bearer {t}\r\n{header}: ").as_bytes());
                req.extend_from_slice(value);
                req.extend_from_slice(b"\r\n\r\n");
                let status = raw_status(&lab, &req);
                assert!(matches!(status, Some(200)), "{name}: {header}: {value:?} → {status:?}\n{}", lab.envoy.log());
            }
        }
        ordinary_answers(&lab, 200, Some(&format!("Bearer {t}")));
        assert_no_vm_failure(&lab);
    }
}

#[test]
fn randomized_hostile_requests_leave_every_module_serving() {
    let t = token("RS256", now(), "alice");
    let mut all = configs();
    let chain: Vec<(&str, Value)> = all.clone();
    all.push(("chain", Value::Null));
    for (name, config) in all {
        let lab = if name == "chain" { start(&chain) } else { start(&[(name, config)]) };
        let mut rng = Rng::new(0x6d65_7368 ^ name.len() as u64);
        let mut statuses = std::collections::BTreeMap::new();
        for _ in 0..150 {
            let status = raw_status(&lab, &hostile_request(&mut rng));
            *statuses.entry(status).or_insert(0u32) += 1;
            assert_ne!(status, Some(503), "{name}: a hostile request got 503 (a failed VM?)\n{}", lab.envoy.log());
        }
        println!("{name}: hostile answers {statuses:?}");
        ordinary_answers(&lab, 200, Some(&format!("Bearer {t}")));
        assert_no_vm_failure(&lab);
    }
}

/// A delayed request with a body and trailers is held for the whole delay, then goes through the later
/// stages. This guards the behaviour; it cannot catch the loss of the chain host's trailers handler
/// in Envoy, and that is why: the host (proxy-wasm-cpp-host `src/context.cc`,
/// `ContextBase::convertVmCallResultToFilterHeadersStatus`) turns a Wasm filter's `StopIteration` on
/// request headers into `StopAllIterationAndWatermark`, so Envoy calls neither the body nor the
/// trailers callback of a paused filter until it resumes; the trailers never reach a parked request.
/// Checked on Envoy 1.40: with the handler removed this still passes. The handler stays, as Envoy's
/// own fault filter stops trailers while it delays, for hosts that deliver them.
#[test]
fn a_delayed_request_with_trailers_still_reaches_the_later_stages() {
    // fault delays, then rate-limit admits one request a minute: every request must reach the limiter.
    let lab = start(&[
        ("fault", json!({"rules": [{"delay": {"fixedDelay": "300ms"}}]})),
        ("rate-limit", json!({"rules": [{"name": "one", "limits": [{"requests": 1, "per": "60s"}]}]})),
    ]);
    let with_trailers = b"POST /t HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n";
    let started = std::time::Instant::now();
    assert_eq!(raw_status(&lab, with_trailers), Some(200), "{}", lab.envoy.log());
    assert!(started.elapsed() >= Duration::from_millis(300), "the delay holds the request");
    assert_eq!(
        raw_status(&lab, with_trailers),
        Some(429),
        "the second request reached the limiter\n{}",
        lab.envoy.log()
    );
    assert!(eventually(Duration::from_secs(3), || metric(&lab, "rate-limit", "one.limited") == 1));
    assert_no_vm_failure(&lab);
}

/// A delayed request whose client goes away gives its memory back at once, not at its deadline
/// (issue 11, item 2): the chain host keeps a copy of a parked request's headers, and a worker's Wasm
/// memory never shrinks, so reset-and-retry with large headers must not be able to pile copies up.
/// Twelve rounds of 40 requests with a 48 KiB header, each abandoned while its 30 s delay holds it:
/// were they kept until the deadline, the workers would hold ~22 MiB of copies by the last round.
#[test]
fn abandoned_delayed_requests_give_their_memory_back() {
    use std::io::Write;
    // The rule matches on a header, so the chain host reads (and copies) the request's headers.
    let rule = json!({"match": [{"headers": {"x-big": {"prefix": "v"}}}], "delay": {"fixedDelay": "30s"}});
    let lab = start(&[("fault", json!({"rules": [rule], "maxActiveFaults": 100000}))]);
    let request = format!("GET /parked HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n", "v".repeat(48 * 1024));
    let mut delayed = 0;
    let mut round = || {
        let conns: Vec<std::net::TcpStream> = (0..40)
            .filter_map(|_| {
                let mut s = std::net::TcpStream::connect(lab.envoy.listener).ok()?;
                s.write_all(request.as_bytes()).ok()?;
                Some(s)
            })
            .collect();
        delayed += conns.len() as u64;
        assert!(
            eventually(Duration::from_secs(10), || metric(&lab, "fault", "delays_injected") >= delayed),
            "the requests were parked"
        );
        drop(conns);
    };
    // Two rounds first: the workers' memory grows to what one round needs.
    round();
    round();
    let before = lab.envoy.rss_bytes().expect("Envoy's RSS");
    for _ in 0..10 {
        round();
    }
    let after = lab.envoy.rss_bytes().expect("Envoy's RSS");
    let grown = after.saturating_sub(before) as f64 / (1024.0 * 1024.0);
    println!("RSS {before} -> {after} bytes (+{grown:.1} MiB) over 400 abandoned delayed requests");
    assert!(grown < 8.0, "Envoy grew by {grown:.1} MiB: abandoned parked requests kept their memory");
    assert_no_vm_failure(&lab);
}
