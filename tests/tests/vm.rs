//! What Envoy does with a Wasm VM, shown against the real Envoy 1.40 (two workers): a test-only module
//! (`tests/fixtures/trap`) traps its VM on demand, under each failure policy; and two instances of one
//! filter in one Envoy keep their shared state apart. Module packaging only (a bundle holds each filter
//! once).

use meshplug_tests::{raw_status, Lab};
use serde_json::json;

fn trap_lab(policy: &str) -> Lab {
    Lab::builder().filter("trap", json!({})).failure_policy("trap", policy).start().expect("Envoy starts")
}

const PLAIN: &[u8] = b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n";
const TRAP: &[u8] = b"GET / HTTP/1.1\r\nhost: t\r\nx-trap: now\r\nconnection: close\r\n\r\n";

/// Traps the VM of every worker (each connection lands on some worker; 40 tries reach both).
fn trap_every_worker(lab: &Lab) -> Vec<Option<u16>> {
    (0..40).map(|_| raw_status(lab, TRAP)).collect()
}

#[test]
fn fail_open_lets_requests_through_a_trapped_vm() {
    let lab = trap_lab("FAIL_OPEN");
    assert_eq!(raw_status(&lab, PLAIN), Some(200));
    // Measured on Envoy 1.40: the request during which the VM traps gets 503 itself (one per worker);
    // from then on the failed filter is skipped.
    let trapped = trap_every_worker(&lab);
    let failed = trapped.iter().filter(|s| **s == Some(503)).count();
    assert!(failed <= 2 && trapped.iter().all(|s| matches!(s, Some(200) | Some(503))), "{trapped:?}");
    for _ in 0..20 {
        assert_eq!(raw_status(&lab, PLAIN), Some(200), "FAIL_OPEN skips the failed filter");
    }
    assert!(lab.envoy.log().contains("trapping the VM"), "the fixture did trap");
}

#[test]
fn fail_closed_answers_503_once_the_vm_trapped() {
    let lab = trap_lab("FAIL_CLOSED");
    assert_eq!(raw_status(&lab, PLAIN), Some(200));
    let _ = trap_every_worker(&lab);
    let after: Vec<_> = (0..20).map(|_| raw_status(&lab, PLAIN)).collect();
    assert!(after.iter().all(|s| *s == Some(503)), "every worker's VM failed closed: {after:?}");
}

#[test]
fn fail_reload_reloads_the_vm_and_the_next_request_succeeds() {
    let lab = trap_lab("FAIL_RELOAD");
    assert_eq!(raw_status(&lab, PLAIN), Some(200));
    let _ = trap_every_worker(&lab);
    // Envoy reloads a failed VM at most once per backoff interval (`reload_config`, 1 s by default):
    // until then requests get 503; after it, the next request reloads the VM and succeeds.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let after: Vec<_> = (0..20).map(|_| raw_status(&lab, PLAIN)).collect();
    assert!(after.iter().all(|s| *s == Some(200)), "the VM was reloaded: {after:?}");
    let starts = lab.envoy.log().matches("[trap] VM started").count();
    assert!(starts > 3, "a reload starts a new VM, visible in the log ({starts} VM starts)");
    // And in Envoy's stats: `wasm.<plugin name>.vm_reload_success` (FAIL_RELOAD only).
    assert!(lab.envoy.stat("wasm.trap.vm_reload_success") >= 1, "{:?}", lab.envoy.stats());
}

#[test]
fn two_rate_limit_instances_keep_their_buckets_apart() {
    // The same rule name in both: before instance keys, the two plugins shared one bucket.
    let rule = |n: u32| json!({"rules": [{"name": "r", "limits": [{"requests": n, "per": "60s"}]}]});
    let lab = Lab::builder().filter("rate-limit", rule(5)).filter("rate-limit", rule(3)).start().expect("Envoy starts");
    let admitted = (0..10).filter(|_| raw_status(&lab, PLAIN) == Some(200)).count();
    assert_eq!(admitted, 3, "the stricter instance admits 3 (shared buckets would admit fewer)");
    let config = lab.config.to_string();
    assert!(config.contains("\"rate-limit.2\""), "the second instance has its own name: {config}");
}
