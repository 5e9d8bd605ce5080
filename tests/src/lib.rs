//! Helpers shared by the end-to-end tests: each test starts its own Envoy (two workers) with the
//! filters under test in front of echo upstreams, and drops it (stopping Envoy) at the end, even when
//! the test fails.

pub use meshplug_harness::client::{Client, Req, Resp};
pub use meshplug_harness::local::{Lab, LabBuilder};
use std::time::Duration;

/// Starts a lab with one filter.
pub fn lab_with(filter: &str, plugin_config: serde_json::Value) -> Lab {
    match Lab::builder().filter(filter, plugin_config).start() {
        Ok(lab) => lab,
        Err(e) => panic!("could not start Envoy: {e:#}"),
    }
}

/// The value of `meshplug.<filter>.<name>` in Envoy's admin stats.
pub fn metric(lab: &Lab, filter: &str, name: &str) -> u64 {
    lab.envoy.stat(&format!("wasmcustom.{}", meshplug_common_name(filter, name)))
}

fn meshplug_common_name(filter: &str, name: &str) -> String {
    format!("meshplug.{}.{}", filter.replace('-', "_"), name)
}

/// Polls `check` every 20 ms until it holds or `patience` runs out. The filters hand their counters
/// to Envoy once a second per worker, so a metric lags its response by up to a second.
pub fn eventually(patience: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The median of some durations.
pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

/// Starts Envoy with one filter whose config must be refused, and returns the error (with Envoy's log).
pub fn start_error(filter: &str, plugin_config: serde_json::Value) -> String {
    match Lab::builder().filter(filter, plugin_config).start() {
        Ok(_) => panic!("Envoy started with an invalid {filter} config"),
        Err(e) => format!("{e:#}"),
    }
}

/// Connections each of the two workers accepted (from the listener's per-worker stats).
pub fn per_worker_connections(lab: &Lab) -> Vec<u64> {
    let stats = lab.envoy.stats().unwrap_or_default();
    ["worker_0", "worker_1"]
        .iter()
        .map(|w| {
            let suffix = format!("{w}.downstream_cx_total");
            stats
                .iter()
                .filter(|(k, _)| k.starts_with("listener.127.0.0.1_") && k.ends_with(&suffix))
                .map(|(_, v)| *v)
                .sum()
        })
        .collect()
}
