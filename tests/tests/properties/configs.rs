//! Every filter's config parser (and the bundle's) against mutated configs: the committed examples'
//! pluginConfigs with values replaced, removed or added at random places, and arbitrary bytes. The
//! parser never panics, and a refusal names a JSON pointer into the document it was given.

use crate::{bytes, config};
use meshplug_harness::deploy::filters::{module, FILTERS};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::sync::LazyLock;

/// (module name, a valid pluginConfig): every example's filters, and the bundle chaining all four.
static BASES: LazyLock<Vec<(&'static str, Value)>> = LazyLock::new(|| {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut bases: Vec<(&'static str, Value)> = Vec::new();
    for kind in FILTERS {
        let text = std::fs::read_to_string(examples.join(kind.name).join("composition.yaml")).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
        for f in doc["workloads"][0]["filters"].as_array().unwrap() {
            if f["name"] == kind.name {
                bases.push((kind.name, f["pluginConfig"].clone()));
            }
        }
    }
    let chain: Vec<Value> = bases.iter().map(|(n, c)| json!({"filter": n, "config": c})).collect();
    bases.push(("meshplug", json!({ "chain": chain })));
    assert_eq!(bases.len(), FILTERS.len() + 1, "an example's filter was not found");
    bases
});

/// JSON values that parsers must weigh: odd numbers, durations, empty and huge strings, nesting.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        prop::sample::select(vec![0i64, 1, -1, 100, 101, 599, 600, 65_536, i64::from(u32::MAX) + 1])
            .prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "0s",
            "-1s",
            "1ms",
            "0.5s",
            "1.5ms",
            "99999999999999h",
            "1e3s",
            "10s",
            "1h",
            "*",
            "/",
            "/api/*",
            "{*}",
            "/a/{**}/b",
            "x-user",
            ":path",
            "ALLOW",
            "DENY",
            "GET",
            "regex(",
            "a.*",
            "UNAVAILABLE",
            "abc",
            "request.auth.claims[sub]",
            "request.headers[x]",
            "source.ip",
            "https://auth.example.com",
        ])
        .prop_map(Value::from),
        bytes().prop_map(|b| Value::from(String::from_utf8_lossy(&b).into_owned())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,12}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// Every JSON pointer in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            m.iter().for_each(|(k, c)| pointers(c, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out))
        }
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

/// One edit: replace the value at a pointer, remove it, or add a key next to it.
fn mutate(mut doc: Value, edits: &[(prop::sample::Index, u8, String, Value)]) -> Value {
    for (at, how, key, value) in edits {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let target = all[at.index(all.len())].clone();
        let parent = target.rsplit_once('/').map(|(p, _)| p.to_string());
        let last = target.rsplit('/').next().unwrap_or("").replace("~1", "/").replace("~0", "~");
        match (how % 3, parent) {
            (0, _) | (_, None) => *doc.pointer_mut(&target).unwrap() = value.clone(),
            (1, Some(p)) => match doc.pointer_mut(&p).unwrap() {
                Value::Object(m) => {
                    m.remove(&last);
                }
                Value::Array(a) => {
                    if let Ok(i) = last.parse::<usize>() {
                        a.remove(i);
                    }
                }
                _ => {}
            },
            (_, Some(p)) => {
                if let Value::Object(m) = doc.pointer_mut(&p).unwrap() {
                    m.insert(key.clone(), value.clone());
                }
            }
        }
    }
    doc
}

fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8, String, Value)>> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), "[a-zA-Z]{1,10}", any_json()), 1..4)
}

proptest! {
    #![proptest_config(config())]

    /// A mutated valid config is accepted or refused with a pointer into it; never a panic.
    #[test]
    fn mutated_configs_are_refused_with_a_pointer(base in 0..BASES.len(), edits in edits()) {
        let (name, doc) = &BASES[base];
        let doc = mutate(doc.clone(), &edits);
        let kind = module(name).unwrap();
        if let Err(e) = (kind.validate)(doc.to_string().as_bytes()) {
            prop_assert!(!e.reason.is_empty());
            let parent = e.pointer.rsplit_once('/').map_or("", |(p, _)| p);
            prop_assert!(
                doc.pointer(&e.pointer).is_some() || doc.pointer(parent).is_some(),
                "{}: pointer {:?} is not in the config {}", name, e.pointer, doc
            );
        }
    }

    /// Arbitrary bytes as a config: refused (or, if they happen to be a valid config, accepted).
    #[test]
    fn any_bytes_as_a_config(base in 0..BASES.len(), junk in bytes()) {
        let _ = (module(BASES[base].0).unwrap().validate)(&junk);
    }
}
