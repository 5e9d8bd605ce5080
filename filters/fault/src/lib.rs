//! meshplug **fault**: delays and aborts by percentage, by match, or by request header.
//!
//! This file is only the proxy-wasm glue; the filter's logic is in [`logic`] and its config in
//! [`config`], both free of host calls.

pub mod config;
pub mod logic;

// The glue is left out of test builds, so the logic tests also run as plain WASI programs.
#[cfg(all(target_arch = "wasm32", not(test), feature = "module"))]
mod glue;
