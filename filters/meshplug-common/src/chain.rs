//! The bundle's pluginConfig: an ordered chain of filters, each with its usual pluginConfig.
//!
//! ```json
//! {"chain": [{"filter": "jwt-authz", "config": {...}}, {"filter": "rate-limit", "config": {...}}]}
//! ```
//!
//! This module only splits the chain; each entry's `config` is parsed by its filter's own parser and a
//! refusal is reported under `/chain/<i>/config` (see [`ChainEntry::locate`]), so the bundle accepts
//! exactly what the separate modules accept, with pointers into the bundle's config.

use crate::config::{child, parse_json, ConfigError};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainSpec {
    chain: Vec<EntrySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntrySpec {
    filter: String,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

/// One filter of the chain, its config still JSON (for its filter's parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEntry {
    /// Position in the chain (for error pointers).
    pub index: usize,
    /// The filter's name (`jwt-authz`, `rate-limit`, `canary`, `fault`).
    pub filter: String,
    /// The filter's pluginConfig as JSON bytes (`{}` when absent).
    pub config: Vec<u8>,
}

impl ChainEntry {
    /// An error from this entry's filter parser, located in the bundle's config.
    pub fn locate(&self, e: ConfigError) -> ConfigError {
        e.under(&child(&child("/chain", self.index), "config"))
    }
}

/// Splits a bundle config into its entries. `known` are the filter names the bundle contains. Refuses an
/// empty chain, an unknown filter and a filter listed twice (two instances of one filter in one module
/// would share its metrics and its shared-data keys; deploy a second bundle or module instead).
pub fn parse_chain(bytes: &[u8], known: &[&str]) -> Result<Vec<ChainEntry>, ConfigError> {
    let spec: ChainSpec = parse_json(bytes)?;
    if spec.chain.is_empty() {
        return Err(ConfigError::new("/chain", "the chain is empty; list at least one filter"));
    }
    let mut entries: Vec<ChainEntry> = Vec::with_capacity(spec.chain.len());
    for (index, entry) in spec.chain.into_iter().enumerate() {
        let at = child(&child("/chain", index), "filter");
        if !known.contains(&entry.filter.as_str()) {
            return Err(ConfigError::new(
                at,
                format!("unknown filter {:?}; the bundle contains {}", entry.filter, known.join(", ")),
            ));
        }
        if let Some(first) = entries.iter().find(|e| e.filter == entry.filter) {
            return Err(ConfigError::new(
                at,
                format!(
                    "{} is already in the chain at /chain/{}; a filter runs at most once per bundle",
                    entry.filter, first.index
                ),
            ));
        }
        let config = match entry.config {
            None => b"{}".to_vec(),
            Some(value) => serde_json::to_vec(&value)
                .map_err(|e| ConfigError::new(child(&child("/chain", index), "config"), e.to_string()))?,
        };
        entries.push(ChainEntry { index, filter: entry.filter, config });
    }
    Ok(entries)
}

#[cfg(test)]
#[path = "tests/chain.rs"]
mod tests;
