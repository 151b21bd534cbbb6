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
}

impl ApiKey {
    /// True when the key authenticates at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|e| now_ms < e)
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
}
