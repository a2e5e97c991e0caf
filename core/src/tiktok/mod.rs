//! TikTok Events API v1.3: the request ttedge sends and how to read the answer.

pub mod request;
pub mod response;

pub use request::{
    offline_event_set, plan_requests, request_body, request_body_spliced, track_url, Content,
    EventSource, Page, RequestKey, TrackEvent, TrackProperties, User, MAX_EVENTS_PER_REQUEST,
    TRACK_PATH,
};
pub use response::{classify, classify_transport_error, Failure, Verdict};
