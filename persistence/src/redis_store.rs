//! Snapshots in Redis: [`RedisSnapshotStore`], the [`SnapshotStore`] of the
//! Kafka backend, where the journal outlives the machine and so must the
//! snapshots that let a restart skip most of it. The design is documented on
//! the type (this module is private; the type is re-exported at the root).

use crate::error::PersistenceError;
use crate::store::{SnapshotStore, StoredSnapshot, SNAPSHOTS_KEPT};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ConnectionInfo, RedisError};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::runtime::{Handle, RuntimeFlavor};

/// The put, atomically. `KEYS[1]` is the newest key, `KEYS[2]` the previous
/// key, `ARGV[1]` the new snapshot. `RENAME` replaces the old previous.
/// Returns 1 when stored, 0 when `ARGV[1]` already was the newest: a put
/// retried after a failure that in fact landed must not push the fallback
/// out with a second copy of the newest. `STRLEN` first, so that the full
/// comparison (a copy of the newest into Lua) only happens on equal sizes.
const PUT_SCRIPT: &str = r"
if redis.call('STRLEN', KEYS[1]) == string.len(ARGV[1])
  and redis.call('GET', KEYS[1]) == ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// Longest wait between two reconnection attempts, ms. The client's first
/// wait is 1 s whatever this says (plus up to as much again of jitter), so
/// with 1 s a restarted Redis is used again within about 2 s. The client's
/// default would back off to a minute and more.
const RECONNECT_DELAY_MS_MAX: u64 = 1_000;

/// Reconnection attempts in one background round (about 6 to 12 s at
/// [`RECONNECT_DELAY_MS_MAX`]). When a round gives up, the next call starts
/// another, so this bounds background work, not recovery.
const RECONNECT_ATTEMPTS_MAX: usize = 6;

/// Snapshots in Redis, for the Kafka backend. Cheap to share behind an
/// `Arc`: calls from several threads run concurrently on one multiplexed
/// connection.
///
/// ```no_run
/// use leadex_persistence::{RedisSnapshotStore, SnapshotStore};
/// use std::time::Duration;
///
/// let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
/// // From a blocking thread (here `main`, outside the runtime), never from an async task.
/// let store = RedisSnapshotStore::connect(
///     "redis://127.0.0.1:6379/0",
///     "leadex",
///     runtime.handle().clone(),
///     Duration::from_secs(5),
/// )
/// .unwrap();
/// store.put(b"first").unwrap();
/// store.put(b"second").unwrap();
/// let newest_first: Vec<Vec<u8>> = store.list().unwrap().into_iter().map(|s| s.bytes).collect();
/// assert_eq!(newest_first, [b"second".to_vec(), b"first".to_vec()]);
/// ```
///
/// ## Keys
///
/// Two string keys, `{prefix}:snapshot:newest` and `{prefix}:snapshot:previous`,
/// hold the raw snapshot bytes. [`SnapshotStore::put`] runs one Lua script
/// (`EXISTS`, `RENAME`, `SET`) that renames the newest to the previous
/// (dropping the old previous) and sets the new newest. Redis runs a script as one unit:
/// no client ever sees the rename without the set, and the script's writes
/// reach the AOF and replicas wrapped in one `MULTI`/`EXEC`, so a crash of
/// Redis cannot keep half of it either. The newest is therefore never lost
/// between the two steps. `RENAME` fails on a missing key, so the script
/// renames only when a newest exists (not on the first put, nor after a
/// flush). The rename is O(1): a 20 MB snapshot is not copied inside Redis.
/// Putting the bytes that already are the newest changes nothing, so a put
/// retried after an unclear failure cannot leave two copies of one snapshot
/// and no fallback.
///
/// [`SnapshotStore::list`] reads both keys with one `MGET`, a consistent
/// pair even while another process puts.
///
/// The client is a single-node connection: Redis Cluster is not supported.
///
/// ## Blocking over async, and why
///
/// The [`SnapshotStore`] trait is blocking because its callers are: taking
/// and restoring a snapshot is CPU-heavy work (replaying the journal,
/// encoding or validating a state image of many megabytes) that runs on
/// blocking threads, and the file store beside this one is plain file I/O.
/// The Redis client, on the other hand, reconnects by itself only in its
/// async form ([`redis::aio::ConnectionManager`]). Rather than start a
/// runtime of its own (more threads, a second reactor), the store borrows
/// the application's: it is given a [`tokio::runtime::Handle`] and each
/// method drives its request with [`Handle::block_on`], bounded by the
/// store's `op_timeout`.
///
/// Consequences for the caller:
/// - **Call the methods from a blocking thread** (`spawn_blocking`, a plain
///   thread), **never from inside an async task**: `Handle::block_on` there
///   would stall a runtime worker, and tokio refuses by panicking ("Cannot
///   start a runtime from within a runtime"). A loud panic in the first test
///   is better than a reactor that silently stops serving requests.
/// - The handle must belong to a **multi-thread** runtime, which runs the
///   connection's background tasks (the socket driver, reconnection) on its
///   own workers; `connect` refuses a current-thread runtime, whose tasks
///   only run while someone is inside `Runtime::block_on`.
/// - The runtime must outlive the store (a shut-down runtime panics on
///   timers).
///
/// ## Failures and reconnection
///
/// Every call gives up after `op_timeout`, whatever Redis does (refuses
/// connections, or accepts and never answers), and reports
/// [`PersistenceError::Backend`] with `backend: "redis"`. The connection
/// manager notices a dropped connection on the next request and reconnects
/// in the background, retrying with a delay of 1–2 s between attempts
/// (the client's default backs off to minutes), so calls succeed again within a couple of
/// seconds of Redis coming back, without recreating the store. A server
/// that vanishes without closing the connection (a network partition) is
/// only noticed when the operating system gives up on the socket; until
/// then every call times out.
///
/// A put that failed is "not known to be stored", not "known to be absent":
/// a request that timed out may still be executed when a stalled Redis
/// resumes. That is harmless: every snapshot names the journal position it
/// covers, and restoring from an older one only replays more of the journal.
pub struct RedisSnapshotStore {
    connection: ConnectionManager,
    handle: Handle,
    op_timeout: Duration,
    key_prefix: String,
    newest_key: String,
    previous_key: String,
    /// The server without credentials, e.g. `redis://127.0.0.1:6379/0`.
    server: String,
    counters: Counters,
}

