//! The authorization matrix of the admin API (issue 5): every route the
//! server's own `GET /openapi.json` lists, called over a real socket by
//! every kind of caller, for the caller's own tenant and a foreign one.
//!
//! Tenant A is buyer account `acme` and seller `s1`; tenant B is buyer
//! account `bravo` and seller `s2`. Both have real records made through the
//! API (sales over the seller API, quotes, policies, commissions, agents,
//! teams, webhooks, sources), and every path parameter names one of A's.
//! Assignments are routed by the engine and journaled (the hot path's
//! route is another part of the server), then the server restarts so that
//! replay puts them in the admin store (the server's live feed of routing
//! records to the store is not wired yet).
//! The test proves that:
//! - the matrix has exactly the routes of the OpenAPI document: a route
//!   without a row, or a row without a route, fails the test;
//! - no key, a malformed key, an admin key under another scheme, a revoked
//!   key and an expired key get 401 `unauthorized` on every route;
//! - a role the handler does not let through gets 403 `forbidden`;
//! - a permitted role of tenant B gets 404 `not_found` for a record of A,
//!   never 403 (existence must not leak); a list answers B 200 with B's
//!   records and none of A's, and naming A's account in its filter is 404;
//! - only admins and A's own keys see A's ids, and only admins and A's
//!   buyer, manager and agent keys see its leads' contact PII (and they do);
//! - none of the refused or foreign requests changed anything: every list
//!   an admin can read (keys, sellers, sources, buyers, campaigns with
//!   their money, ledgers, leads with their pipeline, quotes, policies,
//!   commissions, plans, agents, teams, webhooks and deliveries, the audit
//!   log) reads the same afterwards;
//! - a lead list's cursor naming A's lead answers B as an unknown cursor
//!   does (regression: it answered the page before the lead);
//! - then an admin and every permitted role of A get the route's documented
//!   success status. A call that uses a record up (a return, a decline, a
//!   policy from a quote, an approval, a payment, a revocation, a deletion)
//!   gets a fresh record of its own, so the rows do not depend on order.
//!
//! The permissions in [`table`] were read from the handlers (`require`,
//! `require_any`, `scope`, `account`); the test holds the server to them.

use crate::admin_flow::{call, leads, receiver, sell_lead, send, start_admin};
use crate::support::*;
use leadex_admin_api::admin::role_name;
use leadex_admin_api::keys::Role;
use leadex_engine::testing::market;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Tenant A's buyer account.
const A: &str = "acme";
/// Tenant B's buyer account.
const B: &str = "bravo";
/// Tenant A's seller: the seed seller, whose seller API key is `KEY`.
const SELLER_A: &str = "s1";
/// Tenant B's seller.
const SELLER_B: &str = "s2";
/// Callers that get a record of their own where a call uses one up: every
/// caller that may be permitted a buyer-side route.
const FRESH: [&str; 4] = ["admin", "buyer-a", "manager-a", "agent-a"];
/// Routes anyone may call; not in the matrix.
const PUBLIC: [&str; 2] = ["/healthz", "/openapi.json"];
/// Wall-clock bound of every wait for an asynchronous effect.
const WAIT_MS_MAX: u64 = 10_000;
/// Answers longer than this are cut in failure messages.
const SHOWN_CHARS_MAX: usize = 400;

// ------------------------------------------------------------- the table

/// How a permitted role of tenant B is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Foreign {
    /// The path or the body names a record (or the account) of tenant A:
    /// 404, as if it did not exist.
    NotFound,
    /// A list: 200 with the caller's own records only.
    Filtered,
}

/// One route of the matrix.
struct Row {
    method: &'static str,
    /// The path template, as `/openapi.json` spells it.
    path: &'static str,
    /// The non-admin roles the handler lets through (admins always pass).
    roles: &'static [Role],
    foreign: Foreign,
    /// A fixture whose record a successful answer must name: tenant A's
    /// for admins and A's keys, tenant B's for B's keys on a list.
    shows: Option<&'static str>,
    /// Successful answers to admins and A's keys carry the contact of A's
    /// lead.
    pii: bool,
    /// The path parameter and body sent.
    request: fn(&Fixtures, &Caller<'_>) -> Req,
}

impl Row {
    fn shows(mut self, fixture: &'static str) -> Row {
        self.shows = Some(fixture);
        self
    }

