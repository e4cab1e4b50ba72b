//! The HTTP API (actix-web): a thin layer over the core and the store. This module is the only
//! user of actix-web.
//!
//! Every error is an RFC 9457 `application/problem+json` body:
//! `{"type": "/problems/{code}", "title", "status", "detail", "code"}` with the stable codes of
//! [`crate::error::Error::code`].

mod auth;
pub mod metrics;
pub mod openapi;
mod pages;
mod routes;

use std::net::TcpListener;
use std::sync::{Arc, RwLock};

use actix_web::body::BoxBody;
use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use chrono::NaiveDate;

use crate::core::catalog::Catalog;
use crate::core::history::History;
use crate::core::territory::Territory;
use crate::error::Error;
use crate::store::Store;

/// Longest time a request may take to arrive and be answered.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest accepted JSON body, bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Everything a request handler reads.
pub struct AppState {
    /// Communes, EPCI and graph (read-only).
    pub territory: Territory,
    /// Catalogue (read-only).
    pub catalog: Catalog,
    /// Durable store.
    pub store: Store,
    /// In-memory index of the store, updated after each acknowledged write.
    pub history: RwLock<History>,
    /// Fixed reference date (tests); `None` = the system clock's date (UTC).
    pub today: Option<NaiveDate>,
    /// Commune shapes for maps (empty when the seeds have none).
    pub shapes: crate::core::map::Shapes,
    /// Serialises adoption writes: the duplicate check and the write happen as one step.
    pub write_lock: std::sync::Mutex<()>,
    /// Request counts and latencies (Prometheus, `GET /metrics`).
    pub metrics: metrics::Metrics,
    /// Recommendation answers already serialised, by commune, category and parameters; each
    /// is served while the history's version and the date are those it was computed at.
    pub answers: std::sync::Mutex<std::collections::HashMap<String, CachedAnswer>>,
}

/// A serialised recommendation answer and what it was computed from.
pub struct CachedAnswer {
    /// [`History::version`] at the time.
    pub version: u64,
    /// Reference date at the time.
    pub today: NaiveDate,
    /// The JSON body.
    pub body: web::Bytes,
}

/// Most answers kept; past that the cache starts again (parameters come from requests).
pub const MAX_CACHED_ANSWERS: usize = 20_000;

impl AppState {
    /// Builds the state, loading every adoption and feedback record of the store into memory.
    pub fn new(territory: Territory, catalog: Catalog, store: Store, shapes: crate::core::map::Shapes, today: Option<NaiveDate>) -> Result<Self, Error> {
        let h = store.load_history()?;
        Ok(AppState {
            territory,
            catalog,
            store,
            history: RwLock::new(h),
            today,
            shapes,
            write_lock: std::sync::Mutex::new(()),
            metrics: metrics::Metrics::new(),
            answers: Default::default(),
        })
    }

    /// The reference date.
    pub fn today(&self) -> NaiveDate {
        self.today.unwrap_or_else(|| chrono::Utc::now().date_naive())
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        if self.status() >= 500 {
            tracing::error!(error = %self, "request failed");
        }
        let detail = if self.status() >= 500 { "internal error; see the service logs".to_string() } else { self.to_string() };
        let body = serde_json::json!({
            "type": format!("/problems/{}", self.code()),
            "title": self.title(),
            "status": self.status(),
            "detail": detail,
            "code": self.code(),
        });
        let mut r = HttpResponse::build(self.status_code());
        r.content_type("application/problem+json");
        if let Error::Unauthorized(_) = self {
            r.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer realm=\"voisinage\""));
        }
        r.body(body.to_string())
    }
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
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

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    Error::Malformed(format!("invalid query string: {err}")).into()
}

fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    Error::Malformed(format!("invalid path: {err}")).into()
}

/// Registers every route, the extractor error handlers and the fallback 404 on an App.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(MAX_BODY_BYTES).error_handler(json_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .configure(routes::configure)
        .configure(pages::configure)
        .default_service(web::to(|req: HttpRequest| async move {
            Err::<HttpResponse, Error>(Error::NotFound(format!("no route for {} {}", req.method(), req.path())))
        }));
}

