//! Storage wiring: the configured backend's journal and snapshot store,
//! restore on start (newest usable snapshot + the journal's tail), and the
//! snapshots taken periodically and at a clean shutdown.
//!
//! | backend | journal | snapshots |
//! | --- | --- | --- |
//! | `file` (default) | segment files in `<path>/journal` | files in `<path>/snapshots` |
//! | `kafka` | a Kafka topic (`[storage.kafka]`) | Redis (`[storage.redis]`) |
//!
//! Snapshots are built beside the hot path from the journal alone (see
//! `leadex_persistence::state`); a failing snapshot store pauses snapshots
//! with a warning and serving goes on.

use crate::metrics::JournalGauges;
use anyhow::Context;
use leadex_admin_api::AdminStore;
use leadex_config::{Config, StorageBackend};
use leadex_engine::spec::MarketplaceSpec;
use leadex_engine::{Engine, Journal, JournalPosition, SystemClock};
use leadex_persistence::kafka::{KafkaJournal, KafkaOptions};
use leadex_persistence::snapshot::encode_marketplace;
use leadex_persistence::snapshot::{Extension, SnapshotContents};
use leadex_persistence::state::{self, Checkpoint, JournalSource};
use leadex_persistence::state::{EngineReplica, LazyStore, Replica};
use leadex_persistence::{
    FileJournal, FileSnapshotStore, FsyncPolicy, JournalOptions, RedisSnapshotStore, SnapshotStore,
};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How restore went, for the start-up log line and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The snapshot restore started from (`None`: full replay).
    pub snapshot: Option<JournalPosition>,
    /// Snapshots that failed their checks and were skipped.
    pub rejected: Vec<String>,
    /// Journal events replayed after the snapshot.
    pub events: u64,
    /// Bytes of a torn journal tail cut (file backend).
    pub torn_bytes_cut: u64,
    /// Wall time of the restore, ms.
    pub elapsed_ms: u64,
}

/// Snapshot figures; `Relaxed` throughout: monitoring values.
#[derive(Debug, Default)]
struct SnapshotStats {
    taken: AtomicU64,
    failures: AtomicU64,
    last_bytes: AtomicU64,
    last_elapsed_ms: AtomicU64,
    /// False while snapshots fail (store unreachable): "paused".
    ok: AtomicBool,
}

enum Backend {
    File(Arc<FileJournal>),
    Kafka(Arc<KafkaJournal>),
}

/// The storage of a running server.
pub struct Storage {
    backend: Backend,
    store: Arc<dyn SnapshotStore>,
    /// Makes an empty replica of the state, for checkpoints.
    fresh_replica: Box<dyn Fn() -> Box<dyn Replica> + Send + Sync>,
    stats: SnapshotStats,
    /// One checkpoint at a time (the periodic one and the final one).
    checkpointing: Mutex<()>,
}

fn journal_options(config: &Config) -> JournalOptions {
    let mut options = JournalOptions::new(config.storage.path.join("journal"));
    options.fsync = match config.storage.fsync {
        leadex_config::FsyncMode::Always => FsyncPolicy::Always,
        leadex_config::FsyncMode::Never => FsyncPolicy::Never,
    };
    options.segment_bytes = config.storage.segment_bytes;
    options.queue_capacity = config.storage.queue_capacity;
    options
}