    fn pii(mut self) -> Row {
        self.pii = true;
        self
    }
}

fn row(
    method: &'static str,
    path: &'static str,
    roles: &'static [Role],
    foreign: Foreign,
    request: fn(&Fixtures, &Caller<'_>) -> Req,
) -> Row {
    Row {
        method,
        path,
        roles,
        foreign,
        shows: None,
        pii: false,
        request,
    }
}

/// What a row sends.
#[derive(Debug, Default)]
struct Req {
    /// The value of the template's one path parameter.
    param: Option<String>,
    body: Option<Value>,
}

impl Req {
    fn none() -> Req {
        Req::default()
    }

    fn at(param: &str) -> Req {
        Req {
            param: Some(param.to_string()),
            body: None,
        }
    }

    fn body(body: Value) -> Req {
        Req {
            param: None,
            body: Some(body),
        }
    }

    fn with(mut self, body: Value) -> Req {
        self.body = Some(body);
        self
    }
}

/// Who a request is built for.
struct Caller<'a> {
    label: &'a str,
    /// The request is expected to succeed (so it gets a fresh record where
    /// it uses one up).
    succeeds: bool,
}

const ADMIN_ONLY: &[Role] = &[];
const SELLER: &[Role] = &[Role::Seller];
const BUYER: &[Role] = &[Role::Buyer];
const BUYER_MANAGER: &[Role] = &[Role::Buyer, Role::Manager];
const ACCOUNT: &[Role] = &[Role::Buyer, Role::Manager, Role::Agent];

/// The expected permissions, route by route, as read from the handlers.
/// Bodies are valid, and mutations change something visible, so that a
/// refused request that got through shows in the state comparison.
fn table() -> Vec<Row> {
    use Foreign::{Filtered, NotFound};
    vec![
        // API keys: admin keys only (`require(Role::Admin)`).
        row("GET", "/v1/keys", ADMIN_ONLY, Filtered, |_, _| Req::none()),
        row("POST", "/v1/keys", ADMIN_ONLY, NotFound, |_, c| {
            Req::body(
                json!({"name": format!("made by {}", c.label), "role": "agent",
                "tenant": A, "tier": "enterprise"}),
            )
        }),
        row("DELETE", "/v1/keys/{id}", ADMIN_ONLY, NotFound, |f, c| {
            Req::at(f.fresh(c, "key-revoke", "key/buyer-a"))
        }),
        row(
            "POST",
            "/v1/keys/{id}/rotate",
            ADMIN_ONLY,
            NotFound,
            |f, c| {
                Req::at(f.fresh(c, "key-rotate", "key/buyer-a"))
                    .with(json!({"overlap_seconds": 60}))
            },
        ),
        // Sellers: admins manage them; a seller key reads and works its own.
        row("POST", "/v1/sellers", ADMIN_ONLY, NotFound, |_, c| {
            Req::body(json!({"id": format!("seller-by-{}", c.label)}))
        }),
        row("GET", "/v1/sellers", SELLER, Filtered, |_, _| Req::none()).shows("seller"),
        row("GET", "/v1/sellers/{id}", SELLER, NotFound, |f, _| {
            Req::at(f.a("seller"))
        })
        .shows("seller"),
        row("PUT", "/v1/sellers/{id}", ADMIN_ONLY, NotFound, |f, _| {
            Req::at(f.a("seller"))
                .with(json!({"id": f.a("seller"), "name": "renamed by the matrix"}))
        }),
        row("POST", "/v1/sellers/{id}/keys", SELLER, NotFound, |f, _| {
            Req::at(f.a("seller"))
        }),
        row(
            "POST",
            "/v1/sellers/{id}/sources",
            SELLER,
            NotFound,
            |f, c| Req::at(f.a("seller")).with(json!({"id": format!("source-by-{}", c.label)})),
        ),
        row(
            "GET",
            "/v1/sellers/{id}/sources",
            SELLER,
            NotFound,
            |f, _| Req::at(f.a("seller")),
        )
        .shows("source"),
        // Buyer accounts: admins manage them; the account's keys read theirs.
        row("POST", "/v1/buyers", ADMIN_ONLY, NotFound, |_, c| {
            Req::body(json!({"id": format!("buyer-by-{}", c.label)}))
        }),
        row("GET", "/v1/buyers", ACCOUNT, Filtered, |_, _| Req::none()).shows("buyer"),
        row("GET", "/v1/buyers/{id}", ACCOUNT, NotFound, |f, _| {
            Req::at(f.a("buyer"))
        })
        .shows("buyer"),
        row("PUT", "/v1/buyers/{id}", ADMIN_ONLY, NotFound, |f, _| {
            Req::at(f.a("buyer")).with(json!({"id": f.a("buyer"), "name": "renamed by the matrix"}))
        }),
        // Campaigns: the buyer key changes them, the manager reads them,
        // money is the operator's (admin).
        row("POST", "/v1/campaigns", BUYER, NotFound, |_, c| {
            let mut spec = campaign_json(&format!("campaign-by-{}", c.label), A, "CA");
            spec["status"] = json!("paused");
            Req::body(spec)
        }),
        row("GET", "/v1/campaigns", BUYER_MANAGER, Filtered, |_, _| {
            Req::none()
        })
        .shows("campaign"),
        row(
            "GET",
            "/v1/campaigns/{id}",
            BUYER_MANAGER,
            NotFound,
            |f, _| Req::at(f.a("campaign")),
        )
        .shows("campaign"),
        row("PUT", "/v1/campaigns/{id}", BUYER, NotFound, |f, _| {
            let mut spec = f.campaign.clone();
            spec["name"] = json!("renamed by the matrix");
            Req::at(f.a("campaign")).with(spec)
        }),
        row(
            "POST",
            "/v1/campaigns/{id}/pause",
            BUYER,
            NotFound,
            |f, _| Req::at(f.a("campaign")),
        ),
        row(
            "POST",
            "/v1/campaigns/{id}/resume",
            BUYER,
            NotFound,
            |f, _| {
                // A refused resume of a paused campaign would show.
                Req::at(f.a("campaign-paused"))
            },
        ),
        row(
            "POST",
            "/v1/campaigns/{id}/budget",
            ADMIN_ONLY,
            NotFound,
            |f, _| Req::at(f.a("campaign")).with(json!({"top_up_cents": 100})),
        ),
        row(
            "GET",
            "/v1/campaigns/{id}/ledger",
            BUYER_MANAGER,
            NotFound,
            |f, _| Req::at(f.a("campaign")),
        )
        .shows("campaign"),
        // Leads: the account's keys work them; only the buyer key returns.
        row("GET", "/v1/leads", ACCOUNT, Filtered, |_, _| Req::none())
            .shows("lead")
            .pii(),
        row("GET", "/v1/leads/{id}", ACCOUNT, NotFound, |f, _| {
            Req::at(f.a("lead"))
        })
        .shows("lead")
        .pii(),
        row("POST", "/v1/leads/{id}/return", BUYER, NotFound, |f, c| {
            Req::at(f.fresh(c, "return", "lead"))
                .with(json!({"reason": "bad_phone", "note": "returned by the matrix"}))
        }),
        row(
            "POST",
            "/v1/leads/{id}/status",
            ACCOUNT,
            NotFound,
            |f, _| Req::at(f.a("lead-new")).with(json!({"status": "contacted"})),
        ),
        row("POST", "/v1/leads/{id}/notes", ACCOUNT, NotFound, |f, c| {
            Req::at(f.a("lead")).with(json!({"text": format!("note by {}", c.label)}))
        }),
        row(
            "POST",
            "/v1/leads/{id}/attempts",
            ACCOUNT,
            NotFound,
            |f, _| Req::at(f.a("lead")).with(json!({"channel": "phone", "outcome": "no_answer"})),
        ),
        // CRM: the account's keys quote and bind; commissions are the buyer
        // key's and the manager's.
        row("POST", "/v1/quotes", ACCOUNT, NotFound, |f, _| {
            Req::body(json!({"lead_id": f.a("lead"), "carrier": "Acme Mutual",
                "premium_cents": 50_000, "coverage": "50/100/50"}))
        }),
        row("GET", "/v1/quotes", ACCOUNT, Filtered, |_, _| Req::none()).shows("quote"),
        row("GET", "/v1/quotes/{id}", ACCOUNT, NotFound, |f, _| {
            Req::at(f.a("quote"))
        })
        .shows("quote"),
        row(
            "POST",
            "/v1/quotes/{id}/decline",
            ACCOUNT,
            NotFound,
            |f, c| Req::at(f.fresh(c, "decline", "quote-open")),
        ),
        row("POST", "/v1/policies", ACCOUNT, NotFound, |f, c| {
            Req::body(json!({"quote_id": f.fresh(c, "bind", "quote-open"),
                "policy_number": format!("M-{}", c.label), "effective_date": "2026-12-01",
                "agent_id": f.a("agent")}))
        }),
        row("GET", "/v1/policies", ACCOUNT, Filtered, |_, _| Req::none()).shows("policy"),
        row("GET", "/v1/policies/{id}", ACCOUNT, NotFound, |f, _| {
            Req::at(f.a("policy"))
        })
        .shows("policy"),
        row("GET", "/v1/commissions", BUYER_MANAGER, Filtered, |_, _| {
            Req::none()
        })
        .shows("commission"),
        row(
            "POST",
            "/v1/commissions/{id}/approve",
            BUYER_MANAGER,
            NotFound,
            |f, c| Req::at(f.fresh(c, "approve", "commission-pending")),
        ),
        row(
            "POST",
            "/v1/commissions/{id}/pay",
            BUYER_MANAGER,
            NotFound,
            |f, c| Req::at(f.fresh(c, "pay", "commission-approved")),
        ),
        row(
            "GET",
            "/v1/commission-plans/{buyer_id}",
            BUYER_MANAGER,
            NotFound,
            |f, _| Req::at(f.a("buyer")),
        )
        .shows("plan-payee"),
        row(
            "PUT",
            "/v1/commission-plans/{buyer_id}",
            BUYER_MANAGER,
            NotFound,
            |f, _| Req::at(f.a("buyer")).with(plan_json(1_000, f.a("plan-payee"))),
        ),
        // Agents and teams: the buyer key and the manager keep them, the
        // account's agents read them.
        row("POST", "/v1/agents", BUYER_MANAGER, NotFound, |_, c| {
            Req::body(json!({"id": format!("agent-by-{}", c.label), "buyer_id": A,
                "name": "made by the matrix", "capacity": 5}))
        }),
        row("GET", "/v1/agents", ACCOUNT, Filtered, |_, _| Req::none()).shows("agent"),
        row("GET", "/v1/agents/{id}", ACCOUNT, NotFound, |f, _| {
            Req::at(f.a("agent"))
        })
        .shows("agent"),
        row("POST", "/v1/teams", BUYER_MANAGER, NotFound, |_, c| {
            Req::body(json!({"id": format!("team-by-{}", c.label), "buyer_id": A,
                "name": "made by the matrix"}))
        }),
        row("GET", "/v1/teams", ACCOUNT, Filtered, |_, _| Req::none()).shows("team"),
        // Routing: the buyer key and the manager set the agency's policy;
        // the account's keys (agents too) work its assignments.
        row(
            "GET",
            "/v1/agencies/{id}/routing",
            BUYER_MANAGER,
            NotFound,
            |f, _| Req::at(f.a("buyer")),
        )
        .shows("buyer"),
        row(
            "PUT",
            "/v1/agencies/{id}/routing",
            BUYER_MANAGER,
            NotFound,
            |f, _| {
                Req::at(f.a("buyer")).with(json!({"strategy": "least_loaded",
                    "offer_timeout_s": 900, "route_campaigns": [f.a("campaign")]}))
            },
        ),
        row("GET", "/v1/assignments", ACCOUNT, Filtered, |_, _| {
            Req::none()
        })
        .shows("assignment"),
        row("GET", "/v1/assignments/{id}", ACCOUNT, NotFound, |f, _| {
            Req::at(f.a("assignment"))
        })
        .shows("assignment"),
        row(
            "POST",
            "/v1/assignments/{id}/accept",
            ACCOUNT,
            NotFound,
            |f, c| Req::at(f.fresh(c, "accept", "assignment")),
        ),
        row(
            "POST",
            "/v1/assignments/{id}/reject",
            ACCOUNT,
            NotFound,
            |f, c| Req::at(f.fresh(c, "reject", "assignment")),
        ),
        row(
            "POST",
            "/v1/assignments/{id}/close",
            ACCOUNT,
            NotFound,
            |f, c| Req::at(f.fresh(c, "close", "assignment")),
        ),
        // Webhooks: the buyer key and the manager.
        row("POST", "/v1/webhooks", BUYER_MANAGER, NotFound, |f, _| {
            Req::body(json!({"url": f.hook_url, "events": ["lead.returned"], "buyer_id": A}))
        }),
        row("GET", "/v1/webhooks", BUYER_MANAGER, Filtered, |_, _| {
            Req::none()
        })
        .shows("webhook"),
        row(
            "GET",
            "/v1/webhooks/{id}",
            BUYER_MANAGER,
            NotFound,
            |f, _| Req::at(f.a("webhook")),
        )
        .shows("webhook"),
        row(
            "DELETE",
            "/v1/webhooks/{id}",
            BUYER_MANAGER,
            NotFound,
            |f, c| Req::at(f.fresh(c, "unsubscribe", "webhook")),
        ),
        row(
            "GET",
            "/v1/webhooks/{id}/deliveries",
            BUYER_MANAGER,
            NotFound,
            |f, _| Req::at(f.a("webhook")),
        )
        // The `lead.sold` deliveries carry the lead, contact included.
        .shows("webhook")
        .pii(),
        // The audit log: admin keys only.
        row("GET", "/v1/audit", ADMIN_ONLY, Filtered, |_, _| Req::none()),
        // Reports: each caller's own campaigns and sellers; the funnel
        // (every account's figures) for admins only.
        row(
            "GET",
            "/v1/reports/campaigns",
            BUYER_MANAGER,
            Filtered,
            |_, _| Req::none(),
        )
        .shows("campaign"),
        row("GET", "/v1/reports/sellers", SELLER, Filtered, |_, _| {
            Req::none()
        })
        .shows("seller"),
        row("GET", "/v1/reports/funnel", ADMIN_ONLY, Filtered, |_, _| {
            Req::none()
        }),
    ]
}

// ---------------------------------------------------------- the callers

/// What a caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// No working key.
    Nobody,
    Admin,
    /// A tenant key of A (`own`) or of B.
    Tenant {
        role: Role,
        own: bool,
    },
}

