//! Request bodies: bytes → validated engine types.
//!
//! The body is read in one pass by serde visitors that write straight into a
//! [`Draft`] of the engine's types: no `serde_json::Value`, no intermediate
//! wire struct. A visitor that finds a problem stores a [`ProtocolError`] in
//! a slot and aborts the parse with a placeholder serde error; the slot, not
//! the parser's message, becomes the answer. Errors the parser raises on its
//! own (syntax, bad UTF-8, trailing bytes) become `invalid_json`.
//!
//! Cross-field rules (required fields, ZIP vs state, per-vertical
//! requirements, bids vs ping) run on the finished draft.

use crate::backend::{JsonBackend, Production};
use crate::error::{ErrorCode, ProtocolError};
use crate::fields::{required_fields, BodyKind, Field, Scope, MEDICARE_MIN_AGE};
use crate::validate::{self as rule, Scalar};
use leadex_engine::geo::state_of_zip;
use leadex_engine::lead::{
    Consent, Contact, Lead, LeadAttributes, Ping, SaleTypeRequest, UsState, Vertical, Zip,
};
use leadex_engine::{BidId, PingId};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Largest request body accepted, bytes.
pub const MAX_BODY_BYTES: usize = 65_536;
/// Deepest nesting of objects and arrays accepted (the body itself is depth 1;
/// the API needs 2).
pub const MAX_JSON_DEPTH: usize = 8;
/// Most bids one post may accept (the most buyers a shared lead can have).
pub const MAX_BIDS_PER_POST: usize = 8;

/// A parsed `POST /v1/post`: the ping, the bids the seller accepts, the lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRequest {
    /// The ping being posted.
    pub ping_id: PingId,
    /// Accepted bids: 1 to [`MAX_BIDS_PER_POST`], distinct, all of `ping_id`.
    pub bid_ids: Vec<BidId>,
    /// The full lead.
    pub lead: Lead,
}

/// Parses and validates a `POST /v1/ping` body.
///
/// `body` may be used as scratch space by the JSON parser (in-place parsers
/// such as simd-json unescape strings into it); its contents afterwards are
/// unspecified. The production parser leaves it untouched.
pub fn parse_ping(body: &mut [u8]) -> Result<Ping, ProtocolError> {
    parse_ping_with::<Production>(body)
}

/// Parses and validates a `POST /v1/post` body. See [`parse_ping`] about `body`.
pub fn parse_post(body: &mut [u8]) -> Result<PostRequest, ProtocolError> {
    parse_post_with::<Production>(body)
}

/// Parses and validates a `POST /v1/leads` (direct post) body. See
/// [`parse_ping`] about `body`.
pub fn parse_direct_post(body: &mut [u8]) -> Result<Lead, ProtocolError> {
    parse_direct_post_with::<Production>(body)
}

/// [`parse_ping`] on the JSON parser `B` (for benchmarks and differential tests).
pub fn parse_ping_with<B: JsonBackend>(body: &mut [u8]) -> Result<Ping, ProtocolError> {
    read_body::<B>(body, BodyKind::Ping)?.into_ping()
}

/// [`parse_post`] on the JSON parser `B`.
pub fn parse_post_with<B: JsonBackend>(body: &mut [u8]) -> Result<PostRequest, ProtocolError> {
    read_body::<B>(body, BodyKind::Post)?.into_post()
}

/// [`parse_direct_post`] on the JSON parser `B`.
pub fn parse_direct_post_with<B: JsonBackend>(body: &mut [u8]) -> Result<Lead, ProtocolError> {
    read_body::<B>(body, BodyKind::DirectPost)?.into_lead()
}

fn invalid_json(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidJson, message)
}

