//! The fault filter against the real Envoy 1.40 (two workers): delays and their accuracy, the abort
//! ratio, gRPC aborts, header control, maxActiveFaults, match rules, and refused configs.

use meshplug_tests::{eventually, lab_with, median, metric, per_worker_connections, Req};
use serde_json::json;
use std::time::Duration;

const FAULT: &str = "fault";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn delays_are_injected_accurately_and_marked() {
    let lab = lab_with(
        FAULT,
        json!({"rules": [{"match": [{"headers": {"x-test-fault": {"exact": "inject"}}}],
                          "delay": {"fixedDelay": "150ms"}}]}),
    );
    let client = lab.envoy.client().unwrap();
    // Baseline latency of undelayed requests, measured in the same run.
    let plain: Vec<_> = (0..20).map(|_| client.get("/plain").unwrap()).collect();
    assert!(plain.iter().all(|r| r.status == 200 && r.header("x-meshplug-fault").is_none()));
    let baseline = median(plain.iter().map(|r| r.elapsed).collect());

    let n = 60;
    let reqs = (0..n).map(|_| Req::get("/slow").header("x-test-fault", "inject")).collect();
    let delayed: Vec<_> = client.send_all(reqs, 6).into_iter().map(|r| r.unwrap()).collect();
    for r in &delayed {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["upstream"], "echo", "a delayed request still reaches the upstream");
        assert_eq!(r.header("x-meshplug-fault"), Some("delay"));
        assert!(r.elapsed >= ms(150), "delay too short: {:?}", r.elapsed);
        assert!(r.elapsed < ms(1150), "delay far too long: {:?}", r.elapsed);
    }
    let med = median(delayed.iter().map(|r| r.elapsed).collect());
    let error = med.saturating_sub(ms(150)).saturating_sub(baseline);
    println!(
        "delay accuracy: fixedDelay 150ms, median observed {:.2} ms over {n} requests, baseline request {:.2} ms, \
         median injected-delay error {:.2} ms",
        med.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        error.as_secs_f64() * 1e3
    );
    assert!(eventually(ms(3000), || metric(&lab, FAULT, "delays_injected") == n));
}

#[test]
fn a_delayed_request_keeps_its_body() {
    let lab = lab_with(FAULT, json!({"rules": [{"delay": {"fixedDelay": "100ms"}}]}));
    let client = lab.envoy.client().unwrap();
    let body = vec![b'x'; 200_000];
    let r = client.send(Req::post("/upload", &body)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["bodyBytes"], 200_000);
    assert!(r.elapsed >= ms(100));
}

