//! Snapshots on the embedded backend: restore from a snapshot equals the
//! state before (full state digest), a corrupt snapshot falls back to an
//! older one or to a full replay, and a torn journal tail is cut.

use super::support::*;
use leadex_engine::lead::SaleType;
use leadex_engine::spec::{EngineSettings, MarketplaceSpec};
use leadex_engine::testing::{campaign, market};
use leadex_engine::JournalPosition;
use serde_json::json;
use std::path::{Path, PathBuf};

fn marketplace() -> MarketplaceSpec {
    market(
        &["a", "b", "c"],
        vec![
            campaign("a-sh", "a", SaleType::Shared, 900),
            campaign("b-sh", "b", SaleType::Shared, 800),
            campaign("c-ex", "c", SaleType::Exclusive, 2500),
        ],
    )
}

/// Pings (some left open), ping-posts and direct posts: every kind of
/// state a snapshot must carry.
async fn trade(addr: std::net::SocketAddr, round: usize) {
    let c = client();
    for i in 0..12 {
        let mut p = ping_json();
        p["age"] = json!(20 + i);
        p["zip"] = json!(format!("9{:04}", 100 + round * 20 + i));
        let (status, ping) = post(&c, addr, "/v1/ping", Some(KEY), &p.to_string()).await;
        assert_eq!(status, 200, "{ping}");
        if i % 3 == 0 {
            continue; // left open under its price lock
        }
        let mut body = lead_json(&phone(round * 1000 + i));
        body["age"] = p["age"].clone();
        body["zip"] = p["zip"].clone();
        body["ping_id"] = ping["ping_id"].clone();
        body["bid_ids"] = json!([ping["bids"][0]["bid_id"]]);
        let (status, sold) = post(&c, addr, "/v1/post", Some(KEY), &body.to_string()).await;
        assert_eq!(
            (status, sold["status"].as_str()),
            (200, Some("sold")),
            "{sold}"
        );
    }
    for i in 0..5 {
        let body = lead_json(&phone(round * 1000 + 500 + i)).to_string();
        let (status, v) = post(&c, addr, "/v1/leads", Some(KEY), &body).await;
        assert_eq!((status, v["status"].as_str()), (200, Some("sold")), "{v}");
    }
}

/// Runs a server over `dir`, trades, shuts down cleanly (final snapshot);
/// returns the state digest after shutdown.
async fn session(dir: &Path, round: usize) -> u64 {
    let server = start(dir, marketplace(), EngineSettings::default()).await;
    trade(server.addr, round).await;
    let engine = server.engine.clone();
    server.shutdown().await.unwrap();
    engine.state_digest()
}

/// Restarts over `dir`; returns the digest and how restore went.
async fn restart(dir: &Path) -> (u64, leadex::storage::RestoreReport) {
    let server = start(dir, marketplace(), EngineSettings::default()).await;
    let (digest, report) = (server.engine.state_digest(), server.restored.clone());
    // Shut down without trading: the final snapshot changes nothing.
    server.shutdown().await.unwrap();
    (digest, report)
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_a_snapshot_equals_the_state_before() {
    let dir = tempfile::tempdir().unwrap();
    let before = session(dir.path(), 0).await;
    let (after, report) = restart(dir.path()).await;
    assert_eq!(after, before, "restore from the snapshot: {report:?}");
    assert!(
        matches!(report.snapshot, Some(JournalPosition::File { last_lsn }) if last_lsn > 20),
        "{report:?}"
    );
    assert_eq!(report.events, 0, "the snapshot covers the whole journal");

    // The same state from a full replay of the journal.
    std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
    let (replayed, report) = restart(dir.path()).await;
    assert_eq!(replayed, before, "restore by full replay: {report:?}");
    assert_eq!(report.snapshot, None);
    assert!(report.events > 20, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_is_reported_and_restore_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    session(dir.path(), 0).await;
    let before = session(dir.path(), 1).await;
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");

    // Damage one byte in the middle of the newest snapshot.
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&files[1], &bytes).unwrap();
    let (after, report) = restart(dir.path()).await;
    assert_eq!(after, before, "{report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert!(report.rejected[0].contains("checksum"), "{report:?}");
    assert!(
        report.snapshot.is_some() && report.events > 0,
        "older snapshot + longer tail: {report:?}"
    );

    // Both damaged (the restart above wrote a fresh one: damage them all).
    for file in snapshot_files(dir.path()) {
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&file, &bytes).unwrap();
    }
    let (after, report) = restart(dir.path()).await;
    assert_eq!(after, before, "{report:?}");
    assert_eq!(report.rejected.len(), 2, "{report:?}");
    assert_eq!(report.snapshot, None, "full replay: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_tail_is_cut_and_the_rest_restored() {
    let dir = tempfile::tempdir().unwrap();
    let before = session(dir.path(), 0).await;
    // A crash in the middle of a write: half a record's worth of bytes
    // after the last good record (a length field, then garbage).
    let journal = dir.path().join("journal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ldxj"))
        .collect();
    segments.sort();
    let last = segments.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    bytes.extend_from_slice(&200u32.to_le_bytes());
    bytes.extend_from_slice(&[0xab; 37]);
    std::fs::write(last, &bytes).unwrap();
    let (after, report) = restart(dir.path()).await;
    assert_eq!(report.torn_bytes_cut, 41, "{report:?}");
    assert_eq!(after, before, "{report:?}");
    // Cut for good: the next start sees a clean journal.
    let (again, report) = restart(dir.path()).await;
    assert_eq!((again, report.torn_bytes_cut), (before, 0), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_shorter_than_its_snapshot_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    session(dir.path(), 0).await;
    // Lose the journal's records (as a power loss under fsync = "never"
    // could), keeping the snapshot that covers them: every segment cut
    // back to its 28-byte header.
    let journal = dir.path().join("journal");
    for entry in std::fs::read_dir(&journal).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "ldxj") {
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(28).unwrap();
        }
    }
    let loaded = leadex_config::Loaded {
        config: config(dir.path(), EngineSettings::default()),
        marketplace: marketplace(),
        source: "test".into(),
    };
    let Err(error) = leadex::run::start(loaded).await else {
        panic!("started over a journal missing what its snapshot covers")
    };
    let message = format!("{error:#}");
    assert!(
        message.contains("records it acknowledged are gone"),
        "{message}"
    );
}
