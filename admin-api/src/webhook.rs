//! Webhook delivery core: signing, target checks against server-side request
//! forgery (SSRF), one delivery attempt over HTTP, and the retry schedule.
//!
//! It holds no state and no queue: the caller owns the outbox, decides when
//! to try again (with [`retry_delay_ms`]) and records each [`AttemptOutcome`].
//! Keeping storage out keeps this module testable over a real socket alone.
//!
//! A receiver checks a delivery with [`verify_signature`]:
//!
//! ```
//! use leadex_admin_api::webhook::{signature_header, verify_signature};
//! let body = br#"{"lead_id":"l_1"}"#;
//! let header = signature_header(b"whsec_1", 1_700_000_000, body);
//! assert!(verify_signature(b"whsec_1", &header, body, 1_700_000_010, 300).is_ok());
//! assert!(verify_signature(b"whsec_2", &header, body, 1_700_000_010, 300).is_err());
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Sha256;
use url::{Host, Url};

/// The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "Leadex-Signature";
/// The header carrying the event type (`lead.sold`, …).
pub const EVENT_HEADER: &str = "Leadex-Event";
/// The header carrying the delivery id, the same on every retry of one
/// delivery, so receivers can drop duplicates.
pub const DELIVERY_HEADER: &str = "Leadex-Delivery";

/// Longest target URL accepted, in bytes.
pub const URL_LENGTH_MAX_BYTES: usize = 2048;
/// Longest signature header [`verify_signature`] parses, in bytes; it bounds
/// the work an attacker can make a receiver do per request.
pub const SIGNATURE_HEADER_LENGTH_MAX_BYTES: usize = 4096;
/// At most this much of a response body is read; the rest is dropped with
/// the connection.
pub const RESPONSE_READ_MAX_BYTES: usize = 64 * 1024;
/// At most this much of the response body is kept in the outcome.
pub const RESPONSE_EXCERPT_MAX_BYTES: usize = 512;
/// Addresses kept from one name resolution; more only lengthens the list
/// of connection attempts.
pub const RESOLVED_ADDRESSES_MAX: usize = 16;
/// Longest error text in an outcome, in bytes, so a chatty error cannot
/// bloat the outbox.
const ERROR_TEXT_MAX_BYTES: usize = 300;
/// Depth to which an error's chain of causes is followed.
const ERROR_SOURCE_DEPTH_MAX: usize = 8;

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------
// Signing

/// Why a signature header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is too long, has an entry without `=`, a repeated or
    /// non-numeric `t`, or a `v1` that is not 64 hex digits.
    #[error("malformed signature header")]
    Malformed,
    /// No `t=` entry.
    #[error("signature header has no timestamp (t=)")]
    MissingTimestamp,
    /// No `v1=` entry.
    #[error("signature header has no v1 signature")]
    MissingSignature,
    /// The timestamp is further from now than the tolerance: a replay, or a
    /// clock far off.
    #[error("signature timestamp {timestamp_s} is outside the tolerance at {now_s}")]
    TimestampOutOfTolerance {
        /// The header's `t`, Unix seconds.
        timestamp_s: i64,
        /// The receiver's clock, Unix seconds.
        now_s: i64,
    },
    /// No `v1` matches the body, timestamp and secret.
    #[error("signature does not match")]
    Mismatch,
}

impl SignatureError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Malformed => "signature_malformed",
            SignatureError::MissingTimestamp => "signature_missing_timestamp",
            SignatureError::MissingSignature => "signature_missing_v1",
            SignatureError::TimestampOutOfTolerance { .. } => {
                "signature_timestamp_out_of_tolerance"
            }
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

