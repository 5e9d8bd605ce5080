//! The one proxy-wasm host of every meshplug module: a chain of [`Stage`]s run in one HTTP context.
//!
//! A filter's own module is a chain of one stage; the bundle (`meshplug.wasm`) is a chain of several.
//! Both run exactly this code, so a filter behaves the same in either. Per request the chain runs the
//! stages' request-header steps in order: a stage that answers (401, 429, an abort) stops the chain; a
//! stage that waits (a fault delay) parks the request on the worker's root tick, and when the deadline
//! passes the chain goes on with the next stage. Response headers the stages asked for are put on the
//! response in reverse order, as Envoy runs encoder filters.
//!
//! While a request is parked, its body and trailers are held too (`on_http_request_body` and
//! `on_http_request_trailers` answer Pause, as Envoy's own fault filter stops iteration while it
//! delays): letting either through would send the stream upstream before the later stages ran. (Envoy
//! itself does not deliver them to a paused filter: proxy-wasm-cpp-host turns a `StopIteration` on
//! headers into `StopAllIterationAndWatermark`; the handlers are for hosts that do.) A parked
//! request whose client goes away is taken out of the parking at once (its context is deleted), so a
//! worker holds memory only for requests that are really waiting.
//!
//! A stage that asks a gRPC service first (rate-limit's global rules) returns a call: the chain
//! dispatches it through the SDK from the context that runs the chain (so the SDK routes the answer
//! back), holds the request, and on the answer — or Envoy's timeout, or a failure — gives the outcome to
//! that stage and goes on with the chain.
//!
//! No callback can panic: every host call goes through [`super::ffi`], and request headers are read as
//! bytes. The one SDK call left on a request path, `dispatch_grpc_call`, panics only on a host status
//! Envoy's `grpcCall` does not return (it answers Ok, ParseFailure or InternalFailure).

use crate::claims::{self, Claims, CLAIMS_PROPERTY};
use crate::config::ConfigError;
use crate::host::{Clock, RequestHeaders, RequestProperties};
use crate::reply::{
    Action as Decided, CallOutcome, Carry, GrpcCall, Header, LocalReply, GRPC_DEADLINE_EXCEEDED, GRPC_UNAVAILABLE,
    MAX_GRPC_ANSWER,
};
use crate::timers::{TimerId, Timers};
use crate::wasm::{self, ffi, HostErrorLog, MonotonicClock, ProxyClock, ProxyMetrics, METRICS_FLUSH};
use crate::wire::HeaderMap;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// While requests are parked, the root context ticks at this period. The tick bounds the delay error:
/// a request resumes at most one period (plus scheduling noise) after its deadline.
pub const PARKED_TICK: Duration = Duration::from_millis(1);

/// What one stage decided for a request.
#[derive(Debug)]
pub struct Step {
    pub action: Decided,
    /// Headers to put on the response (each replaces an upstream header, except `set-cookie`).
    pub response_headers: Vec<Header>,
    /// Call [`Stage::on_done`] when the request ends (e.g. to release a slot).
    pub notify_done: bool,
}

impl Step {
    pub fn action(action: Decided) -> Self {
        Self { action, response_headers: Vec::new(), notify_done: false }
    }
}

/// The request as the stages of one chain see it, for one request. Every host call crosses the Wasm
/// boundary (0.3–2.5 µs each on the benchmark machine, 3–8 µs for the first read of a request; see
/// BENCHMARKS.md), so this view reads all request headers with one call when a stage first asks for
/// one, remembers properties and the time, and keeps its copy up to date when a stage changes a header
/// or a property: the next stage reads what the previous one wrote without asking Envoy again.
#[derive(Default)]
pub struct ChainRequest {
    headers: RefCell<Option<HeaderMap>>,
    properties: RefCell<Vec<KnownProperty>>,
    /// The verified claims, parsed: `None` until a stage asks or jwt-authz hands them over; then
    /// `Some(None)` when the request has none.
    claims: RefCell<Option<Option<Rc<Claims>>>>,
    now: Cell<Option<Duration>>,
}