struct Principal {
    label: String,
    /// The `Authorization` header sent, if any.
    authorization: Option<String>,
    who: Who,
}

impl Principal {
    /// May see buyer account A's records and its leads' contacts.
    fn sees_account_a(&self) -> bool {
        matches!(
            self.who,
            Who::Admin
                | Who::Tenant {
                    role: Role::Buyer | Role::Manager | Role::Agent,
                    own: true,
                }
        )
    }

    /// May see seller A's records.
    fn sees_seller_a(&self) -> bool {
        matches!(
            self.who,
            Who::Admin
                | Who::Tenant {
                    role: Role::Seller,
                    own: true,
                }
        )
    }
}

/// What a request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// This status and error code.
    Refused(u16, &'static str),
    /// One of the route's documented success statuses.
    Success,
    /// A foreign caller's list: success, with its own records only.
    ForeignList,
}

/// The answer `p` must get on `row`; `names_account_a` when the request
/// asks a list for account A by name (`?buyer_id=acme`).
fn expect(row: &Row, p: &Principal, names_account_a: bool) -> Expect {
    match p.who {
        Who::Nobody => Expect::Refused(401, "unauthorized"),
        Who::Admin => Expect::Success,
        Who::Tenant { role, .. } if !row.roles.contains(&role) => Expect::Refused(403, "forbidden"),
        Who::Tenant { own: true, .. } => Expect::Success,
        Who::Tenant { own: false, .. } if row.foreign == Foreign::Filtered && !names_account_a => {
            Expect::ForeignList
        }
        Who::Tenant { own: false, .. } => Expect::Refused(404, "not_found"),
    }
}

