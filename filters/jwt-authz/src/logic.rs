//! What the jwt-authz filter decides for one request: find the tokens, validate each (or take it from
//! the cache), hand the claims on, and apply the authorization policies. No proxy-wasm here.

use crate::cache::{TokenCache, Verified};
use crate::config::{JwtAuthzConfig, JwtRule};
use crate::jwks::KeySet;
use crate::policy::{decide, Auth, Decision};
use crate::remote::RemoteKeys;
use crate::token::{audiences, decode, numeric, Decoded, Reason};
use crate::verify::{verify, CryptoHost};
use meshplug_common::claims::{claim_of, Claims};
use meshplug_common::config::ConfigError;
use meshplug_common::host::{Metrics, Random, RequestHeaders, SharedData};
use meshplug_common::path::{cookie_values, query_params, split_path};
use meshplug_common::reply::{Action, LocalReply};
use meshplug_common::throttle::LogThrottle;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

pub const FILTER: &str = "jwt-authz";

meshplug_common::metric_table! {
    /// Metrics (`meshplug.jwt_authz.<name>`): these fixed ones, then `tokens_invalid_<reason>` per
    /// [`Reason::ALL`].
    pub enum Metric / FIXED_METRICS {
        TokensValid => "tokens_valid",
        CacheHits => "cache_hits",
        CacheMisses => "cache_misses",
        JwksFetchOk => "jwks_fetch_ok",
        JwksFetchFailed => "jwks_fetch_failed",
        JwksStale => "jwks_stale",
        PolicyAllow => "policy_allow",
        PolicyDeny => "policy_deny",
        NoToken => "no_token",
        OutputHeadersDropped => "output_headers_dropped",
        HeaderWriteFailed => "header_write_failed",
    }
}

pub fn metric_names() -> Vec<String> {
    FIXED_METRICS
        .iter()
        .map(|s| s.to_string())
        .chain(Reason::ALL.iter().map(|r| format!("tokens_invalid_{}", r.name())))
        .collect()
}

fn invalid_metric(r: Reason) -> usize {
    FIXED_METRICS.len() + Reason::ALL.iter().position(|x| *x == r).unwrap_or(0)
}

pub const UNAUTHORIZED_BODY: &str = "Jwt verification fails";
pub const FORBIDDEN_BODY: &str = "RBAC: access denied";
const LOG_PERIOD: Duration = Duration::from_secs(10);

/// What the host gives the filter for one decision.
pub struct Env<'a> {
    pub metrics: &'a dyn Metrics,
    pub crypto: &'a dyn CryptoHost,
    pub shared: &'a dyn SharedData,
    /// Host time since the Unix epoch.
    pub now: Duration,
}

/// The filter's decision and the request changes that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub action: Action,
    /// Request headers to remove (client-sent copies of output headers, forwarded tokens).
    pub remove_headers: Vec<String>,
    /// Request headers to set for the upstream.
    pub set_headers: Vec<(String, String)>,
    /// Verified claims to hand to later filters.
    pub publish_claims: Option<PublishedClaims>,
}

/// A verified token's claims as later filters get them: the JSON that goes into filter state, and the
/// same claims parsed, for later stages of the bundle (which then parse nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedClaims {
    pub json: Rc<Vec<u8>>,
    pub claims: Rc<Claims>,
}

/// Where a token was found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Header(String),
    Param(String),
    Cookie(String),
}

impl Location {
    /// Whether `rule` looks for tokens here (Envoy's jwt_authn refuses a token found elsewhere).
    fn configured_in(&self, rule: &JwtRule) -> bool {
        match self {
            Location::Header(h) => rule.from_headers.iter().any(|f| f.name == *h),
            Location::Param(p) => rule.from_params.contains(p),
            Location::Cookie(c) => rule.from_cookies.contains(c),
        }
    }
}

/// A token and every location it was found in (the same token may be sent in two places).
struct Found {
    token: String,
    locations: Vec<Location>,
}

