//! The rate limit service a composition's global rules need: its configuration in envoyproxy/ratelimit's
//! format (which meshplug-rls reads too) and in Limitador's, generated from the rules' `global.limit`,
//! for `meshplug render` (as ConfigMaps next to the WasmPlugins) and `meshplug up` (which runs
//! meshplug-rls with it, on a local Redis).
//!
//! envoyproxy/ratelimit (README "Configuration"): one document per domain, `descriptors` nested one
//! level per entry, a constant entry as `key` + `value`, a request-valued entry as `key` alone (a
//! counter per value), the `rate_limit` on the last entry's node. Limitador (doc/server/configuration,
//! CEL since 2.0): a list of limits with `namespace` (the domain), `max_value`, `seconds`,
//! `conditions` and `variables` in CEL over `descriptors[i]`. Limitador finds a descriptor only by its
//! position (a predicate naming a comprehension variable never holds: limitador/src/limit/cel.rs
//! `Predicate::test`), and meshplug sends one descriptor per matching global rule, in rule order: a
//! rule's position is fixed when every global rule before it is always sent (no `match`, no
//! `onMissingKey: allow`). Other rule sets, shadow rules (Limitador has no shadow mode) and differing
//! `hitsAddend` (Limitador counts only the request's) cannot be said in Limitador's form:
//! [`limitador_limits`] says why.

use serde_json::{json, Value};

/// One global rule's descriptor and limit.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalLimitSpec {
    pub rule: String,
    /// `(key, Some(constant) | None for a request value)`.
    pub entries: Vec<(String, Option<String>)>,
    pub requests: u32,
    pub unit: &'static str,
    pub seconds: u64,
    pub shadow: bool,
    /// The descriptor's index in every request that carries it, when that is fixed.
    pub position: Option<usize>,
}

/// The service a rate-limit filter's pluginConfig uses, and its rules' limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceNeed {
    pub cluster: String,
    pub domain: String,
    pub limits: Vec<GlobalLimitSpec>,
    /// The `hitsAddend` (default 1) of every global rule, with a `limit` or not.
    pub hits_addends: Vec<u32>,
}

