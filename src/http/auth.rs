//! Bearer-token authentication at the edge and the extractors that authorise writes.
//!
//! [`authenticate`] runs for every request: a request without `Authorization` is anonymous
//! (public reads only); one with a token that is malformed, unknown or revoked gets 401 at once,
//! whatever the route. The extractors then check the object: [`CommuneWriter`] (the token's
//! scope covers the commune of the path, else 403) and [`AdminToken`]. They come first among a
//! handler's arguments, so that a refused request is refused before its body is read.

use std::future::{Ready, ready};

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use super::AppState;
use crate::core::auth::{Principal, TokenHash};
use crate::core::domain::{InseeCode, Siren};
use crate::error::Error;

/// Reads the `Authorization: Bearer` header, if any, and records the [`Principal`] in the
/// request's extensions. Errors: `Unauthorized` for another scheme, a malformed, unknown or
/// revoked token; `Storage` when the store cannot be read.
pub(super) fn authenticate(req: &ServiceRequest) -> Result<(), Error> {
    let mut headers = req.headers().get_all(actix_web::http::header::AUTHORIZATION);
    let Some(header) = headers.next() else { return Ok(()) };
    if headers.next().is_some() {
        return Err(Error::Unauthorized("more than one Authorization header".into()));
    }
    let text = header.to_str().map_err(|_| Error::Unauthorized("the Authorization header is not ASCII".into()))?;
    let secret = match text.split_once(' ') {
        Some((scheme, secret)) if scheme.eq_ignore_ascii_case("bearer") => secret.trim(),
        _ => return Err(Error::Unauthorized("the Authorization header must be 'Bearer <token>'".into())),
    };
    let hash = TokenHash::of_secret(secret)?;
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| Error::Storage("application state missing".into()))?;
    let token = state.store.token_by_hash(&hash)?.ok_or_else(|| Error::Unauthorized("unknown token".into()))?;
    if token.revoked.is_some() {
        return Err(Error::Unauthorized(format!("token {} was revoked", token.id)));
    }
    req.extensions_mut().insert(Principal { token_id: token.id, scope: token.scope });
    Ok(())
}

fn principal(req: &HttpRequest) -> Option<Principal> {
    req.extensions().get::<Principal>().copied()
}

fn required(req: &HttpRequest) -> Result<Principal, Error> {
    principal(req).ok_or_else(|| Error::Unauthorized("this request needs a bearer token (Authorization: Bearer vsn_...)".into()))
}

/// The authenticated caller, if any (reads that show more to an authorised caller, such as
/// free-text comments).
pub(super) struct Viewer(pub Option<Principal>);

impl Viewer {
    /// Whether the caller may read the commune's free-text comments (its own token, its EPCI's
    /// token, or admin).
    pub fn sees_comments_of(&self, commune: &InseeCode, epci: Option<&Siren>) -> bool {
        self.0.is_some_and(|p| p.scope.covers(commune, epci))
    }
}

impl FromRequest for Viewer {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Viewer(principal(req))))
    }
}

/// A caller allowed to write the data of the commune named by the path's `{code}`: 400 for a
/// malformed code, 401 without a valid token, 404 for an unknown commune, 403 when the token's
/// scope does not cover it.
pub(super) struct CommuneWriter {
    /// Who writes.
    pub principal: Principal,
    /// The commune written to (as given in the path).
    pub code: InseeCode,
}

impl FromRequest for CommuneWriter {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(commune_writer(req).map_err(|e| {
            if let Error::Forbidden(_) = &e {
                tracing::warn!(target: "voisinage::audit", token = principal(req).map(|p| p.token_id), path = req.path(), "write refused: scope does not cover the commune");
            }
            e.into()
        }))
    }
}

fn commune_writer(req: &HttpRequest) -> Result<CommuneWriter, Error> {
    let code = InseeCode::parse(req.match_info().get("code").unwrap_or_default())?;
    let p = required(req)?;
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| Error::Storage("application state missing".into()))?;
    let idx = state.territory.find(&code)?;
    p.may_write(&code, state.territory.commune(idx).epci.as_ref())?;
    Ok(CommuneWriter { principal: p, code })
}

/// A caller holding an `admin` token: 401 without a valid token, 403 for another scope.
pub(super) struct AdminToken(pub Principal);

impl FromRequest for AdminToken {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(required(req).and_then(|p| p.must_be_admin().map(|()| AdminToken(p))).map_err(Into::into))
    }
}
