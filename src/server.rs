//! The seller-facing HTTP server: raw hyper 1.x, HTTP/1.1 keep-alive.
//!
//! Each request: route, bounded body read under the request deadline,
//! authenticate, parse (protocol crate), run the engine, journal, answer.
//! A post is answered `sold` only after the journal says its event is
//! durable. The commit or rollback of a settlement happens in the journal's
//! callback, not in the request future, so a client that disconnects (or a
//! deadline that fires) can never leave a sale half-settled.

use crate::metrics::{JournalGauges, Metrics, Route};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use leadex_engine::{DirectOutcome, Engine, EngineError, Journal, JournalError, Settlement};
use leadex_protocol as wire;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Server tunables (from config).
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// Largest body accepted, bytes.
    pub body_limit_bytes: usize,
    /// Deadline to receive and parse a request, ms.
    pub request_timeout_ms: u64,
    /// Deadline for the request head, ms.
    pub header_read_timeout_ms: u64,
    /// Most concurrent connections.
    pub max_connections: usize,
    /// Longest a post waits to learn its sale is durable, ms.
    pub durable_wait_ms: u64,
}

/// Everything a request handler needs.
pub struct App {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The journal.
    pub journal: Arc<dyn Journal>,
    /// Reads the journal's figures for `/metrics` and `/healthz`.
    pub journal_gauges: Box<dyn Fn() -> JournalGauges + Send + Sync>,
    /// Metrics.
    pub metrics: Metrics,
    /// Settings.
    pub settings: ServerSettings,
    /// Where committed sales go for the admin API (lead lists, ledgers,
    /// webhooks): a bounded queue drained by its own thread. A full queue
    /// makes the journal's callback wait, so a sale is never dropped.
    /// Also takes each durable ping answered with bids (for reports), but
    /// never waits for it: a full queue leaves the ping uncounted, and
    /// the store says how many were.
    pub sales_feed: Option<AdminFeed>,
    /// Wakes the sweeper's routing work early: a committed sale that
    /// queued a lead for routing (delivery `route`) is routed at once
    /// rather than at the next tick.
    pub route_wake: Arc<tokio::sync::Notify>,
}

type Answer = Response<Full<Bytes>>;

/// The queue from the server to the admin store's feed thread.
#[derive(Clone)]
pub struct AdminFeed {
    /// Drained by the feed thread into `store`.
    pub tx: crossbeam_channel::Sender<leadex_admin_api::store::Feed>,
    /// The store, to note pings a full queue left uncounted.
    pub store: Arc<leadex_admin_api::AdminStore>,
}

impl AdminFeed {
    /// A committed sale: waits while the queue is full (a sale is never
    /// dropped); an error means the feed thread stopped (shutdown).
    fn sale(&self, sold: &leadex_engine::event::LeadSold) {
        let _ = self
            .tx
            .send(leadex_admin_api::store::Feed::Sale(Box::new(sold.clone())));
    }

    /// A committed routing transition: waits while the queue is full, as a
    /// sale does (the admin API's assignment history and webhooks).
    pub fn routing(&self, record: &leadex_engine::routing::assign::RoutingRecord) {
        let _ = self
            .tx
            .send(leadex_admin_api::store::Feed::Routing(Box::new(
                record.clone(),
            )));
    }

    /// A durable ping answered with bids: never waits.
    fn ping(&self, seen: leadex_admin_api::reports::PingSeen) {
        if let Err(crossbeam_channel::TrySendError::Full(_)) =
            self.tx.try_send(leadex_admin_api::store::Feed::Ping(seen))
        {
            self.store.note_ping_not_counted();
        }
    }
}

/// Most bytes of a too-large body read and discarded before answering 413.
const TOO_LARGE_DRAIN_BYTES_MAX: usize = 1 << 20;

fn json(status: StatusCode, body: Vec<u8>) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(app: &App, e: wire::ProtocolError) -> Answer {
    app.metrics.error(e.code.as_str());
    let mut out = Vec::with_capacity(128);
    e.encode(&mut out);
    json(
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        out,
    )
}

fn protocol_error(code: wire::ErrorCode, message: impl Into<String>) -> wire::ProtocolError {
    wire::ProtocolError::new(code, message)
}

