//! The rate-limit filter's pluginConfig: JSON as users write it, and its checks.

use meshplug_common::config::{child, parse_json, ConfigError};
use meshplug_common::duration::ConfigDuration;
use meshplug_common::matching::MatchList;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

pub const DEFAULT_MAX_KEYS: u32 = 100_000;
/// Upper bound for `maxKeys`: each live key costs Envoy roughly 100–150 bytes of shared data.
pub const MAX_MAX_KEYS: u32 = 10_000_000;
pub const MAX_LIMITS_PER_RULE: usize = 8;
pub const DEFAULT_STATUS: u16 = 429;
pub const DEFAULT_BODY: &str = "rate limited\n";
/// Longest `tau` (time a full bucket takes to drain back) the GCRA arithmetic is allowed: ten years.
const MAX_BUCKET_SPAN: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RateLimitConfig {
    /// Every matching rule is charged; a request is refused if any rule refuses it.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Most live keys per rule (bounded memory whatever clients send).
    #[serde(default = "default_max_keys")]
    pub max_keys: u32,
    #[serde(default)]
    pub response: ResponseConfig,
    /// What to do when the shared state cannot be updated (CAS retries exhausted, host error).
    #[serde(default)]
    pub on_error: OnError,
    /// The rate limit service `global` rules ask (Envoy's `envoy.service.ratelimit.v3` protocol).
    #[serde(default)]
    pub rate_limit_service: Option<ServiceConfig>,
}

fn default_max_keys() -> u32 {
    DEFAULT_MAX_KEYS
}

/// Where global rules are counted: a gRPC rate limit service (envoyproxy/ratelimit, Limitador,
/// meshplug-rls) behind an Envoy cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServiceConfig {
    /// The Envoy cluster of the service (HTTP/2); in Istio `outbound|<port>||<host>`.
    pub cluster: String,
    /// The `domain` of every request (the service's config namespace).
    pub domain: String,
    /// The calls' `:authority`. Default: the host of an Istio cluster name (`outbound|<port>||<host>`),
    /// else the cluster name.
    #[serde(default)]
    pub authority: Option<String>,
    /// How long a request waits for the answer (Envoy enforces it).
    #[serde(default = "default_service_timeout")]
    pub timeout: ConfigDuration,
    /// When the service cannot answer (down, too slow, an answer that does not decode): `deny` the
    /// request with `statusOnError`, or `allow` it.
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default = "default_status_on_error")]
    pub status_on_error: u16,
}

pub const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_millis(100);
pub const MAX_SERVICE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_STATUS_ON_ERROR: u16 = 500;
/// A bound on the cluster name and authority (Envoy sets none; a Kubernetes service's Istio cluster name
/// is at most about 170 bytes): far above any real name, it keeps a typo of a whole file out.
pub const MAX_CLUSTER_NAME: usize = 1024;
pub const MAX_DESCRIPTOR_ENTRIES: usize = 16;

impl ServiceConfig {
    /// The `:authority` of the calls (see [`ServiceConfig::authority`]).
    pub fn authority(&self) -> String {
        if let Some(a) = &self.authority {
            return a.clone();
        }
        match self.cluster.split('|').collect::<Vec<_>>().as_slice() {
            ["outbound", _, _, host] if !host.is_empty() => host.to_string(),
            _ => self.cluster.clone(),
        }
    }
}

fn default_service_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_SERVICE_TIMEOUT)
}
fn default_status_on_error() -> u16 {
    DEFAULT_STATUS_ON_ERROR
}

/// A rule's descriptor for the rate limit service: ordered entries, each a fixed `value` or a value
/// read from the request like a local rule's `key`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GlobalRule {
    pub descriptors: Vec<DescriptorEntry>,
    /// Hits this request counts for (default 1).
    #[serde(default)]
    pub hits_addend: Option<u32>,
    /// The limit the service is to enforce for this descriptor. The filter does not read it: the
    /// service enforces its own configuration, which `meshplug render` writes from these (as
    /// envoyproxy/ratelimit and Limitador configs) and `meshplug up` runs.
    #[serde(default)]
    pub limit: Option<GlobalLimit>,
}

