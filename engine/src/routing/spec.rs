//! What an agency declares for routing: its agents (licences, appointments,
//! captive carrier, specializations, location, languages, capacity,
//! schedule, performance, team, manager, referral and mentorship links) and
//! its routing policy (strategy, factor weights, offer timeout, escalation).
//! Validated here with key paths, compiled by [`super::graph`].

use crate::lead::{UsState, Vertical, Zip};
use crate::spec::{check_id, ScheduleWindow, SpecError};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Lead score tiers: 0 is the best leads, `TIERS - 1` the weakest.
pub const TIERS: usize = 4;
/// Most agents one agency may declare (the route loop is bounded by it).
pub const AGENTS_PER_AGENCY_MAX: usize = 100_000;
/// Most links one agent may have.
pub const LINKS_PER_AGENT_MAX: usize = 64;
/// Most open assignments one agent may hold.
pub const CAPACITY_MAX: u32 = 10_000;

/// A line of authority an agent is licensed for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// Property (home, renters, commercial property).
    Property,
    /// Casualty (auto liability, commercial liability).
    Casualty,
    /// Personal lines (personal auto, home, renters).
    PersonalLines,
    /// Commercial lines.
    Commercial,
    /// Life.
    Life,
    /// Accident and health (health, Medicare).
    Health,
}

impl Line {
    /// The bit of this line in a lines mask.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Whether a set of lines (a mask of [`Line::bit`]s) licenses `vertical`:
/// auto needs casualty or personal lines; home and renters property or
/// personal lines; commercial needs commercial, or property and casualty
/// both; life needs life; health and Medicare need health.
pub fn lines_license(vertical: Vertical, lines: u8) -> bool {
    let has = |l: Line| lines & l.bit() != 0;
    match vertical {
        Vertical::Auto => has(Line::Casualty) || has(Line::PersonalLines),
        Vertical::Home | Vertical::Renters => has(Line::Property) || has(Line::PersonalLines),
        Vertical::Commercial => {
            has(Line::Commercial) || (has(Line::Property) && has(Line::Casualty))
        }
        Vertical::Life => has(Line::Life),
        Vertical::Health | Vertical::Medicare => has(Line::Health),
    }
}

/// A licence: a state and a line of authority.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceSpec {
    /// State.
    pub state: UsState,
    /// Line of authority.
    pub line: Line,
}

/// Kind of a link between two agents.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// The agent refers business to the other one.
    Referral,
    /// The agent mentors the other one.
    Mentorship,
}

/// A directed link from one agent to another, with a strength.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// The other agent (same agency).
    pub to: String,
    /// Kind.
    pub kind: LinkKind,
    /// Strength, basis points (1 to 10000).
    pub strength_bps: u16,
}

/// Past success with leads of one vertical and score tier.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessSpec {
    /// Vertical.
    pub vertical: Vertical,
    /// Lead score tier, 0 (best) to 3.
    pub tier: u8,
    /// Conversion of such leads, basis points.
    pub conversion_bps: u16,
}

/// How an agent performs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerformanceSpec {
    /// Overall conversion rate, basis points (0 to 10000).
    pub conversion_bps: u16,
    /// Median time to first contact, seconds (0: unknown).
    pub median_response_s: u32,
    /// Customer rating, hundredths of a star (0 to 500; 0: unrated).
    pub rating_centi: u16,
    /// Conversion by vertical and tier, where known (else `conversion_bps`).
    pub success: Vec<SuccessSpec>,
}

fn yes() -> bool {
    true
}

fn utc() -> String {
    "UTC".into()
}

