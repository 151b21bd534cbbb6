//! The typed configuration: one struct per section, each field with its
//! default, and range checks that name the offending key.
//!
//! Every struct refuses unknown keys (`deny_unknown_fields`), so a typo such
//! as `lisen = ...` is an error instead of a silently ignored setting.

use leadex_engine::spec::EngineSettings;
use serde::{Deserialize, Deserializer, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The largest request body the seller protocol allows, in bytes (64 KiB).
pub const PROTOCOL_BODY_LIMIT_BYTES_MAX: usize = 64 * 1024;

/// Smallest journal segment accepted, in bytes (1 MiB): smaller segments
/// would rotate files many times a second under load.
pub const SEGMENT_BYTES_MIN: u64 = 1024 * 1024;

/// Largest journal segment accepted, in bytes (1 GiB): bounds the work of
/// scanning one segment on start.
pub const SEGMENT_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// Largest journal queue accepted, in append requests: the bound the file
/// journal itself accepts (`leadex_persistence::JournalOptions::QUEUE_CAPACITY_MAX`),
/// repeated here so a bad value is refused with the config's key before
/// anything starts.
pub const QUEUE_CAPACITY_MAX: usize = 1 << 20;

/// Longest timeout accepted for any server timeout, in milliseconds (1 hour).
pub const TIMEOUT_MS_MAX: u64 = 3_600_000;

/// The whole configuration of a leadex process.
///
/// Built by [`crate::load`] from built-in defaults, an optional TOML file and
/// `LEADEX_*` environment overrides; [`Config::default`] is what a process
/// started without a file and without overrides runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP listener and its limits (`[server]`).
    pub server: ServerConfig,
    /// The admin API's listener and limits (`[admin]`).
    pub admin: AdminConfig,
    /// Engine tunables (`[engine]`): price lock, pricing rule, bounds.
    pub engine: EngineSettings,
    /// The durable journal (`[storage]`).
    pub storage: StorageConfig,
    /// Logging (`[log]`).
    pub log: LogConfig,
    /// Where the marketplace is declared (`[marketplace]`).
    pub marketplace: MarketplaceConfig,
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on. Default `127.0.0.1:8080`.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Deadline to receive a request's head, in milliseconds. Default 5000.
    pub header_read_timeout_ms: u64,
    /// Deadline for one request, from its head to its answer, in
    /// milliseconds. Default 10000.
    pub request_timeout_ms: u64,
    /// Largest request body accepted, in bytes. Default and maximum 65536
    /// (the protocol's limit).
    pub body_limit_bytes: usize,
    /// Most connections served at once; further connections wait to be
    /// accepted. Default 10000.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_read_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            body_limit_bytes: PROTOCOL_BODY_LIMIT_BYTES_MAX,
            max_connections: 10_000,
        }
    }
}

/// `[admin]`: the admin API, on its own port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address and port of the admin API. Default `127.0.0.1:8081`; keep it
    /// off public interfaces.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Deadline for one admin request, ms. Default 10000.
    pub request_timeout_ms: u64,
    /// Largest admin request body, bytes. Default 1048576 (1 MiB).
    pub body_limit_bytes: usize,
    /// Deliver webhooks to private, loopback and link-local addresses too.
    /// Default false (SSRF protection); for tests and single-host setups.
    pub webhook_allow_private: bool,
    /// Host names (or IP literals) webhooks may reach even when they
    /// resolve to private addresses, e.g. an internal CRM. Default none.
    pub webhook_allowed_hosts: Vec<String>,
    /// Deadline of one webhook attempt, ms. Default 10000.
    pub webhook_timeout_ms: u64,
    /// Attempts before a webhook delivery is marked failed. Default 8.
    pub webhook_max_attempts: u32,
    /// Delay after a webhook's first failed attempt, ms; doubles each time
    /// (with jitter) up to one hour. Default 1000.
    pub webhook_backoff_base_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            request_timeout_ms: 10_000,
            body_limit_bytes: 1 << 20,
            webhook_allow_private: false,
            webhook_allowed_hosts: Vec::new(),
            webhook_timeout_ms: 10_000,
            webhook_max_attempts: 8,
            webhook_backoff_base_ms: 1_000,
        }
    }
}

/// Parses `listen` with a message that shows the bad value: serde's own
/// message ("invalid socket address syntax") does not say what was read.
fn socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim().parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an address (expected IP:port, e.g. 127.0.0.1:8080)"
        ))
    })
}

/// Which storage backend keeps the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// The embedded journal: segment files in `<storage.path>/journal`,
    /// snapshots in `<storage.path>/snapshots`. Needs nothing else.
    #[default]
    File,
    /// A Kafka topic holds the journal (`[storage.kafka]`), Redis holds the
    /// snapshots (`[storage.redis]`).
    Kafka,
}