#[test]
fn abort_ratio_is_within_one_point_over_10000_requests() {
    let lab = lab_with(FAULT, json!({"rules": [{"abort": {"httpStatus": 503, "percentage": {"value": 10}}}]}));
    let client = lab.envoy.client().unwrap();
    let n = 10_000u64;
    let results = client.send_all((0..n).map(|_| Req::get("/ratio")).collect(), 16);
    let mut aborted = 0u64;
    for r in results {
        let r = r.unwrap();
        match r.status {
            503 => {
                assert_eq!(r.header("x-meshplug-fault"), Some("abort"));
                assert_eq!(r.text(), "fault filter abort");
                aborted += 1;
            }
            200 => assert!(r.header("x-meshplug-fault").is_none()),
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    let pct = aborted as f64 * 100.0 / n as f64;
    println!("abort ratio: {aborted}/{n} = {pct:.2}% (configured 10%)");
    assert!((pct - 10.0).abs() <= 1.0, "abort ratio {pct}% is not within 1 point of 10%");
    assert!(eventually(ms(3000), || metric(&lab, FAULT, "aborts_injected") == aborted));
}

#[test]
fn grpc_aborts_answer_with_grpc_status() {
    let lab = lab_with(
        FAULT,
        json!({"rules": [
            {"match": [{"uri": {"prefix": "/payments.Payments/"}}], "abort": {"grpcStatus": "UNAVAILABLE"}},
            {"match": [{"uri": {"prefix": "/other.Svc/"}}], "abort": {"grpcStatus": 7}}]}),
    );
    let client = lab.envoy.client().unwrap();
    let grpc =
        |path: &str| Req::post(path, b"\0\0\0\0\0").header("content-type", "application/grpc").header("te", "trailers");
    let r = client.send_h2(grpc("/payments.Payments/Pay")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("grpc-status"), Some("14"), "{:?}", r.headers);
    assert_eq!(r.header("grpc-message"), Some("fault filter abort"));
    assert_eq!(r.header("x-meshplug-fault"), Some("abort"));
    let r = client.send(grpc("/other.Svc/Call")).unwrap();
    assert_eq!((r.status, r.header("grpc-status")), (200, Some("7")), "HTTP/1.1 gRPC too: {:?}", r.headers);
    let r = client.send_h2(grpc("/unfaulted.Svc/Call")).unwrap();
    assert_eq!(r.json()["upstream"], "echo");
}

#[test]
fn header_control_is_off_by_default() {
    let lab = lab_with(FAULT, json!({}));
    let client = lab.envoy.client().unwrap();
    let r = client
        .send(Req::get("/").header("x-envoy-fault-abort-request", "503").header("x-envoy-fault-delay-request", "500"))
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["upstream"], "echo");
    assert!(r.header("x-meshplug-fault").is_none());
    assert!(r.elapsed < ms(500));
    // Counters reach Envoy within a second: wait past a flush before checking that none moved.
    std::thread::sleep(ms(1500));
    assert_eq!(metric(&lab, FAULT, "aborts_injected") + metric(&lab, FAULT, "delays_injected"), 0);
}

#[test]
fn header_control_when_enabled() {
    let lab = lab_with(FAULT, json!({"headerControl": {"enabled": true, "maxDelay": "2s"}}));
    let client = lab.envoy.client().unwrap();
    let r = client.send(Req::get("/").header("x-envoy-fault-abort-request", "418")).unwrap();
    assert_eq!((r.status, r.header("x-meshplug-fault")), (418, Some("abort")));

    let r = client.send(Req::get("/").header("x-envoy-fault-delay-request", "200")).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.elapsed >= ms(200) && r.elapsed < ms(1200), "{:?}", r.elapsed);

    let r = client
        .send_h2(
            Req::post("/g.S/M", b"")
                .header("content-type", "application/grpc")
                .header("x-envoy-fault-abort-grpc-request", "8"),
        )
        .unwrap();
    assert_eq!(r.header("grpc-status"), Some("8"));

    let r = client
        .send(
            Req::get("/")
                .header("x-envoy-fault-abort-request", "503")
                .header("x-envoy-fault-abort-request-percentage", "0"),
        )
        .unwrap();
    assert_eq!(r.status, 200, "0% never aborts");

    // Bad control headers are ignored (the request passes) and counted.
    for (name, value) in [
        ("x-envoy-fault-abort-request", "42"),
        ("x-envoy-fault-abort-request", "600"),
        ("x-envoy-fault-abort-request", "oops"),
        ("x-envoy-fault-delay-request", "-5"),
        ("x-envoy-fault-delay-request", "60000"),
        ("x-envoy-fault-abort-grpc-request", "99"),
    ] {
        let r = client.send(Req::get("/").header(name, value)).unwrap();
        assert_eq!(r.status, 200, "{name}: {value}");
        assert!(r.elapsed < ms(1000));
    }
    assert!(eventually(ms(3000), || metric(&lab, FAULT, "bad_control_headers") == 6));
}

