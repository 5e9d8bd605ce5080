//! Rendering and validating Istio manifests: render → validate round trip, no drift in the committed
//! manifests, every example WasmPlugin valid, and broken inputs each giving the expected error.

use meshplug_harness::composition::Composition;
use meshplug_harness::manifests::{check_dir, check_document};
use meshplug_harness::render::render;
use serde_json::Value;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn composition() -> Composition {
    Composition::load(&root().join("manifests/composition.yaml")).unwrap()
}

#[test]
fn render_then_validate_round_trips_for_both_kinds() {
    let c = composition();
    assert_eq!(c.validate(), vec![]);
    for (envoyfilter, bundle) in [(false, false), (true, false), (false, true), (true, true)] {
        let c = c.clone().bundled(bundle);
        let rendered = render(&c, envoyfilter).unwrap();
        assert_eq!(rendered, render(&c, envoyfilter).unwrap(), "deterministic");
        for (path, text) in &rendered {
            for doc in docs(text) {
                assert_eq!(check_document(path, &doc), vec![], "{path}");
            }
        }
    }
}

#[test]
fn the_committed_manifests_have_not_drifted_and_validate() {
    let c = composition();
    for (dir, envoyfilter, bundle) in [
        ("manifests/rendered", false, false),
        ("manifests/envoyfilter", true, false),
        ("manifests/bundle", false, true),
    ] {
        let rendered = render(&c.clone().bundled(bundle), envoyfilter).unwrap();
        for (path, text) in &rendered {
            let committed = std::fs::read_to_string(root().join(dir).join(path)).unwrap_or_default();
            assert!(
                &committed == text,
                "{dir}/{path} differs from `meshplug render` today; run:\n  cargo run -p meshplug-harness -- render manifests/composition.yaml -o {dir} --no-pin{}{}",
                if envoyfilter { " --envoyfilter" } else { "" },
                if bundle { " --bundle" } else { "" }
            );
        }
        let (count, errors) = check_dir(&root().join(dir)).unwrap();
        assert!(count > 0);
        assert_eq!(errors, vec![], "{dir}");
    }
}

/// A bundled workload is one WasmPlugin: the bundle's image, its chain in the listed order, the phase of
/// its first filter, and FAIL_CLOSE because some of its filters fail closed.
#[test]
fn a_bundled_workload_renders_one_wasmplugin() {
    let rendered = render(&composition().bundled(true), false).unwrap();
    let payments: Vec<&String> = rendered.keys().filter(|k| k.starts_with("payments/")).collect();
    assert_eq!(payments, ["payments/kustomization.yaml", "payments/meshplug.yaml"]);
    let plugin = docs(&rendered["payments/meshplug.yaml"]).remove(0);
    let spec = &plugin["spec"];
    assert_eq!(plugin["metadata"]["name"], "payments-meshplug");
    assert_eq!(spec["url"], "oci://ghcr.io/meshplug/meshplug:0.1.0");
    assert_eq!((spec["phase"].as_str(), spec["failStrategy"].as_str()), (Some("AUTHN"), Some("FAIL_CLOSE")));
    let chain: Vec<&str> =
        spec["pluginConfig"]["chain"].as_array().unwrap().iter().map(|e| e["filter"].as_str().unwrap()).collect();
    assert_eq!(chain, ["jwt-authz", "rate-limit", "fault"]);
    let storefront = docs(&rendered["storefront/meshplug.yaml"]).remove(0);
    assert_eq!(storefront["spec"]["failStrategy"], "FAIL_OPEN", "canary alone fails open");
    let schema = (meshplug_harness::filters::BUNDLE.schema)();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&spec["pluginConfig"]).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let twice = serde_json::json!({"chain": [{"filter": "fault"}, {"filter": "fault"}]});
    let e = (meshplug_harness::filters::BUNDLE.validate)(twice.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.pointer, "/chain/1/filter");
    let bad = serde_json::json!({"chain": [{"filter": "fault"}, {"filter": "rate-limit", "config": {"rules": [{"name": "a", "limits": [{"requests": 0, "per": "1s"}]}]}}]});
    let e = (meshplug_harness::filters::BUNDLE.validate)(bad.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.pointer, "/chain/1/config/rules/0/limits/0/requests");
}

#[test]
fn every_example_wasmplugin_validates() {
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        let p = e.unwrap().path().join("wasmplugin.yaml");
        if p.exists() {
            for doc in docs(&std::fs::read_to_string(&p).unwrap()) {
                assert_eq!(check_document(&p.display().to_string(), &doc), vec![], "{}", p.display());
            }
        }
    }
}

fn rendered_plugin() -> Value {
    let rendered = render(&composition(), false).unwrap();
    docs(&rendered["payments/rate-limit.yaml"]).remove(0)
}

fn errors_of(doc: &Value) -> Vec<String> {
    check_document("test.yaml", doc).iter().map(|e| e.to_string()).collect()
}

