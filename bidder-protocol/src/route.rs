//! `POST /v1/route`: route a lead to an agent of an agency. The request
//! names the agency (optional for a buyer or manager key, whose account it
//! is) and the lead as routing sees it (no PII); the answer is the
//! assignment and the ranked candidates with each factor's contribution.

use crate::error::{ErrorCode, ProtocolError};
use crate::request_prechecks;
use leadex_engine::geo::state_of_zip;
use leadex_engine::lead::{UsState, Vertical, Zip};
use leadex_engine::routing::assign::{AssignmentId, RouteLead};
use leadex_engine::routing::{EXCLUDED_REASONS, FACTORS};
use leadex_engine::LeadId;
use serde::{Deserialize, Serialize};

/// A parsed `POST /v1/route` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequestBody {
    /// The agency; `None`: the key's own account.
    pub agency_id: Option<String>,
    /// The lead.
    pub lead: RouteLead,
    /// The exchange's lead id, when it sold the lead.
    pub lead_id: Option<LeadId>,
    /// The caller's reference (1 to 128 printable characters).
    pub reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBody {
    agency_id: Option<String>,
    lead: Option<RawLead>,
    lead_id: Option<String>,
    reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLead {
    vertical: Option<String>,
    state: Option<String>,
    zip: Option<String>,
    current_carrier: Option<String>,
    language: Option<String>,
    score_tier: Option<u8>,
    referring_agent: Option<String>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidField, message).with_field(field)
}

fn id_like(field: &'static str, value: &str) -> Result<(), ProtocolError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{field} must be 1 to 64 of A-Z a-z 0-9 - _ ."),
        ))
    }
}

/// Parses and validates a `POST /v1/route` body.
pub fn parse_route(body: &[u8]) -> Result<RouteRequestBody, ProtocolError> {
    request_prechecks(body)?;
    let raw: RawBody = serde_json::from_slice(body).map_err(|e| {
        let message = e.to_string();
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
            .map(str::to_string);
        match unknown {
            Some(field) => {
                ProtocolError::new(ErrorCode::UnknownField, format!("unknown field {field}"))
                    .with_field(field)
            }
            None if e.is_data() => ProtocolError::new(ErrorCode::InvalidField, message),
            None => ProtocolError::new(
                ErrorCode::InvalidJson,
                format!("the body is not valid JSON: {message}"),
            ),
        }
    })?;
    if let Some(a) = &raw.agency_id {
        id_like("agency_id", a)?;
    }
    let lead = raw.lead.ok_or_else(|| ProtocolError::missing("lead"))?;
    let vertical = lead
        .vertical
        .as_deref()
        .ok_or_else(|| ProtocolError::missing("lead.vertical"))?;
    let vertical = Vertical::parse(vertical).ok_or_else(|| {
        invalid(
            "lead.vertical",
            "lead.vertical is not a vertical the exchange trades",
        )
    })?;
    let zip = lead
        .zip
        .as_deref()
        .ok_or_else(|| ProtocolError::missing("lead.zip"))?;
    let zip = Zip::parse(zip).ok_or_else(|| invalid("lead.zip", "lead.zip must be 5 digits"))?;
    let state = match lead.state.as_deref() {
        Some(s) => UsState::parse(s)
            .ok_or_else(|| invalid("lead.state", "lead.state is not a US state code"))?,
        None => state_of_zip(zip)
            .ok_or_else(|| invalid("lead.zip", "lead.zip is not in a traded state"))?,
    };
    if let Some(z) = state_of_zip(zip) {
        if z != state {
            return Err(invalid(
                "lead.state",
                format!(
                    "state {} disagrees with zip {zip}, which is in {}",
                    state.as_str(),
                    z.as_str()
                ),
            ));
        }
    }
    let score_tier = lead.score_tier.unwrap_or(0);
    if score_tier > 3 {
        return Err(invalid("lead.score_tier", "lead.score_tier must be 0 to 3"));
    }
    if let Some(c) = &lead.current_carrier {
        if c.trim().is_empty() || c.len() > 100 {
            return Err(invalid(
                "lead.current_carrier",
                "lead.current_carrier must be 1 to 100 characters",
            ));
        }
    }
    if let Some(l) = &lead.language {
        if l.len() != 2 || !l.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(invalid(
                "lead.language",
                "lead.language must be a two-letter ISO 639-1 code",
            ));
        }
    }
    if let Some(r) = &lead.referring_agent {
        id_like("lead.referring_agent", r)?;
    }
    let lead_id = match raw.lead_id.as_deref() {
        None => None,
        Some(s) => {
            Some(LeadId::parse(s).ok_or_else(|| invalid("lead_id", "lead_id is not a lead id"))?)
        }
    };
    if let Some(r) = &raw.reference {
        if r.is_empty() || r.chars().count() > 128 || r.chars().any(char::is_control) {
            return Err(invalid(
                "reference",
                "reference must be 1 to 128 printable characters",
            ));
        }
    }
    Ok(RouteRequestBody {
        agency_id: raw.agency_id,
        lead: RouteLead {
            vertical,
            state,
            zip,
            current_carrier: lead.current_carrier.map(|c| c.trim().to_lowercase()),
            language: lead.language.map(|l| l.to_ascii_lowercase()),
            score_tier,
            referring_agent: lead.referring_agent,
        },
        lead_id,
        reference: raw.reference,
    })
}

