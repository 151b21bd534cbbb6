//! # leadex-config
//!
//! Everything a leadex process reads before it serves: the typed
//! [`Config`] (TOML file, then `LEADEX_*` environment overrides, then
//! validation), the marketplace files it names (sellers, buyers and
//! campaigns as a [`MarketplaceSpec`]), and, in [`synth`], the synthetic
//! marketplace generator and lead sampler used by benchmarks, the load
//! tester and the shipped demo marketplace.
//!
//! Loading is pure: [`load`] is given the environment, so tests need no
//! global state; [`load_from_process_env`] is the binary's shortcut. Every
//! error names the file or key at fault, e.g.
//! `invalid config: server.listen: "abc" is not an address (from LEADEX_SERVER__LISTEN)`.
//!
//! ```
//! let env = [("LEADEX_SERVER__LISTEN".to_string(), "0.0.0.0:9000".to_string())];
//! let loaded = leadex_config::load(None, env)?;
//! assert_eq!(loaded.config.server.listen.port(), 9000);
//! assert_eq!(loaded.config.storage.path, std::path::PathBuf::from("data"));
//! assert!(loaded.marketplace.campaigns.is_empty());
//!
//! let bad = [("LEADEX_SERVER__LISTEN".to_string(), "abc".to_string())];
//! let error = leadex_config::load(None, bad).unwrap_err();
//! assert!(error.to_string().starts_with("invalid config: server.listen:"));
//! # Ok::<(), leadex_config::ConfigError>(())
//! ```
//!
//! [`MarketplaceSpec`]: leadex_engine::spec::MarketplaceSpec

mod error;
mod load;
mod marketplace;
mod settings;
pub mod synth;

pub use error::ConfigError;
pub use load::{load, load_from_process_env, Loaded, ADMIN_KEY_ENV, ENV_KEY_SEPARATOR, ENV_PREFIX};
pub use marketplace::{marketplace_to_toml, read_marketplace};
pub use settings::{
    AdminConfig, Config, FsyncMode, Invalid, KafkaConfig, LogConfig, LogFormat, MarketplaceConfig,
    RedisConfig, ServerConfig, StorageBackend, StorageConfig, PROTOCOL_BODY_LIMIT_BYTES_MAX,
    QUEUE_CAPACITY_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, TIMEOUT_MS_MAX,
};
