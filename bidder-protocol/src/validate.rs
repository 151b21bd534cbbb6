//! Field rules: each function takes one JSON scalar of one field and returns
//! the normalized domain value or an `invalid_field` error naming the field.

use crate::error::ProtocolError;
use crate::fields::Field;
use crate::time;
use leadex_engine::lead::{Credit, Device, Gender, SaleTypeRequest, UsState, Vertical, Zip};
use leadex_engine::{BidId, PingId};
use std::net::IpAddr;

/// One JSON scalar as the parser read it, borrowed for the length of one
/// field rule. Objects and arrays never become a `Scalar`: the reader
/// refuses them for scalar fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// `null`: treated as absent.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer.
    NegInt(i64),
    /// A number with a fraction or exponent (or too large for `u64`).
    Float(f64),
    /// A string, unescaped.
    Str(&'a str),
}

/// Default bound on a free-text field, in characters.
pub(crate) const TEXT_MAX_CHARS: usize = 256;
/// Bound on `landing_page`.
pub(crate) const LANDING_PAGE_MAX_CHARS: usize = 2048;
/// Bound on `user_agent`.
pub(crate) const USER_AGENT_MAX_CHARS: usize = 512;
/// Bound on `consent.tcpa_text`.
pub(crate) const TCPA_TEXT_MAX_CHARS: usize = 4096;
/// Bound on names and city.
pub(crate) const NAME_MAX_CHARS: usize = 100;
/// Bound on `contact.email` (RFC 5321 path limit).
pub(crate) const EMAIL_MAX_BYTES: usize = 254;

fn invalid(field: Field, message: String) -> ProtocolError {
    ProtocolError::invalid(field.path(), message)
}

/// The trimmed string of a string field.
fn string<'v>(field: Field, value: &'v Scalar<'_>, what: &str) -> Result<&'v str, ProtocolError> {
    match value {
        Scalar::Str(s) => Ok(s.trim()),
        _ => Err(invalid(field, format!("{} must be {what}", field.path()))),
    }
}

/// True for C0/C1 control characters and DEL.
fn has_control(s: &str, allow_line_breaks: bool) -> bool {
    // Fast path for the common case, printable ASCII only: a fold without
    // early exit, which the compiler vectorizes.
    if s.bytes()
        .fold(true, |ok, b| ok & (b.wrapping_sub(0x20) < 0x5f))
    {
        return false;
    }
    let ascii_control = |b: u8| {
        (b < 0x20 || b == 0x7f) && !(allow_line_breaks && matches!(b, b'\n' | b'\r' | b'\t'))
    };
    s.bytes().any(ascii_control)
        || (!s.is_ascii() && s.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)))
}

fn too_long(s: &str, max_chars: usize) -> bool {
    // Byte length bounds character count from above; count only when needed.
    s.len() > max_chars && s.chars().count() > max_chars
}

fn checked_text<'v>(
    field: Field,
    value: &'v Scalar<'_>,
    max_chars: usize,
    allow_line_breaks: bool,
) -> Result<&'v str, ProtocolError> {
    let s = string(field, value, "a string")?;
    let path = field.path();
    if s.is_empty() {
        return Err(invalid(field, format!("{path} must not be empty")));
    }
    if too_long(s, max_chars) {
        return Err(invalid(
            field,
            format!("{path} is longer than {max_chars} characters"),
        ));
    }
    if has_control(s, allow_line_breaks) {
        return Err(invalid(
            field,
            format!("{path} must not contain control characters"),
        ));
    }
    Ok(s)
}

/// Trimmed, non-empty, at most `max_chars`, no control characters.
pub(crate) fn text(
    field: Field,
    value: &Scalar<'_>,
    max_chars: usize,
) -> Result<String, ProtocolError> {
    checked_text(field, value, max_chars, false).map(str::to_owned)
}

/// Like [`text`], but line breaks and tabs are kept (disclosure texts have paragraphs).
pub(crate) fn multiline_text(
    field: Field,
    value: &Scalar<'_>,
    max_chars: usize,
) -> Result<String, ProtocolError> {
    checked_text(field, value, max_chars, true).map(str::to_owned)
}

/// Like [`text`], lower-cased (carriers, coverage types).
pub(crate) fn lower_text(
    field: Field,
    value: &Scalar<'_>,
    max_chars: usize,
) -> Result<String, ProtocolError> {
    checked_text(field, value, max_chars, false).map(str::to_lowercase)
}