fn engine_error(e: EngineError) -> wire::ProtocolError {
    use wire::ErrorCode as C;
    match e {
        EngineError::PingNotFound => {
            protocol_error(C::PingNotFound, e.to_string()).with_field("ping_id")
        }
        EngineError::PingExpired => {
            protocol_error(C::PingExpired, e.to_string()).with_field("ping_id")
        }
        EngineError::PingAlreadyUsed => {
            protocol_error(C::PingAlreadyUsed, e.to_string()).with_field("ping_id")
        }
        // Engine attribute names map to wire names (bmi_tenths → bmi).
        EngineError::PostMismatch { field } => wire::ProtocolError::post_mismatch(field),
        EngineError::UnknownBid(_) => {
            protocol_error(C::BidUnavailable, e.to_string()).with_field("bid_ids")
        }
        EngineError::BidUnavailable => {
            protocol_error(C::BidUnavailable, e.to_string()).with_field("bid_ids")
        }
        EngineError::DuplicateLead => {
            protocol_error(C::DuplicateLead, e.to_string()).with_field("contact.phone")
        }
        EngineError::Overloaded(_) => {
            protocol_error(C::Overloaded, "the exchange is at capacity; retry shortly")
        }
    }
}

/// Serves one request. Never fails: every problem is an HTTP answer.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Answer, Infallible> {
    let started = Instant::now();
    let route = match req.uri().path() {
        "/v1/ping" => Route::Ping,
        "/v1/post" => Route::Post,
        "/v1/leads" => Route::DirectPost,
        "/v1/route" => Route::Route,
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        _ => Route::Other,
    };
    let answer = match (
        route,
        req.method() == Method::POST,
        req.method() == Method::GET,
    ) {
        (Route::Other, _, _) => error(
            &app,
            protocol_error(wire::ErrorCode::NotFound, "no such route"),
        ),
        (Route::Health, _, true) => health(&app),
        (Route::Metrics, _, true) => {
            let body = app.metrics.render(&app.engine, &(app.journal_gauges)());
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (Route::Route, true, _) => match route_request(&app, req).await {
            Ok(a) => a,
            Err(e) => error(&app, e),
        },
        (Route::Ping | Route::Post | Route::DirectPost, true, _) => {
            match seller_request(&app, route, req).await {
                Ok(a) => a,
                Err(e) => error(&app, e),
            }
        }
        _ => error(
            &app,
            protocol_error(
                wire::ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            ),
        ),
    };
    app.metrics
        .observe(route, answer.status().as_u16(), started.elapsed());
    Ok(answer)
}

fn health(app: &App) -> Answer {
    let g = (app.journal_gauges)();
    let snap = app.engine.snapshot();
    let (status, code) = if g.healthy {
        ("ok", StatusCode::OK)
    } else {
        ("degraded", StatusCode::SERVICE_UNAVAILABLE)
    };
    let body = format!(
        "{{\"status\":\"{status}\",\"backend\":\"{}\",\"journal\":\"{}\",\"snapshots\":\"{}\",\"in_doubt\":{},\"campaigns\":{},\"pending_pings\":{},\"journal_last_lsn\":{}}}",
        g.backend,
        if g.healthy { "ok" } else { "unavailable" },
        if g.snapshots_ok { "ok" } else { "paused" },
        g.in_doubt,
        snap.campaigns.len(),
        app.engine.pending_pings(),
        g.last_lsn
    );
    json(code, body.into_bytes())
}

async fn read_body(app: &App, req: Request<Incoming>) -> Result<Vec<u8>, wire::ProtocolError> {
    let limit = app.settings.body_limit_bytes;
    let too_large = || {
        protocol_error(
            wire::ErrorCode::BodyTooLarge,
            format!("the body is over {limit} bytes"),
        )
    };
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ok = ct.to_str().is_ok_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
        if !ok {
            return Err(protocol_error(
                wire::ErrorCode::UnsupportedMediaType,
                "Content-Type must be application/json",
            ));
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // A body over the limit is still read and discarded, up to a bound, so
    // the client (still writing) receives the 413 instead of a reset; past
    // the bound the connection is simply closed after the answer.
    if declared.is_some_and(|n| n > TOO_LARGE_DRAIN_BYTES_MAX) {
        return Err(too_large());
    }
    let deadline = Duration::from_millis(app.settings.request_timeout_ms);
    let mut body = req.into_body();
    let read = async {
        let mut buf = Vec::with_capacity(declared.unwrap_or(1024).min(limit));
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return Err(None) };
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen > TOO_LARGE_DRAIN_BYTES_MAX {
                    return Err(Some(too_large()));
                }
                if seen <= limit {
                    buf.extend_from_slice(&data);
                }
            }
        }
        if seen > limit {
            Err(Some(too_large()))
        } else {
            Ok(buf)
        }
    };
    match tokio::time::timeout(deadline, read).await {
        Err(_) => Err(protocol_error(
            wire::ErrorCode::Timeout,
            "the request body did not arrive in time",
        )),
        Ok(Ok(buf)) => Ok(buf),
        Ok(Err(Some(e))) => Err(e),
        Ok(Err(None)) => Err(protocol_error(
            wire::ErrorCode::InvalidJson,
            "the request body could not be read",
        )),
    }
}

