//! The middleware every request goes through, each one job, as `actix_web::middleware::from_fn`
//! functions, registered in [`super::serve`], outermost first: compression (actix-web's
//! `Compress`), [`observe`], [`problem_bodies`], CORS (`actix-cors`, when origins are
//! configured), the security headers, [`deadline`], [`conditional`], [`authenticate`].
//!
//! The request id, its tracing span and the per-request log line are our own [`observe`]
//! rather than `tracing-actix-web`: it already had the Prometheus observation and the route
//! pattern, the client-address rule (`X-Forwarded-For` only from a trusted proxy) must be ours
//! anyway and is shared with the limit on failed authentications, and `tracing-actix-web`'s
//! root span would bring OpenTelemetry-shaped field names (`http.method`, `otel.*`) and a
//! second request id scheme for what is a few lines here.
//!
//! The errors of [`authenticate`] are turned into answers where they happen, so that the outer
//! layers (CORS headers, security headers, request id) apply to them too. (A request cannot be
//! kept aside to answer later: cloning it before routing makes routing panic.)

use std::net::IpAddr;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use tracing::Instrument;

use super::HttpConfig;
use super::REQUEST_TIMEOUT;
use super::limit::AuthFailures;
use super::metrics::Metrics;
use super::problem::{Problem, problem_type_of_status};
use crate::core::auth::TokenHash;
use crate::error::Error;
use crate::service::Service;

/// The request id header, taken from the request or made, and echoed on the answer.
pub const REQUEST_ID: &str = "x-request-id";

/// The client's address as [`observe`] found it (see [`client_address`]), in the request's
/// extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Reads the `Authorization: Bearer` header, if any, and records the caller's
/// [`crate::core::auth::Principal`] in the request's extensions. A request without the header
/// is anonymous (public reads only); one with another scheme, two headers, or a token that is
/// malformed, unknown or revoked gets 401 at once, whatever the route. The extractors of
/// [`super::extract`] then check the token's scope against the object.
///
/// Each 401 for a token of the right shape (`vsn_` and 64 hex digits) that is unknown or
/// revoked, a guess, counts against the client's address ([`AuthFailures`]; a malformed
/// header cannot succeed and is not counted); an address over its limit
/// gets 429 `too-many-requests` with `Retry-After` on any request carrying an `Authorization`
/// header, before the token is looked at, until its window passes.
pub async fn authenticate(req: ServiceRequest, next: Next<impl MessageBody + 'static>) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        let limit = req.app_data::<web::Data<AuthFailures>>().cloned();
        let addr = req.extensions().get::<ClientAddr>().map(|c| c.0).or_else(|| req.peer_addr().map(|a| a.ip()));
        let now = Instant::now();
        if let (Some(limit), Some(addr)) = (&limit, addr)
            && let Some(secs) = limit.blocked(addr, now)
        {
            tracing::warn!(client = %addr, retry_after = secs, "too many failed authentications from this address");
            let detail = format!("too many failed authentications from this address: try again in {secs} s");
            return Ok(req.error_response(Error::TooManyRequests { detail, retry_after_secs: secs }));
        }
        let principal = match bearer_secret(&req).and_then(|secret| {
            let service =
                req.app_data::<web::Data<Service>>().ok_or_else(|| Error::Internal { context: "service missing from app data".into(), source: None })?;
            service.authenticate(secret.unwrap_or_default())
        }) {
            Ok(p) => p,
            Err(e) => {
                // A guess: a token of the right shape that is unknown or revoked.
                let guess = bearer_secret(&req).ok().flatten().is_some_and(|s| TokenHash::of_secret(s).is_ok());
                if let (Error::Unauthorized(_), true, Some(limit), Some(addr)) = (&e, guess, &limit, addr) {
                    limit.record_failure(addr, now);
                }
                return Ok(req.error_response(e));
            }
        };
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

/// The request id: the request's `X-Request-Id` when it is 1 to 200 visible ASCII
/// characters, else 16 random bytes as 32 lowercase hex digits.
pub fn request_id(given: Option<&header::HeaderValue>) -> String {
    if let Some(v) = given
        && (1..=200).contains(&v.len())
        && v.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b))
        && let Ok(text) = v.to_str()
    {
        return text.to_string();
    }
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No random source: a clock-based id still tells requests apart in the log.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        bytes = nanos.to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The client's address: the peer's, unless the peer is a trusted proxy (`--trusted-proxy`);
/// then `X-Forwarded-For` (its hops comma-separated, the nearest last) is read from the right,
/// skipping trusted proxies, and the first hop that is not one is the client. When every hop
/// is trusted, the leftmost is; a hop that is not an IP address ends the walk at the hop
/// nearer to us. `None` only without a peer address (a test request).
pub fn client_address(peer: Option<IpAddr>, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    let Some(xff) = forwarded_for.filter(|_| trusted.contains(&peer)) else { return Some(peer) };
    let mut client = peer;
    for hop in xff.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
        // An address may come with a port ("192.0.2.1:4711", "[2001:db8::1]:4711").
        let parsed = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()));
        let Some(ip) = parsed else { break };
        client = ip;
        if !trusted.contains(&ip) {
            break;
        }
    }
    Some(client)
}

