//! `--setup-route N`: the routing account `--scenario route` needs, made
//! through the admin API (docs/PROTOCOL.md, README "Manage it with curl"):
//! the buyer account [`AGENCY_ID`] if absent, N agents licensed for every
//! lead the synthetic sampler produces (created or replaced, so a second
//! setup is harmless), and a new buyer key for the account. It prints the
//! key and the command that runs the scenario.
//!
//! Each agent holds at most [`AGENT_CAPACITY`] open assignments and the
//! load test closes none, so N agents bound a run (all runs together) to
//! N × 10,000 routed leads; past that, answers turn `unassigned`
//! (`at_capacity`).

use crate::cli::{Options, Scenario, ADMIN_URL_DEFAULT};
use crate::run::{error_key, Connection, Reply, Target};
use crate::schedule::Schedule;
use crate::wire;
use hyper::Method;
use leadex_engine::lead::STATE_CODES;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Duration;

/// The buyer account routed for.
pub const AGENCY_ID: &str = "lt-agency";
/// Each agent's capacity: the most open assignments it holds, the most the
/// admin API accepts.
pub const AGENT_CAPACITY: u32 = 10_000;
/// Every line of authority, so every vertical is licensed: auto
/// (casualty, personal lines), home and renters (property), life, health
/// and Medicare (health), commercial.
pub const LINES: [&str; 6] = [
    "property",
    "casualty",
    "personal_lines",
    "life",
    "health",
    "commercial",
];
/// One agent in this many is captive of [`CAPTIVE_CARRIER`], so the
/// captive rule excludes someone for the leads insured with it.
pub const CAPTIVE_EVERY: u32 = 10;
/// The most common carrier of the sampled auto and home leads.
pub const CAPTIVE_CARRIER: &str = "state_farm";
/// Seed of the office ZIPs: agent `i`'s office is the ZIP of the sampler's
/// lead `i` under this seed, so offices are spread as leads are (by state
/// population).
const OFFICE_ZIP_SEED: u64 = 0x1ead_0ff1ce;
/// How often one admin call is retried after `429 rate_limited` (an admin
/// key makes 600 requests a minute).
const RATE_LIMITED_RETRIES: u32 = 20;
/// Longest wait for a rate limit, seconds.
const RETRY_AFTER_S_MAX: u64 = 60;

/// Agent `i`'s id: `lt-agent-0000`, `lt-agent-0001`, …
pub fn agent_id(i: u32) -> String {
    format!("lt-agent-{i:04}")
}

/// The `POST /v1/buyers` body of the account.
pub fn buyer_body() -> Value {
    json!({"id": AGENCY_ID, "name": "leadex load test agency"})
}

/// The `POST /v1/agents` body of agent `i` (an admin key names the
/// account): licensed in every state the sampler draws for every line,
/// always available (no schedule), capacity [`AGENT_CAPACITY`], an office
/// ZIP spread like the leads', English and a few other languages.
pub fn agent_body(i: u32) -> Value {
    let licences: Vec<Value> = STATE_CODES
        .iter()
        .flat_map(|state| {
            LINES
                .iter()
                .map(move |line| json!({"state": state, "line": line}))
        })
        .collect();
    let mut languages = vec!["en"];
    if i % 3 == 0 {
        languages.push("es");
    }
    match i % 10 {
        4 => languages.push("vi"),
        7 => languages.push("zh"),
        _ => {}
    }
    let (lead, _) = wire::lead_for(OFFICE_ZIP_SEED, u64::from(i));
    let specialization = ["auto", "home", "life", "health", "medicare"][i as usize % 5];
    let mut body = json!({
        "id": agent_id(i),
        "buyer_id": AGENCY_ID,
        "name": format!("Load test agent {i}"),
        "email": format!("{}@example.com", agent_id(i)),
        "licences": licences,
        "languages": languages,
        "capacity": AGENT_CAPACITY,
        "zip": lead.ping.attributes.zip.to_string(),
        "specializations": [specialization],
        "quality_tier": i % 4,
        "performance": {"conversion_bps": 500 + (i % 20) * 100, "median_response_s": 60 + (i % 30) * 20, "rating_centi": 300 + (i % 20) * 10},
        "active": true,
    });
    if i % CAPTIVE_EVERY == CAPTIVE_EVERY - 1 {
        body["captive_carrier"] = Value::from(CAPTIVE_CARRIER);
    }
    body
}