fn unauthorized() -> wire::ProtocolError {
    protocol_error(
        wire::ErrorCode::Unauthorized,
        "a valid 'Authorization: Bearer <key>' header is required",
    )
}

/// The key of an `Authorization: Bearer <key>` header: 1 to 256 bytes.
fn bearer_key(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()
        .and_then(leadex_admin_api::keys::bearer_token)
        .filter(|k| !k.is_empty() && k.len() <= 256)
}

fn authenticate(
    app: &App,
    req: &Request<Incoming>,
) -> Result<leadex_engine::snapshot::Seller, wire::ProtocolError> {
    let key = bearer_key(req).ok_or_else(unauthorized)?;
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    app.engine.authenticate(&digest).ok_or_else(unauthorized)
}

async fn seller_request(
    app: &Arc<App>,
    route: Route,
    req: Request<Incoming>,
) -> Result<Answer, wire::ProtocolError> {
    let seller = authenticate(app, &req)?;
    let mut body = read_body(app, req).await?;
    let mut out = Vec::with_capacity(512);
    match route {
        Route::Ping => {
            let ping = wire::parse_ping(&mut body)?;
            let answer = app.engine.ping(&seller, &ping).map_err(engine_error)?;
            if let Some(event) = answer.event.clone() {
                let counted = ping_counter(app, &event);
                let refused = app.journal.append(vec![event], counted);
                if let Err(JournalError::Unavailable(reason)) = &refused {
                    // A broker outage: the price lock is held in memory
                    // only (lost by a crash, when its post answers
                    // `ping_not_found`); its post needs the journal anyway.
                    app.metrics
                        .pings_not_journaled
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(%reason, "journal unavailable; ping answered from memory");
                } else if let Err(e) = refused {
                    app.engine.forget_ping(answer.ping_id);
                    app.metrics
                        .ping_journal_refusals
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(error = %e, "ping not journaled; answered overloaded");
                    return Err(protocol_error(
                        wire::ErrorCode::Overloaded,
                        "the exchange is at capacity; retry shortly",
                    ));
                }
            }
            let bids: Vec<wire::WireBid<'_>> = answer
                .bids
                .iter()
                .map(|b| wire::WireBid {
                    bid_id: b.bid_id,
                    buyer: &b.buyer_name,
                    price_cents: b.price_cents,
                    sale_type: b.sale_type,
                })
                .collect();
            wire::encode_ping_response(
                &mut out,
                &wire::PingResponse {
                    ping_id: answer.ping_id,
                    expires_at_ms: answer.expires_at_ms,
                    bids: &bids,
                    no_bid_reason: answer.no_bid_reason.map(|r| r.as_str()),
                },
            );
            Ok(json(StatusCode::OK, out))
        }
        Route::Post => {
            let post = wire::parse_post(&mut body)?;
            let settlement = app
                .engine
                .post(&seller, post.ping_id, &post.bid_ids, &post.lead)
                .map_err(engine_error)?;
            durable_sale(app, settlement, &mut out).await?;
            Ok(json(StatusCode::OK, out))
        }
        Route::DirectPost => {
            let lead = wire::parse_direct_post(&mut body)?;
            match app
                .engine
                .direct_post(&seller, &lead)
                .map_err(engine_error)?
            {
                DirectOutcome::Sold(settlement) => durable_sale(app, *settlement, &mut out).await?,
                DirectOutcome::Unsold(reason) => wire::encode_unsold_response(&mut out, reason),
            }
            Ok(json(StatusCode::OK, out))
        }
        _ => unreachable!("invariant: only seller routes reach seller_request"),
    }
}

