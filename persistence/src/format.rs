//! The on-disk format: segment names, segment headers and records.
//!
//! Pure functions over bytes, so every rule is testable without a file. The
//! layout is described in the crate documentation.

use leadex_engine::event::EVENT_FORMAT_VERSION;
use leadex_engine::journal::Lsn;
use leadex_engine::Event;
use std::fmt;

/// Extension of segment files.
pub const SEGMENT_EXTENSION: &str = "ldxj";
/// Extension of a segment being created; never replayed, removed on open.
pub const SEGMENT_TEMPORARY_EXTENSION: &str = "ldxj.tmp";
/// First bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"LDXJRNL\0";
/// Version of the segment and record layout (not of the event encoding).
pub const SEGMENT_FORMAT_VERSION: u16 = 1;
/// Size of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 28;
/// Length and CRC fields in front of each record body.
pub const RECORD_HEADER_BYTES: usize = 8;
/// Smallest record body: the event format version and one payload byte.
pub const RECORD_BODY_BYTES_MIN: usize = 3;
/// Largest record body (version + payload). Larger events are refused at
/// append time and a larger length field is corruption at read time: a
/// sane bound keeps a damaged length from making replay read gigabytes.
pub const RECORD_BODY_BYTES_MAX: usize = 1 << 20;
/// Largest whole record.
pub const RECORD_BYTES_MAX: usize = RECORD_HEADER_BYTES + RECORD_BODY_BYTES_MAX;

const EVENT_VERSION_BYTES: usize = 2;

/// File name of the segment whose first record has LSN `first_lsn`.
pub fn segment_file_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}.{SEGMENT_EXTENSION}")
}

/// The first LSN of a segment file name, or `None` if `name` is not one.
pub fn parse_segment_file_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(SEGMENT_EXTENSION)?.strip_suffix('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The parsed header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// LSN of the segment's first record.
    pub first_lsn: Lsn,
    /// Mixed into every record CRC of the segment.
    pub salt: u32,
}

impl SegmentHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
        bytes[8..10].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
        // 10..12 reserved, zero.
        bytes[12..20].copy_from_slice(&self.first_lsn.to_le_bytes());
        bytes[20..24].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32fast::hash(&bytes[0..24]);
        bytes[24..28].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Parses and checks the header at the start of `bytes`; the error says
    /// what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(format!(
                "segment is {} bytes, shorter than its {SEGMENT_HEADER_BYTES}-byte header",
                bytes.len()
            ));
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err("not a leadex journal segment (bad magic bytes)".into());
        }
        let stored_crc = read_u32(&bytes[24..28]);
        let computed_crc = crc32fast::hash(&bytes[0..24]);
        if stored_crc != computed_crc {
            return Err(format!(
                "segment header CRC is {stored_crc:#010x}, computed {computed_crc:#010x}"
            ));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != SEGMENT_FORMAT_VERSION {
            return Err(format!(
                "unknown segment format version {version} (this build reads {SEGMENT_FORMAT_VERSION})"
            ));
        }
        if bytes[10..12] != [0, 0] {
            return Err("reserved header bytes are not zero".into());
        }
        Ok(SegmentHeader {
            first_lsn: read_u64(&bytes[12..20]),
            salt: read_u32(&bytes[20..24]),
        })
    }
}

/// CRC of a record: salt ‖ length ‖ body (version and payload).
pub fn record_crc(salt: u32, body_bytes: u32, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&salt.to_le_bytes());
    hasher.update(&body_bytes.to_le_bytes());
    hasher.update(body);
    hasher.finalize()
}

/// Why an event cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// postcard refused the value.
    #[error("event cannot be encoded: {0}")]
    Postcard(#[from] postcard::Error),
    /// The record body would exceed [`RECORD_BODY_BYTES_MAX`].
    #[error(
        "event record body is {body_bytes} bytes, more than the {RECORD_BODY_BYTES_MAX}-byte limit"
    )]
    TooLarge {
        /// The body's size.
        body_bytes: usize,
    },
}

/// Size of the record that [`encode_record`] writes for `event`, without
/// writing it.
pub fn record_bytes(event: &Event) -> Result<usize, EncodeError> {
    let payload_bytes: usize =
        postcard::serialize_with_flavor(event, postcard::ser_flavors::Size::default())?;
    let body_bytes = EVENT_VERSION_BYTES + payload_bytes;
    if body_bytes > RECORD_BODY_BYTES_MAX {
        return Err(EncodeError::TooLarge { body_bytes });
    }
    Ok(RECORD_HEADER_BYTES + body_bytes)
}

/// Appends the record of `event` to `buffer` and returns its size. On error
/// `buffer` is left as it was.
pub fn encode_record(buffer: &mut Vec<u8>, salt: u32, event: &Event) -> Result<usize, EncodeError> {
    encode_record_with_version(buffer, salt, EVENT_FORMAT_VERSION, event)
}

