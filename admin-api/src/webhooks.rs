//! Webhook subscriptions (`/v1/webhooks`), their delivery logs, and the
//! delivery worker.
//!
//! Deliveries are an outbox in the admin store: a record that makes an
//! event (a sale, a return, a policy...) creates a pending delivery for
//! each subscription to it as it applies, live and on replay alike. The
//! worker sends what is due (signed, see [`crate::webhook`]) and journals
//! each attempt's outcome, so after a restart exactly the deliveries with
//! no final outcome are tried again: at least once, never lost. Retries
//! back off exponentially up to `max_attempts`.

use crate::admin::{not_found, Admin, Principal};
use crate::audit;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiQuery};
use crate::keys::{generate_id, Role};
use crate::records::*;
use crate::store::{AdminChange, AdminPayload};
use crate::webhook::{check_url, retry_delay_ms, Outgoing, Sender, TargetPolicy};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// Delivery settings (from `[admin]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Where deliveries may go (private targets refused unless allowed).
    pub policy: TargetPolicy,
    /// Deadline of one attempt, ms.
    pub timeout_ms: u64,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// Delay after the first failure, ms; doubles each time.
    pub backoff_base_ms: u64,
    /// Longest delay between attempts, ms.
    pub backoff_max_ms: u64,
    /// How often the worker looks for due deliveries, ms.
    pub poll_interval_ms: u64,
    /// Most deliveries sent at once.
    pub concurrency_max: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            policy: TargetPolicy::default(),
            timeout_ms: 10_000,
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 3_600_000,
            poll_interval_ms: 200,
            concurrency_max: 16,
        }
    }
}

/// A subscription as shown (never its secret after creation).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookView {
    /// Subscription id.
    id: String,
    /// Buyer account.
    buyer_id: String,
    /// Target.
    url: String,
    /// Events.
    events: Vec<WebhookEvent>,
    /// Created, Unix ms.
    created_at_ms: i64,
    /// Deleted, Unix ms.
    deleted_at_ms: Option<i64>,
    /// Deliveries pending now.
    pending: usize,
}

fn view(w: &Webhook, pending: usize) -> WebhookView {
    WebhookView {
        id: w.id.clone(),
        buyer_id: w.tenant.clone(),
        url: w.url.clone(),
        events: w.events.clone(),
        created_at_ms: w.created_at_ms,
        deleted_at_ms: w.deleted_at_ms,
        pending,
    }
}

/// A new subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookInput {
    /// Target URL (http or https; private, loopback and link-local
    /// targets are refused unless the operator allows them).
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@:]+")]
    url: String,
    /// Events to send (at least one).
    #[schema(min_items = 1)]
    events: Vec<WebhookEvent>,
    /// The account (admins; tenant keys subscribe their own).
    #[serde(default)]
    buyer_id: Option<String>,
}

/// A subscription just created, with its signing secret (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedWebhook {
    /// The subscription.
    webhook: WebhookView,
    /// The HMAC-SHA256 key: each delivery carries
    /// `Leadex-Signature: t=<unix s>,v1=<hex HMAC(secret, "<t>.<body>")>`.
    secret: String,
}

/// Subscribes a URL to events of an account.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "create_webhook", tag = "webhooks", request_body = WebhookInput, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the secret is shown once", body = CreatedWebhook),
        (status = 400, description = "Bad body or field (a refused target)", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin, buyer or manager key", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(input): ApiJson<WebhookInput>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let tenant = state
        .admin
        .account_to_write(&caller, input.buyer_id.as_deref())?;
    check_url(&input.url, &state.webhooks.policy)
        .map_err(|e| ApiError::invalid("url", e.to_string()))?;
    if input.events.is_empty() {
        return Err(ApiError::invalid("events", "name at least one event"));
    }
    let mut events = input.events;
    events.sort_by_key(|e| e.as_str());
    events.dedup();
    let (secret, _) = crate::keys::generate_secret();
    let turn = state.admin.begin().await;
    let webhook = Webhook {
        id: generate_id("w_"),
        tenant,
        url: input.url,
        events,
        secret: secret.clone(),
        created_at_ms: state.admin.now_ms(),
        deleted_at_ms: None,
    };
    let shown = view(&webhook, 0);
    let payload = AdminPayload::one(AdminChange::WebhookCreated { webhook }).audited(audit::entry(
        &caller,
        "POST /v1/webhooks",
        format!("webhook {}", shown.id),
        None::<&()>,
        Some(&shown),
    ));
    state.admin.commit(turn, payload).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook: shown,
            secret,
        }),
    ))
}

fn pending_of(s: &crate::store::State, id: &str) -> usize {
    s.deliveries
        .values()
        .filter(|d| d.webhook_id == id && d.status == DeliveryStatus::Pending)
        .count()
}

/// Subscription list filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WebhookQuery {
    /// Only this account's (admins; tenant keys see their own only).
    buyer_id: Option<String>,
}

/// Lists subscriptions.
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks", params(WebhookQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Subscriptions", body = Vec<WebhookView>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin, buyer or manager key", body = ErrorBody),
        (status = 404, description = "Another account asked for", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<WebhookQuery>,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let account = caller.account(query.0.buyer_id.as_deref())?;
    Ok(Json(state.admin.store.read(|s| {
        of_account(s.webhooks.values(), account.as_deref())
            .map(|w| view(w, pending_of(s, &w.id)))
            .collect()
    })))
}

