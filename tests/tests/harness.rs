//! Tests of the harness itself (no wrangler, no Worker): the mock records, answers from its
//! script and rule, goes away and comes back on the same port, and times out clearly.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use ttedge_e2e::{http_client, MockResponse, MockTikTok};

async fn post(mock: &MockTikTok, body: &Value) -> reqwest::Result<(u16, String)> {
    let resp = http_client()
        .post(mock.track_url())
        .header("Access-Token", "tok-0123456789")
        .json(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

fn batch(ids: &[&str]) -> Value {
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"event": "CompletePayment", "event_id": id}))
        .collect();
    json!({"event_source": "web", "event_source_id": "C4ABC123", "data": data})
}

fn code_of(body: &str) -> Option<i64> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("code")?
        .as_i64()
}

#[tokio::test]
async fn records_a_post_and_answers_success_by_default() -> anyhow::Result<()> {
    let mock = MockTikTok::start_new().await?;
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;

    let resp = http_client()
        .post(format!("{}?x=1", mock.track_url()))
        .header("Access-Token", "tok-0123456789")
        .header("X-Mixed-Case", "Value")
        .json(&batch(&["e1", "e2"]))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await?,
        json!({"code": 0, "message": "OK", "request_id": "mock", "data": {}})
    );

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.index, 0);
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/open_api/v1.3/event/track/");
    assert_eq!(req.query.as_deref(), Some("x=1"));
    assert_eq!(req.header("access-token"), Some("tok-0123456789"));
    assert_eq!(req.header("ACCESS-TOKEN"), Some("tok-0123456789"));
    assert!(
        req.headers
            .iter()
            .any(|(n, v)| n == "x-mixed-case" && v == "Value"),
        "header names are lower-cased: {:?}",
        req.headers
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.field("event_source_id"), Some("C4ABC123"));
    assert_eq!(
        serde_json::from_slice::<Value>(&req.body)?,
        batch(&["e1", "e2"])
    );
    assert_eq!(req.json.as_ref(), Some(&batch(&["e1", "e2"])));
    assert!(req.received_at_ms >= before_ms, "epoch ms is recorded");
    assert!(req.received_at <= Instant::now());

    let events = mock.events();
    let ids: Vec<_> = events.iter().map(|e| e.event_id()).collect();
    assert_eq!(ids, [Some("e1"), Some("e2")]);
    assert!(events.iter().all(|e| e.request_index == 0 && e.accepted));
    assert_eq!(events[0].event_name(), Some("CompletePayment"));

    // A body that is not JSON is kept as bytes.
    http_client()
        .post(mock.track_url())
        .body("not json")
        .send()
        .await?;
    let req = &mock.requests()[1];
    assert_eq!(req.body_text(), "not json");
    assert!(req.json.is_none());
    assert!(req.data().is_empty());

    mock.clear();
    assert!(mock.requests().is_empty());
    assert!(mock.events().is_empty());
    Ok(())
}

#[tokio::test]
async fn answers_from_the_script_in_order_then_the_default() -> anyhow::Result<()> {
    let mock = MockTikTok::start_new().await?;
    mock.respond_next(200, json!({"code": 40001, "message": "No permission"}));
    mock.fail_next_n(2, 502);
    mock.reject_next_n(1, 40100, "Too many requests");
    mock.fail_next_n(1, 429);

    let mut answers = Vec::new();
    for i in 0..6 {
        answers.push(post(&mock, &batch(&[&format!("e{i}")])).await?);
    }
    assert_eq!((answers[0].0, code_of(&answers[0].1)), (200, Some(40001)));
    assert_eq!(answers[1].0, 502);
    assert!(
        answers[1].1.contains("<html>"),
        "5xx look like a gateway page"
    );
    assert_eq!(answers[2].0, 502);
    assert_eq!((answers[3].0, code_of(&answers[3].1)), (200, Some(40100)));
    assert_eq!((answers[4].0, code_of(&answers[4].1)), (429, Some(40100)));
    assert_eq!((answers[5].0, code_of(&answers[5].1)), (200, Some(0)));

    let accepted: Vec<_> = mock
        .accepted_events()
        .iter()
        .map(|e| e.event_id().map(str::to_owned))
        .collect();
    assert_eq!(accepted, [Some("e5".to_owned())]);
    assert_eq!(mock.events().len(), 6, "failed attempts are recorded too");

    mock.set_default(MockResponse::tiktok(50002, "busy"));
    let (status, body) = post(&mock, &batch(&["e6"])).await?;
    assert_eq!((status, code_of(&body)), (200, Some(50002)));
    mock.reset();
    let (_, body) = post(&mock, &batch(&["e7"])).await?;
    assert_eq!(code_of(&body), Some(0));
    Ok(())
}

