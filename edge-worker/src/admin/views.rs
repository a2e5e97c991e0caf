//! Destinations as the admin API answers them and the dashboard shows them: one typed shape
//! for both, so a field the page reads cannot go missing from the API without a compile error.
//!
//! Tokens are only ever masked here (`…` and the last 4 characters).

use std::collections::BTreeMap;

use serde::Serialize;
use ttedge_core::destination::{Baseline, DestinationSettings};
use ttedge_core::seal;

use crate::config::SiteConfig;
use crate::config_store::{LastTest, StoredDestination};

/// One destination as `GET /admin/api/destinations[/{host}]` answers it.
///
/// The JSON has the same field names as the settings (`pixel_id`, `live`, …), plus `host`,
/// the masked `access_token` and `source`: `"admin"` for a stored destination, which also
/// carries its stored-only fields, or `"vars"` for the `wrangler.toml` default.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationView {
    /// The site host; `null` for the default, which serves every host without its own.
    pub host: Option<String>,
    /// The TikTok pixel code.
    pub pixel_id: String,
    /// The access token, masked.
    pub access_token: String,
    /// The test event code every event is sent with, when set.
    pub test_event_code: Option<String>,
    /// The Offline Event Set offline events go to, when set (else the pixel).
    pub offline_event_set_id: Option<String>,
    /// Whether events are sent to TikTok.
    pub live: bool,
    /// Page origins allowed to post to `/collect`.
    pub site_origins: Vec<String>,
    /// `Domain` of the cookies, when set.
    pub cookie_domain: Option<String>,
    /// Requests per sliding minute for the token.
    pub rate_limit_per_minute: u32,
    /// Days identities are kept from last use; 0: identity resolution is off.
    pub identity_days: u32,
    /// Where the settings come from, with what only stored destinations have.
    #[serde(flatten)]
    pub kind: DestinationKind,
}

/// Where a destination's settings come from: serialised as `source` (`admin` or `vars`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum DestinationKind {
    /// Stored through the admin API (boxed: it is the larger variant by far).
    Admin(Box<StoredFields>),
    /// `wrangler.toml` vars and the `TIKTOK_ACCESS_TOKEN` secret: no switch, always live on
    /// the dashboard.
    Vars,
}

/// The settings only a stored destination has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredFields {
    /// The browser pixel the server's conversions are compared with, when not `pixel_id`.
    pub baseline_pixel_code: Option<String>,
    /// Incoming event name → TikTok event name.
    pub event_overrides: BTreeMap<String, String>,
    /// Whether non-standard names go as custom events.
    pub custom_events: bool,
    /// Extra TikTok names counted as conversions.
    pub conversion_events: Vec<String>,
    /// TikTok names that keep a cash-on-delivery order besides `PlaceAnOrder`.
    pub cod_checkout_events: Vec<String>,
    /// Days a cash-on-delivery order is kept for its confirmation.
    pub cod_days: u32,
    /// Whether an order webhook secret is set (the secret itself is never answered).
    pub webhook_secret_set: bool,
    /// Imported pixel baselines, oldest first.
    pub baselines: Vec<Baseline>,
    /// When the settings last changed, epoch ms.
    pub updated_ms: u64,
    /// The last connection test's result.
    pub last_test: Option<LastTest>,
    /// When a connection test last passed (for this pixel and token), epoch ms.
    pub test_passed_ms: Option<u64>,
}

impl DestinationView {
    /// A stored destination, its token masked. Every settings field is named, so a new one
    /// has to be placed here (or left out on purpose) before this compiles.
    pub fn stored(stored: &StoredDestination) -> Self {
        let DestinationSettings {
            pixel_id,
            access_token: _, // always `None` in storage, and never answered
            test_event_code,
            offline_event_set_id,
            baseline_pixel_code,
            live,
            site_origins,
            cookie_domain,
            event_overrides,
            custom_events,
            rate_limit_per_minute,
            conversion_events,
            cod_checkout_events,
            cod_days,
            webhook_secret: _, // always `None` in storage (sealed apart), and never answered
            identity_days,
        } = stored.settings.clone();
        DestinationView {
            host: Some(stored.host.clone()),
            pixel_id,
            access_token: stored.token_mask.clone(),
            test_event_code,
            offline_event_set_id,
            live,
            site_origins,
            cookie_domain,
            rate_limit_per_minute,
            identity_days,
            kind: DestinationKind::Admin(Box::new(StoredFields {
                baseline_pixel_code,
                event_overrides,
                custom_events,
                conversion_events,
                cod_checkout_events,
                cod_days,
                webhook_secret_set: stored.sealed_webhook_secret.is_some(),
                baselines: stored.baselines.clone(),
                updated_ms: stored.updated_ms,
                last_test: stored.last_test.clone(),
                test_passed_ms: stored.test_passed_ms,
            })),
        }
    }

