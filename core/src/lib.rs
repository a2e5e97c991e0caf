//! Every rule of ttedge, the server-side TikTok Events API v1.3 connector.
//!
//! This crate is `no_std` with `alloc`, holds no clock and no random source, and does no I/O:
//! callers pass the time and random bytes in. That keeps the rules testable on the host and
//! identical in the Cloudflare Worker (`wasm32-unknown-unknown`) and the `ttedge` command.
//!
//! The flow of one event, module by module:
//!
//! 1. [`event`] parses the collect API v1 (one event or `{"batch": [...]}`).
//! 2. [`mapping`] turns the incoming name into a TikTok event, a skip, or a rejection.
//! 3. [`hashing`] normalises and SHA-256-hashes personal data.
//! 4. [`consent`] decides whether the event is sent, Limited Data Use, and cookie rights.
//! 5. [`quality`] scores Event Match Quality and coaches what is missing.
//! 6. [`tiktok`] builds the `data[]` element and requests, and classifies TikTok's answers.
//! 7. [`delivery`] decides what the Dispatcher sends and what becomes of it, with [`retry`]
//!    and [`ratelimit`]; [`cookie`] keeps `_ttp` and `ttclid`.
//!
//! [`pipeline`] strings steps 1–6 together for one collect request; [`offline`] turns a row
//! of an offline file (`ttedge send`) into a collect event for it.
//! [`cod`] keeps cash-on-delivery checkouts for their confirmation, and checks the order
//! webhook's signature.
//! [`connection`] builds the admin API's connection-test event and reads its answer.
//! [`seal`] keeps access tokens encrypted at rest (AES-256-GCM under `MASTER_KEY`, per host).
//! [`latency`] keeps TikTok call times as mergeable histograms for delivery health;
//! [`health`] builds a Dispatcher's delivery-health report from its hourly buckets.
//! [`destination`] validates the settings the admin API stores for one site host, and the
//! pixel baselines recovery is measured against.
//! [`session`] signs the admin dashboard's session cookie; [`throttle`] slows down repeated
//! failed admin logins from one address.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod answer;
pub mod cod;
pub mod connection;
pub mod consent;
pub mod cookie;
pub mod delivery;
pub mod destination;
pub mod event;
pub mod hashing;
pub mod health;
pub mod identity;
mod json;
mod json_error;
pub mod latency;
pub mod mapping;
pub mod offline;
pub mod pipeline;
pub mod quality;
pub mod ratelimit;
pub mod retry;
pub mod seal;
pub mod session;
mod text;
pub mod throttle;
pub mod tiktok;
