//! Estimated prices recorded by an EPCI for the options of its groupements de commandes:
//! `POST|GET /api/v1/epcis/{siren}/price-estimates`, `GET /api/v1/epcis/{siren}/price-estimates/{id}`.
//!
//! Writes need the EPCI's own token or an admin token ([`EpciWriter`]). The pooled purchases
//! (`/api/v1/epcis/{siren}/pooled-purchases`, its CSV and the EPCI page) use the estimate in
//! force for each option to give the pooled amount and the procurement procedure.

use actix_web::http::{StatusCode, header};
use actix_web::web;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::core::domain::{GenerationId, Siren, Slug};
use crate::core::prices::{EstimateAuthor, EurHt, PriceBasis, PriceEstimate, in_force};
use crate::error::Error;
use crate::http::extract::RecordId;
use crate::http::extract::{Body, EpciWriter, NoParams, Query, Viewer};
use crate::http::problem::Problem;
use crate::http::respond::{Res, blocking, get_only, json, not_allowed, with_header};
use crate::service::{PriceEstimateDraft, Service};

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/epcis/{siren}/price-estimates")
            .route(web::get().to(list_estimates))
            .route(web::head().to(list_estimates))
            .route(web::post().to(create_estimate))
            .default_service(web::to(|| not_allowed("GET, HEAD, POST"))),
    )
    .service(get_only("/api/v1/epcis/{siren}/price-estimates/{id}", one_estimate));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(list_estimates, create_estimate, one_estimate))]
pub struct Doc;

/// Body of `POST /api/v1/epcis/{siren}/price-estimates`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"product": "openelec", "basis": "per_commune", "amount_eur_ht": 25000, "made_on": "2026-03-01",
    "note": "devis de l'éditeur, maintenance 4 ans comprise"}))]
pub struct PriceEstimateIn {
    /// Catalogue product slug.
    #[schema(example = "openelec")]
    product: Slug,
    /// Generation (or release) of the product, as the catalogue lists it; absent: every
    /// generation of the product.
    #[serde(default)]
    generation: Option<GenerationId>,
    /// `per_commune` or `per_seat` (per workstation).
    basis: PriceBasis,
    /// Price for one commune or one seat, € HT over the contract: above 0, at most 10,000,000,
    /// at most two decimals (422 otherwise).
    #[schema(minimum = 0.01, maximum = 10000000, multiple_of = 0.01, example = 25000)]
    amount_eur_ht: f64,
    /// Day the estimate was made, not after today; default today.
    #[serde(default)]
    made_on: Option<NaiveDate>,
    /// Free note, at most 500 characters, without control characters but line breaks; shown
    /// only to tokens covering the EPCI.
    #[serde(default)]
    #[schema(max_length = 500, pattern = "^[^\\x00-\\x09\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$")]
    note: Option<String>,
}

/// An estimate as listed. The note is withheld from callers whose token does not cover the
/// EPCI (it may hold personal data).
#[derive(Serialize, ToSchema)]
pub struct PriceEstimateOut {
    id: u64,
    epci: Siren,
    product: Slug,
    /// `null`: every generation of the product.
    generation: Option<GenerationId>,
    basis: PriceBasis,
    /// Price for one commune or one seat, € HT.
    amount_eur_ht: EurHt,
    made_on: NaiveDate,
    by: EstimateAuthor,
    recorded_at: chrono::DateTime<chrono::Utc>,
    /// Whether it is the estimate in force today for its product and generation (the others
    /// are history: a later one replaced it).
    in_force: bool,
    has_note: bool,
    /// Only for a caller whose token covers the EPCI.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

impl PriceEstimateOut {
    fn new(e: PriceEstimate, in_force: bool, visible: bool) -> Self {
        PriceEstimateOut {
            id: e.id,
            epci: e.epci,
            product: e.product,
            generation: e.generation,
            basis: e.basis,
            amount_eur_ht: e.amount_eur_ht,
            made_on: e.made_on,
            by: e.by,
            recorded_at: e.recorded_at,
            in_force,
            has_note: e.note.is_some(),
            note: if visible { e.note } else { None },
        }
    }
}

/// Answer of `GET /api/v1/epcis/{siren}/price-estimates`.
#[derive(Serialize, ToSchema)]
pub struct PriceEstimateList {
    epci: Siren,
    count: usize,
    /// In recording order.
    estimates: Vec<PriceEstimateOut>,
}

/// The EPCI's price estimates.
///
/// Every estimate the EPCI recorded, in recording order, each saying whether it is the one in
/// force today for its product and generation. Notes are shown only to a token covering the
/// EPCI (`has_note` says whether there is one).
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/price-estimates", tag = "pooling", operation_id = "list_price_estimates", security((), ("bearer" = [])),
    params(("siren" = String, Path, description = "SIREN of the EPCI")),
    responses((status = 200, description = "The estimates", body = PriceEstimateList, example = json!({"epci": "242900314", "count": 1, "estimates": [{
            "id": 1, "epci": "242900314", "product": "openelec", "generation": null, "basis": "per_commune", "amount_eur_ht": 25000, "made_on": "2026-03-01",
            "by": {"token_id": 3, "scope": "epci:242900314", "name": "Brest Métropole"}, "recorded_at": "2026-03-02T09:14:27.512Z", "in_force": true,
            "has_note": true}]})),
        (status = 400, body = Problem), (status = 404, description = "`not-found`: no such EPCI", body = Problem)))]