impl Storage {
    /// Opens the backend and restores `engine` (fresh, not yet serving):
    /// the newest usable snapshot, then the journal after it. Blocking.
    ///
    /// `runtime` drives the Redis client of the Kafka backend; this must
    /// run on a blocking thread, not in an async task.
    pub fn open(
        config: &Config,
        market: &MarketplaceSpec,
        engine: &Arc<Engine>,
        admin: &Arc<AdminStore>,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<(Storage, RestoreReport)> {
        let started = Instant::now();
        let (settings, market_copy) = (config.engine, market.clone());
        // Restore goes through the same `Replica` as checkpoints, so the two
        // paths cannot drift apart.
        let serving = ServerReplica {
            engine: EngineReplica {
                engine: engine.clone(),
            },
            admin: admin.clone(),
        };
        let fresh_replica: Box<dyn Fn() -> Box<dyn Replica> + Send + Sync> = Box::new(move || {
            let engine = Engine::new(settings, &market_copy, Arc::new(SystemClock))
                .expect("invariant: the marketplace compiled once already");
            Box::new(ServerReplica {
                engine: EngineReplica {
                    engine: Arc::new(engine),
                },
                admin: Arc::new(AdminStore::default()),
            })
        });
        // An event replay cannot apply stops the start (after the journal
        // has been read: its visitor cannot fail).
        let mut unappliable: Option<String> = None;
        let (backend, store, snapshot, rejected, replayed) = match config.storage.backend {
            StorageBackend::File => {
                let store: Arc<dyn SnapshotStore> = Arc::new(FileSnapshotStore::open(
                    config.storage.path.join("snapshots"),
                )?);
                let (snapshot, rejected) =
                    load_snapshot(&*store, &serving, JournalPosition::is_file)?;
                let after = match &snapshot {
                    Some(JournalPosition::File { last_lsn }) => *last_lsn,
                    _ => 0,
                };
                let (journal, replayed) =
                    FileJournal::open_after(journal_options(config), after, &mut |lsn, e| {
                        note_failure(&mut unappliable, lsn, serving.apply(&e));
                    })
                    .with_context(|| {
                        format!("opening the journal in {}", config.storage.path.display())
                    })?;
                // A snapshot covers only durable records, so a journal that
                // ends before it lost acknowledged ones (fsync = "never" and
                // a power loss, or a damaged disk). New records would reuse
                // LSNs the snapshot claims: refuse instead.
                let last_lsn = journal.stats().last_lsn;
                if last_lsn < after {
                    anyhow::bail!(
                        "the newest usable snapshot covers the journal up to LSN {after}, but the \
                         journal in {} ends at LSN {last_lsn}: records it acknowledged are gone. \
                         Move the snapshots directory aside to restore from the journal alone.",
                        config.storage.path.join("journal").display()
                    );
                }
                let backend = Backend::File(Arc::new(journal));
                (backend, store, snapshot, rejected, replayed)
            }
            StorageBackend::Kafka => {
                let redis = config.storage.redis.clone();
                let describe = format!("{} (keys {}:snapshot:*)", redis.url, redis.key_prefix);
                let store: Arc<dyn SnapshotStore> = Arc::new(LazyStore::new(describe, move || {
                    RedisSnapshotStore::connect(
                        &redis.url,
                        &redis.key_prefix,
                        runtime.clone(),
                        std::time::Duration::from_millis(redis.op_timeout_ms),
                    )
                }));
                let options = kafka_options(config);
                let partitions = options.partitions as usize;
                let owns = |p: &JournalPosition| p.is_kafka_with(partitions);
                // An unreachable Redis costs a full replay of the topic,
                // not the start: the topic alone holds every sale.
                let (snapshot, rejected) = match load_snapshot(&*store, &serving, owns) {
                    Ok(found) => found,
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "snapshot store unreachable; restoring by a full replay of the topic");
                        (None, vec![format!("{error:#}")])
                    }
                };
                let (journal, replayed) =
                    KafkaJournal::open(options, snapshot.as_ref(), &mut |lsn, e| {
                        note_failure(&mut unappliable, lsn, serving.apply(&e));
                    })
                    .with_context(|| {
                        format!(
                            "opening the Kafka journal (topic {} on {})",
                            config.storage.kafka.topic, config.storage.kafka.brokers
                        )
                    })?;
                (
                    Backend::Kafka(Arc::new(journal)),
                    store,
                    snapshot,
                    rejected,
                    replayed,
                )
            }
        };
        if let Some(reason) = unappliable {
            anyhow::bail!("restoring the state: {reason}");
        }
        let report = RestoreReport {
            snapshot,
            rejected,
            events: replayed.events,
            torn_bytes_cut: replayed.torn_bytes_cut,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        let storage = Storage {
            backend,
            store,
            fresh_replica,
            stats: SnapshotStats::default(),
            checkpointing: Mutex::new(()),
        };
        // Relaxed: a monitoring figure, before anyone reads it.
        storage.stats.ok.store(true, Ordering::Relaxed);
        Ok((storage, report))
    }

    /// The journal the server appends to.
    pub fn journal(&self) -> Arc<dyn Journal> {
        match &self.backend {
            Backend::File(j) => j.clone(),
            Backend::Kafka(j) => j.clone(),
        }
    }

    fn source(&self) -> &dyn JournalSource {
        match &self.backend {
            Backend::File(j) => &**j,
            Backend::Kafka(j) => &**j,
        }
    }

