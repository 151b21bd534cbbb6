//! [`RedisSnapshotStore`] against a real `redis-server`: the two-newest
//! rotation, a 20 MB snapshot, bounded failure while Redis is down or
//! stalled, and reconnection after a restart without recreating the store.
//!
//! Run through the harness, which starts Redis and sets the variables:
//! `scripts/services cargo test -p leadex-persistence --test redis_store`.
//! `TEST_LEADEX_REDIS_URL` names the shared server (each test uses its own
//! key prefix and deletes its keys); the outage tests start their own
//! server from `TEST_LEADEX_REDIS_SERVER`, since they stop it. Without the
//! variables the tests fail: a skipped test would pass without testing.

use leadex_persistence::{PersistenceError, RedisSnapshotStore, SnapshotStore};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Timeout of the stores in the outage tests: short, so that they are quick.
const OUTAGE_OP_TIMEOUT: Duration = Duration::from_millis(500);
/// What a failing call may take beyond its timeout on a loaded CI machine.
const TIMEOUT_SLACK: Duration = Duration::from_millis(1500);
/// How long a restarted Redis may take to be used again by the same store.
/// The store retries connections every 1-2 s, so this is a few attempts.
const RECOVERY_MAX: Duration = Duration::from_secs(8);

fn env_or_fail(name: &str, what: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: it names {what}. Run these tests through the services \
             harness, which starts Redis and sets it: \
             `scripts/services cargo test -p leadex-persistence --test redis_store` \
             (or set {name} yourself)"
        ),
    }
}

fn shared_redis_url() -> String {
    env_or_fail("TEST_LEADEX_REDIS_URL", "the Redis server the tests use")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A key prefix no other test (or run, or machine sharing the server) uses.
fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("leadex-test:{test}:{}:{nanos}", std::process::id())
}

/// Deletes a test's keys when dropped, pass or fail, so that a shared
/// server does not keep megabytes of test snapshots.
struct DeleteKeys {
    url: String,
    keys: Vec<String>,
}

impl Drop for DeleteKeys {
    fn drop(&mut self) {
        let deleted = redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut connection| {
                redis::cmd("DEL")
                    .arg(&self.keys)
                    .query::<i64>(&mut connection)
            });
        if let Err(error) = deleted {
            eprintln!("could not delete test keys {:?}: {error}", self.keys);
        }
    }
}

/// A store on the shared server, and the guard deleting its keys.
fn shared_store(
    test: &str,
    runtime: &tokio::runtime::Runtime,
    op_timeout: Duration,
) -> (RedisSnapshotStore, DeleteKeys) {
    let url = shared_redis_url();
    let store = RedisSnapshotStore::connect(
        &url,
        &unique_prefix(test),
        runtime.handle().clone(),
        op_timeout,
    )
    .unwrap_or_else(|error| panic!("cannot connect to TEST_LEADEX_REDIS_URL={url}: {error}"));
    let keys = vec![
        store.newest_key().to_owned(),
        store.previous_key().to_owned(),
    ];
    (store, DeleteKeys { url, keys })
}

fn listed(store: &RedisSnapshotStore) -> Vec<Vec<u8>> {
    store
        .list()
        .unwrap()
        .into_iter()
        .map(|snapshot| snapshot.bytes)
        .collect()
}

fn assert_redis_error(result: Result<(), PersistenceError>, started: Instant, timeout: Duration) {
    let elapsed = started.elapsed();
    match result {
        Err(PersistenceError::Backend {
            backend: "redis", ..
        }) => {}
        other => panic!("expected a redis Backend error, got {other:?}"),
    }
    assert!(
        elapsed <= timeout + TIMEOUT_SLACK,
        "the call took {elapsed:?}, more than its timeout {timeout:?} + {TIMEOUT_SLACK:?}"
    );
}

// --- the store on the shared server ----------------------------------------

