//! ZIP geography: which state a three-digit ZIP prefix belongs to.
//!
//! Source: USPS sectional center facility ranges (the public "ZIP code
//! prefixes" list). Prefixes for territories (PR, VI, GU), military mail
//! (AA, AE, AP) and unassigned ranges map to no state, so a ping from them is
//! refused: leadex trades the 50 states and DC only.

use crate::lead::{UsState, Zip};

/// Inclusive ranges of three-digit prefixes and their state.
const PREFIX_RANGES: &[(u16, u16, &str)] = &[
    (5, 5, "NY"),
    (10, 27, "MA"),
    (28, 29, "RI"),
    (30, 38, "NH"),
    (39, 49, "ME"),
    (50, 54, "VT"),
    (55, 55, "MA"),
    (56, 59, "VT"),
    (60, 69, "CT"),
    (70, 89, "NJ"),
    (100, 149, "NY"),
    (150, 196, "PA"),
    (197, 199, "DE"),
    (200, 200, "DC"),
    (201, 201, "VA"),
    (202, 205, "DC"),
    (206, 219, "MD"),
    (220, 246, "VA"),
    (247, 268, "WV"),
    (270, 289, "NC"),
    (290, 299, "SC"),
    (300, 319, "GA"),
    (320, 339, "FL"),
    (341, 349, "FL"),
    (350, 369, "AL"),
    (370, 385, "TN"),
    (386, 397, "MS"),
    (398, 399, "GA"),
    (400, 427, "KY"),
    (430, 459, "OH"),
    (460, 479, "IN"),
    (480, 499, "MI"),
    (500, 528, "IA"),
    (530, 549, "WI"),
    (550, 567, "MN"),
    (569, 569, "DC"),
    (570, 577, "SD"),
    (580, 588, "ND"),
    (590, 599, "MT"),
    (600, 629, "IL"),
    (630, 658, "MO"),
    (660, 679, "KS"),
    (680, 693, "NE"),
    (700, 715, "LA"),
    (716, 729, "AR"),
    (730, 732, "OK"),
    (733, 733, "TX"),
    (734, 749, "OK"),
    (750, 799, "TX"),
    (800, 816, "CO"),
    (820, 831, "WY"),
    (832, 838, "ID"),
    (840, 847, "UT"),
    (850, 865, "AZ"),
    (870, 884, "NM"),
    (885, 885, "TX"),
    (889, 898, "NV"),
    (900, 961, "CA"),
    (967, 968, "HI"),
    (970, 979, "OR"),
    (980, 994, "WA"),
    (995, 999, "AK"),
];

/// ZIPs whose state is not their prefix's (USPS delivers them from a
/// facility across a state line), sorted. `None`: a territory inside a
/// state's prefix (not traded). Found by comparing the prefix rule with
/// per-ZIP state data (GeoNames' USPS states, and the Census ZCTA list).
const ZIP_EXCEPTIONS: &[(u32, Option<&str>)] = &[
    (6390, Some("NY")),  // Fishers Island, NY, in CT's 063
    (73960, Some("TX")), // Texhoma, TX, in OK's 739
    (83414, Some("WY")), // Alta, WY, in ID's 834
    (96799, None),       // Pago Pago, American Samoa, in HI's 967
];

/// The state a ZIP belongs to, if it is in one of the 50 states or DC.
pub fn state_of_zip(zip: Zip) -> Option<UsState> {
    match ZIP_EXCEPTIONS.binary_search_by_key(&zip.value(), |(z, _)| *z) {
        Ok(i) => ZIP_EXCEPTIONS[i].1.and_then(UsState::parse),
        Err(_) => state_of_prefix(zip.prefix3()),
    }
}

/// The state of a three-digit ZIP prefix.
pub fn state_of_prefix(prefix: u16) -> Option<UsState> {
    let i = PREFIX_RANGES.partition_point(|(_, hi, _)| *hi < prefix);
    let (lo, _, code) = PREFIX_RANGES.get(i)?;
    if *lo <= prefix {
        UsState::parse(code)
    } else {
        None
    }
}

/// Every three-digit prefix of `state`, ascending. For generators and tests.
pub fn prefixes_of_state(state: UsState) -> impl Iterator<Item = u16> {
    PREFIX_RANGES
        .iter()
        .filter(move |(_, _, code)| *code == state.as_str())
        .flat_map(|(lo, hi, _)| *lo..=*hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::STATE_CODES;

    #[test]
    fn ranges_are_sorted_and_disjoint() {
        for w in PREFIX_RANGES.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:?}");
        }
    }

    #[test]
    fn every_state_has_a_prefix() {
        for code in STATE_CODES {
            let s = UsState::parse(code).unwrap();
            assert!(
                prefixes_of_state(s).next().is_some(),
                "{code} has no ZIP prefix"
            );
        }
    }

    #[test]
    fn well_known_zips() {
        let st = |z: &str| state_of_zip(Zip::parse(z).unwrap()).map(UsState::as_str);
        assert_eq!(st("90210"), Some("CA"));
        assert_eq!(st("10001"), Some("NY"));
        assert_eq!(st("02134"), Some("MA"));
        assert_eq!(st("20500"), Some("DC"));
        assert_eq!(st("73301"), Some("TX"));
        assert_eq!(st("79901"), Some("TX"));
        assert_eq!(st("88510"), Some("TX"));
        assert_eq!(st("99501"), Some("AK"));
        assert_eq!(st("00901"), None, "Puerto Rico is not traded");
        assert_eq!(st("09001"), None, "military mail is not traded");
        // The exceptions to the prefix rule.
        assert_eq!(st("06390"), Some("NY"));
        assert_eq!(st("06391"), Some("CT"));
        assert_eq!(st("73960"), Some("TX"));
        assert_eq!(st("83414"), Some("WY"));
        assert_eq!(st("96799"), None, "American Samoa is not traded");
    }

    #[test]
    fn exceptions_are_sorted_and_differ_from_their_prefix() {
        for w in ZIP_EXCEPTIONS.windows(2) {
            assert!(w[0].0 < w[1].0, "{w:?}");
        }
        for (zip, state) in ZIP_EXCEPTIONS {
            let prefix = state_of_prefix((zip / 100) as u16).map(UsState::as_str);
            assert_ne!(prefix, *state, "{zip:05} needs no exception");
        }
    }
}