/// A property path and its value (`None`: the host has none).
type KnownProperty = (Vec<String>, Option<Vec<u8>>);

thread_local! {
    static HEADER_WRITE_ERRORS: HostErrorLog = const { HostErrorLog::new() };
    static PROPERTY_WRITE_ERRORS: HostErrorLog = const { HostErrorLog::new() };
    static ROUTE_CACHE_REPORTED: Cell<bool> = const { Cell::new(false) };
}

impl ChainRequest {
    fn with_headers<T>(&self, f: impl FnOnce(&mut HeaderMap) -> T) -> T {
        let mut headers = self.headers.borrow_mut();
        let headers = headers.get_or_insert_with(|| ffi::get_header_pairs(ffi::MAP_REQUEST_HEADERS));
        f(headers)
    }

    /// Sets (or with `None` removes) a request header, in Envoy and in this view. `Err` when the host
    /// refused (logged, throttled): the caller takes its filter's documented safe action.
    pub fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), ffi::Status> {
        let absent = || self.headers.borrow().as_ref().is_some_and(|h| !h.contains(name.as_bytes()));
        if value.is_none() && absent() {
            return Ok(()); // nothing to remove: no host call
        }
        let result = match value {
            Some(v) => ffi::replace_header(ffi::MAP_REQUEST_HEADERS, name, v.as_bytes()),
            None => ffi::remove_header(ffi::MAP_REQUEST_HEADERS, name),
        };
        if let Err(status) = result {
            HEADER_WRITE_ERRORS.with(|l| l.report(&format!("change request header {name}"), status));
            // The view is read again from Envoy, which knows what really happened.
            self.headers.replace(None);
            return Err(status);
        }
        if self.headers.borrow().is_some() {
            self.with_headers(|headers| {
                headers.remove(name.as_bytes());
                if let Some(v) = value {
                    headers.append(name.to_ascii_lowercase().as_bytes(), v.as_bytes());
                }
            });
        }
        Ok(())
    }

    /// Sets a property (filter state), in Envoy and in this view. `Err` when the host refused (logged,
    /// throttled; the view then has no value for it either).
    pub fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), ffi::Status> {
        let result = ffi::set_property(path, value);
        if let Err(status) = result {
            PROPERTY_WRITE_ERRORS.with(|l| l.report(&format!("set property {}", path.join(".")), status));
        }
        self.remember_property(path, result.is_ok().then(|| value.to_vec()));
        result
    }

    /// Sets a property in this view only, for the later stages of this chain, without a host call:
    /// Envoy's filter state does not get it, so nothing outside this module can read it.
    pub fn keep_property(&self, path: &[&str], value: &[u8]) {
        self.remember_property(path, Some(value.to_vec()));
    }

    /// Hands a verified token's claims to the later stages: `json` kept in this view as the claims
    /// property, and with `publish` set in Envoy's filter state as well; `claims` (the same, parsed)
    /// answers [`RequestProperties::claim`] so that no stage parses the JSON again. `Err` when the host
    /// refused the property (logged; later stages then see no claims).
    pub fn put_claims(&self, json: &[u8], claims: Rc<Claims>, publish: bool) -> Result<(), ffi::Status> {
        if publish {
            self.set_property(&[CLAIMS_PROPERTY], json)?;
        } else {
            self.keep_property(&[CLAIMS_PROPERTY], json);
        }
        self.claims.replace(Some(Some(claims)));
        Ok(())
    }

    fn remember_property(&self, path: &[&str], known: Option<Vec<u8>>) {
        if path == [CLAIMS_PROPERTY] {
            self.claims.replace(None);
        }
        let mut properties = self.properties.borrow_mut();
        properties.retain(|(p, _)| p.iter().map(String::as_str).ne(path.iter().copied()));
        properties.push((path.iter().map(|s| s.to_string()).collect(), known));
    }

    /// Asks Envoy to select the route again after a header change that should affect routing, through
    /// its `clear_route_cache` foreign function (Envoy PR #36671 made that the explicit way; the
    /// Envoys verified here, 1.36–1.40, also re-select on their own after a Wasm header change, so on
    /// a host without the function the header still routes). Returns whether the host has it; says
    /// once per VM, at info, which way this host works.
    pub fn clear_route_cache(&self) -> bool {
        let result = ffi::call_foreign_function("clear_route_cache", &[]);
        ROUTE_CACHE_REPORTED.with(|reported| {
            if !reported.replace(true) {
                match &result {
                    Ok(_) => log::info!("route re-selection: through the host's clear_route_cache function"),
                    Err(status) => log::info!(
                        "route re-selection: the host has no clear_route_cache function (status {status}); relying on its automatic route cache clearing"
                    ),
                }
            }
        });
        result.is_ok()
    }

    /// Envoy's clock, read once per request.
    pub fn now(&self) -> Duration {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = ProxyClock.now();
        self.now.set(Some(now));
        now
    }

    /// Forgets what was read (a request resumed after a delay may have been changed meanwhile; a request
    /// that went away needs none of it).
    fn forget(&self) {
        self.headers.replace(None);
        self.properties.borrow_mut().clear();
        self.claims.replace(None);
        self.now.set(None);
    }
}

