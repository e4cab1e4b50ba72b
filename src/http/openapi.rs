//! The OpenAPI 3.1 document of the API, generated from the handlers and types by utoipa and
//! served at `GET /api/v1/openapi.json`.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Doc, Ref, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::api;
use super::problem::Problem;
use super::respond::get_only;
use crate::core::recommend::{INTEGER_PARAMS, PARAM_BOUNDS};
use crate::error::PROBLEM_TYPES;

/// The route of this document.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/api/v1/openapi.json", openapi_json));
}

/// The document's frame: title, description, tags, the problem schema, this document's own
/// path, and the conventions of [`Conventions`]. The API modules' paths are merged in by
/// [`document`].
#[derive(OpenApi)]
#[openapi(
    info(title = "voisinage", description = "What neighbouring communes already run, how reliable it proved, and groupements de commandes for EPCI. \
Reads are public; writes need a bearer token (scopes `commune:{code}`, `epci:{siren}`, `admin`). Every error is `application/problem+json`."),
    paths(openapi_json),
    components(schemas(Problem)),
    tags((name = "territory", description = "Communes, EPCI and the neighbour graph (INSEE COG 2026, IGN Admin Express 2018)"),
        (name = "adoptions", description = "What each commune runs and how it proved"),
        (name = "recommendations"), (name = "pooling", description = "Groupements de commandes"), (name = "catalog"),
        (name = "tokens", description = "Bearer tokens (admin)"), (name = "service"))
)]
struct ApiDoc;

/// The conventions the handlers' annotations do not repeat: the bearer scheme, problem bodies
/// as `application/problem+json`, the 401 any bad token gets, and the recommender's parameters
/// (from [`PARAM_BOUNDS`], so that the document follows the code).
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(problem))) = components.schemas.get_mut("Problem")
            && let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(code))) = problem.properties.get_mut("code")
        {
            // The codes a client can meet, from the one error table.
            code.enum_values = Some(PROBLEM_TYPES.iter().map(|t| t.code.into()).collect());
        }
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("vsn_ + 64 hex").build()));
        for (path, item) in doc.paths.paths.iter_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete].into_iter().flatten() {
                for (status, resp) in op.responses.responses.iter_mut() {
                    if (status.starts_with('4') || status.starts_with('5'))
                        && let utoipa::openapi::RefOr::T(r) = resp
                        && let Some(c) = r.content.shift_remove("application/json")
                    {
                        r.content.insert("application/problem+json".into(), c);
                    }
                }
                let problem = ResponseBuilder::new()
                    .description("A token that is malformed, unknown or revoked (or missing, for a write)")
                    .content("application/problem+json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
                    .build();
                op.responses.responses.entry("401".into()).or_insert(problem.into());
                if path == "/api/v1/communes/{code}/recommendations" {
                    let params = op.parameters.get_or_insert_with(Vec::new);
                    params.extend(PARAM_BOUNDS.iter().map(|&(name, lo, hi)| param(name, lo, hi).into()));
                }
            }
        }
    }
}

fn param(name: &str, lo: f64, hi: f64) -> Parameter {
    let ty = if INTEGER_PARAMS.contains(&name) { Type::Integer } else { Type::Number };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(format!("Recommender parameter, {lo} to {hi} (default in the answer's `params`)")))
        .schema(Some(ObjectBuilder::new().schema_type(ty).minimum(Some(lo)).maximum(Some(hi))))
        .build()
}

/// The document: the frame, every API module's paths, then the [`Conventions`]. Built once
/// per call (cheap: a few hundred objects).
pub fn document() -> Doc {
    let mut doc = ApiDoc::openapi();
    for part in [
        api::health::Doc::openapi(),
        api::territory::Doc::openapi(),
        api::adoptions::Doc::openapi(),
        api::recommendations::Doc::openapi(),
        api::pooling::Doc::openapi(),
        api::prices::Doc::openapi(),
        api::inventory::Doc::openapi(),
        api::catalog::Doc::openapi(),
        api::tokens::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    Conventions.modify(&mut doc);
    doc
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "service", responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    match document().to_json() {
        Ok(body) => HttpResponse::Ok().insert_header(ContentType::json()).body(body),
        Err(e) => actix_web::ResponseError::error_response(&crate::error::Error::internal("serialising the OpenAPI document", e)),
    }
}
