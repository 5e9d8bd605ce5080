//! One naming scheme for every metric: `meshplug.<filter>.<name>`, where `<filter>` is the filter's
//! name with `-` turned into `_` (`rate-limit` → `meshplug.rate_limit.allowed`). Envoy shows custom
//! metrics in admin `/stats` as `wasmcustom.meshplug.<filter>.<name>`.

/// The full metric name for `name` of `filter`.
pub fn metric_name(filter: &str, name: &str) -> String {
    format!("meshplug.{}.{}", filter.replace('-', "_"), name)
}

/// A filter's metric table: an enum whose variants index the metrics, and the names in the same order,
/// from one list, so an index and its name cannot drift apart.
///
/// ```
/// meshplug_common::metric_table! {
///     /// Metrics of a filter.
///     pub enum Metric / METRIC_NAMES { Allowed => "allowed", Limited => "limited" }
/// }
/// assert_eq!(METRIC_NAMES[Metric::Limited as usize], "limited");
/// ```
#[macro_export]
macro_rules! metric_table {
    ($(#[$meta:meta])* $vis:vis enum $name:ident / $names:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name { $($variant),+ }

        /// The metric names, indexed by the enum's variants.
        $vis const $names: &[&str] = &[$($text),+];
    };
}

#[cfg(test)]
#[path = "tests/metrics.rs"]
mod tests;
