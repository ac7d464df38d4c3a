//! The engine's layers, checked on its sources: a module may use its own layer and the
//! ones below it, never one above (see the crate documentation and ARCHITECTURE.md).
//! A `crate::` path in code (not in comments) is an import for this check.

use std::path::{Path, PathBuf};

/// Layers from the bottom up, by the first segment of a module path.
fn rank(first: &str) -> Option<usize> {
    Some(match first {
        "error" | "values" | "clock" | "input_limits" | "EngineError" | "Result" => 0,
        "platform" => 1,
        "crm" => 2,
        "engagement" => 3,
        "intelligence" => 4,
        "integrations" => 5,
        "worker" | "contact_data" | "timeline" | "demo" => 6,
        _ => return None,
    })
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read engine sources") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer a file is in, from its path under `src/`.
fn layer_of(relative: &Path) -> usize {
    let first = relative
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .expect("a path under src");
    match first {
        "lib.rs" => 5,
        file => rank(file.trim_end_matches(".rs"))
            .unwrap_or_else(|| panic!("{} is in no layer: add it to `rank`", relative.display())),
    }
}

/// The first segments of every `crate::` path in `code`, including each member of a
/// grouped `crate::{a, b::c}`.
fn imports(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in group[..end].split(',') {
                let name: String = member
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

/// A line's code, without a trailing or whole-line comment.
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 50, "found only {} sources", files.len());
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let from = layer_of(relative);
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            for target in imports(code_of(line)) {
                let to = rank(&target).unwrap_or_else(|| {
                    panic!(
                        "{}:{}: `crate::{target}` is in no layer: add it to `rank`",
                        relative.display(),
                        n + 1
                    )
                });
                if to > from {
                    upward.push(format!(
                        "{}:{}: `crate::{target}` (layer {to}) from layer {from}",
                        relative.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
}

#[test]
fn the_scan_sees_grouped_and_nested_imports() {
    assert_eq!(
        imports("use crate::{values::Tag, platform::db}; let x = crate::crm::contacts::get;"),
        ["values", "platform", "crm"]
    );
    assert_eq!(code_of("let a = 1; // crate::worker"), "let a = 1; ");
}