/// Starts the server on an already bound listener (port 0 in tests). Logs one tracing line per
/// request: method, path, status, duration in ms.
pub fn serve(state: Arc<AppState>, listener: TcpListener) -> std::io::Result<Server> {
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service;
                let path: String = req.path().chars().take(200).collect();
                // Metric labels stay bounded: route patterns, not paths; known methods only.
                let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                let method = match req.method().as_str() {
                    m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m.to_string(),
                    _ => "other".to_string(),
                };
                let state = req.app_data::<web::Data<AppState>>().cloned();
                let observe = move |status: u16, start: std::time::Instant| {
                    if let Some(s) = &state {
                        s.metrics.observe(&method, &route, status, start.elapsed().as_secs_f64());
                    }
                };
                let method: String = req.method().as_str().chars().take(16).collect();
                let start = std::time::Instant::now();
                // Authentication at the edge: a bad token is refused before any handler runs.
                let fut = match auth::authenticate(&req) {
                    Ok(()) => Ok(srv.call(req)),
                    Err(e) => Err(e),
                };
                async move {
                    // A client that never finishes sending its body is cut off (slow-loris).
                    let fut = match fut {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::info!(%method, %path, status = e.status(), ms = start.elapsed().as_secs_f64() * 1000.0, "request");
                            observe(e.status(), start);
                            return Err(e.into());
                        }
                    };
                    let res = match actix_web::rt::time::timeout(REQUEST_TIMEOUT, fut).await {
                        Ok(r) => r?,
                        Err(_) => {
                            observe(408, start);
                            return Err(Error::Timeout(format!("the request did not arrive within {} s", REQUEST_TIMEOUT.as_secs())).into());
                        }
                    };
                    tracing::info!(%method, %path, status = res.status().as_u16(), ms = start.elapsed().as_secs_f64() * 1000.0, "request");
                    observe(res.status().as_u16(), start);
                    Ok(as_problem(res.map_into_boxed_body()))
                }
            })
            .configure(configure)
    })
    .listen(listener)?
    .run();
    Ok(server)
}

/// Turns an error answer that is not yet a problem (one made by actix-web itself, such as a
/// payload error of an extractor) into an `application/problem+json` body with the same status.
fn as_problem(res: actix_web::dev::ServiceResponse) -> actix_web::dev::ServiceResponse {
    let status = res.status();
    // actix-web's own error answers are text/plain or have no body type; ours are problem+json
    // (API) or text/html (French pages).
    let ours = res.headers().get(actix_web::http::header::CONTENT_TYPE).is_some_and(|v| !v.as_bytes().starts_with(b"text/plain"));
    if status.as_u16() < 400 || ours {
        return res;
    }
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let e = match status.as_u16() {
        401 => Error::Unauthorized(reason),
        403 => Error::Forbidden(reason),
        404 => Error::NotFound(reason),
        405 => Error::MethodNotAllowed(reason),
        408 => Error::Timeout(reason),
        409 => Error::Conflict(reason),
        413 => Error::TooLarge(reason),
        415 => Error::UnsupportedMediaType(reason),
        422 => Error::Invalid(reason),
        400..=499 => Error::Malformed(reason),
        _ => Error::Storage(reason),
    };
    let problem = serde_json::json!({
        "type": format!("/problems/{}", e.code()), "title": e.title(), "status": status.as_u16(), "detail": e.to_string(), "code": e.code(),
    });
    let mut body = HttpResponse::build(status).content_type("application/problem+json").body(problem.to_string());
    let (req, old) = res.into_parts();
    for (name, value) in old.headers() {
        if name != actix_web::http::header::CONTENT_TYPE && name != actix_web::http::header::CONTENT_LENGTH {
            body.headers_mut().insert(name.clone(), value.clone());
        }
    }
    actix_web::dev::ServiceResponse::new(req, body)
}

/// JSON response with a status.
fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Result<HttpResponse, Error> {
    let body = serde_json::to_vec(v).map_err(|e| Error::Storage(format!("serialising the response: {e}")))?;
    Ok(HttpResponse::build(status).insert_header(ContentType::json()).body(body))
}
