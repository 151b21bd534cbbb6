//! Request bodies in the seller API's JSON (docs/PROTOCOL.md), built from
//! the engine's domain types, and one deterministic lead per request.
//!
//! The domain types serialize close to the wire but not exactly (nested
//! `attributes`, `bmi_tenths`, `consented_at_ms`, `null` for absent), so the
//! few differences are mapped here rather than in the engine, which knows
//! nothing of JSON wire formats.

use leadex_config::synth::sample_lead;
use leadex_engine::lead::{Lead, Ping};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::{Map, Value};

/// The lead of request `index`, and the random source left after drawing it
/// (for later choices such as whether to post).
pub fn lead_for(seed: u64, index: u64) -> (Lead, SmallRng) {
    let mut rng = rng_for(seed, index);
    let lead = sample_lead(&mut rng);
    (lead, rng)
}

/// A random source for request `index` of a run seeded with `seed`: the
/// same lead for the same pair whichever connection sends it.
pub fn rng_for(seed: u64, index: u64) -> SmallRng {
    // Spread the index with an odd multiplier so neighbouring seeds and
    // indexes do not share streams.
    SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Serializes `value` as an object, dropping `null` members (absent on the
/// wire).
fn object_of(value: &impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(value).expect("invariant: domain types serialize") {
        Value::Object(map) => map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        other => unreachable!("invariant: domain structs serialize as objects, got {other}"),
    }
}

/// Attributes, `sale_type` and `consent`: the part every endpoint shares.
fn ping_fields(ping: &Ping) -> Map<String, Value> {
    let mut body = object_of(&ping.attributes);
    if let Some(Value::Number(tenths)) = body.remove("bmi_tenths") {
        let tenths = tenths
            .as_f64()
            .expect("invariant: bmi_tenths is an integer");
        // tenths / 10 is the double nearest the one-decimal value, so it
        // prints as that decimal (e.g. 245 -> 24.5).
        body.insert("bmi".into(), Value::from(tenths / 10.0));
    }
    body.insert("sale_type".into(), object_value(&ping.sale_type));
    if let Some(consent) = &ping.consent {
        let mut consent = object_of(consent);
        // The samplers never set a consent time (they have no clock); the
        // wire wants RFC 3339, which this crate does not format.
        consent.remove("consented_at_ms");
        if !consent.is_empty() {
            body.insert("consent".into(), Value::Object(consent));
        }
    }
    body
}

fn object_value(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("invariant: domain types serialize")
}

/// The body of `POST /v1/ping`.
pub fn ping_body(ping: &Ping) -> Vec<u8> {
    to_bytes(ping_fields(ping))
}

/// The body of `POST /v1/post` for `lead`, accepting `bid_ids` of `ping_id`.
pub fn post_body(lead: &Lead, ping_id: &str, bid_ids: &[String]) -> Vec<u8> {
    let mut body = ping_fields(&lead.ping);
    body.insert("ping_id".into(), Value::from(ping_id));
    body.insert("bid_ids".into(), Value::from(bid_ids.to_vec()));
    body.insert("contact".into(), Value::Object(object_of(&lead.contact)));
    to_bytes(body)
}

/// The body of `POST /v1/leads` (direct post).
pub fn direct_post_body(lead: &Lead) -> Vec<u8> {
    let mut body = ping_fields(&lead.ping);
    body.insert("contact".into(), Value::Object(object_of(&lead.contact)));
    to_bytes(body)
}

fn to_bytes(body: Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(&Value::Object(body)).expect("invariant: JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadex_engine::lead::Vertical;

    /// Whether `lead` carries every field its vertical requires.
    fn is_requestable(lead: &Lead) -> bool {
        let a = &lead.ping.attributes;
        let needs_age = matches!(
            a.vertical,
            Vertical::Life | Vertical::Health | Vertical::Medicare
        );
        let needs_vehicles = a.vertical == Vertical::Auto;
        (!needs_age || a.age.is_some()) && (!needs_vehicles || a.vehicles.is_some())
    }

    #[test]
    fn leads_for_requests_carry_the_fields_their_vertical_requires() {
        // Regression: the sampler once left `age` out of ~5 % of life,
        // health and medicare pings, which the server refuses.
        assert!((0..5_000).all(|i| is_requestable(&lead_for(3, i).0)));
        assert_eq!(lead_for(3, 17).0, lead_for(3, 17).0);
    }

    #[test]
    fn bodies_use_the_wire_names_and_leave_out_absent_fields() {
        let mut rng = rng_for(1, 0);
        for _ in 0..2_000 {
            let lead = sample_lead(&mut rng);
            let ping: Value = serde_json::from_slice(&ping_body(&lead.ping)).unwrap();
            let ping = ping.as_object().unwrap();
            for key in ["vertical", "zip", "state", "sale_type"] {
                assert!(ping[key].is_string(), "{key} in {ping:?}");
            }
            assert!(!ping.values().any(Value::is_null), "{ping:?}");
            assert!(!ping.contains_key("bmi_tenths") && !ping.contains_key("contact"));
            if let Some(bmi) = lead.ping.attributes.bmi_tenths {
                assert_eq!(
                    ping["bmi"].to_string(),
                    format!("{}.{}", bmi / 10, bmi % 10)
                );
            }
            let post: Value =
                serde_json::from_slice(&post_body(&lead, "p_1", &["b_1_0".into()])).unwrap();
            assert_eq!(post["ping_id"], "p_1");
            assert_eq!(post["bid_ids"][0], "b_1_0");
            assert!(post["contact"]["phone"].is_string());
            let direct: Value = serde_json::from_slice(&direct_post_body(&lead)).unwrap();
            assert!(direct.get("ping_id").is_none());
            assert_eq!(direct["contact"], post["contact"]);
        }
    }

    #[test]
    fn the_same_seed_and_index_give_the_same_lead() {
        let a = sample_lead(&mut rng_for(9, 41));
        assert_eq!(a, sample_lead(&mut rng_for(9, 41)));
        assert_ne!(a, sample_lead(&mut rng_for(9, 42)));
        assert_ne!(a, sample_lead(&mut rng_for(10, 41)));
    }
}
