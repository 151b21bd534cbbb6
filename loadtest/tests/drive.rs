//! Drives a real leadex server, started in-process on a free port with the
//! demo marketplace, for a few seconds at a low rate and checks the counts.

use leadex_loadtest::cli::{Options, Scenario};
use leadex_loadtest::report::Kind;
use std::path::Path;
use std::time::Duration;

async fn start_demo_server(data_dir: &Path) -> leadex::run::Running {
    let config_path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/leadex.toml"
    ));
    let mut loaded =
        leadex_config::load(Some(config_path), std::iter::empty()).expect("the demo config loads");
    loaded.config.storage.path = data_dir.to_path_buf();
    loaded.config.server.listen = "127.0.0.1:0".parse().unwrap();
    leadex::run::start(loaded).await.expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_post_at_200_per_second_for_3_seconds_gets_every_answer() {
    let data = tempfile::tempdir().unwrap();
    let server = start_demo_server(data.path()).await;
    let options = Options {
        target: format!("http://{}", server.addr),
        scenario: Scenario::PingPost,
        rate_per_s: 200,
        duration: Duration::from_secs(3),
        warmup: Duration::from_millis(500),
        connections: 4,
        seed: 42,
        json: None,
        post_share: 0.5,
        ..Options::default()
    };
    let report = leadex_loadtest::run::run(&options)
        .await
        .expect("the run completes");
    server.shutdown().await.unwrap();

    let ping = report.kind(Kind::Ping).expect("pings were measured");
    assert_eq!(
        ping.count, 600,
        "rate x duration, warm-up excluded: {report:#?}"
    );
    assert!(
        ping.errors.is_empty(),
        "every ping answered 200: {report:#?}"
    );
    assert!(ping.won > 0, "some pings get bids: {report:#?}");
    assert_eq!(
        ping.won + ping.no_bids.values().sum::<u64>(),
        ping.count,
        "every ping has bids or a reason"
    );
    assert!(
        ping.no_bids.keys().all(|r| !r.is_empty() && r != "unknown"),
        "{report:#?}"
    );

    let post = report.kind(Kind::Post).expect("posts were measured");
    // Every post is answered 200 (sold) except, possibly, `bid_unavailable`:
    // bids are not reservations, and which campaigns are open (and so which
    // caps fill up) depends on the hour the test runs at.
    assert!(
        post.errors.keys().all(|code| code == "409 bid_unavailable"),
        "posts answered 200: {report:#?}"
    );
    assert!(post.won > post.count / 2, "most posts sold: {report:#?}");
    assert_eq!(post.won + post.errors.values().sum::<u64>(), post.count);
    // About half the pings with bids are posted.
    let share = post.count as f64 / ping.won as f64;
    assert!(
        (0.3..0.7).contains(&share),
        "post share {share}: {report:#?}"
    );
    // The generator kept up: 600 pings in about 3 s.
    assert!(
        (2.9..6.0).contains(&report.elapsed_s),
        "elapsed {}",
        report.elapsed_s
    );
    assert!(ping.latency_us.p50 > 0 && ping.latency_us.max >= ping.latency_us.p99);
}
