//! Offline conversions read from a file (`ttedge send`, the upload endpoint's CSV): one
//! row becomes one collect-API event with `source: "offline"`, a deterministic event id, and
//! the checks an offline event must pass before it goes through [`pipeline`](crate::pipeline).
//!
//! - [`columns`]: which column feeds which [`Field`] (header names, `--map`), and a row's
//!   [`Cells`];
//! - [`csv`]: the one CSV reader, with line numbers;
//! - [`cells`]: timestamps, values and content ids read from cells;
//! - here: a row's cells into an [`OfflineRow`], and that into an event with its id.
//!
//! Personal data stays in clear in the returned event: the pipeline hashes it, as for
//! `/collect`.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::event::{CollectEvent, Item, Properties, Source, Timestamp, UserData};
use crate::hashing::{self, Sha256Hex};
use crate::mapping::{NameMapping, NameRules};

pub mod cells;
pub mod columns;
pub mod csv;

pub use cells::{CivilDateTime, FixedOffset, LocalTime};
pub use columns::{Cells, ColumnMap, Field, MapError};
pub use csv::{csv_rows, CsvError, CsvRow};

/// The event of a row that names none.
pub const DEFAULT_EVENT: &str = "CompletePayment";

/// One day, in milliseconds: [`destination::DAY_MS`](crate::destination::DAY_MS), signed
/// as event times are.
pub const DAY_MS: i64 = crate::destination::DAY_MS as i64;

/// The oldest offline event TikTok accepts: 28 days, in milliseconds.
pub const MAX_AGE_MS: i64 = 28 * DAY_MS;
/// The most events one call to the Worker's upload endpoint may carry (`ttedge send` cuts
/// its chunks to it).
pub const MAX_UPLOAD_EVENTS: usize = 1_000;
/// The largest body of one call to the upload endpoint: 1 MiB.
pub const MAX_UPLOAD_BYTES: usize = 1024 * 1024;

/// An offline event's time must be given, not after `now_ms`, and at most `max_age_ms`
/// old, as TikTok accepts them. `ttedge send` and the upload endpoint both check with this.
pub fn check_date(
    timestamp_ms: Option<i64>,
    now_ms: i64,
    max_age_ms: i64,
) -> Result<i64, RowError> {
    let at = timestamp_ms.ok_or(RowError::NoTimestamp)?;
    if at > now_ms {
        return Err(RowError::InFuture);
    }
    if now_ms.saturating_sub(at) > max_age_ms {
        return Err(RowError::TooOld {
            max_days: max_age_ms / DAY_MS,
        });
    }
    Ok(at)
}

/// One row of an offline file, its cells already picked by column.
#[derive(Debug, Clone, Default)]
pub struct OfflineRow<'a> {
    /// Email in clear.
    pub email: Option<&'a str>,
    /// Phone in any format.
    pub phone: Option<&'a str>,
    /// The shop's customer id.
    pub external_id: Option<&'a str>,
    /// The order (transaction) id.
    pub order_id: Option<&'a str>,
    /// The incoming event name; [`DEFAULT_EVENT`] when absent.
    pub event: Option<&'a str>,
    /// Order value.
    pub value: Option<f64>,
    /// ISO 4217 currency.
    pub currency: Option<&'a str>,
    /// When it happened, epoch milliseconds.
    pub timestamp_ms: Option<i64>,
    /// Product ids bought.
    pub content_ids: Vec<&'a str>,
}

impl<'a> OfflineRow<'a> {
    /// A row read from its cells: the timestamp through `local` for local times, the value
    /// and the content ids parsed; a blank timestamp is none.
    pub fn from_cells(cells: &'a Cells, local: &dyn LocalTime) -> Result<Self, RowError> {
        let timestamp_ms = cells
            .get(Field::Timestamp)
            .filter(|t| !t.trim().is_empty())
            .map(|t| cells::timestamp_ms(t, local))
            .transpose()?;
        let value = match cells.get(Field::Value) {
            Some(cell) => cells::value(cell)?,
            None => None,
        };
        Ok(OfflineRow {
            email: cells.get(Field::Email),
            phone: cells.get(Field::Phone),
            external_id: cells.get(Field::ExternalId),
            order_id: cells.get(Field::OrderId),
            event: cells.get(Field::Event),
            value,
            currency: cells.get(Field::Currency),
            timestamp_ms,
            content_ids: cells
                .get(Field::ContentIds)
                .map(cells::content_ids)
                .unwrap_or_default(),
        })
    }
}

