//! The HTTP layer (actix-web), the only user of actix-web: a thin edge over
//! [`crate::service::Service`]. A handler extracts typed input ([`extract`]), calls the
//! service on the blocking pool when it writes, and renders the answer.
//!
//! - [`api`]: the JSON API under `/api/v1` and `/health`, `/metrics`, one module per resource;
//! - [`pages`]: the French HTML pages (`/`, `/recherche`, `/epcis/{siren}`);
//! - [`middleware`]: authentication, deadline, observation (log and metrics), problem bodies;
//! - [`problem`]: every error as an RFC 9457 `application/problem+json` body
//!   `{"type": "/problems/{code}", "title", "status", "detail", "code"}`;
//! - [`openapi`]: the OpenAPI 3.1 document, merged from each API module's paths.

pub mod api;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod pages;
pub mod problem;
mod respond;

use std::net::TcpListener;
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

/// Starts the server on an already bound listener (port 0 in tests). Every request goes
/// through the middleware of [`middleware`], outermost first: observe (one log line per
/// request: method, path, status, duration in ms; Prometheus metrics), deadline, problem
/// bodies, authenticate.
pub fn serve(service: Arc<Service>, listener: TcpListener) -> std::io::Result<Server> {
    let service = web::Data::from(service);
    let metrics = web::Data::new(metrics::Metrics::new());
    service.on_store_sync(metrics.sync_observer());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(service.clone())
            .app_data(metrics.clone())
            .wrap(actix_web::middleware::from_fn(middleware::authenticate))
            // No page of this service may be framed by another site (clickjacking of the forms).
            .wrap(actix_web::middleware::DefaultHeaders::new().add(("X-Frame-Options", "DENY")).add(("Content-Security-Policy", "frame-ancestors 'none'")))
            .wrap(actix_web::middleware::from_fn(middleware::problem_bodies))
            .wrap(actix_web::middleware::from_fn(middleware::deadline))
            .wrap(actix_web::middleware::from_fn(middleware::observe))
            .configure(configure)
    })
    .listen(listener)?
    .run();
    Ok(server)
}
