//! Tests of `logic` (kept apart from the filter code, which must never unwrap).

use super::*;
use meshplug_common::host::SeededRandom;
use meshplug_common::testing::{MemorySharedData, RecordingMetrics, TestRequest};

struct Host {
    random: SeededRandom,
    shared: MemorySharedData,
    metrics: RecordingMetrics,
}

impl Host {
    fn new() -> Self {
        Self {
            random: SeededRandom::new(42),
            shared: MemorySharedData::default(),
            metrics: RecordingMetrics::default(),
        }
    }
    fn run(&mut self, fault: &Fault, req: &TestRequest) -> Decision {
        let mut env = Env { random: &mut self.random, shared: &self.shared, metrics: &self.metrics };
        fault.on_request(req, &mut env)
    }
    fn count(&self, m: Metric) -> u64 {
        self.metrics.get(m as usize)
    }
}

fn fault(json: &str) -> Fault {
    Fault::from_json(json.as_bytes(), "test").unwrap()
}

fn get() -> TestRequest {
    TestRequest::new("GET", "/")
}

#[test]
fn no_rules_no_faults() {
    let mut h = Host::new();
    assert_eq!(h.run(&fault("{}"), &get()), Decision::pass());
}

#[test]
fn first_matching_rule_applies_and_an_empty_rule_exempts() {
    let f = fault(
        r#"{"rules":[
            {"match":[{"uri":{"prefix":"/health"}}]},
            {"match":[{"headers":{"x-test-fault":{"exact":"inject"}}}],"abort":{"httpStatus":503}},
            {"delay":{"fixedDelay":"150ms"}}]}"#,
    );
    let mut h = Host::new();
    assert_eq!(h.run(&f, &TestRequest::new("GET", "/health").with("x-test-fault", "inject")).action, Action::Continue);
    match h.run(&f, &get().with("x-test-fault", "inject")).action {
        Action::Respond(r) => {
            assert_eq!(r.status, 503);
            assert_eq!(r.headers, vec![(FAULT_HEADER.into(), "abort".into())]);
            assert_eq!(r.body, ABORT_BODY.as_bytes());
        }
        other => panic!("{other:?}"),
    }
    let d = h.run(&f, &get());
    assert_eq!(d.action, Action::Pause { delay: Duration::from_millis(150), then: None });
    assert!(d.delayed && d.holds_slot);
    assert_eq!(h.count(Metric::AbortsInjected), 1);
    assert_eq!(h.count(Metric::DelaysInjected), 1);
}

#[test]
fn delay_then_abort_and_grpc() {
    let f = fault(r#"{"rules":[{"delay":{"fixedDelay":"1s"},"abort":{"grpcStatus":"UNAVAILABLE"}}]}"#);
    let mut h = Host::new();
    match h.run(&f, &get()).action {
        Action::Pause { delay, then: Some(r) } => {
            assert_eq!(delay, Duration::from_secs(1));
            assert_eq!(r.grpc_status, Some(14));
            assert_eq!(r.status, 200);
            assert_eq!(r.headers[0].1, "delay,abort");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn percentages_are_honest() {
    let f = fault(r#"{"rules":[{"abort":{"httpStatus":500,"percentage":{"value":10}}}],"maxActiveFaults":100000000}"#);
    let mut h = Host::new();
    let n = 100_000;
    let aborted = (0..n).filter(|_| matches!(h.run(&f, &get()).action, Action::Respond(_))).count();
    let pct = aborted as f64 * 100.0 / n as f64;
    assert!((pct - 10.0).abs() < 0.5, "{pct}");
}

#[test]
fn max_active_faults_bounds_and_releases() {
    let f = fault(r#"{"rules":[{"delay":{"fixedDelay":"1s"}}],"maxActiveFaults":2}"#);
    let mut h = Host::new();
    f.prepare(&h.shared);
    assert!(h.run(&f, &get()).holds_slot);
    assert!(h.run(&f, &get()).holds_slot);
    let third = h.run(&f, &get());
    assert_eq!(third, Decision::pass());
    assert_eq!(h.count(Metric::SkippedMaxActive), 1);
    f.finish(&h.shared, &h.metrics);
    assert!(h.run(&f, &get()).holds_slot);
}

#[test]
fn lost_cas_races_let_the_request_through_and_count_an_error() {
    let f = fault(r#"{"rules":[{"abort":{"httpStatus":500}}]}"#);
    let mut h = Host::new();
    f.prepare(&h.shared);
    h.shared.fail_next_cas(1000);
    assert_eq!(h.run(&f, &get()), Decision::pass());
    assert_eq!(h.count(Metric::Errors), 1);
}

#[test]
fn header_control_off_by_default() {
    let f = fault("{}");
    let mut h = Host::new();
    let d = h.run(&f, &get().with(H_ABORT, "503").with(H_DELAY, "100"));
    assert_eq!(d, Decision::pass());
}

#[test]
fn header_control_on() {
    let f = fault(r#"{"headerControl":{"enabled":true,"maxDelay":"2s"}}"#);
    let mut h = Host::new();
    match h.run(&f, &get().with(H_ABORT, "418")).action {
        Action::Respond(r) => assert_eq!(r.status, 418),
        other => panic!("{other:?}"),
    }
    match h.run(&f, &get().with(H_ABORT_GRPC, "7")).action {
        Action::Respond(r) => assert_eq!(r.grpc_status, Some(7)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.run(&f, &get().with(H_DELAY, "250")).action,
        Action::Pause { delay: Duration::from_millis(250), then: None }
    );
    assert_eq!(h.run(&f, &get().with(H_DELAY, "250").with(H_DELAY_PCT, "0")), Decision::pass());
    assert_eq!(h.count(Metric::BadControlHeaders), 0);
}

#[test]
fn header_control_replaces_the_rule_fault_of_the_same_kind() {
    let f = fault(r#"{"rules":[{"abort":{"httpStatus":500}}],"headerControl":{"enabled":true}}"#);
    let mut h = Host::new();
    match h.run(&f, &get().with(H_ABORT, "503")).action {
        Action::Respond(r) => assert_eq!(r.status, 503),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.run(&f, &get().with(H_ABORT, "503").with(H_ABORT_PCT, "0")).action, Action::Continue);
}

#[test]
fn bad_control_headers_are_ignored_and_counted() {
    let f = fault(r#"{"headerControl":{"enabled":true,"maxDelay":"1s"}}"#);
    let mut h = Host::new();
    let bad = [
        (H_ABORT, "42"),
        (H_ABORT, "600"),
        (H_ABORT, "five hundred"),
        (H_ABORT, "-1"),
        (H_ABORT_GRPC, "99"),
        (H_ABORT_GRPC, "NOT_A_CODE"),
        (H_DELAY, "abc"),
        (H_DELAY, "5000"),
        (H_DELAY, "-5"),
        (H_DELAY, "0"),
    ];
    for (name, value) in bad {
        assert_eq!(h.run(&f, &get().with(name, value)), Decision::pass(), "{name}: {value}");
    }
    assert_eq!(h.count(Metric::BadControlHeaders), bad.len() as u64);
    let d = h.run(&f, &get().with(H_ABORT, "503").with(H_ABORT_PCT, "250"));
    assert!(matches!(d.action, Action::Respond(_)), "a bad percentage falls back to 100%");
    assert_eq!(h.count(Metric::BadControlHeaders), bad.len() as u64 + 1);
    let long = "é".repeat(100);
    assert_eq!(h.run(&f, &get().with(H_DELAY, &long)), Decision::pass());
}
