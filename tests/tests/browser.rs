//! Self-test of [`ttedge_e2e::browser::Browser`]: a real headless Chromium against a small page
//! served from loopback by the test itself. No Worker, no wrangler.
//!
//! These tests fail, never skip, when Chromium or chromedriver is missing
//! (`bash scripts/ensure-toolchain.sh` installs them).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use ttedge_e2e::browser::{Browser, BrowserOptions};
use ttedge_e2e::{free_port, repo_root};

/// The page: a form whose submit handler sets a cookie, logs to the console and, 100 ms
/// later, writes a greeting; `{{HOST}}` becomes the request's `Host` header.
const PAGE: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>ttedge browser self-test</title>
<style>body { font: 16px sans-serif; margin: 2em; } #out { color: #064; font-size: 32px; }</style>
</head>
<body>
<h1>Browser self-test on <span id="host">{{HOST}}</span></h1>
<form id="greet">
  <label>Name <input id="name" name="name" value="placeholder"></label>
  <button id="go" type="submit">Greet</button>
</form>
<p id="out">nobody yet</p>
<ul><li class="item">one</li><li class="item">two</li><li class="item">three</li></ul>
<script>
document.getElementById('greet').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = document.getElementById('name').value;
  document.cookie = 'greeted=' + encodeURIComponent(name) + '; path=/; SameSite=Lax';
  console.log('greeted ' + name);
  setTimeout(() => {
    const out = document.getElementById('out');
    out.textContent = 'Hello, ' + name + '!';
    out.className = 'done';
  }, 100);
});
</script>
</body>
</html>
"#;

