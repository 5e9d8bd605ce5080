//! The parsed forms of AuthorizationPolicy fields — a `when` key ([`ConditionKey`]), a `paths` entry
//! ([`PathPattern`]) — and Istio's string glob. Parsed once when the config is (`config.rs` validates
//! with them), evaluated per request (`policy.rs`); they depend on nothing else in the crate, so the
//! modules form a one-way graph: config → rules, jwks; policy → config, rules, token; token → jwks.

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

/// One entry of `paths`/`notPaths`, as Istio reads it: `*` (any path), `/prefix*`, `*suffix`, an exact
/// path, or a path template with `{*}` (one segment) and `{**}` (any rest, last operator only).
#[derive(Debug, Clone)]
pub enum PathPattern {
    Glob(String),
    Template(regex_lite::Regex),
}

/// Characters Envoy's URI templates let `{*}` match (RFC 3986 pchar without `/`); `{**}` adds `/`.
const SEGMENT_CHARS: &str = r"[A-Za-z0-9\-._~%!$&'()+,;:@=]";
const REST_CHARS: &str = r"[A-Za-z0-9\-._~%!$&'()+,;:@=/]";

impl PathPattern {
    /// Compiles one `paths` entry, refusing what Istio refuses (istio.io AuthorizationPolicy
    /// `Operation.paths`): a `*` anywhere but alone, first or last; in a template, `*`, `{` or `}`
    /// outside `{*}`/`{**}`, other characters in an operator's segment, or `{**}` before another
    /// operator.
    pub fn parse(path: &str) -> Result<Self, String> {
        if !path.contains("{*}") && !path.contains("{**}") {
            let inner = path.strip_prefix('*').unwrap_or(path);
            let inner = inner.strip_suffix('*').unwrap_or(inner);
            if path != "*" && (inner.contains('*') || (path.starts_with('*') && path.ends_with('*'))) {
                return Err(format!(
                    "{path:?}: `*` is allowed only alone, as a prefix (`*/x`) or as a suffix (`/x/*`); \
                     use `{{*}}` or `{{**}}` for a path template"
                ));
            }
            return Ok(PathPattern::Glob(path.to_string()));
        }
        if !path.starts_with('/') {
            return Err(format!("{path:?}: a path template must start with '/'"));
        }
        let mut regex = String::from("^");
        let mut rest_seen = false;
        for (i, segment) in path.split('/').enumerate() {
            if i > 0 {
                regex.push('/');
            }
            match segment {
                "{*}" | "{**}" if rest_seen => {
                    return Err(format!("{path:?}: `{{**}}` must be the last operator of a path template"));
                }
                "{*}" => regex.push_str(&format!("{SEGMENT_CHARS}+")),
                "{**}" => {
                    rest_seen = true;
                    regex.push_str(&format!("{REST_CHARS}*"));
                }
                s if s.contains(['*', '{', '}']) => {
                    return Err(format!(
                        "{path:?}: in a path template, `*`, `{{` and `}}` may appear only as a whole segment \
                         `{{*}}` or `{{**}}` (segment {s:?})"
                    ));
                }
                s => regex.push_str(&regex_lite::escape(s)),
            }
        }
        regex.push('$');
        regex_lite::Regex::new(&regex).map(PathPattern::Template).map_err(|e| format!("{path:?}: {e}"))
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Glob(g) => glob(g, path),
            PathPattern::Template(r) => r.is_match(path),
        }
    }
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
