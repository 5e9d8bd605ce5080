//! Rendering and validating Istio manifests: render → validate round trip, no drift in the committed
//! manifests, every example WasmPlugin valid, and broken inputs each giving the expected error.

use meshplug_harness::deploy::composition::Composition;
use meshplug_harness::deploy::manifests::{check_dir, check_document};
use meshplug_harness::deploy::render::render;
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
    assert_eq!(
        payments,
        ["payments/kustomization.yaml", "payments/meshplug-jwks-auth-example-com.yaml", "payments/meshplug.yaml"]
    );
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
    let schema = (meshplug_harness::deploy::filters::BUNDLE.schema)();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&spec["pluginConfig"]).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let twice = serde_json::json!({"chain": [{"filter": "fault"}, {"filter": "fault"}]});
    let e = (meshplug_harness::deploy::filters::BUNDLE.validate)(twice.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.pointer, "/chain/1/filter");
    let bad = serde_json::json!({"chain": [{"filter": "fault"}, {"filter": "rate-limit", "config": {"rules": [{"name": "a", "limits": [{"requests": 0, "per": "1s"}]}]}}]});
    let e = (meshplug_harness::deploy::filters::BUNDLE.validate)(bad.to_string().as_bytes()).unwrap_err();
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
            "exactly one of `selector`, `targetRefs` and `namespaceWide: true`",
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
                let schema = (meshplug_harness::deploy::filters::lookup(&f.name).unwrap().schema)();
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
        let schema = (meshplug_harness::deploy::filters::lookup(filter).unwrap().schema)();
        let v = jsonschema::validator_for(&schema).unwrap();
        assert!(!v.is_valid(&config), "{filter}: {config} passed the schema");
    }
}

fn one_workload(extra: &str, filters: &str) -> Composition {
    let text = format!("workloads:\n- name: w\n  namespace: ns\n{extra}  filters:\n{filters}");
    Composition::parse(&text).unwrap()
}

const JWT: &str = "  - name: jwt-authz\n    pluginConfig: {jwtRules: [{issuer: i, remoteJwks: {cluster: 'outbound|8080||keycloak.auth.svc.cluster.local', path: /jwks}}]}\n";
const CANARY: &str = "  - name: canary\n    pluginConfig: {split: {variants: [{name: a, weight: 1}]}}\n";

fn errors_at(c: &Composition) -> Vec<(String, String)> {
    c.validate().into_iter().map(|e| (e.pointer, e.reason)).collect()
}

