//! The JSON parsers leadex does not ship, plugged into the same codecs for
//! the benchmark (`benches/parse.rs`) and the differential test
//! (`tests/backends.rs`). Both include this file with `#[path]`.

use leadex_protocol::JsonBackend;
use serde::de::DeserializeSeed;
use std::cell::RefCell;

/// simd-json's serde deserializer over its tape. It parses in place, so the
/// body is rewritten. Its scratch buffers are reused per thread, as a
/// production integration would do.
pub struct SimdJson;

thread_local! {
    static SIMD_BUFFERS: RefCell<simd_json::Buffers> = RefCell::new(simd_json::Buffers::new(4096));
}

impl JsonBackend for SimdJson {
    const NAME: &'static str = "simd_json";
    // The tape is built, and the whole body checked, before any visitor runs.
    const CHECKS_SYNTAX_FIRST: bool = true;

    fn deserialize_seed<'de, S>(body: &'de mut [u8], seed: S) -> Result<S::Value, String>
    where
        S: DeserializeSeed<'de>,
    {
        let mut deserializer = SIMD_BUFFERS
            .with_borrow_mut(|buffers| {
                simd_json::Deserializer::from_slice_with_buffers(body, buffers)
            })
            .map_err(|e| e.to_string())?;
        seed.deserialize(&mut deserializer)
            .map_err(|e| e.to_string())
    }
}

/// sonic-rs's serde deserializer. UTF-8 is checked up front, as its
/// `from_slice` does.
pub struct SonicRs;

impl JsonBackend for SonicRs {
    const NAME: &'static str = "sonic_rs";
    const CHECKS_SYNTAX_FIRST: bool = false;

    fn deserialize_seed<'de, S>(body: &'de mut [u8], seed: S) -> Result<S::Value, String>
    where
        S: DeserializeSeed<'de>,
    {
        let body: &'de [u8] = body;
        let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
        let mut deserializer = sonic_rs::Deserializer::from_str(text);
        let value = seed
            .deserialize(&mut deserializer)
            .map_err(|e| e.to_string())?;
        deserializer.end().map_err(|e| e.to_string())?;
        Ok(value)
    }
}
