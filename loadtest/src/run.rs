//! The driver: N keep-alive HTTP/1.1 connections, each taking the next
//! request of the [`Schedule`] as soon as it is free and sending it at its
//! intended time. When every connection is busy the next request waits, and
//! since its latency counts from its intended time, the wait is measured.

use crate::cli::{Options, Scenario};
use crate::report::{
    latency_histogram, micros, Invariant, Kind, Outcome, Percentiles, Recorder, Report,
    RunSettings, Sample,
};
use crate::schedule::{latency_from_intended, Schedule};
use crate::wire;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::Method;
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde::Deserialize;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Longest wait for one answer; past it the connection is dropped (an
/// HTTP/1.1 connection cannot be reused mid-request) and reopened.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// How long, by default, after the schedule's end requests still waiting
/// for a connection may be sent; later ones are counted as `not_sent`.
pub const DRAIN_TIMEOUT_MS: u64 = 10_000;
/// Longest wait to open a connection.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Largest answer read, in bytes (answers are well under 2 KiB; a route
/// answer with 32 candidates about 8 KiB).
const ANSWER_BYTES_MAX: usize = 1 << 20;
/// One route answer in this many (by lead index) is checked in full: each
/// candidate's factors must add up to its score. The others are only read
/// for their status, to keep the generator's CPU for sending.
pub const ROUTE_CHECK_EVERY: u64 = 100;

/// The requests that one scheduled arrival made: a ping, post or direct
/// post, and in `ping-post` perhaps the post that followed the ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The scheduled request.
    pub first: Sample,
    /// A request it caused, timed from when the first was answered.
    pub follow_up: Option<Sample>,
}

/// Sends the requests of one arrival over one connection.
pub trait Exchanger: Send + 'static {
    /// Sends arrival `index`, intended at `intended`, and reports how it went.
    fn exchange(&mut self, index: u64, intended: Instant) -> impl Future<Output = Exchange> + Send;
}

/// How arrivals are released at their intended times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacer {
    /// A dedicated OS thread sleeping with `nanosleep` until each intended
    /// time: tens of microseconds late at most, where tokio's timer wheel
    /// (1 ms ticks, rounded up) would add up to a millisecond to every
    /// measured latency. The default for real runs.
    Thread,
    /// A tokio task using `sleep_until`: millisecond precision, but it
    /// follows tokio's paused clock, so tests can drive it without sleeping.
    Tokio,
}

/// What [`drive`] measured.
#[derive(Debug)]
pub struct Driven<E> {
    /// Merged measured samples.
    pub recorder: Recorder,
    /// From the first measured intended send to the last answer.
    pub elapsed: Duration,
    /// How late the pacer released each measured arrival (its own error,
    /// microseconds); queueing behind busy connections is not in it.
    pub pacer_lateness_us: Percentiles,
    /// The connections, for the next run.
    pub exchangers: Vec<E>,
}

/// Most arrivals released but not yet taken by a connection; when it is
/// full, the pacer waits (and the arrivals' latencies keep counting from
/// their intended times).
const RELEASED_QUEUE_MAX: usize = 1 << 20;

