//! The crate's one error type.
//!
//! Each variant has a stable machine code ([`Error::code`]) and an HTTP status
//! ([`Error::status`]); the http module turns them into RFC 9457 `application/problem+json`
//! bodies whose `type` is `/problems/{code}`. Codes never change once published.

/// Every failure the service can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that does not have the right shape (a code of the wrong length, JSON that does not
    /// parse, a query parameter that is not a number). HTTP 400, code `malformed-input`.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed input naming something that does not exist (commune, EPCI, product,
    /// adoption). HTTP 404, code `not-found`.
    #[error("{0}")]
    NotFound(String),
    /// Well-formed input whose values are out of range or inconsistent (a rating of 7, an end
    /// date before the start). HTTP 422, code `invalid-value`.
    #[error("{0}")]
    Invalid(String),
    /// A request body that is not JSON (wrong `Content-Type`). HTTP 415, code
    /// `unsupported-media-type`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A write without a bearer token, or with a token that is unknown, malformed or revoked.
    /// HTTP 401 with `WWW-Authenticate: Bearer`, code `unauthorized`.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token whose scope does not cover the object (another commune's data, token
    /// management without `admin`). HTTP 403, code `forbidden`.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with what is stored (a duplicate adoption). HTTP 409, code
    /// `conflict`.
    #[error("{0}")]
    Conflict(String),
    /// A method the resource does not allow. HTTP 405, code `method-not-allowed`.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request (head and body) took too long to arrive. HTTP 408, code `request-timeout`.
    #[error("{0}")]
    Timeout(String),
    /// A request body over the size limit. HTTP 413, code `payload-too-large`.
    #[error("{0}")]
    TooLarge(String),
    /// The persistent store failed (disk full, corrupt file). HTTP 500, code `storage`.
    #[error("storage error: {0}")]
    Storage(String),
    /// Reference data or catalogue files that cannot be read or parsed (import, start-up).
    /// HTTP 500, code `reference-data`.
    #[error("reference data error: {0}")]
    Data(String),
    /// File-system failure outside the store (import, reading a catalogue directory).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Stable machine-readable code, used as the last segment of the problem `type`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed-input",
            Error::NotFound(_) => "not-found",
            Error::Invalid(_) => "invalid-value",
            Error::UnsupportedMediaType(_) => "unsupported-media-type",
            Error::TooLarge(_) => "payload-too-large",
            Error::MethodNotAllowed(_) => "method-not-allowed",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::Timeout(_) => "request-timeout",
            Error::Storage(_) => "storage",
            Error::Data(_) => "reference-data",
            Error::Io(_) => "io",
        }
    }

    /// HTTP status code for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::Malformed(_) => 400,
            Error::NotFound(_) => 404,
            Error::Invalid(_) => 422,
            Error::UnsupportedMediaType(_) => 415,
            Error::TooLarge(_) => 413,
            Error::MethodNotAllowed(_) => 405,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::Conflict(_) => 409,
            Error::Timeout(_) => 408,
            Error::Storage(_) | Error::Data(_) | Error::Io(_) => 500,
        }
    }

    /// Short human title of the problem type (RFC 9457 `title`).
    pub fn title(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "Malformed input",
            Error::NotFound(_) => "Not found",
            Error::Invalid(_) => "Invalid value",
            Error::UnsupportedMediaType(_) => "Unsupported media type",
            Error::TooLarge(_) => "Payload too large",
            Error::MethodNotAllowed(_) => "Method not allowed",
            Error::Unauthorized(_) => "Unauthorized",
            Error::Forbidden(_) => "Forbidden",
            Error::Conflict(_) => "Conflict",
            Error::Timeout(_) => "Request timeout",
            Error::Storage(_) => "Storage failure",
            Error::Data(_) => "Reference data failure",
            Error::Io(_) => "I/O failure",
        }
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