/// Refuses bodies a parser should never see: empty, too large, too deep.
pub(crate) fn precheck(body: &[u8]) -> Result<(), ProtocolError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::BodyTooLarge,
            format!("the body is over {MAX_BODY_BYTES} bytes"),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid_json("the body is empty"));
    }
    if nesting_depth_exceeds(body, MAX_JSON_DEPTH) {
        return Err(invalid_json(format!(
            "the body nests deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    Ok(())
}

/// True when objects and arrays in `body` nest deeper than `max_depth`,
/// ignoring brackets inside strings. Bounds the recursion of every parser.
fn nesting_depth_exceeds(body: &[u8], max_depth: usize) -> bool {
    // Depth can never exceed the number of opening brackets, and counting
    // them is a vectorized loop (u8 counters per 255-byte chunk, so they
    // cannot overflow): a real body (4 brackets in a post) never pays for
    // the string-aware scan below.
    let openers: usize = body
        .chunks(255)
        .map(|chunk| {
            chunk
                .iter()
                .fold(0u8, |n, &b| n + u8::from((b == b'{') | (b == b'[')))
        })
        .map(usize::from)
        .sum();
    if openers <= max_depth {
        return false;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return true;
                }
            }
            // Unbalanced closers are the parser's to report.
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn read_body<B: JsonBackend>(body: &mut [u8], kind: BodyKind) -> Result<Draft, ProtocolError> {
    precheck(body)?;
    let mut draft = Draft::new();
    let mut rejection = None;
    let seed = ObjectSeed {
        scope: Scope::Body(kind),
        draft: &mut draft,
        rejection: &mut rejection,
    };
    let parsed = B::deserialize_seed(body, seed);
    let syntax_error = |message: String| {
        let message: String = message.chars().take(200).collect();
        invalid_json(format!("the body is not valid JSON: {message}"))
    };
    match (rejection, parsed) {
        (None, Ok(())) => Ok(draft),
        (None, Err(message)) => Err(syntax_error(message)),
        (Some(e), _) if B::CHECKS_SYNTAX_FIRST => Err(e),
        (Some(e), _) => {
            // A streaming parser stopped at a field error before reading the
            // rest: a syntax error further on must still win (error path only).
            // Skipping strings does not check their UTF-8; JSON text must be UTF-8.
            if let Err(utf8) = std::str::from_utf8(body) {
                return Err(syntax_error(utf8.to_string()));
            }
            match B::deserialize_seed(body, PhantomData::<IgnoredAny>) {
                Ok(_) => Err(e),
                Err(message) => Err(syntax_error(message)),
            }
        }
    }
}

/// Stores `error` as the answer and returns the serde error that aborts the parse.
fn reject<E: de::Error>(slot: &mut Option<ProtocolError>, error: ProtocolError) -> E {
    *slot = Some(error);
    E::custom("request rejected by validation")
}

/// A body under construction. Fields stay `None` until their key is read.
struct Draft {
    /// Fields whose key was read (for duplicate keys), one bit per [`Field`].
    seen: u64,
    vertical: Option<Vertical>,
    zip: Option<Zip>,
    state: Option<UsState>,
    /// Every optional attribute. Its `vertical`, `zip` and `state` are
    /// placeholders until [`Draft::into_ping`] sets them from the fields above.
    attributes: LeadAttributes,
    sale_type: SaleTypeRequest,
    /// `Some` once a `consent` object was read.
    consent: Option<Consent>,
    /// True once a `contact` object was read.
    contact_present: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    city: Option<String>,
    date_of_birth: Option<String>,
    ping_id: Option<PingId>,
    bid_ids: Vec<BidId>,
}

impl Draft {
    fn new() -> Draft {
        let placeholder_zip = Zip::parse("00000").expect("invariant: 00000 is five digits");
        let placeholder_state = UsState::from_index(0).expect("invariant: index 0 is a state");
        Draft {
            seen: 0,
            vertical: None,
            zip: None,
            state: None,
            attributes: LeadAttributes::new(Vertical::Auto, placeholder_zip, placeholder_state),
            sale_type: SaleTypeRequest::Any,
            consent: None,
            contact_present: false,
            first_name: None,
            last_name: None,
            phone: None,
            email: None,
            address: None,
            city: None,
            date_of_birth: None,
            ping_id: None,
            bid_ids: Vec::new(),
        }
    }

    /// Marks `field` as read; false if it already was (a duplicate key).
    fn mark_seen(&mut self, field: Field) -> bool {
        let first = self.seen & field.bit() == 0;
        self.seen |= field.bit();
        first
    }

    /// Stores one scalar field. `null` means absent.
    fn apply(&mut self, field: Field, value: &Scalar<'_>) -> Result<(), ProtocolError> {
        use rule::{
            boolean, integer, keyword, lower_text, multiline_text, source_token, text,
            LANDING_PAGE_MAX_CHARS as PAGE, NAME_MAX_CHARS as NAME, TCPA_TEXT_MAX_CHARS as TCPA,
            TEXT_MAX_CHARS as TEXT, USER_AGENT_MAX_CHARS as AGENT,
        };
        if *value == Scalar::Null {
            return Ok(());
        }
        let a = &mut self.attributes;
        // Ranges are checked before the casts, so the casts never truncate.
        match field {
            Field::Vertical => self.vertical = Some(keyword(field, value)?),
            Field::Zip => self.zip = Some(rule::zip(field, value)?),
            Field::State => self.state = Some(rule::state(field, value)?),
            Field::Age => a.age = Some(integer(field, value, 18, 120)? as u8),
            Field::Gender => a.gender = Some(keyword(field, value)?),
            Field::Credit => a.credit = Some(keyword(field, value)?),
            Field::Homeowner => a.homeowner = Some(boolean(field, value)?),
            Field::CurrentlyInsured => a.currently_insured = Some(boolean(field, value)?),
            Field::CurrentCarrier => a.current_carrier = Some(lower_text(field, value, TEXT)?),
            Field::InsuredMonths => a.insured_months = Some(integer(field, value, 0, 600)? as u16),
            Field::Vehicles => a.vehicles = Some(integer(field, value, 1, 10)? as u8),
            Field::Drivers => a.drivers = Some(integer(field, value, 1, 10)? as u8),
            Field::Violations => a.violations = Some(integer(field, value, 0, 20)? as u8),
            Field::Accidents => a.accidents = Some(integer(field, value, 0, 20)? as u8),
            Field::Sr22 => a.sr22 = Some(boolean(field, value)?),
            Field::CoverageType => a.coverage_type = Some(lower_text(field, value, TEXT)?),
            Field::HouseholdSize => a.household_size = Some(integer(field, value, 1, 20)? as u8),
            Field::Income => a.income = Some(integer(field, value, 0, 10_000_000)? as u32),
            Field::Military => a.military = Some(boolean(field, value)?),
            Field::Tobacco => a.tobacco = Some(boolean(field, value)?),
            Field::Bmi => a.bmi_tenths = Some(rule::bmi_tenths(field, value)?),
            Field::PreExisting => a.pre_existing = Some(boolean(field, value)?),
            Field::Device => a.device = Some(keyword(field, value)?),
            Field::SourceId => a.source_id = Some(source_token(field, value)?),
            Field::SubId => a.sub_id = Some(source_token(field, value)?),
            Field::LandingPage => a.landing_page = Some(text(field, value, PAGE)?),
            Field::Ip => a.ip = Some(rule::ip(field, value)?),
            Field::UserAgent => a.user_agent = Some(text(field, value, AGENT)?),
            Field::SaleType => self.sale_type = keyword(field, value)?,
            Field::PingId => self.ping_id = Some(rule::ping_id(field, value)?),
            Field::TcpaText => {
                self.consent_mut().tcpa_text = Some(multiline_text(field, value, TCPA)?)
            }
            Field::TrustedformCertUrl => {
                self.consent_mut().trustedform_cert_url = Some(rule::trustedform_url(field, value)?)
            }
            Field::JornayaLeadid => {
                self.consent_mut().jornaya_leadid = Some(text(field, value, TEXT)?)
            }
            Field::ConsentedAt => {
                self.consent_mut().consented_at_ms = Some(rule::timestamp_ms(field, value)?)
            }
            Field::ConsentIp => self.consent_mut().ip = Some(rule::ip(field, value)?),
            Field::FirstName => self.first_name = Some(text(field, value, NAME)?),
            Field::LastName => self.last_name = Some(text(field, value, NAME)?),
            Field::Phone => self.phone = Some(rule::phone(field, value)?),
            Field::Email => self.email = Some(rule::email(field, value)?),
            Field::Address => self.address = Some(text(field, value, TEXT)?),
            Field::City => self.city = Some(text(field, value, NAME)?),
            Field::DateOfBirth => self.date_of_birth = Some(rule::date(field, value)?),
            Field::Consent | Field::Contact | Field::BidIds => {
                unreachable!("invariant: object and array fields are read by their own seeds")
            }
        }
        Ok(())
    }

    fn consent_mut(&mut self) -> &mut Consent {
        self.consent.get_or_insert_with(Consent::default)
    }

    fn into_ping(mut self) -> Result<Ping, ProtocolError> {
        let vertical = self
            .vertical
            .ok_or_else(|| ProtocolError::missing("vertical"))?;
        let zip = self.zip.ok_or_else(|| ProtocolError::missing("zip"))?;
        let state = self.state.ok_or_else(|| ProtocolError::missing("state"))?;
        match state_of_zip(zip) {
            None => {
                return Err(ProtocolError::invalid(
                    "zip",
                    format!("zip {zip} is not in one of the 50 states or DC"),
                ))
            }
            Some(zip_state) if zip_state != state => {
                return Err(ProtocolError::invalid(
                    "state",
                    format!(
                        "state {} disagrees with zip {zip}, which is in {}",
                        state.as_str(),
                        zip_state.as_str()
                    ),
                ))
            }
            Some(_) => {}
        }
        let a = &mut self.attributes;
        (a.vertical, a.zip, a.state) = (vertical, zip, state);
        for &field in required_fields(vertical) {
            let present = match field {
                Field::Age => a.age.is_some(),
                Field::Vehicles => a.vehicles.is_some(),
                _ => unreachable!("invariant: required_fields names only age and vehicles"),
            };
            if !present {
                return Err(ProtocolError::new(
                    ErrorCode::MissingField,
                    format!(
                        "{} is required for {} leads",
                        field.path(),
                        vertical.as_str()
                    ),
                )
                .with_field(field.path()));
            }
        }
        if vertical == Vertical::Medicare && a.age.is_some_and(|age| age < MEDICARE_MIN_AGE) {
            return Err(ProtocolError::invalid(
                "age",
                format!("medicare leads require age {MEDICARE_MIN_AGE} or over"),
            ));
        }
        Ok(Ping {
            attributes: self.attributes,
            sale_type: self.sale_type,
            consent: self.consent,
        })
    }

    fn into_lead(mut self) -> Result<Lead, ProtocolError> {
        let contact_present = self.contact_present;
        let names = (self.first_name.take(), self.last_name.take());
        let reach = (self.phone.take(), self.email.take());
        let extra = (
            self.address.take(),
            self.city.take(),
            self.date_of_birth.take(),
        );
        let ping = self.into_ping()?;
        if !contact_present {
            return Err(ProtocolError::missing("contact"));
        }
        let contact = Contact {
            first_name: names
                .0
                .ok_or_else(|| ProtocolError::missing("contact.first_name"))?,
            last_name: names
                .1
                .ok_or_else(|| ProtocolError::missing("contact.last_name"))?,
            phone: reach
                .0
                .ok_or_else(|| ProtocolError::missing("contact.phone"))?,
            email: reach
                .1
                .ok_or_else(|| ProtocolError::missing("contact.email"))?,
            address: extra.0,
            city: extra.1,
            date_of_birth: extra.2,
        };
        Ok(Lead { ping, contact })
    }

    fn into_post(mut self) -> Result<PostRequest, ProtocolError> {
        let ping_id = self
            .ping_id
            .ok_or_else(|| ProtocolError::missing("ping_id"))?;
        if self.bid_ids.is_empty() {
            // An explicit empty array is refused while reading.
            return Err(ProtocolError::missing("bid_ids"));
        }
        if let Some(other) = self.bid_ids.iter().find(|b| b.ping != ping_id) {
            return Err(ProtocolError::invalid(
                "bid_ids",
                format!("bid {other} is not a bid of ping {ping_id}"),
            ));
        }
        let bid_ids = std::mem::take(&mut self.bid_ids);
        let lead = self.into_lead()?;
        Ok(PostRequest {
            ping_id,
            bid_ids,
            lead,
        })
    }
}

/// Reads a map key into the [`Field`] it names, without allocating for known keys.
struct KeySeed {
    scope: Scope,
}

enum Key {
    Known(Field),
    /// An unknown key's dotted path, for the error.
    Unknown(String),
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match self.scope.lookup(key) {
            Some(field) => Key::Known(field),
            None => Key::Unknown(self.scope.path_of(key)),
        })
    }
}

/// Reads the value of a scalar field and hands it to `store` while the
/// parser still holds it, so even escaped strings (which the parser
/// unescapes into a scratch buffer) are copied once, into the final
/// `String`. Refuses objects and arrays.
struct ScalarSeed<'r, F> {
    field: Field,
    rejection: &'r mut Option<ProtocolError>,
    store: F,
}