/// `[storage.kafka]`: the Kafka journal (used when `backend = "kafka"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`. Required.
    pub brokers: String,
    /// Journal topic. Default `leadex.events`.
    pub topic: String,
    /// Partitions of the topic when leadex creates it; an existing topic
    /// must have this many. Default 1 (one total order).
    pub partitions: i32,
    /// Replication factor when leadex creates the topic. Default 1; use 3
    /// on a production cluster.
    pub replication_factor: i32,
    /// librdkafka `message.timeout.ms`: how long a record is retried before
    /// its outcome is reconciled. Default 10000.
    pub message_timeout_ms: u64,
    /// With records in flight and no delivery for this long, the journal
    /// counts as unavailable and posts are refused at once. Default 2000.
    pub unavailable_after_ms: u64,
    /// Extra librdkafka settings (SASL, TLS, …), passed through as given.
    pub extra: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topic: "leadex.events".into(),
            partitions: 1,
            replication_factor: 1,
            message_timeout_ms: 10_000,
            unavailable_after_ms: 2_000,
            extra: Default::default(),
        }
    }
}

/// `[storage.redis]`: where the Kafka backend keeps snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`. Required with the Kafka backend.
    pub url: String,
    /// Key prefix; snapshots live at `<prefix>:snapshot:*`. Default `leadex`.
    pub key_prefix: String,
    /// Longest one Redis operation may take, ms. Default 10000.
    pub op_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: String::new(),
            key_prefix: "leadex".into(),
            op_timeout_ms: 10_000,
        }
    }
}

/// When the journal forces its writes to stable storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// fsync before a sale is acknowledged: an acknowledged sale survives a
    /// process kill and a power loss.
    #[default]
    Always,
    /// Never fsync: an acknowledged sale survives a process kill (the
    /// operating system's page cache holds it) but not a power loss or a
    /// kernel crash. For benchmarks and disposable environments.
    Never,
}

/// `[storage]`: the durable journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Storage backend: `file` (default) or `kafka`.
    pub backend: StorageBackend,
    /// Data directory; the journal lives in `<path>/journal`. Relative paths
    /// are relative to the process's working directory. Default `data`.
    pub path: PathBuf,
    /// When to fsync. Default `always`.
    pub fsync: FsyncMode,
    /// Size at which a journal segment file is closed and a new one started,
    /// in bytes. Default 64 MiB, at least 1 MiB, at most 1 GiB.
    pub segment_bytes: u64,
    /// Most append requests waiting for the journal writer; past it requests
    /// are refused as overloaded. Default 65536.
    pub queue_capacity: usize,
    /// How often a snapshot is taken, ms (one is also taken at a clean
    /// shutdown). Default 300000 (5 min); 1000 to 86400000.
    pub snapshot_interval_ms: u64,
    /// Longest a post waits to learn whether its sale is durable before it
    /// is answered 503 `persistence_unavailable` (the sale's outcome then
    /// follows the journal). Default 30000; 1000 to 600000.
    pub durable_wait_ms: u64,
    /// The Kafka journal.
    pub kafka: KafkaConfig,
    /// The Redis snapshot store.
    pub redis: RedisConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::File,
            path: PathBuf::from("data"),
            fsync: FsyncMode::Always,
            segment_bytes: 64 * 1024 * 1024,
            queue_capacity: 65_536,
            snapshot_interval_ms: 300_000,
            durable_wait_ms: 30_000,
            kafka: KafkaConfig::default(),
            redis: RedisConfig::default(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `warn,leadex=debug`. Default `info`.
    pub level: String,
    /// Line format. Default `text`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// `[marketplace]`: where sellers, buyers and campaigns are declared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketplaceConfig {
    /// Marketplace TOML files, concatenated in this order. In a config file,
    /// relative paths are relative to the directory of that file; after
    /// [`crate::load`] they are resolved. Default: none (empty marketplace).
    pub files: Vec<PathBuf>,
}

/// A configuration value out of range: the dotted key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key, e.g. `server.body_limit_bytes`.
    pub key: String,
    /// What is wrong, e.g. `must be at most 65536`.
    pub message: String,
}

fn invalid(key: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), Invalid> {
    if value < min || value > max {
        return Err(invalid(
            key,
            format!("must be between {min} and {max} (is {value})"),
        ));
    }
    Ok(())
}

