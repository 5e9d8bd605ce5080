//! meshplug **jwt-authz**: JWT validation (Istio RequestAuthentication `jwtRules`) and claim-based
//! authorization (Istio AuthorizationPolicy `action`/`rules`), with signatures checked by Envoy's
//! BoringSSL when the host offers it and a bounded cache of verified tokens.
//!
//! [`config`], [`rules`], [`jwks`], [`token`], [`verify`], [`policy`], [`cache`], [`remote`] and [`logic`]
//! are free of host calls; the proxy-wasm glue is in `stage.rs`. Imports go one way: `config` (the
//! parsed configuration) uses only `rules` and `jwks`; the evaluating modules use `config`.

pub mod cache;
pub mod config;
pub mod jwks;
pub mod logic;
pub mod policy;
pub mod remote;
pub mod rules;
pub mod token;
pub mod verify;

#[cfg(any(test, feature = "testkit"))]
#[path = "tests/testkit.rs"]
pub mod testkit;

// The glue is left out of test builds, so the logic tests also run as plain WASI programs.
#[cfg(all(target_arch = "wasm32", not(test)))]
pub mod stage;

// `jwt_authz.wasm`: this filter alone. Off when the filter is linked into the bundle (`meshplug.wasm`).
#[cfg(all(target_arch = "wasm32", not(test), feature = "module"))]
proxy_wasm::main! {{
    meshplug_common::wasm::chain::start(logic::FILTER, |config, instance| Ok(vec![stage::build(config, instance).map_err(|e| (logic::FILTER, e))?]));
}}
