//! The request fields: their JSON keys, dotted paths, which body may carry
//! them, and which verticals require which attributes.

use leadex_engine::lead::Vertical;

/// Which request a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `POST /v1/ping`.
    Ping,
    /// `POST /v1/post`.
    Post,
    /// `POST /v1/leads`.
    DirectPost,
}

/// Which object a key is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The top-level object of a body.
    Body(BodyKind),
    /// The `consent` object.
    Consent,
    /// The `contact` object.
    Contact,
}

impl Scope {
    /// The field a key names in this scope, if this API version knows it.
    pub(crate) fn lookup(self, key: &str) -> Option<Field> {
        match self {
            Scope::Body(kind) => {
                let field = Field::lookup_body(key)?;
                let allowed = match field {
                    Field::Contact => kind != BodyKind::Ping,
                    Field::PingId | Field::BidIds => kind == BodyKind::Post,
                    _ => true,
                };
                allowed.then_some(field)
            }
            Scope::Consent => Field::lookup_consent(key),
            Scope::Contact => Field::lookup_contact(key),
        }
    }

    /// The dotted path of an unknown `key` in this scope, for error messages.
    pub(crate) fn path_of(self, key: &str) -> String {
        // Keys are echoed back to the seller; bound what we echo.
        let key = truncate_chars(key, 64);
        match self {
            Scope::Body(_) => key.to_owned(),
            Scope::Consent => format!("consent.{key}"),
            Scope::Contact => format!("contact.{key}"),
        }
    }
}

fn truncate_chars(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

macro_rules! fields {
    ($($scope:ident { $($variant:ident = $key:literal => $path:literal),+ $(,)? })+) => {
        /// Every field of every request body; at most 64 (they are bits of a mask).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum Field { $($($variant),+),+ }

        /// The dotted path of every request field, e.g. `"contact.phone"`
        /// (the names errors report in `field`), in documentation order.
        pub const FIELD_PATHS: &[&str] = &[$($($path),+),+];

        impl Field {
            /// Every field, in declaration order.
            #[cfg(test)]
            pub(crate) const ALL: &'static [Field] = &[$($(Field::$variant),+),+];

            /// Dotted path, e.g. `"contact.phone"`, used in errors.
            pub(crate) fn path(self) -> &'static str {
                match self { $($(Field::$variant => $path),+),+ }
            }

            /// The key inside its object, e.g. `"phone"`.
            #[cfg(test)]
            pub(crate) fn key(self) -> &'static str {
                match self { $($(Field::$variant => $key),+),+ }
            }
        }

        fields!(@lookup $($scope { $($variant = $key),+ })+);
    };
    (@lookup body { $($b:ident = $bk:literal),+ } consent { $($c:ident = $ck:literal),+ } contact { $($t:ident = $tk:literal),+ }) => {
        impl Field {
            fn lookup_body(key: &str) -> Option<Field> {
                match key { $($bk => Some(Field::$b),)+ _ => None }
            }
            fn lookup_consent(key: &str) -> Option<Field> {
                match key { $($ck => Some(Field::$c),)+ _ => None }
            }
            fn lookup_contact(key: &str) -> Option<Field> {
                match key { $($tk => Some(Field::$t),)+ _ => None }
            }
        }
    };
}

