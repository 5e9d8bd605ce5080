//! `meshplug validate` for Istio manifests: every WasmPlugin, EnvoyFilter, ServiceEntry and
//! DestinationRule is checked against Istio 1.29's CRD schema (OpenAPI v3, in `harness/schemas/`), and
//! WasmPlugins and EnvoyFilters by meshplug's own rules — the pluginConfig through the filter's own
//! parser, enum values, `selector`/`targetRefs` exclusivity and target kinds (as istiod's
//! `pkg/config/validation/validation.go`), a scope (selector, targetRefs, or the namespace-wide
//! annotation), a `match`, URL schemes, the `sha256` form, ECDS type URLs that accept istio-agent's RBAC
//! stand-in. Every error names the file, the resource, the JSON pointer and the reason.

use serde_json::Value;
use std::path::Path;

const WASMPLUGIN_SCHEMA: &str = include_str!("../../schemas/wasmplugin.json");
const ENVOYFILTER_SCHEMA: &str = include_str!("../../schemas/envoyfilter.json");
const SERVICEENTRY_SCHEMA: &str = include_str!("../../schemas/serviceentry.json");
const DESTINATIONRULE_SCHEMA: &str = include_str!("../../schemas/destinationrule.json");

/// One problem in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: String,
    /// `Kind/namespace/name`.
    pub resource: String,
    pub pointer: String,
    pub reason: String,
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "{}: {}: at {at}: {}", self.file, self.resource, self.reason)
    }
}

fn schema_errors(schema: &str, doc: &Value) -> Vec<(String, String)> {
    let Ok(schema) = serde_json::from_str::<Value>(schema) else {
        return vec![("".into(), "bad built-in schema".into())];
    };
    match jsonschema::validator_for(&schema) {
        Ok(v) => v.iter_errors(doc).map(|e| (e.instance_path().to_string(), e.to_string())).collect(),
        Err(e) => vec![("".into(), format!("bad built-in schema: {e}"))],
    }
}

