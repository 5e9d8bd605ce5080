//! Where a module's own time goes: `meshplug bench profile` runs the benchmark's request through each
//! Wasm case of `all` in the proxy-wasm host of [`crate::load::calls`] (`scripts/proxy-wasm-host.mjs`,
//! under Node's V8, the engine Envoy embeds) with V8's sampling profiler on, and prints per case the
//! module's own time per request and the functions that take most of it.
//!
//! The modules are built for this with their function names kept (cargo's release profile with
//! `strip = false`, into `<target>/profile`; not finished, so every callback is exported and entered).
//! Nothing here is compared with Envoy: the profiler and the JavaScript host slow the module down, so
//! the figures are where the module's time goes, not what Envoy would add. Speed is measured in Envoy
//! (`meshplug bench`).

use crate::deploy::filters::{run_build_commands, target_dir};
use crate::load::bench::BenchCase;
use crate::load::calls::{load_request, run_host};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// V8's sampling interval for the run, µs.
const INTERVAL_US: u32 = 50;

/// Requests sent before the profiled ones (the benchmark's warm-up fills caches and buckets).
const WARM_UP: usize = 2;

/// A `.cpuprofile` as V8 writes it (the fields read here).
#[derive(Deserialize)]
struct CpuProfile {
    nodes: Vec<ProfileNode>,
    samples: Vec<u64>,
    #[serde(rename = "timeDeltas")]
    time_deltas: Vec<i64>,
}

#[derive(Deserialize)]
struct ProfileNode {
    id: u64,
    #[serde(rename = "callFrame")]
    call_frame: CallFrame,
    #[serde(default)]
    children: Vec<u64>,
}

#[derive(Deserialize)]
struct CallFrame {
    #[serde(rename = "functionName")]
    function_name: String,
    url: String,
}

/// Self time of the module's functions in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleTime {
    /// Sampled self time in the module (functions from `wasm://` URLs), µs.
    pub total_us: f64,
    /// Self time per function (demangled, without the hash), µs, most first.
    pub by_function: Vec<(String, f64)>,
    /// The module's time spent in each function or in what it called, µs, most first.
    pub inclusive: Vec<(String, f64)>,
}

/// The module's self time in a V8 CPU profile: each sample's interval charged to the function it
/// was taken in, kept when that function is Wasm.
pub fn module_time(profile_json: &[u8]) -> anyhow::Result<ModuleTime> {
    let profile: CpuProfile = serde_json::from_slice(profile_json)?;
    let wasm: HashMap<u64, String> = profile
        .nodes
        .iter()
        .filter(|n| n.call_frame.url.starts_with("wasm://"))
        .map(|n| (n.id, demangle(&n.call_frame.function_name)))
        .collect();
    let parent: HashMap<u64, u64> =
        profile.nodes.iter().flat_map(|n| n.children.iter().map(move |c| (*c, n.id))).collect();
    let mut by_function: HashMap<&str, f64> = HashMap::new();
    let mut inclusive: HashMap<&str, f64> = HashMap::new();
    let mut total = 0.0;
    // V8's timeDeltas[i] is the time from sample i-1 to sample i: the interval sample i stands for.
    for (sample, delta) in profile.samples.iter().zip(&profile.time_deltas) {
        let Some(name) = wasm.get(sample) else { continue };
        let us = (*delta).max(0) as f64;
        *by_function.entry(name.as_str()).or_default() += us;
        total += us;
        // Each Wasm function on the sample's stack once (recursion counts once); bounded by the
        // number of nodes, in case the tree is not one.
        let mut on_stack: Vec<&str> = Vec::new();
        let mut at = Some(*sample);
        for _ in 0..profile.nodes.len() {
            let Some(id) = at else { break };
            if let Some(f) = wasm.get(&id) {
                if !on_stack.contains(&f.as_str()) {
                    on_stack.push(f);
                }
            }
            at = parent.get(&id).copied();
        }
        for f in on_stack {
            *inclusive.entry(f).or_default() += us;
        }
    }
    Ok(ModuleTime { total_us: total, by_function: sorted(by_function), inclusive: sorted(inclusive) })
}

fn sorted(times: HashMap<&str, f64>) -> Vec<(String, f64)> {
    let mut times: Vec<(String, f64)> = times.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    times.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    times
}

/// A Rust symbol as a path without its hash (`meshplug_common::wire::HeaderMap::decode`); any other
/// name as it is.
fn demangle(name: &str) -> String {
    let name = name.strip_prefix('$').unwrap_or(name);
    format!("{:#}", rustc_demangle::demangle(name))
}

/// Builds every module with function names kept, into `<target>/profile`; returns cargo's output
/// directory of them.
pub fn build_named_modules() -> anyhow::Result<PathBuf> {
    let dir = target_dir().join("profile");
    run_build_commands(&[("CARGO_PROFILE_RELEASE_STRIP", "false".as_ref()), ("CARGO_TARGET_DIR", dir.as_os_str())])?;
    Ok(dir.join("wasm32-wasip1").join("release"))
}

