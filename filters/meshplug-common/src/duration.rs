//! Durations written as strings, the way Istio users write them: `150ms`, `2s`, `1.5s`, `1m30s`, `1h`.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A non-negative duration parsed from a string such as `150ms` or `1m30s`.
///
/// Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`. Each number may have a fraction (`1.5s`).
/// Several groups add up (`1m30s`). A bare number without a unit is refused (ambiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The largest duration accepted anywhere in a config: 366 days. Beyond it, arithmetic on
/// nanosecond clocks gets close to overflow and the value is certainly a typo.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a duration string. Errors are phrased for a user reading a config error.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; expected e.g. \"150ms\" or \"2s\"".into());
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {text:?}; durations must be ≥ 0"));
    }
    let mut total_nanos: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(format!("invalid duration {text:?}; expected e.g. \"150ms\", \"2s\", \"1m30s\""));
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("duration {text:?} has no unit; write e.g. \"{num}ms\" or \"{num}s\"")),
            other => return Err(format!("unknown unit {other:?} in duration {text:?}; use ns, us, ms, s, m or h")),
        };
        let value: f64 = num.parse().map_err(|_| format!("invalid number {num:?} in duration {text:?}"))?;
        total_nanos += value * scale;
        rest = next;
    }
    if !total_nanos.is_finite() || total_nanos > MAX_DURATION.as_nanos() as f64 {
        return Err(format!("duration {text:?} is too long; the maximum is 366 days"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(ConfigDuration).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[path = "tests/duration.rs"]
mod tests;