/// Why a row cannot become an offline event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowError {
    /// A CSV record with another number of fields than the header row.
    FieldCount {
        /// Fields of the record.
        found: usize,
        /// Fields of the header row.
        expected: usize,
    },
    /// A CSV record that is not UTF-8 text.
    NotUtf8,
    /// A timestamp cell in no known form (the cell, trimmed).
    BadTimestamp(String),
    /// A value cell that is not a non-negative number (the cell, trimmed).
    BadValue(String),
    /// No email, phone or external id.
    NoIdentifier,
    /// No timestamp.
    NoTimestamp,
    /// The event name is one that is never sent.
    UnknownEvent(String),
    /// Older than the accepted age.
    TooOld {
        /// The age limit in days.
        max_days: i64,
    },
    /// Dated after now.
    InFuture,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowError::FieldCount { found, expected } => {
                write!(f, "has {found} fields, the header row has {expected}")
            }
            RowError::NotUtf8 => f.write_str("is not UTF-8 text"),
            RowError::BadTimestamp(text) => write!(
                f,
                "bad timestamp {text:?}: expected epoch seconds or milliseconds, RFC 3339, \
                 or YYYY-MM-DD HH:MM:SS"
            ),
            RowError::BadValue(text) => write!(
                f,
                "bad value {text:?}: expected a non-negative number such as 12.50"
            ),
            RowError::NoIdentifier => f.write_str(
                "no identifier: an offline event needs an email, a phone or an external_id",
            ),
            RowError::NoTimestamp => f.write_str("no timestamp: an offline event needs its time"),
            RowError::UnknownEvent(reason) => write!(f, "unknown event: {reason}"),
            RowError::TooOld { max_days } => write!(
                f,
                "too old: TikTok accepts offline events up to {max_days} days old"
            ),
            RowError::InFuture => f.write_str("dated in the future"),
        }
    }
}

/// The hashed identity of a row, as it would be sent.
struct Identity {
    email: Option<Sha256Hex>,
    phone: Option<Sha256Hex>,
    external_id: Option<Sha256Hex>,
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The event id of a row: `<Event>-<order_id>` with the TikTok event name, or else
/// `<Event>-<32 hex>`, the first half of the SHA-256 of the row's identity (hashed email,
/// phone and external id), event, timestamp and value. The same row always gets the same id.
fn event_id(event: &str, row: &OfflineRow<'_>, identity: &Identity, timestamp_ms: i64) -> String {
    if let Some(order_id) = non_empty(row.order_id) {
        return format!("{event}-{order_id}");
    }
    let hash = |h: &Option<Sha256Hex>| h.as_ref().map(|h| h.as_str().to_string());
    let value = row.value.map(|v| format!("{v}")).unwrap_or_default();
    let material = format!(
        "ttedge-offline-v1\n{event}\n{}\n{}\n{}\n{timestamp_ms}\n{value}",
        hash(&identity.email).unwrap_or_default(),
        hash(&identity.phone).unwrap_or_default(),
        hash(&identity.external_id).unwrap_or_default(),
    );
    let digest = hashing::sha256_hex(&material);
    format!("{event}-{}", &digest[..32])
}

/// Turns a row into an offline collect event, or says why it cannot be one.
///
/// `now_ms` is the caller's clock; an event older than `max_age_ms` or after `now_ms` is
/// refused, as TikTok would refuse it.
pub fn to_collect_event<'a>(
    row: &OfflineRow<'a>,
    names: &NameRules,
    now_ms: i64,
    max_age_ms: i64,
) -> Result<CollectEvent<'a>, RowError> {
    let identity = Identity {
        email: non_empty(row.email).and_then(hashing::email),
        phone: non_empty(row.phone).and_then(hashing::phone),
        external_id: non_empty(row.external_id).and_then(hashing::external_id),
    };
    if identity.email.is_none() && identity.phone.is_none() && identity.external_id.is_none() {
        return Err(RowError::NoIdentifier);
    }
    let incoming = non_empty(row.event).unwrap_or(DEFAULT_EVENT);
    let event_name = match names.map(incoming) {
        NameMapping::Send(name) => name,
        NameMapping::Skip(reason) => return Err(RowError::UnknownEvent(reason.to_string())),
        NameMapping::Reject(error) => return Err(RowError::UnknownEvent(error.to_string())),
    };
    let timestamp_ms = check_date(row.timestamp_ms, now_ms, max_age_ms)?;
    let id = event_id(&event_name, row, &identity, timestamp_ms);
    let contents: Vec<Item<'a>> = row
        .content_ids
        .iter()
        .map(|id| id.trim())
        .filter(|id| !id.is_empty())
        .map(|id| {
            let mut item = Item::default();
            item.content_id = Some(Cow::Borrowed(id));
            item
        })
        .collect();
    let mut event = CollectEvent::default();
    event.event = Some(Cow::Owned(event_name));
    event.event_id = Some(Cow::Owned(id));
    event.timestamp = Some(Timestamp(timestamp_ms));
    event.user_data = Some(UserData {
        email: non_empty(row.email).map(Cow::Borrowed),
        phone: non_empty(row.phone).map(Cow::Borrowed),
        external_id: non_empty(row.external_id).map(Cow::Borrowed),
        ..UserData::default()
    });
    event.properties = Some(Properties {
        value: row.value,
        currency: non_empty(row.currency).map(Cow::Borrowed),
        order_id: non_empty(row.order_id).map(Cow::Borrowed),
        contents: (!contents.is_empty()).then_some(contents),
        ..Properties::default()
    });
    event.source = Some(Source::Offline);
    Ok(event)
}

