//! The proxy-wasm side of the host traits, shared by every filter module (and the bundle).
//! Everything here is thin: it moves data between Envoy's hostcalls and the pure logic.

use crate::host::{Clock, Metrics, SharedData, SharedDataError};
use crate::reply::{Header, LocalReply};
use crate::throttle::LogThrottle;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

pub mod chain;
pub mod ffi;

/// proxy-wasm log levels.
const TRACE: u32 = 0;
const DEBUG: u32 = 1;
const INFO: u32 = 2;
const WARN: u32 = 3;
const ERROR: u32 = 4;
const CRITICAL: u32 = 5;

/// Forwards `log` records to Envoy with a `[<filter>]` prefix taken from the record's target.
struct ProxyLogger;

static LOGGER: ProxyLogger = ProxyLogger;

impl log::Log for ProxyLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let level = match record.level() {
            log::Level::Error => ERROR,
            log::Level::Warn => WARN,
            log::Level::Info => INFO,
            log::Level::Debug => DEBUG,
            log::Level::Trace => TRACE,
        };
        let line = format!("{} {}", crate::log_prefix(record.target()), record.args());
        ffi::log(level, &line);
    }

    fn flush(&self) {}
}

/// Installs the logger and a panic hook that logs the panic at critical level (a panic still traps the
/// VM; Envoy then applies the plugin's failure policy). Call first thing in the module's `main!`.
/// `filter` is the filter's name as in its log prefix (`fault`, `rate-limit`).
pub fn init(filter: &'static str) {
    if log::set_logger(&LOGGER).is_ok() {
        // Envoy filters by its own log level; pass everything through.
        log::set_max_level(log::LevelFilter::Trace);
    }
    std::panic::set_hook(Box::new(move |info| {
        ffi::log(CRITICAL, &format!("[{filter}] panic: {info}"));
    }));
}

/// The plugin configuration (Istio's `pluginConfig` as JSON); empty when there is none.
pub fn plugin_configuration() -> Vec<u8> {
    ffi::get_buffer(ffi::BUFFER_PLUGIN_CONFIGURATION, 0, usize::MAX).unwrap_or_default()
}

/// The name of this plugin instance in shared-data keys: Envoy's Wasm config `name` (Istio sets
/// `<namespace>.<WasmPlugin name>`, unique per proxy), with the `root_id` when it differs from the name
/// (`name/root_id`). `filter` when the host has neither.
pub fn plugin_instance(filter: &str) -> String {
    let property =
        |name: &str| ffi::get_property(&[name]).and_then(|b| String::from_utf8(b).ok()).filter(|s| !s.is_empty());
    crate::instance_key(property("plugin_name").as_deref(), property("plugin_root_id").as_deref(), filter)
}

/// Logs a refused config (one line naming the field) and returns `false` for `on_configure`, so Envoy
/// applies the plugin's failure policy.
pub fn refuse_config(filter: &str, e: &crate::config::ConfigError) -> bool {
    log::error!(target: filter, "{e}; the plugin is not loaded (Envoy applies its failure policy)");
    false
}

/// Logs the version line; call from the root context's `on_vm_start`.
pub fn log_version(filter: &str) {
    ffi::log(INFO, &format!("[{filter}] {}", crate::version_line(filter)));
}

/// Envoy's clock.
pub struct ProxyClock;

impl Clock for ProxyClock {
    fn now(&self) -> Duration {
        ffi::current_time().unwrap_or_default()
    }
}

/// Envoy's monotonic clock (since some fixed moment, not the epoch): for deadlines and periods within
/// one VM, which a step of the wall clock must not move. Falls back to the wall clock on a host without
/// WASI's monotonic clock.
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        ffi::monotonic_time().unwrap_or_else(|| ProxyClock.now())
    }
}

/// Envoy's shared data (process-wide, keyed within the plugin's `vm_id`).
pub struct ProxySharedData;

