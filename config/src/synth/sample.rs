//! The lead sampler: random pings and leads from the same distributions the
//! generator targets, valid as requests.

use super::tables::{self, CREDIT_WEIGHTS, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, STREETS};
use super::{sample_state, state_prefixes, weighted};
use leadex_engine::lead::{
    Consent, Contact, Credit, Device, Gender, Lead, LeadAttributes, Ping, SaleTypeRequest,
    Vertical, Zip,
};
use rand::seq::SliceRandom;
use rand::Rng;

/// A random ping: vertical by traffic share, state by population, a ZIP of
/// that state, attributes typical of the vertical, and consent evidence
/// most of the time (TCPA text ~95 %, TrustedForm ~90 %, Jornaya ~80 %).
pub fn sample_ping(rng: &mut impl Rng) -> Ping {
    let vertical = *weighted(rng, &Vertical::ALL, |v| tables::VERTICAL_WEIGHTS[v.index()]);
    let state = sample_state(rng);
    let prefix = *state_prefixes(state)
        .choose(rng)
        .expect("invariant: every state has a ZIP prefix");
    let last2: u32 = rng.gen_range(0..100);
    // A few ZIPs belong to another state than their prefix (geo.rs's
    // exceptions): step past them without another draw, so the seeded
    // sequences stay the same. At most one per prefix, so two steps do.
    let zip = (0..3)
        .map(|step| {
            Zip::parse(&format!("{prefix:03}{:02}", (last2 + step) % 100))
                .expect("invariant: five digits")
        })
        .find(|z| leadex_engine::geo::state_of_zip(*z) == Some(state))
        .expect("invariant: at most one exception per prefix");
    let mut a = LeadAttributes::new(vertical, zip, state);

    let (age_lo, age_hi, age_mode) = tables::age_range(vertical);
    // Life, health and medicare pings require an age (PROTOCOL.md, required
    // fields per vertical); elsewhere it is usually but not always given.
    let age_required = matches!(
        vertical,
        Vertical::Life | Vertical::Health | Vertical::Medicare
    );
    if age_required || rng.gen_bool(0.95) {
        a.age = Some(triangular(rng, age_lo, age_mode, age_hi));
    }
    if rng.gen_bool(0.8) {
        a.gender = Some(*weighted(rng, Gender::ALL, |g| [49, 49, 2][g.index()]));
    }
    if vertical != Vertical::Commercial && rng.gen_bool(0.85) {
        a.credit = Some(*weighted(rng, Credit::ALL, |c| CREDIT_WEIGHTS[c.index()]));
    }
    a.homeowner = match vertical {
        Vertical::Home => Some(true),
        Vertical::Renters => Some(false),
        _ => rng.gen_bool(0.9).then(|| rng.gen_bool(0.62)),
    };
    a.device = Some(if rng.gen_bool(0.62) {
        Device::Mobile
    } else {
        Device::Desktop
    });
    if rng.gen_bool(0.9) {
        a.source_id = Some(weighted(rng, tables::SOURCES, |s| s.1).0.to_owned());
        if rng.gen_bool(0.4) {
            a.sub_id = Some(format!("sub-{}", rng.gen_range(100..1_000)));
        }
    }
    if rng.gen_bool(0.7) {
        a.landing_page = Some(format!("https://quotes.example.com/{}", vertical.as_str()));
    }
    let ip = sample_ip(rng);
    a.ip = Some(ip.clone());
    if rng.gen_bool(0.7) {
        a.user_agent = Some(
            match a.device {
                Some(Device::Mobile) => {
                    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                     Version/17.4 Mobile/15E148 Safari/604.1"
                }
                _ => {
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                     Chrome/124.0.0.0 Safari/537.36"
                }
            }
            .to_owned(),
        );
    }
    if rng.gen_bool(0.6) {
        a.coverage_type = Some(
            weighted(rng, tables::coverage_types(vertical), |c| c.1)
                .0
                .to_owned(),
        );
    }
    if rng.gen_bool(0.08) {
        a.military = Some(true);
    }
    vertical_attributes(rng, &mut a);

    let sale_type = *weighted(rng, SaleTypeRequest::ALL, |s| [20, 10, 70][s.index()]);
    let consent = rng.gen_bool(0.95).then(|| sample_consent(rng, &ip));
    Ping {
        attributes: a,
        sale_type,
        consent,
    }
}