/// A value that can carry a token: ASCII only (a JWT is base64url and dots), trimmed.
fn token_text(bytes: &[u8]) -> Result<Option<String>, Reason> {
    let text = std::str::from_utf8(bytes).ok().filter(|t| t.is_ascii()).ok_or(Reason::NotAscii)?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// Control characters (and DEL) must never reach a request header: a claim holding one is dropped.
fn header_safe(value: &str) -> bool {
    !value.bytes().any(|b| b < 0x20 || b == 0x7f)
}

/// The request as policies see it: output headers as the filter writes them for the upstream (a
/// client's copy removed, the verified value set), as Envoy's jwt_authn writes `claim_to_headers`
/// before RBAC runs.
struct WithOutputs<'a> {
    req: &'a dyn RequestHeaders,
    removed: &'a [String],
    set: &'a [(String, String)],
}

impl WithOutputs<'_> {
    fn overridden(&self, name: &str) -> Option<Vec<Vec<u8>>> {
        let set: Vec<Vec<u8>> =
            self.set.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_bytes().to_vec()).collect();
        if !set.is_empty() {
            return Some(set);
        }
        self.removed.iter().any(|r| r == name).then(Vec::new)
    }
}

impl RequestHeaders for WithOutputs<'_> {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        match self.overridden(name) {
            Some(values) => values.into_iter().next(),
            None => self.req.header(name),
        }
    }

    fn header_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.overridden(name).unwrap_or_else(|| self.req.header_values(name))
    }
}

/// One rule's keys: inline (fixed) or remote (refreshed from shared data).
struct Keys {
    set: Option<Rc<KeySet>>,
    remote: Option<RemoteKeys>,
    /// `last_success` of the fetch whose JWKS this worker loaded last (0: none yet).
    loaded_at: u64,
    had_keys_log: LogThrottle,
}

/// A configured jwt-authz filter (one per worker VM).
pub struct JwtAuthz {
    config: JwtAuthzConfig,
    /// Headers the filter writes for the upstream; removed from every request first.
    output_headers: Vec<String>,
    /// Whether any rule reads tokens from query parameters / cookies.
    wants_params: bool,
    wants_cookies: bool,
    /// The largest `maxTokenBytes` of any rule (the limit before the issuer is known).
    max_token_bytes: usize,
    keys: RefCell<Vec<Keys>>,
    generation: Cell<u64>,
    cache: RefCell<TokenCache>,
    logs: Vec<LogThrottle>,
    policy_log: LogThrottle,
    output_log: LogThrottle,
    last_kid_request: Cell<Duration>,
}

impl JwtAuthz {
    pub fn new(config: JwtAuthzConfig, instance: &str, random: &mut dyn Random) -> Result<Self, ConfigError> {
        let mut keys = Vec::with_capacity(config.jwt_rules.len());
        for (i, rule) in config.jwt_rules.iter().enumerate() {
            let set = match &rule.jwks {
                Some(j) => Some(Rc::new(
                    KeySet::parse(j.as_bytes()).map_err(|e| ConfigError::new(format!("/jwtRules/{i}/jwks"), e))?,
                )),
                None => None,
            };
            let remote = rule.remote_jwks.clone().map(|r| RemoteKeys::new(instance, i, r));
            keys.push(Keys { set, remote, loaded_at: 0, had_keys_log: LogThrottle::default() });
        }
        let cache = TokenCache::new(config.cache_size, (random.next_u64(), random.next_u64()));
        let rules = &config.jwt_rules;
        let output_headers = rules
            .iter()
            .flat_map(|r| {
                r.output_payload_to_header
                    .iter()
                    .cloned()
                    .chain(r.output_claim_to_headers.iter().map(|c| c.header.clone()))
            })
            .collect();
        let wants_params = rules.iter().any(|r| !r.from_params.is_empty());
        let wants_cookies = rules.iter().any(|r| !r.from_cookies.is_empty());
        let max_token_bytes = rules.iter().map(|r| r.max_token_bytes).max().unwrap_or(0);
        Ok(Self {
            output_headers,
            wants_params,
            wants_cookies,
            max_token_bytes,
            config,
            keys: RefCell::new(keys),
            generation: Cell::new(1),
            cache: RefCell::new(cache),
            logs: Reason::ALL.iter().map(|_| LogThrottle::default()).collect(),
            policy_log: LogThrottle::default(),
            output_log: LogThrottle::default(),
            last_kid_request: Cell::new(Duration::ZERO),
        })
    }

