//! The backup and restore runbook (`docs/operations/backup-restore.md`),
//! tested: `pg_dump` a running system's database, drop the system (and its
//! database), `pg_restore` into a fresh database, start a control plane on it
//! with the same custody key, then a worker: it resumes every session from
//! its stored auth state, CONNECTED again without a QR code.

use std::process::Command;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use wagate_testkit::cluster::{Storage, WorkerSpec};
use wagate_worker_sdk::v1::SessionStatus;

use crate::common::{Api, cluster, start, wait_for};

fn run(cmd: &mut Command) {
    let out =
        cmd.output().unwrap_or_else(|e| panic!("{cmd:?} runs (PostgreSQL client tools are required): {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_restore_resumes_sessions_without_qr() {
    let before = start(cluster(Storage::PostgresRedis).workers(1, 10)).await;
    let api = Api::new(&before);
    let mut owners = Vec::new();
    for i in 0..3 {
        let email = format!("owner{i}@example.com");
        let jwt = api.register(&email).await;
        let (sid, _) = api.connected_session(&before, &jwt, &format!("shop-{i}")).await;
        owners.push((email, sid));
    }
    let state = before.cp().state().clone();
    for (_, sid) in &owners {
        wait_for("auth state stored", Duration::from_secs(10), || async {
            wagate_control_plane::stream::custody::load(&state.db, &state.vault, sid).await.ok().flatten()
        })
        .await;
    }
    // What the runbook backs up: the database (pg_dump, custom format) and
    // the secrets (here: the custody key the snapshots are encrypted with).
    let url = state.config.database_url.clone();
    let key = state.config.auth_state_key.clone();
    let dump = std::env::temp_dir().join(format!("wagate-{}.dump", uuid::Uuid::new_v4().simple()));
    run(Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--dbname", &url, "--file"])
        .arg(&dump));
    drop(state);
    // The system is gone, database included.
    before.shutdown().await;

    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    let name = format!("wagate_restore_{}", uuid::Uuid::new_v4().simple());
    let restored = format!("{base}/{name}");
    let admin = format!("{base}/postgres");
    run(Command::new("psql").args([
        "--dbname",
        &admin,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        &format!("CREATE DATABASE \"{name}\""),
    ]));
    run(Command::new("pg_restore").args(["--no-owner", "--exit-on-error", "--dbname", &restored]).arg(&dump));
    let _ = std::fs::remove_file(&dump);

    // Control planes first, workers at zero (the runbook's order): the
    // sweep finds the dump's workers silent and puts their sessions back in
    // the queue, then a worker starts and takes them.
    let target = restored.clone();
    let mut after = start(cluster(Storage::PostgresRedis).configure(move |c| {
        c.database_url = target.clone();
        c.auth_state_key = key.clone();
        // A worker counts as silent after 3 liveness timeouts + one sample period.
        c.metrics_sample_interval = Duration::from_secs(1);
    }))
    .await;
    let db = after.cp().state().db.clone();
    wait_for("the dump's sessions wait for a worker", Duration::from_secs(30), || async {
        let row = db
            .conn
            .query_one_raw(Statement::from_string(
                db.backend(),
                "SELECT COUNT(*) AS n FROM sessions WHERE worker_id IS NULL",
            ))
            .await
            .ok()
            .flatten()?;
        (row.try_get::<i64>("", "n").ok()? == 3).then_some(())
    })
    .await;
    after.add_worker(WorkerSpec::new("worker-1", 10)).await.expect("worker");
    let api = Api::new(&after);
    for (email, sid) in &owners {
        let r = api
            .post("/api/v1/auth/login", None, json!({ "email": email, "password": "correct-horse-9" }))
            .await;
        r.expect(200);
        let jwt = r.data()["token"].as_str().expect("token").to_owned();
        // The restored row still says CONNECTED: wait for the new worker
        // to run the session and report it connected.
        let driver = wait_for("the new worker resumes the session", Duration::from_secs(30), || async {
            after.driver_of(sid).filter(|d| d.session_status(sid) == Some(SessionStatus::Connected)).cloned()
        })
        .await;
        // ... and the control plane records what the worker reported.
        let path = format!("/api/v1/sessions/{sid}");
        wait_for("the session CONNECTED through the API", Duration::from_secs(10), || async {
            (api.get(&path, Some(&jwt)).await.data()["status"] == json!("CONNECTED")).then_some(())
        })
        .await;
        assert!(driver.qr_code(sid).is_none(), "resumed from the restored auth state, no QR");
        assert!(driver.phone_number(sid).is_some());
    }
    after.shutdown().await;
    run(Command::new("psql").args([
        "--dbname",
        &admin,
        "-c",
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    ]));
}
