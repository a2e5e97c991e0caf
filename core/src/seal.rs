//! Secrets sealed at rest: access tokens encrypted with AES-256-GCM under `MASTER_KEY`.
//!
//! A destination's TikTok access token is stored in a Durable Object, so anyone who can read
//! that storage (a backup, a debugging session, a bug that dumps a row) must not learn it.
//! [`seal`] encrypts it under the Worker's `MASTER_KEY` secret and binds it to the site host
//! as associated data, so a sealed token copied onto another destination does not open:
//! events for site A can never leave with site B's token. AES-GCM also authenticates, so a
//! changed `MASTER_KEY` gives [`SealError::WrongKeyOrData`], never a garbage token sent to
//! TikTok.
//!
//! The sealed text is self-describing, `v1.<nonce>.<ciphertext and tag>` with both parts in
//! unpadded URL-safe base64, so a later format or key rotation can tell versions apart and
//! the value is plain text that fits a SQLite column or JSON string.
//!
//! Like the rest of core this holds no random source: the caller passes a fresh random
//! 12-byte nonce for every seal (the Worker takes it from `crypto.getRandomValues`). A
//! nonce must never repeat under one key; 96 random bits make that safe for far more
//! seals than an admin API will ever make.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

/// The version prefix of sealed values; bump it with any change to the format or cipher.
pub const VERSION: &str = "v1";

/// Bytes in a nonce: AES-GCM's standard 96 bits.
pub const NONCE_LEN: usize = 12;

/// Bytes of the authentication tag after the ciphertext.
const TAG_LEN: usize = 16;

/// Why a master key could not be read or a sealed value could not be opened.
///
/// No variant carries, and no message shows, the key, the sealed value or the secret:
/// these errors end up in answers and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// `MASTER_KEY` is not 32 bytes as 64 hex characters or as base64.
    BadMasterKey,
    /// The stored value is not `v1.<nonce>.<ciphertext>`: not sealed by this code, or cut.
    Malformed,
    /// Authentication failed: `MASTER_KEY` changed since the value was sealed, the value
    /// belongs to another site host, or it was altered.
    WrongKeyOrData,
    /// It opened, but what was sealed is not UTF-8 text (it was not sealed by [`seal`]).
    NotUtf8,
}

impl SealError {
    /// A stable machine-readable name for the kind of problem.
    pub fn code(&self) -> &'static str {
        match self {
            SealError::BadMasterKey => "bad_master_key",
            SealError::Malformed => "sealed_value_malformed",
            SealError::WrongKeyOrData => "sealed_value_wrong_key_or_host",
            SealError::NotUtf8 => "sealed_value_not_utf8",
        }
    }
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SealError::BadMasterKey => {
                "MASTER_KEY must be 32 random bytes written as 64 hex characters or as base64 \
                 (44 characters, or 43 without the trailing '='; standard or URL-safe), for \
                 example the output of `openssl rand -base64 32`"
            }
            SealError::Malformed => {
                "the stored access token is not a sealed value (expected v1.<nonce>.<ciphertext>); \
                 re-enter the access token"
            }
            SealError::WrongKeyOrData => {
                "the stored access token cannot be opened: MASTER_KEY changed since it was saved, \
                 or it was saved for another site host; re-enter the access token"
            }
            SealError::NotUtf8 => {
                "the stored access token opened but is not text; re-enter the access token"
            }
        })
    }
}

impl core::error::Error for SealError {}

/// The key that seals secrets, read once from the `MASTER_KEY` secret.
///
/// It holds the expanded AES key, ready for many seals and opens, and never shows it: its
/// `Debug` prints `MasterKey(..)`, and it has no accessor for the bytes.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl MasterKey {
    /// A key from 32 raw bytes, for callers that hold bytes rather than secret text.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey {
            cipher: Aes256Gcm::new(&bytes.into()),
        }
    }

    /// Reads the `MASTER_KEY` secret text: 32 bytes as 64 hex characters (either case), or
    /// as base64 in the standard or URL-safe alphabet, with padding (44 characters) or
    /// without (43). Surrounding whitespace is ignored, since `wrangler secret put` from a
    /// file or pipe easily keeps a newline.
    ///
    /// Anything else, including a key of the wrong length, is [`SealError::BadMasterKey`]:
    /// a shorter key would silently weaken every sealed token.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let mut bytes = [0u8; 32];
        let decoded = match text.len() {
            64 => hex::decode_to_slice(text, &mut bytes).is_ok(),
            43 | 44 => [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .any(|engine| engine.decode_slice(text, &mut bytes) == Ok(32)),
            _ => false,
        };
        if decoded {
            Ok(Self::from_bytes(bytes))
        } else {
            Err(SealError::BadMasterKey)
        }
    }
}

