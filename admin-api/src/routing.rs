//! The admin records of agents and teams as the engine's routing spec.
//!
//! Agents, teams and agency policies live in the engine (`MarketChange::
//! PutAgent`, `PutTeam`, `PutAgency`, applied by rebuilding the agent
//! graph); the admin store keeps its view of agents and teams from the
//! note of the same journal record. Journals written before that hold
//! agents and teams as admin records only (`AdminChange::AgentPut`,
//! `TeamPut`): [`legacy_changes`] converts such a record to the marketplace
//! changes the engine applies, with the same [`agent_spec`] the routes use,
//! so old data stays routable and every replay converts it alike.
//!
//! ```
//! use leadex_admin_api::records::Agent;
//! let agent: Agent = serde_json::from_value(serde_json::json!({
//!     "id": "a1", "tenant": "acme", "name": "Ann", "email": "",
//!     "licences": [{"state": "CA", "line": "property"}], "appointments": [],
//!     "captive_carrier": null, "languages": ["en"], "capacity": 5,
//!     "time_zone": "America/Los_Angeles", "schedule": [], "zip": "90210",
//!     "manager_id": null, "team_id": null, "active": true
//! })).unwrap();
//! let spec = leadex_admin_api::routing::agent_spec(&agent);
//! assert_eq!((spec.agency_id.as_str(), spec.licences.len()), ("acme", 1));
//! ```

use crate::records::{Agent, Availability, Licence, Team};
use crate::store::{AdminChange, AdminPayload};
use leadex_engine::event::{AdminRecord, MarketChange};
use leadex_engine::lead::{UsState, Zip};
use leadex_engine::routing::spec::{AgentSpec, LicenceSpec, Line, TeamSpec};
use leadex_engine::spec::{ScheduleWindow, Weekday};

