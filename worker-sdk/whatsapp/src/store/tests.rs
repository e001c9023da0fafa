//! The store against the trait contract (as upstream's `InMemoryBackend`
//! behaves) and the snapshot round trip.

use super::*;

fn is_backend<T: whatsapp_rust::wacore::store::traits::Backend>() {}

#[test]
fn the_custody_store_is_a_backend() {
    is_backend::<CustodyStore>();
}

async fn filled() -> CustodyStore {
    let s = CustodyStore::new();
    s.create().await.unwrap();
    let mut device = s.load().await.unwrap().unwrap();
    device.pn = Some("628111:1@s.whatsapp.net".parse().unwrap());
    device.push_name = "wagate".into();
    s.save(&device).await.unwrap();
    s.put_identity("628222.0:0", [9; 32]).await.unwrap();
    s.put_sessions_batch(&[(Arc::from("628222.0:0"), Bytes::from_static(b"session-a"))]).await.unwrap();
    let prekeys: Vec<(u32, Bytes)> = (1..=812).map(|i| (i, Bytes::from(vec![i as u8; 70]))).collect();
    s.store_prekeys_batch(&prekeys, false).await.unwrap();
    s.mark_prekeys_uploaded(&[1, 2, 9999]).await.unwrap();
    s.store_signed_prekey(1, b"signed").await.unwrap();
    s.put_sender_key("group@g.us::628111.0:1", b"sk").await.unwrap();
    s.set_sync_key(
        b"\x00\x01",
        AppStateSyncKey { key_data: vec![5; 32], fingerprint: vec![1], timestamp: 7 },
    )
    .await
    .unwrap();
    s.put_mutation_macs(
        "regular",
        3,
        &[AppStateMutationMAC { index_mac: vec![1; 32], value_mac: vec![2; 32] }],
    )
    .await
    .unwrap();
    s.set_sender_key_status("group@g.us", &[("628222:0@s.whatsapp.net", true)]).await.unwrap();
    s.put_lid_mapping(&LidPnMappingEntry {
        lid: "9000002".into(),
        phone_number: "628222".into(),
        created_at: 1,
        updated_at: 1,
        learning_source: "usync".into(),
    })
    .await
    .unwrap();
    s.put_tc_token(
        "628222@s.whatsapp.net",
        &TcTokenEntry { token: vec![3], token_timestamp: 5, sender_timestamp: None },
    )
    .await
    .unwrap();
    s
}

#[tokio::test]
async fn a_snapshot_restores_every_durable_part() {
    let s = filled().await;
    let bytes = s.snapshot().unwrap();
    let r = CustodyStore::restore(&bytes).unwrap();

    let device = r.load().await.unwrap().unwrap();
    assert_eq!(device.pn.as_ref().map(|j| j.user.to_string()).as_deref(), Some("628111"));
    assert_eq!(r.phone_number().as_deref(), Some("628111"));
    assert!(r.is_paired());
    let before = s.load().await.unwrap().unwrap();
    assert_eq!(serde_json::to_string(&device).unwrap(), serde_json::to_string(&before).unwrap());
    assert_eq!(r.load_identity("628222.0:0").await.unwrap(), Some([9; 32]));
    assert_eq!(r.get_session("628222.0:0").await.unwrap().as_deref(), Some(&b"session-a"[..]));
    assert_eq!(r.get_max_prekey_id().await.unwrap(), 812);
    assert_eq!(r.load_prekey(400).await.unwrap().map(|b| b.len()), Some(70));
    assert_eq!(r.lock().prekeys.get(&1).map(|p| p.1), Some(true), "uploaded flag kept");
    assert_eq!(r.lock().prekeys.get(&3).map(|p| p.1), Some(false));
    assert_eq!(r.load_signed_prekey(1).await.unwrap().as_deref(), Some(&b"signed"[..]));
    assert_eq!(r.get_sender_key("group@g.us::628111.0:1").await.unwrap().as_deref(), Some(&b"sk"[..]));
    assert_eq!(r.get_sync_key(b"\x00\x01").await.unwrap().map(|k| k.timestamp), Some(7));
    assert_eq!(r.get_latest_sync_key_id().await.unwrap(), Some(vec![0, 1]));
    assert_eq!(r.get_mutation_mac("regular", &[1; 32]).await.unwrap(), Some(vec![2; 32]));
    assert_eq!(r.get_sender_key_devices("group@g.us").await.unwrap().len(), 1);
    assert_eq!(r.get_pn_mapping("628222").await.unwrap().map(|m| m.lid).as_deref(), Some("9000002"));
    assert_eq!(r.get_tc_token("628222@s.whatsapp.net").await.unwrap().map(|t| t.token), Some(vec![3]));
    // A snapshot of the restored store is the same state.
    assert_eq!(snapshot::decode(&r.snapshot().unwrap()).unwrap().sessions.len(), 1);
}

