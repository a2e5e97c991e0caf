//! The Worker's side of the Dispatcher: the calls, and the typed bodies both ends share.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use ttedge_core::cod::OrderUpdate;
use ttedge_core::event::PixelStatus;
use ttedge_core::hashing::Sha256Hex;
use ttedge_core::identity::IdentityUse;
use ttedge_core::quality::{MatchQuality, QualitySummary};
use worker::{Env, Headers, Method, Response, Result};

use super::report::{ConversionCounts, Health, ParkedList, QueueState, ReplayAnswer};
use super::routes::Route;
use crate::config::{Provenance, SiteConfig};
use crate::error::ApiError;
use crate::runtime;

/// Binding name in wrangler.toml.
const BINDING: &str = "DISPATCHER";

/// Header that carries [`Credentials`] on every call from the Worker.
pub const CREDENTIALS_HEADER: &str = "Ttedge-Credentials";

/// How the Dispatcher reaches TikTok when its alarm fires with no request at hand: the
/// Worker sends these with every call and the object keeps the latest. A stored
/// destination's token travels and rests only sealed (with its site host as associated
/// data); the `wrangler.toml` default's token is read from the secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// The site host whose sealed token this is; `None` for the default destination.
    pub host: Option<String>,
    /// The token sealed under `MASTER_KEY`; `None` for the default destination.
    pub sealed_token: Option<String>,
    /// Requests per sliding minute.
    pub rate_limit_per_minute: u32,
}

impl Credentials {
    fn of(site: &SiteConfig) -> Credentials {
        let (host, sealed_token) = match &site.provenance {
            Provenance::Vars => (None, None),
            Provenance::Stored { host, sealed_token } => {
                (Some(host.clone()), Some(sealed_token.clone()))
            }
        };
        Credentials {
            host,
            sealed_token,
            rate_limit_per_minute: site.rate_limit_per_minute,
        }
    }
}

/// What the Worker hands over for one collect request.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Intake {
    /// Ready events, all of one request key (the destination's pixel and test code).
    pub events: Vec<IntakeEvent>,
    /// `event_source_id` of the events.
    pub pixel_code: String,
    /// Test events go in requests of their own.
    pub test_event_code: Option<String>,
    /// Held back by consent.
    pub held: u32,
    /// Skipped (internal events, custom events off).
    pub skipped: u32,
    /// Rejected before queueing.
    pub rejected: u32,
    /// Match quality of the request's scored events (ready and held).
    pub quality: QualitySummary,
    /// Off: the destination is being set up; the events are counted, never stored or sent.
    pub live: bool,
    /// Days a checkout's order (an event with `order_id`) is kept for its cash-on-delivery
    /// confirmation.
    #[serde(default)]
    pub cod_days: u32,
    /// Days identities are kept for this destination; 0: identity resolution is off.
    #[serde(default)]
    pub identity_days: u32,
    /// `_ttp` values whose identity is erased: an event of the request denied `ad_user_data`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erase_ttps: Vec<String>,
}

/// One ready event. The element travels as raw JSON: it is checked once when the intake is
/// read, stored as it came, and spliced into TikTok's body without being parsed again.
#[derive(Debug, Serialize, Deserialize)]
pub struct IntakeEvent {
    /// TikTok's deduplication key.
    pub event_id: String,
    /// The TikTok event name.
    pub event_name: String,
    /// The page's pixel status, for recovery figures.
    pub pixel_status: Option<PixelStatus>,
    /// Whether the destination counts this event as a conversion.
    pub conversion: bool,
    /// The offline event set it goes to instead of the pixel (core's
    /// [`offline_event_set`](ttedge_core::tiktok::offline_event_set)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_event_set_id: Option<String>,
    /// The `data[]` element.
    pub element: Box<RawValue>,
    /// A cash-on-delivery checkout's order id: the element is kept under it, for its
    /// confirmation. Absent for every other event, which then costs nothing more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// What identity resolution may do with it (core's
    /// [`allowed`](ttedge_core::identity::allowed)).
    #[serde(default)]
    pub identity: IdentityUse,
}

/// `POST /orders`: a cash-on-delivery order paid, delivered or cancelled.
#[derive(Debug, Serialize, Deserialize)]
pub struct OrderCall {
    /// The pixel the checkout was stored for, and the confirmation goes to.
    pub pixel_code: String,
    /// Test events go in requests of their own.
    pub test_event_code: Option<String>,
    /// The shop's order id.
    pub order_id: String,
    /// What became of it.
    pub update: OrderUpdate,
    /// Off: nothing is queued (counted as not live).
    pub live: bool,
}

