//! Which handler answers which request. Every failure becomes a JSON answer.

use worker::{Env, Method, Request, Response, Result};

use crate::error::ApiError;
use crate::{admin, collect, config, dispatcher, orders, sdk};

/// Routes one request.
pub async fn route(req: Request, env: &Env) -> Result<Response> {
    let path = req.path();
    let answer = match (path.as_str(), method_of(&req)) {
        (path, Err(unknown)) => match allowed_methods(path) {
            Some(allowed) => wrong_method(&unknown, allowed),
            None => not_found(path),
        },
        ("/collect", Ok(Method::Post)) => collect::collect(req, env).await,
        ("/collect", Ok(Method::Options)) => collect::preflight(&req, env).await,
        ("/collect/reset", Ok(Method::Post)) => collect::reset(req, env).await,
        ("/collect/reset", Ok(Method::Options)) => collect::preflight(&req, env).await,
        ("/sdk.js", Ok(Method::Get | Method::Head)) => sdk::serve(&req),
        ("/healthz", Ok(Method::Get | Method::Head)) => healthz(&req, env).await,
        (path, Ok(Method::Post)) if webhook_host(path).is_some() => {
            let host = webhook_host(path).unwrap_or_default().to_string();
            orders::webhook(req, env, &host)
                .await
                .or_else(ApiError::into_response)
        }
        (path, _) if path == "/admin" || path.starts_with("/admin/") => {
            admin::route(req, env).await
        }
        (path, Ok(other)) => match allowed_methods(path) {
            Some(allowed) => wrong_method(other.as_ref(), allowed),
            None => not_found(path),
        },
    };
    // Never let an error escape as workerd's bare 500 page.
    answer.or_else(|error| ApiError::from(error).into_response())
}

/// The request's method, or its name when workers-rs does not know it: `Request::method`
/// reads an unknown one (`PROPFIND`) as `GET`.
pub fn method_of(req: &Request) -> std::result::Result<Method, String> {
    let name = req.inner().method();
    let method = Method::from(name.clone());
    match method.as_ref() == name {
        true => Ok(method),
        false => Err(name),
    }
}

/// The methods a path answers, for `405`'s `Allow`; `None` for no such path.
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/collect" | "/collect/reset" => Some("POST, OPTIONS"),
        "/sdk.js" | "/healthz" => Some("GET, HEAD"),
        _ if webhook_host(path).is_some() => Some("POST"),
        _ => admin::allowed_methods(path),
    }
}

/// The host of a webhook path, `/webhooks/{host}/orders`.
fn webhook_host(path: &str) -> Option<&str> {
    path.strip_prefix("/webhooks/")?
        .strip_suffix("/orders")
        .filter(|host| !host.is_empty() && !host.contains('/'))
}

fn not_found(path: &str) -> Result<Response> {
    ApiError::new(404, "not_found", format!("no route for {path}")).into_response()
}

/// 405 with `Allow`. `method` is the caller's, shown escaped.
pub fn wrong_method(method: &str, allowed: &str) -> Result<Response> {
    let shown: String = method.chars().take(40).collect();
    let response = ApiError::new(
        405,
        "method_not_allowed",
        format!("{shown:?} is not allowed here; use {allowed}"),
    )
    .into_response()?;
    response.headers().set("Allow", allowed)?;
    Ok(response)
}

/// `GET /healthz`: liveness and configuration problems, for anyone. It also wakes the
/// request host's Dispatcher, whose alarm may have been lost; the queue's figures are the
/// operator's business, at `GET /admin/api/status`.
async fn healthz(req: &Request, env: &Env) -> Result<Response> {
    let host = req.url()?.host_str().unwrap_or_default().to_string();
    let body = match config::for_host(env, &host).await {
        Ok(site) => {
            if let Err(error) = dispatcher::wake(env, &site).await {
                worker::console_error!(
                    "healthz: the dispatcher did not answer: {:?}",
                    error.to_string()
                );
            }
            serde_json::json!({ "ok": true, "configured": true })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_paths_name_one_host() {
        assert_eq!(
            webhook_host("/webhooks/t.shop.com/orders"),
            Some("t.shop.com")
        );
        for other in [
            "/webhooks//orders",
            "/webhooks/a/b/orders",
            "/webhooks/t.shop.com/orders/1",
            "/webhooks/t.shop.com",
            "/admin/webhooks/t.shop.com/orders",
        ] {
            assert_eq!(webhook_host(other), None, "{other}");
        }
        assert_eq!(allowed_methods("/webhooks/t.shop.com/orders"), Some("POST"));
    }
}
