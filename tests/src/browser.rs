//! [`Browser`]: a real headless Chromium, driven through WebDriver (`chromedriver`), for the
//! tests of what runs in a browser: the dashboard, and the JS SDK on `https://shop.test`
//! pages sending to a Worker on `t.shop.test`.
//!
//! - [`Browser::start`] runs `/usr/bin/chromedriver --port=<free port>` in its own process
//!   group, waits until its `/status` says ready, then opens a WebDriver session (through
//!   [`fantoccini`], over plain http on 127.0.0.1), which makes chromedriver launch Chromium
//!   with the flags below and a fresh profile. `scripts/ensure-toolchain.sh` installs both
//!   (Debian's `chromium` and `chromium-driver`, same version); when either is missing,
//!   [`Browser::start`] fails and says so: browser tests never skip silently.
//! - `Drop` (also when a test panics) SIGTERMs the whole process group — chromedriver and
//!   every Chromium process it started — SIGKILLs what is left after 3 s, waits until none is
//!   left, then removes the profile. [`Browser::close`] ends the session politely first
//!   (Chromium exits on its own), then does the same. Chromium's crash handler
//!   (`chrome_crashpad_handler`) detaches into its own session, outside the group; it exits
//!   by itself once Chromium is gone.
//! - Each browser gets a scratch directory: the profile, plus `XDG_CONFIG_HOME` and
//!   `XDG_CACHE_HOME` for Chromium, which would otherwise put a crash-report database and
//!   `scoped_dir*` leftovers under `~/.config` and `~/.cache`. Nothing outlives the browser.
//! - Every helper returns an [`anyhow::Result`] whose message says what was being done, with
//!   which selector and on which page, and for start-up failures the tail of the log.
//!   [`Browser::goto`] also fails when Chromium shows its own error page (connection refused,
//!   untrusted certificate), which WebDriver counts as a page that loaded.
//! - chromedriver runs with `--enable-chrome-logs`: its output and Chromium's (D-Bus
//!   complaints, which are harmless here, renderer crashes, and every `console.*` line of the
//!   pages) go to `target/e2e-logs/chromedriver-<epoch ms>-<port>.log`, kept after the test.
//!
//! Chromium's flags, and why each is there:
//!
//! - `--headless=new`: the full browser without a display. The old headless mode was a
//!   separate, thinner browser; the new one behaves like the Chrome people run.
//! - `--no-sandbox`: the tests run as root, and Chromium refuses to start its sandbox as root.
//! - `--disable-gpu`: there is no GPU; render in software without probing for one.
//! - `--disable-dev-shm-usage`: shared memory in `/tmp` rather than `/dev/shm`, which is small
//!   in containers (64 MB by default) and makes renderers crash on big pages.
//! - `--disable-quic`: everything the tests load is plain HTTP/1.1 or TLS over TCP on loopback;
//!   no HTTP/3 attempts on the side.
//! - `--no-first-run`: no first-run work (welcome page, default-browser check, imports).
//! - `--disable-background-networking`, `--disable-component-update`, `--disable-sync`: this
//!   machine's network is closed. Without them Chromium keeps trying to reach Google (component
//!   updates, Safe Browsing lists, field trials, sync, ...) and floods the log with refused
//!   connections while it works.
//! - `--window-size=1280,1600`: a fixed window, so layouts and screenshots are the same on
//!   every run. It is the window's size: the viewport (and screenshots) is 1280×1457, as
//!   headless Chromium still keeps room for its toolbars.
//! - `--user-data-dir=<fresh temporary directory>`: a clean profile for every browser (no
//!   cookies, cache or storage left by another test or a developer), removed on drop.
//! - `--host-resolver-rules=...` ([`BrowserOptions::host_resolver_rules`]): makes made-up
//!   names such as `shop.test` and `t.shop.test` resolve to loopback servers, e.g.
//!   `MAP t.shop.test 127.0.0.1:8787, MAP shop.test 127.0.0.1:9000`. The page still sees (and
//!   sends, as `Host`) the name, so origins, cookies' domains and CORS behave as in production.
//!   A mapping with a port replaces the URL's port too, so `https://shop.test/` reaches
//!   `127.0.0.1:9000`.
//! - `--ignore-certificate-errors` ([`BrowserOptions::accept_insecure_certs`], together with
//!   WebDriver's `acceptInsecureCerts` capability): pages and requests to a local server with a
//!   self-signed certificate load as if the certificate were trusted. With chromedriver 156 the
//!   capability alone already covers navigation and `fetch`; the flag makes it independent of
//!   how chromedriver implements the capability.
//!
//! `/usr/bin/chromium` is Debian's launcher script: it adds flags of its own from
//! `/etc/chromium.d/` (`--enable-gpu-rasterization`, `--enable-remote-extensions`, an empty
//! `--load-extension=`, ...; none matters headless) and prints `[: ...: unexpected operator`
//! to the log on every start (its `/dev/shm` size check breaks when `/dev/shm` is mounted
//! twice, as here), then runs `/usr/lib/chromium/chromium`.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use ttedge_e2e::browser::{Browser, BrowserOptions};
//!
//! let browser = Browser::start(
//!     BrowserOptions::new()
//!         .host_resolver_rules("MAP t.shop.test 127.0.0.1:8787, MAP shop.test 127.0.0.1:9000")
//!         .accept_insecure_certs(true),
//! )
//! .await?;
//! browser.goto("https://shop.test/product").await?;
//! browser.click("#buy").await?;
//! browser
//!     .wait_until_text("#status", |t| t.contains("sent"), Duration::from_secs(5))
//!     .await?;
//! browser.close().await?;
//! # Ok(())
//! # }
//! ```