/// A set of ASCII bytes as a lookup table (one load per byte in hot loops).
const fn byte_class(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

/// Bytes of a source token.
const TOKEN_BYTES: [bool; 256] = byte_class(b"._-");
/// Bytes allowed in the path of a TrustedForm certificate URL.
const CERT_PATH_BYTES: [bool; 256] = byte_class(b"-._~/?=&%+");
/// Bytes of an e-mail local part (RFC 5322 atext and dots).
const EMAIL_LOCAL_BYTES: [bool; 256] = byte_class(b"!#$%&'*+/=?^_`{|}~.-");

/// A traffic source token: 1 to 256 of `[A-Za-z0-9._-]`.
pub(crate) fn source_token(field: Field, value: &Scalar<'_>) -> Result<String, ProtocolError> {
    let s = string(field, value, "a string")?;
    let ok = !s.is_empty()
        && s.len() <= TEXT_MAX_CHARS
        && s.bytes().all(|b| TOKEN_BYTES[usize::from(b)]);
    if !ok {
        let path = field.path();
        return Err(invalid(
            field,
            format!("{path} must be 1 to {TEXT_MAX_CHARS} of A-Z a-z 0-9 . _ -"),
        ));
    }
    Ok(s.to_owned())
}

/// An integer in `min..=max`.
pub(crate) fn integer(
    field: Field,
    value: &Scalar<'_>,
    min: u64,
    max: u64,
) -> Result<u64, ProtocolError> {
    match value {
        Scalar::UInt(n) if (min..=max).contains(n) => Ok(*n),
        _ => Err(invalid(
            field,
            format!("{} must be an integer from {min} to {max}", field.path()),
        )),
    }
}

/// A JSON boolean (not `"true"`, not `1`).
pub(crate) fn boolean(field: Field, value: &Scalar<'_>) -> Result<bool, ProtocolError> {
    match value {
        Scalar::Bool(b) => Ok(*b),
        _ => Err(invalid(
            field,
            format!("{} must be true or false", field.path()),
        )),
    }
}

/// Lowest and highest BMI accepted, in tenths.
const BMI_TENTHS_RANGE: std::ops::RangeInclusive<u64> = 100..=800;

/// BMI as a number with at most one decimal, 10.0 to 80.0, in tenths.
pub(crate) fn bmi_tenths(field: Field, value: &Scalar<'_>) -> Result<u16, ProtocolError> {
    let tenths = match value {
        Scalar::UInt(n) => n.checked_mul(10),
        Scalar::Float(x) => {
            let scaled = x * 10.0;
            let rounded = scaled.round();
            // 24.3 * 10 is 243.00000000000003 in binary floating point: allow
            // that noise, refuse a real second decimal (24.35).
            ((scaled - rounded).abs() < 1e-6 && (0.0..=1e6).contains(&rounded))
                .then_some(rounded as u64)
        }
        _ => None,
    };
    match tenths {
        Some(t) if BMI_TENTHS_RANGE.contains(&t) => Ok(t as u16),
        _ => Err(invalid(
            field,
            format!(
                "{} must be a number from 10.0 to 80.0 with at most one decimal",
                field.path()
            ),
        )),
    }
}

/// A closed set of wire names, matched case-insensitively after trimming.
pub(crate) trait Keyword: Copy + 'static {
    /// Every value.
    fn all() -> &'static [Self];
    /// Wire name.
    fn name(self) -> &'static str;
    /// Parses an exact (lower-case) wire name.
    fn from_name(s: &str) -> Option<Self>;
}

macro_rules! keyword {
    ($($t:ty => $all:expr),+ $(,)?) => {$(
        impl Keyword for $t {
            fn all() -> &'static [Self] { $all }
            fn name(self) -> &'static str { self.as_str() }
            fn from_name(s: &str) -> Option<Self> { <$t>::parse(s) }
        }
    )+};
}

keyword! {
    Vertical => &Vertical::ALL,
    Gender => Gender::ALL,
    Credit => Credit::ALL,
    Device => Device::ALL,
    SaleTypeRequest => SaleTypeRequest::ALL,
}

