//! Istio AuthorizationPolicy evaluation: any matching DENY policy denies; if any ALLOW policy exists
//! and none matches, the request is denied; otherwise it is allowed.

use crate::config::{Condition, Operation, Policy, PolicyAction, PolicyRule, Source};
use meshplug_common::host::RequestHeaders;
use meshplug_common::matching::split_path;
use serde_json::{Map, Value};

/// The keys a `when` condition can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionKey {
    /// `request.auth.claims[a][b]…` (each bracket one level; a URL is one name).
    Claim(Vec<String>),
    /// `request.auth.principal`: `iss/sub`.
    Principal,
    /// `request.auth.audiences`.
    Audiences,
    /// `request.auth.presenter`: `azp`.
    Presenter,
    /// `request.headers[name]`.
    Header(String),
}

impl ConditionKey {
    pub fn parse(key: &str) -> Result<Self, String> {
        let brackets = |rest: &str| -> Result<Vec<String>, String> {
            let mut names = Vec::new();
            let mut rest = rest;
            while !rest.is_empty() {
                let inner = rest.strip_prefix('[').ok_or_else(|| format!("malformed key {key:?}: expected '['"))?;
                let end = inner.find(']').ok_or_else(|| format!("malformed key {key:?}: missing ']'"))?;
                let name = inner.get(..end).unwrap_or("");
                if name.is_empty() {
                    return Err(format!("malformed key {key:?}: empty name"));
                }
                names.push(name.to_string());
                rest = inner.get(end + 1..).unwrap_or("");
            }
            if names.is_empty() {
                return Err(format!("malformed key {key:?}: expected e.g. request.auth.claims[sub]"));
            }
            Ok(names)
        };
        if let Some(rest) = key.strip_prefix("request.auth.claims") {
            return brackets(rest).map(ConditionKey::Claim);
        }
        if let Some(rest) = key.strip_prefix("request.headers") {
            let names = brackets(rest)?;
            return match names.as_slice() {
                [one] => Ok(ConditionKey::Header(one.to_ascii_lowercase())),
                _ => Err(format!("malformed key {key:?}: one header name expected")),
            };
        }
        match key {
            "request.auth.principal" => Ok(ConditionKey::Principal),
            "request.auth.audiences" => Ok(ConditionKey::Audiences),
            "request.auth.presenter" => Ok(ConditionKey::Presenter),
            _ => Err(format!(
                "unsupported key {key:?}; supported: request.auth.claims[...], request.auth.principal, \
                 request.auth.audiences, request.auth.presenter, request.headers[...]"
            )),
        }
    }
}

/// What authentication established about the request.
#[derive(Debug, Default)]
pub struct Auth<'a> {
    /// `iss/sub` of every valid token.
    pub principals: Vec<String>,
    /// The claims of the first valid token.
    pub claims: Option<&'a Map<String, Value>>,
}

/// Istio's string match for policies: `*` (anything), `prefix*`, `*suffix`, or exact.
pub fn glob(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return value.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return value.ends_with(suffix);
    }
    pattern == value
}

fn any_glob(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| glob(p, value))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The values a key has for this request (an array claim gives each element).
fn values_of(key: &ConditionKey, req: &dyn RequestHeaders, auth: &Auth) -> Vec<String> {
    match key {
        ConditionKey::Claim(path) => {
            let mut node: Option<&Value> = None;
            for (i, name) in path.iter().enumerate() {
                node = if i == 0 { auth.claims.and_then(|c| c.get(name)) } else { node.and_then(|n| n.get(name)) };
            }
            match node {
                Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
                Some(v) => scalar(v).into_iter().collect(),
                None => vec![],
            }
        }
        ConditionKey::Principal => auth.principals.clone(),
        ConditionKey::Audiences => {
            auth.claims.map(crate::token::audiences).unwrap_or_default().into_iter().map(String::from).collect()
        }
        ConditionKey::Presenter => auth.claims.and_then(|c| c.get("azp")).and_then(scalar).into_iter().collect(),
        ConditionKey::Header(name) => req.header(name).into_iter().collect(),
    }
}

fn condition_holds(c: &Condition, req: &dyn RequestHeaders, auth: &Auth) -> bool {
    let Ok(key) = ConditionKey::parse(&c.key) else { return false };
    let values = values_of(&key, req, auth);
    let in_values = c.values.is_empty() || values.iter().any(|v| any_glob(&c.values, v));
    let in_not = values.iter().any(|v| any_glob(&c.not_values, v));
    in_values && !in_not
}

fn source_holds(s: &Source, auth: &Auth) -> bool {
    let principals = &auth.principals;
    let ok = s.request_principals.is_empty() || principals.iter().any(|p| any_glob(&s.request_principals, p));
    let not = principals.iter().any(|p| any_glob(&s.not_request_principals, p));
    ok && !not
}

fn operation_holds(o: &Operation, req: &dyn RequestHeaders) -> bool {
    if !o.methods.is_empty() || !o.not_methods.is_empty() {
        let method = req.header(":method").unwrap_or_default();
        if (!o.methods.is_empty() && !o.methods.contains(&method)) || o.not_methods.contains(&method) {
            return false;
        }
    }
    if !o.paths.is_empty() || !o.not_paths.is_empty() {
        let full = req.header(":path").unwrap_or_default();
        let path = split_path(&full).0;
        if (!o.paths.is_empty() && !any_glob(&o.paths, path)) || any_glob(&o.not_paths, path) {
            return false;
        }
    }
    if !o.hosts.is_empty() || !o.not_hosts.is_empty() {
        let host = req.header(":authority").unwrap_or_default().to_ascii_lowercase();
        let lower = |v: &[String]| v.iter().map(|h| h.to_ascii_lowercase()).collect::<Vec<_>>();
        if (!o.hosts.is_empty() && !any_glob(&lower(&o.hosts), &host)) || any_glob(&lower(&o.not_hosts), &host) {
            return false;
        }
    }
    true
}

fn rule_matches(r: &PolicyRule, req: &dyn RequestHeaders, auth: &Auth) -> bool {
    (r.from.is_empty() || r.from.iter().any(|f| source_holds(&f.source, auth)))
        && (r.to.is_empty() || r.to.iter().any(|t| operation_holds(&t.operation, req)))
        && r.when.iter().all(|c| condition_holds(c, req, auth))
}

/// The outcome of the policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied: by the named (or numbered) DENY policy, or because no ALLOW policy matched.
    Deny(String),
}

pub fn decide(policies: &[Policy], req: &dyn RequestHeaders, auth: &Auth) -> Decision {
    let label = |i: usize, p: &Policy| p.name.clone().unwrap_or_else(|| format!("policies[{i}]"));
    for (i, p) in policies.iter().enumerate().filter(|(_, p)| p.action == PolicyAction::Deny) {
        if p.rules.iter().any(|r| rule_matches(r, req, auth)) {
            return Decision::Deny(format!("DENY policy {} matched", label(i, p)));
        }
    }
    let mut allows = policies.iter().filter(|p| p.action == PolicyAction::Allow).peekable();
    if allows.peek().is_none() {
        return Decision::Allow;
    }
    if allows.any(|p| p.rules.iter().any(|r| rule_matches(r, req, auth))) {
        Decision::Allow
    } else {
        Decision::Deny("no ALLOW policy matched".into())
    }
}

#[cfg(test)]
#[path = "tests/policy.rs"]
mod tests;
