//! `loadtest`: see the `leadex_loadtest` crate doc.

use leadex_loadtest::{baseline, cli, findmax, plot, run, setup, slo::Slo};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The same allocator as leadex, so the baseline server (this binary) and
/// leadex differ by the engine only.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An SLO was missed.
const EXIT_SLO_MISSED: u8 = 1;
/// The flags or the SLO file are wrong.
const EXIT_USAGE: u8 = 2;
/// The run itself failed (target unreachable, files not written), or the
/// admin API refused `--setup-route`.
const EXIT_RUN_FAILED: u8 = 3;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, body_file] = args.as_slice() {
        if flag == baseline::SERVE_FLAG {
            return match baseline::child_main(Path::new(body_file)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("loadtest baseline server: {e}");
                    ExitCode::from(EXIT_RUN_FAILED)
                }
            };
        }
    }
    let options = match cli::parse(args) {
        Ok(options) => options,
        Err(message) if message == cli::USAGE => {
            // `--help`: asked for, so on standard output and a success.
            println!("{message}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let slo = match &options.slo {
        Some(path) => match Slo::load(path) {
            Ok(slo) => slo,
            Err(message) => {
                eprintln!("{message}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => Slo::default(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("starting the runtime: {e}");
            return ExitCode::from(EXIT_RUN_FAILED);
        }
    };
    if options.setup_route.is_some() {
        return match runtime.block_on(setup::run(&options)) {
            Ok(done) => {
                print!("{}", setup::summary(&options, &done));
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("loadtest --setup-route: {message}");
                ExitCode::from(EXIT_RUN_FAILED)
            }
        };
    }
    let outcome = if options.find_max {
        runtime.block_on(find_max(&options, &slo))
    } else {
        runtime.block_on(fixed_rate(&options, &slo))
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_SLO_MISSED),
        Err(message) => {
            eprintln!("loadtest: {message}");
            ExitCode::from(EXIT_RUN_FAILED)
        }
    }
}

/// One run at `--rate`; `Ok(pass)`.
async fn fixed_rate(options: &cli::Options, slo: &Slo) -> Result<bool, String> {
    let mut report = run::run(options).await?;
    report.checks = slo.check(&report);
    print!("{}", report.table());
    if let Some(path) = &options.json {
        write(path, report.to_json().as_bytes())?;
    }
    Ok(report.checks.iter().all(|c| c.pass))
}

/// `--find-max`, with `--baseline` if asked; `Ok(pass)`.
async fn find_max(options: &cli::Options, slo: &Slo) -> Result<bool, String> {
    let plan = findmax::Plan {
        start_rate: options.rate_per_s,
        step: options.step,
        ..findmax::Plan::default()
    };
    let report = findmax::run(options, slo, &plan).await?;
    print!("{}", report.table());
    let json = options
        .json
        .clone()
        .unwrap_or_else(|| PathBuf::from(cli::FIND_MAX_JSON));
    write(&json, report.to_json().as_bytes())?;
    let plot_path = options
        .plot
        .clone()
        .unwrap_or_else(|| PathBuf::from(cli::FIND_MAX_PLOT));
    let first = slo.kind(report.first_kind());
    let mut lines = vec![
        ("SLO p99".to_owned(), first.p99_ms),
        ("sustainable p99".to_owned(), slo.find_max.p99_ms),
    ];
    if let Some(p99_9) = first.p99_9_ms {
        lines.push(("SLO p99.9".to_owned(), p99_9));
    }
    let svg = plot::render_svg(
        &format!("{} latency by offered rate", report.scenario),
        &report.curves(),
        &lines,
    )?;
    write(&plot_path, svg.as_bytes())?;
    println!("wrote {} and {}", json.display(), plot_path.display());
    Ok(report.pass)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}
