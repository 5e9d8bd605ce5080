//! The source tree keeps the shape the README's "Layout" promises: modules import one way.

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
    let src = meshplug_harness::filters::workspace_root().join("filters/jwt-authz/src");
    let graph = imports(&src);
    assert!(graph["config"].iter().all(|m| m == "rules" || m == "jwks"), "config: {:?}", graph["config"]);
    assert_eq!(cycle(&graph), None, "{graph:?}");
}