// ------------------------------------------------------------ fixtures

/// The records the rows name, by fixture name (`lead`, `decline/admin`...).
#[derive(Default)]
struct Fixtures {
    a: BTreeMap<String, String>,
    b: BTreeMap<String, String>,
    /// A's campaign as stored, for `PUT /v1/campaigns/{id}`.
    campaign: Value,
    /// The webhook receiver.
    hook_url: String,
    /// Every id of buyer account A's records.
    account_a_ids: BTreeSet<String>,
    /// Seller A and its sources.
    seller_a_ids: BTreeSet<String>,
    /// The contact PII of A's leads (phones, e-mails, the family name).
    account_a_pii: Vec<String>,
    /// The phone of A's lead `lead`.
    lead_phone: String,
}

impl Fixtures {
    fn a(&self, name: &str) -> &str {
        self.a
            .get(name)
            .unwrap_or_else(|| panic!("no fixture {name:?} of tenant A"))
    }

    /// The caller's own `kind/<label>` record when the request is to
    /// succeed, else the shared record `shared` (which a refused request
    /// must leave as it is).
    fn fresh(&self, c: &Caller<'_>, kind: &str, shared: &str) -> &str {
        if c.succeeds {
            self.a(&format!("{kind}/{}", c.label))
        } else {
            self.a(shared)
        }
    }
}

fn campaign_json(id: &str, buyer: &str, state: &str) -> Value {
    json!({
        "id": id, "buyer_id": buyer, "name": id, "vertical": "auto",
        "sale_type": "exclusive", "price_cents": 2500, "budget_cents": 100_000,
        "filters": {"states": [state]}, "dedupe_window_hours": 0,
        "return_window_hours": 168, "return_max_bps": 10_000
    })
}

/// A plan paying the broker (the policy's agent), its manager and an
/// affiliate.
fn plan_json(broker_bps: u32, affiliate: &str) -> Value {
    json!({"rules": [
        {"tier": "broker", "first_year_bps": broker_bps, "renewal_bps": 1000},
        {"tier": "manager", "first_year_bps": 500, "renewal_bps": 500},
        {"tier": "affiliate", "payee": affiliate, "first_year_bps": 300, "renewal_bps": 0}]})
}

/// The admin key that makes the fixtures and reads the state.
struct Root<'a> {
    c: &'a HttpClient,
    admin: SocketAddr,
    key: &'a str,
}

impl Root<'_> {
    /// Calls as the root admin; panics unless the status is `want`.
    async fn must(&self, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let (status, v) = call(self.c, self.admin, method, path, self.key, body).await;
        assert_eq!(status, want, "fixture {method} {path}: {v}");
        v
    }

    async fn get(&self, path: &str) -> Value {
        self.must("GET", path, None, 200).await
    }

    /// A key of `role` (bound to `tenant`), tier enterprise so the rate
    /// limiter stays out of the way: (id, secret).
    async fn key(&self, name: &str, role: Role, tenant: Option<&str>) -> (String, String) {
        let k = self
            .must(
                "POST",
                "/v1/keys",
                Some(
                    json!({"name": name, "role": role_name(role), "tenant": tenant,
                    "tier": "enterprise"}),
                ),
                201,
            )
            .await;
        (str_of(&k["key"]["id"]), str_of(&k["secret"]))
    }

    async fn webhook(&self, buyer: &str, url: &str, events: &[&str]) -> String {
        let w = self
            .must(
                "POST",
                "/v1/webhooks",
                Some(json!({"url": url, "events": events, "buyer_id": buyer})),
                201,
            )
            .await;
        str_of(&w["webhook"]["id"])
    }

    async fn quote(&self, lead_id: &str) -> String {
        let q = self
            .must(
                "POST",
                "/v1/quotes",
                Some(json!({"lead_id": lead_id, "carrier": "Acme Mutual",
                    "premium_cents": 120_000, "coverage": "100/300/100"})),
                201,
            )
            .await;
        str_of(&q["id"])
    }

    /// Binds `quote_id`: the policy's id and its commission ids.
    async fn bind(&self, quote_id: &str, agent_id: &str) -> (String, Vec<String>) {
        let p = self
            .must(
                "POST",
                "/v1/policies",
                Some(
                    json!({"quote_id": quote_id, "policy_number": format!("P-{quote_id}"),
                    "effective_date": "2026-12-01", "agent_id": agent_id}),
                ),
                201,
            )
            .await;
        let commissions = p["commissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| str_of(&c["id"]))
            .collect();
        (str_of(&p["policy"]["id"]), commissions)
    }
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("a string, not {v}"))
        .to_owned()
}

/// A lead of `buyer` with its own contact: `(post body, PII strings)`.
fn lead_of(buyer: &str, i: usize, state: &str, zip: &str) -> (Value, Vec<String>) {
    let family = format!("{buyer}-family");
    let (phone, email) = (phone(i), format!("lead{i}@{buyer}.example"));
    let lead = json!({
        "vertical": "auto", "zip": zip, "state": state, "age": 34, "vehicles": 2,
        "contact": {"first_name": "Pat", "last_name": family, "phone": phone, "email": email}
    });
    (lead, vec![phone, email, family])
}

/// Sells a lead of `buyer` (A's in CA, B's in TX, where only that buyer's
/// campaign bids) as seller A: its id and its contact PII.
async fn sell_to(
    root: &Root<'_>,
    seller_api: SocketAddr,
    buyer: &str,
    i: usize,
) -> (String, Vec<String>) {
    let (state, zip) = if buyer == A {
        ("CA", "90210")
    } else {
        ("TX", "75201")
    };
    let (lead, pii) = lead_of(buyer, i, state, zip);
    let sold = sell_lead(root.c, seller_api, lead).await;
    (str_of(&sold["lead_id"]), pii)
}

fn put(map: &mut BTreeMap<String, String>, name: &str, id: &str) {
    map.insert(name.to_string(), id.to_string());
}

