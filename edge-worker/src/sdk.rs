//! `GET /sdk.js` (and `HEAD`): the browser SDK, `edge-worker/sdk/ttedge.js`, shipped as
//! written inside the Worker.
//!
//! Caching: the URL carries no version, so a deploy must reach pages soon. Browsers and
//! Cloudflare's cache keep the file 5 minutes (`max-age=300`), then may serve the old copy for
//! up to a day while they revalidate in the background (`stale-while-revalidate=86400`), so a
//! page never waits on a revalidation. Revalidation is an `If-None-Match` with the strong ETag
//! (the SHA-256 of the file, computed once per isolate), answered `304` without a body.

use std::sync::OnceLock;

use worker::{Headers, Request, Response, Result};

/// The SDK, shipped inside the Worker.
const SDK_JS: &str = include_str!("../sdk/ttedge.js");

/// `Cache-Control` of the SDK and of its `304`s.
pub const CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=86400";

/// The strong ETag of [`SDK_JS`]: its SHA-256 in hex, quoted. Computed on first use.
fn etag() -> &'static str {
    static ETAG: OnceLock<String> = OnceLock::new();
    ETAG.get_or_init(|| format!("\"{}\"", ttedge_core::hashing::sha256_hex(SDK_JS)))
}

/// Serves the SDK: `200` with the file, or `304` when `If-None-Match` names its ETag.
/// `HEAD` gets the same headers; the runtime sends no body for it.
pub fn serve(req: &Request) -> Result<Response> {
    let headers = Headers::new();
    headers.set("ETag", etag())?;
    headers.set("Cache-Control", CACHE_CONTROL)?;
    // Loadable from pages that require CORP (Cross-Origin-Embedder-Policy: require-corp).
    headers.set("Cross-Origin-Resource-Policy", "cross-origin")?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    let if_none_match = crate::runtime::header(req, "If-None-Match")?;
    if if_none_match.is_some_and(|value| matches_etag(&value, etag())) {
        return Ok(Response::empty()?.with_status(304).with_headers(headers));
    }
    headers.set("Content-Type", "application/javascript; charset=utf-8")?;
    Ok(Response::ok(SDK_JS)?.with_headers(headers))
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `*`, or any listed tag whose
/// opaque part equals ours, with or without `W/`.
fn matches_etag(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_is_a_weak_list_comparison() {
        let tag = "\"abc\"";
        assert!(matches_etag("\"abc\"", tag));
        assert!(matches_etag("W/\"abc\"", tag));
        assert!(matches_etag("\"x\", \"abc\"", tag));
        assert!(matches_etag("*", tag));
        assert!(!matches_etag("\"abcd\"", tag));
        assert!(!matches_etag("abc", tag));
        assert!(!matches_etag("", tag));
    }
}