    /// Figures for `/metrics` and `/healthz`.
    pub fn gauges(&self) -> JournalGauges {
        // Relaxed: monitoring figures.
        let snapshots = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut g = JournalGauges {
            snapshots_taken: snapshots(&self.stats.taken),
            snapshot_failures: snapshots(&self.stats.failures),
            snapshot_last_bytes: snapshots(&self.stats.last_bytes),
            snapshot_last_ms: snapshots(&self.stats.last_elapsed_ms),
            snapshots_ok: self.stats.ok.load(Ordering::Relaxed),
            ..JournalGauges::default()
        };
        match &self.backend {
            Backend::File(j) => {
                let s = j.stats();
                g.backend = "file";
                g.last_lsn = s.last_lsn;
                g.fsyncs = s.fsyncs;
                g.fsync_max_us = s.fsync_latency_us_max;
                g.healthy = s.accepting;
            }
            Backend::Kafka(j) => {
                let s = j.stats();
                g.backend = "kafka";
                g.last_lsn = s.delivered;
                g.in_doubt = s.in_doubt;
                g.reconciled_stored = s.reconciled_stored;
                g.reconciled_absent = s.reconciled_absent;
                g.healthy = s.healthy;
            }
        }
        g
    }

    /// Takes a snapshot now (blocking; see `leadex_persistence::state`).
    /// A failure is counted, logged and returned; serving is unaffected.
    pub fn checkpoint(&self) -> anyhow::Result<Option<Checkpoint>> {
        let _one = self.checkpointing.lock();
        let result = state::checkpoint(&*self.fresh_replica, &*self.store, self.source());
        // Relaxed: monitoring figures.
        match &result {
            Ok(Some(c)) => {
                self.stats.taken.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .last_bytes
                    .store(c.bytes as u64, Ordering::Relaxed);
                self.stats
                    .last_elapsed_ms
                    .store(c.elapsed_ms, Ordering::Relaxed);
                if !self.stats.ok.swap(true, Ordering::Relaxed) {
                    tracing::info!(store = %self.store.describe(), "snapshots resumed");
                }
                tracing::info!(position = ?c.position, events = c.events, bytes = c.bytes, elapsed_ms = c.elapsed_ms, "snapshot taken");
            }
            Ok(None) => {}
            Err(error) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.stats.ok.store(false, Ordering::Relaxed);
                tracing::warn!(store = %self.store.describe(), %error, "snapshot failed; snapshots paused, serving continues");
            }
        }
        result.map_err(anyhow::Error::from)
    }

    /// Stops the journal: no more appends, everything queued written and
    /// made durable, every callback called. Blocking.
    pub fn shutdown_journal(&self) {
        match &self.backend {
            Backend::File(j) => j.shutdown(),
            Backend::Kafka(j) => j.shutdown(),
        }
    }
}

fn kafka_options(config: &Config) -> KafkaOptions {
    let k = &config.storage.kafka;
    let mut o = KafkaOptions::new(k.brokers.clone());
    o.topic = k.topic.clone();
    o.partitions = k.partitions;
    o.replication_factor = k.replication_factor;
    o.message_timeout_ms = k.message_timeout_ms;
    o.unavailable_after_ms = k.unavailable_after_ms;
    o.queue_capacity = config.storage.queue_capacity;
    o.extra = k
        .extra
        .iter()
        .map(|(a, b)| (a.clone(), b.clone()))
        .collect();
    o
}

/// Loads the newest usable snapshot into `replica`; returns its position
/// and the snapshots rejected on the way.
fn load_snapshot(
    store: &dyn SnapshotStore,
    replica: &ServerReplica,
    owns: impl Fn(&JournalPosition) -> bool,
) -> anyhow::Result<(Option<JournalPosition>, Vec<String>)> {
    let (snapshot, rejected) = state::newest_snapshot(store, &owns)
        .with_context(|| format!("reading snapshots from {}", store.describe()))?;
    for reason in &rejected {
        tracing::error!(%reason, "snapshot unusable; falling back to an older one or to a full replay");
    }
    let Some(snapshot) = snapshot else {
        return Ok((None, rejected));
    };
    if snapshot.marketplace != encode_marketplace(&replica.engine.engine.marketplace()) {
        tracing::info!(
            "the marketplace comes from the snapshot and the journal; the config's marketplace \
             files seed only a first start (change it through the admin API)"
        );
    }
    if let Err(reason) = replica.restore(&snapshot) {
        // Nothing was loaded (see `ServerReplica::restore`): replay it all.
        tracing::error!(%reason, "snapshot unusable; restoring by a full replay");
        let mut rejected = rejected;
        rejected.push(reason);
        return Ok((None, rejected));
    }
    Ok((Some(snapshot.position), rejected))
}