/// Makes tenant A's and B's records and the callers' keys.
async fn fixtures(
    root: &Root<'_>,
    seller_api: SocketAddr,
    hook_url: String,
) -> (Fixtures, Vec<Principal>) {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());

    // Marketplace.
    root.must(
        "POST",
        "/v1/sellers",
        Some(json!({"id": SELLER_B, "name": "Seller B"})),
        201,
    )
    .await;
    for (map, seller, source) in [
        (&mut a, SELLER_A, "source-a"),
        (&mut b, SELLER_B, "source-b"),
    ] {
        root.must(
            "POST",
            &format!("/v1/sellers/{seller}/sources"),
            Some(json!({"id": source})),
            200,
        )
        .await;
        put(map, "seller", seller);
        put(map, "source", source);
    }
    let mut campaign = Value::Null;
    for (map, buyer, id, state) in [
        (&mut a, A, "acme-auto", "CA"),
        (&mut b, B, "bravo-auto", "TX"),
    ] {
        root.must(
            "POST",
            "/v1/buyers",
            Some(json!({"id": buyer, "name": buyer})),
            201,
        )
        .await;
        let made = root
            .must(
                "POST",
                "/v1/campaigns",
                Some(campaign_json(id, buyer, state)),
                201,
            )
            .await;
        if buyer == A {
            campaign = made["campaign"].clone();
        }
        put(map, "buyer", buyer);
        put(map, "campaign", id);
    }
    // A paused campaign of A, for resume.
    let mut paused = campaign_json("acme-paused", A, "CA");
    paused["status"] = json!("paused");
    root.must("POST", "/v1/campaigns", Some(paused), 201).await;
    put(&mut a, "campaign-paused", "acme-paused");

    // Keys: an admin, every role of both tenants, and keys that no longer
    // work.
    let mut principals = vec![
        Principal {
            label: "no key".into(),
            authorization: None,
            who: Who::Nobody,
        },
        Principal {
            label: "malformed key".into(),
            authorization: Some("Bearer ldx_not-a-key".into()),
            who: Who::Nobody,
        },
    ];
    let (_, admin_secret) = root.key("matrix admin", Role::Admin, None).await;
    principals.push(Principal {
        label: "admin key as Basic".into(),
        authorization: Some(format!("Basic {admin_secret}")),
        who: Who::Nobody,
    });
    let (revoked, revoked_secret) = root.key("revoked", Role::Buyer, Some(A)).await;
    root.must("DELETE", &format!("/v1/keys/{revoked}"), None, 204)
        .await;
    let (expired, expired_secret) = root.key("expired", Role::Buyer, Some(A)).await;
    root.must(
        "POST",
        &format!("/v1/keys/{expired}/rotate"),
        Some(json!({"overlap_seconds": 0})),
        201,
    )
    .await;
    for (label, secret) in [
        ("revoked key", revoked_secret),
        ("expired key", expired_secret),
    ] {
        principals.push(Principal {
            label: label.into(),
            authorization: Some(format!("Bearer {secret}")),
            who: Who::Nobody,
        });
    }
    principals.push(Principal {
        label: "admin".into(),
        authorization: Some(format!("Bearer {admin_secret}")),
        who: Who::Admin,
    });
    for (own, map, buyer, seller) in [(true, &mut a, A, SELLER_A), (false, &mut b, B, SELLER_B)] {
        for role in [Role::Seller, Role::Buyer, Role::Manager, Role::Agent] {
            let label = format!("{}-{}", role_name(role), if own { "a" } else { "b" });
            let tenant = if role == Role::Seller { seller } else { buyer };
            let (id, secret) = root.key(&label, role, Some(tenant)).await;
            put(map, &format!("key/{label}"), &id);
            principals.push(Principal {
                label,
                authorization: Some(format!("Bearer {secret}")),
                who: Who::Tenant { role, own },
            });
        }
    }
    for label in FRESH {
        for kind in ["key-revoke", "key-rotate"] {
            let (id, _) = root
                .key(&format!("{kind} {label}"), Role::Agent, Some(A))
                .await;
            put(&mut a, &format!("{kind}/{label}"), &id);
        }
    }

    // Agents (a1 reports to m1, b1 to bm1), teams, commission plans.
    let agent = |id: &str, buyer: &str, manager: Option<&str>| {
        json!({"id": id, "buyer_id": buyer, "name": id, "capacity": 10,
            "licences": [{"state": "CA", "line": "property"}], "manager_id": manager})
    };
    for body in [
        agent("m1", A, None),
        agent("a1", A, Some("m1")),
        agent("bm1", B, None),
        agent("b1", B, Some("bm1")),
    ] {
        root.must("POST", "/v1/agents", Some(body), 200).await;
    }
    put(&mut a, "agent", "a1");
    put(&mut b, "agent", "b1");
    for (map, buyer, team, payee) in [
        (&mut a, A, "team-a", "partner-a"),
        (&mut b, B, "team-b", "partner-b"),
    ] {
        root.must(
            "POST",
            "/v1/teams",
            Some(json!({"id": team, "buyer_id": buyer, "name": team})),
            200,
        )
        .await;
        root.must(
            "PUT",
            &format!("/v1/commission-plans/{buyer}"),
            Some(plan_json(1_500, payee)),
            200,
        )
        .await;
        put(map, "team", team);
        put(map, "plan-payee", payee);
    }

    // Webhooks, before the sales so that the sales are delivered.
    let w = root
        .webhook(A, &hook_url, &["lead.sold", "policy.created"])
        .await;
    put(&mut a, "webhook", &w);
    let w = root.webhook(B, &hook_url, &["lead.sold"]).await;
    put(&mut b, "webhook", &w);
    for label in FRESH {
        let w = root.webhook(A, &hook_url, &["lead.returned"]).await;
        put(&mut a, &format!("unsubscribe/{label}"), &w);
    }

    // Sales over the seller API; B's first, so that B has a lead older
    // than A's (see `Matrix::foreign_cursors`).
    let (b_lead, _) = sell_to(root, seller_api, B, 100).await;
    put(&mut b, "lead", &b_lead);
    let mut account_a_pii = Vec::new();
    let mut lead_phone = String::new();
    let names = ["lead".to_string(), "lead-new".to_string()]
        .into_iter()
        .chain(FRESH.iter().map(|label| format!("return/{label}")));
    for (i, name) in names.enumerate() {
        let (id, pii) = sell_to(root, seller_api, A, i + 1).await;
        if name == "lead" {
            lead_phone = pii[0].clone();
        }
        account_a_pii.extend(pii);
        put(&mut a, &name, &id);
    }
    let sold = 3 + FRESH.len();
    let page = leads(root.c, root.admin, root.key, sold).await;
    assert_eq!(
        page["leads"].as_array().unwrap().len(),
        sold,
        "the sale feed put every sale in the admin store within the wait: {page}"
    );

    // Quotes, policies, commissions.
    let lead = a["lead"].clone();
    let quote = root.quote(&lead).await;
    put(&mut a, "quote", &quote);
    let (policy, mut commissions) = root.bind(&quote, "a1").await;
    put(&mut a, "policy", &policy);
    let open = root.quote(&lead).await;
    put(&mut a, "quote-open", &open);
    for label in FRESH {
        for kind in ["decline", "bind"] {
            let q = root.quote(&lead).await;
            put(&mut a, &format!("{kind}/{label}"), &q);
        }
    }
    // Each policy gives three lines (broker, manager, affiliate).
    while commissions.len() < 2 + 2 * FRESH.len() {
        let q = root.quote(&lead).await;
        commissions.extend(root.bind(&q, "a1").await.1);
    }
    let mut lines = commissions.into_iter();
    let pending = lines.next().unwrap();
    put(&mut a, "commission", &pending);
    put(&mut a, "commission-pending", &pending);
    let mut to_approve = vec![lines.next().unwrap()];
    put(&mut a, "commission-approved", &to_approve[0]);
    for label in FRESH {
        put(&mut a, &format!("approve/{label}"), &lines.next().unwrap());
        let to_pay = lines.next().unwrap();
        put(&mut a, &format!("pay/{label}"), &to_pay);
        to_approve.push(to_pay);
    }
    for id in to_approve {
        root.must("POST", &format!("/v1/commissions/{id}/approve"), None, 200)
            .await;
    }
    let b_quote = root.quote(&b_lead).await;
    put(&mut b, "quote", &b_quote);
    let (b_policy, b_commissions) = root.bind(&b_quote, "b1").await;
    put(&mut b, "policy", &b_policy);
    put(&mut b, "commission", &b_commissions[0]);

    account_a_pii.sort();
    account_a_pii.dedup();
    let f = Fixtures {
        a,
        b,
        campaign,
        hook_url,
        account_a_ids: account_ids(root, A).await,
        seller_a_ids: [SELLER_A, "source-a"].map(String::from).into(),
        account_a_pii,
        lead_phone,
    };
    (f, principals)
}

