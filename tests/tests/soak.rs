//! The soak: load and faults together, under `wrangler dev`.
//!
//! Eight clients post 5,000 events (`make soak`: 100,000) to `/collect` in batches of 2 to
//! 100 events and as single events. The mock TikTok fails 40 % of the calls, seeded: HTTP
//! 5xx as HTML and as JSON, 429, code 40100 and 50000 with HTTP 200, and calls held longer
//! than the Worker's 2 s time-out, then answered with success (TikTok kept the events).
//! `wrangler dev` is killed with SIGKILL (its whole process group) during the load, once
//! (`make soak`: three times), and restarted on the same port and storage; the clients send
//! again what got no answer or a 5xx, with the same event ids.
//!
//! Then the queue is drained, what was parked is replayed against a TikTok that now always
//! succeeds, and the queue is drained again. Every event the Worker accepted must have been
//! delivered; a duplicate must come from a time-out or a kill; no 60 s window may hold more
//! TikTok requests than `RATE_LIMIT_PER_MINUTE`. The run itself is in
//! `ttedge_e2e::soak`; `SOAK_*` variables size it (see `SoakConfig::from_env`).

use ttedge_e2e::soak::{self, SoakConfig};

#[tokio::test(flavor = "multi_thread")]
async fn soak_under_faults_and_kills_delivers_every_accepted_event() -> anyhow::Result<()> {
    let cfg = SoakConfig::from_env()?;
    let report = soak::run(&cfg).await?;
    let summary = report.summary_line();
    println!("{summary}");
    println!("{}", report.details());

    // The scenario happened as planned (preconditions, not the Worker's behaviour).
    assert_eq!(
        report.kills.len(),
        cfg.kills,
        "every kill came during the load"
    );
    assert!(
        report.failure_percent() >= 30.0,
        "TikTok failed {:.1} % of the calls: {summary}",
        report.failure_percent()
    );

    // Every request was answered, and every event was queued.
    let c = &report.clients;
    assert!(
        c.failed.is_empty(),
        "requests not answered 202: {:?}",
        c.failed
    );
    assert!(
        c.unexpected.is_empty(),
        "events not queued: {:?}",
        &c.unexpected[..c.unexpected.len().min(20)]
    );
    assert_eq!(report.accepted.len(), cfg.events, "{summary}");

    // Nothing accepted is lost, nothing unknown is sent.
    let a = &report.accounting;
    assert!(
        a.undelivered.is_empty(),
        "{} accepted events never delivered, e.g. {:?}; {summary}",
        a.undelivered.len(),
        &a.undelivered[..a.undelivered.len().min(20)]
    );
    assert!(
        a.unknown.is_empty(),
        "delivered but never accepted: {:?}",
        a.unknown
    );
    // Duplicates only where TikTok kept a timed-out call or the Worker was killed.
    assert!(
        a.duplicates_unexplained.is_empty(),
        "duplicates with neither a time-out nor a kill: {:?}",
        &a.duplicates_unexplained[..a.duplicates_unexplained.len().min(20)]
    );
    // The rate limit holds in every sliding 60 s window, kills included.
    assert!(
        a.max_window <= cfg.rate_limit_per_minute as usize,
        "{} TikTok requests within 60 s, limit {}",
        a.max_window,
        cfg.rate_limit_per_minute
    );

    // The Dispatcher agrees: nothing left, everything parked was replayed, each stored event
    // counted as received and delivered exactly once, and it sends nothing more.
    let status = &report.final_status;
    assert_eq!(status["queued"], 0, "{status:#}");
    assert_eq!(status["parked"], 0, "{status:#}");
    assert_eq!(
        report.replay["replayed"].as_u64(),
        Some(report.parked_before_replay),
        "{}",
        report.replay
    );
    let counter = |metric: &str| status["counters"][metric].as_u64().unwrap_or(0);
    assert_eq!(
        counter("received"),
        report.accepted.len() as u64,
        "{status:#}"
    );
    assert_eq!(
        counter("delivered"),
        report.accepted.len() as u64,
        "{status:#}"
    );
    assert_eq!(
        counter("replayed"),
        report.parked_before_replay,
        "{status:#}"
    );
    assert_eq!(report.requests_after_drain, 0, "no request after the drain");
    Ok(())
}
