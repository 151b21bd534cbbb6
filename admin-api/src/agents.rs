//! Agents and teams of a buyer account: the records lead routing reads
//! (licences by state and line, carrier appointments, captive carrier,
//! languages, capacity, schedule, manager, team, specializations,
//! performance, quality tier, links). Each change is the engine's
//! (`MarketChange::PutAgent`, `PutTeam`: the agent graph is rebuilt), with
//! the admin record and its audit entry in the same journal record's note.

use crate::admin::{not_found, Principal};
use crate::audit;
use crate::crm::check_id;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::json::{ApiJson, ApiQuery};
use crate::keys::Role;
use crate::market::preview;
use crate::records::*;
use crate::store::{AdminChange, AdminPayload};
use crate::AppState;
use axum::extract::{Path, State};
use axum::Json;
use leadex_engine::event::MarketChange;
use leadex_engine::routing::spec::{LinkSpec, PerformanceSpec};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// An agent to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentInput {
    /// Agent id (1 to 64 of A-Z a-z 0-9 - _ .).
    #[schema(pattern = "^[A-Za-z0-9._-]+$", min_length = 1, max_length = 64)]
    id: String,
    /// The account (admins; tenant keys use their own).
    #[serde(default)]
    buyer_id: Option<String>,
    /// Name (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
    /// E-mail.
    #[serde(default)]
    #[schema(max_length = 254, pattern = "^$|@")]
    email: String,
    /// Licences: state and line of authority.
    #[serde(default)]
    licences: Vec<Licence>,
    /// Carrier appointments (stored lower case).
    #[serde(default)]
    appointments: Vec<String>,
    /// The carrier the agent is captive to, if any.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    captive_carrier: Option<String>,
    /// Languages, ISO 639-1 (`en`, `es`).
    #[serde(default)]
    languages: Vec<String>,
    /// Most open assignments at once (1 to 10000).
    #[schema(minimum = 1, maximum = 10000)]
    capacity: u32,
    /// IANA time zone of the schedule (default America/New_York).
    #[serde(default)]
    #[schema(value_type = Option<leadex_engine::spec::TimeZone>)]
    time_zone: Option<String>,
    /// Weekly availability; empty means always.
    #[serde(default)]
    schedule: Vec<Availability>,
    /// Office ZIP (5 digits).
    #[serde(default)]
    #[schema(pattern = "^[0-9]{5}$")]
    zip: Option<String>,
    /// Manager: an agent id of the same account.
    #[serde(default)]
    manager_id: Option<String>,
    /// Team id of the same account.
    #[serde(default)]
    team_id: Option<String>,
    /// Takes leads (default true).
    #[serde(default = "yes")]
    active: bool,
    /// Verticals the agent specializes in (routing favours them).
    #[serde(default)]
    specializations: Vec<leadex_engine::lead::Vertical>,
    /// Performance: overall conversion (basis points, 0 to 10000), median
    /// response (seconds), rating (hundredths of a star, 0 to 500), and
    /// conversion by vertical and lead score tier.
    #[serde(default)]
    performance: PerformanceSpec,
    /// The lead score tier the agent serves best: 0 (the best leads) to 3.
    #[serde(default)]
    #[schema(maximum = 3)]
    quality_tier: u8,
    /// Referral and mentorship links to other agents of the account (at
    /// most 64; strength 1 to 10000 basis points).
    #[serde(default)]
    #[schema(max_items = 64)]
    links: Vec<LinkSpec>,
}

