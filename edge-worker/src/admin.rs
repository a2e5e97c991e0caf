//! The operator's API under `/admin/api/`, behind `Authorization: Bearer <ADMIN_TOKEN>`.
//!
//! Without the `ADMIN_TOKEN` secret, admin is off. Answers never hold access tokens or
//! personal data: parked events show their id, name and TikTok's answer only.

use ttedge_core::hashing::sha256_hex;
use worker::{Env, Method, Request, Response, Result};

use crate::config::{self, secret};
use crate::dispatcher;
use crate::error::ApiError;

/// Routes `/admin/...`.
pub async fn route(req: Request, env: &Env) -> Result<Response> {
    if let Err(error) = authorize(&req, env) {
        return error.into_response();
    }
    match (req.path().as_str(), req.method()) {
        ("/admin/api/status", Method::Get) => {
            let site = match config::load(env) {
                Ok(site) => site,
                Err(error) => return error.into_response(),
            };
            Response::from_json(&dispatcher::state(env, &site).await?)
        }
        // The default destination's health; per destination later under
        // `/admin/api/destinations/{host}/health`, with the same answer.
        ("/admin/api/health", Method::Get) => {
            let site = match config::load(env) {
                Ok(site) => site,
                Err(error) => return error.into_response(),
            };
            Response::from_json(&dispatcher::health(env, &site).await?)
        }
        (path, _) => {
            ApiError::new(404, "not_found", format!("no admin route for {path}")).into_response()
        }
    }
}

fn authorize(req: &Request, env: &Env) -> std::result::Result<(), ApiError> {
    let Some(expected) = secret(env, "ADMIN_TOKEN") else {
        return Err(ApiError::new(
            404,
            "admin_disabled",
            "admin is off: set the ADMIN_TOKEN secret to turn it on",
        ));
    };
    let given = req
        .headers()
        .get("Authorization")?
        .and_then(|value| value.strip_prefix("Bearer ").map(str::to_string))
        .unwrap_or_default();
    if constant_time_eq(&given, &expected) {
        Ok(())
    } else {
        Err(ApiError::new(
            401,
            "unauthorized",
            "send Authorization: Bearer <ADMIN_TOKEN>",
        ))
    }
}

/// Compares digests, so neither the length nor the first differing byte leaks through time.
fn constant_time_eq(given: &str, expected: &str) -> bool {
    let (a, b) = (sha256_hex(given), sha256_hex(expected));
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
