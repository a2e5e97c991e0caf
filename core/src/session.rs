//! The admin dashboard's session cookie: a signed, expiring value, so the dashboard need
//! not keep `ADMIN_TOKEN` in the browser and the Worker need not store sessions.
//!
//! A value is `v1.<expires_ms>.<nonce>.<mac>`: the expiry in epoch milliseconds, 16 random
//! bytes, and an HMAC-SHA256 over `v1.<expires_ms>.<nonce>`, both in unpadded URL-safe
//! base64. The key is derived from `ADMIN_TOKEN` ([`session_key`]), so rotating the token
//! ends every session at once. The nonce makes two sessions issued in the same millisecond
//! differ. Like the rest of core, the caller passes the time and the random bytes.

use alloc::format;
use alloc::string::String;
use core::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE_NAME: &str = "ttedge_session";

/// The version prefix of session values; bump it with any change to the format.
pub const VERSION: &str = "v1";

/// Separates this key's derivation from any other hash of `ADMIN_TOKEN`.
const KEY_CONTEXT: &[u8] = b"ttedge admin session key v1\0";

/// Base64 characters of the 16-byte nonce and the 32-byte MAC.
const NONCE_CHARS: usize = 22;
const MAC_CHARS: usize = 43;

/// The longest well-formed value: `v1.` + 20 digits + `.` + nonce + `.` + MAC.
const MAX_VALUE_LEN: usize = 3 + 20 + 1 + NONCE_CHARS + 1 + MAC_CHARS;

/// Why a session cookie was not accepted. No variant carries the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// Not a `v1.<expires_ms>.<nonce>.<mac>` value.
    Malformed,
    /// The MAC does not match: altered, forged, or signed before `ADMIN_TOKEN` changed.
    BadSignature,
    /// Authentic, but its time is up.
    Expired,
}

impl SessionError {
    /// A stable machine-readable name for the kind of problem.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::Malformed => "session_malformed",
            SessionError::BadSignature => "session_bad_signature",
            SessionError::Expired => "session_expired",
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionError::Malformed => "the session cookie is not one ttedge issued; sign in again",
            SessionError::BadSignature => {
                "the session cookie's signature does not match (ADMIN_TOKEN may have changed); \
                 sign in again"
            }
            SessionError::Expired => "the session has expired; sign in again",
        })
    }
}

impl core::error::Error for SessionError {}

/// The signing key of sessions: SHA-256 of a fixed context and `admin_token`. Changing
/// `ADMIN_TOKEN` changes the key, so every session issued before fails as
/// [`SessionError::BadSignature`].
pub fn session_key(admin_token: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(KEY_CONTEXT);
    hasher.update(admin_token.as_bytes());
    hasher.finalize().into()
}

/// HMAC-SHA256 keyed with `key`.
fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    // HMAC zero-pads a key shorter than the 64-byte block, so the padded key is the same
    // key; taking it whole avoids `new_from_slice`'s never-failing `Result`.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    <Hmac<Sha256> as KeyInit>::new(&block.into())
}

/// A session value expiring `ttl_ms` after `now_ms`, with 16 fresh random bytes `nonce`.
pub fn issue(key: &[u8; 32], now_ms: u64, ttl_ms: u64, nonce: [u8; 16]) -> String {
    let expires_ms = now_ms.saturating_add(ttl_ms);
    let mut value = format!("{VERSION}.{expires_ms}.");
    URL_SAFE_NO_PAD.encode_string(nonce, &mut value);
    let mut signer = mac(key);
    signer.update(value.as_bytes());
    let tag = signer.finalize().into_bytes();
    value.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut value);
    value
}

