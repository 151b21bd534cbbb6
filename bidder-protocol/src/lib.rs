//! # leadex-protocol
//!
//! The wire format of the leadex seller API, and the only crate of leadex
//! that reads or writes JSON. It turns request bodies of `POST /v1/ping`,
//! `POST /v1/post` and `POST /v1/leads` into the engine's validated domain
//! types ([`Ping`](leadex_engine::lead::Ping), [`PostRequest`],
//! [`Lead`](leadex_engine::lead::Lead)) and writes answers and errors into a
//! reusable buffer. `docs/PROTOCOL.md` is the reference for sellers.
//!
//! ```
//! use leadex_protocol::{encode_ping_response, parse_ping, ErrorCode, PingResponse};
//! use leadex_engine::PingId;
//!
//! let mut body = br#"{"vertical":"auto","zip":"90210","state":"ca","vehicles":2}"#.to_vec();
//! let ping = parse_ping(&mut body).unwrap();
//! assert_eq!(ping.attributes.state.as_str(), "CA");
//!
//! let mut out = Vec::with_capacity(256);
//! encode_ping_response(&mut out, &PingResponse {
//!     ping_id: PingId(1),
//!     expires_at_ms: 1_795_428_000_000,
//!     bids: &[],
//!     no_bid_reason: Some("no_eligible_buyers"),
//! });
//! assert!(out.ends_with(br#""expires_at":"2026-11-23T10:00:00.000Z","bids":[],"no_bid_reason":"no_eligible_buyers"}"#));
//!
//! let mut bad = br#"{"vertical":"auto","state":"CA"}"#.to_vec();
//! let error = parse_ping(&mut bad).unwrap_err();
//! assert_eq!((error.code, error.field.as_deref()), (ErrorCode::MissingField, Some("zip")));
//! assert_eq!(error.http_status(), 400);
//! ```
//!
//! ## Code map
//! - `request.rs`: `parse_*`, the body prechecks (size, nesting depth) and
//!   the serde visitors that fill a draft of the engine's types in one pass.
//! - `fields.rs`: every field's key and dotted path, which body may carry
//!   it, which vertical requires it.
//! - `validate.rs`: one function per field rule (ranges, phone, e-mail, …).
//! - `response.rs` and `write.rs`: hand-written JSON encoders.
//! - `time.rs`: RFC 3339 formatting and parsing without a date library.
//! - `error.rs`: [`ErrorCode`] and [`ProtocolError`].
//! - `backend.rs`: [`JsonBackend`], the parser seam used by the benchmark.
//!
//! **Architecture invariant:** no other leadex crate parses or writes JSON
//! on the request path; the engine sees only validated domain values.
//!
//! **Architecture invariant:** parsing is bounded before a parser runs:
//! bodies over [`MAX_BODY_BYTES`] and nesting over [`MAX_JSON_DEPTH`] are
//! refused by a byte pre-scan, so hostile input cannot drive any parser's
//! recursion.
//!
//! ## Which JSON parser, and why
//!
//! Production parses with **serde_json** ([`SerdeJson`]). The choice was
//! measured, not assumed: `benches/parse.rs` runs the *same* visitors and
//! field rules on each parser through [`JsonBackend`] (a differential test,
//! `tests/backends.rs`, checks they give the same answers), over the
//! fixtures `tests/fixtures/ping.json` (1 085 B, 30 fields with consent)
//! and `post.json` (1 491 B, with contact and two bid ids).
//!
//! Medians per parse in ns, criterion, release profile, on a shared 2-vCPU
//! AMD EPYC (AVX-512) at load average ~1, two consecutive runs:
//!
//! | parser | ping 1 KB, parse + validate | post 1.5 KB, parse + validate | ping, syntax only |
//! |---|---|---|---|
//! | serde_json 1.0.154 | **1 761 / 1 746** | **2 823 / 2 884** | 629 / 634 |
//! | sonic-rs 0.5.10 | 1 897 / 1 804 | 3 020 / 2 959 | 822 / 804 |
//! | simd-json 0.19.0 | 1 886 / 1 862 | 3 161 / 3 071 | 931 / 930 |
//!
//! ("syntax only" skips every value with `IgnoredAny`: the parser alone.
//! Every figure includes a ~20 ns copy of the fixture into a reused buffer,
//! which simd-json needs because it parses in place.)
//!
//! Why serde_json:
//! - **It is the fastest here**, by 3–8 % on pings and 3–12 % on posts.
//!   The SIMD parsers win on long strings and large documents; a request
//!   is ~30 short keys and values, where per-token dispatch dominates, and
//!   simd-json also pays a second pass (building its tape) before the
//!   first value is seen. The parser alone is ~0.63 µs of serde_json's
//!   1.76 µs; the rest is the same for every parser (field rules and the
//!   ~12 `String`s the engine types need).
//! - **It is the safest**: no SIMD intrinsics, no in-place rewriting of
//!   the input, and the most widely used JSON parser in Rust. simd-json has
//!   had soundness bugs on hostile input and sonic-rs rests on a large body
//!   of `unsafe` SIMD code, while the seller API parses untrusted bytes.
//! - **It is the simplest**: already a workspace dependency, no MSRV bump
//!   (simd-json 0.19 needs Rust 1.88; the workspace promises 1.85), and
//!   streaming, so no tape buffers to keep per thread.
//!
//! Two measured details make serde_json this fast: the whole body is
//! checked as UTF-8 once (`std::str::from_utf8`, vectorized) and parsed with
//! `from_str`, which skips serde_json's per-string UTF-8 check (ping
//! 2.17 → 1.73 µs, post 3.47 → 2.84 µs); and scalar values are validated
//! inside the visitor while the parser still holds them, so an escaped
//! string is copied once, into its final `String`.
//! Because a streaming parser can meet a field error before a later syntax
//! error, a refused body is re-read for syntax alone (error path only): a
//! body that is not JSON is always `invalid_json`, whatever the parser.
//!
//! The goal of at most 2 µs to parse and validate a 1 KB ping is met
//! (1.73–1.77 µs over four runs). simd-json and sonic-rs are
//! dev-dependencies only, for the benchmark and the differential test;
//! they are not in the server.
//! `parse_*` take `&mut [u8]` so that an in-place parser could come back
//! without an API change.
//!
//! Encoding is hand-written (`write.rs`): 167 ns for a ping answer with
//! three bids, against 743 ns for a serde derive written by serde_json
//! (which also needs the ids and the time as `String`s first).
//!
//! Re-run: `CARGO_TARGET_DIR=/work/target-protocol cargo bench -p
//! leadex-protocol -- --warm-up-time 1 --measurement-time 3`; criterion's
//! medians are in `target/criterion/*/*/new/estimates.json`.

mod backend;
mod error;
mod fields;
mod request;
mod response;
mod route;
mod time;
mod validate;
mod write;

pub use backend::{JsonBackend, Production, SerdeJson};
pub use error::{ErrorCode, ProtocolError};
pub use fields::{required_attributes, FIELD_PATHS, MEDICARE_MIN_AGE};
pub(crate) use request::precheck as request_prechecks;
pub use request::{
    parse_direct_post, parse_direct_post_with, parse_ping, parse_ping_with, parse_post,
    parse_post_with, PostRequest, MAX_BIDS_PER_POST, MAX_BODY_BYTES, MAX_JSON_DEPTH,
};
pub use response::{
    encode_ping_response, encode_post_response, encode_unsold_response, PingResponse, PostResponse,
    WireBid, WireSale,
};
pub use route::{
    encode_route_response, parse_route, RouteRequestBody, RouteResponse, WireCandidate,
    EXCLUDED_NAMES,
};
pub use time::{
    format_rfc3339_millis, parse_rfc3339_millis, write_rfc3339_millis, RFC3339_MAX_MS,
    RFC3339_MIN_MS,
};
