//! The Kafka journal (to be written).
