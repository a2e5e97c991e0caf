//! Personal data: normalised, then SHA-256 as lower-case hex, the way TikTok matches it.
//!
//! A value that already is 64 hex characters is taken for a hash and never hashed again, so
//! a page that hashes in the browser and a server that hashes again agree. Empty values give
//! `None`: TikTok must not receive the hash of an empty string.

use alloc::string::String;
use core::fmt;
use core::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

use crate::text;

/// A SHA-256 digest as 64 lower-case hex characters, held inline: an event carries up to
/// three, and a `String` for each would cost three allocations per event.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Hex([u8; 64]);

impl Sha256Hex {
    /// The digest of `text`.
    pub fn of(text: &str) -> Self {
        let mut hex_digest = [0u8; 64];
        for (hex, bytes) in hex_digest
            .chunks_exact_mut(8)
            .zip(sha256(text.as_bytes()).chunks_exact(4))
        {
            let word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            hex.copy_from_slice(&hex_word(word));
        }
        Sha256Hex(hex_digest)
    }

    /// `text` if it is 64 hex characters (either case), lower-cased.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; 64] = text.as_bytes().try_into().ok()?;
        is_sha256_hex(text).then(|| Sha256Hex(bytes.map(|b| b.to_ascii_lowercase())))
    }

    /// The 64 hex characters.
    pub fn as_str(&self) -> &str {
        // Only hex digits are ever stored, and they are ASCII.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Deref for Sha256Hex {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Sha256Hex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <alloc::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Sha256Hex::parse(&text).ok_or_else(|| {
            serde::de::Error::custom("expected 64 hex characters (a SHA-256 digest)")
        })
    }
}

/// SHA-256 of `text`, as 64 lower-case hex characters.
pub fn sha256_hex(text: &str) -> String {
    Sha256Hex::of(text).as_str().into()
}

/// A Content-Security-Policy source that allows exactly the inline script or style `text`:
/// `'sha256-<base64 of its SHA-256>'` (CSP Level 2), so a page needs no `'unsafe-inline'`.
pub fn csp_hash_source(text: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let digest = Sha256::digest(text.as_bytes());
    let mut source = String::from("'sha256-");
    STANDARD.encode_string(digest, &mut source);
    source.push('\'');
    source
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

/// The eight lower-case hex digits of `word`, computed for all eight at once in a `u64`
/// (a table lookup per byte costs several times more).
fn hex_word(word: u32) -> [u8; 8] {
    // Spread the nibbles out, one per byte, most significant first: 0x0a0b_0c0d_0e0f_0g0h.
    let mut x = u64::from(word);
    x = ((x & 0xffff_0000) << 16) | (x & 0xffff);
    x = ((x & 0x0000_ff00_0000_ff00) << 8) | (x & 0x0000_00ff_0000_00ff);
    x = ((x & 0x00f0_00f0_00f0_00f0) << 4) | (x & 0x000f_000f_000f_000f);
    // Digits above 9 get 'a' - '0' - 10 = 39 more: (n + 6) has bit 4 set exactly when n > 9.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * 39).to_be_bytes()
}

/// Whether `text` looks like a SHA-256 digest in hex (either case).
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Hashes `normalized` unless it is empty or already a digest.
fn hash_normalized(normalized: &str) -> Option<Sha256Hex> {
    if normalized.is_empty() {
        None
    } else {
        Some(Sha256Hex::parse(normalized).unwrap_or_else(|| Sha256Hex::of(normalized)))
    }
}

/// Normalised values up to this many bytes are built on the stack, not in a `String`.
const ON_STACK: usize = 128;

/// Email: trim, lower-case, SHA-256.
pub fn email(raw: &str) -> Option<Sha256Hex> {
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
pub fn phone(raw: &str) -> Option<Sha256Hex> {
    let trimmed = text::trim(raw);
    if let Some(digest) = Sha256Hex::parse(trimmed) {
        return Some(digest);
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
pub fn external_id(raw: &str) -> Option<Sha256Hex> {
    hash_normalized(text::trim(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    // Expected digests computed with coreutils, e.g.
    //   printf '%s' 'user@example.com' | sha256sum
    const USER_AT_EXAMPLE: &str =
        "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514";
    const PHONE_15551234567: &str =
        "d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a";
    const CUST_42: &str = "8a3c5a67cad508582b5edf6b8352cea3ffbad7f44812c1a736b4444c0f5746aa";

    /// Expected sources computed with OpenSSL:
    ///   printf '%s' "alert('hi');" | openssl dgst -sha256 -binary | base64
    #[test]
    fn csp_hash_sources() {
        assert_eq!(
            csp_hash_source(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
        assert_eq!(
            csp_hash_source("alert('hi');"),
            "'sha256-S3glexDivN1XnfRGec5uF4Y7TT2a/rcrADlE/zj4maA='"
        );
    }

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
            Some(Sha256Hex::of(&format!(
                "{}@example.com",
                local.to_lowercase()
            )))
        );
        let digits = "1234567890".repeat(ON_STACK / 10 + 1);
        assert_eq!(phone(&format!("+{digits}")), Some(Sha256Hex::of(&digits)));
        let exactly = "9".repeat(ON_STACK);
        assert_eq!(
            phone(&format!("({exactly})")),
            Some(Sha256Hex::of(&exactly))
        );
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
    fn digests_are_parsed_lowered_and_serialised_as_strings() {
        let upper = USER_AT_EXAMPLE.to_ascii_uppercase();
        let digest = Sha256Hex::parse(&upper).unwrap();
        assert_eq!(digest.as_str(), USER_AT_EXAMPLE);
        assert_eq!(digest, Sha256Hex::of("user@example.com"));
        for not_a_digest in [
            &USER_AT_EXAMPLE[1..],
            &format!("{USER_AT_EXAMPLE}0"),
            &USER_AT_EXAMPLE.replace('b', "g"),
        ] {
            assert_eq!(Sha256Hex::parse(not_a_digest), None, "{not_a_digest}");
        }
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{USER_AT_EXAMPLE}\""));
        assert_eq!(serde_json::from_str::<Sha256Hex>(&json).unwrap(), digest);
        let error = serde_json::from_str::<Sha256Hex>("\"user@example.com\"").unwrap_err();
        assert!(error.to_string().contains("64 hex characters"), "{error}");
    }

    #[test]
    fn hex_words_match_format() {
        let words = (0..=u32::MAX)
            .step_by(65_521)
            .chain([0, 9, 10, 0x9a9a_9a9a, u32::MAX]);
        for word in words {
            assert_eq!(
                &hex_word(word),
                format!("{word:08x}").as_bytes(),
                "{word:#x}"
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
