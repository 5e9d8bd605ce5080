//! proxy-wasm glue: moves data between Envoy and [`crate::logic`]. Nothing here decides anything.

use crate::logic::{metric_names, Canary, FILTER};
use meshplug_common::host::{MemoRequest, SeededRandom};
use meshplug_common::wasm::{self, ProxyMetrics, ProxyRequest, METRICS_FLUSH};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};
use std::cell::RefCell;
use std::rc::Rc;

proxy_wasm::main! {{
    wasm::init(FILTER);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(CanaryRoot::default()) });
}}

struct Shared {
    canary: Canary,
    metrics: ProxyMetrics,
    random: RefCell<SeededRandom>,
}

#[derive(Default)]
struct CanaryRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for CanaryRoot {}

impl RootContext for CanaryRoot {
    fn on_vm_start(&mut self, _: usize) -> bool {
        wasm::log_version(FILTER);
        true
    }

    fn on_configure(&mut self, _: usize) -> bool {
        let canary = match Canary::from_json(&wasm::plugin_configuration()) {
            Ok(c) => c,
            Err(e) => return wasm::refuse_config(FILTER, &e),
        };
        if let Some(previous) = &self.shared {
            previous.metrics.flush();
        }
        let names = metric_names(canary.config());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let metrics = ProxyMetrics::define(FILTER, &names);
        let split: Vec<String> =
            canary.config().split.variants.iter().map(|v| format!("{} {}", v.name, v.weight)).collect();
        log::info!(
            "configured: header {}, {} rule(s), split {}, sticky by {:?}",
            canary.config().header,
            canary.config().rules.len(),
            split.join(" / "),
            canary.config().split.sticky_by
        );
        self.shared = Some(Rc::new(Shared { canary, metrics, random: RefCell::new(SeededRandom::from_entropy()) }));
        self.set_tick_period(METRICS_FLUSH);
        true
    }

    fn on_tick(&mut self) {
        if let Some(s) = &self.shared {
            s.metrics.flush();
        }
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CanaryHttp { shared: self.shared.clone()?, response_headers: Vec::new() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct CanaryHttp {
    shared: Rc<Shared>,
    response_headers: Vec<(String, String)>,
}

impl Context for CanaryHttp {}

impl HttpContext for CanaryHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let s = &self.shared;
        let decision = {
            let mut random = s.random.borrow_mut();
            s.canary.on_request(&MemoRequest::new(&ProxyRequest), &mut *random, &s.metrics)
        };
        // Setting the header replaces any value the client sent; Envoy then re-selects the route.
        let (name, value) = &decision.route_header;
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
        self.response_headers = decision.response_headers;
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        wasm::add_response_headers(&self.response_headers);
        Action::Continue
    }
}