/// The request's id, tracing span, log line and metrics.
///
/// - Request id ([`request_id`]): echoed as `X-Request-Id` on every answer, and the field
///   `request_id` of a `request` span around the whole request (the blocking pool's work
///   included, see `respond::blocking`), so that every log line of the request carries it.
/// - The client's address ([`client_address`]) goes into the request's extensions
///   ([`ClientAddr`]) for the limit on failed authentications.
/// - One log line per request, `request`, with `method`, `route` (the pattern,
///   `/api/v1/communes/{code}`, or `unmatched`), `path`, `status`, `ms` (a number), `client`,
///   and `bytes` (the body's size before compression, when known): at error level for a 5xx,
///   info otherwise (a 4xx is the client's mistake, not the operator's; the 429 of the
///   authentication limit has its own warn line).
/// - The Prometheus request count and latency, labelled by route pattern and by method (the
///   known ones; any other is `other`), so that the label set stays bounded.
pub async fn observe(req: ServiceRequest, next: Next<impl MessageBody + 'static>) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let start = Instant::now();
    let path: String = req.path().chars().take(200).collect();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method: String = req.method().as_str().chars().take(16).collect();
    let metric_method = match method.as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    };
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let trusted = req.app_data::<web::Data<HttpConfig>>().map(|c| c.trusted_proxies.clone()).unwrap_or_default();
    let forwarded: Vec<&str> = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
    let client = client_address(req.peer_addr().map(|a| a.ip()), Some(forwarded.join(",")).filter(|f| !f.is_empty()).as_deref(), &trusted);
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientAddr(ip));
    }
    let id = request_id(req.headers().get(REQUEST_ID));
    let span = tracing::info_span!("request", request_id = %id);
    let id_header = header::HeaderValue::from_str(&id).ok();
    let mut result = next.call(req).instrument(span.clone()).await.map(ServiceResponse::map_into_boxed_body);
    let (status, bytes) = match &mut result {
        Ok(res) => {
            if let Some(v) = &id_header {
                res.headers_mut().insert(header::HeaderName::from_static(REQUEST_ID), v.clone());
            }
            let bytes = match res.response().body().size() {
                actix_web::body::BodySize::Sized(n) => Some(n),
                _ => None,
            };
            (res.status().as_u16(), bytes)
        }
        // An error a middleware returned (the 408 of the deadline): actix-web makes its answer
        // later, with the request id added by this mapper.
        Err(e) => {
            if let Some(v) = id_header.clone() {
                e.add_response_mapper(move |mut r| {
                    r.headers_mut().insert(header::HeaderName::from_static(REQUEST_ID), v.clone());
                    r
                });
            }
            (e.as_response_error().status_code().as_u16(), None)
        }
    };
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let client = client.map(|c| c.to_string()).unwrap_or_default();
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(%method, %route, %path, status, ms, %client, bytes, "request");
        } else {
            tracing::info!(%method, %route, %path, status, ms, %client, bytes, "request");
        }
    });
    if let Some(m) = metrics {
        m.observe(metric_method, &route, status, ms / 1000.0);
    }
    result
}

/// `ETag`, `Cache-Control` and `304 Not Modified` on reads.
///
/// A GET or HEAD answered 200 with a body in memory (not a stream) gets a weak `ETag`
/// (`W/"` and the 128-bit XXH3 hash of the body in hex `"`: weak, as the body may be sent
/// compressed) and, unless the handler set its own, `Cache-Control: no-cache` (a cache
/// may keep the answer but must revalidate it every time, as any write may change it;
/// `private, no-cache` for a request with a token or a cookie). A request whose
/// `If-None-Match` lists that tag (weak comparison) or `*` gets 304 with the `ETag` and
/// `Cache-Control` and no body. Errors, writes, streams and `no-store` answers (secrets,
/// signed-in pages) pass unchanged.
pub async fn conditional(req: ServiceRequest, next: Next<impl MessageBody + 'static>) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let credentials = req.headers().contains_key(header::AUTHORIZATION) || req.headers().contains_key(header::COOKIE);
    let if_none_match: Vec<String> = req.headers().get_all(header::IF_NONE_MATCH).filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    let res = next.call(req).await?.map_into_boxed_body();
    let no_store = res.headers().get(header::CACHE_CONTROL).is_some_and(|v| v.to_str().is_ok_and(|v| v.contains("no-store")));
    if !read || res.status() != StatusCode::OK || no_store || res.headers().contains_key(header::ETAG) {
        return Ok(res);
    }
    let (req, response) = res.into_parts();
    let (mut head, body) = response.into_parts();
    let bytes = match body.try_into_bytes() {
        Ok(bytes) => bytes,
        Err(body) => return Ok(ServiceResponse::new(req, head.set_body(body))),
    };
    let tag = etag_of(&bytes);
    let headers = head.headers_mut();
    headers.insert(header::ETAG, header::HeaderValue::from_str(&tag).map_err(|e| Error::internal("the ETag header", e))?);
    if !headers.contains_key(header::CACHE_CONTROL) {
        let value = if credentials { "private, no-cache" } else { "no-cache" };
        headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static(value));
    }
    if if_none_match.iter().any(|h| none_match(h, &tag)) {
        let mut not_modified = HttpResponse::NotModified().finish();
        for name in [header::ETAG, header::CACHE_CONTROL, header::VARY] {
            if let Some(v) = head.headers().get(&name) {
                not_modified.headers_mut().insert(name, v.clone());
            }
        }
        return Ok(ServiceResponse::new(req, not_modified));
    }
    Ok(ServiceResponse::new(req, head.set_body(BoxBody::new(bytes))))
}

