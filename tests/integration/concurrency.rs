//! Acceptance point 2: money, caps, dedupe and shared sales are exact when
//! many clients post at once over real sockets.

use super::support::*;
use futures_like::join_all;
use leadex_engine::lead::SaleType;
use leadex_engine::spec::{CapLimit, EngineSettings};
use leadex_engine::testing::{campaign, market};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

mod futures_like {
    /// Runs futures concurrently on the runtime and collects their outputs in order.
    pub async fn join_all<T: Send + 'static>(
        futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
    ) -> Vec<T> {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.expect("task panicked"));
        }
        out
    }
}

/// Posts `bodies` to `path` from `clients` concurrent connections.
async fn post_all(
    addr: SocketAddr,
    path: &'static str,
    bodies: Vec<String>,
    clients: usize,
) -> Vec<(u16, Value)> {
    let chunks: Vec<Vec<(usize, String)>> = (0..clients)
        .map(|c| {
            bodies
                .iter()
                .enumerate()
                .filter(|(i, _)| i % clients == c)
                .map(|(i, b)| (i, b.clone()))
                .collect()
        })
        .collect();
    let results = join_all(
        chunks
            .into_iter()
            .map(|chunk| async move {
                let client = client();
                let mut out = Vec::with_capacity(chunk.len());
                for (i, body) in chunk {
                    out.push((i, post(&client, addr, path, Some(KEY), &body).await));
                }
                out
            })
            .collect(),
    )
    .await;
    let mut flat: Vec<_> = results.into_iter().flatten().collect();
    flat.sort_by_key(|(i, _)| *i);
    flat.into_iter().map(|(_, r)| r).collect()
}

fn sold_by_buyer(results: &[(u16, Value)]) -> HashMap<String, (u64, u64)> {
    let mut by = HashMap::new();
    for (status, v) in results {
        assert_eq!(*status, 200, "{v}");
        if v["status"] == "sold" {
            for s in v["sales"].as_array().unwrap() {
                let e = by
                    .entry(s["buyer"].as_str().unwrap().to_owned())
                    .or_insert((0u64, 0u64));
                e.0 += 1;
                e.1 += s["price_cents"].as_u64().unwrap();
            }
        } else {
            assert_eq!(v["status"], "unsold", "{v}");
        }
    }
    by
}

/// Selects one period's limit from a campaign's caps.
type PickCap = fn(&mut leadex_engine::spec::Caps) -> &mut CapLimit;

