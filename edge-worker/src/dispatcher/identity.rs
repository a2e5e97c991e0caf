//! Identity resolution's table and its three uses: at intake (learn, enrich, erase), at
//! send time (queued events whose browser was identified since), and data-subject requests.
//!
//! The rules are core's ([`ttedge_core::identity`]); this file reads and writes rows. One
//! row per pixel and key (a `_ttp`, or a hashed external id), without a rowid or a second
//! index, so a write costs one row. A row is written only when its values change or its
//! last use is a day old; reads cost a thousandth of that.

use serde::Deserialize;
use ttedge_core::hashing::Sha256Hex;
use ttedge_core::identity::{self, Enriched, Identity, IdentityKey, IdentityUse, MAX_DAYS};
use ttedge_core::tiktok::{TrackEvent, User};
use worker::{Result, SqlStorageValue};

use super::client::{IdentitiesAnswer, IdentityQuery, IdentityView, IntakeEvent};
use super::storage::{int, EventMeta, Storage};

/// The table, made with the Dispatcher's fixed tables.
pub const TABLE: &str = "CREATE TABLE IF NOT EXISTS identities (
        pixel_code  TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        key         TEXT    NOT NULL,
        email       TEXT,
        phone       TEXT,
        external_id TEXT,
        first_seen  INTEGER NOT NULL,
        last_seen   INTEGER NOT NULL,
        expires     INTEGER NOT NULL,
        PRIMARY KEY (pixel_code, kind, key)
    ) WITHOUT ROWID";

/// A row as read.
#[derive(Deserialize)]
struct Row {
    kind: String,
    key: String,
    email: Option<String>,
    phone: Option<String>,
    external_id: Option<String>,
    first_seen: f64,
    last_seen: f64,
    expires: f64,
}

impl Row {
    fn identity(&self) -> Identity {
        let hash = |value: &Option<String>| value.as_deref().and_then(Sha256Hex::parse);
        Identity {
            email: hash(&self.email),
            phone: hash(&self.phone),
            external_id: hash(&self.external_id),
            first_seen_ms: self.first_seen as u64,
            last_seen_ms: self.last_seen as u64,
            expires_ms: self.expires as u64,
        }
    }

    fn view(&self) -> IdentityView {
        IdentityView {
            kind: self.kind.clone(),
            key: self.key.clone(),
            email_sha256: self.email.clone(),
            phone_sha256: self.phone.clone(),
            external_id_sha256: self.external_id.clone(),
            first_seen_ms: self.first_seen as u64,
            last_seen_ms: self.last_seen as u64,
            expires_ms: self.expires as u64,
        }
    }
}

const COLUMNS: &str = "kind, key, email, phone, external_id, first_seen, last_seen, expires";

fn hash_value(hash: Option<Sha256Hex>) -> SqlStorageValue {
    hash.map_or(SqlStorageValue::Null, |h| h.as_str().into())
}

fn read(storage: &Storage, pixel: &str, key: &IdentityKey<'_>) -> Result<Option<Identity>> {
    Ok(by_key(storage, pixel, key)?.first().map(Row::identity))
}

fn write(storage: &Storage, pixel: &str, key: &IdentityKey<'_>, identity: &Identity) -> Result<()> {
    storage.exec(
        "INSERT INTO identities (pixel_code, kind, key, email, phone, external_id,
            first_seen, last_seen, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (pixel_code, kind, key) DO UPDATE SET email = excluded.email,
            phone = excluded.phone, external_id = excluded.external_id,
            first_seen = excluded.first_seen, last_seen = excluded.last_seen,
            expires = excluded.expires",
        vec![
            pixel.into(),
            key.kind().into(),
            key.value().into(),
            hash_value(identity.email),
            hash_value(identity.phone),
            hash_value(identity.external_id),
            int(identity.first_seen_ms),
            int(identity.last_seen_ms),
            int(identity.expires_ms),
        ],
    )?;
    Ok(())
}

/// The live identities stored for `user`'s keys, ttp first, each with its key.
fn lookup<'u>(
    storage: &Storage,
    pixel: &str,
    user: &'u User<'_>,
    now_ms: u64,
    days: u32,
) -> Result<Vec<(IdentityKey<'u>, Identity)>> {
    let mut found = Vec::new();
    for key in identity::lookup_keys(user).into_iter().flatten() {
        if let Some(stored) = read(storage, pixel, &key)? {
            if stored.is_live(now_ms, days) {
                found.push((key, stored));
            }
        }
    }
    Ok(found)
}