/// Drives `exchangers` (one per connection) through `schedule` from `start`.
///
/// The pacer releases each arrival into a queue at its intended time; the
/// next free connection takes it. When every connection is busy arrivals
/// wait in the queue, and since latency counts from the intended time the
/// wait is measured. Arrivals still queued `drain` after the schedule's end
/// are not sent and count as `not_sent` errors of `first_kind` (the kind of
/// each arrival's first request).
pub async fn drive<E: Exchanger>(
    schedule: Schedule,
    start: Instant,
    first_kind: Kind,
    exchangers: Vec<E>,
    pacer: Pacer,
    drain: Duration,
) -> Driven<E> {
    assert!(!exchangers.is_empty(), "invariant: at least one connection");
    let deadline = schedule.intended_at(start, schedule.total()) + drain;
    let capacity = usize::try_from(schedule.total())
        .unwrap_or(usize::MAX)
        .clamp(1, RELEASED_QUEUE_MAX);
    let (released, arrivals) = async_channel::bounded::<u64>(capacity);
    let pacing = match pacer {
        Pacer::Thread => {
            let start = start.into_std();
            let thread = std::thread::Builder::new()
                .name("loadtest-pacer".into())
                .spawn(move || pace_with_thread(schedule, start, &released))
                .expect("invariant: a thread can be spawned");
            tokio::task::spawn_blocking(move || {
                thread.join().expect("invariant: the pacer does not panic")
            })
        }
        Pacer::Tokio => tokio::spawn(pace_with_tokio(schedule, start, released)),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for mut exchanger in exchangers {
        let arrivals = arrivals.clone();
        tasks.spawn(async move {
            let mut recorder = Recorder::default();
            // Bounded: each arrival is received once, and the pacer closes
            // the queue after the schedule's last one.
            while let Ok(index) = arrivals.recv().await {
                let intended = schedule.intended_at(start, index);
                let exchange = if Instant::now() > deadline {
                    single(Sample {
                        kind: first_kind,
                        latency: latency_from_intended(intended, deadline),
                        outcome: Outcome::Error("not_sent".into()),
                        invariant: Invariant::NotChecked,
                    })
                } else {
                    exchanger.exchange(index, intended).await
                };
                if schedule.is_measured(index) {
                    recorder.record(&exchange.first);
                    if let Some(follow_up) = &exchange.follow_up {
                        recorder.record(follow_up);
                    }
                }
            }
            (recorder, exchanger)
        });
    }
    drop(arrivals);
    let mut recorder = Recorder::default();
    let mut exchangers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (theirs, exchanger) = done.expect("invariant: connection tasks do not panic");
        recorder.merge(&theirs);
        exchangers.push(exchanger);
    }
    let lateness = pacing.await.expect("invariant: the pacer does not panic");
    let measured_from = start + schedule.warmup();
    Driven {
        recorder,
        elapsed: latency_from_intended(measured_from, Instant::now()),
        pacer_lateness_us: crate::report::percentiles(&lateness),
        exchangers,
    }
}

/// Releases every arrival of `schedule` at its intended time (after
/// `start`) into `released`, sleeping on this OS thread in between. Late
/// wake-ups release every arrival already due at once. Returns how late the
/// measured arrivals were released.
fn pace_with_thread(
    schedule: Schedule,
    start: std::time::Instant,
    released: &async_channel::Sender<u64>,
) -> Histogram<u64> {
    let mut lateness = latency_histogram();
    let mut next = 0;
    // Bounded: every turn either releases an arrival or sleeps until the
    // next one is due, and arrivals end at `total`.
    while next < schedule.total() {
        let now = std::time::Instant::now();
        let due = schedule.due_by(now.saturating_duration_since(start));
        while next < due {
            if released.send_blocking(next).is_err() {
                return lateness;
            }
            if schedule.is_measured(next) {
                let late = now.saturating_duration_since(schedule.intended_at(start, next));
                lateness.saturating_record(micros(late));
            }
            next += 1;
        }
        if next < schedule.total() {
            let at = schedule.intended_at(start, next);
            std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
        }
    }
    lateness
}

/// [`pace_with_thread`] on tokio's clock.
async fn pace_with_tokio(
    schedule: Schedule,
    start: Instant,
    released: async_channel::Sender<u64>,
) -> Histogram<u64> {
    let mut lateness = latency_histogram();
    for index in 0..schedule.total() {
        let intended = schedule.intended_at(start, index);
        tokio::time::sleep_until(intended).await;
        if schedule.is_measured(index) {
            lateness.saturating_record(micros(Instant::now().saturating_duration_since(intended)));
        }
        if released.send(index).await.is_err() {
            break;
        }
    }
    lateness
}

