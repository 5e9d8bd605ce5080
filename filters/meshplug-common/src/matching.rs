//! Request matching in the shape of Istio's `HTTPMatchRequest`, so rules copied from a VirtualService
//! keep their meaning.
//!
//! ```json
//! { "uri": {"prefix": "/api"}, "method": {"exact": "GET"},
//!   "headers": {"x-user": {"regex": "a.*"}, "x-debug": {"present": true}},
//!   "queryParams": {"v": {"exact": "2"}}, "withoutHeaders": {"x-internal": {"exact": "1"}} }
//! ```
//! All conditions of one `HTTPMatchRequest` must hold; a list of them matches when any one does, and an
//! empty or absent list matches every request.
//!
//! Semantics follow Istio/Envoy: `uri` is compared with the normalized path without its query string
//! (see [`crate::path`]: `/public/../admin` is `/admin`); `regex` is a full match (as RE2 in Envoy)
//! evaluated by `regex-lite`, whose matching time is linear in the input, so a hostile header cannot
//! make it slow; header names are case-insensitive; `ignoreUriCase` applies to `exact` and `prefix` URI
//! matches; query parameter values are compared as sent (not percent-decoded).
//!
//! Values are bytes (a client may send any byte in a header): `exact` and `prefix` compare bytes, so a
//! value that is not UTF-8 never equals a config string; a `regex` sees each invalid UTF-8 sequence as
//! U+FFFD (the replacement character), so `.*` matches any value and `[a-z]+` none with such bytes.

use crate::host::RequestHeaders;
use crate::path::{normalize, query_param, split_path};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// `{"exact": ..}`, `{"prefix": ..}` or `{"regex": ..}`.
#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(regex_lite::Regex),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum StringMatchJson {
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// Longest regex accepted in a config. Patterns come from operators, but a typo can still produce an
/// enormous program; this keeps compile time and memory small in every worker.
pub const MAX_REGEX_LEN: usize = 4096;

fn compile_regex(pattern: &str) -> Result<regex_lite::Regex, String> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(format!("regex is {} bytes long; the maximum is {MAX_REGEX_LEN}", pattern.len()));
    }
    regex_lite::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("invalid regex {pattern:?}: {e}"))
}

impl StringMatchJson {
    fn compile(self) -> Result<StringMatch, String> {
        Ok(match self {
            StringMatchJson::Exact(s) => StringMatch::Exact(s),
            StringMatchJson::Prefix(s) => StringMatch::Prefix(s),
            StringMatchJson::Regex(p) => StringMatch::Regex(compile_regex(&p)?),
        })
    }
}

impl<'de> Deserialize<'de> for StringMatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        StringMatchJson::deserialize(deserializer)?.compile().map_err(serde::de::Error::custom)
    }
}

impl StringMatch {
    /// Whether `value` (bytes as received) matches.
    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            StringMatch::Exact(s) => value == s.as_bytes(),
            StringMatch::Prefix(s) => value.starts_with(s.as_bytes()),
            StringMatch::Regex(r) => r.is_match(&String::from_utf8_lossy(value)),
        }
    }

    fn matches_ignoring_case(&self, value: &[u8]) -> bool {
        match self {
            StringMatch::Exact(s) => value.eq_ignore_ascii_case(s.as_bytes()),
            StringMatch::Prefix(s) => value.get(..s.len()).is_some_and(|head| head.eq_ignore_ascii_case(s.as_bytes())),
            StringMatch::Regex(r) => r.is_match(&String::from_utf8_lossy(value)),
        }
    }
}

/// A header condition: a [`StringMatch`] on its value, or `{"present": true}` (the header is there,
/// whatever its value) / `{"present": false}` (the header is absent).
#[derive(Debug, Clone)]
pub enum HeaderMatch {
    Value(StringMatch),
    Present(bool),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum HeaderMatchJson {
    Exact(String),
    Prefix(String),
    Regex(String),
    Present(bool),
}

impl<'de> Deserialize<'de> for HeaderMatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = HeaderMatchJson::deserialize(deserializer)?;
        let string = match json {
            HeaderMatchJson::Present(p) => return Ok(HeaderMatch::Present(p)),
            HeaderMatchJson::Exact(s) => StringMatchJson::Exact(s),
            HeaderMatchJson::Prefix(s) => StringMatchJson::Prefix(s),
            HeaderMatchJson::Regex(s) => StringMatchJson::Regex(s),
        };
        string.compile().map(HeaderMatch::Value).map_err(serde::de::Error::custom)
    }
}