impl Config {
    /// Checks every range and the engine settings; the first problem found
    /// is returned with its key. The marketplace is checked separately, by
    /// [`crate::load`], because it lives in other files.
    pub fn validate(&self) -> Result<(), Invalid> {
        let s = &self.server;
        check_range(
            "server.header_read_timeout_ms",
            s.header_read_timeout_ms,
            1,
            TIMEOUT_MS_MAX,
        )?;
        check_range(
            "server.request_timeout_ms",
            s.request_timeout_ms,
            1,
            TIMEOUT_MS_MAX,
        )?;
        check_range(
            "server.body_limit_bytes",
            s.body_limit_bytes,
            1,
            PROTOCOL_BODY_LIMIT_BYTES_MAX,
        )?;
        check_range("server.max_connections", s.max_connections, 1, 1_000_000)?;
        self.engine.validate().map_err(|e| Invalid {
            key: e.path,
            message: e.message,
        })?;
        let a = &self.admin;
        check_range(
            "admin.request_timeout_ms",
            a.request_timeout_ms,
            1,
            TIMEOUT_MS_MAX,
        )?;
        check_range("admin.body_limit_bytes", a.body_limit_bytes, 1024, 64 << 20)?;
        check_range(
            "admin.webhook_timeout_ms",
            a.webhook_timeout_ms,
            100,
            60_000,
        )?;
        check_range("admin.webhook_max_attempts", a.webhook_max_attempts, 1, 50)?;
        check_range(
            "admin.webhook_backoff_base_ms",
            a.webhook_backoff_base_ms,
            10,
            3_600_000,
        )?;
        if a.listen == s.listen && a.listen.port() != 0 {
            return Err(invalid(
                "admin.listen",
                format!("must differ from server.listen ({})", s.listen),
            ));
        }
        let st = &self.storage;
        if st.path.as_os_str().is_empty() {
            return Err(invalid("storage.path", "must not be empty"));
        }
        check_range(
            "storage.segment_bytes",
            st.segment_bytes,
            SEGMENT_BYTES_MIN,
            SEGMENT_BYTES_MAX,
        )?;
        check_range(
            "storage.queue_capacity",
            st.queue_capacity,
            1,
            QUEUE_CAPACITY_MAX,
        )?;
        check_range(
            "storage.snapshot_interval_ms",
            st.snapshot_interval_ms,
            1_000,
            86_400_000,
        )?;
        check_range(
            "storage.durable_wait_ms",
            st.durable_wait_ms,
            1_000,
            600_000,
        )?;
        if st.backend == StorageBackend::Kafka {
            if st.kafka.brokers.trim().is_empty() {
                return Err(invalid(
                    "storage.kafka.brokers",
                    "is required with backend = \"kafka\" (e.g. \"kafka1:9092,kafka2:9092\")",
                ));
            }
            if st.kafka.topic.trim().is_empty() {
                return Err(invalid("storage.kafka.topic", "must not be empty"));
            }
            check_range("storage.kafka.partitions", st.kafka.partitions, 1, 10_000)?;
            check_range(
                "storage.kafka.replication_factor",
                st.kafka.replication_factor,
                1,
                100,
            )?;
            check_range(
                "storage.kafka.message_timeout_ms",
                st.kafka.message_timeout_ms,
                1_000,
                600_000,
            )?;
            check_range(
                "storage.kafka.unavailable_after_ms",
                st.kafka.unavailable_after_ms,
                100,
                600_000,
            )?;
            if !st.redis.url.starts_with("redis://") && !st.redis.url.starts_with("rediss://") {
                return Err(invalid(
                    "storage.redis.url",
                    "is required with backend = \"kafka\" (e.g. \"redis://127.0.0.1:6379\")",
                ));
            }
            check_range(
                "storage.redis.op_timeout_ms",
                st.redis.op_timeout_ms,
                100,
                600_000,
            )?;
        }
        if self.log.level.trim().is_empty() {
            return Err(invalid("log.level", "must not be empty (e.g. \"info\")"));
        }
        for (i, file) in self.marketplace.files.iter().enumerate() {
            if file.as_os_str().is_empty() {
                return Err(invalid(
                    &format!("marketplace.files[{i}]"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let c = Config::default();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.header_read_timeout_ms, 5_000);
        assert_eq!(c.server.request_timeout_ms, 10_000);
        assert_eq!(c.server.body_limit_bytes, 65_536);
        assert_eq!(c.server.max_connections, 10_000);
        assert_eq!(c.storage.backend, StorageBackend::File);
        assert_eq!(c.storage.path, PathBuf::from("data"));
        assert_eq!(c.storage.fsync, FsyncMode::Always);
        assert_eq!(c.storage.segment_bytes, 64 << 20);
        assert_eq!(c.storage.queue_capacity, 65_536);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.marketplace.files.is_empty());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        type BreakIt = fn(&mut Config);
        let cases: [(&str, BreakIt); 11] = [
            ("server.body_limit_bytes", |c| {
                c.server.body_limit_bytes = 65_537
            }),
            ("server.request_timeout_ms", |c| {
                c.server.request_timeout_ms = 0
            }),
            ("server.max_connections", |c| c.server.max_connections = 0),
            ("storage.segment_bytes", |c| c.storage.segment_bytes = 1024),
            ("storage.queue_capacity", |c| c.storage.queue_capacity = 0),
            ("storage.path", |c| c.storage.path = PathBuf::new()),
            ("admin.listen", |c| c.admin.listen = c.server.listen),
            ("admin.body_limit_bytes", |c| c.admin.body_limit_bytes = 10),
            ("admin.request_timeout_ms", |c| {
                c.admin.request_timeout_ms = 0
            }),
            ("log.level", |c| c.log.level = "  ".into()),
            ("engine.price_lock_ms", |c| c.engine.price_lock_ms = 5),
        ];
        for (key, break_it) in cases {
            let mut c = Config::default();
            break_it(&mut c);
            assert_eq!(c.validate().unwrap_err().key, key);
        }
    }
}
