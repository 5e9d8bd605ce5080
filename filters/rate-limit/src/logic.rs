//! What the rate-limit filter decides for one request. No proxy-wasm here: the host is reached through
//! `meshplug_common::host` traits, so the same code runs natively in tests, in `rate_limit.wasm` and in
//! the bundle.
//!
//! Each limit is a `governor` GCRA limiter whose state store is a staging cell: for a request, the
//! rule's bucket is read from shared data ([`crate::slots`]), every limit of the rule is checked
//! against it, and only if all allow are the new TATs written back with compare-and-swap (a lost race
//! re-reads and re-checks). A refused request changes nothing. Time comes from the host clock; every
//! limiter's clock starts at the Unix epoch, so the TATs mean the same in every worker.

use crate::config::{EntrySource, KeySpec, OnError, OnMissingKey, RateLimitConfig};
use crate::global::{self, Descriptor};
use crate::keys::key_of;
use crate::slots::{Claim, SlotTable};
use governor::clock::Clock as GovernorClock;
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::nanos::Nanos;
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use meshplug_common::config::ConfigError;
use meshplug_common::counter::MAX_CAS_RETRIES;
use meshplug_common::host::{Metrics, Random, Request, SharedData, SharedDataError, CREATE_ONLY};
use meshplug_common::reply::{Action, CallOutcome, Carry, GrpcCall, Header, LocalReply, Text, GRPC_DEADLINE_EXCEEDED};
use meshplug_common::throttle::LogThrottle;
use siphasher::sip128::{Hasher128, SipHasher13};
use std::cell::Cell;
use std::hash::Hasher;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::Duration;

/// The filter's name: log prefix `[rate-limit]`, metrics `meshplug.rate_limit.*`.
pub const FILTER: &str = "rate-limit";

meshplug_common::metric_table! {
    /// Per-rule metrics: `meshplug.rate_limit.<rule>.<name>`; index = rule × len + metric.
    pub enum Metric / RULE_METRICS {
        Allowed => "allowed",
        Limited => "limited",
        ShadowLimited => "shadow_limited",
        MissingKey => "missing_key",
        Errors => "errors",
        SlotsCreated => "slots_created",
        SharedBucket => "shared_bucket",
        GlobalAllowed => "global_allowed",
        GlobalLimited => "global_limited",
        GlobalShadowLimited => "global_shadow_limited",
        GlobalTimeout => "global_timeout",
        GlobalUnavailable => "global_unavailable",
        GlobalBadResponse => "global_bad_response",
        GlobalHeadersDropped => "global_headers_dropped",
    }
}

/// The `<rule>.<metric>` names to define, in index order.
pub fn metric_names(config: &RateLimitConfig) -> Vec<String> {
    config.rules.iter().flat_map(|r| RULE_METRICS.iter().map(move |m| format!("{}.{m}", r.name))).collect()
}

fn metric_index(rule: usize, m: Metric) -> usize {
    rule * RULE_METRICS.len() + m as usize
}

/// The key of the bucket shared by requests without a key value (`onMissingKey: unknown`). No real
/// key can equal it: header values cannot contain NUL.
const UNKNOWN_KEY: &[u8] = b"\0unknown";
const LOG_PERIOD: Duration = Duration::from_secs(10);
/// Host times are clamped to 2^62 ns after the epoch (year 2116), leaving room for TAT arithmetic.
const LATEST_TIME: Duration = Duration::from_nanos(1 << 62);

/// governor's state store, staged in a cell: the request's bucket is put in before a check and the
/// new TAT read out after it.
struct Staged(Rc<Cell<Option<Nanos>>>);

impl StateStore for Staged {
    type Key = NotKeyed;

    fn measure_and_replace<T, F, E>(&self, _: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let (outcome, next) = f(self.0.get())?;
        self.0.set(Some(next));
        Ok(outcome)
    }
}