#[test]
fn broken_manifests_name_file_resource_pointer_and_reason() {
    let mut typo = rendered_plugin();
    typo["spec"]["failStrategy"] = "FAIL_CLOSED".into();
    let e = errors_of(&typo);
    assert!(
        e.iter().any(|m| m.contains("test.yaml: WasmPlugin/shop/payments-rate-limit: at /spec/failStrategy")
            && m.contains("FAIL_CLOSED")),
        "{e:?}"
    );

    let mut both = rendered_plugin();
    both["spec"]["targetRefs"] =
        serde_json::json!([{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]);
    let e = errors_of(&both);
    assert!(e.iter().any(|m| m.contains("at /spec: at most one of `selector` and `targetRefs`")), "{e:?}");

    let mut sha = rendered_plugin();
    sha["spec"]["sha256"] = "not-a-digest".into();
    assert!(errors_of(&sha).iter().any(|m| m.contains("at /spec/sha256: expected 64 lower-case hex digits")));

    let mut config = rendered_plugin();
    config["spec"]["pluginConfig"]["rules"][0]["limits"][0]["requests"] = 0.into();
    let e = errors_of(&config);
    assert!(
        e.iter().any(|m| m.contains("at /spec/pluginConfig/rules/0/limits/0/requests: must be at least 1")),
        "{e:?}"
    );

    let mut unknown = rendered_plugin();
    unknown["spec"]["pluginName"] = "nope".into();
    assert!(errors_of(&unknown).iter().any(|m| m.contains("at /spec/pluginName: unknown meshplug module \"nope\"")));

    let mut scheme = rendered_plugin();
    scheme["spec"]["url"] = "ftp://x/y".into();
    assert!(errors_of(&scheme).iter().any(|m| m.contains("at /spec/url")));
}

#[test]
fn broken_compositions_are_refused_with_pointers() {
    let text = std::fs::read_to_string(root().join("manifests/composition.yaml")).unwrap();
    let cases = [
        (
            text.replace("name: canary\n        pluginConfig", "name: canery\n        pluginConfig"),
            "/workloads/1/filters/0/name",
            "unknown filter",
        ),
        (text.replace("fault: FAIL_OPEN", "fault: FAIL_CLOSED"), "/defaults/failStrategy/fault", "FAIL_CLOSED"),
        (
            text.replace(
                "selector: { app: storefront }",
                "selector: { app: storefront }\n    targetRefs: [{ kind: Gateway, name: gw }]",
            ),
            "/workloads/1",
            "at most one",
        ),
        (
            text.replace(
                "imagePullPolicy: IfNotPresent",
                "imagePullPolicy: IfNotPresent\n  digests: { fault: sha256:xyz }",
            ),
            "/defaults/digests/fault",
            "64",
        ),
    ];
    for (broken, pointer, reason) in cases {
        let c = Composition::parse(&broken).unwrap();
        let errors = c.validate();
        assert!(errors.iter().any(|e| e.pointer == pointer && e.reason.contains(reason)), "{pointer}: {errors:?}");
    }
}

#[test]
fn each_filter_schema_accepts_every_committed_plugin_config_and_rejects_broken_ones() {
    let mut compositions = vec![root().join("manifests/composition.yaml")];
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        compositions.push(e.unwrap().path().join("composition.yaml"));
    }
    let mut checked = 0;
    for path in compositions {
        let c = Composition::load(&path).unwrap();
        for w in &c.workloads {
            for f in &w.filters {
                let schema = (meshplug_harness::filters::lookup(&f.name).unwrap().schema)();
                let v = jsonschema::validator_for(&schema).unwrap();
                let errors: Vec<String> = v.iter_errors(&f.plugin_config).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "{} {}: {errors:?}", path.display(), f.name);
                checked += 1;
            }
        }
    }
    assert!(checked >= 7);
    let broken = [
        ("fault", serde_json::json!({"rules": [{"abort": {"httpStatus": 42}}]})),
        ("fault", serde_json::json!({"rules": [{"delay": {"fixedDelay": "soon"}}]})),
        (
            "rate-limit",
            serde_json::json!({"rules": [{"name": "a", "limits": [{"requests": 1, "per": "1s"}], "bogus": 1}]}),
        ),
        (
            "rate-limit",
            serde_json::json!({"rules": [{"name": "a", "key": {"cookie": "x"}, "limits": [{"requests": 1, "per": "1s"}]}]}),
        ),
        ("jwt-authz", serde_json::json!({"policies": [{"action": "AUDIT"}]})),
        ("canary", serde_json::json!({"split": {"variants": [{"name": "a", "weight": -1}]}})),
        ("canary", serde_json::json!({"split": {"stickyBy": {"session": "x"}, "variants": []}})),
    ];
    for (filter, config) in broken {
        let schema = (meshplug_harness::filters::lookup(filter).unwrap().schema)();
        let v = jsonschema::validator_for(&schema).unwrap();
        assert!(!v.is_valid(&config), "{filter}: {config} passed the schema");
    }
}
