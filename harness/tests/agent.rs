//! The emulated istio-agent's http(s) module downloads against real servers on 127.0.0.1, held to the
//! agent's rules as read in istio/istio 1.29.6 `pkg/wasm/httpfetcher.go` (`Fetch`: retries on
//! connection errors and 5xx but 501/505/511, `unboxIfPossible`: gzip and tar unpacked until the bytes
//! are Wasm) and `pkg/wasm/cache.go` (`getOrFetch`: the checksum of the unboxed module, TLS unverified
//! only for hosts in `WASM_INSECURE_REGISTRIES`). The HTTPS server is `openssl s_server -WWW` with a
//! certificate made here.

use meshplug_harness::istio::agent::{convert, http_fetch, unbox_if_possible, Cache, HttpRetry, Outcome};
use meshplug_harness::lab::stub::StubServer;
use serde_json::json;
use std::time::Duration;

fn fault_wasm() -> Vec<u8> {
    std::fs::read(meshplug_harness::deploy::filters::module_path("fault").unwrap()).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn quick() -> HttpRetry {
    HttpRetry { first_wait: Duration::from_millis(20), ..HttpRetry::default() }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meshplug-agent-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The ECDS resource istiod sends for a plugin fetched from `uri` with this `sha256`.
fn resource(uri: &str, sha256: &str) -> serde_json::Value {
    json!({ "name": "extensions.istio.io/wasmplugin/ns.p", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": { "name": "ns.p", "failure_policy": "FAIL_CLOSED",
                    "vm_config": { "code": { "remote": { "http_uri": { "uri": uri }, "sha256": sha256 } } } } } })
}

#[test]
fn packed_modules_are_unboxed_before_they_are_hashed() {
    let wasm = fault_wasm();
    let tgz = meshplug_harness::deploy::oci::plugin_tar_gz(&wasm).unwrap().1;
    assert_eq!(unbox_if_possible(tgz.clone()), wasm, "tar.gz");
    assert_eq!(unbox_if_possible(gzip(&wasm)), wasm, "gzip");
    assert_eq!(unbox_if_possible(gzip(&tgz)), wasm, "gzip of a tar.gz");
    assert_eq!(unbox_if_possible(b"not wasm".to_vec()), b"not wasm", "anything else unchanged");
    // Through the agent: the pinned checksum is the module's, not the archive's.
    let stub = StubServer::start(0, 200, &tgz).unwrap();
    let digest = meshplug_harness::deploy::oci::sha256(&wasm).trim_start_matches("sha256:").to_string();
    let mut cache = Cache::new(scratch("unbox")).unwrap();
    let (_, outcome) = convert(&resource(&format!("http://{}/plugin.tar.gz", stub.addr), &digest), &mut cache);
    assert!(matches!(outcome, Outcome::Local { fetched: true, .. }), "{outcome:?}");
    let archive_digest = meshplug_harness::deploy::oci::sha256(&tgz).trim_start_matches("sha256:").to_string();
    let mut cache = Cache::new(scratch("unbox-2")).unwrap();
    let (_, outcome) = convert(&resource(&format!("http://{}/plugin.tar.gz", stub.addr), &archive_digest), &mut cache);
    assert!(matches!(&outcome, Outcome::Replaced { error, .. } if error.contains("does not match")), "{outcome:?}");
}

#[test]
fn server_errors_are_retried_and_client_errors_are_not() {
    let wasm = fault_wasm();
    let stub = StubServer::start(0, 200, &wasm).unwrap();
    let url = format!("http://{}/plugin.wasm", stub.addr);
    stub.fail_next(2, 503);
    assert_eq!(http_fetch(&url, false, &quick()).unwrap(), wasm, "two 503s, then the module");
    assert_eq!(stub.hits(), 3);
    stub.fail_next(1, 404);
    let e = http_fetch(&url, false, &quick()).unwrap_err();
    assert!(e.contains("status code 404") && e.contains("after 1 attempts"), "{e}");
    stub.fail_next(1, 501);
    assert!(http_fetch(&url, false, &quick()).unwrap_err().contains("after 1 attempts"), "501 is not retried");
    stub.fail_next(10, 502);
    let e = http_fetch(&url, false, &quick()).unwrap_err();
    assert!(e.contains("after 5 attempts") && e.contains("status code 502"), "{e}");
    assert_eq!(stub.hits(), 3 + 1 + 1 + 5);
    // Nothing listening: connection errors are retried too, within the attempts.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = http_fetch(&format!("http://{closed}/x.wasm"), false, &quick()).unwrap_err();
    assert!(e.contains("after 5 attempts"), "{e}");
}

/// `openssl s_server -WWW` on 127.0.0.1 with a self-signed certificate, serving files from a directory;
/// killed when dropped.
struct HttpsServer {
    child: std::process::Child,
    port: u16,
}

impl HttpsServer {
    fn start(dir: &std::path::Path) -> Self {
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
            .args(["-keyout", "key.pem", "-out", "cert.pem"])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (Debian package openssl, installed by scripts/setup)");
        assert!(status.success(), "openssl req");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-cert", "cert.pem", "-key", "key.pem"])
            .args(["-WWW", "-quiet"])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Self { child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "openssl s_server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `https://` modules: fetched over TLS, the certificate verified unless the host is one of the
/// agent's insecure registries (this one is self-signed, so the verified fetch is refused).
#[test]
fn https_modules_are_fetched_with_the_agents_tls_rules() {
    let dir = scratch("https");
    let wasm = fault_wasm();
    std::fs::write(dir.join("plugin.wasm.gz"), gzip(&wasm)).unwrap();
    let server = HttpsServer::start(&dir);
    let host = format!("127.0.0.1:{}", server.port);
    let url = format!("https://{host}/plugin.wasm.gz");
    let digest = meshplug_harness::deploy::oci::sha256(&wasm).trim_start_matches("sha256:").to_string();
    let mut verified = Cache::new(dir.join("cache-verified")).unwrap();
    let (out, outcome) = convert(&resource(&url, &digest), &mut verified);
    assert!(matches!(&outcome, Outcome::Replaced { error, .. } if error.contains("certificate")), "{outcome:?}");
    assert_eq!(out["typed_config"]["@type"], "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC");
    let mut insecure = Cache::new(dir.join("cache-insecure")).unwrap();
    insecure.insecure.insert(host.clone());
    let (out, outcome) = convert(&resource(&url, &digest), &mut insecure);
    let Outcome::Local { path, fetched: true } = outcome else { panic!("{outcome:?}") };
    assert_eq!(std::fs::read(path).unwrap(), wasm);
    assert!(out["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"].is_string());
}
