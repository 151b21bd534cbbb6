//! Realistic events for tests, benchmarks and examples, and helpers for the
//! Kafka tests (a replay that collects, a broker process of a test's own).
//! Not used by production code.
//!
//! Each builder takes a `seed` and varies ids, prices, attributes and list
//! lengths with it, so a sequence of events exercises the encoding (varints
//! of several widths, optional fields set and unset, empty and long lists).

use crate::kafka::{KafkaJournal, KafkaOptions};
use leadex_engine::event::{BidRecord, LeadSold, PingIssued, SaleRecord};
use leadex_engine::journal::Lsn;
use leadex_engine::lead::{
    Consent, Contact, Credit, Device, Gender, Lead, LeadAttributes, Ping, SaleType,
    SaleTypeRequest, UsState, Vertical, Zip, STATE_CODES,
};
use leadex_engine::{Event, JournalPosition, LeadId, PingId};

/// Unix ms of 2023-11-14, a base for event times.
const BASE_TIME_MS: i64 = 1_700_000_000_000;

/// A `PingIssued` event with one to four bids.
pub fn ping_issued(seed: u64) -> Event {
    let issued_at_ms = BASE_TIME_MS + (seed as i64 % 1_000_000_000);
    Event::PingIssued(PingIssued {
        ping_id: PingId(u128::from(seed) << 64 | 0x5eed),
        seller_id: format!("seller-{}", seed % 13),
        issued_at_ms,
        expires_at_ms: issued_at_ms + 60_000,
        request_hash: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ping: ping(seed),
        bids: (0..1 + seed % 4).map(|i| bid(seed, i)).collect(),
    })
}

/// A `LeadSold` event with PII, sold to one to three buyers, after a ping or
/// (every third seed) by direct post.
pub fn lead_sold(seed: u64) -> Event {
    let mut ping = ping(seed);
    ping.consent = Some(Consent {
        tcpa_text: Some("By clicking Get Quotes I agree to be contacted by insurers.".into()),
        trustedform_cert_url: Some(format!("https://cert.trustedform.com/{seed:040x}")),
        jornaya_leadid: (seed % 2 == 0).then(|| format!("{seed:08X}-1111-2222-3333-444455556666")),
        consented_at_ms: Some(BASE_TIME_MS + seed as i64),
        ip: Some(format!("203.0.113.{}", seed % 250)),
    });
    let sold_at_ms = BASE_TIME_MS + (seed as i64 % 1_000_000_000) + 1_500;
    // An exclusive winner (bid 0 when seed % 5 == 0) blocks every shared sale.
    let sale_count = if seed % 5 == 0 { 1 } else { 1 + seed % 3 };
    Event::LeadSold(LeadSold {
        lead_id: LeadId(u128::from(seed) << 64 | 0x1ead),
        ping_id: (seed % 3 != 0).then(|| PingId(u128::from(seed) << 64 | 0x5eed)),
        seller_id: format!("seller-{}", seed % 13),
        sold_at_ms,
        lead: Lead {
            ping,
            contact: Contact {
                first_name: "Ada".into(),
                last_name: format!("Lovelace-{seed}"),
                phone: format!("310555{:04}", seed % 10_000),
                email: format!("ada.{seed}@example.com"),
                address: (seed % 2 == 1).then(|| format!("{} Main St", seed % 9_000 + 1)),
                city: Some("Beverly Hills".into()),
                date_of_birth: Some(format!(
                    "19{:02}-0{}-1{}",
                    50 + seed % 50,
                    1 + seed % 9,
                    seed % 10
                )),
            },
        },
        sales: (0..sale_count)
            .map(|i| SaleRecord {
                bid_index: i as u8,
                bid: bid(seed, i),
                dedupe_key: seed.rotate_left(17) ^ i,
                dedupe_expires_at_ms: sold_at_ms + 30 * 24 * 3_600_000,
            })
            .collect(),
    })
}

/// `ping_issued` for even seeds and `lead_sold` for odd ones.
pub fn event(seed: u64) -> Event {
    if seed % 2 == 0 {
        ping_issued(seed)
    } else {
        lead_sold(seed)
    }
}