impl HeaderMatch {
    fn matches(&self, value: Option<&[u8]>) -> bool {
        match (self, value) {
            (HeaderMatch::Present(want), v) => *want == v.is_some(),
            (HeaderMatch::Value(m), Some(v)) => m.matches(v),
            (HeaderMatch::Value(_), None) => false,
        }
    }
}

/// One Istio `HTTPMatchRequest`: every condition given must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", from = "HttpMatchRequestJson")]
pub struct HttpMatchRequest {
    /// Label for logs (Istio's `name`); not matched.
    pub name: Option<String>,
    uri: Option<StringMatch>,
    ignore_uri_case: bool,
    method: Option<StringMatch>,
    authority: Option<StringMatch>,
    scheme: Option<StringMatch>,
    headers: Vec<(String, HeaderMatch)>,
    without_headers: Vec<(String, HeaderMatch)>,
    query_params: Vec<(String, StringMatch)>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpMatchRequestJson {
    name: Option<String>,
    uri: Option<StringMatch>,
    #[serde(default)]
    ignore_uri_case: bool,
    method: Option<StringMatch>,
    authority: Option<StringMatch>,
    scheme: Option<StringMatch>,
    #[serde(default)]
    headers: BTreeMap<String, HeaderMatch>,
    #[serde(default)]
    without_headers: BTreeMap<String, HeaderMatch>,
    #[serde(default)]
    query_params: BTreeMap<String, StringMatch>,
}

fn lower_keys<T>(map: BTreeMap<String, T>) -> Vec<(String, T)> {
    map.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
}

impl From<HttpMatchRequestJson> for HttpMatchRequest {
    fn from(j: HttpMatchRequestJson) -> Self {
        Self {
            name: j.name,
            uri: j.uri,
            ignore_uri_case: j.ignore_uri_case,
            method: j.method,
            authority: j.authority,
            scheme: j.scheme,
            headers: lower_keys(j.headers),
            without_headers: lower_keys(j.without_headers),
            query_params: j.query_params.into_iter().collect(),
        }
    }
}

impl HttpMatchRequest {
    pub fn matches(&self, req: &dyn RequestHeaders) -> bool {
        if let Some(m) = &self.method {
            if !req.header(":method").is_some_and(|v| m.matches(&v)) {
                return false;
            }
        }
        if self.uri.is_some() || !self.query_params.is_empty() {
            let full = req.header(":path").unwrap_or_default();
            let (path, query) = split_path(&full);
            if let Some(m) = &self.uri {
                let path = normalize(path);
                let ok = if self.ignore_uri_case { m.matches_ignoring_case(&path) } else { m.matches(&path) };
                if !ok {
                    return false;
                }
            }
            for (name, m) in &self.query_params {
                if !query_param(query, name).is_some_and(|v| m.matches(v)) {
                    return false;
                }
            }
        }
        for (pseudo, m) in [(":authority", &self.authority), (":scheme", &self.scheme)] {
            if let Some(m) = m {
                if !req.header(pseudo).is_some_and(|v| m.matches(&v)) {
                    return false;
                }
            }
        }
        // A repeated header is matched as its values joined with `,`, as Envoy's route matching sees it.
        let headers_hold = self.headers.iter().all(|(name, m)| m.matches(req.header_joined(name).as_deref()));
        let without_hold = self.without_headers.iter().all(|(name, m)| !m.matches(req.header_joined(name).as_deref()));
        headers_hold && without_hold
    }
}

/// The JSON Schema of one `HTTPMatchRequest` (its serde form).
#[cfg(feature = "schema")]
pub(crate) fn match_request_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    <HttpMatchRequestJson as schemars::JsonSchema>::json_schema(generator)
}

/// A list of `HTTPMatchRequest`s: matches when any one matches; an empty list matches everything.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct MatchList(pub Vec<HttpMatchRequest>);

impl MatchList {
    pub fn matches(&self, req: &dyn RequestHeaders) -> bool {
        self.0.is_empty() || self.0.iter().any(|m| m.matches(req))
    }
}

#[cfg(test)]
#[path = "tests/matching.rs"]
mod tests;
