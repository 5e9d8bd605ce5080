//! The proxy-wasm side of the host traits, shared by every filter module (and the bundle).
//! Everything here is thin: it moves data between Envoy's hostcalls and the pure logic.

use crate::host::{Clock, Metrics, SharedData, SharedDataError};
use crate::reply::LocalReply;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{GrpcStatusCode, LogLevel, MapType, MetricType, Status};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

pub mod chain;

/// Forwards `log` records to Envoy with a `[<filter>]` prefix taken from the record's target.
struct ProxyLogger;

static LOGGER: ProxyLogger = ProxyLogger;

impl log::Log for ProxyLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let level = match record.level() {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        };
        let line = format!("{} {}", crate::log_prefix(record.target()), record.args());
        let _ = hostcalls::log(level, &line);
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
        let _ = hostcalls::log(LogLevel::Critical, &format!("[{filter}] panic: {info}"));
    }));
}

/// The plugin configuration (Istio's `pluginConfig` as JSON); empty when there is none.
pub fn plugin_configuration() -> Vec<u8> {
    hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The plugin's name (Istio's `pluginName`, Envoy's `config.name`): it keeps two instances of a filter
/// in one proxy apart in shared data. `filter` when the host has none.
pub fn plugin_name(filter: &str) -> String {
    hostcalls::get_property(vec!["plugin_name"])
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| filter.to_string())
}

/// Logs a refused config (one line naming the field) and returns `false` for `on_configure`, so Envoy
/// applies the plugin's failure policy.
pub fn refuse_config(filter: &str, e: &crate::config::ConfigError) -> bool {
    log::error!(target: filter, "{e}; the plugin is not loaded (Envoy applies its failure policy)");
    false
}

/// Logs the version line; call from the root context's `on_vm_start`.
pub fn log_version(filter: &str) {
    let _ = hostcalls::log(LogLevel::Info, &format!("[{filter}] {}", crate::version_line(filter)));
}

/// Envoy's clock.
pub struct ProxyClock;

impl Clock for ProxyClock {
    fn now(&self) -> Duration {
        hostcalls::get_current_time().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default()
    }
}

/// Envoy's shared data (process-wide, keyed within the plugin's `vm_id`).
pub struct ProxySharedData;

impl SharedData for ProxySharedData {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedDataError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SharedDataError::CasMismatch),
            Err(other) => Err(SharedDataError::Host(format!("{other:?}"))),
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
                match hostcalls::define_metric(MetricType::Counter, &full) {
                    Ok(id) => Some(id),
                    Err(e) => {
                        log::error!(target: "meshplug", "cannot define metric {full}: {e:?}");
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
                let _ = hostcalls::increment_metric(*id, i64::try_from(n).unwrap_or(i64::MAX));
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

/// Puts headers on the response of the current HTTP context (call from `on_http_response_headers`):
/// each replaces an upstream header of the same name, except `set-cookie`, which is added.
pub fn add_response_headers(headers: &[(String, String)]) {
    for (name, value) in headers {
        let _ = if name == "set-cookie" {
            hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value)
        } else {
            hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value))
        };
    }
}

/// Sends `reply` for the current (effective) HTTP context.
pub fn send_reply(reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let result = match reply.grpc_status.and_then(grpc_code) {
        Some(code) => {
            let message = std::str::from_utf8(&reply.body).unwrap_or("");
            let metadata = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
            hostcalls::send_grpc_response(code, Some(message), metadata)
        }
        None => hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body)),
    };
    if let Err(e) = result {
        log::error!(target: "meshplug", "cannot send local reply {}: {e:?}", reply.status);
    }
}

fn grpc_code(status: u32) -> Option<GrpcStatusCode> {
    use GrpcStatusCode::*;
    Some(match status {
        0 => Ok,
        1 => Cancelled,
        2 => Unknown,
        3 => InvalidArgument,
        4 => DeadlineExceeded,
        5 => NotFound,
        6 => AlreadyExists,
        7 => PermissionDenied,
        8 => ResourceExhausted,
        9 => FailedPrecondition,
        10 => Aborted,
        11 => OutOfRange,
        12 => Unimplemented,
        13 => Internal,
        14 => Unavailable,
        15 => DataLoss,
        16 => Unauthenticated,
        _ => return None,
    })
}
