//! Media (issue 24): a send carries its file as multipart or base64; the
//! bytes decide the type, each kind's limit refuses what is larger (413/415
//! naming the limit); the file is served back with the session's key or a
//! signed link (Range, Content-Type, Content-Length), never to another
//! account; on a local folder (SQLite) and on an S3-compatible server
//! (PostgreSQL + Redis + moto).

use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::Digest;
use wagate_testkit::cluster::{Cluster, Storage, WorkerSpec};

use crate::common::*;

const LINK_SECRET: &str = "media-link-secret-for-the-tests-0123456789";
const IMAGE_LIMIT: u64 = 64 * 1024;
const AUDIO_LIMIT: u64 = 32 * 1024;
const VIDEO_LIMIT: u64 = 48 * 1024;
const STICKER_LIMIT: u64 = 8 * 1024;
const DOCUMENT_LIMIT: u64 = 3 * 1024 * 1024;

#[tokio::test]
async fn media_upload_limits_and_download_local_sqlite() {
    media_upload_limits_and_download(Storage::Sqlite).await;
}

#[tokio::test]
async fn media_upload_limits_and_download_s3_postgres() {
    media_upload_limits_and_download(Storage::PostgresRedis).await;
}

/// `len` bytes that start with `magic` (the rest pseudo-random).
fn file(magic: &[u8], len: usize) -> Vec<u8> {
    let mut v = magic.to_vec();
    let mut x: u32 = 0x9e37_79b9;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v.truncate(len);
    v
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
const MP3: &[u8] = b"ID3\x03\0\0\0\0\0\0";
const MP4: &[u8] = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom";
const WEBP: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 ";
const PDF: &[u8] = b"%PDF-1.4\n";

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn sign(media_id: &str, expires: u64) -> String {
    use base64::Engine as _;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, LINK_SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{media_id}.{expires}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
}

async fn send_form(
    api: &Api,
    session: &str,
    key: &str,
    fields: &[(&str, &str)],
    file: Option<(Vec<u8>, &str, &str)>,
) -> Reply {
    let mut form = Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    if let Some((bytes, name, mime)) = file {
        let part = Part::bytes(bytes).file_name(name.to_owned()).mime_str(mime).expect("mime");
        form = form.part("file", part);
    }
    let req = api
        .http
        .post(format!("{}/api/v1/sessions/{session}/send", api.base))
        .header("X-API-Key", key)
        .multipart(form);
    api.raw(req).await
}

/// GET of raw bytes: (status, headers, body).
async fn fetch(
    api: &Api,
    path: &str,
    key: Option<&str>,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = api.http.get(format!("{}{path}", api.base));
    if let Some(k) = key {
        req = req.header("X-API-Key", k);
    }
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let resp = req.send().await.expect("edge answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

fn code_of(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body).map(|v| v["code"].clone()).unwrap_or(Value::Null)
}

async fn media_cluster(storage: Storage) -> Cluster {
    let mut builder = cluster(storage).worker(WorkerSpec::new("w1", 10)).configure(|c| {
        c.media.link_secret = Some(LINK_SECRET.into());
        c.media.limits.image = IMAGE_LIMIT;
        c.media.limits.audio = AUDIO_LIMIT;
        c.media.limits.video = VIDEO_LIMIT;
        c.media.limits.sticker = STICKER_LIMIT;
        c.media.limits.document = DOCUMENT_LIMIT;
    });
    if storage == Storage::PostgresRedis {
        builder = builder.s3_media();
    }
    start(builder).await
}

async fn media_upload_limits_and_download(storage: Storage) {
    let cl = media_cluster(storage).await;
    let api = Api::new(&cl);
    let alice = api.register(&format!("alice-media-{}@example.com", storage_name(storage))).await;
    let bob = api.register(&format!("bob-media-{}@example.com", storage_name(storage))).await;
    let (mine, key) = api.connected_session(&cl, &alice, "mine").await;
    let (_theirs, their_key) = api.connected_session(&cl, &bob, "theirs").await;

    // Multipart: the bytes say PNG whatever the part declares.
    let png = file(PNG, 20_000);
    let r = send_form(
        &api,
        &mine,
        &key,
        &[("to", "+62 812-3456-7890"), ("type", "image"), ("caption", "a cat")],
        Some((png.clone(), "cat.txt", "text/plain")),
    )
    .await;
    r.expect(200);
    assert_eq!(r.data()["status"], json!("SENT"), "{}", r.body);
    let media = r.data()["media"].clone();
    assert_eq!(media["mimeType"], json!("image/png"), "{}", r.body);
    assert_eq!(media["size"], json!(png.len()));
    assert_eq!(media["sha256"], json!(sha(&png)));
    let media_id = media["id"].as_str().unwrap().to_owned();
    let url = media["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/api/v1/media/{media_id}"));
    let message_id = r.data()["messageId"].as_str().unwrap().to_owned();

    // Served back with the session's key: type, length, bytes.
    let (status, headers, body) = fetch(&api, &url, Some(&key), None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["content-length"], png.len().to_string().as_str());
    assert_eq!(headers["accept-ranges"], "bytes");
    assert!(body == png, "downloaded bytes differ");
    // Ranges.
    let (status, headers, body) = fetch(&api, &url, Some(&key), Some("bytes=2-9")).await;
    assert_eq!(status, 206);
    assert_eq!(headers["content-range"], format!("bytes 2-9/{}", png.len()).as_str());
    assert_eq!(body, png[2..10].to_vec());
    let (status, _, body) = fetch(&api, &url, Some(&key), Some("bytes=-4")).await;
    assert_eq!((status, body), (206, png[png.len() - 4..].to_vec()));
    let (status, _, body) = fetch(&api, &url, Some(&key), Some(&format!("bytes={}-", png.len()))).await;
    assert_eq!((status, code_of(&body)), (416, json!("RANGE_NOT_SATISFIABLE")));

    // The message history names the media.
    let r = api.get(&format!("/api/v1/sessions/{mine}/messages/{message_id}"), Some(&key)).await;
    assert_eq!(r.expect(200).data()["media"]["id"], json!(media_id), "{}", r.body);

    // Signed links: no credential needed; expired or altered → 403.
    let expires = chrono::Utc::now().timestamp() as u64 + 600;
    let link = format!("{url}?expires={expires}&sig={}", sign(&media_id, expires));
    let (status, _, body) = fetch(&api, &link, None, None).await;
    assert_eq!((status, body.len()), (200, png.len()), "{}", String::from_utf8_lossy(&body));
    let past = chrono::Utc::now().timestamp() as u64 - 1;
    let (status, _, body) =
        fetch(&api, &format!("{url}?expires={past}&sig={}", sign(&media_id, past)), None, None).await;
    assert_eq!((status, code_of(&body)), (403, json!("FORBIDDEN")));
    let (status, _, _) =
        fetch(&api, &format!("{url}?expires={}&sig={}", expires + 1, sign(&media_id, expires)), None, None)
            .await;
    assert_eq!(status, 403, "altered expiry");
    let mut bad = sign(&media_id, expires);
    bad.replace_range(0..1, if bad.starts_with('A') { "B" } else { "A" });
    let (status, _, _) = fetch(&api, &format!("{url}?expires={expires}&sig={bad}"), None, None).await;
    assert_eq!(status, 403, "altered signature");
    // The link the send answered with works too.
    let given = media["signedUrl"].as_str().unwrap().to_owned();
    assert_eq!(fetch(&api, &given, None, None).await.0, 200);
    // No credential and no link: 401.
    assert_eq!(fetch(&api, &url, None, None).await.0, 401);

    // Another account: as if it did not exist (its key and its owner's token);
    // the owner's token reads it.
    let (status, _, body) = fetch(&api, &url, Some(&their_key), None).await;
    assert_eq!((status, code_of(&body)), (404, json!("NOT_FOUND")));
    let r = api.raw(api.http.get(format!("{}{url}", api.base)).bearer_auth(&bob)).await;
    r.expect_code(404, "NOT_FOUND");
    let resp = api.http.get(format!("{}{url}", api.base)).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // A send naming another account's media cannot exist either: the form
    // field `mediaId` is not an input (only an uploaded file sets it).

    // Base64 in JSON: a PDF document (2.5 MB: a JSON body of 3.3 MB, above
    // the other routes' limit, within the send route's own).
    use base64::Engine as _;
    let pdf = file(PDF, 2_500_000);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let r = api
        .raw(api.http.post(format!("{}/api/v1/sessions/{mine}/send", api.base)).header("X-API-Key", &key).json(&json!({
            "to": "+62 812-3456-7890", "type": "document", "mediaBase64": b64, "filename": "invoice.pdf"
        })))
        .await;
    r.expect(200);
    assert_eq!(r.data()["status"], json!("SENT"), "{}", r.body);
    assert_eq!(r.data()["media"]["mimeType"], json!("application/pdf"), "{}", r.body);
    assert_eq!(r.data()["media"]["filename"], json!("invoice.pdf"));
    let (status, headers, body) =
        fetch(&api, r.data()["media"]["url"].as_str().unwrap(), Some(&key), None).await;
    assert_eq!((status, body == pdf), (200, true));
    assert!(headers["content-disposition"].to_str().unwrap().contains("invoice.pdf"));
    // Not base64: 400 naming the field.
    let r = api
        .raw(
            api.http
                .post(format!("{}/api/v1/sessions/{mine}/send", api.base))
                .header("X-API-Key", &key)
                .json(&json!({
                    "to": "+62 812-3456-7890", "type": "image", "mediaBase64": "%%%"
                })),
        )
        .await;
    r.expect_code(400, "VALIDATION_ERROR");
    assert_eq!(r.body["field"], json!("mediaBase64"));

    // Sniffing: text sent as an image, or a PNG as a sticker → 415 naming what is accepted.
    let r = send_form(
        &api,
        &mine,
        &key,
        &[("to", "6281234567890"), ("type", "image")],
        Some((b"just some text".to_vec(), "x.png", "image/png")),
    )
    .await;
    r.expect_code(415, "UNSUPPORTED_MEDIA_TYPE");
    assert!(r.body["error"].as_str().unwrap().contains("image/jpeg, image/png"), "{}", r.body);
    let r = send_form(
        &api,
        &mine,
        &key,
        &[("to", "6281234567890"), ("type", "sticker")],
        Some((png.clone(), "s.webp", "image/webp")),
    )
    .await;
    r.expect_code(415, "UNSUPPORTED_MEDIA_TYPE");
    assert!(r.body["error"].as_str().unwrap().contains("image/webp"), "{}", r.body);

    // Each kind's limit: one byte above → 413 naming the limit; at the limit → sent.
    for (kind, magic, limit, name) in [
        ("image", PNG, IMAGE_LIMIT, "64 KB"),
        ("audio", MP3, AUDIO_LIMIT, "32 KB"),
        ("video", MP4, VIDEO_LIMIT, "48 KB"),
        ("sticker", WEBP, STICKER_LIMIT, "8 KB"),
        ("document", PDF, DOCUMENT_LIMIT, "3 MB"),
    ] {
        let big = file(magic, limit as usize + 1);
        let r = send_form(
            &api,
            &mine,
            &key,
            &[("to", "6281234567890"), ("type", kind)],
            Some((big, "f", "application/octet-stream")),
        )
        .await;
        r.expect_code(413, "PAYLOAD_TOO_LARGE");
        let msg = r.body["error"].as_str().unwrap();
        assert!(msg.contains(kind) && msg.contains(name), "{kind}: {msg}");
        let ok = file(magic, limit as usize);
        let r = send_form(
            &api,
            &mine,
            &key,
            &[("to", "6281234567890"), ("type", kind)],
            Some((ok.clone(), "f", "application/octet-stream")),
        )
        .await;
        r.expect(200);
        assert_eq!(r.data()["status"], json!("SENT"), "{kind}: {}", r.body);
        assert_eq!(r.data()["media"]["size"], json!(limit), "{kind}");
        assert_eq!(r.data()["media"]["sha256"], json!(sha(&ok)), "{kind}");
        if kind == "document" {
            // The largest one (3 MiB, several store parts) comes back whole.
            let (status, _, body) =
                fetch(&api, r.data()["media"]["url"].as_str().unwrap(), Some(&key), None).await;
            assert_eq!(status, 200);
            assert!(sha(&body) == sha(&ok), "large document differs after the round trip");
        }
    }

    // Without `type`, the part's declared type picks the kind; the same
    // bytes again are another media row over the same stored object.
    let r = send_form(
        &api,
        &mine,
        &key,
        &[("to", "6281234567890")],
        Some((png.clone(), "again.png", "image/png")),
    )
    .await;
    r.expect(200);
    let again = r.data()["media"].clone();
    assert_ne!(again["id"], json!(media_id));
    assert_eq!(again["sha256"], json!(sha(&png)));
    let (status, _, body) = fetch(&api, again["url"].as_str().unwrap(), Some(&key), None).await;
    assert_eq!((status, body == png), (200, true));

    // A form without a file or a URL for a media type: 400 naming mediaUrl.
    let r = send_form(&api, &mine, &key, &[("to", "6281234567890"), ("type", "image")], None).await;
    r.expect_code(400, "VALIDATION_ERROR");

    // Retention: an expired media row and its object are deleted by the sweep.
    let state = cl.cp().state();
    let later = chrono::Utc::now() + chrono::Duration::days(31);
    let deleted = wagate_control_plane::media::retention::sweep_at(state, later).await.expect("sweep");
    assert!(deleted >= 2, "{deleted}");
    assert_eq!(fetch(&api, &url, Some(&key), None).await.0, 404);

    // Bytes stored are counted in usage.
    tokio::time::sleep(Duration::from_millis(10)).await;
    state.usage.flush(&state.db).await.expect("flush");
    let r = api.get("/api/v1/me/usage", Some(&alice)).await;
    assert!(r.expect(200).body.to_string().contains("media.bytes_stored"), "{}", r.body);
    cl.shutdown().await;
}

fn storage_name(s: Storage) -> &'static str {
    match s {
        Storage::Sqlite => "sqlite",
        Storage::PostgresRedis => "pg",
    }
}