/// `requests_per_unit` per `unit`: the service counts in fixed windows of one unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GlobalLimit {
    pub requests: u32,
    pub unit: WindowUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum WindowUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl WindowUnit {
    /// The unit as envoyproxy/ratelimit writes it, and its length in seconds.
    pub fn name_and_seconds(self) -> (&'static str, u64) {
        match self {
            WindowUnit::Second => ("second", 1),
            WindowUnit::Minute => ("minute", 60),
            WindowUnit::Hour => ("hour", 3600),
            WindowUnit::Day => ("day", 86400),
        }
    }
}

/// One entry of a descriptor: `{key, value}` (a constant) or `{key, header|clientIp|path|claim}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorEntry {
    pub key: String,
    pub source: EntrySource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    Value(String),
    Request(KeySpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DescriptorEntryJson {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    header: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    client_ip: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    path: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    claim: Option<serde::de::IgnoredAny>,
}

impl<'de> Deserialize<'de> for DescriptorEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Read the entry once, then give its request-valued part to KeySpec's own parser.
        let mut map = serde_json::Map::deserialize(deserializer)?;
        let json: DescriptorEntryJson =
            serde_json::from_value(serde_json::Value::Object(map.clone())).map_err(D::Error::custom)?;
        if json.key.is_empty() || json.key.len() > 64 {
            return Err(D::Error::custom("an entry's key must be 1 to 64 bytes"));
        }
        let sources = [
            json.value.is_some(),
            json.header.is_some(),
            json.client_ip.is_some(),
            json.path.is_some(),
            json.claim.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(D::Error::custom(
                "an entry needs `key` and exactly one of value, header, clientIp, path, claim",
            ));
        }
        let source = match json.value {
            Some(v) if v.is_empty() => return Err(D::Error::custom("a constant value must not be empty")),
            Some(v) => EntrySource::Value(v),
            None => {
                map.remove("key");
                EntrySource::Request(serde_json::from_value(serde_json::Value::Object(map)).map_err(D::Error::custom)?)
            }
        };
        Ok(DescriptorEntry { key: json.key, source })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Rule {
    /// Names the rule in metrics (`meshplug.rate_limit.<name>.allowed`) and in shared-data keys.
    pub name: String,
    #[serde(default, rename = "match")]
    pub matches: MatchList,
    /// What a bucket is per; absent: one bucket for the whole rule.
    #[serde(default)]
    pub key: KeySpec,
    /// Local limits, exact across this Envoy's workers (checked first). May be empty with `global`.
    #[serde(default)]
    pub limits: Vec<Limit>,
    /// A limit shared by every replica, counted by the rate limit service (`rateLimitService`).
    #[serde(default)]
    pub global: Option<GlobalRule>,
    /// Count and log refusals but let the requests through.
    #[serde(default)]
    pub shadow: bool,
    #[serde(default)]
    pub on_missing_key: OnMissingKey,
}

/// What a rule's buckets are keyed by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeySpec {
    /// One bucket for the rule.
    #[default]
    Global,
    /// The value of a request header.
    Header(String),
    /// The client's IP: the source address, or the `trusted_hops`-th address from the right of
    /// `x-forwarded-for`. An IPv6 address is keyed by its first `ipv6_prefix` bits (default 64: one
    /// client usually holds a whole /64, and could otherwise rotate through 2^64 keys).
    ClientIp { trusted_hops: u32, ipv6_prefix: u8 },
    /// The request path (without the query string).
    Path,
    /// A claim published by jwt-authz in filter state.
    Claim(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum KeyJson {
    Header(String),
    ClientIp(ClientIpJson),
    Path(EmptyJson),
    Claim(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClientIpJson {
    #[serde(default)]
    trusted_hops: u32,
    #[serde(default = "default_ipv6_prefix")]
    ipv6_prefix_length: u8,
}

/// IPv6 clients are keyed by their /64 unless configured otherwise.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

fn default_ipv6_prefix() -> u8 {
    DEFAULT_IPV6_PREFIX
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyJson {}

impl<'de> Deserialize<'de> for KeySpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match KeyJson::deserialize(deserializer)? {
            KeyJson::Header(h) if h.trim().is_empty() => {
                return Err(serde::de::Error::custom("the header name must not be empty"))
            }
            KeyJson::Header(h) => KeySpec::Header(h.to_ascii_lowercase()),
            KeyJson::ClientIp(c) if c.ipv6_prefix_length == 0 || c.ipv6_prefix_length > 128 => {
                return Err(serde::de::Error::custom(format!(
                    "ipv6PrefixLength {} is out of range: it must be in [1, 128]",
                    c.ipv6_prefix_length
                )));
            }
            KeyJson::ClientIp(c) => {
                KeySpec::ClientIp { trusted_hops: c.trusted_hops, ipv6_prefix: c.ipv6_prefix_length }
            }
            KeyJson::Path(_) => KeySpec::Path,
            KeyJson::Claim(c) if c.is_empty() => {
                return Err(serde::de::Error::custom("the claim name must not be empty"))
            }
            KeyJson::Claim(c) => KeySpec::Claim(c),
        })
    }
}

/// `requests` per `per`, plus `burst` extra at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Limit {
    pub requests: u32,
    pub per: ConfigDuration,
    #[serde(default)]
    pub burst: u32,
}

impl Limit {
    /// Requests a full bucket admits at once.
    pub fn capacity(&self) -> u32 {
        self.requests.saturating_add(self.burst)
    }

    /// The time between two refills of one request.
    pub fn emission_interval(&self) -> Duration {
        self.per.0 / self.requests.max(1)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum OnMissingKey {
    /// Requests without a key share the rule's `unknown` bucket.
    #[default]
    Unknown,
    /// Requests without a key are not limited by this rule.
    Allow,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum OnError {
    /// Refuse the request (the limit is enforced even when the shared state is under contention).
    #[default]
    Deny,
    /// Let the request through.
    Allow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResponseConfig {
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default = "default_body")]
    pub body: String,
    /// `ratelimit-limit`/`-remaining`/`-reset` on every limited route's responses, `retry-after` on refusals.
    #[serde(default = "yes")]
    pub headers: bool,
}

fn default_status() -> u16 {
    DEFAULT_STATUS
}
fn default_body() -> String {
    DEFAULT_BODY.into()
}
fn yes() -> bool {
    true
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self { status: DEFAULT_STATUS, body: DEFAULT_BODY.into(), headers: true }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl RateLimitConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: RateLimitConfig = parse_json(bytes)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_keys == 0 || self.max_keys > MAX_MAX_KEYS {
            return Err(ConfigError::new("/maxKeys", format!("must be in [1, {MAX_MAX_KEYS}]")));
        }
        if !(200..600).contains(&self.response.status) {
            return Err(ConfigError::new(
                "/response/status",
                format!("HTTP status {} is out of range; expected [200, 600)", self.response.status),
            ));
        }
        if let Some(svc) = &self.rate_limit_service {
            let sp = "/rateLimitService";
            if svc.cluster.is_empty()
                || svc.cluster.len() > MAX_CLUSTER_NAME
                || !svc.cluster.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(ConfigError::new(
                    child(sp, "cluster"),
                    format!("must be 1 to {MAX_CLUSTER_NAME} printable ASCII characters"),
                ));
            }
            if svc
                .authority
                .as_ref()
                .is_some_and(|a| a.is_empty() || a.len() > MAX_CLUSTER_NAME || !a.bytes().all(|b| b.is_ascii_graphic()))
            {
                return Err(ConfigError::new(
                    child(sp, "authority"),
                    format!("must be 1 to {MAX_CLUSTER_NAME} printable ASCII characters"),
                ));
            }
            if svc.domain.is_empty() {
                return Err(ConfigError::new(child(sp, "domain"), "must not be empty"));
            }
            if svc.timeout.0.is_zero() || svc.timeout.0 > MAX_SERVICE_TIMEOUT {
                return Err(ConfigError::new(child(sp, "timeout"), "must be longer than 0 and at most 10s"));
            }
            if !(200..600).contains(&svc.status_on_error) {
                return Err(ConfigError::new(
                    child(sp, "statusOnError"),
                    format!("HTTP status {} is out of range; expected [200, 600)", svc.status_on_error),
                ));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let rp = child("/rules", i);
            if !valid_name(&rule.name) {
                return Err(ConfigError::new(
                    child(&rp, "name"),
                    format!("{:?} is not a valid rule name: use 1–64 letters, digits, '-' or '_'", rule.name),
                ));
            }
            if self.rules.iter().take(i).any(|r| r.name == rule.name) {
                return Err(ConfigError::new(child(&rp, "name"), format!("duplicate rule name {:?}", rule.name)));
            }
            if (rule.limits.is_empty() && rule.global.is_none()) || rule.limits.len() > MAX_LIMITS_PER_RULE {
                return Err(ConfigError::new(
                    child(&rp, "limits"),
                    format!("a rule needs 1 to {MAX_LIMITS_PER_RULE} limits, or `global`"),
                ));
            }
            if let Some(global) = &rule.global {
                let gp = child(&rp, "global");
                if self.rate_limit_service.is_none() {
                    return Err(ConfigError::new(
                        gp,
                        "a global rule needs `rateLimitService` (the cluster and domain of the rate limit service)",
                    ));
                }
                if global.descriptors.is_empty() || global.descriptors.len() > MAX_DESCRIPTOR_ENTRIES {
                    return Err(ConfigError::new(
                        child(&gp, "descriptors"),
                        format!("a descriptor needs 1 to {MAX_DESCRIPTOR_ENTRIES} entries"),
                    ));
                }
                if global.hits_addend == Some(0) {
                    return Err(ConfigError::new(child(&gp, "hitsAddend"), "must be at least 1"));
                }
                if global.limit.as_ref().is_some_and(|l| l.requests == 0) {
                    return Err(ConfigError::new(child(&child(&gp, "limit"), "requests"), "must be at least 1"));
                }
            }
            for (j, limit) in rule.limits.iter().enumerate() {
                let lp = child(&child(&rp, "limits"), j);
                if limit.requests == 0 {
                    return Err(ConfigError::new(child(&lp, "requests"), "must be at least 1"));
                }
                if limit.per.0.is_zero() {
                    return Err(ConfigError::new(child(&lp, "per"), "must be longer than 0"));
                }
                if limit.emission_interval().is_zero() {
                    return Err(ConfigError::new(
                        child(&lp, "requests"),
                        format!("{} requests per {} is finer than 1 ns per request", limit.requests, limit.per),
                    ));
                }
                let span = limit.emission_interval().as_nanos() * u128::from(limit.capacity());
                if span > MAX_BUCKET_SPAN.as_nanos() {
                    return Err(ConfigError::new(
                        child(&lp, "burst"),
                        "requests + burst at this rate take more than ten years to refill",
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
impl schemars::JsonSchema for DescriptorEntry {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DescriptorEntry".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let s = serde_json::json!({ "type": "string", "minLength": 1 });
        let sources = ["value", "header", "clientIp", "path", "claim"];
        let one_of: Vec<serde_json::Value> =
            sources.iter().map(|k| serde_json::json!({ "required": ["key", k] })).collect();
        schemars::json_schema!({
            "type": "object",
            "properties": {
                "key": { "type": "string", "minLength": 1, "maxLength": 64 },
                "value": s, "header": s, "claim": s,
                "clientIp": { "type": "object", "properties": { "trustedHops": { "type": "integer", "minimum": 0 }, "ipv6PrefixLength": { "type": "integer", "minimum": 1, "maximum": 128 } }, "additionalProperties": false },
                "path": { "type": "object", "additionalProperties": false }
            },
            "additionalProperties": false,
            "minProperties": 2,
            "maxProperties": 2,
            "oneOf": one_of
        })
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for KeySpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Key".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let s = serde_json::json!({ "type": "string", "minLength": 1 });
        meshplug_common::schema::one_key_objects(&[
            ("header", s.clone()),
            (
                "clientIp",
                serde_json::json!({ "type": "object", "properties": { "trustedHops": { "type": "integer", "minimum": 0 }, "ipv6PrefixLength": { "type": "integer", "minimum": 1, "maximum": 128, "default": 64 } }, "additionalProperties": false }),
            ),
            ("path", serde_json::json!({ "type": "object", "additionalProperties": false })),
            ("claim", s),
        ])
    }
}
