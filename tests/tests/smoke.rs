//! Smoke test: the real Worker starts under `wrangler dev`, pointed at the mock, and answers
//! `GET /healthz`. Needs `npm ci` and the toolchain of `scripts/ensure-toolchain.sh`; the first
//! run builds the Worker (minutes), later runs start in a few seconds.

use std::time::Duration;

use serde_json::Value;
use ttedge_e2e::{http_client, MockTikTok, WranglerDev, WranglerDevOptions};

#[tokio::test]
async fn healthz_answers_200_with_the_mock_as_api_base() -> anyhow::Result<()> {
    let tiktok = MockTikTok::start_new().await?;
    let mut worker = WranglerDev::start(
        WranglerDevOptions::new()
            .var("TIKTOK_API_BASE", tiktok.base_url())
            .var("TIKTOK_PIXEL_ID", "C4SMOKE0000000000000")
            .var("TIKTOK_ACCESS_TOKEN", "smoke-token-0000000000000000abcd"),
    )
    .await?;
    eprintln!(
        "wrangler dev ready in {:.1?} on {} (log {})",
        worker.startup_time(),
        worker.base_url(),
        worker.log_path().display()
    );

    let resp = http_client()
        .get(format!("{}/healthz", worker.base_url()))
        .send()
        .await?;
    let status = resp.status();
    let body = resp.text().await?;
    assert_eq!(status, 200, "GET /healthz answered {status}: {body}");
    // If the Worker reports its configuration, it must be the mock's address (and the
    // access token must not be echoed).
    if let Ok(json) = serde_json::from_str::<Value>(&body) {
        if let Some(base) = json.get("api_base").and_then(Value::as_str) {
            assert_eq!(base, tiktok.base_url(), "{body}");
        }
    }
    assert!(
        !body.contains("smoke-token"),
        "healthz leaks the token: {body}"
    );

    // A crash (SIGKILL of the whole process group) and a restart on the same port and
    // persistence directory.
    assert!(worker.is_running());
    worker.kill();
    assert!(!worker.is_running());
    let err = http_client()
        .get(format!("{}/healthz", worker.base_url()))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect_err("a killed worker must not answer");
    assert!(err.is_connect(), "{err:?}");
    let port = worker.port();
    worker.restart().await?;
    eprintln!("restarted in {:.1?}", worker.startup_time());
    assert_eq!(worker.port(), port);
    let resp = http_client()
        .get(format!("{}/healthz", worker.base_url()))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);

    // A clean stop, as Drop does it.
    let stopping = std::time::Instant::now();
    worker.shutdown();
    eprintln!("shut down in {:.1?}", stopping.elapsed());
    let log = worker.log();
    assert!(log.contains("GET /healthz 200"), "{log}");
    assert!(!log.contains("smoke-token"), "the log leaks the token");
    Ok(())
}