#[test]
fn keeps_the_two_newest_newest_first() {
    let runtime = runtime();
    let (store, _delete) = shared_store("rotation", &runtime, Duration::from_secs(5));
    assert!(listed(&store).is_empty(), "a fresh prefix holds nothing");

    store.put(b"first").unwrap();
    assert_eq!(listed(&store), [b"first".to_vec()]);

    store.put(b"second").unwrap();
    assert_eq!(listed(&store), [b"second".to_vec(), b"first".to_vec()]);

    store.put(b"third").unwrap();
    assert_eq!(listed(&store), [b"third".to_vec(), b"second".to_vec()]);

    let snapshots = store.list().unwrap();
    assert!(
        snapshots[0].location.ends_with(store.newest_key())
            && snapshots[1].location.ends_with(store.previous_key()),
        "locations name the keys: {snapshots:?}"
    );
    assert!(
        store.describe().starts_with("redis://"),
        "{}",
        store.describe()
    );

    let stats = store.stats();
    assert_eq!(
        (stats.puts, stats.put_failures, stats.last_put_bytes),
        (3, 0, 5)
    );
}

#[test]
fn putting_the_newest_again_keeps_the_fallback() {
    let runtime = runtime();
    let (store, _delete) = shared_store("idempotent", &runtime, Duration::from_secs(5));
    store.put(b"first").unwrap();
    store.put(b"second").unwrap();
    // A retry of a put that in fact landed.
    store.put(b"second").unwrap();
    assert_eq!(listed(&store), [b"second".to_vec(), b"first".to_vec()]);
    // Same size, other bytes: a new snapshot.
    store.put(b"secont").unwrap();
    assert_eq!(listed(&store), [b"secont".to_vec(), b"second".to_vec()]);
}

#[test]
fn concurrent_puts_and_lists_always_see_two_distinct_snapshots() {
    const WRITERS: usize = 4;
    const PUTS_PER_WRITER: usize = 25;
    let runtime = runtime();
    let (store, _delete) = shared_store("concurrent", &runtime, Duration::from_secs(5));
    store.put(b"seed-0").unwrap();
    store.put(b"seed-1").unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let store = &store;
                scope.spawn(move || {
                    for put in 0..PUTS_PER_WRITER {
                        store.put(format!("w{writer}-{put}").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        let reader = scope.spawn(|| {
            let mut lists = 0u32;
            // Bounded by the writers: they finish, then `done` ends it.
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let snapshots = listed(&store);
                assert_eq!(snapshots.len(), 2, "{snapshots:?}");
                assert_ne!(
                    snapshots[0], snapshots[1],
                    "newest and fallback are one snapshot"
                );
                lists += 1;
            }
            lists
        });
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(store.stats().puts, (2 + WRITERS * PUTS_PER_WRITER) as u64);
}

#[test]
fn a_20_mb_snapshot_round_trips() {
    const SNAPSHOT_BYTES: usize = 20 << 20;
    let runtime = runtime();
    let (store, _delete) = shared_store("large", &runtime, Duration::from_secs(20));
    // Not one repeated byte: a shifted or truncated copy must not compare equal.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let big: Vec<u8> = (0..SNAPSHOT_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();

    store.put(b"small").unwrap();
    let started = Instant::now();
    store.put(&big).unwrap();
    let put_elapsed = started.elapsed();
    let started = Instant::now();
    let snapshots = listed(&store);
    eprintln!("20 MB put {put_elapsed:?}, list {:?}", started.elapsed());
    assert_eq!(snapshots.len(), 2);
    assert!(snapshots[0] == big, "the 20 MB snapshot came back changed");
    assert_eq!(snapshots[1], b"small");
    assert_eq!(store.stats().last_put_bytes, SNAPSHOT_BYTES as u64);
}

#[test]
fn connecting_to_nothing_fails_within_the_timeout() {
    let runtime = runtime();
    let port = free_port();
    let started = Instant::now();
    let result = RedisSnapshotStore::connect(
        &format!("redis://127.0.0.1:{port}/0"),
        "nothing",
        runtime.handle().clone(),
        OUTAGE_OP_TIMEOUT,
    )
    .map(|_| ());
    assert_redis_error(result, started, OUTAGE_OP_TIMEOUT);
}

// --- outages, on a server of the test's own ------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of one test, on a port that stays the same across
/// restarts. Killed when dropped.
struct OwnRedis {
    binary: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let binary = env_or_fail(
            "TEST_LEADEX_REDIS_SERVER",
            "the redis-server binary the outage tests start and stop",
        );
        let mut redis = OwnRedis {
            binary,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server (again) on its port and waits until it answers.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("redis.log")).unwrap();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.binary));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.command("PING").as_deref() == Some("+PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        panic!(
            "redis-server on port {} did not answer in 10 s; log:\n{log}",
            self.port
        );
    }

    /// Sends one inline command, returns the first line of the answer.
    fn command(&self, command: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }

    /// `SHUTDOWN NOSAVE`: the data is gone and the port is closed.
    fn shutdown(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = self.command("SHUTDOWN NOSAVE");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "redis-server on port {} ignored SHUTDOWN NOSAVE for 5 s",
            self.port
        );
    }

    /// Sends SIGSTOP or SIGCONT: a stopped server keeps its connections
    /// open and answers nothing.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn fails_within_the_timeout_while_redis_is_down() {
    let runtime = runtime();
    let mut redis = OwnRedis::start();
    let store = RedisSnapshotStore::connect(
        &redis.url(),
        "down",
        runtime.handle().clone(),
        OUTAGE_OP_TIMEOUT,
    )
    .unwrap();
    store.put(b"before").unwrap();

    redis.shutdown();
    for _ in 0..3 {
        let started = Instant::now();
        assert_redis_error(store.put(b"during"), started, OUTAGE_OP_TIMEOUT);
        let started = Instant::now();
        assert_redis_error(store.list().map(|_| ()), started, OUTAGE_OP_TIMEOUT);
    }
    let stats = store.stats();
    assert_eq!((stats.puts, stats.put_failures), (1, 3));
}

