//! `docs/PROTOCOL.md` is the sellers' contract: its example requests must
//! be accepted, its example answers must be JSON, and it must list every
//! error code, field, no-bid reason and per-vertical requirement.

use leadex_engine::lead::Vertical;
use leadex_engine::NoBidReason;
use leadex_protocol::{
    parse_direct_post, parse_ping, parse_post, required_attributes, ErrorCode, FIELD_PATHS,
};

const PROTOCOL_MD: &str = include_str!("../../docs/PROTOCOL.md");

/// `(info string, body)` of every fenced code block.
fn fenced_blocks() -> Vec<(&'static str, String)> {
    let mut blocks = Vec::new();
    let mut lines = PROTOCOL_MD.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```") {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            blocks.push((info.trim(), body.join("\n")));
        }
    }
    blocks
}

#[test]
fn example_requests_are_accepted_and_answers_are_json() {
    let mut counts = [0usize; 4];
    for (info, body) in fenced_blocks() {
        let mut bytes = body.clone().into_bytes();
        let outcome = match info {
            "json ping" => parse_ping(&mut bytes).map(drop),
            "json post" => parse_post(&mut bytes).map(drop),
            "json lead" => parse_direct_post(&mut bytes).map(drop),
            "json route" => leadex_protocol::parse_route(&bytes).map(drop),
            "json response" => {
                serde_json::from_str::<serde_json::Value>(&body)
                    .unwrap_or_else(|e| panic!("{e}: {body}"));
                Ok(())
            }
            _ => continue,
        };
        outcome.unwrap_or_else(|e| panic!("example refused ({e}):\n{body}"));
        let kind = ["json ping", "json post", "json lead", "json response"]
            .iter()
            .position(|k| *k == info);
        if let Some(k) = kind {
            counts[k] += 1;
        }
    }
    assert!(
        counts[0] >= 1 && counts[1] >= 1 && counts[2] >= 1,
        "{counts:?}"
    );
    assert!(
        counts[3] >= ErrorCode::ALL.len(),
        "an example per error code: {counts:?}"
    );
}

#[test]
fn every_error_code_is_documented_with_its_status_and_an_example() {
    for code in ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
        assert!(PROTOCOL_MD.contains(&row), "no table row {row}");
        let example = format!("{{\"error\": {{\"code\": \"{}\"", code.as_str());
        assert!(PROTOCOL_MD.contains(&example), "no example body for {code}");
    }
}

#[test]
fn every_no_bid_reason_and_requirement_is_documented() {
    for reason in NoBidReason::ALL {
        assert!(
            PROTOCOL_MD.contains(&format!("| `{}` |", reason.as_str())),
            "{reason:?}"
        );
    }
    for vertical in Vertical::ALL {
        let required = required_attributes(vertical);
        let cell = if required.is_empty() {
            "—".to_owned()
        } else {
            required
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let row = format!("| `{}` | {cell} |", vertical.as_str());
        assert!(PROTOCOL_MD.contains(&row), "no row {row}");
    }
}

#[test]
fn every_field_is_documented() {
    for field in FIELD_PATHS {
        assert!(
            PROTOCOL_MD.contains(&format!("| `{field}` |")),
            "{field} has no table row"
        );
    }
}
