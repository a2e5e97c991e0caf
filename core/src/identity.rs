//! Identity resolution: a browser's later events carry what the visitor told before.
//!
//! The Dispatcher keeps, per pixel, the hashed email, phone and external id last seen for a
//! `_ttp` cookie and for a hashed external id. These are the rules it follows; storage and
//! the clock are the caller's.
//!
//! - **Learned** only from events whose consent grants both `ad_user_data` and
//!   `sendable_to_ads`, under the event's ttp (unless minted in the same request, see
//!   [`allowed`]) and its hashed external id.
//! - **Newest wins**: a value an event carries replaces the stored one; a value it lacks
//!   keeps the stored one.
//! - **Enrichment** fills only what an event lacks, and only when the event's own consent
//!   grants `ad_user_data`.
//! - **Kept** `identity_days` from last use (learned again, or used to enrich); 0 turns the
//!   store off. Last use is written at most once a day per identity, so enrichment does not
//!   cost a row per event.
//! - **Erased** when an event's consent denies `ad_user_data`, on the SDK's reset, and on
//!   an operator's request. Nothing is kept in clear: every value is a SHA-256 hex digest.

use serde::{Deserialize, Serialize};

use crate::cookie;
use crate::destination::DAY_MS;
use crate::event::{Consent, Signal, Source};
use crate::hashing::Sha256Hex;
use crate::pipeline::match_signals;
use crate::quality::{self, MatchQuality};
use crate::tiktok::{TrackEvent, User};

/// Days an identity is kept from its last use unless the destination says otherwise.
pub const DEFAULT_DAYS: u32 = 90;
/// The longest a destination may keep identities.
pub const MAX_DAYS: u32 = 400;
/// Last use is written again only once it is this old.
pub const REFRESH_MS: u64 = DAY_MS;

/// What identity resolution may do with one event, as its consent allows. Travels with the
/// event from the Worker to the Dispatcher, and rests in the queue beside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityUse {
    /// Its hashed values may be stored (`ad_user_data` granted, `sendable_to_ads` true).
    #[serde(default, skip_serializing_if = "is_false")]
    pub learn: bool,
    /// It may receive stored values (`ad_user_data` granted).
    #[serde(default, skip_serializing_if = "is_false")]
    pub enrich: bool,
    /// Its consent denies `ad_user_data`: the browser's identity is erased.
    #[serde(default, skip_serializing_if = "is_false")]
    pub erase: bool,
    /// Its ttp was minted by this request: the browser never sent it back yet, so it is no
    /// key to learn under (a browser that keeps no cookie would cost a row per request).
    #[serde(default, skip_serializing_if = "is_false")]
    pub new_ttp: bool,
    /// An offline event: scored against the offline threshold.
    #[serde(default, skip_serializing_if = "is_false")]
    pub offline: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl IdentityUse {
    /// The event's source, for scoring.
    pub fn source(&self) -> Source {
        if self.offline {
            Source::Offline
        } else {
            Source::Browser
        }
    }

    /// This use narrowed to what an event whose user is `user` can make of it: learning
    /// needs a value to teach and a key to keep it under, enrichment a value missing and a
    /// key to look one up by. The Dispatcher does not even read an element whose use is left
    /// without either, which is most events of a site nobody logs into.
    pub fn for_user(self, user: &User<'_>) -> IdentityUse {
        let has = |keys: [Option<IdentityKey<'_>>; 2]| keys.iter().any(Option::is_some);
        IdentityUse {
            learn: self.learn && user.identifies() && has(learn_keys(user, &self)),
            enrich: self.enrich && lacks_any(user) && has(lookup_keys(user)),
            ..self
        }
    }

    /// The same use for a destination that keeps identities `days` days: with 0 the store
    /// is off, so nothing is learned or enriched (a denial still erases).
    pub fn within(self, days: u32) -> IdentityUse {
        let on = days > 0;
        IdentityUse {
            learn: self.learn && on,
            enrich: self.enrich && on,
            ..self
        }
    }
}

/// What identity resolution may do with an event of this consent and source; `new_ttp`
/// when its ttp was minted by the request that carries it.
pub fn allowed(consent: Option<&Consent>, source: Source, new_ttp: bool) -> IdentityUse {
    let consent = consent.copied().unwrap_or_default();
    let user_data = consent.ad_user_data;
    IdentityUse {
        learn: user_data == Some(Signal::Granted) && consent.sendable_to_ads == Some(true),
        enrich: user_data == Some(Signal::Granted),
        erase: user_data == Some(Signal::Denied),
        new_ttp,
        offline: source == Source::Offline,
    }
}

/// The browser ttp whose identity an erasure names: the event's own ttp, else the request's
/// `_ttp` cookie (an event that also denies `ad_storage` carries none, yet the browser is
/// the same).
pub fn erasure_ttp<'a>(
    event_ttp: Option<&'a str>,
    cookie_header: Option<&'a str>,
) -> Option<&'a str> {
    event_ttp.or_else(|| {
        cookie_header
            .and_then(|header| cookie::get(header, cookie::TTP))
            .filter(|ttp| cookie::is_cookie_value(ttp))
    })
}

