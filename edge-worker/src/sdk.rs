//! `GET /sdk.js`: the browser snippet that posts events to `/collect` with credentials.

use worker::{Response, Result};

/// The snippet, shipped inside the Worker.
const SDK_JS: &str = include_str!("../sdk/ttedge.js");

/// Serves the snippet, cacheable for an hour.
pub fn serve() -> Result<Response> {
    let response = Response::ok(SDK_JS)?;
    let headers = response.headers();
    headers.set("Content-Type", "application/javascript; charset=utf-8")?;
    headers.set("Cache-Control", "public, max-age=3600")?;
    Ok(response)
}