impl RequestHeaders for ChainRequest {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        // Envoy hands back the first value of a repeated header; so does this view.
        self.with_headers(|headers| headers.values(name.as_bytes()).next().map(<[u8]>::to_vec))
    }

    fn header_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.with_headers(|headers| headers.values(name.as_bytes()).map(<[u8]>::to_vec).collect())
    }
}

impl RequestProperties for ChainRequest {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        if let Some((_, v)) =
            self.properties.borrow().iter().find(|(p, _)| p.iter().map(String::as_str).eq(path.iter().copied()))
        {
            return v.clone();
        }
        let v = ffi::get_property(path);
        self.properties.borrow_mut().push((path.iter().map(|s| s.to_string()).collect(), v.clone()));
        v
    }

    /// From the claims jwt-authz handed over in this module, or else the claims property parsed once
    /// per request.
    fn claim(&self, name: &str) -> Option<String> {
        let known = self.claims.borrow().clone();
        let claims = match known {
            Some(claims) => claims,
            None => {
                let parsed = self.property(&[CLAIMS_PROPERTY]).and_then(|json| claims::parse(&json)).map(Rc::new);
                self.claims.replace(Some(parsed.clone()));
                parsed
            }
        };
        claims::claim_of(claims.as_deref()?, name)
    }
}

/// The message of a gRPC call that ended OK: taken in whole, up to [`MAX_GRPC_ANSWER`] bytes.
fn read_answer(size: usize) -> CallOutcome {
    if size > MAX_GRPC_ANSWER {
        return CallOutcome::Unreadable("answered more than 64 KiB");
    }
    match ffi::get_buffer(ffi::BUFFER_GRPC_RECEIVE, 0, size) {
        // (An empty message, size 0, comes back as an absent buffer: `Ok` and empty, an answer.)
        Ok(bytes) if bytes.len() == size => CallOutcome::Ok(bytes),
        _ => CallOutcome::Unreadable("answered a message the host could not hand over whole"),
    }
}

/// Starts a gRPC call through the SDK from `ctx` (which the SDK then gives the answer to).
fn dispatch(ctx: &dyn Context, call: &GrpcCall) -> Result<u32, u32> {
    ffi::dispatch_grpc_call(ctx, &call.upstream, call.service, call.method, &call.message, call.timeout)
}