/// Where plugins attach is said, not fallen into: no scope → refused; `namespaceWide: true` → a
/// WasmPlugin without selector, annotated so `validate` accepts it; the target kinds, modes and ports
/// Istio would never attach (pilot/pkg/model/extensions.go matchTrafficSelectors,
/// pkg/config/validation/validation.go allowedTargetRefs) refused with the field.
#[test]
fn workloads_must_say_where_their_plugins_attach() {
    let none = one_workload("", JWT);
    let e = errors_at(&none);
    assert!(e.iter().any(|(p, r)| p == "/workloads/0" && r.contains("every workload of the namespace")), "{e:?}");

    let wide = one_workload("  namespaceWide: true\n", JWT);
    assert_eq!(errors_at(&wide), vec![]);
    let rendered = render(&wide, false).unwrap();
    let plugin = docs(&rendered["w/jwt-authz.yaml"]).remove(0);
    assert!(plugin["spec"].get("selector").is_none() && plugin["spec"].get("targetRefs").is_none());
    assert_eq!(plugin["metadata"]["annotations"]["meshplug.dev/namespace-wide"], "true");
    assert_eq!(check_document("w.yaml", &plugin), vec![]);
    let mut unannotated = plugin.clone();
    unannotated["metadata"].as_object_mut().unwrap().remove("annotations");
    let e = errors_of(&unannotated);
    assert!(e.iter().any(|m| m.contains("at /spec: neither `selector` nor `targetRefs`")), "{e:?}");

    let cases: [(&str, &str, &str); 8] = [
        ("  selector: {app: a}\n  namespaceWide: true\n", "/workloads/0", "exactly one"),
        ("  selector: {}\n", "/workloads/0/selector", "every workload"),
        ("  targetRefs: [{kind: Deployment, group: apps, name: d}]\n", "/workloads/0/targetRefs/0", "cannot attach"),
        (
            "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: g, namespace: other}]\n",
            "/workloads/0/targetRefs/0/namespace",
            "cross-namespace",
        ),
        (
            "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: g}]\n  mode: SERVER\n",
            "/workloads/0/mode",
            "never attaches",
        ),
        ("  targetRefs: [{kind: Service, name: s}]\n  ports: [8080]\n", "/workloads/0/ports", "never attaches"),
        ("  selector: {app: a}\n  ports: [8080, 0]\n", "/workloads/0/ports/1", "not a port"),
        ("  selector: {app: a}\n  ports: [65536]\n", "/workloads/0/ports/0", "not a port"),
    ];
    for (extra, pointer, reason) in cases {
        let e = errors_at(&one_workload(extra, JWT));
        assert!(e.iter().any(|(p, r)| p == pointer && r.contains(reason)), "{extra}: {e:?}");
    }
    // GatewayClass targets (waypoints): only `istio-waypoint`, only from the root namespace, SERVER.
    let class = "  targetRefs: [{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}]\n";
    let waypoint_cases: [(&str, &str, &str); 4] = [
        (class, "/workloads/0/namespace", "root namespace"),
        (
            "  targetRefs: [{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio}]\n",
            "/workloads/0/targetRefs/0/name",
            "istio-waypoint",
        ),
        (&format!("{class}  mode: CLIENT\n"), "/workloads/0/mode", "CLIENT never attaches"),
        (&format!("{class}  ports: [8080]\n"), "/workloads/0/ports", "never attaches"),
    ];
    for (extra, pointer, reason) in waypoint_cases {
        let e = errors_at(&one_workload(extra, JWT));
        assert!(e.iter().any(|(p, r)| p == pointer && r.contains(reason)), "{extra}: {e:?}");
    }
    let mut rooted = one_workload(class, JWT);
    rooted.workloads[0].namespace = "istio-system".into();
    assert_eq!(errors_at(&rooted), vec![], "from the root namespace, the istio-waypoint class is accepted");
    rooted.defaults.root_namespace = "mesh-root".into();
    assert!(errors_at(&rooted).iter().any(|(p, _)| p == "/workloads/0/namespace"), "the configured root namespace");
    let mixed = one_workload("  selector: {app: a}\n  bundle: true\n", &format!("{JWT}{CANARY}"));
    let e = errors_at(&mixed);
    assert!(e.iter().any(|(p, r)| p == "/workloads/0/mode" && r.contains("explicit `mode`")), "{e:?}");
}

/// Every rendered WasmPlugin carries `match`: server-side filters SERVER, canary CLIENT, gateway
/// targets CLIENT, Service targets SERVER, the workload's `mode` when it says one.
#[test]
fn rendered_plugins_match_the_traffic_each_filter_is_for() {
    let mode = |extra: &str, filters: &str, file: &str| {
        let c = one_workload(extra, filters);
        assert_eq!(errors_at(&c), vec![], "{extra}");
        docs(&render(&c, false).unwrap()[file]).remove(0)["spec"]["match"].clone()
    };
    let both = format!("{JWT}{CANARY}");
    assert_eq!(mode("  selector: {app: a}\n", &both, "w/jwt-authz.yaml"), serde_json::json!([{"mode": "SERVER"}]));
    assert_eq!(mode("  selector: {app: a}\n", &both, "w/canary.yaml"), serde_json::json!([{"mode": "CLIENT"}]));
    let gw = "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: g}]\n";
    assert_eq!(mode(gw, JWT, "w/jwt-authz.yaml"), serde_json::json!([{"mode": "CLIENT"}]));
    assert_eq!(
        mode("  targetRefs: [{kind: Service, name: s}]\n", JWT, "w/jwt-authz.yaml"),
        serde_json::json!([{"mode": "SERVER"}])
    );
    // GatewayClass istio-waypoint: every waypoint, whose filters istiod matches as SERVER with port 0
    // (listener_waypoint.go); a CLIENT plugin there never runs (for jwt-authz: no authentication).
    let class = "  targetRefs: [{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}]\n";
    let mut c = one_workload(class, JWT);
    c.workloads[0].namespace = "istio-system".into();
    assert_eq!(errors_at(&c), vec![]);
    let plugin = docs(&render(&c, false).unwrap()["w/jwt-authz.yaml"]).remove(0);
    assert_eq!(plugin["spec"]["match"], serde_json::json!([{"mode": "SERVER"}]));
    assert_eq!(check_document("w.yaml", &plugin), vec![]);
    let mut client = plugin.clone();
    client["spec"]["match"] = serde_json::json!([{"mode": "CLIENT"}]);
    assert!(errors_of(&client).iter().any(|m| m.contains("/spec/match/0/mode")), "validate refuses CLIENT there");
    let mut elsewhere = plugin.clone();
    elsewhere["metadata"]["namespace"] = serde_json::json!("shop");
    assert!(errors_of(&elsewhere).iter().any(|m| m.contains("root namespace")));
    assert_eq!(
        mode("  selector: {app: a}\n  mode: CLIENT_AND_SERVER\n  ports: [8080, 9090]\n", JWT, "w/jwt-authz.yaml"),
        serde_json::json!([{"mode": "CLIENT_AND_SERVER", "ports": [{"number": 8080}, {"number": 9090}]}])
    );
    for (path, text) in render(&composition(), false).unwrap() {
        for doc in docs(&text).into_iter().filter(|d| d["kind"] == "WasmPlugin") {
            assert!(doc["spec"]["match"].as_array().is_some_and(|m| !m.is_empty()), "{path}");
        }
    }
}

