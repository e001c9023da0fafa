//! `CustodyStore`: whatsapp-rust's `Backend` (every store trait it needs) kept
//! in memory, with the state that must survive a move to another worker
//! (device keys, Signal identities, sessions, prekeys, sender keys, app-state
//! keys, LID mappings, tc tokens) exportable as a custody snapshot
//! ([`snapshot`]) and restorable from one.
//!
//! Caches the library rebuilds by itself after a move (device lists, base
//! keys, group metadata, the 2-hour retry cache of sent messages, message
//! secrets) stay in an upstream `InMemoryBackend` and are not snapshotted.
//! Every write to the durable part bumps a revision that the session's flusher
//! watches ([`CustodyStore::revisions`]).

pub mod snapshot;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry, MsgSecretEntry,
    MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore, SignalStore, TcTokenEntry,
};
use whatsapp_rust::wacore::store::{Device, InMemoryBackend};

use snapshot::{CustodyState, KeyedBytes, MutationMacRow, PreKeyRow, SnapshotError};

/// The small protocol maps, snapshotted as one JSON document.
#[derive(Default, Serialize, Deserialize)]
struct ProtocolMaps {
    /// hex(key id) → key.
    sync_keys: HashMap<String, AppStateSyncKey>,
    latest_sync_key_id: Option<Vec<u8>>,
    versions: HashMap<String, HashState>,
    /// group → (device → has our sender key).
    sender_key_devices: HashMap<String, HashMap<String, bool>>,
    /// lid → mapping.
    lid_mappings: HashMap<String, LidPnMappingEntry>,
    tc_tokens: HashMap<String, TcTokenEntry>,
    /// phone → lid (rebuilt from `lid_mappings` on restore).
    #[serde(skip)]
    pn_to_lid: HashMap<String, String>,
}

/// The snapshotted state.
#[derive(Default)]
struct Durable {
    device: Option<Device>,
    identities: HashMap<String, [u8; 32]>,
    sessions: HashMap<String, Bytes>,
    prekeys: BTreeMap<u32, (Bytes, bool)>,
    signed_prekeys: BTreeMap<u32, Vec<u8>>,
    sender_keys: HashMap<String, Vec<u8>>,
    mutation_macs: HashMap<(String, Vec<u8>), Vec<u8>>,
    protocol: ProtocolMaps,
}

/// A session's whatsapp-rust store whose durable part can be snapshotted.
pub struct CustodyStore {
    durable: Mutex<Durable>,
    cache: InMemoryBackend,
    revision: watch::Sender<u64>,
}

impl Default for CustodyStore {
    fn default() -> Self {
        Self::new()
    }
}

fn serde_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Serialization(Box::new(e))
}

impl CustodyStore {
    /// An empty store: the session has never been paired.
    pub fn new() -> Self {
        Self {
            durable: Mutex::new(Durable::default()),
            cache: InMemoryBackend::new(),
            revision: watch::channel(0).0,
        }
    }

    /// A store filled from a custody snapshot.
    pub fn restore(data: &[u8]) -> std::result::Result<Self, SnapshotError> {
        let state = snapshot::decode(data)?;
        let corrupt = |e: serde_json::Error| SnapshotError::Corrupt(e.to_string());
        let device = if state.device_json.is_empty() {
            None
        } else {
            Some(serde_json::from_str::<Device>(&state.device_json).map_err(corrupt)?)
        };
        let mut protocol: ProtocolMaps = if state.protocol_json.is_empty() {
            ProtocolMaps::default()
        } else {
            serde_json::from_str(&state.protocol_json).map_err(corrupt)?
        };
        protocol.pn_to_lid =
            protocol.lid_mappings.values().map(|m| (m.phone_number.clone(), m.lid.clone())).collect();
        let mut identities = HashMap::with_capacity(state.identities.len());
        for row in state.identities {
            let key: [u8; 32] =
                row.value.as_slice().try_into().map_err(|_| {
                    SnapshotError::Corrupt(format!("identity of {} is not 32 bytes", row.key))
                })?;
            identities.insert(row.key, key);
        }
        let durable = Durable {
            device,
            identities,
            sessions: state.sessions.into_iter().map(|r| (r.key, Bytes::from(r.value))).collect(),
            prekeys: state.prekeys.into_iter().map(|r| (r.id, (Bytes::from(r.record), r.uploaded))).collect(),
            signed_prekeys: state.signed_prekeys.into_iter().map(|r| (r.id, r.record)).collect(),
            sender_keys: state.sender_keys.into_iter().map(|r| (r.key, r.value)).collect(),
            mutation_macs: state
                .mutation_macs
                .into_iter()
                .map(|r| ((r.collection, r.index_mac), r.value_mac))
                .collect(),
            protocol,
        };
        Ok(Self {
            durable: Mutex::new(durable),
            cache: InMemoryBackend::new(),
            revision: watch::channel(0).0,
        })
    }

