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
pub const FILTERS: [&str; 4] =
    [jwt_authz::logic::FILTER, rate_limit::logic::FILTER, canary::logic::FILTER, fault::logic::FILTER];

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
    use meshplug_common::config::ConfigError;
    use meshplug_common::wasm::chain::{start, Stage};

    /// Stages for the chain; a filter's refusal is logged under its own prefix, pointing into the bundle's
    /// config (`[rate-limit] invalid config at /chain/1/config/rules/0/per: ...`).
    fn build(config: &[u8], instance: &str) -> Result<Vec<Box<dyn Stage>>, (&'static str, ConfigError)> {
        let entries = parse_chain(config, &super::FILTERS).map_err(|e| (super::NAME, e))?;
        let mut stages = Vec::with_capacity(entries.len());
        for entry in &entries {
            let build = match entry.filter.as_str() {
                jwt_authz::logic::FILTER => jwt_authz::stage::build_in_bundle,
                rate_limit::logic::FILTER => rate_limit::stage::build,
                canary::logic::FILTER => canary::stage::build,
                fault::logic::FILTER => fault::stage::build,
                // parse_chain accepts only FILTERS.
                other => return Err((super::NAME, ConfigError::new("", format!("unknown filter {other:?}")))),
            };
            let filter = super::FILTERS.iter().find(|f| **f == entry.filter).copied().unwrap_or(super::NAME);
            stages.push(build(&entry.config, instance).map_err(|e| (filter, entry.locate(e)))?);
        }
        Ok(stages)
    }

    proxy_wasm::main! {{
        start(super::NAME, build);
    }}
}
