//! The middleware every request goes through, each one job, as `actix_web::middleware::from_fn`
//! functions (registered in [`super::serve`], outermost first: [`observe`], [`deadline`],
//! [`problem_bodies`], [`authenticate`]).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use super::REQUEST_TIMEOUT;
use super::metrics::Metrics;
use super::problem::{Problem, problem_type_of_status};
use crate::error::Error;
use crate::service::Service;

/// Reads the `Authorization: Bearer` header, if any, and records the caller's
/// [`crate::core::auth::Principal`] in the request's extensions. A request without the header
/// is anonymous (public reads only); one with another scheme, two headers, or a token that is
/// malformed, unknown or revoked gets 401 at once, whatever the route. The extractors of
/// [`super::extract`] then check the token's scope against the object.
pub async fn authenticate(req: ServiceRequest, next: Next<impl MessageBody + 'static>) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(secret) = bearer_secret(&req)? {
        let service = req.app_data::<web::Data<Service>>().ok_or_else(|| Error::Internal { context: "service missing from app data".into(), source: None })?;
        let principal = service.authenticate(secret)?;
        req.extensions_mut().insert(principal);
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// The secret of the request's `Authorization: Bearer` header, `None` without the header.
/// Errors: `Unauthorized` for two headers, a non-ASCII value or another scheme.
fn bearer_secret(req: &ServiceRequest) -> Result<Option<&str>, Error> {
    let mut headers = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = headers.next() else { return Ok(None) };
    if headers.next().is_some() {
        return Err(Error::Unauthorized("more than one Authorization header".into()));
    }
    let text = value.to_str().map_err(|_| Error::Unauthorized("the Authorization header is not ASCII".into()))?;
    match text.split_once(' ') {
        Some((scheme, secret)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(secret.trim())),
        _ => Err(Error::Unauthorized("the Authorization header must be 'Bearer <token>'".into())),
    }
}

/// Cuts off a request that has not been answered within [`REQUEST_TIMEOUT`] (a client that
/// never finishes sending its body: slow-loris) with 408.
pub async fn deadline(req: ServiceRequest, next: Next<impl MessageBody + 'static>) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match actix_web::rt::time::timeout(REQUEST_TIMEOUT, next.call(req)).await {
        Ok(res) => Ok(res?.map_into_boxed_body()),
        Err(_) => Err(Error::Timeout(format!("the request did not arrive within {} s", REQUEST_TIMEOUT.as_secs())).into()),
    }
}

/// One log line per request (method, path, status, duration in ms) and the Prometheus request
/// count and latency, labelled by route pattern (`/api/v1/communes/{code}`, not the path) and
/// by method (the known ones; any other is `other`), so that the label set stays bounded.
pub async fn observe(req: ServiceRequest, next: Next<impl MessageBody + 'static>) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let start = std::time::Instant::now();
    let path: String = req.path().chars().take(200).collect();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method: String = req.method().as_str().chars().take(16).collect();
    let metric_method = match method.as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    };
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(%method, %path, status, ms, "request");
    if let Some(m) = metrics {
        m.observe(metric_method, &route, status, ms / 1000.0);
    }
    Ok(result?.map_into_boxed_body())
}

/// Turns an error answer that is not yet a problem (one made by actix-web itself, such as its
/// own 404 or a payload error of an extractor) into an `application/problem+json` body with
/// the same status and headers. Answers that are ours (problem+json from the API, HTML from
/// the French pages) pass unchanged.
pub async fn problem_bodies(req: ServiceRequest, next: Next<impl MessageBody + 'static>) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let ours = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| !v.as_bytes().starts_with(b"text/plain"));
    if status.as_u16() < 400 || ours {
        return Ok(res);
    }
    let detail = status.canonical_reason().unwrap_or("error").to_lowercase();
    let mut problem = Problem::new(problem_type_of_status(status.as_u16()), detail);
    problem.status = status.as_u16();
    let mut body = problem.response();
    let (req, old) = res.into_parts();
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            body.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(req, body))
}