    /// The durable state as a custody snapshot (compressed, versioned).
    pub fn snapshot(&self) -> std::result::Result<Vec<u8>, StoreError> {
        let d = self.lock();
        let device_json = match &d.device {
            Some(device) => serde_json::to_string(device).map_err(serde_error)?,
            None => String::new(),
        };
        let state = CustodyState {
            device_json,
            identities: d
                .identities
                .iter()
                .map(|(k, v)| KeyedBytes { key: k.clone(), value: v.to_vec() })
                .collect(),
            sessions: d
                .sessions
                .iter()
                .map(|(k, v)| KeyedBytes { key: k.clone(), value: v.to_vec() })
                .collect(),
            prekeys: d
                .prekeys
                .iter()
                .map(|(id, (record, uploaded))| PreKeyRow {
                    id: *id,
                    record: record.to_vec(),
                    uploaded: *uploaded,
                })
                .collect(),
            signed_prekeys: d
                .signed_prekeys
                .iter()
                .map(|(id, record)| PreKeyRow { id: *id, record: record.clone(), uploaded: true })
                .collect(),
            sender_keys: d
                .sender_keys
                .iter()
                .map(|(k, v)| KeyedBytes { key: k.clone(), value: v.clone() })
                .collect(),
            mutation_macs: d
                .mutation_macs
                .iter()
                .map(|((c, i), v)| MutationMacRow {
                    collection: c.clone(),
                    index_mac: i.clone(),
                    value_mac: v.clone(),
                })
                .collect(),
            protocol_json: serde_json::to_string(&d.protocol).map_err(serde_error)?,
        };
        drop(d);
        Ok(snapshot::encode(&state))
    }

    /// Forgets everything (the session was logged out).
    pub fn wipe(&self) {
        *self.lock() = Durable::default();
        self.touch();
    }

    /// Whether the store holds a paired device (it logs in instead of pairing).
    pub fn is_paired(&self) -> bool {
        self.lock().device.as_ref().is_some_and(|d| d.pn.is_some())
    }

    /// The device's phone number (digits), once paired.
    pub fn phone_number(&self) -> Option<String> {
        self.lock().device.as_ref().and_then(|d| d.pn.as_ref()).map(|jid| jid.user.to_string())
    }

    /// The device's identity public key (tests: the same device after a move).
    pub fn identity_public_key(&self) -> Option<Vec<u8>> {
        self.lock().device.as_ref().map(|d| d.identity_key.public_key.public_key_bytes().to_vec())
    }

    /// Counts of what the durable part holds: (sessions, prekeys).
    pub fn counts(&self) -> (usize, usize) {
        let d = self.lock();
        (d.sessions.len(), d.prekeys.len())
    }

    /// A receiver of the durable revision: changes on every durable write.
    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// The current durable revision.
    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }

    fn lock(&self) -> MutexGuard<'_, Durable> {
        self.durable.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        self.revision.send_modify(|r| *r = r.wrapping_add(1));
    }

    /// Runs a durable write and bumps the revision.
    fn write<R>(&self, f: impl FnOnce(&mut Durable) -> R) -> R {
        let r = f(&mut self.lock());
        self.touch();
        r
    }
}

