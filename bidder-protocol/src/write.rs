//! Low-level JSON writing: escaped strings, integers and ids appended to a
//! byte buffer. No formatting machinery, no intermediate `String`s.

use leadex_engine::{BidId, LeadId, PingId};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// For each byte: 0 when it is written as is, otherwise the letter after the
/// backslash (`u` for the `\u00XX` form). Bytes of multi-byte UTF-8
/// sequences are all >= 0x80 and pass unchanged, as JSON allows.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `s` as a quoted JSON string. Unchanged runs are copied whole.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run_start..i]);
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX_DIGITS[usize::from(b >> 4)]);
            out.push(HEX_DIGITS[usize::from(b & 0xf)]);
        } else {
            out.push(b'\\');
            out.push(escape);
        }
        run_start = i + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

/// Appends the decimal digits of `n`.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// The two lower-case hex digits of every byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut table = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = [HEX_DIGITS[b >> 4], HEX_DIGITS[b & 0xf]];
        b += 1;
    }
    table
};

/// Appends `value` as exactly 32 lower-case hex digits (the ids' text form).
fn write_hex128(out: &mut Vec<u8>, value: u128) {
    let mut digits = [0u8; 32];
    for (pair, byte) in digits.chunks_exact_mut(2).zip(value.to_be_bytes()) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    out.extend_from_slice(&digits);
}

/// Appends `"p_<hex>"`, the same text as `PingId`'s `Display`.
pub(crate) fn write_ping_id(out: &mut Vec<u8>, id: PingId) {
    out.extend_from_slice(b"\"p_");
    write_hex128(out, id.0);
    out.push(b'"');
}

/// Appends `"l_<hex>"`, the same text as `LeadId`'s `Display`.
pub(crate) fn write_lead_id(out: &mut Vec<u8>, id: LeadId) {
    out.extend_from_slice(b"\"l_");
    write_hex128(out, id.0);
    out.push(b'"');
}

/// Appends `"b_<hex>_<index>"`, the same text as `BidId`'s `Display`.
pub(crate) fn write_bid_id(out: &mut Vec<u8>, id: BidId) {
    out.extend_from_slice(b"\"b_");
    write_hex128(out, id.ping.0);
    out.push(b'_');
    write_u64(out, u64::from(id.index));
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ids_match_their_display_form() {
        let p = PingId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(written(|o| write_ping_id(o, p)), format!("\"{p}\""));
        let l = LeadId(7);
        assert_eq!(written(|o| write_lead_id(o, l)), format!("\"{l}\""));
        for index in [0, 9, 10, 255] {
            let b = BidId { ping: p, index };
            assert_eq!(written(|o| write_bid_id(o, b)), format!("\"{b}\""));
        }
    }

    #[test]
    fn integers() {
        for n in [0, 1, 9, 10, 2450, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(written(|o| write_u64(o, n)), n.to_string());
        }
    }

    #[test]
    fn control_characters_use_short_or_unicode_escapes() {
        assert_eq!(
            written(|o| write_json_str(o, "a\"b\\c\nd\u{1f}")),
            r#""a\"b\\c\nd\u001f""#
        );
        assert_eq!(written(|o| write_json_str(o, "")), r#""""#);
        assert_eq!(written(|o| write_json_str(o, "é\u{2028}")), "\"é\u{2028}\"");
    }

    proptest! {
        #[test]
        fn any_string_round_trips_through_serde_json(s in any::<String>()) {
            let json = written(|o| write_json_str(o, &s));
            let back: String = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn any_u64_matches_display(n in any::<u64>()) {
            prop_assert_eq!(written(|o| write_u64(o, n)), n.to_string());
        }

        #[test]
        fn any_id_matches_display(v in any::<u128>(), index in any::<u8>()) {
            prop_assert_eq!(written(|o| write_ping_id(o, PingId(v))), format!("\"{}\"", PingId(v)));
            let b = BidId { ping: PingId(v), index };
            prop_assert_eq!(written(|o| write_bid_id(o, b)), format!("\"{b}\""));
        }
    }
}
