//! proxy-wasm glue: moves data between Envoy and [`crate::logic`]. Nothing here decides anything.
//! The chain host (`meshplug_common::wasm::chain`) runs this stage alone in `jwt_authz.wasm` and with
//! the other filters in the bundle.

use crate::logic::Metric;
use crate::logic::{metric_names, Env, JwtAuthz, FILTER};
use crate::verify::{decode_verify_result, encode_verify_arguments, CryptoHost};
use meshplug_common::config::ConfigError;
use meshplug_common::host::{Clock, Metrics, SeededRandom};
use meshplug_common::reply::{Action as Decided, LocalReply};
use meshplug_common::wasm::chain::{ChainRequest, Stage, Step};
use meshplug_common::wasm::{ffi, ProxyClock, ProxyMetrics, ProxySharedData, METRICS_FLUSH};
use proxy_wasm::hostcalls;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

/// Body of the 500 sent when the host refuses a request-header change jwt-authz must make.
pub const HEADER_WRITE_FAILED_BODY: &str = "jwt-authz: request headers could not be updated";

/// Tick while some issuer still has no keys (so the first fetch lands quickly).
const FAST_TICK: Duration = Duration::from_millis(100);

/// Envoy's `verify_signature` foreign function (BoringSSL); remembers when the host lacks it.
#[derive(Default)]
struct ProxyCrypto {
    missing: Cell<bool>,
}

impl CryptoHost for ProxyCrypto {
    fn verify_signature(&self, hash: &str, spki: &[u8], signature: &[u8], text: &[u8]) -> Option<bool> {
        if self.missing.get() {
            return None;
        }
        let args = encode_verify_arguments(hash, spki, signature, text);
        match ffi::call_foreign_function("verify_signature", &args) {
            Ok(result) => Some(decode_verify_result(&result)),
            Err(ffi::NOT_FOUND) => {
                log::info!("the host has no verify_signature function: using pure-Rust verification");
                self.missing.set(true);
                None
            }
            Err(_) => Some(false),
        }
    }
}

struct JwtStage {
    authz: JwtAuthz,
    metrics: ProxyMetrics,
    crypto: ProxyCrypto,
    /// Outstanding JWKS fetches: call token → rule index.
    fetches: RefCell<HashMap<u32, usize>>,
    /// Verified claims go to Envoy's filter state (else only to the chain's copy).
    publish: bool,
}

impl JwtStage {
    fn env(&self) -> Env<'_> {
        self.env_at(ProxyClock.now())
    }

    fn env_at(&self, now: Duration) -> Env<'_> {
        Env { metrics: &self.metrics, crypto: &self.crypto, shared: &ProxySharedData, now }
    }
}

/// Builds the stage from its pluginConfig; `instance` keeps two plugins' JWKS state apart.
pub fn build(config: &[u8], instance: &str) -> Result<Box<dyn Stage>, ConfigError> {
    build_as(config, instance, true)
}

/// The stage inside the bundle: the verified claims stay in the module (later stages read the chain's
/// copy) unless `publishClaims: true` asks for them in filter state too. Saves the request's first
/// `set_property`, the dearest host call after the first header read (BENCHMARKS.md).
pub fn build_in_bundle(config: &[u8], instance: &str) -> Result<Box<dyn Stage>, ConfigError> {
    build_as(config, instance, false)
}

fn build_as(config: &[u8], instance: &str, publish_by_default: bool) -> Result<Box<dyn Stage>, ConfigError> {
    let authz = JwtAuthz::from_json(config, instance, &mut SeededRandom::from_entropy())?;
    let publish = authz.config().publish_claims.unwrap_or(publish_by_default);
    let metrics = ProxyMetrics::define(FILTER, &metric_names());
    for r in &authz.config().jwt_rules {
        log::info!(
            "issuer {}: keys {}",
            r.issuer,
            match &r.remote_jwks {
                Some(remote) => format!("fetched from cluster {} path {}", remote.cluster, remote.path),
                None => "inline".into(),
            }
        );
    }
    log::info!(
        "configured: {} JWT rule(s), {} policy(ies), cache {}, claims {}",
        authz.config().jwt_rules.len(),
        authz.config().policies.len(),
        authz.config().cache_size,
        if publish { "published in filter state" } else { "kept in the module" }
    );
    Ok(Box::new(JwtStage { authz, metrics, crypto: ProxyCrypto::default(), fetches: RefCell::default(), publish }))
}

