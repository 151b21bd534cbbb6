//! The distribution tables shared by the marketplace generator and the lead
//! sampler, in one place so that what campaigns target and what leads carry
//! come from the same picture of the market.
//!
//! Weights are relative integers. State weights are 2020 census populations
//! in thousands; vertical weights follow the rough share of each line in
//! US lead-generation traffic (auto dominates).

use leadex_engine::lead::{Credit, Vertical, STATE_CODES};

/// Population in thousands (2020 census), in the order of [`STATE_CODES`].
pub const STATE_POPULATION_THOUSANDS: [u32; STATE_CODES.len()] = [
    5024, 733, 7152, 3012, 39538, 5774, 3606, 990, 690, 21538, 10712, 1455, 1839, 12813, 6786,
    3190, // AL..IA
    2938, 4506, 4658, 1362, 6177, 7030, 10077, 5706, 2961, 6155, 1084, 1962, 3105, 1378, 9289,
    2118, // KS..NM
    20201, 10439, 779, 11799, 3959, 4237, 13003, 1097, 5118, 887, 6911, 29146, 3272, 643, 8631,
    7705, // NY..WA
    1794, 5894, 577, // WV, WI, WY
];

/// The IANA time zone most of each state's population lives in, in the
/// order of [`STATE_CODES`]. Used for buyers' home time zones.
pub const STATE_TIME_ZONES: [&str; STATE_CODES.len()] = [
    "America/Chicago",              // AL
    "America/Anchorage",            // AK
    "America/Phoenix",              // AZ
    "America/Chicago",              // AR
    "America/Los_Angeles",          // CA
    "America/Denver",               // CO
    "America/New_York",             // CT
    "America/New_York",             // DE
    "America/New_York",             // DC
    "America/New_York",             // FL
    "America/New_York",             // GA
    "Pacific/Honolulu",             // HI
    "America/Boise",                // ID
    "America/Chicago",              // IL
    "America/Indiana/Indianapolis", // IN
    "America/Chicago",              // IA
    "America/Chicago",              // KS
    "America/Kentucky/Louisville",  // KY
    "America/Chicago",              // LA
    "America/New_York",             // ME
    "America/New_York",             // MD
    "America/New_York",             // MA
    "America/Detroit",              // MI
    "America/Chicago",              // MN
    "America/Chicago",              // MS
    "America/Chicago",              // MO
    "America/Denver",               // MT
    "America/Chicago",              // NE
    "America/Los_Angeles",          // NV
    "America/New_York",             // NH
    "America/New_York",             // NJ
    "America/Denver",               // NM
    "America/New_York",             // NY
    "America/New_York",             // NC
    "America/Chicago",              // ND
    "America/New_York",             // OH
    "America/Chicago",              // OK
    "America/Los_Angeles",          // OR
    "America/New_York",             // PA
    "America/New_York",             // RI
    "America/New_York",             // SC
    "America/Chicago",              // SD
    "America/Chicago",              // TN
    "America/Chicago",              // TX
    "America/Denver",               // UT
    "America/New_York",             // VT
    "America/New_York",             // VA
    "America/Los_Angeles",          // WA
    "America/New_York",             // WV
    "America/Chicago",              // WI
    "America/Denver",               // WY
];

/// Share of traffic (and of campaigns) per vertical, in the order of
/// [`Vertical::ALL`].
pub const VERTICAL_WEIGHTS: [u32; Vertical::COUNT] = [
    40, // auto
    14, // home
    5,  // renters
    12, // life
    12, // health
    11, // medicare
    6,  // commercial
];

/// Self-reported credit, in the order of [`Credit::ALL`].
pub const CREDIT_WEIGHTS: [u32; 4] = [24, 38, 25, 13];

/// Credit tiers buyers accept when they filter on credit: the better tiers.
pub const CREDIT_FILTERS: &[&[Credit]] = &[
    &[Credit::Excellent, Credit::Good],
    &[Credit::Excellent, Credit::Good, Credit::Fair],
    &[Credit::Excellent],
    &[Credit::Good, Credit::Fair],
    &[Credit::Fair, Credit::Poor],
];