/// What became of an order update; also the `outcome` of the admin API's and the
/// webhook's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderOutcome {
    /// `CompletePayment` queued with the checkout's identifiers.
    Queued,
    /// Already confirmed: nothing sent again.
    Duplicate,
    /// Forgotten; nothing sent.
    Cancelled,
    /// No such order kept; with an email, phone or external id it went as an offline event.
    QueuedOffline,
    /// The destination is not live: counted, not sent.
    NotLive,
    /// No such order kept (never checked out with this id, cancelled, or expired).
    Unknown,
}

/// The answer to an order update, from the Dispatcher and then from the Worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderAnswer {
    /// The shop's order id.
    pub order_id: String,
    /// What became of the update.
    pub outcome: OrderOutcome,
    /// The event id of the purchase, when one was queued or already had been.
    pub event_id: Option<String>,
}

/// The Dispatcher's answer to an intake.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct IntakeAnswer {
    /// Events stored.
    pub queued: u32,
    /// Event ids already received within the deduplication window (not queued again).
    pub duplicates: Vec<String>,
    /// Events that received a stored identity, with the match quality they are sent with.
    #[serde(default)]
    pub enriched: Vec<EnrichedEvent>,
}

/// An event enriched at intake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrichedEvent {
    /// Its event id.
    pub event_id: String,
    /// Its match quality after enrichment.
    pub emq: MatchQuality,
}

/// A data-subject request: the identities of one browser or one email, for one pixel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityQuery {
    /// The destination's pixel: identities are never shared between pixels.
    pub pixel_code: String,
    /// The browser's `_ttp`.
    #[serde(default)]
    pub ttp: Option<String>,
    /// The email's hash (the Worker hashes a clear email).
    #[serde(default)]
    pub email: Option<Sha256Hex>,
    /// Erase what is found, rather than only list it.
    #[serde(default)]
    pub erase: bool,
}

/// One stored identity as listed: hashes only, never a clear value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityView {
    /// `ttp` or `external_id`.
    pub kind: String,
    /// The `_ttp` value, or the external id's hash.
    pub key: String,
    /// SHA-256 of the email.
    pub email_sha256: Option<String>,
    /// SHA-256 of the phone.
    pub phone_sha256: Option<String>,
    /// SHA-256 of the external id.
    pub external_id_sha256: Option<String>,
    /// When it was first learned, epoch ms.
    pub first_seen_ms: u64,
    /// When it was last learned or used (written at most once a day), epoch ms.
    pub last_seen_ms: u64,
    /// When it expires unless used again, epoch ms.
    pub expires_ms: u64,
}

/// The answer to an [`IdentityQuery`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentitiesAnswer {
    /// What is stored (for an erasure: what was stored before it).
    pub identities: Vec<IdentityView>,
    /// Rows erased; 0 when only listing.
    pub erased: u64,
}

/// A page of parked events: at most `limit` rows after id `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedPage {
    /// 1 to [`ParkedPage::MAX_LIMIT`]; [`ParkedPage::DEFAULT_LIMIT`] when absent.
    pub limit: u32,
    /// The `next_after` of the previous page; 0 (from the start) when absent.
    pub after: u64,
}

impl ParkedPage {
    /// Rows per page unless `limit` says otherwise.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page.
    pub const MAX_LIMIT: u32 = 500;

    /// The first page.
    pub const FIRST: ParkedPage = ParkedPage {
        limit: Self::DEFAULT_LIMIT,
        after: 0,
    };

    /// Reads `limit` and `after` from a query string's values; the error names the field.
    pub fn parse(
        limit: Option<String>,
        after: Option<String>,
    ) -> std::result::Result<ParkedPage, ApiError> {
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(text) => match text.trim().parse::<u32>() {
                Ok(n) if (1..=Self::MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_field(
                        "limit",
                        format!("limit must be a whole number from 1 to {}", Self::MAX_LIMIT),
                    ))
                }
            },
        };
        let after = match after {
            None => 0,
            Some(text) => text.trim().parse::<u64>().map_err(|_| {
                ApiError::invalid_field(
                    "after",
                    "after must be a whole number: the next_after of the previous page",
                )
            })?,
        };
        Ok(ParkedPage { limit, after })
    }
}

/// `POST .../parked/replay`: every parked event (`event_ids` absent), or those listed.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Event ids to replay; every parked event with one of them goes back to the queue.
    #[serde(default)]
    pub event_ids: Option<Vec<String>>,
}

/// The connection test's event, handed to the Dispatcher of the destination's token.
#[derive(Debug, Serialize, Deserialize)]
pub struct TestCall {
    /// `event_source_id`.
    pub pixel_code: String,
    /// The destination's test event code, when set.
    pub test_event_code: Option<String>,
    /// The `data[]` element.
    pub element: Box<RawValue>,
}

/// The Dispatcher's part of the connection test's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestAnswer {
    /// TikTok took the event.
    pub ok: bool,
    /// From sending to the end of TikTok's answer.
    pub latency_ms: u64,
    /// 0 when no answer came.
    pub http_status: u16,
    /// TikTok's `code`, when its answer had one.
    pub tiktok_code: Option<i64>,
    /// "Connection test successful!", or TikTok's message.
    pub message: String,
    /// What to do about a failure.
    pub hint: Option<String>,
}

