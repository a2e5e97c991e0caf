//! Which handler answers which request. Every failure becomes a JSON answer.

use worker::{Env, Method, Request, Response, Result};

use crate::error::ApiError;
use crate::{admin, collect, config, dispatcher, sdk};

/// Routes one request.
pub async fn route(req: Request, env: &Env) -> Result<Response> {
    let path = req.path();
    let method = req.method();
    let answer = match (path.as_str(), method) {
        ("/collect", Method::Post) => collect::collect(req, env).await,
        ("/collect", Method::Options) => collect::preflight(&req, env).await,
        ("/collect", other) => wrong_method(other, "POST, OPTIONS"),
        ("/sdk.js", Method::Get | Method::Head) => sdk::serve(&req),
        ("/sdk.js", other) => wrong_method(other, "GET"),
        ("/healthz", Method::Get | Method::Head) => healthz(&req, env).await,
        ("/healthz", other) => wrong_method(other, "GET"),
        (path, _) if path == "/admin" || path.starts_with("/admin/") => {
            admin::route(req, env).await
        }
        (path, _) => {
            ApiError::new(404, "not_found", format!("no route for {path}")).into_response()
        }
    };
    // Never let an error escape as workerd's bare 500 page.
    answer.or_else(|error| ApiError::from(error).into_response())
}

/// 405 with `Allow`.
pub fn wrong_method(method: Method, allowed: &str) -> Result<Response> {
    let response = ApiError::new(
        405,
        "method_not_allowed",
        format!("{method} is not allowed here; use {allowed}"),
    )
    .into_response()?;
    response.headers().set("Allow", allowed)?;
    Ok(response)
}

/// `GET /healthz`: liveness, configuration problems, and the queue of the request host's
/// destination (which also wakes a Dispatcher whose alarm was lost).
async fn healthz(req: &Request, env: &Env) -> Result<Response> {
    let host = req.url()?.host_str().unwrap_or_default().to_string();
    let body = match config::for_host(env, &host).await {
        Ok(site) => {
            let queue = match dispatcher::state(env, &site).await {
                Ok(state) => serde_json::json!({
                    "queued": state["queued"],
                    "parked": state["parked"],
                    "oldest_queued_age_ms": state["oldest_queued_age_ms"],
                }),
                Err(error) => serde_json::json!({ "error": error.to_string() }),
            };
            serde_json::json!({ "ok": true, "configured": true, "queue": queue })
        }
        Err(error) => {
            // Every misconfigured setting, or why there is no destination at all.
            let problems = match error.problems.is_empty() {
                true => vec![error.message],
                false => error.problems,
            };
            serde_json::json!({ "ok": true, "configured": false, "problems": problems })
        }
    };
    Response::from_json(&body)
}
