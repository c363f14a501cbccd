//! Shared helpers of the kv benches.
