//! State snapshots: encoding, checks, and the two stores' common format.
//!
//! A snapshot is the engine's whole state ([`EngineImage`]) plus the
//! marketplace it was taken under and the [`JournalPosition`] it covers:
//! restore loads it and replays only the journal after that position.
//!
//! ## Format
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | magic `LDXSNAP\0` |
//! | 2 | format version, `3` ([`SNAPSHOT_FORMAT_VERSION`]) |
//! | 2 | reserved, zero |
//! | 4 | CRC-32 (IEEE) of the payload |
//! | 8 | payload length *n* |
//! | *n* | the payload: an [rkyv] archive of [`SnapshotContents`] |
//!
//! Integers are little-endian. **Why rkyv**: the archive is validated
//! (bytecheck) and read in place, with no parsing pass and no per-field
//! allocation until the image is deserialized, so restore costs little
//! more than reading the bytes; its derive sits on the engine's image types
//! without hand-written codecs. The CRC catches damage rkyv's validation
//! would accept (a flipped bit in a price is still a valid `u64`).
//!
//! A snapshot that fails any check is reported
//! ([`PersistenceError::SnapshotCorrupt`]) and restore falls back to the
//! older snapshot, then to a full replay of the journal.

use crate::error::PersistenceError;
use leadex_engine::image::EngineImage;
use leadex_engine::spec::MarketplaceSpec;
use leadex_engine::JournalPosition;

/// Magic at the start of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"LDXSNAP\0";
/// Version of the snapshot format this build writes and reads. Version 2
/// added [`SnapshotContents::extensions`]; a version-1 snapshot is refused
/// like a corrupt one, and restore falls back to a full replay.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 3;
/// Bytes before the payload.
pub const SNAPSHOT_HEADER_BYTES: usize = 24;

pub use contents::{Extension, SnapshotContents};

// rkyv's derive generates an archived twin whose fields carry no docs.
#[allow(missing_docs)]
mod contents {
    use super::*;

    /// What a snapshot holds.
    #[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    pub struct SnapshotContents {
        /// Everything before this journal position is in the image.
        pub position: JournalPosition,
        /// When it was taken, Unix ms.
        pub taken_at_ms: i64,
        /// The marketplace spec in force, postcard-encoded (see
        /// [`encode_marketplace`]).
        pub marketplace: Vec<u8>,
        /// The engine's state.
        pub engine: EngineImage,
        /// State kept beside the engine's by others on the same journal
        /// (the admin API's records), opaque here, by name.
        pub extensions: Vec<Extension>,
    }

    /// One named, opaque section of a snapshot.
    #[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    pub struct Extension {
        /// Who owns it, e.g. `admin`.
        pub name: String,
        /// Its state, encoded by its owner.
        pub bytes: Vec<u8>,
    }
}

/// The marketplace spec as stored in a snapshot (postcard).
pub fn encode_marketplace(market: &MarketplaceSpec) -> Vec<u8> {
    postcard::to_stdvec(market).expect("invariant: a marketplace spec always encodes")
}

/// Decodes a marketplace encoded by [`encode_marketplace`].
pub fn decode_marketplace(bytes: &[u8]) -> Result<MarketplaceSpec, String> {
    postcard::from_bytes(bytes)
        .map_err(|e| format!("the snapshot's marketplace does not decode: {e}"))
}

/// Encodes a snapshot: header, then the rkyv archive.
pub fn encode(contents: &SnapshotContents) -> Result<Vec<u8>, PersistenceError> {
    let payload = rkyv::to_bytes::<rkyv::rancor::Error>(contents).map_err(|error| {
        PersistenceError::SnapshotCorrupt {
            location: "(encoding)".into(),
            reason: error.to_string(),
        }
    })?;
    let mut bytes = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Checks and decodes a snapshot read from `location` (for messages).
pub fn decode(location: &str, bytes: &[u8]) -> Result<SnapshotContents, PersistenceError> {
    let corrupt = |reason: String| PersistenceError::SnapshotCorrupt {
        location: location.to_string(),
        reason,
    };
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(corrupt(format!(
            "{} bytes, shorter than the header",
            bytes.len()
        )));
    }
    if bytes[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {version}, this build reads {SNAPSHOT_FORMAT_VERSION}"
        )));
    }
    if bytes[10..12] != [0, 0] {
        return Err(corrupt("reserved header bytes are not zero".into()));
    }
    let crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let length = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let payload = &bytes[SNAPSHOT_HEADER_BYTES..];
    if payload.len() as u64 != length {
        return Err(corrupt(format!(
            "payload is {} bytes, the header says {length}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    // rkyv reads archives in place and needs them aligned.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    rkyv::from_bytes::<SnapshotContents, rkyv::rancor::Error>(&aligned)
        .map_err(|error| corrupt(format!("archive does not validate: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadex_engine::image::{CounterImage, SaleTotals};

    fn contents() -> SnapshotContents {
        SnapshotContents {
            position: JournalPosition::Kafka {
                next_offsets: vec![7, 9],
            },
            taken_at_ms: 1_700_000_000_000,
            marketplace: vec![1, 2, 3],
            engine: EngineImage {
                counters: vec![CounterImage {
                    campaign_id: "c1".into(),
                    spent_cents: 12_345,
                    sold: 3,
                    periods: [1; 8],
                }],
                dedupe: vec![(5, 6)],
                totals: SaleTotals {
                    leads_sold: 3,
                    sales: 3,
                    spend_cents: 12_345,
                    payout_cents: 10_000,
                    refunded_cents: 0,
                },
                ..EngineImage::default()
            },
            extensions: vec![Extension {
                name: "admin".into(),
                bytes: vec![9, 8, 7],
            }],
        }
    }

    #[test]
    fn round_trips() {
        let c = contents();
        assert_eq!(decode("t", &encode(&c).unwrap()).unwrap(), c);
    }

    #[test]
    fn every_damage_is_caught() {
        let bytes = encode(&contents()).unwrap();
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(decode("t", &damaged).is_err(), "flip at byte {at} passed");
        }
        for cut in [0, 10, SNAPSHOT_HEADER_BYTES, bytes.len() - 1] {
            assert!(decode("t", &bytes[..cut]).is_err(), "cut at {cut} passed");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode("t", &longer).is_err());
    }
}
