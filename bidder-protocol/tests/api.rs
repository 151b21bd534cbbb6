//! The crate as its one client, the HTTP server (`src/server.rs`), uses it:
//! parse a body, run (here: fake) the engine, encode the answer or the
//! error. Keeps the public API honest about what the server needs.

use leadex_engine::lead::SaleType;
use leadex_engine::{BidId, EngineError, LeadId, NoBidReason, PingId};
use leadex_protocol as wire;
use std::sync::Arc;

const PING: &[u8] = include_bytes!("fixtures/ping.json");
const POST: &[u8] = include_bytes!("fixtures/post.json");

fn engine_error(e: EngineError) -> wire::ProtocolError {
    use wire::ErrorCode as C;
    let error = |code, message: String| wire::ProtocolError::new(code, message);
    match e {
        EngineError::PingNotFound => error(C::PingNotFound, e.to_string()).with_field("ping_id"),
        EngineError::PingExpired => error(C::PingExpired, e.to_string()).with_field("ping_id"),
        EngineError::PingAlreadyUsed => {
            error(C::PingAlreadyUsed, e.to_string()).with_field("ping_id")
        }
        EngineError::PostMismatch { field } => {
            error(C::PostMismatch, e.to_string()).with_field(field)
        }
        EngineError::UnknownBid(_) | EngineError::BidUnavailable => {
            error(C::BidUnavailable, e.to_string()).with_field("bid_ids")
        }
        EngineError::DuplicateLead => {
            error(C::DuplicateLead, e.to_string()).with_field("contact.phone")
        }
        EngineError::Overloaded(_) => error(C::Overloaded, "retry shortly".into()),
    }
}

#[test]
fn ping_round_trip_as_the_server_does_it() {
    let mut body = PING.to_vec();
    let ping = wire::parse_ping(&mut body).unwrap();
    assert_eq!(ping.attributes.vehicles, Some(2));

    let ping_id = PingId(0x7f3a_9c0e_5b2d_4f6a_8c1e_3b5d_7f9a_0c2e);
    let names: Vec<Arc<str>> = vec!["Summit Auto".into(), "Harbor".into()];
    let bids: Vec<wire::WireBid<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, name)| wire::WireBid {
            bid_id: BidId {
                ping: ping_id,
                index: i as u8,
            },
            buyer: name,
            price_cents: 2450,
            sale_type: SaleType::Shared,
        })
        .collect();
    let mut out = Vec::with_capacity(512);
    wire::encode_ping_response(
        &mut out,
        &wire::PingResponse {
            ping_id,
            expires_at_ms: 1_795_428_060_000,
            bids: &bids,
            no_bid_reason: None,
        },
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["expires_at"], "2026-11-23T10:01:00.000Z");
    assert_eq!(v["bids"][1]["bid_id"], format!("b_{:032x}_1", ping_id.0));

    // The no-bid reasons the engine gives are written as they are.
    for reason in NoBidReason::ALL {
        out.clear();
        let response = wire::PingResponse {
            ping_id,
            expires_at_ms: 0,
            bids: &[],
            no_bid_reason: Some(reason.as_str()),
        };
        wire::encode_ping_response(&mut out, &response);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["no_bid_reason"], reason.as_str());
    }
}

#[test]
fn post_and_direct_post_as_the_server_does_them() {
    let mut body = POST.to_vec();
    let post = wire::parse_post(&mut body).unwrap();
    let sold: Vec<(Option<BidId>, Arc<str>, u64)> = post
        .bid_ids
        .iter()
        .map(|b| (Some(*b), Arc::from("Summit Auto"), 1200))
        .collect();
    let sales: Vec<wire::WireSale<'_>> = sold
        .iter()
        .map(|(bid_id, buyer, price)| wire::WireSale {
            bid_id: *bid_id,
            buyer,
            price_cents: *price,
        })
        .collect();
    let mut out = Vec::new();
    wire::encode_post_response(
        &mut out,
        &wire::PostResponse {
            lead_id: LeadId(9),
            sales: &sales,
        },
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["total_price_cents"].as_u64()),
        (Some("sold"), Some(2400))
    );

    let mut direct: serde_json::Value = serde_json::from_slice(POST).unwrap();
    let object = direct.as_object_mut().unwrap();
    object.remove("ping_id");
    object.remove("bid_ids");
    let lead = wire::parse_direct_post(&mut serde_json::to_vec(&direct).unwrap()).unwrap();
    assert_eq!(lead, post.lead);
    out.clear();
    wire::encode_unsold_response(&mut out, "no_eligible_buyers");
    assert_eq!(
        out,
        br#"{"status":"unsold","no_sale_reason":"no_eligible_buyers"}"#
    );
}

#[test]
fn engine_errors_map_to_documented_statuses() {
    let cases = [
        (EngineError::PingNotFound, 404, "ping_not_found", "ping_id"),
        (EngineError::PingExpired, 410, "ping_expired", "ping_id"),
        (
            EngineError::PingAlreadyUsed,
            409,
            "ping_already_used",
            "ping_id",
        ),
        (
            EngineError::PostMismatch { field: "age" },
            422,
            "post_mismatch",
            "age",
        ),
        (
            EngineError::BidUnavailable,
            409,
            "bid_unavailable",
            "bid_ids",
        ),
        (
            EngineError::DuplicateLead,
            409,
            "duplicate_lead",
            "contact.phone",
        ),
    ];
    for (e, status, code, field) in cases {
        let error = engine_error(e);
        let mut out = Vec::new();
        assert_eq!(error.encode_with_status(&mut out), status);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["error"]["code"].as_str(), v["error"]["field"].as_str()),
            (Some(code), Some(field))
        );
    }
    let overloaded = engine_error(EngineError::Overloaded("pending pings"));
    assert_eq!((overloaded.http_status(), overloaded.field), (503, None));
    assert!(overloaded.code.is_retryable());
}