/// Assignments of both accounts, offered to their agents: A's shared one
/// (`assignment`, which refused calls must leave offered) and one per
/// permitted caller and transition; B's own.
async fn assignments(server: &leadex::run::Running, f: &mut Fixtures) {
    use crate::admin_routing::{lead, route};
    // The fixtures' agents are licensed for property in CA: home leads.
    let home = || lead(leadex_engine::lead::Vertical::Home);
    let id = route(server, A, home(), "matrix").await;
    put(&mut f.a, "assignment", &id);
    for label in FRESH {
        for kind in ["accept", "reject", "close"] {
            let id = route(server, A, home(), &format!("{kind} {label}")).await;
            put(&mut f.a, &format!("{kind}/{label}"), &id);
        }
    }
    let id = route(server, B, home(), "matrix").await;
    put(&mut f.b, "assignment", &id);
}

/// Every id of `buyer`'s records, as an admin reads them.
async fn account_ids(root: &Root<'_>, buyer: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::from([buyer.to_string()]);
    let mut collect = |v: &Value| {
        walk(v, &mut |key, value| {
            if matches!(key, Some("id" | "lead_id")) {
                if let Some(s) = value.as_str() {
                    ids.insert(s.to_string());
                }
            }
        })
    };
    for list in [
        "campaigns",
        "leads",
        "quotes",
        "policies",
        "commissions",
        "agents",
        "teams",
        "webhooks",
        "assignments",
    ] {
        collect(
            &root
                .get(&format!("/v1/{list}?buyer_id={buyer}&limit=1000"))
                .await,
        );
    }
    let campaigns = root.get(&format!("/v1/campaigns?buyer_id={buyer}")).await;
    for c in campaigns.as_array().unwrap() {
        let id = str_of(&c["campaign"]["id"]);
        collect(
            &root
                .get(&format!("/v1/campaigns/{id}/ledger?limit=1000"))
                .await,
        );
    }
    let keys = root.get("/v1/keys").await;
    for k in keys.as_array().unwrap() {
        if k["tenant"] == buyer {
            collect(k);
        }
    }
    ids
}

/// Calls `visit(key, value)` on every value in `v` (`key` is the name it
/// has in its object, if any).
fn walk(v: &Value, visit: &mut impl FnMut(Option<&str>, &Value)) {
    fn go(key: Option<&str>, v: &Value, visit: &mut impl FnMut(Option<&str>, &Value)) {
        visit(key, v);
        match v {
            Value::Array(items) => items.iter().for_each(|i| go(None, i, visit)),
            Value::Object(fields) => fields.iter().for_each(|(k, f)| go(Some(k), f, visit)),
            _ => {}
        }
    }
    go(None, v, visit);
}

/// Every string value in `v`, and in the JSON objects strings carry (a
/// webhook delivery's body).
fn strings(v: &Value) -> BTreeSet<String> {
    let (mut all, mut nested) = (BTreeSet::new(), Vec::new());
    walk(v, &mut |_, value| {
        if let Some(s) = value.as_str() {
            all.insert(s.to_string());
            if let Some(inner) = s
                .starts_with('{')
                .then(|| serde_json::from_str::<Value>(s).ok())
                .flatten()
            {
                nested.push(inner);
            }
        }
    });
    for inner in &nested {
        all.extend(strings(inner));
    }
    all
}

// ---------------------------------------------------------------- state

