//! Istio's names and encodings that what we deploy must use, and that the Istio emulation
//! (`istio/`) reads back: the type URLs and resource names istiod gives a WasmPlugin's filter,
//! the VM environment variables istio-agent reads, the root namespace and the waypoint class, and how
//! istiod encodes a `pluginConfig` (so `render --envoyfilter` hands the filter the bytes istiod would).

use serde_json::Value;
use std::fmt::Write as _;

pub const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
pub const RBAC_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
/// istiod names a WasmPlugin's ECDS resource and HTTP filter `<prefix><namespace>.<name>`.
pub const RESOURCE_PREFIX: &str = "extensions.istio.io/wasmplugin/";
/// VM environment variables istiod sets and istio-agent reads, then strips (every `ISTIO_META_` key).
pub const PULL_SECRET_ENV: &str = "ISTIO_META_WASM_IMAGE_PULL_SECRET";
pub const PULL_POLICY_ENV: &str = "ISTIO_META_WASM_IMAGE_PULL_POLICY";
pub const RESOURCE_VERSION_ENV: &str = "ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION";
/// Istio's default root namespace (meshConfig `rootNamespace`): the lab's default, configurable in a
/// composition (`defaults.rootNamespace`) and in `up --istio` (`--root-namespace`).
pub const ROOT_NAMESPACE: &str = "istio-system";
/// The GatewayClass of Istio's waypoints (`constants.WaypointGatewayClassName`): the only class a
/// GatewayClass-targeted WasmPlugin attaches to (pilot/pkg/model/policyattachment.go).
pub const WAYPOINT_CLASS: &str = "istio-waypoint";

/// A WasmPlugin's `pluginConfig` as the filter receives it: istiod's `protomarshal.ToJSON` of the
/// `google.protobuf.Struct`, i.e. golang/protobuf `jsonpb` without indent: object keys sorted, every
/// number a float64 written as Go's `encoding/json` writes one (shortest digits, fixed notation for
/// 1e-6 ≤ |x| < 1e21, else `1e-7`/`1e+21`), strings as `encoding/json` escapes them (`<`, `>`, `&`,
/// U+2028 and U+2029 as `\u` escapes). An integer above 2^53 therefore reaches the filter rounded.
pub fn plugin_config_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_float(out, n.as_f64().unwrap_or(0.0)),
        Value::String(s) => write_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, x);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                if let Some(x) = o.get(k) {
                    write_value(out, x);
                }
            }
            out.push('}');
        }
    }
}

/// Go `encoding/json` `floatEncoder` for float64.
fn write_float(out: &mut String, f: f64) {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = format!("{f:e}");
        // Rust writes `1e21`/`1e-7`; Go writes `1e+21`/`1e-07`, then trims to `1e-7`.
        match e.split_once('e') {
            Some((m, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{m}e+{exp}");
            }
            _ => out.push_str(&e),
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

/// Go `encoding/json` string encoding with HTML escaping (its default).
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_config_is_encoded_as_istiod_encodes_it() {
        let v =
            json!({"b": [1, 2.5, 1e21, 0.0000001, -0.0], "a": {"z": "<&>", "y": 9007199254740993_u64}, "c": "\u{1}\n"});
        assert_eq!(
            plugin_config_json(&v),
            r#"{"a":{"y":9007199254740992,"z":"\u003c\u0026\u003e"},"b":[1,2.5,1e+21,1e-7,-0],"c":"\u0001\n"}"#
        );
    }
}
