//! Lead attributes: the non-PII facts of a ping, the PII contact of a post,
//! and the consent evidence that travels with both.
//!
//! These are domain types, not wire types: `leadex-protocol` parses JSON into
//! them and validates ranges, so everything here is already well-formed.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An insurance line of business. Campaigns and pings belong to exactly one.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(attr(allow(missing_docs)))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Vertical {
    /// Personal auto.
    Auto,
    /// Homeowners.
    Home,
    /// Renters.
    Renters,
    /// Life.
    Life,
    /// Health (under 65).
    Health,
    /// Medicare supplement / advantage (65+).
    Medicare,
    /// Commercial lines.
    Commercial,
}

impl Vertical {
    /// Every vertical, in index order.
    pub const ALL: [Vertical; 7] = [
        Vertical::Auto,
        Vertical::Home,
        Vertical::Renters,
        Vertical::Life,
        Vertical::Health,
        Vertical::Medicare,
        Vertical::Commercial,
    ];
    /// Number of verticals.
    pub const COUNT: usize = 7;

    /// Dense index in `0..COUNT`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Wire name, e.g. `"auto"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Vertical::Auto => "auto",
            Vertical::Home => "home",
            Vertical::Renters => "renters",
            Vertical::Life => "life",
            Vertical::Health => "health",
            Vertical::Medicare => "medicare",
            Vertical::Commercial => "commercial",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Vertical> {
        Vertical::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The 50 US states plus DC, by postal code, in the order of [`UsState::index`].
pub const STATE_CODES: [&str; 51] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY",
];

/// A US state (or DC) as a dense index into [`STATE_CODES`].
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(attr(allow(missing_docs)))]
pub struct UsState(u8);

impl UsState {
    /// Number of states (50 + DC).
    pub const COUNT: usize = STATE_CODES.len();

    /// Parses a two-letter postal code (upper case).
    pub fn parse(code: &str) -> Option<UsState> {
        STATE_CODES
            .iter()
            .position(|c| *c == code)
            .map(|i| UsState(i as u8))
    }

    /// The state with dense index `index`, if it is in range.
    pub fn from_index(index: usize) -> Option<UsState> {
        (index < Self::COUNT).then_some(UsState(index as u8))
    }

    /// Dense index in `0..COUNT`.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// Postal code, e.g. `"CA"`.
    pub fn as_str(self) -> &'static str {
        STATE_CODES[self.0 as usize]
    }
}

/// In the OpenAPI document: a string, one of [`STATE_CODES`].
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for UsState {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A US state or DC, by postal code"))
            .enum_values(Some(STATE_CODES))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for UsState {}

impl fmt::Debug for UsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for UsState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for UsState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        UsState::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown US state code {s:?}")))
    }
}

/// A five-digit US ZIP code stored as an integer (leading zeros kept by formatting).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(attr(allow(missing_docs)))]
pub struct Zip(u32);

impl Zip {
    /// Parses exactly five ASCII digits.
    pub fn parse(s: &str) -> Option<Zip> {
        let b = s.as_bytes();
        if b.len() != 5 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(Zip(b
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))))
    }

    /// The integer value, `0..=99999`.
    pub fn value(self) -> u32 {
        self.0
    }

    /// The three-digit prefix (sectional center), `0..=999`.
    pub fn prefix3(self) -> u16 {
        (self.0 / 100) as u16
    }
}

impl fmt::Display for Zip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:05}", self.0)
    }
}

impl fmt::Debug for Zip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:05}", self.0)
    }
}

impl Serialize for Zip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Zip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Zip::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid ZIP {s:?}")))
    }
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
        #[rkyv(attr(allow(missing_docs)))]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Dense index.
            pub fn index(self) -> usize { self as usize }
            /// Wire name.
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $wire),+ } }
            /// Parses a wire name.
            pub fn parse(s: &str) -> Option<$name> { match s { $($wire => Some($name::$variant),)+ _ => None } }
        }
    };
}

wire_enum!(
    /// Self-reported credit tier.
    Credit { /// 720+.
        Excellent = "excellent", /// 680–719.
        Good = "good", /// 620–679.
        Fair = "fair", /// Below 620.
        Poor = "poor" }
);
wire_enum!(
    /// Gender as reported by the consumer.
    Gender { /// Male.
        Male = "male", /// Female.
        Female = "female", /// Non-binary or not listed.
        NonBinary = "non_binary" }
);
wire_enum!(
    /// Device the consumer used.
    Device { /// Desktop or laptop.
        Desktop = "desktop", /// Phone or tablet.
        Mobile = "mobile" }
);
wire_enum!(
    /// How a lead is sold.
    SaleType { /// One buyer only.
        Exclusive = "exclusive", /// Up to N buyers, each paying its own price.
        Shared = "shared" }
);
wire_enum!(
    /// What the seller asks for in a ping.
    SaleTypeRequest { /// Exclusive bids only.
        Exclusive = "exclusive", /// Shared bids only.
        Shared = "shared", /// Whichever pays the seller more.
        Any = "any" }
);

/// Consent evidence (TCPA). Kept apart from PII; it survives erasure.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(attr(allow(missing_docs)))]
pub struct Consent {
    /// The disclosure text the consumer agreed to.
    pub tcpa_text: Option<String>,
    /// ActiveProspect TrustedForm certificate URL.
    pub trustedform_cert_url: Option<String>,
    /// Jornaya LeadiD token.
    pub jornaya_leadid: Option<String>,
    /// When consent was given, Unix milliseconds.
    pub consented_at_ms: Option<i64>,
    /// IP address the consent was given from.
    pub ip: Option<String>,
}

