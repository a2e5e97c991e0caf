//! ttedge-worker: the Cloudflare Worker around `ttedge-core`.
//!
//! This crate owns I/O only: routing, headers and cookies, configuration, the Dispatcher
//! Durable Object and outbound fetch. Every rule of the domain lives in `ttedge-core`.
//!
//! One file per role: [`router`] picks the handler, [`collect`] is the collect API,
//! [`dispatcher`] the per-token Durable Object, [`config_store`] the Durable Object of stored
//! destinations, [`config`] which destination serves a host, [`tiktok_client`] the
//! outbound call, [`admin`] the operator's API, [`offline`] its upload of offline conversions, [`dashboard`] its page, [`sdk`] the browser
//! snippet, [`orders`] cash-on-delivery confirmations and their webhook.

mod admin;
mod collect;
mod config;
mod config_store;
mod dashboard;
mod dispatcher;
mod error;
mod offline;
mod orders;
mod router;
mod runtime;
mod sdk;
mod tiktok_client;

pub use config_store::Config;
pub use dispatcher::Dispatcher;

use worker::{event, Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    router::route(req, &env).await
}

/// Cron safety net (`[triggers]` in wrangler.toml): wakes every destination's Dispatcher so
/// that a lost alarm can never strand queued events.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let mut sites = Vec::new();
    if config::has_default(&env) {
        sites.extend(config::load(&env).ok());
    }
    match config_store::list(&env).await {
        Ok(stored) => sites.extend(
            stored
                .iter()
                .filter_map(|s| config::SiteConfig::from_stored(&env, s).ok()),
        ),
        Err(error) => worker::console_error!("scheduled: {}", error.message),
    }
    let mut woken = std::collections::HashSet::new();
    for site in sites {
        if woken.insert(site.dispatcher_name()) {
            if let Err(error) = dispatcher::wake(&env, &site).await {
                worker::console_error!("scheduled wake-up failed: {:?}", error.to_string());
            }
        }
    }
}