/// An agent of an agency.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Agent id (unique across the exchange).
    pub id: String,
    /// The agency: a buyer account id.
    pub agency_id: String,
    /// Licences: a lead is routed only to an agent licensed in its state for
    /// its vertical's line.
    #[serde(default)]
    pub licences: Vec<LicenceSpec>,
    /// Carriers the agent is appointed with (lower case).
    #[serde(default)]
    pub appointments: Vec<String>,
    /// The carrier the agent is captive to: never routed a consumer already
    /// insured with it.
    #[serde(default)]
    pub captive_carrier: Option<String>,
    /// Verticals the agent specializes in.
    #[serde(default)]
    pub specializations: Vec<Vertical>,
    /// ZIP of the agent's office (its Census centroid is the location).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^[0-9]{5}$"))]
    pub zip: Option<Zip>,
    /// Languages (ISO 639-1, lower case).
    #[serde(default)]
    pub languages: Vec<String>,
    /// Most open assignments at once (1 to 10000).
    pub capacity: u32,
    /// IANA time zone of the schedule.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Weekly availability; empty means always.
    #[serde(default)]
    pub schedule: Vec<ScheduleWindow>,
    /// Performance.
    #[serde(default)]
    pub performance: PerformanceSpec,
    /// Quality tier the agent serves best: 0 (the best leads) to 3.
    #[serde(default)]
    pub quality_tier: u8,
    /// Manager (an agent of the same agency).
    #[serde(default)]
    pub manager_id: Option<String>,
    /// Team id (agents with the same team id are a team).
    #[serde(default)]
    pub team_id: Option<String>,
    /// Referral and mentorship links to other agents of the agency.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Takes leads.
    #[serde(default = "yes")]
    pub active: bool,
}

/// How an agency picks among the agents that pass the hard rules.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Highest weighted score first.
    #[default]
    Weighted,
    /// In turn, in agent id order.
    RoundRobin,
    /// Lowest share of capacity in use first.
    LeastLoaded,
}

impl Strategy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Weighted => "weighted",
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastLoaded => "least_loaded",
        }
    }
}

/// Points per factor: a factor's contribution is its weight times its value
/// (0 to 1000), so the contributions add up to the score exactly.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// Nearness of the agent's office to the lead.
    pub distance: u16,
    /// The agent specializes in the lead's vertical.
    pub specialization: u16,
    /// Conversion with such leads, rating and response time.
    pub performance: u16,
    /// Free share of capacity.
    pub workload: u16,
    /// Speaks the consumer's language.
    pub language: u16,
    /// The agent's quality tier matches the lead's score tier.
    pub quality: u16,
    /// Graph affinity with the referring agent: same team, links.
    pub affinity: u16,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            distance: 20,
            specialization: 15,
            performance: 25,
            workload: 15,
            language: 10,
            quality: 10,
            affinity: 5,
        }
    }
}

fn offer_timeout_default() -> u32 {
    300
}

fn escalate_after_default() -> u8 {
    3
}

fn distance_max_km_default() -> u32 {
    500
}

/// An agency's routing policy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencySpec {
    /// The agency: a buyer account id.
    pub id: String,
    /// Strategy.
    #[serde(default)]
    pub strategy: Strategy,
    /// Factor weights (also shown for round-robin and least-loaded).
    #[serde(default)]
    pub weights: Weights,
    /// Distance at which the distance factor reaches 0, km (1 to 5000).
    #[serde(default = "distance_max_km_default")]
    pub distance_max_km: u32,
    /// Seconds an agent has to accept an offer (10 to 86400).
    #[serde(default = "offer_timeout_default")]
    pub offer_timeout_s: u32,
    /// Failed offers (rejected or expired) before the lead goes to the team
    /// manager (1 to 20).
    #[serde(default = "escalate_after_default")]
    pub escalate_after: u8,
    /// Campaigns of the agency whose delivery is `route`: every lead one of
    /// them buys is routed to the agency's agents after the sale. `*`
    /// names every campaign of the agency.
    #[serde(default)]
    pub route_campaigns: Vec<String>,
}

impl AgencySpec {
    /// The policy an agency without one gets.
    pub fn default_for(id: &str) -> AgencySpec {
        AgencySpec {
            id: id.to_string(),
            strategy: Strategy::default(),
            weights: Weights::default(),
            distance_max_km: distance_max_km_default(),
            offer_timeout_s: offer_timeout_default(),
            escalate_after: escalate_after_default(),
            route_campaigns: Vec::new(),
        }
    }

