//! [`WranglerDev`]: runs the real Worker under `wrangler dev` (workerd, with Durable Objects,
//! SQLite storage and alarms) for a test, and makes sure nothing is left running afterwards.
//!
//! - The Worker is built once per test process ([`ensure_worker_built`]) before the first
//!   `wrangler dev` starts: a cold build takes minutes (cargo for wasm32, then wasm-opt), far
//!   longer than the time-out for the Worker to answer `/healthz`, and several tests starting
//!   at once must not run it side by side.
//! - `wrangler dev` runs the `[build]` command of `wrangler.toml` on every start anyway (twice:
//!   once for the entry point, once when its file watcher is ready), and has no flag to skip it
//!   (`--no-bundle` only skips esbuild bundling). `scripts/build-worker.sh` returns in about
//!   15 ms when `edge-worker/build` is newer than its inputs, so this costs nothing once built.
//! - Each instance runs in its own process group (wrangler's node launcher, wrangler itself,
//!   esbuild, two workerd processes), so it can be stopped as a whole: [`WranglerDev::kill`]
//!   SIGKILLs the group to simulate a crash; `Drop` (also when a test panics) sends SIGTERM so
//!   wrangler removes its `.wrangler/tmp` scratch directories, then SIGKILLs what is left, so
//!   no workerd stays behind.
//! - It gets its own `--persist-to` directory (Durable Object storage) unless one is given;
//!   [`WranglerDev::restart`] reuses it, to test what survives a crash.
//! - `--env-file` points at an empty file, so a developer's `.dev.vars` or `.env` at the repo
//!   root (wrangler loads them by default) never leaks into a test: the configuration is
//!   `wrangler.toml`'s `[vars]` plus the `--var`s of [`WranglerDevOptions::vars`].
//! - The default log level is `log`, not `info`: wrangler prints the Worker's `console.log`
//!   lines (workers-rs `console_log!`) at level `log`, so with `info` they would be missing
//!   from [`WranglerDev::log`].

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use tempfile::TempDir;

/// The `ttedge` command's binary, built (incrementally) by the first call of a test
/// process.
pub fn ttedge_binary() -> anyhow::Result<PathBuf> {
    let root = repo_root();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "ttedge-cli", "--bin", "ttedge"])
        .current_dir(&root)
        .status()
        .context("running cargo build -p ttedge-cli")?;
    if !status.success() {
        bail!("cargo build -p ttedge-cli failed: {status}");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("debug").join("ttedge"))
}

/// The repository root (the directory holding `wrangler.toml`), found from this crate's
/// manifest directory at compile time.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// A plain-HTTP client for loopback tests: no proxy (an `HTTP_PROXY` in the environment must
/// not capture requests to 127.0.0.1), 10 s time-out per request.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("building a reqwest client without TLS cannot fail")
}

/// [`http_client`] that also speaks HTTPS and trusts any certificate: for `wrangler dev
/// --local-protocol https` ([`WranglerDevOptions::https`]) and other loopback servers with
/// self-signed certificates. Never for anything but loopback.
pub fn https_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .danger_accept_invalid_certs(true)
        .build()
        .expect("building a reqwest client with rustls cannot fail")
}

/// A free TCP port on 127.0.0.1 (bound then released, so another process could take it in
/// between; good enough on a test machine).
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

static BUILD: OnceLock<Result<(), String>> = OnceLock::new();

/// Builds the Worker with `scripts/build-worker.sh` the first time it is called in this
/// process; later calls return the first result. The script skips the build when
/// `edge-worker/build` is up to date, and holds a lock while it builds, so concurrent test
/// processes (and the `wrangler dev` instances they start) never build side by side.
/// The error carries the script's whole output.
pub async fn ensure_worker_built() -> anyhow::Result<()> {
    let result = tokio::task::spawn_blocking(|| BUILD.get_or_init(build_worker).clone())
        .await
        .context("the Worker build task panicked")?;
    result.map_err(|e| anyhow!(e))
}