/// Checks one document (already parsed from YAML).
pub fn check_document(file: &str, doc: &Value) -> Vec<ManifestError> {
    let kind = doc["kind"].as_str().unwrap_or("");
    let resource = format!(
        "{kind}/{}/{}",
        doc["metadata"]["namespace"].as_str().unwrap_or("default"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    );
    let err = |pointer: &str, reason: String| ManifestError {
        file: file.into(),
        resource: resource.clone(),
        pointer: pointer.into(),
        reason,
    };
    let mut errors = Vec::new();
    let schema = match (kind, doc["apiVersion"].as_str()) {
        ("WasmPlugin", Some("extensions.istio.io/v1alpha1")) => WASMPLUGIN_SCHEMA,
        ("EnvoyFilter", Some("networking.istio.io/v1alpha3")) => ENVOYFILTER_SCHEMA,
        // The mesh resources `render` adds for a remote JWKS.
        ("ServiceEntry", Some("networking.istio.io/v1")) => SERVICEENTRY_SCHEMA,
        ("DestinationRule", Some("networking.istio.io/v1")) => DESTINATIONRULE_SCHEMA,
        ("Kustomization", _) | ("ConfigMap", Some("v1")) => return errors,
        _ => {
            return vec![err(
                "/kind",
                format!("not a meshplug manifest ({kind} {})", doc["apiVersion"].as_str().unwrap_or("?")),
            )];
        }
    };
    for (pointer, reason) in schema_errors(schema, doc) {
        errors.push(err(&pointer, reason));
    }
    let spec = &doc["spec"];
    let specific = match kind {
        "WasmPlugin" => [attachment_errors(doc), module_errors(spec)].concat(),
        "EnvoyFilter" => envoyfilter_errors(spec),
        _ => vec![],
    };
    errors.extend(specific.into_iter().map(|(pointer, reason)| err(&pointer, reason)));
    errors
}

/// Where a WasmPlugin attaches: one of `selector`/`targetRefs` (or a namespace-wide annotation), a
/// `match`, target kinds Istio accepts, the waypoint rules. As (JSON pointer, reason).
fn attachment_errors(doc: &Value) -> Vec<(String, String)> {
    let spec = &doc["spec"];
    let mut errors = Vec::new();
    let scopes = ["selector", "targetRef", "targetRefs"].iter().filter(|k| spec.get(**k).is_some()).count();
    if scopes > 1 {
        errors.push(issue("/spec", "at most one of `selector` and `targetRefs`".into()));
    }
    let wide = doc
        .pointer(&format!("/metadata/annotations/{}", crate::deploy::render::NAMESPACE_WIDE.replace('/', "~1")))
        .and_then(Value::as_str)
        == Some("true");
    if scopes == 0 && !wide {
        errors.push(issue(
            "/spec",
            format!(
                "neither `selector` nor `targetRefs`: Istio applies this plugin to every workload of the \
                 namespace; if that is meant, annotate it `{}: \"true\"`",
                crate::deploy::render::NAMESPACE_WIDE
            ),
        ));
    }
    if spec.get("match").and_then(Value::as_array).is_none_or(|m| m.is_empty()) {
        errors.push(issue(
            "/spec/match",
            "no `match`: Istio attaches the plugin to every listener, inbound, outbound and gateway; \
             say `match: [{mode: SERVER}]` (or CLIENT) for the traffic it is meant for"
                .into(),
        ));
    }
    // `targetRefs`, or the singular `targetRef` istiod still reads (policyattachment.go GetTargetRefs).
    let refs: Vec<(String, &Value)> = match (spec.get("targetRefs").and_then(Value::as_array), spec.get("targetRef")) {
        (Some(refs), _) => refs.iter().enumerate().map(|(i, r)| (format!("/spec/targetRefs/{i}"), r)).collect(),
        (None, Some(one)) => vec![("/spec/targetRef".to_string(), one)],
        (None, None) => Vec::new(),
    };
    for (at, r) in refs {
        let group = r["group"].as_str().unwrap_or("");
        let rkind = r["kind"].as_str().unwrap_or("");
        if !crate::deploy::composition::TARGET_KINDS.contains(&(group, rkind)) {
            errors.push(issue(
                &at,
                format!("Istio cannot attach a WasmPlugin to {group}/{rkind} (pkg/config/validation/validation.go allowedTargetRefs)"),
            ));
        }
    }
    errors.extend(waypoint_errors(doc));
    errors
}

/// What a WasmPlugin loads: the URL's scheme, the `sha256`'s form, a known module and a pluginConfig
/// its own parser accepts. As (JSON pointer, reason).
fn module_errors(spec: &Value) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let url = spec["url"].as_str().unwrap_or("");
    if !["oci://", "file://", "http://", "https://"].iter().any(|s| url.starts_with(s)) {
        errors.push(issue("/spec/url", format!("{url:?}: the scheme must be oci://, file://, http:// or https://")));
    }
    if let Some(sha) = spec.get("sha256") {
        let ok = sha
            .as_str()
            .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        if !ok {
            errors.push(issue("/spec/sha256", "expected 64 lower-case hex digits".into()));
        }
    }
    let name = spec["pluginName"].as_str().unwrap_or("");
    match crate::deploy::filters::module(name) {
        None => errors.push(issue(
            "/spec/pluginName",
            format!("unknown meshplug module {name:?}; known: {}", crate::deploy::filters::module_names()),
        )),
        Some(k) => {
            let config = spec.get("pluginConfig").cloned().unwrap_or(Value::Object(Default::default()));
            if let Err(e) = (k.validate)(config.to_string().as_bytes()) {
                errors.push(issue(&format!("/spec/pluginConfig{}", e.pointer), e.reason));
            }
        }
    }
    errors
}

/// An EnvoyFilter's Wasm patches: the RBAC type URL istio-agent's stand-in needs, and each filter's
/// configuration through its own parser. As (JSON pointer, reason).
fn envoyfilter_errors(spec: &Value) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if let Some(patches) = spec["configPatches"].as_array() {
        for (i, p) in patches.iter().enumerate() {
            if let Some(urls) = p.pointer("/patch/value/config_discovery/type_urls").and_then(Value::as_array) {
                if !urls.iter().any(|u| u.as_str() == Some(crate::deploy::istio_api::RBAC_TYPE_URL)) {
                    errors.push(issue(
                        &format!("/spec/configPatches/{i}/patch/value/config_discovery/type_urls"),
                        format!(
                            "lacks {}: when istio-agent cannot fetch the module it sends an RBAC filter in its \
                             place, which Envoy then rejects, leaving the filter without config (every request 500)",
                            crate::deploy::istio_api::RBAC_TYPE_URL
                        ),
                    ));
                }
            }
            let cfg = &p["patch"]["value"]["typed_config"]["config"];
            let (Some(name), Some(value)) = (cfg["root_id"].as_str(), cfg["configuration"]["value"].as_str()) else {
                continue;
            };
            if let Some(k) = crate::deploy::filters::module(name) {
                if let Err(e) = (k.validate)(value.as_bytes()) {
                    errors.push(issue(
                        &format!("/spec/configPatches/{i}/patch/value/typed_config/config/configuration/value"),
                        format!("{}: {}", e.pointer, e.reason),
                    ));
                }
            }
        }
    }
    errors
}