impl<'de, F> DeserializeSeed<'de> for ScalarSeed<'_, F>
where
    F: FnOnce(&Scalar<'_>) -> Result<(), ProtocolError>,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<F> ScalarSeed<'_, F>
where
    F: FnOnce(&Scalar<'_>) -> Result<(), ProtocolError>,
{
    fn finish<E: de::Error>(self, value: Scalar<'_>) -> Result<(), E> {
        (self.store)(&value).map_err(|e| reject(self.rejection, e))
    }

    fn not_scalar<E: de::Error>(self) -> E {
        let path = self.field.path();
        let error = ProtocolError::invalid(path, format!("{path} must not be an object or array"));
        reject(self.rejection, error)
    }
}

impl<'de, F> Visitor<'de> for ScalarSeed<'_, F>
where
    F: FnOnce(&Scalar<'_>) -> Result<(), ProtocolError>,
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON scalar")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.finish(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.finish(u64::try_from(v).map_or(Scalar::NegInt(v), Scalar::UInt))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.finish(Scalar::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.finish(Scalar::Float(v))
    }
    // `visit_borrowed_str` and `visit_string` forward here.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.finish(Scalar::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.finish(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.finish(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_scalar())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_scalar())
    }
}

/// Refuses every JSON type but the expected one, through `self.wrong_type()`.
macro_rules! refuse_other_types {
    ($($method:ident($($arg:ty)?)),+) => {$(
        fn $method<E: de::Error>(self $(, _: $arg)?) -> Result<(), E> {
            Err(self.wrong_type())
        }
    )+};
}