fn ping(seed: u64) -> Ping {
    let vertical = Vertical::ALL[seed as usize % Vertical::COUNT];
    let state_index = seed as usize % STATE_CODES.len();
    let state = UsState::from_index(state_index).expect("invariant: index below COUNT");
    let zip =
        Zip::parse(&format!("{:05}", 10_000 + seed % 89_999)).expect("invariant: five digits");
    let mut attributes = LeadAttributes::new(vertical, zip, state);
    attributes.age = Some(18 + (seed % 70) as u8);
    attributes.gender = Some(Gender::ALL[seed as usize % Gender::ALL.len()]);
    attributes.credit = Some(Credit::ALL[seed as usize % Credit::ALL.len()]);
    attributes.homeowner = Some(seed % 2 == 0);
    attributes.currently_insured = Some(seed % 3 != 0);
    attributes.current_carrier = (seed % 3 != 0).then(|| "state farm".to_string());
    attributes.insured_months = Some((seed % 120) as u16);
    attributes.vehicles = Some(1 + (seed % 3) as u8);
    attributes.drivers = Some(1 + (seed % 2) as u8);
    attributes.income = Some(30_000 + (seed % 200) as u32 * 1_000);
    attributes.device = Some(Device::ALL[seed as usize % Device::ALL.len()]);
    attributes.source_id = Some(format!("src-{}", seed % 50));
    attributes.landing_page = Some("https://quotes.example.com/auto".into());
    attributes.ip = Some(format!("198.51.100.{}", seed % 250));
    attributes.user_agent = Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)".into());
    Ping {
        attributes,
        sale_type: SaleTypeRequest::ALL[seed as usize % 3],
        consent: None,
    }
}

fn bid(seed: u64, index: u64) -> BidRecord {
    let buyer_price_cents = 500 + (seed.wrapping_add(index) % 5_000);
    BidRecord {
        campaign_id: format!("campaign-{}-{index}", seed % 97),
        buyer_id: format!("buyer-{index}"),
        sale_type: if index == 0 && seed % 5 == 0 {
            SaleType::Exclusive
        } else {
            SaleType::Shared
        },
        buyer_price_cents,
        seller_price_cents: buyer_price_cents * 85 / 100,
    }
}

/// Opens a Kafka journal from `from` and returns it with every event its
/// replay visited, checking the replay's count against them.
pub fn open_kafka(
    options: &KafkaOptions,
    from: Option<&JournalPosition>,
) -> (KafkaJournal, Vec<(Lsn, Event)>) {
    let mut replayed = Vec::new();
    let (journal, stats) = KafkaJournal::open(options.clone(), from, &mut |lsn, event| {
        replayed.push((lsn, event))
    })
    .expect("open the kafka journal");
    assert_eq!(stats.events, replayed.len() as u64);
    (journal, replayed)
}

/// A Tansu broker of a test's own (to freeze and resume), in memory, on a
/// free port; the binary comes from `TEST_LEADEX_TANSU`, which
/// `scripts/services` sets. Stopped (SIGTERM, then SIGKILL after 6 s) on
/// drop.
pub struct OwnTansu {
    child: std::process::Child,
    port: u16,
}

impl OwnTansu {
    /// Starts it and waits (at most 15 s) until it listens. Panics, with a
    /// message saying how to run the tests, when `TEST_LEADEX_TANSU` is
    /// not set.
    pub fn start() -> OwnTansu {
        use std::time::{Duration, Instant};
        let binary = std::env::var("TEST_LEADEX_TANSU")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "TEST_LEADEX_TANSU is not set: run the tests through ./scripts/test (or \
                     scripts/services), which installs Tansu and starts the test services"
                )
            });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = std::process::Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                "leadex-test",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        let tansu = OwnTansu { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        // Bounded by the deadline.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {port} within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        tansu
    }

    /// Its bootstrap address, `127.0.0.1:<port>`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Freezes it (SIGSTOP): it keeps its in-memory topics, answers nothing,
    /// and its connections stay open, as a hung broker's do.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes it (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for OwnTansu {
    fn drop(&mut self) {
        use std::time::{Duration, Instant};
        // Resumed first: a stopped process does not handle SIGTERM.
        for signal in ["-CONT", "-TERM"] {
            let _ = std::process::Command::new("kill")
                .args([signal, &self.child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(6);
        // Bounded by the deadline; then SIGKILL.
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
