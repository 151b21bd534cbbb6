//! Wiring: build the engine, replay the journal, bind, serve, shut down.

use crate::metrics::{JournalGauges, Metrics};
use crate::server::{handle, App, ServerSettings};
use anyhow::Context;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use leadex_config::{Config, Loaded};
use leadex_engine::{Engine, SystemClock};
use leadex_persistence::{FileJournal, FsyncPolicy, JournalOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Longest a clean shutdown waits for in-flight requests, ms.
const DRAIN_TIMEOUT_MS: u64 = 10_000;
/// How often expired pings and lapsed dedupe entries are swept, ms.
const SWEEP_INTERVAL_MS: u64 = 1_000;
/// Most pings forgotten per sweep (bounds the sweeper's work per tick).
const SWEEP_ITEMS_MAX: usize = 200_000;

/// A running server.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The engine (for tests and tools).
    pub engine: Arc<Engine>,
    journal: Arc<FileJournal>,
    stop: watch::Sender<bool>,
    serving: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests, flushes the journal.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.serving.await.context("server task failed")?;
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || journal.shutdown())
            .await
            .context("journal shutdown task failed")?;
        Ok(())
    }
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

/// Builds everything and starts serving on `config.server.listen`.
pub async fn start(loaded: Loaded) -> anyhow::Result<Running> {
    let Loaded {
        config,
        marketplace,
        ..
    } = loaded;
    let started = Instant::now();
    let engine = Arc::new(
        Engine::new(config.engine, &marketplace, Arc::new(SystemClock))
            .context("building the marketplace")?,
    );
    let options = journal_options(&config);
    let replay_engine = engine.clone();
    let (journal, replayed) = tokio::task::spawn_blocking(move || {
        FileJournal::open(options, &mut |_lsn, event| replay_engine.apply(&event))
    })
    .await
    .context("journal task failed")?
    .with_context(|| format!("opening the journal in {}", config.storage.path.display()))?;
    let journal = Arc::new(journal);
    tracing::info!(
        campaigns = engine.snapshot().campaigns.len(),
        events = replayed.events,
        torn_bytes_cut = replayed.torn_bytes_cut,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state restored from the journal"
    );
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let gauges_journal = journal.clone();
    let app = Arc::new(App {
        engine: engine.clone(),
        journal: journal.clone(),
        journal_gauges: Box::new(move || {
            let s = gauges_journal.stats();
            JournalGauges {
                last_lsn: s.last_lsn,
                fsyncs: s.fsyncs,
                fsync_max_us: s.fsync_latency_us_max,
                healthy: s.accepting,
            }
        }),
        metrics: Metrics::default(),
        settings: ServerSettings {
            body_limit_bytes: config.server.body_limit_bytes,
            request_timeout_ms: config.server.request_timeout_ms,
            header_read_timeout_ms: config.server.header_read_timeout_ms,
            max_connections: config.server.max_connections,
        },
    });
    let (stop, stop_rx) = watch::channel(false);
    let sweeper_engine = engine.clone();
    let mut sweeper_stop = stop_rx.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(SWEEP_INTERVAL_MS));
        loop {
            tokio::select! {
                _ = tick.tick() => { sweeper_engine.sweep(SWEEP_ITEMS_MAX); }
                _ = sweeper_stop.changed() => break,
            }
        }
    });
    let serving = tokio::spawn(serve(listener, app, stop_rx));
    tracing::info!(%addr, "leadex is serving");
    Ok(Running {
        addr,
        engine,
        journal,
        stop,
        serving,
    })
}

async fn serve(listener: TcpListener, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(app.settings.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(app.settings.header_read_timeout_ms))
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("invariant: the semaphore is never closed"),
            _ = stop.changed() => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let conn = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| handle(app.clone(), req)),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(Duration::from_millis(DRAIN_TIMEOUT_MS)) => {
            tracing::warn!(timeout_ms = DRAIN_TIMEOUT_MS, "connections still open after the drain timeout");
        }
    }
}