use std::fs::{self, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::worker::{free_port, http_client, repo_root};

/// Debian's Chromium launcher (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`), the same version as [`CHROMIUM`].
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The flags every browser gets (see the [module docs](self) for why), before the profile
/// directory and [`BrowserOptions`]' own.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1600",
];

/// Debian's Firefox ESR (package `firefox-esr`), for [`BrowserOptions::firefox`].
pub const FIREFOX: &str = "/usr/bin/firefox-esr";

/// Mozilla's WebDriver for Firefox: not packaged by Debian, so `scripts/ensure-toolchain.sh`
/// builds it with `cargo install geckodriver` into `$CARGO_HOME/bin` (`~/.cargo/bin`).
pub fn geckodriver() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    cargo_home.join("bin/geckodriver")
}

/// Which browser a [`Browser`] drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Chromium through chromedriver: every option here applies.
    Chromium,
    /// Firefox ESR through geckodriver, headless, with a fresh profile. Chromium's flags
    /// (host resolver rules, extra args) do not apply, nor do [`Browser::cdp`],
    /// [`Browser::all_cookies`] and [`Browser::console_logs`].
    Firefox,
}

impl Engine {
    /// The browser's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Chromium => "Chromium",
            Engine::Firefox => "Firefox",
        }
    }
}

/// How often the `wait_*` helpers look again.
const POLL: Duration = Duration::from_millis(50);

/// How to start a [`Browser`]: `BrowserOptions::new()` gives a plain headless Chromium.
#[derive(Clone, Debug)]
pub struct BrowserOptions {
    engine: Engine,
    host_resolver_rules: Option<String>,
    accept_insecure_certs: bool,
    args: Vec<String>,
    chromium: PathBuf,
    chromedriver: PathBuf,
    log_path: Option<PathBuf>,
    start_timeout: Duration,
    page_load_timeout: Duration,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            engine: Engine::Chromium,
            host_resolver_rules: None,
            accept_insecure_certs: false,
            args: Vec::new(),
            chromium: PathBuf::from(CHROMIUM),
            chromedriver: PathBuf::from(CHROMEDRIVER),
            log_path: None,
            start_timeout: Duration::from_secs(30),
            page_load_timeout: Duration::from_secs(30),
        }
    }
}

impl BrowserOptions {
    /// Same as `default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A headless Firefox ESR ([`FIREFOX`]) through [`geckodriver`] instead of Chromium.
    pub fn firefox() -> Self {
        BrowserOptions {
            engine: Engine::Firefox,
            chromium: PathBuf::from(FIREFOX),
            chromedriver: geckodriver(),
            ..Self::default()
        }
    }

    /// The browser these options start.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// `--host-resolver-rules=<rules>`, e.g. `MAP t.shop.test 127.0.0.1:8787, MAP shop.test
    /// 127.0.0.1:9000`: those names resolve to those loopback addresses (and ports).
    pub fn host_resolver_rules(mut self, rules: impl Into<String>) -> Self {
        self.host_resolver_rules = Some(rules.into());
        self
    }

    /// Trust any TLS certificate (self-signed, wrong name, expired): WebDriver's
    /// `acceptInsecureCerts` and Chromium's `--ignore-certificate-errors`. Off by default.
    pub fn accept_insecure_certs(mut self, accept: bool) -> Self {
        self.accept_insecure_certs = accept;
        self
    }

    /// One more Chromium flag, e.g. `--lang=fr`, after the standard ones.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// More Chromium flags, after the standard ones.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Another Chromium binary than [`CHROMIUM`].
    pub fn chromium(mut self, path: impl Into<PathBuf>) -> Self {
        self.chromium = path.into();
        self
    }

