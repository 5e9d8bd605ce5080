//! Host calls counted: the benchmark's Wasm cases run on the request the benchmark sends, in a
//! proxy-wasm host that counts (`scripts/proxy-wasm-host.mjs`, under Node: the shipped modules, the
//! ABI as proxy-wasm-cpp-host and Envoy implement it), giving per request every call a module makes
//! across the Wasm boundary and every callback the host enters. `meshplug bench calls` prints them per
//! case and kind; the host-call tests assert on them. What a call costs is measured in Envoy
//! (`meshplug bench hostcalls`); nothing here is timed.

use crate::deploy::filters::workspace_root;
use crate::lab::bootstrap::WasmFilter;
use crate::load::bench::{BenchCase, Load};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Numbers the input files of concurrent runs (tests run several at once).
static INPUTS: AtomicUsize = AtomicUsize::new(0);

/// What one request cost in crossings, summed over the chain's modules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestCalls {
    /// Host functions the modules called (`proxy_*` and WASI imports), by name.
    pub calls: BTreeMap<String, u64>,
    /// Callbacks the host entered (`proxy_on_*`), by name: only those the modules export.
    pub callbacks: BTreeMap<String, u64>,
    /// The status of a local response a module sent, if one did.
    pub local_response: Option<u16>,
    /// The request headers as they would go upstream (none after a local response).
    pub upstream_headers: Option<Vec<(String, String)>>,
    /// The response headers after every module ran.
    pub response_headers: Vec<(String, String)>,
}

impl RequestCalls {
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }
    pub fn total_callbacks(&self) -> u64 {
        self.callbacks.values().sum()
    }
    /// Calls of one host function.
    pub fn of(&self, name: &str) -> u64 {
        self.calls.get(name).copied().unwrap_or(0)
    }
}

/// The headers Envoy hands the first filter for the benchmark's `GET /bench` from wrk: the pseudo
/// headers, wrk's (none but `host`), and what the connection manager adds before the filters
/// (`x-forwarded-for`, `x-forwarded-proto`, `x-request-id`), then `extra`.
pub fn bench_request(extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = [
        (":authority", "127.0.0.1:10000"),
        (":path", "/bench"),
        (":method", "GET"),
        (":scheme", "http"),
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "5f1a7c2e-0b7d-4c55-9a4e-3c1f0e6b2d11"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    headers.extend(extra.iter().cloned());
    headers
}

/// The `n`th request of a case's load (its header, or its `n`th token).
pub fn load_request(load: &Load, n: usize) -> Vec<(String, String)> {
    match load {
        Load::Plain => bench_request(&[]),
        Load::Header(k, v) => bench_request(&[(k.clone(), v.clone())]),
        Load::Tokens(tokens) => {
            let token = tokens.get(n % tokens.len().max(1)).cloned().unwrap_or_default();
            bench_request(&[("authorization".into(), format!("Bearer {token}"))])
        }
    }
}

/// Runs `filters` (in chain order, each its own VM as in Envoy) on `requests`, one after the other
/// on the same VMs, and returns what each request cost.
pub fn count(filters: &[WasmFilter], requests: &[Vec<(String, String)>]) -> anyhow::Result<Vec<RequestCalls>> {
    let out = run_host(filters, requests, &[])?;
    let results: Vec<Value> = serde_json::from_slice(&out)?;
    Ok(results.iter().map(parse).collect())
}

/// Runs `scripts/proxy-wasm-host.mjs` under Node (with `node_args` before the script) on `filters`
/// and `requests`, and returns what it printed.
pub(crate) fn run_host(
    filters: &[WasmFilter],
    requests: &[Vec<(String, String)>],
    node_args: &[&std::ffi::OsStr],
) -> anyhow::Result<Vec<u8>> {
    let spec = json!({
        "filters": filters.iter().map(|f| json!({
            "module": f.module,
            "root_id": f.name,
            "config": f.plugin_config.to_string(),
        })).collect::<Vec<_>>(),
        "requests": requests.iter().map(|h| json!({ "headers": h, "body": null })).collect::<Vec<_>>(),
        // The benchmark's direct_response: 200 with a 3-byte body.
        "response": { "headers": [[":status", "200"], ["content-length", "3"], ["content-type", "text/plain"]], "body": "ok\n" },
    });
    // The host reads its input with one synchronous read of stdin, which a pipe would cut short at
    // its buffer's size (EAGAIN): the input goes through a file.
    let input = crate::deploy::filters::target_dir().join(format!(
        "proxy-wasm-host-input.{}.{}.json",
        std::process::id(),
        INPUTS.fetch_add(1, Ordering::Relaxed)
    ));
    if let Some(dir) = input.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&input, spec.to_string())?;
    let script = workspace_root().join("scripts/proxy-wasm-host.mjs");
    let out = std::fs::File::open(&input).map_err(anyhow::Error::from).and_then(|stdin| {
        Command::new("node")
            .arg("--no-warnings")
            .args(node_args)
            .arg(&script)
            .stdin(Stdio::from(stdin))
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run node {} ({e}); `scripts/setup` installs Node", script.display()))
    });
    let _ = std::fs::remove_file(&input);
    let out = out?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed ({}): {}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

fn parse(v: &Value) -> RequestCalls {
    let counts = |v: &Value| -> BTreeMap<String, u64> {
        v.as_object().into_iter().flatten().map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0))).collect()
    };
    let pairs = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())))
            .collect()
    };
    RequestCalls {
        calls: counts(&v["calls"]),
        callbacks: counts(&v["callbacks"]),
        local_response: v["local_response"].as_u64().and_then(|s| u16::try_from(s).ok()),
        upstream_headers: v["upstream_headers"].is_array().then(|| pairs(&v["upstream_headers"])),
        response_headers: pairs(&v["response_headers"]),
    }
}

/// The steady state of a case: its first three requests are sent (filling caches and buckets as
/// the benchmark's warm-up does) and the third one's cost is returned.
pub fn steady_state(case: &BenchCase) -> anyhow::Result<RequestCalls> {
    let requests: Vec<_> = (0..3).map(|n| load_request(&case.load, n)).collect();
    count(&case.setup.filters, &requests)?.pop().ok_or_else(|| anyhow::anyhow!("no request counted"))
}

/// `meshplug bench calls`: for every Wasm case of the `all` suite, the host calls and callbacks of
/// the benchmark's request in steady state, as a Markdown table, then the calls by kind.
pub fn report(cases: &[BenchCase]) -> anyhow::Result<String> {
    let mut rows = Vec::new();
    for case in cases.iter().filter(|c| !c.setup.filters.is_empty()) {
        rows.push((case.name.clone(), steady_state(case)?));
    }
    let kinds: std::collections::BTreeSet<String> = rows.iter().flat_map(|(_, r)| r.calls.keys().cloned()).collect();
    let mut out =
        String::from("| Case | callbacks entered | host calls | calls by kind |\n| --- | ---: | ---: | --- |\n");
    for (name, r) in &rows {
        let by_kind: Vec<String> =
            r.calls.iter().map(|(k, n)| format!("{} {n}", k.trim_start_matches("proxy_"))).collect();
        out.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            r.total_callbacks(),
            r.total_calls(),
            if by_kind.is_empty() { "—".into() } else { by_kind.join(", ") }
        ));
    }
    out.push_str(&format!("\nKinds seen: {}\n", kinds.into_iter().collect::<Vec<_>>().join(", ")));
    Ok(out)
}
