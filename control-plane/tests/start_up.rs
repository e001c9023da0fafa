//! Start-up of the production `control-plane` binary: it refuses weak
//! secrets, missing production secrets (outside `--dev` / `WAGATE_DEV`) and
//! values that do not parse, with a message that names the variable.
//! (The credential tests that need a running cluster are in
//! `control-plane/testkit/tests/it/credentials.rs`.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `openssl rand -hex 32`-like values (fixed: the tests must be repeatable).
const JWT: &str = "3f9c1e07b2d84a6e95c0f1d7a3b86e24c9d05f1a7e3b2c8d4f60a19e7b3c5d28";
const AUTH_STATE_KEY: &str = "a41e9f03c7d2586b0e1f4a9c3d7b2e8f60c5a1d9e3b7f2048c6d1a5e9b3f7c20";
const INTERNAL: &str = "d0c4b1f78e2a93650f1c7e4d9a2b8c3e5f6071d2a9c4e8b3f1d6a07e5c9b2f48";

/// The binary with a clean environment: an in-memory SQLite database, an
/// ephemeral gRPC port, no `/metrics`, and `env` on top.
fn control_plane(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_control-plane"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", "sqlite::memory:")
        .env("WAGATE_GRPC_LISTEN", "127.0.0.1:0")
        .env("WAGATE_METRICS_LISTEN", "")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the binary, which must refuse to start; returns its stderr.
#[track_caller]
fn refused(env: &[(&str, &str)], args: &[&str]) -> String {
    let Output { status, stderr, .. } = control_plane(env).args(args).output().expect("control-plane runs");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert!(!status.success(), "{env:?} must refuse start-up; stderr: {stderr}");
    stderr
}

/// Runs the binary until it logs that it listens (then kills it); panics
/// if it exits first or takes longer than 60 s.
#[track_caller]
fn starts(env: &[(&str, &str)], args: &[&str]) {
    let mut child = control_plane(env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("control-plane runs");
    let (tx, rx) = std::sync::mpsc::channel();
    for pipe in [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut seen = Vec::new();
    let listening = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let done = line.contains("control plane listening");
                seen.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "{env:?} {args:?} must start; output:\n{}", seen.join("\n"));
}

/// The production binary refuses placeholder, short and predictable
/// secrets with a message that names the variable.
#[test]
fn weak_secrets_refuse_start_up() {
    for (var, value) in [
        ("JWT_SECRET", "change-me-to-64-random-hex-chars"),
        ("JWT_SECRET", "s3cr3t-but-short"),
        ("WORKER_AUTH_TOKEN", "dev-worker-token"),
        ("WORKER_AUTH_TOKEN", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("WAGATE_AUTH_STATE_KEY", "abcdefghijklmnopqrstuvwxyz012345"),
        ("WAGATE_INTERNAL_TOKEN", "0123456789abcdef0123456789abcdef"),
    ] {
        let stderr = refused(&[(var, value)], &[]);
        assert!(stderr.contains(var) && stderr.contains("too weak"), "{var}: {stderr}");
        assert!(!stderr.contains(value), "the value is not printed: {stderr}");
    }
}

/// Production (no `--dev`) refuses to start without the secrets whose
/// random default would break a restart or a second replica.
#[test]
fn production_refuses_to_start_without_its_secrets() {
    // nothing set: the first missing one is named, with the way out
    let stderr = refused(&[], &[]);
    assert!(stderr.contains("JWT_SECRET is required in production"), "{stderr}");
    assert!(stderr.contains("WAGATE_DEV=true"), "{stderr}");

    let stderr = refused(&[("JWT_SECRET", JWT)], &[]);
    assert!(stderr.contains("WAGATE_AUTH_STATE_KEY is required"), "{stderr}");
    assert!(stderr.contains("restart"), "{stderr}");

    // alone (SQLite, in-process cache): no internal token needed
    starts(&[("JWT_SECRET", JWT), ("WAGATE_AUTH_STATE_KEY", AUTH_STATE_KEY)], &[]);

    // able to have peers: Redis, or PostgreSQL (refused before any connection)
    for peers in
        [[("REDIS_URL", "redis://127.0.0.1:1")], [("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")]]
    {
        let mut env = vec![("JWT_SECRET", JWT), ("WAGATE_AUTH_STATE_KEY", AUTH_STATE_KEY)];
        env.extend(peers);
        let stderr = refused(&env, &[]);
        assert!(stderr.contains("WAGATE_INTERNAL_TOKEN is required"), "{peers:?}: {stderr}");
    }

    // the shared worker token on: it must be set
    let stderr = refused(
        &[
            ("JWT_SECRET", JWT),
            ("WAGATE_AUTH_STATE_KEY", AUTH_STATE_KEY),
            ("WAGATE_INTERNAL_TOKEN", INTERNAL),
            ("WAGATE_ALLOW_SHARED_WORKER_TOKEN", "true"),
        ],
        &[],
    );
    assert!(stderr.contains("WORKER_AUTH_TOKEN is required"), "{stderr}");
}

/// `--dev` / `WAGATE_DEV=true` keeps the random defaults for local runs.
#[test]
fn dev_mode_starts_without_secrets() {
    starts(&[], &["--dev"]);
    starts(&[("WAGATE_DEV", "true"), ("WAGATE_ALLOW_SHARED_WORKER_TOKEN", "true")], &[]);
    // a weak secret is refused in dev mode too
    let stderr = refused(&[("WAGATE_DEV", "true"), ("JWT_SECRET", "0123456789abcdef0123456789abcdef")], &[]);
    assert!(stderr.contains("JWT_SECRET is too weak"), "{stderr}");
}

/// A value that does not parse refuses start-up naming its variable (it
/// used to be dropped: metrics silently off, a retired key silently lost).
#[test]
fn bad_values_refuse_start_up() {
    let stderr = refused(&[("WAGATE_METRICS_LISTEN", "0.0.0.0")], &["--dev"]);
    assert!(stderr.contains("WAGATE_METRICS_LISTEN is invalid"), "{stderr}");
    let stderr = refused(&[("WAGATE_METRICS_LISTEN", "metrics:ninety")], &["--dev"]);
    assert!(stderr.contains("WAGATE_METRICS_LISTEN"), "{stderr}");

    let retired = "k0:1111111111111111111111111111111111111111111111111111111111111111,k1";
    let stderr = refused(&[("WAGATE_AUTH_STATE_RETIRED_KEYS", retired)], &["--dev"]);
    assert!(stderr.contains("WAGATE_AUTH_STATE_RETIRED_KEYS is invalid"), "{stderr}");
    assert!(stderr.contains("entry 2"), "{stderr}");
    assert!(!stderr.contains("1111111111"), "key material is not printed: {stderr}");
    let stderr = refused(&[("WAGATE_AUTH_STATE_RETIRED_KEYS", "deadbeef")], &["--dev"]);
    assert!(stderr.contains("WAGATE_AUTH_STATE_RETIRED_KEYS"), "{stderr}");
}