/// Lower-case carrier names (`snake_case`) with rough market-share weights,
/// per vertical family: what leads say they have, and what campaigns
/// include or (more often, for their own book) exclude.
pub const AUTO_HOME_CARRIERS: &[(&str, u32)] = &[
    ("state_farm", 17),
    ("geico", 14),
    ("progressive", 14),
    ("allstate", 10),
    ("usaa", 6),
    ("liberty_mutual", 5),
    ("farmers", 5),
    ("nationwide", 3),
    ("travelers", 3),
    ("american_family", 2),
    ("erie", 2),
    ("mercury", 1),
    ("the_general", 1),
    ("other", 7),
];

/// Life carriers.
pub const LIFE_CARRIERS: &[(&str, u32)] = &[
    ("northwestern_mutual", 8),
    ("new_york_life", 7),
    ("metlife", 7),
    ("prudential", 6),
    ("mass_mutual", 5),
    ("lincoln_financial", 4),
    ("transamerica", 4),
    ("mutual_of_omaha", 4),
    ("other", 6),
];

/// Health carriers.
pub const HEALTH_CARRIERS: &[(&str, u32)] = &[
    ("unitedhealthcare", 14),
    ("elevance", 10),
    ("aetna", 8),
    ("cigna", 7),
    ("bcbs", 12),
    ("kaiser", 6),
    ("molina", 4),
    ("ambetter", 5),
    ("oscar", 3),
    ("other", 5),
];

/// Medicare carriers.
pub const MEDICARE_CARRIERS: &[(&str, u32)] = &[
    ("unitedhealthcare", 28),
    ("humana", 18),
    ("cvs_aetna", 12),
    ("elevance", 7),
    ("kaiser", 6),
    ("centene_wellcare", 5),
    ("cigna", 3),
    ("other", 8),
];

/// Commercial carriers.
pub const COMMERCIAL_CARRIERS: &[(&str, u32)] = &[
    ("the_hartford", 10),
    ("travelers", 10),
    ("chubb", 7),
    ("hiscox", 6),
    ("next", 5),
    ("liberty_mutual", 6),
    ("nationwide", 5),
    ("progressive", 5),
    ("other", 8),
];

/// The carrier table of a vertical.
pub fn carriers(vertical: Vertical) -> &'static [(&'static str, u32)] {
    match vertical {
        Vertical::Auto | Vertical::Home | Vertical::Renters => AUTO_HOME_CARRIERS,
        Vertical::Life => LIFE_CARRIERS,
        Vertical::Health => HEALTH_CARRIERS,
        Vertical::Medicare => MEDICARE_CARRIERS,
        Vertical::Commercial => COMMERCIAL_CARRIERS,
    }
}

/// Lower-case coverage types per vertical, with weights.
pub fn coverage_types(vertical: Vertical) -> &'static [(&'static str, u32)] {
    match vertical {
        Vertical::Auto => &[("full", 55), ("liability", 35), ("minimum", 10)],
        Vertical::Home => &[("standard", 70), ("premium", 20), ("basic", 10)],
        Vertical::Renters => &[("standard", 80), ("premium", 20)],
        Vertical::Life => &[
            ("term", 60),
            ("whole", 20),
            ("final_expense", 12),
            ("universal", 8),
        ],
        Vertical::Health => &[("individual", 50), ("family", 35), ("short_term", 15)],
        Vertical::Medicare => &[("advantage", 55), ("supplement", 35), ("part_d", 10)],
        Vertical::Commercial => &[
            ("general_liability", 35),
            ("bop", 20),
            ("workers_comp", 20),
            ("commercial_auto", 15),
            ("professional_liability", 10),
        ],
    }
}

/// Inclusive age range of a vertical's consumers, and the age most of them
/// are near (the sampler draws a triangle around it).
pub fn age_range(vertical: Vertical) -> (u8, u8, u8) {
    match vertical {
        Vertical::Auto => (18, 85, 38),
        Vertical::Home => (23, 85, 45),
        Vertical::Renters => (18, 70, 29),
        Vertical::Life => (21, 80, 45),
        Vertical::Health => (18, 64, 38),
        Vertical::Medicare => (64, 95, 70),
        Vertical::Commercial => (22, 75, 46),
    }
}

/// Base price ranges in cents, inclusive: `(exclusive_min, exclusive_max,
/// shared_min, shared_max)`. Exclusive leads cost about three times shared
/// ones; commercial and the health lines pay the most.
pub fn price_range_cents(vertical: Vertical) -> (u64, u64, u64, u64) {
    match vertical {
        Vertical::Auto => (1_500, 4_500, 500, 1_500),
        Vertical::Home => (1_500, 3_500, 1_000, 1_800),
        Vertical::Renters => (800, 2_000, 400, 900),
        Vertical::Life => (2_500, 6_000, 2_000, 3_500),
        Vertical::Health => (2_500, 5_500, 2_000, 3_500),
        Vertical::Medicare => (3_000, 6_000, 2_000, 3_800),
        Vertical::Commercial => (5_000, 9_000, 4_000, 6_000),
    }
}