/// An element read back from its JSON; `None` (and a log line without its content) when it
/// does not read, so that it goes out as it came.
fn parse(element: &str) -> Option<TrackEvent<'_>> {
    match serde_json::from_str(element) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            worker::console_error!(
                "identity: an element did not read back: {:?}",
                error.to_string()
            );
            None
        }
    }
}

/// What identity resolution did to one event at intake.
#[derive(Default)]
pub struct Resolved {
    /// The element to store instead of the one that came, when it was enriched.
    pub element: Option<String>,
    /// Its match quality before and after, when it was enriched.
    pub enriched: Option<Enriched>,
    /// Set when it may still be enriched at send time (see [`EventMeta::identity`]).
    pub later: Option<IdentityUse>,
}

/// Identity resolution for the events of one intake: one pixel, one destination's days.
pub struct Resolver<'a> {
    /// The tables.
    pub storage: &'a Storage,
    /// The destination's pixel.
    pub pixel: &'a str,
    /// The destination's `identity_days`.
    pub days: u32,
    /// Now, epoch ms.
    pub now_ms: u64,
}

impl Resolver<'_> {
    /// Enriches one event from the stored identities of its ttp and external id (when its
    /// consent allows and it lacks a value), then learns what it carries (when its consent
    /// allows). Events earlier in the same intake are already learned from.
    ///
    /// A storage error costs the event its enrichment, never its place in the queue: it is
    /// logged (without the event's data) and the event is stored as it came.
    pub fn event(&self, event: &IntakeEvent) -> Resolved {
        self.try_event(event).unwrap_or_else(|error| {
            worker::console_error!("identity resolution: {:?}", error.to_string());
            Resolved::default()
        })
    }

    fn try_event(&self, event: &IntakeEvent) -> Result<Resolved> {
        // The Worker narrowed it to the destination's days and to what the element allows.
        let usage = event.identity;
        if !usage.learn && !usage.enrich {
            return Ok(Resolved::default());
        }
        let Some(mut element) = parse(event.element.get()) else {
            return Ok(Resolved::default());
        };
        // What the event itself carries: the only values it teaches.
        let own = User {
            email: element.user.email,
            phone: element.user.phone,
            external_id: element.user.external_id,
            ttp: element.user.ttp.clone(),
            ..User::default()
        };
        let mut resolved = Resolved::default();
        if usage.enrich {
            let found = lookup(self.storage, self.pixel, &own, self.now_ms, self.days)?;
            let identities: Vec<Identity> = found.iter().map(|(_, stored)| *stored).collect();
            if let Some(enriched) = identity::enrich(&mut element, &identities, usage.source()) {
                for (key, stored) in &found {
                    if let Some(touched) = stored.touched(self.now_ms, self.days) {
                        write(self.storage, self.pixel, key, &touched)?;
                    }
                }
                resolved.element = Some(element.to_json());
                resolved.enriched = Some(enriched);
            }
        }
        if usage.learn {
            for key in identity::learn_keys(&own, &usage).into_iter().flatten() {
                let stored = read(self.storage, self.pixel, &key)?;
                if let Some(learned) =
                    identity::learn(stored.as_ref(), &own, self.now_ms, self.days)
                {
                    write(self.storage, self.pixel, &key, &learned)?;
                }
            }
        }
        // Only what the send loop needs, so the queue's rows stay small.
        let later = IdentityUse {
            enrich: usage.enrich,
            offline: usage.offline,
            ..IdentityUse::default()
        }
        .for_user(&element.user);
        resolved.later = later.enrich.then_some(later);
        Ok(resolved)
    }
}

/// Enriches, at send time, the queued events of a batch that may still be (their meta says
/// so) from identities learned since they came. Answers what changed, per event. A storage
/// error is logged and the batch goes as it was queued.
pub fn enrich_queued(
    storage: &Storage,
    pixel: &str,
    meta: &[EventMeta],
    elements: &mut [String],
    now_ms: u64,
) -> Vec<Enriched> {
    match enriched_queued(storage, pixel, meta, elements, now_ms) {
        Ok(changes) => changes
            .into_iter()
            .map(|(at, text, enriched)| {
                elements[at] = text;
                enriched
            })
            .collect(),
        Err(error) => {
            worker::console_error!("identity resolution at send: {:?}", error.to_string());
            Vec::new()
        }
    }
}