#[async_trait]
impl SignalStore for CustodyStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.write(|d| d.identities.insert(address.to_owned(), key));
        Ok(())
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        self.write(|d| {
            for (a, k) in identities {
                d.identities.insert(a.to_string(), *k);
            }
        });
        Ok(())
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        Ok(self.lock().identities.get(address).copied())
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.write(|d| d.identities.remove(address));
        Ok(())
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self.lock().sessions.get(address).cloned())
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.write(|d| d.sessions.insert(address.to_owned(), Bytes::copy_from_slice(session)));
        Ok(())
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.write(|d| {
            for (a, s) in sessions {
                d.sessions.insert(a.to_string(), s.clone());
            }
        });
        Ok(())
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.write(|d| d.sessions.remove(address));
        Ok(())
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        Ok(self.lock().sessions.contains_key(address))
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        fn matches(addr: &str, user: &str) -> bool {
            addr.strip_prefix(user).is_some_and(|rest| rest.starts_with('@') || rest.starts_with(':'))
        }
        let d = self.lock();
        Ok(d.sessions.keys().any(|k| matches(k, user)) || d.identities.keys().any(|k| matches(k, user)))
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.write(|d| d.prekeys.insert(id, (Bytes::copy_from_slice(record), uploaded)));
        Ok(())
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        self.write(|d| {
            for (id, record) in keys {
                d.prekeys.insert(*id, (record.clone(), uploaded));
            }
        });
        Ok(())
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        Ok(self.lock().prekeys.get(&id).map(|(r, _)| r.clone()))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        let d = self.lock();
        Ok(ids.iter().filter_map(|id| d.prekeys.get(id).map(|(r, _)| (*id, r.clone()))).collect())
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        // Only existing rows: a prekey consumed meanwhile is not resurrected.
        self.write(|d| {
            for id in ids {
                if let Some((_, uploaded)) = d.prekeys.get_mut(id) {
                    *uploaded = true;
                }
            }
        });
        Ok(())
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.write(|d| d.prekeys.remove(&id));
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        Ok(self.lock().prekeys.keys().next_back().copied().unwrap_or(0))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.write(|d| d.signed_prekeys.insert(id, record.to_vec()));
        Ok(())
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().signed_prekeys.get(&id).cloned())
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        Ok(self.lock().signed_prekeys.iter().map(|(id, r)| (*id, r.clone())).collect())
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.write(|d| d.signed_prekeys.remove(&id));
        Ok(())
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.write(|d| d.sender_keys.insert(address.to_owned(), record.to_vec()));
        Ok(())
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.write(|d| {
            for (a, r) in sender_keys {
                d.sender_keys.insert(a.to_string(), r.to_vec());
            }
        });
        Ok(())
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().sender_keys.get(address).cloned())
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.write(|d| d.sender_keys.remove(address));
        Ok(())
    }
}

#[async_trait]
impl AppSyncStore for CustodyStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        Ok(self.lock().protocol.sync_keys.get(&hex::encode(key_id)).cloned())
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.write(|d| {
            d.protocol.sync_keys.insert(hex::encode(key_id), key);
            d.protocol.latest_sync_key_id = Some(key_id.to_vec());
        });
        Ok(())
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        Ok(self.lock().protocol.versions.get(name).cloned().unwrap_or_default())
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.write(|d| d.protocol.versions.insert(name.to_owned(), state));
        Ok(())
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        self.write(|d| {
            for m in mutations {
                d.mutation_macs.insert((name.to_owned(), m.index_mac.clone()), m.value_mac.clone());
            }
        });
        Ok(())
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().mutation_macs.get(&(name.to_owned(), index_mac.to_vec())).cloned())
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        self.write(|d| {
            for i in index_macs {
                d.mutation_macs.remove(&(name.to_owned(), i.clone()));
            }
        });
        Ok(())
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.write(|d| d.mutation_macs.retain(|(n, _), _| n != name));
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().protocol.latest_sync_key_id.clone())
    }
}