/// [`encode_record`] with any event format version; for tests of the
/// reader's refusal of versions it does not know.
pub fn encode_record_with_version(
    buffer: &mut Vec<u8>,
    salt: u32,
    version: u16,
    event: &Event,
) -> Result<usize, EncodeError> {
    let start = buffer.len();
    buffer.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    buffer.extend_from_slice(&version.to_le_bytes());
    if let Err(error) = postcard::to_io(event, &mut *buffer) {
        buffer.truncate(start);
        return Err(error.into());
    }
    let body_bytes = buffer.len() - start - RECORD_HEADER_BYTES;
    if body_bytes > RECORD_BODY_BYTES_MAX {
        buffer.truncate(start);
        return Err(EncodeError::TooLarge { body_bytes });
    }
    let length =
        u32::try_from(body_bytes).expect("invariant: body bounded by RECORD_BODY_BYTES_MAX");
    let crc = record_crc(salt, length, &buffer[start + RECORD_HEADER_BYTES..]);
    buffer[start..start + 4].copy_from_slice(&length.to_le_bytes());
    buffer[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(buffer.len() - start)
}

/// A record whose length and CRC are good; the version is not checked yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Event format version.
    pub version: u16,
    /// postcard bytes of the event.
    pub payload: &'a [u8],
    /// Size of the whole record, header included.
    pub record_bytes: usize,
}

/// Why bytes are not a valid record. Each of these is what a torn write can
/// leave at the end of a file, and what damage can leave anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRecord {
    /// Fewer bytes left than a record header.
    ShortHeader {
        /// Bytes left.
        available_bytes: usize,
    },
    /// The length field is outside `RECORD_BODY_BYTES_MIN..=RECORD_BODY_BYTES_MAX`.
    BadLength {
        /// The length field.
        body_bytes: u32,
    },
    /// The body runs past the end of the file.
    ShortBody {
        /// The length field.
        body_bytes: u32,
        /// Bytes left after the header.
        available_bytes: usize,
    },
    /// The CRC does not match.
    BadCrc {
        /// The CRC field.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BadRecord::ShortHeader { available_bytes } => {
                write!(f, "short record header ({available_bytes} of {RECORD_HEADER_BYTES} bytes)")
            }
            BadRecord::BadLength { body_bytes } => write!(
                f,
                "record length {body_bytes} outside {RECORD_BODY_BYTES_MIN}..={RECORD_BODY_BYTES_MAX}"
            ),
            BadRecord::ShortBody { body_bytes, available_bytes } => {
                write!(f, "short record body ({available_bytes} of {body_bytes} bytes)")
            }
            BadRecord::BadCrc { stored, computed } => {
                write!(f, "record CRC is {stored:#010x}, computed {computed:#010x}")
            }
        }
    }
}

/// Parses the record at the start of `bytes` (a segment from a record
/// boundary to its end) and checks its length and CRC.
pub fn parse_record(bytes: &[u8], salt: u32) -> Result<RawRecord<'_>, BadRecord> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(BadRecord::ShortHeader {
            available_bytes: bytes.len(),
        });
    }
    let body_bytes = read_u32(&bytes[0..4]);
    let body_len = body_bytes as usize;
    if !(RECORD_BODY_BYTES_MIN..=RECORD_BODY_BYTES_MAX).contains(&body_len) {
        return Err(BadRecord::BadLength { body_bytes });
    }
    let available_bytes = bytes.len() - RECORD_HEADER_BYTES;
    if available_bytes < body_len {
        return Err(BadRecord::ShortBody {
            body_bytes,
            available_bytes,
        });
    }
    let body = &bytes[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + body_len];
    let stored = read_u32(&bytes[4..8]);
    let computed = record_crc(salt, body_bytes, body);
    if stored != computed {
        return Err(BadRecord::BadCrc { stored, computed });
    }
    Ok(RawRecord {
        version: u16::from_le_bytes([body[0], body[1]]),
        payload: &body[EVENT_VERSION_BYTES..],
        record_bytes: RECORD_HEADER_BYTES + body_len,
    })
}

/// Decodes the event of a record whose CRC is good. An error here is never
/// a torn write (the CRC matched): it is an unknown version or a bug.
pub fn decode_event(record: &RawRecord<'_>) -> Result<Event, String> {
    if record.version != EVENT_FORMAT_VERSION {
        return Err(format!(
            "unknown event format version {} (this build reads {EVENT_FORMAT_VERSION})",
            record.version
        ));
    }
    let (event, rest) = postcard::take_from_bytes::<Event>(record.payload)
        .map_err(|error| format!("event does not decode: {error}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes left over after the event", rest.len()));
    }
    Ok(event)
}