/// governor's clock: the host's time since the Unix epoch, set before each decision. It reads 0 when a
/// limiter is built, so every limiter in every worker starts at the epoch.
#[derive(Clone)]
struct HostTime(Rc<Cell<Duration>>);

impl GovernorClock for HostTime {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.0.get()
    }
}

type Limiter = RateLimiter<NotKeyed, Staged, HostTime, StateInformationMiddleware>;

struct LimitRt {
    limiter: Limiter,
    staged: Rc<Cell<Option<Nanos>>>,
    capacity: u32,
    /// The furthest a bucket's TAT can legitimately be ahead of the clock: an empty bucket's refill time
    /// (capacity × emission interval; governor's `tau + t`). A stored TAT further ahead means the wall clock stepped back; it is
    /// clamped to this, so a clock step refuses traffic for at most one emission interval (never for
    /// the length of the step), and a step forward finds full buckets (at most the burst at once).
    max_ahead: u64,
}

struct RuleRt {
    table: SlotTable,
    limits: Vec<LimitRt>,
    shadow_log: LogThrottle,
    error_log: LogThrottle,
}

/// What the host gives the filter for one decision.
pub struct Env<'a> {
    pub shared: &'a dyn SharedData,
    pub metrics: &'a dyn Metrics,
    /// Host time since the Unix epoch.
    pub now: Duration,
}

/// The quota state reported in `ratelimit-*` headers: the most restrictive limit that applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again (rounded up).
    pub reset: u64,
}

impl QuotaState {
    /// The one to report of `shown` so far and `next`: fewer remaining, then the later reset.
    fn tighter(shown: Option<Self>, next: Self) -> Self {
        match shown {
            Some(s) if (s.remaining, std::cmp::Reverse(s.reset)) <= (next.remaining, std::cmp::Reverse(next.reset)) => {
                s
            }
            _ => next,
        }
    }
}

/// The filter's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `Continue`, `Respond` with the refusal, or `Call` the rate limit service (global rules).
    pub action: Action,
    /// Headers to add to the upstream's response (when the request goes on).
    pub response_headers: Vec<Header>,
    /// Headers the rate limit service asked to add to the request (when it goes on).
    pub request_headers: Vec<(String, String)>,
}

fn verdict(action: Action, response_headers: Vec<Header>) -> Verdict {
    Verdict { action, response_headers, request_headers: Vec::new() }
}

/// The value sent for a global entry whose request value is missing (`onMissingKey: unknown`).
pub const UNKNOWN_VALUE: &str = "unknown";

/// A configured rate-limit filter.
pub struct RateLimit {
    config: RateLimitConfig,
    rules: Vec<RuleRt>,
    now: Rc<Cell<Duration>>,
    seed: Cell<(u64, u64)>,
    seed_key: String,
    global_log: LogThrottle,
    /// The rate limit service's serialized GrpcService, built once here rather than per request.
    upstream: std::rc::Rc<[u8]>,
    /// The rate limit service's cluster name (log lines of a failed call).
    cluster: std::rc::Rc<str>,
}

/// The quota headers' names (IETF draft-ietf-httpapi-ratelimit-headers, the three-header form).
const LIMIT: &str = "ratelimit-limit";
const REMAINING: &str = "ratelimit-remaining";
const RESET: &str = "ratelimit-reset";

/// The quota a request's own `ratelimit-*` headers carry (set before the service was asked).
fn parse_quota(headers: &[Header]) -> Option<QuotaState> {
    let get = |name: &str| headers.iter().find(|(k, _)| *k == name).and_then(|(_, v)| v.parse::<u64>().ok());
    Some(QuotaState {
        limit: u32::try_from(get(LIMIT)?).ok()?,
        remaining: u32::try_from(get(REMAINING)?).ok()?,
        reset: get(RESET)?,
    })
}

