//! The fault filter's pluginConfig: JSON as users write it, and the checked runtime form.

use meshplug_common::config::{child, parse_json, ConfigError};
use meshplug_common::duration::ConfigDuration;
use meshplug_common::matching::MatchList;
use meshplug_common::percent::Percentage;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Default for `maxActiveFaults`.
pub const DEFAULT_MAX_ACTIVE_FAULTS: u32 = 1000;
/// Default for `headerControl.maxDelay`.
pub const DEFAULT_MAX_HEADER_DELAY: Duration = Duration::from_secs(10);

/// The whole pluginConfig.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FaultConfig {
    /// Checked in order; the first rule whose `match` matches decides the request's faults.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Faults requested by the client with `x-envoy-fault-*` headers.
    #[serde(default)]
    pub header_control: HeaderControl,
    /// Upper bound on requests being faulted at once, across all workers.
    #[serde(default = "default_max_active")]
    pub max_active_faults: u32,
}

fn default_max_active() -> u32 {
    DEFAULT_MAX_ACTIVE_FAULTS
}

/// One rule: which requests, and which faults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Rule {
    /// A label for logs.
    pub name: Option<String>,
    /// Istio `HTTPMatchRequest`s; any may match. Absent or empty: every request.
    #[serde(default, rename = "match")]
    pub matches: MatchList,
    pub delay: Option<Delay>,
    pub abort: Option<Abort>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Delay {
    pub fixed_delay: ConfigDuration,
    #[serde(default)]
    pub percentage: Percentage,
}

/// What an abort answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortStatus {
    /// An HTTP status in [200, 600).
    Http(u16),
    /// A gRPC status code in [0, 16].
    Grpc(u32),
}

#[derive(Debug, Clone)]
pub struct Abort {
    pub status: AbortStatus,
    pub percentage: Percentage,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AbortJson {
    http_status: Option<HttpStatus>,
    grpc_status: Option<GrpcStatus>,
    #[serde(default)]
    percentage: Percentage,
}

impl<'de> Deserialize<'de> for Abort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = AbortJson::deserialize(deserializer)?;
        let status = match (json.http_status, json.grpc_status) {
            (Some(HttpStatus(s)), None) => AbortStatus::Http(s),
            (None, Some(GrpcStatus(s))) => AbortStatus::Grpc(s),
            _ => return Err(serde::de::Error::custom("an abort needs exactly one of `httpStatus` and `grpcStatus`")),
        };
        Ok(Abort { status, percentage: json.percentage })
    }
}

/// An HTTP status a fault may answer with: [200, 600).
#[derive(Debug, Clone, Copy)]
struct HttpStatus(u16);

pub fn check_http_status(status: u64) -> Result<u16, String> {
    match u16::try_from(status) {
        Ok(s) if (200..600).contains(&s) => Ok(s),
        _ => Err(format!("HTTP status {status} is out of range; expected [200, 600)")),
    }
}

impl<'de> Deserialize<'de> for HttpStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(deserializer)?;
        check_http_status(n).map(HttpStatus).map_err(serde::de::Error::custom)
    }
}

/// gRPC status names as Istio writes them (`"UNAVAILABLE"`), in code order.
pub const GRPC_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

pub fn check_grpc_status(code: u64) -> Result<u32, String> {
    match u32::try_from(code) {
        Ok(c) if c <= 16 => Ok(c),
        _ => Err(format!("gRPC status {code} is out of range; expected 0..=16 or a name such as \"UNAVAILABLE\"")),
    }
}

/// A gRPC status: a code in [0, 16] or its name (`"UNAVAILABLE"`, as in Istio).
#[derive(Debug, Clone, Copy)]
struct GrpcStatus(u32);

#[derive(Deserialize)]
#[serde(untagged)]
enum GrpcStatusJson {
    Code(u64),
    Name(String),
}

impl<'de> Deserialize<'de> for GrpcStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = match GrpcStatusJson::deserialize(deserializer)? {
            GrpcStatusJson::Code(c) => check_grpc_status(c),
            GrpcStatusJson::Name(name) => GRPC_NAMES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(&name))
                .map(|i| i as u32)
                .ok_or_else(|| format!("unknown gRPC status {name:?}; expected e.g. \"UNAVAILABLE\" or 14")),
        };
        code.map(GrpcStatus).map_err(serde::de::Error::custom)
    }
}

/// Faults requested with headers (as Envoy's fault filter does).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HeaderControl {
    #[serde(default)]
    pub enabled: bool,
    /// Longest delay a header may ask for; a larger value is ignored and counted as a bad header.
    #[serde(default = "default_max_delay")]
    pub max_delay: ConfigDuration,
}

fn default_max_delay() -> ConfigDuration {
    ConfigDuration(DEFAULT_MAX_HEADER_DELAY)
}

impl Default for HeaderControl {
    fn default() -> Self {
        Self { enabled: false, max_delay: default_max_delay() }
    }
}

impl FaultConfig {
    /// Parses and checks a pluginConfig.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: FaultConfig = parse_json(bytes)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the serde types cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_active_faults == 0 {
            return Err(ConfigError::new(
                "/maxActiveFaults",
                "must be at least 1 (it bounds concurrently faulted requests; leave it out for 1000)",
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if let Some(d) = &rule.delay {
                if d.fixed_delay.0.is_zero() && d.percentage.ppm() > 0 {
                    return Err(ConfigError::new(
                        child(&child("/rules", i), "delay") + "/fixedDelay",
                        "a delay of 0 does nothing; remove the delay or give a duration such as \"100ms\"",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Abort {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Abort".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let pct = generator.subschema_for::<Percentage>();
        schemars::json_schema!({
            "type": "object",
            "properties": {
                "httpStatus": { "type": "integer", "minimum": 200, "maximum": 599 },
                "grpcStatus": { "oneOf": [{ "type": "integer", "minimum": 0, "maximum": 16 }, { "type": "string", "enum": GRPC_NAMES }] },
                "percentage": pct
            },
            "oneOf": [{ "required": ["httpStatus"] }, { "required": ["grpcStatus"] }],
            "additionalProperties": false
        })
    }
}
