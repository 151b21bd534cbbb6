//! How an [`Event`] becomes a Kafka record and back: value, key, partition
//! and the event-id header. Pure functions, testable without a broker.

use crate::format::{self, EncodeError, RawRecord};
use leadex_engine::event::EVENT_FORMAT_VERSION;
use leadex_engine::Event;

/// Header holding the event's id (ping id or lead id, in text form). The
/// reconciler looks for it to learn whether a record in doubt was stored.
pub(crate) const EVENT_ID_HEADER: &str = "leadex-event-id";

/// Header that marks a reconciliation marker record (empty value). Readers
/// skip such records.
pub(crate) const MARKER_HEADER: &str = "leadex-marker";

/// Bytes of the event format version in front of the postcard payload.
const VERSION_BYTES: usize = 2;

/// An event ready to be produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedEvent {
    /// Partitioning key: records with one key share a partition, in order.
    pub key: String,
    /// The event's id, for the [`EVENT_ID_HEADER`] header.
    pub event_id: String,
    /// Version ‖ postcard bytes.
    pub value: Vec<u8>,
}

/// The key and the id of `event`.
///
/// A ping and the sale made under it share the ping id as key, so they land
/// on one partition in append order; a direct-post sale has no ping and is
/// keyed by its lead id. Admin records share the key `admin`, so they keep
/// one total order on one partition. The id names the event itself: the
/// ping id for a `PingIssued`, the lead id for a `LeadSold`, the record id
/// for an admin record, the assignment id and version for a routing
/// record.
pub(crate) fn key_and_id(event: &Event) -> (String, String) {
    match event {
        Event::PingIssued(ping) => {
            let id = ping.ping_id.to_string();
            (id.clone(), id)
        }
        Event::LeadSold(sale) => {
            let lead_id = sale.lead_id.to_string();
            match sale.ping_id {
                Some(ping_id) => (ping_id.to_string(), lead_id),
                None => (lead_id.clone(), lead_id),
            }
        }
        // Admin and marketplace records share one key, so they keep their
        // order among themselves (a campaign is created before it is paused).
        Event::Admin(record) => (ADMIN_KEY.to_string(), record.id.clone()),
        Event::Market(record) => (ADMIN_KEY.to_string(), record.id.clone()),
        // The transitions of one assignment share its id as key, so they
        // keep their order; the id names the version.
        Event::Routing(record) => {
            let id = record.assignment_id.to_string();
            let event_id = format!("{id}.{}", record.version);
            (id, event_id)
        }
    }
}

/// The key of every admin record.
pub(crate) const ADMIN_KEY: &str = "admin";

/// Encodes `event` with its key and id.
pub(crate) fn encode(event: &Event) -> Result<EncodedEvent, EncodeError> {
    let (key, event_id) = key_and_id(event);
    Ok(EncodedEvent {
        key,
        event_id,
        value: encode_value(event, EVENT_FORMAT_VERSION)?,
    })
}

/// The record value of `event`: `version` (2 bytes, little-endian) followed
/// by the postcard encoding, at most [`format::RECORD_BODY_BYTES_MAX`] bytes
/// like a file journal record body.
pub(crate) fn encode_value(event: &Event, version: u16) -> Result<Vec<u8>, EncodeError> {
    let mut value = Vec::with_capacity(256);
    value.extend_from_slice(&version.to_le_bytes());
    postcard::to_io(event, &mut value)?;
    if value.len() > format::RECORD_BODY_BYTES_MAX {
        return Err(EncodeError::TooLarge {
            body_bytes: value.len(),
        });
    }
    Ok(value)
}

/// Decodes a record value; the error says what is wrong (short value,
/// unknown version, bad postcard, trailing bytes).
pub(crate) fn decode_value(value: &[u8]) -> Result<Event, String> {
    if value.len() <= VERSION_BYTES {
        return Err(format!(
            "record value is {} bytes, too short for a version and an event",
            value.len()
        ));
    }
    let record = RawRecord {
        version: u16::from_le_bytes([value[0], value[1]]),
        payload: &value[VERSION_BYTES..],
        record_bytes: value.len(),
    };
    format::decode_event(&record)
}