fn current_hour() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_funded_for_k_leads_sells_exactly_k() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = campaign("funded", "a", SaleType::Exclusive, 1234);
    c.budget_cents = 37 * 1234 + 1233; // one cent short of a 38th lead
    let server = start(
        dir.path(),
        market(&["a"], vec![c]),
        EngineSettings::default(),
    )
    .await;
    let bodies = (0..200).map(|i| lead_json(&phone(i)).to_string()).collect();
    let results = post_all(server.addr, "/v1/leads", bodies, 24).await;
    let by = sold_by_buyer(&results);
    assert_eq!(by["Buyer a"], (37, 37 * 1234));
    let counters = server.engine.campaign_counters("funded").unwrap();
    assert_eq!((counters.sold, counters.spent_cents), (37, 37 * 1234));
    let unsold: Vec<_> = results
        .iter()
        .filter(|(_, v)| v["status"] == "unsold")
        .collect();
    assert_eq!(unsold.len(), 200 - 37);
    assert!(unsold
        .iter()
        .all(|(_, v)| v["no_sale_reason"] == "budget_exhausted"
            || v["no_sale_reason"] == "bid_unavailable"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cap_kind_holds_exactly_under_concurrency() {
    // An hour boundary inside the run would reset the hourly caps; run again then.
    for attempt in 0..2 {
        let hour = current_hour();
        let dir = tempfile::tempdir().unwrap();
        let price = 500u64;
        let mut campaigns = Vec::new();
        let mut expected = HashMap::new();
        let caps: [(&str, PickCap); 4] = [
            ("hourly", |c| &mut c.hourly),
            ("daily", |c| &mut c.daily),
            ("weekly", |c| &mut c.weekly),
            ("monthly", |c| &mut c.monthly),
        ];
        let mut buyers = Vec::new();
        for (i, (name, pick)) in caps.iter().enumerate() {
            for (j, spend) in [false, true].into_iter().enumerate() {
                let k = 5 + (i * 2 + j) as u64; // different K per campaign
                let buyer = format!("{name}-{}", if spend { "spend" } else { "leads" });
                let mut c = campaign(
                    &buyer,
                    &buyer,
                    SaleType::Exclusive,
                    price + (i * 2 + j) as u64,
                );
                let cap = pick(&mut c.caps);
                if spend {
                    cap.spend_cents = Some(k * c.price_cents + c.price_cents - 1);
                } else {
                    cap.leads = Some(k as u32);
                }
                expected.insert(format!("Buyer {buyer}"), k);
                buyers.push(buyer);
                campaigns.push(c);
            }
        }
        let buyer_refs: Vec<&str> = buyers.iter().map(String::as_str).collect();
        let server = start(
            dir.path(),
            market(&buyer_refs, campaigns),
            EngineSettings::default(),
        )
        .await;
        let total: u64 = expected.values().sum();
        let bodies = (0..(total as usize + 60))
            .map(|i| lead_json(&phone(i)).to_string())
            .collect();
        let results = post_all(server.addr, "/v1/leads", bodies, 24).await;
        server.shutdown().await.unwrap();
        if current_hour() != hour && attempt == 0 {
            continue;
        }
        let by = sold_by_buyer(&results);
        for (buyer, k) in &expected {
            assert_eq!(
                by.get(buyer).map(|x| x.0),
                Some(*k),
                "{buyer} must sell exactly its cap"
            );
        }
        return;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_phone_posted_concurrently_sells_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = market(&["a"], vec![campaign("ex", "a", SaleType::Exclusive, 1500)]);
    let server = start(dir.path(), m, EngineSettings::default()).await;
    // Direct posts.
    let bodies = (0..40)
        .map(|_| lead_json("3127340100").to_string())
        .collect();
    let results = post_all(server.addr, "/v1/leads", bodies, 20).await;
    assert_eq!(
        results
            .iter()
            .filter(|(_, v)| v["status"] == "sold")
            .count(),
        1
    );
    assert!(results
        .iter()
        .filter(|(_, v)| v["status"] == "unsold")
        .all(|(_, v)| v["no_sale_reason"] == "duplicate_lead"));
    // Ping then post: 30 different pings, all posted at once with one phone.
    let c = client();
    let mut posts = Vec::new();
    for i in 0..30 {
        let mut p = ping_json();
        p["age"] = json!(20 + i);
        let (status, ping) = post(&c, server.addr, "/v1/ping", Some(KEY), &p.to_string()).await;
        assert_eq!(status, 200, "{ping}");
        let mut body = lead_json("3127340101");
        body["age"] = json!(20 + i);
        body["ping_id"] = ping["ping_id"].clone();
        body["bid_ids"] = json!([ping["bids"][0]["bid_id"]]);
        posts.push(body.to_string());
    }
    let results = post_all(server.addr, "/v1/post", posts, 30).await;
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .filter(|(s, _)| *s != 200)
        .all(|(s, v)| *s == 409 && v["error"]["code"] == "duplicate_lead"));
    assert_eq!(server.engine.campaign_counters("ex").unwrap().sold, 2);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_lead_never_goes_to_more_than_n_buyers() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut campaigns: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, b)| campaign(&format!("sh-{b}"), b, SaleType::Shared, 700 + i as u64))
        .collect();
    // Two campaigns of one account: never both on one lead.
    campaigns.push(campaign("sh-b9-second", "b9", SaleType::Shared, 900));
    let mut m = market(&refs, campaigns);
    m.buyers[8].parent_id = Some("b9".into()); // b8 and b9 are one account
    let settings = EngineSettings {
        max_shared_buyers: 3,
        ..Default::default()
    };
    let server = start(dir.path(), m, settings).await;
    let bodies = (0..120).map(|i| lead_json(&phone(i)).to_string()).collect();
    let results = post_all(server.addr, "/v1/leads", bodies, 16).await;
    for (status, v) in &results {
        assert_eq!(*status, 200);
        let sales = v["sales"].as_array().unwrap();
        assert!(!sales.is_empty() && sales.len() <= 3, "{v}");
        let buyers: HashSet<&str> = sales.iter().map(|s| s["buyer"].as_str().unwrap()).collect();
        assert_eq!(buyers.len(), sales.len(), "one account at most once: {v}");
        assert!(
            !(buyers.contains("Buyer b8") && buyers.contains("Buyer b9")),
            "parent and child on one lead: {v}"
        );
    }
    // One ping posted by 16 clients at once: exactly one post wins.
    let c = client();
    let (_, ping) = post(
        &c,
        server.addr,
        "/v1/ping",
        Some(KEY),
        &ping_json().to_string(),
    )
    .await;
    assert_eq!(ping["bids"].as_array().unwrap().len(), 3, "{ping}");
    let mut body = lead_json("4157340100");
    body["ping_id"] = ping["ping_id"].clone();
    body["bid_ids"] = json!(ping["bids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bid_id"].clone())
        .collect::<Vec<_>>());
    let results = post_all(server.addr, "/v1/post", vec![body.to_string(); 16], 16).await;
    let ok: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert_eq!(ok[0].1["sales"].as_array().unwrap().len(), 3);
    assert!(results
        .iter()
        .filter(|(s, _)| *s != 200)
        .all(|(s, v)| *s == 409 && v["error"]["code"] == "ping_already_used"));
    server.shutdown().await.unwrap();
}
