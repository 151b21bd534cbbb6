//! Synthetic marketplaces and leads, for benchmarks, the load tester and
//! the shipped demo marketplace.
//!
//! Both sides draw from the same tables ([`tables`]): states weighted by
//! population, verticals by traffic share, prices by vertical and sale
//! type. A generated marketplace is deterministic for a seed (with the
//! locked version of `rand`); sampled pings and leads are valid requests:
//! ZIP and state agree, phones are valid NANP numbers, e-mails use reserved
//! `example.*` domains.
//!
//! ```
//! use leadex_config::synth;
//! use rand::SeedableRng;
//!
//! let market = synth::synthetic_marketplace(1_000, 42);
//! assert_eq!(market.campaigns.len(), 1_000);
//! assert!(market.validate().is_ok());
//! assert_eq!(market, synth::synthetic_marketplace(1_000, 42), "same seed, same marketplace");
//!
//! let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
//! let lead = synth::sample_lead(&mut rng);
//! let state = leadex_engine::geo::state_of_zip(lead.ping.attributes.zip);
//! assert_eq!(state, Some(lead.ping.attributes.state));
//! ```

mod demo;
mod generate;
mod sample;
pub mod tables;

use leadex_engine::lead::{UsState, STATE_CODES};
use leadex_engine::spec::MarketplaceSpec;
use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub use sample::{sample_consent, sample_contact, sample_lead, sample_ping};

/// Id of the seller every generated marketplace has, for demos and tests.
pub const DEMO_SELLER_ID: &str = "demo-seller";

/// The API key of [`DEMO_SELLER_ID`]. Public on purpose: it is for demos
/// and tests only and must never be used in production.
pub const DEMO_SELLER_KEY: &str = "demo-seller-key";

/// Campaign count of the shipped demo marketplace.
pub const DEMO_CAMPAIGNS: usize = 200;

/// Seed of the shipped demo marketplace.
pub const DEMO_SEED: u64 = 2024;

/// Which flavour of marketplace to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Numbered sellers, buyers (`buyer-00042`) and campaigns (`c000042`);
    /// about one buyer per ten campaigns. For benchmarks at any size.
    Synthetic,
    /// Named sellers and about twenty named agencies and carriers' agents,
    /// campaigns with readable names, and one campaign in eight an
    /// always-open auto campaign for California and Texas, so a demo ping
    /// gets bids at any hour. For the shipped demo marketplace.
    Demo,
}

/// A synthetic marketplace of `campaigns` campaigns, deterministic for
/// `seed`: buyers ≈ campaigns / 10 (one in ten under a parent account), three
/// sellers including [`DEMO_SELLER_ID`]; most campaigns target 1–10 states
/// weighted by population, about half have an age range, about 30 % a credit
/// filter, about 40 % a schedule, about half are shared.
pub fn synthetic_marketplace(campaigns: usize, seed: u64) -> MarketplaceSpec {
    generate::generate(campaigns, seed, Profile::Synthetic)
}

/// A marketplace of `campaigns` campaigns with the [`Profile::Demo`]
/// flavour. The shipped `config/marketplace/demo.toml` is
/// `demo_marketplace(DEMO_CAMPAIGNS, DEMO_SEED)`.
pub fn demo_marketplace(campaigns: usize, seed: u64) -> MarketplaceSpec {
    generate::generate(campaigns, seed, Profile::Demo)
}

/// A marketplace of either profile.
pub fn generate_marketplace(campaigns: usize, seed: u64, profile: Profile) -> MarketplaceSpec {
    generate::generate(campaigns, seed, profile)
}

/// The command line that regenerates a marketplace file, for its header.
pub fn generator_command(campaigns: usize, seed: u64, profile: Profile, out: &str) -> String {
    let demo = if profile == Profile::Demo {
        " --demo"
    } else {
        ""
    };
    format!("cargo run -p leadex-config --bin leadex-gen-marketplace -- --campaigns {campaigns} --seed {seed}{demo} --out {out}")
}

