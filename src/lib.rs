//! # leadex
//!
//! The `leadex` server: it wires the engine (`leadex-engine`), the wire
//! protocol (`leadex-protocol`), the durable journal (`leadex-persistence`)
//! and configuration (`leadex-config`) into an HTTP service for sellers.
//! The binary in `src/main.rs` is a thin shell around [`run::start`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let loaded = leadex_config::load(Some(std::path::Path::new("config/leadex.toml")), std::env::vars())?;
//! let running = leadex::run::start(loaded).await?;
//! println!("serving on {}", running.addr);
//! running.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod metrics;
pub mod run;
pub mod server;
pub mod storage;