/// Checks a session value at `now_ms` and returns when it expires.
///
/// The shape is checked first ([`SessionError::Malformed`]), then the MAC in constant time
/// ([`SessionError::BadSignature`]), and only then the expiry ([`SessionError::Expired`]):
/// a forged value never learns more than "bad signature". A session is valid while
/// `now_ms < expires_ms`.
pub fn verify(key: &[u8; 32], value: &str, now_ms: u64) -> Result<u64, SessionError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(SessionError::Malformed);
    }
    let mut parts = value.split('.');
    let (Some(VERSION), Some(expires_text), Some(nonce_text), Some(mac_text), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SessionError::Malformed);
    };
    let digits = !expires_text.is_empty()
        && expires_text.len() <= 20
        && expires_text.bytes().all(|b| b.is_ascii_digit());
    let expires_ms: u64 = match expires_text.parse() {
        Ok(ms) if digits => ms,
        _ => return Err(SessionError::Malformed),
    };
    let mut nonce = [0u8; 16];
    let mut tag = [0u8; 32];
    if nonce_text.len() != NONCE_CHARS
        || mac_text.len() != MAC_CHARS
        || URL_SAFE_NO_PAD.decode_slice(nonce_text, &mut nonce) != Ok(16)
        || URL_SAFE_NO_PAD.decode_slice(mac_text, &mut tag) != Ok(32)
    {
        return Err(SessionError::Malformed);
    }
    // The signed text is everything before the last dot, exactly as received.
    let signed = &value[..value.len() - mac_text.len() - 1];
    let mut checker = mac(key);
    checker.update(signed.as_bytes());
    checker
        .verify_slice(&tag)
        .map_err(|_| SessionError::BadSignature)?;
    if now_ms >= expires_ms {
        return Err(SessionError::Expired);
    }
    Ok(expires_ms)
}

/// The id of a session value that [`verify`] accepted: its nonce, as written. Logging out
/// records the id, so that a copy of the cookie is refused afterwards too. It is no secret:
/// a value cannot be made from it without the key.
pub fn id(value: &str) -> Option<&str> {
    value.split('.').nth(2)
}

/// `Set-Cookie` for a session value: only sent to `/admin`, never readable by script,
/// HTTPS only, and never on cross-site requests (so no CSRF through the cookie).
pub fn set_cookie(value: &str, max_age_s: u64) -> String {
    format!("{COOKIE_NAME}={value}; Path=/admin; Max-Age={max_age_s}; HttpOnly; Secure; SameSite=Strict")
}