#[tokio::test]
async fn inbound_media_round_trip_through_echo_local_sqlite() {
    inbound_media_round_trip_through_echo(Storage::Sqlite).await;
}

#[tokio::test]
async fn inbound_media_round_trip_through_echo_s3_postgres() {
    inbound_media_round_trip_through_echo(Storage::PostgresRedis).await;
}

/// The simulated phone answers an image with a real PNG of its own: the
/// worker streams it to the control plane (worker-authenticated, fenced on
/// the session's generation), the inbound message names it, and the
/// customer's file downloads with the session's key.
async fn inbound_media_round_trip_through_echo(storage: Storage) {
    let mut spec = WorkerSpec::new("w1", 10);
    spec.simulated.echo_after = Some(Duration::from_millis(50));
    let mut builder = cluster(storage).worker(spec);
    if storage == Storage::PostgresRedis {
        builder = builder.s3_media();
    }
    let cl = start(builder).await;
    let api = Api::new(&cl);
    let alice = api.register(&format!("alice-inbound-{}@example.com", storage_name(storage))).await;
    let (mine, key) = api.connected_session(&cl, &alice, "mine").await;
    let png = file(PNG, 1000);
    let before = cl.workers[0].driver.media_bytes_fetched();
    send_form(
        &api,
        &mine,
        &key,
        &[("to", "6281234567890"), ("type", "image")],
        Some((png, "p.png", "image/png")),
    )
    .await
    .expect(200);
    // The worker fetched the file it sent (MediaService.Download, worker-authenticated).
    assert_eq!(cl.workers[0].driver.media_bytes_fetched() - before, 1000);

    let path = format!("/api/v1/sessions/{mine}/messages?direction=INBOUND");
    let inbound = wait_for("the echoed image", Duration::from_secs(10), || async {
        let r = api.get(&path, Some(&key)).await;
        r.data()["messages"].as_array().and_then(|m| m.first().cloned())
    })
    .await;
    assert_eq!(inbound["type"], json!("IMAGE"), "{inbound}");
    let media = &inbound["media"];
    assert_eq!(media["mimeType"], json!("image/png"), "{inbound}");
    let url = media["url"].as_str().expect("media url");
    let (status, headers, body) = fetch(&api, url, Some(&key), None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(body, wagate_worker_sdk::simulated::echo_png(), "the file the phone received");
    assert_eq!(media["sha256"], json!(sha(&body)));
    assert_eq!(media["size"], json!(body.len()));
    // Another account cannot read the customer's file.
    let bob = api.register(&format!("bob-inbound-{}@example.com", storage_name(storage))).await;
    let r = api.raw(api.http.get(format!("{}{url}", api.base)).bearer_auth(&bob)).await;
    r.expect_code(404, "NOT_FOUND");
    cl.shutdown().await;
}