/// The line of authority a licence names (`property`, `personal_lines`...).
pub fn line(name: &str) -> Option<Line> {
    Some(match name {
        "property" => Line::Property,
        "casualty" => Line::Casualty,
        "personal_lines" => Line::PersonalLines,
        "commercial" => Line::Commercial,
        "life" => Line::Life,
        "health" => Line::Health,
        _ => return None,
    })
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn licence(l: &Licence) -> Option<LicenceSpec> {
    Some(LicenceSpec {
        state: UsState::parse(&l.state)?,
        line: line(&l.line)?,
    })
}

fn window(w: &Availability) -> ScheduleWindow {
    ScheduleWindow {
        days: w.days.iter().filter_map(|d| weekday(d)).collect(),
        from_hour: w.from_hour,
        to_hour: w.to_hour,
    }
}

/// An agent record as the engine's spec: the agency is the record's
/// account. The routes validate licences, days and the ZIP before they
/// store a record; a legacy record's value that does not parse is left out
/// (a window without days then fails the engine's validation, and the
/// agent is not routable, rather than routable on a guess).
pub fn agent_spec(agent: &Agent) -> AgentSpec {
    AgentSpec {
        id: agent.id.clone(),
        agency_id: agent.tenant.clone(),
        licences: agent.licences.iter().filter_map(licence).collect(),
        appointments: agent.appointments.clone(),
        captive_carrier: agent.captive_carrier.clone(),
        specializations: agent.specializations.clone(),
        zip: agent.zip.as_deref().and_then(Zip::parse),
        languages: agent.languages.clone(),
        capacity: agent.capacity,
        time_zone: agent.time_zone.clone(),
        schedule: agent.schedule.iter().map(window).collect(),
        performance: agent.performance.clone(),
        quality_tier: agent.quality_tier,
        manager_id: agent.manager_id.clone(),
        team_id: agent.team_id.clone(),
        links: agent.links.clone(),
        active: agent.active,
    }
}

/// A team record as the engine's spec.
pub fn team_spec(team: &Team) -> TeamSpec {
    TeamSpec {
        id: team.id.clone(),
        agency_id: team.tenant.clone(),
        manager_id: team.manager_id.clone(),
    }
}

/// The marketplace changes equivalent to the agents and teams an admin
/// record of an older journal puts, in the record's order (empty for
/// every other record, and for one that does not decode: applying it to
/// the store reports that).
pub fn legacy_changes(record: &AdminRecord) -> Vec<MarketChange> {
    let Ok(payload) = AdminPayload::decode(&record.payload) else {
        return Vec::new();
    };
    payload
        .changes
        .iter()
        .filter_map(|change| match change {
            AdminChange::AgentPut { agent } => {
                Some(MarketChange::PutAgent(Box::new(agent_spec(agent))))
            }
            AdminChange::TeamPut { team } => Some(MarketChange::PutTeam(team_spec(team))),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record;

    fn agent() -> Agent {
        Agent {
            id: "a1".into(),
            tenant: "acme".into(),
            name: "Ann".into(),
            email: String::new(),
            licences: vec![
                Licence {
                    state: "CA".into(),
                    line: "personal_lines".into(),
                },
                Licence {
                    state: "ZZ".into(),
                    line: "life".into(),
                },
            ],
            appointments: vec!["acme mutual".into()],
            captive_carrier: None,
            languages: vec!["es".into()],
            capacity: 3,
            time_zone: "America/New_York".into(),
            schedule: vec![Availability {
                days: vec!["mon".into(), "fri".into()],
                from_hour: 9,
                to_hour: 17,
            }],
            zip: Some("10001".into()),
            manager_id: None,
            team_id: Some("t1".into()),
            active: true,
            specializations: Vec::new(),
            performance: Default::default(),
            quality_tier: 1,
            links: Vec::new(),
        }
    }

    #[test]
    fn an_agent_record_becomes_the_engine_spec_it_describes() {
        let spec = agent_spec(&agent());
        assert_eq!(spec.agency_id, "acme");
        assert_eq!(
            spec.licences,
            vec![LicenceSpec {
                state: UsState::parse("CA").unwrap(),
                line: Line::PersonalLines
            }],
            "a licence that does not parse is left out"
        );
        assert_eq!(spec.schedule[0].days, vec![Weekday::Mon, Weekday::Fri]);
        assert_eq!(spec.zip, Zip::parse("10001"));
        assert_eq!((spec.capacity, spec.quality_tier), (3, 1));
        spec.validate("agent").unwrap();
    }

    #[test]
    fn a_legacy_admin_record_converts_to_the_same_changes_every_time() {
        let payload = AdminPayload {
            changes: vec![
                AdminChange::AgentPut { agent: agent() },
                AdminChange::TeamPut {
                    team: Team {
                        id: "t1".into(),
                        tenant: "acme".into(),
                        name: "T".into(),
                        manager_id: Some("a1".into()),
                    },
                },
                AdminChange::KeyRevoked {
                    id: "k".into(),
                    at_ms: 1,
                },
            ],
            audit: None,
        };
        let r = record(&payload, 5);
        let changes = legacy_changes(&r);
        assert_eq!(changes, legacy_changes(&r));
        assert!(
            matches!(&changes[..], [MarketChange::PutAgent(a), MarketChange::PutTeam(t)]
                if a.id == "a1" && t.manager_id.as_deref() == Some("a1"))
        );
        // An agent record of the first format (before the routing fields)
        // still decodes, with their defaults.
        let mut old = serde_json::to_value(AdminChange::AgentPut { agent: agent() }).unwrap();
        for field in ["specializations", "performance", "quality_tier", "links"] {
            old["agent"].as_object_mut().unwrap().remove(field);
        }
        let bare = AdminRecord {
            payload: serde_json::to_vec(&old).unwrap(),
            ..r
        };
        assert!(
            matches!(&legacy_changes(&bare)[..], [MarketChange::PutAgent(a)] if a.quality_tier == 0)
        );
    }
}
