//! meshplug **bundle** (`meshplug.wasm`): any chain of the four filters in one Wasm module, run in one
//! HTTP context per request. Each Wasm filter costs a few microseconds per request even when it does
//! nothing (a VM entry per callback, a context per request); the bundle pays that once for the chain.
//!
//! pluginConfig: `{"chain": [{"filter": "jwt-authz", "config": {...}}, {"filter": "rate-limit", ...}]}`.
//! Each entry's `config` is the filter's usual pluginConfig, parsed by the filter's own parser; errors
//! point into the bundle's config (`/chain/1/config/rules/0/per`). The stages are the filters' own glue
//! (`<filter>::stage`), run by the same chain host as the separate modules, so behaviour, metrics names
//! and log prefixes are the same.

/// The filters the bundle contains, in the order they usually run.
pub const FILTERS: [&str; 4] = ["jwt-authz", "rate-limit", "canary", "fault"];

/// The bundle's name in its log prefix (`[meshplug]`) and version line.
pub const NAME: &str = "meshplug";

/// Checks a bundle config with every filter's own parser (natively: `meshplug validate`).
pub fn validate(
    config: &[u8],
    check: impl Fn(&str, &[u8]) -> Result<(), meshplug_common::config::ConfigError>,
) -> Result<(), meshplug_common::config::ConfigError> {
    for entry in meshplug_common::chain::parse_chain(config, &FILTERS)? {
        check(&entry.filter, &entry.config).map_err(|e| entry.locate(e))?;
    }
    Ok(())
}

#[cfg(all(target_arch = "wasm32", not(test)))]
mod module {
    use meshplug_common::chain::parse_chain;
    use meshplug_common::config::{ConfigError, ConfigError as E};
    use meshplug_common::wasm::chain::{start, Stage};

    /// Stages for the chain; a filter's refusal is logged under its own prefix, pointing into the bundle's
    /// config (`[rate-limit] invalid config at /chain/1/config/rules/0/per: ...`).
    fn build(config: &[u8], instance: &str) -> Result<Vec<Box<dyn Stage>>, (&'static str, ConfigError)> {
        let entries = parse_chain(config, &super::FILTERS).map_err(|e| (super::NAME, e))?;
        let mut stages = Vec::with_capacity(entries.len());
        for entry in &entries {
            let (filter, stage) = match entry.filter.as_str() {
                "jwt-authz" => (jwt_authz::logic::FILTER, jwt_authz::stage::build(&entry.config, instance)),
                "rate-limit" => (rate_limit::logic::FILTER, rate_limit::stage::build(&entry.config, instance)),
                "canary" => (canary::logic::FILTER, canary::stage::build(&entry.config, instance)),
                "fault" => (fault::logic::FILTER, fault::stage::build(&entry.config, instance)),
                other => (super::NAME, Err(E::new("", format!("unknown filter {other:?}")))),
            };
            stages.push(stage.map_err(|e| (filter, entry.locate(e)))?);
        }
        Ok(stages)
    }

    proxy_wasm::main! {{
        start(super::NAME, build);
    }}
}
