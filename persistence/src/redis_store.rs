//! Snapshots in Redis (to be written).

/// Placeholder until written.
#[derive(Debug)]
pub struct RedisSnapshotStore;
