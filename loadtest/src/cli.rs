//! The command line: a small hand parser, since the flags are few and flat.

use crate::report::Kind;
use std::path::PathBuf;
use std::time::Duration;

/// What a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Pings only.
    Ping,
    /// Pings, and a share of those with bids posted with all their bids.
    PingPost,
    /// Direct posts (`/v1/leads`) only.
    DirectPost,
    /// Leads routed to an agency's agents (`/v1/route`) with a buyer key.
    Route,
}

impl Scenario {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Ping => "ping",
            Scenario::PingPost => "ping-post",
            Scenario::DirectPost => "direct-post",
            Scenario::Route => "route",
        }
    }

    /// The kind of each arrival's first request.
    pub fn first_kind(self) -> Kind {
        match self {
            Scenario::Ping | Scenario::PingPost => Kind::Ping,
            Scenario::DirectPost => Kind::DirectPost,
            Scenario::Route => Kind::Route,
        }
    }

    /// The scenario named `s` (the flag value), if any.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Scenario::Ping,
            Scenario::PingPost,
            Scenario::DirectPost,
            Scenario::Route,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// Everything a run needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Base URL of the server, `http://host:port`.
    pub target: String,
    /// What to send.
    pub scenario: Scenario,
    /// Intended arrivals per second.
    pub rate_per_s: u64,
    /// Measured length.
    pub duration: Duration,
    /// Warm-up length, sent but not measured.
    pub warmup: Duration,
    /// Keep-alive connections.
    pub connections: usize,
    /// Seed of the leads.
    pub seed: u64,
    /// Where to write the JSON report, if anywhere.
    pub json: Option<PathBuf>,
    /// Share of pings with bids that are posted, in `ping-post`.
    pub post_share: f64,
    /// The seller's API key.
    pub api_key: String,
    /// Step the rate up to the highest sustainable one (`--find-max`).
    pub find_max: bool,
    /// Also measure a bare hyper server and report the ratio (`--baseline`).
    pub baseline: bool,
    /// CPUs to pin the baseline server to with `taskset -c`.
    pub baseline_cpus: Option<String>,
    /// SLO file; `None` is the compiled-in `config/slo.toml`.
    pub slo: Option<PathBuf>,
    /// Where to write the latency plot (SVG), if anywhere.
    pub plot: Option<PathBuf>,
    /// Measured length of each `--find-max` step.
    pub step: Duration,
    /// The buyer (or manager) key `--scenario route` routes with.
    pub route_key: Option<String>,
    /// `--setup-route N`: create the routing account, N agents and a buyer
    /// key through the admin API, print the run command, and exit.
    pub setup_route: Option<u32>,
    /// Base URL of the admin API, for `--setup-route`; `None` is
    /// [`ADMIN_URL_DEFAULT`].
    pub admin_url: Option<String>,
    /// An admin key, for `--setup-route`.
    pub admin_key: Option<String>,
}

impl Options {
    /// The key every request carries: the route key in `--scenario route`,
    /// the seller key otherwise.
    pub fn bearer(&self) -> &str {
        match (self.scenario, &self.route_key) {
            (Scenario::Route, Some(key)) => key,
            _ => &self.api_key,
        }
    }

    /// The admin API's base URL.
    pub fn admin_url(&self) -> &str {
        self.admin_url.as_deref().unwrap_or(ADMIN_URL_DEFAULT)
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:8080".into(),
            scenario: Scenario::Ping,
            rate_per_s: 1_000,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            connections: 16,
            seed: 1,
            json: None,
            post_share: 0.5,
            api_key: leadex_config::synth::DEMO_SELLER_KEY.into(),
            find_max: false,
            baseline: false,
            baseline_cpus: None,
            slo: None,
            plot: None,
            step: Duration::from_secs(2),
            route_key: None,
            setup_route: None,
            admin_url: None,
            admin_key: None,
        }
    }
}

/// Most connections a run may open.
pub const CONNECTIONS_MAX: usize = 4_096;
/// Longest run, warm-up included, in seconds.
pub const RUN_S_MAX: f64 = 3_600.0;
/// Highest rate accepted, per second.
pub const RATE_PER_S_MAX: u64 = 10_000_000;

/// The admin API `--setup-route` talks to unless `--admin-url` says
/// otherwise.
pub const ADMIN_URL_DEFAULT: &str = "http://127.0.0.1:8081";
/// Most agents `--setup-route` creates.
pub const SETUP_AGENTS_MAX: u32 = 10_000;

