//! What a filter decides for a request: go on, answer it locally, or wait first.

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
}