/// Profiles `requests` requests of `case` (after [`WARM_UP`]) with the modules from `named`.
pub fn profile_case(case: &BenchCase, named: &Path, requests: usize) -> anyhow::Result<ModuleTime> {
    let mut filters = case.setup.filters.clone();
    for f in &mut filters {
        let file = f.module.file_name().ok_or_else(|| anyhow::anyhow!("{}: not a module", f.module.display()))?;
        f.module = named.join(file);
        anyhow::ensure!(f.module.is_file(), "{} is missing", f.module.display());
    }
    let load: Vec<_> = (0..WARM_UP + requests).map(|n| load_request(&case.load, n)).collect();
    let dir = target_dir().join("profile").join(format!("cpuprofile.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let interval = INTERVAL_US.to_string();
    let args = [
        "--cpu-prof".as_ref(),
        "--cpu-prof-dir".as_ref(),
        dir.as_os_str(),
        "--cpu-prof-interval".as_ref(),
        interval.as_ref(),
    ];
    let result = run_host(&filters, &load, &args).and_then(|_| {
        let file = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "cpuprofile"))
            .ok_or_else(|| anyhow::anyhow!("node wrote no CPU profile into {}", dir.display()))?;
        module_time(&std::fs::read(file)?)
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `meshplug bench profile`: every Wasm case of `cases`, `requests` requests each; per case the
/// module's sampled time per request and its `top` functions by self time, as Markdown.
pub fn report(cases: &[BenchCase], requests: usize, top: usize) -> anyhow::Result<String> {
    let named = build_named_modules()?;
    let mut out = format!(
        "meshplug bench profile: {requests} requests per case (after {WARM_UP} to warm up) in \
         scripts/proxy-wasm-host.mjs under Node's V8, sampled every {INTERVAL_US} µs; modules built with \
         names, not finished. Times are the module's own code under the profiler: shares, not Envoy's µs.\n"
    );
    for case in cases.iter().filter(|c| !c.setup.filters.is_empty()) {
        let t = profile_case(case, &named, requests)?;
        out.push_str(&format!(
            "\n### {}\n\nmodule code: {:.2} µs per request (sampled)\n",
            case.name,
            t.total_us / requests.max(1) as f64
        ));
        let share = |us: f64| if t.total_us > 0.0 { 100.0 * us / t.total_us } else { 0.0 };
        for (title, rows) in [("self time", &t.by_function), ("with what it calls", &t.inclusive)] {
            out.push_str(&format!("\n| Function | share of the module's time, {title} |\n| --- | ---: |\n"));
            for (name, us) in rows.iter().take(top) {
                out.push_str(&format!("| `{}` | {:.1}% |\n", name.replace('|', "\\|"), share(*us)));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_self_time_is_summed_per_demangled_function() {
        // Two Wasm functions (one the same symbol under two call paths, one called by the other) and a
        // JavaScript one.
        let profile = serde_json::json!({
            "nodes": [
                {"id": 1, "callFrame": {"functionName": "(root)", "url": ""}, "children": [2, 4]},
                {"id": 2, "callFrame": {"functionName": "$_ZN15meshplug_common4wire9HeaderMap6decode17h20884b27b0914289E", "url": "wasm://wasm/meshplug-1"}, "children": [3]},
                {"id": 3, "callFrame": {"functionName": "dlmalloc", "url": "wasm://wasm/meshplug-1"}},
                {"id": 4, "callFrame": {"functionName": "serializePairs", "url": "file:///host.mjs"}, "children": [5]},
                {"id": 5, "callFrame": {"functionName": "_ZN15meshplug_common4wire9HeaderMap6decode17h20884b27b0914289E", "url": "wasm://wasm/meshplug-1"}}
            ],
            "samples": [2, 3, 4, 5, 2, 1],
            "timeDeltas": [50, 40, 500, 60, 50, 70]
        });
        let t = module_time(profile.to_string().as_bytes()).unwrap();
        assert_eq!(t.total_us, 200.0);
        assert_eq!(
            t.by_function,
            vec![("meshplug_common::wire::HeaderMap::decode".to_string(), 160.0), ("dlmalloc".to_string(), 40.0)]
        );
        // dlmalloc's sample was taken under decode: decode's time includes it.
        assert_eq!(
            t.inclusive,
            vec![("meshplug_common::wire::HeaderMap::decode".to_string(), 200.0), ("dlmalloc".to_string(), 40.0)]
        );
    }

    #[test]
    fn a_profile_that_is_not_one_is_an_error() {
        assert!(module_time(b"{}").is_err());
        assert!(module_time(b"not json").is_err());
    }
}
