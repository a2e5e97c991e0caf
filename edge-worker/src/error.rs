//! Every refusal as a JSON answer that says what was wrong and where.

use serde::Serialize;
use ttedge_core::event::InputError;
use worker::{Response, Result};

/// An error answer: HTTP status, a stable code, a message for a person, and the field path.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    /// Stable, machine-readable: `invalid_field`, `origin_not_allowed`, …
    pub code: &'static str,
    /// What is wrong, for a person. Never holds personal data or secrets.
    pub message: String,
    /// The field it is about, such as `batch[2].properties.value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Further problems, such as every invalid setting at once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// When to try again, in seconds; also sent as `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error without a field path.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            path: None,
            problems: Vec::new(),
            retry_after_s: None,
        }
    }

    /// An `invalid_field` error about `path`.
    pub fn invalid_field(path: impl Into<String>, message: impl Into<String>) -> Self {
        let mut error = ApiError::new(400, "invalid_field", message);
        error.path = Some(path.into());
        error
    }

    /// 413: a body over `limit` bytes.
    pub fn body_too_large(limit: usize) -> Self {
        ApiError::new(
            413,
            "body_too_large",
            format!("the body is larger than {} KiB", limit / 1024),
        )
    }

    /// `{"error": {...}}` with the status.
    pub fn into_response(self) -> Result<Response> {
        let status = self.status;
        let retry_after = self.retry_after_s;
        let response = Response::from_json(&serde_json::json!({ "error": self }))?;
        if let Some(seconds) = retry_after {
            response
                .headers()
                .set("Retry-After", &seconds.to_string())?;
        }
        Ok(response.with_status(status))
    }
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        let status = match error {
            InputError::BatchTooLong { .. } => 413,
            _ => 400,
        };
        ApiError {
            status,
            code: error.code(),
            path: error.path().map(str::to_string),
            message: error.to_string(),
            problems: Vec::new(),
            retry_after_s: None,
        }
    }
}

impl From<worker::Error> for ApiError {
    fn from(error: worker::Error) -> Self {
        // Runtime errors can quote request data: logged escaped, answered generically.
        worker::console_error!("internal error: {:?}", error.to_string());
        ApiError::new(500, "internal", "internal error")
    }
}
