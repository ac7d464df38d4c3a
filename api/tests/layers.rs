//! The layers of the GraphQL modules, checked on their sources (see `api/src/graphql/mod.rs`):
//! a module may use its own layer and the ones below it, never one above. A
//! `crate::graphql::` path in code (not in comments) is an import for this check.

use std::path::Path;

/// Layers from the bottom up, by module name under `graphql`.
fn rank(module: &str) -> Option<usize> {
    Some(match module {
        "context" | "ids" | "enums" | "batching" | "loaders" | "connection" | "cost_budget"
        | "filters" | "orders" | "inputs" => 0,
        "consent" | "intelligence" | "plugins" | "plugin_actions" | "plugin_runs"
        | "plugin_scores" | "plugin_quality" => 1,
        "types" => 2,
        "queries" | "mutations" | "audiences" | "campaigns" | "sequences" | "templates"
        | "fields" | "reports" | "plugin_inputs" | "capture" | "people" | "trainings"
        | "webhooks" | "audit" | "live" | "imports" | "mod" => 3,
        _ => return None,
    })
}

/// The module names every `crate::graphql::` path in `code` starts with, including each
/// member of a grouped `crate::graphql::{a, b::c}`.
fn imports(code: &str) -> Vec<String> {
    let name = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::graphql::") {
        rest = &rest[at + "crate::graphql::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            out.extend(group[..end].split(',').map(name));
        } else {
            out.push(name(rest));
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

fn code_of(source: &str) -> String {
    source
        .lines()
        .map(|l| l.find("//").map_or(l, |at| &l[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_graphql_module_uses_a_higher_layer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/graphql");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read src/graphql") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).expect("read a folder") {
                files.push(inner.expect("entry").path());
            }
        } else {
            files.push(path);
        }
    }
    let mut wrong = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
    {
        let relative = file.strip_prefix(&dir).expect("under src/graphql");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a name")
            .trim_end_matches(".rs");
        let own = rank(module)
            .unwrap_or_else(|| panic!("graphql::{module} is in no layer: add it to `rank`"));
        let code = code_of(&std::fs::read_to_string(file).expect("read a source"));
        for used in imports(&code) {
            if used == module {
                continue;
            }
            // Names defined in `graphql/mod.rs` itself (the schema type, `with_loaders`)
            // belong to the top layer.
            let theirs = rank(&used).unwrap_or(3);
            if theirs > own {
                wrong.push(format!(
                    "{} uses graphql::{used} (layer {theirs} above {own})",
                    relative.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "upward imports:\n{}", wrong.join("\n"));
}

#[test]
fn grouped_paths_are_read_member_by_member() {
    assert_eq!(
        imports("use crate::graphql::{types::Contact, ids};\nlet x = crate::graphql::enums::X;"),
        ["types", "ids", "enums"]
    );
    assert_eq!(imports("// crate::graphql::types"), ["types"]);
    assert!(imports(&code_of("// crate::graphql::types")).is_empty());
}
