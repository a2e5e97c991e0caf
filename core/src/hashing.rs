//! Personal data: normalised, then SHA-256 as lower-case hex, the way TikTok matches it.
//!
//! A value that already is 64 hex characters is taken for a hash and never hashed again, so
//! a page that hashes in the browser and a server that hashes again agree. Empty values give
//! `None`: TikTok must not receive the hash of an empty string.

use alloc::string::String;
use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

use crate::text;

/// SHA-256 of `text`, as 64 lower-case hex characters.
pub fn sha256_hex(text: &str) -> String {
    let mut hex_digest = [0u8; 64];
    for (pair, byte) in hex_digest.chunks_exact_mut(2).zip(sha256(text.as_bytes())) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    // Hex digits are ASCII.
    core::str::from_utf8(&hex_digest)
        .map(String::from)
        .unwrap_or_default()
}

/// SHA-256 of `data`. Personal data is short, and a value of up to 55 bytes fits one
/// 64-byte block with its padding: that block is built here and compressed once, which
/// skips the streaming `Digest` machinery (about a third of the time of a short hash).
fn sha256(data: &[u8]) -> [u8; 32] {
    /// FIPS 180-4's initial hash value.
    const H0: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    if data.len() > 55 {
        return Sha256::digest(data).into();
    }
    // The data, a 1 bit, zeros, and the length in bits as a big-endian u64.
    let mut block = GenericArray::<u8, U64>::default();
    block[..data.len()].copy_from_slice(data);
    block[data.len()] = 0x80;
    block[56..].copy_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    let mut state = H0;
    sha2::compress256(&mut state, core::slice::from_ref(&block));
    let mut digest = [0u8; 32];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// The two lower-case hex digits of every byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// Whether `text` looks like a SHA-256 digest in hex (either case).
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Hashes `normalized` unless it is empty or already a digest.
fn hash_normalized(normalized: &str) -> Option<String> {
    if normalized.is_empty() {
        None
    } else if is_sha256_hex(normalized) {
        Some(normalized.to_ascii_lowercase())
    } else {
        Some(sha256_hex(normalized))
    }
}

/// Normalised values up to this many bytes are built on the stack, not in a `String`.
const ON_STACK: usize = 128;

/// Email: trim, lower-case, SHA-256.
pub fn email(raw: &str) -> Option<String> {
    let trimmed = text::trim(raw);
    if !trimmed.is_ascii() {
        return hash_normalized(&trimmed.to_lowercase());
    }
    let mut buffer = [0u8; ON_STACK];
    match buffer.get_mut(..trimmed.len()) {
        Some(lowered) => {
            lowered.copy_from_slice(trimmed.as_bytes());
            lowered.make_ascii_lowercase();
            hash_normalized(core::str::from_utf8(lowered).ok()?)
        }
        None => hash_normalized(&trimmed.to_ascii_lowercase()),
    }
}

/// Phone: keep digits only, SHA-256 (`+1 (555) 123-4567` → `15551234567`).
pub fn phone(raw: &str) -> Option<String> {
    let trimmed = text::trim(raw);
    if is_sha256_hex(trimmed) {
        return Some(trimmed.to_ascii_lowercase());
    }
    let mut digits = trimmed.bytes().filter(u8::is_ascii_digit);
    let mut buffer = [0u8; ON_STACK];
    let mut len = 0;
    for (slot, digit) in buffer.iter_mut().zip(&mut digits) {
        *slot = digit;
        len += 1;
    }
    if digits.next().is_some() {
        // Longer than any phone number, but still hashed the same way.
        let all: String = trimmed
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(char::from)
            .collect();
        return hash_normalized(&all);
    }
    hash_normalized(core::str::from_utf8(&buffer[..len]).ok()?)
}

/// External id: trim, SHA-256.
pub fn external_id(raw: &str) -> Option<String> {
    hash_normalized(text::trim(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    // Expected digests computed with coreutils, e.g.
    //   printf '%s' 'user@example.com' | sha256sum
    const USER_AT_EXAMPLE: &str =
        "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514";
    const PHONE_15551234567: &str =
        "d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a";
    const CUST_42: &str = "8a3c5a67cad508582b5edf6b8352cea3ffbad7f44812c1a736b4444c0f5746aa";

    #[test]
    fn email_is_trimmed_and_lowered() {
        assert_eq!(
            email(" User@Example.com ").as_deref(),
            Some(USER_AT_EXAMPLE)
        );
    }

    #[test]
    fn phone_keeps_digits() {
        assert_eq!(
            phone("+1 (555) 123-4567").as_deref(),
            Some(PHONE_15551234567)
        );
    }

    #[test]
    fn external_id_is_trimmed() {
        assert_eq!(external_id(" cust-42 ").as_deref(), Some(CUST_42));
    }

    #[test]
    fn digests_pass_through_lowered() {
        let upper = USER_AT_EXAMPLE.to_ascii_uppercase();
        assert_eq!(email(&upper).as_deref(), Some(USER_AT_EXAMPLE));
        assert_eq!(phone(&upper).as_deref(), Some(USER_AT_EXAMPLE));
        assert_eq!(
            external_id(USER_AT_EXAMPLE).as_deref(),
            Some(USER_AT_EXAMPLE)
        );
    }

    #[test]
    fn long_values_are_normalised_like_short_ones() {
        let local = "A".repeat(ON_STACK + 10);
        assert_eq!(
            email(&format!(" {local}@Example.com")),
            Some(sha256_hex(&format!("{}@example.com", local.to_lowercase())))
        );
        let digits = "1234567890".repeat(ON_STACK / 10 + 1);
        assert_eq!(phone(&format!("+{digits}")), Some(sha256_hex(&digits)));
        let exactly = "9".repeat(ON_STACK);
        assert_eq!(phone(&format!("({exactly})")), Some(sha256_hex(&exactly)));
    }

    #[test]
    fn one_block_hashes_match_the_streaming_digest() {
        let text = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_ü+@";
        for len in 0..=text.len() {
            let data = &text.as_bytes()[..len];
            assert_eq!(
                sha256(data),
                <[u8; 32]>::from(Sha256::digest(data)),
                "{len}"
            );
        }
    }

    #[test]
    fn empty_values_are_left_out() {
        assert_eq!(email("   "), None);
        assert_eq!(phone("( ) -"), None);
        assert_eq!(external_id(""), None);
    }
}
