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
    let wasm = std::fs::read(meshplug_harness::deploy::filters::module_path("jwt-authz").unwrap()).unwrap();
    let packaged = meshplug_harness::deploy::oci::image(&wasm, meshplug_harness::deploy::oci::Format::Compat).unwrap();
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

/// Kills the child (and, through PR_SET_PDEATHSIG, its Envoy) when dropped, even on failure.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `meshplug up --istio <dir>` as a user runs it: serves the committed payments manifests (images
/// from a local registry with this build), and applies an edit of the directory without a restart.
#[test]
fn up_istio_serves_rendered_manifests_and_applies_edits() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("meshplug-cli-up-istio-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/rendered/payments");
    for e in std::fs::read_dir(committed).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_meshplug"))
            .args(["up", "--istio", dir.to_str().unwrap(), "--no-build", "--port", "0", "--admin-port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let url = loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(90)).unwrap_or_else(|_| panic!("no URL: {seen:?}"));
        if let Some(rest) = line.trim().strip_prefix("curl -si ") {
            break rest.trim_end_matches("/health").to_string();
        }
        seen.push(line);
    };
    assert!(
        seen.iter()
            .any(|l| l.contains("HTTP filters, in order: extensions.istio.io/wasmplugin/shop.payments-jwt-authz")),
        "{seen:?}"
    );
    let client = meshplug_harness::lab::client::Client::new(&url).unwrap();
    assert_eq!(client.get("/health").unwrap().status, 200);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = jwt_authz::testkit::mint("RS256", "rsa", Some("rsa-1"), jwt_authz::testkit::claims(now, "alice"));
    let auth = format!("Bearer {token}");
    let header_seen = |name: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            let r = client.send(meshplug_harness::lab::client::Req::get("/api/x").header("authorization", &auth));
            if r.is_ok_and(|r| r.json()["headers"][name] == "alice") {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    };
    assert!(header_seen("x-user"), "the verified subject reaches the app");
    let file = dir.join("jwt-authz.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("header: x-user", "header: x-verified-user")).unwrap();
    assert!(header_seen("x-verified-user"), "the edit was applied while Envoy ran");
    let _ = std::fs::remove_dir_all(&dir);
}