/// Where `--find-max` writes its JSON report unless `--json` says otherwise.
pub const FIND_MAX_JSON: &str = "target/loadtest/find-max.json";
/// Where `--find-max` writes its plot unless `--plot` says otherwise.
pub const FIND_MAX_PLOT: &str = "target/loadtest/find-max.svg";

/// The usage text.
pub const USAGE: &str = "\
usage: loadtest [--target URL] [--scenario ping|ping-post|direct-post|route] [--rate PER_S]
                [--duration SECS] [--warmup SECS] [--connections N] [--seed S]
                [--json PATH] [--post-share F] [--key API_KEY] [--route-key KEY]
                [--slo FILE]
                [--find-max [--baseline [--baseline-cpus LIST]] [--step SECS] [--plot PATH]]
       loadtest --setup-route N --admin-key KEY [--admin-url URL] [--target URL]
                [--rate PER_S] [--duration SECS] [--warmup SECS] [--connections N]
                [--seed S]

Open-loop load generator for the leadex seller API; latencies are measured
from each request's intended send time.

A fixed-rate run sends --rate arrivals per second for --warmup then --duration
seconds and checks the result against the SLOs (--slo, default config/slo.toml).

--scenario route routes each arrival's lead (vertical, ZIP, state, current
carrier, a score tier 0-3) with POST /v1/route and --route-key, a buyer key
of the routing account; `offered` counts as won, `unassigned` as not
offered, anything else as a failure. Every 100th answer is checked: each
candidate's factors must add up to its score, and any violation fails the
run.

--setup-route N prepares that account through the admin API (--admin-url,
default http://127.0.0.1:8081, with --admin-key, an admin key): buyer
lt-agency if absent, agents lt-agent-0000 to N-1 (created or replaced:
licensed in every state for every line, capacity 10000, office ZIPs spread
like the leads', a few languages) and a new buyer key; it prints the key
and the command to run the scenario with (--target, --rate, --duration,
--warmup, --connections and --seed go into it), and exits. Each agent
holds at most 10000 open assignments and this harness closes none, so
N x 10000 route requests, over all runs, bound a meaningful run; past it
answers turn `unassigned`, and the setup warns when the planned run is
longer.

--find-max steps the rate up from --rate (0.5 s warm-up + --step seconds per
step; a failed step is repeated once) until a step is not sustainable,
bisects to within 10 %, then measures latency at shares of the maximum.
--baseline first does the same against a bare hyper server answering a real
bid answer copied from the target, and reports leadex's maximum as a ratio
of it (--scenario ping only). It writes JSON to --json (default
target/loadtest/find-max.json) and an SVG plot to --plot (default
target/loadtest/find-max.svg). --baseline-cpus pins the bare server with
taskset -c, as you would pin leadex (see BENCHMARKS.md).

Exit code: 0 every SLO met, 1 an SLO missed, 2 bad flags, 3 the run (or the
setup) failed.

Defaults: --target http://127.0.0.1:8080 --scenario ping --rate 1000
--duration 10 --warmup 2 --connections 16 --seed 1 --post-share 0.5
--key demo-seller-key --step 2.";

/// Parses the flags (without the program name). `Err` is a message for the
/// user; `--help` is `Err(USAGE)`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => return Err(USAGE.into()),
            "--find-max" => {
                o.find_max = true;
                continue;
            }
            "--baseline" => {
                o.baseline = true;
                continue;
            }
            _ => {}
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag} {value:?}: {what}");
        match flag.as_str() {
            "--target" => o.target = value.trim_end_matches('/').to_owned(),
            "--scenario" => {
                o.scenario = Scenario::parse(&value)
                    .ok_or_else(|| bad("ping, ping-post, direct-post or route"))?
            }
            "--rate" => o.rate_per_s = value.parse().map_err(|_| bad("a whole number"))?,
            "--duration" => o.duration = seconds(&value).ok_or_else(|| bad("seconds"))?,
            "--warmup" => o.warmup = seconds(&value).ok_or_else(|| bad("seconds"))?,
            "--connections" => o.connections = value.parse().map_err(|_| bad("a whole number"))?,
            "--seed" => o.seed = value.parse().map_err(|_| bad("a whole number"))?,
            "--json" => o.json = Some(PathBuf::from(value)),
            "--post-share" => o.post_share = value.parse().map_err(|_| bad("a number"))?,
            "--key" => o.api_key = value,
            "--slo" => o.slo = Some(PathBuf::from(value)),
            "--plot" => o.plot = Some(PathBuf::from(value)),
            "--baseline-cpus" => o.baseline_cpus = Some(value),
            "--step" => o.step = seconds(&value).ok_or_else(|| bad("seconds"))?,
            "--route-key" => o.route_key = Some(value),
            "--setup-route" => {
                o.setup_route = Some(
                    value
                        .parse()
                        .map_err(|_| bad("a number of agents, 1 to 10000"))?,
                )
            }
            "--admin-url" => o.admin_url = Some(value.trim_end_matches('/').to_owned()),
            "--admin-key" => o.admin_key = Some(value),
            _ => return Err(format!("unknown flag {flag}\n\n{USAGE}")),
        }
    }
    validate(&o)?;
    Ok(o)
}

