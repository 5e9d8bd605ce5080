//! Istio AuthorizationPolicy evaluation: any matching DENY policy denies; if any ALLOW policy exists
//! and none matches, the request is denied; otherwise it is allowed.

use crate::config::{Condition, Operation, Policy, PolicyAction, PolicyRule, Source};
pub use crate::rules::{glob, ConditionKey, PathPattern};
use meshplug_common::host::RequestHeaders;
use meshplug_common::path::normalized_path;
use serde_json::{Map, Value};

/// What authentication established about the request (one token at most: a request with two
/// different tokens is refused before policies run).
#[derive(Debug, Default)]
pub struct Auth<'a> {
    /// `iss/sub` of the valid token; only when the token has both `iss` and `sub` (as Istio).
    pub principals: Vec<String>,
    /// The claims of the valid token.
    pub claims: Option<&'a Map<String, Value>>,
}

/// Claims Istio reads as space-delimited lists when they are strings (`scope: "read write"` holds
/// `read` and `write`).
pub const SPACE_DELIMITED_CLAIMS: [&str; 3] = ["scope", "scp", "permission"];

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

/// The values a key has for this request (an array claim gives each element; a string `scope`, `scp`
/// or `permission` claim each space-delimited word).
fn values_of(key: &ConditionKey, req: &dyn RequestHeaders, auth: &Auth) -> Vec<String> {
    match key {
        ConditionKey::Claim(path) => {
            let mut node: Option<&Value> = None;
            for (i, name) in path.iter().enumerate() {
                node = if i == 0 { auth.claims.and_then(|c| c.get(name)) } else { node.and_then(|n| n.get(name)) };
            }
            let space_delimited = matches!(path.as_slice(), [one] if SPACE_DELIMITED_CLAIMS.contains(&one.as_str()));
            match node {
                Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
                Some(Value::String(s)) if space_delimited => s.split_whitespace().map(str::to_string).collect(),
                Some(v) => scalar(v).into_iter().collect(),
                None => vec![],
            }
        }
        ConditionKey::Principal => auth.principals.clone(),
        ConditionKey::Audiences => {
            auth.claims.map(crate::token::audiences).unwrap_or_default().into_iter().map(String::from).collect()
        }
        ConditionKey::Presenter => auth.claims.and_then(|c| c.get("azp")).and_then(scalar).into_iter().collect(),
        // A value that is not UTF-8 is compared with its invalid sequences as U+FFFD (it can never
        // equal a configured value, and `*` still matches it). A repeated header is one value, its
        // values joined with `,`, as Envoy's RBAC filter (Istio's AuthorizationPolicy) sees it.
        ConditionKey::Header(name) => {
            req.header_joined(name).into_iter().map(|v| String::from_utf8_lossy(&v).into_owned()).collect()
        }
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

fn text(req: &dyn RequestHeaders, name: &str) -> String {
    String::from_utf8_lossy(&req.header(name).unwrap_or_default()).into_owned()
}

/// The normalized path of the request, computed the first time an operation needs it (once per
/// request, however many policies name paths).
type LazyPath = std::cell::OnceCell<String>;

fn operation_holds(o: &Operation, req: &dyn RequestHeaders, lazy_path: &LazyPath) -> bool {
    if !o.methods.is_empty() || !o.not_methods.is_empty() {
        let method = text(req, ":method");
        if (!o.methods.is_empty() && !o.methods.contains(&method)) || o.not_methods.contains(&method) {
            return false;
        }
    }
    if !o.paths.is_empty() || !o.not_paths.is_empty() {
        // The normalized path: `/public/../admin`, `//admin` and `/%61dmin` are `/admin`.
        let path = lazy_path.get_or_init(|| {
            String::from_utf8_lossy(&normalized_path(&req.header(":path").unwrap_or_default())).into_owned()
        });
        let any = |patterns: &[PathPattern]| patterns.iter().any(|p| p.matches(path));
        if (!o.paths.is_empty() && !any(&o.compiled.paths)) || any(&o.compiled.not_paths) {
            return false;
        }
    }
    if !o.hosts.is_empty() || !o.not_hosts.is_empty() {
        let host = text(req, ":authority").to_ascii_lowercase();
        let lower = |v: &[String]| v.iter().map(|h| h.to_ascii_lowercase()).collect::<Vec<_>>();
        if (!o.hosts.is_empty() && !any_glob(&lower(&o.hosts), &host)) || any_glob(&lower(&o.not_hosts), &host) {
            return false;
        }
    }
    true
}

fn rule_matches(r: &PolicyRule, req: &dyn RequestHeaders, auth: &Auth, path: &LazyPath) -> bool {
    (r.from.is_empty() || r.from.iter().any(|f| source_holds(&f.source, auth)))
        && (r.to.is_empty() || r.to.iter().any(|t| operation_holds(&t.operation, req, path)))
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
    let path = LazyPath::new();
    let label = |i: usize, p: &Policy| p.name.clone().unwrap_or_else(|| format!("policies[{i}]"));
    for (i, p) in policies.iter().enumerate().filter(|(_, p)| p.action == PolicyAction::Deny) {
        if p.rules.iter().any(|r| rule_matches(r, req, auth, &path)) {
            return Decision::Deny(format!("DENY policy {} matched", label(i, p)));
        }
    }
    let mut allows = policies.iter().filter(|p| p.action == PolicyAction::Allow).peekable();
    if allows.peek().is_none() {
        return Decision::Allow;
    }
    if allows.any(|p| p.rules.iter().any(|r| rule_matches(r, req, auth, &path))) {
        Decision::Allow
    } else {
        Decision::Deny("no ALLOW policy matched".into())
    }
}

#[cfg(test)]
#[path = "tests/policy.rs"]
mod tests;
