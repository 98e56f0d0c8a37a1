//! Small helpers every module may use: the wall clock, named crash points for tests, and the
//! one-request HTTP client the commands use to reach the running daemon.

pub mod alloc;
pub mod failpoint;
pub mod http;

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the epoch (0 if the clock is before it).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// A random number, different in each call and each process (the standard library's hash keys,
/// seeded from the operating system): to tell processes apart, not for secrets.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Milliseconds since this process first asked (a monotonic clock: never stepped back by a
/// change of the wall clock).
pub fn monotonic_millis() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Milliseconds since the epoch (0 if the clock is before it).
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
