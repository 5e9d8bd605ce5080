//! Helpers shared by the end-to-end tests: each test starts its own Envoy (two workers) with the
//! filters under test in front of echo upstreams, and drops it (stopping Envoy) at the end, even when
//! the test fails.

pub use meshplug_harness::lab::client::{Client, Req, Resp};
pub use meshplug_harness::lab::local::{Lab, LabBuilder};
use std::time::Duration;

pub mod limitador;

/// Whether this test binary runs the filters inside the bundle (`meshplug.wasm`) instead of their own
/// modules. `tests/bundle.rs` includes the filters' end-to-end test files as modules, so the same cases
/// run both ways; the test binary's name (`bundle-<hash>`, chosen by cargo from the file name) says
/// which way this process runs them.
pub fn bundled() -> bool {
    static BUNDLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *BUNDLED.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().starts_with("bundle-")))
            .unwrap_or(false)
    })
}

/// A lab builder for this binary's packaging (see [`bundled`]).
pub fn builder() -> LabBuilder {
    Lab::builder().bundled(bundled())
}

/// Two echo upstreams, `stable` and `canary`, behind routes on the routing header canary writes
/// (`x-meshplug-variant: canary` → canary, else stable); the echo reply names the upstream that served.
pub fn with_variant_upstreams(builder: LabBuilder) -> LabBuilder {
    use meshplug_harness::deploy::composition::Upstream;
    builder
        .upstreams(vec![
            Upstream { name: "stable".into(), http2: false },
            Upstream { name: "canary".into(), http2: false },
        ])
        .route("/", &[("x-meshplug-variant", "canary")], "canary")
        .route("/", &[], "stable")
}

/// Starts a lab with one filter.
pub fn lab_with(filter: &str, plugin_config: serde_json::Value) -> Lab {
    match builder().filter(filter, plugin_config).start() {
        Ok(lab) => lab,
        Err(e) => panic!("could not start Envoy: {e:#}"),
    }
}

/// The log line a refused config of a lab's first filter produces (`[fault] invalid config at /rules/0`),
/// for this binary's packaging: inside the bundle the pointer starts at `/chain/0/config`.
pub fn refusal(line: &str) -> String {
    const AT: &str = " invalid config at ";
    match line.split_once(AT) {
        Some((prefix, rest)) if bundled() => format!("{prefix}{AT}/chain/0/config{rest}"),
        _ => line.to_string(),
    }
}

/// The start of the version line the module logs when its VM starts (`[fault] meshplug fault 0.1.0`).
pub fn version_line(filter: &str) -> String {
    if bundled() {
        format!("[meshplug] meshplug bundle {}", env!("CARGO_PKG_VERSION"))
    } else {
        format!("[{filter}] meshplug {filter} {}", env!("CARGO_PKG_VERSION"))
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
    match builder().filter(filter, plugin_config).start() {
        Ok(_) => panic!("Envoy started with an invalid {filter} config"),
        Err(e) => format!("{e:#}"),
    }
}

/// Starts Envoy with each config of `filter`, which must be refused with the given log line (see
/// [`refusal`]) and without a VM panic.
pub fn assert_refused<'a>(filter: &str, cases: impl IntoIterator<Item = (serde_json::Value, &'a str)>) {
    for (config, expected) in cases {
        let log = start_error(filter, config);
        let expected = refusal(expected);
        assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
        assert!(!log.contains("panic"), "{log}");
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

pub use meshplug_harness::load::hostile::{hostile_request, vm_failures, Rng};

/// [`meshplug_harness::load::hostile::raw_status`] on the lab's listener.
pub fn raw_status(lab: &Lab, request: &[u8]) -> Option<u16> {
    meshplug_harness::load::hostile::raw_status(lab.envoy.listener, request)
}