/// Sellers' traffic sources, with weights.
pub const SOURCES: &[(&str, u32)] = &[
    ("search", 35),
    ("social", 20),
    ("display", 10),
    ("email", 8),
    ("affiliate", 17),
    ("organic", 10),
];

/// Weekly schedules as `(days, from_hour, to_hour)` windows: business hours
/// of call centres and agencies.
pub const SCHEDULES: &[&[(&[leadex_engine::spec::Weekday], u8, u8)]] = {
    use leadex_engine::spec::Weekday::{Fri, Mon, Sat, Sun, Thu, Tue, Wed};
    const WEEKDAYS: &[leadex_engine::spec::Weekday] = &[Mon, Tue, Wed, Thu, Fri];
    &[
        &[(WEEKDAYS, 8, 20)],
        &[(WEEKDAYS, 9, 17)],
        &[(WEEKDAYS, 8, 20), (&[Sat], 9, 17)],
        &[(WEEKDAYS, 7, 22), (&[Sat, Sun], 9, 18)],
        &[(&[Mon, Tue, Wed, Thu, Fri, Sat, Sun], 6, 23)],
        &[(WEEKDAYS, 8, 12), (WEEKDAYS, 13, 18)],
    ]
};

/// Dedupe windows in hours, with weights (0 disables dedupe).
pub const DEDUPE_WINDOWS_HOURS: &[(u32, u32)] =
    &[(0, 4), (24, 10), (72, 10), (168, 16), (720, 50), (2160, 10)];

/// Given names for synthetic contacts.
pub const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Maria",
    "Mark",
    "Sandra",
    "Luis",
    "Ashley",
    "Steven",
    "Kimberly",
    "Andrew",
    "Emily",
    "Kevin",
    "Donna",
    "Brian",
    "Michelle",
    "Jose",
    "Amanda",
    "Wei",
    "Priya",
    "Tyrone",
    "Keisha",
    "Juan",
    "Rosa",
    "Minh",
    "Aaliyah",
    "Ethan",
    "Olivia",
];

/// Family names for synthetic contacts.
pub const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Patel",
    "Kim",
    "Chen",
    "Washington",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Okafor",
];

/// E-mail domains for synthetic contacts. `example.*` domains are reserved
/// (RFC 2606), so a synthetic lead can never e-mail a real person.
pub const EMAIL_DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];

/// Street names for synthetic addresses.
pub const STREETS: &[&str] = &[
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Pine St",
    "Elm St",
    "Washington Ave",
    "Lake Rd",
    "Hillcrest Dr",
    "Park Ave",
    "Sunset Blvd",
    "Meadow Ln",
    "River Rd",
    "Church St",
    "Highland Ave",
];

/// The TCPA disclosure text synthetic consents carry.
pub const TCPA_TEXT: &str =
    "By clicking \"Get My Quotes\", I agree to be contacted by insurance companies and \
their agents at the number provided, including by autodialer, prerecorded messages and text, about \
insurance quotes. Consent is not a condition of purchase.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_well_formed() {
        for tz in STATE_TIME_ZONES {
            assert!(tz.parse::<chrono_tz::Tz>().is_ok(), "{tz}");
        }
        assert!(STATE_POPULATION_THOUSANDS.iter().all(|&p| p > 0));
        let ca = STATE_CODES.iter().position(|c| *c == "CA").unwrap();
        assert_eq!(
            STATE_POPULATION_THOUSANDS[ca], 39538,
            "table order follows STATE_CODES"
        );
        for v in Vertical::ALL {
            for (name, _) in carriers(v).iter().chain(coverage_types(v)) {
                assert!(
                    name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{name}"
                );
            }
            let (lo, hi, mode) = age_range(v);
            assert!(lo <= mode && mode <= hi);
            let (a, b, c, d) = price_range_cents(v);
            assert!(a <= b && c <= d && c < a);
        }
        assert_eq!(CREDIT_WEIGHTS.len(), Credit::ALL.len());
    }
}
