//! # leadex-engine
//!
//! The in-memory core of leadex: it matches pings against campaigns, runs the
//! auction, holds price locks, and settles posts by charging budgets and caps
//! exactly. It does no I/O and knows nothing of HTTP or JSON: the protocol
//! crate turns bytes into [`Ping`]s, the persistence crate implements the
//! [`Journal`] this crate defines, and the binary wires them.
//!
//! ```
//! use leadex_engine::{spec::*, lead::*, Engine, ManualClock};
//! use std::sync::Arc;
//!
//! let market = MarketplaceSpec {
//!     sellers: vec![SellerSpec { id: "s1".into(), name: String::new(),
//!         api_key_sha256: vec![], floor_cents: 0, margin_bps: 0, verticals: vec![], active: true }],
//!     buyers: vec![BuyerSpec { id: "b1".into(), name: "Buyer One".into(), parent_id: None }],
//!     campaigns: vec![],
//! };
//! let clock = Arc::new(ManualClock::new(1_700_000_000_000));
//! let engine = Engine::new(EngineSettings::default(), &market, clock).unwrap();
//! let ping = Ping {
//!     attributes: LeadAttributes::new(Vertical::Auto, Zip::parse("90210").unwrap(), UsState::parse("CA").unwrap()),
//!     sale_type: SaleTypeRequest::Any,
//!     consent: None,
//! };
//! let seller = engine.seller_by_id("s1").unwrap();
//! let answer = engine.ping(&seller, &ping).unwrap();
//! assert!(answer.bids.is_empty());
//! ```

pub mod clock;
pub mod event;
pub mod geo;
pub mod ids;
pub mod image;
pub mod journal;
pub mod lead;
pub mod spec;

pub use clock::{Clock, ManualClock, SystemClock};
pub use event::Event;
pub use ids::{BidId, LeadId, PingId};
pub use journal::{Journal, JournalError, JournalPosition, JournalReader, MemoryJournal};
pub mod auction;
pub mod counters;
pub mod engine;
pub mod hash;
pub mod index;
pub mod localtime;
pub mod routing;
pub mod snapshot;
pub mod testing;
pub mod zips;

pub use auction::NoBidReason;
pub use engine::{DirectOutcome, Engine, EngineError, PingAnswer, Settlement};
