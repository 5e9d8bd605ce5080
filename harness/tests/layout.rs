//! The source tree keeps the shape the README's "Layout" promises: modules import one way.
//! What counts as an import is any `crate::<module>` path in a file's text before its tests, comments
//! included (a doc link upward is an arrow upward too).

use std::collections::{BTreeMap, BTreeSet};

/// The `crate::<module>` references of each module of a crate's `src/` (test files excluded).
fn imports(src: &std::path::Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let mut uses = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let module: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if module != name && !module.is_empty() {
                uses.insert(module);
            }
        }
        graph.insert(name, uses);
    }
    graph
}

/// A cycle in the graph, if there is one (a depth-first search).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut c = stack[at..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

/// jwt-authz's modules form a one-way graph: the parsed configuration (`config`, with `rules` and
/// `jwks`) below what evaluates it (`policy`, `token`, `verify`, `logic`, `stage`).
#[test]
fn jwt_authz_modules_import_one_way() {
    let src = meshplug_harness::deploy::filters::workspace_root().join("filters/jwt-authz/src");
    let graph = imports(&src);
    assert!(graph["config"].iter().all(|m| m == "rules" || m == "jwks"), "config: {:?}", graph["config"]);
    assert_eq!(cycle(&graph), None, "{graph:?}");
}

/// The harness's folders in layer order, lowest first: each may import only from folders before it
/// (harness/src/lib.rs says what each owns).
const HARNESS_LAYERS: [&str; 4] = ["deploy", "lab", "istio", "load"];

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The harness library is folders by job, and no folder imports from a layer above it: a file in
/// `deploy/` names no `crate::lab`, `crate::istio` or `crate::load`, and so on up. The library's root
/// holds only the folders; the CLI (`main.rs`, `cli/`) uses the library by its crate name.
#[test]
fn harness_folders_import_only_downward() {
    let src = meshplug_harness::deploy::filters::workspace_root().join("harness/src");
    let mut checked = 0;
    for path in rust_files(&src) {
        let rel = path.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
        if top == "cli" || top == "main.rs" {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains("crate::"), "{}: the CLI uses the library as meshplug_harness::", rel.display());
            continue;
        }
        if top == "lib.rs" {
            continue;
        }
        let layer = HARNESS_LAYERS
            .iter()
            .position(|l| *l == top)
            .unwrap_or_else(|| panic!("{}: not in a folder of {HARNESS_LAYERS:?}", rel.display()));
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, _) in code.match_indices("crate::") {
            let used: String =
                code[i + "crate::".len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let at = HARNESS_LAYERS.iter().position(|l| *l == used);
            assert!(
                at.is_some_and(|at| at <= layer),
                "{} (layer {top}) imports crate::{used}, which is not at or below it in {HARNESS_LAYERS:?}",
                rel.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} files checked under {}", src.display());
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mods: Vec<&str> =
        lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';')).collect();
    let mut layers = HARNESS_LAYERS.to_vec();
    layers.sort_unstable();
    assert_eq!(mods, layers, "lib.rs declares exactly the layer folders");
}

/// The README's "Layout" table has a row for each harness folder, and each folder's `mod.rs` declares
/// every file in it (a file nobody declares is silently not compiled).
#[test]
fn the_readme_and_the_folder_docs_match_the_harness_tree() {
    let root = meshplug_harness::deploy::filters::workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let src = root.join("harness/src");
    for folder in HARNESS_LAYERS.iter().chain(&["cli"]) {
        assert!(
            readme.contains(&format!("| `harness/src/{folder}/`")),
            "README Layout: no row for harness/src/{folder}/"
        );
        let mod_rs = std::fs::read_to_string(src.join(folder).join("mod.rs")).unwrap();
        assert!(mod_rs.starts_with("//! "), "harness/src/{folder}/mod.rs starts with its module doc");
        for file in rust_files(&src.join(folder)) {
            let stem = file.file_stem().unwrap().to_string_lossy().to_string();
            if stem != "mod" {
                assert!(
                    mod_rs.lines().any(|l| l.trim_start_matches("pub ").trim() == format!("mod {stem};")),
                    "harness/src/{folder}/mod.rs does not declare {stem}"
                );
            }
        }
    }
}