    /// The `wrangler.toml` default; it has no host of its own.
    pub fn default_destination(site: &SiteConfig) -> Self {
        DestinationView {
            host: None,
            pixel_id: site.destination.pixel_id.clone(),
            access_token: seal::mask(&site.access_token),
            test_event_code: site.destination.test_event_code.clone(),
            offline_event_set_id: site.offline_event_set_id.clone(),
            live: site.live,
            site_origins: site.site_origins.clone(),
            cookie_domain: site.cookie_domain.clone(),
            rate_limit_per_minute: site.rate_limit_per_minute,
            identity_days: site.identity_days,
            kind: DestinationKind::Vars,
        }
    }

    /// Whether it comes from `wrangler.toml` vars.
    pub fn is_vars(&self) -> bool {
        matches!(self.kind, DestinationKind::Vars)
    }

    /// The settings only a stored destination has; `None` for the default.
    pub fn stored_fields(&self) -> Option<&StoredFields> {
        match &self.kind {
            DestinationKind::Admin(stored) => Some(stored),
            DestinationKind::Vars => None,
        }
    }

    /// When a stored destination last changed, epoch ms.
    pub fn updated_ms(&self) -> Option<u64> {
        match &self.kind {
            DestinationKind::Admin(stored) => Some(stored.updated_ms),
            DestinationKind::Vars => None,
        }
    }
}

/// `GET /admin/api/destinations`: the stored destinations by host, and the default.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationList {
    /// Stored through the admin API.
    pub destinations: Vec<DestinationView>,
    /// The `wrangler.toml` default; `null` when the vars configure none.
    pub default: Option<DestinationView>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn stored() -> StoredDestination {
        StoredDestination {
            host: "t.shop.com".into(),
            settings: DestinationSettings {
                pixel_id: "CABC".into(),
                access_token: None,
                test_event_code: Some("TEST1".into()),
                offline_event_set_id: Some("7301".into()),
                baseline_pixel_code: None,
                live: true,
                site_origins: vec!["https://shop.com".into()],
                cookie_domain: None,
                event_overrides: BTreeMap::from([("buy".into(), "Purchase".into())]),
                custom_events: false,
                rate_limit_per_minute: 600,
                conversion_events: vec!["Lead".into()],
                cod_checkout_events: vec!["Checkout".into()],
                cod_days: 45,
                webhook_secret: None,
                identity_days: 30,
            },
            sealed_token: "sealed-secret".into(),
            token_mask: "…1234".into(),
            baselines: vec![Baseline {
                from: "2026-01-01".into(),
                to: "2026-01-07".into(),
                pixel_conversions: 10,
            }],
            updated_ms: 1_764_000_000_000,
            last_test: None,
            test_passed_ms: None,
            sealed_webhook_secret: Some("sealed-webhook".into()),
        }
    }

    fn keys(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    /// The field names are the ones the API answered before these types: the settings'
    /// (the token masked) plus host, baselines, updated_ms and source.
    #[test]
    fn a_stored_destination_answers_the_settings_fields() {
        let stored = stored();
        let view = serde_json::to_value(DestinationView::stored(&stored)).expect("serialises");
        let mut expected = serde_json::to_value(&stored.settings).expect("serialises");
        for (key, value) in [
            ("host", json!("t.shop.com")),
            ("access_token", json!("…1234")),
            ("baselines", json!(stored.baselines)),
            ("updated_ms", json!(1_764_000_000_000u64)),
            ("last_test", Value::Null),
            ("test_passed_ms", Value::Null),
            ("webhook_secret_set", json!(true)),
            ("source", json!("admin")),
        ] {
            expected[key] = value;
        }
        assert_eq!(view, expected);
        assert!(!view.to_string().contains("sealed-secret"));
        assert!(!view.to_string().contains("sealed-webhook"));
    }

    #[test]
    fn the_default_has_a_null_host_and_source_vars() {
        let view = DestinationView {
            host: None,
            pixel_id: "CDEF".into(),
            access_token: "…0001".into(),
            test_event_code: None,
            offline_event_set_id: None,
            live: false,
            site_origins: Vec::new(),
            cookie_domain: None,
            rate_limit_per_minute: 1000,
            identity_days: 90,
            kind: DestinationKind::Vars,
        };
        let value = serde_json::to_value(&view).expect("serialises");
        assert_eq!(
            keys(&value),
            [
                "access_token",
                "cookie_domain",
                "host",
                "identity_days",
                "live",
                "offline_event_set_id",
                "pixel_id",
                "rate_limit_per_minute",
                "site_origins",
                "source",
                "test_event_code"
            ]
        );
        assert_eq!(value["source"], "vars");
        assert_eq!(value["host"], Value::Null);
        let list = DestinationList {
            destinations: vec![DestinationView::stored(&stored())],
            default: None,
        };
        let list = serde_json::to_value(&list).expect("serialises");
        assert_eq!(keys(&list), ["default", "destinations"]);
        assert_eq!(list["default"], Value::Null);
        assert_eq!(list["destinations"][0]["source"], "admin");
    }
}