/// The `excluded` names, in [`leadex_engine::routing::Excluded`] order.
pub const EXCLUDED_NAMES: [&str; EXCLUDED_REASONS] = [
    "inactive",
    "not_licensed",
    "outside_schedule",
    "at_capacity",
    "captive_of_current_carrier",
    "already_offered",
];

/// One ranked candidate of the answer.
#[derive(Debug, Clone, Serialize)]
pub struct WireCandidate<'a> {
    /// Agent id.
    pub agent_id: &'a str,
    /// Sum of the factors.
    pub score: i64,
    /// Each factor's contribution (weight × value), by name.
    pub factors: std::collections::BTreeMap<&'static str, i64>,
    /// Open assignments when scored.
    pub open: u32,
}

impl<'a> WireCandidate<'a> {
    /// A candidate with its factors named in [`FACTORS`] order.
    pub fn new(agent_id: &'a str, score: i64, factors: &[i64; FACTORS.len()], open: u32) -> Self {
        WireCandidate {
            agent_id,
            score,
            factors: FACTORS
                .iter()
                .copied()
                .zip(factors.iter().copied())
                .collect(),
            open,
        }
    }
}

/// The answer to `POST /v1/route`.
#[derive(Debug, Clone, Serialize)]
pub struct RouteResponse<'a> {
    /// The assignment.
    #[serde(serialize_with = "display")]
    pub assignment_id: AssignmentId,
    /// `offered` or `unassigned`.
    pub status: &'static str,
    /// The agent offered the lead.
    pub agent_id: Option<&'a str>,
    /// End of the offer (RFC 3339), if offered.
    pub offer_expires_at: Option<String>,
    /// The routing strategy used.
    pub strategy: &'static str,
    /// Agents that passed every hard rule.
    pub eligible: u32,
    /// Agents left out, by reason.
    pub excluded: std::collections::BTreeMap<&'static str, u32>,
    /// The ranked candidates (at most 32).
    pub candidates: Vec<WireCandidate<'a>>,
}

fn display<S: serde::Serializer>(id: &AssignmentId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// Appends the JSON answer to `out`.
pub fn encode_route_response(out: &mut Vec<u8>, answer: &RouteResponse<'_>) {
    serde_json::to_writer(out, answer).expect("invariant: a route answer always encodes");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_body_parses_with_defaults_and_names_bad_fields() {
        let r = parse_route(
            br#"{"lead":{"vertical":"auto","zip":"90210","current_carrier":" GEICO ","language":"ES"},"reference":"crm-1"}"#,
        )
        .unwrap();
        assert_eq!(r.agency_id, None);
        assert_eq!(r.lead.state.as_str(), "CA");
        assert_eq!(r.lead.current_carrier.as_deref(), Some("geico"));
        assert_eq!(r.lead.language.as_deref(), Some("es"));
        assert_eq!(r.reference.as_deref(), Some("crm-1"));
        let cases: [(&[u8], ErrorCode, &str); 7] = [
            (br#"{}"#, ErrorCode::MissingField, "lead"),
            (
                br#"{"lead":{"zip":"90210"}}"#,
                ErrorCode::MissingField,
                "lead.vertical",
            ),
            (
                br#"{"lead":{"vertical":"auto","zip":"90210","state":"NY"}}"#,
                ErrorCode::InvalidField,
                "lead.state",
            ),
            (
                br#"{"lead":{"vertical":"auto","zip":"90210","score_tier":4}}"#,
                ErrorCode::InvalidField,
                "lead.score_tier",
            ),
            (
                br#"{"lead":{"vertical":"boat","zip":"90210"}}"#,
                ErrorCode::InvalidField,
                "lead.vertical",
            ),
            (
                br#"{"lead":{"vertical":"auto","zip":"90210"},"agency":"x"}"#,
                ErrorCode::UnknownField,
                "agency",
            ),
            (
                br#"{"lead":{"vertical":"auto","zip":"90210"},"lead_id":"l_1"}"#,
                ErrorCode::InvalidField,
                "lead_id",
            ),
        ];
        for (body, code, field) in cases {
            let e = parse_route(body).unwrap_err();
            assert_eq!(
                (e.code, e.field.as_deref()),
                (code, Some(field)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(parse_route(b"{").unwrap_err().code, ErrorCode::InvalidJson);
    }
}
