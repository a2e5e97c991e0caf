//! The Dispatcher Durable Object: one per access token, named by the token's SHA-256.
//!
//! It stores every ready event before the Worker answers the browser, then sends them from
//! its alarm, within the token's rate limit, as core's [`delivery`](ttedge_core::delivery)
//! rules decide. This file is the object's shell; each role has a file:
//!
//! - [`client`]: the Worker's calls, and the bodies both ends share;
//! - [`routes`]: the object's routes, as one enum;
//! - [`storage`]: the tables, laid out for few rows written, and [`migrate`] from the
//!   first release's;
//! - [`intake`]: what goes into the queue, and [`group`]: requests that come together
//!   are stored together;
//! - [`send_loop`]: the alarm, and the one way a request reaches TikTok;
//! - [`report`]: health, the queue's state and parked events, as typed answers;
//! - [`orders`]: cash-on-delivery orders kept from checkout to confirmation.
//! - [`identity`]: identity resolution's table, used at intake, at send time and for
//!   data-subject requests.

pub mod client;
mod group;
mod identity;
mod intake;
mod migrate;
mod orders;
pub mod report;
mod routes;
mod send_loop;
mod storage;
mod test_call;

pub use client::{
    conversions, enqueue, health, identities, order, parked, replay, state, test, wake,
    ConversionQuery, IdentityQuery, Intake, IntakeEvent, OrderAnswer, OrderCall, OrderOutcome,
    ParkedPage, Replay, TestCall,
};

use routes::Route;
use storage::Storage;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::error::ApiError;
use crate::runtime::now_ms;

#[durable_object(alarm)]
pub struct Dispatcher {
    state: State,
    env: Env,
    /// `Err` when the tables could not be opened: every call says why, nothing is lost.
    storage: std::result::Result<Storage, String>,
    /// Collect requests waiting to be stored with the ones around them.
    groups: group::Groups,
    /// When expired identities were last deleted.
    expiry: identity::Expiry,
}

impl DurableObject for Dispatcher {
    fn new(state: State, env: Env) -> Self {
        let storage = Storage::open(state.storage().sql()).map_err(|error| {
            worker::console_error!("dispatcher storage: {:?}", error.0);
            error.0
        });
        if let Ok(storage) = &storage {
            if let Err(error) = send_loop::count_unrecorded_send(storage, now_ms()) {
                // The window may then run one request over after this restart; TikTok's
                // 429 for it is retried like any other.
                worker::console_error!("dispatcher start: {:?}", error.to_string());
            }
        }
        Dispatcher {
            state,
            env,
            storage,
            groups: group::Groups::default(),
            expiry: identity::Expiry::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = match &self.storage {
            Ok(storage) => storage,
            Err(reason) => return unavailable(reason),
        };
        if let Some(header) = req.headers().get(client::CREDENTIALS_HEADER)? {
            storage.remember(&serde_json::from_str(&header)?)?;
        }
        let Some(route) = Route::of(&req)? else {
            return ApiError::new(404, "not_found", "no such dispatcher route").into_response();
        };
        let now = now_ms();
        match route {
            Route::Enqueue => {
                let answer = self.groups.store(storage, body(&mut req).await?).await?;
                if answer.queued > 0 {
                    self.wake_by(storage, now + send_loop::BATCH_WINDOW_MS)
                        .await?;
                }
                Response::from_json(&answer)
            }
            Route::Replay => {
                let answer = intake::replay(storage, &body(&mut req).await?, now)?;
                self.wake_by(storage, now).await?;
                Response::from_json(&answer)
            }
            Route::State => {
                let alarm = self.state.storage().get_alarm().await?;
                let alarm_at = alarm.map(|at| at as f64);
                Response::from_json(&report::queue_state(storage, now, alarm_at)?)
            }
            Route::Wake => {
                if send_loop::has_work(storage, now)? {
                    self.wake_by(storage, now).await?;
                }
                Response::ok("awake")
            }
            Route::Health => Response::from_json(&report::health(storage, now)?),
            Route::Parked(page) => Response::from_json(&report::parked(storage, page)?),
            Route::Test => test_call::send(storage, &self.env, &body(&mut req).await?).await,
            Route::Orders => {
                let answer = orders::update(storage, &body(&mut req).await?, now)?;
                if answer.outcome == OrderOutcome::Queued {
                    self.wake_by(storage, now + send_loop::BATCH_WINDOW_MS)
                        .await?;
                }
                Response::from_json(&answer)
            }
            Route::Conversions => {
                let query: ConversionQuery = body(&mut req).await?;
                Response::from_json(&report::conversions(
                    storage,
                    &query.pixel_code,
                    &query.ranges,
                )?)
            }
            Route::Identities => {
                let query: IdentityQuery = body(&mut req).await?;
                Response::from_json(&identity::query(storage, &query)?)
            }
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let storage = match &self.storage {
            Ok(storage) => storage,
            Err(reason) => return unavailable(reason),
        };
        let fired_ms = now_ms();
        let next = send_loop::run(storage, &self.env).await?;
        if let Err(error) = self.expiry.run(storage, now_ms()) {
            // The next hour tries again; the alarm below must not be lost for it.
            worker::console_error!("identity expiry: {:?}", error.to_string());
        }
        if let Some(at) = next {
            // An alarm set during this run (by an intake) that fires by `at` will do; the
            // one firing now is spent, whatever `get_alarm` says of it.
            match self.state.storage().get_alarm().await? {
                Some(set) if set as u64 > fired_ms && set as u64 <= at => {}
                _ => self.set_alarm(storage, at).await?,
            }
        }
        Response::ok("delivered")
    }
}

/// `wrangler dev` can forget an alarm across restarts while still reporting it; an alarm
/// this far overdue is set again.
const STALE_ALARM_MS: u64 = 30_000;

impl Dispatcher {
    /// Makes sure an alarm fires by `at`: sets one only when there is none that early (a
    /// forgotten, long-overdue one is set again).
    async fn wake_by(&self, storage: &Storage, at: u64) -> Result<()> {
        let now = now_ms();
        match self.state.storage().get_alarm().await? {
            Some(current) if current as u64 <= at && current as u64 + STALE_ALARM_MS > now => {
                Ok(())
            }
            _ => self.set_alarm(storage, at).await,
        }
    }

    /// Sets the alarm for `at` (now, if that has passed). Cloudflare bills each alarm set
    /// as a row written, so it is counted as one.
    async fn set_alarm(&self, storage: &Storage, at: u64) -> Result<()> {
        storage.count_alarm_set();
        let at = at_epoch_ms(at.max(now_ms()));
        self.state.storage().set_alarm(at).await
    }
}

/// A request body read with serde_json: elements come as raw JSON, kept as they are
/// (`Request::json` would go through a JavaScript object and lose them).
async fn body<T: serde::de::DeserializeOwned>(req: &mut Request) -> Result<T> {
    Ok(serde_json::from_slice(&req.bytes().await?)?)
}

/// The answer of an object whose tables could not be opened: events are refused (the
/// Worker answers 503, the sender sends again), never half-stored.
fn unavailable(reason: &str) -> Result<Response> {
    ApiError::new(
        503,
        "storage_unavailable",
        format!("the dispatcher's storage could not be opened: {reason}"),
    )
    .into_response()
}

/// An absolute alarm time; `set_alarm(i64)` would mean an offset from now.
fn at_epoch_ms(ms: u64) -> worker::ScheduledTime {
    let date = worker::js_sys::Date::new(&worker::wasm_bindgen::JsValue::from_f64(ms as f64));
    worker::ScheduledTime::new(date)
}
