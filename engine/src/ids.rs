//! Identifiers handed to sellers: pings, bids and leads.
//!
//! A 128-bit id is a random 64-bit epoch chosen when the process starts,
//! followed by a 64-bit sequence. Ids therefore never repeat across restarts
//! (two epochs collide with probability 2^-64) and are not guessable from one
//! another across epochs. Text form: a one-letter kind, `_`, 32 hex digits.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id128 {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub u128);

        impl $name {
            /// Text prefix, e.g. `"p_"`.
            pub const PREFIX: &'static str = $prefix;

            /// Parses the text form.
            pub fn parse(s: &str) -> Option<$name> {
                let hex = s.strip_prefix($prefix)?;
                if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    return None;
                }
                u128::from_str_radix(hex, 16).ok().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{:032x}", $prefix, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

id128!(
    /// Identifies a ping and its price lock.
    PingId, "p_"
);
id128!(
    /// Identifies a sold lead.
    LeadId, "l_"
);

/// Identifies one bid of a ping: the ping id and the bid's index in it.
/// Text form: `b_<32 hex of the ping>_<index>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BidId {
    /// The ping the bid answers.
    pub ping: PingId,
    /// Position in the ping's bid list.
    pub index: u8,
}

impl BidId {
    /// Parses the text form.
    pub fn parse(s: &str) -> Option<BidId> {
        let rest = s.strip_prefix("b_")?;
        let (hex, index) = rest.split_once('_')?;
        if hex.len() != 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        if index.is_empty() || index.len() > 3 || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(BidId {
            ping: PingId(u128::from_str_radix(hex, 16).ok()?),
            index: index.parse().ok()?,
        })
    }
}

impl fmt::Display for BidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b_{:032x}_{}", self.ping.0, self.index)
    }
}

impl fmt::Debug for BidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let p = PingId(0xdead_beef_0000_0000_0000_0000_0000_0001);
        assert_eq!(PingId::parse(&p.to_string()), Some(p));
        let b = BidId { ping: p, index: 7 };
        assert_eq!(BidId::parse(&b.to_string()), Some(b));
        assert!(PingId::parse("p_123").is_none());
        assert!(PingId::parse(&p.to_string().to_uppercase()).is_none());
        assert!(LeadId::parse(&p.to_string()).is_none());
        assert!(BidId::parse("b_00000000000000000000000000000001_").is_none());
        assert!(BidId::parse("b_00000000000000000000000000000001_999").is_none());
    }
}
