//! Bearer tokens (admin): `GET|POST /api/v1/tokens`, `GET|DELETE /api/v1/tokens/{id}`.

use actix_web::http::{StatusCode, header};
use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::core::auth::{Token, TokenScope};
use crate::http::extract::{AdminToken, Body, NoParams, Query, RecordId};
use crate::http::problem::Problem;
use crate::http::respond::{Res, blocking, json, not_allowed, with_header};
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
    .service(
        web::resource("/api/v1/tokens/{id}")
            .route(web::get().to(one_token))
            .route(web::head().to(one_token))
            .route(web::delete().to(revoke_token))
            .default_service(web::to(|| not_allowed("GET, HEAD, DELETE"))),
    );
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(list_tokens, create_token, one_token, revoke_token))]
pub struct Doc;

/// Body of `POST /api/v1/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"scope": "commune:29019", "label": "Mairie de Brest, service élections"}))]
pub struct TokenIn {
    /// `commune:{code}`, `epci:{siren}` or `admin`.
    #[schema(example = "commune:29019")]
    scope: TokenScope,
    /// Who holds it, at most 200 characters, without control characters.
    #[serde(default)]
    #[schema(max_length = 200, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
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

/// Creates a token (admin).
///
/// `POST /api/v1/tokens`: a token of the scope asked; its secret is in this answer only
/// (`Cache-Control: no-store`), the store keeps its hash; the `Location` reads the token
/// (without its secret).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", operation_id = "create_token", security(("bearer" = [])), request_body = TokenIn,
    responses((status = 201, description = "Created; the secret is shown this once", body = TokenCreated, headers(("Cache-Control" = String), ("Location" = String)),
            example = json!({"token": "vsn_8c1f5e0a93d24b7e6f1a0c9d8b7e6f5a4c3b2a1908f7e6d5c4b3a2918f7e6d5c", "id": 14, "scope": "commune:29019",
                "label": "Mairie de Brest, service élections", "created": "2026-03-02T09:14:27.512Z", "revoked": null})),
        (status = 400, description = "`malformed-input`: a scope that is not `commune:{code}`, `epci:{siren}` or `admin`, an unknown field", body = Problem),
        (status = 403, description = "`forbidden`: not an `admin` token", body = Problem),
        (status = 404, description = "`not-found`: the scope names a commune or EPCI not in the territory", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "`invalid-value`: a label over 200 characters or with control characters", body = Problem)))]
pub async fn create_token(admin: AdminToken, s: web::Data<Service>, body: Body<TokenIn>, _no_query: Query<NoParams>) -> Res {
    let TokenIn { scope, label } = body.value;
    let (t, secret) = blocking(move || s.create_token(&admin.0, scope, &label.unwrap_or_default())).await?;
    let location = format!("/api/v1/tokens/{}", t.id);
    let mut r = with_header(json(StatusCode::CREATED, &TokenCreated { token: secret, record: t })?, header::LOCATION, &location)?;
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Every token (admin).
///
/// `GET /api/v1/tokens`: every token with its scope, label, creation and revocation dates,
/// never a secret.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", operation_id = "list_tokens", security(("bearer" = [])),
    responses((status = 200, description = "Every token", body = TokenList, example = json!({"count": 2, "tokens": [
            {"id": 1, "scope": "admin", "label": "administrateur", "created": "2026-01-05T08:30:00Z", "revoked": null},
            {"id": 14, "scope": "commune:29019", "label": "Mairie de Brest, service élections", "created": "2026-03-02T09:14:27.512Z", "revoked": null}]})),
        (status = 403, description = "`forbidden`: not an `admin` token", body = Problem)))]
pub async fn list_tokens(admin: AdminToken, s: web::Data<Service>, _no_query: Query<NoParams>) -> Res {
    let list = s.tokens(&admin.0)?;
    json(StatusCode::OK, &TokenList { count: list.len(), tokens: list })
}

/// One token (admin).
///
/// `GET /api/v1/tokens/{id}`: the token with its scope, label, creation and revocation
/// dates, never its secret. The `Location` of a new token. A revoked token is still read here
/// (with its `revoked` time): revocation keeps the record for the audit.
#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens", operation_id = "get_token", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Token id")),
    responses((status = 200, description = "The token", body = Token, example = json!({
            "id": 14, "scope": "commune:29019", "label": "Mairie de Brest, service élections", "created": "2026-03-02T09:14:27.512Z", "revoked": null})),
        (status = 400, body = Problem), (status = 403, description = "`forbidden`: not an `admin` token", body = Problem),
        (status = 404, description = "`not-found`: no such token", body = Problem)))]
pub async fn one_token(admin: AdminToken, s: web::Data<Service>, id: web::Path<RecordId>, _no_query: Query<NoParams>) -> Res {
    let RecordId(id) = id.into_inner();
    json(StatusCode::OK, &s.token(&admin.0, id)?)
}

/// Revokes a token (admin).
///
/// `DELETE /api/v1/tokens/{id}`: the token is refused from the next request on, and the
/// sessions signed in with it end. Its record is kept for the audit: `GET` still reads it, with
/// its `revoked` time.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", operation_id = "revoke_token", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Token id")),
    responses((status = 200, description = "Revoked: the token with its revocation date", body = Token, example = json!({
            "id": 14, "scope": "commune:29019", "label": "Mairie de Brest, service élections", "created": "2026-03-02T09:14:27.512Z",
            "revoked": "2026-11-02T16:40:03.118Z"})),
        (status = 400, body = Problem), (status = 403, description = "`forbidden`: not an `admin` token", body = Problem),
        (status = 404, description = "`not-found`: no such token", body = Problem),
        (status = 409, description = "`conflict`: the token used is the one to revoke", body = Problem)))]
pub async fn revoke_token(admin: AdminToken, s: web::Data<Service>, id: web::Path<RecordId>, _no_query: Query<NoParams>) -> Res {
    let RecordId(id) = id.into_inner();
    let t = blocking(move || s.revoke_token(&admin.0, id)).await?;
    json(StatusCode::OK, &t)
}