/// The names of an Istio-built chain (listener_builder.go) with the given optional filters, after the
/// EnvoyFilters' HTTP_FILTER patches are applied as istiod applies them
/// (`meshplug_harness::istio::envoyfilter`, mirroring listener_patch.go).
fn patched_chain(optional: &[&str], envoy_filters: &[Value], context: &str, port: u16) -> Vec<String> {
    use meshplug_harness::istio::envoyfilter::{self as ef, ChainFilter};
    let class = match context {
        "SIDECAR_INBOUND" => meshplug_harness::istio::istiod::ListenerClass::SidecarInbound,
        "SIDECAR_OUTBOUND" => meshplug_harness::istio::istiod::ListenerClass::SidecarOutbound,
        _ => meshplug_harness::istio::istiod::ListenerClass::Gateway,
    };
    let mut chain = ef::istio_chain(class, &[]);
    // Istio adds jwt_authn, rbac, ext_authz and grpc_web only when something asks for them.
    chain.retain(|f| ![ef::JWT_AUTHN, ef::RBAC].contains(&f.name().as_str()) || optional.contains(&f.name().as_str()));
    if optional.contains(&"envoy.filters.http.ext_authz") {
        chain.insert(1, ChainFilter::IstioOnly("envoy.filters.http.ext_authz"));
    }
    if optional.contains(&"envoy.filters.http.grpc_web") {
        let at = chain.iter().position(|f| f.name() == ef::GRPC_STATS).unwrap();
        chain.insert(at, ChainFilter::IstioOnly("envoy.filters.http.grpc_web"));
    }
    let filters: Vec<ef::EnvoyFilter> = envoy_filters.iter().map(|d| ef::EnvoyFilter::from_doc(d).unwrap()).collect();
    let labels = [("app".to_string(), "payments".to_string())].into_iter().collect();
    let proxy = meshplug_harness::istio::istiod::Proxy {
        namespace: "shop",
        labels: &labels,
        waypoint: false,
        services: &[],
        root_namespace: "istio-system",
    };
    let matched = ef::matched(&filters, &proxy);
    ef::patch_http_filters(&mut chain, &matched, context, port);
    chain.iter().map(ChainFilter::name).collect()
}

