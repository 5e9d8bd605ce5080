//! What a filter decides for a request: go on, answer it locally, wait first, or ask a service first.

use std::time::Duration;

/// A response the filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status (for a gRPC reply Envoy sends 200 with `grpc-status`).
    pub status: u16,
    /// When set, the reply is a gRPC error with this `grpc-status`.
    pub grpc_status: Option<u32>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The outcome of a filter's request-headers step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward the request.
    Continue,
    /// Answer now with this reply.
    Respond(LocalReply),
    /// Hold the request for `delay`, then forward it (`then: None`) or answer with `then`.
    Pause { delay: Duration, then: Option<LocalReply> },
    /// Hold the request until a gRPC service answers (or `timeout` passes); the filter then decides
    /// with the answer.
    Call(GrpcCall),
}

/// A unary gRPC call through an Envoy cluster (Envoy's gRPC client: HTTP/2, its timeout enforced by
/// Envoy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    pub cluster: String,
    /// The serialized `envoy.config.core.v3.GrpcService` naming the cluster and `:authority` (built once,
    /// with [`grpc_service`], when the filter is configured).
    pub upstream: String,
    /// Fully qualified service name, e.g. `envoy.service.ratelimit.v3.RateLimitService`.
    pub service: String,
    pub method: String,
    /// The request message, serialized.
    pub message: Vec<u8>,
    pub timeout: Duration,
    /// What the filter decided before asking, handed back with the answer.
    pub carry: Carry,
}

/// What a filter keeps across a [`GrpcCall`]: handed back unchanged with the answer, so the filter
/// reads the answer without deriving again what it asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carry {
    /// Response headers decided before asking (the filter then decides them as a whole).
    pub headers: Vec<(String, String)>,
    /// The filter's own indices for the parts of its question (rate-limit: the rule of each
    /// descriptor, in the order the answer's statuses come back).
    pub indices: Vec<usize>,
}

/// How a gRPC call ended, as the filter gets it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// gRPC status OK, with the response message.
    Ok(Vec<u8>),
    /// Any other gRPC status (4 DEADLINE_EXCEEDED for a timeout, 14 UNAVAILABLE when the service cannot
    /// be reached), or the call could not be started (reported as 14).
    Failed(u32),
}

/// gRPC status codes the filters act on.
pub const GRPC_DEADLINE_EXCEEDED: u32 = 4;
pub const GRPC_UNAVAILABLE: u32 = 14;

/// The upstream of a [`GrpcCall`]: a serialized `envoy.config.core.v3.GrpcService` with
/// `envoy_grpc.cluster_name` and `authority` (Envoy's default `:authority` is the cluster name, which an
/// Istio cluster name such as `outbound|8081||host` makes invalid for most gRPC servers). Envoy reads
/// it unambiguously (a bare cluster name is first tried as a serialized GrpcService). Names up to 120
/// bytes keep every length one byte, so the bytes are ASCII (the host call takes a string).
pub fn grpc_service(cluster: &str, authority: &str) -> String {
    let mut envoy_grpc = crate::proto::Writer::default();
    envoy_grpc.bytes(1, cluster.as_bytes()).bytes(2, authority.as_bytes());
    let mut service = crate::proto::Writer::default();
    service.message(1, &envoy_grpc.bytes);
    String::from_utf8_lossy(&service.bytes).into_owned()
}