/// `Set-Cookie` that removes the session cookie (signing out).
pub fn clear_cookie() -> String {
    set_cookie("", 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    const NOW: u64 = 1_764_064_800_000;
    const TTL: u64 = 12 * 60 * 60 * 1_000;

    fn key() -> [u8; 32] {
        session_key("admin-token-for-tests")
    }

    #[test]
    fn round_trip() {
        let value = issue(&key(), NOW, TTL, [7; 16]);
        assert!(value.starts_with(&format!("v1.{}.", NOW + TTL)), "{value}");
        assert_eq!(value.split('.').count(), 4);
        assert!(value.len() <= MAX_VALUE_LEN);
        assert!(crate::cookie::is_cookie_value(&value));
        assert_eq!(verify(&key(), &value, NOW), Ok(NOW + TTL));
        let other = issue(&key(), NOW, TTL, [8; 16]);
        assert_ne!(value, other, "the nonce tells sessions apart");
    }

    #[test]
    fn the_mac_is_hmac_sha256_over_the_signed_text() {
        let value = issue(&key(), NOW, TTL, [1; 16]);
        let (signed, tag) = value.rsplit_once('.').unwrap();
        let mut reference = <Hmac<Sha256> as KeyInit>::new_from_slice(&key()).unwrap();
        reference.update(signed.as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.encode(reference.finalize().into_bytes()),
            tag
        );
    }

    #[test]
    fn expiry_boundary() {
        let value = issue(&key(), NOW, TTL, [7; 16]);
        assert_eq!(verify(&key(), &value, NOW + TTL - 1), Ok(NOW + TTL));
        assert_eq!(
            verify(&key(), &value, NOW + TTL),
            Err(SessionError::Expired)
        );
        assert_eq!(verify(&key(), &value, u64::MAX), Err(SessionError::Expired));
        let forever = issue(&key(), u64::MAX - 1, TTL, [7; 16]);
        assert_eq!(verify(&key(), &forever, NOW), Ok(u64::MAX));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let value = issue(&key(), NOW, TTL, [7; 16]);
        let parts: Vec<&str> = value.split('.').collect();
        let later = format!("v1.{}.{}.{}", NOW + 10 * TTL, parts[2], parts[3]);
        assert_eq!(verify(&key(), &later, NOW), Err(SessionError::BadSignature));
        let padded = format!("v1.0{}.{}.{}", NOW + TTL, parts[2], parts[3]);
        assert_eq!(
            verify(&key(), &padded, NOW),
            Err(SessionError::BadSignature)
        );
        let nonce = URL_SAFE_NO_PAD.encode([9u8; 16]);
        let other_nonce = format!("v1.{}.{nonce}.{}", NOW + TTL, parts[3]);
        assert_eq!(
            verify(&key(), &other_nonce, NOW),
            Err(SessionError::BadSignature)
        );
        let mut mac = URL_SAFE_NO_PAD.decode(parts[3]).unwrap();
        mac[31] ^= 1;
        let flipped = format!(
            "{}.{}",
            value.rsplit_once('.').unwrap().0,
            URL_SAFE_NO_PAD.encode(mac)
        );
        assert_eq!(
            verify(&key(), &flipped, NOW),
            Err(SessionError::BadSignature)
        );
        // A forged expired value says only "bad signature".
        assert_eq!(
            verify(&key(), &later, u64::MAX),
            Err(SessionError::BadSignature)
        );
    }

    #[test]
    fn another_admin_token_ends_the_session() {
        let value = issue(&key(), NOW, TTL, [7; 16]);
        let rotated = session_key("a-new-admin-token");
        assert_ne!(rotated, key());
        assert_eq!(
            verify(&rotated, &value, NOW),
            Err(SessionError::BadSignature)
        );
        assert_eq!(session_key("x"), session_key("x"));
    }

    #[test]
    fn malformed_values() {
        let value = issue(&key(), NOW, TTL, [7; 16]);
        let parts: Vec<&str> = value.split('.').collect();
        for bad in [
            String::new(),
            "v1".to_string(),
            "v1...".to_string(),
            value.replacen("v1", "v2", 1),
            format!("{value}."),
            format!("{value}.x"),
            format!("v1.+{}.{}.{}", NOW, parts[2], parts[3]),
            format!("v1.-1.{}.{}", parts[2], parts[3]),
            format!("v1.99999999999999999999.{}.{}", parts[2], parts[3]),
            format!("v1.{}.{}=.{}", NOW, &parts[2][..21], parts[3]),
            format!("v1.{}.{}.{}", NOW, parts[2], &parts[3][..42]),
            format!("v1.{}.{}.{}A", NOW, parts[2], parts[3]),
            format!("v1.{NOW}.{}.{}", "!".repeat(22), parts[3]),
            "x".repeat(10_000),
        ] {
            assert_eq!(
                verify(&key(), &bad, NOW),
                Err(SessionError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_id_is_the_nonce() {
        let value = issue(&key(), NOW, TTL, [7; 16]);
        let other = issue(&key(), NOW, TTL, [8; 16]);
        assert_eq!(id(&value), Some(URL_SAFE_NO_PAD.encode([7; 16]).as_str()));
        assert_ne!(id(&value), id(&other));
    }

    #[test]
    fn cookies() {
        assert_eq!(
            set_cookie("v1.x", 3_600),
            "ttedge_session=v1.x; Path=/admin; Max-Age=3600; HttpOnly; Secure; SameSite=Strict"
        );
        assert_eq!(
            clear_cookie(),
            "ttedge_session=; Path=/admin; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
        );
        assert_eq!(SessionError::Expired.code(), "session_expired");
        assert!(SessionError::BadSignature
            .to_string()
            .contains("ADMIN_TOKEN"));
    }

    proptest! {
        /// Whatever arrives in the cookie, verify answers without panicking and accepts
        /// nothing it did not sign.
        #[test]
        fn garbage_never_verifies(text in ".{0,160}", dotted in "v1\\.[0-9]{0,21}\\.[A-Za-z0-9_-]{0,24}\\.[A-Za-z0-9_-]{0,45}") {
            prop_assert!(verify(&key(), &text, NOW).is_err());
            prop_assert!(verify(&key(), &dotted, NOW).is_err());
        }

        /// Any change to one character of a valid value is refused.
        #[test]
        fn any_one_character_change_is_refused(
            now in 0u64..u64::MAX / 2,
            ttl in 1u64..u64::MAX / 4,
            nonce in any::<[u8; 16]>(),
            position in any::<prop::sample::Index>(),
            replacement in proptest::char::range('+', 'z'),
        ) {
            let value = issue(&key(), now, ttl, nonce);
            prop_assert_eq!(verify(&key(), &value, now), Ok(now + ttl));
            let at = position.index(value.len());
            let mut changed = value.clone();
            changed.replace_range(at..at + 1, &replacement.to_string());
            if changed != value {
                prop_assert!(verify(&key(), &changed, now).is_err(), "{}", changed);
            }
        }
    }
}
