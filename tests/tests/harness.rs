//! The harness itself, against the real Envoy: the echo upstream over HTTP/1.1 and HTTP/2, HTTP/2
//! downstream, the stats reader, and no Envoy left running after a lab is dropped.

use meshplug_harness::deploy::composition::Upstream;
use meshplug_tests::{Lab, Req};
use serde_json::json;

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|state| state != "Z"))
        .unwrap_or(false)
}

#[test]
fn echo_upstreams_speak_http1_and_http2_and_envoy_stops_on_drop() {
    let lab = Lab::builder()
        .filter("fault", json!({}))
        .upstreams(vec![Upstream { name: "h1".into(), http2: false }, Upstream { name: "h2".into(), http2: true }])
        .route("/two", &[], "h2")
        .route("/", &[], "h1")
        .start()
        .unwrap();
    let client = lab.envoy.client().unwrap();
    let r = client.send(Req::get("/one?q=1").header("x-probe", "a")).unwrap().json();
    assert_eq!((r["upstream"].as_str(), r["protocol"].as_str()), (Some("h1"), Some("HTTP/1.1")));
    assert_eq!(r["path"], "/one?q=1");
    assert_eq!(r["headers"]["x-probe"], "a");
    let r = client.send_h2(Req::post("/two", b"abc")).unwrap().json();
    assert_eq!((r["upstream"].as_str(), r["protocol"].as_str()), (Some("h2"), Some("HTTP/2.0")));
    assert_eq!((r["method"].as_str(), r["bodyBytes"].as_u64()), (Some("POST"), Some(3)));
    assert!(lab.envoy.stat("cluster.h2.upstream_rq_total") >= 1);
    assert!(lab.envoy.stats().unwrap().contains_key("wasmcustom.meshplug.fault.errors"));

    let pid = lab.envoy.pid().unwrap();
    assert!(alive(pid));
    drop(lab);
    assert!(!alive(pid), "Envoy (pid {pid}) still runs after the lab was dropped");
}

#[test]
fn a_failed_start_reports_envoys_log() {
    let err = match Lab::builder().filter("fault", json!({"maxActiveFaults": "many"})).start() {
        Ok(_) => panic!("started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("Envoy exited"), "{err}");
    assert!(err.contains("[fault] invalid config at /maxActiveFaults"), "{err}");
}

/// The Envoy the tests run is the version asked for (`MESHPLUG_ENVOY_VERSION`, as CI's smoke matrix
/// sets it), else the default 1.40.0: the running server reports it on its admin `/server_info`.
#[test]
fn the_envoy_running_is_the_version_asked_for() {
    let wanted = std::env::var(meshplug_harness::lab::envoy::VERSION_VAR)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| meshplug_harness::lab::envoy::ENVOY_VERSION.to_string());
    let lab = Lab::builder().filter("fault", json!({})).start().unwrap();
    let admin = meshplug_tests::Client::new(&format!("http://{}", lab.envoy.admin)).unwrap();
    let info = admin.get("/server_info").unwrap().json();
    let version = info["version"].as_str().unwrap_or_default();
    assert!(version.contains(&format!("/{wanted}/")), "asked for {wanted}, running {version}");
}