/// For the reports: counts a ping answered with bids once it is durable
/// (as replay would), through the admin feed, without ever waiting: a full
/// queue leaves it uncounted and noted. `None` when there is no feed.
fn ping_counter(
    app: &App,
    event: &leadex_engine::Event,
) -> Option<leadex_engine::journal::DurableCallback> {
    let (Some(feed), leadex_engine::Event::PingIssued(p)) = (&app.sales_feed, event) else {
        return None;
    };
    let feed = feed.clone();
    let seen = leadex_admin_api::reports::PingSeen::of(p);
    Some(Box::new(move |result: Result<u64, JournalError>| {
        if result.is_ok() {
            feed.ping(seen);
        }
    }))
}

/// Settles exactly once: commit on durable, rollback on failure, and
/// rollback if the journal drops the callback without calling it.
struct SettleOnce {
    inner: Option<(Arc<Engine>, Settlement, DurableSender)>,
    feed: Option<AdminFeed>,
    route_wake: Arc<tokio::sync::Notify>,
}

/// Tells the waiting request how its sale ended.
type DurableSender = tokio::sync::oneshot::Sender<Result<(), JournalError>>;

impl SettleOnce {
    fn finish(&mut self, result: Result<u64, JournalError>) {
        if let Some((engine, settlement, tx)) = self.inner.take() {
            let outcome = match result {
                Ok(_) => {
                    engine.commit(&settlement);
                    if engine.router().backlog_len() > 0 {
                        self.route_wake.notify_one();
                    }
                    if let (Some(feed), leadex_engine::Event::LeadSold(sold)) =
                        (&self.feed, &settlement.event)
                    {
                        // Blocks only while the admin side is a whole queue
                        // behind.
                        feed.sale(sold);
                    }
                    Ok(())
                }
                Err(e) => {
                    engine.rollback(&settlement);
                    Err(e)
                }
            };
            let _ = tx.send(outcome); // the request may be gone; the sale is settled either way
        }
    }
}

impl Drop for SettleOnce {
    fn drop(&mut self) {
        self.finish(Err(JournalError::Closed));
    }
}

/// Journals a settlement, waits until durable, and writes the `sold` answer.
/// Commit or rollback runs inside the journal callback (see module docs).
async fn durable_sale(
    app: &Arc<App>,
    settlement: Settlement,
    out: &mut Vec<u8>,
) -> Result<(), wire::ProtocolError> {
    let sold: Vec<(Option<leadex_engine::BidId>, Arc<str>, u64)> = settlement
        .sales
        .iter()
        .map(|s| (s.bid_id, s.buyer_name.clone(), s.seller_price_cents))
        .collect();
    let lead_id = settlement.lead_id;
    let event = settlement.event.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), JournalError>>();
    let mut guard = SettleOnce {
        inner: Some((app.engine.clone(), settlement, tx)),
        feed: app.sales_feed.clone(),
        route_wake: app.route_wake.clone(),
    };
    let callback = Box::new(move |result: Result<u64, JournalError>| guard.finish(result));
    // If `append` refuses, it drops the callback, and the guard rolls back.
    let queued = app.journal.append(vec![event], Some(callback));
    let wait = Duration::from_millis(app.settings.durable_wait_ms);
    let outcome = match queued {
        Err(e) => Err(e),
        Ok(()) => match tokio::time::timeout(wait, rx).await {
            Ok(result) => result.unwrap_or(Err(JournalError::Closed)),
            Err(_elapsed) => {
                // The journal still owns the outcome (the guard commits or
                // rolls back when it learns it); the seller is told the
                // truth: not known to be stored.
                app.metrics
                    .post_durable_wait_expired
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(%lead_id, wait_ms = app.settings.durable_wait_ms, "sale not confirmed durable in time; answered persistence_unavailable");
                return Err(protocol_error(
                    wire::ErrorCode::PersistenceUnavailable,
                    "the sale is not confirmed stored yet; if it is stored it stands, \
                     and re-posting this ping answers ping_already_used",
                ));
            }
        },
    };
    match outcome {
        Ok(()) => {
            let sales: Vec<wire::WireSale<'_>> = sold
                .iter()
                .map(|(bid_id, buyer, price)| wire::WireSale {
                    bid_id: *bid_id,
                    buyer,
                    price_cents: *price,
                })
                .collect();
            wire::encode_post_response(
                out,
                &wire::PostResponse {
                    lead_id,
                    sales: &sales,
                },
            );
            Ok(())
        }
        Err(e) => {
            app.metrics
                .post_journal_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %e, "sale not made durable; rolled back");
            Err(protocol_error(
                wire::ErrorCode::PersistenceUnavailable,
                "the sale could not be made durable; nothing was charged",
            ))
        }
    }
}

