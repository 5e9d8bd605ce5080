//! meshplug **fault**: delays and aborts by percentage, by match, or by request header.
//!
//! This file is only the proxy-wasm glue; the filter's logic is in [`logic`] and its config in
//! [`config`], both free of host calls.

pub mod config;
pub mod logic;

#[cfg(target_arch = "wasm32")]
mod glue;
