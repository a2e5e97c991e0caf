//! The `_ttp` and `ttclid` cookies, kept first-party under the shop's own domain.
//!
//! The TikTok pixel sets `_ttp` from script, which Safari caps at 7 days. Set by ttedge from
//! the shop's own subdomain, with `Domain` = the registrable domain, the same cookie becomes a
//! server-set first-party cookie and lives its full 13 months. It is **not** `HttpOnly`: the
//! pixel on the page must still read it.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use base64::Engine;

use crate::text;

/// The TikTok pixel's browser id cookie.
pub const TTP: &str = "_ttp";
/// The TikTok click id cookie.
pub const TTCLID: &str = "ttclid";
/// About 13 months (395 days), in seconds.
pub const TTP_MAX_AGE_SECS: u64 = 395 * 24 * 60 * 60;
/// 30 days, in seconds.
pub const TTCLID_MAX_AGE_SECS: u64 = 30 * 24 * 60 * 60;

/// The value of cookie `name` in a `Cookie` request header, if present and non-empty.
pub fn get<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    text::split(cookie_header, b';')
        .filter_map(|pair| text::split_once(pair, b'='))
        .find(|(key, _)| text::trim(key) == name)
        .map(|(_, value)| text::trim(value).trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// Whether `value` can be written into `Set-Cookie` unquoted (RFC 6265 cookie-octets).
pub fn is_cookie_value(value: &str) -> bool {
    // Eight bytes at a time: every byte of the `_ttp` and `ttclid` values is tested on each
    // request.
    let not_octets = |word| {
        text::bytes_below(word, 0x21)
            | text::bytes_equal(word, b'"')
            | text::bytes_equal(word, b',')
            | text::bytes_equal(word, b';')
            | text::bytes_equal(word, b'\\')
            | text::bytes_equal(word, 0x7f)
            | (word & 0x8080_8080_8080_8080)
    };
    !value.is_empty()
        && value.len() <= 512
        && text::find(value.as_bytes(), not_octets, |b| {
            !COOKIE_OCTETS[usize::from(b)]
        })
        .is_none()
}

/// The cookie-octets `0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E` as a
/// table, for the last few bytes of short values.
const COOKIE_OCTETS: [bool; 256] = {
    let mut octets = [false; 256];
    let mut byte = 0x21;
    while byte <= 0x7e {
        octets[byte] = !matches!(byte, 0x22 | 0x2c | 0x3b | 0x5c);
        byte += 1;
    }
    octets
};

/// A new `_ttp` value: 27 URL-safe characters from the time and 16 random bytes, the shape
/// the pixel makes, so TikTok treats both alike.
pub fn new_ttp(random: [u8; 16], now_ms: u64) -> String {
    let mut raw = [0u8; 20];
    raw[..4].copy_from_slice(&((now_ms / 1_000) as u32).to_be_bytes());
    raw[4..].copy_from_slice(&random);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// `Set-Cookie` for `_ttp`.
pub fn set_ttp(value: &str, domain: Option<&str>) -> String {
    render(TTP, value, TTP_MAX_AGE_SECS, domain)
}

/// `Set-Cookie` for `ttclid`.
pub fn set_ttclid(value: &str, domain: Option<&str>) -> String {
    render(TTCLID, value, TTCLID_MAX_AGE_SECS, domain)
}

fn render(name: &str, value: &str, max_age: u64, domain: Option<&str>) -> String {
    // Built by hand rather than with `format!`: this runs on every collect request.
    let mut cookie = String::with_capacity(128);
    cookie.push_str(name);
    cookie.push('=');
    cookie.push_str(value);
    if let Some(domain) = domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    cookie.push_str("; Path=/; Max-Age=");
    cookie.push_str(itoa::Buffer::new().format(max_age));
    cookie.push_str("; Secure; SameSite=Lax");
    cookie
}

/// The Public Suffix List, parsed once by whoever needs registrable domains.
///
/// The list ships inside the crate (`data/public_suffix_list.dat`) and is read by the
/// `publicsuffix` crate at run time: as text it costs the Worker about 45 KB gzipped, where
/// a list compiled into code costs over 200 KB.
pub struct PublicSuffixList(publicsuffix::List);

impl PublicSuffixList {
    /// Parses the embedded list (a few milliseconds; keep the result).
    pub fn embedded() -> Self {
        let text = include_str!("../data/public_suffix_list.dat");
        // The embedded list is fixed and tested; an empty list would still answer safely
        // (every host host-only).
        PublicSuffixList(text.parse().unwrap_or_default())
    }

    /// The registrable domain of a request host (`t.shop.example.co.uk` → `example.co.uk`).
    /// `None` for IP addresses, `localhost` and bare suffixes, where a host-only cookie is
    /// the right thing.
    pub fn registrable_domain(&self, host: &str) -> Option<String> {
        use publicsuffix::Psl;
        let host = strip_port(host.trim())
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if host.is_empty() || !host.contains('.') || host.parse::<core::net::IpAddr>().is_ok() {
            return None;
        }
        let domain = self.0.domain(host.as_bytes())?;
        core::str::from_utf8(domain.as_bytes())
            .ok()
            .filter(|domain| !domain.contains(':') && crate::connection::is_site_host(domain))
            .map(str::to_string)
    }
}

impl PublicSuffixList {
    /// Whether `domain` is itself a public suffix (`co.uk`, `github.io`, `com`), under which
    /// browsers refuse to set a cookie for any other host (RFC 6265, 5.3 step 5).
    pub fn is_public_suffix(&self, domain: &str) -> bool {
        use publicsuffix::Psl;
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.0
            .suffix(domain.as_bytes())
            .is_some_and(|suffix| suffix.as_bytes() == domain.as_bytes())
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal: no registrable domain anyway.
        return host;
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The `ttclid` query parameter of a page URL. Click ids rarely need decoding, so only a
/// value holding `%` or `+` goes through the form decoder; any other is borrowed from `url`.
pub fn ttclid_from_url(url: &str) -> Option<Cow<'_, str>> {
    let query = text::split_once(url, b'?')?.1;
    let query = text::before(query, b'#');
    let pair = text::split(query, b'&').find(|pair| {
        pair.strip_prefix(TTCLID)
            .is_some_and(|rest| rest.starts_with('='))
    })?;
    let raw = &pair[TTCLID.len() + 1..];
    let encoded = |word| text::bytes_equal(word, b'%') | text::bytes_equal(word, b'+');
    let value = if text::find(raw.as_bytes(), encoded, |b| b == b'%' || b == b'+').is_some() {
        Cow::Owned(
            form_urlencoded::parse(pair.as_bytes())
                .next()
                .map(|(_, value)| value.trim().to_string())?,
        )
    } else {
        Cow::Borrowed(text::trim(raw))
    };
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_cookie_header() {
        let header = "a=1; _ttp=abc123; ttclid=\"E.C.P.x\"; empty=";
        assert_eq!(get(header, "_ttp"), Some("abc123"));
        assert_eq!(get(header, "ttclid"), Some("E.C.P.x"));
        assert_eq!(get(header, "empty"), None);
        assert_eq!(get(header, "missing"), None);
        assert_eq!(get("", "_ttp"), None);
        assert_eq!(get("x__ttp=1", "_ttp"), None);
    }

    #[test]
    fn new_ttp_has_the_pixels_shape() {
        let value = new_ttp([7; 16], 1_764_064_800_000);
        assert_eq!(value.len(), 27);
        assert!(is_cookie_value(&value));
        assert_ne!(value, new_ttp([8; 16], 1_764_064_800_000));
    }

    #[test]
    fn set_cookie_attributes() {
        assert_eq!(
            set_ttp("abc", Some("shop.com")),
            "_ttp=abc; Domain=shop.com; Path=/; Max-Age=34128000; Secure; SameSite=Lax"
        );
        assert_eq!(
            set_ttclid("E.C.P.x", None),
            "ttclid=E.C.P.x; Path=/; Max-Age=2592000; Secure; SameSite=Lax"
        );
        assert!(!set_ttp("abc", None).contains("HttpOnly"));
    }

    #[test]
    fn registrable_domains() {
        let list = PublicSuffixList::embedded();
        let registrable_domain = |host| list.registrable_domain(host);
        assert_eq!(
            registrable_domain("t.shop.com").as_deref(),
            Some("shop.com")
        );
        assert_eq!(
            registrable_domain("t.shop.example.co.uk").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(
            registrable_domain("t.shop.com.au:443").as_deref(),
            Some("shop.com.au")
        );
        assert_eq!(
            registrable_domain("T.Shop.Test.").as_deref(),
            Some("shop.test")
        );
        assert_eq!(registrable_domain("localhost:8787"), None);
        assert_eq!(registrable_domain("127.0.0.1:8787"), None);
        assert_eq!(registrable_domain("[::1]:8787"), None);
        assert_eq!(registrable_domain("co.uk"), None);
        // Private-section suffixes count too: each shop on a platform is its own site.
        assert_eq!(
            registrable_domain("t.myshop.myshopify.com").as_deref(),
            Some("myshop.myshopify.com")
        );
    }

    #[test]
    fn hosts_that_are_not_dns_names_have_no_registrable_domain() {
        // The domain goes into `Set-Cookie` as it is (found by the `cookie` fuzz target).
        let list = PublicSuffixList::embedded();
        for host in [
            "t.shop.com;x",
            "t.shop.com, y",
            "shop.com\r\nX: y",
            "ex ample.com",
            "t.\"q\".com",
            "..com",
            "[a.b:5",
        ] {
            assert_eq!(list.registrable_domain(host), None, "{host:?}");
        }
        assert_eq!(
            list.registrable_domain("a;b.shop.com").as_deref(),
            Some("shop.com")
        );
    }

    #[test]
    fn cookie_octets_are_rfc_6265s() {
        for byte in 0u8..0x80 {
            let octet =
                matches!(byte, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E);
            // Alone, and at every position of values of one and several words.
            let text = char::from(byte).to_string();
            assert_eq!(is_cookie_value(&text), octet, "{byte:#x}");
            for len in [8, 21] {
                for at in 0..len {
                    let mut text = "a".repeat(len);
                    text.replace_range(at..=at, &char::from(byte).to_string());
                    assert_eq!(is_cookie_value(&text), octet, "{byte:#x} at {at} of {len}");
                }
            }
        }
        assert!(!is_cookie_value("abcdefghijé"));
        assert!(!is_cookie_value("abcdefghijklmnop\u{7f}"));
    }

    #[test]
    fn cookie_values_are_checked() {
        assert!(is_cookie_value("E.C.P.abc-_123"));
        assert!(!is_cookie_value("a;b"));
        assert!(!is_cookie_value("a b"));
        assert!(!is_cookie_value(""));
    }

    #[test]
    fn ttclid_from_page_url() {
        assert_eq!(
            ttclid_from_url("https://shop.com/thanks?a=1&ttclid=E.C.P.abc%2B1#top").as_deref(),
            Some("E.C.P.abc+1")
        );
        assert_eq!(ttclid_from_url("https://shop.com/thanks#ttclid=x"), None);
        assert_eq!(ttclid_from_url("https://shop.com/?ttclid="), None);
        assert_eq!(
            ttclid_from_url("https://shop.com/?xttclid=1&ttclidx=2"),
            None
        );
        assert_eq!(
            ttclid_from_url("https://shop.com/?a=b&ttclid=E.C.P.x&c").as_deref(),
            Some("E.C.P.x")
        );
    }
}
