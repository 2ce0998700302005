//! The layer rule of `src/lib.rs`, checked on the source: a top-level
//! module names only modules of lower layers, so imports point one way and
//! no two modules import each other. A module is named from the crate's
//! root as `crate::<module>` or through `super::` paths that reach the
//! root. Comment lines are not read (a doc link is not an import).

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

/// The modules that `code` names from the crate's root: as `crate::<x>`,
/// in a `crate::{...}` group, or through as many `super::` as `depth` (how
/// deep the file's module is: 1 for `src/http.rs` and `src/http/mod.rs`, 2
/// for `src/http/reports.rs`).
fn named_modules(code: &str, depth: usize) -> BTreeSet<String> {
    let up = "super::".repeat(depth);
    let mut named = BTreeSet::new();
    for root in ["crate::", up.as_str()] {
        for (at, _) in code.match_indices(root) {
            // The tail of a longer `super::super::` chain is not the root.
            if root.starts_with("super") && code[..at].ends_with("super::") {
                continue;
            }
            let after = named_after(&code[at + root.len()..]);
            // Inside an inline module (`mod tests`) the same `super::`
            // chain ends one module lower, at items rather than modules.
            let modules = after
                .into_iter()
                .filter(|m| root == "crate::" || layer_of(m).is_some());
            named.extend(modules);
        }
    }
    named
}

/// What a path from the crate's root names first: one module, or each
/// top-level item of a group (`{a::{b, c}, d}` names a and d).
fn named_after(rest: &str) -> Vec<String> {
    let Some(group) = rest.strip_prefix('{') else {
        return first_segment(rest).into_iter().collect();
    };
    let mut named = Vec::new();
    let (mut depth, mut item) = (0, String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                named.extend(first_segment(&item));
                item.clear();
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    named.extend(first_segment(&item));
    named
}

fn first_segment(path: &str) -> Option<String> {
    let segment: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!segment.is_empty()).then_some(segment)
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
        let own = first.as_os_str().to_string_lossy();
        let own = own.trim_end_matches(".rs");
        if own == "lib" {
            continue;
        }
        let own_layer = layer_of(own).unwrap_or_else(|| panic!("{own} is in no layer"));
        let dirs = relative.components().count() - 1;
        let depth = if file.ends_with("mod.rs") {
            dirs
        } else {
            dirs + 1
        };
        let text = std::fs::read_to_string(file).expect("read");
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for module in named_modules(&code, depth) {
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
        2,
    );
    assert_eq!(
        named.into_iter().collect::<Vec<_>>(),
        ["domain", "read", "store"]
    );
    // From src/http/reports.rs, `super::super::web` is `crate::web`, and
    // one `super::` is a module of its own.
    let named = named_modules("use super::super::web::PageError;\nuse super::error;", 2);
    assert_eq!(named.into_iter().collect::<Vec<_>>(), ["web"]);
    // From src/http/mod.rs one `super::` is the root.
    let named = named_modules("use super::web::Pages;", 1);
    assert_eq!(named.into_iter().collect::<Vec<_>>(), ["web"]);
}
