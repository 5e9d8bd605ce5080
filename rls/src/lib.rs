//! meshplug-rls: a rate limit service speaking Envoy's `envoy.service.ratelimit.v3.RateLimitService`
//! (gRPC `ShouldRateLimit`), configured and counting as envoyproxy/ratelimit does, with its counters in
//! Redis so that every proxy replica shares them. It is the local stand-in for envoyproxy/ratelimit or
//! Limitador (neither is offered by the registries this project builds from); tests show it answers as
//! Envoy's own `ratelimit` filter expects.
//!
//! - **Config**: envoyproxy/ratelimit's YAML, one document per domain: `domain`, `descriptors` (each
//!   `key`, optional `value`, optional `rate_limit: {unit, requests_per_unit}`, `shadow_mode`, nested
//!   `descriptors`).
//! - **Matching** (envoyproxy/ratelimit `src/config/config_impl.go` GetLimit): a request descriptor's
//!   entries walk the tree one level each, preferring a node with the same key and value, else the node
//!   with that key and no value; the limit is the `rate_limit` of the node the last entry reaches (none
//!   when the walk leaves the tree).
//! - **Counting** (envoyproxy/ratelimit `src/redis/fixed_cache_impl.go`): a fixed window per unit; the key
//!   is the domain and the descriptor's entries and the window start; `INCRBY hits` and `EXPIRE unit`
//!   in one pipeline; over the limit when the count after the increment exceeds `requests_per_unit`.
//!
//! Why not a library: Limitador (the `limitador` crate, 0.13 and 0.14) does not build with its Redis
//! storage alone (`storage::keys::bin` is compiled only with `disk_storage`, which builds RocksDB from
//! C++ source — longer than this project's CI allows); governor keeps state in process memory. The
//! window arithmetic here is a few lines; Redis does the counting.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    rate_limit::Unit, Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// One domain's configuration (one YAML document of envoyproxy/ratelimit's format).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    pub domain: String,
    #[serde(default)]
    pub descriptors: Vec<DescriptorConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DescriptorConfig {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub rate_limit: Option<LimitConfig>,
    /// Count and report, never answer OVER_LIMIT for this limit.
    #[serde(default)]
    pub shadow_mode: bool,
    #[serde(default)]
    pub descriptors: Vec<DescriptorConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub unit: UnitConfig,
    pub requests_per_unit: u32,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnitConfig {
    Second,
    Minute,
    Hour,
    Day,
}

impl UnitConfig {
    pub fn seconds(self) -> u64 {
        match self {
            UnitConfig::Second => 1,
            UnitConfig::Minute => 60,
            UnitConfig::Hour => 3600,
            UnitConfig::Day => 86400,
        }
    }

    fn proto(self) -> Unit {
        match self {
            UnitConfig::Second => Unit::Second,
            UnitConfig::Minute => Unit::Minute,
            UnitConfig::Hour => Unit::Hour,
            UnitConfig::Day => Unit::Day,
        }
    }
}

/// Parses one or more YAML documents (envoyproxy/ratelimit's config files).
pub fn parse_config(text: &str) -> anyhow::Result<Vec<DomainConfig>> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let d = DomainConfig::deserialize(doc)?;
        anyhow::ensure!(!d.domain.is_empty(), "a config needs a non-empty `domain`");
        out.push(d);
    }
    Ok(out)
}

/// The limit a descriptor's entries lead to (envoyproxy/ratelimit `GetLimit`).
pub fn find_limit<'a>(domain: &'a DomainConfig, entries: &[(String, String)]) -> Option<&'a DescriptorConfig> {
    let mut level = &domain.descriptors;
    let mut node = None;
    for (key, value) in entries {
        let exact = level.iter().find(|d| d.key == *key && d.value.as_deref() == Some(value.as_str()));
        let any = || level.iter().find(|d| d.key == *key && d.value.is_none());
        let next = exact.or_else(any)?;
        node = Some(next);
        level = &next.descriptors;
    }
    node.filter(|n| n.rate_limit.is_some())
}

/// The Redis key of a descriptor's counter in a window: `<domain>_<k>_<v>_..._<window start>`.
pub fn counter_key(prefix: &str, domain: &str, entries: &[(String, String)], window_start: u64) -> String {
    let mut key = format!("{prefix}{domain}_");
    for (k, v) in entries {
        key.push_str(k);
        key.push('_');
        key.push_str(v);
        key.push('_');
    }
    key.push_str(&window_start.to_string());
    key
}