enum Charged {
    Allowed(QuotaState),
    Refused { quota: QuotaState, wait: Duration },
}

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateLimit {
    /// `instance` names this plugin instance (its root id) in shared-data keys.
    pub fn new(config: RateLimitConfig, instance: &str) -> Result<Self, ConfigError> {
        let now = Rc::new(Cell::new(Duration::ZERO));
        let mut rules = Vec::with_capacity(config.rules.len());
        for (i, rule) in config.rules.iter().enumerate() {
            let mut limits = Vec::with_capacity(rule.limits.len());
            for (j, limit) in rule.limits.iter().enumerate() {
                let pointer = format!("/rules/{i}/limits/{j}");
                let capacity = NonZeroU32::new(limit.capacity())
                    .ok_or_else(|| ConfigError::new(format!("{pointer}/requests"), "must be at least 1"))?;
                let quota = Quota::with_period(limit.emission_interval())
                    .ok_or_else(|| ConfigError::new(format!("{pointer}/per"), "must be longer than 0"))?
                    .allow_burst(capacity);
                let staged = Rc::new(Cell::new(None));
                let limiter: Limiter = RateLimiter::<NotKeyed, Staged, HostTime, NoOpMiddleware<Duration>>::new(
                    quota,
                    Staged(staged.clone()),
                    HostTime(now.clone()),
                )
                .with_middleware::<StateInformationMiddleware>();
                let interval = u64::try_from(limit.emission_interval().as_nanos()).unwrap_or(u64::MAX);
                let max_ahead = interval.saturating_mul(u64::from(capacity.get()));
                limits.push(LimitRt { limiter, staged, capacity: capacity.get(), max_ahead });
            }
            let prefix = format!("meshplug.rate_limit.{instance}.{}", rule.name);
            rules.push(RuleRt {
                table: SlotTable::new(prefix, config.max_keys, rule.limits.len()),
                limits,
                shadow_log: LogThrottle::default(),
                error_log: LogThrottle::default(),
            });
        }
        let seed_key = format!("meshplug.rate_limit.{instance}.seed");
        let upstream = config
            .rate_limit_service
            .as_ref()
            .map_or_else(Vec::new, |svc| meshplug_common::reply::grpc_service(&svc.cluster, &svc.authority()))
            .into();
        let cluster = config.rate_limit_service.as_ref().map_or("", |svc| svc.cluster.as_str()).into();
        Ok(Self {
            config,
            rules,
            now,
            seed: Cell::new((0, 0)),
            seed_key,
            global_log: LogThrottle::default(),
            upstream,
            cluster,
        })
    }

    pub fn from_json(bytes: &[u8], instance: &str) -> Result<Self, ConfigError> {
        Self::new(RateLimitConfig::from_json(bytes)?, instance)
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Configure-time set-up: the hashing seed, shared by every worker of the process through shared
    /// data (the first VM to configure creates it; Envoy configures the main thread's VM before the
    /// workers', so they all read the same seed).
    pub fn prepare(&self, shared: &dyn SharedData, random: &mut dyn Random) {
        let read = |shared: &dyn SharedData| {
            shared.get(&self.seed_key).0.and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
        };
        let seed = match read(shared) {
            Some(s) => s,
            None => {
                let mut fresh = [0u8; 16];
                fresh[..8].copy_from_slice(&random.next_u64().to_le_bytes());
                fresh[8..].copy_from_slice(&random.next_u64().to_le_bytes());
                // CasMismatch: another VM created it first; the read below takes theirs.
                if let Err(SharedDataError::Host(e)) = shared.set(&self.seed_key, &fresh, Some(CREATE_ONLY)) {
                    log::warn!("cannot store the hashing seed: {e}");
                }
                read(shared).unwrap_or(fresh)
            }
        };
        let (a, b) = seed.split_at(8);
        let word = |s: &[u8]| <[u8; 8]>::try_from(s).map(u64::from_le_bytes).unwrap_or(0);
        self.seed.set((word(a), word(b)));
    }

    fn hash(&self, key: &[u8]) -> (u64, u64) {
        let (k0, k1) = self.seed.get();
        let mut h = SipHasher13::new_with_keys(k0, k1);
        h.write(key);
        let h = h.finish128();
        (h.h1, h.h2)
    }

    /// Decides one request.
    pub fn on_request(&self, req: &dyn Request, env: &Env) -> Verdict {
        // A broken host clock far in the future must not overflow the GCRA arithmetic.
        let env = &Env { now: env.now.min(LATEST_TIME), ..*env };
        self.now.set(env.now);
        let mut shown: Option<QuotaState> = None;
        let mut refusal: Option<Duration> = None;
        for (i, (rule, rt)) in self.config.rules.iter().zip(&self.rules).enumerate() {
            if rule.limits.is_empty() || !rule.matches.matches(req) {
                continue;
            }
            let key = match key_of(&rule.key, req) {
                Some(k) => k,
                None => {
                    env.metrics.increment(metric_index(i, Metric::MissingKey));
                    if rule.on_missing_key == OnMissingKey::Allow {
                        continue;
                    }
                    UNKNOWN_KEY.to_vec()
                }
            };
            let (quota, refused_for) = match self.charge(rt, &key, env) {
                Ok((claim, charged)) => {
                    match claim {
                        Claim::Fresh { created: true } if matches!(charged, Charged::Allowed(_)) => {
                            env.metrics.increment(metric_index(i, Metric::SlotsCreated))
                        }
                        Claim::Shared => env.metrics.increment(metric_index(i, Metric::SharedBucket)),
                        _ => {}
                    }
                    match charged {
                        Charged::Allowed(q) => {
                            env.metrics.increment(metric_index(i, Metric::Allowed));
                            (q, None)
                        }
                        Charged::Refused { quota, wait } if rule.shadow => {
                            env.metrics.increment(metric_index(i, Metric::ShadowLimited));
                            if let Some(n) = rt.shadow_log.event(env.now, LOG_PERIOD) {
                                log::info!(
                                    "shadow: rule {} would have refused {n} request(s) since its last report \
                                     (latest: retry after {:?})",
                                    rule.name,
                                    wait
                                );
                            }
                            (quota, None)
                        }
                        Charged::Refused { quota, wait } => {
                            env.metrics.increment(metric_index(i, Metric::Limited));
                            (quota, Some(wait))
                        }
                    }
                }
                Err(why) => {
                    env.metrics.increment(metric_index(i, Metric::Errors));
                    let deny = self.config.on_error == OnError::Deny && !rule.shadow;
                    if let Some(n) = rt.error_log.event(env.now, LOG_PERIOD) {
                        log::warn!(
                            "rule {}: cannot update the shared bucket ({why}); {n} request(s) {} since the last report",
                            rule.name,
                            if deny { "refused (onError: deny)" } else { "let through" }
                        );
                    }
                    if !deny {
                        continue;
                    }
                    let limit = rt.limits.first().map(|l| l.capacity).unwrap_or(0);
                    (QuotaState { limit, remaining: 0, reset: 1 }, Some(Duration::from_secs(1)))
                }
            };
            if let Some(wait) = refused_for {
                refusal = Some(refusal.map_or(wait, |w| w.max(wait)));
            }
            shown = Some(QuotaState::tighter(shown, quota));
        }
        if let Some(wait) = refusal {
            return self.refuse(shown, wait, Vec::new(), None);
        }
        let headers = self.quota_headers(shown);
        // Local limits passed: global rules ask the rate limit service (one call for all of them).
        let (indices, descriptors): (Vec<usize>, Vec<Descriptor>) =
            self.global_descriptors(req, env).into_iter().unzip();
        match (&self.config.rate_limit_service, descriptors.is_empty()) {
            (Some(svc), false) => {
                let message = global::encode_request(&svc.domain, &descriptors);
                let call = GrpcCall {
                    cluster: self.cluster.clone(),
                    upstream: self.upstream.clone(),
                    service: global::SERVICE,
                    method: global::METHOD,
                    message,
                    timeout: svc.timeout.0,
                    carry: Carry { headers, indices },
                };
                verdict(Action::Call(call), Vec::new())
            }
            _ => verdict(Action::Continue, headers),
        }
    }

    /// The `ratelimit-*` headers for `shown` (the names are constants: only the numbers are made).
    fn quota_headers(&self, shown: Option<QuotaState>) -> Vec<Header> {
        match (self.config.response.headers, shown) {
            (true, Some(q)) => vec![
                (Text::Static(LIMIT), Text::Owned(q.limit.to_string())),
                (Text::Static(REMAINING), Text::Owned(q.remaining.to_string())),
                (Text::Static(RESET), Text::Owned(q.reset.to_string())),
            ],
            _ => Vec::new(),
        }
    }

    /// The refusal: the configured status and body (or the service's body), quota headers and
    /// `retry-after`, plus headers the service asked for.
    fn refuse(
        &self,
        shown: Option<QuotaState>,
        wait: Duration,
        extra: Vec<(String, String)>,
        body: Option<Vec<u8>>,
    ) -> Verdict {
        let mut headers: Vec<(String, String)> =
            self.quota_headers(shown).into_iter().map(|(k, v)| (k.into_string(), v.into_string())).collect();
        if self.config.response.headers {
            headers.push(("retry-after".to_string(), secs_ceil(wait).max(1).to_string()));
        }
        headers.extend(extra);
        let reply = LocalReply {
            status: self.config.response.status,
            grpc_status: None,
            headers,
            body: body.unwrap_or_else(|| self.config.response.body.as_bytes().to_vec()),
        };
        verdict(Action::Respond(reply), Vec::new())
    }

    /// The descriptors of the matching global rules, in rule order, each with its rule's index; a
    /// missing request value is counted.
    fn global_descriptors(&self, req: &dyn Request, env: &Env) -> Vec<(usize, Descriptor)> {
        let mut out = Vec::new();
        'rules: for (i, rule) in self.config.rules.iter().enumerate() {
            let Some(global) = &rule.global else { continue };
            if !rule.matches.matches(req) {
                continue;
            }
            let mut entries = Vec::with_capacity(global.descriptors.len());
            for entry in &global.descriptors {
                let value = match &entry.source {
                    EntrySource::Value(v) => v.clone(),
                    EntrySource::Request(spec) => match key_of(spec, req) {
                        Some(v) if !v.is_empty() || matches!(spec, KeySpec::Global) => global::descriptor_value(&v),
                        _ => {
                            env.metrics.increment(metric_index(i, Metric::MissingKey));
                            if rule.on_missing_key == OnMissingKey::Allow {
                                continue 'rules;
                            }
                            UNKNOWN_VALUE.to_string()
                        }
                    },
                };
                entries.push((entry.key.clone(), value));
            }
            out.push((i, Descriptor { entries, hits_addend: global.hits_addend }));
        }
        out
    }

    /// Decides with the rate limit service's answer (or its failure) for the same request.
    /// `carry` is what [`RateLimit::on_request`] put in the call: its quota headers and the rule of
    /// each descriptor asked about.
    pub fn on_global_response(&self, env: &Env, outcome: CallOutcome, carry: Carry) -> Verdict {
        let Carry { headers: carried, indices: rules } = carry;
        let all_shadow = rules.iter().all(|i| self.config.rules.get(*i).is_some_and(|r| r.shadow));
        let failure = match &outcome {
            CallOutcome::Failed(GRPC_DEADLINE_EXCEEDED) => {
                Some((Metric::GlobalTimeout, "did not answer in time".to_string()))
            }
            CallOutcome::Failed(code) => Some((Metric::GlobalUnavailable, format!("failed (gRPC status {code})"))),
            CallOutcome::Unreadable(why) => Some((Metric::GlobalBadResponse, why.to_string())),
            CallOutcome::Ok(_) => None,
        };
        let answer = match (&outcome, failure) {
            (CallOutcome::Ok(bytes), None) => match global::decode_response(bytes) {
                // No statuses at all is an answer (Limitador gives only the overall code).
                Ok(r) if r.statuses.is_empty() || r.statuses.len() == rules.len() => Ok(r),
                Ok(r) => Err((
                    Metric::GlobalBadResponse,
                    format!("answered {} statuses for {} descriptors", r.statuses.len(), rules.len()),
                )),
                Err(_) => Err((Metric::GlobalBadResponse, "answered a message that does not decode".to_string())),
            },
            (_, Some(f)) => Err(f),
            (_, None) => Err((Metric::GlobalBadResponse, "no answer".to_string())),
        };
        let response = match answer {
            Ok(r) => r,
            Err((metric, why)) => {
                for i in &rules {
                    env.metrics.increment(metric_index(*i, metric));
                }
                let deny =
                    self.config.rate_limit_service.as_ref().is_some_and(|s| s.on_error == OnError::Deny) && !all_shadow;
                if self.global_log.event(env.now, LOG_PERIOD).is_some() {
                    log::warn!(
                        "rate limit service {why}; requests are {} (onError: {})",
                        if deny { "refused" } else { "let through" },
                        if deny { "deny" } else { "allow" }
                    );
                }
                if !deny {
                    return verdict(Action::Continue, carried);
                }
                let status = self.config.rate_limit_service.as_ref().map_or(500, |s| s.status_on_error);
                let reply = LocalReply {
                    status,
                    grpc_status: None,
                    headers: Vec::new(),
                    body: b"rate limit service unavailable\n".to_vec(),
                };
                return verdict(Action::Respond(reply), Vec::new());
            }
        };
        let mut shown = parse_quota(&carried);
        for status in &response.statuses {
            if let Some(limit) = status.limit {
                let q = QuotaState { limit, remaining: status.remaining, reset: status.reset_secs.unwrap_or(0) };
                shown = Some(QuotaState::tighter(shown, q));
            }
        }
        let mut refusal: Option<Duration> = None;
        // Which descriptors are over: the overall code decides, as for Envoy's own `ratelimit` filter
        // (source/extensions/filters/common/ratelimit/ratelimit_impl.cc: OVER_LIMIT refuses, OK and
        // UNKNOWN do not); statuses, when the service sends them, say which descriptors are over. An
        // answer without statuses (Limitador's) or whose statuses name none puts every one over.
        let over_limit = response.overall_code == global::CODE_OVER_LIMIT;
        let attributed = response.statuses.iter().any(|s| s.code == global::CODE_OVER_LIMIT);
        for (n, i) in rules.iter().enumerate() {
            let status = response.statuses.get(n);
            let over = over_limit && (!attributed || status.is_some_and(|s| s.code == global::CODE_OVER_LIMIT));
            if !over {
                env.metrics.increment(metric_index(*i, Metric::GlobalAllowed));
            } else if self.config.rules.get(*i).is_some_and(|r| r.shadow) {
                env.metrics.increment(metric_index(*i, Metric::GlobalShadowLimited));
            } else {
                env.metrics.increment(metric_index(*i, Metric::GlobalLimited));
                let wait = Duration::from_secs(status.and_then(|s| s.reset_secs).unwrap_or(1));
                refusal = Some(refusal.map_or(wait, |w| w.max(wait)));
            }
        }
        // Headers the service asks for: only those that cannot break the message or its routing; the
        // others are dropped and counted (under every rule asked).
        let (service_headers, dropped) = global::usable_headers(response.response_headers);
        let (request_headers, dropped_request) = global::usable_headers(response.request_headers);
        for _ in 0..dropped + dropped_request {
            for i in &rules {
                env.metrics.increment(metric_index(*i, Metric::GlobalHeadersDropped));
            }
        }
        if let Some(wait) = refusal {
            let body = (!response.raw_body.is_empty()).then_some(response.raw_body);
            return self.refuse(shown, wait, service_headers, body);
        }
        let mut headers = self.quota_headers(shown);
        headers.extend(service_headers.into_iter().map(|(k, v)| (Text::Owned(k), Text::Owned(v))));
        Verdict { action: Action::Continue, response_headers: headers, request_headers }
    }

    /// Checks and charges every limit of one rule for `key`, atomically for the rule.
    fn charge(&self, rt: &RuleRt, key: &[u8], env: &Env) -> Result<(Claim, Charged), String> {
        let (fp, h2) = self.hash(key);
        let now_ns = u64::try_from(env.now.as_nanos()).unwrap_or(u64::MAX);
        for _ in 0..MAX_CAS_RETRIES {
            let slot = rt.table.locate(env.shared, fp, h2, now_ns);
            let mut next = Vec::with_capacity(rt.limits.len());
            let mut shown: Option<QuotaState> = None;
            let mut wait: Option<Duration> = None;
            // A TAT further ahead than any bucket can be means the wall clock stepped back: clamp it
            // (and write the clamp back even when the request is refused, so the bucket drains from
            // now on instead of after the length of the step).
            let clamped: Vec<u64> = rt
                .limits
                .iter()
                .zip(&slot.tats)
                .map(|(limit, stored)| (*stored).min(now_ns.saturating_add(limit.max_ahead)))
                .collect();
            for (limit, tat) in rt.limits.iter().zip(&clamped) {
                limit.staged.set((*tat != 0).then_some(Nanos::from(*tat)));
                let quota = match limit.limiter.check() {
                    Ok(snapshot) => {
                        let new_tat = limit.staged.get().map(Nanos::as_u64).unwrap_or(now_ns);
                        next.push(new_tat);
                        QuotaState {
                            limit: limit.capacity,
                            remaining: snapshot.remaining_burst_capacity(),
                            reset: secs_ceil(Duration::from_nanos(new_tat.saturating_sub(now_ns))),
                        }
                    }
                    Err(not_until) => {
                        let w = not_until.wait_time_from(env.now);
                        wait = Some(wait.map_or(w, |x| x.max(w)));
                        next.push(*tat);
                        QuotaState {
                            limit: limit.capacity,
                            remaining: 0,
                            reset: secs_ceil(Duration::from_nanos(tat.saturating_sub(now_ns))),
                        }
                    }
                };
                shown = Some(QuotaState::tighter(shown, quota));
            }
            let quota = shown.unwrap_or(QuotaState { limit: 0, remaining: 0, reset: 0 });
            if let Some(wait) = wait {
                if clamped != slot.tats {
                    // Best effort: a lost race means another worker wrote a fresher state.
                    let _ = rt.table.store(env.shared, &slot, &clamped);
                }
                return Ok((slot.claim, Charged::Refused { quota, wait }));
            }
            match rt.table.store(env.shared, &slot, &next) {
                Ok(()) => return Ok((slot.claim, Charged::Allowed(quota))),
                Err(SharedDataError::CasMismatch) => continue,
                Err(SharedDataError::Host(e)) => return Err(format!("host error {e}")),
            }
        }
        Err(format!("compare-and-swap lost {MAX_CAS_RETRIES} times in a row"))
    }
}

/// The rule key kinds, for logs.
pub fn describe_key(spec: &KeySpec) -> String {
    match spec {
        KeySpec::Global => "global".into(),
        KeySpec::Header(h) => format!("header {h}"),
        KeySpec::ClientIp { trusted_hops: 0, ipv6_prefix } => format!("client IP (IPv6 /{ipv6_prefix})"),
        KeySpec::ClientIp { trusted_hops, ipv6_prefix } => {
            format!("client IP ({trusted_hops} trusted hops, IPv6 /{ipv6_prefix})")
        }
        KeySpec::Path => "path".into(),
        KeySpec::Claim(c) => format!("claim {c}"),
    }
}

#[cfg(test)]
#[path = "tests/logic.rs"]
mod tests;