fn build_worker() -> Result<(), String> {
    let root = repo_root();
    let script = root.join("scripts/build-worker.sh");
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run bash {}: {e}", script.display()))?;
    if output.status.success() {
        let what = if String::from_utf8_lossy(&output.stdout).contains("up to date") {
            "up to date"
        } else {
            "built"
        };
        eprintln!(
            "ttedge-e2e: Worker {what} ({:.1?}, scripts/build-worker.sh)",
            started.elapsed()
        );
        Ok(())
    } else {
        Err(format!(
            "`bash scripts/build-worker.sh` failed ({}) after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            started.elapsed(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// How to start `wrangler dev`. `WranglerDevOptions::default()` gives no extra vars, a fresh
/// persistence directory, a free port, a log file under `target/e2e-logs/`, log level `log`
/// and a 90 s time-out for `/healthz`.
#[derive(Clone, Debug)]
pub struct WranglerDevOptions {
    /// `--var NAME:value` pairs (override `wrangler.toml`'s `[vars]`; also readable as
    /// secrets). Values may contain `:` (wrangler splits at the first one).
    pub vars: Vec<(String, String)>,
    /// `--persist-to` directory (Durable Object storage). `None`: a new temporary directory,
    /// removed when the [`WranglerDev`] is dropped.
    pub persist_dir: Option<PathBuf>,
    /// Port to listen on; `None`: a free one.
    pub port: Option<u16>,
    /// File that receives wrangler's stdout and stderr (appended). `None`:
    /// `target/e2e-logs/wrangler-<epoch ms>-<port>.log` under the repository root.
    pub log_path: Option<PathBuf>,
    /// `--log-level`: `debug`, `info`, `log`, `warn`, `error` or `none`. The Worker's
    /// `console.log` only shows at `log` or `debug`.
    pub log_level: String,
    /// How long to wait for `GET /healthz` to answer 2xx.
    pub ready_timeout: Duration,
    /// `--local-protocol https`: TLS with wrangler's self-signed certificate, and an `https://`
    /// [`WranglerDev::base_url`]. Off by default.
    pub https: bool,
}

impl Default for WranglerDevOptions {
    fn default() -> Self {
        WranglerDevOptions {
            vars: Vec::new(),
            persist_dir: None,
            port: None,
            log_path: None,
            log_level: "log".to_owned(),
            ready_timeout: Duration::from_secs(90),
            https: false,
        }
    }
}

impl WranglerDevOptions {
    /// Same as `default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `--var name:value`.
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    /// Uses `dir` for `--persist-to` (it is not removed afterwards).
    pub fn persist_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.persist_dir = Some(dir.into());
        self
    }

    /// Listens on `port`.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Appends wrangler's output to `path`.
    pub fn log_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.log_path = Some(path.into());
        self
    }

    /// Serves HTTPS (`--local-protocol https`, wrangler's self-signed certificate) instead of
    /// HTTP; reach it with [`https_client`].
    pub fn https(mut self, https: bool) -> Self {
        self.https = https;
        self
    }
}

/// A running `wrangler dev` with the ttedge Worker, see the [module docs](self).
#[derive(Debug)]
pub struct WranglerDev {
    opts: WranglerDevOptions,
    port: u16,
    persist_dir: PathBuf,
    /// Keeps the default persistence directory alive until drop.
    _persist_tmp: Option<TempDir>,
    env_file: PathBuf,
    log_path: PathBuf,
    /// Length of the log file before this instance first started: `log()` starts there.
    log_start: u64,
    child: Option<Child>,
    startup: Duration,
}

impl WranglerDev {
    /// Builds the Worker if needed ([`ensure_worker_built`]), starts `wrangler dev` and waits
    /// until `GET /healthz` answers 2xx. The error carries the tail of wrangler's log.
    pub async fn start(opts: WranglerDevOptions) -> anyhow::Result<Self> {
        // workerd picks its own internal loopback ports; while other tests take free ports
        // at the same moment it can lose the race ("Address already in use") and exit before
        // /healthz answers. That is the launcher's luck, not the Worker's behaviour.
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::start_once(opts.clone()).await {
                Err(error)
                    if tries < 3 && format!("{error:#}").contains("Address already in use") =>
                {
                    eprintln!("wrangler dev lost a port race, starting it again");
                }
                result => return result,
            }
        }
    }

    async fn start_once(opts: WranglerDevOptions) -> anyhow::Result<Self> {
        ensure_worker_built().await?;
        let root = repo_root();
        let port = match opts.port {
            Some(port) => port,
            None => free_port()?,
        };
        let (persist_dir, persist_tmp) = match &opts.persist_dir {
            Some(dir) => {
                fs::create_dir_all(dir)
                    .with_context(|| format!("creating persist dir {}", dir.display()))?;
                (dir.clone(), None)
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("ttedge-e2e-persist-")
                    .tempdir()
                    .context("creating a temporary persist dir")?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        // Outside the persist dir, which wrangler owns.
        let env_file = std::env::temp_dir().join(format!(
            "ttedge-e2e-empty-{}-{port}.env",
            std::process::id()
        ));
        File::create(&env_file)
            .with_context(|| format!("creating empty env file {}", env_file.display()))?;
        let log_path = match &opts.log_path {
            Some(path) => path.clone(),
            None => root
                .join("target/e2e-logs")
                .join(format!("wrangler-{}-{port}.log", epoch_ms())),
        };
        if let Some(dir) = log_path.parent() {
            fs::create_dir_all(dir)
                .with_context(|| format!("creating log directory {}", dir.display()))?;
        }
        let log_start = fs::metadata(&log_path).map_or(0, |m| m.len());
        let mut dev = WranglerDev {
            opts,
            port,
            persist_dir,
            _persist_tmp: persist_tmp,
            env_file,
            log_path,
            log_start,
            child: None,
            startup: Duration::ZERO,
        };
        dev.spawn_and_wait().await?;
        Ok(dev)
    }

    /// Kills this instance (SIGKILL, like a crash, if still running) and starts `wrangler dev`
    /// again with the same options, port and persistence directory, appending to the same
    /// log: what the Durable Objects stored before the crash is there again.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        ensure_worker_built().await?;
        self.spawn_and_wait().await
    }

    /// Restarts on the same port and storage with the var `name` set to `value` (as after
    /// `wrangler secret put` and a deploy).
    pub async fn restart_with_var(&mut self, name: &str, value: &str) -> anyhow::Result<()> {
        self.opts.vars.retain(|(n, _)| n != name);
        self.opts.vars.push((name.to_string(), value.to_string()));
        self.restart().await
    }

    /// `http://127.0.0.1:<port>`, or `https://` with [`WranglerDevOptions::https`].
    pub fn base_url(&self) -> String {
        let scheme = if self.opts.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `--persist-to` directory.
    pub fn persist_dir(&self) -> &Path {
        &self.persist_dir
    }

    /// The log file (kept after the test, for post-mortems).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// How long the last start took, from spawning wrangler to the first 2xx from `/healthz`.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Everything wrangler and the Worker printed since this instance started (including
    /// earlier runs of [`restart`](Self::restart), separated by `=== ttedge-e2e:` lines),
    /// without ANSI colour codes (wrangler colours warnings and errors whatever `NO_COLOR`
    /// says; the file keeps them).
    pub fn log(&self) -> String {
        strip_ansi(&read_from(&self.log_path, self.log_start))
    }

    /// The last `n` lines of [`log`](Self::log).
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log(), n)
    }

    /// Waits until the log contains `needle` (polling every 50 ms); fails after `timeout`
    /// with the log tail.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "wrangler log did not show {needle:?} within {timeout:?}; last lines of {}:\n{}",
                    self.log_path.display(),
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the wrangler process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILLs the whole process group (wrangler, esbuild, workerd) at once, as a crash
    /// would, and waits until none of its processes is left. No-op when already stopped.
    ///
    /// Like a real crash, this leaves wrangler's scratch directories (`.wrangler/tmp/dev-*`
    /// and `bundle-*`, about 0.5 MB) behind at the repository root; `Drop` and
    /// [`shutdown`](Self::shutdown) let wrangler remove them.
    pub fn kill(&mut self) {
        self.stop_group(false);
    }

    /// Stops wrangler cleanly: SIGTERM to the process group, so wrangler removes its scratch
    /// directories, then SIGKILL for whatever is left after 5 s. No-op when already stopped.
    /// `Drop` does this.
    pub fn shutdown(&mut self) {
        self.stop_group(true);
    }

    fn stop_group(&mut self, graceful: bool) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let started = Instant::now();
        let pgid = child.id() as libc::pid_t;
        let mut how = "SIGKILL";
        if graceful {
            signal_group(pgid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let leader_done = !matches!(child.try_wait(), Ok(None));
                if leader_done && !group_has_live_process(pgid) {
                    how = "SIGTERM";
                    break;
                }
                if Instant::now() >= deadline {
                    how = "SIGTERM, then SIGKILL after 5 s";
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        signal_group(pgid, libc::SIGKILL);
        let _ = child.wait();
        wait_until_group_gone(pgid, Duration::from_secs(5));
        self.append_marker(&format!(
            "stopped the process group ({how}) in {:.1?}",
            started.elapsed()
        ));
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let root = repo_root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        if !wrangler.exists() {
            bail!(
                "{} is missing: run `npm ci` (or `npm install`) at the repository root",
                wrangler.display()
            );
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening log {}", self.log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;

        let mut cmd = Command::new(&wrangler);
        cmd.current_dir(&root)
            .arg("dev")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--ip")
            .arg("127.0.0.1")
            .arg("--persist-to")
            .arg(&self.persist_dir)
            .arg("--env-file")
            .arg(&self.env_file)
            .arg("--log-level")
            .arg(&self.opts.log_level)
            .arg("--show-interactive-dev-session=false")
            // wrangler takes 9229 for the inspector when it looks free, so two instances
            // starting at the same moment both take it and one dies ("Address already in use").
            .arg("--inspector-port")
            .arg(free_port()?.to_string());
        if self.opts.https {
            cmd.arg("--local-protocol").arg("https");
        }
        for (name, value) in &self.opts.vars {
            cmd.arg("--var").arg(format!("{name}:{value}"));
        }
        cmd.env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .env("WRANGLER_SEND_METRICS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);

        let var_names: Vec<&str> = self.opts.vars.iter().map(|(n, _)| n.as_str()).collect();
        self.append_marker(&format!(
            "starting wrangler dev on port {} (persist {}, vars {var_names:?})",
            self.port,
            self.persist_dir.display()
        ));
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", wrangler.display()))?;
        self.child = Some(child);

        let client = if self.opts.https {
            https_client()
        } else {
            http_client()
        };
        let url = format!("{}/healthz", self.base_url());
        let deadline = started + self.opts.ready_timeout;
        let mut last: String;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let tail = self.log_tail(60);
                    self.kill();
                    bail!(
                        "wrangler dev exited ({status}) before /healthz answered; last lines of {}:\n{tail}",
                        self.log_path.display()
                    );
                }
            }
            match client
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => break,
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    last = format!("HTTP {status}: {}", tail(&body, 5));
                }
                Err(e) => last = format!("{e}"),
            }
            if Instant::now() >= deadline {
                let tail = self.log_tail(60);
                self.kill();
                bail!(
                    "GET {url} did not answer 2xx within {:?} (last: {last}); last lines of {}:\n{tail}",
                    self.opts.ready_timeout,
                    self.log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.startup = started.elapsed();
        self.append_marker(&format!("ready after {:.1?}", self.startup));
        Ok(())
    }

    fn append_marker(&self, text: &str) {
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(f, "=== ttedge-e2e: {text}");
        }
    }
}

impl Drop for WranglerDev {
    fn drop(&mut self) {
        self.shutdown();
        let _ = fs::remove_file(&self.env_file);
    }
}

/// Sends `signal` to every process of group `pgid` (ignoring "no such process").
fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals the process group created with
    // `process_group(0)` at spawn; it has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Waits until no live (non-zombie) process of group `pgid` is left, reading `/proc`.
fn wait_until_group_gone(pgid: libc::pid_t, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while group_has_live_process(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn group_has_live_process(pgid: libc::pid_t) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let dir = entry.path();
        let Some((state, pgrp)) = stat_state_and_pgrp(&dir.join("stat")) else {
            return false;
        };
        if pgrp != pgid {
            return false;
        }
        if state != 'Z' && state != 'X' {
            return true;
        }
        // A killed multi-threaded process (workerd) shows its leader as a zombie while the
        // other threads are still exiting, and its sockets stay open until the last one is
        // gone: look at every thread.
        fs::read_dir(dir.join("task")).is_ok_and(|tasks| {
            tasks.flatten().any(|task| {
                stat_state_and_pgrp(&task.path().join("stat"))
                    .is_some_and(|(state, _)| state != 'Z' && state != 'X')
            })
        })
    })
}

/// The state letter and process group of a `/proc/<pid>/stat` (or `task/<tid>/stat`) file.
fn stat_state_and_pgrp(path: &Path) -> Option<(char, libc::pid_t)> {
    let stat = fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name: state ppid pgrp ...
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let mut bytes = Vec::new();
        if f.seek(SeekFrom::Start(offset)).is_ok() && f.read_to_end(&mut bytes).is_ok() {
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    text
}

/// Removes ANSI escape sequences (`ESC [ … final-byte`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, up to the final byte (0x40..=0x7e).
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ansi_colour_codes() {
        let raw = "\u{1b}[33m▲ \u{1b}[43;33m[\u{1b}[43;30mWARNING\u{1b}[43;33m]\u{1b}[0m \u{1b}[1mtext\u{1b}[0m";
        assert_eq!(strip_ansi(raw), "▲ [WARNING] text");
        assert_eq!(strip_ansi("plain [x]"), "plain [x]");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn repo_root_holds_wrangler_toml() {
        assert!(repo_root().join("wrangler.toml").is_file());
    }
}