/// One filter's proxy-wasm side, built from its pluginConfig in `on_configure`.
pub trait Stage {
    /// The filter's name (`fault`, `rate-limit`).
    fn filter(&self) -> &'static str;

    /// The request-headers step, for the current (effective) HTTP context. The stage reads the request
    /// and changes its headers and properties through `req`; the chain sends a [`Decided::Respond`]
    /// reply and parks a [`Decided::Pause`].
    fn on_request_headers(&self, req: &ChainRequest) -> Step;

    /// The outcome of the gRPC call this stage's step asked for, for the same request; the returned
    /// step is applied as a request-headers step would be.
    fn on_call_response(&self, _req: &ChainRequest, _outcome: CallOutcome, carry: Carry) -> Step {
        Step { action: Decided::Continue, response_headers: carry.headers, notify_done: false }
    }

    /// The request is over (its context is gone); only for requests whose step set `notify_done`.
    fn on_done(&self) {}

    /// The stage's counters (flushed to Envoy on the root tick).
    fn metrics(&self) -> &ProxyMetrics;

    /// Periodic work on the root context (at most every [`Stage::tick_period`]): flush metrics, start
    /// HTTP calls. Returns the tokens of HTTP calls it dispatched; their responses come back to
    /// [`Stage::on_http_call_response`].
    fn on_tick(&self) -> Vec<u32> {
        self.flush();
        Vec::new()
    }

    /// How often the stage wants [`Stage::on_tick`].
    fn tick_period(&self) -> Duration {
        METRICS_FLUSH
    }

    /// The response to an HTTP call this stage dispatched (read it with the `HttpCallResponse*` maps).
    fn on_http_call_response(&self, _token: u32, _num_headers: usize, _body_size: usize) {}

    /// Hands pending metric increments to Envoy (also before the stage is replaced by a new config).
    fn flush(&self) {
        self.metrics().flush();
    }
}

/// Builds the stages from the plugin's configuration and name. A refusal names the filter whose log
/// prefix it is logged under (a bundle's chain-level errors: the bundle's own name).
pub type Build = fn(config: &[u8], instance: &str) -> Result<Vec<Box<dyn Stage>>, (&'static str, ConfigError)>;

/// Starts a module: installs the logger and panic hook and the chain's root context. `name` is the
/// module's name as in its log prefix (`fault`, or `meshplug` for the bundle). Call from `main!`.
pub fn start(name: &'static str, build: Build) {
    wasm::init(name);
    MODULE.set(Some((name, build)));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        let (name, build) = MODULE.get().unwrap_or(("meshplug", |_, _| Ok(Vec::new())));
        Box::new(ChainRoot::new(name, build))
    });
}

