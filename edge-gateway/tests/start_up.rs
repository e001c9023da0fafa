//! Start-up of the `edge-gateway` binary: it refuses a weak edge or metrics
//! token (the control plane's rule, `wagate_proto::secret`) and a metrics
//! address that does not parse, with a message that names the variable.

use std::process::{Command, Output};

fn edge(env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge-gateway"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WAGATE_EDGE_LISTEN", "127.0.0.1:0")
        .env("WAGATE_EDGE_METRICS_LISTEN", "");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output { status, stderr, .. } = cmd.output().expect("edge-gateway runs");
    (status.success(), String::from_utf8_lossy(&stderr).into_owned())
}

#[test]
fn weak_tokens_refuse_start_up() {
    for (var, value) in [
        ("WAGATE_EDGE_TOKEN", "0123456789abcdef0123456789abcdef"),
        ("WAGATE_EDGE_TOKEN", "abcdefghijklmnopqrstuvwxyz012345"),
        ("WAGATE_EDGE_TOKEN", "change-me-to-64-random-hex-chars"),
        ("WAGATE_EDGE_TOKEN", "short"),
        ("WAGATE_METRICS_TOKEN", "qwertyuiopasdfghjklzxcvbnm1234567890"),
    ] {
        let (ok, stderr) = edge(&[(var, value)]);
        assert!(!ok, "{var}={value} must refuse start-up");
        assert!(stderr.contains(var) && stderr.contains("too weak"), "{var}: {stderr}");
        assert!(!stderr.contains(value), "the value is not printed: {stderr}");
    }
}

#[test]
fn unparsable_metrics_address_refuses_start_up() {
    let (ok, stderr) = edge(&[("WAGATE_EDGE_METRICS_LISTEN", "0.0.0.0")]);
    assert!(!ok);
    assert!(stderr.contains("WAGATE_EDGE_METRICS_LISTEN"), "{stderr}");
}
