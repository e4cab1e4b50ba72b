//! The crate's one error type, and the one table that maps each error to its problem type.
//!
//! Each variant has a [`ProblemType`]: a stable machine code, an HTTP status and a short title
//! ([`Error::problem_type`], the only `match` over the variants). The http module turns an
//! error into an RFC 9457 `application/problem+json` body whose `type` is `/problems/{code}`.
//! Codes never change once published. For a failure of the service itself (5xx), the body says
//! only "internal error"; the underlying error is kept as the variant's `source` and logged.

/// A boxed underlying error, kept for the log (never shown to a client).
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// Too many requests from one client address: after repeated failed authentications, a
    /// request carrying an `Authorization` header is refused before its token is checked.
    /// HTTP 429 with `Retry-After: {retry_after_secs}`, code `too-many-requests`.
    #[error("{detail}")]
    TooManyRequests {
        /// What was refused and why.
        detail: String,
        /// Seconds until the client may try again (the `Retry-After` header), at least 1.
        retry_after_secs: u64,
    },
    /// The persistent store failed (disk full, corrupt file, locked folder). HTTP 500, code
    /// `storage`.
    #[error("storage error: {context}")]
    Storage {
        /// What the store was doing (`opening /var/lib/voisinage`, `writing an adoption`).
        context: String,
        /// The underlying sled, I/O or decoding error, if any.
        #[source]
        source: Option<Source>,
    },
    /// The service cannot do this now but should soon: the store failed a write (disk full,
    /// I/O error) and refuses writes until it is healthy again (see `GET /health/ready`). HTTP
    /// 503 with `Retry-After`, code `unavailable`; the detail says what failed.
    #[error("{0}")]
    Unavailable(String),
    /// The store lost records it had acknowledged (a damaged sled log), as found when it opens
    /// by counting its records against its ledger (see [`crate::store`]). The message says what
    /// was found and what to do (restore a backup, or `voisinage accept-loss`). A start-up
    /// failure, never an answer to a request; HTTP 500, code `store-damaged`.
    #[error("{0}")]
    StoreDamaged(String),
    /// A failure of the service that is not the store's: serialising an answer, a thread pool
    /// that went away, a header that cannot be built. HTTP 500, code `internal`.
    #[error("internal error: {context}")]
    Internal {
        /// What the service was doing.
        context: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Source>,
    },
    /// Reference data or catalogue files that cannot be read or parsed (import, start-up).
    /// HTTP 500, code `reference-data`.
    #[error("reference data error: {0}")]
    Data(String),
    /// File-system failure outside the store (import, reading a catalogue directory). HTTP 500,
    /// code `io`.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// A problem type of RFC 9457: what a client can rely on for one kind of error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProblemType {
    /// Stable machine-readable code, the last segment of the problem `type` (`/problems/{code}`).
    pub code: &'static str,
    /// HTTP status, 400 to 599.
    pub status: u16,
    /// Short human title (the problem's `title`).
    pub title: &'static str,
}

macro_rules! problem_types {
    ($($name:ident = $code:literal, $status:literal, $title:literal;)*) => {
        $(
            #[doc = concat!("`", $code, "`: HTTP ", stringify!($status), ", \"", $title, "\".")]
            pub const $name: ProblemType = ProblemType { code: $code, status: $status, title: $title };
        )*
        /// Every problem type the service answers with, in the order of the table.
        pub const PROBLEM_TYPES: &[ProblemType] = &[$($name),*];
    };
}

/// The problem types, one constant each (the table of every code, status and title).
pub mod problem {
    use super::ProblemType;
    problem_types! {
        MALFORMED = "malformed-input", 400, "Malformed input";
        UNAUTHORIZED = "unauthorized", 401, "Unauthorized";
        FORBIDDEN = "forbidden", 403, "Forbidden";
        NOT_FOUND = "not-found", 404, "Not found";
        METHOD_NOT_ALLOWED = "method-not-allowed", 405, "Method not allowed";
        TIMEOUT = "request-timeout", 408, "Request timeout";
        CONFLICT = "conflict", 409, "Conflict";
        TOO_LARGE = "payload-too-large", 413, "Payload too large";
        UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type", 415, "Unsupported media type";
        INVALID = "invalid-value", 422, "Invalid value";
        TOO_MANY_REQUESTS = "too-many-requests", 429, "Too many requests";
        STORAGE = "storage", 500, "Storage failure";
        STORE_DAMAGED = "store-damaged", 500, "Store damaged";
        INTERNAL = "internal", 500, "Internal failure";
        UNAVAILABLE = "unavailable", 503, "Service unavailable";
        DATA = "reference-data", 500, "Reference data failure";
        IO = "io", 500, "I/O failure";
    }
}

pub use problem::PROBLEM_TYPES;

impl Error {
    /// The problem type of this error: its code, status and title. The one place where a
    /// variant is mapped to them.
    pub fn problem_type(&self) -> ProblemType {
        use problem::*;
        match self {
            Error::Malformed(_) => MALFORMED,
            Error::NotFound(_) => NOT_FOUND,
            Error::Invalid(_) => INVALID,
            Error::UnsupportedMediaType(_) => UNSUPPORTED_MEDIA_TYPE,
            Error::TooLarge(_) => TOO_LARGE,
            Error::MethodNotAllowed(_) => METHOD_NOT_ALLOWED,
            Error::Unauthorized(_) => UNAUTHORIZED,
            Error::Forbidden(_) => FORBIDDEN,
            Error::Conflict(_) => CONFLICT,
            Error::Timeout(_) => TIMEOUT,
            Error::TooManyRequests { .. } => TOO_MANY_REQUESTS,
            Error::Storage { .. } => STORAGE,
            Error::StoreDamaged(_) => STORE_DAMAGED,
            Error::Internal { .. } => INTERNAL,
            Error::Unavailable(_) => UNAVAILABLE,
            Error::Data(_) => DATA,
            Error::Io(_) => IO,
        }
    }

    /// Stable machine-readable code, used as the last segment of the problem `type`.
    pub fn code(&self) -> &'static str {
        self.problem_type().code
    }

    /// HTTP status code for this error.
    pub fn status(&self) -> u16 {
        self.problem_type().status
    }

    /// Short human title of the problem type (RFC 9457 `title`).
    pub fn title(&self) -> &'static str {
        self.problem_type().title
    }

    /// A store failure with its underlying error (kept for the log).
    pub fn storage(context: impl Into<String>, source: impl Into<Source>) -> Error {
        Error::Storage { context: context.into(), source: Some(source.into()) }
    }

    /// A store failure found by the store itself (an inconsistency, no underlying error).
    pub fn storage_state(context: impl Into<String>) -> Error {
        Error::Storage { context: context.into(), source: None }
    }

    /// A failure of the service outside the store, with its underlying error.
    pub fn internal(context: impl Into<String>, source: impl Into<Source>) -> Error {
        Error::Internal { context: context.into(), source: Some(source.into()) }
    }

    /// The error and its chain of sources, for the log: `storage error: writing: disk full`.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_type_is_in_the_table_once() {
        let mut codes: Vec<&str> = PROBLEM_TYPES.iter().map(|p| p.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), PROBLEM_TYPES.len());
        let e = Error::storage("writing an adoption", std::io::Error::other("disk full"));
        assert_eq!((e.code(), e.status()), ("storage", 500));
        assert_eq!(e.to_string(), "storage error: writing an adoption");
        assert_eq!(e.chain(), "storage error: writing an adoption: disk full");
        assert!(PROBLEM_TYPES.contains(&Error::Malformed(String::new()).problem_type()));
    }
}
