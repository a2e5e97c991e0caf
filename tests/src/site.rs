//! One configured site under test: a mock TikTok and `wrangler dev` pointed at it, with an
//! admin token, and the requests most end-to-end tests make against it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::mock::MockTikTok;
use crate::worker::{http_client, WranglerDev, WranglerDevOptions};

/// A mock TikTok and the Worker sending to it.
pub struct Site {
    /// The loopback TikTok.
    pub tiktok: MockTikTok,
    /// The Worker under `wrangler dev`.
    pub worker: WranglerDev,
    /// A client for the Worker.
    pub client: reqwest::Client,
    admin_token: String,
}

/// An answer's status and JSON body (every answer of the Worker is JSON); fails naming
/// `what` was asked, with the text, when the body is not JSON.
pub async fn status_and_json(resp: reqwest::Response, what: &str) -> anyhow::Result<(u16, Value)> {
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let json = serde_json::from_str(&text)
        .with_context(|| format!("{what} answered {status} with non-JSON: {text}"))?;
    Ok((status, json))
}

impl Site {
    /// Starts a mock and `wrangler dev` with the pixel, the access token, the admin token,
    /// and `extra` vars on top.
    pub async fn start(
        access_token: &str,
        pixel_id: &str,
        admin_token: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Site> {
        let tiktok = MockTikTok::start_new().await?;
        let mut opts = WranglerDevOptions::new()
            .var("TIKTOK_API_BASE", tiktok.base_url())
            .var("TIKTOK_PIXEL_ID", pixel_id)
            .var("TIKTOK_ACCESS_TOKEN", access_token)
            .var("ADMIN_TOKEN", admin_token);
        for (name, value) in extra {
            opts = opts.var(*name, *value);
        }
        let worker = WranglerDev::start(opts).await?;
        eprintln!(
            "wrangler dev ready in {:.1?} on {} (log {})",
            worker.startup_time(),
            worker.base_url(),
            worker.log_path().display()
        );
        Ok(Site {
            tiktok,
            worker,
            client: http_client(),
            admin_token: admin_token.to_string(),
        })
    }

    /// Posts `body` to `/collect` as a browser would (user agent and client IP set); returns
    /// the 202 answer, or fails with whatever else came back.
    pub async fn collect(&self, body: &Value) -> anyhow::Result<Value> {
        self.collect_as(None, None, body).await
    }

    /// [`collect`](Self::collect) sent as if to the site host `host` (`None`: the Worker's
    /// own), from a browser whose `_ttp` cookie is `ttp` (`None`: no cookie).
    pub async fn collect_as(
        &self,
        host: Option<&str>,
        ttp: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .post(format!("{}/collect", self.worker.base_url()));
        if let Some(host) = host {
            request = request.header("Host", host);
        }
        if let Some(ttp) = ttp {
            request = request.header("Cookie", format!("_ttp={ttp}"));
        }
        let resp = request
            .header("Content-Type", "application/json")
            .header("User-Agent", "Mozilla/5.0 (ttedge e2e)")
            .header("CF-Connecting-IP", "203.0.113.9")
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status != 202 {
            bail!("POST /collect answered {status}: {text}");
        }
        serde_json::from_str(&text).context("the 202 body is not JSON")
    }

    /// A request to the Worker's `path`, sent as if to the site host `host` (`wrangler dev`
    /// keeps the `Host` header, so one Worker serves several sites on one port).
    pub fn request_to(
        &self,
        host: &str,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.worker.base_url()))
            .header("Host", host)
    }

    /// Posts `body` to `/collect` on the site host `host` from the page origin `origin`;
    /// returns the status, the `Set-Cookie` headers and the JSON answer.
    pub async fn collect_on(
        &self,
        host: &str,
        origin: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<(u16, Vec<String>, Value)> {
        let mut req = self
            .request_to(host, reqwest::Method::POST, "/collect")
            .header("Content-Type", "application/json")
            .header("User-Agent", "Mozilla/5.0 (ttedge e2e)")
            .header("CF-Connecting-IP", "203.0.113.9")
            .body(body.to_string());
        if let Some(origin) = origin {
            req = req.header("Origin", origin);
        }
        let resp = req.send().await?;
        let cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let (status, json) = status_and_json(resp, &format!("/collect on {host}")).await?;
        Ok((status, cookies, json))
    }

    /// Sends `method path` with an optional bearer `token` and JSON `body`; returns the status
    /// and the JSON answer (every answer of the Worker is JSON).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.worker.base_url()));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        status_and_json(req.send().await?, path).await
    }

    /// [`send`](Site::send) with the admin token.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        self.send(method, path, Some(&self.admin_token), body).await
    }

    /// Adds or replaces the destination of `host` through the admin API; fails unless it
    /// answers 200 or 201. Answers the destination as the API shows it.
    pub async fn put_destination(&self, host: &str, settings: &Value) -> anyhow::Result<Value> {
        let path = format!("/admin/api/destinations/{host}");
        let (status, answer) = self
            .admin(reqwest::Method::PUT, &path, Some(&settings.to_string()))
            .await?;
        if status != 200 && status != 201 {
            bail!("PUT {path} answered {status}: {answer}");
        }
        Ok(answer)
    }

    /// The default destination's queue (`GET /admin/api/status`) once `delivered` events are
    /// delivered and nothing is queued.
    pub async fn drained(&self, delivered: u64) -> anyhow::Result<Value> {
        self.wait_admin(
            "/admin/api/status",
            &format!("{delivered} delivered and nothing queued"),
            Duration::from_secs(60),
            |s| s["queued"] == 0 && s["counters"]["delivered"] == delivered,
        )
        .await
    }

    /// The rows the Dispatcher has written, from a queue state (see
    /// [`drained`](Self::drained)).
    pub fn rows_written(state: &Value) -> anyhow::Result<u64> {
        state["rows_written"]
            .as_u64()
            .with_context(|| format!("no rows_written in {state}"))
    }

    /// `GET path` with the admin token; fails unless it answers 200.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.admin(reqwest::Method::GET, path, None).await?;
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Polls the admin `path` every 100 ms until `done` holds; returns that answer. Fails
    /// after `timeout` with the last answer, what the mock saw and the Worker's log tail.
    pub async fn wait_admin(
        &self,
        path: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.admin_get(path).await?;
            if done(&answer) {
                return Ok(answer);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{path} never showed {what} within {timeout:?}; last: {answer:#}\nmock: {}\nlog tail:\n{}",
                    self.tiktok.summary(),
                    self.worker.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
