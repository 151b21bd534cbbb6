//! The JSON parser under the codecs, behind one small trait so that the
//! same visitors and validation run on any serde parser: the benchmark
//! (`benches/parse.rs`) and the differential tests plug in simd-json and
//! sonic-rs; production uses [`SerdeJson`] (see the crate docs for why).

use serde::de::DeserializeSeed;

/// A serde JSON parser the request codecs can run on.
pub trait JsonBackend {
    /// Short name for benchmark ids and logs.
    const NAME: &'static str;

    /// True when the parser checks the whole document before its first
    /// visitor call (tape parsers such as simd-json). Streaming parsers
    /// (false) may meet a field error before a later syntax error; the
    /// codecs then re-read the body for syntax alone, so that a body that is
    /// not JSON is answered `invalid_json` whatever the parser. A streaming
    /// parser must therefore leave `body` unchanged.
    const CHECKS_SYNTAX_FIRST: bool;

    /// Runs `seed` over the single JSON document in `body`, refusing
    /// trailing bytes. The parser may rewrite `body` in place. Errors are
    /// the parser's own messages; callers turn them into `invalid_json`.
    fn deserialize_seed<'de, S>(body: &'de mut [u8], seed: S) -> Result<S::Value, String>
    where
        S: DeserializeSeed<'de>;
}

/// `serde_json`: safe Rust, streaming, no in-place rewriting. The body must be
/// UTF-8 as a whole (RFC 8259), checked before parsing.
#[derive(Debug, Clone, Copy, Default)]
pub struct SerdeJson;

impl JsonBackend for SerdeJson {
    const NAME: &'static str = "serde_json";
    const CHECKS_SYNTAX_FIRST: bool = false;

    fn deserialize_seed<'de, S>(body: &'de mut [u8], seed: S) -> Result<S::Value, String>
    where
        S: DeserializeSeed<'de>,
    {
        let body: &'de [u8] = body;
        // One UTF-8 check of the whole body (vectorized in std) is cheaper
        // than serde_json's check of each string of a slice input.
        let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let value = seed
            .deserialize(&mut deserializer)
            .map_err(|e| e.to_string())?;
        deserializer.end().map_err(|e| e.to_string())?;
        Ok(value)
    }
}

/// The parser behind [`crate::parse_ping`], [`crate::parse_post`] and
/// [`crate::parse_direct_post`].
pub type Production = SerdeJson;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;
    use std::marker::PhantomData;

    fn read(body: &[u8]) -> Result<IgnoredAny, String> {
        SerdeJson::deserialize_seed(&mut body.to_vec(), PhantomData::<IgnoredAny>)
    }

    #[test]
    fn serde_json_reads_one_whole_utf8_document() {
        assert!(read(br#" {"a": [1, "x"]} "#).is_ok());
        assert!(read(b"{} {}").unwrap_err().contains("trailing"));
        assert!(read(b"{\"a\":\"\xc3\"}").unwrap_err().contains("utf-8"));
        assert!(read(b"").is_err());
        // The body is left as it was: the re-read of a refused body relies on it.
        let mut body = br#"{"a":"\u0041"}"#.to_vec();
        SerdeJson::deserialize_seed(&mut body, PhantomData::<IgnoredAny>).unwrap();
        assert_eq!(body, br#"{"a":"\u0041"}"#);
    }
}
