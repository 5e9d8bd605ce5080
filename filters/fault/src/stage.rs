//! proxy-wasm glue: moves data between Envoy and [`crate::logic`]. Nothing here decides anything.
//! The chain host (`meshplug_common::wasm::chain`) runs this stage alone in `fault.wasm` and with the
//! other filters in the bundle.

use crate::logic::{Env, Fault, FAULT_HEADER, FILTER, METRIC_NAMES};
use meshplug_common::config::ConfigError;
use meshplug_common::host::SeededRandom;
use meshplug_common::reply::{Action as Decided, Text};
use meshplug_common::wasm::chain::{ChainRequest, Stage, Step};
use meshplug_common::wasm::{ProxyMetrics, ProxySharedData};
use std::cell::RefCell;

struct FaultStage {
    fault: Fault,
    random: RefCell<SeededRandom>,
    metrics: ProxyMetrics,
}

/// Builds the stage from its pluginConfig; `instance` keeps two plugins' slot counters apart.
pub fn build(config: &[u8], instance: &str) -> Result<Box<dyn Stage>, ConfigError> {
    let fault = Fault::from_json(config, instance)?;
    fault.prepare(&ProxySharedData);
    log::info!(
        "configured: {} rule(s), header control {}, maxActiveFaults {}",
        fault.config().rules.len(),
        if fault.config().header_control.enabled { "on" } else { "off" },
        fault.config().max_active_faults
    );
    let metrics = ProxyMetrics::define(FILTER, METRIC_NAMES);
    Ok(Box::new(FaultStage { fault, random: RefCell::new(SeededRandom::from_entropy()), metrics }))
}

impl Stage for FaultStage {
    fn filter(&self) -> &'static str {
        FILTER
    }

    fn on_request_headers(&self, req: &ChainRequest) -> Step {
        let decision = {
            let mut random = self.random.borrow_mut();
            let mut env = Env { random: &mut *random, shared: &ProxySharedData, metrics: &self.metrics };
            self.fault.on_request(req, &mut env)
        };
        let mut response_headers = Vec::new();
        if decision.delayed && matches!(decision.action, Decided::Pause { then: None, .. }) {
            response_headers.push((Text::Static(FAULT_HEADER), Text::Static("delay")));
        }
        Step { action: decision.action, response_headers, notify_done: decision.holds_slot }
    }

    fn on_done(&self) {
        self.fault.finish(&ProxySharedData, &self.metrics);
    }

    fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }
}
