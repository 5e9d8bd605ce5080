//! The canary filter's pluginConfig.

use meshplug_common::config::{child, parse_json, ConfigError};
use meshplug_common::duration::ConfigDuration;
use meshplug_common::matching::MatchList;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

pub const DEFAULT_HEADER: &str = "x-meshplug-variant";
pub const DEFAULT_SEED: &str = "meshplug";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CanaryConfig {
    /// The routing header the decision is written to (a client-sent value is always removed first).
    #[serde(default = "default_header")]
    pub header: String,
    /// Checked in order after `override`; the first match picks its variant.
    #[serde(default)]
    pub rules: Vec<Rule>,
    pub split: Split,
    #[serde(rename = "override")]
    pub override_: Option<Override>,
    /// Add the chosen variant to the response as `<header>` too.
    #[serde(default)]
    pub expose_variant: bool,
}

fn default_header() -> String {
    DEFAULT_HEADER.into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Rule {
    pub name: Option<String>,
    #[serde(rename = "match", default)]
    pub matches: MatchList,
    pub variant: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Split {
    /// What keeps a user on one variant; absent: random per request (or the pinning cookie).
    pub sticky_by: Option<StickyBy>,
    /// The first variant is the baseline: it takes what the others leave.
    pub variants: Vec<Variant>,
    /// Pin clients without a sticky key with a cookie set on their first response.
    pub set_cookie: Option<SetCookie>,
    /// Mixed into the sticky hash: change it to reshuffle every user (e.g. for a new experiment).
    #[serde(default = "default_seed")]
    pub seed: String,
}

fn default_seed() -> String {
    DEFAULT_SEED.into()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyBy {
    Cookie(String),
    Header(String),
    Claim(String),
    ClientIp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum StickyJson {
    Cookie(String),
    Header(String),
    Claim(String),
    ClientIp(Empty),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl<'de> Deserialize<'de> for StickyBy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = match StickyJson::deserialize(d)? {
            StickyJson::Cookie(c) => StickyBy::Cookie(c),
            StickyJson::Header(h) => StickyBy::Header(h.to_ascii_lowercase()),
            StickyJson::Claim(c) => StickyBy::Claim(c),
            StickyJson::ClientIp(_) => StickyBy::ClientIp,
        };
        match &v {
            StickyBy::Cookie(s) | StickyBy::Header(s) | StickyBy::Claim(s) if s.is_empty() => {
                Err(serde::de::Error::custom("the name must not be empty"))
            }
            _ => Ok(v),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Variant {
    pub name: String,
    pub weight: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SetCookie {
    pub name: String,
    #[serde(default = "default_max_age")]
    pub max_age: ConfigDuration,
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_max_age() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(24 * 3600))
}
fn default_path() -> String {
    "/".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Override {
    pub header: String,
    /// Only these variants may be asked for.
    pub allowed: Vec<String>,
}

/// Header names: lower-case token characters.
fn valid_header(h: &str) -> bool {
    !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Variant and cookie names: what may appear in a header value and a cookie without quoting.
fn valid_token(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl CanaryConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let mut c: CanaryConfig = parse_json(bytes)?;
        c.header = c.header.to_ascii_lowercase();
        if let Some(o) = &mut c.override_ {
            o.header = o.header.to_ascii_lowercase();
        }
        c.validate()?;
        Ok(c)
    }

    pub fn variant_index(&self, name: &str) -> Option<usize> {
        self.split.variants.iter().position(|v| v.name == name)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !valid_header(&self.header) {
            return Err(ConfigError::new("/header", format!("{:?} is not a valid header name", self.header)));
        }
        let vs = &self.split.variants;
        if vs.is_empty() {
            return Err(ConfigError::new("/split/variants", "at least one variant is needed"));
        }
        for (i, v) in vs.iter().enumerate() {
            let p = child(&child("/split/variants", i), "name");
            if !valid_token(&v.name) {
                return Err(ConfigError::new(
                    p,
                    format!("{:?} is not a valid variant name (1–64 of A-Za-z0-9-_.)", v.name),
                ));
            }
            if vs.iter().take(i).any(|o| o.name == v.name) {
                return Err(ConfigError::new(p, format!("duplicate variant {:?}", v.name)));
            }
        }
        if vs.iter().map(|v| u64::from(v.weight)).sum::<u64>() == 0 {
            return Err(ConfigError::new("/split/variants", "at least one weight must be above 0"));
        }
        if vs.iter().map(|v| u64::from(v.weight)).sum::<u64>() > u64::from(u32::MAX) {
            return Err(ConfigError::new("/split/variants", "the weights add up to more than 2^32 - 1"));
        }
        for (i, r) in self.rules.iter().enumerate() {
            if self.variant_index(&r.variant).is_none() {
                return Err(ConfigError::new(
                    child(&child("/rules", i), "variant"),
                    format!("unknown variant {:?}; variants: {}", r.variant, self.variant_names()),
                ));
            }
        }
        if let Some(o) = &self.override_ {
            if !valid_header(&o.header) {
                return Err(ConfigError::new("/override/header", "not a valid header name"));
            }
            for (i, a) in o.allowed.iter().enumerate() {
                if self.variant_index(a).is_none() {
                    return Err(ConfigError::new(
                        child("/override/allowed", i),
                        format!("unknown variant {a:?}; variants: {}", self.variant_names()),
                    ));
                }
            }
        }
        if let Some(c) = &self.split.set_cookie {
            if !valid_token(&c.name) {
                return Err(ConfigError::new("/split/setCookie/name", "not a valid cookie name"));
            }
            if !c.path.starts_with('/')
                || c.path.bytes().any(|b| b == b';' || b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(ConfigError::new(
                    "/split/setCookie/path",
                    "must start with '/' and contain no ';', spaces or controls",
                ));
            }
        }
        Ok(())
    }

    fn variant_names(&self) -> String {
        self.split.variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;

#[cfg(feature = "schema")]
impl schemars::JsonSchema for StickyBy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StickyBy".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let s = serde_json::json!({ "type": "string", "minLength": 1 });
        meshplug_common::schema::one_key_objects(&[
            ("cookie", s.clone()),
            ("header", s.clone()),
            ("claim", s),
            ("clientIp", serde_json::json!({ "type": "object", "additionalProperties": false })),
        ])
    }
}
