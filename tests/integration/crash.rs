//! `kill -9` of the real binary while sales are in flight loses no
//! acknowledged sale and doubles nothing, on both storage backends: the
//! embedded file journal, and Kafka (Tansu, from `scripts/services`) with
//! snapshots in Redis.

use super::services::StorageServices;
use super::support::*;
use leadex_engine::event::Event;
use leadex_engine::journal::JournalReader;
use leadex_engine::lead::SaleType;
use leadex_engine::spec::CapLimit;
use leadex_engine::testing::{campaign, market};
use leadex_persistence::FileJournalReader;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;

/// The server process; killed if the test fails before it does.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_server(config: &Path, port: u16) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_leadex"))
            .arg("--config")
            .arg(config)
            .env("LEADEX_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("LEADEX_ADMIN__LISTEN", "127.0.0.1:0")
            .env("LEADEX_LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the leadex binary starts"),
    )
}

async fn wait_ready(addr: SocketAddr) {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = hyper::Request::get(format!("http://{addr}/healthz"))
            .body(http_body_util::Full::new(hyper::body::Bytes::new()))
            .unwrap();
        if let Ok(r) = c.request(req).await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server at {addr} not ready in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the server under test keeps its state.
enum Backend {
    File,
    Kafka(StorageServices),
}

impl Backend {
    /// The `[storage]` section of the server's config.
    fn config(&self, data: &Path) -> String {
        let path = format!("path = {:?}\n", data.display().to_string());
        match self {
            Backend::File => format!("[storage]\n{path}fsync = \"always\"\n"),
            Backend::Kafka(s) => {
                format!("[storage]\nbackend = \"kafka\"\n{path}{}", s.config_toml())
            }
        }
    }

    /// Every `LeadSold` stored: lead id → (buyer id, buyer price) per sale.
    fn stored_sales(&self, data: &Path) -> Vec<(String, Vec<(String, u64)>)> {
        let mut out = Vec::new();
        let mut visit = |_, event| {
            if let Event::LeadSold(s) = event {
                let sales = s
                    .sales
                    .iter()
                    .map(|x| (x.bid.buyer_id.clone(), x.bid.buyer_price_cents))
                    .collect();
                out.push((s.lead_id.to_string(), sales));
            }
        };
        match self {
            Backend::File => {
                let mut reader =
                    FileJournalReader::open(data.join("journal")).expect("journal readable");
                reader.replay(&mut visit).expect("journal replays");
            }
            Backend::Kafka(s) => s.replay_topic(&mut visit),
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_sale_file_backend() {
    kill_9_loses_no_acknowledged_sale(Backend::File).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_sale_kafka_backend() {
    kill_9_loses_no_acknowledged_sale(Backend::Kafka(StorageServices::from_env("crash"))).await;
}

async fn kill_9_loses_no_acknowledged_sale(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut a = campaign("funded", "a", SaleType::Exclusive, 1000);
    a.budget_cents = 100 * 1000;
    let mut b = campaign("capped", "b", SaleType::Exclusive, 900);
    b.caps.monthly = CapLimit {
        leads: Some(80),
        spend_cents: None,
    };
    let m = market(&["a", "b"], vec![a, b]);
    std::fs::write(dir.path().join("market.toml"), toml::to_string(&m).unwrap()).unwrap();
    let config = dir.path().join("leadex.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "{}\n[marketplace]\nfiles = [\"market.toml\"]\n",
            backend.config(&data)
        ),
    )
    .unwrap();

    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = spawn_server(&config, port);
    wait_ready(addr).await;

    // Clients post distinct leads until the server dies under them.
    let acked: Arc<parking_lot::Mutex<Vec<(String, String, String)>>> = Default::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let dead = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (acked, next, dead) = (acked.clone(), next.clone(), dead.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            while !dead.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let body = lead_json(&phone(i)).to_string();
                let req = hyper::Request::post(format!("http://{addr}/v1/leads"))
                    .header("authorization", format!("Bearer {KEY}"))
                    .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                    .unwrap();
                let Ok(resp) = c.request(req).await else {
                    break;
                };
                let Ok(bytes) = http_body_util::BodyExt::collect(resp.into_body()).await else {
                    break;
                };
                let v: serde_json::Value = serde_json::from_slice(&bytes.to_bytes()).unwrap();
                if v["status"] == "sold" {
                    let lead = v["lead_id"].as_str().unwrap().to_owned();
                    let buyer = v["sales"][0]["buyer"].as_str().unwrap().to_owned();
                    acked.lock().push((lead, buyer, phone(i)));
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().len() < 60 {
        assert!(
            Instant::now() < deadline,
            "no progress before the kill: {} sold",
            acked.lock().len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.0.kill().expect("SIGKILL"); // std's kill() sends SIGKILL on Unix
    server.0.wait().unwrap();
    dead.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().clone();

    // The journal holds every acknowledged sale exactly once.
    let journal = backend.stored_sales(&data);
    let mut seen = HashSet::new();
    for (lead, _) in &journal {
        assert!(seen.insert(lead.clone()), "lead {lead} journaled twice");
    }
    for (lead, _, _) in &acked {
        assert!(seen.contains(lead), "acknowledged sale {lead} lost");
    }
    // Sales durable but not acknowledged can only be the in-flight ones.
    assert!(
        journal.len() - acked.len() <= CLIENTS,
        "{} journaled, {} acked",
        journal.len(),
        acked.len()
    );

    eprintln!(
        "crash test: {} sales acknowledged, {} journaled at the kill",
        acked.len(),
        journal.len()
    );
    // Restart on the same data: the restored state equals the journal.
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = spawn_server(&config, port);
    wait_ready(addr).await;
    let c = client();
    let (_, metrics) = get(&c, addr, "/metrics").await;
    let journal_spend: u64 = journal
        .iter()
        .flat_map(|(_, s)| s.iter().map(|x| x.1))
        .sum();
    assert_eq!(
        metric(&metrics, "leadex_leads_sold_total"),
        journal.len() as u64
    );
    assert_eq!(metric(&metrics, "leadex_spend_cents_total"), journal_spend);

    // An acknowledged consumer is still a duplicate for its buyer (another
    // buyer may take it: dedupe is per buyer account).
    for (_, buyer, phone) in acked.iter().take(20) {
        let (_, v) = post(
            &c,
            addr,
            "/v1/leads",
            Some(KEY),
            &lead_json(phone).to_string(),
        )
        .await;
        if v["status"] == "sold" {
            assert_ne!(
                v["sales"][0]["buyer"].as_str(),
                Some(buyer.as_str()),
                "dedupe entry lost: {v}"
            );
        }
    }

    // Budgets and caps carry over: selling on until nothing sells gives
    // exactly 100 leads to the funded campaign and 80 to the capped one.
    let mut i = 1_000_000;
    loop {
        let (status, v) = post(
            &c,
            addr,
            "/v1/leads",
            Some(KEY),
            &lead_json(&phone(i)).to_string(),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        i += 1;
        if v["status"] != "sold" {
            break;
        }
        assert!(i < 1_000_400, "sold far more than budgets and caps allow");
    }
    // SIGTERM: a clean shutdown flushes and exits 0.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.0.id().to_string())
        .status();
    let status = server.0.wait().unwrap();
    assert!(status.success(), "clean shutdown exits 0, got {status}");
    let mut per_buyer: HashMap<String, u64> = HashMap::new();
    for (_, sales) in backend.stored_sales(&data) {
        for (buyer, _) in sales {
            *per_buyer.entry(buyer).or_default() += 1;
        }
    }
    assert_eq!(per_buyer.get("a"), Some(&100), "{per_buyer:?}");
    assert_eq!(per_buyer.get("b"), Some(&80), "{per_buyer:?}");
}
