//! [`Admin`]: how a handler changes the admin state (journal first, then
//! apply, in journal order) and who is calling ([`Principal`]).

use crate::error::{ApiError, ErrorCode};
use crate::keys::{secret_hash, ApiKey, Role};
use crate::store::{record, AdminPayload, AdminStore};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use leadex_engine::event::{MarketChange, MarketRecord};
use leadex_engine::routing::assign::{journal_ticket, RoutingRecord, RoutingTicket};
use leadex_engine::{Engine, Event, Journal};
use std::sync::Arc;
use std::time::Duration;

/// The admin API's state and its way into the journal.
pub struct Admin {
    /// The state.
    pub store: Arc<AdminStore>,
    /// The engine: the marketplace in force and its counters.
    pub engine: Arc<Engine>,
    journal: Arc<dyn Journal>,
    now_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
    durable_wait: Duration,
    /// Serializes mutations: each handler validates against the state and
    /// commits under it, so two changes can never both be checked against
    /// the same old state (two top-ups, a return racing a return).
    writes: Arc<tokio::sync::Mutex<()>>,
}

/// The right to change the state, from [`Admin::begin`] until the change
/// is applied (or refused).
pub struct WriteTurn {
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Admin {
    /// An admin API over `store` and `engine`, journaling to `journal`;
    /// `now_ms` is the clock; a change waits at most `durable_wait` to be
    /// durable.
    pub fn new(
        store: Arc<AdminStore>,
        engine: Arc<Engine>,
        journal: Arc<dyn Journal>,
        now_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
        durable_wait: Duration,
    ) -> Admin {
        Admin {
            store,
            engine,
            journal,
            now_ms,
            durable_wait,
            writes: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Now, Unix ms.
    pub fn now_ms(&self) -> i64 {
        (self.now_ms)()
    }

    /// Whether buyer account `id` exists.
    pub fn has_buyer(&self, id: &str) -> bool {
        self.engine.marketplace().buyers.iter().any(|b| b.id == id)
    }

    /// Whether seller `id` exists.
    pub fn has_seller(&self, id: &str) -> bool {
        self.engine.marketplace().sellers.iter().any(|s| s.id == id)
    }

    /// The existing account a record is created in: a tenant key's own,
    /// or the one an admin names in `buyer_id` (400 when none is named,
    /// 404 when it does not exist or is not the caller's).
    pub fn account_to_write(
        &self,
        caller: &Principal,
        asked: Option<&str>,
    ) -> Result<String, ApiError> {
        let tenant = caller
            .account(asked)?
            .ok_or_else(|| ApiError::invalid("buyer_id", "name the account"))?;
        if !self.has_buyer(&tenant) {
            return Err(not_found("account"));
        }
        Ok(tenant)
    }

    /// Waits for the turn to change the state: read what the change depends
    /// on after this, then [`Admin::commit`] or [`Admin::commit_market`].
    pub async fn begin(&self) -> WriteTurn {
        WriteTurn {
            _held: self.writes.clone().lock_owned().await,
        }
    }

    /// Journals `payload` as an admin record and, once it is durable,
    /// applies it to the store. Answers only after both.
    pub async fn commit(&self, turn: WriteTurn, payload: AdminPayload) -> Result<(), ApiError> {
        let record = record(&payload, self.now_ms());
        let store = self.store.clone();
        let applied = record.clone();
        self.append(turn, Event::Admin(record), move || {
            store.apply(&applied).map(|_| ())
        })
        .await
    }

    /// Journals a marketplace change with its admin `payload` as one
    /// record and, once it is durable, applies it to the engine (a new
    /// snapshot swapped in, or a refund) and the payload to the store.
    pub async fn commit_market(
        &self,
        turn: WriteTurn,
        change: MarketChange,
        payload: AdminPayload,
    ) -> Result<(), ApiError> {
        let record = MarketRecord {
            id: crate::keys::generate_id("m_"),
            at_ms: self.now_ms(),
            change,
            note: payload.encode(),
        };
        let (store, engine) = (self.store.clone(), self.engine.clone());
        let event = Event::Market(record.clone());
        let applied = event.clone();
        self.append(turn, event, move || {
            engine.apply(&applied);
            store.apply_market(&record).map(|_| ())
        })
        .await
    }

    /// Journals an assignment decision of the engine (see
    /// [`leadex_engine::routing::assign::journal_ticket`]: the engine
    /// commits it once durable, or rolls it back) and, once it is durable,
    /// applies its record to the store, in a task of its own as
    /// [`Admin::commit`] does. Answers the record once both happened. Not
    /// under a [`WriteTurn`]: the engine keeps a second transition of the
    /// same assignment out until the first is committed or rolled back
    /// (`assignment_busy`), and the decision depends on nothing else the
    /// admin API changes.
    pub async fn commit_routing(&self, ticket: RoutingTicket) -> Result<RoutingRecord, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        journal_ticket(&self.engine, &*self.journal, ticket, move |result| {
            let _ = tx.send(result.map(|t| t.record).map_err(|e| e.to_string()));
        });
        let store = self.store.clone();
        let task = tokio::spawn(async move {
            match rx.await {
                Ok(Ok(record)) => {
                    store.apply_routing(&record);
                    Ok(record)
                }
                Ok(Err(why)) => Err(why),
                Err(_dropped) => Err("the journal dropped the change".to_string()),
            }
        });
        match tokio::time::timeout(self.durable_wait, task).await {
            Ok(Ok(Ok(record))) => Ok(record),
            Ok(Ok(Err(why))) => Err(not_durable(why)),
            Ok(Err(join)) => Err(not_durable(format!("the commit task failed: {join}"))),
            Err(_) => Err(ApiError::new(
                ErrorCode::PersistenceUnavailable,
                "the change is not confirmed durable yet; it applies if it is stored",
            )),
        }
    }

    /// Appends `event`, waits until it is durable, then runs `apply`, all in
    /// a task of its own: a client that goes away cannot leave a durable
    /// change unapplied. The turn is held until the change is applied.
    async fn append(
        &self,
        turn: WriteTurn,
        event: Event,
        apply: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> Result<(), ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let callback = Box::new(move |result: Result<u64, leadex_engine::JournalError>| {
            let _ = tx.send(result.map_err(|e| e.to_string()));
        });
        let unavailable = not_durable;
        self.journal
            .append(vec![event], Some(callback))
            .map_err(|e| unavailable(e.to_string()))?;
        let task = tokio::spawn(async move {
            let outcome = match rx.await {
                Ok(Ok(_)) => apply(),
                Ok(Err(why)) => Err(why),
                Err(_dropped) => Err("the journal dropped the change".into()),
            };
            drop(turn);
            outcome
        });
        match tokio::time::timeout(self.durable_wait, task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(why))) => Err(unavailable(why)),
            Ok(Err(join)) => Err(unavailable(format!("the commit task failed: {join}"))),
            Err(_) => Err(ApiError::new(
                ErrorCode::PersistenceUnavailable,
                "the change is not confirmed durable yet; it applies if it is stored",
            )),
        }
    }
}

