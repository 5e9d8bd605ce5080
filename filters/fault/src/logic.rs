//! What the fault filter decides for one request. No proxy-wasm here: the host is reached through
//! `meshplug_common::host` traits, so the same code runs natively in tests, in `fault.wasm` and in the
//! bundle.

use crate::config::{check_grpc_status, check_http_status, AbortStatus, FaultConfig, GRPC_NAMES};
use meshplug_common::config::ConfigError;
use meshplug_common::counter::{CounterError, SharedCounter};
use meshplug_common::host::{Metrics, Random, RequestHeaders, SharedData};
use meshplug_common::percent::Percentage;
use meshplug_common::reply::{Action, LocalReply};
use std::time::Duration;

/// The filter's name: log prefix `[fault]`, metrics `meshplug.fault.*`.
pub const FILTER: &str = "fault";

/// Metrics, by index into [`METRIC_NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    DelaysInjected = 0,
    AbortsInjected = 1,
    SkippedMaxActive = 2,
    BadControlHeaders = 3,
    Errors = 4,
}

/// Full names are `meshplug.fault.<name>`.
pub const METRIC_NAMES: [&str; 5] =
    ["delays_injected", "aborts_injected", "skipped_max_active", "bad_control_headers", "errors"];

/// Response header that marks an injected fault: `abort`, `delay` or `delay,abort`.
pub const FAULT_HEADER: &str = "x-meshplug-fault";
/// Body of an injected HTTP abort (and message of a gRPC abort).
pub const ABORT_BODY: &str = "fault filter abort";

/// Control headers, as Envoy's fault filter names them.
pub const H_DELAY: &str = "x-envoy-fault-delay-request";
pub const H_DELAY_PCT: &str = "x-envoy-fault-delay-request-percentage";
pub const H_ABORT: &str = "x-envoy-fault-abort-request";
pub const H_ABORT_GRPC: &str = "x-envoy-fault-abort-grpc-request";
pub const H_ABORT_PCT: &str = "x-envoy-fault-abort-request-percentage";

/// What the host gives the filter for one decision.
pub struct Env<'a> {
    pub random: &'a mut dyn Random,
    pub shared: &'a dyn SharedData,
    pub metrics: &'a dyn Metrics,
}

/// What the filter did to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// A delay was injected (the response gets `x-meshplug-fault: delay`).
    pub delayed: bool,
    /// The request holds one of the `maxActiveFaults` slots: call [`Fault::finish`] when it ends.
    pub holds_slot: bool,
}

impl Decision {
    fn pass() -> Self {
        Self { action: Action::Continue, delayed: false, holds_slot: false }
    }
}

/// A configured fault filter.
pub struct Fault {
    config: FaultConfig,
    active: SharedCounter,
}

impl Fault {
    /// `instance` names this plugin instance (its root id), so two fault plugins in one proxy keep
    /// separate `maxActiveFaults` counters.
    pub fn new(config: FaultConfig, instance: &str) -> Self {
        let key = format!("meshplug.fault.{instance}.active");
        Self { config, active: SharedCounter::new(key) }
    }

