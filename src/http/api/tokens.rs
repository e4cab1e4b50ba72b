//! Bearer tokens (admin): `GET|POST /api/v1/tokens`, `DELETE /api/v1/tokens/{id}`.

use actix_web::http::{StatusCode, header};
use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::core::auth::{Token, TokenScope};
use crate::http::extract::{AdminToken, Body, RecordId};
use crate::http::problem::Problem;
use crate::http::respond::{Res, blocking, json, not_allowed};
use crate::service::Service;

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/tokens")
            .route(web::get().to(list_tokens))
            .route(web::head().to(list_tokens))
            .route(web::post().to(create_token))
            .default_service(web::to(|| not_allowed("GET, HEAD, POST"))),
    )
    .service(web::resource("/api/v1/tokens/{id}").route(web::delete().to(revoke_token)).default_service(web::to(|| not_allowed("DELETE"))));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(list_tokens, create_token, revoke_token))]
pub struct Doc;

/// Body of `POST /api/v1/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenIn {
    /// `commune:{code}`, `epci:{siren}` or `admin`.
    #[schema(example = "commune:29019")]
    scope: TokenScope,
    /// Who holds it, at most 200 characters.
    #[serde(default)]
    label: Option<String>,
}

/// A token just created, with its secret (shown this once).
#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    /// The secret: `vsn_` and 64 hex digits. Not stored; cannot be shown again.
    token: String,
    #[serde(flatten)]
    record: Token,
}

/// Answer of `GET /api/v1/tokens`.
#[derive(Serialize, ToSchema)]
pub struct TokenList {
    count: usize,
    tokens: Vec<Token>,
}

/// `POST /api/v1/tokens` (admin): creates a token; the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])), request_body = TokenIn,
    responses((status = 201, body = TokenCreated), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn create_token(admin: AdminToken, s: web::Data<Service>, body: Body<TokenIn>) -> Res {
    let TokenIn { scope, label } = body.value;
    let (t, secret) = blocking(move || s.create_token(&admin.0, scope, &label.unwrap_or_default())).await?;
    let mut r = json(StatusCode::CREATED, &TokenCreated { token: secret, record: t })?;
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /api/v1/tokens` (admin): every token, without secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = TokenList), (status = 403, body = Problem)))]
pub async fn list_tokens(admin: AdminToken, s: web::Data<Service>) -> Res {
    let list = s.tokens(&admin.0)?;
    json(StatusCode::OK, &TokenList { count: list.len(), tokens: list })
}

/// `DELETE /api/v1/tokens/{id}` (admin): revokes a token at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Token id")),
    responses((status = 200, body = Token), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The token used is the one to revoke", body = Problem)))]
pub async fn revoke_token(admin: AdminToken, s: web::Data<Service>, id: web::Path<RecordId>) -> Res {
    let RecordId(id) = id.into_inner();
    let t = blocking(move || s.revoke_token(&admin.0, id)).await?;
    json(StatusCode::OK, &t)
}
