//! Wiring: build the engine, replay the journal, bind, serve, shut down.

use crate::metrics::Metrics;
use crate::server::{self, handle, App, ServerSettings};
use crate::storage::{RestoreReport, Storage};
use anyhow::Context;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use leadex_config::Loaded;
use leadex_engine::{Engine, SystemClock};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Longest a clean shutdown waits for in-flight requests, ms.
const DRAIN_TIMEOUT_MS: u64 = 10_000;
/// How often expired pings and lapsed dedupe entries are swept, offers
/// past their time expired, and sold leads routed, ms.
const SWEEP_INTERVAL_MS: u64 = 1_000;
/// Most pings forgotten per sweep (bounds the sweeper's work per tick).
const SWEEP_ITEMS_MAX: usize = 200_000;
/// Committed sales queued for the admin store at most; past it the
/// journal callback waits (backpressure, never a dropped sale).
const SALES_FEED_CAPACITY: usize = 65_536;

/// A running server.
pub struct Running {
    /// The bound address of the seller API.
    pub addr: SocketAddr,
    /// The bound address of the admin API.
    pub admin_addr: SocketAddr,
    /// The engine (for tests and tools).
    pub engine: Arc<Engine>,
    /// The storage (for tests and tools).
    pub storage: Arc<Storage>,
    /// How restore went.
    pub restored: RestoreReport,
    /// The first admin key when this start generated it (also printed once
    /// on standard output); `None` otherwise.
    pub first_admin_key: Option<String>,
    stop: watch::Sender<bool>,
    serving: tokio::task::JoinHandle<()>,
    admin: tokio::task::JoinHandle<std::io::Result<()>>,
    snapshotter: Option<std::thread::JoinHandle<()>>,
    snapshotter_stop: crossbeam_channel::Sender<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests, flushes the journal,
    /// and takes a final snapshot (a failed one is logged: the journal
    /// alone restores everything).
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.serving.await.context("server task failed")?;
        self.admin
            .await
            .context("admin task failed")?
            .context("serving the admin API")?;
        drop(self.snapshotter_stop);
        let storage = self.storage.clone();
        let snapshotter = self.snapshotter.take();
        tokio::task::spawn_blocking(move || {
            if let Some(s) = snapshotter {
                let _ = s.join();
            }
            storage.shutdown_journal();
            let _ = storage.checkpoint();
        })
        .await
        .context("storage shutdown task failed")?;
        Ok(())
    }
}

