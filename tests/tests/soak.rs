//! `meshplug soak` works: a short run of the same code (all four filters chained, every request class,
//! hostile requests mixed in) against the real Envoy, in both packagings. The 10-minute figures are a
//! benchmark (BENCHMARKS.md), not a test; this checks the command's answers, not its speed.

use meshplug_harness::load::soak::{run, SoakOptions};
use std::time::Duration;

fn soak(bundle: bool) {
    let mut opts = SoakOptions::new(Duration::from_secs(8));
    opts.bundle = bundle;
    opts.connections = 4;
    let report = run(&opts).expect("the soak runs");
    println!("{}", report.table());
    assert_eq!(report.classes.len(), 8, "every request class was sent");
    assert!(report.hostile.sent() > 0, "hostile requests were mixed in");
    assert_eq!(report.unintended(), 0, "{}", report.table());
    assert_eq!(report.restarts(), 0, "{}", report.table());
    assert!(report.rss_end > 0 && report.rss_start > 0);
}

#[test]
fn a_short_soak_of_four_modules_meets_its_answers() {
    soak(false);
}

#[test]
fn a_short_soak_of_the_bundle_meets_its_answers() {
    soak(true);
}
