//! Restore and checkpoint: the engine's state from a snapshot plus the
//! journal's tail, and new snapshots built beside the hot path.
//!
//! **Restore** ([`newest_snapshot`] then the journal's own open-and-replay
//! from the snapshot's position): the newest snapshot that passes every
//! check is loaded into a fresh engine; one that fails is reported and the
//! next older one is tried; with none usable, the whole journal is
//! replayed. Replay is idempotent by event id (`Engine::apply`), so the
//! only requirement on the journal is that it still holds everything after
//! the snapshot's position.
//!
//! **Checkpoint** ([`checkpoint`]) never touches the serving engine: it
//! builds a *second* engine (a [`Replica`]: the engine and whatever else
//! rides the journal) from the newest snapshot, replays the journal
//! from that snapshot's position up to what is durable now, images it, and
//! stores the image with that position. Because the image comes only from
//! durable journal events applied in order, it is exact by construction:
//! no settlement in flight on the hot path can leak into it, and nothing on
//! the hot path waits for it. Its cost is a second copy of the state in
//! memory while it runs and the CPU of a restore. The file journal is then
//! compacted behind the *older* of the two snapshots kept, so a corrupt
//! newest snapshot still has a snapshot and a complete tail to fall back
//! on.

use crate::error::PersistenceError;
use crate::snapshot::{self, SnapshotContents};
use crate::store::SnapshotStore;
use crate::{FileJournal, FileJournalReader};
use leadex_engine::journal::{Lsn, ReplayStats};
use leadex_engine::routing::assign::RoutingImage;
use leadex_engine::{Engine, Event, JournalPosition};
use std::time::Instant;

/// A journal seen as a source of ordered events between positions.
pub trait JournalSource: Send + Sync {
    /// The position before the first event.
    fn start_position(&self) -> JournalPosition;
    /// Everything before this position is durable and readable now.
    fn durable_position(&self) -> Result<JournalPosition, PersistenceError>;
    /// Visits the events from `from` (inclusive) to `to` (exclusive), in
    /// order.
    fn read_range(
        &self,
        from: &JournalPosition,
        to: &JournalPosition,
        visit: &mut dyn FnMut(Lsn, Event),
    ) -> Result<ReplayStats, PersistenceError>;
    /// Lets the journal drop what `covered` covers (a snapshot that restore
    /// can fall back on holds it). Default: keep everything.
    fn compact(&self, covered: &JournalPosition) -> Result<(), PersistenceError> {
        let _ = covered;
        Ok(())
    }
    /// True when `position` is this journal's kind of position.
    fn owns(&self, position: &JournalPosition) -> bool;
}

fn file_lsn(position: &JournalPosition) -> Result<Lsn, PersistenceError> {
    match position {
        JournalPosition::File { last_lsn } => Ok(*last_lsn),
        other => Err(PersistenceError::InvalidOptions {
            reason: format!("a file journal cannot read from {other:?}"),
        }),
    }
}

impl JournalSource for FileJournal {
    fn start_position(&self) -> JournalPosition {
        JournalPosition::File { last_lsn: 0 }
    }

    fn durable_position(&self) -> Result<JournalPosition, PersistenceError> {
        Ok(JournalPosition::File {
            last_lsn: self.durable_lsn(),
        })
    }

    fn read_range(
        &self,
        from: &JournalPosition,
        to: &JournalPosition,
        visit: &mut dyn FnMut(Lsn, Event),
    ) -> Result<ReplayStats, PersistenceError> {
        let (after, upto) = (file_lsn(from)?, file_lsn(to)?);
        FileJournalReader::open(self.dir())?.replay_range(after, Some(upto), visit)
    }

    fn compact(&self, covered: &JournalPosition) -> Result<(), PersistenceError> {
        FileJournal::compact(self, file_lsn(covered)?).map(|_| ())
    }

    fn owns(&self, position: &JournalPosition) -> bool {
        position.is_file()
    }
}