impl Consent {
    /// True when a TCPA disclosure text is present.
    pub fn has_tcpa(&self) -> bool {
        self.tcpa_text.as_deref().is_some_and(|t| !t.is_empty())
    }
    /// True when a TrustedForm certificate is present.
    pub fn has_trustedform(&self) -> bool {
        self.trustedform_cert_url
            .as_deref()
            .is_some_and(|t| !t.is_empty())
    }
    /// True when a Jornaya LeadiD token is present.
    pub fn has_jornaya(&self) -> bool {
        self.jornaya_leadid
            .as_deref()
            .is_some_and(|t| !t.is_empty())
    }
}

/// The non-PII attributes of a lead, as they travel in a ping.
///
/// Strings are normalized by the protocol crate (trimmed; carriers and
/// coverage types lower case).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(attr(allow(missing_docs)))]
pub struct LeadAttributes {
    /// Line of business.
    pub vertical: Vertical,
    /// Five-digit ZIP.
    pub zip: Zip,
    /// State; agrees with the ZIP.
    pub state: UsState,
    /// Age in years.
    pub age: Option<u8>,
    /// Gender.
    pub gender: Option<Gender>,
    /// Credit tier.
    pub credit: Option<Credit>,
    /// Owns a home.
    pub homeowner: Option<bool>,
    /// Has insurance for this line today.
    pub currently_insured: Option<bool>,
    /// Current carrier, lower case.
    pub current_carrier: Option<String>,
    /// Months continuously insured.
    pub insured_months: Option<u16>,
    /// Vehicles to insure (auto).
    pub vehicles: Option<u8>,
    /// Drivers to insure (auto).
    pub drivers: Option<u8>,
    /// Moving violations in 3 years.
    pub violations: Option<u8>,
    /// At-fault accidents in 3 years.
    pub accidents: Option<u8>,
    /// Needs an SR-22 filing.
    pub sr22: Option<bool>,
    /// Requested coverage type, lower case (e.g. `"full"`, `"liability"`, `"term"`).
    pub coverage_type: Option<String>,
    /// Household size (health).
    pub household_size: Option<u8>,
    /// Yearly household income in whole dollars.
    pub income: Option<u32>,
    /// Military or veteran.
    pub military: Option<bool>,
    /// Uses tobacco (life, health).
    pub tobacco: Option<bool>,
    /// Body-mass index in tenths (e.g. 245 = 24.5).
    pub bmi_tenths: Option<u16>,
    /// Has pre-existing conditions.
    pub pre_existing: Option<bool>,
    /// Device used.
    pub device: Option<Device>,
    /// The seller's traffic source.
    pub source_id: Option<String>,
    /// The seller's sub-source.
    pub sub_id: Option<String>,
    /// Landing page URL.
    pub landing_page: Option<String>,
    /// Consumer IP address.
    pub ip: Option<String>,
    /// Consumer user agent.
    pub user_agent: Option<String>,
}

impl LeadAttributes {
    /// Attributes with only the required fields set.
    pub fn new(vertical: Vertical, zip: Zip, state: UsState) -> LeadAttributes {
        LeadAttributes {
            vertical,
            zip,
            state,
            age: None,
            gender: None,
            credit: None,
            homeowner: None,
            currently_insured: None,
            current_carrier: None,
            insured_months: None,
            vehicles: None,
            drivers: None,
            violations: None,
            accidents: None,
            sr22: None,
            coverage_type: None,
            household_size: None,
            income: None,
            military: None,
            tobacco: None,
            bmi_tenths: None,
            pre_existing: None,
            device: None,
            source_id: None,
            sub_id: None,
            landing_page: None,
            ip: None,
            user_agent: None,
        }
    }
}

/// An anonymous lead offered for bids.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(attr(allow(missing_docs)))]
pub struct Ping {
    /// The lead's non-PII attributes.
    pub attributes: LeadAttributes,
    /// What kind of sale the seller accepts.
    pub sale_type: SaleTypeRequest,
    /// Consent evidence, if captured.
    pub consent: Option<Consent>,
}

/// The consumer's PII; travels only in posts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Contact {
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Phone, normalized to ten NANP digits.
    pub phone: String,
    /// E-mail, lower case.
    pub email: String,
    /// Street address.
    pub address: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
}

/// A full lead: attributes, consent and contact.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lead {
    /// The ping part.
    pub ping: Ping,
    /// The PII part.
    pub contact: Contact,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_keeps_leading_zeros_and_rejects_garbage() {
        let zip = Zip::parse("02134").unwrap();
        assert_eq!(zip.to_string(), "02134");
        assert_eq!(zip.prefix3(), 21);
        for bad in ["2134", "021345", "0213a", "", " 2134"] {
            assert!(Zip::parse(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn state_round_trips() {
        for (i, code) in STATE_CODES.iter().enumerate() {
            let s = UsState::parse(code).unwrap();
            assert_eq!(s.index(), i);
            assert_eq!(s.as_str(), *code);
        }
        assert!(UsState::parse("XX").is_none());
        assert!(UsState::parse("ca").is_none());
    }

    #[test]
    fn wire_enums_round_trip() {
        for v in Vertical::ALL {
            assert_eq!(Vertical::parse(v.as_str()), Some(v));
        }
        for c in Credit::ALL {
            assert_eq!(Credit::parse(c.as_str()), Some(*c));
        }
        assert_eq!(SaleTypeRequest::parse("any"), Some(SaleTypeRequest::Any));
        assert_eq!(Gender::parse("non_binary"), Some(Gender::NonBinary));
    }
}
