//! The real `leadex-gen-marketplace` binary: it writes a file that loads,
//! the same seed writes the same file, and bad arguments exit non-zero.

use std::process::Command;

fn generate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leadex-gen-marketplace"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn writes_a_2k_campaign_marketplace_that_loads_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("market.toml");
    let out_text = out.display().to_string();
    let run = generate(&["--campaigns", "2000", "--seed", "11", "--out", &out_text]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("2000 campaigns (read back and validated)")
    );

    let market = leadex_config::read_marketplace(&[&out]).expect("the written file loads");
    assert_eq!(
        market,
        leadex_config::synth::synthetic_marketplace(2_000, 11)
    );
    let header = std::fs::read_to_string(&out).unwrap();
    assert!(
        header.starts_with("# leadex marketplace: 3 sellers, 200 buyers, 2000 campaigns."),
        "{header:.200}"
    );
    assert!(
        header.contains("--campaigns 2000 --seed 11 --out"),
        "the header says how to regenerate"
    );

    let again = dir.path().join("again.toml");
    let run = generate(&[
        "--campaigns",
        "2000",
        "--seed",
        "11",
        "--out",
        &again.display().to_string(),
    ]);
    assert!(run.status.success());
    let strip_header = |s: String| {
        s.lines()
            .skip_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip_header(std::fs::read_to_string(&out).unwrap()),
        strip_header(std::fs::read_to_string(&again).unwrap()),
        "same seed, same file"
    );
}

#[test]
fn bad_arguments_exit_with_usage() {
    for args in [
        &["--seed", "1", "--out", "x.toml"][..],
        &["--campaigns", "ten", "--seed", "1", "--out", "x"],
        &["--frobnicate"],
    ] {
        let run = generate(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&run.stderr).contains("usage:"),
            "{args:?}"
        );
    }
}
