//! The clock and randomness core may not fetch itself.

use worker::{Date, Result};

/// Milliseconds since the epoch. In workerd the clock only advances across I/O.
pub fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// `N` bytes from `crypto.getRandomValues` (getrandom's `wasm_js` backend).
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|error| worker::Error::RustError(format!("no randomness: {error}")))?;
    Ok(bytes)
}