/// A loopback HTTP server answering every request with [`PAGE`] (and an `HttpOnly` cookie),
/// recording each request's `Host` header.
struct PageServer {
    port: u16,
    hosts: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl PageServer {
    async fn start() -> anyhow::Result<PageServer> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("binding the page server")?;
        let port = listener.local_addr()?.port();
        let hosts = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&hosts);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let host = req
                            .headers()
                            .get(hyper::header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        seen.lock().unwrap().push(host.clone());
                        let body = if req.uri().path() == "/" {
                            PAGE.replace("{{HOST}}", &host)
                        } else {
                            String::new()
                        };
                        let resp = Response::builder()
                            .status(if body.is_empty() { 404 } else { 200 })
                            .header("Content-Type", "text/html; charset=utf-8")
                            .header("Set-Cookie", "session=s1; Path=/; HttpOnly")
                            .body(Full::new(Bytes::from(body)))
                            .expect("a valid response");
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(PageServer { port, hosts, task })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn hosts(&self) -> Vec<String> {
        self.hosts.lock().unwrap().clone()
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn drives_a_page_in_headless_chromium() -> anyhow::Result<()> {
    let server = PageServer::start().await?;
    let browser = Browser::start(
        BrowserOptions::new()
            .host_resolver_rules(format!("MAP shop.test 127.0.0.1:{}", server.port)),
    )
    .await?;
    eprintln!("browser started in {:.1?}", browser.startup_time());

    // Reading the page.
    browser.goto(&server.url()).await?;
    assert_eq!(browser.title().await?, "ttedge browser self-test");
    assert_eq!(
        browser.text("#host").await?,
        format!("127.0.0.1:{}", server.port)
    );
    assert_eq!(browser.texts(".item").await?, ["one", "two", "three"]);
    assert_eq!(
        browser.attr("#name", "name").await?.as_deref(),
        Some("name")
    );
    assert_eq!(browser.attr("#name", "data-missing").await?, None);

    // Filling and clicking: the handler writes the greeting 100 ms later.
    browser.fill("#name", "Ada").await?;
    browser.click("#go").await?;
    let greeting = browser
        .wait_until_text("#out", |t| t.starts_with("Hello"), Duration::from_secs(5))
        .await?;
    assert_eq!(greeting, "Hello, Ada!");
    browser
        .wait_for("#out.done", Duration::from_secs(5))
        .await?;

    // The cookie the script set, and the HttpOnly one the server set.
    let cookies = browser.cookies().await?;
    let greeted = cookies
        .iter()
        .find(|c| c.name == "greeted")
        .with_context(|| format!("no `greeted` cookie in {cookies:?}"))?;
    assert_eq!(greeted.value, "Ada");
    assert_eq!(greeted.domain, "127.0.0.1");
    assert_eq!(greeted.path, "/");
    assert!(!greeted.http_only && !greeted.secure);
    assert_eq!(greeted.same_site.as_deref(), Some("Lax"));
    assert_eq!(greeted.expiry, None);
    let session = browser
        .cookie("session")
        .await?
        .context("no `session` cookie")?;
    assert!(session.http_only, "{session:?}");

    // Submitting the form itself (requestSubmit, so the listener runs).
    browser.fill("#name", "Grace").await?;
    browser.submit("#greet").await?;
    browser
        .wait_until_text("#out", |t| t == "Hello, Grace!", Duration::from_secs(5))
        .await?;
    assert_eq!(
        browser.cookie("greeted").await?.map(|c| c.value).as_deref(),
        Some("Grace")
    );

    // Scripts.
    let ua = browser
        .execute("return navigator.userAgent;", vec![])
        .await?;
    let ua = ua.as_str().context("userAgent is not a string")?;
    assert!(ua.contains("HeadlessChrome"), "user agent: {ua}");
    let sum = browser
        .execute(
            "return arguments[0] + arguments[1];",
            vec![json!(40), json!(2)],
        )
        .await?;
    assert_eq!(sum, json!(42));
    let awaited = browser
        .execute(
            "return new Promise((ok) => setTimeout(() => ok('later'), 20));",
            vec![],
        )
        .await?;
    assert_eq!(awaited, json!("later"));

    // The console.
    let logs = browser.console_logs().await?;
    assert!(
        logs.iter().any(|m| m.message.contains("greeted Ada")),
        "console: {logs:#?}"
    );

    // Errors say what was being done, and where.
    let error = browser.click("#missing").await.unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("#missing") && text.contains(&server.url()),
        "{text}"
    );
    let error = browser
        .wait_for(".never", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains(".never"), "{error:#}");

    // A made-up name, resolved to the page server by --host-resolver-rules.
    browser.goto("http://shop.test/").await?;
    assert_eq!(browser.current_url().await?, "http://shop.test/");
    assert_eq!(browser.text("#host").await?, "shop.test");
    assert!(
        server.hosts().iter().any(|h| h == "shop.test"),
        "{:?}",
        server.hosts()
    );
    // cookies() sees shop.test's; all_cookies() 127.0.0.1's as well.
    let here: Vec<String> = browser
        .cookies()
        .await?
        .into_iter()
        .map(|c| c.domain)
        .collect();
    assert_eq!(here, ["shop.test"]);
    let all = browser.all_cookies().await?;
    assert!(
        all.iter()
            .any(|c| c.name == "greeted" && c.domain == "127.0.0.1"),
        "{all:#?}"
    );

    // A screenshot.
    let png = repo_root().join("target/e2e-logs/browser-selftest.png");
    let _ = std::fs::remove_file(&png);
    browser.screenshot(&png).await?;
    let bytes = std::fs::read(&png).with_context(|| format!("reading {}", png.display()))?;
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(bytes.len() > 1024, "only {} bytes", bytes.len());

    let started = Instant::now();
    browser.close().await?;
    eprintln!("browser closed in {:.1?}", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn a_panicking_test_leaves_no_process_or_profile() -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let browser = Browser::start(BrowserOptions::new())
            .await
            .expect("browser");
        browser
            .goto("data:text/html,<p id=p>hi</p>")
            .await
            .expect("goto");
        assert_eq!(browser.text("#p").await.expect("text"), "hi");
        assert!(
            browser.profile_dir().join("Default").is_dir(),
            "not the profile"
        );
        let pgid = browser.driver_pid().expect("chromedriver's pid");
        let _ = tx.send((pgid, group_size(pgid), browser.profile_dir().to_path_buf()));
        panic!("panicking on purpose, with the browser open");
    });
    let joined = task.await;
    assert!(
        joined.is_err_and(|e| e.is_panic()),
        "the task did not panic"
    );
    let (pgid, running, profile) = rx.await.context("the task did not start a browser")?;
    assert!(
        running >= 2,
        "Chromium is not in chromedriver's process group {pgid}"
    );
    assert_eq!(group_size(pgid), 0, "processes of group {pgid} survived");
    assert!(!profile.exists(), "{} survived", profile.display());
    Ok(())
}

#[tokio::test]
async fn accept_insecure_certs_loads_a_self_signed_https_page() -> anyhow::Result<()> {
    let tls = SelfSignedServer::start("shop.test")?;
    let rules = format!("MAP shop.test 127.0.0.1:{}", tls.port);
    let browser = Browser::start(
        BrowserOptions::new()
            .host_resolver_rules(rules)
            .accept_insecure_certs(true),
    )
    .await?;
    browser.goto("https://shop.test/").await?;
    // `openssl s_server -www` answers with a status page naming its ciphers.
    let page = browser.source().await?;
    assert!(page.contains("Ciphers"), "{page}");
    let fetched = browser
        .execute("return fetch('/again').then((r) => r.status);", vec![])
        .await?;
    assert_eq!(fetched, json!(200));
    browser.close().await?;

    // Without it, Chromium shows its certificate warning instead, and `goto` says so.
    let strict = Browser::start(
        BrowserOptions::new().host_resolver_rules(format!("MAP shop.test 127.0.0.1:{}", tls.port)),
    )
    .await?;
    let error = strict.goto("https://shop.test/").await.unwrap_err();
    assert!(
        format!("{error:#}").contains("ERR_CERT_AUTHORITY_INVALID"),
        "{error:#}"
    );
    strict.close().await
}

#[tokio::test]
async fn goto_fails_when_the_page_does_not_load() -> anyhow::Result<()> {
    let browser = Browser::start(BrowserOptions::new()).await?;
    // Chromium shows its error page, which WebDriver counts as loaded; `goto` does not.
    let closed = free_port()?;
    let error = browser
        .goto(&format!("http://127.0.0.1:{closed}/"))
        .await
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(text.contains("ERR_CONNECTION_REFUSED"), "{text}");
    // chromedriver reports this one itself.
    let error = browser.goto("http://nowhere.test/").await.unwrap_err();
    let text = format!("{error:#}");
    assert!(text.contains("ERR_NAME_NOT_RESOLVED"), "{text}");
    eprintln!("{text}");
    browser.close().await
}

#[tokio::test]
async fn a_missing_chromium_fails_loudly() {
    let error = Browser::start(BrowserOptions::new().chromium("/nonexistent/chromium"))
        .await
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("/nonexistent/chromium") && text.contains("ensure-toolchain.sh"),
        "{text}"
    );
}

/// Live (non-zombie) processes in group `pgid`.
fn group_size(pgid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        })
        .count()
}

/// `openssl s_server -www` on a free loopback port with a fresh self-signed certificate.
struct SelfSignedServer {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl SelfSignedServer {
    fn start(name: &str) -> anyhow::Result<SelfSignedServer> {
        let dir = tempfile::tempdir()?;
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .arg("-subj")
            .arg(format!("/CN={name}"))
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{name}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .output()
            .context("running `openssl req` (the openssl command is needed for this test)")?;
        anyhow::ensure!(
            made.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let port = free_port()?;
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("running `openssl s_server`")?;
        let server = SelfSignedServer {
            port,
            child,
            _dir: dir,
        };
        wait_for_port(port, Duration::from_secs(10))?;
        Ok(server)
    }
}

impl Drop for SelfSignedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