/// One of `K`'s wire names.
pub(crate) fn keyword<K: Keyword>(field: Field, value: &Scalar<'_>) -> Result<K, ProtocolError> {
    let parsed = match value {
        Scalar::Str(s) => {
            let s = s.trim();
            if s.bytes().any(|b| b.is_ascii_uppercase()) {
                K::from_name(&s.to_ascii_lowercase())
            } else {
                K::from_name(s)
            }
        }
        _ => None,
    };
    parsed.ok_or_else(|| {
        let names: Vec<&str> = K::all().iter().map(|k| k.name()).collect();
        invalid(
            field,
            format!("{} must be one of {}", field.path(), names.join(", ")),
        )
    })
}

/// Five ASCII digits in a JSON string.
pub(crate) fn zip(field: Field, value: &Scalar<'_>) -> Result<Zip, ProtocolError> {
    let parsed = match value {
        Scalar::Str(s) => Zip::parse(s.trim()),
        _ => None,
    };
    parsed.ok_or_else(|| {
        invalid(
            field,
            format!("{} must be a string of 5 digits", field.path()),
        )
    })
}

/// A two-letter postal code of one of the 50 states or DC, either case.
pub(crate) fn state(field: Field, value: &Scalar<'_>) -> Result<UsState, ProtocolError> {
    let parsed = match value {
        Scalar::Str(s) => match s.trim().as_bytes() {
            [a, b] => {
                let upper = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
                std::str::from_utf8(&upper).ok().and_then(UsState::parse)
            }
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| {
        invalid(
            field,
            format!(
                "{} must be the postal code of a US state or DC",
                field.path()
            ),
        )
    })
}

/// An IPv4 or IPv6 address; IPv6 in its canonical (RFC 5952) text.
pub(crate) fn ip(field: Field, value: &Scalar<'_>) -> Result<String, ProtocolError> {
    let s = string(field, value, "an IP address")?;
    match s.parse::<IpAddr>() {
        // std accepts only the dotted-quad form without leading zeros, which
        // is already canonical: keep the text as sent.
        Ok(IpAddr::V4(_)) => Ok(s.to_owned()),
        Ok(v6 @ IpAddr::V6(_)) => Ok(v6.to_string()),
        Err(_) => Err(invalid(
            field,
            format!("{} must be an IPv4 or IPv6 address", field.path()),
        )),
    }
}

/// The only origin TrustedForm certificates live on.
const TRUSTEDFORM_ORIGIN: &str = "https://cert.trustedform.com/";

/// An `https://cert.trustedform.com/<path>` URL; scheme and host lower-cased.
pub(crate) fn trustedform_url(field: Field, value: &Scalar<'_>) -> Result<String, ProtocolError> {
    let s = string(field, value, "a string")?;
    let origin = TRUSTEDFORM_ORIGIN.len();
    let ok = s.len() > origin
        && s.len() <= TEXT_MAX_CHARS
        && s.is_char_boundary(origin)
        && s[..origin].eq_ignore_ascii_case(TRUSTEDFORM_ORIGIN)
        && s[origin..].bytes().all(|b| CERT_PATH_BYTES[usize::from(b)]);
    if !ok {
        return Err(invalid(
            field,
            format!(
                "{} must be an https URL on cert.trustedform.com",
                field.path()
            ),
        ));
    }
    let mut url = String::with_capacity(s.len());
    url.push_str(TRUSTEDFORM_ORIGIN);
    url.push_str(&s[origin..]);
    Ok(url)
}

/// An RFC 3339 timestamp at or after 1970, as Unix milliseconds.
pub(crate) fn timestamp_ms(field: Field, value: &Scalar<'_>) -> Result<i64, ProtocolError> {
    let s = string(field, value, "an RFC 3339 timestamp")?;
    match time::parse_rfc3339_millis(s) {
        Some(ms) if ms >= 0 => Ok(ms),
        _ => Err(invalid(
            field,
            format!(
                "{} must be an RFC 3339 timestamp such as 2026-11-23T09:59:41Z",
                field.path()
            ),
        )),
    }
}

/// A `YYYY-MM-DD` calendar date with a year from 1900 to 2100.
pub(crate) fn date(field: Field, value: &Scalar<'_>) -> Result<String, ProtocolError> {
    let s = string(field, value, "a date")?;
    match time::parse_date(s.as_bytes()) {
        Some((year, _, _)) if (1900..=2100).contains(&year) => Ok(s.to_owned()),
        _ => Err(invalid(
            field,
            format!("{} must be a date YYYY-MM-DD", field.path()),
        )),
    }
}

/// The text form of a [`PingId`].
pub(crate) fn ping_id(field: Field, value: &Scalar<'_>) -> Result<PingId, ProtocolError> {
    let parsed = match value {
        Scalar::Str(s) => PingId::parse(s.trim()),
        _ => None,
    };
    parsed.ok_or_else(|| {
        invalid(
            field,
            format!("{} must be a ping id as answered by /v1/ping", field.path()),
        )
    })
}

/// The text form of a [`BidId`].
pub(crate) fn bid_id(field: Field, value: &Scalar<'_>) -> Result<BidId, ProtocolError> {
    let parsed = match value {
        Scalar::Str(s) => BidId::parse(s.trim()),
        _ => None,
    };
    parsed.ok_or_else(|| {
        invalid(
            field,
            format!("{} must hold bid ids as answered by /v1/ping", field.path()),
        )
    })
}

/// A US (NANP) phone number, normalized to ten digits.
///
/// Spaces, `-`, `.`, `(` and `)` are ignored; a leading `+1` or `1` country
/// code is dropped. The area code and the exchange start with 2-9 and are
/// not N11 service codes; 555-0100 to 555-0199 are fictional.
pub(crate) fn phone(field: Field, value: &Scalar<'_>) -> Result<String, ProtocolError> {
    let s = string(field, value, "a string")?;
    let path = field.path();
    let malformed = || invalid(field, format!("{path} must be a 10-digit US phone number"));
    let mut digits = [0u8; 11];
    let mut count = 0;
    let mut plus = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'0'..=b'9' => {
                *digits.get_mut(count).ok_or_else(malformed)? = b;
                count += 1;
            }
            b'+' if i == 0 => plus = true,
            b' ' | b'-' | b'.' | b'(' | b')' => {}
            _ => return Err(malformed()),
        }
    }
    let national = match (&digits[..count], plus) {
        ([b'1', rest @ ..], _) if rest.len() == 10 => rest,
        (all, false) if all.len() == 10 => all,
        _ => return Err(malformed()),
    };
    let is_nxx = |d: &[u8]| d[0] >= b'2' && !(d[1] == b'1' && d[2] == b'1');
    if !is_nxx(&national[0..3]) {
        return Err(invalid(field, format!("{path} has an invalid area code")));
    }
    if !is_nxx(&national[3..6]) {
        return Err(invalid(field, format!("{path} has an invalid exchange")));
    }
    if &national[3..6] == b"555" && &national[6..8] == b"01" {
        return Err(invalid(
            field,
            format!("{path} is a fictional 555-01XX number"),
        ));
    }
    Ok(national.iter().map(|&d| char::from(d)).collect())
}

