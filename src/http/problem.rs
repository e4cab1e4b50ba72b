//! Errors as RFC 9457 `application/problem+json` answers: the [`Problem`] body, the
//! `ResponseError` of [`Error`], and the error handlers of actix-web's extractors.

use actix_web::body::BoxBody;
use actix_web::error::{JsonPayloadError, PathError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, PROBLEM_TYPES, ProblemType};

/// An RFC 9457 problem: the body of every 4xx and 5xx answer, as `application/problem+json`.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `/problems/{code}`.
    #[serde(rename = "type")]
    #[schema(example = "/problems/not-found")]
    pub kind: String,
    /// Short title of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong with this request (for a 5xx, only "internal error": the cause is in
    /// the service's log).
    pub detail: String,
    /// Stable machine code, one of the problem types of [`crate::error::PROBLEM_TYPES`] (the
    /// OpenAPI document lists them as this field's `enum`).
    pub code: String,
}

impl Problem {
    /// The body for a problem type and a detail.
    pub fn new(t: ProblemType, detail: String) -> Problem {
        Problem { kind: format!("/problems/{}", t.code), title: t.title.into(), status: t.status, detail, code: t.code.into() }
    }

    /// The answer: this body as `application/problem+json` with its status.
    pub fn response(&self) -> HttpResponse {
        let body = serde_json::to_string(self).unwrap_or_default();
        HttpResponse::build(StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)).content_type("application/problem+json").body(body)
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        // A 503 says what is unavailable (no internal detail: the store's error is logged apart).
        let detail = if self.status() >= 500 && !matches!(self, Error::Unavailable(_)) {
            // The cause (with its source chain) goes to the log, never to the client.
            tracing::error!(error = %self.chain(), "request failed");
            "internal error; see the service logs".to_string()
        } else {
            self.to_string()
        };
        let mut r = Problem::new(self.problem_type(), detail).response();
        match self {
            Error::Unauthorized(_) => {
                r.headers_mut().insert(actix_web::http::header::WWW_AUTHENTICATE, actix_web::http::header::HeaderValue::from_static("Bearer realm=\"voisinage\""));
            }
            Error::Unavailable(_) => {
                r.headers_mut().insert(actix_web::http::header::RETRY_AFTER, actix_web::http::header::HeaderValue::from_static(RETRY_AFTER_SECS));
            }
            _ => {}
        }
        r
    }
}

/// `Retry-After` of a 503 (`unavailable`), seconds: the store's watchdog checks every few
/// seconds whether the disk accepts writes again (see [`crate::service::Service::watch_store`]).
pub const RETRY_AFTER_SECS: &str = "30";

/// The problem type answered for a status that actix-web produced itself (its own 404, 405,
/// 413...): for a 4xx, the one of the table with that status, else `malformed-input`; for a
/// 5xx, `internal`.
pub fn problem_type_of_status(status: u16) -> ProblemType {
    use crate::error::problem::{INTERNAL, MALFORMED};
    if status >= 500 {
        return INTERNAL;
    }
    PROBLEM_TYPES.iter().copied().find(|t| t.status == status).unwrap_or(MALFORMED)
}

/// Error handler of `web::Json`: 415 for another content type, 413 over the size limit, 400
/// for a body that does not parse.
pub fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        JsonPayloadError::ContentType => Error::UnsupportedMediaType("the body must be JSON (Content-Type: application/json)".into()),
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            Error::TooLarge(format!("the body is larger than {limit} bytes"))
        }
        JsonPayloadError::Deserialize(e) => Error::Malformed(format!("invalid JSON body: {e}")),
        other => Error::Malformed(format!("invalid JSON body: {other}")),
    };
    e.into()
}

/// Error handler of `web::Path`: 400 (a malformed code INSEE, SIREN or id).
pub fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    Error::Malformed(format!("invalid path: {err}")).into()
}