thread_local! {
    /// The module's name and stage builder, set once by [`start`] (the SDK takes a plain fn pointer).
    static MODULE: Cell<Option<(&'static str, Build)>> = const { Cell::new(None) };
}

struct Parked {
    context_id: u32,
    then: Option<LocalReply>,
    request: Rc<RequestState>,
}

impl Parked {
    /// Takes the parked request out of the parking (its client went away). Its headers copy is freed
    /// with it.
    fn cancel(chain: &Chain, request: &RequestState) {
        if let Some(id) = request.parked.take() {
            chain.parked.borrow_mut().remove(id);
            chain.retick();
        }
        request.view.forget();
    }
}

thread_local! {
    static RESUME_ERRORS: HostErrorLog = const { HostErrorLog::new() };
    static CALL_ERRORS: HostErrorLog = const { HostErrorLog::new() };
}

/// A request waiting for a gRPC answer.
struct Waiting {
    context_id: u32,
    request: Rc<RequestState>,
    stage: usize,
    carry: Carry,
    /// When the call left, plus its timeout (less a margin): Envoy reports a call that timed out as
    /// UNAVAILABLE (checked on 1.40), so a failure from then on is told to the stage as
    /// DEADLINE_EXCEEDED.
    deadline: Duration,
}

/// What a worker's HTTP contexts share with its root context.
struct Chain {
    stages: Vec<Box<dyn Stage>>,
    parked: RefCell<Timers<Parked>>,
    /// Requests waiting for a gRPC answer: token → (context id, request, stage index, carried headers).
    calls: RefCell<HashMap<u32, Waiting>>,
    /// The tick period last asked of Envoy.
    period: Cell<Duration>,
}

impl Chain {
    /// The fastest pace at which a stage wants ticks (a stage may change it, e.g. once keys arrived).
    fn stage_period(&self) -> Duration {
        self.stages.iter().map(|s| s.tick_period()).min().unwrap_or(METRICS_FLUSH)
    }

    /// Asks Envoy for the tick period the chain needs now (fast while something is parked).
    fn retick(&self) {
        let want = if self.parked.borrow().is_empty() { self.stage_period() } else { PARKED_TICK };
        if self.period.replace(want) != want {
            let _ = ffi::set_tick_period(want);
        }
    }

    /// Runs the stages from `request.next` on for the current context (`ctx` dispatches gRPC calls
    /// so their answers come back to it). `Continue` when they all let the request through; `Pause`
    /// when one answered, parked it, or is waiting for a call.
    fn run(&self, ctx: &dyn Context, context_id: u32, request: &Rc<RequestState>) -> Action {
        while let Some(stage) = self.stages.get(request.next.get()) {
            let index = request.next.get();
            request.next.set(index + 1);
            let step = stage.on_request_headers(&request.view);
            if let Some(action) = self.apply(ctx, context_id, request, index, step) {
                return action;
            }
        }
        Action::Continue
    }

    /// Applies one stage's step; `Some` when the chain stops here for now.
    fn apply(
        &self,
        ctx: &dyn Context,
        context_id: u32,
        request: &Rc<RequestState>,
        index: usize,
        step: Step,
    ) -> Option<Action> {
        if step.notify_done {
            request.notify.borrow_mut().push(index);
        }
        match step.action {
            Decided::Continue => {
                request.response_headers.borrow_mut().push(step.response_headers);
                None
            }
            Decided::Respond(reply) => {
                request.next.set(usize::MAX);
                wasm::send_reply(&reply);
                Some(Action::Pause)
            }
            Decided::Pause { delay, then } => {
                if then.is_none() {
                    request.response_headers.borrow_mut().push(step.response_headers);
                } else {
                    request.next.set(usize::MAX);
                }
                // On the monotonic clock: a wall-clock step must not hold the request longer.
                let deadline = MonotonicClock.now() + delay;
                let id = self.parked.borrow_mut().push(deadline, Parked { context_id, then, request: request.clone() });
                request.parked.set(Some(id));
                self.retick();
                Some(Action::Pause)
            }
            Decided::Call(call) => match dispatch(ctx, &call) {
                Ok(token) => {
                    request.calling.set(Some(token));
                    // Envoy's timer and the clock the module reads are not the same clock: a timeout can be
                    // reported a little before `now + timeout` reads as passed, so allow a tenth (at least
                    // 5 ms). A failure that fast is otherwise a refused connection, which takes far less.
                    let margin = (call.timeout / 10).max(Duration::from_millis(5));
                    let deadline = MonotonicClock.now() + call.timeout.saturating_sub(margin);
                    let waiting =
                        Waiting { context_id, request: request.clone(), stage: index, carry: call.carry, deadline };
                    self.calls.borrow_mut().insert(token, waiting);
                    Some(Action::Pause)
                }
                Err(status) => {
                    CALL_ERRORS
                        .with(|l| l.report(&format!("call {} on cluster {}", call.service, call.cluster), status));
                    let stage = self.stages.get(index)?;
                    let step = stage.on_call_response(&request.view, CallOutcome::Failed(GRPC_UNAVAILABLE), call.carry);
                    self.apply(ctx, context_id, request, index, step)
                }
            },
        }
    }

    /// A gRPC answer (or failure) for `token`: the waiting stage decides, then the chain goes on. For
    /// the current context, which the SDK made the request's own.
    fn on_call_response(&self, ctx: &dyn Context, token: u32, status: u32, size: usize) {
        let Some(Waiting { context_id, request, stage: index, carry, deadline }) =
            self.calls.borrow_mut().remove(&token)
        else {
            return;
        };
        request.calling.set(None);
        // Time passed while the call ran: what the stages decide next reads the clock again.
        request.view.now.set(None);
        // The answer may come to the root context (a call made while the root resumed the request
        // after a delay): act on the request's own context. A request that went away: nothing to do.
        if ffi::set_effective_context(context_id).is_err() {
            request.view.forget();
            return;
        }
        let outcome = if status == 0 {
            read_answer(size)
        } else if MonotonicClock.now() >= deadline {
            CallOutcome::Failed(GRPC_DEADLINE_EXCEEDED)
        } else {
            CallOutcome::Failed(status)
        };
        let Some(stage) = self.stages.get(index) else { return };
        let step = stage.on_call_response(&request.view, outcome, carry);
        let action = match self.apply(ctx, context_id, &request, index, step) {
            Some(action) => action,
            None => self.run(ctx, context_id, &request),
        };
        if matches!(action, Action::Continue) {
            if let Err(status) = ffi::continue_request() {
                RESUME_ERRORS.with(|l| l.report("resume a request after its call", status));
            }
        }
    }

    /// Resumes (or answers) every parked request whose deadline has passed.
    fn wake_due(&self, ctx: &dyn Context, now: Duration) {
        let due = self.parked.borrow_mut().pop_due(now);
        for parked in due {
            parked.request.parked.set(None);
            // A request whose client went away is no longer known to Envoy: nothing to do.
            if ffi::set_effective_context(parked.context_id).is_err() {
                parked.request.view.forget();
                continue;
            }
            match &parked.then {
                Some(reply) => wasm::send_reply(reply),
                None => {
                    parked.request.view.forget();
                    if matches!(self.run(ctx, parked.context_id, &parked.request), Action::Continue) {
                        if let Err(status) = ffi::continue_request() {
                            RESUME_ERRORS.with(|l| l.report("resume a delayed request", status));
                        }
                    }
                }
            }
        }
        self.retick();
    }
}

struct ChainRoot {
    name: &'static str,
    build: Build,
    chain: Option<Rc<Chain>>,
    /// Outstanding HTTP calls: token → stage index.
    calls: HashMap<u32, usize>,
    /// When the stages' next tick is due.
    next_stage_tick: Duration,
}

impl ChainRoot {
    fn new(name: &'static str, build: Build) -> Self {
        Self { name, build, chain: None, calls: HashMap::new(), next_stage_tick: Duration::ZERO }
    }

    fn tick_stages(&mut self, chain: &Chain) {
        for (index, stage) in chain.stages.iter().enumerate() {
            for token in stage.on_tick() {
                self.calls.insert(token, index);
            }
        }
    }
}

impl Context for ChainRoot {
    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        // A call dispatched while the root ran the chain (a request resumed after a delay).
        if let Some(chain) = self.chain.clone() {
            chain.on_call_response(&*self, token, status, size);
        }
    }

    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _: usize) {
        let Some(index) = self.calls.remove(&token) else { return };
        if let Some(stage) = self.chain.as_ref().and_then(|c| c.stages.get(index)) {
            stage.on_http_call_response(token, num_headers, body_size);
        }
    }
}

