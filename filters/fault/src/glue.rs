//! proxy-wasm glue: moves data between Envoy and [`crate::logic`]. Nothing here decides anything.

use crate::logic::{Decision, Env, Fault, FAULT_HEADER, FILTER, METRIC_NAMES};
use meshplug_common::host::{Clock, MemoRequest, SeededRandom};
use meshplug_common::reply::Action as Decided;
use meshplug_common::wasm::{self, Parking, ProxyClock, ProxyMetrics, ProxyRequest, ProxySharedData, METRICS_FLUSH};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

proxy_wasm::main! {{
    wasm::init(FILTER);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FaultRoot::default()) });
}}

/// State one worker's VM shares between its root context and its HTTP contexts.
struct Shared {
    fault: Fault,
    random: RefCell<SeededRandom>,
    metrics: ProxyMetrics,
    parking: Parking,
}

#[derive(Default)]
struct FaultRoot {
    shared: Option<Rc<Shared>>,
    metrics: Option<ProxyMetrics>,
    parking: Parking,
}

impl Context for FaultRoot {}

impl RootContext for FaultRoot {
    fn on_vm_start(&mut self, _: usize) -> bool {
        wasm::log_version(FILTER);
        true
    }

    fn on_configure(&mut self, _: usize) -> bool {
        let fault = match Fault::from_json(&wasm::plugin_configuration(), &wasm::plugin_name(FILTER)) {
            Ok(f) => f,
            Err(e) => return wasm::refuse_config(FILTER, &e),
        };
        fault.prepare(&ProxySharedData);
        self.set_tick_period(METRICS_FLUSH);
        let metrics = self.metrics.get_or_insert_with(|| ProxyMetrics::define(FILTER, &METRIC_NAMES)).clone();
        log::info!(
            "configured: {} rule(s), header control {}, maxActiveFaults {}",
            fault.config().rules.len(),
            if fault.config().header_control.enabled { "on" } else { "off" },
            fault.config().max_active_faults
        );
        self.shared = Some(Rc::new(Shared {
            fault,
            random: RefCell::new(SeededRandom::from_entropy()),
            metrics,
            parking: self.parking.clone(),
        }));
        true
    }

    fn on_tick(&mut self) {
        self.parking.wake_due(ProxyClock.now());
        if let Some(m) = &self.metrics {
            m.flush();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(FaultHttp { id: context_id, shared, decision: None, parked: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct FaultHttp {
    id: u32,
    shared: Rc<Shared>,
    decision: Option<Decision>,
    /// Set while the request is parked; the root context flips it when it wakes the request.
    parked: Option<Rc<Cell<bool>>>,
}

impl Context for FaultHttp {}

impl HttpContext for FaultHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let s = &self.shared;
        let decision = {
            let mut random = s.random.borrow_mut();
            let mut env = Env { random: &mut *random, shared: &ProxySharedData, metrics: &s.metrics };
            s.fault.on_request(&MemoRequest::new(&ProxyRequest), &mut env)
        };
        let action = match &decision.action {
            Decided::Continue => Action::Continue,
            Decided::Respond(reply) => {
                wasm::send_reply(reply);
                Action::Pause
            }
            Decided::Pause { delay, then } => {
                let flag = s.parking.park(self.id, ProxyClock.now() + *delay, then.clone());
                self.parked = Some(flag);
                Action::Pause
            }
        };
        self.decision = Some(decision);
        action
    }

    fn on_http_request_body(&mut self, _: usize, _: bool) -> Action {
        // While parked, keep the body buffered: letting it through would resume the request early.
        match &self.parked {
            Some(flag) if flag.get() => Action::Pause,
            _ => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(d) = &self.decision {
            if d.delayed && matches!(d.action, Decided::Pause { then: None, .. }) {
                // Direct hostcall: the SDK's trait method unwraps the host's status.
                let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, FAULT_HEADER, Some("delay"));
            }
        }
        Action::Continue
    }
}

impl Drop for FaultHttp {
    fn drop(&mut self) {
        if self.decision.as_ref().is_some_and(|d| d.holds_slot) {
            self.shared.fault.finish(&ProxySharedData, &self.shared.metrics);
        }
    }
}
