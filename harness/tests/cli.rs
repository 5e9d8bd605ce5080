//! The `meshplug` binary's checks, as a user runs them.

use std::process::Command;

fn meshplug(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshplug")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("meshplug-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_accepts_the_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/fault/composition.yaml");
    let (code, out, err) = meshplug(&["validate", example]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok"));
}

#[test]
fn validate_names_every_error_with_its_pointer_and_fails() {
    let path = write(
        "bad.yaml",
        "workloads:\n  - name: w\n    filters:\n      - name: fault\n        pluginConfig:\n          rules:\n            - abort: {httpStatus: 42}\n      - name: fault\n        pluginConfig: {maxActiveFaults: 0}\n      - name: nosuch\n",
    );
    let (code, _, err) = meshplug(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid config at /workloads/0/filters/0/pluginConfig/rules/0/abort/httpStatus: HTTP status 42"),
        "{err}"
    );
    assert!(
        err.contains("invalid config at /workloads/0/filters/1/pluginConfig/maxActiveFaults: must be at least 1"),
        "{err}"
    );
    assert!(err.contains("invalid config at /workloads/0/filters/2/name: unknown filter \"nosuch\""), "{err}");
    let (code, _, err) = meshplug(&["validate", "/nonexistent.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent.yaml"), "{err}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn which_envoy_says_where_it_looked() {
    let (code, _, err) = meshplug(&["which-envoy", "--envoy", "/no/such/envoy"]);
    assert_eq!(code, 1);
    assert!(err.contains("/no/such/envoy is not an executable file"), "{err}");
    let (code, out, err) = meshplug(&["which-envoy"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("found via"), "{out}");
}

#[test]
fn validate_a_manifest_dir_names_file_resource_and_pointer() {
    let rendered = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/rendered");
    let (code, out, err) = meshplug(&["validate", rendered]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok (8 resource(s))"), "{out}");
    let dir = std::env::temp_dir().join(format!("meshplug-cli-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(format!("{rendered}/payments/fault.yaml")).unwrap();
    std::fs::write(dir.join("fault.yaml"), good.replace("failStrategy: FAIL_OPEN", "failStrategy: FAIL_CLOSED"))
        .unwrap();
    let (code, _, err) = meshplug(&["validate", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("fault.yaml: WasmPlugin/shop/payments-fault: at /spec/failStrategy"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn render_writes_the_committed_output() {
    let dir = std::env::temp_dir().join(format!("meshplug-cli-render-{}", std::process::id()));
    let composition = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/composition.yaml");
    let (code, out, err) = meshplug(&["render", composition, "-o", dir.to_str().unwrap(), "--no-pin"]);
    assert_eq!(code, 0, "{out}{err}");
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/rendered/payments/jwt-authz.yaml");
    assert_eq!(
        std::fs::read_to_string(dir.join("payments/jwt-authz.yaml")).unwrap(),
        std::fs::read_to_string(committed).unwrap()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn render_pins_each_module_to_its_local_build_by_default() {
    let dir = std::env::temp_dir().join(format!("meshplug-cli-render-pin-{}", std::process::id()));
    let composition = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/composition.yaml");
    let (code, out, err) = meshplug(&["render", composition, "-o", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("pinned jwt-authz to sha256:"), "{err}");
    let text = std::fs::read_to_string(dir.join("payments/jwt-authz.yaml")).unwrap();
    let plugin: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let wasm = std::fs::read(meshplug_harness::filters::module_path("jwt-authz").unwrap()).unwrap();
    let packaged = meshplug_harness::oci::image(&wasm, meshplug_harness::oci::Format::Compat).unwrap();
    assert_eq!(plugin["spec"]["sha256"], packaged.sha256_hex(), "the digest `meshplug push` gives this build");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn render_bundle_writes_one_wasmplugin_per_workload() {
    let dir = std::env::temp_dir().join(format!("meshplug-cli-render-bundle-{}", std::process::id()));
    let composition = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/composition.yaml");
    let (code, out, err) = meshplug(&["render", composition, "-o", dir.to_str().unwrap(), "--bundle", "--no-pin"]);
    assert_eq!(code, 0, "{out}{err}");
    let mut files: Vec<String> = std::fs::read_dir(dir.join("payments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["kustomization.yaml", "meshplug-jwks-auth-example-com.yaml", "meshplug.yaml"]);
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/bundle/payments/meshplug.yaml");
    assert_eq!(
        std::fs::read_to_string(dir.join("payments/meshplug.yaml")).unwrap(),
        std::fs::read_to_string(committed).unwrap()
    );
    let _ = std::fs::remove_dir_all(dir);
}
