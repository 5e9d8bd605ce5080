//! meshplug **rate-limit**: GCRA limits (the `governor` crate's algorithm) with their state in Envoy's
//! shared data, so one limit holds exactly across all worker threads; per rule, per key, with bounded
//! memory.
//!
//! This file is only module wiring; [`config`], [`keys`], [`slots`] and [`logic`] are free of host calls
//! and the proxy-wasm glue is in `stage.rs`.

pub mod config;
pub mod global;
pub mod keys;
pub mod logic;
pub mod slots;

// The glue is left out of test builds, so the logic tests also run as plain WASI programs.
#[cfg(all(target_arch = "wasm32", not(test)))]
pub mod stage;

// `rate_limit.wasm`: this filter alone. Off when the filter is linked into the bundle (`meshplug.wasm`).
#[cfg(all(target_arch = "wasm32", not(test), feature = "module"))]
proxy_wasm::main! {{
    meshplug_common::wasm::chain::start(logic::FILTER, |config, instance| Ok(vec![stage::build(config, instance).map_err(|e| (logic::FILTER, e))?]));
}}