/// The partition of `key` among `partitions`: CRC-32 (IEEE) of the key
/// modulo the partition count, the function of librdkafka's `consistent`
/// partitioner. Computed here rather than by librdkafka so the journal knows
/// a record's partition when it queues it (see the reconciliation notes in
/// the module documentation).
pub(crate) fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "invariant: options.validate() keeps partitions positive"
    );
    let partitions = partitions.unsigned_abs();
    // The remainder is below `partitions`, itself an i32.
    (crc32fast::hash(key) % partitions) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn values_round_trip() {
        for seed in 0..20 {
            let event = testing::event(seed);
            let encoded = encode(&event).unwrap();
            assert_eq!(&encoded.value[..2], &EVENT_FORMAT_VERSION.to_le_bytes());
            assert_eq!(decode_value(&encoded.value).unwrap(), event);
        }
    }

    #[test]
    fn unknown_versions_short_values_and_trailing_bytes_are_refused() {
        let event = testing::lead_sold(1);
        let future = encode_value(&event, EVENT_FORMAT_VERSION + 1).unwrap();
        let reason = decode_value(&future).unwrap_err();
        assert!(reason.contains("unknown event format version"), "{reason}");
        assert!(decode_value(&[1, 0]).is_err());
        assert!(decode_value(&[]).is_err());
        let mut trailing = encode(&event).unwrap().value;
        trailing.push(0);
        assert!(decode_value(&trailing).unwrap_err().contains("left over"));
        let mut cut = encode(&event).unwrap().value;
        cut.truncate(cut.len() - 3);
        assert!(decode_value(&cut).is_err());
    }

    #[test]
    fn admin_records_share_one_key_and_keep_their_id() {
        let record = |id: &str| {
            Event::Admin(leadex_engine::event::AdminRecord {
                id: id.into(),
                at_ms: 1,
                kind: "key.created".into(),
                payload: vec![1, 2, 3],
            })
        };
        let (a, b) = (
            encode(&record("a_1")).unwrap(),
            encode(&record("a_2")).unwrap(),
        );
        assert_eq!((a.key.as_str(), b.key.as_str()), (ADMIN_KEY, ADMIN_KEY));
        assert_eq!((a.event_id.as_str(), b.event_id.as_str()), ("a_1", "a_2"));
        assert_eq!(decode_value(&a.value).unwrap(), record("a_1"));
    }

    #[test]
    fn keys_and_ids_follow_the_ping() {
        // Seed 1: a sale after a ping (seed % 3 != 0); seed 3: a direct post.
        let ping = testing::ping_issued(1);
        let sale = testing::lead_sold(1);
        let direct = testing::lead_sold(3);
        let Event::PingIssued(p) = &ping else {
            unreachable!()
        };
        let Event::LeadSold(s) = &sale else {
            unreachable!()
        };
        let Event::LeadSold(d) = &direct else {
            unreachable!()
        };
        assert!(d.ping_id.is_none() && s.ping_id == Some(p.ping_id));
        let ping_text = p.ping_id.to_string();
        assert!(ping_text.starts_with("p_"));
        assert_eq!(key_and_id(&ping), (ping_text.clone(), ping_text.clone()));
        assert_eq!(key_and_id(&sale), (ping_text, s.lead_id.to_string()));
        assert_eq!(
            key_and_id(&direct),
            (d.lead_id.to_string(), d.lead_id.to_string())
        );
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        // CRC-32 of "123456789" is the standard check value 0xCBF43926.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            partition_for_key(b"123456789", 7),
            (0xCBF4_3926u32 % 7) as i32
        );
        for seed in 0..200u64 {
            let key = format!("p_{seed:032x}");
            let partition = partition_for_key(key.as_bytes(), 4);
            assert!((0..4).contains(&partition));
            assert_eq!(partition, partition_for_key(key.as_bytes(), 4));
            assert_eq!(partition_for_key(key.as_bytes(), 1), 0);
        }
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut event = testing::lead_sold(6);
        let Event::LeadSold(sold) = &mut event else {
            unreachable!()
        };
        sold.lead.ping.attributes.user_agent = Some("x".repeat(format::RECORD_BODY_BYTES_MAX));
        assert!(matches!(encode(&event), Err(EncodeError::TooLarge { .. })));
    }
}
