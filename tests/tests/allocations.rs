//! Heap allocations per request in the filters' logic, counted (not timed): what a filter already
//! knew when it was configured (header names, variant names, constant values) must not be copied
//! again for every request (issue 18). Each case runs the benchmark's request (`meshplug bench`'s
//! configs) a few times to warm caches and buckets, then counts the allocations of one more request on
//! this thread, through the same in-memory hosts as the logic tests.
//!
//! The bounds are the counts measured when the copies were taken out (BENCHMARKS.md, "Configured text no
//! longer copied per request"): a change that copies configured text per request again fails here.

#![allow(unsafe_code)]

use meshplug_common::host::SeededRandom;
use meshplug_common::testing::{MemorySharedData, RecordingMetrics, TestRequest};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

/// The system allocator, counting the allocations made on each thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed to the system allocator unchanged; the counter is a const-initialised
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The allocations (and reallocations) `f` makes on this thread, its result dropped first.
fn allocations<T>(f: impl FnOnce() -> T) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    let after = ALLOCATIONS.with(Cell::get);
    drop(result);
    after - before
}

const NOW: Duration = Duration::from_secs(1_800_000_000);

#[test]
fn rate_limit_admitted_request() {
    use rate_limit::logic::{Env, RateLimit};
    let config = json!({ "rules": [{ "name": "bench", "limits": [{ "requests": 1_000_000_000u64, "per": "1s" }] }] });
    let (shared, metrics) = (MemorySharedData::default(), RecordingMetrics::default());
    let rl = RateLimit::from_json(config.to_string().as_bytes(), "allocs").unwrap();
    rl.prepare(&shared, &mut SeededRandom::new(1));
    let req = TestRequest::new("GET", "/bench").with_property(&["source", "address"], b"10.1.1.1:5000");
    let env = Env { shared: &shared, metrics: &metrics, now: NOW };
    for _ in 0..3 {
        rl.on_request(&req, &env);
    }
    let n = allocations(|| rl.on_request(&req, &env));
    println!("rate-limit, admitted request: {n} allocations");
    // 18 before issue 18's copies were taken out; the 11 left: the slot's bytes read and written (the
    // in-memory host's copies, as the proxy-wasm SDK's in a module), the bucket decoded and encoded,
    // the client's key, and the three `ratelimit-*` values.
    assert!(n <= 11, "rate-limit allocates {n} times per admitted request (11 expected)");
}

#[test]
fn canary_sticky_by_cookie() {
    use canary::logic::Canary;
    let config = json!({
        "rules": [{ "match": [{ "headers": { "x-version": { "exact": "v2" } } }], "variant": "canary" }],
        "split": { "stickyBy": { "cookie": "uid" },
                   "variants": [{ "name": "stable", "weight": 90 }, { "name": "canary", "weight": 10 }] }
    });
    let canary = Canary::from_json(config.to_string().as_bytes()).unwrap();
    let (metrics, mut random) = (RecordingMetrics::default(), SeededRandom::new(1));
    let req = TestRequest::new("GET", "/bench").with("cookie", "uid=user-42");
    for _ in 0..3 {
        canary.on_request(&req, &mut random, &metrics);
    }
    let n = allocations(|| canary.on_request(&req, &mut random, &metrics));
    println!("canary, sticky by cookie: {n} allocations");
    // 7 before: the variant's and the routing header's names were copied for every request.
    assert!(n <= 4, "canary allocates {n} times per request (4 expected)");
}
