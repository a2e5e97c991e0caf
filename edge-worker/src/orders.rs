//! Cash-on-delivery confirmations (issue 13, "Cash on delivery"): the admin route
//! `POST /admin/api/destinations/{host}/orders/{order_id}` and the shop platforms' webhook
//! `POST /webhooks/{host}/orders`, signed with the destination's webhook secret.
//!
//! Both read the same body with core's [`parse_update`] and hand it to the Dispatcher that
//! keeps the destination's orders ([`dispatcher::order`]). An order it does not keep can
//! still go as a plain offline `CompletePayment` when the body carries an email, a phone or
//! an external id: through core's offline row and pipeline (hashing happens there) and the
//! same [`store_and_answer`] as `/collect`.

use ttedge_core::answer::AnswerStatus;
use ttedge_core::cod::{self, parse_update, OrderIdFrom, OrderUpdate, SIGNATURE_HEADER};
use ttedge_core::destination::SettingsError;
use ttedge_core::offline::{to_collect_event, OfflineRow, MAX_AGE_MS};
use ttedge_core::pipeline::{prepare, RequestContext};
use worker::{Env, Request, Response};

use crate::collect::store_and_answer;
use crate::config::{self, SiteConfig};
use crate::dispatcher::{self, OrderAnswer, OrderCall, OrderOutcome};
use crate::error::ApiError;
use crate::runtime;

/// The largest order update body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// `POST /admin/api/destinations/{host}/orders/{order_id}`, the caller authenticated.
pub async fn admin_update(
    mut req: Request,
    env: &Env,
    host: &str,
    segment: &str,
) -> Result<Response, ApiError> {
    let order_id = cod::order_id_from_path(segment).ok_or_else(|| {
        ApiError::invalid_field(
            "order_id",
            format!(
                "the path's order id must be 1 to {} characters (percent-encoded) without \
                 control characters",
                cod::MAX_ORDER_ID_LEN
            ),
        )
    })?;
    let body = read(&mut req).await?;
    let now = runtime::now_ms();
    let (order_id, update) =
        parse_update(&body, OrderIdFrom::Path(&order_id), now as i64).map_err(field_error)?;
    let site = config::for_host(env, host).await?;
    apply(env, &site, order_id, update).await
}

/// `POST /webhooks/{host}/orders`: no admin token, but `X-Ttedge-Signature` over the raw
/// body with the destination's webhook secret, signed within 5 minutes of now.
pub async fn webhook(mut req: Request, env: &Env, host: &str) -> Result<Response, ApiError> {
    let host = crate::admin::checked_host(host)?;
    let site = config::for_host(env, &host).await?;
    let Some(secret) = site.webhook_secret.as_deref() else {
        return Err(ApiError::new(
            404,
            "webhook_disabled",
            format!(
                "no webhook secret is set for {host}: set webhook_secret with PUT \
                 /admin/api/destinations/{host} (or the WEBHOOK_SECRET secret for the default)"
            ),
        ));
    };
    let signature = runtime::header(&req, SIGNATURE_HEADER)?;
    let body = read(&mut req).await?;
    let now = runtime::now_ms();
    let now_s = i64::try_from(now / 1_000).unwrap_or(i64::MAX);
    cod::verify_signature(secret.as_bytes(), signature.as_deref(), &body, now_s)
        .map_err(|error| ApiError::new(401, error.code(), error.to_string()))?;
    let (order_id, update) =
        parse_update(&body, OrderIdFrom::Body, now as i64).map_err(field_error)?;
    apply(env, &site, order_id, update).await
}

async fn read(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    runtime::read_body(req, MAX_BODY_BYTES)
        .await?
        .ok_or_else(|| ApiError::body_too_large(MAX_BODY_BYTES))
}

fn field_error(error: SettingsError) -> ApiError {
    let mut api = ApiError::new(400, error.code(), error.message);
    api.path = Some(error.path);
    api
}

/// Hands the update to the Dispatcher; an unknown order goes as an offline event when the
/// body identifies the buyer, else it is a 404.
async fn apply(
    env: &Env,
    site: &SiteConfig,
    order_id: String,
    update: OrderUpdate,
) -> Result<Response, ApiError> {
    let call = OrderCall {
        pixel_code: site.destination.pixel_id.clone(),
        test_event_code: site.destination.test_event_code.clone(),
        order_id,
        update,
        live: site.live,
    };
    let mut answer = dispatcher::order(env, site, &call).await?;
    if answer.outcome == OrderOutcome::Unknown {
        if !call.update.status.confirms() || !call.update.identifies() {
            return Err(unknown_order(&call.order_id, call.update.status.confirms()));
        }
        answer = offline(env, site, &call.order_id, &call.update).await?;
    }
    let status = match answer.outcome {
        OrderOutcome::Queued | OrderOutcome::QueuedOffline => 202,
        _ => 200,
    };
    Ok(Response::from_json(&answer)?.with_status(status))
}

fn unknown_order(order_id: &str, confirming: bool) -> ApiError {
    let shown: String = order_id.chars().take(128).collect();
    let hint = match confirming {
        true => "; send email, phone or external_id to send it as an offline event",
        false => "",
    };
    ApiError::new(
        404,
        "unknown_order",
        format!(
            "no order {shown:?} is kept for this destination (no checkout with this order id, \
             cancelled, or older than cod_days){hint}"
        ),
    )
}

/// An order the Dispatcher does not keep, sent as a plain offline `CompletePayment` with the
/// body's identifiers, value and currency, dated `at` (at most now).
async fn offline(
    env: &Env,
    site: &SiteConfig,
    order_id: &str,
    update: &OrderUpdate,
) -> Result<OrderAnswer, ApiError> {
    let now = runtime::now_ms() as i64;
    let row = OfflineRow {
        email: update.email.as_deref(),
        phone: update.phone.as_deref(),
        external_id: update.external_id.as_deref(),
        order_id: Some(order_id),
        event: Some(cod::CONFIRMATION_EVENT),
        value: update.value,
        currency: update.currency.as_deref(),
        timestamp_ms: Some(update.at_ms.unwrap_or(now).min(now)),
        content_ids: Vec::new(),
    };
    let event = to_collect_event(&row, &site.destination.names, now, MAX_AGE_MS)
        .map_err(|error| ApiError::new(422, "not_sent", error.to_string()))?;
    // Offline: no header, no cookie, no new `_ttp`; only the body's fields count.
    let ctx = RequestContext {
        now_ms: now as u64,
        ttp_random: None,
        id_random: runtime::random_bytes()?,
        ..RequestContext::default()
    };
    let prepared = prepare(std::slice::from_ref(&event), &ctx, &site.destination).events;
    let answers = store_and_answer(env, site, &prepared, 0, Vec::new()).await?;
    let Some(sent) = answers.first() else {
        return Err(ApiError::new(
            500,
            "internal",
            "the offline event had no answer",
        ));
    };
    let outcome = match sent.status {
        AnswerStatus::Ready if !site.live => OrderOutcome::NotLive,
        AnswerStatus::Ready => OrderOutcome::QueuedOffline,
        AnswerStatus::Duplicate => OrderOutcome::Duplicate,
        _ => {
            let reason = sent.reason.as_deref().unwrap_or("not ready");
            return Err(ApiError::new(
                422,
                "not_sent",
                format!("the offline event was {}: {reason}", sent.status),
            ));
        }
    };
    Ok(OrderAnswer {
        order_id: order_id.to_string(),
        outcome,
        event_id: sent.event_id.as_deref().map(str::to_string),
    })
}