/// From a rate-limit pluginConfig (already valid): `None` when it has no `rateLimitService`.
pub fn service_need(plugin_config: &Value) -> anyhow::Result<Option<ServiceNeed>> {
    let config = rate_limit::config::RateLimitConfig::from_json(plugin_config.to_string().as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(svc) = &config.rate_limit_service else { return Ok(None) };
    let mut limits = Vec::new();
    let mut sent_before: Option<usize> = Some(0);
    let mut hits_addends = Vec::new();
    for rule in &config.rules {
        let Some(global) = &rule.global else { continue };
        let position = sent_before;
        hits_addends.push(global.hits_addend.unwrap_or(1));
        let request_valued =
            global.descriptors.iter().any(|d| matches!(d.source, rate_limit::config::EntrySource::Request(_)));
        let always_sent = rule.matches.0.is_empty()
            && !(request_valued && rule.on_missing_key == rate_limit::config::OnMissingKey::Allow);
        sent_before = sent_before.filter(|_| always_sent).map(|n| n + 1);
        let Some(limit) = &global.limit else { continue };
        let (unit, seconds) = limit.unit.name_and_seconds();
        let entries = global
            .descriptors
            .iter()
            .map(|d| {
                let constant = match &d.source {
                    rate_limit::config::EntrySource::Value(v) => Some(v.clone()),
                    rate_limit::config::EntrySource::Request(_) => None,
                };
                (d.key.clone(), constant)
            })
            .collect();
        limits.push(GlobalLimitSpec {
            rule: rule.name.clone(),
            entries,
            requests: limit.requests,
            unit,
            seconds,
            shadow: rule.shadow,
            position,
        });
    }
    Ok(Some(ServiceNeed { cluster: svc.cluster.clone(), domain: svc.domain.clone(), limits, hits_addends }))
}

/// The envoyproxy/ratelimit config document of a domain (nodes merged where rules share a prefix).
pub fn ratelimit_config(need: &ServiceNeed) -> Value {
    fn insert(level: &mut Vec<Value>, entries: &[(String, Option<String>)], leaf: &GlobalLimitSpec) {
        let Some(((key, value), rest)) = entries.split_first() else { return };
        let pos = level
            .iter()
            .position(|n| n["key"] == json!(key) && n.get("value").and_then(Value::as_str) == value.as_deref());
        let index = match pos {
            Some(i) => i,
            None => {
                let mut node = json!({ "key": key });
                if let Some(v) = value {
                    node["value"] = json!(v);
                }
                level.push(node);
                level.len() - 1
            }
        };
        let Some(node) = level.get_mut(index) else { return };
        if rest.is_empty() {
            node["rate_limit"] = json!({ "unit": leaf.unit, "requests_per_unit": leaf.requests });
            if leaf.shadow {
                node["shadow_mode"] = json!(true);
            }
            return;
        }
        let mut children: Vec<Value> = node.get("descriptors").and_then(Value::as_array).cloned().unwrap_or_default();
        insert(&mut children, rest, leaf);
        node["descriptors"] = json!(children);
    }
    let mut top = Vec::new();
    for l in &need.limits {
        insert(&mut top, &l.entries, l);
    }
    json!({ "domain": need.domain, "descriptors": top })
}

/// A CEL string literal (single-quoted; `\\`, `\'` and control characters escaped).
fn cel_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Limitador's limits for the same rules (its `LIMITS_FILE`), or why they cannot be written: a rule
/// whose descriptor position varies, a shadow rule, or rules whose `hitsAddend` differ.
pub fn limitador_limits(need: &ServiceNeed) -> Result<Value, String> {
    if let Some(l) = need.limits.iter().find(|l| l.shadow) {
        return Err(format!("rule {}: Limitador has no shadow mode (it would enforce the limit)", l.rule));
    }
    if need.hits_addends.windows(2).any(|w| w.first() != w.last()) {
        return Err("the global rules' hitsAddend differ; Limitador counts one hits_addend per request".into());
    }
    let mut limits = Vec::new();
    for l in &need.limits {
        let Some(i) = l.position else {
            return Err(format!(
                "rule {}: an earlier global rule is not sent with every request (it has `match` or \
                 `onMissingKey: allow`), so this rule's descriptor has no fixed position, and Limitador finds \
                 descriptors by position; put such rules after the others",
                l.rule
            ));
        };
        let d = format!("descriptors[{i}]");
        let mut condition = format!("size(descriptors) > {i}");
        for (k, v) in &l.entries {
            if let Some(v) = v {
                condition.push_str(&format!(" && {d}[{}] == {}", cel_string(k), cel_string(v)));
            }
        }
        let variables: Vec<String> =
            l.entries.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| format!("{d}[{}]", cel_string(k))).collect();
        limits.push(json!({ "name": l.rule, "namespace": need.domain, "max_value": l.requests, "seconds": l.seconds,
                            "conditions": [condition], "variables": variables }));
    }
    Ok(json!(limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_become_envoyproxy_ratelimit_and_limitador_configs() {
        let config = json!({
            "rateLimitService": {"cluster": "rls", "domain": "shop"},
            "rules": [
                {"name": "user", "global": {"descriptors": [{"key": "user", "claim": "sub"}], "limit": {"requests": 100, "unit": "minute"}}},
                {"name": "gold", "global": {"descriptors": [{"key": "tier", "value": "gold"}, {"key": "user", "header": "x-user"}], "limit": {"requests": 1000, "unit": "hour"}}},
                {"name": "unlisted", "global": {"descriptors": [{"key": "path", "path": {}}]}}
            ]
        });
        let need = service_need(&config).unwrap().unwrap();
        assert_eq!(need.limits.len(), 2, "a rule without `limit` is left to the service's own config");
        let rl = ratelimit_config(&need);
        assert_eq!(
            rl,
            json!({"domain": "shop", "descriptors": [
                {"key": "user", "rate_limit": {"unit": "minute", "requests_per_unit": 100}},
                {"key": "tier", "value": "gold", "descriptors": [{"key": "user", "rate_limit": {"unit": "hour", "requests_per_unit": 1000}}]}
            ]})
        );
        // meshplug-rls reads the same format, and finds the limits where envoyproxy/ratelimit would.
        let parsed = meshplug_rls::parse_config(&serde_yaml_ng::to_string(&rl).unwrap()).unwrap();
        let found = |e: &[(&str, &str)]| {
            let e: Vec<(String, String)> = e.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            meshplug_rls::find_limit(&parsed[0], &e).and_then(|n| n.rate_limit.as_ref()).map(|l| l.requests_per_unit)
        };
        assert_eq!(found(&[("user", "alice")]), Some(100));
        assert_eq!(found(&[("tier", "gold"), ("user", "bob")]), Some(1000));
        assert_eq!(found(&[("tier", "silver"), ("user", "bob")]), None);
        let lim = limitador_limits(&need).unwrap();
        assert_eq!(lim[0]["conditions"], json!(["size(descriptors) > 0"]));
        assert_eq!(lim[0]["variables"], json!(["descriptors[0]['user']"]));
        assert_eq!(lim[1]["conditions"], json!(["size(descriptors) > 1 && descriptors[1]['tier'] == 'gold'"]));
        assert_eq!(lim[1]["variables"], json!(["descriptors[1]['user']"]));
        assert_eq!((lim[0]["max_value"].as_u64(), lim[0]["seconds"].as_u64()), (Some(100), Some(60)));
    }
}
