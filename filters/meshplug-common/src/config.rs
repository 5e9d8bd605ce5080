//! Strict config parsing: unknown fields are rejected and every error names the JSON pointer
//! (RFC 6901) of the offending value and the reason.
//!
//! Parsing is two-phase, as in every meshplug filter: serde structs (camelCase, `deny_unknown_fields`)
//! describe the JSON a user writes; a `compile` step turns them into the typed runtime form and checks
//! what serde cannot (cross-field rules). Both phases report a [`ConfigError`].

use crate::json::{from_value_at, StrictValue};
use serde::de::DeserializeOwned;
use std::fmt;

/// A config that was refused, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON pointer to the offending value, e.g. `/rules/0/delay/fixedDelay` (empty string = the root).
    pub pointer: String,
    /// What is wrong with it, in words a user can act on.
    pub reason: String,
}

impl ConfigError {
    pub fn new(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), reason: reason.into() }
    }

    /// The same error, located under `prefix` (used when one config is embedded in another).
    pub fn under(mut self, prefix: &str) -> Self {
        self.pointer = format!("{prefix}{}", self.pointer);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "invalid config at {at}: {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Escapes one reference token for a JSON pointer (`~` → `~0`, `/` → `~1`).
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Appends one token to a JSON pointer.
pub fn child(pointer: &str, token: impl fmt::Display) -> String {
    format!("{pointer}/{}", escape_token(&token.to_string()))
}

/// Parses a JSON config into its serde form, naming the JSON pointer of the first error.
///
/// An empty config (no bytes, or only whitespace) is parsed as `{}` so a filter can run on defaults.
///
/// Two steps: the bytes become a [`StrictValue`] (a duplicate key is refused with its pointer), then
/// `T` is read from that value ([`parse_value`]). Every config type is so instantiated for one
/// deserializer, `&Value`, rather than for serde_json's byte reader as well: in a module that parses
/// several filters' configs (the bundle) that is most of the config code's size (BENCHMARKS.md).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let empty = bytes.iter().all(u8::is_ascii_whitespace);
    let bytes: &[u8] = if empty { b"{}" } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<StrictValue, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(StrictValue(value)) => {
            de.end().map_err(|e| ConfigError::new("", format!("trailing characters after the config: {e}")))?;
            parse_value(&value)
        }
        Err(err) => {
            let pointer = path_to_pointer(err.path());
            let inner = err.into_inner();
            Err(ConfigError::new(pointer, clean_reason(&inner)))
        }
    }
}

/// Parses an already-decoded JSON value (e.g. from a YAML composition file).
pub fn parse_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ConfigError> {
    from_value_at(value).map_err(|(pointer, err)| ConfigError::new(pointer, clean_reason(&err)))
}

fn path_to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out = child(&out, index),
            Segment::Map { key } => out = child(&out, key),
            Segment::Enum { variant } => out = child(&out, variant),
            Segment::Unknown => {}
        }
    }
    out
}

/// serde_json appends " at line X column Y" to its messages; the pointer says more, so drop it.
fn clean_reason(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) if err.line() > 0 => text.get(..i).unwrap_or(&text).to_string(),
        _ => text,
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;