/// The EnvoyFilter form delivers each module as istiod delivers a WasmPlugin
/// (pilot/pkg/networking/core/extension/wasmplugin.go, pilot/pkg/model/extensions.go): through ECDS
/// with type URLs [Wasm, RBAC] (so istio-agent's RBAC stand-in is accepted) and no initial fetch
/// timeout, named `<namespace>.<name>`, with FAIL_RELOAD kept, the pull policy in the VM environment
/// istio-agent reads, one patch per port, and placed where Istio's listener builder puts the phases.
#[test]
fn envoyfilters_mirror_istiods_wasmplugin_delivery() {
    let mut c = composition();
    c.defaults.fail_strategy.insert("rate-limit".into(), "FAIL_RELOAD".into());
    c.defaults.image_pull_policy = "Always".into();
    c.workloads[0].ports = vec![8080, 9090];
    // Add canary (STATS) to payments so all three placements are exercised.
    let canary = c.workloads[1].filters[0].clone();
    c.workloads[0].filters.insert(2, canary);
    c.workloads[0].mode = None;
    assert_eq!(c.validate(), vec![]);
    let rendered = render(&c, true).unwrap();
    let mut efs = Vec::new();
    for f in ["jwt-authz", "rate-limit", "canary", "fault"] {
        let doc = docs(&rendered[&format!("payments/envoyfilter-{f}.yaml")]).remove(0);
        assert_eq!(check_document(f, &doc), vec![], "{f}");
        let patches = doc["spec"]["configPatches"].as_array().unwrap().clone();
        let name = format!("extensions.istio.io/wasmplugin/shop.payments-{f}");
        let ecds = &patches[0];
        assert_eq!(ecds["applyTo"], "EXTENSION_CONFIG");
        assert_eq!(ecds["patch"]["value"]["name"], name, "the resource name istiod writes");
        let config = &ecds["patch"]["value"]["typed_config"]["config"];
        assert_eq!(config["name"], format!("shop.payments-{f}"));
        assert_eq!(config["root_id"], f);
        assert_eq!(config["vm_config"]["code"]["remote"]["http_uri"]["cluster"], "_");
        let env = &config["vm_config"]["environment_variables"]["key_values"];
        assert_eq!(env["ISTIO_META_WASM_IMAGE_PULL_POLICY"], "Always");
        // A resource version that changes with the rendering: what makes the agent's Always pull again.
        assert!(env["ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION"].as_str().is_some_and(|v| v.len() == 16), "{env}");
        let policy = match f {
            "rate-limit" => "FAIL_RELOAD",
            "jwt-authz" => "FAIL_CLOSED",
            _ => "FAIL_OPEN",
        };
        assert_eq!(config["failure_policy"], policy, "{f}");
        let inserts: Vec<&Value> = patches.iter().filter(|p| p["applyTo"] == "HTTP_FILTER").collect();
        // canary is a client-side filter: outbound and gateway listeners; the others inbound.
        let contexts = if f == "canary" { 2 } else { 1 };
        assert_eq!(inserts.len(), 2 * contexts, "{f}: one patch per port and context");
        for p in &inserts {
            let ds = &p["patch"]["value"]["config_discovery"];
            assert_eq!(p["patch"]["value"]["name"], name);
            assert_eq!(ds["config_source"]["initial_fetch_timeout"], "0s");
            assert_eq!(
                ds["type_urls"],
                serde_json::json!([
                    "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
                ])
            );
        }
        let ports: Vec<u64> = inserts.iter().map(|p| p["match"]["listener"]["portNumber"].as_u64().unwrap()).collect();
        assert!(ports.contains(&8080) && ports.contains(&9090), "{f}: {ports:?}");
        efs.push(doc);
    }
    // Sidecar chains as Istio 1.29 builds them, with and without the filters that exist only when a
    // RequestAuthentication, an AuthorizationPolicy, a CUSTOM action or a gRPC-web port asks for them:
    // every plugin lands exactly once, wherever they are; AUTHN before jwt_authn and rbac; AUTHZ after
    // jwt_authn (it sees what RequestAuthentication verified); all before grpc_stats, in listed order.
    let variants: [&[&str]; 4] = [
        &["envoy.filters.http.jwt_authn", "envoy.filters.http.rbac"],
        &[],
        &["envoy.filters.http.rbac", "envoy.filters.http.ext_authz"],
        &["envoy.filters.http.jwt_authn", "envoy.filters.http.grpc_web"],
    ];
    for optional in variants {
        for port in [8080, 9090] {
            let inbound = patched_chain(optional, &efs, "SIDECAR_INBOUND", port);
            let once = |n: &str| {
                let found: Vec<usize> = inbound.iter().enumerate().filter(|(_, x)| *x == n).map(|(i, _)| i).collect();
                assert_eq!(found.len(), 1, "{n} exactly once with {optional:?}: {inbound:?}");
                found[0]
            };
            let pos = |n: &str| inbound.iter().position(|x| x == n);
            let (jwt, rl, fault) = (
                once("extensions.istio.io/wasmplugin/shop.payments-jwt-authz"),
                once("extensions.istio.io/wasmplugin/shop.payments-rate-limit"),
                once("extensions.istio.io/wasmplugin/shop.payments-fault"),
            );
            assert!(jwt < rl && rl < fault && Some(fault) < pos("envoy.filters.http.grpc_stats"), "{inbound:?}");
            if let Some(authn) = pos("envoy.filters.http.jwt_authn") {
                assert!(jwt < authn && authn < rl, "AUTHN before, AUTHZ after Istio's jwt_authn: {inbound:?}");
            }
            if let Some(rbac) = pos("envoy.filters.http.rbac") {
                assert!(jwt < rbac, "{inbound:?}");
            }
            assert!(!inbound.iter().any(|n| n.ends_with("shop.payments-canary")), "canary is not inbound: {inbound:?}");
            let outbound = patched_chain(optional, &efs, "SIDECAR_OUTBOUND", port);
            assert!(
                outbound.iter().filter(|n| n.ends_with("shop.payments-canary")).count() == 1
                    && !outbound.iter().any(|n| n.ends_with("shop.payments-jwt-authz"))
            );
        }
    }
    let untouched = patched_chain(&[], &[], "SIDECAR_INBOUND", 7070);
    assert_eq!(patched_chain(&[], &efs, "SIDECAR_INBOUND", 7070), untouched, "other ports untouched");

    c.defaults.image_pull_secret = Some("regcred".into());
    let e = render(&c, true).unwrap_err().to_string();
    assert!(e.contains("/defaults/imagePullSecret"), "{e}");
    assert!(render(&c, false).is_ok());

    let mut stale = efs[0].clone();
    stale["spec"]["configPatches"][1]["patch"]["value"]["config_discovery"]["type_urls"] =
        serde_json::json!(["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]);
    let e = errors_of(&stale);
    assert!(e.iter().any(|m| m.contains("type_urls") && m.contains("RBAC")), "{e:?}");
}

/// jwt-authz's remote JWKS lives outside the mesh: render gives the ServiceEntry that makes Istio
/// create the `outbound|443||host` cluster the filter calls and the DestinationRule that speaks TLS to
/// it; a cluster name Istio never creates is refused with the field; in-mesh hosts need nothing.
#[test]
fn remote_jwks_gets_the_mesh_resources_it_needs() {
    let rendered = render(&composition(), false).unwrap();
    let mesh = docs(&rendered["payments/meshplug-jwks-auth-example-com.yaml"]);
    assert_eq!(mesh.len(), 2);
    assert_eq!(mesh[0]["kind"], "ServiceEntry");
    assert_eq!(mesh[0]["spec"]["hosts"], serde_json::json!(["auth.example.com"]));
    assert_eq!(mesh[0]["spec"]["ports"][0]["number"], 443);
    assert_eq!(mesh[1]["kind"], "DestinationRule");
    assert_eq!(mesh[1]["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["mode"], "SIMPLE");
    let k = docs(&rendered["payments/kustomization.yaml"]).remove(0);
    assert!(k["resources"].as_array().unwrap().iter().any(|r| r == "meshplug-jwks-auth-example-com.yaml"));
    assert!(!rendered.keys().any(|k| k.starts_with("storefront/meshplug-jwks")));

    let jwks = |cluster: &str| {
        one_workload(
            "  selector: {app: a}\n",
            &format!("  - name: jwt-authz\n    pluginConfig: {{jwtRules: [{{issuer: i, remoteJwks: {{cluster: '{cluster}', path: /jwks}}}}]}}\n"),
        )
    };
    let e = render(&jwks("jwks"), false).unwrap_err().to_string();
    assert!(
        e.contains("/workloads/w/filters/0/pluginConfig/jwtRules/0/remoteJwks/cluster")
            && e.contains("outbound|<port>||<host>"),
        "{e}"
    );
    let inside = render(&jwks("outbound|8080||keycloak.auth.svc.cluster.local"), false).unwrap();
    assert!(!inside.keys().any(|k| k.contains("meshplug-jwks")), "{:?}", inside.keys());
}

/// The singular `targetRef` (deprecated, still read by istiod: policyattachment.go `GetTargetRefs`) is
/// checked like `targetRefs`.
#[test]
fn the_singular_target_ref_is_checked_too() {
    let mut plugin = rendered_plugin();
    plugin["spec"].as_object_mut().unwrap().remove("selector");
    plugin["spec"]["targetRef"] = serde_json::json!({"group": "apps", "kind": "Deployment", "name": "d"});
    let e = errors_of(&plugin);
    assert!(e.iter().any(|m| m.contains("at /spec/targetRef: Istio cannot attach")), "{e:?}");
    plugin["spec"]["targetRef"] = serde_json::json!({"kind": "Service", "name": "reviews"});
    plugin["spec"]["match"] = serde_json::json!([{"mode": "CLIENT"}]);
    let e = errors_of(&plugin);
    assert!(e.iter().any(|m| m.contains("/spec/match/0/mode")), "a waypoint target read from targetRef: {e:?}");
}