/// Waits until no webhook delivery is pending, so the state is still.
async fn deliveries_settle(root: &Root<'_>) {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        let hooks = root.get("/v1/webhooks").await;
        if hooks.as_array().unwrap().iter().all(|w| w["pending"] == 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still pending: {hooks}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything an admin can read, by path.
async fn state(root: &Root<'_>) -> BTreeMap<String, Value> {
    let mut paths: Vec<String> = [
        "/v1/keys",
        "/v1/sellers",
        "/v1/buyers",
        "/v1/campaigns",
        "/v1/leads?limit=1000",
        "/v1/quotes?limit=1000",
        "/v1/policies?limit=1000",
        "/v1/commissions?limit=1000",
        "/v1/agents",
        "/v1/teams",
        "/v1/webhooks",
        "/v1/audit?limit=1000",
        "/v1/assignments?limit=1000",
    ]
    .map(String::from)
    .into();
    for seller in [SELLER_A, SELLER_B] {
        paths.push(format!("/v1/sellers/{seller}/sources"));
    }
    for buyer in [A, B] {
        paths.push(format!("/v1/commission-plans/{buyer}"));
        paths.push(format!("/v1/agencies/{buyer}/routing"));
    }
    let mut all = BTreeMap::new();
    for path in paths {
        let mut v = root.get(&path).await;
        if path == "/v1/campaigns" {
            for c in v.as_array_mut().unwrap() {
                let id = str_of(&c["campaign"]["id"]);
                let ledger = root
                    .get(&format!("/v1/campaigns/{id}/ledger?limit=1000"))
                    .await;
                all.insert(format!("/v1/campaigns/{id}/ledger"), ledger);
                // Cap use is per hour, day...: it changes when the clock
                // crosses a period, not because of a request.
                c["live"].as_object_mut().unwrap().remove("cap_use");
            }
        }
        if path == "/v1/webhooks" {
            for w in v.as_array().unwrap() {
                let id = str_of(&w["id"]);
                let log = root
                    .get(&format!("/v1/webhooks/{id}/deliveries?limit=1000"))
                    .await;
                all.insert(format!("/v1/webhooks/{id}/deliveries"), log);
            }
        }
        all.insert(path, v);
    }
    all
}

/// The first place where `after` differs from `before` (`at` is the JSON
/// path so far), or `None` when they are equal.
fn difference(at: &str, before: &Value, after: &Value) -> Option<String> {
    if before == after {
        return None;
    }
    let inner = match (before, after) {
        (Value::Object(b), Value::Object(a)) => b.keys().chain(a.keys()).find_map(|key| {
            let (b, a) = (b.get(key), a.get(key));
            match (b, a) {
                (Some(b), Some(a)) => difference(&format!("{at}.{key}"), b, a),
                _ => Some(format!("{at}.{key}: before {b:?}, after {a:?}")),
            }
        }),
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => b
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (b, a))| difference(&format!("{at}[{i}]"), b, a)),
        (Value::Array(b), Value::Array(a)) => {
            let added: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
            let removed: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
            Some(format!(
                "{at}: {} items before, {} after; added {}; removed {}",
                b.len(),
                a.len(),
                cut(&json!(added).to_string()),
                cut(&json!(removed).to_string())
            ))
        }
        _ => None,
    };
    inner.or_else(|| {
        Some(format!(
            "{at}: before {}, after {}",
            cut(&before.to_string()),
            cut(&after.to_string())
        ))
    })
}

// ---------------------------------------------------------------- calls

/// The route's documented success statuses and whether it filters by
/// account, from `/openapi.json`.
struct Operation {
    success: BTreeSet<u16>,
    account_filter: bool,
}

fn operations(doc: &Value) -> BTreeMap<(String, String), Operation> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths in /openapi.json") {
        if PUBLIC.contains(&path.as_str()) {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let success = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .filter_map(|code| code.parse::<u16>().ok())
                .filter(|code| (200..300).contains(code))
                .collect();
            let account_filter = op["parameters"].as_array().is_some_and(|params| {
                params
                    .iter()
                    .any(|p| p["in"] == "query" && p["name"] == "buyer_id")
            });
            ops.insert(
                (method.to_uppercase(), path.clone()),
                Operation {
                    success,
                    account_filter,
                },
            );
        }
    }
    ops
}

/// `template` with its one `{parameter}` replaced by `param`.
fn fill(template: &str, param: Option<&str>) -> String {
    match (template.find('{'), param) {
        (Some(open), Some(value)) => {
            let close = open + template[open..].find('}').unwrap();
            format!("{}{value}{}", &template[..open], &template[close + 1..])
        }
        (None, None) => template.to_string(),
        _ => panic!("{template}: a row gives a path parameter exactly when its template has one"),
    }
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS_MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// An answer's body, parsed and as text, and every string value in it.
struct Answer {
    body: Value,
    text: String,
    seen: BTreeSet<String>,
}

/// Runs rows and keeps every mismatch.
struct Matrix<'a> {
    c: &'a HttpClient,
    admin: SocketAddr,
    f: &'a Fixtures,
    ops: &'a BTreeMap<(String, String), Operation>,
    failures: Vec<String>,
    requests: usize,
}

