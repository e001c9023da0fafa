//! The send pipeline under a status writer that falls behind: an acked
//! message is never dispatched again, none is lost; the same across a
//! graceful restart of the control plane, and across a crash (at most the
//! unwritten messages are dispatched again, and the SDK's window keeps the
//! driver from sending them twice). Side effects are counted at the
//! simulated driver with its own de-duplication OFF.

use std::time::Duration;

use crate::common::{Api, cluster, start, wait_for};
use futures::future::join_all;
use sea_orm::{ConnectionTrait, Statement};
use wagate_testkit::cluster::{Cluster, Storage, WorkerSpec};

const N: usize = 40;

fn worker(delivered: Duration) -> WorkerSpec {
    let mut w = WorkerSpec::new("w1", 10);
    w.simulated.dedup = false;
    w.simulated.delivered_after = delivered;
    w.simulated.delivered_after_max = delivered;
    w.simulated.read_share = 0.5;
    w.simulated.read_after = Duration::from_millis(20);
    w.simulated.read_after_max = Duration::from_millis(60);
    w
}

async fn setup(storage: Storage, delivered: Duration) -> (Cluster, Api, String, String) {
    let (c, api, _token, sid, key) = setup_with_token(storage, delivered).await;
    (c, api, sid, key)
}

/// [`setup`], also returning the owner's token.
async fn setup_with_token(storage: Storage, delivered: Duration) -> (Cluster, Api, String, String, String) {
    let c = start(cluster(storage).worker(worker(delivered)).configure(|c| {
        c.sweep_interval = Duration::from_millis(100);
        c.redispatch_after = Duration::from_millis(400);
        c.command_timeout = Duration::from_secs(2);
    }))
    .await;
    let api = Api::new(&c);
    let token = api.register(&format!("pipeline-{}@example.com", uuid::Uuid::new_v4().simple())).await;
    let (sid, key) = api.connected_session(&c, &token, "pipeline").await;
    (c, api, token, sid, key)
}

/// Sends `n` messages concurrently; every one must be accepted as SENT.
async fn send_all(api: &Api, sid: &str, key: &str, n: usize) -> Vec<String> {
    let texts: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let replies = join_all(texts.iter().map(|t| api.send_text(sid, key, t))).await;
    replies
        .iter()
        .map(|r| {
            r.expect(200);
            assert_eq!(r.data()["status"], "SENT", "{}", r.body);
            r.data()["messageId"].as_str().expect("messageId").to_owned()
        })
        .collect()
}

async fn count(c: &Cluster, sql: &str) -> i64 {
    let db = &c.cp().state().db.conn;
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .expect("count query")
        .expect("a row");
    row.try_get("", "n").expect("n")
}

/// Waits until every one of `ids` is SENT or later and the ledger is empty.
async fn wait_all_settled(c: &Cluster, ids: &[String]) {
    let list = ids.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT COUNT(*) AS n FROM messages WHERE id IN ({list}) AND status IN ('SENT','DELIVERED','READ')"
    );
    wait_for("all sends SENT or later", Duration::from_secs(15), || async {
        (count(c, &sql).await == ids.len() as i64).then_some(())
    })
    .await;
    wait_for("dispatch ledger empty", Duration::from_secs(5), || async {
        (count(c, "SELECT COUNT(*) AS n FROM message_dispatch").await == 0).then_some(())
    })
    .await;
}

fn driver_counts(c: &Cluster) -> (u64, u64) {
    let d = &c.worker("w1").expect("w1").driver;
    (d.send_calls(), d.duplicate_sends())
}

fn sdk_counts(c: &Cluster) -> (u64, u64) {
    let h = c.worker("w1").and_then(|w| w.handle.as_ref()).expect("w1 running");
    (h.redispatched_sends(), h.repeated_sends())
}

async fn held_back_writer(storage: Storage) {
    let (c, api, sid, key) = setup(storage, Duration::from_millis(30)).await;
    let writer = &c.cp().state().status_writer;
    writer.pause(true);
    let ids = send_all(&api, &sid, &key, N).await;
    // Many sweeps pass with every row PENDING and dispatched long ago.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count(&c, "SELECT COUNT(*) AS n FROM message_dispatch").await,
        N as i64,
        "nothing written yet"
    );
    assert_eq!(sdk_counts(&c), (0, 0), "no acked send was dispatched again");
    writer.pause(false);
    wait_all_settled(&c, &ids).await;
    // Let the sweep run a few more times over the settled rows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(driver_counts(&c), (N as u64, 0), "each message sent exactly once at the driver");
    assert_eq!(sdk_counts(&c), (0, 0));
    assert_eq!(c.cp().state().send_tracker.len(), 0, "tracker drained");
    c.shutdown().await;
}