/// The `POST /v1/keys` body of the route key.
pub fn key_body() -> Value {
    json!({
        "name": "loadtest route",
        "role": "buyer",
        "tenant": AGENCY_ID,
        "tier": "enterprise",
    })
}

/// What a setup did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The new buyer key's secret (shown once by the admin API).
    pub key: String,
    /// Agents created or replaced.
    pub agents: u32,
    /// Whether the account was created (`false`: it existed).
    pub buyer_created: bool,
}

/// Runs the setup `options` asks for (`--setup-route N`), printing
/// progress to standard error.
pub async fn run(options: &Options) -> Result<Setup, String> {
    let agents = options
        .setup_route
        .ok_or("invariant: run only with --setup-route")?;
    let admin_key = options
        .admin_key
        .as_deref()
        .ok_or("invariant: --setup-route is validated with --admin-key")?;
    let url = options.admin_url();
    let mut admin = Admin {
        connection: Connection::new(Target::new(
            ("--admin-url", url),
            ("--admin-key", admin_key),
        )?),
        url: url.to_owned(),
    };
    let reply = admin.post("/v1/buyers", &buyer_body()).await?;
    let buyer_created = match reply.status {
        201 => true,
        409 => false,
        _ => return Err(admin.failed("POST /v1/buyers", &reply)),
    };
    eprintln!(
        "buyer {AGENCY_ID}: {}",
        if buyer_created { "created" } else { "exists" }
    );
    for i in 0..agents {
        let reply = admin.post("/v1/agents", &agent_body(i)).await?;
        if reply.status != 200 {
            return Err(admin.failed(&format!("POST /v1/agents ({})", agent_id(i)), &reply));
        }
        if (i + 1) % 100 == 0 || i + 1 == agents {
            eprintln!("agents: {} of {agents} stored", i + 1);
        }
    }
    let reply = admin.post("/v1/keys", &key_body()).await?;
    if reply.status != 201 {
        return Err(admin.failed("POST /v1/keys", &reply));
    }
    let key = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| v["secret"].as_str().map(str::to_owned))
        .ok_or("POST /v1/keys: 201 without a secret")?;
    Ok(Setup {
        key,
        agents,
        buyer_created,
    })
}

/// One keep-alive connection to the admin API.
struct Admin {
    connection: Connection,
    url: String,
}