#[test]
fn fails_within_the_timeout_while_redis_is_stalled() {
    let runtime = runtime();
    let redis = OwnRedis::start();
    let store = RedisSnapshotStore::connect(
        &redis.url(),
        "stalled",
        runtime.handle().clone(),
        OUTAGE_OP_TIMEOUT,
    )
    .unwrap();
    store.put(b"before").unwrap();

    // The connection stays open and nothing answers: only the store's own
    // timeout ends the call.
    redis.signal("-STOP");
    let started = Instant::now();
    let result = store.put(b"during");
    let listed_while_stalled = store.list().map(|_| ());
    redis.signal("-CONT");
    assert_redis_error(result, started, OUTAGE_OP_TIMEOUT);
    assert!(listed_while_stalled.is_err());

    // Once it resumes, the same store works again: the stalled put may
    // have landed late, and the next one is the newest.
    store.put(b"after").unwrap();
    assert_eq!(listed(&store)[0], b"after");
}

#[test]
fn reconnects_by_itself_after_a_restart() {
    let runtime = runtime();
    let mut redis = OwnRedis::start();
    let store = RedisSnapshotStore::connect(
        &redis.url(),
        "restart",
        runtime.handle().clone(),
        OUTAGE_OP_TIMEOUT,
    )
    .unwrap();
    store.put(b"before").unwrap();

    redis.shutdown();
    let started = Instant::now();
    assert_redis_error(store.put(b"during"), started, OUTAGE_OP_TIMEOUT);

    redis.restart();
    let restarted = Instant::now();
    let mut attempts = 0u32;
    let recovered = loop {
        attempts += 1;
        match store.put(b"after") {
            Ok(()) => break restarted.elapsed(),
            Err(error) if restarted.elapsed() < RECOVERY_MAX => {
                eprintln!("attempt {attempts}: {error}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!(
                "still failing {RECOVERY_MAX:?} after Redis restarted ({attempts} attempts): {error}"
            ),
        }
    };
    eprintln!("a put succeeded {recovered:?} after the restart ({attempts} attempts)");
    // SHUTDOWN NOSAVE dropped "before": the restarted server holds only "after".
    assert_eq!(listed(&store), [b"after".to_vec()]);
}
