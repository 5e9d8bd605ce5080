//! The step after cargo (`deploy::finish`): what a shipped module exports, that finishing is
//! deterministic (one build, one digest), and that a module is finished again when cargo's output
//! changes. Envoy's side of it — that a module without those exports still runs every filter — is
//! the whole end-to-end suite, which loads only shipped modules.

use meshplug_harness::deploy::filters::{cargo_module_dir, module_path, BUNDLE, FILTERS};
use meshplug_harness::deploy::finish::{exports, finish, UNUSED_CALLBACKS};
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshplug-finish-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The callbacks proxy-wasm-cpp-host looks up (`src/wasm.cc`, `getFunctions`) that meshplug modules
/// need: the request's life, the root context's configure/tick/callouts, and memory for the host.
const NEEDED: [&str; 12] = [
    "proxy_on_memory_allocate",
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_tick",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_delete",
    "proxy_on_http_call_response",
    "proxy_on_grpc_receive",
];

#[test]
fn a_shipped_module_exports_every_callback_it_uses_and_none_it_does_not() {
    for kind in FILTERS.iter().chain([&BUNDLE]) {
        let built = exports(&std::fs::read(cargo_module_dir().join(kind.module_file())).unwrap()).unwrap();
        let shipped = exports(&std::fs::read(module_path(kind.name).unwrap()).unwrap()).unwrap();
        let name = kind.name;
        // The SDK exports them all: if it stopped, this test would pass without the step doing anything.
        for callback in UNUSED_CALLBACKS {
            assert!(built.iter().any(|e| e == callback), "{name}: cargo's module no longer exports {callback}");
            assert!(!shipped.iter().any(|e| e == callback), "{name}: shipped module still exports {callback}");
        }
        for callback in NEEDED {
            assert!(shipped.iter().any(|e| e == callback), "{name}: shipped module lost {callback}");
        }
        let kept: Vec<&String> = built.iter().filter(|e| !UNUSED_CALLBACKS.contains(&e.as_str())).collect();
        assert_eq!(shipped.iter().collect::<Vec<_>>(), kept, "{name}: only the unused callbacks go");
    }
}

#[test]
fn finishing_is_deterministic_and_the_shipped_module_is_its_output() {
    let dir = scratch("deterministic");
    let input = cargo_module_dir().join("fault.wasm");
    finish(&input, &dir.join("a.wasm")).unwrap();
    finish(&input, &dir.join("b.wasm")).unwrap();
    let a = std::fs::read(dir.join("a.wasm")).unwrap();
    assert_eq!(a, std::fs::read(dir.join("b.wasm")).unwrap());
    assert_eq!(a, std::fs::read(module_path("fault").unwrap()).unwrap());
    assert!(a.len() < std::fs::metadata(&input).unwrap().len() as usize);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_module_is_finished_again_when_cargo_output_changes_and_only_then() {
    let dir = scratch("stale");
    let (input, output) = (dir.join("in.wasm"), dir.join("out.wasm"));
    std::fs::copy(cargo_module_dir().join("noop.wasm"), &input).unwrap();
    finish(&input, &output).unwrap();
    let first = std::fs::read(&output).unwrap();
    let made = std::fs::metadata(&output).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    finish(&input, &output).unwrap();
    assert_eq!(std::fs::metadata(&output).unwrap().modified().unwrap(), made, "same input: left as it is");
    std::fs::copy(cargo_module_dir().join("trap.wasm"), &input).unwrap();
    finish(&input, &output).unwrap();
    let second = std::fs::read(&output).unwrap();
    assert_ne!(first, second, "new cargo output: finished again");
    finish(&cargo_module_dir().join("trap.wasm"), &dir.join("trap.wasm")).unwrap();
    assert_eq!(second, std::fs::read(dir.join("trap.wasm")).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_module_that_is_not_wasm_is_refused_with_the_tool_and_its_reason() {
    let dir = scratch("garbage");
    std::fs::write(dir.join("in.wasm"), b"not a module").unwrap();
    let err = finish(&dir.join("in.wasm"), &dir.join("out.wasm")).unwrap_err().to_string();
    assert!(err.contains("not a Wasm module"), "{err}");
    assert!(!dir.join("out.wasm").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