fn yes() -> bool {
    true
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const LINES: [&str; 6] = [
    "property",
    "casualty",
    "life",
    "health",
    "personal_lines",
    "commercial",
];

fn validate_agent(state: &AppState, input: &AgentInput, tenant: &str) -> Result<(), ApiError> {
    check_id("id", &input.id)?;
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    if !input.email.is_empty() && (!input.email.contains('@') || input.email.len() > 254) {
        return Err(ApiError::invalid("email", "is not an e-mail address"));
    }
    for (i, l) in input.licences.iter().enumerate() {
        if leadex_engine::lead::UsState::parse(&l.state).is_none() {
            return Err(ApiError::invalid(
                format!("licences[{i}].state"),
                "is not a US state code",
            ));
        }
        if !LINES.contains(&l.line.as_str()) {
            return Err(ApiError::invalid(
                format!("licences[{i}].line"),
                format!("must be one of {}", LINES.join(", ")),
            ));
        }
    }
    for (i, l) in input.languages.iter().enumerate() {
        if l.len() != 2 || !l.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(ApiError::invalid(
                format!("languages[{i}]"),
                "must be a two-letter ISO 639-1 code",
            ));
        }
    }
    if !(1..=10_000).contains(&input.capacity) {
        return Err(ApiError::invalid("capacity", "must be 1 to 10000"));
    }
    if let Some(tz) = &input.time_zone {
        if tz.parse::<chrono_tz::Tz>().is_err() {
            return Err(ApiError::invalid(
                "time_zone",
                "is not an IANA time zone name",
            ));
        }
    }
    for (i, w) in input.schedule.iter().enumerate() {
        if w.from_hour > 23 || w.to_hour == 0 || w.to_hour > 24 || w.from_hour >= w.to_hour {
            return Err(ApiError::invalid(
                format!("schedule[{i}]"),
                "needs 0 <= from_hour < to_hour <= 24",
            ));
        }
        if w.days.is_empty() || w.days.iter().any(|d| !DAYS.contains(&d.as_str())) {
            return Err(ApiError::invalid(
                format!("schedule[{i}].days"),
                "must name days mon … sun",
            ));
        }
    }
    if let Some(zip) = &input.zip {
        if leadex_engine::lead::Zip::parse(zip).is_none() {
            return Err(ApiError::invalid("zip", "must be 5 digits"));
        }
    }
    for (i, c) in input
        .appointments
        .iter()
        .chain(input.captive_carrier.iter())
        .enumerate()
    {
        if c.trim().is_empty() || c.len() > 100 {
            return Err(ApiError::invalid(
                format!("appointments[{i}]"),
                "carriers are 1 to 100 characters",
            ));
        }
    }
    state.admin.store.read(|s| {
        if let Some(m) = &input.manager_id {
            if m == &input.id || s.agents.get(m).is_none_or(|a| a.tenant != tenant) {
                return Err(ApiError::invalid(
                    "manager_id",
                    "no such agent in the account",
                ));
            }
        }
        if let Some(t) = &input.team_id {
            if s.teams.get(t).is_none_or(|x| x.tenant != tenant) {
                return Err(ApiError::invalid("team_id", "no such team in the account"));
            }
        }
        if s.agents.get(&input.id).is_some_and(|a| a.tenant != tenant) {
            return Err(
                ApiError::new(ErrorCode::Conflict, "the agent id is taken").with_field("id")
            );
        }
        Ok(())
    })
}

/// Creates or replaces an agent (admin, buyer or manager of the account).
/// The agent is routable at once: the change is the engine's
/// (`PutAgent`), validated as the engine validates it.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentInput, security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored", body = Agent),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin, buyer or manager key", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The id is another account's", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn put_agent(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(input): ApiJson<AgentInput>,
) -> Result<Json<Agent>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let tenant = state
        .admin
        .account_to_write(&caller, input.buyer_id.as_deref())?;
    let turn = state.admin.begin().await;
    validate_agent(&state, &input, &tenant)?;
    let before = state.admin.store.read(|s| s.agents.get(&input.id).cloned());
    let agent = Agent {
        id: input.id,
        tenant,
        name: input.name.trim().to_string(),
        email: input.email.to_lowercase(),
        licences: input.licences,
        appointments: input
            .appointments
            .iter()
            .map(|c| c.trim().to_lowercase())
            .collect(),
        captive_carrier: input.captive_carrier.map(|c| c.trim().to_lowercase()),
        languages: input.languages,
        capacity: input.capacity,
        time_zone: input.time_zone.unwrap_or_else(|| "America/New_York".into()),
        schedule: input.schedule,
        zip: input.zip,
        manager_id: input.manager_id,
        team_id: input.team_id,
        active: input.active,
        specializations: input.specializations,
        performance: input.performance,
        quality_tier: input.quality_tier,
        links: input.links,
    };
    let change = MarketChange::PutAgent(Box::new(crate::routing::agent_spec(&agent)));
    preview(&state, &change)?;
    let payload = AdminPayload::one(AdminChange::AgentPut {
        agent: agent.clone(),
    })
    .audited(audit::entry(
        &caller,
        "POST /v1/agents",
        format!("agent {}", agent.id),
        before.as_ref(),
        Some(&agent),
    ));
    state.admin.commit_market(turn, change, payload).await?;
    Ok(Json(agent))
}

