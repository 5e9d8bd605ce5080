//! The step after cargo that makes a module what we ship: binaryen's `wasm-metadce` takes out the
//! proxy-wasm callbacks no meshplug module uses (and the code only they reach). Envoy enters a callback only when the module exports it (proxy-wasm-cpp-host
//! `src/wasm.cc` looks each one up once, at load; `src/context.cc` skips a missing one), and the SDK
//! exports them all, so every request paid for entering callbacks that do nothing.
//!
//! No `wasm-opt` pass after it: `wasm-opt -Oz` (or `-O2`) takes another 8–10% off the bytes but made
//! Envoy's resident memory 11 MiB (fault.wasm) and 16 MiB (the bundle) larger at two workers, at the
//! same speed; the same bytes only rewritten by binaryen, or with `--memory-packing` alone, did not
//! (BENCHMARKS.md, "Finished as shipped"). Memory per pod is what the bytes were to save.
//!
//! Deterministic: the same cargo output and the same binaryen give the same bytes, so one build has
//! one digest (`render`'s sha256 pinning and `push` read the same file). A finished module records what
//! it was made from (the input's sha256, the recipe, binaryen's version) next to it, and is made again
//! only when one of those changes. Debian's `binaryen` is installed by `scripts/setup`.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The proxy-wasm callbacks no meshplug module needs on an HTTP request: request bodies and trailers
/// are held while a request is parked (`on_http_request_body`/`_trailers`), response headers carry
/// the filters' headers, and a request's end is seen when its context is deleted
/// (`proxy_on_delete`); nothing reads response bodies or trailers, the access log, TCP streams,
/// foreign functions or queues.
pub const UNUSED_CALLBACKS: [&str; 11] = [
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_log",
    "proxy_on_done",
    "proxy_on_downstream_data",
    "proxy_on_upstream_data",
    "proxy_on_downstream_connection_close",
    "proxy_on_upstream_connection_close",
    "proxy_on_new_connection",
    "proxy_on_foreign_function",
    "proxy_on_queue_ready",
];

/// The Wasm features rustc's wasm32-wasip1 output uses that binaryen 108 does not assume.
const FEATURES: [&str; 4] =
    ["--enable-bulk-memory", "--enable-sign-ext", "--enable-mutable-globals", "--enable-nontrapping-float-to-int"];

/// What a finished module is made with; a change here makes every module again.
const RECIPE: &str = "wasm-metadce(UNUSED_CALLBACKS)";

/// Makes `output` from cargo's `input` unless it is already made from the same bytes the same way.
pub fn finish(input: &Path, output: &Path) -> anyhow::Result<()> {
    // One at a time: tests ask for modules from many threads.
    static LOCK: Mutex<()> = Mutex::new(());
    let _one = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let wasm = std::fs::read(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let stamp = format!("{}\n{RECIPE}\n{}\n", crate::deploy::oci::sha256(&wasm), binaryen_version()?);
    let stamp_file = output.with_extension("wasm.from");
    if output.is_file() && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    let dir = output.parent().ok_or_else(|| anyhow::anyhow!("{}: no directory", output.display()))?;
    std::fs::create_dir_all(dir)?;
    let pruned = output.with_extension(format!("metadce.{}", std::process::id()));
    let graph = output.with_extension(format!("graph.{}.json", std::process::id()));
    let made = (|| {
        std::fs::write(&graph, serde_json::to_vec(&reachability_graph(&exports(&wasm)?))?)?;
        run(Command::new("wasm-metadce").arg(input).arg("--graph-file").arg(&graph).arg("-o").arg(&pruned))?;
        // Rename last: a reader sees the old module or the new one, never half of one.
        std::fs::rename(&pruned, output)?;
        std::fs::write(&stamp_file, &stamp)?;
        Ok(())
    })();
    for temp in [&pruned, &graph] {
        let _ = std::fs::remove_file(temp);
    }
    made
}

/// binaryen's version (part of what a finished module is made from).
fn binaryen_version() -> anyhow::Result<String> {
    static VERSION: OnceLock<Result<String, String>> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let out =
                Command::new("wasm-metadce").arg("--version").output().map_err(|e| missing("wasm-metadce", &e))?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn missing(tool: &str, e: &std::io::Error) -> String {
    format!("cannot run {tool} ({e}): `scripts/setup` installs Debian's binaryen")
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.args(FEATURES).stdout(Stdio::null()).output().map_err(|e| anyhow::anyhow!(missing(&tool, &e)))?;
    anyhow::ensure!(out.status.success(), "{tool} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// wasm-metadce's graph: every export a root except the unused callbacks.
fn reachability_graph(exports: &[String]) -> Vec<Value> {
    exports
        .iter()
        .map(|e| {
            let mut node = json!({ "name": format!("export:{e}"), "export": e });
            if !UNUSED_CALLBACKS.contains(&e.as_str()) {
                node["root"] = json!(true);
            }
            node
        })
        .collect()
}

/// The names a module exports (its export section).
pub fn exports(wasm: &[u8]) -> anyhow::Result<Vec<String>> {
    // Wasm's unsigned LEB128 is protobuf's varint.
    fn leb(b: &[u8], at: &mut usize) -> anyhow::Result<u64> {
        let mut rest = b.get(*at..).unwrap_or_default();
        let before = rest.len();
        let v = meshplug_common::proto::varint(&mut rest).map_err(|_| anyhow::anyhow!("truncated module"))?;
        *at += before - rest.len();
        Ok(v)
    }
    anyhow::ensure!(wasm.get(..4) == Some(b"\0asm"), "not a Wasm module");
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        at += 1;
        let size = leb(wasm, &mut at)? as usize;
        let end = at + size;
        if id == 7 {
            let mut names = Vec::new();
            for _ in 0..leb(wasm, &mut at)? {
                let len = leb(wasm, &mut at)? as usize;
                let name = wasm.get(at..at + len).ok_or_else(|| anyhow::anyhow!("truncated export"))?;
                names.push(String::from_utf8_lossy(name).into_owned());
                at += len + 1; // name, kind
                leb(wasm, &mut at)?; // index
            }
            return Ok(names);
        }
        at = end;
    }
    Ok(vec![])
}

/// The cargo output `file` (e.g. `fault.wasm`) finished into `shipped_dir`; its path there.
pub fn finished(cargo_dir: &Path, shipped_dir: &Path, file: &str) -> anyhow::Result<PathBuf> {
    let output = shipped_dir.join(file);
    finish(&cargo_dir.join(file), &output)?;
    Ok(output)
}
