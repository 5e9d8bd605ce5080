//! JSON Schemas (`meshplug schema`) for the shared config types whose serde form is hand-written.
//! Native builds with feature `schema` only.

use crate::duration::ConfigDuration;
use crate::matching::{HeaderMatch, HttpMatchRequest, StringMatch};
use crate::percent::Percentage;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;

/// `{"exact": ..}` / `{"prefix": ..}` / `{"regex": ..}` (plus extra variants), each alone.
pub fn one_key_objects(keys: &[(&str, serde_json::Value)]) -> Schema {
    let variants: Vec<serde_json::Value> = keys
        .iter()
        .map(|(k, s)| serde_json::json!({ "type": "object", "properties": { *k: s }, "required": [k], "additionalProperties": false }))
        .collect();
    json_schema!({ "oneOf": variants })
}

impl JsonSchema for ConfigDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$",
            "description": "A duration such as 150ms, 2s, 1.5s, 1m30s or 1h (at most 366 days)."
        })
    }
}

impl JsonSchema for Percentage {
    fn schema_name() -> Cow<'static, str> {
        "Percentage".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "properties": { "value": { "type": "number", "minimum": 0, "maximum": 100 } },
            "required": ["value"],
            "additionalProperties": false
        })
    }
}

impl JsonSchema for StringMatch {
    fn schema_name() -> Cow<'static, str> {
        "StringMatch".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let s = serde_json::json!({ "type": "string" });
        one_key_objects(&[("exact", s.clone()), ("prefix", s.clone()), ("regex", s)])
    }
}

impl JsonSchema for HeaderMatch {
    fn schema_name() -> Cow<'static, str> {
        "HeaderMatch".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let s = serde_json::json!({ "type": "string" });
        one_key_objects(&[
            ("exact", s.clone()),
            ("prefix", s.clone()),
            ("regex", s),
            ("present", serde_json::json!({ "type": "boolean" })),
        ])
    }
}

impl JsonSchema for HttpMatchRequest {
    fn schema_name() -> Cow<'static, str> {
        "HTTPMatchRequest".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        crate::matching::match_request_schema(generator)
    }
}