fn note_failure(first: &mut Option<String>, lsn: u64, result: Result<(), String>) {
    if let (None, Err(reason)) = (&*first, result) {
        *first = Some(format!(
            "the journal event at {lsn} cannot be applied: {reason}"
        ));
    }
}

/// The server's state as the journal rebuilds it: the engine and the admin
/// API's store (kept in snapshots as the `admin` extension).
struct ServerReplica {
    engine: EngineReplica,
    admin: Arc<AdminStore>,
}

impl Replica for ServerReplica {
    fn restore(&self, contents: &SnapshotContents) -> Result<(), String> {
        // The fallible part first, so that a failure leaves nothing loaded.
        if let Some(admin) = contents
            .extensions
            .iter()
            .find(|x| x.name == leadex_admin_api::store::EXTENSION)
        {
            self.admin.restore(&admin.bytes)?;
        }
        self.engine.restore(contents)?;
        let has_routing = contents
            .extensions
            .iter()
            .any(|x| x.name == leadex_persistence::state::ROUTING_EXTENSION);
        if !has_routing {
            // A snapshot of a build before the engine kept routing: its
            // agents and teams are the admin store's records only. The
            // same conversion as replay's (`legacy_changes`), so a restore
            // routes as a full replay does (its spec lists the agents in
            // id order, replay's in journal order: the agent graph orders
            // them by agency and id either way).
            let spec = self.admin.routing_spec();
            if !spec.agents.is_empty() || !spec.teams.is_empty() {
                if let Err(error) = self.engine.engine.router().replace(spec) {
                    tracing::warn!(%error, "the agents and teams of an older snapshot do not compile for routing; they are not routable until changed");
                }
            }
        }
        Ok(())
    }

    fn apply(&self, event: &leadex_engine::Event) -> Result<(), String> {
        match event {
            leadex_engine::Event::Admin(record) => {
                // Older journals hold agents and teams as admin records
                // only: the engine routes them too. Converted when the
                // store applies the record, so once per record id, as the
                // store's own replay is idempotent.
                if self.admin.apply(record)? {
                    for change in leadex_admin_api::routing::legacy_changes(record) {
                        if !self.engine.engine.router().put(&change) {
                            tracing::warn!(record = %record.id, "an agent or team of an older admin record does not compile for routing; it is not routable until changed");
                        }
                    }
                }
                Ok(())
            }
            leadex_engine::Event::Market(record) => {
                self.engine.apply(event)?;
                self.admin.apply_market(record).map(|_| ())
            }
            leadex_engine::Event::Routing(record) => {
                self.engine.apply(event)?;
                self.admin.apply_routing(record);
                Ok(())
            }
            leadex_engine::Event::LeadSold(sold) => {
                self.engine.apply(event)?;
                self.admin.record_sale(sold);
                Ok(())
            }
            leadex_engine::Event::PingIssued(p) => {
                // Counted once for the reports: a ping the engine holds
                // already is a journal duplicate (a producer retry). One
                // past its memory window is not held and is counted: the
                // state was built from the events up to the snapshot's
                // position only, and this one comes after it.
                let counted_before = self.engine.engine.holds_ping(p.ping_id);
                self.engine.apply(event)?;
                if !counted_before {
                    self.admin
                        .record_ping(&leadex_admin_api::reports::PingSeen::of(p));
                }
                Ok(())
            }
        }
    }