    /// True when leads bought by `campaign_id` are routed after the sale.
    pub fn routes_campaign(&self, campaign_id: &str) -> bool {
        self.route_campaigns
            .iter()
            .any(|c| c == "*" || c == campaign_id)
    }
}

/// A team of an agency, with the manager its escalated leads go to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    /// Team id (what agents name as `team_id`).
    pub id: String,
    /// The agency: a buyer account id.
    pub agency_id: String,
    /// The manager (an agent of the same agency), who gets the team's
    /// escalated leads.
    #[serde(default)]
    pub manager_id: Option<String>,
}

/// Every agent and agency policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSpec {
    /// Agents.
    #[serde(default)]
    pub agents: Vec<AgentSpec>,
    /// Agency policies (an agency without one routes with the defaults).
    #[serde(default)]
    pub agencies: Vec<AgencySpec>,
    /// Teams with their managers (an agent's `team_id` needs no team
    /// record; one is needed only to name the manager).
    #[serde(default)]
    pub teams: Vec<TeamSpec>,
}

fn bad(path: String, message: impl Into<String>) -> SpecError {
    SpecError {
        path,
        message: message.into(),
    }
}

impl AgentSpec {
    /// Checks one agent on its own; `at` is its key path.
    pub fn validate(&self, at: &str) -> Result<(), SpecError> {
        check_id(format!("{at}.id"), &self.id)?;
        check_id(format!("{at}.agency_id"), &self.agency_id)?;
        if !(1..=CAPACITY_MAX).contains(&self.capacity) {
            return Err(bad(format!("{at}.capacity"), "must be 1 to 10000"));
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(bad(format!("{at}.time_zone"), "is not an IANA time zone"));
        }
        for (i, w) in self.schedule.iter().enumerate() {
            w.validate(&format!("{at}.schedule[{i}]"))?;
        }
        if self.quality_tier as usize >= TIERS {
            return Err(bad(format!("{at}.quality_tier"), "must be 0 to 3"));
        }
        let p = &self.performance;
        if p.conversion_bps > 10_000 {
            return Err(bad(
                format!("{at}.performance.conversion_bps"),
                "must be 0 to 10000",
            ));
        }
        if p.rating_centi > 500 {
            return Err(bad(
                format!("{at}.performance.rating_centi"),
                "must be 0 to 500",
            ));
        }
        for (i, s) in p.success.iter().enumerate() {
            if s.tier as usize >= TIERS || s.conversion_bps > 10_000 {
                return Err(bad(
                    format!("{at}.performance.success[{i}]"),
                    "tier must be 0 to 3 and conversion_bps 0 to 10000",
                ));
            }
        }
        if self.links.len() > LINKS_PER_AGENT_MAX {
            return Err(bad(format!("{at}.links"), "at most 64 links"));
        }
        for (i, l) in self.links.iter().enumerate() {
            if !(1..=10_000).contains(&l.strength_bps) {
                return Err(bad(
                    format!("{at}.links[{i}].strength_bps"),
                    "must be 1 to 10000",
                ));
            }
            if l.to == self.id {
                return Err(bad(
                    format!("{at}.links[{i}].to"),
                    "an agent cannot link to itself",
                ));
            }
        }
        if self.manager_id.as_deref() == Some(self.id.as_str()) {
            return Err(bad(
                format!("{at}.manager_id"),
                "an agent cannot manage itself",
            ));
        }
        Ok(())
    }
}

impl AgencySpec {
    /// Checks one policy; `at` is its key path.
    pub fn validate(&self, at: &str) -> Result<(), SpecError> {
        check_id(format!("{at}.id"), &self.id)?;
        if !(1..=5_000).contains(&self.distance_max_km) {
            return Err(bad(format!("{at}.distance_max_km"), "must be 1 to 5000"));
        }
        if !(10..=86_400).contains(&self.offer_timeout_s) {
            return Err(bad(format!("{at}.offer_timeout_s"), "must be 10 to 86400"));
        }
        if !(1..=20).contains(&self.escalate_after) {
            return Err(bad(format!("{at}.escalate_after"), "must be 1 to 20"));
        }
        if self.route_campaigns.len() > 1_000 {
            return Err(bad(format!("{at}.route_campaigns"), "at most 1000"));
        }
        for (i, c) in self.route_campaigns.iter().enumerate() {
            if c != "*" {
                check_id(format!("{at}.route_campaigns[{i}]"), c)?;
            }
        }
        Ok(())
    }
}

