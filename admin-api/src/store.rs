//! [`AdminStore`]: the admin API's state (API keys so far), rebuilt from
//! the journal's `Event::Admin` records and kept in snapshots as the
//! `admin` extension. Changes apply in journal order, inside the journal's
//! durability callback (see [`crate::Admin::commit`]).

use crate::keys::{ApiKey, Role};
use leadex_engine::event::AdminRecord;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Name of the snapshot extension holding this state.
pub const EXTENSION: &str = "admin";

/// One change, the payload of an `Event::Admin` record (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AdminChange {
    /// A key was created (its secret is not in here, only its hash).
    KeyCreated {
        /// The key.
        key: ApiKey,
    },
    /// A key was revoked.
    KeyRevoked {
        /// Key id.
        id: String,
        /// When, Unix ms.
        at_ms: i64,
    },
    /// A key stops working at a time (the old key of a rotation).
    KeyExpires {
        /// Key id.
        id: String,
        /// When, Unix ms.
        at_ms: i64,
    },
}

impl AdminChange {
    /// The record kind, for logs and tools.
    pub fn kind(&self) -> &'static str {
        match self {
            AdminChange::KeyCreated { .. } => "key.created",
            AdminChange::KeyRevoked { .. } => "key.revoked",
            AdminChange::KeyExpires { .. } => "key.expires",
        }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct State {
    keys: BTreeMap<String, ApiKey>,
    /// Ids of the records applied: replay is idempotent by them.
    applied: BTreeSet<String>,
    #[serde(skip)]
    by_hash: HashMap<String, String>,
}

impl State {
    fn index(&mut self) {
        self.by_hash = self
            .keys
            .values()
            .map(|k| (k.secret_sha256.clone(), k.id.clone()))
            .collect();
    }
}

/// The admin state. Reads take a shared lock (the admin path is not the hot
/// path); writes come only from journal callbacks and replay.
#[derive(Debug, Default)]
pub struct AdminStore {
    state: RwLock<State>,
}

impl AdminStore {
    /// Applies one journaled record; `Ok(false)` when it was applied before.
    /// A record that does not decode is an error (the caller refuses to
    /// start rather than lose admin changes).
    pub fn apply(&self, record: &AdminRecord) -> Result<bool, String> {
        let change: AdminChange = serde_json::from_slice(&record.payload)
            .map_err(|e| format!("admin record {} does not decode: {e}", record.id))?;
        let mut state = self.state.write();
        if !state.applied.insert(record.id.clone()) {
            return Ok(false);
        }
        match change {
            AdminChange::KeyCreated { key } => {
                state
                    .by_hash
                    .insert(key.secret_sha256.clone(), key.id.clone());
                state.keys.insert(key.id.clone(), key);
            }
            AdminChange::KeyRevoked { id, at_ms } => {
                if let Some(k) = state.keys.get_mut(&id) {
                    k.revoked_at_ms.get_or_insert(at_ms);
                }
            }
            AdminChange::KeyExpires { id, at_ms } => {
                if let Some(k) = state.keys.get_mut(&id) {
                    k.expires_at_ms = Some(k.expires_at_ms.map_or(at_ms, |e| e.min(at_ms)));
                }
            }
        }
        Ok(true)
    }

    /// The active key whose secret hashes to `secret_sha256`.
    pub fn authenticate(&self, secret_sha256: &str, now_ms: i64) -> Option<ApiKey> {
        let state = self.state.read();
        let id = state.by_hash.get(secret_sha256)?;
        state.keys.get(id).filter(|k| k.is_active(now_ms)).cloned()
    }

    /// A key by id.
    pub fn key(&self, id: &str) -> Option<ApiKey> {
        self.state.read().keys.get(id).cloned()
    }

    /// Every key, by id.
    pub fn keys(&self) -> Vec<ApiKey> {
        self.state.read().keys.values().cloned().collect()
    }

    /// True when some admin key works at `now_ms`.
    pub fn has_active_admin(&self, now_ms: i64) -> bool {
        self.state
            .read()
            .keys
            .values()
            .any(|k| k.role == Role::Admin && k.is_active(now_ms))
    }

    /// The state for a snapshot (JSON; canonical: sorted maps).
    pub fn image(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.state.read()).expect("invariant: the admin state encodes")
    }

    /// Loads a snapshot's image into a fresh store.
    pub fn restore(&self, image: &[u8]) -> Result<(), String> {
        let mut state: State = serde_json::from_slice(image)
            .map_err(|e| format!("the admin snapshot section does not decode: {e}"))?;
        state.index();
        *self.state.write() = state;
        Ok(())
    }
}

/// Encodes a change as a journal record with a fresh id.
pub fn record(change: &AdminChange, at_ms: i64) -> AdminRecord {
    AdminRecord {
        id: crate::keys::generate_id("a_"),
        at_ms,
        kind: change.kind().to_string(),
        payload: serde_json::to_vec(change).expect("invariant: admin changes encode"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_secret, secret_hash};

    fn key(id: &str, role: Role, secret_hash: String) -> ApiKey {
        ApiKey {
            id: id.into(),
            name: "n".into(),
            role,
            tenant: None,
            secret_sha256: secret_hash,
            created_at_ms: 1,
            revoked_at_ms: None,
            expires_at_ms: None,
        }
    }

    #[test]
    fn keys_authenticate_until_revoked_or_expired_and_replay_is_idempotent() {
        let store = AdminStore::default();
        let (secret, hash) = generate_secret();
        let created = record(
            &AdminChange::KeyCreated {
                key: key("k_1", Role::Admin, hash.clone()),
            },
            1,
        );
        assert_eq!(store.apply(&created), Ok(true));
        assert_eq!(
            store.apply(&created),
            Ok(false),
            "a second copy changes nothing"
        );
        assert_eq!(
            store.authenticate(&secret_hash(&secret), 5).map(|k| k.id),
            Some("k_1".into())
        );
        assert!(store.has_active_admin(5));
        let expires = record(
            &AdminChange::KeyExpires {
                id: "k_1".into(),
                at_ms: 100,
            },
            2,
        );
        store.apply(&expires).unwrap();
        assert!(store.authenticate(&hash, 99).is_some());
        assert!(store.authenticate(&hash, 100).is_none());
        let revoked = record(
            &AdminChange::KeyRevoked {
                id: "k_1".into(),
                at_ms: 50,
            },
            3,
        );
        store.apply(&revoked).unwrap();
        assert!(store.authenticate(&hash, 10).is_none());
        assert!(!store.has_active_admin(10));
        assert!(store.authenticate("0".repeat(64).as_str(), 10).is_none());
        let bad = AdminRecord {
            payload: b"{".to_vec(),
            ..revoked.clone()
        };
        assert!(store
            .apply(&AdminRecord {
                id: "a_x".into(),
                ..bad
            })
            .is_err());
    }

    #[test]
    fn the_image_restores_the_same_state() {
        let store = AdminStore::default();
        let (_, hash) = generate_secret();
        let created = record(
            &AdminChange::KeyCreated {
                key: key("k_1", Role::Buyer, hash.clone()),
            },
            1,
        );
        store.apply(&created).unwrap();
        let copy = AdminStore::default();
        copy.restore(&store.image()).unwrap();
        assert_eq!(copy.image(), store.image());
        assert_eq!(
            copy.authenticate(&hash, 2).map(|k| k.role),
            Some(Role::Buyer)
        );
        assert_eq!(
            copy.apply(&created),
            Ok(false),
            "applied ids survive the image"
        );
    }
}
