//! meshplug **fault**: delays and aborts by percentage, by match, or by request header.
//!
//! The proxy-wasm glue is in `stage` (Wasm builds only); the filter's logic is in [`logic`] and its config in
//! [`config`], both free of host calls.

pub mod config;
pub mod logic;

// The glue is left out of test builds, so the logic tests also run as plain WASI programs.
#[cfg(all(target_arch = "wasm32", not(test)))]
pub mod stage;

// `fault.wasm`: this filter alone. Off when the filter is linked into the bundle (`meshplug.wasm`).
#[cfg(all(target_arch = "wasm32", not(test), feature = "module"))]
proxy_wasm::main! {{
    meshplug_common::wasm::chain::start(logic::FILTER, |config, instance| Ok(vec![stage::build(config, instance).map_err(|e| (logic::FILTER, e))?]));
}}