#[async_trait]
impl ProtocolStore for CustodyStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        Ok(self
            .lock()
            .protocol
            .sender_key_devices
            .get(group_jid)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default())
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        self.write(|d| {
            let map = d.protocol.sender_key_devices.entry(group_jid.to_owned()).or_default();
            for (device, has_key) in entries {
                map.insert((*device).to_owned(), *has_key);
            }
        });
        Ok(())
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.write(|d| d.protocol.sender_key_devices.remove(group_jid));
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        self.write(|d| {
            for group in d.protocol.sender_key_devices.values_mut() {
                group.retain(|jid, _| !device_jids.contains(&jid.as_str()));
            }
        });
        Ok(())
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.write(|d| d.protocol.sender_key_devices.clear());
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        Ok(self.lock().protocol.lid_mappings.get(lid).cloned())
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let d = self.lock();
        Ok(d.protocol.pn_to_lid.get(phone).and_then(|lid| d.protocol.lid_mappings.get(lid)).cloned())
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.write(|d| {
            let p = &mut d.protocol;
            if let Some(old) = p.lid_mappings.get(&entry.lid).filter(|o| o.phone_number != entry.phone_number)
            {
                let old_phone = old.phone_number.clone();
                p.pn_to_lid.remove(&old_phone);
            }
            p.pn_to_lid.insert(entry.phone_number.clone(), entry.lid.clone());
            p.lid_mappings.insert(entry.lid.clone(), entry.clone());
        });
        Ok(())
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        Ok(self.lock().protocol.lid_mappings.values().cloned().collect())
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.cache.save_base_key(address, message_id, base_key).await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        self.cache.has_same_base_key(address, message_id, current_base_key).await
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.cache.delete_base_key(address, message_id).await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.cache.update_device_list(record).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.cache.get_devices(user).await
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.cache.delete_devices(user).await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.cache.get_group_metadata(group_jid).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.cache.put_group_metadata(group_jid, blob).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.cache.delete_group_metadata(group_jid).await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        Ok(self.lock().protocol.tc_tokens.get(jid).cloned())
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.write(|d| d.protocol.tc_tokens.insert(jid.to_owned(), entry.clone()));
        Ok(())
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.write(|d| d.protocol.tc_tokens.remove(jid));
        Ok(())
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        Ok(self.lock().protocol.tc_tokens.keys().cloned().collect())
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let removed = self.write(|d| {
            let before = d.protocol.tc_tokens.len();
            d.protocol.tc_tokens.retain(|_, e| {
                let token_live = !e.token.is_empty() && e.token_timestamp >= token_cutoff;
                let sender_live = e.sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
                token_live || sender_live
            });
            before - d.protocol.tc_tokens.len()
        });
        Ok(u32::try_from(removed).unwrap_or(u32::MAX))
    }

    async fn store_sent_message(&self, chat_jid: &str, message_id: &str, payload: &[u8]) -> Result<()> {
        self.cache.store_sent_message(chat_jid, message_id, payload).await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        self.cache.take_sent_message(chat_jid, message_id).await
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.cache.delete_expired_sent_messages(cutoff_timestamp).await
    }

    async fn store_pending_inbound(&self, chat: &str, sender: &str, id: &str, message: &[u8]) -> Result<()> {
        self.cache.store_pending_inbound(chat, sender, id, message).await
    }

    async fn get_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<Option<Vec<u8>>> {
        self.cache.get_pending_inbound(chat, sender, id).await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.cache.delete_pending_inbound(chat, sender, id).await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.cache.delete_expired_pending_inbound(cutoff_timestamp).await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        self.cache.store_pending_inbound_batch(rows).await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        self.cache.delete_pending_inbound_batch(keys).await
    }
}

#[async_trait]
impl MsgSecretStore for CustodyStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        self.cache.put_msg_secrets(entries).await
    }

    async fn get_msg_secret(&self, chat: &str, sender: &str, msg_id: &str) -> Result<Option<Vec<u8>>> {
        self.cache.get_msg_secret(chat, sender, msg_id).await
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        self.cache.get_msg_secret_with_ts(chat, sender, msg_id).await
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.cache.delete_expired_msg_secrets(cutoff_timestamp).await
    }
}

#[async_trait]
impl DeviceStore for CustodyStore {
    async fn save(&self, device: &Device) -> Result<()> {
        self.write(|d| d.device = Some(device.clone()));
        Ok(())
    }

    async fn load(&self) -> Result<Option<Device>> {
        Ok(self.lock().device.clone())
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.lock().device.is_some())
    }

    async fn create(&self) -> Result<i32> {
        self.write(|d| {
            if d.device.is_none() {
                d.device = Some(Device::new());
            }
        });
        // One device per store: its id is always 1.
        Ok(1)
    }
}

#[cfg(test)]
mod tests;