impl core::error::Error for RowError {}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000_000;

    fn row() -> OfflineRow<'static> {
        OfflineRow {
            email: Some(" Buyer@Example.com "),
            timestamp_ms: Some(NOW - 1_000),
            value: Some(12.5),
            ..OfflineRow::default()
        }
    }

    fn convert(row: &OfflineRow<'_>) -> Result<String, RowError> {
        to_collect_event(row, &NameRules::default(), NOW, MAX_AGE_MS)
            .map(|e| e.event_id.unwrap_or_default().into_owned())
    }

    #[test]
    fn dates_must_be_given_past_and_recent() {
        let max = MAX_AGE_MS;
        assert_eq!(check_date(Some(NOW), NOW, max), Ok(NOW));
        assert_eq!(check_date(Some(NOW - max), NOW, max), Ok(NOW - max));
        assert_eq!(
            check_date(Some(NOW - max - 1), NOW, max),
            Err(RowError::TooOld { max_days: 28 })
        );
        assert_eq!(check_date(Some(NOW + 1), NOW, max), Err(RowError::InFuture));
        assert_eq!(check_date(None, NOW, max), Err(RowError::NoTimestamp));
    }

    #[test]
    fn order_id_gives_event_and_order() {
        let mut row = row();
        row.order_id = Some(" 1001 ");
        row.event = Some("purchase");
        assert_eq!(convert(&row).as_deref(), Ok("CompletePayment-1001"));
        row.event = Some("Order Placed");
        assert_eq!(convert(&row).as_deref(), Ok("PlaceAnOrder-1001"));
    }

    #[test]
    fn identity_id_is_stable_and_follows_the_normalised_identity() {
        let a = convert(&row()).unwrap();
        assert!(a.starts_with("CompletePayment-"));
        assert_eq!(a.len(), "CompletePayment-".len() + 32);
        let mut same = row();
        same.email = Some("buyer@example.com");
        assert_eq!(convert(&same).unwrap(), a);
        let mut other = row();
        other.value = Some(13.0);
        assert_ne!(convert(&other).unwrap(), a);
    }

    #[test]
    fn refusals() {
        let mut none = row();
        none.email = Some("  ");
        assert_eq!(convert(&none), Err(RowError::NoIdentifier));
        let mut old = row();
        old.timestamp_ms = Some(NOW - MAX_AGE_MS - 1);
        assert_eq!(convert(&old), Err(RowError::TooOld { max_days: 28 }));
        let mut future = row();
        future.timestamp_ms = Some(NOW + 1);
        assert_eq!(convert(&future), Err(RowError::InFuture));
        let mut bad = row();
        bad.event = Some("9 lives");
        assert!(matches!(convert(&bad), Err(RowError::UnknownEvent(_))));
        let mut internal = row();
        internal.event = Some("identify");
        assert!(matches!(convert(&internal), Err(RowError::UnknownEvent(_))));
        let mut untimed = row();
        untimed.timestamp_ms = None;
        assert_eq!(convert(&untimed), Err(RowError::NoTimestamp));
    }

    #[test]
    fn event_is_offline_with_contents() {
        let mut row = row();
        row.content_ids = alloc::vec!["a", " ", "b "];
        let event = to_collect_event(&row, &NameRules::default(), NOW, MAX_AGE_MS).unwrap();
        assert_eq!(event.source, Some(Source::Offline));
        let properties = event.properties.unwrap();
        let ids: Vec<_> = properties
            .line_items()
            .iter()
            .filter_map(|i| i.product_id())
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }
}