/// The agency a routing key may route for: its own account for a buyer or
/// manager key, the one named for an admin key.
fn routing_agency(
    app: &App,
    req: &Request<Incoming>,
) -> Result<(leadex_admin_api::keys::Role, Option<String>), wire::ProtocolError> {
    let secret = bearer_key(req).ok_or_else(unauthorized)?;
    let store = &app.sales_feed.as_ref().ok_or_else(unauthorized)?.store;
    let key = store
        .authenticate(
            &leadex_admin_api::keys::secret_hash(secret),
            app.engine.now_ms(),
        )
        .ok_or_else(unauthorized)?;
    use leadex_admin_api::keys::Role;
    match key.role {
        Role::Admin | Role::Buyer | Role::Manager => Ok((key.role, key.tenant)),
        _ => Err(protocol_error(
            wire::ErrorCode::Forbidden,
            "routing needs an admin, buyer or manager key",
        )),
    }
}

fn routing_error(e: leadex_engine::routing::assign::RoutingError) -> wire::ProtocolError {
    use leadex_engine::routing::assign::RoutingError as R;
    use wire::ErrorCode as C;
    match e {
        R::UnknownAgency => {
            protocol_error(C::NotFound, "the agency has no agents").with_field("agency_id")
        }
        R::BadTier => protocol_error(C::InvalidField, e.to_string()).with_field("lead.score_tier"),
        R::Overloaded(_) | R::Busy => {
            protocol_error(C::Overloaded, "the exchange is at capacity; retry shortly")
        }
        R::NotFound | R::NotOffered(_) | R::WrongAgent => {
            protocol_error(C::Internal, e.to_string())
        }
    }
}

/// `POST /v1/route`: routes a lead for an agency, journals the assignment,
/// and answers once it is durable with the assignment and the ranked
/// candidates (each factor's contribution; they add up to the score).
async fn route_request(
    app: &Arc<App>,
    req: Request<Incoming>,
) -> Result<Answer, wire::ProtocolError> {
    let (role, tenant) = routing_agency(app, &req)?;
    let body = read_body(app, req).await?;
    let parsed = wire::parse_route(&body)?;
    let agency = match (role, tenant, parsed.agency_id) {
        (leadex_admin_api::keys::Role::Admin, _, Some(asked)) => asked,
        (leadex_admin_api::keys::Role::Admin, _, None) => {
            return Err(protocol_error(
                wire::ErrorCode::MissingField,
                "an admin key names the agency: agency_id is required",
            )
            .with_field("agency_id"))
        }
        (_, Some(own), None) => own,
        (_, Some(own), Some(asked)) if own == asked => own,
        // Another account's agency is not revealed.
        _ => {
            return Err(
                protocol_error(wire::ErrorCode::NotFound, "the agency has no agents")
                    .with_field("agency_id"),
            )
        }
    };
    let ticket = app
        .engine
        .route_lead(&agency, parsed.lead, parsed.lead_id, parsed.reference)
        .map_err(routing_error)?;
    let ticket = durable_routing(app, ticket).await?;
    let mut out = Vec::with_capacity(2048);
    encode_route(&ticket, &mut out);
    Ok(json(StatusCode::OK, out))
}

