//! Drives a real leadex server, started in-process on a free port with the
//! demo marketplace, at low rates for a few seconds, and checks the counts,
//! the rate search with its baseline, and the exit codes.

mod common;

use common::start_demo_server;
use leadex_loadtest::cli::{Options, Scenario};
use leadex_loadtest::findmax::Plan;
use leadex_loadtest::report::Kind;
use leadex_loadtest::slo::Slo;
use std::path::Path;
use std::time::Duration;

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

/// A short `--find-max --baseline` against the demo server, with a tiny
/// plan: the search, the baseline process, the operating points and the
/// report hold together. Only counts are asserted, never timings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_max_with_baseline_runs_both_searches_and_reports_the_ratio() {
    let data = tempfile::tempdir().unwrap();
    let server = start_demo_server(data.path()).await;
    let options = Options {
        target: format!("http://{}", server.addr),
        scenario: Scenario::Ping,
        connections: 2,
        find_max: true,
        baseline: true,
        ..Options::default()
    };
    let plan = Plan {
        start_rate: 50,
        step_warmup: Duration::from_millis(100),
        step: Duration::from_millis(400),
        max_steps: 3,
        probe_pings: 16,
        baseline_exe: Some(env!("CARGO_BIN_EXE_loadtest").into()),
        ..Plan::default()
    };
    let report = leadex_loadtest::findmax::run(&options, &Slo::default(), &plan)
        .await
        .expect("the run completes");
    // Every step sent leads of its own: each ping answered with bids is a
    // new open ping (all within the price lock), none an idempotent re-ping
    // of an earlier step's lead, which would skip the auction.
    let won: u64 = report
        .target
        .steps
        .iter()
        .map(|s| &s.report)
        .chain(report.operating_points.iter().map(|p| &p.report))
        .filter_map(|r| r.kind(Kind::Ping))
        .map(|k| k.won)
        .sum();
    assert!(
        server.engine.pending_pings() as u64 >= won,
        "{} open pings for {won} pings with bids",
        server.engine.pending_pings()
    );
    server.shutdown().await.unwrap();

    let baseline = report.baseline.as_ref().expect("a baseline was measured");
    for search in [&baseline.search, &report.target] {
        assert!(
            (1..=3).contains(&search.steps.len()),
            "at most max_steps: {report:#?}"
        );
        for step in &search.steps {
            let ping = step.report.kind(Kind::Ping).expect("pings measured");
            // Open loop: every scheduled arrival is measured, answered or not.
            assert_eq!(ping.count, step.rate_per_s * 2 / 5, "{step:#?}");
            assert_eq!(step.sustainable, step.checks.iter().all(|c| c.pass));
        }
    }
    assert!(
        baseline.answer_bytes > 50,
        "a real bid answer: {}",
        baseline.answer_bytes
    );
    let ratio_check = report
        .checks
        .iter()
        .find(|c| c.name == "leadex / baseline max rate")
        .expect("the ratio is checked");
    if let (Some(ours), Some(bare)) = (report.target.max_rate_per_s, baseline.search.max_rate_per_s)
    {
        assert_eq!(baseline.ratio, Some(ours as f64 / bare as f64));
        assert_eq!(ratio_check.measured, ours as f64 / bare as f64);
        // One operating point per configured share.
        assert_eq!(report.operating_points.len(), 3);
    }
    assert_eq!(report.pass, report.checks.iter().all(|c| c.pass));
    let curves = report.curves();
    assert_eq!(curves.len(), 2);
    assert!(leadex_loadtest::plot::render_svg("t", &curves, &[]).is_ok());
    let back: leadex_loadtest::findmax::FindMaxReport =
        serde_json::from_str(&report.to_json()).unwrap();
    // Floats may lose their last bit through JSON; the structure may not.
    assert_eq!(back.target.steps.len(), report.target.steps.len());
    assert_eq!(back.target.max_rate_per_s, report.target.max_rate_per_s);
    assert_eq!(back.checks.len(), report.checks.len());
    assert_eq!(back.pass, report.pass);
    assert!(report.table().contains("ratio leadex / baseline"));
}

/// The binary's exit code says whether the SLOs held: the same short run
/// passes a loose SLO file and fails an impossible one; bad flags exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exit_code_follows_the_slo_file() {
    let data = tempfile::tempdir().unwrap();
    let server = start_demo_server(data.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let slo_file = |name: &str, p99_ms: &str| {
        let text = leadex_loadtest::slo::DEFAULT_SLO_TOML
            .replace("p99_ms = 1.0", &format!("p99_ms = {p99_ms}"))
            .replace("p99_9_ms = 5.0", "p99_9_ms = 60000");
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let loose = slo_file("loose.toml", "60000");
    let impossible = slo_file("impossible.toml", "0.000001");
    let run = |slo: &Path| {
        let target = format!("http://{}", server.addr);
        let slo = slo.to_path_buf();
        let json = dir.path().join("report.json");
        tokio::task::spawn_blocking(move || {
            let status = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
                .args(["--target", &target, "--rate", "100", "--duration", "1"])
                .args(["--warmup", "0.2", "--connections", "2", "--slo"])
                .arg(&slo)
                .arg("--json")
                .arg(&json)
                .output()
                .unwrap();
            let report: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
            (status.status.code(), report)
        })
    };
    let (code, report) = run(&loose).await.unwrap();
    assert_eq!(code, Some(0), "{report:#}");
    assert!(report["checks"].as_array().unwrap().len() >= 3);
    let (code, report) = run(&impossible).await.unwrap();
    assert_eq!(code, Some(1), "{report:#}");
    server.shutdown().await.unwrap();

    for bad in [
        vec!["--rate", "0"],
        vec!["--baseline"],
        vec!["--slo", "/no/such/slo.toml"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty(), "{bad:?} says why");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: loadtest"));
}
