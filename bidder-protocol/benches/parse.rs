//! Parse + validate latency of realistic bodies on each JSON parser, and
//! encode latency of a ping answer (hand-written vs serde derive).
//!
//! Every parser runs the same visitors and field rules (through
//! `JsonBackend`), so the difference between them is the parser alone. Each
//! iteration first copies the fixture into a reused buffer (simd-json
//! rewrites its input); that copy (~20 ns) is in every figure alike.
//!
//! `CARGO_TARGET_DIR=/work/target-protocol cargo bench -p leadex-protocol -- --warm-up-time 1 --measurement-time 3`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

#[path = "../tests/support/backends.rs"]
mod backends;

use backends::{SimdJson, SonicRs};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use leadex_engine::lead::SaleType;
use leadex_engine::{BidId, PingId};
use leadex_protocol::{
    encode_ping_response, parse_ping_with, parse_post_with, JsonBackend, PingResponse, SerdeJson,
    WireBid,
};
use serde::de::IgnoredAny;
use std::hint::black_box;
use std::marker::PhantomData;

const PING: &[u8] = include_bytes!("../tests/fixtures/ping.json");
const POST: &[u8] = include_bytes!("../tests/fixtures/post.json");

fn refill(buffer: &mut Vec<u8>, fixture: &[u8]) {
    buffer.clear();
    buffer.extend_from_slice(fixture);
}

fn bench_backend<B: JsonBackend>(c: &mut Criterion) {
    let mut buffer = Vec::with_capacity(4096);
    // Fail loudly, outside the timed loop, if a parser cannot read the fixtures.
    refill(&mut buffer, PING);
    parse_ping_with::<B>(&mut buffer).expect("ping fixture parses");
    refill(&mut buffer, POST);
    parse_post_with::<B>(&mut buffer).expect("post fixture parses");

    let mut group = c.benchmark_group("parse_ping_1k");
    group.throughput(Throughput::Bytes(PING.len() as u64));
    group.bench_function(BenchmarkId::from_parameter(B::NAME), |b| {
        b.iter(|| {
            refill(&mut buffer, PING);
            black_box(parse_ping_with::<B>(black_box(&mut buffer)).is_ok())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("parse_post_1_5k");
    group.throughput(Throughput::Bytes(POST.len() as u64));
    group.bench_function(BenchmarkId::from_parameter(B::NAME), |b| {
        b.iter(|| {
            refill(&mut buffer, POST);
            black_box(parse_post_with::<B>(black_box(&mut buffer)).is_ok())
        })
    });
    group.finish();

    // The parser alone, skipping every value: what validation adds is the
    // difference from parse_ping_1k.
    let mut group = c.benchmark_group("syntax_only_ping_1k");
    group.bench_function(BenchmarkId::from_parameter(B::NAME), |b| {
        b.iter(|| {
            refill(&mut buffer, PING);
            black_box(
                B::deserialize_seed(black_box(&mut buffer), PhantomData::<IgnoredAny>).is_ok(),
            )
        })
    });
    group.finish();
}

fn parsers(c: &mut Criterion) {
    bench_backend::<SerdeJson>(c);
    bench_backend::<SimdJson>(c);
    bench_backend::<SonicRs>(c);
}

/// The same answer as a serde-derived struct, for the encoder comparison.
#[derive(serde::Serialize)]
struct DerivedPingResponse<'a> {
    ping_id: String,
    expires_at: String,
    bids: Vec<DerivedBid<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    no_bid_reason: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct DerivedBid<'a> {
    bid_id: String,
    buyer: &'a str,
    price_cents: u64,
    sale_type: SaleType,
}

fn encoders(c: &mut Criterion) {
    let ping_id = PingId(0x7f3a_9c0e_5b2d_4f6a_8c1e_3b5d_7f9a_0c2e);
    let buyers = ["Summit Auto", "Harbor Insurance Group", "Quote \"Direct\""];
    let bids: Vec<WireBid<'_>> = buyers
        .iter()
        .enumerate()
        .map(|(i, buyer)| WireBid {
            bid_id: BidId {
                ping: ping_id,
                index: i as u8,
            },
            buyer,
            price_cents: 2450 - 300 * i as u64,
            sale_type: if i == 0 {
                SaleType::Exclusive
            } else {
                SaleType::Shared
            },
        })
        .collect();
    let response = PingResponse {
        ping_id,
        expires_at_ms: 1_795_428_060_000,
        bids: &bids,
        no_bid_reason: None,
    };
    let mut out = Vec::with_capacity(1024);

    let mut group = c.benchmark_group("encode_ping_response_3_bids");
    group.bench_function("hand_written", |b| {
        b.iter(|| {
            out.clear();
            encode_ping_response(&mut out, black_box(&response));
            black_box(out.len())
        })
    });
    group.bench_function("serde_derive_serde_json", |b| {
        b.iter(|| {
            out.clear();
            let r = black_box(&response);
            // A derive needs the ids and the time as text first.
            let derived = DerivedPingResponse {
                ping_id: r.ping_id.to_string(),
                expires_at: leadex_protocol::format_rfc3339_millis(r.expires_at_ms),
                bids: r
                    .bids
                    .iter()
                    .map(|b| DerivedBid {
                        bid_id: b.bid_id.to_string(),
                        buyer: b.buyer,
                        price_cents: b.price_cents,
                        sale_type: b.sale_type,
                    })
                    .collect(),
                no_bid_reason: r.no_bid_reason,
            };
            serde_json::to_writer(&mut out, &derived).expect("writing to a Vec cannot fail");
            black_box(out.len())
        })
    });
    group.finish();

    // Both encoders write the same JSON value.
    out.clear();
    encode_ping_response(&mut out, &response);
    let hand: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(hand["bids"][2]["buyer"], "Quote \"Direct\"");
}

criterion_group!(benches, parsers, encoders);
criterion_main!(benches);
