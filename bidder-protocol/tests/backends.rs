//! Differential test: the same bodies through every JSON parser the
//! benchmark compares must give the same answers, so that the benchmark
//! compares equal work, and so that a future switch of the production
//! parser cannot silently change what the API accepts.

#[path = "support/backends.rs"]
mod backends;

use backends::{SimdJson, SonicRs};
use leadex_protocol::{
    parse_direct_post_with, parse_ping_with, parse_post_with, ErrorCode, JsonBackend,
    ProtocolError, SerdeJson,
};
use proptest::prelude::*;

const PING: &[u8] = include_bytes!("fixtures/ping.json");
const POST: &[u8] = include_bytes!("fixtures/post.json");

/// What an answer is, minus the parser's own wording of syntax errors.
#[derive(Debug, PartialEq)]
enum Answer {
    Ok(String),
    Refused {
        code: ErrorCode,
        field: Option<String>,
        message: Option<String>,
    },
}

fn answer<T: std::fmt::Debug>(result: Result<T, ProtocolError>) -> Answer {
    match result {
        Ok(value) => Answer::Ok(format!("{value:?}")),
        Err(e) => Answer::Refused {
            code: e.code,
            field: e.field.map(|f| f.into_owned()),
            // Syntax errors are worded by each parser; everything else is ours.
            message: (e.code != ErrorCode::InvalidJson).then_some(e.message),
        },
    }
}

fn answers<B: JsonBackend>(body: &[u8]) -> [Answer; 3] {
    [
        answer(parse_ping_with::<B>(&mut body.to_vec())),
        answer(parse_post_with::<B>(&mut body.to_vec())),
        answer(parse_direct_post_with::<B>(&mut body.to_vec())),
    ]
}

fn assert_all_agree(body: &[u8]) {
    let reference = answers::<SerdeJson>(body);
    let text = String::from_utf8_lossy(body);
    assert_eq!(
        answers::<SimdJson>(body),
        reference,
        "simd-json differs on {text}"
    );
    assert_eq!(
        answers::<SonicRs>(body),
        reference,
        "sonic-rs differs on {text}"
    );
}

#[test]
fn fixtures_parse_identically() {
    assert_all_agree(PING);
    assert_all_agree(POST);
    assert!(matches!(answers::<SimdJson>(PING)[0], Answer::Ok(_)));
    assert!(matches!(answers::<SonicRs>(POST)[1], Answer::Ok(_)));
}

#[test]
fn edge_cases_parse_identically() {
    let bodies: &[&[u8]] = &[
        b"",
        b"{",
        b"{} x",
        b"{}{}",
        b"[]",
        b"null",
        br#"{"vertical":"auto","zip":"90210","zip":"90210"}"#,
        br#"{"vertical":"auto","zip":"90210","state":"CA","vehicles":2,"bmi":1e999}"#,
        br#"{"vertical":"auto","zip":"90210","state":"CA","vehicles":2,"age":-0}"#,
        br#"{"vertical":"auto","zip":"90210","state":"CA","vehicles":2,"age":34.0}"#,
        br#"{"vertical":"auto","zip":"90210","state":"CA","vehicles":2,"sub_id":"\ud800"}"#,
        br#"{"vertical":"auto","zip":"90210","state":"CA","vehicles":2,"sub_id":"a\u002db"}"#,
        br#"{"vertic\u0061l":"auto","zip":"90210","state":"CA","vehicles":2}"#,
        b"{\"zip\":\"\xff\"}",
        br#"{"vertical":"auto","zip":"90210","state":"CA","vehicles":2,"consent":{"ip":[1]}}"#,
    ];
    for body in bodies {
        assert_all_agree(body);
    }
}

#[test]
fn known_divergence_integers_beyond_u64() {
    // serde_json and sonic-rs read an integer beyond u64 as a float (and the
    // field rule refuses it); simd-json refuses the document. Both are 400s.
    let body = br#"{"vertical":"auto","zip":"90210","state":"CA","vehicles":2,"income":18446744073709551616}"#;
    let field_error = |a: &Answer| {
        matches!(
            a,
            Answer::Refused {
                code: ErrorCode::InvalidField,
                ..
            }
        )
    };
    assert!(answers::<SerdeJson>(body).iter().all(field_error));
    assert!(answers::<SonicRs>(body).iter().all(field_error));
    let json_error = |a: &Answer| {
        matches!(
            a,
            Answer::Refused {
                code: ErrorCode::InvalidJson,
                ..
            }
        )
    };
    assert!(answers::<SimdJson>(body).iter().all(json_error));
}

fn mutated(fixture: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((0..fixture.len(), any::<u8>(), 0..3u8), 1..4).prop_map(move |edits| {
        let mut body = fixture.to_vec();
        for (at, byte, op) in edits {
            let at = at.min(body.len().saturating_sub(1));
            match op {
                0 if !body.is_empty() => body[at] ^= byte | 1,
                1 => body.insert(at, byte),
                _ => body.truncate(at.max(1)),
            }
        }
        body
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_pings_parse_identically(body in mutated(PING)) {
        assert_all_agree(&body);
    }

    #[test]
    fn mutated_posts_parse_identically(body in mutated(POST)) {
        assert_all_agree(&body);
    }
}
