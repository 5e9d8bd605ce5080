//! Every example stays true: its composition validates, its committed Envoy config is what
//! `meshplug render-envoy` produces today (no drift) and passes `envoy --mode validate` (which also
//! runs each filter's `on_configure` on its pluginConfig), and its WasmPlugin carries the same
//! pluginConfig as the composition.

use meshplug_harness::deploy::composition::Composition;
use meshplug_harness::deploy::filters::{finish_modules, workspace_root};
use meshplug_harness::lab::envoy::find_envoy;
use meshplug_harness::lab::local::LabBuilder;
use meshplug_harness::lab::run::validate_config;
use std::path::{Path, PathBuf};

const COMMITTED_MODULE_DIR: &str = "target/modules";

fn example_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    dirs
}

fn yaml(path: &Path) -> serde_json::Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_example_composition_is_valid_and_its_envoy_config_has_not_drifted() {
    for dir in example_dirs() {
        let c = Composition::load(&dir.join("composition.yaml")).unwrap();
        assert_eq!(c.validate(), vec![], "{}", dir.display());
        let rendered = LabBuilder::from_composition(&c, None)
            .unwrap()
            .render_static(8080, Some(Path::new(COMMITTED_MODULE_DIR)))
            .unwrap();
        let committed = yaml(&dir.join("envoy.yaml"));
        assert!(
            rendered == committed,
            "{}/envoy.yaml differs from the rendering of its composition; regenerate it with\n  \
             cargo run -p meshplug-harness -- render-envoy {}/composition.yaml --module-dir {COMMITTED_MODULE_DIR} > {}/envoy.yaml",
            dir.display(),
            dir.display(),
            dir.display()
        );
    }
}

#[test]
fn every_envoy_config_in_examples_passes_envoy_validate() {
    let envoy = find_envoy(None, &workspace_root()).unwrap();
    let modules = finish_modules().unwrap();
    for dir in example_dirs() {
        let text = std::fs::read_to_string(dir.join("envoy.yaml")).unwrap();
        // The committed config names modules relative to the root; point it at this build's modules
        // (CARGO_TARGET_DIR may differ).
        let text = text.replace(COMMITTED_MODULE_DIR, &modules.display().to_string());
        let path = std::env::temp_dir().join(format!(
            "meshplug-example-{}-{}.yaml",
            std::process::id(),
            dir.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&path, text).unwrap();
        let result = validate_config(&envoy, &path);
        let _ = std::fs::remove_file(&path);
        if let Err(out) = result {
            panic!("{}/envoy.yaml fails envoy --mode validate:\n{out}", dir.display());
        }
    }
}

#[test]
fn envoy_validate_catches_a_bad_plugin_config() {
    // Proves the check above can fail: the same example with a broken pluginConfig is refused.
    let envoy = find_envoy(None, &workspace_root()).unwrap();
    let dir = workspace_root().join("examples/fault");
    let text = std::fs::read_to_string(dir.join("envoy.yaml"))
        .unwrap()
        .replace(COMMITTED_MODULE_DIR, &finish_modules().unwrap().display().to_string())
        .replace(r#""httpStatus":503"#, r#""httpStatus":42"#);
    let path = std::env::temp_dir().join(format!("meshplug-example-bad-{}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let result = validate_config(&envoy, &path);
    let _ = std::fs::remove_file(&path);
    assert!(result.is_err());
}

#[test]
fn every_wasmplugin_example_matches_its_composition() {
    for dir in example_dirs() {
        let path = dir.join("wasmplugin.yaml");
        if !path.exists() {
            continue;
        }
        let plugin = yaml(&path);
        assert_eq!(plugin["apiVersion"], "extensions.istio.io/v1alpha1");
        assert_eq!(plugin["kind"], "WasmPlugin");
        let c = Composition::load(&dir.join("composition.yaml")).unwrap();
        let name = plugin["spec"]["pluginName"].as_str().unwrap();
        let entry = c.workloads[0].filters.iter().find(|f| f.name == name).unwrap();
        assert_eq!(plugin["spec"]["pluginConfig"], entry.plugin_config, "{}", path.display());
        let fs = ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"];
        assert!(fs.contains(&plugin["spec"]["failStrategy"].as_str().unwrap()));
    }
}

#[test]
fn the_local_envoy_config_of_every_manifests_workload_passes_envoy_validate() {
    let envoy = find_envoy(None, &workspace_root()).unwrap();
    let c = Composition::load(&workspace_root().join("manifests/composition.yaml")).unwrap();
    for w in &c.workloads {
        let config = LabBuilder::from_composition(&c, Some(&w.name))
            .unwrap()
            .render_static(8080, Some(&finish_modules().unwrap()))
            .unwrap();
        let path = std::env::temp_dir().join(format!("meshplug-manifests-{}-{}.json", std::process::id(), w.name));
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        let result = validate_config(&envoy, &path);
        let _ = std::fs::remove_file(&path);
        if let Err(out) = result {
            panic!("workload {}: envoy --mode validate failed:\n{out}", w.name);
        }
    }
}
