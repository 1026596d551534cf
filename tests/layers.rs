//! The layers point down: each top-level module of the library may name only the modules
//! below it (docs/ARCHITECTURE.md has the map), and no command of the CLI imports another.
//! Reads the sources as text; needs no adapter.

use std::path::{Path, PathBuf};

/// Each layer and the modules it may import. A module may always import itself.
const ALLOWED: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("fsio", &["error"]),
    ("classes", &["error"]),
    ("tensor", &["gpu", "error"]),
    ("gpu", &["tensor", "error"]),
    ("weights", &["fsio", "error"]),
    ("dataset", &["error"]),
    ("imageio", &["fsio", "error", "tensor", "gpu"]),
    ("ops", &["gpu", "tensor", "error"]),
    ("render", &["imageio", "gpu", "tensor", "error"]),
    ("autodiff", &["ops", "gpu", "tensor", "error"]),
    ("inpaint", &["ops", "weights", "gpu", "tensor", "error"]),
    (
        "models",
        &[
            "autodiff", "ops", "weights", "imageio", "classes", "fsio", "gpu", "tensor", "error",
        ],
    ),
    (
        "explain",
        &[
            "models", "inpaint", "autodiff", "ops", "imageio", "classes", "fsio", "gpu", "tensor", "error",
        ],
    ),
    (
        "eval",
        &[
            "explain", "models", "inpaint", "autodiff", "ops", "weights", "imageio", "dataset", "classes",
            "fsio", "gpu", "tensor", "error",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source names through `crate::` (the crate's own paths).
fn named_modules(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name.clone());
            }
            // `use crate::{a, b::c}` names several.
            if rest.starts_with('{') {
                let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
                for part in group.split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push(name);
                    }
                }
            }
        }
    }
    found
}

#[test]
fn library_layers_only_import_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let layers: Vec<&str> = ALLOWED.iter().map(|(l, _)| *l).collect();
    let mut checked = 0;
    for path in files {
        let rel = path.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "cli" || top == "lib" {
            continue;
        }
        let allowed = ALLOWED
            .iter()
            .find(|(l, _)| *l == top)
            .unwrap_or_else(|| panic!("src/{} is in no layer of tests/layers.rs", rel.display()))
            .1;
        let source = std::fs::read_to_string(&path).unwrap();
        for name in named_modules(&source) {
            // Macros exported at the crate root and the root re-exports are not layers.
            if !layers.contains(&name.as_str()) || name == top {
                continue;
            }
            assert!(
                allowed.contains(&name.as_str()),
                "src/{} ({top}) imports `crate::{name}`, a layer above it or beside it",
                rel.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} files were read");
}

#[test]
fn no_command_of_the_cli_imports_another() {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
    let mut files = Vec::new();
    rust_files(&cli, &mut files);
    let commands: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .filter(|n| n != "mod")
        .collect();
    assert!(!commands.is_empty());
    for path in &files {
        let me = path.file_stem().unwrap().to_string_lossy().to_string();
        let source = std::fs::read_to_string(path).unwrap();
        for other in commands.iter().filter(|c| **c != me) {
            for pattern in [format!("super::{other}"), format!("cli::{other}")] {
                assert!(
                    !source.contains(&pattern),
                    "src/cli/{me}.rs uses `{pattern}`: shared code belongs in the library or in cli/mod.rs"
                );
            }
        }
    }
}
