//! The demo profile's cast: named sellers and buyers, and readable campaign
//! names. The names are invented; any likeness to a real agency is chance.

use super::generate::BuyerPlan;
use super::{sha256_hex, DEMO_SELLER_ID, DEMO_SELLER_KEY};
use leadex_engine::lead::{SaleType, UsState, Vertical};
use leadex_engine::spec::{BuyerSpec, CampaignSpec, SellerSpec};
use rand::seq::SliceRandom;
use rand::Rng;

pub(super) fn sellers() -> Vec<SellerSpec> {
    let seller =
        |id: &str, name: &str, floor_cents, margin_bps, verticals: &[Vertical]| SellerSpec {
            id: id.into(),
            name: name.into(),
            api_key_sha256: vec![if id == DEMO_SELLER_ID {
                sha256_hex(DEMO_SELLER_KEY)
            } else {
                sha256_hex(&format!("{id}-key"))
            }],
            floor_cents,
            margin_bps,
            verticals: verticals.to_vec(),
            active: true,
        };
    use Vertical::*;
    vec![
        seller(DEMO_SELLER_ID, "Demo Seller", 100, 1_000, &[]),
        seller(
            "quotelab-media",
            "QuoteLab Media",
            300,
            1_500,
            &[Auto, Home, Renters],
        ),
        seller(
            "coverwise-direct",
            "CoverWise Direct",
            500,
            1_200,
            &[Life, Health, Medicare],
        ),
        seller(
            "bizcover-leads",
            "BizCover Leads",
            1_500,
            1_000,
            &[Commercial],
        ),
    ]
}

/// `(id, name, parent, verticals, home state)`.
type BuyerRow = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [Vertical],
    &'static str,
);

const BUYERS: &[BuyerRow] = {
    use Vertical::*;
    &[
        (
            "sunbelt-insurance-group",
            "Sunbelt Insurance Group",
            None,
            &[Auto, Home],
            "TX",
        ),
        (
            "sunbelt-auto-direct",
            "Sunbelt Auto Direct",
            Some("sunbelt-insurance-group"),
            &[Auto],
            "TX",
        ),
        (
            "sunbelt-home-renters",
            "Sunbelt Home & Renters",
            Some("sunbelt-insurance-group"),
            &[Home, Renters],
            "FL",
        ),
        (
            "pacific-shield",
            "Pacific Shield Insurance Services",
            None,
            &[Auto, Home],
            "CA",
        ),
        (
            "golden-gate-auto",
            "Golden Gate Auto Insurance Agency",
            None,
            &[Auto],
            "CA",
        ),
        (
            "lone-star-coverage",
            "Lone Star Coverage Partners",
            None,
            &[Auto, Commercial],
            "TX",
        ),
        (
            "empire-state-brokerage",
            "Empire State Brokerage",
            None,
            &[Auto, Home, Life],
            "NY",
        ),
        (
            "heartland-mutual-agency",
            "Heartland Mutual Agency",
            None,
            &[Auto, Home, Renters],
            "IL",
        ),
        (
            "peachtree-insurance",
            "Peachtree Insurance Advisors",
            None,
            &[Auto, Home],
            "GA",
        ),
        (
            "rocky-mountain-insurance",
            "Rocky Mountain Insurance Group",
            None,
            &[Auto, Home],
            "CO",
        ),
        (
            "great-lakes-auto-home",
            "Great Lakes Auto & Home",
            None,
            &[Auto, Home],
            "MI",
        ),
        (
            "desert-sun-insurance",
            "Desert Sun Insurance",
            None,
            &[Auto, Renters],
            "AZ",
        ),
        (
            "coast-to-coast-quotes",
            "Coast to Coast Quote Center",
            None,
            &[Auto, Health, Medicare],
            "FL",
        ),
        (
            "keystone-life-brokers",
            "Keystone Life Brokers",
            None,
            &[Life],
            "PA",
        ),
        (
            "bluewater-health",
            "BlueWater Health Advisors",
            None,
            &[Health, Life],
            "NC",
        ),
        (
            "evergreen-medicare",
            "Evergreen Medicare Solutions",
            None,
            &[Medicare],
            "WA",
        ),
        (
            "silver-years-benefits",
            "Silver Years Benefits",
            None,
            &[Medicare, Health],
            "FL",
        ),
        (
            "northstar-financial",
            "Northstar Financial Group",
            None,
            &[Life],
            "MN",
        ),
        (
            "northstar-life",
            "Northstar Life & Annuity",
            Some("northstar-financial"),
            &[Life],
            "MN",
        ),
        (
            "northstar-senior",
            "Northstar Senior Benefits",
            Some("northstar-financial"),
            &[Medicare],
            "MN",
        ),
        (
            "granite-commercial-risk",
            "Granite Commercial Risk",
            None,
            &[Commercial],
            "MA",
        ),
        (
            "main-street-business",
            "Main Street Business Insurance",
            None,
            &[Commercial],
            "OH",
        ),
    ]
};