fields! {
    body {
        Vertical = "vertical" => "vertical",
        Zip = "zip" => "zip",
        State = "state" => "state",
        Age = "age" => "age",
        Gender = "gender" => "gender",
        Credit = "credit" => "credit",
        Homeowner = "homeowner" => "homeowner",
        CurrentlyInsured = "currently_insured" => "currently_insured",
        CurrentCarrier = "current_carrier" => "current_carrier",
        InsuredMonths = "insured_months" => "insured_months",
        Vehicles = "vehicles" => "vehicles",
        Drivers = "drivers" => "drivers",
        Violations = "violations" => "violations",
        Accidents = "accidents" => "accidents",
        Sr22 = "sr22" => "sr22",
        CoverageType = "coverage_type" => "coverage_type",
        HouseholdSize = "household_size" => "household_size",
        Income = "income" => "income",
        Military = "military" => "military",
        Tobacco = "tobacco" => "tobacco",
        Bmi = "bmi" => "bmi",
        PreExisting = "pre_existing" => "pre_existing",
        Device = "device" => "device",
        SourceId = "source_id" => "source_id",
        SubId = "sub_id" => "sub_id",
        LandingPage = "landing_page" => "landing_page",
        Ip = "ip" => "ip",
        UserAgent = "user_agent" => "user_agent",
        SaleType = "sale_type" => "sale_type",
        Consent = "consent" => "consent",
        Contact = "contact" => "contact",
        PingId = "ping_id" => "ping_id",
        BidIds = "bid_ids" => "bid_ids",
    }
    consent {
        TcpaText = "tcpa_text" => "consent.tcpa_text",
        TrustedformCertUrl = "trustedform_cert_url" => "consent.trustedform_cert_url",
        JornayaLeadid = "jornaya_leadid" => "consent.jornaya_leadid",
        ConsentedAt = "consented_at" => "consent.consented_at",
        ConsentIp = "ip" => "consent.ip",
    }
    contact {
        FirstName = "first_name" => "contact.first_name",
        LastName = "last_name" => "contact.last_name",
        Phone = "phone" => "contact.phone",
        Email = "email" => "contact.email",
        Address = "address" => "contact.address",
        City = "city" => "contact.city",
        DateOfBirth = "date_of_birth" => "contact.date_of_birth",
    }
}

impl Field {
    /// This field's bit in a 64-bit "seen" mask.
    pub(crate) fn bit(self) -> u64 {
        1u64 << (self as u8)
    }
}

/// Lowest age of a `medicare` lead.
pub const MEDICARE_MIN_AGE: u8 = 60;

/// Attributes each vertical requires beyond `vertical`, `zip` and `state`.
pub(crate) fn required_fields(vertical: Vertical) -> &'static [Field] {
    match vertical {
        Vertical::Auto => &[Field::Vehicles],
        Vertical::Life | Vertical::Health | Vertical::Medicare => &[Field::Age],
        Vertical::Home | Vertical::Renters | Vertical::Commercial => &[],
    }
}

/// The attribute names `vertical` requires beyond `vertical`, `zip` and
/// `state` (which every request requires), e.g. `["vehicles"]` for auto.
/// `medicare` also requires `age` >= [`MEDICARE_MIN_AGE`].
pub fn required_attributes(vertical: Vertical) -> &'static [&'static str] {
    match vertical {
        Vertical::Auto => &["vehicles"],
        Vertical::Life | Vertical::Health | Vertical::Medicare => &["age"],
        Vertical::Home | Vertical::Renters | Vertical::Commercial => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_fit_a_u64_mask_and_paths_are_unique() {
        assert!(Field::ALL.len() <= 64);
        let mut paths: Vec<_> = Field::ALL.iter().map(|f| f.path()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), Field::ALL.len());
        for (f, path) in Field::ALL.iter().zip(FIELD_PATHS) {
            assert!(f.path().ends_with(f.key()), "{f:?}");
            assert_eq!(f.path(), *path);
        }
        assert_eq!(FIELD_PATHS.len(), Field::ALL.len());
    }

    #[test]
    fn scopes_limit_what_each_body_may_carry() {
        let ping = Scope::Body(BodyKind::Ping);
        let post = Scope::Body(BodyKind::Post);
        let direct = Scope::Body(BodyKind::DirectPost);
        assert_eq!(ping.lookup("zip"), Some(Field::Zip));
        assert_eq!(ping.lookup("contact"), None, "PII never travels in a ping");
        assert_eq!(ping.lookup("ping_id"), None);
        assert_eq!(direct.lookup("contact"), Some(Field::Contact));
        assert_eq!(direct.lookup("bid_ids"), None);
        assert_eq!(post.lookup("bid_ids"), Some(Field::BidIds));
        assert_eq!(post.lookup("phone"), None);
        assert_eq!(Scope::Contact.lookup("phone"), Some(Field::Phone));
        assert_eq!(Scope::Consent.lookup("ip"), Some(Field::ConsentIp));
        assert_eq!(Scope::Consent.lookup("zip"), None);
        assert_eq!(Scope::Consent.path_of("x"), "consent.x");
        assert_eq!(ping.path_of(&"é".repeat(100)).chars().count(), 64);
    }

    #[test]
    fn public_requirements_match_the_checked_ones() {
        for v in Vertical::ALL {
            let names: Vec<_> = required_fields(v).iter().map(|f| f.path()).collect();
            assert_eq!(names, required_attributes(v), "{v:?}");
        }
    }
}
