//! `--setup-route` against a real admin API, then `--scenario route`
//! against the same server, started in-process on free ports with the demo
//! marketplace: every answer is an assignment (`offered` or `unassigned`),
//! some are offered, and no checked answer breaks the factor sum.

mod common;

use common::start_demo_server;
use leadex_loadtest::cli::{Options, Scenario};
use leadex_loadtest::report::Kind;
use leadex_loadtest::setup;
use leadex_loadtest::slo::Slo;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_route_makes_the_account_and_the_route_scenario_counts_every_answer() {
    let data = tempfile::tempdir().unwrap();
    let server = start_demo_server(data.path()).await;
    let admin_key = server
        .first_admin_key
        .clone()
        .or_else(|| std::env::var(leadex_config::ADMIN_KEY_ENV).ok())
        .expect("a fresh data dir prints the first admin key");
    let setup_options = Options {
        setup_route: Some(3),
        admin_url: Some(format!("http://{}", server.admin_addr)),
        admin_key: Some(admin_key),
        ..Options::default()
    };
    let first = setup::run(&setup_options).await.expect("the setup runs");
    assert!(first.buyer_created);
    assert_eq!(first.agents, 3);
    assert!(first.key.starts_with("ldx_"), "{first:?}");
    // Again: the account exists, the agents are replaced, a new key.
    let second = setup::run(&setup_options)
        .await
        .expect("a second setup runs");
    assert!(!second.buyer_created);
    assert_ne!(second.key, first.key);
    // A wrong admin key is refused with the admin API's answer.
    let refused = setup::run(&Options {
        admin_key: Some("ldx_not_a_key".into()),
        ..setup_options.clone()
    })
    .await
    .unwrap_err();
    assert!(refused.contains("401"), "{refused}");

    let options = Options {
        target: format!("http://{}", server.addr),
        scenario: Scenario::Route,
        route_key: Some(second.key.clone()),
        rate_per_s: 100,
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(200),
        connections: 2,
        ..Options::default()
    };
    let report = leadex_loadtest::run::run(&options)
        .await
        .expect("the run completes");
    let route = report.kind(Kind::Route).expect("routes were measured");
    assert_eq!(route.count, 100, "{report:#?}");
    // The agents made by the setup are routable: every answer is an
    // assignment, some offered, and the checked ones add up.
    assert!(route.errors.is_empty(), "{report:#?}");
    assert_eq!(
        route.won + route.no_bids.values().sum::<u64>(),
        route.count,
        "{report:#?}"
    );
    assert!(route.won > 0, "{report:#?}");
    assert!(route.checked >= 1, "{report:#?}");
    assert_eq!(route.invariant_violations, 0, "{report:#?}");
    let checks = Slo::default().check(&report);
    assert!(checks
        .iter()
        .any(|c| c.name == "route answers whose factors do not add up to the score" && c.pass));
    assert!(report.table().contains("route"));

    // A key that may not route: every answer a failure, and the SLO says so.
    let report = leadex_loadtest::run::run(&Options {
        route_key: Some("demo-seller-key".into()),
        ..options.clone()
    })
    .await
    .expect("the run completes");
    let route = report.kind(Kind::Route).unwrap();
    assert_eq!(route.won, 0);
    assert_eq!(
        route.errors.values().sum::<u64>(),
        route.count,
        "{report:#?}"
    );
    assert!(route
        .errors
        .keys()
        .all(|k| k == "401 unauthorized" || k == "403 forbidden"));
    let failed: Vec<_> = Slo::default()
        .check(&report)
        .into_iter()
        .filter(|c| !c.pass)
        .map(|c| c.name)
        .collect();
    assert!(
        failed.contains(&"route failure share".to_owned()),
        "{failed:?}"
    );
    // The binary prints the key and the command; 1 agent cannot take the
    // default run's 12,000 routes, so it warns.
    let (admin_url, admin_key) = (
        setup_options.admin_url.clone().unwrap(),
        setup_options.admin_key.clone().unwrap(),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(["--setup-route", "1", "--admin-url", &admin_url])
            .args(["--admin-key", &admin_key])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("--scenario route --route-key ldx_"),
        "{stdout}"
    );
    assert!(stdout.contains("warning: the run sends 12000"), "{stdout}");
    server.shutdown().await.unwrap();

    // Without a key the scenario is refused before anything is sent.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--scenario", "route"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--route-key"));
}