#[tokio::test]
async fn held_back_writer_never_redispatches_acked_sends_sqlite() {
    held_back_writer(Storage::Sqlite).await;
}

#[tokio::test]
async fn held_back_writer_never_redispatches_acked_sends_postgres() {
    held_back_writer(Storage::PostgresRedis).await;
}

async fn restart(storage: Storage, crash: bool) {
    // No DELIVERED events in the window: only the acks settle the rows.
    let (mut c, api, sid, key) = setup(storage, Duration::from_secs(120)).await;
    c.cp().state().status_writer.pause(true);
    let ids = send_all(&api, &sid, &key, N).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.restart_control_plane(crash).await.expect("control plane restarts");
    let handle = c.worker("w1").and_then(|w| w.handle.as_ref()).expect("w1");
    assert!(handle.wait_connected(Duration::from_secs(10)).await, "worker reconnects");
    wait_all_settled(&c, &ids).await;
    // More sends after the restart go through normally.
    let more = send_all(&api, &sid, &key, 5).await;
    wait_all_settled(&c, &more).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (redispatched, repeated) = sdk_counts(&c);
    if crash {
        // The acked-but-unwritten sends were lost with the crashed process:
        // dispatched again (counted), at most once each, and answered by
        // the SDK's window without a second send.
        assert!(
            redispatched >= 1 && redispatched <= N as u64,
            "re-dispatches bounded by the unwritten sends: {redispatched}"
        );
        assert_eq!(repeated, redispatched, "every re-dispatch answered from the window");
    } else {
        // A graceful stop writes everything it acked first.
        assert_eq!((redispatched, repeated), (0, 0), "no re-dispatch after a graceful restart");
    }
    assert_eq!(driver_counts(&c), (N as u64 + 5, 0), "each message sent exactly once at the driver");
    c.shutdown().await;
}

#[tokio::test]
async fn graceful_restart_sends_nothing_twice_sqlite() {
    restart(Storage::Sqlite, false).await;
}

#[tokio::test]
async fn graceful_restart_sends_nothing_twice_postgres() {
    restart(Storage::PostgresRedis, false).await;
}

#[tokio::test]
async fn crash_redispatches_at_most_the_unwritten_sends_sqlite() {
    restart(Storage::Sqlite, true).await;
}

#[tokio::test]
async fn crash_redispatches_at_most_the_unwritten_sends_postgres() {
    restart(Storage::PostgresRedis, true).await;
}

/// The status writer coalesces and only moves forward: a late SENT does
/// not overwrite READ, and READ after FAILED is ignored.
async fn forward_only(storage: Storage) {
    use chrono::Utc;
    use wagate_control_plane::persistence::status_writer::{EventKind, StatusUpdate, write_batch};
    let (c, api, sid, key) = setup(storage, Duration::from_secs(120)).await;
    let ids = send_all(&api, &sid, &key, 3).await;
    wait_all_settled(&c, &ids).await;
    let db = &c.cp().state().db;
    let from = |worker: &str, kind, id: &str| StatusUpdate::Event {
        kind,
        id: id.to_owned(),
        session_id: sid.clone(),
        worker_id: worker.to_owned(),
        at: Utc::now(),
    };
    let ev = |kind, id: &str| from("w1", kind, id);
    let late_ack = StatusUpdate::Sent { id: ids[0].clone(), at: Utc::now(), wa_message_id: None };
    write_batch(db, &[ev(EventKind::Delivered, &ids[0]), ev(EventKind::Read, &ids[0]), late_ack], &[])
        .await
        .expect("batch");
    write_batch(db, &[ev(EventKind::Failed, &ids[1])], &[]).await.expect("batch");
    write_batch(db, &[ev(EventKind::Read, &ids[1]), ev(EventKind::Delivered, &ids[1])], &[])
        .await
        .expect("batch");
    // Another worker's events are fenced out.
    write_batch(db, &[from("w-other", EventKind::Read, &ids[1])], &[]).await.expect("batch");
    let status = |id: &str| format!("SELECT COUNT(*) AS n FROM messages WHERE id = '{id}' AND status = ");
    // ... also on a message they could move: a SENT message stays SENT,
    // in a batch with the placed worker's events of other messages.
    let stranger = from("w-other", EventKind::Read, &ids[2]);
    write_batch(db, &[stranger, ev(EventKind::Delivered, &ids[0])], &[]).await.expect("batch");
    assert_eq!(count(&c, &format!("{}'SENT' AND read_at IS NULL", status(&ids[2]))).await, 1);
    write_batch(db, &[ev(EventKind::Delivered, &ids[2])], &[]).await.expect("batch");
    assert_eq!(count(&c, &format!("{}'DELIVERED'", status(&ids[2]))).await, 1);
    assert_eq!(
        count(&c, &format!("{}'READ' AND read_at IS NOT NULL AND delivered_at IS NOT NULL", status(&ids[0])))
            .await,
        1
    );
    assert_eq!(count(&c, &format!("{}'FAILED'", status(&ids[1]))).await, 1);
    c.shutdown().await;
}