/// The MAC over `"<timestamp_s>.<body>"`; the timestamp is inside the MAC so
/// an old signature cannot be replayed with a fresh `t`.
fn signing_mac(secret: &[u8], timestamp_s: i64, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret).expect("invariant: HMAC accepts keys of any length");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp_s`:
/// `t=<timestamp_s>,v1=<lower-hex HMAC-SHA256(secret, "<timestamp_s>.<body>")>`.
pub fn signature_header(secret: &[u8], timestamp_s: i64, body: &[u8]) -> String {
    let tag = signing_mac(secret, timestamp_s, body)
        .finalize()
        .into_bytes();
    format!("t={timestamp_s},v1={}", hex::encode(tag))
}

/// Checks a [`SIGNATURE_HEADER`] value against `body` and `secret`, and that
/// its timestamp is within `tolerance_s` seconds of `now_s` (either side).
///
/// Several `v1=` entries are accepted and any match passes, so a sender can
/// sign with an old and a new secret while a receiver rotates. Unknown keys
/// are ignored, for later schemes. Comparison is constant-time.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    if header.len() > SIGNATURE_HEADER_LENGTH_MAX_BYTES {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp_s: Option<i64> = None;
    let mut candidates: Vec<[u8; 32]> = Vec::new();
    // Bounded by the header length checked above.
    for entry in header.split(',') {
        let (key, value) = entry.split_once('=').ok_or(SignatureError::Malformed)?;
        match key.trim() {
            "t" => {
                if timestamp_s.is_some() {
                    return Err(SignatureError::Malformed);
                }
                let parsed = value
                    .trim()
                    .parse()
                    .map_err(|_| SignatureError::Malformed)?;
                timestamp_s = Some(parsed);
            }
            "v1" => {
                let mut tag = [0u8; 32];
                hex::decode_to_slice(value.trim(), &mut tag)
                    .map_err(|_| SignatureError::Malformed)?;
                candidates.push(tag);
            }
            _ => {}
        }
    }
    let timestamp_s = timestamp_s.ok_or(SignatureError::MissingTimestamp)?;
    if candidates.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    let tolerance_s = u64::try_from(tolerance_s).unwrap_or(0);
    if now_s.abs_diff(timestamp_s) > tolerance_s {
        return Err(SignatureError::TimestampOutOfTolerance { timestamp_s, now_s });
    }
    let mac = signing_mac(secret, timestamp_s, body);
    // Each comparison is constant-time. Stopping at the first match leaks
    // only which entry matched, which is not secret.
    if candidates
        .iter()
        .any(|tag| mac.clone().verify_slice(tag).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

// ---------------------------------------------------------------------------
// Target checks

/// Where deliveries may go.
///
/// The default refuses every address that is not publicly routable, so a
/// tenant cannot point a webhook at the admin port, a database or the cloud
/// metadata service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow every non-public address (loopback, private, link-local, …).
    /// For tests and single-host setups only: it also opens the cloud
    /// metadata address.
    pub allow_private: bool,
    /// Host names or IP literals (exact, case-insensitive; IPv6 with or
    /// without brackets) that may resolve to non-public addresses, for
    /// operators who deliver to an internal service.
    pub allowed_hosts: Vec<String>,
}

impl TargetPolicy {
    /// True when `host` may use non-public addresses.
    fn allows_private_host(&self, host: &str) -> bool {
        if self.allow_private {
            return true;
        }
        let host = strip_brackets(host);
        let host_ip = host.parse::<IpAddr>().ok();
        self.allowed_hosts.iter().any(|allowed| {
            let allowed = strip_brackets(allowed.trim());
            // IP literals compare as addresses, so `fd00:0::1` matches the
            // url crate's normalised `fd00::1`.
            match (host_ip, allowed.parse::<IpAddr>()) {
                (Some(host_ip), Ok(allowed_ip)) => host_ip == allowed_ip,
                _ => allowed.eq_ignore_ascii_case(host),
            }
        })
    }
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Why a target was refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Longer than [`URL_LENGTH_MAX_BYTES`].
    #[error("url is {length_bytes} bytes, more than {URL_LENGTH_MAX_BYTES}")]
    TooLong {
        /// The URL's length.
        length_bytes: usize,
    },
    /// Not a URL.
    #[error("invalid url")]
    Invalid(#[source] url::ParseError),
    /// Not `https` or `http`.
    #[error("scheme {scheme:?} is not allowed (https or http)")]
    Scheme {
        /// The scheme given.
        scheme: String,
    },
    /// `user:password@` in the URL: credentials would be stored and logged
    /// with the URL; receivers authenticate the signature instead.
    #[error("url must not contain user info")]
    UserInfo,
    /// No host.
    #[error("url has no host")]
    MissingHost,
    /// The host is an IP literal that is not public.
    #[error("address {address} is not public")]
    NonPublicAddress {
        /// The literal.
        address: IpAddr,
    },
    /// The name resolved, but only to addresses that are not public.
    #[error("host {host} resolves only to non-public addresses")]
    NoPublicAddress {
        /// The name.
        host: String,
    },
    /// The name resolved to nothing.
    #[error("host {host} resolves to no address")]
    NoAddress {
        /// The name.
        host: String,
    },
    /// The name could not be resolved.
    #[error("cannot resolve host {host}")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
}

impl TargetError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TargetError::TooLong { .. } => "url_too_long",
            TargetError::Invalid(_) => "url_invalid",
            TargetError::Scheme { .. } => "url_scheme_not_allowed",
            TargetError::UserInfo => "url_user_info_not_allowed",
            TargetError::MissingHost => "url_missing_host",
            TargetError::NonPublicAddress { .. } => "target_not_public",
            TargetError::NoPublicAddress { .. } => "target_resolves_not_public",
            TargetError::NoAddress { .. } => "target_no_address",
            TargetError::Resolve { .. } => "target_resolve_failed",
        }
    }
}

/// Checks a webhook URL before it is stored and again before each attempt.
///
/// Host names are not resolved here (DNS may change before the connection);
/// the sender's resolver checks the addresses it actually connects to. IP
/// literals never reach a resolver, so they are checked here.
pub fn check_url(url: &str, policy: &TargetPolicy) -> Result<Url, TargetError> {
    if url.len() > URL_LENGTH_MAX_BYTES {
        return Err(TargetError::TooLong {
            length_bytes: url.len(),
        });
    }
    let parsed = Url::parse(url).map_err(TargetError::Invalid)?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(TargetError::Scheme {
            scheme: parsed.scheme().to_owned(),
        });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::UserInfo);
    }
    // The url crate normalises IPv4 spellings such as `0x7f.1` or
    // `2130706433` into `Host::Ipv4`, so they cannot slip past as names.
    let literal = match parsed.host() {
        None => return Err(TargetError::MissingHost),
        Some(Host::Domain("")) => return Err(TargetError::MissingHost),
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
    };
    if let Some(address) = literal {
        let host = parsed.host_str().unwrap_or_default();
        if !is_public(address) && !policy.allows_private_host(host) {
            return Err(TargetError::NonPublicAddress { address });
        }
    }
    Ok(parsed)
}

/// True for addresses a webhook may reach by default: publicly routable
/// unicast. Refuses loopback, private, link-local (with the cloud metadata
/// address 169.254.169.254), unspecified, broadcast, multicast, shared
/// (CGNAT), documentation, benchmarking and reserved ranges, IPv6 unique
/// local and link-local, and IPv6 forms that embed an IPv4 address
/// (mapped, compatible, NAT64, 6to4) when the embedded address is refused.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// True when `ip` lies in `network/prefix_len`.
fn in_v4(ip: Ipv4Addr, network: [u8; 4], prefix_len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix_len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    // IANA IPv4 special-purpose registry, less the few globally reachable
    // entries no webhook receiver uses anyway.
    const REFUSED: [([u8; 4], u32); 15] = [
        ([0, 0, 0, 0], 8),       // "this network", includes unspecified
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local, cloud metadata
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // TEST-NET-1
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // TEST-NET-2
        ([203, 0, 113, 0], 24),  // TEST-NET-3
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, includes broadcast
    ];
    !REFUSED
        .iter()
        .any(|&(network, prefix_len)| in_v4(ip, network, prefix_len))
}

/// True when `ip` lies in `network/prefix_len`.
fn in_v6(ip: Ipv6Addr, network: Ipv6Addr, prefix_len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix_len).unwrap_or(0);
    u128::from(ip) & mask == u128::from(network) & mask
}

/// The IPv4 address in the low 32 bits.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    // Truncation keeps exactly the low 32 bits, which is the point.
    Ipv4Addr::from(u128::from(ip) as u32)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    // Forms that carry an IPv4 address: the connection reaches that
    // address (directly, or through a translator), so it decides.
    let ipv4_mapped = in_v6(ip, Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96);
    let ipv4_compatible = in_v6(ip, Ipv6Addr::UNSPECIFIED, 96);
    let nat64 = in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);
    if ipv4_mapped || ipv4_compatible || nat64 {
        return is_public_v4(low_v4(ip));
    }
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16..48.
        let embedded = (u128::from(ip) >> 80) as u32;
        return is_public_v4(Ipv4Addr::from(embedded));
    }
    const REFUSED: [(Ipv6Addr, u32); 8] = [
        (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64
        (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),     // discard-only
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),    // IETF protocol assignments, Teredo
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
        (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),    // documentation (RFC 9637)
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),     // unique local
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),    // link-local
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),     // multicast
    ];
    if REFUSED
        .iter()
        .any(|&(network, prefix_len)| in_v6(ip, network, prefix_len))
    {
        return false;
    }
    // Only 2000::/3 is allocated global unicast; the rest is reserved
    // (including the deprecated site-local fec0::/10).
    in_v6(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3)
}

/// Resolves `host` and keeps only the addresses `policy` allows.
///
/// This is what the sender connects to, so a name that resolves to a
/// public address at check time and to a private one at connect time (DNS
/// rebinding) is refused at connect time. Ports are 0: reqwest puts in the
/// URL's port.
pub async fn resolve_allowed(
    host: &str,
    policy: &TargetPolicy,
) -> Result<Vec<SocketAddr>, TargetError> {
    let resolved =
        tokio::net::lookup_host((host, 0))
            .await
            .map_err(|source| TargetError::Resolve {
                host: host.to_owned(),
                source,
            })?;
    let mut any_resolved = false;
    let mut kept = Vec::new();
    let private_allowed = policy.allows_private_host(host);
    // Bounded: a hostile DNS answer cannot make this list long.
    for address in resolved.take(RESOLVED_ADDRESSES_MAX) {
        any_resolved = true;
        if private_allowed || is_public(address.ip()) {
            kept.push(address);
        }
    }
    if kept.is_empty() {
        let host = host.to_owned();
        return Err(if any_resolved {
            TargetError::NoPublicAddress { host }
        } else {
            TargetError::NoAddress { host }
        });
    }
    Ok(kept)
}

/// The sender's DNS resolver: [`resolve_allowed`] behind reqwest's
/// [`Resolve`].
#[derive(Debug, Clone)]
pub struct AllowedAddressResolver {
    policy: Arc<TargetPolicy>,
}

impl AllowedAddressResolver {
    /// A resolver that enforces `policy`.
    pub fn new(policy: Arc<TargetPolicy>) -> AllowedAddressResolver {
        AllowedAddressResolver { policy }
    }
}

impl Resolve for AllowedAddressResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let kept = resolve_allowed(&host, &policy).await?;
            let addresses: Addrs = Box::new(kept.into_iter());
            Ok(addresses)
        })
    }
}

// ---------------------------------------------------------------------------
// Sending

/// How the [`Sender`] is set up.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// Deadline of one attempt, from connect to the last byte read.
    pub timeout_ms: u64,
    /// Where deliveries may go.
    pub policy: TargetPolicy,
    /// The `User-Agent` header.
    pub user_agent: String,
}

/// Why a [`Sender`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// `timeout_ms` is 0: every attempt would time out at once.
    #[error("webhook timeout_ms must be at least 1")]
    ZeroTimeout,
    /// The HTTP client could not be built (an invalid user agent, or the
    /// TLS backend failed to start).
    #[error("cannot build the webhook HTTP client")]
    Client(#[source] reqwest::Error),
}

impl SenderError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SenderError::ZeroTimeout => "sender_zero_timeout",
            SenderError::Client(_) => "sender_client_build_failed",
        }
    }
}

/// One delivery attempt to make.
#[derive(Clone)]
pub struct Outgoing {
    /// The endpoint.
    pub url: String,
    /// The endpoint's signing secret.
    pub secret: Vec<u8>,
    /// Sent as [`EVENT_HEADER`].
    pub event_type: String,
    /// Sent as [`DELIVERY_HEADER`]; the same on every retry.
    pub delivery_id: String,
    /// The JSON body.
    pub body: Vec<u8>,
    /// Signing time, Unix seconds (the attempt's time, not the event's, so
    /// late retries still pass the receiver's tolerance).
    pub timestamp_s: i64,
}

impl std::fmt::Debug for Outgoing {
    // By hand, so the secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("event_type", &self.event_type)
            .field("delivery_id", &self.delivery_id)
            .field("body_bytes", &self.body.len())
            .field("timestamp_s", &self.timestamp_s)
            .finish()
    }
}

/// What one attempt came to. Failures are outcomes, never panics or errors,
/// because the caller records them all the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// True for a 2xx answer; only then is the delivery done.
    pub ok: bool,
    /// Why it failed, set exactly when `ok` is false: `<code>: <detail>`,
    /// where the code before the first `:` is stable (`timeout`, `connect`,
    /// `redirect_not_followed`, `http_status`, `invalid_request`, `request`,
    /// or a [`TargetError::code`]). Never contains the secret or the URL.
    pub error: Option<String>,
    /// Time the attempt took.
    pub elapsed_ms: u64,
    /// The start of the response body (at most
    /// [`RESPONSE_EXCERPT_MAX_BYTES`], lossy UTF-8), best effort.
    pub response_excerpt: String,
}

/// Sends deliveries with one shared HTTP client (one connection pool).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<TargetPolicy>,
    timeout_ms: u64,
}

impl Sender {
    /// Builds the client: the policy's resolver, no redirects, no proxy,
    /// the timeout on every attempt.
    pub fn new(settings: SenderSettings) -> Result<Sender, SenderError> {
        if settings.timeout_ms == 0 {
            return Err(SenderError::ZeroTimeout);
        }
        let policy = Arc::new(settings.policy);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(AllowedAddressResolver::new(Arc::clone(&policy))))
            // A redirect could point anywhere, including at an address the
            // policy refuses; the receiver must answer at the URL it gave.
            .redirect(reqwest::redirect::Policy::none())
            // Through a proxy the proxy would resolve the target, and the
            // address check above would see only the proxy.
            .no_proxy()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .user_agent(settings.user_agent)
            .build()
            .map_err(SenderError::Client)?;
        Ok(Sender {
            client,
            policy,
            timeout_ms: settings.timeout_ms,
        })
    }

    /// Makes one attempt: checks the target, signs, POSTs, reads at most
    /// [`RESPONSE_READ_MAX_BYTES`] of the answer.
    pub async fn send(&self, request: &Outgoing) -> AttemptOutcome {
        let started = Instant::now();
        let mut outcome = self.attempt(request).await;
        outcome.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        outcome
    }

    async fn attempt(&self, request: &Outgoing) -> AttemptOutcome {
        let url = match check_url(&request.url, &self.policy) {
            Ok(url) => url,
            Err(error) => return failed(None, format!("{}: {error}", error.code())),
        };
        let signature = signature_header(&request.secret, request.timestamp_s, &request.body);
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, &request.event_type)
            .header(DELIVERY_HEADER, &request.delivery_id)
            .body(request.body.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return failed(None, self.describe(error)),
        };
        let status = response.status();
        let (body, read_error) = read_bounded(&mut response).await;
        let excerpt_end = body.len().min(RESPONSE_EXCERPT_MAX_BYTES);
        let response_excerpt = String::from_utf8_lossy(&body[..excerpt_end]).into_owned();
        let ok = status.is_success();
        let error = if ok {
            // The receiver took the delivery; a body cut short does not undo
            // that.
            None
        } else {
            let mut text = if status.is_redirection() {
                format!(
                    "redirect_not_followed: receiver answered {}; redirects are not followed",
                    status.as_u16()
                )
            } else {
                format!("http_status: receiver answered {}", status.as_u16())
            };
            if let Some(read_error) = read_error {
                text.push_str("; reading the answer failed: ");
                text.push_str(&self.describe(read_error));
            }
            Some(truncate_text(text))
        };
        AttemptOutcome {
            status: Some(status.as_u16()),
            ok,
            error,
            elapsed_ms: 0,
            response_excerpt,
        }
    }

    /// A short description of a client error: a stable code, then the chain
    /// of causes, without the URL (it may carry a token).
    fn describe(&self, error: reqwest::Error) -> String {
        let error = error.without_url();
        if error.is_timeout() {
            return format!("timeout: no complete answer within {} ms", self.timeout_ms);
        }
        // The resolver's refusal travels inside the connect error; name it
        // by its own code so the outbox says why.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        let mut depth = 0;
        while let Some(current) = cause {
            if depth == ERROR_SOURCE_DEPTH_MAX {
                break;
            }
            if let Some(target) = current.downcast_ref::<TargetError>() {
                return truncate_text(format!("{}: {target}", target.code()));
            }
            cause = current.source();
            depth += 1;
        }
        let code = if error.is_connect() {
            "connect"
        } else if error.is_builder() {
            "invalid_request"
        } else {
            "request"
        };
        truncate_text(format!("{code}: {}", error_chain(&error)))
    }
}

/// An outcome without a usable answer.
fn failed(status: Option<u16>, error: String) -> AttemptOutcome {
    AttemptOutcome {
        status,
        ok: false,
        error: Some(truncate_text(error)),
        elapsed_ms: 0,
        response_excerpt: String::new(),
    }
}

/// Reads the body up to [`RESPONSE_READ_MAX_BYTES`]; the attempt's timeout
/// bounds the time, the limit the memory.
async fn read_bounded(response: &mut reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut body = Vec::new();
    while body.len() < RESPONSE_READ_MAX_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_READ_MAX_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(error) => return (body, Some(error)),
        }
    }
    (body, None)
}

/// `error: cause: cause…`, following at most [`ERROR_SOURCE_DEPTH_MAX`]
/// causes.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    let mut depth = 0;
    while let Some(current) = cause {
        if depth == ERROR_SOURCE_DEPTH_MAX {
            break;
        }
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
        depth += 1;
    }
    text
}

/// Cuts `text` to [`ERROR_TEXT_MAX_BYTES`] on a character boundary.
fn truncate_text(mut text: String) -> String {
    if text.len() > ERROR_TEXT_MAX_BYTES {
        let mut end = ERROR_TEXT_MAX_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

// ---------------------------------------------------------------------------
// Backoff

/// The wait before attempt `attempt + 1`, after `attempt` failures
/// (`attempt` starts at 1; 0 is taken as 1).
///
/// `base_ms * 2^(attempt-1)`, capped at `max_ms`, then moved by up to ±20%
/// so receivers that came back are not hit by every retry at once. The
/// jitter comes from `jitter_seed` and `attempt` alone (seed it from the
/// delivery id), so schedules are reproducible. `max_ms` is a hard ceiling
/// after jitter too. Saturating throughout: no overflow for any input.
pub fn retry_delay_ms(attempt: u32, base_ms: u64, max_ms: u64, jitter_seed: u64) -> u64 {
    let attempt = attempt.max(1);
    let doublings = attempt - 1;
    // checked_shl fails only for shifts of 64 and more: far past any cap.
    let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
    let delay_ms = base_ms.saturating_mul(factor).min(max_ms);
    let spread_ms = delay_ms / 5;
    // spread_ms <= u64::MAX / 5, so the width cannot overflow.
    let width = 2 * spread_ms + 1;
    let roll = splitmix64(jitter_seed ^ u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let jittered_ms = (delay_ms - spread_ms).saturating_add(roll % width);
    jittered_ms.min(max_ms)
}

/// SplitMix64's finaliser: a cheap, well-mixed hash of one word.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::Router;
    use parking_lot::Mutex;

    // ---- signing ----

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"lead_id":"l_1","price_cents":1250}"#;
    const T: i64 = 1_700_000_000;
    // Computed independently with Python's hmac module:
    // hmac.new(b"whsec_test_secret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    const EXPECTED_V1: &str = "86396f8cfdcb4b94293d0312a1362fb2c0eed4032e7eeccfc2c97bcc6a5992ee";

    #[test]
    fn signature_matches_known_answer() {
        assert_eq!(
            signature_header(SECRET, T, BODY),
            format!("t=1700000000,v1={EXPECTED_V1}")
        );
        // Empty secret and body: hmac.new(b"", b"0.", sha256).
        assert_eq!(
            signature_header(b"", 0, b""),
            "t=0,v1=b849d5a581847b281957065739df36df2463d1977ea8d6e1e4e6cf33fadc68c3"
        );
    }

    #[test]
    fn verify_accepts_own_signature_within_tolerance_either_side() {
        let header = signature_header(SECRET, T, BODY);
        assert_eq!(verify_signature(SECRET, &header, BODY, T, 300), Ok(()));
        assert_eq!(
            verify_signature(SECRET, &header, BODY, T + 300, 300),
            Ok(())
        );
        assert_eq!(
            verify_signature(SECRET, &header, BODY, T - 300, 300),
            Ok(())
        );
    }

    #[test]
    fn verify_rejects_tampering() {
        let header = signature_header(SECRET, T, BODY);
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(
            verify_signature(SECRET, &header, &body, T, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"whsec_other", &header, BODY, T, 300),
            Err(SignatureError::Mismatch)
        );
        // A fresh timestamp on an old signature: the timestamp is signed.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify_signature(SECRET, &moved, BODY, T, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verify_rejects_timestamp_outside_tolerance() {
        let header = signature_header(SECRET, T, BODY);
        for now_s in [T + 301, T - 301, i64::MAX, i64::MIN] {
            assert_eq!(
                verify_signature(SECRET, &header, BODY, now_s, 300),
                Err(SignatureError::TimestampOutOfTolerance {
                    timestamp_s: T,
                    now_s
                })
            );
        }
        // A negative tolerance is no tolerance, not a panic.
        assert!(verify_signature(SECRET, &header, BODY, T + 1, -5).is_err());
        assert_eq!(verify_signature(SECRET, &header, BODY, T, -5), Ok(()));
    }

    #[test]
    fn verify_accepts_any_of_several_v1() {
        let good = signature_header(SECRET, T, BODY);
        let old = signature_header(b"whsec_old", T, BODY);
        let old_v1 = old.split_once(",v1=").unwrap().1;
        let good_v1 = good.split_once(",v1=").unwrap().1;
        for header in [
            format!("t={T},v1={old_v1},v1={good_v1}"),
            format!("v1={good_v1}, t={T} ,v1={old_v1},v0=ignored"),
        ] {
            assert_eq!(
                verify_signature(SECRET, &header, BODY, T, 300),
                Ok(()),
                "{header}"
            );
        }
        let only_old = format!("t={T},v1={old_v1}");
        assert_eq!(
            verify_signature(SECRET, &only_old, BODY, T, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verify_rejects_malformed_headers() {
        let v1 = EXPECTED_V1;
        let cases: [(String, SignatureError); 9] = [
            (String::new(), SignatureError::Malformed),
            ("garbage".into(), SignatureError::Malformed),
            (format!("t=abc,v1={v1}"), SignatureError::Malformed),
            (format!("t={T},t={T},v1={v1}"), SignatureError::Malformed),
            (format!("t={T},v1=zz"), SignatureError::Malformed),
            (format!("t={T},v1={}", &v1[..62]), SignatureError::Malformed),
            (format!("v1={v1}"), SignatureError::MissingTimestamp),
            (format!("t={T}"), SignatureError::MissingSignature),
            (
                format!("t={T},v1={v1}{}", ",x=y".repeat(2000)),
                SignatureError::Malformed,
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(
                verify_signature(SECRET, &header, BODY, T, 300),
                Err(expected.clone()),
                "{header:.80}"
            );
            assert!(expected.code().starts_with("signature_"));
        }
    }

    // ---- target checks ----

    fn refused(ip: &str) {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(!is_public(ip), "{ip} should be refused");
    }

    fn public(ip: &str) {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(is_public(ip), "{ip} should be public");
    }

    #[test]
    fn is_public_refuses_special_ipv4_ranges_at_both_ends() {
        // First and last address of every refused range.
        for (first, last) in [
            ("0.0.0.0", "0.255.255.255"),
            ("10.0.0.0", "10.255.255.255"),
            ("100.64.0.0", "100.127.255.255"),
            ("127.0.0.0", "127.255.255.255"),
            ("169.254.0.0", "169.254.255.255"),
            ("172.16.0.0", "172.31.255.255"),
            ("192.0.0.0", "192.0.0.255"),
            ("192.0.2.0", "192.0.2.255"),
            ("192.88.99.0", "192.88.99.255"),
            ("192.168.0.0", "192.168.255.255"),
            ("198.18.0.0", "198.19.255.255"),
            ("198.51.100.0", "198.51.100.255"),
            ("203.0.113.0", "203.0.113.255"),
            ("224.0.0.0", "239.255.255.255"),
            ("240.0.0.0", "255.255.255.255"),
        ] {
            refused(first);
            refused(last);
        }
        refused("169.254.169.254"); // cloud metadata
        refused("127.0.0.1");
    }

    #[test]
    fn is_public_accepts_addresses_just_outside_the_ranges() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "203.0.112.255",
            "223.255.255.255",
        ] {
            public(ip);
        }
    }

    #[test]
    fn is_public_refuses_special_ipv6_ranges() {
        for ip in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe80::1",
            "febf:ffff::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "3fff:fff::1",
            "2001::1",      // Teredo
            "100::1",       // discard-only
            "64:ff9b:1::1", // local-use NAT64
            "4000::1",      // outside 2000::/3
        ] {
            refused(ip);
        }
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450::1",
        ] {
            public(ip);
        }
    }

    #[test]
    fn is_public_checks_ipv4_embedded_in_ipv6() {
        // IPv4-mapped.
        refused("::ffff:127.0.0.1");
        refused("::ffff:169.254.169.254");
        refused("::ffff:10.1.2.3");
        public("::ffff:8.8.8.8");
        // IPv4-compatible (deprecated).
        refused("::127.0.0.1");
        refused("::192.168.1.1");
        public("::8.8.8.8");
        // NAT64.
        refused("64:ff9b::127.0.0.1");
        refused("64:ff9b::a9fe:a9fe"); // 169.254.169.254
        public("64:ff9b::8.8.8.8");
        // 6to4: 2002:AABB:CCDD::/48.
        refused("2002:7f00:1::1"); // 127.0.0.1
        refused("2002:c0a8:101::1"); // 192.168.1.1
        refused("2002:a9fe:a9fe::"); // 169.254.169.254
        public("2002:808:808::1"); // 8.8.8.8
    }

    #[test]
    fn check_url_refuses_bad_urls_with_stable_codes() {
        let policy = TargetPolicy::default();
        let long = format!("https://example.com/{}", "a".repeat(URL_LENGTH_MAX_BYTES));
        for (url, code) in [
            (long.as_str(), "url_too_long"),
            ("not a url", "url_invalid"),
            ("ftp://example.com/x", "url_scheme_not_allowed"),
            ("file:///etc/passwd", "url_scheme_not_allowed"),
            ("https://user:pw@example.com/", "url_user_info_not_allowed"),
            ("https://user@example.com/", "url_user_info_not_allowed"),
            ("https://127.0.0.1/hook", "target_not_public"),
            (
                "http://169.254.169.254/latest/meta-data",
                "target_not_public",
            ),
            ("http://[::1]:8080/", "target_not_public"),
            ("http://[::ffff:127.0.0.1]/", "target_not_public"),
            // Other spellings of 127.0.0.1 that the url crate normalises.
            ("http://2130706433/", "target_not_public"),
            ("http://0x7f.1/", "target_not_public"),
            ("http://0/", "target_not_public"),
        ] {
            let error = check_url(url, &policy).expect_err(url);
            assert_eq!(error.code(), code, "{url}: {error}");
        }
    }

    #[test]
    fn check_url_accepts_public_targets_and_allowed_private_ones() {
        let policy = TargetPolicy::default();
        for url in [
            "https://hooks.example.com/leadex?x=1",
            "http://8.8.8.8:8080/",
            "https://[2606:4700:4700::1111]/",
            // Names are checked at connect time, not here.
            "https://localhost/",
        ] {
            assert!(check_url(url, &policy).is_ok(), "{url}");
        }
        let listed = TargetPolicy {
            allow_private: false,
            allowed_hosts: vec!["10.0.0.5".into(), "[FD00:0::1]".into()],
        };
        assert!(check_url("http://10.0.0.5:9000/", &listed).is_ok());
        assert!(check_url("http://[fd00::1]/", &listed).is_ok());
        assert_eq!(
            check_url("http://10.0.0.6/", &listed).unwrap_err().code(),
            "target_not_public"
        );
        let open = TargetPolicy {
            allow_private: true,
            allowed_hosts: Vec::new(),
        };
        assert!(check_url("http://127.0.0.1:1/", &open).is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_by_default() {
        let error = resolve_allowed("localhost", &TargetPolicy::default())
            .await
            .unwrap_err();
        assert_eq!(error.code(), "target_resolves_not_public", "{error}");

        // Through reqwest's trait, as the client calls it.
        let resolver = AllowedAddressResolver::new(Arc::new(TargetPolicy::default()));
        let name: Name = "localhost".parse().unwrap();
        let error = resolver.resolve(name).await.err().unwrap();
        assert!(error.downcast_ref::<TargetError>().is_some(), "{error}");
    }

    #[tokio::test]
    async fn resolver_keeps_loopback_for_an_allowed_host() {
        let policy = TargetPolicy {
            allow_private: false,
            allowed_hosts: vec!["LOCALHOST".into()],
        };
        let addresses = resolve_allowed("localhost", &policy).await.unwrap();
        assert!(!addresses.is_empty());
        assert!(
            addresses.iter().all(|a| a.ip().is_loopback()),
            "{addresses:?}"
        );
    }

    #[tokio::test]
    async fn resolver_reports_unresolvable_names() {
        // `.invalid` is reserved never to resolve (RFC 6761).
        let error = resolve_allowed("nothing.invalid", &TargetPolicy::default())
            .await
            .unwrap_err();
        assert!(
            matches!(error.code(), "target_resolve_failed" | "target_no_address"),
            "{error}"
        );
    }

    // ---- backoff ----

    #[test]
    fn retry_delay_doubles_within_jitter() {
        for seed in 0..200u64 {
            for attempt in 1..=10u32 {
                let nominal = 1_000u64 << (attempt - 1);
                let delay = retry_delay_ms(attempt, 1_000, u64::MAX, seed);
                assert!(
                    delay >= nominal * 4 / 5 && delay <= nominal * 6 / 5,
                    "attempt {attempt} seed {seed}: {delay} vs {nominal}"
                );
            }
        }
    }

    #[test]
    fn retry_delay_is_deterministic_and_spread_by_seed() {
        assert_eq!(
            retry_delay_ms(3, 1_000, 60_000, 42),
            retry_delay_ms(3, 1_000, 60_000, 42)
        );
        let distinct: std::collections::BTreeSet<u64> = (0..100u64)
            .map(|seed| retry_delay_ms(3, 1_000, 60_000, seed))
            .collect();
        assert!(
            distinct.len() > 50,
            "only {} distinct delays",
            distinct.len()
        );
        // The spread covers both sides of the nominal 4000 ms.
        assert!(distinct.iter().any(|&d| d < 3_800));
        assert!(distinct.iter().any(|&d| d > 4_200));
        // Different attempts with one seed do not share one jitter.
        let ratios: std::collections::BTreeSet<u64> = (1..=6u32)
            .map(|attempt| {
                retry_delay_ms(attempt, 1_000, u64::MAX, 7) * 1_000 / (1_000 << (attempt - 1))
            })
            .collect();
        assert!(ratios.len() > 1);
    }

    #[test]
    fn retry_delay_is_capped_and_never_overflows() {
        for attempt in [20, 63, 64, 65, 1_000, u32::MAX] {
            for seed in [0, 1, u64::MAX] {
                let delay = retry_delay_ms(attempt, 1_000, 3_600_000, seed);
                assert!(
                    (2_880_000..=3_600_000).contains(&delay),
                    "{attempt}: {delay}"
                );
                let delay = retry_delay_ms(attempt, u64::MAX, u64::MAX, seed);
                assert!(delay >= u64::MAX / 5 * 4, "{attempt}: {delay}");
            }
        }
        assert_eq!(retry_delay_ms(5, 0, 1_000, 9), 0);
        assert_eq!(retry_delay_ms(1, 1_000, 0, 9), 0);
        // Attempt 0 is taken as attempt 1.
        assert_eq!(
            retry_delay_ms(0, 1_000, 60_000, 9),
            retry_delay_ms(1, 1_000, 60_000, 9)
        );
    }

    // ---- sending over a real socket ----

    /// What the test receiver saw.
    #[derive(Default)]
    struct Received {
        requests: Mutex<Vec<(HeaderMap, Bytes)>>,
        redirect_target_hits: Mutex<u32>,
    }

    /// A receiver on 127.0.0.1:<free port> whose `/hook` answers `status`
    /// after `delay_ms`; `/elsewhere` counts hits (the redirect target).
    async fn receiver(status: StatusCode, delay_ms: u64) -> (SocketAddr, Arc<Received>) {
        let received = Arc::new(Received::default());
        let app = Router::new()
            .route(
                "/hook",
                post(
                    move |State(received): State<Arc<Received>>,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        received.requests.lock().push((headers, body));
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        let mut response = (status, "answer from receiver").into_response();
                        if status.is_redirection() {
                            response.headers_mut().insert(
                                http::header::LOCATION,
                                http::HeaderValue::from_static("/elsewhere"),
                            );
                        }
                        response
                    },
                ),
            )
            .route(
                "/elsewhere",
                post(|State(received): State<Arc<Received>>| async move {
                    *received.redirect_target_hits.lock() += 1;
                    StatusCode::OK
                })
                .get(|State(received): State<Arc<Received>>| async move {
                    *received.redirect_target_hits.lock() += 1;
                    StatusCode::OK
                }),
            )
            .with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (address, received)
    }

    fn sender(allow_private: bool, timeout_ms: u64) -> Sender {
        Sender::new(SenderSettings {
            timeout_ms,
            policy: TargetPolicy {
                allow_private,
                allowed_hosts: Vec::new(),
            },
            user_agent: "leadex-webhooks-test/1".into(),
        })
        .unwrap()
    }

    fn outgoing(url: String) -> Outgoing {
        Outgoing {
            url,
            secret: SECRET.to_vec(),
            event_type: "lead.sold".into(),
            delivery_id: "d_0123".into(),
            body: BODY.to_vec(),
            timestamp_s: T,
        }
    }

    #[tokio::test]
    async fn delivers_signed_body_and_headers() {
        let (address, received) = receiver(StatusCode::OK, 0).await;
        let outcome = sender(true, 5_000)
            .send(&outgoing(format!("http://{address}/hook")))
            .await;
        assert_eq!(outcome.status, Some(200), "{outcome:?}");
        assert!(outcome.ok);
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.response_excerpt, "answer from receiver");

        let requests = received.requests.lock();
        assert_eq!(requests.len(), 1);
        let (headers, body) = &requests[0];
        assert_eq!(&body[..], BODY);
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("leadex-event"), "lead.sold");
        assert_eq!(header("leadex-delivery"), "d_0123");
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("user-agent"), "leadex-webhooks-test/1");
        let signature = header("leadex-signature");
        assert_eq!(
            verify_signature(SECRET, &signature, body, T + 5, 300),
            Ok(())
        );
        assert_eq!(
            verify_signature(b"wrong", &signature, body, T + 5, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[tokio::test]
    async fn server_error_is_a_failed_attempt_with_status() {
        let (address, _received) = receiver(StatusCode::INTERNAL_SERVER_ERROR, 0).await;
        let outcome = sender(true, 5_000)
            .send(&outgoing(format!("http://{address}/hook")))
            .await;
        assert_eq!(outcome.status, Some(500));
        assert!(!outcome.ok);
        assert!(outcome
            .error
            .as_deref()
            .unwrap()
            .starts_with("http_status:"));
        assert_eq!(outcome.response_excerpt, "answer from receiver");
    }

    #[tokio::test]
    async fn redirect_is_not_followed() {
        let (address, received) = receiver(StatusCode::FOUND, 0).await;
        let outcome = sender(true, 5_000)
            .send(&outgoing(format!("http://{address}/hook")))
            .await;
        assert_eq!(outcome.status, Some(302));
        assert!(!outcome.ok);
        assert!(
            outcome
                .error
                .as_deref()
                .unwrap()
                .starts_with("redirect_not_followed:"),
            "{outcome:?}"
        );
        assert_eq!(received.requests.lock().len(), 1);
        assert_eq!(*received.redirect_target_hits.lock(), 0);
    }

    #[tokio::test]
    async fn default_policy_refuses_loopback_without_connecting() {
        let (address, received) = receiver(StatusCode::OK, 0).await;
        let strict = sender(false, 5_000);
        let by_ip = strict
            .send(&outgoing(format!("http://{address}/hook")))
            .await;
        assert!(!by_ip.ok);
        assert_eq!(by_ip.status, None);
        assert!(
            by_ip
                .error
                .as_deref()
                .unwrap()
                .starts_with("target_not_public:"),
            "{by_ip:?}"
        );
        let by_name = strict
            .send(&outgoing(format!(
                "http://localhost:{}/hook",
                address.port()
            )))
            .await;
        assert!(!by_name.ok);
        assert_eq!(by_name.status, None);
        assert!(
            by_name
                .error
                .as_deref()
                .unwrap()
                .starts_with("target_resolves_not_public:"),
            "{by_name:?}"
        );
        assert_eq!(received.requests.lock().len(), 0);

        // The same receiver is reachable when the policy allows it, so the
        // refusals above were the policy's doing.
        let allowed = sender(true, 5_000)
            .send(&outgoing(format!(
                "http://localhost:{}/hook",
                address.port()
            )))
            .await;
        assert!(allowed.ok, "{allowed:?}");
        assert_eq!(received.requests.lock().len(), 1);
    }

    #[tokio::test]
    async fn unreachable_port_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let outcome = sender(true, 5_000)
            .send(&outgoing(format!("http://{address}/hook")))
            .await;
        assert!(!outcome.ok);
        assert_eq!(outcome.status, None);
        assert!(
            outcome.error.as_deref().unwrap().starts_with("connect:"),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn slow_receiver_times_out_within_timeout() {
        let (address, received) = receiver(StatusCode::OK, 10_000).await;
        let timeout_ms = 300;
        let outcome = sender(true, timeout_ms)
            .send(&outgoing(format!("http://{address}/hook")))
            .await;
        assert!(!outcome.ok);
        assert_eq!(outcome.status, None);
        assert!(
            outcome.error.as_deref().unwrap().starts_with("timeout:"),
            "{outcome:?}"
        );
        assert!(outcome.elapsed_ms >= timeout_ms, "{outcome:?}");
        // Generous upper bound for a shared machine; the receiver sleeps 10 s.
        assert!(outcome.elapsed_ms < timeout_ms + 2_000, "{outcome:?}");
        assert_eq!(received.requests.lock().len(), 1);
    }

    #[test]
    fn zero_timeout_is_refused() {
        let error = Sender::new(SenderSettings {
            timeout_ms: 0,
            policy: TargetPolicy::default(),
            user_agent: "x".into(),
        })
        .unwrap_err();
        assert_eq!(error.code(), "sender_zero_timeout");
    }

    #[test]
    fn outgoing_debug_hides_the_secret() {
        let text = format!("{:?}", outgoing("https://example.com/".into()));
        assert!(!text.contains("whsec_test_secret"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn error_text_is_bounded_on_a_char_boundary() {
        let text = truncate_text("é".repeat(ERROR_TEXT_MAX_BYTES));
        assert!(text.len() <= ERROR_TEXT_MAX_BYTES);
        assert!(text.chars().all(|c| c == 'é'));
    }
}