/// A generated marketplace as a TOML file: a header saying how it was
/// generated (`command`, see [`generator_command`]) and that its keys are
/// for demos only, then [`crate::marketplace_to_toml`].
pub fn marketplace_file(
    market: &MarketplaceSpec,
    command: &str,
) -> Result<String, toml::ser::Error> {
    let body = crate::marketplace_to_toml(market)?;
    let mut out = format!(
        "# leadex marketplace: {} sellers, {} buyers, {} campaigns.\n\
         #\n\
         # Generated; do not edit by hand. Change the generator (config/src/synth/) and run:\n\
         #   {command}\n\
         #\n\
         # Every API key behind these hashes is public and for demos and tests only; never use one in\n\
         # production. The key of `{DEMO_SELLER_ID}` is the literal `{DEMO_SELLER_KEY}`; the key of each other\n\
         # seller is `<seller id>-key`.\n\n",
        market.sellers.len(),
        market.buyers.len(),
        market.campaigns.len(),
    );
    let demo_key_line = format!("api_key_sha256 = [\"{}\"]", sha256_hex(DEMO_SELLER_KEY));
    for line in body.lines() {
        if line == demo_key_line {
            out.push_str(&format!(
                "# SHA-256 of \"{DEMO_SELLER_KEY}\": a demo key, never to be used in production.\n"
            ));
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// Lower-case hex SHA-256 of an API key, as sellers' `api_key_sha256` holds it.
pub fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// One item of `items`, with probability proportional to `weight`.
pub(crate) fn weighted<'a, T, R: Rng + ?Sized>(
    rng: &mut R,
    items: &'a [T],
    weight: impl Fn(&T) -> u32,
) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    assert!(
        total > 0,
        "invariant: a weighted table has a positive total weight"
    );
    let mut pick = rng.gen_range(0..total);
    for item in items {
        let w = weight(item);
        if pick < w {
            return item;
        }
        pick -= w;
    }
    unreachable!("invariant: pick < total, so some item's weight covers it")
}

/// A state, weighted by population.
pub(crate) fn sample_state<R: Rng + ?Sized>(rng: &mut R) -> UsState {
    static BY_POPULATION: OnceLock<WeightedIndex<u32>> = OnceLock::new();
    let index = BY_POPULATION
        .get_or_init(|| {
            WeightedIndex::new(tables::STATE_POPULATION_THOUSANDS)
                .expect("invariant: population weights are positive")
        })
        .sample(rng);
    UsState::from_index(index).expect("invariant: the weight table has one entry per state")
}

/// The three-digit ZIP prefixes of `state` (never empty for a state).
pub(crate) fn state_prefixes(state: UsState) -> &'static [u16] {
    static PREFIXES: OnceLock<Vec<Vec<u16>>> = OnceLock::new();
    &PREFIXES.get_or_init(|| {
        (0..STATE_CODES.len())
            .map(|i| {
                let state = UsState::from_index(i).expect("invariant: index below the state count");
                leadex_engine::geo::prefixes_of_state(state).collect()
            })
            .collect()
    })[state.index()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadex_engine::lead::{SaleType, Vertical};
    use std::collections::{HashMap, HashSet};

    #[test]
    fn the_same_seed_gives_the_same_marketplace_and_another_seed_another() {
        assert_eq!(synthetic_marketplace(500, 1), synthetic_marketplace(500, 1));
        assert_ne!(synthetic_marketplace(500, 1), synthetic_marketplace(500, 2));
        assert_eq!(demo_marketplace(100, 3), demo_marketplace(100, 3));
    }

    #[test]
    fn synthetic_distributions_are_as_documented() {
        let n = 20_000;
        let m = synthetic_marketplace(n, 42);
        assert!(m.validate().is_ok(), "{:?}", m.validate());
        assert_eq!(m.campaigns.len(), n);
        assert_eq!(m.buyers.len(), n / 10);
        assert_eq!(m.sellers.len(), 3);
        assert!(m
            .sellers
            .iter()
            .any(|s| s.id == DEMO_SELLER_ID && s.api_key_sha256 == [sha256_hex(DEMO_SELLER_KEY)]));
        let share = |f: &dyn Fn(&leadex_engine::spec::CampaignSpec) -> bool| {
            m.campaigns.iter().filter(|c| f(c)).count() as f64 / n as f64
        };
        let near = |x: f64, target: f64| (x - target).abs() < 0.05;
        let targeted = share(&|c| (1..=10).contains(&c.filters.states.len()));
        assert!(
            targeted > 0.8,
            "most campaigns target 1-10 states: {targeted}"
        );
        let aged = share(&|c| c.filters.age_min.is_some());
        assert!(near(aged, 0.5), "about half have an age range: {aged}");
        let credit = share(&|c| !c.filters.credit.is_empty());
        assert!(near(credit, 0.28), "about 30% filter on credit: {credit}");
        let scheduled = share(&|c| !c.schedule.is_empty());
        assert!(
            near(scheduled, 0.4),
            "about 40% have a schedule: {scheduled}"
        );
        let shared = share(&|c| c.sale_type == SaleType::Shared);
        assert!(near(shared, 0.5), "about half are shared: {shared}");
        let parented = m.buyers.iter().filter(|b| b.parent_id.is_some()).count() as f64
            / m.buyers.len() as f64;
        assert!(
            (0.05..0.15).contains(&parented),
            "about 10% of buyers have a parent: {parented}"
        );

        // Populous states are targeted more.
        let mut by_state: HashMap<&str, usize> = HashMap::new();
        for c in &m.campaigns {
            for s in &c.filters.states {
                *by_state.entry(s.as_str()).or_default() += 1;
            }
        }
        assert!(by_state["CA"] > 10 * by_state["WY"], "{by_state:?}");
        assert!(by_state["TX"] > by_state["OK"], "{by_state:?}");
        // Every vertical appears, auto the most.
        let verticals: HashSet<Vertical> = m.campaigns.iter().map(|c| c.vertical).collect();
        assert_eq!(verticals.len(), Vertical::COUNT);
        let auto = share(&|c| c.vertical == Vertical::Auto);
        assert!(auto > 0.3, "{auto}");
    }

    #[test]
    fn prices_follow_the_vertical_and_sale_type_ranges() {
        let m = synthetic_marketplace(5_000, 9);
        for c in &m.campaigns {
            let (xl, xh, sl, sh) = tables::price_range_cents(c.vertical);
            let (lo, hi) = if c.sale_type == SaleType::Exclusive {
                (xl, xh)
            } else {
                (sl, sh)
            };
            assert!(
                (lo..=hi).contains(&c.price_cents),
                "{} {}",
                c.id,
                c.price_cents
            );
            assert_eq!(c.price_cents % 25, 0);
        }
    }

    #[test]
    fn generated_files_round_trip_through_load_and_validate() {
        let dir = tempfile::tempdir().unwrap();
        for (profile, seed) in [(Profile::Synthetic, 5), (Profile::Demo, 6)] {
            let market = generate_marketplace(2_000, seed, profile);
            let path = dir.path().join(format!("{profile:?}.toml"));
            let text =
                marketplace_file(&market, &generator_command(2_000, seed, profile, "x.toml"))
                    .unwrap();
            std::fs::write(&path, text).unwrap();
            let files = toml::Value::Array(vec![toml::Value::String(path.display().to_string())])
                .to_string();
            let loaded =
                crate::load(None, [("LEADEX_MARKETPLACE__FILES".to_owned(), files)]).unwrap();
            assert_eq!(loaded.marketplace, market, "{profile:?}");
            assert_eq!(loaded.marketplace.campaigns.len(), 2_000);
        }
    }

    #[test]
    fn the_demo_key_hash_is_the_sha256_of_the_literal_key() {
        // Computed independently: printf %s demo-seller-key | sha256sum
        assert_eq!(
            sha256_hex(DEMO_SELLER_KEY),
            "19891756889929907bf4eafa27a6b8e079b36eb8a2c2e30804dde40332c27176"
        );
        assert_eq!(
            sha256_hex("test-key"),
            leadex_engine::testing::TEST_KEY_SHA256
        );
    }
}