/// Agent and team list filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AccountQuery {
    /// Only this account's (admins; tenant keys see their own only).
    buyer_id: Option<String>,
}

/// Lists agents.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(AccountQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Agents", body = Vec<Agent>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "Another account asked for", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list_agents(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<AccountQuery>,
) -> Result<Json<Vec<Agent>>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let account = caller.account(query.0.buyer_id.as_deref())?;
    Ok(Json(state.admin.store.read(|s| {
        of_account(s.agents.values(), account.as_deref())
            .cloned()
            .collect()
    })))
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path, description = "Agent id")),
    responses(
        (status = 200, description = "The agent", body = Agent),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get_agent(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let agent = state
        .admin
        .store
        .read(|s| s.agents.get(&id).cloned())
        .ok_or_else(|| not_found("agent"))?;
    caller.scope(&agent.tenant, "agent")?;
    Ok(Json(agent))
}

/// A team to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TeamInput {
    /// Team id.
    #[schema(pattern = "^[A-Za-z0-9._-]+$", min_length = 1, max_length = 64)]
    id: String,
    /// The account (admins; tenant keys use their own).
    #[serde(default)]
    buyer_id: Option<String>,
    /// Name (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
    /// Manager: an agent id of the same account.
    #[serde(default)]
    manager_id: Option<String>,
}

/// Creates or replaces a team (admin, buyer or manager of the account).
#[utoipa::path(post, path = "/v1/teams", tag = "agents", request_body = TeamInput, security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored", body = Team),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin, buyer or manager key", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The id is another account's", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn put_team(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(input): ApiJson<TeamInput>,
) -> Result<Json<Team>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let tenant = state
        .admin
        .account_to_write(&caller, input.buyer_id.as_deref())?;
    check_id("id", &input.id)?;
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    let turn = state.admin.begin().await;
    let before = state.admin.store.read(|s| {
        if let Some(m) = &input.manager_id {
            if s.agents.get(m).is_none_or(|a| a.tenant != tenant) {
                return Err(ApiError::invalid(
                    "manager_id",
                    "no such agent in the account",
                ));
            }
        }
        match s.teams.get(&input.id) {
            Some(t) if t.tenant != tenant => {
                Err(ApiError::new(ErrorCode::Conflict, "the team id is taken").with_field("id"))
            }
            other => Ok(other.cloned()),
        }
    })?;
    let team = Team {
        id: input.id,
        tenant,
        name: input.name.trim().to_string(),
        manager_id: input.manager_id,
    };
    let change = MarketChange::PutTeam(crate::routing::team_spec(&team));
    preview(&state, &change)?;
    let payload =
        AdminPayload::one(AdminChange::TeamPut { team: team.clone() }).audited(audit::entry(
            &caller,
            "POST /v1/teams",
            format!("team {}", team.id),
            before.as_ref(),
            Some(&team),
        ));
    state.admin.commit_market(turn, change, payload).await?;
    Ok(Json(team))
}

/// Lists teams.
#[utoipa::path(get, path = "/v1/teams", tag = "agents", params(AccountQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Teams", body = Vec<Team>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "Another account asked for", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list_teams(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<AccountQuery>,
) -> Result<Json<Vec<Team>>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let account = caller.account(query.0.buyer_id.as_deref())?;
    Ok(Json(state.admin.store.read(|s| {
        of_account(s.teams.values(), account.as_deref())
            .cloned()
            .collect()
    })))
}
