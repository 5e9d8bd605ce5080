//! What a filter decides for a request: go on, answer it locally, wait first, or ask a service first.

use std::fmt;
use std::ops::Deref;
use std::rc::Rc;
use std::time::Duration;

/// Text a filter hands on for a request (a header name or value): a constant, or a string made when
/// the filter was configured, is shared rather than copied for every request; only what the request
/// itself decides is made then.
#[derive(Debug, Clone)]
pub enum Text {
    /// A constant (a header name such as `ratelimit-limit`).
    Static(&'static str),
    /// Made when the filter was configured (a configured header or variant name).
    Shared(Rc<str>),
    /// Made for this request (a number, a cookie).
    Owned(String),
}

impl Text {
    pub fn as_str(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Shared(s) => s,
            Text::Owned(s) => s,
        }
    }

    /// The text as a `String` (a copy only when it is not already one).
    pub fn into_string(self) -> String {
        match self {
            Text::Owned(s) => s,
            other => other.as_str().to_string(),
        }
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Equal when the text is, however it is held.
impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text::Static(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text::Owned(s)
    }
}

impl From<&Rc<str>> for Text {
    fn from(s: &Rc<str>) -> Self {
        Text::Shared(Rc::clone(s))
    }
}

/// A header a filter puts on the response: name and value.
pub type Header = (Text, Text);

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
    /// The cluster's name, for log lines (shared by every call, not copied).
    pub cluster: std::rc::Rc<str>,
    /// The serialized `envoy.config.core.v3.GrpcService` naming the cluster and `:authority` (built once,
    /// with [`grpc_service`], when the filter is configured; shared by every call, not copied).
    pub upstream: std::rc::Rc<[u8]>,
    /// Fully qualified service name, e.g. `envoy.service.ratelimit.v3.RateLimitService`.
    pub service: &'static str,
    pub method: &'static str,
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
    pub headers: Vec<Header>,
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
    /// Status OK, but the message was not taken in: larger than [`MAX_GRPC_ANSWER`] (not copied into
    /// the VM, whose memory never shrinks), or the host could not hand it over whole. A bad answer, not
    /// an empty one (an empty message would read as an answer with every field at its default).
    Unreadable(&'static str),
}

/// The largest gRPC answer a filter takes into its VM (64 KiB). A rate limit service's answer is a few
/// hundred bytes; a Wasm VM's memory grows and never shrinks, so a service answering megabytes would
/// leave every worker that much bigger for its lifetime.
pub const MAX_GRPC_ANSWER: usize = 64 * 1024;

/// gRPC status codes the filters act on.
pub const GRPC_DEADLINE_EXCEEDED: u32 = 4;
pub const GRPC_UNAVAILABLE: u32 = 14;

/// The upstream of a [`GrpcCall`]: a serialized `envoy.config.core.v3.GrpcService` with
/// `envoy_grpc.cluster_name` and `authority` (Envoy's default `:authority` is the cluster name, which an
/// Istio cluster name such as `outbound|8081||host` makes invalid for most gRPC servers). Envoy reads
/// it unambiguously (`Context::grpcCall` in Envoy's `source/extensions/common/wasm/context.cc` parses
/// the upstream as a GrpcService first, and only when that fails takes it as a cluster name).
///
/// These are bytes, not text: once the names pass about 123 bytes together a length takes two varint
/// bytes (≥ 0x80), which are not UTF-8. They reach the host unchanged (see
/// `wasm::ffi::dispatch_grpc_call`); an earlier form went through a lossy UTF-8 conversion here, which
/// replaced those bytes with U+FFFD and made every call with an ordinary long in-mesh name unparsable.
pub fn grpc_service(cluster: &str, authority: &str) -> Vec<u8> {
    let mut envoy_grpc = crate::proto::Writer::default();
    envoy_grpc.bytes(1, cluster.as_bytes()).bytes(2, authority.as_bytes());
    let mut service = crate::proto::Writer::default();
    service.message(1, &envoy_grpc.bytes);
    service.bytes
}