/// Open keep-alive connections to one target, ready for one or more runs
/// (the rate search reuses them from step to step).
pub struct Session {
    target: String,
    exchangers: Vec<HttpExchanger>,
    scenario: Scenario,
    seed: u64,
    pacer: Pacer,
    drain: Duration,
    /// The first lead index not yet sent: each run (and probe) takes leads
    /// from here on, so a search's steps never repeat a lead. A repeated
    /// lead would be an idempotent re-ping, answered from the pending ping
    /// without an auction or a journal append, and flatter the server.
    next_lead: u64,
}

impl Session {
    /// Opens `options.connections` connections to `options.target`.
    pub async fn open(options: &Options) -> Result<Self, String> {
        let target = Target::parse(options)?;
        let mut exchangers = Vec::with_capacity(options.connections);
        for _ in 0..options.connections {
            let mut connection = Connection::new(target.clone());
            connection
                .connect()
                .await
                .map_err(|e| format!("connecting to {}: {e}", options.target))?;
            exchangers.push(HttpExchanger {
                connection,
                scenario: options.scenario,
                seed: options.seed,
                post_share: options.post_share,
                lead_base: 0,
            });
        }
        Ok(Self {
            target: options.target.clone(),
            exchangers,
            scenario: options.scenario,
            seed: options.seed,
            pacer: Pacer::Thread,
            drain: Duration::from_millis(DRAIN_TIMEOUT_MS),
            next_lead: 0,
        })
    }

    /// How long after a run's schedule ends arrivals still waiting for a
    /// connection may be sent (later ones count as `not_sent`). The rate
    /// search shortens it: a step that far behind has failed anyway.
    pub fn set_drain(&mut self, drain: Duration) {
        self.drain = drain;
    }

    /// The base URL requests go to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The kind of each arrival's first request.
    pub fn first_kind(&self) -> Kind {
        self.scenario.first_kind()
    }

    /// Runs the session's scenario at `rate_per_s` for `warmup` then
    /// `duration`, and reports the measured part.
    pub async fn run(&mut self, rate_per_s: u64, warmup: Duration, duration: Duration) -> Report {
        let schedule = Schedule::new(rate_per_s, warmup, duration);
        let first_kind = self.first_kind();
        let connections = self.exchangers.len();
        let mut exchangers = std::mem::take(&mut self.exchangers);
        for exchanger in &mut exchangers {
            exchanger.lead_base = self.next_lead;
        }
        self.next_lead += schedule.total();
        let driven = drive(
            schedule,
            Instant::now(),
            first_kind,
            exchangers,
            self.pacer,
            self.drain,
        )
        .await;
        self.exchangers = driven.exchangers;
        let mut report = driven.recorder.report(
            RunSettings {
                scenario: self.scenario.as_str().into(),
                rate_per_s,
                duration_s: duration.as_secs_f64(),
                warmup_s: warmup.as_secs_f64(),
                connections,
                seed: self.seed,
            },
            driven.elapsed,
        );
        report.pacer_lateness_us = driven.pacer_lateness_us;
        report
    }

    /// Sends `count` pings (the session's next leads) one after another
    /// and returns the bodies of the 200 answers with bids: real answers,
    /// for the baseline to imitate.
    pub async fn sample_bid_answers(&mut self, count: u64) -> Result<Vec<Bytes>, String> {
        let exchanger = self
            .exchangers
            .first_mut()
            .expect("invariant: a session has a connection");
        let mut answers = Vec::new();
        for index in 0..count {
            let (lead, _) = wire::lead_for(exchanger.seed, self.next_lead + index);
            let (status, body) = exchanger
                .connection
                .post("/v1/ping", wire::ping_body(&lead.ping))
                .await
                .map_err(|key| format!("probe ping: {key}"))?;
            if status != 200 {
                return Err(format!("probe ping: {}", error_key(status, &body)));
            }
            if serde_json::from_slice::<PingAnswer>(&body).is_ok_and(|a| !a.bids.is_empty()) {
                answers.push(body);
            }
        }
        self.next_lead += count;
        Ok(answers)
    }
}