/// Conversions delivered for a pixel per inclusive range of UTC days (days since the
/// epoch), in the order asked.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConversionQuery {
    /// `event_source_id`.
    pub pixel_code: String,
    /// `(first day, last day)` pairs.
    pub ranges: Vec<(u32, u32)>,
}

/// Hands events to the site's Dispatcher; returns once they are stored.
pub async fn enqueue(
    env: &Env,
    site: &SiteConfig,
    intake: &Intake,
) -> std::result::Result<IntakeAnswer, ApiError> {
    match call(env, site, Route::Enqueue, Some(intake)).await {
        Ok(mut response) if response.status_code() == 200 => Ok(response.json().await?),
        Ok(mut response) => {
            let detail = response.text().await.unwrap_or_default();
            worker::console_error!("dispatcher refused an intake: {detail:?}");
            Err(queue_unavailable())
        }
        Err(error) => {
            worker::console_error!("dispatcher unreachable: {:?}", error.to_string());
            Err(queue_unavailable())
        }
    }
}

/// Delivery health: core's report for the last hour, 24 hours and 7 days, the hourly
/// series, and what is going on now.
pub async fn health(env: &Env, site: &SiteConfig) -> Result<Health> {
    json(call(env, site, Route::Health, None::<&()>).await?).await
}

/// The queue as it is, with no side effect.
pub async fn state(env: &Env, site: &SiteConfig) -> Result<QueueState> {
    json(call(env, site, Route::State, None::<&()>).await?).await
}

/// Re-arms a Dispatcher whose alarm was lost while events wait (the cron and `/healthz`).
pub async fn wake(env: &Env, site: &SiteConfig) -> Result<()> {
    call(env, site, Route::Wake, None::<&()>).await.map(drop)
}

/// Lists parked events; never their elements (hashed personal data).
pub async fn parked(env: &Env, site: &SiteConfig, page: ParkedPage) -> Result<ParkedList> {
    json(call(env, site, Route::Parked(page), None::<&()>).await?).await
}

/// Moves parked events back to the queue.
pub async fn replay(env: &Env, site: &SiteConfig, replay: &Replay) -> Result<ReplayAnswer> {
    json(call(env, site, Route::Replay, Some(replay)).await?).await
}

/// Sends the connection test's event at once, within the token's rate limit. A full rate
/// window or a configuration problem comes back as the error answer to pass on.
pub async fn test(
    env: &Env,
    site: &SiteConfig,
    test: &TestCall,
) -> Result<std::result::Result<TestAnswer, Response>> {
    let mut response = call(env, site, Route::Test, Some(test)).await?;
    match response.status_code() {
        200 => Ok(Ok(response.json().await?)),
        _ => Ok(Err(response)),
    }
}

/// Applies a cash-on-delivery order update in the Dispatcher that keeps the order.
pub async fn order(env: &Env, site: &SiteConfig, call: &OrderCall) -> Result<OrderAnswer> {
    json(self::call(env, site, Route::Orders, Some(call)).await?).await
}

/// Conversions delivered in each range of `query`.
pub async fn conversions(
    env: &Env,
    site: &SiteConfig,
    query: &ConversionQuery,
) -> Result<ConversionCounts> {
    json(call(env, site, Route::Conversions, Some(query)).await?).await
}

/// Lists, or erases, the identities a data-subject request names.
pub async fn identities(
    env: &Env,
    site: &SiteConfig,
    query: &IdentityQuery,
) -> Result<IdentitiesAnswer> {
    json(call(env, site, Route::Identities, Some(query)).await?).await
}

fn queue_unavailable() -> ApiError {
    ApiError::new(
        503,
        "queue_unavailable",
        "events could not be stored; nothing was accepted, send them again",
    )
}

/// The object's answer as `T`, or its error as an error.
async fn json<T: serde::de::DeserializeOwned>(mut response: Response) -> Result<T> {
    match response.status_code() {
        200 => response.json().await,
        status => {
            let detail = response.text().await.unwrap_or_default();
            Err(worker::Error::RustError(format!(
                "dispatcher answered {status}: {detail}"
            )))
        }
    }
}

async fn call(
    env: &Env,
    site: &SiteConfig,
    route: Route,
    body: Option<&impl Serialize>,
) -> Result<Response> {
    let headers = Headers::new();
    headers.set(
        CREDENTIALS_HEADER,
        &serde_json::to_string(&Credentials::of(site))?,
    )?;
    let name = site.dispatcher_name();
    let (method, path): (Method, String) = route.request();
    runtime::call_object(env, BINDING, &name, method, &path, headers, body).await
}
