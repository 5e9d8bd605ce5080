//! proxy-wasm glue: moves data between Envoy and [`crate::logic`]. Nothing here decides anything.

use crate::logic::{metric_names, Env, JwtAuthz, FILTER};
use crate::verify::{decode_verify_result, encode_verify_arguments, CryptoHost};
use meshplug_common::claims::CLAIMS_PROPERTY;
use meshplug_common::host::{Clock, MemoRequest, SeededRandom};
use meshplug_common::reply::Action as Decided;
use meshplug_common::wasm::{self, ProxyClock, ProxyMetrics, ProxyRequest, ProxySharedData, METRICS_FLUSH};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType, Status};
use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    wasm::init(FILTER);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(JwtRoot::default()) });
}}

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
        match hostcalls::call_foreign_function("verify_signature", Some(&args)) {
            Ok(Some(result)) => Some(decode_verify_result(&result)),
            Ok(None) => Some(false),
            Err(Status::NotFound) => {
                log::info!("the host has no verify_signature function: using pure-Rust verification");
                self.missing.set(true);
                None
            }
            Err(_) => Some(false),
        }
    }
}

struct Shared {
    authz: JwtAuthz,
    metrics: ProxyMetrics,
    crypto: ProxyCrypto,
}

#[derive(Default)]
struct JwtRoot {
    shared: Option<Rc<Shared>>,
    /// Outstanding JWKS fetches: call token → rule index.
    fetches: HashMap<u32, usize>,
}

impl JwtRoot {
    fn env<'a>(s: &'a Shared) -> Env<'a> {
        Env { metrics: &s.metrics, crypto: &s.crypto, shared: &ProxySharedData, now: ProxyClock.now() }
    }
}

impl Context for JwtRoot {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _: usize) {
        let Some(rule) = self.fetches.remove(&token) else { return };
        let Some(s) = self.shared.clone() else { return };
        let result = if num_headers == 0 {
            Err("no response (timeout, connection failure or unknown cluster)".to_string())
        } else {
            let status = self.get_http_call_response_header(":status").unwrap_or_default();
            if status != "200" {
                Err(format!("HTTP status {status}"))
            } else if body_size > crate::config::MAX_JWKS_BYTES {
                Err(format!("the body is {body_size} bytes; the maximum is {}", crate::config::MAX_JWKS_BYTES))
            } else {
                Ok(self.get_http_call_response_body(0, body_size).unwrap_or_default())
            }
        };
        s.authz.fetch_done(rule, result, &Self::env(&s));
    }
}

impl RootContext for JwtRoot {
    fn on_vm_start(&mut self, _: usize) -> bool {
        wasm::log_version(FILTER);
        true
    }

    fn on_configure(&mut self, _: usize) -> bool {
        let config = wasm::plugin_configuration();
        let authz = match JwtAuthz::from_json(&config, &wasm::plugin_name(FILTER), &mut SeededRandom::from_entropy()) {
            Ok(a) => a,
            Err(e) => return wasm::refuse_config(FILTER, &e),
        };
        if let Some(previous) = &self.shared {
            previous.metrics.flush();
        }
        let names = metric_names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let metrics = ProxyMetrics::define(FILTER, &names);
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
            "configured: {} JWT rule(s), {} policy(ies), cache {}",
            authz.config().jwt_rules.len(),
            authz.config().policies.len(),
            authz.config().cache_size
        );
        let fast = !authz.all_keys_loaded();
        self.shared = Some(Rc::new(Shared { authz, metrics, crypto: ProxyCrypto::default() }));
        self.set_tick_period(if fast { FAST_TICK } else { METRICS_FLUSH });
        true
    }

    fn on_tick(&mut self) {
        let Some(s) = self.shared.clone() else { return };
        s.metrics.flush();
        let env = Self::env(&s);
        for rule in s.authz.sync_keys(&env) {
            let Some((cluster, path, authority, timeout)) = s.authz.fetch_target(rule) else { continue };
            let headers = vec![
                (":method", "GET"),
                (":path", path.as_str()),
                (":authority", authority.as_str()),
                ("accept", "application/json"),
            ];
            match self.dispatch_http_call(&cluster, headers, None, vec![], timeout) {
                Ok(token) => {
                    self.fetches.insert(token, rule);
                }
                Err(e) => s.authz.fetch_done(rule, Err(format!("cannot call cluster {cluster}: {e:?}")), &env),
            }
        }
        self.set_tick_period(if s.authz.all_keys_loaded() { METRICS_FLUSH } else { FAST_TICK });
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(JwtHttp { shared: self.shared.clone()? }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct JwtHttp {
    shared: Rc<Shared>,
}

impl Context for JwtHttp {}

impl HttpContext for JwtHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let s = &self.shared;
        let outcome = s.authz.on_request(&MemoRequest::new(&ProxyRequest), &JwtRoot::env(s));
        for name in &outcome.remove_headers {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
        }
        if let Decided::Respond(reply) = &outcome.action {
            wasm::send_reply(reply);
            return Action::Pause;
        }
        for (name, value) in &outcome.set_headers {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
        }
        if let Some(claims) = &outcome.publish_claims {
            let _ = hostcalls::set_property(vec![CLAIMS_PROPERTY], Some(claims));
        }
        Action::Continue
    }
}
