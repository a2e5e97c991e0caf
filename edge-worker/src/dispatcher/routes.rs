//! The Dispatcher's routes, as one enum both ends use: the client writes a route as a
//! request, the object reads the request back as the route.

use worker::{Method, Request, Result};

use super::client::ParkedPage;
use crate::runtime::query;

/// One call to the Dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /enqueue`: store a collect request's events.
    Enqueue,
    /// `GET /state`: the queue now; no side effects.
    State,
    /// `POST /wake`: re-arm a lost alarm while events wait.
    Wake,
    /// `GET /health`: delivery health.
    Health,
    /// `GET /parked?limit=&after=`: one page of parked events.
    Parked(ParkedPage),
    /// `POST /parked/replay`: parked events back to the queue.
    Replay,
    /// `POST /test`: the connection test, sent at once.
    Test,
    /// `POST /conversions`: conversions delivered per range of days.
    Conversions,
    /// `POST /orders`: a cash-on-delivery order paid, delivered or cancelled.
    Orders,
    /// `POST /identities`: list or erase stored identities.
    Identities,
}

impl Route {
    /// The method and path of the route.
    pub fn request(self) -> (Method, String) {
        let (method, path) = match self {
            Route::Enqueue => (Method::Post, "/enqueue"),
            Route::State => (Method::Get, "/state"),
            Route::Wake => (Method::Post, "/wake"),
            Route::Health => (Method::Get, "/health"),
            Route::Parked(page) => {
                let path = format!("/parked?limit={}&after={}", page.limit, page.after);
                return (Method::Get, path);
            }
            Route::Replay => (Method::Post, "/parked/replay"),
            Route::Test => (Method::Post, "/test"),
            Route::Conversions => (Method::Post, "/conversions"),
            Route::Orders => (Method::Post, "/orders"),
            Route::Identities => (Method::Post, "/identities"),
        };
        (method, path.to_string())
    }

    /// The route a request to the object is; `None` for no such route.
    pub fn of(req: &Request) -> Result<Option<Route>> {
        let route = match (req.method(), req.path().as_str()) {
            (Method::Post, "/enqueue") => Route::Enqueue,
            (Method::Get, "/state") => Route::State,
            (Method::Post, "/wake") => Route::Wake,
            (Method::Get, "/health") => Route::Health,
            (Method::Get, "/parked") => {
                let url = req.url()?;
                let (limit, after) = (query(&url, "limit"), query(&url, "after"));
                match ParkedPage::parse(limit, after) {
                    Ok(page) => Route::Parked(page),
                    Err(_) => return Ok(None),
                }
            }
            (Method::Post, "/parked/replay") => Route::Replay,
            (Method::Post, "/test") => Route::Test,
            (Method::Post, "/conversions") => Route::Conversions,
            (Method::Post, "/orders") => Route::Orders,
            (Method::Post, "/identities") => Route::Identities,
            _ => return Ok(None),
        };
        Ok(Some(route))
    }
}
