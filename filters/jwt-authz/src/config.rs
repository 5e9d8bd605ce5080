//! The jwt-authz filter's pluginConfig, in the shape of Istio's RequestAuthentication (`jwtRules`) and
//! AuthorizationPolicy (`action`, `rules`), so YAML carries over.

use meshplug_common::config::{child, parse_json, ConfigError};
use meshplug_common::duration::ConfigDuration;
use serde::Deserialize;
use std::time::Duration;

pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
pub const DEFAULT_CACHE_SIZE: usize = 1000;
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(600);
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(30);
/// Largest JWKS document accepted (inline or fetched): defined with the JWKS parser.
pub use crate::jwks::MAX_JWKS_BYTES;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JwtAuthzConfig {
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// Tolerance for `exp`, `nbf` and `iat` against the host clock.
    #[serde(default = "default_skew")]
    pub clock_skew: ConfigDuration,
    /// Verified tokens remembered per worker (0 turns the cache off).
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// Publish the verified claims in Envoy's filter state (`meshplug_claims`) for filters outside this
    /// module. Absent: yes in jwt_authz.wasm (a separate rate-limit or canary module reads them
    /// there), no in the bundle, whose later filters read them inside the module; say `true` there
    /// when something outside the bundle (another module, an access log) reads them.
    #[serde(default)]
    pub publish_claims: Option<bool>,
}

fn default_skew() -> ConfigDuration {
    ConfigDuration(DEFAULT_CLOCK_SKEW)
}
fn default_cache_size() -> usize {
    DEFAULT_CACHE_SIZE
}

/// Istio `JWTRule`, plus meshplug's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JwtRule {
    /// The `iss` this rule validates.
    pub issuer: String,
    /// When set, `aud` must contain one of these.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// A JWKS document as a JSON string (as in Istio).
    pub jwks: Option<String>,
    /// Fetch the JWKS through an Envoy cluster.
    pub remote_jwks: Option<RemoteJwks>,
    /// Where tokens are looked for; default: `authorization: Bearer <token>`.
    #[serde(default)]
    pub from_headers: Vec<FromHeader>,
    /// Query parameters holding a token; default (with no `fromHeaders`/`fromCookies`): `access_token`.
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// Keep the token header on the request to the upstream.
    #[serde(default)]
    pub forward_original_token: bool,
    /// Send the verified payload (base64url JSON) to the upstream in this header.
    pub output_payload_to_header: Option<String>,
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// Refuse tokens without `exp`.
    #[serde(default = "yes")]
    pub require_expiration: bool,
    /// Tokens larger than this are refused before decoding.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
}

