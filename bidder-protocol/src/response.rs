//! Answers: borrowed views of what the engine decided, written as JSON into
//! a caller's reusable buffer. Every encoder appends; it never clears `out`.

use crate::time::write_rfc3339_millis;
use crate::write::{write_bid_id, write_json_str, write_lead_id, write_ping_id, write_u64};
use leadex_engine::lead::SaleType;
use leadex_engine::{BidId, LeadId, PingId};

/// One bid of a ping answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireBid<'a> {
    /// Bid id to accept in the post.
    pub bid_id: BidId,
    /// Buyer alias shown to the seller.
    pub buyer: &'a str,
    /// What the seller gets if this bid is sold, cents.
    pub price_cents: u64,
    /// Exclusive or shared.
    pub sale_type: SaleType,
}

/// The answer to `POST /v1/ping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingResponse<'a> {
    /// The ping id to post with.
    pub ping_id: PingId,
    /// End of the price lock, Unix ms.
    pub expires_at_ms: i64,
    /// Bids, best first; may be empty.
    pub bids: &'a [WireBid<'a>],
    /// Why there is no bid (a stable code such as `no_eligible_buyers`).
    pub no_bid_reason: Option<&'a str>,
}

/// One sale of a sold lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireSale<'a> {
    /// The accepted bid (absent for direct posts, which have no bids).
    pub bid_id: Option<BidId>,
    /// Buyer alias.
    pub buyer: &'a str,
    /// What the seller gets, cents.
    pub price_cents: u64,
}

/// The `sold` answer to `POST /v1/post` and `POST /v1/leads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostResponse<'a> {
    /// The lead's id.
    pub lead_id: LeadId,
    /// One entry per buyer.
    pub sales: &'a [WireSale<'a>],
}

/// Appends the ping answer:
/// `{"ping_id":"p_…","expires_at":"…Z","bids":[…]}`, with
/// `"no_bid_reason":"…"` last when there is a reason.
pub fn encode_ping_response(out: &mut Vec<u8>, response: &PingResponse<'_>) {
    out.reserve(96 + response.bids.len() * 128);
    out.extend_from_slice(b"{\"ping_id\":");
    write_ping_id(out, response.ping_id);
    out.extend_from_slice(b",\"expires_at\":\"");
    write_rfc3339_millis(out, response.expires_at_ms);
    out.extend_from_slice(b"\",\"bids\":[");
    for (i, bid) in response.bids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"bid_id\":");
        write_bid_id(out, bid.bid_id);
        out.extend_from_slice(b",\"buyer\":");
        write_json_str(out, bid.buyer);
        out.extend_from_slice(b",\"price_cents\":");
        write_u64(out, bid.price_cents);
        out.extend_from_slice(b",\"sale_type\":\"");
        out.extend_from_slice(bid.sale_type.as_str().as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.push(b']');
    if let Some(reason) = response.no_bid_reason {
        out.extend_from_slice(b",\"no_bid_reason\":");
        write_json_str(out, reason);
    }
    out.push(b'}');
}

/// Appends the sold answer:
/// `{"lead_id":"l_…","status":"sold","sales":[{"bid_id":"b_…","buyer":"…","price_cents":2450}],"total_price_cents":2450}`;
/// a sale without a bid id has no `bid_id` key.
pub fn encode_post_response(out: &mut Vec<u8>, response: &PostResponse<'_>) {
    out.reserve(96 + response.sales.len() * 112);
    out.extend_from_slice(b"{\"lead_id\":");
    write_lead_id(out, response.lead_id);
    out.extend_from_slice(b",\"status\":\"sold\",\"sales\":[");
    let mut total_cents = 0u64;
    for (i, sale) in response.sales.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        if let Some(bid_id) = sale.bid_id {
            out.extend_from_slice(b"\"bid_id\":");
            write_bid_id(out, bid_id);
            out.push(b',');
        }
        out.extend_from_slice(b"\"buyer\":");
        write_json_str(out, sale.buyer);
        out.extend_from_slice(b",\"price_cents\":");
        write_u64(out, sale.price_cents);
        out.push(b'}');
        // At most 8 sales of bounded budgets: far from u64::MAX cents.
        total_cents = total_cents.saturating_add(sale.price_cents);
    }
    out.extend_from_slice(b"],\"total_price_cents\":");
    write_u64(out, total_cents);
    out.push(b'}');
}

