//! The HTTP layer (actix-web), the only user of actix-web: a thin edge over
//! [`crate::service::Service`]. A handler extracts typed input ([`extract`]), calls the
//! service on the blocking pool when it writes, and renders the answer.
//!
//! - [`api`]: the JSON API under `/api/v1` and `/health`, `/metrics`, one module per resource;
//! - [`pages`]: the French HTML pages (`/`, `/recherche`, `/epcis/{siren}`);
//! - [`middleware`]: authentication (with [`limit`], the limit on failed authentications),
//!   deadline, observation (request id, log and metrics), `ETag` and `304`, problem bodies;
//! - [`problem`]: every error as an RFC 9457 `application/problem+json` body
//!   `{"type": "/problems/{code}", "title", "status", "detail", "code"}`;
//! - [`openapi`]: the OpenAPI 3.1 document, merged from each API module's paths.

pub mod api;
pub mod extract;
pub mod limit;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod pages;
pub mod problem;
mod respond;

use std::net::{IpAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::error::Error;
use crate::service::Service;

/// Longest time a request may take to arrive and be answered.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest accepted JSON body, bytes: every body the OpenAPI document allows fits, even a
/// 2,000-character feedback comment whose every character is sent escaped as a surrogate pair
/// (`\ud83d\ude00`, 12 bytes: 24,000 bytes), as `json.dumps` writes characters beyond U+FFFF.
pub const MAX_BODY_BYTES: usize = 32 * 1024;

/// Registers the extractor error handlers, every resource (API and pages) and the fallback
/// 404 on an App. The app data must hold a `web::Data<Service>` and a
/// `web::Data<metrics::Metrics>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(MAX_BODY_BYTES).error_handler(problem::json_error))
        .app_data(web::PathConfig::default().error_handler(problem::path_error))
        .configure(api::configure)
        .configure(openapi::configure)
        .configure(pages::configure)
        .default_service(web::to(|req: HttpRequest| async move {
            Err::<HttpResponse, Error>(Error::NotFound(format!("no route for {} {}", req.method(), req.path())))
        }));
}

/// What the operator configures of the HTTP layer (`voisinage serve` flags; the log format is
/// `main`'s concern). `HttpConfig::default()`: no CORS, no trusted proxy.
#[derive(Clone, Debug, Default)]
pub struct HttpConfig {
    /// Origins allowed to call the API from a browser (CORS), each `scheme://host[:port]` as
    /// [`HttpConfig::origin`] accepts it; empty: no CORS header is ever sent.
    pub cors_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed for the client's address (logs and
    /// the limit on failed authentications); see [`middleware::client_address`].
    pub trusted_proxies: Vec<IpAddr>,
}

impl HttpConfig {
    /// Checks one CORS origin as a browser sends it in `Origin`: `http://` or `https://`, a
    /// host, an optional port, nothing after (no path, not even `/`). Returns it lowercased.
    /// Errors: a sentence saying what is wrong (for the command line).
    pub fn origin(text: &str) -> Result<String, String> {
        let origin = text.trim().to_ascii_lowercase();
        let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        let valid = rest.is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_graphic() && !b"/?#@\\".contains(&b)))
            && origin.parse::<actix_web::http::Uri>().is_ok();
        if valid {
            Ok(origin)
        } else {
            Err(format!(
                "a CORS origin is scheme://host[:port] without a path, like https://mairie.example.fr; got '{}'",
                text.chars().take(100).collect::<String>()
            ))
        }
    }
}

/// The CORS middleware of `config`: the configured origins may call the API from a browser
/// (GET, HEAD, POST, PATCH, DELETE with the headers the API reads), preflights are answered
/// and cached an hour, and the headers a client needs are exposed. An origin not listed gets
/// no `Access-Control-Allow-Origin` (the browser then refuses the answer to its script).
fn cors(config: &HttpConfig) -> actix_cors::Cors {
    use actix_web::http::header;
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
            header::IF_NONE_MATCH,
            header::HeaderName::from_static(middleware::REQUEST_ID),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::HeaderName::from_static(middleware::REQUEST_ID),
            header::RETRY_AFTER,
            header::HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(3600);
    for o in &config.cors_origins {
        cors = cors.allowed_origin(o);
    }
    cors
}

/// The security headers of every answer: no page may be framed by another site
/// (clickjacking of the forms), scripts, styles and images come from this origin only (the
/// pages have no script, and their stylesheet is `/static/voisinage.css`), forms post only
/// here, no MIME sniffing, and the referrer leaves this origin without its path or query.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
];

/// Starts the server on an already bound listener (port 0 in tests) with `config`. Every
/// request goes through the middleware of [`middleware`], outermost first: compression (gzip,
/// brotli, zstd as `Accept-Encoding` asks), observe (request id and span, one log line per
/// request, Prometheus metrics), problem bodies (also for CORS refusals), CORS (only with
/// origins configured), security headers ([`SECURITY_HEADERS`]), deadline, conditional reads
/// (`ETag`, 304),
/// authenticate (with the limit on failed authentications, [`limit::AuthFailures`]).
pub fn serve(service: Arc<Service>, listener: TcpListener, config: HttpConfig) -> std::io::Result<Server> {
    let service = web::Data::from(service);
    let metrics = web::Data::new(metrics::Metrics::new());
    service.on_store_sync(metrics.sync_observer());
    let failures = web::Data::new(limit::AuthFailures::default());
    let config = web::Data::new(config);
    let server = HttpServer::new(move || {
        let mut security = actix_web::middleware::DefaultHeaders::new();
        for h in SECURITY_HEADERS {
            security = security.add(h);
        }
        App::new()
            .app_data(service.clone())
            .app_data(metrics.clone())
            .app_data(failures.clone())
            .app_data(config.clone())
            .wrap(actix_web::middleware::from_fn(middleware::authenticate))
            .wrap(actix_web::middleware::from_fn(middleware::conditional))
            .wrap(actix_web::middleware::from_fn(middleware::deadline))
            .wrap(security)
            .wrap(actix_web::middleware::Condition::new(!config.cors_origins.is_empty(), cors(&config)))
            .wrap(actix_web::middleware::from_fn(middleware::problem_bodies))
            .wrap(actix_web::middleware::from_fn(middleware::observe))
            .wrap(actix_web::middleware::Compress::default())
            .configure(configure)
    })
    .listen(listener)?
    .run();
    Ok(server)
}