/// The newest stored snapshot that passes every check and whose position
/// `owns` accepts (the backend's kind of journal), and a description of each one rejected on
/// the way (for logs and metrics).
pub fn newest_snapshot(
    store: &dyn SnapshotStore,
    owns: &dyn Fn(&JournalPosition) -> bool,
) -> Result<(Option<SnapshotContents>, Vec<String>), PersistenceError> {
    let mut rejected = Vec::new();
    for stored in store.list()? {
        match snapshot::decode(&stored.location, &stored.bytes) {
            Ok(contents) if owns(&contents.position) => return Ok((Some(contents), rejected)),
            Ok(contents) => rejected.push(format!(
                "snapshot {} covers {:?}, not this backend's journal",
                stored.location, contents.position
            )),
            Err(error) => rejected.push(error.to_string()),
        }
    }
    Ok((None, rejected))
}

/// What a checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The position the new snapshot covers.
    pub position: JournalPosition,
    /// Events replayed on top of the previous snapshot.
    pub events: u64,
    /// Size of the stored snapshot, bytes.
    pub bytes: usize,
    /// Wall time, ms.
    pub elapsed_ms: u64,
}

/// The state a journal rebuilds, as checkpoints and restores see it: the
/// engine, and whatever else keeps its changes in the same journal (the
/// admin API's records, as snapshot extensions).
pub trait Replica {
    /// Loads a snapshot into this fresh replica, before any event. On an
    /// error (a section that does not decode) nothing may have changed, so
    /// the caller can fall back to an older snapshot or a full replay.
    fn restore(&self, contents: &SnapshotContents) -> Result<(), String>;
    /// Applies one journaled event (idempotent by event id). An error is an
    /// event that cannot be applied (does not decode): stop, never skip.
    fn apply(&self, event: &Event) -> Result<(), String>;
    /// The whole state as snapshot contents covering `position`.
    fn capture(&self, position: JournalPosition) -> SnapshotContents;
}

/// The engine alone as a [`Replica`]. Its marketplace is part of its
/// state: a snapshot stores the marketplace in force (the seed from the
/// config, changed by the journal's `Market` records) and restore swaps it
/// in before the image is loaded.
pub struct EngineReplica {
    /// The engine.
    pub engine: std::sync::Arc<Engine>,
}

/// The snapshot extension holding the engine's routing state (agents,
/// teams, policies, open assignments, the backlog), postcard-encoded. A
/// snapshot without it (taken before routing existed) restores with no
/// routing state.
pub const ROUTING_EXTENSION: &str = "routing";

impl Replica for EngineReplica {
    fn restore(&self, contents: &SnapshotContents) -> Result<(), String> {
        // The fallible steps first, so that a failure leaves nothing loaded.
        let market = snapshot::decode_marketplace(&contents.marketplace)?;
        let routing = match contents
            .extensions
            .iter()
            .find(|x| x.name == ROUTING_EXTENSION)
        {
            Some(x) => postcard::from_bytes::<RoutingImage>(&x.bytes)
                .map_err(|e| format!("the snapshot's routing state does not decode: {e}"))?,
            None => RoutingImage::default(),
        };
        routing
            .spec
            .validate()
            .map_err(|e| format!("the snapshot's routing spec is invalid: {e}"))?;
        self.engine
            .replace_marketplace(&market)
            .map_err(|e| format!("the snapshot's marketplace is invalid: {e}"))?;
        self.engine
            .router()
            .restore(&routing)
            .map_err(|e| format!("the snapshot's routing spec is invalid: {e}"))?;
        self.engine.restore_image(&contents.engine);
        Ok(())
    }

    fn apply(&self, event: &Event) -> Result<(), String> {
        self.engine.apply(event);
        Ok(())
    }

    fn capture(&self, position: JournalPosition) -> SnapshotContents {
        SnapshotContents {
            position,
            taken_at_ms: self.engine.now_ms(),
            marketplace: snapshot::encode_marketplace(&self.engine.marketplace()),
            engine: self.engine.image(),
            extensions: vec![snapshot::Extension {
                name: ROUTING_EXTENSION.to_string(),
                bytes: postcard::to_stdvec(&self.engine.router().image())
                    .expect("invariant: a routing image always encodes"),
            }],
        }
    }
}