fn find(state: &AppState, caller: &Principal, id: &str) -> Result<(Webhook, usize), ApiError> {
    let found = state
        .admin
        .store
        .read(|s| s.webhooks.get(id).map(|w| (w.clone(), pending_of(s, id))));
    let (w, pending) = found.ok_or_else(|| not_found("webhook"))?;
    caller.scope(&w.tenant, "webhook")?;
    Ok((w, pending))
}

/// One subscription.
#[utoipa::path(get, path = "/v1/webhooks/{id}", operation_id = "get_webhook", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription", body = WebhookView),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin, buyer or manager key", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let (w, pending) = find(&state, &caller, &id)?;
    Ok(Json(view(&w, pending)))
}

/// Deletes a subscription (idempotent): nothing more is sent; its log
/// stays readable.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", operation_id = "delete_webhook", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin, buyer or manager key", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let turn = state.admin.begin().await;
    let (w, pending) = find(&state, &caller, &id)?;
    if w.deleted_at_ms.is_none() {
        let payload = AdminPayload::one(AdminChange::WebhookDeleted {
            id: id.clone(),
            at_ms: state.admin.now_ms(),
        })
        .audited(audit::entry(
            &caller,
            "DELETE /v1/webhooks/{id}",
            format!("webhook {id}"),
            Some(&view(&w, pending)),
            None::<&()>,
        ));
        state.admin.commit(turn, payload).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Delivery log filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryQuery {
    /// Newest first, at most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A subscription's delivery log, newest first (the last 1000 kept).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", operation_id = "list_deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id"), DeliveryQuery),
    responses(
        (status = 200, description = "Deliveries with every attempt", body = Vec<Delivery>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin, buyer or manager key", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    query: ApiQuery<DeliveryQuery>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    find(&state, &caller, &id)?;
    let limit = crate::json::limit(query.0.limit)?;
    Ok(Json(state.admin.store.read(|s| {
        let mut list: Vec<Delivery> = s
            .deliveries
            .values()
            .filter(|d| d.webhook_id == id)
            .cloned()
            .collect();
        list.sort_by_key(|d| std::cmp::Reverse((d.created_at_ms, d.id.clone())));
        list.truncate(limit);
        list
    })))
}

/// Runs the delivery worker until `stop` completes: every
/// `poll_interval_ms`, sends up to `concurrency_max` due deliveries at once
/// and journals each outcome (a failed journal write leaves the delivery
/// pending: it is sent again, receivers dedupe by `Leadex-Delivery`).
pub async fn run_delivery_worker(
    admin: Arc<Admin>,
    settings: WebhookSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let sender = match Sender::new(crate::webhook::SenderSettings {
        timeout_ms: settings.timeout_ms,
        policy: settings.policy.clone(),
        user_agent: format!("leadex-webhooks/{}", env!("CARGO_PKG_VERSION")),
    }) {
        Ok(s) => Arc::new(s),
        Err(error) => {
            tracing::error!(%error, "webhook sender could not be built; no webhooks will be sent");
            return;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(settings.poll_interval_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let due = admin
            .store
            .due_deliveries(admin.now_ms(), settings.concurrency_max);
        let mut tasks = tokio::task::JoinSet::new();
        for (delivery, webhook) in due {
            let (admin, sender, settings) = (admin.clone(), sender.clone(), settings.clone());
            tasks
                .spawn(async move { deliver(&admin, &sender, &settings, delivery, webhook).await });
        }
        while tasks.join_next().await.is_some() {}
    }
}

async fn deliver(
    admin: &Admin,
    sender: &Sender,
    settings: &WebhookSettings,
    delivery: Delivery,
    webhook: Webhook,
) {
    let now_ms = admin.now_ms();
    let outcome = if webhook.deleted_at_ms.is_some() {
        None
    } else {
        Some(
            sender
                .send(&Outgoing {
                    url: webhook.url.clone(),
                    secret: webhook.secret.as_bytes().to_vec(),
                    event_type: delivery.event.as_str().to_string(),
                    delivery_id: delivery.id.clone(),
                    body: delivery.body.as_bytes().to_vec(),
                    timestamp_s: now_ms / 1000,
                })
                .await,
        )
    };
    let attempt_number = delivery.attempts.len() as u32 + 1;
    let (attempt, status, next) = match outcome {
        None => (
            DeliveryAttempt {
                at_ms: now_ms,
                status: None,
                error: Some("subscription_deleted".into()),
                elapsed_ms: 0,
            },
            DeliveryStatus::Failed,
            0,
        ),
        Some(o) => {
            let attempt = DeliveryAttempt {
                at_ms: now_ms,
                status: o.status,
                error: o.error.clone(),
                elapsed_ms: o.elapsed_ms,
            };
            if o.ok {
                (attempt, DeliveryStatus::Delivered, 0)
            } else if attempt_number >= settings.max_attempts {
                (attempt, DeliveryStatus::Failed, 0)
            } else {
                let seed = u64::from_str_radix(&delivery.id[2..18], 16).unwrap_or(0);
                let delay = retry_delay_ms(
                    attempt_number,
                    settings.backoff_base_ms,
                    settings.backoff_max_ms,
                    seed,
                );
                (
                    attempt,
                    DeliveryStatus::Pending,
                    admin.now_ms() + delay as i64,
                )
            }
        }
    };
    let turn = admin.begin().await;
    let payload = AdminPayload::one(AdminChange::DeliveryAttempted {
        id: delivery.id.clone(),
        attempt,
        status,
        next_attempt_at_ms: next,
    });
    if let Err(error) = admin.commit(turn, payload).await {
        tracing::warn!(delivery = %delivery.id, error = %error.message, "webhook outcome not journaled; it will be sent again");
    }
}
