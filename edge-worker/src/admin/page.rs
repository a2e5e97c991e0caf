//! The dashboard's HTTP side: `GET /admin` (the page, or the login form), `POST
//! /admin/login` and `POST /admin/logout`. Rendering is [`crate::dashboard`]'s.
//!
//! Logging in with the admin token sets a signed session cookie (`HttpOnly`, `Secure`,
//! `SameSite=Strict`, expiring after [`SESSION_TTL_MS`]); the page's script then calls the
//! JSON API with that cookie. Wrong tokens count against the client's IP like the API's.

use ttedge_core::session;
use worker::{Env, Headers, Method, Request, Response, Result};

use super::{
    api, client_ip, constant_time_eq, failed, live_session, refuse_if_locked, session_cookie,
};
use crate::config;
use crate::config_store;
use crate::dashboard::{self, DashboardView};
use crate::dispatcher::{self, ParkedPage};
use crate::error::ApiError;
use crate::{router, runtime};

/// How long a dashboard session lasts: a working day.
pub const SESSION_TTL_MS: u64 = 8 * 60 * 60 * 1_000;

/// The page's policy: nothing from another host, no framing, inline styles, and of scripts
/// only the page's own, by its SHA-256 ([`dashboard::script_source`]): an injected inline
/// script would not run.
fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src {}; connect-src 'self'; \
         img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        dashboard::script_source()
    )
}

/// The largest login form.
const MAX_LOGIN_BODY: usize = 4 * 1024;

type Answer = std::result::Result<Response, ApiError>;

/// Routes `/admin`, `/admin/login`, `/admin/logout`.
pub async fn route(req: Request, env: &Env) -> Answer {
    let admin_token = super::admin_token(env)?;
    let path = req.path();
    match (path.as_str(), req.method()) {
        ("/admin/login", Method::Post) => login(req, env, &admin_token).await,
        ("/admin/logout", Method::Post) => {
            // The cookie alone is not enough: a copy of it must stop working too.
            if let Some(value) = session_cookie(&req)? {
                if let Some((id, expires_ms)) = live_session(env, &admin_token, &value).await? {
                    config_store::end_session(env, &id, expires_ms).await?;
                }
            }
            let response = redirect_home()?;
            response
                .headers()
                .append("Set-Cookie", &session::clear_cookie())?;
            Ok(response)
        }
        ("/admin" | "/admin/", Method::Get | Method::Head) => {
            let signed_in = match session_cookie(&req)? {
                Some(value) => super::session_valid(env, &admin_token, &value).await?,
                None => false,
            };
            if signed_in {
                dashboard_page(&req, env).await
            } else {
                html(200, dashboard::render_login(None))
            }
        }
        (path, method) => {
            let allowed = super::allowed_methods(path).unwrap_or("GET");
            Ok(router::wrong_method(method.as_ref(), allowed)?)
        }
    }
}

/// `POST /admin/login` with the form field `token`.
async fn login(mut req: Request, env: &Env, admin_token: &str) -> Answer {
    let ip = client_ip(&req)?;
    if let Err(error) = refuse_if_locked(env, &ip).await {
        return html(429, dashboard::render_login(Some(&error.message)));
    }
    let Some(body) = runtime::read_body(&mut req, MAX_LOGIN_BODY).await? else {
        let message = "That form is too large to be a login.";
        return html(413, dashboard::render_login(Some(message)));
    };
    let given = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !constant_time_eq(given.trim(), admin_token) {
        let error = failed(env, &ip).await;
        let message = match error.status {
            429 => error.message,
            _ => "That is not the admin token.".to_string(),
        };
        return html(error.status, dashboard::render_login(Some(&message)));
    }
    config_store::login_succeeded(env, &ip).await?;
    let key = session::session_key(admin_token);
    let value = session::issue(
        &key,
        runtime::now_ms(),
        SESSION_TTL_MS,
        runtime::random_bytes()?,
    );
    let response = redirect_home()?;
    response.headers().append(
        "Set-Cookie",
        &session::set_cookie(&value, SESSION_TTL_MS / 1_000),
    )?;
    Ok(response)
}

/// The dashboard of the destination picked by `?host=` (else the first one); with `?add`,
/// or when there is no destination at all (no default either), it opens on the Add form,
/// and with `?edit=<host>` on that stored destination's form.
async fn dashboard_page(req: &Request, env: &Env) -> Answer {
    let list = api::destination_list(env).await?;
    let mut destinations = list.destinations;
    let url = req.url()?;
    if let Some(mut default) = list.default {
        // The default serves every host without a stored destination, this one included
        // unless it has its own: the page acts on it through this host.
        let here = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if !destinations
            .iter()
            .any(|d| d.host.as_deref() == Some(here.as_str()))
        {
            default.host = Some(here);
        }
        destinations.push(default);
    }
    let editing = runtime::query(&url, "edit");
    let asked = editing.clone().or_else(|| runtime::query(&url, "host"));
    let selected = destinations
        .iter()
        .find(|d| asked.is_some() && d.host == asked)
        .or_else(|| destinations.first());
    let (health, parked) = match selected {
        Some(destination) => {
            let site = match &destination.host {
                Some(host) => config::for_host(env, host).await?,
                None => std::rc::Rc::new(config::load(env)?),
            };
            let health = api::health(env, &site).await?;
            let parked = dispatcher::parked(env, &site, ParkedPage::FIRST).await?;
            (Some(health), Some(parked))
        }
        None => (None, None),
    };
    let add = runtime::query(&url, "add").is_some();
    let form = dashboard::form_for(&destinations, editing.as_deref(), add);
    html(
        200,
        dashboard::render_dashboard(&DashboardView {
            destinations: &destinations,
            selected: selected.and_then(|d| d.host.as_deref()),
            health: health.as_ref(),
            parked: parked.as_ref(),
            form,
        }),
    )
}

fn redirect_home() -> Result<Response> {
    let headers = Headers::new();
    headers.set("Location", "/admin")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::empty()?.with_status(303).with_headers(headers))
}

fn html(status: u16, body: String) -> Answer {
    let headers = Headers::new();
    headers.set("Content-Type", "text/html; charset=utf-8")?;
    headers.set("Cache-Control", "no-store")?;
    headers.set("Content-Security-Policy", &content_security_policy())?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    headers.set("Referrer-Policy", "no-referrer")?;
    Ok(Response::from_html(body)?
        .with_status(status)
        .with_headers(headers))
}