#[tokio::test]
async fn durable_writes_bump_the_revision_and_cache_writes_do_not() {
    let s = CustodyStore::new();
    let mut rx = s.revisions();
    s.store_sent_message("628222@s.whatsapp.net", "3EB0AA", b"payload").await.unwrap();
    s.save_base_key("628222.0:0", "m1", b"k").await.unwrap();
    assert!(!rx.has_changed().unwrap());
    s.put_session("628222.0:0", b"x").await.unwrap();
    assert!(rx.has_changed().unwrap());
    rx.mark_unchanged();
    // The retry cache is not snapshotted, but it works.
    assert_eq!(
        s.take_sent_message("628222@s.whatsapp.net", "3EB0AA").await.unwrap(),
        Some(b"payload".to_vec())
    );
    let restored = CustodyStore::restore(&s.snapshot().unwrap()).unwrap();
    assert_eq!(restored.take_sent_message("628222@s.whatsapp.net", "3EB0AA").await.unwrap(), None);
}

#[tokio::test]
async fn lid_mappings_keep_their_reverse_index() {
    let s = CustodyStore::new();
    let entry = |pn: &str| LidPnMappingEntry {
        lid: "9000002".into(),
        phone_number: pn.into(),
        created_at: 1,
        updated_at: 1,
        learning_source: "usync".into(),
    };
    s.put_lid_mapping(&entry("628222")).await.unwrap();
    s.put_lid_mapping(&entry("628333")).await.unwrap();
    assert!(s.get_pn_mapping("628222").await.unwrap().is_none(), "the old number no longer maps");
    let r = CustodyStore::restore(&s.snapshot().unwrap()).unwrap();
    assert_eq!(r.get_pn_mapping("628333").await.unwrap().map(|m| m.lid).as_deref(), Some("9000002"));
}

#[tokio::test]
async fn a_wipe_forgets_the_pairing() {
    let s = filled().await;
    assert!(s.is_paired());
    s.wipe();
    assert!(!s.is_paired());
    assert!(!s.exists().await.unwrap());
    let r = CustodyStore::restore(&s.snapshot().unwrap()).unwrap();
    assert!(!r.exists().await.unwrap());
}

#[tokio::test]
async fn a_fresh_account_snapshot_is_small() {
    // 812 prekeys of realistic size (~70 B each, random key material does not compress).
    let s = filled().await;
    let size = s.snapshot().unwrap().len();
    assert!(size < 128 * 1024, "fresh account snapshot is {size} bytes");
}

/// An account with `contacts` actively messaged contacts (1.7 devices each):
/// 812 prekeys of 74 B, a ~480 B Signal session and a 32 B identity per
/// device, a LID mapping and a tc token per contact. Records are random bytes
/// (key material does not compress), so this is an upper bound of the real
/// snapshot.
async fn account(contacts: usize) -> CustodyStore {
    let s = filled().await;
    let prekeys: Vec<(u32, Bytes)> = (1..=812)
        .map(|i| (i, Bytes::from((0..74).map(|_| rand::random::<u8>()).collect::<Vec<u8>>())))
        .collect();
    s.store_prekeys_batch(&prekeys, true).await.unwrap();
    let devices = contacts * 17 / 10;
    let mut sessions = Vec::with_capacity(devices);
    for d in 0..devices {
        let address: Arc<str> = Arc::from(format!("62812{:07}.0:{}", d / 2, d % 2));
        let record: Vec<u8> = (0..480).map(|_| rand::random::<u8>()).collect();
        s.put_identity(&address, rand::random()).await.unwrap();
        sessions.push((address, Bytes::from(record)));
    }
    s.put_sessions_batch(&sessions).await.unwrap();
    for c in 0..contacts {
        s.put_lid_mapping(&LidPnMappingEntry {
            lid: format!("{}", 100_000_000_000_000u64 + c as u64),
            phone_number: format!("62812{c:07}"),
            created_at: 1_700_000_000,
            updated_at: 1_700_000_000,
            learning_source: "usync".into(),
        })
        .await
        .unwrap();
        let token: Vec<u8> = (0..24).map(|_| rand::random::<u8>()).collect();
        s.put_tc_token(
            &format!("62812{c:07}@s.whatsapp.net"),
            &TcTokenEntry { token, token_timestamp: 1_700_000_000, sender_timestamp: Some(1_700_000_000) },
        )
        .await
        .unwrap();
    }
    s
}

/// The figures of README "Connecting real phones" (custody size): printed
/// with `--nocapture`, bounded here so a format change that bloats them fails.
#[tokio::test]
async fn snapshot_sizes_of_realistic_accounts() {
    let mut sizes = Vec::new();
    for contacts in [0, 200, 1_000, 5_000] {
        let s = account(contacts).await;
        let started = std::time::Instant::now();
        let bytes = s.snapshot().unwrap();
        let took = started.elapsed();
        let restored = CustodyStore::restore(&bytes).unwrap();
        assert_eq!(restored.counts(), s.counts());
        println!(
            "custody snapshot: {contacts:>5} contacts → {:>9} bytes (snapshot in {took:?})",
            bytes.len()
        );
        sizes.push(bytes.len());
    }
    assert!(sizes[0] < 100 * 1024, "fresh account: {} bytes", sizes[0]);
    // ~1.7 KB per contact (random bytes: no compression to speak of).
    let per_contact = (sizes[3] - sizes[0]) / 5_000;
    assert!((1_000..3_000).contains(&per_contact), "{per_contact} bytes per contact");
}
