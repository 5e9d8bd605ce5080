//! proxy-wasm glue: moves data between Envoy and [`crate::logic`]. Nothing here decides anything.
//! The chain host (`meshplug_common::wasm::chain`) runs this stage alone in `rate_limit.wasm` and with
//! the other filters in the bundle.

use crate::logic::{describe_key, metric_names, Env, RateLimit, Verdict, FILTER};
use meshplug_common::config::ConfigError;
use meshplug_common::host::SeededRandom;
use meshplug_common::reply::{Action as Decided, CallOutcome, Carry};
use meshplug_common::wasm::chain::{ChainRequest, Stage, Step};
use meshplug_common::wasm::{ProxyMetrics, ProxySharedData};

struct RateLimitStage {
    limiter: RateLimit,
    metrics: ProxyMetrics,
}

/// Builds the stage from its pluginConfig; `instance` keeps two plugins' buckets apart.
pub fn build(config: &[u8], instance: &str) -> Result<Box<dyn Stage>, ConfigError> {
    let limiter = RateLimit::from_json(config, instance)?;
    limiter.prepare(&ProxySharedData, &mut SeededRandom::from_entropy());
    let metrics = ProxyMetrics::define(FILTER, &metric_names(limiter.config()));
    for rule in &limiter.config().rules {
        log::info!(
            "rule {}: {} limit(s), key {}{}, {}",
            rule.name,
            rule.limits.len(),
            describe_key(&rule.key),
            rule.global
                .as_ref()
                .map_or(String::new(), |g| format!(", global descriptor of {} entries", g.descriptors.len())),
            if rule.shadow { "shadow" } else { "enforcing" }
        );
    }
    if let Some(svc) = &limiter.config().rate_limit_service {
        log::info!(
            "rate limit service: cluster {}, domain {}, timeout {:?}, onError {:?}",
            svc.cluster,
            svc.domain,
            svc.timeout.0,
            svc.on_error
        );
    }
    log::info!("configured: {} rule(s), maxKeys {}", limiter.config().rules.len(), limiter.config().max_keys);
    Ok(Box::new(RateLimitStage { limiter, metrics }))
}

/// The chain step for a verdict: a refusal carries its own rate-limit headers; headers the rate limit
/// service asked for go on the request (a refused header write is logged by the chain).
fn step(req: &ChainRequest, verdict: Verdict) -> Step {
    for (name, value) in &verdict.request_headers {
        let _ = req.set_header(name, Some(value));
    }
    match verdict.action {
        Decided::Continue | Decided::Pause { .. } => {
            Step { action: Decided::Continue, response_headers: verdict.response_headers, notify_done: false }
        }
        action => Step::action(action),
    }
}

impl Stage for RateLimitStage {
    fn filter(&self) -> &'static str {
        FILTER
    }

    fn on_request_headers(&self, req: &ChainRequest) -> Step {
        let env = Env { shared: &ProxySharedData, metrics: &self.metrics, now: req.now() };
        step(req, self.limiter.on_request(req, &env))
    }

    fn on_call_response(&self, req: &ChainRequest, outcome: CallOutcome, carry: Carry) -> Step {
        let env = Env { shared: &ProxySharedData, metrics: &self.metrics, now: req.now() };
        step(req, self.limiter.on_global_response(&env, outcome, carry))
    }

    fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }
}