impl RoutingSpec {
    /// Checks every record and the references between them: unique ids,
    /// managers and link targets that exist in the same agency, at most
    /// [`AGENTS_PER_AGENCY_MAX`] agents per agency.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut agency_of = std::collections::HashMap::new();
        for (i, a) in self.agents.iter().enumerate() {
            a.validate(&format!("agents[{i}]"))?;
            if agency_of
                .insert(a.id.as_str(), a.agency_id.as_str())
                .is_some()
            {
                return Err(bad(format!("agents[{i}].id"), "is not unique"));
            }
        }
        let mut per_agency: std::collections::HashMap<&str, usize> = Default::default();
        for (i, a) in self.agents.iter().enumerate() {
            let n = per_agency.entry(a.agency_id.as_str()).or_default();
            *n += 1;
            if *n > AGENTS_PER_AGENCY_MAX {
                return Err(bad(
                    format!("agents[{i}].agency_id"),
                    "an agency has at most 100000 agents",
                ));
            }
            let same_agency = |id: &str| agency_of.get(id) == Some(&a.agency_id.as_str());
            if let Some(m) = &a.manager_id {
                if !same_agency(m) {
                    return Err(bad(
                        format!("agents[{i}].manager_id"),
                        "is not an agent of the same agency",
                    ));
                }
            }
            for (j, l) in a.links.iter().enumerate() {
                if !same_agency(&l.to) {
                    return Err(bad(
                        format!("agents[{i}].links[{j}].to"),
                        "is not an agent of the same agency",
                    ));
                }
            }
        }
        let mut teams = HashSet::new();
        for (i, t) in self.teams.iter().enumerate() {
            check_id(format!("teams[{i}].id"), &t.id)?;
            check_id(format!("teams[{i}].agency_id"), &t.agency_id)?;
            if !teams.insert(t.id.as_str()) {
                return Err(bad(format!("teams[{i}].id"), "is not unique"));
            }
            if let Some(m) = &t.manager_id {
                if agency_of.get(m.as_str()) != Some(&t.agency_id.as_str()) {
                    return Err(bad(
                        format!("teams[{i}].manager_id"),
                        "is not an agent of the same agency",
                    ));
                }
            }
        }
        let mut seen = HashSet::new();
        for (i, p) in self.agencies.iter().enumerate() {
            p.validate(&format!("agencies[{i}]"))?;
            if !seen.insert(p.id.as_str()) {
                return Err(bad(format!("agencies[{i}].id"), "is not unique"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_license_each_vertical_as_the_trade_does() {
        let m = |ls: &[Line]| ls.iter().fold(0u8, |m, l| m | l.bit());
        assert!(lines_license(Vertical::Auto, m(&[Line::Casualty])));
        assert!(lines_license(Vertical::Auto, m(&[Line::PersonalLines])));
        assert!(!lines_license(Vertical::Auto, m(&[Line::Property])));
        assert!(lines_license(Vertical::Home, m(&[Line::Property])));
        assert!(lines_license(Vertical::Renters, m(&[Line::PersonalLines])));
        assert!(!lines_license(Vertical::Home, m(&[Line::Casualty])));
        assert!(lines_license(Vertical::Commercial, m(&[Line::Commercial])));
        assert!(!lines_license(Vertical::Commercial, m(&[Line::Property])));
        assert!(lines_license(
            Vertical::Commercial,
            m(&[Line::Property, Line::Casualty])
        ));
        assert!(lines_license(Vertical::Life, m(&[Line::Life])));
        assert!(!lines_license(Vertical::Life, m(&[Line::Health])));
        assert!(lines_license(Vertical::Medicare, m(&[Line::Health])));
        assert!(lines_license(Vertical::Health, m(&[Line::Health])));
        assert!(!lines_license(Vertical::Health, 0));
    }
}
