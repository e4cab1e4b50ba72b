//! Small helpers shared by the API and the pages: JSON answers, read-only resources with 405,
//! and running a use case on the blocking thread pool.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::error::Error;

/// What a handler returns: an answer, or an error rendered as a problem.
pub type Res = Result<HttpResponse, Error>;

/// JSON answer with a status. Errors: `Internal` when the value cannot be serialised.
pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Res {
    let body = serde_json::to_vec(v).map_err(|e| Error::internal("serialising the response", e))?;
    Ok(HttpResponse::build(status).insert_header(ContentType::json()).body(body))
}

/// Adds a header whose value is built from data (a `Location`). Errors: `Internal` for a
/// value that is not a valid header value.
pub fn with_header(mut r: HttpResponse, name: header::HeaderName, value: &str) -> Res {
    let v = HeaderValue::from_str(value).map_err(|e| Error::internal(format!("header {name}"), e))?;
    r.headers_mut().insert(name, v);
    Ok(r)
}

/// A file to download: 200 with `content_type` and `Content-Disposition: attachment;
/// filename="{filename}"` (the filename is built from codes and ASCII words only).
pub fn attachment(content_type: &str, filename: &str, body: Vec<u8>) -> Res {
    let r = HttpResponse::build(StatusCode::OK).content_type(content_type).body(body);
    with_header(r, header::CONTENT_DISPOSITION, &format!("attachment; filename=\"{filename}\""))
}

/// Marks an answer that replays the first result of an idempotent request
/// (`Idempotent-Replayed: true`).
pub fn mark_replay(r: &mut HttpResponse, replayed: bool) {
    if replayed {
        r.headers_mut().insert(header::HeaderName::from_static("idempotent-replayed"), HeaderValue::from_static("true"));
    }
}

/// A read-only resource: GET and HEAD go to `handler`, anything else gets 405 with `Allow`.
pub fn get_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path).route(web::get().to(handler.clone())).route(web::head().to(handler)).default_service(web::to(|| not_allowed("GET, HEAD")))
}

/// 405 with `Allow: {allow}`, as a problem.
pub async fn not_allowed(allow: &'static str) -> Res {
    let mut r = actix_web::ResponseError::error_response(&Error::MethodNotAllowed(format!("this resource allows {allow}")));
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    Ok(r)
}

/// Runs a use case on the blocking thread pool (writes sync the disk). The use case completes
/// even if the client goes away meanwhile, so the running service always shows what is
/// stored. It runs in the request's tracing span, so that its log lines carry the request id.
/// Errors: the use case's, or `Internal` if the pool is gone.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    let span = tracing::Span::current();
    web::block(move || span.in_scope(f)).await.map_err(|e| Error::internal("the blocking thread pool", e))?
}
