//! End-to-end test harness of ttedge.
//!
//! The Worker's behaviour that matters most — events stored durably before the browser gets
//! its 202, retries and parking, batch splitting, the rate limit, what survives a crash — lives
//! in Durable Objects, alarms and outbound `fetch`, which only exist under workerd. So these
//! tests run the real Worker with `wrangler dev` and put a mock of TikTok in front of it:
//!
//! - [`MockTikTok`] ([`mock`]): a scriptable HTTP server on 127.0.0.1 that records what TikTok
//!   would receive and answers as the test says (errors, time-outs, dropped connections, one
//!   bad event per batch, or not listening at all).
//! - [`WranglerDev`] ([`worker`]): builds the Worker once per test process, starts `wrangler
//!   dev` with `TIKTOK_API_BASE` and other vars pointing at the mock, waits for `/healthz`, and
//!   kills the whole process tree on drop (or on demand, to simulate a crash).
//!
//! Everything runs on loopback, in the test's own tokio runtime; no test depends on a fixed
//! port or sleeps for a fixed time where polling would do.
//!
//! A typical test:
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use ttedge_e2e::{http_client, MockTikTok, WranglerDev, WranglerDevOptions};
//!
//! let tiktok = MockTikTok::start_new().await?;
//! let worker = WranglerDev::start(
//!     WranglerDevOptions::new()
//!         .var("TIKTOK_API_BASE", tiktok.base_url())
//!         .var("TIKTOK_PIXEL_ID", "C4ABC123")
//!         .var("TIKTOK_ACCESS_TOKEN", "test-token-1234"),
//! )
//! .await?;
//! let answer = http_client()
//!     .post(format!("{}/collect", worker.base_url()))
//!     .json(&serde_json::json!({"event": "purchase", "event_id": "order-1"}))
//!     .send()
//!     .await?;
//! assert_eq!(answer.status(), 202);
//! let events = tiktok.wait_for_events(1, Duration::from_secs(10)).await?;
//! assert_eq!(events[0].event_id(), Some("order-1"));
//! # Ok(())
//! # }
//! ```

pub mod browser;
pub mod clock;
pub mod collect;
pub mod hostile;
pub mod mock;
pub mod pages;
pub mod site;
pub mod soak;
pub mod worker;

pub use mock::{tiktok_body, MockResponse, MockTikTok, RecordedEvent, RecordedRequest};
pub use site::Site;
pub use worker::{
    ensure_worker_built, free_port, http_client, repo_root, ttedge_binary, WranglerDev,
    WranglerDevOptions,
};