/// Appends the unsold answer of a direct post:
/// `{"status":"unsold","no_sale_reason":"…"}`.
pub fn encode_unsold_response(out: &mut Vec<u8>, reason: &str) {
    out.extend_from_slice(b"{\"status\":\"unsold\",\"no_sale_reason\":");
    write_json_str(out, reason);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parsed(out: &[u8]) -> Value {
        serde_json::from_slice(out)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
    }

    #[test]
    fn ping_response_with_bids_round_trips() {
        let ping_id = PingId(0xfeed_0000_0000_0000_0000_0000_0000_0001);
        let bids = [
            WireBid {
                bid_id: BidId {
                    ping: ping_id,
                    index: 0,
                },
                buyer: "Summit Auto",
                price_cents: 2450,
                sale_type: SaleType::Exclusive,
            },
            WireBid {
                bid_id: BidId {
                    ping: ping_id,
                    index: 1,
                },
                buyer: "Quote \"Co\"\n",
                price_cents: 0,
                sale_type: SaleType::Shared,
            },
        ];
        let mut out = b"prefix".to_vec();
        encode_ping_response(
            &mut out,
            &PingResponse {
                ping_id,
                expires_at_ms: 1_795_428_000_000,
                bids: &bids,
                no_bid_reason: None,
            },
        );
        assert!(out.starts_with(b"prefix"), "encoders append");
        let v = parsed(&out[6..]);
        assert_eq!(
            v,
            json!({
                "ping_id": ping_id.to_string(),
                "expires_at": "2026-11-23T10:00:00.000Z",
                "bids": [
                    {"bid_id": bids[0].bid_id.to_string(), "buyer": "Summit Auto", "price_cents": 2450, "sale_type": "exclusive"},
                    {"bid_id": bids[1].bid_id.to_string(), "buyer": "Quote \"Co\"\n", "price_cents": 0, "sale_type": "shared"},
                ],
            })
        );
        assert_eq!(PingId::parse(v["ping_id"].as_str().unwrap()), Some(ping_id));
        assert_eq!(
            BidId::parse(v["bids"][1]["bid_id"].as_str().unwrap()),
            Some(bids[1].bid_id)
        );
    }

    #[test]
    fn ping_response_without_bids_has_a_reason() {
        let mut out = Vec::new();
        encode_ping_response(
            &mut out,
            &PingResponse {
                ping_id: PingId(1),
                expires_at_ms: 0,
                bids: &[],
                no_bid_reason: Some("no_eligible_buyers"),
            },
        );
        let v = parsed(&out);
        assert_eq!(v["bids"], json!([]));
        assert_eq!(v["no_bid_reason"], "no_eligible_buyers");
        assert_eq!(v["expires_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v.as_object().unwrap().len(), 4);
    }

    #[test]
    fn post_response_sums_and_omits_missing_bid_ids() {
        let ping = PingId(u128::MAX);
        let sales = [
            WireSale {
                bid_id: Some(BidId { ping, index: 2 }),
                buyer: "A",
                price_cents: 2450,
            },
            WireSale {
                bid_id: None,
                buyer: "B\u{1}",
                price_cents: 1050,
            },
        ];
        let lead_id = LeadId(0xabc);
        let mut out = Vec::new();
        encode_post_response(
            &mut out,
            &PostResponse {
                lead_id,
                sales: &sales,
            },
        );
        let v = parsed(&out);
        assert_eq!(
            v,
            json!({
                "lead_id": lead_id.to_string(),
                "status": "sold",
                "sales": [
                    {"bid_id": format!("b_{}_2", "f".repeat(32)), "buyer": "A", "price_cents": 2450},
                    {"buyer": "B\u{1}", "price_cents": 1050},
                ],
                "total_price_cents": 3500,
            })
        );
        assert_eq!(LeadId::parse(v["lead_id"].as_str().unwrap()), Some(lead_id));
    }

    #[test]
    fn unsold_response() {
        let mut out = Vec::new();
        encode_unsold_response(&mut out, "below_floor");
        assert_eq!(
            parsed(&out),
            json!({"status": "unsold", "no_sale_reason": "below_floor"})
        );
    }
}