pub(super) fn buyers() -> Vec<BuyerPlan> {
    BUYERS
        .iter()
        .map(|(id, name, parent, verticals, home)| BuyerPlan {
            spec: BuyerSpec {
                id: (*id).into(),
                name: (*name).into(),
                parent_id: parent.map(str::to_owned),
            },
            verticals: verticals.to_vec(),
            home: UsState::parse(home)
                .expect("invariant: demo buyers' home states are state codes"),
        })
        .collect()
}

/// A name such as `CA/TX/NV Auto Exclusive - Preferred Drivers`.
pub(super) fn campaign_name(rng: &mut impl Rng, c: &CampaignSpec) -> String {
    let states: Vec<&str> = c.filters.states.iter().map(|s| s.as_str()).collect();
    let area = match states.len() {
        0 => "Nationwide".to_owned(),
        1..=3 => states.join("/"),
        n => format!("{} +{}", states[..2].join("/"), n - 2),
    };
    let (line, flavours): (&str, &[&str]) = match c.vertical {
        Vertical::Auto => (
            "Auto",
            &[
                "Preferred Drivers",
                "Standard",
                "Multi-Car",
                "Insured Only",
                "High Intent",
                "Clean Record",
            ],
        ),
        Vertical::Home => (
            "Home",
            &["Homeowners", "New Purchase", "Bundle", "High Value"],
        ),
        Vertical::Renters => ("Renters", &["Apartment", "Bundle Ready", "Students"]),
        Vertical::Life => (
            "Life",
            &["Term", "Final Expense", "Family Protection", "Non-Smoker"],
        ),
        Vertical::Health => (
            "Health",
            &["Individual", "Family", "Open Enrollment", "Under 65"],
        ),
        Vertical::Medicare => (
            "Medicare",
            &["Advantage", "Supplement", "Turning 65", "AEP"],
        ),
        Vertical::Commercial => (
            "Commercial",
            &["Small Business", "Contractors", "BOP", "Fleet"],
        ),
    };
    let sale = match c.sale_type {
        SaleType::Exclusive => "Exclusive",
        SaleType::Shared => "Shared",
    };
    let flavour = flavours
        .choose(rng)
        .expect("invariant: every vertical has flavours");
    format!("{area} {line} {sale} - {flavour}")
}

