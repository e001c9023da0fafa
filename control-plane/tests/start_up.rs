//! Start-up of the production `control-plane` binary: it refuses
//! placeholder and short secrets with a message that names the variable.
//! (The credential tests that need a running cluster are in
//! `control-plane/testkit/tests/credentials.rs`.)

/// The production binary refuses placeholder and short secrets with a
/// message that names the variable.
#[test]
fn weak_secrets_refuse_start_up() {
    for (var, value) in [
        ("JWT_SECRET", "change-me-to-64-random-hex-chars"),
        ("JWT_SECRET", "s3cr3t-but-short"),
        ("WORKER_AUTH_TOKEN", "dev-worker-token"),
        ("WORKER_AUTH_TOKEN", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_control-plane"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(var, value)
            .env("DATABASE_URL", "sqlite::memory:")
            .env("WAGATE_GRPC_LISTEN", "127.0.0.1:0")
            .env("WAGATE_METRICS_LISTEN", "")
            .output()
            .expect("control-plane runs");
        assert!(!out.status.success(), "{var}={value} must refuse start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var) && stderr.contains("too weak"), "{var}: {stderr}");
    }
}