/// Runs `options` against its target at its fixed rate and reports.
pub async fn run(options: &Options) -> Result<Report, String> {
    let mut session = Session::open(options).await?;
    Ok(session
        .run(options.rate_per_s, options.warmup, options.duration)
        .await)
}

/// Where requests go and the headers every request carries.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port` to connect to.
    address: String,
    host: HeaderValue,
    authorization: HeaderValue,
}

impl Target {
    fn parse(options: &Options) -> Result<Self, String> {
        let key_flag = match options.scenario {
            Scenario::Route => "--route-key",
            _ => "--key",
        };
        Self::new(("--target", &options.target), (key_flag, options.bearer()))
    }

    /// The server at `url` (named by the flag that gave it), every request
    /// carrying `key` (likewise).
    pub(crate) fn new(
        (url_flag, url): (&str, &str),
        (key_flag, key): (&str, &str),
    ) -> Result<Self, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("{url_flag} {url:?}: {e}"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url_flag} {url:?}: no host"))?;
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        Ok(Self {
            address,
            host: HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?,
            authorization: HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| format!("{key_flag}: not a valid header value"))?,
        })
    }
}

/// One keep-alive HTTP/1.1 connection, reopened after a failure.
pub(crate) struct Connection {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// An answer: status and body.
type Answer = (u16, Bytes);

/// An answer with the `Retry-After` seconds a rate-limited one carries.
#[derive(Debug)]
pub(crate) struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, seconds, when present and numeric.
    pub retry_after_s: Option<u64>,
    /// The body.
    pub body: Bytes,
}

impl Connection {
    pub(crate) fn new(target: Target) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        let connecting = async {
            let stream = TcpStream::connect(&self.target.address)
                .await
                .map_err(|e| e.to_string())?;
            // Requests are small and latency is what is measured.
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())
        };
        let (sender, connection) =
            tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connecting)
                .await
                .map_err(|_| "connect timed out".to_owned())??;
        tokio::spawn(async move {
            // A failed connection shows up as an error on the next send.
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// POSTs `body` to `path`; `Err` is an error key for the report.
    async fn post(&mut self, path: &'static str, body: Vec<u8>) -> Result<Answer, String> {
        self.request(Method::POST, path, body)
            .await
            .map(|reply| (reply.status, reply.body))
    }

    /// Sends `method path` with `body` (JSON, or nothing when empty); `Err`
    /// is an error key (`timeout`, `connect`, `transport`).
    pub(crate) async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let result = tokio::time::timeout(
            Duration::from_millis(REQUEST_TIMEOUT_MS),
            self.try_request(method, path, body),
        )
        .await
        .unwrap_or_else(|_| Err("timeout".into()));
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_request(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await.map_err(|_| "connect".to_owned())?;
        }
        let sender = self
            .sender
            .as_mut()
            .expect("invariant: connect() set the sender");
        sender.ready().await.map_err(|_| "transport".to_owned())?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.target.host.clone())
            .header(AUTHORIZATION, self.target.authorization.clone());
        if !body.is_empty() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| format!("bad path {path:?}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| "transport".to_owned())?;
        let status = response.status().as_u16();
        let retry_after_s = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = http_body_util::Limited::new(response.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|_| "transport".to_owned())?
            .to_bytes();
        Ok(Reply {
            status,
            retry_after_s,
            body,
        })
    }
}

#[derive(Deserialize)]
struct PingAnswer {
    #[serde(default)]
    ping_id: String,
    #[serde(default)]
    bids: Vec<BidAnswer>,
    no_bid_reason: Option<String>,
}

#[derive(Deserialize)]
struct BidAnswer {
    bid_id: String,
}

#[derive(Deserialize)]
struct SaleAnswer {
    status: String,
    no_sale_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
}

/// The report key of a non-200 answer: `"<status> <code>"`.
pub(crate) fn error_key(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(answer) => format!("{status} {}", answer.error.code),
        Err(_) => status.to_string(),
    }
}