/// Builds everything and starts serving on `config.server.listen`.
pub async fn start(loaded: Loaded) -> anyhow::Result<Running> {
    let Loaded {
        config,
        marketplace,
        ..
    } = loaded;
    let marketplace = Arc::new(marketplace);
    let started = Instant::now();
    let engine = Arc::new(
        Engine::new(config.engine, &marketplace, Arc::new(SystemClock))
            .context("building the marketplace")?,
    );
    let admin_store = Arc::new(leadex_admin_api::AdminStore::default());
    let (open_config, restore_engine, restore_admin) =
        (config.clone(), engine.clone(), admin_store.clone());
    let runtime = tokio::runtime::Handle::current();
    let (storage, restored) = tokio::task::spawn_blocking(move || {
        Storage::open(
            &open_config,
            &marketplace,
            &restore_engine,
            &restore_admin,
            runtime,
        )
    })
    .await
    .context("storage task failed")??;
    let storage = Arc::new(storage);
    tracing::info!(
        backend = ?config.storage.backend,
        campaigns = engine.snapshot().campaigns.len(),
        snapshot = ?restored.snapshot,
        events = restored.events,
        torn_bytes_cut = restored.torn_bytes_cut,
        restore_ms = restored.elapsed_ms,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state restored"
    );
    if restored.snapshot.is_none() && restored.events == 0 {
        // A first start: the config's marketplace files are the seed. A
        // snapshot now makes the marketplace part of the stored state, so
        // later edits of those files cannot change what the journal's
        // marketplace changes apply to.
        let seed_storage = storage.clone();
        match tokio::task::spawn_blocking(move || seed_storage.checkpoint()).await {
            Ok(Ok(_)) => tracing::info!("first start: the marketplace seed is stored"),
            Ok(Err(error)) => {
                tracing::warn!(error = %format!("{error:#}"), "first start: the marketplace seed could not be stored yet; the next snapshot stores it")
            }
            Err(error) => tracing::warn!(%error, "first start: the seed snapshot task failed"),
        }
    }
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let gauges_storage = storage.clone();
    // Committed sales go to the admin store (lead lists, ledgers, webhooks)
    // through a bounded queue and a thread of their own, off the journal
    // writer's path unless the queue is full.
    let (sales_tx, sales_rx) = crossbeam_channel::bounded(SALES_FEED_CAPACITY);
    let feed_store = admin_store.clone();
    std::thread::Builder::new()
        .name("leadex-sales-feed".into())
        .spawn(move || {
            for item in sales_rx {
                feed_store.take(&item);
            }
        })
        .context("starting the sales feed thread")?;
    let app = Arc::new(App {
        engine: engine.clone(),
        journal: storage.journal(),
        journal_gauges: Box::new(move || gauges_storage.gauges()),
        metrics: Metrics::default(),
        settings: ServerSettings {
            body_limit_bytes: config.server.body_limit_bytes,
            request_timeout_ms: config.server.request_timeout_ms,
            header_read_timeout_ms: config.server.header_read_timeout_ms,
            max_connections: config.server.max_connections,
            durable_wait_ms: config.storage.durable_wait_ms,
        },
        sales_feed: Some(server::AdminFeed {
            tx: sales_tx,
            store: admin_store.clone(),
        }),
        route_wake: Arc::new(tokio::sync::Notify::new()),
    });
    let (stop, stop_rx) = watch::channel(false);
    let sweeper_app = app.clone();
    let mut sweeper_stop = stop_rx.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(SWEEP_INTERVAL_MS));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    sweeper_app.engine.sweep(SWEEP_ITEMS_MAX);
                    server::routing_tick(&sweeper_app, true);
                }
                () = sweeper_app.route_wake.notified() => server::routing_tick(&sweeper_app, false),
                _ = sweeper_stop.changed() => break,
            }
        }
    });
    let clock_engine = engine.clone();
    let admin = Arc::new(leadex_admin_api::Admin::new(
        admin_store,
        engine.clone(),
        storage.journal(),
        Arc::new(move || clock_engine.now_ms()),
        Duration::from_millis(config.storage.durable_wait_ms),
    ));
    // First start: the first admin key, from LEADEX_ADMIN_KEY or generated
    // and shown once on standard output (only its hash is journaled).
    let env_key = std::env::var(leadex_config::ADMIN_KEY_ENV).ok();
    let first_admin_key = match leadex_admin_api::bootstrap_admin_key(admin.clone(), env_key).await
    {
        Ok(Some(secret)) => {
            println!("leadex: first admin key (shown once, store it now): {secret}");
            tracing::warn!("created the first admin key; it was printed once on standard output");
            Some(secret)
        }
        Ok(None) => None,
        Err(e) => anyhow::bail!("creating the first admin key: {}", e.message),
    };
    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("binding the admin API on {}", config.admin.listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let health_storage = storage.clone();
    let health_engine = engine.clone();
    let webhook_settings = leadex_admin_api::webhooks::WebhookSettings {
        policy: leadex_admin_api::webhook::TargetPolicy {
            allow_private: config.admin.webhook_allow_private,
            allowed_hosts: config.admin.webhook_allowed_hosts.clone(),
        },
        timeout_ms: config.admin.webhook_timeout_ms,
        max_attempts: config.admin.webhook_max_attempts,
        backoff_base_ms: config.admin.webhook_backoff_base_ms,
        ..Default::default()
    };
    let admin_router = leadex_admin_api::router(
        leadex_admin_api::AdminSettings {
            request_timeout_ms: config.admin.request_timeout_ms,
            body_limit_bytes: config.admin.body_limit_bytes,
        },
        Arc::new(move || {
            let g = health_storage.gauges();
            leadex_admin_api::Health {
                journal_ok: g.healthy,
                snapshots_ok: g.snapshots_ok,
                campaigns: health_engine.snapshot().campaigns.len() as u64,
                pending_pings: health_engine.pending_pings() as u64,
            }
        }),
        admin.clone(),
        webhook_settings.clone(),
    );
    tokio::spawn(leadex_admin_api::webhooks::run_delivery_worker(
        admin.clone(),
        webhook_settings,
        stop_rx.clone(),
    ));
    let mut admin_stop = stop_rx.clone();
    let admin = tokio::spawn(leadex_admin_api::serve(
        admin_listener,
        admin_router,
        async move {
            let _ = admin_stop.changed().await;
        },
    ));
    let serving = tokio::spawn(serve(listener, app, stop_rx));
    let (snapshotter_stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let interval = Duration::from_millis(config.storage.snapshot_interval_ms);
    let snapshot_storage = storage.clone();
    let snapshotter = std::thread::Builder::new()
        .name("leadex-snapshot".into())
        .spawn(move || {
            // Wakes every interval until the sender is dropped (shutdown).
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(interval)
            {
                let _ = snapshot_storage.checkpoint();
            }
        })
        .context("starting the snapshot thread")?;
    tracing::info!(%addr, %admin_addr, "leadex is serving (seller API, admin API)");
    Ok(Running {
        addr,
        admin_addr,
        engine,
        storage,
        restored,
        first_admin_key,
        stop,
        serving,
        admin,
        snapshotter: Some(snapshotter),
        snapshotter_stop,
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