pub async fn list_estimates(viewer: Viewer, s: web::Data<Service>, siren: web::Path<Siren>, _no_query: Query<NoParams>) -> Res {
    let list = s.price_estimates(&siren)?;
    let (today, visible) = (s.today(), s.sees_epci_notes(viewer.0.as_ref(), &siren));
    let out: Vec<PriceEstimateOut> = list.iter().map(|e| PriceEstimateOut::new(e.clone(), in_force(&list, e, today), visible)).collect();
    json(StatusCode::OK, &PriceEstimateList { epci: *siren, count: out.len(), estimates: out })
}

/// One price estimate of the EPCI.
///
/// The estimate, saying whether it is the one in force today; its note only for a token
/// covering the EPCI. The `Location` of a new estimate.
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/price-estimates/{id}", tag = "pooling", operation_id = "get_price_estimate", security((), ("bearer" = [])),
    params(("siren" = String, Path, description = "SIREN of the EPCI"), ("id" = u64, Path, description = "Estimate id")),
    responses((status = 200, description = "The estimate", body = PriceEstimateOut, example = json!({
            "id": 1, "epci": "242900314", "product": "openelec", "generation": null, "basis": "per_commune", "amount_eur_ht": 25000, "made_on": "2026-03-01",
            "by": {"token_id": 3, "scope": "epci:242900314", "name": "Brest Métropole"}, "recorded_at": "2026-03-02T09:14:27.512Z", "in_force": true,
            "has_note": true})),
        (status = 400, body = Problem), (status = 404, description = "`not-found`: no such EPCI, or no such estimate of this EPCI", body = Problem)))]
pub async fn one_estimate(viewer: Viewer, s: web::Data<Service>, path: web::Path<(Siren, RecordId)>, _no_query: Query<NoParams>) -> Res {
    let (siren, RecordId(id)) = path.into_inner();
    let list = s.price_estimates(&siren)?;
    let e = list.iter().find(|e| e.id == id).ok_or_else(|| Error::NotFound(format!("no price estimate {id} for EPCI {siren}")))?;
    let out = PriceEstimateOut::new(e.clone(), in_force(&list, e, s.today()), s.sees_epci_notes(viewer.0.as_ref(), &siren));
    json(StatusCode::OK, &out)
}

/// Records the EPCI's estimated price of an option.
///
/// Token `epci:{siren}` or `admin` (a commune's token or another EPCI's: 403). Durable before
/// the 201, whose `Location` reads the estimate. The estimate in force for an option gives the pooled amount and the procurement
/// procedure of its groupements; earlier ones stay listed.
#[utoipa::path(post, path = "/api/v1/epcis/{siren}/price-estimates", tag = "pooling", operation_id = "create_price_estimate", security(("bearer" = [])),
    params(("siren" = String, Path, description = "SIREN of the EPCI")),
    request_body = PriceEstimateIn,
    responses((status = 201, description = "Recorded", body = PriceEstimateOut, headers(("Location" = String)), example = json!({
            "id": 1, "epci": "242900314", "product": "openelec", "generation": null, "basis": "per_commune", "amount_eur_ht": 25000, "made_on": "2026-03-01",
            "by": {"token_id": 3, "scope": "epci:242900314", "name": "Brest Métropole"}, "recorded_at": "2026-03-02T09:14:27.512Z", "in_force": true,
            "has_note": true, "note": "devis de l'éditeur, maintenance 4 ans comprise"})),
        (status = 400, body = Problem), (status = 403, description = "`forbidden`: a token other than the EPCI's own or `admin`", body = Problem),
        (status = 404, description = "`not-found`: no such EPCI or product", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "`invalid-value`: `made_on` before 1980 or after today, a generation the catalogue does not list for the product", body = Problem)))]
pub async fn create_estimate(w: EpciWriter, s: web::Data<Service>, body: Body<PriceEstimateIn>, _no_query: Query<NoParams>) -> Res {
    let b = body.value;
    let draft = PriceEstimateDraft {
        product: b.product,
        generation: b.generation,
        basis: b.basis,
        amount_eur_ht: EurHt::estimate(b.amount_eur_ht)?,
        made_on: b.made_on,
        note: b.note,
    };
    let EpciWriter { principal, siren } = w;
    let st = s.clone();
    let e = blocking(move || st.record_price_estimate(&principal, &siren, draft)).await?;
    let list = s.price_estimates(&siren)?;
    let current = in_force(&list, &e, s.today());
    let location = format!("/api/v1/epcis/{}/price-estimates/{}", e.epci, e.id);
    with_header(json(StatusCode::CREATED, &PriceEstimateOut::new(e, current, true))?, header::LOCATION, &location)
}