/// An e-mail address (ASCII; IDN domains in their `xn--` form), lower-cased.
pub(crate) fn email(field: Field, value: &Scalar<'_>) -> Result<String, ProtocolError> {
    let s = string(field, value, "a string")?;
    if is_email(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(invalid(
            field,
            format!("{} must be a valid e-mail address", field.path()),
        ))
    }
}

fn is_email(s: &str) -> bool {
    if s.len() > EMAIL_MAX_BYTES {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|b| EMAIL_LOCAL_BYTES[usize::from(b)]);
    let labels_ok = domain.len() <= 253
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let top_level = domain.rsplit('.').next().unwrap_or("");
    local_ok
        && labels_ok
        && domain.contains('.')
        && top_level.len() >= 2
        && !top_level.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn s(v: &str) -> Scalar<'_> {
        Scalar::Str(v)
    }

    fn refused<T: std::fmt::Debug>(r: Result<T, ProtocolError>, field: &str) -> String {
        let e = r.expect_err("accepted");
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert_eq!(e.field.as_deref(), Some(field));
        e.message
    }

    #[test]
    fn phones_follow_nanp_rules() {
        let f = Field::Phone;
        for (raw, normalized) in [
            ("2125550200", "2125550200"),
            ("(212) 555-0234", "2125550234"),
            ("+1 212.555.0234", "2125550234"),
            ("1-212-555-0234", "2125550234"),
            ("  212 201 0000 ", "2122010000"),
            ("+12125550100".replace("555", "556").as_str(), "2125560100"),
        ] {
            assert_eq!(phone(f, &s(raw)).unwrap(), normalized, "{raw}");
        }
        for raw in [
            "",
            "212555023",
            "21255502345",
            "+2125550234",
            "+2 212 555 0234",
            "212-555-0234x1",
            "2 1+2",
            "12125550234 1",
            "abc",
        ] {
            assert!(
                refused(phone(f, &s(raw)), "contact.phone").contains("10-digit"),
                "{raw}"
            );
        }
        assert!(refused(phone(f, &s("1125550234")), "contact.phone").contains("area code"));
        assert!(refused(phone(f, &s("2115550234")), "contact.phone").contains("area code"));
        assert!(refused(phone(f, &s("2121550234")), "contact.phone").contains("exchange"));
        assert!(refused(phone(f, &s("2124110234")), "contact.phone").contains("exchange"));
        assert!(refused(phone(f, &s("2125550142")), "contact.phone").contains("fictional"));
        assert!(
            refused(phone(f, &Scalar::UInt(2125550234)), "contact.phone")
                .contains("must be a string")
        );
    }

    #[test]
    fn emails() {
        let f = Field::Email;
        assert_eq!(
            email(f, &s(" Ada.Lovelace+leads@Example.CO.uk ")).unwrap(),
            "ada.lovelace+leads@example.co.uk"
        );
        assert_eq!(
            email(f, &s("a@xn--bcher-kva.de")).unwrap(),
            "a@xn--bcher-kva.de"
        );
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a@b@example.com",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "ada @example.com",
            "ada@-example.com",
            "ada@example-.com",
            "ada@example..com",
            "ada@example.c",
            "ada@1.2.3.4",
            "adä@example.com",
            "ada@exämple.com",
            &long_local,
            &long_total,
        ] {
            refused(email(f, &s(bad)), "contact.email");
        }
    }

    #[test]
    fn texts_are_trimmed_bounded_and_free_of_controls() {
        let f = Field::CurrentCarrier;
        assert_eq!(
            text(f, &s("  State Farm "), TEXT_MAX_CHARS).unwrap(),
            "State Farm"
        );
        assert_eq!(
            lower_text(f, &s(" State FARM "), TEXT_MAX_CHARS).unwrap(),
            "state farm"
        );
        assert_eq!(
            text(f, &s(&"é".repeat(256)), TEXT_MAX_CHARS)
                .unwrap()
                .chars()
                .count(),
            256,
            "bound is in characters"
        );
        assert!(refused(text(f, &s("   "), TEXT_MAX_CHARS), "current_carrier").contains("empty"));
        assert!(refused(
            text(f, &s(&"a".repeat(257)), TEXT_MAX_CHARS),
            "current_carrier"
        )
        .contains("longer than 256"));
        assert!(
            refused(text(f, &s("a\u{0}b"), TEXT_MAX_CHARS), "current_carrier").contains("control")
        );
        assert!(
            refused(text(f, &s("a\u{85}b"), TEXT_MAX_CHARS), "current_carrier").contains("control")
        );
        refused(text(f, &s("a\nb"), TEXT_MAX_CHARS), "current_carrier");
        assert_eq!(
            multiline_text(Field::TcpaText, &s("a\n\tb"), 10).unwrap(),
            "a\n\tb"
        );
        refused(
            multiline_text(Field::TcpaText, &s("a\u{7}b"), 10),
            "consent.tcpa_text",
        );
        refused(text(f, &Scalar::UInt(3), TEXT_MAX_CHARS), "current_carrier");
    }

    #[test]
    fn tokens_keywords_zip_state() {
        assert_eq!(
            source_token(Field::SourceId, &s("google_cpc-2.a")).unwrap(),
            "google_cpc-2.a"
        );
        for bad in ["", "a b", "a/b", "ü", &"a".repeat(257)] {
            refused(source_token(Field::SubId, &s(bad)), "sub_id");
        }
        assert_eq!(
            keyword::<Vertical>(Field::Vertical, &s(" Auto ")).unwrap(),
            Vertical::Auto
        );
        assert!(refused(keyword::<Gender>(Field::Gender, &s("m")), "gender")
            .contains("male, female, non_binary"));
        refused(
            keyword::<Credit>(Field::Credit, &Scalar::Bool(true)),
            "credit",
        );
        assert_eq!(zip(Field::Zip, &s("02134")).unwrap().to_string(), "02134");
        for bad in [s("2134"), s("021345"), s("0213a"), Scalar::UInt(90210)] {
            refused(zip(Field::Zip, &bad), "zip");
        }
        assert_eq!(state(Field::State, &s("ca")).unwrap().as_str(), "CA");
        assert_eq!(state(Field::State, &s("Ny ")).unwrap().as_str(), "NY");
        for bad in ["XX", "C", "CAL", "PR", "é"] {
            refused(state(Field::State, &s(bad)), "state");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(integer(Field::Age, &Scalar::UInt(18), 18, 120).unwrap(), 18);
        for bad in [
            Scalar::UInt(17),
            Scalar::UInt(121),
            Scalar::NegInt(-1),
            Scalar::Float(30.0),
            s("30"),
            Scalar::Bool(true),
        ] {
            assert!(refused(integer(Field::Age, &bad, 18, 120), "age").contains("from 18 to 120"));
        }
        assert_eq!(bmi_tenths(Field::Bmi, &Scalar::Float(24.5)).unwrap(), 245);
        assert_eq!(bmi_tenths(Field::Bmi, &Scalar::Float(24.3)).unwrap(), 243);
        assert_eq!(bmi_tenths(Field::Bmi, &Scalar::UInt(24)).unwrap(), 240);
        assert_eq!(bmi_tenths(Field::Bmi, &Scalar::Float(80.0)).unwrap(), 800);
        assert_eq!(bmi_tenths(Field::Bmi, &Scalar::Float(10.0)).unwrap(), 100);
        for bad in [
            Scalar::Float(24.35),
            Scalar::Float(9.9),
            Scalar::Float(80.1),
            Scalar::Float(-24.5),
            Scalar::Float(1e300),
            Scalar::UInt(u64::MAX),
            s("24.5"),
        ] {
            refused(bmi_tenths(Field::Bmi, &bad), "bmi");
        }
        assert!(boolean(Field::Sr22, &Scalar::Bool(false)).is_ok());
        for bad in [s("true"), Scalar::UInt(1)] {
            refused(boolean(Field::Sr22, &bad), "sr22");
        }
    }

    #[test]
    fn ips_urls_dates_ids() {
        assert_eq!(ip(Field::Ip, &s("203.0.113.54")).unwrap(), "203.0.113.54");
        assert_eq!(
            ip(Field::Ip, &s("2001:DB8:0:0:0:0:0:1")).unwrap(),
            "2001:db8::1"
        );
        for bad in [
            "203.0.113",
            "203.0.113.256",
            "203.000.113.1",
            "localhost",
            "::g",
        ] {
            refused(ip(Field::ConsentIp, &s(bad)), "consent.ip");
        }
        let cert = "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            trustedform_url(Field::TrustedformCertUrl, &s(cert)).unwrap(),
            cert
        );
        assert_eq!(
            trustedform_url(
                Field::TrustedformCertUrl,
                &s(&cert.replace("https://cert", "HTTPS://CERT"))
            )
            .unwrap(),
            cert
        );
        for bad in [
            "http://cert.trustedform.com/abc",
            "https://cert.trustedform.com/",
            "https://cert.trustedform.com.evil.com/abc",
            "https://evil.com/cert.trustedform.com/abc",
            "https://cert.trustedform.com/a b",
            "https://cert.trustedform.com/a\"b",
        ] {
            refused(
                trustedform_url(Field::TrustedformCertUrl, &s(bad)),
                "consent.trustedform_cert_url",
            );
        }
        assert_eq!(
            timestamp_ms(Field::ConsentedAt, &s("1970-01-01T00:00:00Z")).unwrap(),
            0
        );
        refused(
            timestamp_ms(Field::ConsentedAt, &s("1969-12-31T23:59:59Z")),
            "consent.consented_at",
        );
        refused(
            timestamp_ms(Field::ConsentedAt, &s("yesterday")),
            "consent.consented_at",
        );
        assert_eq!(
            date(Field::DateOfBirth, &s("1990-02-28")).unwrap(),
            "1990-02-28"
        );
        for bad in ["1990-02-29", "1899-12-31", "90-02-28", "1990-2-28"] {
            refused(date(Field::DateOfBirth, &s(bad)), "contact.date_of_birth");
        }
        let p = PingId(42);
        assert_eq!(ping_id(Field::PingId, &s(&p.to_string())).unwrap(), p);
        refused(ping_id(Field::PingId, &s("p_42")), "ping_id");
        let b = BidId { ping: p, index: 3 };
        assert_eq!(bid_id(Field::BidIds, &s(&b.to_string())).unwrap(), b);
        refused(bid_id(Field::BidIds, &s(&p.to_string())), "bid_ids");
    }
}
