//! The custody snapshot format: what of a session's WhatsApp state leaves the
//! worker (in `AuthStateSnapshot.data`) and comes back in
//! `StartSession.auth_state`.
//!
//! Layout: `b"WGAS"`, a big-endian `u16` format version, one compression byte
//! (`0` none, `1` deflate), then a protobuf `CustodyState`. The device (keys,
//! phone number, ADV account) travels as serde JSON, which survives library
//! upgrades that add fields; Signal records are the library's own opaque bytes.

use prost::Message;
use std::io::{Read, Write};

/// The first four bytes of every snapshot.
pub const MAGIC: &[u8; 4] = b"WGAS";
/// The format this build writes (and the newest it reads).
pub const FORMAT_VERSION: u16 = 1;
const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_DEFLATE: u8 = 1;
/// A restored snapshot inflates to at most this much (a corrupt or hostile
/// blob must not exhaust memory).
pub const MAX_INFLATED_BYTES: u64 = 256 * 1024 * 1024;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a wagate WhatsApp snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot format {0} is newer than this worker understands ({FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    #[error("unknown compression {0}")]
    UnknownCompression(u8),
    #[error("snapshot inflates beyond {MAX_INFLATED_BYTES} bytes")]
    TooLarge,
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
}

/// A `(key, bytes)` row: a Signal address with its identity, session or sender key.
#[derive(Clone, PartialEq, Message)]
pub struct KeyedBytes {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// A one-time or signed prekey record.
#[derive(Clone, PartialEq, Message)]
pub struct PreKeyRow {
    #[prost(uint32, tag = "1")]
    pub id: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub record: Vec<u8>,
    #[prost(bool, tag = "3")]
    pub uploaded: bool,
}

/// One app-state mutation MAC.
#[derive(Clone, PartialEq, Message)]
pub struct MutationMacRow {
    #[prost(string, tag = "1")]
    pub collection: String,
    #[prost(bytes = "vec", tag = "2")]
    pub index_mac: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub value_mac: Vec<u8>,
}

/// Everything a session needs to log in again elsewhere without a new QR.
#[derive(Clone, PartialEq, Message)]
pub struct CustodyState {
    /// serde JSON of `wacore::store::Device` (empty: never created).
    #[prost(string, tag = "1")]
    pub device_json: String,
    #[prost(message, repeated, tag = "2")]
    pub identities: Vec<KeyedBytes>,
    #[prost(message, repeated, tag = "3")]
    pub sessions: Vec<KeyedBytes>,
    #[prost(message, repeated, tag = "4")]
    pub prekeys: Vec<PreKeyRow>,
    #[prost(message, repeated, tag = "5")]
    pub signed_prekeys: Vec<PreKeyRow>,
    #[prost(message, repeated, tag = "6")]
    pub sender_keys: Vec<KeyedBytes>,
    #[prost(message, repeated, tag = "7")]
    pub mutation_macs: Vec<MutationMacRow>,
    /// serde JSON of the small protocol maps (app-state keys and versions,
    /// sender-key device status, LID mappings, tc tokens).
    #[prost(string, tag = "8")]
    pub protocol_json: String,
}

/// Encodes `state` as a snapshot (deflated).
pub fn encode(state: &CustodyState) -> Vec<u8> {
    let raw = state.encode_to_vec();
    let mut out = Vec::with_capacity(raw.len() / 2 + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.push(COMPRESSION_DEFLATE);
    let mut z = flate2::write::DeflateEncoder::new(out, flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(&raw);
    z.finish().unwrap_or_default()
}

/// Decodes a snapshot written by [`encode`] (this or an older format).
pub fn decode(data: &[u8]) -> Result<CustodyState, SnapshotError> {
    if data.len() < 7 || &data[..4] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = u16::from_be_bytes([data[4], data[5]]);
    if version == 0 || version > FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    let body = &data[7..];
    let raw = match data[6] {
        COMPRESSION_NONE => body.to_vec(),
        COMPRESSION_DEFLATE => {
            let mut raw = Vec::new();
            let mut z = flate2::read::DeflateDecoder::new(body).take(MAX_INFLATED_BYTES + 1);
            z.read_to_end(&mut raw).map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
            if raw.len() as u64 > MAX_INFLATED_BYTES {
                return Err(SnapshotError::TooLarge);
            }
            raw
        }
        other => return Err(SnapshotError::UnknownCompression(other)),
    };
    CustodyState::decode(raw.as_slice()).map_err(|e| SnapshotError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CustodyState {
        CustodyState {
            device_json: "{\"pn\":null}".into(),
            sessions: vec![KeyedBytes { key: "628111.0:1".into(), value: vec![7; 400] }],
            prekeys: vec![PreKeyRow { id: 3, record: vec![1, 2, 3], uploaded: true }],
            ..Default::default()
        }
    }

    #[test]
    fn a_snapshot_round_trips() {
        let bytes = encode(&sample());
        assert_eq!(&bytes[..4], MAGIC);
        assert_eq!(decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn an_uncompressed_snapshot_is_read_too() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        bytes.push(COMPRESSION_NONE);
        bytes.extend_from_slice(&sample().encode_to_vec());
        assert_eq!(decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn foreign_newer_and_corrupt_blobs_are_refused() {
        assert!(matches!(decode(b"sim:{}"), Err(SnapshotError::BadMagic)));
        let mut newer = encode(&sample());
        newer[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_be_bytes());
        assert!(matches!(decode(&newer), Err(SnapshotError::UnsupportedVersion(_))));
        let mut odd = encode(&sample());
        odd[6] = 9;
        assert!(matches!(decode(&odd), Err(SnapshotError::UnknownCompression(9))));
        let mut cut = encode(&sample());
        cut.truncate(cut.len() - 3);
        assert!(decode(&cut).is_err());
    }
}