impl Matrix<'_> {
    /// Every call of `rows` × `principals` (and of each list's
    /// `?buyer_id=acme` variant) whose expectation `pick` takes.
    async fn run(&mut self, rows: &[&Row], principals: &[Principal], pick: fn(Expect) -> bool) {
        for row in rows {
            let op = &self.ops[&(row.method.to_string(), row.path.to_string())];
            for p in principals {
                for names_account_a in [false, true] {
                    if names_account_a && !op.account_filter {
                        continue;
                    }
                    let want = expect(row, p, names_account_a);
                    if pick(want) {
                        self.call(row, op, p, names_account_a, want).await;
                    }
                }
            }
        }
    }

    async fn call(
        &mut self,
        row: &Row,
        op: &Operation,
        p: &Principal,
        names_account_a: bool,
        want: Expect,
    ) {
        let f = self.f;
        let req = (row.request)(
            f,
            &Caller {
                label: &p.label,
                succeeds: want == Expect::Success,
            },
        );
        let mut path = fill(row.path, req.param.as_deref());
        if names_account_a {
            path.push_str(&format!("?buyer_id={A}"));
        }
        let (status, body, text) = send(
            self.c,
            self.admin,
            row.method,
            &path,
            p.authorization.as_deref(),
            req.body.as_ref(),
        )
        .await;
        self.requests += 1;
        let answer = Answer {
            seen: strings(&body),
            body,
            text,
        };

        let mut wrong = Vec::new();
        let got_expected = match want {
            Expect::Refused(s, code) => status == s && answer.body["error"]["code"] == code,
            Expect::Success | Expect::ForeignList => op.success.contains(&status),
        };
        if !got_expected {
            wrong.push(match want {
                Expect::Refused(s, code) => format!("expected {s} {code}"),
                Expect::Success | Expect::ForeignList => {
                    format!("expected one of {:?}", op.success)
                }
            });
        }
        wrong.extend(self.leaks(p, &answer));
        if got_expected {
            wrong.extend(self.missing(row, p, names_account_a, want, &answer));
        }
        if !wrong.is_empty() {
            self.failures.push(format!(
                "{} {path} as {}: {}; got {status} {}",
                row.method,
                p.label,
                wrong.join("; "),
                cut(&answer.text)
            ));
        }
    }

    /// What `answer` shows that `p` may not see.
    fn leaks(&self, p: &Principal, answer: &Answer) -> Vec<String> {
        let f = self.f;
        let mut wrong = Vec::new();
        if !p.sees_account_a() {
            let ids: Vec<_> = f.account_a_ids.intersection(&answer.seen).collect();
            if !ids.is_empty() {
                wrong.push(format!("shows account A's ids {ids:?}"));
            }
            let pii: Vec<_> = f
                .account_a_pii
                .iter()
                .filter(|s| answer.text.contains(s.as_str()))
                .collect();
            if !pii.is_empty() {
                wrong.push(format!("shows the contact PII of A's leads {pii:?}"));
            }
        }
        if !p.sees_seller_a() {
            let ids: Vec<_> = f.seller_a_ids.intersection(&answer.seen).collect();
            if !ids.is_empty() {
                wrong.push(format!("shows seller A's ids {ids:?}"));
            }
        }
        wrong
    }

    /// What a successful `answer` lacks (or shows past its filter).
    fn missing(
        &self,
        row: &Row,
        p: &Principal,
        names_account_a: bool,
        want: Expect,
        answer: &Answer,
    ) -> Vec<String> {
        let f = self.f;
        let mut wrong = Vec::new();
        match want {
            Expect::Refused(..) => {}
            Expect::Success => {
                if let Some(name) = row.shows {
                    if !answer.seen.contains(f.a(name)) {
                        wrong.push(format!("does not show A's {name} {}", f.a(name)));
                    }
                    match f.b.get(name) {
                        Some(theirs) if names_account_a && answer.seen.contains(theirs) => {
                            wrong.push(format!("filtered on A, shows B's {name} {theirs}"));
                        }
                        _ => {}
                    }
                }
                if row.pii && p.sees_account_a() && !answer.text.contains(&f.lead_phone) {
                    wrong.push("does not show the contact of A's lead".into());
                }
            }
            Expect::ForeignList => {
                if let Some(own) = row.shows.and_then(|name| f.b.get(name)) {
                    if !answer.seen.contains(own) {
                        wrong.push(format!("does not show the caller's own record {own}"));
                    }
                }
            }
        }
        wrong
    }

    /// Regression: a lead list's cursor (`before`) naming a lead the caller
    /// cannot see answered the page before that lead, where an unknown id
    /// answers an empty page, so a foreign account could tell which lead
    /// ids exist (and, ids being sequential, count a competitor's sales).
    /// It must answer exactly as an unknown id does.
    async fn foreign_cursors(&mut self, principals: &[Principal]) {
        let unknown_id = format!("l_{}", "0".repeat(32));
        for p in principals {
            let foreign_reader = matches!(
                p.who,
                Who::Tenant {
                    role: Role::Buyer | Role::Manager | Role::Agent,
                    own: false,
                }
            );
            if !foreign_reader {
                continue;
            }
            let authorization = p.authorization.as_deref();
            let leads_before = |cursor: &str| format!("/v1/leads?before={cursor}");
            let path = leads_before(self.f.a("lead"));
            let foreign = send(self.c, self.admin, "GET", &path, authorization, None).await;
            let path = leads_before(&unknown_id);
            let unknown = send(self.c, self.admin, "GET", &path, authorization, None).await;
            self.requests += 2;
            if (foreign.0, &foreign.1) != (unknown.0, &unknown.1) {
                self.failures.push(format!(
                    "GET /v1/leads?before=<A's lead> as {}: expected what an unknown cursor gets, {} {}; got {} {}",
                    p.label,
                    unknown.0,
                    cut(&unknown.2),
                    foreign.0,
                    cut(&foreign.2)
                ));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_and_tenant_as_the_permission_table_says() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = start_admin(dir.path(), market(&[], vec![])).await;
    let root_key = server.first_admin_key.clone().expect("first admin key");
    let c = client();
    let root = Root {
        c: &c,
        admin: server.admin_addr,
        key: &root_key,
    };
    let (hook_addr, _received) = receiver().await;
    let (mut f, principals) =
        fixtures(&root, server.addr, format!("http://{hook_addr}/hook")).await;
    // Assignments: routed by the engine and journaled, as the server's
    // routing will; the server does not feed its routing records to the
    // admin store yet, so a restart replays them into it.
    assignments(&server, &mut f).await;
    server.shutdown().await.unwrap();
    let server = start_admin(dir.path(), market(&[], vec![])).await;
    let root = Root {
        c: &c,
        admin: server.admin_addr,
        key: &root_key,
    };
    f.account_a_ids.extend(account_ids(&root, A).await);
    let setup_ms = started.elapsed().as_millis();

    // The routes are the server's own.
    let mut failures = Vec::new();
    for public in PUBLIC {
        let (status, _, text) = send(&c, server.admin_addr, "GET", public, None, None).await;
        if status != 200 {
            failures.push(format!(
                "GET {public} without a key: expected 200; got {status} {}",
                cut(&text)
            ));
        }
    }
    let (_, doc, _) = send(&c, server.admin_addr, "GET", "/openapi.json", None, None).await;
    let ops = operations(&doc);
    let table = table();
    let mut rows = Vec::new();
    let mut tabled = BTreeSet::new();
    for row in &table {
        let key = (row.method.to_string(), row.path.to_string());
        if !tabled.insert(key.clone()) {
            failures.push(format!(
                "{} {} has two rows in the matrix",
                row.method, row.path
            ));
        } else if !ops.contains_key(&key) {
            failures.push(format!(
                "{} {} has a row in the matrix but is not in /openapi.json: remove the row",
                row.method, row.path
            ));
        } else {
            rows.push(row);
        }
    }
    for (method, path) in ops.keys() {
        if !tabled.contains(&(method.clone(), path.clone())) {
            failures.push(format!(
                "{method} {path} is in /openapi.json but has no row in the matrix: add one"
            ));
        }
    }

    let mut matrix = Matrix {
        c: &c,
        admin: server.admin_addr,
        f: &f,
        ops: &ops,
        failures,
        requests: 0,
    };
    // Refused and foreign calls first; they must change nothing.
    deliveries_settle(&root).await;
    let before = state(&root).await;
    matrix
        .run(&rows, &principals, |want| want != Expect::Success)
        .await;
    matrix.foreign_cursors(&principals).await;
    let refused = matrix.requests;
    let after = state(&root).await;
    for (path, was) in &before {
        let now = after.get(path).unwrap_or(&Value::Null);
        if let Some(change) = difference("", was, now) {
            matrix.failures.push(format!(
                "refused or foreign calls changed GET {path}: {change}"
            ));
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        matrix.failures.push(format!(
            "refused or foreign calls made GET {path}: {}",
            cut(&after[path].to_string())
        ));
    }
    // Then every permitted call.
    matrix
        .run(&rows, &principals, |want| want == Expect::Success)
        .await;
    let (requests, failures) = (matrix.requests, matrix.failures);
    let matrix_ms = started.elapsed().as_millis() - setup_ms;
    server.shutdown().await.unwrap();

    eprintln!(
        "authorization matrix: {} routes × {} callers: {requests} requests ({refused} refused or foreign, {} permitted) in {matrix_ms} ms after {setup_ms} ms of fixtures",
        rows.len(),
        principals.len(),
        requests - refused
    );
    assert!(
        failures.is_empty(),
        "{} of {requests} matrix checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
