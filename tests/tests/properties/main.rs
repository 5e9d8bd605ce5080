//! Property tests: every parser that sees client bytes (paths, query strings, cookies, the host's header
//! maps, tokens, matchers, key extraction) and every filter's config parser, fed generated input with
//! proptest. Each property runs thousands of cases from a fixed seed (so a run is reproducible and CI
//! sees the same cases every time); a panic anywhere is a failure, and so is a broken invariant.
//!
//! Native only: the same code runs in the Wasm modules, where a panic traps the VM (issue 11).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
mod configs;
mod filters;
mod rls;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

/// Cases per property, and the fixed seed they are generated from.
pub const CASES: u32 = 4096;
pub const SEED: u64 = 0x6d65_7368_706c_7567; // "meshplug"

/// The runner configuration every property uses: fixed seed, no failure files written.
pub fn config() -> Config {
    Config {
        cases: CASES,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(SEED),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Bytes the parsers treat specially, and bytes that are not UTF-8 or are control characters.
const SHARP: &[u8] = b"/\\%.?#&=;,: \t\r\n\0\x01\x7f\x80\xbf\xc3\xe4\xb8\xff\"'*{}aA0123456789eEfFcC-_~";

/// Any bytes: uniformly random, drawn from the sharp alphabet, or (rarely) very long.
pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..48),
        4 => prop::collection::vec(prop::sample::select(SHARP), 0..48),
        1 => prop::collection::vec(prop::sample::select(SHARP), 1000..70_000),
    ]
}

/// Path-like bytes: pieces that exercise normalization (dot segments, escapes, slashes, backslashes).
pub fn path() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&[u8]] = &[
        b"/", b"//", b"\\", b".", b"..", b"%2e", b"%2E", b"%2f", b"%2F", b"%5c", b"%5C", b"%", b"%%", b"%6", b"%25",
        b"1", b"a", b"admin", b"%61", b"%3", b"6", b"?", b"#", b"&", b"=", b"\xff", b"~", b"%7e", b"*", b"{", b"}",
        b"\0", b" ", b"api",
    ];
    prop_oneof![
        6 => prop::collection::vec(prop::sample::select(PIECES), 0..24).prop_map(|p| p.concat()),
        1 => bytes(),
    ]
}

/// A header map as the host hands it over: names (lower-case, any bytes) and values, names repeated.
pub fn header_pairs(names: &'static [&'static str]) -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = prop_oneof![
        4 => prop::sample::select(names).prop_map(str::to_string),
        1 => bytes().prop_map(|b| String::from_utf8_lossy(&b).to_ascii_lowercase()),
    ];
    prop::collection::vec((name, bytes()), 0..12)
}