/// The weak entity tag of a body: `W/"` + 32 hex digits (its 128-bit XXH3 hash) + `"`. A
/// fast non-cryptographic hash: the tag only has to change when the body does (2^-128 odds of
/// a collision), and every read answer is hashed on its way out.
pub fn etag_of(body: &[u8]) -> String {
    format!("W/\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(body))
}

/// Whether an `If-None-Match` value (`*`, or entity tags separated by commas) matches `tag`
/// by weak comparison (`W/` ignored on both sides).
pub fn none_match(if_none_match: &str, tag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if_none_match.split(',').map(str::trim).any(|t| t == "*" || (!t.is_empty() && opaque(t) == opaque(tag)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let proxy = ip("10.0.0.2");
        let trusted = [proxy, ip("10.0.0.3")];
        // An untrusted peer: its X-Forwarded-For is ignored (it could say anything).
        assert_eq!(client_address(Some(ip("198.51.100.7")), Some("203.0.113.9"), &trusted), Some(ip("198.51.100.7")));
        assert_eq!(client_address(Some(ip("198.51.100.7")), None, &[]), Some(ip("198.51.100.7")));
        // A trusted peer: the last hop that is not a trusted proxy, read from the right.
        assert_eq!(client_address(Some(proxy), Some("203.0.113.9"), &trusted), Some(ip("203.0.113.9")));
        assert_eq!(client_address(Some(proxy), Some("1.2.3.4, 203.0.113.9, 10.0.0.3"), &trusted), Some(ip("203.0.113.9")));
        assert_eq!(client_address(Some(proxy), Some("203.0.113.9:4711"), &trusted), Some(ip("203.0.113.9")));
        assert_eq!(client_address(Some(proxy), Some("[2001:db8::5]:443"), &trusted), Some(ip("2001:db8::5")));
        // Every hop trusted: the leftmost; a hop that is not an address: the hop nearer to us.
        assert_eq!(client_address(Some(proxy), Some("10.0.0.3"), &trusted), Some(ip("10.0.0.3")));
        assert_eq!(client_address(Some(proxy), Some("unknown, 10.0.0.3"), &trusted), Some(ip("10.0.0.3")));
        assert_eq!(client_address(Some(proxy), Some("garbage"), &trusted), Some(proxy));
        // A trusted peer without the header is the client.
        assert_eq!(client_address(Some(proxy), None, &trusted), Some(proxy));
        assert_eq!(client_address(None, Some("203.0.113.9"), &trusted), None);
    }

    #[test]
    fn a_request_id_is_taken_when_visible_ascii_else_made() {
        let given = |s: &str| request_id(Some(&header::HeaderValue::from_str(s).unwrap()));
        assert_eq!(given("abc-123_XYZ"), "abc-123_XYZ");
        assert_eq!(given(&"a".repeat(200)), "a".repeat(200));
        for bad in ["", "a b", &"a".repeat(201)] {
            let made = given(bad);
            assert_eq!(made.len(), 32, "{bad:?}");
            assert!(made.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        assert_ne!(request_id(None), request_id(None));
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let tag = etag_of(b"{\"code\":\"29019\"}");
        assert!(tag.starts_with("W/\"") && tag.ends_with('"') && tag.len() == 36);
        assert_eq!(tag, etag_of(b"{\"code\":\"29019\"}"));
        assert_ne!(tag, etag_of(b"{\"code\":\"35238\"}"));
        let strong = tag.trim_start_matches("W/");
        assert!(none_match(&tag, &tag));
        assert!(none_match(strong, &tag));
        assert!(none_match(&format!("W/\"other\", {tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("W/\"other\"", &tag));
        assert!(!none_match("", &tag));
    }
}