fn yes() -> bool {
    true
}
fn default_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RemoteJwks {
    /// An Envoy cluster that reaches the JWKS server.
    pub cluster: String,
    pub path: String,
    /// `:authority` of the fetch (default: the cluster name).
    pub authority: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    #[serde(default = "default_refresh")]
    pub refresh_interval: ConfigDuration,
    /// A token naming an unknown `kid` triggers a refetch at most this often.
    #[serde(default = "default_kid_refetch")]
    pub unknown_kid_refetch_interval: ConfigDuration,
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration(DEFAULT_FETCH_TIMEOUT)
}
fn default_refresh() -> ConfigDuration {
    ConfigDuration(DEFAULT_REFRESH)
}
fn default_kid_refetch() -> ConfigDuration {
    ConfigDuration(DEFAULT_UNKNOWN_KID_REFETCH)
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FromHeader {
    pub name: String,
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

/// Istio `AuthorizationPolicy` (the parts a filter can evaluate).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Policy {
    /// A label for logs.
    pub name: Option<String>,
    #[serde(default)]
    pub action: PolicyAction,
    /// No rules: the policy matches nothing (an ALLOW policy without rules denies everything).
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PolicyAction {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PolicyRule {
    #[serde(default)]
    pub from: Vec<From>,
    #[serde(default)]
    pub to: Vec<To>,
    #[serde(default)]
    pub when: Vec<Condition>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct From {
    pub source: Source,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Source {
    #[serde(default)]
    pub request_principals: Vec<String>,
    #[serde(default)]
    pub not_request_principals: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct To {
    pub operation: Operation,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Operation {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub not_hosts: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub not_methods: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub not_paths: Vec<String>,
    /// `paths` and `notPaths` compiled (filled when the config is loaded).
    #[serde(skip)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub compiled: CompiledPaths,
}

/// An operation's path patterns, compiled once.
#[derive(Debug, Clone, Default)]
pub struct CompiledPaths {
    pub paths: Vec<crate::rules::PathPattern>,
    pub not_paths: Vec<crate::rules::PathPattern>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Condition {
    pub key: String,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub not_values: Vec<String>,
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl JwtAuthzConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let mut config: JwtAuthzConfig = parse_json(bytes)?;
        config.normalise();
        config.validate()?;
        config.compile_paths()?;
        Ok(config)
    }

    fn normalise(&mut self) {
        for rule in &mut self.jwt_rules {
            if rule.from_headers.is_empty() && rule.from_params.is_empty() && rule.from_cookies.is_empty() {
                rule.from_headers.push(FromHeader { name: "authorization".into(), prefix: "Bearer ".into() });
                rule.from_params.push("access_token".into());
            }
            for h in &mut rule.from_headers {
                h.name = h.name.to_ascii_lowercase();
            }
            if let Some(h) = &mut rule.output_payload_to_header {
                *h = h.to_ascii_lowercase();
            }
            for c in &mut rule.output_claim_to_headers {
                c.header = c.header.to_ascii_lowercase();
            }
        }
    }

    /// Compiles every operation's `paths`/`notPaths`, refusing what Istio refuses.
    fn compile_paths(&mut self) -> Result<(), ConfigError> {
        for (i, policy) in self.policies.iter_mut().enumerate() {
            for (j, rule) in policy.rules.iter_mut().enumerate() {
                for (k, to) in rule.to.iter_mut().enumerate() {
                    let op =
                        child(&child(&child(&child(&child(&child("/policies", i), "rules"), j), "to"), k), "operation");
                    let compile = |list: &[String], field: &str| {
                        list.iter()
                            .enumerate()
                            .map(|(n, p)| {
                                crate::rules::PathPattern::parse(p)
                                    .map_err(|e| ConfigError::new(child(&child(&op, field), n), e))
                            })
                            .collect::<Result<Vec<_>, _>>()
                    };
                    let o = &mut to.operation;
                    o.compiled = CompiledPaths {
                        paths: compile(&o.paths, "paths")?,
                        not_paths: compile(&o.not_paths, "notPaths")?,
                    };
                }
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (i, rule) in self.jwt_rules.iter().enumerate() {
            let rp = child("/jwtRules", i);
            if rule.issuer.is_empty() {
                return Err(ConfigError::new(child(&rp, "issuer"), "must not be empty"));
            }
            if self.jwt_rules.iter().take(i).any(|r| r.issuer == rule.issuer) {
                return Err(ConfigError::new(child(&rp, "issuer"), format!("duplicate issuer {:?}", rule.issuer)));
            }
            match (&rule.jwks, &rule.remote_jwks) {
                (None, None) | (Some(_), Some(_)) => {
                    return Err(ConfigError::new(rp, "needs exactly one of `jwks` and `remoteJwks`"));
                }
                (Some(jwks), None) => {
                    crate::jwks::KeySet::parse(jwks.as_bytes()).map_err(|e| ConfigError::new(child(&rp, "jwks"), e))?;
                }
                (None, Some(remote)) => {
                    let p = child(&rp, "remoteJwks");
                    if remote.cluster.is_empty() {
                        return Err(ConfigError::new(child(&p, "cluster"), "must not be empty"));
                    }
                    if !remote.path.starts_with('/') {
                        return Err(ConfigError::new(child(&p, "path"), "must start with '/'"));
                    }
                    if remote.timeout.0.is_zero() {
                        return Err(ConfigError::new(child(&p, "timeout"), "must be longer than 0"));
                    }
                    if remote.refresh_interval.0 < Duration::from_secs(1) {
                        return Err(ConfigError::new(child(&p, "refreshInterval"), "must be at least 1s"));
                    }
                }
            }
            for (j, h) in rule.from_headers.iter().enumerate() {
                if !valid_header_name(&h.name) {
                    return Err(ConfigError::new(
                        child(&child(&child(&rp, "fromHeaders"), j), "name"),
                        "not a valid header name",
                    ));
                }
            }
            if let Some(h) = &rule.output_payload_to_header {
                if !valid_header_name(h) {
                    return Err(ConfigError::new(child(&rp, "outputPayloadToHeader"), "not a valid header name"));
                }
            }
            for (j, c) in rule.output_claim_to_headers.iter().enumerate() {
                let cp = child(&child(&rp, "outputClaimToHeaders"), j);
                if !valid_header_name(&c.header) {
                    return Err(ConfigError::new(child(&cp, "header"), "not a valid header name"));
                }
                if c.claim.is_empty() {
                    return Err(ConfigError::new(child(&cp, "claim"), "must not be empty"));
                }
            }
            if rule.max_token_bytes < 64 || rule.max_token_bytes > 1024 * 1024 {
                return Err(ConfigError::new(child(&rp, "maxTokenBytes"), "must be in [64, 1048576]"));
            }
        }
        for (i, policy) in self.policies.iter().enumerate() {
            for (j, rule) in policy.rules.iter().enumerate() {
                for (k, cond) in rule.when.iter().enumerate() {
                    let cp = child(&child(&child(&child(&child("/policies", i), "rules"), j), "when"), k);
                    crate::rules::ConditionKey::parse(&cond.key).map_err(|e| ConfigError::new(child(&cp, "key"), e))?;
                    if cond.values.is_empty() && cond.not_values.is_empty() {
                        return Err(ConfigError::new(cp, "a condition needs `values` or `notValues`"));
                    }
                }
            }
        }
        if self.cache_size > 1_000_000 {
            return Err(ConfigError::new("/cacheSize", "must be at most 1000000"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;
