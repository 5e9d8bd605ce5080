//! proxy-wasm glue: moves data between Envoy and [`crate::logic`]. Nothing here decides anything.

use crate::logic::{describe_key, metric_names, Env, RateLimit, FILTER};
use meshplug_common::host::{Clock, MemoRequest, SeededRandom};
use meshplug_common::reply::Action as Decided;
use meshplug_common::wasm::{self, ProxyClock, ProxyMetrics, ProxyRequest, ProxySharedData, METRICS_FLUSH};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;

proxy_wasm::main! {{
    wasm::init(FILTER);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(RateLimitRoot::default()) });
}}

struct Shared {
    limiter: RateLimit,
    metrics: ProxyMetrics,
}

#[derive(Default)]
struct RateLimitRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for RateLimitRoot {}

impl RootContext for RateLimitRoot {
    fn on_vm_start(&mut self, _: usize) -> bool {
        wasm::log_version(FILTER);
        true
    }

    fn on_configure(&mut self, _: usize) -> bool {
        let limiter = match RateLimit::from_json(&wasm::plugin_configuration(), &wasm::plugin_name(FILTER)) {
            Ok(l) => l,
            Err(e) => return wasm::refuse_config(FILTER, &e),
        };
        limiter.prepare(&ProxySharedData, &mut SeededRandom::from_entropy());
        if let Some(previous) = &self.shared {
            previous.metrics.flush();
        }
        let names = metric_names(limiter.config());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let metrics = ProxyMetrics::define(FILTER, &names);
        for rule in &limiter.config().rules {
            log::info!(
                "rule {}: {} limit(s), key {}, {}",
                rule.name,
                rule.limits.len(),
                describe_key(&rule.key),
                if rule.shadow { "shadow" } else { "enforcing" }
            );
        }
        log::info!("configured: {} rule(s), maxKeys {}", limiter.config().rules.len(), limiter.config().max_keys);
        self.shared = Some(Rc::new(Shared { limiter, metrics }));
        self.set_tick_period(METRICS_FLUSH);
        true
    }

    fn on_tick(&mut self) {
        if let Some(s) = &self.shared {
            s.metrics.flush();
        }
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(RateLimitHttp { shared, response_headers: Vec::new() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct RateLimitHttp {
    shared: Rc<Shared>,
    response_headers: Vec<(String, String)>,
}

impl Context for RateLimitHttp {}

impl HttpContext for RateLimitHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let s = &self.shared;
        let env = Env { shared: &ProxySharedData, metrics: &s.metrics, now: ProxyClock.now() };
        let verdict = s.limiter.on_request(&MemoRequest::new(&ProxyRequest), &env);
        match verdict.action {
            Decided::Respond(reply) => {
                wasm::send_reply(&reply);
                Action::Pause
            }
            Decided::Continue | Decided::Pause { .. } => {
                self.response_headers = verdict.response_headers;
                Action::Continue
            }
        }
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        wasm::add_response_headers(&self.response_headers);
        Action::Continue
    }
}
