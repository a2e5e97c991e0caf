//! Consent: what may be sent, and Limited Data Use.
//!
//! Privacy comes first until consent is known: with no signals at all the event still goes,
//! but with `limited_data_use: true`.

use crate::event::{Consent, Signal};

/// The four things consent decides for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentDecision {
    /// False when `sendable_to_ads` is false: the event is held back, never sent.
    pub send: bool,
    /// TikTok's Limited Data Use flag.
    pub limited_data_use: bool,
    /// Leave out email, phone and external id (`ad_user_data` denied).
    pub strip_pii: bool,
    /// `_ttp` and `ttclid` may be set or extended, and `ttp` sent (`ad_storage` not denied).
    pub cookies_allowed: bool,
}

/// Decides from the page's signals; `None` means the page sent none.
pub fn decide(consent: Option<&Consent>) -> ConsentDecision {
    let consent = consent.copied().unwrap_or_default();
    let user_data_denied = consent.ad_user_data == Some(Signal::Denied);
    let storage_denied = consent.ad_storage == Some(Signal::Denied);
    let all_granted = consent.sendable_to_ads == Some(true)
        && consent.ad_storage == Some(Signal::Granted)
        && consent.ad_user_data == Some(Signal::Granted);
    ConsentDecision {
        send: consent.sendable_to_ads != Some(false),
        limited_data_use: !all_granted,
        strip_pii: user_data_denied,
        cookies_allowed: !storage_denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent(ads: Option<bool>, storage: Option<Signal>, user_data: Option<Signal>) -> Consent {
        Consent {
            sendable_to_ads: ads,
            ad_storage: storage,
            ad_user_data: user_data,
        }
    }

    use Signal::{Denied, Granted};

    #[test]
    fn no_signals_means_limited_data_use() {
        let decision = decide(None);
        assert!(decision.send && decision.limited_data_use && decision.cookies_allowed);
        assert!(!decision.strip_pii);
        assert_eq!(decide(Some(&Consent::default())), decision);
    }

    #[test]
    fn all_granted_lifts_limited_data_use() {
        let decision = decide(Some(&consent(Some(true), Some(Granted), Some(Granted))));
        assert_eq!(
            decision,
            ConsentDecision {
                send: true,
                limited_data_use: false,
                strip_pii: false,
                cookies_allowed: true
            }
        );
    }

    #[test]
    fn partial_signals_keep_limited_data_use() {
        assert!(decide(Some(&consent(Some(true), Some(Granted), None))).limited_data_use);
        assert!(decide(Some(&consent(None, Some(Granted), Some(Granted)))).limited_data_use);
    }

    #[test]
    fn not_sendable_is_held() {
        assert!(!decide(Some(&consent(Some(false), Some(Granted), Some(Granted)))).send);
    }

    #[test]
    fn user_data_denied_strips_pii() {
        let decision = decide(Some(&consent(Some(true), Some(Granted), Some(Denied))));
        assert!(decision.strip_pii && decision.limited_data_use && decision.cookies_allowed);
    }

    #[test]
    fn storage_denied_forbids_cookies() {
        let decision = decide(Some(&consent(Some(true), Some(Denied), Some(Granted))));
        assert!(!decision.cookies_allowed && decision.limited_data_use && !decision.strip_pii);
    }
}