impl SharedData for ProxySharedData {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        ffi::get_shared_data(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedDataError> {
        match ffi::set_shared_data(key, value, cas) {
            Ok(()) => Ok(()),
            Err(ffi::CAS_MISMATCH) => Err(SharedDataError::CasMismatch),
            Err(other) => Err(SharedDataError::Host(format!("status {other}"))),
        }
    }
}

/// Counters defined with Envoy, in the order of the filter's metric table.
///
/// Increments are kept in the worker's VM and handed to Envoy by [`ProxyMetrics::flush`], which the
/// root context calls on its tick ([`METRICS_FLUSH`]): one hostcall per counter per second instead of
/// one per request. Admin `/stats` therefore lags by up to one flush period.
#[derive(Default, Clone)]
pub struct ProxyMetrics {
    ids: Rc<Vec<Option<u32>>>,
    pending: Rc<Vec<Cell<u64>>>,
}

/// How often a root context hands its counted increments to Envoy.
pub const METRICS_FLUSH: Duration = Duration::from_secs(1);

impl ProxyMetrics {
    /// Defines `meshplug.<filter>.<name>` for each name. A counter Envoy refuses is logged and then
    /// silently not counted, rather than failing the filter.
    pub fn define(filter: &str, names: &[impl AsRef<str>]) -> Self {
        let ids: Vec<Option<u32>> = names
            .iter()
            .map(|name| {
                let full = crate::metrics::metric_name(filter, name.as_ref());
                match ffi::define_counter(&full) {
                    Ok(id) => Some(id),
                    Err(e) => {
                        log::error!(target: "meshplug", "cannot define metric {full}: status {e}");
                        None
                    }
                }
            })
            .collect();
        let pending = ids.iter().map(|_| Cell::new(0)).collect();
        Self { ids: Rc::new(ids), pending: Rc::new(pending) }
    }

    /// Hands every pending increment to Envoy. Call from the root context's `on_tick`.
    pub fn flush(&self) {
        for (id, pending) in self.ids.iter().zip(self.pending.iter()) {
            let n = pending.replace(0);
            if let (Some(id), true) = (id, n > 0) {
                let _ = ffi::increment_metric(*id, i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}

impl Metrics for ProxyMetrics {
    fn increment(&self, metric: usize) {
        if let Some(p) = self.pending.get(metric) {
            p.set(p.get().saturating_add(1));
        }
    }
}

/// Host-call failures on a request path, reported at most once a minute per kind (the request still
/// gets the documented safe answer; see [`ffi`]).
pub struct HostErrorLog(LogThrottle);

impl HostErrorLog {
    pub const fn new() -> Self {
        Self(LogThrottle::new())
    }

    pub fn report(&self, what: &str, status: ffi::Status) {
        let now = ProxyClock.now();
        if let Some(n) = self.0.event(now, Duration::from_secs(60)) {
            log::warn!(target: "meshplug", "host refused to {what} (status {status}); {n} such failure(s) since the last report");
        }
    }
}

impl Default for HostErrorLog {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    static RESPONSE_HEADER_ERRORS: HostErrorLog = const { HostErrorLog::new() };
    static REPLY_ERRORS: HostErrorLog = const { HostErrorLog::new() };
}

/// Puts headers on the response of the current HTTP context (call from `on_http_response_headers`):
/// each replaces an upstream header of the same name, except `set-cookie`, which is added. A header the
/// host refuses is left out (logged, throttled).
pub fn add_response_headers(headers: &[Header]) {
    for (name, value) in headers {
        let result = if *name == "set-cookie" {
            ffi::add_header(ffi::MAP_RESPONSE_HEADERS, name, value.as_bytes())
        } else {
            ffi::replace_header(ffi::MAP_RESPONSE_HEADERS, name, value.as_bytes())
        };
        if let Err(status) = result {
            RESPONSE_HEADER_ERRORS.with(|l| l.report(&format!("set response header {name}"), status));
        }
    }
}

/// Sends `reply` for the current (effective) HTTP context. When the host refuses (the stream is gone or
/// already answered), nothing more can be done for it: logged, throttled.
pub fn send_reply(reply: &LocalReply) {
    let headers: Vec<(&[u8], &[u8])> = reply.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
    let (status, grpc) = match reply.grpc_status.filter(|c| *c <= 16) {
        Some(code) => (200, i32::try_from(code).unwrap_or(2)),
        None => (u32::from(reply.status), -1),
    };
    if let Err(e) = ffi::send_local_response(status, &headers, &reply.body, grpc) {
        REPLY_ERRORS.with(|l| l.report(&format!("send local reply {}", reply.status), e));
    }
}