fn vertical_attributes(rng: &mut impl Rng, a: &mut LeadAttributes) {
    let vertical = a.vertical;
    let insured_share = match vertical {
        Vertical::Auto => 0.8,
        Vertical::Home => 0.7,
        Vertical::Renters => 0.35,
        Vertical::Life => 0.4,
        Vertical::Health => 0.55,
        Vertical::Medicare => 0.75,
        Vertical::Commercial => 0.6,
    };
    let insured = rng.gen_bool(insured_share);
    a.currently_insured = Some(insured);
    if insured {
        if rng.gen_bool(0.85) {
            a.current_carrier = Some(
                weighted(rng, tables::carriers(vertical), |c| c.1)
                    .0
                    .to_owned(),
            );
        }
        if rng.gen_bool(0.7) {
            a.insured_months = Some(
                *[3u16, 6, 12, 24, 36, 60, 120]
                    .choose(rng)
                    .expect("non-empty"),
            );
        }
    }
    match vertical {
        Vertical::Auto => {
            let vehicles = *weighted(rng, &[1u8, 2, 3, 4], |n| {
                [45, 38, 12, 5][usize::from(*n) - 1]
            });
            a.vehicles = Some(vehicles);
            a.drivers = Some(vehicles.clamp(1, 3) + u8::from(rng.gen_bool(0.15)));
            a.violations = Some(*weighted(rng, &[0u8, 1, 2, 3], |n| {
                [75, 17, 6, 2][usize::from(*n)]
            }));
            a.accidents = Some(*weighted(rng, &[0u8, 1, 2], |n| {
                [82, 14, 4][usize::from(*n)]
            }));
            a.sr22 = Some(rng.gen_bool(0.04));
        }
        Vertical::Life => {
            a.tobacco = Some(rng.gen_bool(0.14));
            a.income = Some(rng.gen_range(20..=250) * 1_000);
            a.bmi_tenths = Some(rng.gen_range(185..=380));
        }
        Vertical::Health => {
            a.household_size = Some(*weighted(rng, &[1u8, 2, 3, 4, 5, 6], |n| {
                [30, 28, 17, 15, 7, 3][usize::from(*n) - 1]
            }));
            a.income = Some(rng.gen_range(15..=200) * 1_000);
            a.tobacco = Some(rng.gen_bool(0.14));
            a.pre_existing = Some(rng.gen_bool(0.3));
            a.bmi_tenths = Some(rng.gen_range(185..=400));
        }
        Vertical::Medicare => {
            a.tobacco = Some(rng.gen_bool(0.1));
            a.pre_existing = Some(rng.gen_bool(0.45));
        }
        Vertical::Home | Vertical::Renters | Vertical::Commercial => {}
    }
}

/// An age in `[lo, hi]`, most likely near `mode` (a triangular
/// distribution, drawn by inverting its distribution function).
fn triangular(rng: &mut impl Rng, lo: u8, mode: u8, hi: u8) -> u8 {
    let (lo_f, mode_f, hi_f) = (f64::from(lo), f64::from(mode), f64::from(hi));
    if hi <= lo {
        return lo;
    }
    let u: f64 = rng.gen();
    let split = (mode_f - lo_f) / (hi_f - lo_f);
    let x = if u < split {
        lo_f + (u * (hi_f - lo_f) * (mode_f - lo_f)).sqrt()
    } else {
        hi_f - ((1.0 - u) * (hi_f - lo_f) * (hi_f - mode_f)).sqrt()
    };
    (x.round() as u8).clamp(lo, hi)
}

/// A public-looking IPv4 address (first octets of large US residential
/// and mobile blocks; never private, loopback or reserved ranges).
fn sample_ip(rng: &mut impl Rng) -> String {
    const FIRST_OCTETS: [u8; 16] = [
        24, 47, 50, 67, 68, 69, 71, 73, 75, 76, 96, 98, 99, 107, 108, 174,
    ];
    let first = FIRST_OCTETS.choose(rng).expect("non-empty");
    format!(
        "{first}.{}.{}.{}",
        rng.gen_range(0..=255),
        rng.gen_range(0..=255),
        rng.gen_range(1..=254)
    )
}

/// Consent evidence as a lead form captures it: the TCPA disclosure
/// (~95 %), a TrustedForm certificate (~90 %), a Jornaya LeadiD (~80 %),
/// from `ip`. The time is left unset: a sampler has no clock, and the
/// engine stamps requests itself.
pub fn sample_consent(rng: &mut impl Rng, ip: &str) -> Consent {
    let hex = |rng: &mut dyn rand::RngCore, n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(rng.gen_range(0..16), 16).expect("digit below 16"))
            .collect()
    };
    Consent {
        tcpa_text: rng.gen_bool(0.95).then(|| tables::TCPA_TEXT.to_owned()),
        trustedform_cert_url: rng
            .gen_bool(0.9)
            .then(|| format!("https://cert.trustedform.com/{}", hex(rng, 40))),
        jornaya_leadid: rng.gen_bool(0.8).then(|| {
            format!(
                "{}-{}-{}-{}-{}",
                hex(rng, 8),
                hex(rng, 4),
                hex(rng, 4),
                hex(rng, 4),
                hex(rng, 12)
            )
            .to_uppercase()
        }),
        consented_at_ms: None,
        ip: Some(ip.to_owned()),
    }
}