/// Reads an object (the body, `consent` or `contact`) into the draft.
struct ObjectSeed<'r> {
    scope: Scope,
    draft: &'r mut Draft,
    rejection: &'r mut Option<ProtocolError>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ObjectSeed<'_> {
    fn wrong_type<E: de::Error>(self) -> E {
        let error = match self.scope {
            Scope::Body(_) => invalid_json("the body must be a JSON object"),
            Scope::Consent => ProtocolError::invalid("consent", "consent must be an object"),
            Scope::Contact => ProtocolError::invalid("contact", "contact must be an object"),
        };
        reject(self.rejection, error)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    refuse_other_types!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str)
    );

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        match self.scope {
            // A null nested object is an absent one.
            Scope::Consent | Scope::Contact => Ok(()),
            Scope::Body(_) => Err(self.wrong_type()),
        }
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.wrong_type())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ObjectSeed {
            scope,
            draft,
            rejection,
        } = self;
        match scope {
            Scope::Consent => {
                draft.consent.get_or_insert_with(Consent::default);
            }
            Scope::Contact => draft.contact_present = true,
            Scope::Body(_) => {}
        }
        while let Some(key) = map.next_key_seed(KeySeed { scope })? {
            let field = match key {
                Key::Known(field) => field,
                Key::Unknown(path) => {
                    let message = format!("unknown field {path}");
                    let error =
                        ProtocolError::new(ErrorCode::UnknownField, message).with_field(path);
                    return Err(reject(rejection, error));
                }
            };
            if !draft.mark_seen(field) {
                let path = field.path();
                let error = ProtocolError::invalid(path, format!("{path} appears twice"));
                return Err(reject(rejection, error));
            }
            match field {
                Field::Consent | Field::Contact => {
                    let scope = if field == Field::Consent {
                        Scope::Consent
                    } else {
                        Scope::Contact
                    };
                    map.next_value_seed(ObjectSeed {
                        scope,
                        draft: &mut *draft,
                        rejection: &mut *rejection,
                    })?;
                }
                Field::BidIds => {
                    map.next_value_seed(BidIdsSeed {
                        draft: &mut *draft,
                        rejection: &mut *rejection,
                    })?;
                }
                _ => {
                    let store = |value: &Scalar<'_>| draft.apply(field, value);
                    map.next_value_seed(ScalarSeed {
                        field,
                        rejection: &mut *rejection,
                        store,
                    })?;
                }
            }
        }
        if scope == Scope::Consent
            && draft
                .consent
                .as_ref()
                .is_some_and(|c| *c == Consent::default())
        {
            // `"consent": {}` carries no evidence: same as no consent object.
            draft.consent = None;
        }
        Ok(())
    }
}

/// Reads `bid_ids`: an array of 1 to [`MAX_BIDS_PER_POST`] distinct bid ids
/// of one ping.
struct BidIdsSeed<'r> {
    draft: &'r mut Draft,
    rejection: &'r mut Option<ProtocolError>,
}

impl<'de> DeserializeSeed<'de> for BidIdsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl BidIdsSeed<'_> {
    fn wrong_type<E: de::Error>(self) -> E {
        let error = ProtocolError::invalid("bid_ids", "bid_ids must be an array of bid ids");
        reject(self.rejection, error)
    }
}