impl Admin {
    /// POSTs `body` to `path`, waiting out rate limits.
    async fn post(&mut self, path: &str, body: &Value) -> Result<Reply, String> {
        let bytes = serde_json::to_vec(body).expect("invariant: JSON values serialize");
        // Bounded: at most RATE_LIMITED_RETRIES waits.
        for _ in 0..RATE_LIMITED_RETRIES {
            let reply = self
                .connection
                .request(Method::POST, path, bytes.clone())
                .await
                .map_err(|e| format!("POST {}{path}: {e}", self.url))?;
            if reply.status != 429 {
                return Ok(reply);
            }
            let wait = reply.retry_after_s.unwrap_or(1).clamp(1, RETRY_AFTER_S_MAX);
            eprintln!("POST {path}: rate limited, waiting {wait} s");
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
        Err(format!(
            "POST {}{path}: still rate limited after {RATE_LIMITED_RETRIES} waits",
            self.url
        ))
    }

    fn failed(&self, what: &str, reply: &Reply) -> String {
        format!(
            "{what} at {}: {} {}",
            self.url,
            error_key(reply.status, &reply.body),
            String::from_utf8_lossy(&reply.body)
        )
    }
}

/// Route requests a run of `options` sends (warm-up included); `None` for
/// `--find-max`, whose length the search decides.
pub fn planned_requests(options: &Options) -> Option<u64> {
    (!options.find_max)
        .then(|| Schedule::new(options.rate_per_s, options.warmup, options.duration).total())
}

/// Open assignments `agents` agents hold at most.
pub fn capacity(agents: u32) -> u64 {
    u64::from(agents) * u64::from(AGENT_CAPACITY)
}

/// A warning when a run of `planned` route requests can fill `agents`
/// agents' capacity.
pub fn capacity_warning(agents: u32, planned: u64) -> Option<String> {
    let capacity = capacity(agents);
    (planned > capacity).then(|| {
        format!(
            "warning: the run sends {planned} route requests, but {agents} agents hold at most \
             {capacity} open assignments ({AGENT_CAPACITY} each) and the load test closes none: \
             past that, answers are `unassigned` (at_capacity). Set up more agents \
             (--setup-route {}) or send fewer requests.",
            planned.div_ceil(u64::from(AGENT_CAPACITY))
        )
    })
}

/// The command that runs the route scenario as `options` plan it, with
/// `key`.
pub fn run_command(options: &Options, key: &str) -> String {
    let defaults = Options::default();
    let mut command = String::from("cargo run --release -p loadtest --");
    if options.target != defaults.target {
        let _ = write!(command, " --target {}", options.target);
    }
    let _ = write!(
        command,
        " --scenario {} --route-key {key} --rate {} --duration {}",
        Scenario::Route.as_str(),
        options.rate_per_s,
        options.duration.as_secs_f64()
    );
    if options.warmup != defaults.warmup {
        let _ = write!(command, " --warmup {}", options.warmup.as_secs_f64());
    }
    if options.connections != defaults.connections {
        let _ = write!(command, " --connections {}", options.connections);
    }
    if options.seed != defaults.seed {
        let _ = write!(command, " --seed {}", options.seed);
    }
    command
}

/// What the setup prints on standard output: the key, the command, the
/// capacity bound and, if the planned run can exceed it, a warning.
pub fn summary(options: &Options, setup: &Setup) -> String {
    let mut out = format!(
        "route key for {AGENCY_ID} (shown once, store it): {}\n\nrun the route scenario with:\n  {}\n\n",
        setup.key,
        run_command(options, &setup.key)
    );
    let _ = writeln!(
        out,
        "{} agents ({} to {}) hold at most {} open assignments ({AGENT_CAPACITY} each); the load \
         test closes none, so that many route requests, over all runs, bound a meaningful run.",
        setup.agents,
        agent_id(0),
        agent_id(setup.agents.saturating_sub(1)),
        capacity(setup.agents)
    );
    if let Some(warning) = planned_requests(options).and_then(|n| capacity_warning(setup.agents, n))
    {
        let _ = writeln!(out, "{warning}");
    }
    if options.admin_url() != ADMIN_URL_DEFAULT {
        let _ = writeln!(out, "(admin API: {})", options.admin_url());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadex_engine::lead::{UsState, Vertical, Zip};
    use leadex_engine::routing::spec::{lines_license, Line};
    use std::collections::HashSet;

    #[test]
    fn agents_are_licensed_for_every_lead_the_sampler_draws() {
        let body = agent_body(0);
        let licences = body["licences"].as_array().unwrap();
        assert_eq!(licences.len(), STATE_CODES.len() * LINES.len());
        let line_bit = |name: &str| {
            let line: Line = serde_json::from_value(Value::from(name)).unwrap();
            line.bit()
        };
        let mask = LINES.iter().fold(0, |m, l| m | line_bit(l));
        assert!(Vertical::ALL.iter().all(|&v| lines_license(v, mask)));
        let licensed: HashSet<(&str, &str)> = licences
            .iter()
            .map(|l| (l["state"].as_str().unwrap(), l["line"].as_str().unwrap()))
            .collect();
        for index in 0..2_000 {
            let state = wire::lead_for(1, index).0.ping.attributes.state;
            assert!(LINES
                .iter()
                .all(|line| licensed.contains(&(state.as_str(), line))));
        }
    }

    #[test]
    fn agent_bodies_are_deterministic_and_spread() {
        assert_eq!(agent_body(7), agent_body(7));
        assert_eq!(agent_id(7), "lt-agent-0007");
        assert_eq!(agent_id(12_345), "lt-agent-12345");
        let mut zips = HashSet::new();
        let mut states = HashSet::new();
        let mut spanish = 0;
        let mut captive = 0;
        for i in 0..300 {
            let body = agent_body(i);
            assert_eq!(body["id"], agent_id(i));
            assert_eq!(body["buyer_id"], AGENCY_ID);
            assert_eq!(body["capacity"], AGENT_CAPACITY);
            assert_eq!(body["languages"][0], "en");
            let zip = Zip::parse(body["zip"].as_str().unwrap()).unwrap();
            states.insert(leadex_engine::geo::state_of_zip(zip).unwrap());
            zips.insert(zip);
            spanish += usize::from(body["languages"].as_array().unwrap().contains(&"es".into()));
            captive += usize::from(body["captive_carrier"] == CAPTIVE_CARRIER);
            assert!(body.get("schedule").is_none(), "always available");
        }
        assert!(zips.len() > 250, "{} distinct ZIPs", zips.len());
        assert!(states.len() > 30, "{} states", states.len());
        assert!(states.contains(&UsState::parse("CA").unwrap()));
        assert_eq!((spanish, captive), (100, 30));
    }

    #[test]
    fn the_other_bodies_name_the_account() {
        assert_eq!(buyer_body()["id"], AGENCY_ID);
        let key = key_body();
        assert_eq!(
            (&key["role"], &key["tenant"]),
            (&Value::from("buyer"), &Value::from(AGENCY_ID))
        );
    }

    fn options(flags: &str) -> Options {
        crate::cli::parse(flags.split_whitespace().map(str::to_owned)).unwrap()
    }

    #[test]
    fn the_printed_command_parses_back_to_the_planned_run() {
        let o = options(
            "--setup-route 2 --admin-key a --target http://10.1.1.1:8080 --rate 300 \
             --duration 20 --warmup 0.5 --seed 3",
        );
        let command = run_command(&o, "ldx_k");
        assert_eq!(
            command,
            "cargo run --release -p loadtest -- --target http://10.1.1.1:8080 --scenario route \
             --route-key ldx_k --rate 300 --duration 20 --warmup 0.5 --seed 3"
        );
        let flags = command.split_once(" -- ").unwrap().1;
        let run = options(flags);
        assert_eq!(run.scenario, Scenario::Route);
        assert_eq!(run.bearer(), "ldx_k");
        assert_eq!(
            (
                run.target.as_str(),
                run.rate_per_s,
                run.duration,
                run.warmup,
                run.seed
            ),
            (
                o.target.as_str(),
                o.rate_per_s,
                o.duration,
                o.warmup,
                o.seed
            )
        );
        assert_eq!(
            run_command(&options("--setup-route 1 --admin-key a"), "k"),
            "cargo run --release -p loadtest -- --scenario route --route-key k --rate 1000 --duration 10"
        );
    }

    #[test]
    fn a_run_longer_than_the_agents_capacity_is_warned_about() {
        assert_eq!(capacity(3), 30_000);
        assert!(capacity_warning(3, 30_000).is_none());
        let warning = capacity_warning(3, 30_001).unwrap();
        assert!(warning.contains("--setup-route 4"), "{warning}");
        // 1000/s for 2 + 10 s: 12,000 requests, over one agent's 10,000.
        let o = options("--setup-route 1 --admin-key a");
        assert_eq!(planned_requests(&o), Some(12_000));
        let setup = Setup {
            key: "ldx_k".into(),
            agents: 1,
            buyer_created: true,
        };
        let text = summary(&o, &setup);
        assert!(text.contains("--route-key ldx_k"), "{text}");
        assert!(text.contains("warning: the run sends 12000"), "{text}");
        let two = Setup {
            agents: 2,
            ..setup.clone()
        };
        let text = summary(&options("--setup-route 2 --admin-key a"), &two);
        assert!(!text.contains("warning"), "{text}");
    }
}