#[tokio::test]
async fn status_moves_forward_only_sqlite() {
    forward_only(Storage::Sqlite).await;
}

#[tokio::test]
async fn status_moves_forward_only_postgres() {
    forward_only(Storage::PostgresRedis).await;
}

/// A status event from a worker the session is not placed on changes
/// nothing: not the row, and not its re-dispatch ledger entry (which would
/// hide an unacknowledged send from the sweep for good).
async fn fenced_out_event_keeps_the_ledger(storage: Storage) {
    use chrono::Utc;
    use wagate_control_plane::persistence::status_writer::{EventKind, StatusUpdate, write_batch};
    let (c, api, sid, key) = setup(storage, Duration::from_secs(120)).await;
    // The ack's SENT waits in the writer: the row is PENDING with its ledger row.
    c.cp().state().status_writer.pause(true);
    let ids = send_all(&api, &sid, &key, 1).await;
    let id = &ids[0];
    let db = &c.cp().state().db;
    let event = |worker: &str| StatusUpdate::Event {
        kind: EventKind::Delivered,
        id: id.clone(),
        session_id: sid.clone(),
        worker_id: worker.to_owned(),
        at: Utc::now(),
    };
    let ledger = format!("SELECT COUNT(*) AS n FROM message_dispatch WHERE id = '{id}'");
    let pending = format!("SELECT COUNT(*) AS n FROM messages WHERE id = '{id}' AND status = 'PENDING'");
    write_batch(db, &[event("w-stale")], &[]).await.expect("batch");
    assert_eq!(count(&c, &pending).await, 1, "a stale worker's event does not move the row");
    assert_eq!(count(&c, &ledger).await, 1, "nor remove its ledger entry");
    write_batch(db, &[event("w1")], &[]).await.expect("batch");
    assert_eq!(count(&c, &ledger).await, 0, "the placed worker's event settles it");
    c.cp().state().status_writer.pause(false);
    wait_all_settled(&c, &ids).await;
    c.shutdown().await;
}

#[tokio::test]
async fn fenced_out_event_keeps_the_ledger_sqlite() {
    fenced_out_event_keeps_the_ledger(Storage::Sqlite).await;
}

#[tokio::test]
async fn fenced_out_event_keeps_the_ledger_postgres() {
    fenced_out_event_keeps_the_ledger(Storage::PostgresRedis).await;
}

/// A status hook (how webhook outbox rows ride along) sees exactly the
/// moves that were applied, and its statements commit with them.
struct LogHook;

#[async_trait::async_trait]
impl wagate_control_plane::persistence::status_writer::StatusHook for LogHook {
    async fn in_transaction(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        db: &wagate_control_plane::persistence::Db,
        _batch: &[wagate_control_plane::persistence::status_writer::StatusUpdate],
        applied: &[wagate_control_plane::persistence::status_writer::Applied],
    ) -> Result<usize, sea_orm::DbErr> {
        for a in applied {
            txn.execute_raw(db.stmt(
                "INSERT INTO system_logs (id, level, service, message, session_id, timestamp) VALUES ($1, 'INFO', 'hook', $2, $3, $4)",
                vec![
                    uuid::Uuid::new_v4().to_string().into(),
                    format!("{} {:?}", a.id, a.status).into(),
                    a.session_id.clone().into(),
                    chrono::Utc::now().into(),
                ],
            ))
            .await?;
        }
        Ok(applied.len())
    }
}