/// What an identity is found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityKey<'a> {
    /// The `_ttp` cookie.
    Ttp(&'a str),
    /// The hashed external id.
    ExternalId(Sha256Hex),
}

impl IdentityKey<'_> {
    /// The key's kind as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentityKey::Ttp(_) => "ttp",
            IdentityKey::ExternalId(_) => "external_id",
        }
    }

    /// The key's value as stored.
    pub fn value(&self) -> &str {
        match self {
            IdentityKey::Ttp(ttp) => ttp,
            IdentityKey::ExternalId(hash) => hash.as_str(),
        }
    }
}

/// The keys an event's identity is learned under: its ttp (unless new) and its external id.
pub fn learn_keys<'a>(user: &'a User<'_>, usage: &IdentityUse) -> [Option<IdentityKey<'a>>; 2] {
    [
        user.ttp
            .as_deref()
            .filter(|_| !usage.new_ttp)
            .map(IdentityKey::Ttp),
        user.external_id.map(IdentityKey::ExternalId),
    ]
}

/// The keys stored values are looked up under, in order: ttp first, then external id.
pub fn lookup_keys<'a>(user: &'a User<'_>) -> [Option<IdentityKey<'a>>; 2] {
    [
        user.ttp.as_deref().map(IdentityKey::Ttp),
        user.external_id.map(IdentityKey::ExternalId),
    ]
}

/// What is kept for one key: hashes only, and when it was first and last used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// SHA-256 of the normalised email.
    pub email: Option<Sha256Hex>,
    /// SHA-256 of the phone's digits.
    pub phone: Option<Sha256Hex>,
    /// SHA-256 of the external id.
    pub external_id: Option<Sha256Hex>,
    /// When it was first learned, epoch ms.
    pub first_seen_ms: u64,
    /// When it was last learned or used, epoch ms (written at most once a day).
    pub last_seen_ms: u64,
    /// When it expires: last use plus the destination's days at that time.
    pub expires_ms: u64,
}

impl Identity {
    /// Whether it holds a value (an identity without one is never kept).
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.phone.is_none() && self.external_id.is_none()
    }

    /// Whether it may still be used at `now_ms` by a destination keeping `days` days: before
    /// its own expiry, and within `days` of last use (a destination that shortened its days
    /// does not wait for rows written under the longer ones).
    pub fn is_live(&self, now_ms: u64, days: u32) -> bool {
        days > 0 && now_ms < self.expires_ms && now_ms < expiry(self.last_seen_ms, days)
    }

    /// The same identity used at `now_ms`, when last use is due to be written again;
    /// `None` when the stored last use is recent enough.
    pub fn touched(&self, now_ms: u64, days: u32) -> Option<Identity> {
        (now_ms.saturating_sub(self.last_seen_ms) >= REFRESH_MS).then(|| Identity {
            last_seen_ms: now_ms,
            expires_ms: expiry(now_ms, days),
            ..*self
        })
    }
}