/// One (JSON pointer, reason) of a document's problems.
fn issue(pointer: &str, reason: String) -> (String, String) {
    (pointer.to_string(), reason)
}

/// Every `.yaml`/`.yml` file under `dir` (recursively), sorted.
pub fn yaml_files(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Checks every `.yaml`/`.yml` file under `dir` (recursively).
pub fn check_dir(dir: &Path) -> anyhow::Result<(usize, Vec<ManifestError>)> {
    let files = yaml_files(dir)?;
    let mut errors = Vec::new();
    let mut count = 0;
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let name = f.display().to_string();
        for de in serde_yaml_ng::Deserializer::from_str(&text) {
            use serde::Deserialize;
            match Value::deserialize(de) {
                Ok(Value::Null) => {}
                Ok(doc) => {
                    count += 1;
                    errors.extend(check_document(&name, &doc));
                }
                Err(e) => errors.push(ManifestError {
                    file: name.clone(),
                    resource: "?".into(),
                    pointer: "".into(),
                    reason: format!("not YAML: {e}"),
                }),
            }
        }
    }
    Ok((count, errors))
}

/// A WasmPlugin aimed at waypoints that Istio would never attach, as `ShouldAttachPolicy`
/// (pilot/pkg/model/policyattachment.go) and `matchTrafficSelectors` with the waypoint's listener info
/// (pilot/pkg/networking/core/listener_waypoint.go: SidecarInbound, port 0) decide: a GatewayClass other
/// than `istio-waypoint`, a GatewayClass target outside the root namespace (Istio's default
/// `istio-system` is assumed: meshConfig is not in the manifests), a CLIENT-only `match`, or `ports`.
fn waypoint_errors(doc: &Value) -> Vec<(String, String)> {
    let spec = &doc["spec"];
    let refs: Vec<&Value> = match (spec["targetRefs"].as_array(), spec.get("targetRef")) {
        (Some(refs), _) => refs.iter().collect(),
        (None, Some(one)) => vec![one],
        (None, None) => Vec::new(),
    };
    let waypoint = |r: &&Value| matches!(r["kind"].as_str(), Some("Service" | "ServiceEntry" | "GatewayClass"));
    if refs.is_empty() || !refs.iter().all(waypoint) {
        return Vec::new();
    }
    let mut errors = Vec::new();
    let at = if spec.get("targetRefs").is_some() { "/spec/targetRefs" } else { "/spec/targetRef" };
    for (i, r) in refs.iter().enumerate() {
        if r["kind"] != "GatewayClass" {
            continue;
        }
        let p = if at.ends_with('s') { format!("{at}/{i}") } else { at.to_string() };
        if r["name"] != crate::deploy::istio_api::WAYPOINT_CLASS {
            errors.push((
                format!("{p}/name"),
                format!(
                    "Istio attaches a GatewayClass target only for `{}` (policyattachment.go); this one never applies",
                    crate::deploy::istio_api::WAYPOINT_CLASS
                ),
            ));
        }
        if doc["metadata"]["namespace"].as_str().unwrap_or("default") != crate::deploy::istio_api::ROOT_NAMESPACE {
            errors.push((
                "/metadata/namespace".to_string(),
                format!(
                    "a GatewayClass target attaches only from the root namespace ({}, unless meshConfig says \
                     otherwise); elsewhere it never applies",
                    crate::deploy::istio_api::ROOT_NAMESPACE
                ),
            ));
        }
    }
    for (i, m) in spec["match"].as_array().into_iter().flatten().enumerate() {
        if m["mode"] == "CLIENT" {
            errors.push((
                format!("/spec/match/{i}/mode"),
                "waypoints match plugins as SERVER traffic (listener_waypoint.go): a CLIENT match never attaches there"
                    .to_string(),
            ));
        }
        if m["ports"].as_array().is_some_and(|p| !p.is_empty()) {
            errors.push((
                format!("/spec/match/{i}/ports"),
                "waypoints match plugins with port 0: a `ports` list never matches there; leave it out".to_string(),
            ));
        }
    }
    errors
}