/// Figures of a [`RedisSnapshotStore`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisStoreStats {
    /// Snapshots stored since the store was created.
    pub puts: u64,
    /// Puts that failed (refused, unreachable, timed out) since then.
    pub put_failures: u64,
    /// Size of the last snapshot stored, bytes; 0 before the first.
    pub last_put_bytes: u64,
}

/// The live figures behind [`RedisStoreStats`].
#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    put_failures: AtomicU64,
    last_put_bytes: AtomicU64,
}

impl RedisSnapshotStore {
    /// Largest accepted `op_timeout`. Longer is a mistake in units, and
    /// would hold a checkpoint or a restart that long while Redis is down.
    pub const OP_TIMEOUT_MAX: Duration = Duration::from_secs(600);

    /// Connects to the Redis at `url` (`redis://[user:password@]host:port/db`)
    /// and keeps snapshots under `key_prefix` (e.g. `leadex`, giving
    /// `leadex:snapshot:newest`). Every later call, this one included, gives
    /// up after `op_timeout`, which must cover writing the largest snapshot.
    ///
    /// Blocks; call it from a blocking thread, never from an async task
    /// (it would panic, see [`RedisSnapshotStore`]). `handle` must belong to a
    /// multi-thread runtime that outlives the store.
    ///
    /// Errors: [`PersistenceError::InvalidOptions`] for an empty prefix, an
    /// `op_timeout` of zero or over [`Self::OP_TIMEOUT_MAX`], or a current-thread
    /// runtime; [`PersistenceError::Backend`] for a bad URL or a Redis that
    /// cannot be reached within `op_timeout` (worth retrying).
    pub fn connect(
        url: &str,
        key_prefix: &str,
        handle: Handle,
        op_timeout: Duration,
    ) -> Result<RedisSnapshotStore, PersistenceError> {
        let invalid = |reason: String| Err(PersistenceError::InvalidOptions { reason });
        if key_prefix.is_empty() {
            return invalid("the Redis snapshot key prefix is empty".into());
        }
        if op_timeout.is_zero() || op_timeout > Self::OP_TIMEOUT_MAX {
            return invalid(format!(
                "the Redis op_timeout is {} ms, must be 1..={} ms",
                op_timeout.as_millis(),
                Self::OP_TIMEOUT_MAX.as_millis()
            ));
        }
        if handle.runtime_flavor() == RuntimeFlavor::CurrentThread {
            return invalid(
                "RedisSnapshotStore needs the handle of a multi-thread tokio runtime \
                 (a current-thread runtime does not run the connection's background tasks)"
                    .into(),
            );
        }
        // Parsed before anything else so that errors can name the server
        // without leaking the password the URL may hold.
        let client = redis::Client::open(url).map_err(|error| PersistenceError::Backend {
            backend: "redis",
            action: "parsing the Redis URL".into(),
            message: error.to_string(),
        })?;
        let server = server_description(client.get_connection_info());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(op_timeout)
            .set_factor(2)
            .set_max_delay(RECONNECT_DELAY_MS_MAX)
            .set_number_of_retries(RECONNECT_ATTEMPTS_MAX);
        let action = || format!("connecting to {server}");
        let connection = block_on_bounded(
            &handle,
            op_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .ok_or_else(|| timed_out(action(), op_timeout, "not connected"))?
        .map_err(|error| backend(action(), &error))?;
        Ok(RedisSnapshotStore {
            connection,
            handle,
            op_timeout,
            key_prefix: key_prefix.to_owned(),
            newest_key: format!("{key_prefix}:snapshot:newest"),
            previous_key: format!("{key_prefix}:snapshot:previous"),
            server,
            counters: Counters::default(),
        })
    }

    /// Current figures. Cheap: three relaxed loads, which may be from
    /// different moments (a put may land between them).
    pub fn stats(&self) -> RedisStoreStats {
        RedisStoreStats {
            // Relaxed: monitoring figures; nothing else is published
            // through them, so no ordering with other memory is needed.
            puts: self.counters.puts.load(Ordering::Relaxed),
            // Relaxed: as above.
            put_failures: self.counters.put_failures.load(Ordering::Relaxed),
            // Relaxed: as above.
            last_put_bytes: self.counters.last_put_bytes.load(Ordering::Relaxed),
        }
    }

    /// The key of the newest snapshot, e.g. `leadex:snapshot:newest`.
    pub fn newest_key(&self) -> &str {
        &self.newest_key
    }

    /// The key of the fallback snapshot, e.g. `leadex:snapshot:previous`.
    pub fn previous_key(&self) -> &str {
        &self.previous_key
    }

    /// The store's timeout for one call.
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    fn location(&self, key: &str) -> String {
        format!("{} key {key}", self.server)
    }

    fn try_put(&self, bytes: &[u8]) -> Result<(), PersistenceError> {
        let action = || {
            format!(
                "storing a {}-byte snapshot in {}",
                bytes.len(),
                self.location(&self.newest_key)
            )
        };
        // A clone shares the one multiplexed connection; `query_async`
        // needs it mutable.
        let mut connection = self.connection.clone();
        let mut script = redis::cmd("EVAL");
        script
            .arg(PUT_SCRIPT)
            .arg(2)
            .arg(&self.newest_key)
            .arg(&self.previous_key)
            .arg(bytes);
        let stored: i64 = block_on_bounded(
            &self.handle,
            self.op_timeout,
            script.query_async(&mut connection),
        )
        .ok_or_else(|| {
            timed_out(
                action(),
                self.op_timeout,
                "the snapshot may or may not be stored",
            )
        })?
        .map_err(|error| backend(action(), &error))?;
        if stored == 0 {
            tracing::debug!(
                key = %self.newest_key,
                bytes = bytes.len(),
                "the snapshot already is the newest; nothing changed"
            );
        }
        Ok(())
    }
}

impl SnapshotStore for RedisSnapshotStore {
    /// Stores `bytes` as the newest snapshot with one atomic script (see
    /// [`RedisSnapshotStore`]). Blocks for at most `op_timeout`; never call it
    /// from an async task.
    fn put(&self, bytes: &[u8]) -> Result<(), PersistenceError> {
        let result = self.try_put(bytes);
        match result {
            Ok(()) => {
                // Relaxed: a monitoring figure (see `stats`). Stored before
                // `puts` is counted, though a reader may still pair a new
                // count with the old size: figures, not a transaction.
                self.counters
                    .last_put_bytes
                    .store(bytes.len() as u64, Ordering::Relaxed);
                // Relaxed: a monitoring count (see `stats`).
                self.counters.puts.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                // Relaxed: a monitoring count (see `stats`).
                self.counters.put_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// The newest and the previous snapshot, newest first, read together
    /// with one `MGET`. Blocks for at most `op_timeout`; never call it from
    /// an async task.
    fn list(&self) -> Result<Vec<StoredSnapshot>, PersistenceError> {
        let action = || {
            format!(
                "reading snapshots {} and {}",
                self.location(&self.newest_key),
                self.previous_key
            )
        };
        let mut connection = self.connection.clone();
        let mut read = redis::cmd("MGET");
        read.arg(&self.newest_key).arg(&self.previous_key);
        let values: Vec<Option<Vec<u8>>> = block_on_bounded(
            &self.handle,
            self.op_timeout,
            read.query_async(&mut connection),
        )
        .ok_or_else(|| timed_out(action(), self.op_timeout, "nothing was read"))?
        .map_err(|error| backend(action(), &error))?;
        if values.len() != SNAPSHOTS_KEPT {
            // Not our invariant but the server's (or a proxy's): an error,
            // not a panic.
            return Err(PersistenceError::Backend {
                backend: "redis",
                action: action(),
                message: format!(
                    "MGET of {SNAPSHOTS_KEPT} keys answered {} values",
                    values.len()
                ),
            });
        }
        let mut values = values.into_iter();
        let (newest, previous) = (values.next().flatten(), values.next().flatten());
        if newest.is_none() && previous.is_some() {
            // `put` never leaves this state; someone deleted the key by hand
            // (or it holds another type, which MGET also reports as nil).
            tracing::warn!(
                key = %self.newest_key,
                server = %self.server,
                "the newest snapshot is missing; only the fallback is listed"
            );
        }
        let snapshots = [(&self.newest_key, newest), (&self.previous_key, previous)]
            .into_iter()
            .filter_map(|(key, bytes)| {
                Some(StoredSnapshot {
                    location: self.location(key),
                    bytes: bytes?,
                })
            })
            .collect();
        Ok(snapshots)
    }

    /// E.g. `redis://127.0.0.1:6379/0 keys leadex:snapshot:{newest,previous}`.
    fn describe(&self) -> String {
        format!(
            "{} keys {}:snapshot:{{newest,previous}}",
            self.server, self.key_prefix
        )
    }
}

impl std::fmt::Debug for RedisSnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSnapshotStore")
            .field("server", &self.server)
            .field("newest_key", &self.newest_key)
            .field("previous_key", &self.previous_key)
            .field("op_timeout", &self.op_timeout)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Runs `future` on `handle`'s runtime from this (blocking) thread for at
/// most `timeout`; `None` if it did not finish in time. Panics if called
/// from an async task (tokio's rule, see [`RedisSnapshotStore`]).
fn block_on_bounded<F: Future>(handle: &Handle, timeout: Duration, future: F) -> Option<F::Output> {
    // The timer is made inside the async block: creating one needs the
    // runtime's context, which `block_on` enters only once it polls.
    handle
        .block_on(async { tokio::time::timeout(timeout, future).await })
        .ok()
}

fn backend(action: String, error: &RedisError) -> PersistenceError {
    PersistenceError::Backend {
        backend: "redis",
        action,
        message: error.to_string(),
    }
}

fn timed_out(action: String, timeout: Duration, outcome: &str) -> PersistenceError {
    PersistenceError::Backend {
        backend: "redis",
        action,
        message: format!(
            "no answer within {} ms: Redis is down, unreachable or stalled ({outcome}; \
             the client reconnects by itself, so a later call can succeed)",
            timeout.as_millis()
        ),
    }
}

/// The server as a URL without credentials, for logs and errors.
fn server_description(info: &ConnectionInfo) -> String {
    let db = info.redis.db;
    match &info.addr {
        ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}/{db}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}/{db}"),
        ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={db}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi_thread_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    fn invalid_reason(result: Result<RedisSnapshotStore, PersistenceError>) -> String {
        match result {
            Err(PersistenceError::InvalidOptions { reason }) => reason,
            other => panic!("expected InvalidOptions, got {other:?}"),
        }
    }

    // None of these reach the network: options are checked first.
    #[test]
    fn refuses_bad_options_before_connecting() {
        let runtime = multi_thread_runtime();
        let connect = |prefix: &str, timeout: Duration| {
            RedisSnapshotStore::connect(
                "redis://127.0.0.1:1/0",
                prefix,
                runtime.handle().clone(),
                timeout,
            )
        };
        assert!(invalid_reason(connect("", Duration::from_secs(1))).contains("prefix is empty"));
        assert!(invalid_reason(connect("p", Duration::ZERO)).contains("op_timeout is 0 ms"));
        assert!(invalid_reason(connect(
            "p",
            RedisSnapshotStore::OP_TIMEOUT_MAX + Duration::from_millis(1)
        ))
        .contains("must be 1..=600000 ms"));
    }

    #[test]
    fn refuses_a_current_thread_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = RedisSnapshotStore::connect(
            "redis://127.0.0.1:1/0",
            "p",
            runtime.handle().clone(),
            Duration::from_secs(1),
        );
        assert!(invalid_reason(result).contains("multi-thread"));
    }

    #[test]
    fn a_bad_url_is_a_backend_error_without_the_password() {
        let runtime = multi_thread_runtime();
        let result = RedisSnapshotStore::connect(
            "http://user:secret@127.0.0.1:1/0",
            "p",
            runtime.handle().clone(),
            Duration::from_secs(1),
        );
        match result {
            Err(
                error @ PersistenceError::Backend {
                    backend: "redis", ..
                },
            ) => {
                assert!(!error.to_string().contains("secret"), "{error}");
            }
            other => panic!("expected a redis Backend error, got {other:?}"),
        }
    }

    #[test]
    fn server_descriptions_leave_credentials_out() {
        let info: ConnectionInfo = "redis://user:secret@example.com:6380/3".parse().unwrap();
        assert_eq!(server_description(&info), "redis://example.com:6380/3");
        let info: ConnectionInfo = "redis+unix:///run/redis.sock?db=2".parse().unwrap();
        assert_eq!(
            server_description(&info),
            "redis+unix:///run/redis.sock?db=2"
        );
    }
}