fn seconds(s: &str) -> Option<Duration> {
    let s: f64 = s.parse().ok()?;
    (0.0..=RUN_S_MAX)
        .contains(&s)
        .then(|| Duration::from_secs_f64(s))
}

fn validate(o: &Options) -> Result<(), String> {
    if !o.target.starts_with("http://") {
        return Err(format!("--target {:?}: only http:// URLs", o.target));
    }
    if !(1..=RATE_PER_S_MAX).contains(&o.rate_per_s) {
        return Err(format!("--rate must be 1 to {RATE_PER_S_MAX}"));
    }
    if o.duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    if (o.duration + o.warmup).as_secs_f64() > RUN_S_MAX {
        return Err(format!(
            "--warmup plus --duration must be at most {RUN_S_MAX} s"
        ));
    }
    if !(1..=CONNECTIONS_MAX).contains(&o.connections) {
        return Err(format!("--connections must be 1 to {CONNECTIONS_MAX}"));
    }
    if !(0.0..=1.0).contains(&o.post_share) {
        return Err("--post-share must be between 0 and 1".into());
    }
    if o.baseline && !o.find_max {
        return Err("--baseline compares maximum rates: add --find-max".into());
    }
    if o.baseline && o.scenario != Scenario::Ping {
        return Err("--baseline compares pings: use --scenario ping".into());
    }
    if o.plot.is_some() && !o.find_max {
        return Err("--plot draws the --find-max steps: add --find-max".into());
    }
    if o.baseline_cpus.is_some() && !o.baseline {
        return Err("--baseline-cpus needs --baseline".into());
    }
    if o.find_max && !(0.1..=60.0).contains(&o.step.as_secs_f64()) {
        return Err("--step must be 0.1 to 60 seconds".into());
    }
    validate_route(o)
}