/// The outcome of a sale answer (post or direct post).
fn sale_outcome(answer: Result<Answer, String>) -> Outcome {
    match answer {
        Err(key) => Outcome::Error(key),
        Ok((200, body)) => match serde_json::from_slice::<SaleAnswer>(&body) {
            Ok(sale) if sale.status == "sold" => Outcome::Won,
            Ok(sale) => Outcome::NoBid(sale.no_sale_reason.unwrap_or(sale.status)),
            Err(_) => Outcome::Error("200 unreadable".into()),
        },
        Ok((status, body)) => Outcome::Error(error_key(status, &body)),
    }
}

/// The outcome of a route answer: `offered` is won, `unassigned` not
/// offered, anything else an error. With `check`, the whole answer is read
/// and its candidates' factor sums checked.
fn route_outcome(answer: Result<Answer, String>, check: bool) -> (Outcome, Invariant) {
    #[derive(Deserialize)]
    struct Status {
        status: String,
    }
    let (status, body) = match answer {
        Err(key) => return (Outcome::Error(key), Invariant::NotChecked),
        Ok(answer) => answer,
    };
    if status != 200 {
        return (
            Outcome::Error(error_key(status, &body)),
            Invariant::NotChecked,
        );
    }
    let (status, invariant) = if check {
        match wire::RouteAnswer::parse(&body) {
            Ok(answer) => {
                let invariant = if answer.factor_sum_violations().is_empty() {
                    Invariant::Held
                } else {
                    Invariant::Violated
                };
                (answer.status, invariant)
            }
            Err(_) => {
                return (
                    Outcome::Error("200 unreadable".into()),
                    Invariant::NotChecked,
                )
            }
        }
    } else {
        match serde_json::from_slice::<Status>(&body) {
            Ok(answer) => (answer.status, Invariant::NotChecked),
            Err(_) => {
                return (
                    Outcome::Error("200 unreadable".into()),
                    Invariant::NotChecked,
                )
            }
        }
    };
    let outcome = match status.as_str() {
        "offered" => Outcome::Won,
        "unassigned" => Outcome::NoBid(status),
        _ => Outcome::Error(format!("200 status {status}")),
    };
    (outcome, invariant)
}

/// Sends the scenario's requests over one real connection.
struct HttpExchanger {
    connection: Connection,
    scenario: Scenario,
    seed: u64,
    post_share: f64,
    /// Added to each arrival's index to pick its lead: every run of a
    /// session gets leads of its own.
    lead_base: u64,
}

impl HttpExchanger {
    async fn ping_post(&mut self, index: u64, intended: Instant, post: bool) -> Exchange {
        let (lead, mut rng) = wire::lead_for(self.seed, self.lead_base + index);
        let answer = self
            .connection
            .post("/v1/ping", wire::ping_body(&lead.ping))
            .await;
        let answered = Instant::now();
        let sample = |outcome| Sample {
            kind: Kind::Ping,
            latency: latency_from_intended(intended, answered),
            outcome,
            invariant: Invariant::NotChecked,
        };
        let (status, body) = match answer {
            Err(key) => return single(sample(Outcome::Error(key))),
            Ok(answer) => answer,
        };
        if status != 200 {
            return single(sample(Outcome::Error(error_key(status, &body))));
        }
        let ping = match serde_json::from_slice::<PingAnswer>(&body) {
            Ok(ping) => ping,
            Err(_) => return single(sample(Outcome::Error("200 unreadable".into()))),
        };
        if ping.bids.is_empty() {
            let reason = ping.no_bid_reason.unwrap_or_else(|| "unknown".into());
            return single(sample(Outcome::NoBid(reason)));
        }
        let first = sample(Outcome::Won);
        // Drawn after the lead so the lead stays the same for any share.
        if !post || !rng.gen_bool(self.post_share) {
            return single(first);
        }
        let bid_ids: Vec<String> = ping.bids.into_iter().map(|b| b.bid_id).collect();
        let answer = self
            .connection
            .post("/v1/post", wire::post_body(&lead, &ping.ping_id, &bid_ids))
            .await;
        Exchange {
            first,
            follow_up: Some(Sample {
                kind: Kind::Post,
                // A post is caused by its ping's answer, so it is due then.
                latency: latency_from_intended(answered, Instant::now()),
                outcome: sale_outcome(answer),
                invariant: Invariant::NotChecked,
            }),
        }
    }