impl FromStr for MasterKey {
    type Err = SealError;

    /// Same as [`MasterKey::parse`].
    fn from_str(text: &str) -> Result<Self, SealError> {
        Self::parse(text)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Seals `plaintext` under `key`, bound to `associated_data`, as `v1.<nonce>.<ciphertext>`.
///
/// `nonce` must be 12 fresh random bytes for every call: reusing one under the same key
/// reveals the XOR of the two plaintexts and lets an attacker forge values. Pass the site
/// host as `associated_data` (spelled the same way, lower-case, every time), so the sealed
/// value only opens for that host; it is authenticated, not stored.
///
/// AES-GCM cannot seal more than 64 GiB at once; such a plaintext or associated data
/// (impossible on wasm32) gives a value that [`open`] rejects as [`SealError::Malformed`]
/// rather than a panic.
pub fn seal(
    key: &MasterKey,
    nonce: [u8; NONCE_LEN],
    plaintext: &str,
    associated_data: &str,
) -> String {
    let payload = Payload {
        msg: plaintext.as_bytes(),
        aad: associated_data.as_bytes(),
    };
    let sealed = key
        .cipher
        .encrypt(&Nonce::from(nonce), payload)
        .unwrap_or_default();
    let mut text = String::with_capacity(VERSION.len() + 2 + 16 + (sealed.len() * 4).div_ceil(3));
    text.push_str(VERSION);
    text.push('.');
    URL_SAFE_NO_PAD.encode_string(nonce, &mut text);
    text.push('.');
    URL_SAFE_NO_PAD.encode_string(sealed, &mut text);
    text
}

/// Opens a value made by [`seal`] with the same key and associated data.
///
/// Fails with [`SealError::Malformed`] when `sealed` is not in the v1 format, with
/// [`SealError::WrongKeyOrData`] when authentication fails (another `MASTER_KEY`, another
/// host, or an altered value), and with [`SealError::NotUtf8`] when what opens is not text.
/// It never returns unauthenticated bytes.
pub fn open(key: &MasterKey, sealed: &str, associated_data: &str) -> Result<String, SealError> {
    let rest = sealed
        .strip_prefix(VERSION)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or(SealError::Malformed)?;
    let (nonce_text, sealed_text) = rest.split_once('.').ok_or(SealError::Malformed)?;
    let mut nonce = [0u8; NONCE_LEN];
    if URL_SAFE_NO_PAD.decode_slice(nonce_text, &mut nonce) != Ok(NONCE_LEN) {
        return Err(SealError::Malformed);
    }
    let sealed_bytes: Vec<u8> = URL_SAFE_NO_PAD
        .decode(sealed_text)
        .map_err(|_| SealError::Malformed)?;
    if sealed_bytes.len() < TAG_LEN {
        return Err(SealError::Malformed);
    }
    let payload = Payload {
        msg: &sealed_bytes,
        aad: associated_data.as_bytes(),
    };
    let plaintext = key
        .cipher
        .decrypt(&Nonce::from(nonce), payload)
        .map_err(|_| SealError::WrongKeyOrData)?;
    String::from_utf8(plaintext).map_err(|_| SealError::NotUtf8)
}

/// Masks a secret for display: `…` and its last 4 characters, so an operator can tell which
/// token is set without it being shown.
///
/// A secret shorter than 8 characters is masked whole as `…`: showing 4 of 7 characters
/// would give most of it away.
pub fn mask(secret: &str) -> String {
    const SHOWN: usize = 4;
    const MIN_LEN: usize = 8;
    let chars = secret.chars().count();
    let mut masked = String::from("…");
    if chars >= MIN_LEN {
        masked.extend(secret.chars().skip(chars - SHOWN));
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const HOST: &str = "t.shop.com";
    const TOKEN: &str = "act.0123456789abcdefwxyz";
    const NONCE: [u8; 12] = [
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
    ];

    fn key() -> MasterKey {
        MasterKey::parse(KEY_HEX).unwrap()
    }

    /// Every message, checked for leaks of the key or the token.
    fn assert_leaks_nothing(error: SealError) {
        let message = error.to_string();
        for secret in [KEY_HEX, TOKEN, "0123456789", "wxyz"] {
            assert!(!message.contains(secret), "{message}");
        }
        assert!(!format!("{error:?}").contains(TOKEN));
    }

    /// Known answer, computed independently of this code with Python's `cryptography` 48.0.0
    /// (OpenSSL's AES-GCM):
    ///
    /// ```python
    /// from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    /// ct = AESGCM(bytes(range(32))).encrypt(bytes(range(0xa0, 0xac)),
    ///                                       b"act.0123456789abcdefwxyz", b"t.shop.com")
    /// ct.hex()  # ciphertext || 16-byte tag
    /// "v1." + b64url(nonce) + "." + b64url(ct)  # b64url = urlsafe_b64encode(..).rstrip(b"=")
    /// ```
    #[test]
    fn known_answer_from_python_cryptography() {
        let expected_hex =
            "877b080375fa308c5650b1e43f43a1bc13c83c76e5cf3b162dd929fe357c0222ad40e348fe1a7794";
        let expected = "v1.oKGio6Slpqeoqaqr.h3sIA3X6MIxWULHkP0OhvBPIPHblzzsWLdkp_jV8AiKtQONI_hp3lA";
        let sealed = seal(&key(), NONCE, TOKEN, HOST);
        assert_eq!(sealed, expected);
        let (_, body) = sealed.rsplit_once('.').unwrap();
        assert_eq!(
            hex::encode(URL_SAFE_NO_PAD.decode(body).unwrap()),
            expected_hex
        );
        assert_eq!(open(&key(), expected, HOST).as_deref(), Ok(TOKEN));
    }

    #[test]
    fn round_trips() {
        for plaintext in ["", "x", TOKEN, "jeton d’accès ✓"] {
            let sealed = seal(&key(), NONCE, plaintext, HOST);
            assert!(sealed.starts_with("v1."));
            assert!(!sealed.contains(plaintext) || plaintext.len() < 2);
            assert_eq!(open(&key(), &sealed, HOST).as_deref(), Ok(plaintext));
        }
    }

    #[test]
    fn different_nonces_give_different_ciphertexts() {
        let mut other = NONCE;
        other[11] ^= 1;
        let a = seal(&key(), NONCE, TOKEN, HOST);
        let b = seal(&key(), other, TOKEN, HOST);
        assert_ne!(a.rsplit_once('.').unwrap().1, b.rsplit_once('.').unwrap().1);
        assert_eq!(open(&key(), &b, HOST).as_deref(), Ok(TOKEN));
    }

    #[test]
    fn wrong_key_is_refused_with_a_clear_error() {
        let sealed = seal(&key(), NONCE, TOKEN, HOST);
        let other = MasterKey::from_bytes([7; 32]);
        let error = open(&other, &sealed, HOST).unwrap_err();
        assert_eq!(error, SealError::WrongKeyOrData);
        assert!(error.to_string().contains("re-enter the access token"));
        assert!(error.to_string().contains("MASTER_KEY changed"));
        assert_leaks_nothing(error);
    }

    #[test]
    fn another_host_is_refused() {
        let sealed = seal(&key(), NONCE, TOKEN, HOST);
        for host in ["t.other.com", "T.shop.com", "", "t.shop.com."] {
            assert_eq!(open(&key(), &sealed, host), Err(SealError::WrongKeyOrData));
        }
    }

    #[test]
    fn tampering_is_refused() {
        let sealed = seal(&key(), NONCE, TOKEN, HOST);
        let (head, body) = sealed.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in [0, bytes.len() / 2, bytes.len() - 1] {
            bytes[i] ^= 0x80;
            let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(
                open(&key(), &tampered, HOST),
                Err(SealError::WrongKeyOrData)
            );
            bytes[i] ^= 0x80;
        }
        // Another nonce with the same ciphertext.
        let other_nonce = format!("v1.{}.{body}", URL_SAFE_NO_PAD.encode([0u8; 12]));
        assert_eq!(
            open(&key(), &other_nonce, HOST),
            Err(SealError::WrongKeyOrData)
        );
        // A ciphertext cut short but still as long as a tag.
        let cut = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes[..TAG_LEN]));
        assert_eq!(open(&key(), &cut, HOST), Err(SealError::WrongKeyOrData));
    }

    #[test]
    fn malformed_values_are_told_apart() {
        let sealed = seal(&key(), NONCE, TOKEN, HOST);
        let (_, body) = sealed.rsplit_once('.').unwrap();
        let nonce = URL_SAFE_NO_PAD.encode(NONCE);
        let malformed = [
            String::new(),
            TOKEN.to_string(),                     // a token stored unsealed
            sealed.replacen("v1.", "v2.", 1),      // a version this code does not know
            sealed.replacen("v1.", "v1", 1),       // no separator after the version
            format!("v1.{nonce}"),                 // no ciphertext part
            format!("v1.{nonce}."),                // empty ciphertext
            format!("v1.{nonce}.{}", &body[..20]), // shorter than a tag
            format!("v1.{nonce}.{body}.extra"),    // a third part
            format!("v1.{nonce}.{body}="),         // padding is not written
            format!("v1.{nonce}.{}", body.replace('_', "/")), // standard alphabet
            format!("v1.AAAA.{body}"),             // nonce too short
            format!("v1.{nonce}AAAA.{body}"),      // nonce too long
            format!("v1.{}.{body}", "!".repeat(16)), // not base64
            format!(" {sealed}"),
        ];
        for value in &malformed {
            let error = open(&key(), value, HOST).unwrap_err();
            assert_eq!(error, SealError::Malformed, "{value:?}");
            assert_leaks_nothing(error);
        }
    }

    #[test]
    fn non_text_is_refused() {
        let cipher = Aes256Gcm::new(&[0u8; 32].into());
        let payload = Payload {
            msg: &[0xff, 0xfe][..],
            aad: HOST.as_bytes(),
        };
        let bytes = cipher.encrypt(&Nonce::from(NONCE), payload).unwrap();
        let sealed = format!(
            "v1.{}.{}",
            URL_SAFE_NO_PAD.encode(NONCE),
            URL_SAFE_NO_PAD.encode(bytes)
        );
        let key = MasterKey::from_bytes([0; 32]);
        assert_eq!(open(&key, &sealed, HOST), Err(SealError::NotUtf8));
    }

    #[test]
    fn master_key_forms_all_give_the_same_key() {
        // Bytes whose base64 holds '+' and '/' (URL-safe: '-' and '_').
        let bytes: [u8; 32] = core::array::from_fn(|i| 0xf8 | (i as u8 & 7));
        let expected = seal(&MasterKey::from_bytes(bytes), NONCE, TOKEN, HOST);
        let standard = STANDARD.encode(bytes);
        assert!(standard.contains('+') && standard.contains('/') && standard.len() == 44);
        let forms = [
            hex::encode(bytes),
            hex::encode_upper(bytes),
            standard,
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            format!("  {}\n", STANDARD.encode(bytes)),
        ];
        for form in &forms {
            let key: MasterKey = form.parse().unwrap();
            assert_eq!(seal(&key, NONCE, TOKEN, HOST), expected, "{form:?}");
        }
        // The test vector's key in its base64 form.
        let from_base64 = MasterKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        assert_eq!(
            seal(&from_base64, NONCE, TOKEN, HOST),
            seal(&key(), NONCE, TOKEN, HOST)
        );
    }

    #[test]
    fn bad_master_keys_are_refused_without_echo() {
        let bad = [
            "",
            "secret",
            &KEY_HEX[..62], // 31 bytes in hex
            &KEY_HEX[..32], // 16 bytes (AES-128) in hex
            "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", // not hex
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", // 31 bytes in base64
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=AA", // too long
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh!=", // not base64
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=AAECAwQFBgcICQoLDA0ODx", // 66 chars
            "ééééééééééééééééééééééééééééééééé", // 66 bytes, not ASCII
        ];
        for text in bad {
            let error = MasterKey::parse(text).unwrap_err();
            assert_eq!(error, SealError::BadMasterKey, "{text:?}");
            let message = error.to_string();
            assert!(message.contains("64 hex characters") && message.contains("base64"));
            assert!(text.len() < 8 || !message.contains(text));
        }
        assert_eq!(format!("{:?}", key()), "MasterKey(..)");
    }

    #[test]
    fn errors_have_codes_and_messages_that_leak_nothing() {
        for error in [
            SealError::BadMasterKey,
            SealError::Malformed,
            SealError::WrongKeyOrData,
            SealError::NotUtf8,
        ] {
            assert!(!error.code().is_empty());
            assert_leaks_nothing(error);
        }
    }

    #[test]
    fn masks_show_only_the_last_four() {
        assert_eq!(mask(TOKEN), "…wxyz");
        assert_eq!(mask("12345678"), "…5678");
        assert_eq!(mask("1234567"), "…");
        assert_eq!(mask("abc"), "…");
        assert_eq!(mask(""), "…");
        // Characters, not bytes: never cut inside one.
        assert_eq!(mask("ünïcödé-tökén"), "…ökén");
    }
}