/// 503 for a change the journal refused or failed: nothing changed.
fn not_durable(why: String) -> ApiError {
    tracing::warn!(reason = %why, "admin change not made durable");
    ApiError::new(
        ErrorCode::PersistenceUnavailable,
        "the change could not be made durable; nothing changed, retry later",
    )
}

/// The caller, from `Authorization: Bearer <key>`.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The key used.
    pub key: ApiKey,
}

impl Principal {
    /// The key's role.
    pub fn role(&self) -> Role {
        self.key.role
    }

    /// True for admin keys.
    pub fn is_admin(&self) -> bool {
        self.key.role == Role::Admin
    }

    /// Refuses unless the caller's role is one of `roles` (admins always
    /// pass).
    pub fn require_any(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.is_admin() || roles.contains(&self.key.role) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("a {} key may not use this route", role_name(self.key.role)),
            ))
        }
    }

    /// Whether the caller may see records of account `tenant`: admins see
    /// every account, other keys only their own.
    pub fn sees(&self, tenant: &str) -> bool {
        self.is_admin() || self.key.tenant.as_deref() == Some(tenant)
    }

    /// `Ok` when the caller sees `tenant`, else 404 naming `what` (never
    /// 403: a foreign account's records must not be known to exist).
    pub fn scope(&self, tenant: &str, what: &str) -> Result<(), ApiError> {
        if self.sees(tenant) {
            Ok(())
        } else {
            Err(not_found(what))
        }
    }

    /// The account a list or a creation is for: a tenant key's own
    /// account, or for admins the one asked for (`None`: every account).
    pub fn account(&self, asked: Option<&str>) -> Result<Option<String>, ApiError> {
        match (&self.key.tenant, asked) {
            (None, asked) => Ok(asked.map(str::to_string)),
            (Some(own), None) => Ok(Some(own.clone())),
            (Some(own), Some(asked)) if own == asked => Ok(Some(own.clone())),
            (Some(_), Some(_)) => Err(not_found("account")),
        }
    }

    /// Refuses unless the caller has `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.key.role == role {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this route needs an {role:?} key").to_lowercase(),
            ))
        }
    }
}

impl FromRequestParts<crate::AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiError::new(ErrorCode::Unauthorized, m);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send the key as Authorization: Bearer <key>"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(crate::keys::bearer_token)
            .ok_or_else(|| unauthorized("send the key as Authorization: Bearer <key>"))?;
        let admin = &state.admin;
        let now_ms = admin.now_ms();
        let key = admin
            .store
            .authenticate(&secret_hash(secret), now_ms)
            .ok_or_else(|| unauthorized("unknown, revoked or expired key"))?;
        let per_minute = key.tier.requests_per_minute();
        if let Err(retry_after_s) = state.limiter.check(&key.id, per_minute, now_ms) {
            let mut error = ApiError::new(
                ErrorCode::RateLimited,
                format!("this key may make {per_minute} requests per minute; retry after {retry_after_s} s"),
            );
            error.retry_after_s = Some(retry_after_s);
            return Err(error);
        }
        Ok(Principal { key })
    }
}

/// The name of a role as the API spells it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Seller => "seller",
        Role::Buyer => "buyer",
        Role::Manager => "manager",
        Role::Agent => "agent",
    }
}

/// 404 for a record the caller cannot see or that does not exist.
pub fn not_found(what: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no such {what}"))
}