    /// Another chromedriver than [`CHROMEDRIVER`].
    pub fn chromedriver(mut self, path: impl Into<PathBuf>) -> Self {
        self.chromedriver = path.into();
        self
    }

    /// Appends chromedriver's and Chromium's output to `path` instead of
    /// `target/e2e-logs/chromedriver-<epoch ms>-<port>.log`.
    pub fn log_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.log_path = Some(path.into());
        self
    }

    /// How long chromedriver and then the session may take to start (30 s by default, each).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// WebDriver's page-load time-out for [`Browser::goto`] and clicks that navigate (30 s by
    /// default; WebDriver's own is 300 s).
    pub fn page_load_timeout(mut self, timeout: Duration) -> Self {
        self.page_load_timeout = timeout;
        self
    }

    /// All Chromium flags for a profile in `user_data_dir`: [`CHROMIUM_FLAGS`], the profile,
    /// the options' flags, then [`arg`](Self::arg)s.
    pub fn chromium_args(&self, user_data_dir: &Path) -> Vec<String> {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", user_data_dir.display()));
        if let Some(rules) = &self.host_resolver_rules {
            args.push(format!("--host-resolver-rules={rules}"));
        }
        if self.accept_insecure_certs {
            args.push("--ignore-certificate-errors".to_owned());
        }
        args.extend(self.args.iter().cloned());
        args
    }

    /// The capabilities of the new session, Chromium's flags included.
    fn capabilities(&self, user_data_dir: &Path) -> Capabilities {
        let caps = match self.engine {
            Engine::Chromium => self.chromium_capabilities(user_data_dir),
            Engine::Firefox => json!({
                "browserName": "firefox",
                "acceptInsecureCerts": self.accept_insecure_certs,
                "pageLoadStrategy": "normal",
                "timeouts": {
                    "implicit": 0,
                    "pageLoad": duration_ms(self.page_load_timeout),
                    "script": 30_000,
                },
                "moz:firefoxOptions": {
                    "binary": self.chromium.display().to_string(),
                    "args": ["-headless", "--width=1280", "--height=1600"],
                    // The network here is closed: no update, telemetry or portal checks.
                    "prefs": {
                        "app.update.enabled": false,
                        "browser.shell.checkDefaultBrowser": false,
                        "datareporting.policy.dataSubmissionEnabled": false,
                        "network.captive-portal-service.enabled": false,
                        "network.connectivity-service.enabled": false,
                        "toolkit.telemetry.reportingpolicy.firstRun": false,
                    },
                },
            }),
        };
        match caps {
            Value::Object(map) => map,
            _ => unreachable!("json!({{..}}) is an object"),
        }
    }

    fn chromium_capabilities(&self, user_data_dir: &Path) -> Value {
        json!({
            "browserName": "chrome",
            "acceptInsecureCerts": self.accept_insecure_certs,
            "pageLoadStrategy": "normal",
            "timeouts": {
                "implicit": 0,
                "pageLoad": duration_ms(self.page_load_timeout),
                "script": 30_000,
            },
            "goog:chromeOptions": {
                "binary": self.chromium.display().to_string(),
                "args": self.chromium_args(user_data_dir),
            },
            // What the page's console prints, for `Browser::console_logs`.
            "goog:loggingPrefs": { "browser": "ALL" },
        })
    }
}

/// One cookie as the browser holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct BrowserCookie {
    /// Name.
    pub name: String,
    /// Value, as stored (not percent-decoded).
    pub value: String,
    /// Domain: the host for a host-only cookie (`shop.test`), with a leading dot for a cookie
    /// set with `Domain=` (`.shop.test`).
    pub domain: String,
    /// Path.
    pub path: String,
    /// `HttpOnly`: invisible to `document.cookie`.
    pub http_only: bool,
    /// `Secure`: only sent over https.
    pub secure: bool,
    /// `SameSite` as Chromium reports it: `Strict`, `Lax` or `None` (Chromium reports `Lax`
    /// for a cookie set without the attribute).
    pub same_site: Option<String>,
    /// Expiry in seconds since the Unix epoch; `None` for a session cookie.
    pub expiry: Option<f64>,
}

impl BrowserCookie {
    /// From a WebDriver cookie object (`httpOnly`, `expiry`) or a Chrome DevTools one
    /// (`httpOnly`, `expires`, -1 for a session cookie).
    fn from_json(v: &Value) -> anyhow::Result<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let b = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        let expiry = v
            .get("expiry")
            .or_else(|| v.get("expires"))
            .and_then(Value::as_f64)
            .filter(|e| *e >= 0.0 && !b("session"));
        Ok(BrowserCookie {
            name: s("name").ok_or_else(|| anyhow!("cookie without a name: {v}"))?,
            value: s("value").unwrap_or_default(),
            domain: s("domain").unwrap_or_default(),
            path: s("path").unwrap_or_else(|| "/".to_owned()),
            http_only: b("httpOnly"),
            secure: b("secure"),
            same_site: s("sameSite"),
            expiry,
        })
    }
}