#[test]
fn max_active_faults_bounds_concurrent_faults_across_workers() {
    let lab = lab_with(FAULT, json!({"rules": [{"delay": {"fixedDelay": "1500ms"}}], "maxActiveFaults": 3}));
    let client = lab.envoy.client().unwrap();
    let n = 16;
    let results: Vec<_> = client
        .send_all((0..n).map(|i| Req::get(&format!("/busy/{i}"))).collect(), n)
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let delayed = results.iter().filter(|r| r.header("x-meshplug-fault") == Some("delay")).count();
    let fast = results.iter().filter(|r| r.elapsed < ms(1500) && r.header("x-meshplug-fault").is_none()).count();
    assert!(results.iter().all(|r| r.status == 200));
    assert_eq!(delayed, 3, "exactly maxActiveFaults requests are delayed at once");
    assert_eq!(fast, n - 3, "the rest pass untouched");
    assert!(eventually(ms(3000), || metric(&lab, FAULT, "skipped_max_active") == (n - 3) as u64));
    // Both workers took connections, so the bound held across workers.
    let per_worker = per_worker_connections(&lab);
    assert!(per_worker.iter().all(|c| *c > 0), "connections per worker: {per_worker:?}");
    // The slots are released when the faulted requests end.
    let r = client.get("/after").unwrap();
    assert_eq!(r.header("x-meshplug-fault"), Some("delay"));
}

#[test]
fn match_rules_pick_the_first_matching_rule() {
    let lab = lab_with(
        FAULT,
        json!({"rules": [
            {"name": "exempt-health", "match": [{"uri": {"exact": "/health"}}]},
            {"match": [{"uri": {"prefix": "/api"}, "method": {"exact": "POST"}}], "abort": {"httpStatus": 500}},
            {"match": [{"queryParams": {"fail": {"exact": "yes"}}}], "abort": {"httpStatus": 502}},
            {"match": [{"headers": {"x-user": {"regex": "tester-[0-9]+"}}, "withoutHeaders": {"x-safe": {"present": true}}}],
             "abort": {"httpStatus": 504}},
            {"match": [{"uri": {"prefix": "/"}, "headers": {"x-test-fault": {"exact": "inject"}}}], "abort": {"httpStatus": 503}}
        ]}),
    );
    let client = lab.envoy.client().unwrap();
    let cases: Vec<(Req, u16)> = vec![
        (Req::get("/health").header("x-test-fault", "inject"), 200),
        (Req::post("/api/pay", b"{}"), 500),
        (Req::get("/api/pay"), 200),
        (Req::get("/x?fail=yes"), 502),
        (Req::get("/x?fail=no"), 200),
        (Req::get("/x").header("x-user", "tester-42"), 504),
        (Req::get("/x").header("x-user", "tester-42").header("x-safe", "1"), 200),
        (Req::get("/x").header("x-user", "tester-x"), 200),
        (Req::get("/x").header("x-test-fault", "inject"), 503),
        (Req::get("/x").header("x-test-fault", "other"), 200),
    ];
    for (req, want) in cases {
        let desc = format!("{} {} {:?}", req.method, req.path, req.headers);
        let r = client.send(req).unwrap();
        assert_eq!(r.status, want, "{desc}: {}", r.text());
    }
}

/// Envoy refuses to start with an invalid pluginConfig, and the log names the field.

#[test]
fn invalid_configs_are_refused_at_load_with_the_field_named() {
    let cases = [
        (
            json!({"rules": [{"abort": {"httpStatus": 42}}]}),
            "[fault] invalid config at /rules/0/abort/httpStatus: HTTP status 42 is out of range",
        ),
        (
            json!({"rules": [{"delay": {"fixedDelay": "1s", "percentage": {"value": -5}}}]}),
            "[fault] invalid config at /rules/0/delay/percentage: percentage -5 is out of range",
        ),
        (json!({"rules": [{"delay": {"fixedDelay": "soon"}}]}), "[fault] invalid config at /rules/0/delay/fixedDelay:"),
        (json!({"rules": [], "bogus": true}), "[fault] invalid config at /bogus: unknown field `bogus`"),
    ];
    meshplug_tests::assert_refused(FAULT, cases);
}

#[test]
fn the_vm_logs_its_version_line() {
    let lab = lab_with(FAULT, json!({}));
    let log = lab.envoy.log();
    assert!(log.contains(&format!("{} (git ", meshplug_tests::version_line(FAULT))), "{log}");
    assert!(log.contains("[fault] configured: 0 rule(s)"), "{log}");
}

