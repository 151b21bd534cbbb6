//! The `leadex` binary: parse flags, load and validate config (before any
//! port is bound), set up tracing and the allocator, serve until SIGTERM or
//! Ctrl-C, then drain and flush.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: leadex [--config PATH] [--check-config]

  --config PATH    TOML config file (default: built-in defaults, empty marketplace)
  --check-config   validate the config and marketplace, then exit
Environment overrides: LEADEX_<SECTION>__<KEY>, e.g. LEADEX_SERVER__LISTEN=127.0.0.1:9000";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut config_path: Option<PathBuf> = None;
    let mut check_only = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => match args.next() {
                Some(p) => config_path = Some(PathBuf::from(p)),
                None => return usage_error("--config needs a path"),
            },
            "--check-config" => check_only = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage_error(&format!("unknown argument {other:?}")),
        }
    }
    let loaded = match leadex_config::load_from_process_env(config_path.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("leadex: {e}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!(
            "config ok: {} sellers, {} buyers, {} campaigns",
            loaded.marketplace.sellers.len(),
            loaded.marketplace.buyers.len(),
            loaded.marketplace.campaigns.len()
        );
        return ExitCode::SUCCESS;
    }
    init_tracing(&loaded.config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("leadex: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leadex: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("leadex: {message}\n{USAGE}");
    ExitCode::from(2)
}

fn init_tracing(config: &leadex_config::Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        leadex_config::LogFormat::Json => builder.json().init(),
        leadex_config::LogFormat::Text => builder.init(),
    }
}

async fn serve(loaded: leadex_config::Loaded) -> anyhow::Result<()> {
    let running = leadex::run::start(loaded).await?;
    shutdown_signal()
        .await
        .context("waiting for a shutdown signal")?;
    tracing::info!("shutting down: draining requests and flushing the journal");
    running.shutdown().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