/// Writes the answer to a route from its durable ticket.
fn encode_route(ticket: &leadex_engine::routing::assign::RoutingTicket, out: &mut Vec<u8>) {
    use leadex_engine::routing::assign::RoutingChange;
    let graph = &ticket.graph;
    let offer = ticket.record.change.new_offer();
    let strategy = match &ticket.record.change {
        RoutingChange::Created { agency_id, .. } => graph.agency(agency_id),
        _ => None,
    }
    .map_or("weighted", |a| a.policy.strategy.as_str());
    let (candidates, eligible, excluded) = match &ticket.outcome {
        Some(o) => (
            o.candidates
                .iter()
                .map(|c| {
                    wire::WireCandidate::new(
                        &graph.agents[c.agent as usize].id,
                        c.score,
                        &c.factors,
                        c.open,
                    )
                })
                .collect(),
            o.eligible,
            o.excluded,
        ),
        None => (Vec::new(), 0, Default::default()),
    };
    wire::encode_route_response(
        out,
        &wire::RouteResponse {
            assignment_id: ticket.record.assignment_id,
            status: if offer.is_some() {
                "offered"
            } else {
                "unassigned"
            },
            agent_id: offer.map(|o| o.agent_id.as_str()),
            offer_expires_at: offer.map(|o| wire::format_rfc3339_millis(o.expires_at_ms)),
            strategy,
            eligible,
            excluded: wire::EXCLUDED_NAMES
                .iter()
                .copied()
                .zip(excluded.iter().copied())
                .collect(),
            candidates,
        },
    );
}

/// Journals a routing decision and waits until it is durable: commit (and
/// the admin feed) or rollback run in the journal's callback, so a caller
/// that stops waiting never leaves a reservation behind.
pub(crate) async fn durable_routing(
    app: &Arc<App>,
    ticket: leadex_engine::routing::assign::RoutingTicket,
) -> Result<leadex_engine::routing::assign::RoutingTicket, wire::ProtocolError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let feed = app.sales_feed.clone();
    leadex_engine::routing::assign::journal_ticket(
        &app.engine,
        &*app.journal,
        ticket,
        move |outcome| {
            if let (Ok(t), Some(feed)) = (&outcome, &feed) {
                feed.routing(&t.record);
            }
            let _ = tx.send(outcome);
        },
    );
    let wait = Duration::from_millis(app.settings.durable_wait_ms);
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(Ok(ticket))) => Ok(ticket),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "routing not made durable; rolled back");
            Err(protocol_error(
                wire::ErrorCode::PersistenceUnavailable,
                "the assignment could not be made durable; nothing was assigned",
            ))
        }
        Ok(Err(_)) | Err(_) => Err(protocol_error(
            wire::ErrorCode::PersistenceUnavailable,
            "the assignment is not confirmed stored yet; if it is stored it stands",
        )),
    }
}

/// Most offers expired and backlog leads routed per sweeper tick.
const ROUTING_ITEMS_PER_TICK: usize = 2_000;

/// The sweeper's routing work, once per tick: offers past their time are
/// expired (and offered on), and leads sold by campaigns whose delivery is
/// `route` are routed. Each decision is journaled and committed in the
/// journal's callback; nothing here waits for durability (a decision in
/// flight is busy, so the next tick does not pick it again).
pub fn routing_tick(app: &Arc<App>, expire_offers: bool) {
    use leadex_engine::routing::assign::{journal_ticket, Action, RoutingError};
    let engine = &app.engine;
    let submit = |ticket| {
        let feed = app.sales_feed.clone();
        journal_ticket(engine, &*app.journal, ticket, move |outcome| {
            match (&outcome, &feed) {
                (Ok(t), Some(feed)) => feed.routing(&t.record),
                (Err(e), _) => {
                    tracing::warn!(error = %e, "routing decision not made durable; rolled back, retried next tick")
                }
                _ => {}
            }
        });
    };
    // The scan for due offers reads every open assignment: once per tick,
    // not on every wake-up by a sale.
    let due = if expire_offers {
        engine
            .router()
            .due_offers(engine.now_ms(), ROUTING_ITEMS_PER_TICK)
    } else {
        Vec::new()
    };
    for id in due {
        // An error: answered or closed since the scan, or being decided.
        if let Ok(ticket) = engine.decide_assignment(id, Action::Expire) {
            submit(ticket);
        }
    }
    for pending in engine.router().backlog(ROUTING_ITEMS_PER_TICK) {
        match engine.route_pending(&pending) {
            Ok(ticket) => submit(ticket),
            Err(RoutingError::UnknownAgency) => {
                tracing::warn!(lead_id = %pending.lead_id, agency = %pending.agency_id, "a lead to route, but its agency has no agents; left unrouted");
                engine.router().drop_pending(pending.lead_id);
            }
            Err(RoutingError::Busy) => {}
            Err(e) => {
                tracing::warn!(lead_id = %pending.lead_id, error = %e, "a lead could not be routed yet; retried next tick")
            }
        }
    }
}