/// When an identity last used at `at_ms` expires.
pub fn expiry(at_ms: u64, days: u32) -> u64 {
    at_ms.saturating_add(u64::from(days).saturating_mul(DAY_MS))
}

/// Whether `user` lacks a value an identity could fill.
pub fn lacks_any(user: &User<'_>) -> bool {
    user.email.is_none() || user.phone.is_none() || user.external_id.is_none()
}

/// The identity to store after learning from `user` at `now_ms`; `None` when nothing needs
/// writing (no value, or the same values with a recent last use).
///
/// Newest wins: each value `user` carries replaces the stored one, and a stored value it
/// lacks is kept. An identity that is no longer live starts afresh.
pub fn learn(
    stored: Option<&Identity>,
    user: &User<'_>,
    now_ms: u64,
    days: u32,
) -> Option<Identity> {
    if days == 0 || !user.identifies() {
        return None;
    }
    let stored = stored.filter(|identity| identity.is_live(now_ms, days));
    let learned = Identity {
        email: user.email.or(stored.and_then(|s| s.email)),
        phone: user.phone.or(stored.and_then(|s| s.phone)),
        external_id: user.external_id.or(stored.and_then(|s| s.external_id)),
        first_seen_ms: stored.map_or(now_ms, |s| s.first_seen_ms),
        last_seen_ms: now_ms,
        expires_ms: expiry(now_ms, days),
    };
    match stored {
        Some(s)
            if (s.email, s.phone, s.external_id)
                == (learned.email, learned.phone, learned.external_id) =>
        {
            s.touched(now_ms, days)
        }
        _ => Some(learned),
    }
}

/// Fills what `user` lacks from `identity`, never overwriting; answers whether it filled
/// anything.
pub fn fill(user: &mut User<'_>, identity: &Identity) -> bool {
    let mut filled = false;
    for (slot, stored) in [
        (&mut user.email, identity.email),
        (&mut user.phone, identity.phone),
        (&mut user.external_id, identity.external_id),
    ] {
        if slot.is_none() && stored.is_some() {
            *slot = stored;
            filled = true;
        }
    }
    filled
}

/// An event's match quality before and after enrichment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enriched {
    /// As the Worker scored it.
    pub before: MatchQuality,
    /// As it is sent.
    pub after: MatchQuality,
}

impl Enriched {
    /// Score points gained, in hundredths.
    pub fn gain(&self) -> u64 {
        u64::from(self.after.score.0.saturating_sub(self.before.score.0))
    }
}