fn validate_route(o: &Options) -> Result<(), String> {
    let key_ok = |flag: &str, key: &str| {
        if key.is_empty() || key.len() > 256 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            Err(format!("{flag}: 1 to 256 printable characters, no spaces"))
        } else {
            Ok(())
        }
    };
    if let Some(n) = o.setup_route {
        if !(1..=SETUP_AGENTS_MAX).contains(&n) {
            return Err(format!(
                "--setup-route must be 1 to {SETUP_AGENTS_MAX} agents"
            ));
        }
        let Some(admin_key) = &o.admin_key else {
            return Err(
                "--setup-route needs --admin-key KEY (an admin key of the admin API)".into(),
            );
        };
        key_ok("--admin-key", admin_key)?;
        if o.find_max || o.baseline || o.route_key.is_some() || o.json.is_some() {
            return Err(
                "--setup-route prepares the account, prints the run command and exits: \
                 leave out --find-max, --baseline, --route-key and --json"
                    .into(),
            );
        }
        if !o.admin_url().starts_with("http://") {
            return Err(format!(
                "--admin-url {:?}: only http:// URLs",
                o.admin_url()
            ));
        }
        return Ok(());
    }
    if o.admin_key.is_some() || o.admin_url.is_some() {
        return Err("--admin-key and --admin-url are for --setup-route".into());
    }
    match (o.scenario, &o.route_key) {
        (Scenario::Route, None) => Err(
            "--scenario route needs --route-key KEY, a buyer key of the routing account \
             (--setup-route N --admin-key KEY creates the account, its agents and the key)"
                .into(),
        ),
        (Scenario::Route, Some(key)) => key_ok("--route-key", key),
        (_, Some(_)) => Err("--route-key is for --scenario route".into()),
        (_, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_are_parsed_and_defaults_kept() {
        let o = parse(args(
            "--target http://127.0.0.1:9000/ --scenario ping-post --rate 200 --duration 3 \
             --warmup 0.5 --connections 4 --seed 9 --json out.json --post-share 0.25",
        ))
        .unwrap();
        assert_eq!(o.target, "http://127.0.0.1:9000");
        assert_eq!(o.scenario, Scenario::PingPost);
        assert_eq!(o.rate_per_s, 200);
        assert_eq!(o.duration, Duration::from_secs(3));
        assert_eq!(o.warmup, Duration::from_millis(500));
        assert_eq!((o.connections, o.seed, o.post_share), (4, 9, 0.25));
        assert_eq!(o.json, Some(PathBuf::from("out.json")));
        assert_eq!(o.api_key, "demo-seller-key");
        assert_eq!(parse(args("")).unwrap(), Options::default());
        let o = parse(args(
            "--find-max --baseline --baseline-cpus 1 --step 1.5 --slo s.toml --plot p.svg",
        ))
        .unwrap();
        assert!(o.find_max && o.baseline);
        assert_eq!(o.baseline_cpus.as_deref(), Some("1"));
        assert_eq!(o.step, Duration::from_millis(1_500));
        assert_eq!(o.slo, Some(PathBuf::from("s.toml")));
        assert_eq!(o.plot, Some(PathBuf::from("p.svg")));
    }

    #[test]
    fn bad_flags_are_refused_with_a_message() {
        for bad in [
            "--rate 0",
            "--rate x",
            "--scenario pong",
            "--connections 0",
            "--duration 0",
            "--duration -1",
            "--post-share 1.5",
            "--target https://example.com",
            "--bogus 1",
            "--rate",
            "--baseline",
            "--find-max --baseline --scenario ping-post",
            "--find-max --step 0",
            "--baseline-cpus 0",
        ] {
            assert!(parse(args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_route_scenario_takes_its_key_and_the_setup_its_admin_flags() {
        let o = parse(args("--scenario route --route-key ldx_abc --rate 50")).unwrap();
        assert_eq!(o.scenario, Scenario::Route);
        assert_eq!(o.scenario.first_kind(), Kind::Route);
        assert_eq!(o.route_key.as_deref(), Some("ldx_abc"));
        assert_eq!(o.bearer(), "ldx_abc", "routes carry the route key");
        assert_eq!(parse(args("")).unwrap().bearer(), "demo-seller-key");
        let o = parse(args(
            "--scenario route --route-key k --find-max --step 1 --json r.json",
        ))
        .unwrap();
        assert!(o.find_max);

        let o = parse(args("--setup-route 25 --admin-key ldx_admin --rate 200")).unwrap();
        assert_eq!(o.setup_route, Some(25));
        assert_eq!(o.admin_key.as_deref(), Some("ldx_admin"));
        assert_eq!(o.admin_url(), ADMIN_URL_DEFAULT);
        let o = parse(args(
            "--setup-route 1 --admin-key a --admin-url http://10.0.0.2:9001/",
        ))
        .unwrap();
        assert_eq!(o.admin_url(), "http://10.0.0.2:9001");
    }

    #[test]
    fn route_flags_are_refused_where_they_cannot_apply() {
        let message = |s: &str| parse(args(s)).unwrap_err();
        assert!(
            message("--scenario route").contains("--route-key"),
            "a clear error without the key"
        );
        assert!(
            message("--scenario route --route-key k --find-max --baseline")
                .contains("compares pings")
        );
        for bad in [
            "--route-key k",
            "--scenario ping-post --route-key k",
            "--scenario route --route-key",
            "--setup-route 0 --admin-key a",
            "--setup-route 10001 --admin-key a",
            "--setup-route x --admin-key a",
            "--setup-route 3",
            "--setup-route 3 --admin-key a --find-max",
            "--setup-route 3 --admin-key a --route-key k",
            "--setup-route 3 --admin-key a --admin-url https://x",
            "--admin-key a",
            "--admin-url http://127.0.0.1:8081",
        ] {
            assert!(parse(args(bad)).is_err(), "{bad}");
        }
        assert!(message("--setup-route 3").contains("--admin-key"));
    }
}