/// A random consumer: name, a valid NANP phone (`[2-9]XX[2-9]XXXXXX`, neither
/// area code nor exchange of the `N11` service form), an e-mail at a reserved
/// `example.*` domain, a street address.
pub fn sample_contact(rng: &mut impl Rng) -> Contact {
    let first = *FIRST_NAMES.choose(rng).expect("non-empty");
    let last = *LAST_NAMES.choose(rng).expect("non-empty");
    let email = format!(
        "{}.{}{}@{}",
        first.to_lowercase(),
        last.to_lowercase(),
        rng.gen_range(1..10_000),
        EMAIL_DOMAINS.choose(rng).expect("non-empty")
    );
    Contact {
        first_name: first.to_owned(),
        last_name: last.to_owned(),
        phone: sample_phone(rng),
        email,
        address: Some(format!(
            "{} {}",
            rng.gen_range(1..10_000),
            STREETS.choose(rng).expect("non-empty")
        )),
        city: None,
        date_of_birth: None,
    }
}

fn sample_phone(rng: &mut impl Rng) -> String {
    // NXX with N in 2..=9 and not N11, for both the area code and the exchange.
    let nxx = |rng: &mut dyn rand::RngCore| loop {
        let n = rng.gen_range(2..=9u32);
        let x = rng.gen_range(0..=99u32);
        if x != 11 {
            break n * 100 + x;
        }
    };
    format!(
        "{:03}{:03}{:04}",
        nxx(rng),
        nxx(rng),
        rng.gen_range(0..10_000)
    )
}

/// A random full lead: [`sample_ping`] plus [`sample_contact`].
pub fn sample_lead(rng: &mut impl Rng) -> Lead {
    Lead {
        ping: sample_ping(rng),
        contact: sample_contact(rng),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadex_engine::geo::state_of_zip;
    use leadex_engine::lead::UsState;
    use rand::SeedableRng;
    use std::collections::HashMap;

    fn is_nanp(phone: &str) -> bool {
        let d = phone.as_bytes();
        d.len() == 10
            && d.iter().all(u8::is_ascii_digit)
            && d[0] >= b'2'
            && d[3] >= b'2'
            && &d[1..3] != b"11"
            && &d[4..6] != b"11"
    }

    #[test]
    fn sampled_leads_are_valid_requests() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        for _ in 0..20_000 {
            let lead = sample_lead(&mut rng);
            let a = &lead.ping.attributes;
            assert_eq!(
                state_of_zip(a.zip),
                Some(a.state),
                "ZIP {} is not in {:?}",
                a.zip,
                a.state
            );
            assert!(is_nanp(&lead.contact.phone), "{}", lead.contact.phone);
            let email = &lead.contact.email;
            assert!(
                email.contains('@') && *email == email.to_lowercase(),
                "{email}"
            );
            if matches!(
                a.vertical,
                Vertical::Life | Vertical::Health | Vertical::Medicare
            ) {
                assert!(a.age.is_some(), "{:?} needs an age", a.vertical);
            }
            if a.vertical == Vertical::Auto {
                assert!(a.vehicles.is_some(), "auto needs vehicles");
            }
            let (lo, hi, _) = tables::age_range(a.vertical);
            assert!(
                a.age.is_none_or(|age| (lo..=hi).contains(&age)),
                "{:?}",
                a.age
            );
            for text in [&a.current_carrier, &a.coverage_type].into_iter().flatten() {
                assert_eq!(*text, text.to_lowercase());
            }
            if let Some(c) = &lead.ping.consent {
                assert!(
                    c.trustedform_cert_url
                        .as_deref()
                        .is_none_or(|u| u.len() == 69),
                    "{c:?}"
                );
                assert!(
                    c.jornaya_leadid.as_deref().is_none_or(|t| t.len() == 36),
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn sampled_pings_follow_the_shared_tables() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(2);
        let n = 50_000;
        let mut by_vertical = HashMap::new();
        let mut by_state = HashMap::new();
        let (mut with_trustedform, mut with_jornaya) = (0, 0);
        for _ in 0..n {
            let p = sample_ping(&mut rng);
            *by_vertical.entry(p.attributes.vertical).or_insert(0usize) += 1;
            *by_state.entry(p.attributes.state).or_insert(0usize) += 1;
            let consent = p.consent.unwrap_or_default();
            with_trustedform += usize::from(consent.has_trustedform());
            with_jornaya += usize::from(consent.has_jornaya());
        }
        let auto = by_vertical[&Vertical::Auto] as f64 / n as f64;
        assert!((0.37..0.43).contains(&auto), "auto share {auto}");
        let ca = by_state[&UsState::parse("CA").unwrap()];
        let wy = by_state
            .get(&UsState::parse("WY").unwrap())
            .copied()
            .unwrap_or(0);
        assert!(ca > 30 * wy.max(1), "CA {ca}, WY {wy}");
        assert!(
            with_trustedform as f64 / n as f64 > 0.8,
            "{with_trustedform}"
        );
        assert!(with_jornaya as f64 / n as f64 > 0.7, "{with_jornaya}");
    }

    #[test]
    fn phones_are_never_n11() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        for _ in 0..100_000 {
            let p = sample_phone(&mut rng);
            assert!(is_nanp(&p), "{p}");
        }
    }
}