#[cfg(test)]
mod tests {
    use super::super::{
        demo_marketplace, generator_command, marketplace_file, DEMO_CAMPAIGNS, DEMO_SEED,
    };
    use super::*;
    use leadex_engine::lead::{
        Consent, Credit, Device, LeadAttributes, Ping, SaleTypeRequest, Zip,
    };
    use leadex_engine::spec::{CampaignStatus, MarketplaceSpec};
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};

    const DEMO_FILE: &str = "marketplace/demo.toml";

    fn shipped_demo() -> MarketplaceSpec {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_FILE);
        crate::read_marketplace(&[path]).expect("the shipped demo marketplace loads and validates")
    }

    /// The demo ping of the README, from `demo-seller`, with TrustedForm and
    /// Jornaya consent (no TCPA text).
    fn demo_ping() -> Ping {
        let mut a = LeadAttributes::new(
            Vertical::Auto,
            Zip::parse("90210").unwrap(),
            UsState::parse("CA").unwrap(),
        );
        a.age = Some(34);
        a.credit = Some(Credit::Good);
        a.homeowner = Some(true);
        a.currently_insured = Some(true);
        a.current_carrier = Some("geico".into());
        a.vehicles = Some(2);
        a.drivers = Some(2);
        a.violations = Some(0);
        a.accidents = Some(0);
        a.device = Some(Device::Mobile);
        let consent = Consent {
            trustedform_cert_url: Some(
                "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567".into(),
            ),
            jornaya_leadid: Some("01234567-89AB-CDEF-0123-456789ABCDEF".into()),
            ..Consent::default()
        };
        Ping {
            attributes: a,
            sale_type: SaleTypeRequest::Any,
            consent: Some(consent),
        }
    }

    /// A campaign bids on `ping` from `seller` at every hour of every day:
    /// written here from the spec's documented semantics (a filter on an
    /// attribute the ping lacks does not match), independent of the engine's
    /// matcher. Budget and caps must allow one sale at the worst-case price.
    fn bids_at_any_hour(c: &CampaignSpec, seller: &SellerSpec, ping: &Ping) -> bool {
        let a = &ping.attributes;
        let f = &c.filters;
        let consent = ping.consent.clone().unwrap_or_default();
        let in_list = |list: &[String], v: &Option<String>| {
            list.is_empty() || v.as_ref().is_some_and(|v| list.contains(v))
        };
        let not_in_list =
            |list: &[String], v: &Option<String>| v.as_ref().is_none_or(|v| !list.contains(v));
        let at_most =
            |limit: Option<u8>, v: Option<u8>| limit.is_none_or(|l| v.is_some_and(|v| v <= l));
        let at_least =
            |limit: Option<u8>, v: Option<u8>| limit.is_none_or(|l| v.is_some_and(|v| v >= l));
        let equals = |want: Option<bool>, v: Option<bool>| want.is_none_or(|w| v == Some(w));
        let zip = a.zip.to_string();
        let zip_hit = |z: &String| *z == zip || zip.starts_with(z.as_str());
        let filters_match = c.vertical == a.vertical
            && (f.states.is_empty() || f.states.contains(&a.state))
            && !f.exclude_states.contains(&a.state)
            && (f.zips.is_empty() || f.zips.iter().any(zip_hit))
            && !f.exclude_zips.iter().any(zip_hit)
            && at_least(f.age_min, a.age)
            && at_most(f.age_max, a.age)
            && (f.credit.is_empty() || a.credit.is_some_and(|x| f.credit.contains(&x)))
            && (f.device.is_empty() || a.device.is_some_and(|x| f.device.contains(&x)))
            && equals(f.homeowner, a.homeowner)
            && equals(f.currently_insured, a.currently_insured)
            && f.insured_months_min
                .is_none_or(|m| a.insured_months.is_some_and(|v| v >= m))
            && in_list(&f.carriers, &a.current_carrier)
            && not_in_list(&f.exclude_carriers, &a.current_carrier)
            && at_least(f.vehicles_min, a.vehicles)
            && at_most(f.vehicles_max, a.vehicles)
            && at_most(f.drivers_max, a.drivers)
            && at_most(f.violations_max, a.violations)
            && at_most(f.accidents_max, a.accidents)
            && equals(f.sr22, a.sr22)
            && equals(f.military, a.military)
            && equals(f.tobacco, a.tobacco)
            && equals(f.pre_existing, a.pre_existing)
            && in_list(&f.coverage_types, &a.coverage_type)
            && f.income_min
                .is_none_or(|m| a.income.is_some_and(|v| v >= m))
            && f.household_size_max
                .is_none_or(|m| a.household_size.is_some_and(|v| v <= m))
            && f.bmi_tenths_max
                .is_none_or(|m| a.bmi_tenths.is_some_and(|v| v <= m));
        // Worst case: every price cut applies and no increase does.
        let mut worst_price = c.price_cents as i64;
        for m in &c.modifiers {
            if m.adjust_bps < 0 {
                worst_price += worst_price * i64::from(m.adjust_bps) / 10_000;
            }
            worst_price += m.adjust_cents.min(0);
        }
        let payout = worst_price * (10_000 - i64::from(seller.margin_bps)) / 10_000;
        let caps = [c.caps.hourly, c.caps.daily, c.caps.weekly, c.caps.monthly];
        filters_match
            && c.status == CampaignStatus::Active
            && c.schedule.is_empty()
            && (c.sellers.is_empty() || c.sellers.contains(&seller.id))
            && c.sources.is_empty()
            && (!c.require_tcpa || consent.has_tcpa())
            && (!c.require_trustedform || consent.has_trustedform())
            && (!c.require_jornaya || consent.has_jornaya())
            && c.budget_cents >= c.price_cents * 2
            && caps
                .iter()
                .all(|cap| cap.spend_cents.is_none_or(|s| s >= c.price_cents * 2))
            && payout > 0
            && payout as u64 >= seller.floor_cents
            && seller.active
            && (seller.verticals.is_empty() || seller.verticals.contains(&a.vertical))
    }

    #[test]
    fn the_demo_ping_gets_bids_at_any_hour() {
        let market = shipped_demo();
        let seller = market
            .sellers
            .iter()
            .find(|s| s.id == DEMO_SELLER_ID)
            .expect("demo-seller exists");
        assert_eq!(seller.api_key_sha256, vec![sha256_hex(DEMO_SELLER_KEY)]);
        let ping = demo_ping();
        let bidders: Vec<&CampaignSpec> = market
            .campaigns
            .iter()
            .filter(|c| bids_at_any_hour(c, seller, &ping))
            .collect();
        let exclusive = bidders
            .iter()
            .filter(|c| c.sale_type == SaleType::Exclusive)
            .count();
        let shared = bidders
            .iter()
            .filter(|c| c.sale_type == SaleType::Shared)
            .count();
        let parent_of = |buyer: &str| {
            let b = market.buyers.iter().find(|b| b.id == buyer).unwrap();
            b.parent_id.clone().unwrap_or_else(|| b.id.clone())
        };
        let accounts: HashSet<String> = bidders.iter().map(|c| parent_of(&c.buyer_id)).collect();
        assert!(exclusive >= 5, "{exclusive} exclusive bidders");
        assert!(shared >= 5, "{shared} shared bidders");
        assert!(accounts.len() >= 4, "{accounts:?}");

        // The predicate can refuse: the same ping from Wyoming, which the
        // always-open campaigns do not target, finds fewer bidders.
        let mut other = ping.clone();
        other.attributes.state = UsState::parse("WY").unwrap();
        other.attributes.zip = Zip::parse("82001").unwrap();
        let fewer = market
            .campaigns
            .iter()
            .filter(|c| bids_at_any_hour(c, seller, &other))
            .count();
        assert!(fewer < bidders.len(), "{fewer} vs {}", bidders.len());
    }

    #[test]
    fn the_demo_marketplace_is_realistic() {
        let m = shipped_demo();
        assert!((3..=4).contains(&m.sellers.len()));
        assert!((18..=24).contains(&m.buyers.len()));
        assert_eq!(m.campaigns.len(), DEMO_CAMPAIGNS);
        let verticals: HashSet<Vertical> = m.campaigns.iter().map(|c| c.vertical).collect();
        assert_eq!(verticals.len(), Vertical::COUNT, "every vertical is bought");
        let states: HashSet<UsState> = m
            .campaigns
            .iter()
            .flat_map(|c| c.filters.states.iter().copied())
            .collect();
        assert!(states.len() >= 30, "many states: {}", states.len());
        let parents: Vec<&str> = m
            .buyers
            .iter()
            .filter_map(|b| b.parent_id.as_deref())
            .collect();
        assert!(parents.len() >= 2, "some buyers share a parent account");
        let scheduled = m
            .campaigns
            .iter()
            .filter(|c| !c.schedule.is_empty())
            .count();
        assert!(scheduled > 30, "{scheduled}");
        let time_zones: HashSet<&str> = m.campaigns.iter().map(|c| c.time_zone.as_str()).collect();
        assert!(time_zones.len() >= 4, "{time_zones:?}");
        assert!(m.campaigns.iter().any(|c| c.require_trustedform));
        assert!(m.campaigns.iter().any(|c| c.require_jornaya));
        assert!(m.campaigns.iter().any(|c| !c.modifiers.is_empty()));
        assert!(m.campaigns.iter().any(|c| c.caps.hourly.leads.is_some()));
        assert!(m
            .campaigns
            .iter()
            .any(|c| c.caps.daily.spend_cents.is_some()));
        assert!(m
            .campaigns
            .iter()
            .any(|c| !c.filters.exclude_carriers.is_empty()));
        assert!(m
            .campaigns
            .iter()
            .any(|c| c.filters.violations_max.is_some()));
        let buyers_with_campaigns: HashSet<&str> =
            m.campaigns.iter().map(|c| c.buyer_id.as_str()).collect();
        assert!(
            buyers_with_campaigns.len() >= m.buyers.len() - 2,
            "{buyers_with_campaigns:?}"
        );
    }

    #[test]
    fn the_shipped_demo_file_is_what_the_generator_writes() {
        let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_FILE);
        let shipped = std::fs::read_to_string(&path).unwrap();
        let command = generator_command(
            DEMO_CAMPAIGNS,
            DEMO_SEED,
            super::super::Profile::Demo,
            "config/marketplace/demo.toml",
        );
        let fresh =
            marketplace_file(&demo_marketplace(DEMO_CAMPAIGNS, DEMO_SEED), &command).unwrap();
        assert!(
            shipped == fresh,
            "config/marketplace/demo.toml is stale; regenerate it with `{command}` (from the workspace root)"
        );
        let comment = format!(
            "# SHA-256 of \"{DEMO_SELLER_KEY}\": a demo key, never to be used in production."
        );
        assert!(shipped.contains(&comment));
    }
}
