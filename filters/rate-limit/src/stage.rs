//! proxy-wasm glue: moves data between Envoy and [`crate::logic`]. Nothing here decides anything.
//! The chain host (`meshplug_common::wasm::chain`) runs this stage alone in `rate_limit.wasm` and with
//! the other filters in the bundle.

use crate::logic::{describe_key, metric_names, Env, RateLimit, FILTER};
use meshplug_common::config::ConfigError;
use meshplug_common::host::SeededRandom;
use meshplug_common::reply::Action as Decided;
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
            "rule {}: {} limit(s), key {}, {}",
            rule.name,
            rule.limits.len(),
            describe_key(&rule.key),
            if rule.shadow { "shadow" } else { "enforcing" }
        );
    }
    log::info!("configured: {} rule(s), maxKeys {}", limiter.config().rules.len(), limiter.config().max_keys);
    Ok(Box::new(RateLimitStage { limiter, metrics }))
}

impl Stage for RateLimitStage {
    fn filter(&self) -> &'static str {
        FILTER
    }

    fn on_request_headers(&self, req: &ChainRequest) -> Step {
        let env = Env { shared: &ProxySharedData, metrics: &self.metrics, now: req.now() };
        let verdict = self.limiter.on_request(req, &env);
        match verdict.action {
            // The reply carries its own rate-limit headers.
            Decided::Respond(reply) => Step::action(Decided::Respond(reply)),
            Decided::Continue | Decided::Pause { .. } => {
                Step { action: Decided::Continue, response_headers: verdict.response_headers, notify_done: false }
            }
        }
    }

    fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }
}
