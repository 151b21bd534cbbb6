//! `leadex-gen-marketplace`: writes a generated marketplace as TOML.
//!
//! ```text
//! leadex-gen-marketplace --campaigns N --seed S [--demo] --out PATH
//! ```
//!
//! The written file is read back through `leadex_config::load` (parse and
//! validation, exactly as the server reads it) and compared with what was
//! generated; a mismatch is an error, so a file this tool writes always loads.

use leadex_config::synth::{self, Profile};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: leadex-gen-marketplace --campaigns N --seed S [--demo] --out PATH

  --campaigns N   number of campaigns
  --seed S        random seed (the same seed gives the same file)
  --demo          named sellers and buyers and always-open CA/TX auto campaigns
                  (the profile of config/marketplace/demo.toml)
  --out PATH      file to write";

struct Args {
    campaigns: usize,
    seed: u64,
    profile: Profile,
    out: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut campaigns, mut seed, mut out, mut profile) = (None, None, None, Profile::Synthetic);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--campaigns" => {
                let v = value("--campaigns")?;
                campaigns = Some(
                    v.parse()
                        .map_err(|_| format!("--campaigns: {v:?} is not a count"))?,
                );
            }
            "--seed" => {
                let v = value("--seed")?;
                seed = Some(
                    v.parse()
                        .map_err(|_| format!("--seed: {v:?} is not an unsigned integer"))?,
                );
            }
            "--out" => out = Some(value("--out")?),
            "--demo" => profile = Profile::Demo,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        campaigns: campaigns.ok_or("--campaigns is required")?,
        seed: seed.ok_or("--seed is required")?,
        profile,
        out: out.ok_or("--out is required")?,
    })
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("leadex-gen-marketplace: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("leadex-gen-marketplace: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<String, String> {
    let market = synth::generate_marketplace(args.campaigns, args.seed, args.profile);
    let command = synth::generator_command(args.campaigns, args.seed, args.profile, &args.out);
    let text = synth::marketplace_file(&market, &command)
        .map_err(|e| format!("cannot write TOML: {e}"))?;
    let out = PathBuf::from(&args.out);
    std::fs::write(&out, text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;

    // Read it back the way the server does: through `load`, with the file as
    // the only marketplace file and no config file.
    let absolute = std::path::absolute(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let files =
        toml::Value::Array(vec![toml::Value::String(absolute.display().to_string())]).to_string();
    let loaded = leadex_config::load(None, [("LEADEX_MARKETPLACE__FILES".to_owned(), files)])
        .map_err(|e| format!("the written file does not load: {e}"))?;
    if loaded.marketplace != market {
        return Err(format!(
            "{} does not read back to the generated marketplace",
            out.display()
        ));
    }
    Ok(format!(
        "wrote {}: {} sellers, {} buyers, {} campaigns (read back and validated)",
        out.display(),
        market.sellers.len(),
        market.buyers.len(),
        market.campaigns.len()
    ))
}
