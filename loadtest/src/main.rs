//! `loadtest`: see the `leadex_loadtest` crate doc.

use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match leadex_loadtest::cli::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(leadex_loadtest::run::run(&options)) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("loadtest: {message}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.table());
    if let Some(path) = &options.json {
        if let Err(e) = std::fs::write(path, report.to_json()) {
            eprintln!("writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
