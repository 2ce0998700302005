//! The layer rule of `src/lib.rs`, checked on the source: a top-level
//! module names (`crate::<module>`) only modules of lower layers, so
//! imports point one way and no two modules import each other. Comments
//! are not read (a doc link is not an import).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Lowest first; a module may use any module of a lower layer, none of its
/// own or a higher one. Keep in step with the module doc of `src/lib.rs`.
const LAYERS: &[&[&str]] = &[
    &["config"],
    &["domain"],
    &["store"],
    &["telemetry"],
    &["detect"],
    &["intake", "import", "worker", "read"],
    &["simulate", "backtest"],
    &["http"],
    &["web"],
    &["demo"],
    &["app"],
    &["main"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules that `code` names as `crate::<module>` or inside a
/// `crate::{...}` group.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The group's top-level items (`a::{b, c}, d` names a and d).
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        named.extend(module_of(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            named.extend(module_of(&item));
        } else {
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            named.insert(module);
        }
    }
    named
}

/// The first path segment of a `use` group's item.
fn module_of(item: &str) -> Option<String> {
    let module = item.trim().split("::").next().unwrap_or_default().trim();
    (!module.is_empty()).then(|| module.to_string())
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "{files:?}");
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("a component");
        let own = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if own == "lib" {
            continue;
        }
        let own_layer = layer_of(&own).unwrap_or_else(|| panic!("{own} is in no layer"));
        let text = std::fs::read_to_string(file).expect("read");
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for module in named_modules(&code) {
            if module == own {
                continue;
            }
            let layer = layer_of(&module).unwrap_or_else(|| panic!("{module} is in no layer"));
            if layer >= own_layer {
                wrong.push(format!("{} uses crate::{module}", relative.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_rule_reads_groups_and_paths() {
    let named = named_modules(
        "use crate::{read::{Reader, Span}, store};\nlet x = crate::domain::time::rfc3339(0);",
    );
    assert_eq!(
        named.into_iter().collect::<Vec<_>>(),
        ["domain", "read", "store"]
    );
}