    async fn direct_post(&mut self, index: u64, intended: Instant) -> Exchange {
        let (lead, _) = wire::lead_for(self.seed, self.lead_base + index);
        let answer = self
            .connection
            .post("/v1/leads", wire::direct_post_body(&lead))
            .await;
        single(Sample {
            kind: Kind::DirectPost,
            latency: latency_from_intended(intended, Instant::now()),
            outcome: sale_outcome(answer),
            invariant: Invariant::NotChecked,
        })
    }

    async fn route(&mut self, index: u64, intended: Instant) -> Exchange {
        let lead = self.lead_base + index;
        let answer = self
            .connection
            .post("/v1/route", wire::route_body_for(self.seed, lead))
            .await;
        let latency = latency_from_intended(intended, Instant::now());
        let (outcome, invariant) = route_outcome(answer, lead % ROUTE_CHECK_EVERY == 0);
        single(Sample {
            kind: Kind::Route,
            latency,
            outcome,
            invariant,
        })
    }
}

fn single(first: Sample) -> Exchange {
    Exchange {
        first,
        follow_up: None,
    }
}

impl Exchanger for HttpExchanger {
    async fn exchange(&mut self, index: u64, intended: Instant) -> Exchange {
        match self.scenario {
            Scenario::Ping => self.ping_post(index, intended, false).await,
            Scenario::PingPost => self.ping_post(index, intended, true).await,
            Scenario::DirectPost => self.direct_post(index, intended).await,
            Scenario::Route => self.route(index, intended).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake server: stalls `stall` on arrival 0, answers the rest at once.
    struct Stalling {
        stall: Duration,
    }

    impl Exchanger for Stalling {
        async fn exchange(&mut self, index: u64, intended: Instant) -> Exchange {
            if index == 0 {
                tokio::time::sleep(self.stall).await;
            }
            single(Sample {
                kind: Kind::Ping,
                latency: latency_from_intended(intended, Instant::now()),
                outcome: Outcome::Won,
                invariant: Invariant::NotChecked,
            })
        }
    }

    fn settings() -> RunSettings {
        RunSettings {
            scenario: "ping".into(),
            rate_per_s: 100,
            duration_s: 2.0,
            warmup_s: 0.0,
            connections: 1,
            seed: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_delays_every_request_queued_behind_it() {
        // One connection at 100/s for 2 s; the server stalls 1 s on the first
        // request. The 99 requests due during the stall wait for the
        // connection, and their latency counts from their intended times:
        // 990 ms, 980 ms, ... A closed-loop generator would report one slow
        // request and 199 fast ones (p99 ~0).
        let schedule = Schedule::new(100, Duration::ZERO, Duration::from_secs(2));
        let driven = drive(
            schedule,
            Instant::now(),
            Kind::Ping,
            vec![Stalling {
                stall: Duration::from_secs(1),
            }],
            Pacer::Tokio,
            Duration::from_millis(DRAIN_TIMEOUT_MS),
        )
        .await;
        let elapsed = driven.elapsed;
        let report = driven.recorder.report(settings(), elapsed);
        let ping = report.kind(Kind::Ping).unwrap();
        assert_eq!(ping.count, 200);
        let close = |x: u64, to: u64| x.abs_diff(to) * 100 <= to;
        assert!(close(ping.latency_us.max, 1_000_000), "{report:?}");
        assert!(close(ping.latency_us.p90, 800_000), "{report:?}");
        assert!(close(ping.latency_us.p50, 10_000) || ping.latency_us.p50 <= 10_000);
        assert!(elapsed >= Duration::from_millis(1_990), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn more_connections_absorb_the_stall_and_warmup_is_excluded() {
        // With two connections the second one takes the requests due during
        // the stall, so only the stalled request is slow; it is in the
        // warm-up, so it is not measured at all.
        let schedule = Schedule::new(100, Duration::from_millis(500), Duration::from_secs(1));
        let exchangers = (0..2)
            .map(|_| Stalling {
                stall: Duration::from_secs(1),
            })
            .collect();
        let driven = drive(
            schedule,
            Instant::now(),
            Kind::Ping,
            exchangers,
            Pacer::Tokio,
            Duration::from_millis(DRAIN_TIMEOUT_MS),
        )
        .await;
        assert_eq!(driven.exchangers.len(), 2, "connections come back");
        assert_eq!(
            driven.pacer_lateness_us.max, 1,
            "a paused clock is never late"
        );
        let ping = driven.recorder.report(settings(), driven.elapsed).kinds[0].clone();
        assert_eq!(ping.count, 100);
        assert!(ping.latency_us.max <= 1, "{ping:?}");
    }

    #[test]
    fn route_answers_count_offered_and_unassigned_and_sampled_ones_are_checked() {
        let answer =
            |status: u16, body: &'static str| Ok((status, Bytes::from_static(body.as_bytes())));
        let offered = r#"{"assignment_id":"a_1","status":"offered","agent_id":"lt-agent-0001","candidates":[{"agent_id":"lt-agent-0001","score":30,"factors":{"distance":10,"workload":20},"open":0}]}"#;
        assert_eq!(
            route_outcome(answer(200, offered), false),
            (Outcome::Won, Invariant::NotChecked)
        );
        assert_eq!(
            route_outcome(answer(200, offered), true),
            (Outcome::Won, Invariant::Held)
        );
        let broken = r#"{"status":"offered","candidates":[{"agent_id":"x","score":31,"factors":{"distance":10,"workload":20}}]}"#;
        assert_eq!(
            route_outcome(answer(200, broken), true),
            (Outcome::Won, Invariant::Violated),
            "a violation is counted apart from the outcome"
        );
        assert_eq!(
            route_outcome(
                answer(200, r#"{"status":"unassigned","candidates":[]}"#),
                true
            ),
            (Outcome::NoBid("unassigned".into()), Invariant::Held)
        );
        assert_eq!(
            route_outcome(answer(200, r#"{"status":"accepted"}"#), false).0,
            Outcome::Error("200 status accepted".into())
        );
        assert_eq!(
            route_outcome(answer(200, "not json"), true).0,
            Outcome::Error("200 unreadable".into())
        );
        let no_agents = r#"{"error":{"code":"not_found","message":"the agency has no agents","field":"agency_id"}}"#;
        assert_eq!(
            route_outcome(answer(404, no_agents), true),
            (
                Outcome::Error("404 not_found".into()),
                Invariant::NotChecked
            )
        );
        assert_eq!(
            route_outcome(Err("timeout".into()), true).0,
            Outcome::Error("timeout".into())
        );
    }

    #[test]
    fn error_keys_carry_status_and_code() {
        let body = br#"{"error": {"code": "duplicate_lead", "message": "m"}}"#;
        assert_eq!(error_key(409, body), "409 duplicate_lead");
        assert_eq!(error_key(502, b"bad gateway"), "502");
        let sold = br#"{"lead_id": "l_1", "status": "sold", "sales": [], "total_price_cents": 0}"#;
        assert_eq!(
            sale_outcome(Ok((200, Bytes::from_static(sold)))),
            Outcome::Won
        );
        let unsold = br#"{"status": "unsold", "no_sale_reason": "no_eligible_buyers"}"#;
        assert_eq!(
            sale_outcome(Ok((200, Bytes::from_static(unsold)))),
            Outcome::NoBid("no_eligible_buyers".into())
        );
    }
}
