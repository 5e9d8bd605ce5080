//! proxy-wasm glue: moves data between Envoy and [`crate::logic`]. Nothing here decides anything.
//! The chain host (`meshplug_common::wasm::chain`) runs this stage alone in `canary.wasm` and with the
//! other filters in the bundle.

use crate::logic::{metric_names, Canary, FILTER};
use meshplug_common::config::ConfigError;
use meshplug_common::host::{RequestHeaders, SeededRandom};
use meshplug_common::reply::Action as Decided;
use meshplug_common::wasm::chain::{ChainRequest, Stage, Step};
use meshplug_common::wasm::ProxyMetrics;
use std::cell::RefCell;

struct CanaryStage {
    canary: Canary,
    metrics: ProxyMetrics,
    random: RefCell<SeededRandom>,
}

/// Builds the stage from its pluginConfig (canary keeps no shared state, so it needs no instance name).
pub fn build(config: &[u8], _instance: &str) -> Result<Box<dyn Stage>, ConfigError> {
    let canary = Canary::from_json(config)?;
    let metrics = ProxyMetrics::define(FILTER, &metric_names(canary.config()));
    let split: Vec<String> =
        canary.config().split.variants.iter().map(|v| format!("{} {}", v.name, v.weight)).collect();
    log::info!(
        "configured: header {}, {} rule(s), split {}, sticky by {:?}",
        canary.config().header,
        canary.config().rules.len(),
        split.join(" / "),
        canary.config().split.sticky_by
    );
    Ok(Box::new(CanaryStage { canary, metrics, random: RefCell::new(SeededRandom::from_entropy()) }))
}

impl Stage for CanaryStage {
    fn filter(&self) -> &'static str {
        FILTER
    }

    fn on_request_headers(&self, req: &ChainRequest) -> Step {
        let decision = {
            let mut random = self.random.borrow_mut();
            self.canary.on_request(req, &mut *random, &self.metrics)
        };
        // Setting the header replaces any value the client sent; then Envoy is asked to re-select the
        // route (explicitly where it has `clear_route_cache`; see ChainRequest::clear_route_cache).
        // If the host refuses the header, the request keeps no routing header from us (logged by the
        // chain) and takes the default route: the stable subset. When the request already carries
        // exactly the decided value (once), neither the header nor the route changes: no host call.
        let (name, value) = &decision.route_header;
        let unchanged = matches!(req.header_values(name).as_slice(), [only] if only.as_slice() == value.as_bytes());
        if !unchanged && req.set_header(name, Some(value)).is_ok() {
            req.clear_route_cache();
        }
        Step { action: Decided::Continue, response_headers: decision.response_headers, notify_done: false }
    }

    fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }
}
