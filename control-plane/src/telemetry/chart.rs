//! The Helm chart's alert rules and Grafana dashboard name only metrics the
//! services export: every `wagate_…` name in `helm/wagate/templates/prometheusrule.yaml`
//! and `helm/wagate/dashboards/*.json` (histogram suffixes removed) must be
//! a metric name written in the sources of the control plane, the edge or
//! the proto crate (names are string literals or constants there: that is
//! how they reach the recorder).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Every `wagate_[a-z0-9_]+` token of `text` (not inside a longer word);
/// with `quoted`, only those written `"wagate_…"`.
fn scan(text: &str, quoted: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices("wagate_") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let len = text[at..].find(|c: char| !name_char(c)).unwrap_or(text.len() - at);
        let after = text[at + len..].chars().next();
        if quoted && (before != Some('"') || after != Some('"')) {
            continue;
        }
        out.insert(text[at..at + len].to_owned());
    }
    out
}

fn names(text: &str) -> BTreeSet<String> {
    scan(text, false)
}

fn rust_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            // Metric names are quoted literals: keep only those.
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for name in scan(&text, true) {
                out.push_str(&name);
                out.push('\n');
            }
        }
    }
}

#[test]
fn chart_uses_only_exported_metrics() {
    let root = repo();
    let mut src = String::new();
    for dir in ["control-plane/src", "edge-gateway/src", "proto/src"] {
        rust_sources(&root.join(dir), &mut src);
    }
    let exported = names(&src);
    assert!(exported.contains("wagate_cp_connected_workers"), "sources were read: {exported:?}");
    let mut chart =
        std::fs::read_to_string(root.join("helm/wagate/templates/prometheusrule.yaml")).expect("rules");
    let dashboards = std::fs::read_dir(root.join("helm/wagate/dashboards")).expect("dashboards");
    let mut n = 0;
    for d in dashboards.flatten() {
        let text = std::fs::read_to_string(d.path()).expect("dashboard");
        serde_json::from_str::<serde_json::Value>(&text).expect("the dashboard is JSON");
        chart.push_str(&text);
        n += 1;
    }
    assert!(n > 0, "a dashboard is shipped");
    let used = names(&chart);
    assert!(used.len() >= 10, "{used:?}");
    let unknown: Vec<&String> = used
        .iter()
        .filter(|name| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name.as_str());
            !exported.contains(*name) && !exported.contains(base)
        })
        .collect();
    assert!(unknown.is_empty(), "the chart names metrics nobody exports: {unknown:?}");
}
