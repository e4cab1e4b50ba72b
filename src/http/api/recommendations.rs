//! Mature options proven nearby: `GET /api/v1/communes/{code}/recommendations`.

use std::collections::BTreeMap;

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::OpenApi;

use crate::core::domain::{InseeCode, Slug};
use crate::core::recommend::{Answer, Params};
use crate::error::Error;
use crate::http::extract::Query;
use crate::http::problem::Problem;
use crate::http::respond::{Res, get_only};
use crate::service::Service;

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/api/v1/communes/{code}/recommendations", recommendations));
}

/// The OpenAPI paths of this resource (the recommender's parameters are added by
/// [`crate::http::openapi`] from [`crate::core::recommend::PARAM_BOUNDS`]).
#[derive(OpenApi)]
#[openapi(paths(recommendations))]
pub struct Doc;

/// Query of `GET /api/v1/communes/{code}/recommendations`: the category, and any recommender
/// parameter of [`crate::core::recommend::PARAM_BOUNDS`] by name (an unknown name is a 400).
#[derive(Deserialize)]
pub struct RecommendationQuery {
    /// Catalogue category slug (required).
    category: Slug,
    /// Ask the question at this past date (`YYYY-MM-DD`); default: the reference date.
    as_of: Option<chrono::NaiveDate>,
    /// Recommender parameters, by name, as sent.
    #[serde(flatten)]
    overrides: BTreeMap<String, String>,
}

impl RecommendationQuery {
    /// The parameters: defaults with the overrides, in name order. Errors: `Malformed` for an
    /// unknown name or a value that is not a number, `Invalid` out of bounds.
    fn params(&self) -> Result<Params, Error> {
        let mut params = Params::default();
        for (name, value) in &self.overrides {
            if !Params::is_param(name) {
                return Err(Error::Malformed(format!("unknown query parameter '{}'", name.chars().take(40).collect::<String>())));
            }
            params.set(name, value)?;
        }
        Ok(params)
    }
}

/// Mature options proven nearby for one category, with their evidence.
///
/// The generations in service in the commune's neighbourhood (within `hops` edges, plus its
/// EPCI; widened step by step until a proven option is found: `scope` says which step
/// answered), proven first, each with its score, reliability, maturity, support and the
/// communes that run it; `current` gives the upgrade path of what the commune runs; `excluded`
/// what was left out and why. Every recommender parameter can be overridden as a query
/// parameter within its bounds (listed below; the answer echoes them in `params`).
#[utoipa::path(get, path = "/api/v1/communes/{code}/recommendations", tag = "recommendations", operation_id = "get_recommendations",
    params(("code" = String, Path, description = "Code INSEE"),
        ("category" = String, Query, description = "Catalogue category slug"),
        ("as_of" = Option<String>, Query, description = "Ask at this past date (YYYY-MM-DD, from 1980-01-01 to today): nothing recorded after it is read; default: today", format = Date)),
    responses((status = 200, description = "The options, best first (here: Brest, elections, `limit=1`)", body = Answer,
            example = crate::http::api::examples::recommendations),
        (status = 400, description = "`malformed-input`: `category` missing or not a slug, a parameter that is not a number (or not an integer), unknown or given twice", body = Problem),
        (status = 404, description = "`not-found`: no such commune or category", body = Problem),
        (status = 422, description = "`invalid-value`: a parameter out of its bounds, `w_reliability`, `w_maturity` and `w_proximity` all 0, \
`as_of` before 1980-01-01 or after today", body = Problem)))]
pub async fn recommendations(s: web::Data<Service>, code: web::Path<InseeCode>, q: Query<RecommendationQuery>) -> Res {
    let params = q.params()?;
    let body = s.recommend_json(&code, &q.category, &params, q.as_of)?;
    // The cached body itself, not a copy (`Bytes` shares the buffer).
    Ok(HttpResponse::Ok().insert_header(ContentType::json()).body(body))
}