#[tokio::test]
async fn the_rule_rejects_batches_holding_a_given_event_id() -> anyhow::Result<()> {
    let mock = MockTikTok::start_new().await?;
    mock.reject_batches_containing(&["bad"], 40002, "Invalid parameter");

    let (_, body) = post(&mock, &batch(&["a", "bad", "b"])).await?;
    assert_eq!(code_of(&body), Some(40002));
    let (_, body) = post(&mock, &batch(&["a", "b"])).await?;
    assert_eq!(code_of(&body), Some(0));
    let (_, body) = post(&mock, &batch(&["bad"])).await?;
    assert_eq!(code_of(&body), Some(40002));

    let accepted: Vec<_> = mock
        .accepted_events()
        .iter()
        .map(|e| (e.request_index, e.event_id().map(str::to_owned)))
        .collect();
    assert_eq!(
        accepted,
        [(1, Some("a".to_owned())), (1, Some("b".to_owned()))]
    );

    // The script still comes first.
    mock.respond_next(500, json!({"code": 50000}));
    let (status, _) = post(&mock, &batch(&["a"])).await?;
    assert_eq!(status, 500);

    // A free-form rule sees the whole request.
    mock.respond_with(|req| {
        (req.field("test_event_code") == Some("TEST1")).then(|| MockResponse::tiktok(40001, "x"))
    });
    let mut with_code = batch(&["t"]);
    with_code["test_event_code"] = json!("TEST1");
    let (_, body) = post(&mock, &with_code).await?;
    assert_eq!(code_of(&body), Some(40001));
    let (_, body) = post(&mock, &batch(&["t"])).await?;
    assert_eq!(code_of(&body), Some(0));
    mock.clear_responder();
    let (_, body) = post(&mock, &with_code).await?;
    assert_eq!(code_of(&body), Some(0));
    Ok(())
}

#[tokio::test]
async fn stop_refuses_connections_and_start_accepts_them_on_the_same_port() -> anyhow::Result<()> {
    let mock = MockTikTok::start_new().await?;
    let port = mock.port();
    post(&mock, &batch(&["before"])).await?;

    mock.stop().await;
    assert!(!mock.is_running());
    let err = post(&mock, &batch(&["while-down"]))
        .await
        .expect_err("a stopped mock must refuse connections");
    assert!(err.is_connect(), "expected connection refused, got {err:?}");

    mock.start().await?;
    assert_eq!(mock.port(), port);
    let (status, _) = post(&mock, &batch(&["after"])).await?;
    assert_eq!(status, 200);

    let ids: Vec<_> = mock
        .events()
        .iter()
        .map(|e| e.event_id().map(str::to_owned))
        .collect();
    assert_eq!(ids, [Some("before".to_owned()), Some("after".to_owned())]);
    Ok(())
}

#[tokio::test]
async fn stop_closes_a_connection_that_hangs() -> anyhow::Result<()> {
    let mock = MockTikTok::start_new().await?;
    mock.push_response(MockResponse::hang());
    let url = mock.track_url();
    let client = tokio::spawn(async move {
        let started = Instant::now();
        let result = http_client()
            .post(url)
            .timeout(Duration::from_secs(30))
            .json(&batch(&["h"]))
            .send()
            .await;
        (result.map(|r| r.status()), started.elapsed())
    });
    mock.wait_for_requests(1, Duration::from_secs(5)).await?;
    mock.stop().await;
    let (result, elapsed) = client.await?;
    let err = result.expect_err("a hung request gets no answer");
    assert!(!err.is_timeout(), "stop() closes it at once: {err:?}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn drop_hang_and_delay_look_like_network_trouble() -> anyhow::Result<()> {
    let mock = MockTikTok::start_new().await?;
    mock.push_response(MockResponse::drop_connection());
    mock.push_response(MockResponse::hang());
    mock.push_response(MockResponse::ok().with_delay(Duration::from_millis(300)));

    let err = post(&mock, &batch(&["d"]))
        .await
        .expect_err("dropped connection");
    assert!(!err.is_timeout(), "{err:?}");

    let err = http_client()
        .post(mock.track_url())
        .timeout(Duration::from_millis(300))
        .json(&batch(&["h"]))
        .send()
        .await
        .expect_err("hang");
    assert!(err.is_timeout(), "{err:?}");

    let started = Instant::now();
    let (status, _) = post(&mock, &batch(&["slow"])).await?;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let answers: Vec<_> = mock.requests().into_iter().map(|r| r.answer).collect();
    assert_eq!(answers[0], MockResponse::drop_connection());
    assert_eq!(answers[1], MockResponse::Hang);
    assert!(answers[2].is_success());
    Ok(())
}

#[tokio::test]
async fn wait_for_events_returns_as_soon_as_they_arrive() -> anyhow::Result<()> {
    let mock = MockTikTok::start_new().await?;
    let url = mock.track_url();
    tokio::spawn(async move {
        for ids in [&["a", "b"][..], &["c"][..]] {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = http_client().post(&url).json(&batch(ids)).send().await;
        }
    });
    let started = Instant::now();
    let events = mock.wait_for_events(3, Duration::from_secs(10)).await?;
    assert_eq!(events.len(), 3);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(events[2].request_index, 1);
    Ok(())
}

#[tokio::test]
async fn wait_for_events_times_out_with_a_clear_error() -> anyhow::Result<()> {
    let mock = MockTikTok::start_new().await?;
    mock.fail_next_n(1, 503);
    post(&mock, &batch(&["only-one"])).await?;

    let started = Instant::now();
    let err = mock
        .wait_for_events(3, Duration::from_millis(200))
        .await
        .expect_err("only one event was sent");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("expected at least 3 event(s) within 200ms"),
        "{message}"
    );
    assert!(
        message.contains("1 request(s) with 1 event(s)"),
        "{message}"
    );
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("only-one"), "{message}");

    let err = mock
        .wait_for_requests(2, Duration::from_millis(50))
        .await
        .expect_err("one request");
    assert!(
        err.to_string()
            .contains("expected at least 2 request(s) within 50ms"),
        "{err}"
    );
    Ok(())
}