impl<'de> Visitor<'de> for BidIdsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of bid ids")
    }

    refuse_other_types!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str)
    );

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(()) // absent; reported as missing after the body is read
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.wrong_type())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let BidIdsSeed { draft, rejection } = self;
        let field = Field::BidIds;
        let bids = &mut draft.bid_ids;
        bids.reserve_exact(MAX_BIDS_PER_POST);
        loop {
            let store = |value: &Scalar<'_>| {
                let id = rule::bid_id(field, value)?;
                let problem = if bids.len() == MAX_BIDS_PER_POST {
                    format!("bid_ids holds at most {MAX_BIDS_PER_POST} bids")
                } else if bids.contains(&id) {
                    format!("bid {id} appears twice in bid_ids")
                } else if bids.first().is_some_and(|first| first.ping != id.ping) {
                    "bid_ids must all be bids of the same ping".to_owned()
                } else {
                    bids.push(id);
                    return Ok(());
                };
                Err(ProtocolError::invalid("bid_ids", problem))
            };
            let seed = ScalarSeed {
                field,
                rejection: &mut *rejection,
                store,
            };
            if seq.next_element_seed(seed)?.is_none() {
                break;
            }
        }
        if bids.is_empty() {
            let error = ProtocolError::invalid("bid_ids", "bid_ids must name at least one bid");
            return Err(reject(rejection, error));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadex_engine::lead::{Credit, Device, Gender};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const PING_FIXTURE: &[u8] = include_bytes!("../tests/fixtures/ping.json");
    const POST_FIXTURE: &[u8] = include_bytes!("../tests/fixtures/post.json");

    fn base_ping() -> Value {
        json!({"vertical": "auto", "zip": "90210", "state": "CA", "vehicles": 2})
    }

    fn base_lead() -> Value {
        let mut v = base_ping();
        v["contact"] = json!({
            "first_name": "Ada", "last_name": "Lovelace", "phone": "212-201-0000", "email": "ada@example.com"
        });
        v
    }

    fn base_post() -> Value {
        let mut v = base_lead();
        let ping = PingId(0xabcdef);
        v["ping_id"] = json!(ping.to_string());
        v["bid_ids"] = json!([
            BidId { ping, index: 0 }.to_string(),
            BidId { ping, index: 1 }.to_string()
        ]);
        v
    }

    /// Sets (or with `None` removes) the value at a dotted path.
    fn with(mut v: Value, path: &str, value: Option<Value>) -> Value {
        let (parent, key) = match path.split_once('.') {
            Some((object, key)) => (&mut v[object], key),
            None => (&mut v, path),
        };
        let object = parent.as_object_mut().expect("parent is an object");
        match value {
            Some(value) => object.insert(key.to_owned(), value),
            None => object.remove(key),
        };
        v
    }

    fn bytes(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    /// Parses `body` with the parser of `kind`, dropping the value.
    fn outcome(kind: BodyKind, mut body: Vec<u8>) -> Result<(), ProtocolError> {
        match kind {
            BodyKind::Ping => parse_ping(&mut body).map(drop),
            BodyKind::Post => parse_post(&mut body).map(drop),
            BodyKind::DirectPost => parse_direct_post(&mut body).map(drop),
        }
    }

    #[track_caller]
    fn assert_refused(
        kind: BodyKind,
        body: Vec<u8>,
        code: ErrorCode,
        field: Option<&str>,
    ) -> ProtocolError {
        let text = String::from_utf8_lossy(&body)
            .chars()
            .take(300)
            .collect::<String>();
        let e = outcome(kind, body).expect_err(&format!("accepted {text}"));
        assert_eq!(
            (e.code, e.field.as_deref()),
            (code, field),
            "{text}: {}",
            e.message
        );
        e
    }

    #[test]
    fn ping_fixture_parses_into_every_field() {
        let ping = parse_ping(&mut PING_FIXTURE.to_vec()).unwrap();
        let a = &ping.attributes;
        assert_eq!(
            (a.vertical, a.zip.to_string(), a.state.as_str()),
            (Vertical::Auto, "90210".into(), "CA")
        );
        assert_eq!(
            (a.age, a.gender, a.credit),
            (Some(34), Some(Gender::Female), Some(Credit::Good))
        );
        assert_eq!(
            (a.homeowner, a.currently_insured, a.sr22, a.military),
            (Some(true), Some(true), Some(false), Some(false))
        );
        assert_eq!(a.current_carrier.as_deref(), Some("state farm"));
        assert_eq!(a.coverage_type.as_deref(), Some("full"));
        assert_eq!(
            (
                a.insured_months,
                a.vehicles,
                a.drivers,
                a.violations,
                a.accidents
            ),
            (Some(36), Some(2), Some(2), Some(0), Some(1))
        );
        assert_eq!((a.income, a.device), (Some(85_000), Some(Device::Mobile)));
        assert_eq!(
            (a.source_id.as_deref(), a.sub_id.as_deref()),
            (Some("google-search"), Some("camp_4471.adgrp-12"))
        );
        assert!(a
            .landing_page
            .as_deref()
            .unwrap()
            .starts_with("https://quotes.example.com/"));
        assert_eq!(a.ip.as_deref(), Some("203.0.113.54"));
        assert!(a.user_agent.as_deref().unwrap().starts_with("Mozilla/5.0"));
        assert_eq!(ping.sale_type, SaleTypeRequest::Any);
        let c = ping.consent.as_ref().unwrap();
        assert!(c
            .tcpa_text
            .as_deref()
            .unwrap()
            .starts_with("By clicking \"Get My Quotes\""));
        assert!(c.has_tcpa() && c.has_trustedform() && c.has_jornaya());
        assert_eq!(c.consented_at_ms, Some(1_795_427_981_250));
        assert_eq!(c.ip.as_deref(), Some("203.0.113.54"));
        assert_eq!(
            (a.household_size, a.bmi_tenths, a.tobacco, a.pre_existing),
            (None, None, None, None)
        );
    }

    #[test]
    fn post_fixture_parses_and_matches_the_ping_fixture() {
        let post = parse_post(&mut POST_FIXTURE.to_vec()).unwrap();
        let ping = parse_ping(&mut PING_FIXTURE.to_vec()).unwrap();
        assert_eq!(
            post.lead.ping, ping,
            "the post fixture posts the ping fixture"
        );
        assert_eq!(
            post.ping_id.to_string(),
            "p_7f3a9c0e5b2d4f6a8c1e3b5d7f9a0c2e"
        );
        assert_eq!(
            post.bid_ids.iter().map(|b| b.index).collect::<Vec<_>>(),
            [0, 2]
        );
        let c = &post.lead.contact;
        assert_eq!(
            (c.first_name.as_str(), c.last_name.as_str()),
            ("Maria", "Gonzalez-Whitfield")
        );
        assert_eq!(
            (c.phone.as_str(), c.email.as_str()),
            ("3108243391", "maria.gonzalez@example.com")
        );
        assert_eq!(c.address.as_deref(), Some("1234 Beverly Glen Blvd, Apt 5"));
        assert_eq!(
            (c.city.as_deref(), c.date_of_birth.as_deref()),
            (Some("Beverly Hills"), Some("1992-04-17"))
        );

        // The same body without ping_id / bid_ids is a direct post.
        let mut direct: Value = serde_json::from_slice(POST_FIXTURE).unwrap();
        direct = with(with(direct, "ping_id", None), "bid_ids", None);
        assert_eq!(parse_direct_post(&mut bytes(&direct)).unwrap(), post.lead);
    }

    #[test]
    fn minimal_bodies_per_vertical() {
        let minimal = |vertical: &str| json!({"vertical": vertical, "zip": "10001", "state": "NY"});
        for v in Vertical::ALL {
            let mut body = minimal(v.as_str());
            for name in crate::required_attributes(v) {
                body[*name] = json!(if *name == "age" { 65 } else { 1 });
            }
            let ping = parse_ping(&mut bytes(&body)).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert_eq!(ping.attributes.vertical, v);
            assert_eq!(
                (ping.sale_type, &ping.consent),
                (SaleTypeRequest::Any, &None)
            );
            for name in crate::required_attributes(v) {
                let e = assert_refused(
                    BodyKind::Ping,
                    bytes(&with(body.clone(), name, None)),
                    ErrorCode::MissingField,
                    Some(name),
                );
                assert!(e.message.contains(v.as_str()), "{}", e.message);
            }
        }
    }

    #[test]
    fn normalization() {
        let body = json!({
            "vertical": " AUTO ", "zip": " 02134 ", "state": "ma", "vehicles": 1, "gender": "Non_Binary",
            "sale_type": "Exclusive", "current_carrier": " GEICO ", "ip": "2001:0DB8::0001", "bmi": 24.3,
            "age": null, "consent": {"trustedform_cert_url": "HTTPS://CERT.TRUSTEDFORM.COM/abc", "consented_at": "2026-11-23T04:59:41-05:00"},
        });
        let ping = parse_ping(&mut bytes(&body)).unwrap();
        let a = &ping.attributes;
        assert_eq!(
            (a.vertical, a.zip.to_string(), a.state.as_str()),
            (Vertical::Auto, "02134".into(), "MA")
        );
        assert_eq!(
            (a.gender, ping.sale_type),
            (Some(Gender::NonBinary), SaleTypeRequest::Exclusive)
        );
        assert_eq!(
            (a.current_carrier.as_deref(), a.ip.as_deref()),
            (Some("geico"), Some("2001:db8::1"))
        );
        assert_eq!((a.bmi_tenths, a.age), (Some(243), None));
        let consent = ping.consent.unwrap();
        assert_eq!(
            consent.trustedform_cert_url.as_deref(),
            Some("https://cert.trustedform.com/abc")
        );
        assert_eq!(consent.consented_at_ms, Some(1_795_427_981_000));

        // Empty and null consent objects are no consent.
        for consent in [json!({}), Value::Null] {
            let ping =
                parse_ping(&mut bytes(&with(base_ping(), "consent", Some(consent)))).unwrap();
            assert_eq!(ping.consent, None);
        }
        // Escaped keys and values are read like plain ones.
        let mut escaped = br#"{"vertic\u0061l":"auto","zip":"9021\u0030","state":"CA","vehicles":2,"sub_id":"a\u002db"}"#.to_vec();
        let ping = parse_ping(&mut escaped).unwrap();
        assert_eq!(
            (
                ping.attributes.zip.to_string(),
                ping.attributes.sub_id.as_deref()
            ),
            ("90210".into(), Some("a-b"))
        );
    }

    #[test]
    fn body_level_errors() {
        use BodyKind::*;
        let too_large = format!("{{\"sub_id\":\"{}\"}}", "a".repeat(MAX_BODY_BYTES));
        assert_refused(Ping, too_large.into_bytes(), ErrorCode::BodyTooLarge, None);
        for body in [
            "",
            "  \n",
            "{",
            "{\"vertical\":\"auto\",}",
            "{} x",
            "{}{}",
            "{\"zip\":\"9\u{0}\"}",
            "{'zip':1}",
            "[]",
            "1",
            "\"x\"",
            "null",
            "true",
        ] {
            assert_refused(Ping, body.as_bytes().to_vec(), ErrorCode::InvalidJson, None);
        }
        let e = assert_refused(Post, b"[1]".to_vec(), ErrorCode::InvalidJson, None);
        assert!(e.message.contains("object"), "{}", e.message);
        assert_refused(
            Ping,
            b"{\"zip\":\"\xff\"}".to_vec(),
            ErrorCode::InvalidJson,
            None,
        );
        assert_refused(
            Ping,
            b"{\"zip\":\"\\ud800\"}".to_vec(),
            ErrorCode::InvalidJson,
            None,
        );

        let deep = format!(
            "{{\"sub_id\":{}1{}}}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        let e = assert_refused(Ping, deep.into_bytes(), ErrorCode::InvalidJson, None);
        assert!(e.message.contains("nests deeper"), "{}", e.message);
        let very_deep = "[".repeat(100_000);
        assert_refused(Ping, very_deep.into_bytes(), ErrorCode::BodyTooLarge, None);
        let very_deep = "[".repeat(60_000);
        assert_refused(Ping, very_deep.into_bytes(), ErrorCode::InvalidJson, None);
        // Brackets inside strings (escaped quotes included) are not nesting.
        let page = format!("https://x.example/{}\\\"{}", "[{".repeat(20), "]".repeat(5));
        let ping = parse_ping(&mut bytes(&with(
            base_ping(),
            "landing_page",
            Some(json!(page)),
        )))
        .unwrap();
        assert!(ping.attributes.landing_page.unwrap().contains("[{[{"));
        // Nesting exactly at the limit reaches the parser (and fails as a type error).
        let at_limit = format!(
            "{{\"sub_id\":{}1{}}}",
            "[".repeat(MAX_JSON_DEPTH - 1),
            "]".repeat(MAX_JSON_DEPTH - 1)
        );
        assert_refused(
            Ping,
            at_limit.into_bytes(),
            ErrorCode::InvalidField,
            Some("sub_id"),
        );
    }

    #[test]
    fn duplicate_and_unknown_keys() {
        use BodyKind::*;
        let dup = br#"{"vertical":"auto","zip":"90210","zip":"90210","state":"CA","vehicles":2}"#
            .to_vec();
        let e = assert_refused(Ping, dup, ErrorCode::InvalidField, Some("zip"));
        assert!(e.message.contains("twice"));
        let dup_null =
            br#"{"vertical":"auto","zip":"90210","state":"CA","vehicles":2,"age":null,"age":30}"#
                .to_vec();
        assert_refused(Ping, dup_null, ErrorCode::InvalidField, Some("age"));
        let dup_nested = br#"{"vertical":"auto","zip":"90210","state":"CA","vehicles":2,"consent":{"ip":"1.2.3.4","ip":"1.2.3.4"}}"#.to_vec();
        assert_refused(
            Ping,
            dup_nested,
            ErrorCode::InvalidField,
            Some("consent.ip"),
        );
        let dup_object = br#"{"vertical":"auto","zip":"90210","state":"CA","vehicles":2,"consent":{},"consent":{}}"#.to_vec();
        assert_refused(Ping, dup_object, ErrorCode::InvalidField, Some("consent"));

        let e = assert_refused(
            Ping,
            bytes(&with(base_ping(), "color", Some(json!(1)))),
            ErrorCode::UnknownField,
            Some("color"),
        );
        assert_eq!(e.message, "unknown field color");
        assert_refused(
            Ping,
            bytes(&with(base_ping(), "Zip", Some(json!("90210")))),
            ErrorCode::UnknownField,
            Some("Zip"),
        );
        assert_refused(
            Ping,
            bytes(&with(base_ping(), "consent", Some(json!({"x": 1})))),
            ErrorCode::UnknownField,
            Some("consent.x"),
        );
        assert_refused(
            Ping,
            bytes(&with(base_ping(), "consent", Some(json!({"zip": "90210"})))),
            ErrorCode::UnknownField,
            Some("consent.zip"),
        );
        assert_refused(
            Ping,
            bytes(&base_lead()),
            ErrorCode::UnknownField,
            Some("contact"),
        );
        assert_refused(
            Ping,
            bytes(&with(base_ping(), "ping_id", Some(json!("p_1")))),
            ErrorCode::UnknownField,
            Some("ping_id"),
        );
        assert_refused(
            DirectPost,
            bytes(&with(base_lead(), "contact.vin", Some(json!("1HG")))),
            ErrorCode::UnknownField,
            Some("contact.vin"),
        );
        assert_refused(
            DirectPost,
            bytes(&with(base_lead(), "bid_ids", Some(json!([])))),
            ErrorCode::UnknownField,
            Some("bid_ids"),
        );
        assert_refused(
            DirectPost,
            bytes(&with(base_lead(), "ping_id", Some(json!("p_1")))),
            ErrorCode::UnknownField,
            Some("ping_id"),
        );
        let long_key = "k".repeat(1000);
        let e = assert_refused(
            Ping,
            bytes(&with(base_ping(), &long_key, Some(json!(1)))),
            ErrorCode::UnknownField,
            Some(&long_key[..64]),
        );
        assert!(e.message.len() < 100);
    }

    #[test]
    fn required_fields_and_geography() {
        use BodyKind::*;
        use ErrorCode::{InvalidField as Invalid, MissingField as Missing};
        for name in ["vertical", "zip", "state"] {
            let e = assert_refused(
                Ping,
                bytes(&with(base_ping(), name, None)),
                Missing,
                Some(name),
            );
            assert_eq!(e.message, format!("{name} is required"));
            assert_refused(
                Ping,
                bytes(&with(base_ping(), name, Some(Value::Null))),
                Missing,
                Some(name),
            );
            assert_refused(
                DirectPost,
                bytes(&with(base_lead(), name, None)),
                Missing,
                Some(name),
            );
            assert_refused(
                Post,
                bytes(&with(base_post(), name, None)),
                Missing,
                Some(name),
            );
        }
        assert_refused(Ping, br#"{}"#.to_vec(), Missing, Some("vertical"));
        let e = assert_refused(
            Ping,
            bytes(&with(base_ping(), "zip", Some(json!("10001")))),
            Invalid,
            Some("state"),
        );
        assert_eq!(
            e.message,
            "state CA disagrees with zip 10001, which is in NY"
        );
        assert_refused(
            Ping,
            bytes(&with(base_ping(), "zip", Some(json!("00901")))),
            Invalid,
            Some("zip"),
        );
        assert_refused(
            Ping,
            bytes(&with(base_ping(), "zip", Some(json!(90210)))),
            Invalid,
            Some("zip"),
        );
        assert_refused(
            Ping,
            bytes(&with(base_ping(), "zip", Some(json!("9021")))),
            Invalid,
            Some("zip"),
        );
        assert_refused(
            Ping,
            bytes(&with(base_ping(), "state", Some(json!("XX")))),
            Invalid,
            Some("state"),
        );
        assert_refused(
            Ping,
            bytes(&with(base_ping(), "state", Some(json!("PR")))),
            Invalid,
            Some("state"),
        );
        assert_refused(
            Ping,
            bytes(&with(base_ping(), "vertical", Some(json!("boat")))),
            Invalid,
            Some("vertical"),
        );

        let medicare = json!({"vertical": "medicare", "zip": "90210", "state": "CA", "age": 59});
        let e = assert_refused(Ping, bytes(&medicare), Invalid, Some("age"));
        assert!(e.message.contains("60"));
        assert!(parse_ping(&mut bytes(&with(medicare, "age", Some(json!(60))))).is_ok());
    }

    #[test]
    fn every_attribute_rule_names_its_field() {
        use ErrorCode::InvalidField as Invalid;
        let cases: &[(&str, Value)] = &[
            ("age", json!(17)),
            ("age", json!(121)),
            ("age", json!(-30)),
            ("age", json!(30.0)),
            ("age", json!("30")),
            ("age", json!([30])),
            ("age", json!({"v": 30})),
            ("gender", json!("m")),
            ("credit", json!("great")),
            ("credit", json!(1)),
            ("device", json!("tablet")),
            ("sale_type", json!("both")),
            ("sale_type", json!(true)),
            ("homeowner", json!("true")),
            ("currently_insured", json!(1)),
            ("sr22", json!("no")),
            ("military", json!(0)),
            ("tobacco", json!("y")),
            ("pre_existing", json!([])),
            ("current_carrier", json!("")),
            ("current_carrier", json!("  ")),
            ("current_carrier", json!("a".repeat(257))),
            ("current_carrier", json!(5)),
            ("insured_months", json!(601)),
            ("vehicles", json!(0)),
            ("vehicles", json!(11)),
            ("drivers", json!(0)),
            ("drivers", json!(11)),
            ("violations", json!(21)),
            ("accidents", json!(21)),
            ("household_size", json!(0)),
            ("household_size", json!(21)),
            ("income", json!(10_000_001)),
            ("income", json!(-1)),
            ("income", json!(1e7)),
            ("bmi", json!(9.9)),
            ("bmi", json!(80.1)),
            ("bmi", json!(24.55)),
            ("bmi", json!("24.5")),
            ("coverage_type", json!("a\u{1}b")),
            ("source_id", json!("google search")),
            ("sub_id", json!("a/b")),
            ("sub_id", json!("")),
            ("landing_page", json!("a".repeat(2049))),
            ("user_agent", json!("a".repeat(513))),
            ("ip", json!("999.1.1.1")),
            ("ip", json!(1234)),
            ("consent", json!("yes")),
            ("consent", json!([])),
            ("consent", json!(true)),
            ("consent.tcpa_text", json!("a".repeat(4097))),
            ("consent.tcpa_text", json!("")),
            (
                "consent.trustedform_cert_url",
                json!("https://example.com/x"),
            ),
            ("consent.jornaya_leadid", json!(12)),
            ("consent.consented_at", json!("2026-11-23")),
            ("consent.consented_at", json!(1_795_427_981)),
            ("consent.ip", json!("not-an-ip")),
        ];
        for (path, value) in cases {
            let mut body = base_ping();
            if path.starts_with("consent.") {
                body["consent"] = json!({});
            }
            let e = assert_refused(
                BodyKind::Ping,
                bytes(&with(body, path, Some(value.clone()))),
                Invalid,
                Some(path),
            );
            assert!(e.message.starts_with(path), "{path}: {}", e.message);
        }
        // The bounds themselves are accepted.
        let edges = json!({
            "vertical": "health", "zip": "90210", "state": "CA", "age": 120, "insured_months": 600, "vehicles": 10, "drivers": 1,
            "violations": 20, "accidents": 0, "household_size": 20, "income": 10_000_000, "bmi": 80, "landing_page": "a".repeat(2048),
            "user_agent": "a".repeat(512), "current_carrier": "a".repeat(256), "consent": {"tcpa_text": "a\n".repeat(2048)},
        });
        parse_ping(&mut bytes(&edges)).unwrap();
    }

    #[test]
    fn post_rules() {
        use BodyKind::Post;
        use ErrorCode::{InvalidField as Invalid, MissingField as Missing};
        let ping = PingId(0xabcdef);
        let bid = |index: u8| json!(BidId { ping, index }.to_string());
        let post = parse_post(&mut bytes(&base_post())).unwrap();
        assert_eq!(post.ping_id, ping);
        assert_eq!(
            post.bid_ids,
            [BidId { ping, index: 0 }, BidId { ping, index: 1 }]
        );

        assert_refused(
            Post,
            bytes(&with(base_post(), "ping_id", None)),
            Missing,
            Some("ping_id"),
        );
        assert_refused(
            Post,
            bytes(&with(base_post(), "ping_id", Some(json!("p_abc")))),
            Invalid,
            Some("ping_id"),
        );
        assert_refused(
            Post,
            bytes(&with(
                base_post(),
                "ping_id",
                Some(json!(ping.to_string().to_uppercase())),
            )),
            Invalid,
            Some("ping_id"),
        );
        assert_refused(
            Post,
            bytes(&with(base_post(), "bid_ids", None)),
            Missing,
            Some("bid_ids"),
        );
        assert_refused(
            Post,
            bytes(&with(base_post(), "bid_ids", Some(Value::Null))),
            Missing,
            Some("bid_ids"),
        );
        let bid_cases = [
            json!([]),
            json!(bid(0)),
            json!({"0": bid(0)}),
            json!([bid(0), bid(0)]),
            json!((0..9).map(bid).collect::<Vec<_>>()),
            json!([
                bid(0),
                BidId {
                    ping: PingId(1),
                    index: 1
                }
                .to_string()
            ]),
            json!([BidId {
                ping: PingId(1),
                index: 0
            }
            .to_string()]),
            json!([bid(0), "b_1"]),
            json!([bid(0), 7]),
            json!([bid(0), [bid(1)]]),
            json!([ping.to_string()]),
        ];
        for bids in bid_cases {
            assert_refused(
                Post,
                bytes(&with(base_post(), "bid_ids", Some(bids))),
                Invalid,
                Some("bid_ids"),
            );
        }
        let eight = with(
            base_post(),
            "bid_ids",
            Some(json!((0..8).map(bid).collect::<Vec<_>>())),
        );
        assert_eq!(
            parse_post(&mut bytes(&eight)).unwrap().bid_ids.len(),
            MAX_BIDS_PER_POST
        );
    }

    #[test]
    fn contact_rules() {
        use BodyKind::{DirectPost, Post};
        use ErrorCode::{InvalidField as Invalid, MissingField as Missing};
        for kind in [Post, DirectPost] {
            let base = if kind == Post {
                base_post()
            } else {
                base_lead()
            };
            assert_refused(
                kind,
                bytes(&with(base.clone(), "contact", None)),
                Missing,
                Some("contact"),
            );
            assert_refused(
                kind,
                bytes(&with(base.clone(), "contact", Some(Value::Null))),
                Missing,
                Some("contact"),
            );
            for not_object in [json!("Ada"), json!([]), json!(1)] {
                assert_refused(
                    kind,
                    bytes(&with(base.clone(), "contact", Some(not_object))),
                    Invalid,
                    Some("contact"),
                );
            }
            for name in ["first_name", "last_name", "phone", "email"] {
                let path = format!("contact.{name}");
                let e = assert_refused(
                    kind,
                    bytes(&with(base.clone(), &path, None)),
                    Missing,
                    Some(&path),
                );
                assert_eq!(e.message, format!("{path} is required"));
            }
            let cases: &[(&str, Value)] = &[
                ("contact.first_name", json!("")),
                ("contact.first_name", json!("a".repeat(101))),
                ("contact.last_name", json!(42)),
                ("contact.phone", json!("555-0100")),
                ("contact.phone", json!("(212) 555-0123")),
                ("contact.phone", json!("011-201-0000")),
                ("contact.email", json!("ada@")),
                ("contact.email", json!("ada@example")),
                ("contact.address", json!("")),
                ("contact.city", json!("a".repeat(101))),
                ("contact.date_of_birth", json!("1990-02-30")),
                ("contact.date_of_birth", json!("02/03/1990")),
            ];
            for (path, value) in cases {
                assert_refused(
                    kind,
                    bytes(&with(base.clone(), path, Some(value.clone()))),
                    Invalid,
                    Some(path),
                );
            }
        }
    }

    #[test]
    fn nesting_prescan() {
        assert!(!nesting_depth_exceeds(b"{}", 1));
        assert!(nesting_depth_exceeds(b"{[]}", 1));
        assert!(!nesting_depth_exceeds(br#"{"a":"[[[[","b":[]}"#, 2));
        assert!(!nesting_depth_exceeds(br#"{"a":"\"[[[[","b":[]}"#, 2));
        assert!(
            nesting_depth_exceeds(br#"{"a":"\\",[[[]]]}"#, 3),
            "an escaped backslash ends the string"
        );
        assert!(
            !nesting_depth_exceeds(b"[][][][][]", 1),
            "siblings are not nesting"
        );
    }

    /// Random single-byte edits of a valid body.
    fn mutated(fixture: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
        let len = fixture.len();
        prop::collection::vec((0..len, any::<u8>(), 0..4u8), 1..6).prop_map(move |edits| {
            let mut body = fixture.to_vec();
            for (at, byte, op) in edits {
                let at = at.min(body.len().saturating_sub(1));
                match op {
                    0 => body.truncate(at),
                    1 if !body.is_empty() => body[at] ^= byte | 1,
                    2 => body.insert(at, byte),
                    _ if !body.is_empty() => {
                        body.remove(at);
                    }
                    _ => {}
                }
            }
            body
        })
    }

    fn never_panics_and_refuses_with_4xx(body: Vec<u8>) -> Result<(), TestCaseError> {
        for kind in [BodyKind::Ping, BodyKind::Post, BodyKind::DirectPost] {
            if let Err(e) = outcome(kind, body.clone()) {
                prop_assert!((400..500).contains(&e.http_status()), "{:?}", e);
                prop_assert!(!e.message.is_empty());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes(body in prop::collection::vec(any::<u8>(), 0..2048)) {
            never_panics_and_refuses_with_4xx(body)?;
        }

        #[test]
        fn random_json_ish_text(body in r#"[{}\[\]":,0-9a-z_ .\\+eE-]{0,300}"#) {
            never_panics_and_refuses_with_4xx(body.into_bytes())?;
        }

        #[test]
        fn json_ish_objects_with_known_keys(
            pairs in prop::collection::vec((
                prop::sample::select(vec!["vertical", "zip", "state", "age", "bmi", "consent", "contact", "bid_ids", "ping_id", "phone", "x"]),
                prop::sample::select(vec!["\"auto\"", "\"90210\"", "\"CA\"", "34", "24.5", "null", "true", "{}", "[]", "-1", "1e999", "\"\\u0000\"", "{\"ip\":1}", "[\"b_1\"]"]),
            ), 0..12)
        ) {
            let body = format!("{{{}}}", pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(","));
            never_panics_and_refuses_with_4xx(body.into_bytes())?;
        }

        #[test]
        fn mutations_of_the_ping_fixture(body in mutated(PING_FIXTURE)) {
            never_panics_and_refuses_with_4xx(body)?;
        }

        #[test]
        fn mutations_of_the_post_fixture(body in mutated(POST_FIXTURE)) {
            never_panics_and_refuses_with_4xx(body)?;
        }
    }
}