/// One message of the page's console, or a browser-side error (failed load, CSP, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct ConsoleMessage {
    /// `SEVERE` (`console.error`, uncaught exceptions, failed loads), `WARNING`, `INFO`
    /// (`console.log`, `console.info`) or `DEBUG`.
    pub level: String,
    /// `console-api` for `console.*`, `javascript` for uncaught exceptions, `network`, ...
    pub source: String,
    /// The text, as Chromium formats it: `<script url> <line>:<column> "<the message>"` for
    /// `console.*` (string arguments are JSON-quoted).
    pub message: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// A headless Chromium under chromedriver, see the [module docs](self).
pub struct Browser {
    client: Option<Client>,
    driver: Option<Child>,
    port: u16,
    log_path: PathBuf,
    log_start: u64,
    startup: Duration,
    /// `--user-data-dir`, in `scratch`.
    profile_dir: PathBuf,
    /// The profile and Chromium's XDG config and cache directories; removed on drop, after
    /// Chromium is gone.
    scratch: Option<TempDir>,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("webdriver", &self.webdriver_url())
            .field("log_path", &self.log_path)
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with `opts`. Fails (never skips)
    /// when Chromium or chromedriver is missing; other errors carry the tail of the log.
    pub async fn start(opts: BrowserOptions) -> anyhow::Result<Browser> {
        let (driver, packages) = match opts.engine {
            Engine::Chromium => (
                "chromedriver",
                "Debian packages chromium and chromium-driver",
            ),
            Engine::Firefox => (
                "geckodriver",
                "Debian package firefox-esr, and `cargo install geckodriver`",
            ),
        };
        for (what, path) in [
            (opts.engine.name(), &opts.chromium),
            (driver, &opts.chromedriver),
        ] {
            if !path.is_file() {
                bail!(
                    "{what} is not installed ({} is missing): run `bash scripts/ensure-toolchain.sh` \
                     ({packages})",
                    path.display()
                );
            }
        }
        // chromedriver exits at once when the port it was given was taken in the meantime.
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::start_once(&opts).await {
                Err(error) if tries < 3 && is_port_race(&error) => {
                    eprintln!("chromedriver lost a port race, starting it again");
                }
                result => return result,
            }
        }
    }

    /// [`start`](Self::start) with the default options.
    pub async fn start_default() -> anyhow::Result<Browser> {
        Self::start(BrowserOptions::new()).await
    }

    async fn start_once(opts: &BrowserOptions) -> anyhow::Result<Browser> {
        let started = Instant::now();
        let port = free_port()?;
        let log_path = match &opts.log_path {
            Some(path) => path.clone(),
            None => repo_root().join("target/e2e-logs").join(format!(
                "{}-{}-{port}.log",
                driver_name(opts.engine),
                epoch_ms()
            )),
        };
        if let Some(dir) = log_path.parent() {
            fs::create_dir_all(dir)
                .with_context(|| format!("creating log directory {}", dir.display()))?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening log {}", log_path.display()))?;
        let log_start = log.metadata().map_or(0, |m| m.len());
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        let scratch = tempfile::Builder::new()
            .prefix("ttedge-e2e-chromium-")
            .tempdir()
            .context("creating a temporary directory for Chromium")?;
        let profile_dir = scratch.path().join("profile");

        let mut cmd = Command::new(&opts.chromedriver);
        cmd.arg(format!("--port={port}"));
        match opts.engine {
            Engine::Chromium => {
                cmd.arg("--enable-chrome-logs");
            }
            Engine::Firefox => {
                // Its profile in the scratch directory; Marionette and BiDi on free ports, so
                // two Firefoxes never meet.
                let profiles = scratch.path().join("profiles");
                fs::create_dir_all(&profiles).context("creating Firefox's profile root")?;
                cmd.arg("--profile-root").arg(&profiles).args([
                    "--marionette-port",
                    "0",
                    "--websocket-port",
                    "0",
                ]);
            }
        }
        cmd
            // Chromium inherits these: its crash-report database and dconf's cache go to the
            // scratch directory instead of ~/.config/chromium and ~/.cache.
            .env("XDG_CONFIG_HOME", scratch.path().join("config"))
            .env("XDG_CACHE_HOME", scratch.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        // Chromium inherits the group, so Drop can stop everything with one kill(2).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", opts.chromedriver.display()))?;
        let mut browser = Browser {
            client: None,
            driver: Some(child),
            port,
            log_path,
            log_start,
            startup: Duration::ZERO,
            profile_dir,
            scratch: Some(scratch),
        };

        browser.wait_for_driver(opts.start_timeout).await?;
        let driver_ready = started.elapsed();

        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(opts.capabilities(&browser.profile_dir));
        let connecting = tokio::time::timeout(
            opts.start_timeout,
            builder.connect(&browser.webdriver_url()),
        )
        .await;
        let client = match connecting {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => bail!(
                "chromedriver could not start {} ({e}); last lines of {}:\n{}",
                opts.chromium.display(),
                browser.log_path.display(),
                browser.log_tail(40)
            ),
            Err(_) => bail!(
                "chromedriver did not start {} within {:?}; last lines of {}:\n{}",
                opts.chromium.display(),
                opts.start_timeout,
                browser.log_path.display(),
                browser.log_tail(40)
            ),
        };
        browser.client = Some(client);
        browser.startup = started.elapsed();
        eprintln!(
            "ttedge-e2e: headless {} ready in {:.1?} ({} {:.1?}) on {} (log {})",
            opts.engine.name(),
            browser.startup,
            driver_name(opts.engine),
            driver_ready,
            browser.webdriver_url(),
            browser.log_path.display()
        );
        Ok(browser)
    }

    async fn wait_for_driver(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let client = http_client();
        let url = format!("{}/status", self.webdriver_url());
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            if let Some(child) = self.driver.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!(
                        "chromedriver exited ({status}) before answering on port {}; last lines of {}:\n{}",
                        self.port,
                        self.log_path.display(),
                        self.log_tail(40)
                    );
                }
            }
            match client.get(&url).send().await {
                Ok(resp) => {
                    let body: Value = resp.json().await.unwrap_or(Value::Null);
                    if body.pointer("/value/ready") == Some(&Value::Bool(true)) {
                        return Ok(());
                    }
                    last = body.to_string();
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                bail!(
                    "chromedriver did not say ready on {url} within {timeout:?} (last: {last}); \
                     last lines of {}:\n{}",
                    self.log_path.display(),
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The fantoccini client, for whatever the helpers do not cover.
    pub fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the WebDriver client lives as long as the browser")
    }

    /// `http://127.0.0.1:<port>`, where chromedriver listens.
    pub fn webdriver_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id of chromedriver, which is also the process group of every Chromium
    /// process it started; `None` once stopped.
    pub fn driver_pid(&self) -> Option<u32> {
        self.driver.as_ref().map(Child::id)
    }

    /// The profile directory (`--user-data-dir`), removed on drop.
    pub fn profile_dir(&self) -> &Path {
        &self.profile_dir
    }

    /// How long [`start`](Self::start) took, from spawning chromedriver to an open session.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// chromedriver's and Chromium's output (kept after the test).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `n` lines this browser's chromedriver and Chromium wrote to the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = read_from(&self.log_path, self.log_start);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Loads `url` and waits for its `load` event (up to the page-load time-out). Fails when
    /// Chromium shows one of its own error pages instead (connection refused, certificate
    /// not trusted, ...), which WebDriver itself reports as a successful navigation; the
    /// error carries the page's text, with the `ERR_...` code (`self.client().goto(url)` does
    /// not check).
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client()
            .goto(url)
            .await
            .with_context(|| format!("loading {url}"))?;
        let error_page = self
            .client()
            .execute(
                "return location.protocol === 'chrome-error:' \
                   || location.href.startsWith('about:neterror') \
                   ? document.title + ': ' + (document.body ? document.body.innerText : '') \
                   : null;",
                vec![],
            )
            .await
            .with_context(|| format!("checking that {url} loaded"))?;
        match error_page.as_str() {
            None => Ok(()),
            Some(text) => {
                let code = text
                    .split_whitespace()
                    .find(|w| w.contains("ERR_"))
                    .unwrap_or("no ERR_ code shown");
                bail!(
                    "loading {url}: Chromium showed its error page ({code}): {}",
                    text.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            }
        }
    }

    /// The URL of the page shown now.
    pub async fn current_url(&self) -> anyhow::Result<String> {
        let url = self
            .client()
            .current_url()
            .await
            .context("reading the current URL")?;
        Ok(url.to_string())
    }

    /// The page's `<title>`.
    pub async fn title(&self) -> anyhow::Result<String> {
        let r = self.client().title().await;
        self.doing(r, || "reading the title".to_owned()).await
    }

    /// The page's HTML as it is now (the DOM serialised, scripts' changes included).
    pub async fn source(&self) -> anyhow::Result<String> {
        let r = self.client().source().await;
        self.doing(r, || "reading the page source".to_owned()).await
    }

    /// The first element matching the CSS selector `css`; fails at once when there is none.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let r = self.client().find(Locator::Css(css)).await;
        self.doing(r, || format!("finding {css:?}")).await
    }

    /// Every element matching `css` (none is not an error).
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let r = self.client().find_all(Locator::Css(css)).await;
        self.doing(r, || format!("finding all {css:?}")).await
    }

    /// The rendered text of the first element matching `css` (WebDriver's "element text":
    /// what a user sees, so an element hidden with CSS has none).
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.find(css).await?;
        let r = element.text().await;
        self.doing(r, || format!("reading the text of {css:?}"))
            .await
    }

    /// The rendered text of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let mut texts = Vec::new();
        for (i, element) in self.find_all(css).await?.into_iter().enumerate() {
            let r = element.text().await;
            texts.push(
                self.doing(r, || format!("reading the text of {css:?} #{i}"))
                    .await?,
            );
        }
        Ok(texts)
    }

    /// Attribute `name` of the first element matching `css` (`None` when absent). Like
    /// WebDriver's "Get Element Attribute": boolean attributes read `"true"`.
    pub async fn attr(&self, css: &str, name: &str) -> anyhow::Result<Option<String>> {
        let element = self.find(css).await?;
        let r = element.attr(name).await;
        self.doing(r, || format!("reading attribute {name:?} of {css:?}"))
            .await
    }

    /// Clicks the first element matching `css`, as a user would (scrolls it into view; fails
    /// when something else covers it).
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        let r = element.click().await;
        self.doing(r, || format!("clicking {css:?}")).await
    }

    /// Empties the first input or textarea matching `css` and types `value` into it (key
    /// events included, so `input` and `change` listeners run).
    pub async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        let r = element.clear().await;
        self.doing(r, || format!("clearing {css:?}")).await?;
        let r = element.send_keys(value).await;
        self.doing(r, || format!("typing {value:?} into {css:?}"))
            .await
    }

    /// Submits the form matching `css`, or the form of the element matching `css`, as
    /// pressing Enter would: `form.requestSubmit()`, so constraint validation runs and the
    /// `submit` listeners see the event.
    pub async fn submit(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        let arg = serde_json::to_value(&element).context("serialising an element reference")?;
        let r = self
            .client()
            .execute(
                "const el = arguments[0];
                 const form = el instanceof HTMLFormElement ? el : el.form;
                 if (!form) { throw new Error('not a form, nor inside one'); }
                 form.requestSubmit();",
                vec![arg],
            )
            .await;
        self.doing(r, || format!("submitting the form of {css:?}"))
            .await
            .map(drop)
    }

    /// Waits until an element matches `css` (polling every 50 ms); returns the first.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.find_all(css).await?;
            if let Some(element) = found.into_iter().next() {
                return Ok(element);
            }
            if Instant::now() >= deadline {
                let page = self.page_for_errors().await;
                bail!("no element matched {css:?} within {timeout:?} (page {page})");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the first element matching `css` exists and its text satisfies `done`
    /// (polling every 50 ms); returns that text. The error says what the text was last.
    pub async fn wait_until_text(
        &self,
        css: &str,
        done: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no element matched");
        loop {
            let found = self.find_all(css).await?;
            if let Some(element) = found.first() {
                // The element may be replaced between finding and reading ("stale element").
                match element.text().await {
                    Ok(text) if done(&text) => return Ok(text),
                    Ok(text) => last = format!("text {text:?}"),
                    Err(e) => last = format!("error {e}"),
                }
            }
            if Instant::now() >= deadline {
                let page = self.page_for_errors().await;
                bail!(
                    "the text of {css:?} did not become as expected within {timeout:?}; last: {last} (page {page})"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs `js` as the body of a function in the page (`arguments[i]` are `args`; elements
    /// from [`find`](Self::find) may be passed with `serde_json::to_value`); returns what it
    /// returns (`return ...;`), a promise's result included.
    pub async fn execute(&self, js: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        let r = self.client().execute(js, args).await;
        self.doing(r, || format!("running script {}", abbreviate(js)))
            .await
    }

    /// Cookies visible to the page shown now, as WebDriver reports them: those whose domain
    /// and path match its URL, `HttpOnly` ones included. For all of them, see
    /// [`all_cookies`](Self::all_cookies).
    pub async fn cookies(&self) -> anyhow::Result<Vec<BrowserCookie>> {
        let r = self.client().issue_cmd(SessionCommand::get("cookie")).await;
        let value = self.doing(r, || "reading cookies".to_owned()).await?;
        parse_cookies(&value)
    }

    /// The cookie `name` visible to the page shown now, if any.
    pub async fn cookie(&self, name: &str) -> anyhow::Result<Option<BrowserCookie>> {
        Ok(self.cookies().await?.into_iter().find(|c| c.name == name))
    }

    /// Every cookie in the browser, whatever its domain (`t.shop.test`'s while `shop.test` is
    /// shown), through Chrome DevTools' `Storage.getCookies` (chromedriver's CDP passthrough).
    pub async fn all_cookies(&self) -> anyhow::Result<Vec<BrowserCookie>> {
        let value = self.cdp("Storage.getCookies", json!({})).await?;
        parse_cookies(value.get("cookies").unwrap_or(&Value::Null))
    }

    /// Runs the Chrome DevTools Protocol command `cmd` with `params` on the current page
    /// (chromedriver's `goog/cdp/execute`); returns its result.
    pub async fn cdp(&self, cmd: &str, params: Value) -> anyhow::Result<Value> {
        let r = self
            .client()
            .issue_cmd(SessionCommand::post(
                "goog/cdp/execute",
                json!({"cmd": cmd, "params": params}),
            ))
            .await;
        self.doing(r, || format!("running DevTools command {cmd}"))
            .await
    }

    /// Saves a PNG of the viewport (1280×1457 with the default window size) to `path`,
    /// creating its directory.
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        let r = self.client().screenshot().await;
        let png = self.doing(r, || "taking a screenshot".to_owned()).await?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(path, png).with_context(|| format!("writing screenshot {}", path.display()))
    }

    /// A screenshot of the whole page to `path`: the window first grows (or shrinks) to the
    /// page's height, within `min_height` and 4,000 pixels, at 1,280 pixels wide. Fails on an
    /// image too small to show anything.
    pub async fn screenshot_whole_page(
        &self,
        path: impl AsRef<Path>,
        min_height: u64,
    ) -> anyhow::Result<()> {
        let height = self
            .execute(
                // The window's own bars take part of its height: they are added.
                "return document.documentElement.scrollHeight + window.outerHeight - \
                 window.innerHeight",
                vec![],
            )
            .await?
            .as_u64()
            .context("no page height")?;
        let height = u32::try_from(height.clamp(min_height, 4_000))?;
        let r = self.client().set_window_size(1280, height).await;
        self.doing(r, || "resizing the window to the page".to_owned())
            .await?;
        self.screenshot(&path).await?;
        let path = path.as_ref();
        anyhow::ensure!(fs::metadata(path)?.len() > 10_000, "{path:?} is empty");
        Ok(())
    }

    /// What the pages' consoles printed (and browser-side errors such as failed loads) since
    /// the previous call: chromedriver hands each message out once.
    pub async fn console_logs(&self) -> anyhow::Result<Vec<ConsoleMessage>> {
        let r = self
            .client()
            .issue_cmd(SessionCommand::post("se/log", json!({"type": "browser"})))
            .await;
        let value = self
            .doing(r, || "reading the browser console log".to_owned())
            .await?;
        let entries = value
            .as_array()
            .ok_or_else(|| anyhow!("the console log is not an array: {value}"))?;
        Ok(entries
            .iter()
            .map(|e| {
                let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                ConsoleMessage {
                    level: s("level"),
                    source: s("source"),
                    message: s("message"),
                    timestamp: e.get("timestamp").and_then(Value::as_i64).unwrap_or(0),
                }
            })
            .collect())
    }

    /// Ends the session (Chromium saves its state and exits), then stops chromedriver and
    /// removes the profile. Dropping the browser does the same without the polite part.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let closing = match self.client.take() {
            Some(client) => tokio::time::timeout(Duration::from_secs(10), client.close()).await,
            None => Ok(Ok(())),
        };
        self.stop();
        match closing {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow!(e).context("closing the WebDriver session")),
            Err(_) => bail!("closing the WebDriver session took more than 10 s"),
        }
    }

    /// Stops the process group (SIGTERM, SIGKILL after 3 s) and removes the profile.
    fn stop(&mut self) {
        // Dropping the client makes fantoccini end the session in the background; what
        // matters is that the processes are gone.
        self.client = None;
        if let Some(mut child) = self.driver.take() {
            let pgid = child.id() as libc::pid_t;
            signal_group(pgid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let leader_done = !matches!(child.try_wait(), Ok(None));
                if (leader_done && !group_has_live_process(pgid)) || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            signal_group(pgid, libc::SIGKILL);
            let _ = child.wait();
            let deadline = Instant::now() + Duration::from_secs(3);
            while group_has_live_process(pgid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some(scratch) = self.scratch.take() {
            let path = scratch.path().to_path_buf();
            if let Err(e) = scratch.close() {
                eprintln!(
                    "ttedge-e2e: could not remove Chromium's scratch directory {}: {e}",
                    path.display()
                );
            }
        }
    }

    /// `result`, or its error with "while `what()` (page <current URL>)".
    async fn doing<T>(
        &self,
        result: Result<T, CmdError>,
        what: impl FnOnce() -> String,
    ) -> anyhow::Result<T> {
        match result {
            Ok(value) => Ok(value),
            Err(e) => {
                let page = self.page_for_errors().await;
                Err(anyhow::Error::new(e).context(format!("{} (page {page})", what())))
            }
        }
    }

    /// The current URL for an error message, or why it is unknown.
    async fn page_for_errors(&self) -> String {
        let Some(client) = self.client.as_ref() else {
            return "unknown: no session".to_owned();
        };
        match tokio::time::timeout(Duration::from_secs(2), client.current_url()).await {
            Ok(Ok(url)) => url.to_string(),
            Ok(Err(e)) => format!("unknown: {e}"),
            Err(_) => "unknown: the browser did not answer".to_owned(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A WebDriver command of the current session that fantoccini has no method for.
#[derive(Debug)]
struct SessionCommand {
    method: Method,
    /// After `session/<id>/`.
    path: &'static str,
    body: Option<Value>,
}

impl SessionCommand {
    fn get(path: &'static str) -> Self {
        SessionCommand {
            method: Method::GET,
            path,
            body: None,
        }
    }

    fn post(path: &'static str, body: Value) -> Self {
        SessionCommand {
            method: Method::POST,
            path,
            body: Some(body),
        }
    }
}

impl WebDriverCompatibleCommand for SessionCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

fn parse_cookies(value: &Value) -> anyhow::Result<Vec<BrowserCookie>> {
    value
        .as_array()
        .ok_or_else(|| anyhow!("cookies are not an array: {value}"))?
        .iter()
        .map(BrowserCookie::from_json)
        .collect()
}

/// The WebDriver server of `engine`.
fn driver_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Chromium => "chromedriver",
        Engine::Firefox => "geckodriver",
    }
}

fn is_port_race(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    text.contains("chromedriver exited")
        && (text.contains("port not available") || text.contains("Address already in use"))
}

/// The first line of `js`, cut at 80 characters.
fn abbreviate(js: &str) -> String {
    let line = js.trim().lines().next().unwrap_or("");
    if line.chars().count() > 80 || js.trim().lines().count() > 1 {
        format!("{:?}…", line.chars().take(80).collect::<String>())
    } else {
        format!("{line:?}")
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    text
}

/// Sends `signal` to every process of group `pgid` (ignoring "no such process").
fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals the process group created with
    // `process_group(0)` at spawn; it has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether a live (non-zombie) process of group `pgid` is left, reading `/proc`.
fn group_has_live_process(pgid: libc::pid_t) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|p| p.parse::<libc::pid_t>().ok());
        pgrp == Some(pgid) && state != "Z" && state != "X"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_include_profile_rules_and_extra_args() {
        let opts = BrowserOptions::new()
            .host_resolver_rules("MAP shop.test 127.0.0.1:9000")
            .accept_insecure_certs(true)
            .arg("--lang=fr");
        let args = opts.chromium_args(Path::new("/tmp/profile"));
        assert_eq!(&args[..CHROMIUM_FLAGS.len()], CHROMIUM_FLAGS);
        assert!(args.contains(&"--user-data-dir=/tmp/profile".to_owned()));
        assert!(args.contains(&"--host-resolver-rules=MAP shop.test 127.0.0.1:9000".to_owned()));
        assert!(args.contains(&"--ignore-certificate-errors".to_owned()));
        assert_eq!(args.last().map(String::as_str), Some("--lang=fr"));
        let caps = opts.capabilities(Path::new("/tmp/profile"));
        assert_eq!(caps["acceptInsecureCerts"], json!(true));
        assert_eq!(caps["goog:chromeOptions"]["binary"], json!(CHROMIUM));
    }

    #[test]
    fn cookies_parse_from_webdriver_and_devtools() {
        let wd = json!({"name": "a", "value": "1", "domain": ".shop.test", "path": "/",
            "httpOnly": true, "secure": false, "sameSite": "Lax", "expiry": 1_900_000_000});
        let c = BrowserCookie::from_json(&wd).unwrap();
        assert_eq!(c.domain, ".shop.test");
        assert!(c.http_only);
        assert_eq!(c.expiry, Some(1_900_000_000.0));
        let cdp = json!({"name": "b", "value": "2", "domain": "t.shop.test", "path": "/",
            "expires": -1, "httpOnly": false, "secure": true, "session": true});
        let c = BrowserCookie::from_json(&cdp).unwrap();
        assert_eq!(c.expiry, None);
        assert!(c.secure);
        assert_eq!(c.same_site, None);
    }
}
