//! Limitador, as far as Envoy's rate limit service protocol sees it: the `limitador` crate (Limitador's
//! own library: its limits format, CEL conditions and variables, counters) behind a gRPC server that
//! answers `ShouldRateLimit` as limitador-server does. Mirrored from Kuadrant/limitador
//! `limitador-server/src/envoy_rls/server.rs` (`should_rate_limit`): the domain is the namespace (an
//! empty one answers UNKNOWN), each descriptor becomes a map of its entries, bound as the list
//! `descriptors`; `hits_addend` is the request's (0 means 1; descriptors' own are not read); the answer
//! is the overall code only, with no per-descriptor statuses; a storage error is UNAVAILABLE. Limits
//! are read as `limitador-server/src/main.rs` `load_limits_from_file` reads its `LIMITS_FILE`: YAML,
//! a list of `Limit`. Not published on a registry reachable here, so it cannot be run as itself.

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use limitador::limit::{Context, Limit};
use limitador::RateLimiter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Parses a `LIMITS_FILE` as limitador-server does (a YAML list of limits).
pub fn parse_limits(yaml: &str) -> anyhow::Result<Vec<Limit>> {
    serde_yaml_ng::from_str(yaml).map_err(|e| anyhow::anyhow!("Couldn't parse: {e}"))
}

struct Service {
    limiter: Arc<RateLimiter>,
    calls: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl RateLimitService for Service {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let req = request.into_inner();
        let answer = |code: Code| RateLimitResponse { overall_code: code.into(), ..Default::default() };
        if req.domain.is_empty() {
            return Ok(tonic::Response::new(answer(Code::Unknown)));
        }
        let values: Vec<HashMap<String, String>> = req
            .descriptors
            .iter()
            .map(|d| d.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect())
            .collect();
        let hits_addend = if req.hits_addend == 0 { 1 } else { u64::from(req.hits_addend) };
        let mut ctx = Context::default();
        ctx.list_binding("descriptors".to_string(), values);
        match self.limiter.check_rate_limited_and_update(&req.domain.as_str().into(), &ctx, hits_addend) {
            Ok(r) if r.limited => Ok(tonic::Response::new(answer(Code::OverLimit))),
            Ok(_) => Ok(tonic::Response::new(answer(Code::Ok))),
            Err(_) => Err(tonic::Status::unavailable("Service unavailable")),
        }
    }
}

/// Starts the stand-in on a free port of 127.0.0.1 with `limits` (in memory); returns once it accepts
/// connections.
pub fn start(limits: Vec<Limit>) -> anyhow::Result<meshplug_rls::Running> {
    let limiter = RateLimiter::new(10_000);
    limiter.configure_with(limits).map_err(|e| anyhow::anyhow!("Limitador refused the limits: {e}"))?;
    let limiter = Arc::new(limiter);
    meshplug_rls::serve(([127, 0, 0, 1], 0).into(), move |calls| async move { Ok(Service { limiter, calls }) })
}