#[test]
fn delay_then_abort_answers_after_the_delay() {
    let lab = lab_with(FAULT, json!({"rules": [{"delay": {"fixedDelay": "200ms"}, "abort": {"httpStatus": 503}}]}));
    let client = lab.envoy.client().unwrap();
    let r = client.send(Req::post("/both", b"payload")).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-meshplug-fault"), Some("delay,abort"));
    assert_eq!(r.text(), "fault filter abort");
    assert!(r.elapsed >= ms(200) && r.elapsed < ms(1200), "{:?}", r.elapsed);
    assert!(eventually(ms(3000), || metric(&lab, FAULT, "delays_injected") == 1
        && metric(&lab, FAULT, "aborts_injected") == 1));
}

#[test]
fn a_client_that_gives_up_frees_its_fault_slot() {
    let lab = lab_with(FAULT, json!({"rules": [{"delay": {"fixedDelay": "3s"}}], "maxActiveFaults": 1}));
    let impatient = lab.envoy.client().unwrap().with_timeout(ms(200));
    assert!(impatient.get("/gone").is_err(), "the client gives up before the delay ends");
    drop(impatient); // closes the connection; Envoy resets the parked stream
                     // While the slot is held, requests pass at once, untouched. Once Envoy has noticed the reset, the
                     // slot is free again: the next request is delayed (and this impatient client gives up on it).
    let client = lab.envoy.client().unwrap().with_timeout(ms(200));
    let freed = eventually(ms(3000), || match client.get("/next") {
        Ok(r) => {
            assert!(r.status == 200 && r.header("x-meshplug-fault").is_none(), "a skipped fault passes untouched");
            false
        }
        Err(_) => true,
    });
    assert!(freed, "the slot of the abandoned request was not released");
}

/// A step back of the wall clock does not hold a parked request longer: the chain parks requests on
/// Envoy's monotonic clock (WASI `clock_time_get(1)`), not on wall time. Envoy runs with a test shim
/// preloaded (tests/fixtures/wallclock-shim/shim.c, built here with the machine's C compiler) that
/// offsets its wall clock by the seconds written in a file, which the test rewrites while the request
/// is parked: 30 s back. With wall-clock deadlines the request waited the 1 s delay plus the 30 s step.
#[test]
fn a_wall_clock_step_back_does_not_hold_a_delayed_request() {
    let root = meshplug_harness::deploy::filters::workspace_root();
    let dir = std::env::temp_dir().join(format!("meshplug-wallclock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shim = dir.join("shim.so");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(root.join("tests/fixtures/wallclock-shim/shim.c"))
        .status()
        .unwrap();
    assert!(built.success(), "could not build the wall-clock shim with cc");
    let offset = dir.join("offset");
    std::fs::write(&offset, "+0\n").unwrap();
    let mut builder = meshplug_tests::builder().filter(FAULT, json!({"rules": [{"delay": {"fixedDelay": "1s"}}]}));
    builder.envoy_env = vec![
        ("LD_PRELOAD".into(), shim.display().to_string()),
        ("MESHPLUG_WALLCLOCK_OFFSET_FILE".into(), offset.display().to_string()),
    ];
    let lab = builder.start().unwrap_or_else(|e| panic!("could not start Envoy with the wall-clock shim: {e:#}"));
    let client = lab.envoy.client().unwrap();
    let r = client.get("/before").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.elapsed >= ms(1000) && r.elapsed < ms(5000), "the delay before any step: {:?}", r.elapsed);
    let url = lab.envoy.url();
    let parked = std::thread::spawn(move || meshplug_tests::Client::new(&url).unwrap().get("/stepped").unwrap());
    std::thread::sleep(ms(300));
    std::fs::write(&offset, "-30\n").unwrap();
    let r = parked.join().unwrap();
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(r.status, 200);
    assert!(r.elapsed < ms(10_000), "a 30 s step back of the wall clock held the request {:?}", r.elapsed);
    assert!(r.elapsed >= ms(1000), "the delay still applies: {:?}", r.elapsed);
}