    fn capture(&self, position: JournalPosition) -> SnapshotContents {
        let mut contents = self.engine.capture(position);
        contents.extensions.push(Extension {
            name: leadex_admin_api::store::EXTENSION.to_string(),
            bytes: self.admin.image(),
        });
        contents
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadex_admin_api::records::{Agent, Licence, Team};
    use leadex_admin_api::store::{record, AdminChange, AdminPayload};
    use leadex_engine::routing::assign::RouteLead;
    use leadex_engine::Event;

    fn replica() -> ServerReplica {
        let market = leadex_engine::testing::market(&["acme"], vec![]);
        let clock = Arc::new(leadex_engine::ManualClock::new(1_700_000_000_000));
        ServerReplica {
            engine: EngineReplica {
                engine: Arc::new(Engine::new(Default::default(), &market, clock).unwrap()),
            },
            admin: Arc::new(AdminStore::default()),
        }
    }

    fn agent(id: &str, manager: Option<&str>) -> Agent {
        Agent {
            id: id.into(),
            tenant: "acme".into(),
            name: id.into(),
            email: String::new(),
            licences: vec![Licence {
                state: "CA".into(),
                line: "property".into(),
            }],
            appointments: Vec::new(),
            captive_carrier: None,
            languages: vec!["en".into()],
            capacity: 2,
            time_zone: "America/New_York".into(),
            schedule: Vec::new(),
            zip: Some("90210".into()),
            manager_id: manager.map(String::from),
            team_id: Some("t1".into()),
            active: true,
            specializations: Vec::new(),
            performance: Default::default(),
            quality_tier: 0,
            links: Vec::new(),
        }
    }

    /// The admin records an older build journaled for agents and a team.
    fn legacy_records() -> Vec<Event> {
        let team = Team {
            id: "t1".into(),
            tenant: "acme".into(),
            name: "Team".into(),
            manager_id: Some("m1".into()),
        };
        [
            AdminChange::AgentPut {
                agent: agent("m1", None),
            },
            AdminChange::AgentPut {
                agent: agent("a1", Some("m1")),
            },
            AdminChange::TeamPut { team },
        ]
        .into_iter()
        .enumerate()
        .map(|(i, change)| Event::Admin(record(&AdminPayload::one(change), i as i64 + 1)))
        .collect()
    }

    fn home_lead() -> RouteLead {
        RouteLead {
            vertical: leadex_engine::lead::Vertical::Home,
            ..leadex_engine::testing::route_lead()
        }
    }

    #[test]
    fn agents_of_older_admin_records_are_routable_after_replay() {
        let r = replica();
        let events = legacy_records();
        for e in &events {
            r.apply(e).unwrap();
        }
        let spec = r.engine.engine.router().spec();
        let ids: Vec<&str> = spec.agents.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["m1", "a1"]);
        assert_eq!(spec.teams[0].manager_id.as_deref(), Some("m1"));
        // A copy of a record changes nothing (the store applies it once).
        for e in &events {
            r.apply(e).unwrap();
        }
        assert_eq!(r.engine.engine.router().spec(), spec);
        let ticket = r
            .engine
            .engine
            .route_lead("acme", home_lead(), None, None)
            .unwrap();
        assert!(
            matches!(
                &ticket.record.change,
                leadex_engine::routing::assign::RoutingChange::Created { offer: Some(o), .. }
                    if o.agent_id == "m1" || o.agent_id == "a1"
            ),
            "{:?}",
            ticket.record
        );
        // Its record, replayed, applies to the engine and the store alike
        // (the live decision is given back first: replay counts it anew).
        r.engine.engine.router().rollback(&ticket);
        r.apply(&ticket.event()).unwrap();
        let id = ticket.record.assignment_id;
        assert!(r.engine.engine.router().assignment(id).is_some());
        let kept = r.admin.assignment(&id.to_string()).unwrap();
        assert_eq!(kept.tenant, "acme");
    }

    #[test]
    fn a_snapshot_of_a_build_before_engine_routing_routes_its_agents_too() {
        let old = replica();
        for e in legacy_records() {
            old.apply(&e).unwrap();
        }
        let mut contents = old.capture(JournalPosition::File { last_lsn: 3 });
        contents
            .extensions
            .retain(|x| x.name != leadex_persistence::state::ROUTING_EXTENSION);
        let restored = replica();
        restored.restore(&contents).unwrap();
        // The same records, in id order rather than journal order (the
        // agent graph orders agents by agency and id either way).
        let sorted = |r: &ServerReplica| {
            let mut spec = (*r.engine.engine.router().spec()).clone();
            spec.agents.sort_by(|a, b| a.id.cmp(&b.id));
            spec
        };
        assert_eq!(sorted(&restored), sorted(&old));
        assert!(restored
            .engine
            .engine
            .route_lead("acme", home_lead(), None, None)
            .is_ok());
    }
}