/// The new text of each queued element that a stored identity fills, by index: applied only
/// once all are known, so an error leaves the batch as it was.
fn enriched_queued(
    storage: &Storage,
    pixel: &str,
    meta: &[EventMeta],
    elements: &[String],
    now_ms: u64,
) -> Result<Vec<(usize, String, Enriched)>> {
    let mut changes = Vec::new();
    for (at, (meta, element)) in meta.iter().zip(elements).enumerate() {
        let Some(usage) = meta.identity.filter(|usage| usage.enrich) else {
            continue;
        };
        let Some(mut parsed) = parse(element) else {
            continue;
        };
        // The stored expiry governs here: the destination's days are not at hand.
        let found = lookup(storage, pixel, &parsed.user, now_ms, MAX_DAYS)?;
        let identities: Vec<Identity> = found.iter().map(|(_, stored)| *stored).collect();
        if let Some(enriched) = identity::enrich(&mut parsed, &identities, usage.source()) {
            changes.push((at, parsed.to_json(), enriched));
        }
    }
    Ok(changes)
}

/// Erases the identity of a browser: its ttp's row, and the row of the external id that
/// row links to. Answers the rows erased.
pub fn erase_ttp(storage: &Storage, pixel: &str, ttp: &str) -> Result<u64> {
    let key = IdentityKey::Ttp(ttp);
    let Some(stored) = read(storage, pixel, &key)? else {
        return Ok(0);
    };
    let mut erased = delete(storage, pixel, &key)?;
    if let Some(external_id) = stored.external_id {
        erased += delete(storage, pixel, &IdentityKey::ExternalId(external_id))?;
    }
    Ok(erased)
}

fn delete(storage: &Storage, pixel: &str, key: &IdentityKey<'_>) -> Result<u64> {
    let cursor = storage.exec(
        "DELETE FROM identities WHERE pixel_code = ? AND kind = ? AND key = ?",
        vec![pixel.into(), key.kind().into(), key.value().into()],
    )?;
    let _: Vec<serde::de::IgnoredAny> = cursor.to_array()?;
    Ok(cursor.rows_written() as u64)
}

/// Answers a data-subject request: the rows of a ttp (and the external id it links to), or
/// every row holding an email's hash (read without an index: rare, and reads are cheap);
/// erased when asked.
pub fn query(storage: &Storage, query: &IdentityQuery) -> Result<IdentitiesAnswer> {
    let pixel = query.pixel_code.as_str();
    let mut rows: Vec<Row> = Vec::new();
    if let Some(ttp) = &query.ttp {
        rows.extend(by_key(storage, pixel, &IdentityKey::Ttp(ttp))?);
        let linked = rows.first().map(Row::identity).and_then(|i| i.external_id);
        if let Some(external_id) = linked {
            rows.extend(by_key(
                storage,
                pixel,
                &IdentityKey::ExternalId(external_id),
            )?);
        }
    }
    if let Some(email) = &query.email {
        let found: Vec<Row> = storage
            .exec(
                &format!("SELECT {COLUMNS} FROM identities WHERE pixel_code = ? AND email = ?"),
                vec![pixel.into(), email.as_str().into()],
            )?
            .to_array()?;
        for row in found {
            if !rows.iter().any(|r| r.kind == row.kind && r.key == row.key) {
                rows.push(row);
            }
        }
    }
    let mut erased = 0;
    if query.erase {
        for row in &rows {
            let key = match row.kind.as_str() {
                "ttp" => IdentityKey::Ttp(&row.key),
                _ => match Sha256Hex::parse(&row.key) {
                    Some(hash) => IdentityKey::ExternalId(hash),
                    None => continue,
                },
            };
            erased += delete(storage, pixel, &key)?;
        }
    }
    Ok(IdentitiesAnswer {
        identities: rows.iter().map(Row::view).collect(),
        erased,
    })
}

fn by_key(storage: &Storage, pixel: &str, key: &IdentityKey<'_>) -> Result<Vec<Row>> {
    storage
        .exec(
            &format!(
                "SELECT {COLUMNS} FROM identities WHERE pixel_code = ? AND kind = ? AND key = ?"
            ),
            vec![pixel.into(), key.kind().into(), key.value().into()],
        )?
        .to_array()
}

/// Deletes expired identities, at most once an hour per object: the statement reads the
/// whole table, and writes only the rows it deletes.
#[derive(Default)]
pub struct Expiry {
    last_hour: std::cell::Cell<u64>,
}

impl Expiry {
    /// Deletes what expired by `now_ms`, unless done this hour already.
    pub fn run(&self, storage: &Storage, now_ms: u64) -> Result<()> {
        let hour = ttedge_core::health::hour_of(now_ms);
        if self.last_hour.replace(hour) == hour {
            return Ok(());
        }
        storage.exec(
            "DELETE FROM identities WHERE expires <= ?",
            vec![int(now_ms)],
        )?;
        Ok(())
    }
}