/// Builds and stores a new snapshot (see the module docs). `fresh` makes
/// an empty replica (an engine over the marketplace in force, and the rest
/// of the state empty). Returns `None` when nothing was journaled since the
/// newest snapshot.
pub fn checkpoint(
    fresh: &dyn Fn() -> Box<dyn Replica>,
    store: &dyn SnapshotStore,
    source: &dyn JournalSource,
) -> Result<Option<Checkpoint>, PersistenceError> {
    let started = Instant::now();
    let to = source.durable_position()?;
    let (base, rejected) = newest_snapshot(store, &|p| source.owns(p))?;
    for reason in &rejected {
        tracing::warn!(%reason, "snapshot unusable; checkpointing from an older one");
    }
    let from = base
        .as_ref()
        .map_or_else(|| source.start_position(), |b| b.position.clone());
    if base.is_some() && from == to {
        return Ok(None);
    }
    let replica = fresh();
    let corrupt = |location: &str, reason: String| PersistenceError::SnapshotCorrupt {
        location: location.to_string(),
        reason,
    };
    if let Some(base) = &base {
        replica
            .restore(base)
            .map_err(|reason| corrupt("(newest snapshot)", reason))?;
    }
    let mut failed = None;
    let stats = source.read_range(&from, &to, &mut |lsn, event| {
        if failed.is_none() {
            if let Err(reason) = replica.apply(&event) {
                failed = Some(format!("event at {lsn}: {reason}"));
            }
        }
    })?;
    if let Some(reason) = failed {
        return Err(corrupt("(journal)", reason));
    }
    let contents = replica.capture(to.clone());
    drop(replica);
    let bytes = snapshot::encode(&contents)?;
    store.put(&bytes)?;
    // Restore can fall back to `from` (the base snapshot, or the start) if
    // the new snapshot turns out unusable, so only what is before `from`
    // may go. With an unusable newest snapshot, keep everything.
    if base.is_some() && rejected.is_empty() {
        source.compact(&from)?;
    }
    Ok(Some(Checkpoint {
        position: to,
        events: stats.events,
        bytes: bytes.len(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    }))
}

impl JournalSource for crate::kafka::KafkaJournal {
    fn start_position(&self) -> JournalPosition {
        JournalPosition::Kafka {
            next_offsets: vec![0; self.options().partitions as usize],
        }
    }

    fn durable_position(&self) -> Result<JournalPosition, PersistenceError> {
        // Under acks=all the end of a partition is what is stored on every
        // in-sync replica.
        self.position()
    }

    fn read_range(
        &self,
        from: &JournalPosition,
        to: &JournalPosition,
        visit: &mut dyn FnMut(Lsn, Event),
    ) -> Result<ReplayStats, PersistenceError> {
        crate::kafka::read_range(self.options(), from, to, visit)
    }

    fn owns(&self, position: &JournalPosition) -> bool {
        position.is_kafka_with(self.options().partitions as usize)
    }
}

/// A snapshot store reached lazily: connects on first use and again after
/// a failure to connect, so a store that is down when the server starts
/// (Redis unreachable) only pauses snapshots until it is back.
pub struct LazyStore<S> {
    connect: Box<dyn Fn() -> Result<S, PersistenceError> + Send + Sync>,
    store: parking_lot::Mutex<Option<std::sync::Arc<S>>>,
    describe: String,
}

impl<S: SnapshotStore> LazyStore<S> {
    /// A store that `connect` reaches; `describe` names it for logs.
    pub fn new(
        describe: String,
        connect: impl Fn() -> Result<S, PersistenceError> + Send + Sync + 'static,
    ) -> LazyStore<S> {
        LazyStore {
            connect: Box::new(connect),
            store: parking_lot::Mutex::new(None),
            describe,
        }
    }

    fn get(&self) -> Result<std::sync::Arc<S>, PersistenceError> {
        let mut slot = self.store.lock();
        if let Some(s) = &*slot {
            return Ok(s.clone());
        }
        let s = std::sync::Arc::new((self.connect)()?);
        *slot = Some(s.clone());
        Ok(s)
    }
}

impl<S: SnapshotStore> SnapshotStore for LazyStore<S> {
    fn put(&self, bytes: &[u8]) -> Result<(), PersistenceError> {
        self.get()?.put(bytes)
    }

    fn list(&self) -> Result<Vec<crate::StoredSnapshot>, PersistenceError> {
        self.get()?.list()
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
