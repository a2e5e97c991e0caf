//! ttedge-worker: the Cloudflare Worker around `ttedge-core`.
//!
//! This crate owns I/O only: routing, headers and cookies, configuration, the Dispatcher
//! Durable Object and outbound fetch. Every rule of the domain lives in `ttedge-core`.
//!
//! One file per role: [`router`] picks the handler, [`collect`] is the collect API,
//! [`dispatcher`] the per-token Durable Object, [`tiktok_client`] the outbound call,
//! [`admin`] the operator's view, [`sdk`] the browser snippet.

mod admin;
mod collect;
mod config;
mod dispatcher;
mod error;
mod router;
mod runtime;
mod sdk;
mod tiktok_client;

pub use dispatcher::Dispatcher;

use worker::{event, Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    router::route(req, &env).await
}

/// Cron safety net (`[triggers]` in wrangler.toml): wakes the Dispatcher so that a lost
/// alarm can never strand queued events.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    if let Ok(site) = config::SiteConfig::from_env(&env) {
        if let Err(error) = dispatcher::state(&env, &site).await {
            worker::console_error!("scheduled wake-up failed: {error}");
        }
    }
}
