//! API keys: 256-bit random secrets, shown once at creation and stored only
//! as their SHA-256, each with a role and (for tenant roles) the buyer
//! account it is bound to.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, every tenant.
    Admin,
    /// A seller's integration.
    Seller,
    /// A buyer account's user (tenant-bound).
    Buyer,
    /// A buyer account's manager (tenant-bound).
    Manager,
    /// An insurance agent of a buyer account (tenant-bound).
    Agent,
}

impl Role {
    /// True for roles bound to one account (`tenant`).
    pub fn is_tenant_bound(self) -> bool {
        !matches!(self, Role::Admin)
    }
}

/// Rate-limit tier of a key: requests per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// 60 requests per minute.
    Basic,
    /// 120 requests per minute.
    #[default]
    Standard,
    /// 300 requests per minute.
    Premium,
    /// 600 requests per minute.
    Enterprise,
}

impl Tier {
    /// Requests allowed per minute.
    pub fn requests_per_minute(self) -> u32 {
        match self {
            Tier::Basic => 60,
            Tier::Standard => 120,
            Tier::Premium => 300,
            Tier::Enterprise => 600,
        }
    }
}

/// A key as stored: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Key id, `k_<32 hex>`; public.
    pub id: String,
    /// A label for people.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The account it is bound to (buyer id; seller id for seller keys);
    /// `None` for admin keys.
    pub tenant: Option<String>,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
    /// Revocation time, Unix ms.
    pub revoked_at_ms: Option<i64>,
    /// After this time the key no longer works (set by a rotation), Unix ms.
    pub expires_at_ms: Option<i64>,
    /// Rate-limit tier.
    #[serde(default)]
    pub tier: Tier,
}

impl ApiKey {
    /// True when the key authenticates at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|e| now_ms < e)
    }
}

/// Rate limits per key: GCRA (a token bucket kept as one "theoretical
/// arrival time" per key), a minute's worth of requests as the burst.
/// The admin path is not the hot path, so one mutex over a map is enough;
/// it is held for a few instructions.
#[derive(Debug, Default)]
pub struct RateLimiter {
    tat_ms: parking_lot::Mutex<std::collections::HashMap<String, i64>>,
}

impl RateLimiter {
    /// Counts a request of `key_id` at `now_ms` against `per_minute`;
    /// `Err(retry_after_s)` when over the limit (nothing counted).
    pub fn check(&self, key_id: &str, per_minute: u32, now_ms: i64) -> Result<(), u64> {
        let interval_ms = 60_000 / i64::from(per_minute.max(1));
        let burst_ms = 60_000 - interval_ms;
        let mut map = self.tat_ms.lock();
        let tat = map.get(key_id).copied().unwrap_or(now_ms).max(now_ms);
        if tat - now_ms > burst_ms {
            let wait_ms = tat - now_ms - burst_ms;
            return Err((wait_ms as u64).div_ceil(1000).max(1));
        }
        map.insert(key_id.to_string(), tat + interval_ms);
        Ok(())
    }
}

/// Prefix of every secret, so leaked keys are easy to search for.
pub const SECRET_PREFIX: &str = "ldx_";

/// 32 bytes from the operating system's generator, hex.
fn random_hex32() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new secret (`ldx_` + 256 random bits in hex) and its hash.
pub fn generate_secret() -> (String, String) {
    let secret = format!("{SECRET_PREFIX}{}", random_hex32());
    let hash = secret_hash(&secret);
    (secret, hash)
}

/// A new key id, `k_` + 128 random bits in hex.
pub fn generate_id(prefix: &str) -> String {
    format!("{prefix}{}", &random_hex32()[..32])
}

/// SHA-256 of a secret, hex.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_256_bit_and_hashed() {
        let (a, ha) = generate_secret();
        let (b, hb) = generate_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), SECRET_PREFIX.len() + 64);
        assert_eq!(ha, secret_hash(&a));
        assert_ne!(ha, hb);
        assert!(!ha.contains(&a[SECRET_PREFIX.len()..]));
        assert_eq!(generate_id("k_").len(), 34);
    }

    #[test]
    fn a_tier_allows_its_requests_per_minute_then_asks_to_wait() {
        let limiter = RateLimiter::default();
        let now = 1_000_000;
        for i in 0..60 {
            assert_eq!(
                limiter.check("k", Tier::Basic.requests_per_minute(), now),
                Ok(()),
                "request {i}"
            );
        }
        assert_eq!(
            limiter.check("k", 60, now),
            Err(1),
            "the 61st within the minute waits a second"
        );
        assert_eq!(
            limiter.check("other", 60, now),
            Ok(()),
            "keys are limited apart"
        );
        assert_eq!(
            limiter.check("k", 60, now + 1_000),
            Ok(()),
            "one more per second after"
        );
        assert!(limiter.check("k", 60, now + 1_000).is_err());
        assert_eq!(Tier::Enterprise.requests_per_minute(), 600);
    }
}

/// The credentials of an `Authorization: Bearer <token>` header value: the
/// scheme name is case-insensitive (RFC 9110 §11.1), the token trimmed;
/// `None` for another scheme or an empty token. The seller API and the
/// admin API both read keys with it.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod bearer_tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_trimmed() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
