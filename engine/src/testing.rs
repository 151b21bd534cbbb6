//! Builders for tests and benchmarks: small marketplaces and leads without
//! boilerplate. Not used by production code.

use crate::lead::{
    Contact, Lead, LeadAttributes, Ping, SaleType, SaleTypeRequest, UsState, Vertical, Zip,
};
use crate::spec::{
    BuyerSpec, CampaignSpec, CampaignStatus, Caps, DedupeScope, Filters, MarketplaceSpec,
    SellerSpec,
};

/// SHA-256 of `"test-key"`, the key of [`seller`].
pub const TEST_KEY_SHA256: &str =
    "62af8704764faf8ea82fc61ce9c4c3908b6cb97d463a634e9e587d7c885db0ef";

/// A seller with no floor and no margin.
pub fn seller(id: &str) -> SellerSpec {
    SellerSpec {
        id: id.into(),
        name: id.into(),
        api_key_sha256: vec![],
        floor_cents: 0,
        margin_bps: 0,
        verticals: vec![],
        active: true,
    }
}

/// A buyer without parent.
pub fn buyer(id: &str) -> BuyerSpec {
    BuyerSpec {
        id: id.into(),
        name: format!("Buyer {id}"),
        parent_id: None,
    }
}

/// An active, unfiltered, always-open auto campaign with a large budget.
pub fn campaign(id: &str, buyer_id: &str, sale_type: SaleType, price_cents: u64) -> CampaignSpec {
    CampaignSpec {
        id: id.into(),
        buyer_id: buyer_id.into(),
        name: id.into(),
        vertical: Vertical::Auto,
        status: CampaignStatus::Active,
        sale_type,
        price_cents,
        modifiers: vec![],
        filters: Filters::default(),
        caps: Caps::default(),
        time_zone: "America/New_York".into(),
        schedule: vec![],
        budget_cents: 1_000_000_000,
        credit_limit_cents: 0,
        return_window_hours: 168,
        return_max_bps: 1_000,
        dedupe_window_hours: 720,
        dedupe_scope: DedupeScope::Buyer,
        require_tcpa: false,
        require_trustedform: false,
        require_jornaya: false,
        sellers: vec![],
        sources: vec![],
        exclude_sources: vec![],
        priority: 0,
    }
}

/// A marketplace of one seller `s1`, the given buyers and campaigns.
pub fn market(buyers: &[&str], campaigns: Vec<CampaignSpec>) -> MarketplaceSpec {
    let mut s = seller("s1");
    s.api_key_sha256 = vec![TEST_KEY_SHA256.into()];
    MarketplaceSpec {
        sellers: vec![s],
        buyers: buyers.iter().map(|b| buyer(b)).collect(),
        campaigns,
    }
}

/// An auto ping from Beverly Hills, CA.
pub fn ping() -> Ping {
    let mut a = LeadAttributes::new(
        Vertical::Auto,
        Zip::parse("90210").unwrap(),
        UsState::parse("CA").unwrap(),
    );
    a.age = Some(34);
    a.vehicles = Some(2);
    Ping {
        attributes: a,
        sale_type: SaleTypeRequest::Any,
        consent: None,
    }
}

/// The full lead of [`ping`] with phone `phone`.
pub fn lead_with_phone(phone: &str) -> Lead {
    Lead {
        ping: ping(),
        contact: Contact {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            phone: phone.into(),
            email: "ada@example.com".into(),
            address: None,
            city: None,
            date_of_birth: None,
        },
    }
}

/// An active agent of `agency` with `capacity`, licensed for personal
/// lines in CA and TX, always available (UTC, no schedule).
pub fn agent(id: &str, agency: &str, capacity: u32) -> crate::routing::spec::AgentSpec {
    use crate::routing::spec::{AgentSpec, LicenceSpec, Line, PerformanceSpec};
    AgentSpec {
        id: id.into(),
        agency_id: agency.into(),
        licences: ["CA", "TX"]
            .iter()
            .map(|s| LicenceSpec {
                state: UsState::parse(s).expect("invariant: a state code"),
                line: Line::PersonalLines,
            })
            .collect(),
        appointments: vec![],
        captive_carrier: None,
        specializations: vec![],
        zip: None,
        languages: vec![],
        capacity,
        time_zone: "UTC".into(),
        schedule: vec![],
        performance: PerformanceSpec::default(),
        quality_tier: 0,
        manager_id: None,
        team_id: None,
        links: vec![],
        active: true,
    }
}

/// An auto lead in Beverly Hills, CA, as routing sees it.
pub fn route_lead() -> crate::routing::assign::RouteLead {
    crate::routing::assign::RouteLead {
        vertical: Vertical::Auto,
        state: UsState::parse("CA").expect("invariant: a state code"),
        zip: Zip::parse("90210").expect("invariant: a ZIP"),
        current_carrier: None,
        language: None,
        score_tier: 0,
        referring_agent: None,
    }
}