    pub fn from_json(bytes: &[u8], instance: &str, random: &mut dyn Random) -> Result<Self, ConfigError> {
        Self::new(JwtAuthzConfig::from_json(bytes)?, instance, random)
    }

    pub fn config(&self) -> &JwtAuthzConfig {
        &self.config
    }

    /// Every token of the request, each with the locations it was found in. `Err(Ambiguous)` when a
    /// configured location holds more than one value; `Err(NotAscii)` for a token that is not ASCII.
    fn find_tokens(&self, req: &dyn RequestHeaders) -> Result<Vec<Found>, Reason> {
        let mut found: Vec<Found> = Vec::new();
        let mut push = |token: Option<String>, location: Location| {
            let Some(token) = token else { return };
            match found.iter_mut().find(|f| f.token == token) {
                Some(f) if !f.locations.contains(&location) => f.locations.push(location),
                Some(_) => {}
                None => found.push(Found { token, locations: vec![location] }),
            }
        };
        let full_path = if self.wants_params { req.header(":path").unwrap_or_default() } else { Vec::new() };
        let query = split_path(&full_path).1;
        let cookie_headers = if self.wants_cookies { req.header_values("cookie") } else { Vec::new() };
        for rule in &self.config.jwt_rules {
            for h in &rule.from_headers {
                let values = req.header_values(&h.name);
                let prefix = h.prefix.as_bytes();
                let carrying: Vec<&[u8]> = values
                    .iter()
                    .filter(|v| v.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix)))
                    .map(|v| v.get(prefix.len()..).unwrap_or(&[]))
                    .collect();
                match carrying.as_slice() {
                    [] => {}
                    [one] if values.len() == 1 => push(token_text(one)?, Location::Header(h.name.clone())),
                    _ => return Err(Reason::Ambiguous),
                }
            }
            for p in &rule.from_params {
                let mut values = query_params(query, p);
                if let Some(v) = values.next() {
                    if values.next().is_some() {
                        return Err(Reason::Ambiguous);
                    }
                    push(token_text(v)?, Location::Param(p.clone()));
                }
            }
            for name in &rule.from_cookies {
                let mut values = cookie_values(&cookie_headers, name);
                if let Some(v) = values.next() {
                    if values.next().is_some() {
                        return Err(Reason::Ambiguous);
                    }
                    push(token_text(v)?, Location::Cookie(name.clone()));
                }
            }
        }
        // One identity per request: two different tokens would give policies, output headers and
        // published claims a choice to make, and a client the chance to pair a stolen identity with
        // its own.
        if found.len() > 1 {
            return Err(Reason::Ambiguous);
        }
        Ok(found)
    }

    fn refuse(&self, reason: Reason, issuer: Option<&str>, env: &Env) -> Outcome {
        env.metrics.increment(invalid_metric(reason));
        if let Some(log) = self.logs.get(Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0)) {
            if let Some(n) = log.event(env.now, LOG_PERIOD) {
                let extra = if reason == Reason::NoKeys { "; the JWKS has not been fetched yet" } else { "" };
                log::info!(
                    "token refused: {reason}{}{extra} ({n} such refusal(s) since the last report)",
                    issuer.map(|i| format!(" (issuer {i})")).unwrap_or_default()
                );
            }
        }
        let reply = LocalReply {
            status: 401,
            grpc_status: None,
            headers: vec![("www-authenticate".into(), "Bearer error=\"invalid_token\"".into())],
            body: UNAUTHORIZED_BODY.as_bytes().to_vec(),
        };
        Outcome { action: Action::Respond(reply), remove_headers: vec![], set_headers: vec![], publish_claims: None }
    }

    /// Validates one token (cache first).
    fn validate(&self, token: &str, env: &Env) -> Result<Verified, (Reason, Option<String>)> {
        let now_secs = env.now.as_secs_f64();
        let skew = self.config.clock_skew.0.as_secs_f64();
        let fp = self.cache.borrow().fingerprint(token);
        if let Some(v) = self.cache.borrow_mut().get(fp, now_secs, skew, self.generation.get()) {
            env.metrics.increment(Metric::CacheHits as usize);
            return Ok(v);
        }
        env.metrics.increment(Metric::CacheMisses as usize);
        let mut d = decode(token, self.max_token_bytes).map_err(|r| (r, None))?;
        let iss = d.issuer().map(str::to_string);
        let (rule_index, rule) = self
            .config
            .jwt_rules
            .iter()
            .enumerate()
            .find(|(_, r)| Some(r.issuer.as_str()) == iss.as_deref())
            .ok_or((Reason::UnknownIssuer, None))?;
        if token.len() > rule.max_token_bytes {
            return Err((Reason::TooLarge, iss));
        }
        self.check_signature(rule_index, &d, env).map_err(|r| (r, iss.clone()))?;
        check_times_and_audience(rule, &d, now_secs, skew).map_err(|r| (r, iss.clone()))?;
        // As Istio: a principal only when the token has both `iss` and `sub`.
        let principal = d.claims.get("sub").and_then(|v| v.as_str()).map(|sub| format!("{}/{sub}", rule.issuer));
        let claims_json = std::mem::take(&mut d.payload_json);
        let verified = Verified {
            rule: rule_index,
            principal,
            expires: numeric(&d.claims, "exp").unwrap_or(f64::INFINITY),
            claims: Rc::new(d.claims),
            claims_json: Rc::new(claims_json),
            generation: self.generation.get(),
        };
        self.cache.borrow_mut().insert(fp, verified.clone());
        Ok(verified)
    }

    fn check_signature(&self, rule: usize, d: &Decoded, env: &Env) -> Result<(), Reason> {
        let keys = self.keys.borrow();
        let k = keys.get(rule).ok_or(Reason::NoKeys)?;
        let Some(set) = &k.set else { return Err(Reason::NoKeys) };
        if let Some(kid) = &d.kid {
            if !set.has_kid(kid) {
                if let Some(remote) = &k.remote {
                    // Ask for an early refetch, at most once a second from this worker.
                    if env.now.saturating_sub(self.last_kid_request.get()) >= Duration::from_secs(1) {
                        self.last_kid_request.set(env.now);
                        remote.request_refetch(env.shared, u64::try_from(env.now.as_nanos()).unwrap_or(u64::MAX));
                    }
                }
                return Err(Reason::UnknownKid);
            }
        }
        let mut candidates = set.candidates(d.kid.as_deref(), d.alg).peekable();
        if candidates.peek().is_none() {
            return Err(if d.kid.is_some() { Reason::UnsupportedAlg } else { Reason::UnknownKid });
        }
        let now_secs = env.now.as_secs();
        if candidates.any(|key| verify(env.crypto, d, key, now_secs)) {
            Ok(())
        } else {
            Err(Reason::BadSignature)
        }
    }

    /// Decides one request.
    pub fn on_request(&self, req: &dyn RequestHeaders, env: &Env) -> Outcome {
        // A client must not be able to send what looks like our output.
        let mut out = Outcome {
            action: Action::Continue,
            remove_headers: self.output_headers.clone(),
            set_headers: vec![],
            publish_claims: None,
        };
        let found = match self.find_tokens(req) {
            Ok(found) => found,
            Err(reason) => return self.refuse(reason, None, env),
        };
        if found.is_empty() && !self.config.jwt_rules.is_empty() {
            env.metrics.increment(Metric::NoToken as usize);
        }
        let mut verified: Option<(Verified, &Found)> = None;
        if let Some(f) = found.first() {
            match self.validate(&f.token, env) {
                Ok(v) => {
                    let rule = self.config.jwt_rules.get(v.rule);
                    if !rule.is_some_and(|r| f.locations.iter().all(|l| l.configured_in(r))) {
                        return self.refuse(Reason::WrongLocation, rule.map(|r| r.issuer.as_str()), env);
                    }
                    env.metrics.increment(Metric::TokensValid as usize);
                    verified = Some((v, f));
                }
                Err((reason, iss)) => return self.refuse(reason, iss.as_deref(), env),
            }
        }
        if let Some((v, f)) = &verified {
            if let Some(rule) = self.config.jwt_rules.get(v.rule) {
                if !rule.forward_original_token {
                    for location in &f.locations {
                        if let Location::Header(h) = location {
                            out.remove_headers.push(h.clone());
                        }
                    }
                }
                if let Some(h) = &rule.output_payload_to_header {
                    if let Some(segment) = f.token.split('.').nth(1) {
                        out.set_headers.push((h.clone(), segment.to_string()));
                    }
                }
                for c in &rule.output_claim_to_headers {
                    match claim_of(&v.claims, &c.claim) {
                        Some(value) if header_safe(&value) => out.set_headers.push((c.header.clone(), value)),
                        Some(_) => {
                            env.metrics.increment(Metric::OutputHeadersDropped as usize);
                            if let Some(n) = self.output_log.event(env.now, LOG_PERIOD) {
                                log::info!(
                                    "claim {} holds a control character: header {} not set ({n} such claim(s) \
                                     since the last report)",
                                    c.claim,
                                    c.header
                                );
                            }
                        }
                        None => {}
                    }
                }
            }
            out.publish_claims = Some(PublishedClaims { json: v.claims_json.clone(), claims: v.claims.clone() });
        }

        if !self.config.policies.is_empty() {
            let auth = Auth {
                principals: verified.iter().filter_map(|(v, _)| v.principal.clone()).collect(),
                claims: verified.as_ref().map(|(v, _)| v.claims.as_ref()),
            };
            // Policies see the request as the upstream will: output headers already applied.
            let seen = WithOutputs { req, removed: &out.remove_headers, set: &out.set_headers };
            match decide(&self.config.policies, &seen, &auth) {
                Decision::Allow => env.metrics.increment(Metric::PolicyAllow as usize),
                Decision::Deny(why) => {
                    env.metrics.increment(Metric::PolicyDeny as usize);
                    if let Some(n) = self.policy_log.event(env.now, LOG_PERIOD) {
                        log::info!("request denied: {why} ({n} denial(s) since the last report)");
                    }
                    out.action = Action::Respond(LocalReply {
                        status: 403,
                        grpc_status: None,
                        headers: vec![],
                        body: FORBIDDEN_BODY.as_bytes().to_vec(),
                    });
                    out.set_headers.clear();
                    out.publish_claims = None;
                }
            }
        }
        out
    }

    /// Loads newer remote JWKS from shared data; returns the rules whose fetch this worker should run
    /// now (it won the process-wide lease). Call from the root context's tick.
    pub fn sync_keys(&self, env: &Env) -> Vec<usize> {
        let now = u64::try_from(env.now.as_nanos()).unwrap_or(u64::MAX);
        let mut lead = Vec::new();
        let mut changed = false;
        for (i, k) in self.keys.borrow_mut().iter_mut().enumerate() {
            let Some(remote) = &k.remote else { continue };
            // The small state record says whether a newer JWKS was stored; only then is the JWKS
            // itself (up to 256 KiB) copied into this VM and parsed.
            let fetched_at = remote.state(env.shared).0.last_success;
            if fetched_at != 0 && fetched_at != k.loaded_at {
                if let Some(b) = remote.stored(env.shared).0 {
                    match KeySet::parse(&b) {
                        Ok(set) => {
                            log::info!(
                                "issuer {}: loaded {} key(s) from the fetched JWKS",
                                remote_issuer(&self.config, i),
                                set.keys.len()
                            );
                            k.set = Some(Rc::new(set));
                            changed = true;
                        }
                        Err(e) => log::warn!("issuer {}: stored JWKS unusable: {e}", remote_issuer(&self.config, i)),
                    }
                }
                k.loaded_at = fetched_at;
            }
            if remote.try_lead(env.shared, now) {
                lead.push(i);
            }
        }
        if changed {
            self.generation.set(self.generation.get().wrapping_add(1));
        }
        lead
    }

    /// The fetch request for rule `i`: (cluster, path, authority, timeout).
    pub fn fetch_target(&self, i: usize) -> Option<(String, String, String, Duration)> {
        let r = self.config.jwt_rules.get(i)?.remote_jwks.as_ref()?;
        Some((r.cluster.clone(), r.path.clone(), r.authority.clone().unwrap_or_else(|| r.cluster.clone()), r.timeout.0))
    }

    /// Records the result of a fetch for rule `i`: `Ok(body)` on HTTP 200, `Err(why)` otherwise.
    pub fn fetch_done(&self, i: usize, result: Result<Vec<u8>, String>, env: &Env) {
        let now = u64::try_from(env.now.as_nanos()).unwrap_or(u64::MAX);
        let issuer = remote_issuer(&self.config, i);
        let keys = self.keys.borrow();
        let Some(k) = keys.get(i) else { return };
        let Some(remote) = &k.remote else { return };
        let parsed = result.and_then(|body| KeySet::parse(&body).map(|_| body));
        match parsed {
            Ok(body) => {
                env.metrics.increment(Metric::JwksFetchOk as usize);
                remote.finish(env.shared, now, Some(&body));
            }
            Err(why) => {
                env.metrics.increment(Metric::JwksFetchFailed as usize);
                let stale = k.set.is_some();
                if stale {
                    env.metrics.increment(Metric::JwksStale as usize);
                }
                if k.had_keys_log.event(env.now, Duration::ZERO).is_some() {
                    log::warn!(
                        "issuer {issuer}: JWKS fetch from cluster {} failed: {why}; {}",
                        remote.source.cluster,
                        if stale {
                            "keeping the keys fetched before (stale)"
                        } else {
                            "tokens of this issuer are refused until a fetch succeeds"
                        }
                    );
                }
                remote.finish(env.shared, now, None);
            }
        }
    }

    /// Whether every rule has keys (inline, or fetched at least once by some worker).
    pub fn all_keys_loaded(&self) -> bool {
        self.keys.borrow().iter().all(|k| k.set.is_some())
    }
}

fn remote_issuer(config: &JwtAuthzConfig, i: usize) -> &str {
    config.jwt_rules.get(i).map(|r| r.issuer.as_str()).unwrap_or("?")
}

fn check_times_and_audience(rule: &JwtRule, d: &Decoded, now: f64, skew: f64) -> Result<(), Reason> {
    match numeric(&d.claims, "exp") {
        Some(exp) if now > exp + skew => return Err(Reason::Expired),
        None if rule.require_expiration => return Err(Reason::MissingExp),
        _ => {}
    }
    if numeric(&d.claims, "nbf").is_some_and(|nbf| nbf > now + skew) {
        return Err(Reason::NotYetValid);
    }
    if numeric(&d.claims, "iat").is_some_and(|iat| iat > now + skew) {
        return Err(Reason::IssuedInFuture);
    }
    if !rule.audiences.is_empty() {
        let aud = audiences(&d.claims);
        if !aud.iter().any(|a| rule.audiences.iter().any(|want| want == a)) {
            return Err(Reason::Audience);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests/logic.rs"]
mod tests;