/// Fills `element` from `identities` (looked up by [`lookup_keys`], in order) and rescores
/// it; `None` when nothing was filled.
pub fn enrich(
    element: &mut TrackEvent<'_>,
    identities: &[Identity],
    source: Source,
) -> Option<Enriched> {
    let before = quality::score(&match_signals(element), source);
    let mut filled = false;
    for identity in identities {
        filled |= fill(&mut element.user, identity);
    }
    filled.then(|| Enriched {
        before,
        after: quality::score(&match_signals(element), source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::Cow;
    use Signal::{Denied, Granted};

    const NOW: u64 = 1_764_064_800_000;

    fn hash(text: &str) -> Sha256Hex {
        Sha256Hex::of(text)
    }

    fn user(email: Option<&str>, phone: Option<&str>) -> User<'static> {
        User {
            email: email.map(hash),
            phone: phone.map(hash),
            ttp: Some(Cow::Borrowed("ttp-1")),
            ..User::default()
        }
    }

    fn consent(ads: Option<bool>, user_data: Option<Signal>) -> Consent {
        Consent {
            sendable_to_ads: ads,
            ad_storage: Some(Granted),
            ad_user_data: user_data,
        }
    }

    #[test]
    fn consent_gates() {
        let granted = consent(Some(true), Some(Granted));
        let usage = allowed(Some(&granted), Source::Browser, false).within(90);
        assert!(usage.learn && usage.enrich && !usage.erase);
        // Without sendable_to_ads true nothing is stored, but the event may be enriched.
        let unknown_ads = allowed(Some(&consent(None, Some(Granted))), Source::Browser, false);
        assert!(!unknown_ads.learn && unknown_ads.enrich);
        // No signals: privacy first, nothing learned or enriched.
        assert_eq!(
            allowed(None, Source::Browser, false),
            IdentityUse::default()
        );
        let denied = allowed(
            Some(&consent(Some(true), Some(Denied))),
            Source::Browser,
            false,
        );
        assert!(!denied.learn && !denied.enrich && denied.erase);
        // Off: nothing learned or enriched; a denial still erases.
        let off = allowed(Some(&granted), Source::Browser, false).within(0);
        assert!(!off.learn && !off.enrich);
        assert!(denied.within(0).erase);
        assert_eq!(
            allowed(Some(&granted), Source::Offline, false).source(),
            Source::Offline
        );
    }

    #[test]
    fn erasure_names_the_event_ttp_or_the_cookie() {
        assert_eq!(erasure_ttp(Some("own"), Some("_ttp=cookie")), Some("own"));
        assert_eq!(erasure_ttp(None, Some("a=1; _ttp=cookie")), Some("cookie"));
        assert_eq!(erasure_ttp(None, Some("a=1")), None);
        assert_eq!(erasure_ttp(None, None), None);
    }

    #[test]
    fn new_ttps_are_no_key_to_learn_under() {
        let mut with_id = user(Some("a@b.com"), None);
        with_id.external_id = Some(hash("c-1"));
        let usage = IdentityUse {
            learn: true,
            new_ttp: true,
            ..IdentityUse::default()
        };
        let keys = learn_keys(&with_id, &usage);
        assert_eq!(keys[0], None);
        assert_eq!(keys[1], Some(IdentityKey::ExternalId(hash("c-1"))));
        assert_eq!(lookup_keys(&with_id)[0], Some(IdentityKey::Ttp("ttp-1")));
    }

    #[test]
    fn a_use_is_narrowed_to_what_the_event_can_make_of_it() {
        let full = IdentityUse {
            learn: true,
            enrich: true,
            ..IdentityUse::default()
        };
        // A page view with a cookie only: nothing to teach, something to gain.
        let anonymous = full.for_user(&user(None, None));
        assert!(!anonymous.learn && anonymous.enrich);
        // Without a ttp or an external id: no key, so neither.
        let keyless = User {
            ttp: None,
            ..user(Some("a@b.com"), None)
        };
        assert_eq!(full.for_user(&keyless), IdentityUse::default());
        // Everything carried: it teaches, and lacks nothing.
        let mut complete = user(Some("a@b.com"), Some("555"));
        complete.external_id = Some(hash("c-1"));
        let narrowed = full.for_user(&complete);
        assert!(narrowed.learn && !narrowed.enrich);
        // A minted ttp and no external id: no key to learn under.
        let minted = IdentityUse {
            new_ttp: true,
            ..full
        };
        assert!(!minted.for_user(&user(Some("a@b.com"), None)).learn);
        // Consent is never widened.
        assert_eq!(
            IdentityUse::default().for_user(&complete),
            IdentityUse::default()
        );
    }

    #[test]
    fn newest_value_wins_and_missing_values_are_kept() {
        let first = learn(None, &user(Some("old@b.com"), Some("555")), NOW, 90).unwrap();
        assert_eq!(first.email, Some(hash("old@b.com")));
        assert_eq!((first.first_seen_ms, first.last_seen_ms), (NOW, NOW));
        let later = NOW + 60_000;
        let second = learn(Some(&first), &user(Some("new@b.com"), None), later, 90).unwrap();
        assert_eq!(second.email, Some(hash("new@b.com")), "no sticky email");
        assert_eq!(
            second.phone,
            Some(hash("555")),
            "a value the event lacks is kept"
        );
        assert_eq!(second.first_seen_ms, NOW);
        assert_eq!(second.last_seen_ms, later);
        assert_eq!(second.expires_ms, later + 90 * DAY_MS);
    }

    #[test]
    fn the_same_values_are_written_again_only_once_a_day() {
        let stored = learn(None, &user(Some("a@b.com"), None), NOW, 90).unwrap();
        let same = user(Some("a@b.com"), None);
        assert_eq!(learn(Some(&stored), &same, NOW + DAY_MS - 1, 90), None);
        let refreshed = learn(Some(&stored), &same, NOW + DAY_MS, 90).unwrap();
        assert_eq!(refreshed.last_seen_ms, NOW + DAY_MS);
        assert_eq!(refreshed.first_seen_ms, NOW);
        assert_eq!(stored.touched(NOW + 1_000, 90), None);
        assert!(stored.touched(NOW + DAY_MS, 90).is_some());
        // Nothing to learn from an event without a value, nor when the store is off.
        assert_eq!(learn(None, &user(None, None), NOW, 90), None);
        assert_eq!(learn(None, &user(Some("a@b.com"), None), NOW, 0), None);
    }

    #[test]
    fn expiry_counts_from_last_use() {
        let stored = learn(None, &user(Some("a@b.com"), None), NOW, 90).unwrap();
        assert!(stored.is_live(NOW + 90 * DAY_MS - 1, 90));
        assert!(!stored.is_live(NOW + 90 * DAY_MS, 90));
        // A destination that shortened its days does not wait for the stored expiry.
        assert!(!stored.is_live(NOW + 8 * DAY_MS, 7));
        assert!(!stored.is_live(NOW, 0));
        // Used on day 60: kept until day 150.
        let used = stored.touched(NOW + 60 * DAY_MS, 90).unwrap();
        assert!(used.is_live(NOW + 149 * DAY_MS, 90));
        assert!(!used.is_live(NOW + 150 * DAY_MS, 90));
        // An expired identity is not merged into: learning starts afresh.
        let fresh = learn(
            Some(&stored),
            &user(None, Some("555")),
            NOW + 91 * DAY_MS,
            90,
        )
        .unwrap();
        assert_eq!(fresh.email, None);
        assert_eq!(fresh.first_seen_ms, NOW + 91 * DAY_MS);
    }

    #[test]
    fn enrichment_fills_only_what_is_missing() {
        let stored = Identity {
            email: Some(hash("stored@b.com")),
            phone: Some(hash("555")),
            external_id: None,
            first_seen_ms: NOW,
            last_seen_ms: NOW,
            expires_ms: NOW + DAY_MS,
        };
        let mut own = user(Some("own@b.com"), None);
        assert!(fill(&mut own, &stored));
        assert_eq!(own.email, Some(hash("own@b.com")), "never overwritten");
        assert_eq!(own.phone, Some(hash("555")));
        assert!(!fill(&mut own, &stored), "nothing left to fill");
        assert!(lacks_any(&own));
    }

    #[test]
    fn enrichment_is_rescored() {
        let stored = Identity {
            email: Some(hash("stored@b.com")),
            phone: None,
            external_id: None,
            first_seen_ms: NOW,
            last_seen_ms: NOW,
            expires_ms: NOW + DAY_MS,
        };
        let mut element = TrackEvent {
            event: Cow::Borrowed("CompletePayment"),
            event_time: 1,
            event_id: Cow::Borrowed("e-1"),
            user: user(None, None),
            page: Default::default(),
            properties: Default::default(),
            limited_data_use: false,
        };
        let enriched = enrich(&mut element, &[stored], Source::Browser).unwrap();
        assert_eq!(enriched.gain(), 3_000, "an email is worth 30 points");
        assert_eq!(element.user.email, Some(hash("stored@b.com")));
        assert_eq!(enrich(&mut element, &[stored], Source::Browser), None);
    }
}
