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
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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

/// The lead fields a route carries, as named in a ping.
const ROUTE_LEAD_FIELDS: [&str; 4] = ["vertical", "zip", "state", "current_carrier"];
/// Lead score tiers of `/v1/route`: 0 (best) to 3.
pub const SCORE_TIERS: u8 = 4;

/// The body of `POST /v1/route` for `lead`: its vertical, ZIP, state and
/// current carrier (when it has one) and `score_tier`; no PII.
pub fn route_body(lead: &Lead, score_tier: u8) -> Vec<u8> {
    let mut attributes = object_of(&lead.ping.attributes);
    let mut route: Map<String, Value> = ROUTE_LEAD_FIELDS
        .iter()
        .filter_map(|&k| attributes.remove_entry(k))
        .collect();
    route.insert("score_tier".into(), Value::from(score_tier));
    let mut body = Map::new();
    body.insert("lead".into(), Value::Object(route));
    to_bytes(body)
}

/// The route body of request `index`: the lead of [`lead_for`] and a
/// score tier drawn after it, so the same pair always routes the same lead.
pub fn route_body_for(seed: u64, index: u64) -> Vec<u8> {
    let (lead, mut rng) = lead_for(seed, index);
    let tier = rng.gen_range(0..SCORE_TIERS);
    route_body(&lead, tier)
}

/// A route answer as far as the load test reads it.
#[derive(Debug, Deserialize)]
pub struct RouteAnswer {
    /// `offered` or `unassigned`.
    pub status: String,
    /// The ranked candidates.
    #[serde(default)]
    pub candidates: Vec<RouteCandidate>,
}

/// One ranked candidate of a route answer.
#[derive(Debug, Deserialize)]
pub struct RouteCandidate {
    /// Agent id.
    pub agent_id: String,
    /// Sum of the factors.
    pub score: i64,
    /// Each factor's contribution.
    pub factors: BTreeMap<String, i64>,
}

impl RouteAnswer {
    /// Parses a 200 answer of `/v1/route`.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    }

    /// The candidates whose factors do not add up to their score (the
    /// answer's invariant, docs/PROTOCOL.md), by agent id.
    pub fn factor_sum_violations(&self) -> Vec<&str> {
        self.candidates
            .iter()
            .filter(|c| {
                c.factors.values().map(|&v| i128::from(v)).sum::<i128>() != i128::from(c.score)
            })
            .map(|c| c.agent_id.as_str())
            .collect()
    }
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
    fn route_bodies_are_valid_routes_of_the_request_lead() {
        // A fixed seed and index: the exact body, and the protocol's parser
        // accepts it.
        let body = route_body_for(7, 3);
        let value: Value = serde_json::from_slice(&body).unwrap();
        let (lead, _) = lead_for(7, 3);
        let a = &lead.ping.attributes;
        assert_eq!(value["lead"]["vertical"], a.vertical.as_str());
        assert_eq!(value["lead"]["zip"], a.zip.to_string());
        assert_eq!(value["lead"]["state"], a.state.as_str());
        assert_eq!(body, route_body_for(7, 3), "deterministic");
        let parsed = leadex_protocol::parse_route(&body).unwrap();
        assert_eq!(parsed.lead.vertical, a.vertical);
        assert_eq!(parsed.lead.zip, a.zip);
        assert_eq!(parsed.lead.state, a.state);
        assert_eq!(
            parsed.agency_id, None,
            "a buyer key routes for its own account"
        );
        // Many: all valid, carriers carried when the lead has one, every
        // tier drawn, nothing but the routing fields.
        let mut tiers = [0u32; SCORE_TIERS as usize];
        let mut carriers = 0;
        for index in 0..2_000 {
            let body = route_body_for(1, index);
            let parsed = leadex_protocol::parse_route(&body)
                .unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(&body)));
            let (lead, _) = lead_for(1, index);
            assert_eq!(
                parsed.lead.current_carrier,
                lead.ping.attributes.current_carrier
            );
            carriers += usize::from(parsed.lead.current_carrier.is_some());
            tiers[usize::from(parsed.lead.score_tier)] += 1;
            assert!(parsed.lead.language.is_none() && parsed.reference.is_none());
            let value: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(value.as_object().unwrap().len(), 1, "only `lead`");
            assert!(value["lead"]
                .as_object()
                .unwrap()
                .keys()
                .all(|k| k == "score_tier" || ROUTE_LEAD_FIELDS.contains(&k.as_str())));
        }
        assert!(tiers.iter().all(|&n| n > 300), "{tiers:?}");
        assert!((400..1_800).contains(&carriers), "{carriers}");
    }

    #[test]
    fn the_factor_sum_check_flags_a_candidate_that_does_not_add_up() {
        let good = br#"{"assignment_id": "a_0a1b2c3d4e5f60718293a4b5c6d7e8f9", "status": "offered", "agent_id": "ag-017", "offer_expires_at": "2026-11-23T17:05:00.000Z", "strategy": "weighted", "eligible": 2, "excluded": {"already_offered": 0, "at_capacity": 1, "captive_of_current_carrier": 0, "inactive": 0, "not_licensed": 6, "outside_schedule": 1}, "candidates": [{"agent_id": "ag-017", "score": 61250, "factors": {"affinity": 0, "distance": 19000, "language": 10000, "performance": 14250, "quality": 6660, "specialization": 0, "workload": 11340}, "open": 3}, {"agent_id": "ag-004", "score": 48160, "factors": {"affinity": 0, "distance": 13800, "language": 0, "performance": 16250, "quality": 6660, "specialization": 0, "workload": 11450}, "open": 1}]}"#;
        let answer = RouteAnswer::parse(good).unwrap();
        assert_eq!(answer.status, "offered");
        assert_eq!(answer.candidates.len(), 2);
        assert!(
            answer.factor_sum_violations().is_empty(),
            "PROTOCOL.md's example holds"
        );
        let text = String::from_utf8_lossy(good).replace("\"score\": 48160", "\"score\": 48161");
        let bad = RouteAnswer::parse(text.as_bytes()).unwrap();
        assert_eq!(bad.factor_sum_violations(), ["ag-004"]);
        let unassigned = br#"{"assignment_id": "a_1", "status": "unassigned", "agent_id": null, "strategy": "weighted", "eligible": 0, "excluded": {"not_licensed": 3}, "candidates": []}"#;
        let answer = RouteAnswer::parse(unassigned).unwrap();
        assert_eq!(answer.status, "unassigned");
        assert!(answer.factor_sum_violations().is_empty());
        assert!(
            RouteAnswer::parse(br#"{"status": "offered", "candidates": [{"agent_id": "a"}]}"#)
                .is_err()
        );
    }

    #[test]
    fn the_same_seed_and_index_give_the_same_lead() {
        let a = sample_lead(&mut rng_for(9, 41));
        assert_eq!(a, sample_lead(&mut rng_for(9, 41)));
        assert_ne!(a, sample_lead(&mut rng_for(9, 42)));
        assert_ne!(a, sample_lead(&mut rng_for(10, 41)));
    }
}