impl RootContext for ChainRoot {
    fn on_vm_start(&mut self, _: usize) -> bool {
        wasm::log_version(self.name);
        true
    }

    fn on_configure(&mut self, _: usize) -> bool {
        let stages = match (self.build)(&wasm::plugin_configuration(), &wasm::plugin_instance(self.name)) {
            Ok(stages) => stages,
            Err((filter, e)) => return wasm::refuse_config(filter, &e),
        };
        if let Some(previous) = &self.chain {
            previous.stages.iter().for_each(|s| s.flush());
        }
        if stages.len() > 1 {
            let names: Vec<&str> = stages.iter().map(|s| s.filter()).collect();
            log::info!(target: self.name, "configured chain: {}", names.join(" → "));
        }
        let chain = Rc::new(Chain {
            stages,
            parked: RefCell::default(),
            calls: RefCell::default(),
            period: Cell::new(Duration::ZERO),
        });
        chain.retick();
        self.calls.clear();
        self.next_stage_tick = Duration::ZERO;
        self.chain = Some(chain);
        true
    }

    fn on_tick(&mut self) {
        let Some(chain) = self.chain.clone() else { return };
        let now = MonotonicClock.now();
        if !chain.parked.borrow().is_empty() {
            chain.wake_due(&*self, now);
        }
        if now >= self.next_stage_tick {
            self.tick_stages(&chain);
            self.next_stage_tick = now + chain.stage_period();
            chain.retick();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Envoy creates no request contexts for a plugin whose configuration was refused; should it
        // ever, an empty chain lets the request through rather than the SDK panicking on `None`.
        let chain = self.chain.clone().unwrap_or_else(|| {
            Rc::new(Chain {
                stages: Vec::new(),
                parked: RefCell::default(),
                calls: RefCell::default(),
                period: Cell::new(Duration::ZERO),
            })
        });
        Some(Box::new(ChainHttp { id: context_id, chain, request: Rc::new(RequestState::default()) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request's progress through the chain, shared with the parking entry while it waits.
#[derive(Default)]
struct RequestState {
    /// The index of the next stage to run (`usize::MAX` once a stage answered).
    next: Cell<usize>,
    /// Where the request waits while a stage delays it.
    parked: Cell<Option<TimerId>>,
    /// The gRPC call the request waits for.
    calling: Cell<Option<u32>>,
    /// Response headers per stage that let the request through, in chain order.
    response_headers: RefCell<Vec<Vec<Header>>>,
    /// Stages to tell when the request ends.
    notify: RefCell<Vec<usize>>,
    view: ChainRequest,
}

struct ChainHttp {
    id: u32,
    chain: Rc<Chain>,
    request: Rc<RequestState>,
}

impl ChainHttp {
    fn hold_while_parked(&self) -> Action {
        // A stage that answered (`next` = MAX) also keeps the rest of the stream from going upstream.
        if self.request.parked.get().is_some()
            || self.request.calling.get().is_some()
            || self.request.next.get() == usize::MAX
        {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}

impl Context for ChainHttp {
    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let chain = self.chain.clone();
        chain.on_call_response(&*self, token, status, size);
    }
}

impl HttpContext for ChainHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let chain = self.chain.clone();
        chain.run(&*self, self.id, &self.request)
    }

    fn on_http_request_body(&mut self, _: usize, _: bool) -> Action {
        // While parked, keep the body buffered: letting it through would resume the request early.
        self.hold_while_parked()
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        // Trailers too: a Continue here would send the stream upstream before the later stages ran.
        self.hold_while_parked()
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        for headers in self.request.response_headers.borrow().iter().rev() {
            wasm::add_response_headers(headers);
        }
        Action::Continue
    }
}

impl Drop for ChainHttp {
    fn drop(&mut self) {
        Parked::cancel(&self.chain, &self.request);
        // A call still in flight: Envoy cancels it with the stream; forget the request.
        if let Some(token) = self.request.calling.take() {
            self.chain.calls.borrow_mut().remove(&token);
        }
        for index in self.request.notify.borrow().iter() {
            if let Some(stage) = self.chain.stages.get(*index) {
                stage.on_done();
            }
        }
    }
}
