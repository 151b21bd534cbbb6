//! The Redis and Kafka-protocol broker of a test run, from the environment
//! `scripts/services` sets up (docs/SERVICES.md). A test that needs them
//! fails, never skips, when they are missing. Every test gets its own topic
//! and Redis key prefix, so tests run side by side on one broker.

use super::support::free_port;
use leadex_engine::journal::Lsn;
use leadex_engine::Event;
use leadex_persistence::kafka::{KafkaJournal, KafkaOptions};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests through ./scripts/test (or scripts/services), \
             which installs and starts Redis and a Kafka-protocol broker"
        )
    })
}

/// A unique name per call: pid, time and a counter.
pub fn unique(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("leadex-test-{name}-{}-{nanos}-{n}", std::process::id())
}

/// Kafka and Redis for one test.
#[derive(Debug, Clone)]
pub struct StorageServices {
    pub brokers: String,
    pub redis_url: String,
    pub topic: String,
    pub key_prefix: String,
}

impl StorageServices {
    /// The run's shared broker and Redis, with a fresh topic and prefix.
    pub fn from_env(name: &str) -> StorageServices {
        StorageServices::with_brokers(&env("TEST_LEADEX_KAFKA_BROKERS"), name)
    }

    /// The run's Redis with the given brokers (a test's own broker).
    pub fn with_brokers(brokers: &str, name: &str) -> StorageServices {
        let topic = unique(name);
        StorageServices {
            brokers: brokers.to_string(),
            redis_url: env("TEST_LEADEX_REDIS_URL"),
            key_prefix: topic.clone(),
            topic,
        }
    }

    /// `[storage.kafka]` and `[storage.redis]` for a config file.
    pub fn config_toml(&self) -> String {
        format!(
            "[storage.kafka]\nbrokers = {:?}\ntopic = {:?}\n\n[storage.redis]\nurl = {:?}\nkey_prefix = {:?}\n",
            self.brokers, self.topic, self.redis_url, self.key_prefix
        )
    }

    /// Points a config at these services.
    pub fn apply(&self, config: &mut leadex_config::Config) {
        config.storage.backend = leadex_config::StorageBackend::Kafka;
        config.storage.kafka.brokers = self.brokers.clone();
        config.storage.kafka.topic = self.topic.clone();
        config.storage.redis.url = self.redis_url.clone();
        config.storage.redis.key_prefix = self.key_prefix.clone();
    }

    pub fn kafka_options(&self) -> KafkaOptions {
        let mut o = KafkaOptions::new(self.brokers.clone());
        o.topic = self.topic.clone();
        o
    }

    /// Visits every event in the topic (no server may be writing it).
    pub fn replay_topic(&self, visit: &mut dyn FnMut(Lsn, Event)) {
        let (journal, _) =
            KafkaJournal::open(self.kafka_options(), None, visit).expect("topic replays");
        journal.shutdown();
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "port {port} did not open in 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Tansu broker of the test's own (to freeze and resume).
pub use leadex_persistence::testing::OwnTansu as OwnBroker;

/// A redis-server of the test's own, on a fixed port (to stop and start
/// again on the same address).
pub struct OwnRedis {
    child: Option<Child>,
    pub port: u16,
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        let mut r = OwnRedis {
            child: None,
            port: free_port(),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port.
    pub fn restart(&mut self) {
        let child = Command::new(env("TEST_LEADEX_REDIS_SERVER"))
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--port",
            ])
            .arg(self.port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_port(self.port);
    }

    /// Kills it (its data is gone; snapshots are rewritten).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
