//! meshplug **canary**: decides which variant (`stable`, `canary`, …) serves a request — by override,
//! by rule, by a sticky weighted split or a pinning cookie — and writes it into one routing header that
//! Envoy routes (or an Istio VirtualService) match on.
//!
//! [`config`] and [`logic`] are free of host calls; the proxy-wasm glue is in `stage.rs`.

pub mod config;
pub mod logic;

// The glue is left out of test builds, so the logic tests also run as plain WASI programs.
#[cfg(all(target_arch = "wasm32", not(test)))]
pub mod stage;

// `canary.wasm`: this filter alone. Off when the filter is linked into the bundle (`meshplug.wasm`).
#[cfg(all(target_arch = "wasm32", not(test), feature = "module"))]
proxy_wasm::main! {{
    meshplug_common::wasm::chain::start(logic::FILTER, |config, instance| Ok(vec![stage::build(config, instance).map_err(|e| (logic::FILTER, e))?]));
}}
