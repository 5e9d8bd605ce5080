//! meshplug **canary**: decides which variant (`stable`, `canary`, …) serves a request — by override,
//! by rule, by a sticky weighted split or a pinning cookie — and writes it into one routing header that
//! Envoy routes (or an Istio VirtualService) match on.
//!
//! [`config`] and [`logic`] are free of host calls; the proxy-wasm glue is in `glue.rs`.

pub mod config;
pub mod logic;

// The glue is left out of test builds, so the logic tests also run as plain WASI programs.
#[cfg(all(target_arch = "wasm32", not(test), feature = "module"))]
mod glue;