impl Stage for JwtStage {
    fn filter(&self) -> &'static str {
        FILTER
    }

    fn on_request_headers(&self, req: &ChainRequest) -> Step {
        let outcome = self.authz.on_request(req, &self.env_at(req.now()));
        // A client copy of an output header, or a token, that cannot be removed, or a verified value
        // that cannot be set, must not reach the upstream as if we had vouched for it: 500.
        let mut written = outcome.remove_headers.iter().all(|name| req.set_header(name, None).is_ok());
        if let Decided::Respond(_) = &outcome.action {
            return Step::action(outcome.action);
        }
        written = written && outcome.set_headers.iter().all(|(name, value)| req.set_header(name, Some(value)).is_ok());
        if !written {
            self.metrics.increment(Metric::HeaderWriteFailed as usize);
            return Step::action(Decided::Respond(LocalReply {
                status: 500,
                grpc_status: None,
                headers: vec![],
                body: HEADER_WRITE_FAILED_BODY.as_bytes().to_vec(),
            }));
        }
        if let Some(published) = outcome.publish_claims {
            // Refused by the host (logged by the chain): later filters see no claims, as for a request
            // without a token (rate-limit's onMissingKey, canary's fallback apply).
            let _ = req.put_claims(&published.json, published.claims, self.publish);
        }
        Step::action(outcome.action)
    }

    fn on_tick(&self) -> Vec<u32> {
        self.metrics.flush();
        let env = self.env();
        let mut tokens = Vec::new();
        for rule in self.authz.sync_keys(&env) {
            let Some((cluster, path, authority, timeout)) = self.authz.fetch_target(rule) else { continue };
            let headers = vec![
                (":method", "GET"),
                (":path", path.as_str()),
                (":authority", authority.as_str()),
                ("accept", "application/json"),
            ];
            match hostcalls::dispatch_http_call(&cluster, headers, None, vec![], timeout) {
                Ok(token) => {
                    self.fetches.borrow_mut().insert(token, rule);
                    tokens.push(token);
                }
                Err(e) => self.authz.fetch_done(rule, Err(format!("cannot call cluster {cluster}: {e:?}")), &env),
            }
        }
        tokens
    }

    fn tick_period(&self) -> Duration {
        if self.authz.all_keys_loaded() {
            METRICS_FLUSH
        } else {
            FAST_TICK
        }
    }

    fn on_http_call_response(&self, token: u32, num_headers: usize, body_size: usize) {
        let Some(rule) = self.fetches.borrow_mut().remove(&token) else { return };
        let result = if num_headers == 0 {
            Err("no response (timeout, connection failure or unknown cluster)".to_string())
        } else {
            let status = ffi::get_header_value(ffi::MAP_HTTP_CALL_RESPONSE_HEADERS, ":status")
                .map(|s| String::from_utf8_lossy(&s).into_owned())
                .unwrap_or_default();
            if status != "200" {
                Err(format!("HTTP status {status}"))
            } else if body_size > crate::config::MAX_JWKS_BYTES {
                Err(format!("the body is {body_size} bytes; the maximum is {}", crate::config::MAX_JWKS_BYTES))
            } else {
                ffi::get_buffer(ffi::BUFFER_HTTP_CALL_RESPONSE_BODY, 0, body_size)
                    .map_err(|status| format!("cannot read the body (status {status})"))
            }
        };
        self.authz.fetch_done(rule, result, &self.env());
    }

    fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }
}