async fn hook_rides_along(storage: Storage) {
    let (c, api, sid, key) = setup(storage, Duration::from_millis(20)).await;
    assert!(c.cp().state().status_writer.set_hook(std::sync::Arc::new(LogHook)));
    let ids = send_all(&api, &sid, &key, 3).await;
    // Each message: SENT (ack), DELIVERED, and READ for about half; every
    // applied move is logged once, repeats are not.
    wait_all_settled(&c, &ids).await;
    wait_for("DELIVERED for all", Duration::from_secs(5), || async {
        let n = count(&c, "SELECT COUNT(*) AS n FROM messages WHERE status IN ('DELIVERED','READ')").await;
        (n == 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Moves of one message that share a write window fold into one write
    // (one applied move): 1 to 3 logged moves per message, the last one
    // naming its final status.
    for id in &ids {
        let per = |extra: &str| {
            format!(
                "SELECT COUNT(*) AS n FROM system_logs WHERE service = 'hook' AND message LIKE '{id}%'{extra}"
            )
        };
        let n = count(&c, &per("")).await;
        assert!((1..=3).contains(&n), "{id}: {n} logged moves");
        let final_status =
            count(&c, &format!("SELECT COUNT(*) AS n FROM messages WHERE id = '{id}' AND status = 'READ'"))
                .await;
        let want =
            if final_status == 1 { " AND message LIKE '% Read'" } else { " AND message LIKE '% Delivered'" };
        assert_eq!(count(&c, &per(want)).await, 1, "{id}: the final move is logged once");
    }
    c.shutdown().await;
}

#[tokio::test]
async fn status_hook_statements_commit_with_the_batch_sqlite() {
    hook_rides_along(Storage::Sqlite).await;
}

#[tokio::test]
async fn status_hook_statements_commit_with_the_batch_postgres() {
    hook_rides_along(Storage::PostgresRedis).await;
}

/// A client retrying with the same `Idempotency-Key` gets the first send's
/// message back and the message goes out once: 8 concurrent sends with one
/// key, then one more after they settled, then the same key on another
/// session (a different message). Counted at the driver with its
/// de-duplication off. (The key's unique index holds only rows that have
/// a key: migration 000016.)
async fn idempotent_retries(storage: Storage) {
    let (c, api, sid, key) = setup(storage, Duration::from_millis(50)).await;
    let send = |sid: String, key: String, idem: &'static str| {
        let api = api.clone();
        async move { api.send_text_with(&sid, &key, "once", &[("Idempotency-Key", idem)]).await }
    };
    let replies = join_all((0..8).map(|_| send(sid.clone(), key.clone(), "order-42"))).await;
    let ids: std::collections::BTreeSet<String> = replies
        .iter()
        .map(|r| {
            r.expect(200);
            r.data()["messageId"].as_str().expect("messageId").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one message for one key: {ids:?}");
    let first = ids.into_iter().next().unwrap_or_default();
    wait_all_settled(&c, std::slice::from_ref(&first)).await;
    let again = send(sid.clone(), key.clone(), "order-42").await;
    again.expect(200);
    assert_eq!(again.data()["messageId"], first.as_str());
    assert_ne!(again.data()["status"], "PENDING", "the stored status: {}", again.body);

    // the same key on another session of the same user is another message
    let token = api.register(&format!("idem-{}@example.com", uuid::Uuid::new_v4().simple())).await;
    let (other, other_key) = api.connected_session(&c, &token, "other").await;
    let r = send(other.clone(), other_key, "order-42").await;
    r.expect(200);
    assert_ne!(r.data()["messageId"], first.as_str());

    let n = count(
        &c,
        &format!(
            "SELECT COUNT(*) AS n FROM messages WHERE idempotency_key = 'order-42' AND session_id = '{sid}'"
        ),
    )
    .await;
    assert_eq!(n, 1, "one row for the key");
    let driver = c.driver_of(&sid).expect("driver");
    assert_eq!(driver.sent_count(&sid), 1, "sent once at the driver");
    assert_eq!(c.driver_of(&other).expect("driver").sent_count(&other), 1);
    c.shutdown().await;
}

#[tokio::test]
async fn idempotent_retries_send_once_sqlite() {
    idempotent_retries(Storage::Sqlite).await;
}

#[tokio::test]
async fn idempotent_retries_send_once_postgres() {
    idempotent_retries(Storage::PostgresRedis).await;
}

/// PostgreSQL's ledger has no foreign key to `messages` (migration 000017):
/// a ledger row stays while its message exists, and the sweeper drops it
/// once the message is gone with its session.
#[tokio::test]
async fn ledger_rows_of_deleted_sessions_are_swept_postgres() {
    let (c, api, token, sid, key) = setup_with_token(Storage::PostgresRedis, Duration::from_secs(120)).await;
    let ids = send_all(&api, &sid, &key, 1).await;
    wait_all_settled(&c, &ids).await;
    let db = &c.cp().state().db.conn;
    db.execute_unprepared(&format!(
        "INSERT INTO message_dispatch (id, session_id, created_at, attempts) VALUES ('{}', '{sid}', now(), 1)",
        ids[0]
    ))
    .await
    .expect("ledger row");
    let ledger = "SELECT COUNT(*) AS n FROM message_dispatch";
    // Several sweeps later the row is still there: its message exists.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(count(&c, ledger).await, 1);
    api.delete(&format!("/api/v1/sessions/{sid}"), Some(&token)).await.expect(200);
    wait_for("the orphaned ledger row to be swept", Duration::from_secs(10), || async {
        (count(&c, ledger).await == 0).then_some(())
    })
    .await;
    c.shutdown().await;
}

/// Sends whose client goes away at every point of their life: before the
/// edge answered, while the control plane inserts, while the worker sends
/// (give-up times spread over twice a whole send's time on this machine).
/// Half through the edge (the HTTP client drops its request), half straight
/// on gRPC (the call is dropped, which resets its HTTP/2 stream). Every
/// accepted row still ends SENT or later within the re-dispatch window, each
/// is sent once at the driver, the tracker drains, and no re-dispatch round
/// finds rows it cannot dispatch.
async fn abandoned_sends_still_end(storage: Storage) {
    const SENDS: u64 = 120;
    let mut w = worker(Duration::from_millis(30));
    // Sends in flight long enough to be abandoned half-way.
    w.simulated.send_latency = Duration::from_millis(40);
    let redispatch_after = Duration::from_millis(1500);
    let c = start(cluster(storage).worker(w).configure(move |c| {
        c.sweep_interval = Duration::from_millis(100);
        c.redispatch_after = redispatch_after;
        c.command_timeout = Duration::from_secs(1);
    }))
    .await;
    let api = Api::new(&c);
    let token = api.register(&format!("abandon-{}@example.com", uuid::Uuid::new_v4().simple())).await;
    let (sid, key) = api.connected_session(&c, &token, "abandon").await;
    let grpc = wagate_proto::v1::message_service_client::MessageServiceClient::new(
        wagate_proto::connect(c.grpc_url()).await.expect("grpc channel"),
    );

    // How long a whole send takes on this machine now (a loaded machine is
    // slower): give-up times are spread over twice that, so clients leave
    // at every stage, and the later half outlive their send.
    let mut whole = Duration::ZERO;
    for i in 0..3 {
        let started = std::time::Instant::now();
        api.send_text(&sid, &key, &format!("warm-up {i}")).await.expect(200);
        whole = whole.max(started.elapsed());
    }
    let spread = u64::try_from(whole.as_millis() * 2).unwrap_or(u64::MAX).max(200);
    let sends = (0..SENDS).map(|i| {
        let give_up = Duration::from_millis((i * 37) % spread);
        let (api, sid, key, mut grpc) = (api.clone(), sid.clone(), key.clone(), grpc.clone());
        async move {
            if i % 2 == 0 {
                let _ = tokio::time::timeout(give_up, api.send_text(&sid, &key, &format!("rest {i}"))).await;
            } else {
                let mut req = tonic::Request::new(wagate_proto::v1::SendRequest {
                    session_id: sid,
                    to: "6281234567890".into(),
                    content: Some(wagate_proto::v1::MessageContent {
                        r#type: wagate_proto::v1::MessageType::Text as i32,
                        text: format!("grpc {i}"),
                        ..Default::default()
                    }),
                });
                req.metadata_mut().insert(wagate_proto::metadata::API_KEY, key.parse().expect("ascii key"));
                let _ = tokio::time::timeout(give_up, grpc.send(req)).await;
            }
        }
    });
    join_all(sends).await;
    let started = std::time::Instant::now();

    let accepted = count(&c, "SELECT COUNT(*) AS n FROM messages WHERE direction = 'OUTBOUND'").await;
    assert!(accepted > 3, "some sends (besides the 3 warm-ups) were accepted before their client left");
    wait_for("no PENDING send left", redispatch_after * 3, || async {
        (count(&c, "SELECT COUNT(*) AS n FROM messages WHERE status = 'PENDING'").await == 0).then_some(())
    })
    .await;
    let settled_in = started.elapsed();
    let accepted = count(&c, "SELECT COUNT(*) AS n FROM messages WHERE direction = 'OUTBOUND'").await;
    assert_eq!(
        count(&c, "SELECT COUNT(*) AS n FROM messages WHERE status IN ('SENT','DELIVERED','READ')").await,
        accepted,
        "every accepted send ended SENT or later (none FAILED in a healthy system)"
    );
    wait_for("dispatch ledger empty", Duration::from_secs(5), || async {
        (count(&c, "SELECT COUNT(*) AS n FROM message_dispatch").await == 0).then_some(())
    })
    .await;
    wait_for("tracker drained", Duration::from_secs(5), || async {
        c.cp().state().send_tracker.is_empty().then_some(())
    })
    .await;
    // Sweeps keep running over the settled rows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = c.cp().state();
    assert_eq!(state.redispatches.empty_rounds(), 0, "no re-dispatch round that dispatched nothing");
    let (calls, duplicates) = driver_counts(&c);
    assert_eq!(duplicates, 0, "no message sent twice");
    assert_eq!(calls, accepted as u64, "each accepted send reached the phone once");
    eprintln!(
        "{storage:?}: {SENDS} sends abandoned at 0-{spread} ms, {accepted} accepted, all settled {settled_in:?} \
         after the last client left, {} re-dispatch rounds",
        state.redispatches.rounds()
    );
    c.shutdown().await;
}

#[tokio::test]
async fn abandoned_sends_still_end_sqlite() {
    abandoned_sends_still_end(Storage::Sqlite).await;
}

#[tokio::test]
async fn abandoned_sends_still_end_postgres() {
    abandoned_sends_still_end(Storage::PostgresRedis).await;
}

/// Command results never wait behind event writes: while the worker floods
/// the replica with inbound messages (each a fenced database write), sends
/// answer in command time, before the storm is applied; then every event of
/// the storm is applied, none lost.
async fn sends_during_an_event_storm(storage: Storage) {
    const STORM: i64 = 3000;
    const SENDS: usize = 20;
    let (c, api, sid, key) = setup(storage, Duration::from_millis(30)).await;
    send_all(&api, &sid, &key, 3).await;
    let driver = c.driver_of(&sid).cloned().expect("driver");
    let storm_sid = sid.clone();
    let storm = tokio::spawn(async move {
        let mut injected = 0;
        while injected < STORM {
            if driver.inject_inbound(&storm_sid, "6281111111111", &format!("storm {injected}")) {
                injected += 1;
            } else {
                // The worker's event queue is full: the storm waits for room.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let inbound = "SELECT COUNT(*) AS n FROM messages WHERE direction = 'INBOUND'";
    // The storm is under way.
    wait_for("storm under way", Duration::from_secs(10), || async {
        (count(&c, inbound).await > 50).then_some(())
    })
    .await;
    let mut rtts = Vec::with_capacity(SENDS);
    for i in 0..SENDS {
        let started = std::time::Instant::now();
        let r = api.send_text(&sid, &key, &format!("during storm {i}")).await;
        r.expect(200);
        assert_eq!(r.data()["status"], "SENT", "{}", r.body);
        rtts.push(started.elapsed());
    }
    let applied = count(&c, inbound).await;
    rtts.sort();
    let (p50, max) = (rtts[SENDS / 2], rtts[SENDS - 1]);
    eprintln!(
        "{storage:?}: send during a {STORM}-event storm: p50 {p50:?}, max {max:?}, {applied} events applied then"
    );
    assert!(
        applied < STORM,
        "the sends ended while the storm was still being applied ({applied} of {STORM})"
    );
    assert!(max < Duration::from_secs(1), "a send waited behind the storm: max {max:?}");
    storm.await.expect("storm");
    wait_for("the whole storm applied", Duration::from_secs(120), || async {
        (count(&c, inbound).await == STORM).then_some(())
    })
    .await;
    c.shutdown().await;
}

#[tokio::test]
async fn sends_during_an_event_storm_sqlite() {
    sends_during_an_event_storm(Storage::Sqlite).await;
}

#[tokio::test]
async fn sends_during_an_event_storm_postgres() {
    sends_during_an_event_storm(Storage::PostgresRedis).await;
}
