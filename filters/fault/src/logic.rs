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

meshplug_common::metric_table! {
    /// Metrics, by index into [`METRIC_NAMES`]; full names are `meshplug.fault.<name>`.
    pub enum Metric / METRIC_NAMES {
        DelaysInjected => "delays_injected",
        AbortsInjected => "aborts_injected",
        SkippedMaxActive => "skipped_max_active",
        BadControlHeaders => "bad_control_headers",
        Errors => "errors",
    }
}

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

/// Reads the control headers. A malformed one (not a number, out of range, not ASCII) is ignored,
/// counted in `bad_control_headers` and logged at debug level (clients control these values, so they
/// never reach a warning log).
fn read_control_headers(req: &dyn RequestHeaders, max_delay: Duration, metrics: &dyn Metrics) -> Asked {
    // Every control value is a number or a gRPC status name: bytes outside ASCII make it malformed.
    let header = |name: &str| req.header(name).map(|v| String::from_utf8_lossy(&v).into_owned());
    let bad = |name: &str, value: &str, why: &str| {
        metrics.increment(Metric::BadControlHeaders as usize);
        log::debug!("ignored control header {name}: {why} (value {:?})", truncate(value));
    };
    let percentage = |name: &str| -> Option<Percentage> {
        let value = header(name)?;
        match value.trim().parse::<f64>().map_err(|e| e.to_string()).and_then(Percentage::from_percent) {
            Ok(p) => Some(p),
            Err(why) => {
                bad(name, &value, &why);
                None
            }
        }
    };
    let mut asked = Asked::default();
    if let Some(value) = header(H_DELAY) {
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
    let http = header(H_ABORT).and_then(|value| {
        match value.trim().parse::<u64>().map_err(|e| e.to_string()).and_then(check_http_status) {
            Ok(s) => Some(AbortStatus::Http(s)),
            Err(why) => {
                bad(H_ABORT, &value, &why);
                None
            }
        }
    });
    let grpc = header(H_ABORT_GRPC).and_then(|value| {
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
#[path = "tests/logic.rs"]
mod tests;
