//! The bottom layers of the control plane import nothing from the features
//! above them (issue 21: no import circle except a type and its own tests).
//! Read from the sources, so a new `use crate::services::…` in persistence
//! fails here, not in review.

use std::path::{Path, PathBuf};

/// Each bottom layer and the crate modules it may name.
const LAYERS: &[(&str, &[&str])] = &[
    ("persistence", &["persistence"]),
    ("cache", &["cache"]),
    ("telemetry/metrics.rs", &["persistence"]),
    ("validation.rs", &["error"]),
    ("convert.rs", &["persistence"]),
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_owned());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else { return };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() || p.extension().is_some_and(|e| e == "rs") {
            rust_files(&p, out);
        }
    }
}

/// The `crate::<module>` names in code (not in comments), before the unit tests.
fn crate_modules(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]\nmod tests").next().unwrap_or(source);
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn bottom_layers_import_no_feature() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offences = Vec::new();
    for (layer, allowed) in LAYERS {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "{layer} has no source files");
        for file in files {
            let source = std::fs::read_to_string(&file).expect("source readable");
            for module in crate_modules(&source) {
                if !allowed.contains(&module.as_str()) {
                    offences.push(format!("{} names crate::{module}", file.display()));
                }
            }
        }
    }
    assert!(offences.is_empty(), "bottom layers reach up:\n{}", offences.join("\n"));
}

#[test]
fn the_reader_finds_imports_and_skips_comments() {
    let source =
        "use crate::state::SharedState;\n// crate::services in a comment\nfn f() { crate::fleet::x(); }\n";
    assert_eq!(crate_modules(source), vec!["state".to_owned(), "fleet".to_owned()]);
}