/// The service: domains, a Redis connection, and a count of the calls it answered.
pub struct Service {
    domains: BTreeMap<String, DomainConfig>,
    redis: redis::aio::MultiplexedConnection,
    prefix: String,
    calls: Arc<AtomicU64>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Service {
    async fn decide(&self, req: RateLimitRequest) -> Result<RateLimitResponse, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut response = RateLimitResponse { overall_code: Code::Ok as i32, ..Default::default() };
        let Some(domain) = self.domains.get(&req.domain) else {
            // envoyproxy/ratelimit answers OK for a domain it has no limits for.
            response.statuses = req.descriptors.iter().map(|_| ok_status()).collect();
            return Ok(response);
        };
        let now = now_secs();
        let mut redis = self.redis.clone();
        for d in &req.descriptors {
            let entries: Vec<(String, String)> = d.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
            let Some(node) = find_limit(domain, &entries) else {
                response.statuses.push(ok_status());
                continue;
            };
            let Some(limit) = &node.rate_limit else {
                response.statuses.push(ok_status());
                continue;
            };
            let unit = limit.unit.seconds();
            let window = now / unit * unit;
            let key = counter_key(&self.prefix, &domain.domain, &entries, window);
            let hits = descriptor_hits(d, &req);
            let (count,): (u64,) = redis::pipe()
                .atomic()
                .cmd("INCRBY")
                .arg(&key)
                .arg(hits)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(unit)
                .ignore()
                .query_async(&mut redis)
                .await
                .map_err(|e| tonic::Status::unavailable(format!("redis: {e}")))?;
            let allowed = u64::from(limit.requests_per_unit);
            let over = count > allowed;
            let mut status = DescriptorStatus {
                code: if over { Code::OverLimit as i32 } else { Code::Ok as i32 },
                current_limit: Some(RateLimit {
                    name: limit.name.clone().unwrap_or_default(),
                    requests_per_unit: limit.requests_per_unit,
                    unit: limit.unit.proto() as i32,
                }),
                limit_remaining: u32::try_from(allowed.saturating_sub(count)).unwrap_or(u32::MAX),
                duration_until_reset: Some(PbDuration {
                    seconds: i64::try_from(window + unit - now).unwrap_or(i64::MAX),
                    nanos: 0,
                }),
                ..Default::default()
            };
            if over && node.shadow_mode {
                status.code = Code::Ok as i32;
            }
            if status.code == Code::OverLimit as i32 {
                response.overall_code = Code::OverLimit as i32;
            }
            response.statuses.push(status);
        }
        Ok(response)
    }
}

fn ok_status() -> DescriptorStatus {
    DescriptorStatus { code: Code::Ok as i32, ..Default::default() }
}

/// A descriptor's own `hits_addend`, else the request's, else 1 (as Envoy documents).
fn descriptor_hits(d: &RateLimitDescriptor, req: &RateLimitRequest) -> u64 {
    match &d.hits_addend {
        Some(h) => h.value,
        None if req.hits_addend > 0 => u64::from(req.hits_addend),
        None => 1,
    }
}

#[tonic::async_trait]
impl RateLimitService for Service {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        self.decide(request.into_inner()).await.map(tonic::Response::new)
    }
}

/// A running service. Stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    calls: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// `ShouldRateLimit` calls answered so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the service on `listen` (port 0: any free port) on its own thread and runtime, counting in
/// the Redis at `redis_url` with keys prefixed by `prefix`. Returns once it accepts connections.
pub fn start(domains: Vec<DomainConfig>, redis_url: &str, listen: SocketAddr, prefix: &str) -> anyhow::Result<Running> {
    let client = redis::Client::open(redis_url)?;
    let domains: BTreeMap<String, DomainConfig> = domains.into_iter().map(|d| (d.domain.clone(), d)).collect();
    let prefix = prefix.to_string();
    serve(listen, move |calls| async move {
        let redis = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to Redis: {e}"))?;
        Ok(Service { domains, redis, prefix, calls })
    })
}

/// Serves a `RateLimitService` on `listen` (port 0: any free port) on its own thread and runtime:
/// `make` builds it there, given the counter its answers should increment (read by
/// [`Running::calls`]). Returns once it accepts connections, or `make`'s error.
pub fn serve<S, F, Fut>(listen: SocketAddr, make: F) -> anyhow::Result<Running>
where
    S: RateLimitService,
    F: FnOnce(Arc<AtomicU64>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<S>>,
{
    let std_listener = std::net::TcpListener::bind(listen)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let calls = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let counted = calls.clone();
    let thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e.into()));
                return;
            }
        };
        rt.block_on(async move {
            let service = match make(counted).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = ready_tx.send(Ok(()));
            let _ = tonic::transport::Server::builder()
                .add_service(RateLimitServiceServer::new(service))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Running { addr, calls, stop: Some(stop_tx), thread: Some(thread) }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(anyhow::anyhow!("the rate limit service thread ended before it was ready")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "domain: shop\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 5}\n  - key: path\n    value: /admin\n    rate_limit: {unit: second, requests_per_unit: 1}\n    descriptors:\n      - key: user\n        rate_limit: {unit: hour, requests_per_unit: 2}\n  - key: path\n    descriptors:\n      - key: user\n        value: vip\n        shadow_mode: true\n        rate_limit: {unit: day, requests_per_unit: 3}\n";

    fn e(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn limits_are_found_as_envoyproxy_ratelimit_finds_them() {
        let d = &parse_config(CONFIG).unwrap()[0];
        let rps = |entries: &[(&str, &str)]| {
            find_limit(d, &e(entries)).and_then(|n| n.rate_limit.as_ref()).map(|l| l.requests_per_unit)
        };
        assert_eq!(rps(&[("user", "alice")]), Some(5), "key without value: any value");
        assert_eq!(rps(&[("path", "/admin")]), Some(1), "exact value");
        assert_eq!(rps(&[("path", "/admin"), ("user", "bob")]), Some(2), "nested, the last entry's limit");
        assert_eq!(rps(&[("path", "/x")]), None, "the wildcard path node has no limit itself");
        assert_eq!(rps(&[("path", "/x"), ("user", "vip")]), Some(3));
        assert_eq!(rps(&[("path", "/x"), ("user", "other")]), None, "leaves the tree");
        assert_eq!(rps(&[("tier", "gold")]), None);
        assert_eq!(counter_key("p:", "shop", &e(&[("path", "/a"), ("user", "u")]), 60), "p:shop_path_/a_user_u_60");
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(parse_config(
            "domain: x\ndescriptors: [{key: a, rate_limit: {unit: fortnight, requests_per_unit: 1}}]"
        )
        .is_err());
        assert!(parse_config("domain: x\nbogus: 1").is_err());
        assert!(parse_config("domain: ''").is_err());
    }
}
