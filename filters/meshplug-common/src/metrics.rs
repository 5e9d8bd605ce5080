//! One naming scheme for every metric: `meshplug.<filter>.<name>`, where `<filter>` is the filter's
//! name with `-` turned into `_` (`rate-limit` → `meshplug.rate_limit.allowed`). Envoy shows custom
//! metrics in admin `/stats` as `wasmcustom.meshplug.<filter>.<name>`.

/// The full metric name for `name` of `filter`.
pub fn metric_name(filter: &str, name: &str) -> String {
    format!("meshplug.{}.{}", filter.replace('-', "_"), name)
}

#[cfg(test)]
#[path = "tests/metrics.rs"]
mod tests;