fn read_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(
        bytes
            .try_into()
            .expect("invariant: caller passes exactly 4 bytes"),
    )
}

fn read_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(
        bytes
            .try_into()
            .expect("invariant: caller passes exactly 8 bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn segment_names_sort_like_numbers_and_round_trip() {
        assert_eq!(segment_file_name(1), "00000000000000000001.ldxj");
        assert_eq!(
            parse_segment_file_name("00000000000000000001.ldxj"),
            Some(1)
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert!(segment_file_name(9) < segment_file_name(10));
        for bad in [
            "1.ldxj",
            "00000000000000000001.ldxj.tmp",
            "0000000000000000000a.ldxj",
            "LOCK",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_round_trips_and_every_damaged_byte_is_caught() {
        let header = SegmentHeader {
            first_lsn: 42,
            salt: 0xdead_beef,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for i in 0..SEGMENT_HEADER_BYTES {
            let mut damaged = bytes;
            damaged[i] ^= 0x01;
            assert!(
                SegmentHeader::decode(&damaged).is_err(),
                "flip at byte {i} not caught"
            );
        }
        assert!(SegmentHeader::decode(&bytes[..SEGMENT_HEADER_BYTES - 1]).is_err());
    }

    #[test]
    fn records_round_trip_and_size_is_predicted() {
        let mut buffer = vec![];
        let events = [testing::ping_issued(1), testing::lead_sold(2)];
        for event in &events {
            let predicted = record_bytes(event).unwrap();
            let written = encode_record(&mut buffer, 7, event).unwrap();
            assert_eq!(predicted, written);
        }
        let first = parse_record(&buffer, 7).unwrap();
        assert_eq!(decode_event(&first).unwrap(), events[0]);
        let second = parse_record(&buffer[first.record_bytes..], 7).unwrap();
        assert_eq!(decode_event(&second).unwrap(), events[1]);
        assert_eq!(first.record_bytes + second.record_bytes, buffer.len());
    }

    #[test]
    fn records_are_bound_to_their_segment_salt() {
        let mut buffer = vec![];
        encode_record(&mut buffer, 1, &testing::lead_sold(3)).unwrap();
        assert!(matches!(
            parse_record(&buffer, 2),
            Err(BadRecord::BadCrc { .. })
        ));
    }

    #[test]
    fn every_damaged_byte_and_every_cut_is_caught() {
        let mut buffer = vec![];
        encode_record(&mut buffer, 9, &testing::ping_issued(4)).unwrap();
        for i in 0..buffer.len() {
            let mut damaged = buffer.clone();
            damaged[i] ^= 0x80;
            assert!(
                parse_record(&damaged, 9).is_err(),
                "flip at byte {i} not caught"
            );
            assert!(
                parse_record(&buffer[..i], 9).is_err(),
                "cut at byte {i} not caught"
            );
        }
    }

    #[test]
    fn lengths_out_of_bounds_are_bad() {
        let mut bytes = vec![0u8; 64];
        assert_eq!(
            parse_record(&bytes, 0),
            Err(BadRecord::BadLength { body_bytes: 0 })
        );
        let too_long = (RECORD_BODY_BYTES_MAX + 1) as u32;
        bytes[0..4].copy_from_slice(&too_long.to_le_bytes());
        assert_eq!(
            parse_record(&bytes, 0),
            Err(BadRecord::BadLength {
                body_bytes: too_long
            })
        );
    }

    #[test]
    fn unknown_versions_are_refused_after_a_good_crc() {
        let mut buffer = vec![];
        encode_record_with_version(
            &mut buffer,
            5,
            EVENT_FORMAT_VERSION + 1,
            &testing::lead_sold(5),
        )
        .unwrap();
        let record = parse_record(&buffer, 5).unwrap();
        let reason = decode_event(&record).unwrap_err();
        assert!(reason.contains("unknown event format version"), "{reason}");
    }

    #[test]
    fn oversized_events_are_refused_before_and_during_encoding() {
        let mut event = testing::lead_sold(6);
        let leadex_engine::Event::LeadSold(sold) = &mut event else {
            unreachable!()
        };
        sold.lead.ping.attributes.user_agent = Some("x".repeat(RECORD_BODY_BYTES_MAX));
        assert!(matches!(
            record_bytes(&event),
            Err(EncodeError::TooLarge { .. })
        ));
        let mut buffer = vec![1, 2, 3];
        assert!(matches!(
            encode_record(&mut buffer, 0, &event),
            Err(EncodeError::TooLarge { .. })
        ));
        assert_eq!(
            buffer,
            [1, 2, 3],
            "a refused record leaves the buffer as it was"
        );
    }
}