    pub fn from_json(bytes: &[u8], instance: &str) -> Result<Self, ConfigError> {
        FaultConfig::from_json(bytes).map(|c| Self::new(c, instance))
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Configure-time set-up of shared state (creates the active-faults counter if missing).
    pub fn prepare(&self, shared: &dyn SharedData) {
        if let Err(e) = self.active.ensure(shared) {
            log::warn!("cannot create the active-faults counter {}: {e:?}", self.active.key());
        }
    }

    /// Decides one request from its headers.
    pub fn on_request(&self, req: &dyn RequestHeaders, env: &mut Env) -> Decision {
        let rule = self.config.rules.iter().find(|r| r.matches.matches(req));
        let mut delay =
            rule.and_then(|r| r.delay.as_ref()).filter(|d| d.percentage.roll(env.random)).map(|d| d.fixed_delay.0);
        let mut abort = rule.and_then(|r| r.abort.as_ref()).filter(|a| a.percentage.roll(env.random)).map(|a| a.status);

        if self.config.header_control.enabled {
            let asked = read_control_headers(req, self.config.header_control.max_delay.0, env.metrics);
            if let Some((d, pct)) = asked.delay {
                delay = pct.roll(env.random).then_some(d);
            }
            if let Some((a, pct)) = asked.abort {
                abort = pct.roll(env.random).then_some(a);
            }
        }

        if delay.is_none() && abort.is_none() {
            return Decision::pass();
        }
        match self.active.try_acquire(env.shared, self.config.max_active_faults) {
            Ok(true) => {}
            Ok(false) => {
                env.metrics.increment(Metric::SkippedMaxActive as usize);
                log::debug!("fault skipped: maxActiveFaults ({}) reached", self.config.max_active_faults);
                return Decision::pass();
            }
            Err(e) => {
                // Faults are a testing tool: when the shared counter cannot be updated, the request is
                // let through untouched rather than faulted past the bound or failed.
                env.metrics.increment(Metric::Errors as usize);
                log::warn!("fault skipped: cannot update the active-faults counter: {}", counter_error(&e));
                return Decision::pass();
            }
        }

        let reply = abort.map(|status| {
            env.metrics.increment(Metric::AbortsInjected as usize);
            abort_reply(status, delay.is_some())
        });
        let action = match (delay, reply) {
            (Some(d), then) => {
                env.metrics.increment(Metric::DelaysInjected as usize);
                Action::Pause { delay: d, then }
            }
            (None, Some(reply)) => Action::Respond(reply),
            (None, None) => Action::Continue,
        };
        log::debug!(
            "fault injected: {action:?}{}",
            rule.and_then(|r| r.name.as_deref()).map(|n| format!(" (rule {n})")).unwrap_or_default()
        );
        Decision { action, delayed: delay.is_some(), holds_slot: true }
    }

    /// Frees the request's `maxActiveFaults` slot; call once when a request with `holds_slot` ends.
    pub fn finish(&self, shared: &dyn SharedData, metrics: &dyn Metrics) {
        if let Err(e) = self.active.release(shared) {
            metrics.increment(Metric::Errors as usize);
            log::warn!("cannot release an active-fault slot: {}", counter_error(&e));
        }
    }
}

fn counter_error(e: &CounterError) -> String {
    match e {
        CounterError::Contended => "compare-and-swap lost too many times".into(),
        CounterError::Host(h) => format!("host error {h}"),
    }
}

/// The local reply for an abort.
pub fn abort_reply(status: AbortStatus, delayed: bool) -> LocalReply {
    let marker = if delayed { "delay,abort" } else { "abort" };
    let headers = vec![(FAULT_HEADER.to_string(), marker.to_string())];
    match status {
        AbortStatus::Http(s) => {
            LocalReply { status: s, grpc_status: None, headers, body: ABORT_BODY.as_bytes().to_vec() }
        }
        AbortStatus::Grpc(code) => {
            LocalReply { status: 200, grpc_status: Some(code), headers, body: ABORT_BODY.as_bytes().to_vec() }
        }
    }
}

/// Faults a request asked for with control headers.
#[derive(Debug, Default)]
struct Asked {
    delay: Option<(Duration, Percentage)>,
    abort: Option<(AbortStatus, Percentage)>,
}

/// Reads the control headers. A malformed one is ignored, counted in `bad_control_headers` and
/// logged at debug level (clients control these values, so they never reach a warning log).
fn read_control_headers(req: &dyn RequestHeaders, max_delay: Duration, metrics: &dyn Metrics) -> Asked {
    let bad = |name: &str, value: &str, why: &str| {
        metrics.increment(Metric::BadControlHeaders as usize);
        log::debug!("ignored control header {name}: {why} (value {:?})", truncate(value));
    };
    let percentage = |name: &str| -> Option<Percentage> {
        let value = req.header(name)?;
        match value.trim().parse::<f64>().map_err(|e| e.to_string()).and_then(Percentage::from_percent) {
            Ok(p) => Some(p),
            Err(why) => {
                bad(name, &value, &why);
                None
            }
        }
    };
    let mut asked = Asked::default();
    if let Some(value) = req.header(H_DELAY) {
        match value.trim().parse::<u64>() {
            Ok(ms) if Duration::from_millis(ms) <= max_delay && ms > 0 => {
                let pct = percentage(H_DELAY_PCT).unwrap_or(Percentage::ALWAYS);
                asked.delay = Some((Duration::from_millis(ms), pct));
            }
            Ok(0) => bad(H_DELAY, &value, "a delay of 0 ms"),
            Ok(_) => bad(H_DELAY, &value, "longer than headerControl.maxDelay"),
            Err(_) => bad(H_DELAY, &value, "not a whole number of milliseconds"),
        }
    }
    let http = req.header(H_ABORT).and_then(|value| {
        match value.trim().parse::<u64>().map_err(|e| e.to_string()).and_then(check_http_status) {
            Ok(s) => Some(AbortStatus::Http(s)),
            Err(why) => {
                bad(H_ABORT, &value, &why);
                None
            }
        }
    });
    let grpc = req.header(H_ABORT_GRPC).and_then(|value| {
        let v = value.trim();
        let code = match v.parse::<u64>() {
            Ok(n) => check_grpc_status(n),
            Err(_) => GRPC_NAMES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(v))
                .map(|i| i as u32)
                .ok_or_else(|| "not a gRPC status".to_string()),
        };
        match code {
            Ok(c) => Some(AbortStatus::Grpc(c)),
            Err(why) => {
                bad(H_ABORT_GRPC, &value, &why);
                None
            }
        }
    });
    if let Some(status) = http.or(grpc) {
        asked.abort = Some((status, percentage(H_ABORT_PCT).unwrap_or(Percentage::ALWAYS)));
    }
    asked
}

fn truncate(value: &str) -> &str {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
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
        assert_eq!(
            h.run(&f, &TestRequest::new("GET", "/health").with("x-test-fault", "inject")).action,
            Action::Continue
        );
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
        let f =
            fault(r#"{"rules":[{"abort":{"httpStatus":500,"percentage":{"value":10}}}],"maxActiveFaults":100000000}"#);
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
}
