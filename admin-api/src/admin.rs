//! [`Admin`]: how a handler changes the admin state (journal first, then
//! apply, in journal order) and who is calling ([`Principal`]).

use crate::error::{ApiError, ErrorCode};
use crate::keys::{secret_hash, ApiKey, Role};
use crate::store::{record, AdminChange, AdminStore};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use leadex_engine::{Event, Journal};
use std::sync::Arc;
use std::time::Duration;

/// The admin API's state and its way into the journal.
pub struct Admin {
    /// The state.
    pub store: Arc<AdminStore>,
    journal: Arc<dyn Journal>,
    now_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
    durable_wait: Duration,
}

impl Admin {
    /// An admin API over `store`, journaling to `journal`; `now_ms` is the
    /// clock; a change waits at most `durable_wait` to be durable.
    pub fn new(
        store: Arc<AdminStore>,
        journal: Arc<dyn Journal>,
        now_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
        durable_wait: Duration,
    ) -> Admin {
        Admin {
            store,
            journal,
            now_ms,
            durable_wait,
        }
    }

    /// Now, Unix ms.
    pub fn now_ms(&self) -> i64 {
        (self.now_ms)()
    }

    /// Journals `change` and, once it is durable, applies it to the store
    /// (inside the journal's callback, so changes apply in journal order).
    /// Answers only after both.
    pub async fn commit(&self, change: AdminChange) -> Result<(), ApiError> {
        let record = record(&change, self.now_ms());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let store = self.store.clone();
        let applied = record.clone();
        let callback = Box::new(move |result: Result<u64, leadex_engine::JournalError>| {
            let outcome = result
                .map_err(|e| e.to_string())
                .and_then(|_| store.apply(&applied).map(|_| ()));
            let _ = tx.send(outcome);
        });
        let unavailable = |why: String| {
            tracing::warn!(reason = %why, "admin change not made durable");
            ApiError::new(
                ErrorCode::PersistenceUnavailable,
                "the change could not be made durable; nothing changed, retry later",
            )
        };
        self.journal
            .append(vec![Event::Admin(record)], Some(callback))
            .map_err(|e| unavailable(e.to_string()))?;
        match tokio::time::timeout(self.durable_wait, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(why))) => Err(unavailable(why)),
            Ok(Err(_dropped)) => Err(unavailable("the journal dropped the change".into())),
            Err(_) => Err(ApiError::new(
                ErrorCode::PersistenceUnavailable,
                "the change is not confirmed durable yet; it applies if it is stored",
            )),
        }
    }
}

/// The caller, from `Authorization: Bearer <key>`.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The key used.
    pub key: ApiKey,
}

impl Principal {
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
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unauthorized("send the key as Authorization: Bearer <key>"))?;
        let admin = &state.admin;
        admin
            .store
            .authenticate(&secret_hash(secret), admin.now_ms())
            .map(|key| Principal { key })
            .ok_or_else(|| unauthorized("unknown, revoked or expired key"))
    }
}
