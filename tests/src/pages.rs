//! What the browser SDK tests put around the Worker: a shop's pages on `https://shop.test`, and
//! a switch that takes the Worker's address off the network and back.
//!
//! - [`PageServer`]: an HTTPS server on 127.0.0.1 with a self-signed certificate (made at start
//!   with `rcgen`, for the names it is given) that serves the pages a test sets with
//!   [`PageServer::set`], and records every request. Chromium reaches it as `https://shop.test/`
//!   through `--host-resolver-rules` (`MAP shop.test 127.0.0.1:<port>`) and trusts it with
//!   `acceptInsecureCerts`.
//! - [`SwitchProxy`]: a TCP relay to the Worker's port. While it is down, it closes every
//!   connection as soon as it is accepted (and cuts those that were open), so the page sees a
//!   network error, as when the endpoint is unreachable; [`SwitchProxy::set_up`] restores it.
//!   TLS passes through untouched: the browser still talks to `wrangler dev` itself.
//!
//! Both run on the caller's tokio runtime and stop when dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// One request the page server received.
#[derive(Clone, Debug)]
pub struct PageRequest {
    /// The `Host` header (`shop.test`).
    pub host: String,
    /// Path and query, e.g. `/landing?ttclid=abc`.
    pub path_and_query: String,
}

#[derive(Clone)]
struct Page {
    content_type: String,
    body: String,
}

/// An HTTPS server of test pages, see the [module docs](self).
pub struct PageServer {
    port: u16,
    pages: Arc<Mutex<HashMap<String, Page>>>,
    requests: Arc<Mutex<Vec<PageRequest>>>,
    task: JoinHandle<()>,
}

impl PageServer {
    /// Starts on a free port of 127.0.0.1 with a fresh self-signed certificate for `names`
    /// (e.g. `["shop.test"]`). Must be called inside a tokio runtime.
    pub async fn start(names: &[&str]) -> anyhow::Result<PageServer> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names.clone())
            .with_context(|| format!("making a self-signed certificate for {names:?}"))?;
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .context("loading the self-signed certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("binding the page server")?;
        let port = listener.local_addr()?.port();
        let pages: Arc<Mutex<HashMap<String, Page>>> = Arc::default();
        let requests: Arc<Mutex<Vec<PageRequest>>> = Arc::default();
        let (served, seen) = (Arc::clone(&pages), Arc::clone(&requests));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, served, seen) =
                    (acceptor.clone(), Arc::clone(&served), Arc::clone(&seen));
                tokio::spawn(async move {
                    // Chromium opens connections it never finishes (preconnects): not an error.
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |req: Request<Incoming>| {
                        let answer = answer(&req, &served, &seen);
                        async move { Ok::<_, Infallible>(answer) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(PageServer {
            port,
            pages,
            requests,
            task,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves `body` as `content_type` at `path` (any query string), replacing what was there.
    pub fn set(&self, path: &str, content_type: &str, body: impl Into<String>) {
        self.pages.lock().unwrap().insert(
            path.to_owned(),
            Page {
                content_type: content_type.to_owned(),
                body: body.into(),
            },
        );
    }

    /// Serves an HTML page at `path`.
    pub fn html(&self, path: &str, body: impl Into<String>) {
        self.set(path, "text/html; charset=utf-8", body);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<PageRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(
    req: &Request<Incoming>,
    pages: &Mutex<HashMap<String, Page>>,
    seen: &Mutex<Vec<PageRequest>>,
) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    seen.lock().unwrap().push(PageRequest {
        host,
        path_and_query,
    });
    let page = pages.lock().unwrap().get(req.uri().path()).cloned();
    let (status, content_type, body) = match page {
        Some(page) => (200, page.content_type, page.body),
        None => (404, "text/plain".to_owned(), "not found".to_owned()),
    };
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Cache-Control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// A TCP relay to `127.0.0.1:<target>` that can be taken down and brought back, see the
/// [module docs](self).
pub struct SwitchProxy {
    port: u16,
    up: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    relayed: Arc<AtomicUsize>,
    open: Arc<Mutex<Vec<AbortHandle>>>,
    task: JoinHandle<()>,
}

impl SwitchProxy {
    /// Starts on a free port of 127.0.0.1, up, relaying to `127.0.0.1:<target>`.
    pub async fn start(target: u16) -> anyhow::Result<SwitchProxy> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("binding the switch proxy")?;
        let port = listener.local_addr()?.port();
        let up = Arc::new(AtomicBool::new(true));
        let refused = Arc::new(AtomicUsize::new(0));
        let relayed = Arc::new(AtomicUsize::new(0));
        let open: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (is_up, refusals, relays, conns) = (
            Arc::clone(&up),
            Arc::clone(&refused),
            Arc::clone(&relayed),
            Arc::clone(&open),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !is_up.load(Ordering::SeqCst) {
                    refusals.fetch_add(1, Ordering::SeqCst);
                    drop(inbound);
                    continue;
                }
                relays.fetch_add(1, Ordering::SeqCst);
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut conns = conns.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(relay.abort_handle());
            }
        });
        Ok(SwitchProxy {
            port,
            up,
            refused,
            relayed,
            open,
            task,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Up: relay. Down: cut the open connections and close new ones at once.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for conn in self.open.lock().unwrap().drain(..) {
                conn.abort();
            }
        }
    }

    /// Connections closed because it was down.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Connections relayed.
    pub fn relayed(&self) -> usize {
        self.relayed.load(Ordering::SeqCst)
    }
}

impl Drop for SwitchProxy {
    fn drop(&mut self) {
        self.task.abort();
        for conn in self.open.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}
