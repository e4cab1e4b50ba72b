//! What each commune runs and how it proved: `GET|POST /api/v1/communes/{code}/adoptions`,
//! `GET|PATCH /api/v1/communes/{code}/adoptions/{id}`,
//! `POST /api/v1/communes/{code}/adoptions/{id}/feedback`,
//! `GET /api/v1/communes/{code}/adoptions/{id}/feedback/{feedback_id}`.
//!
//! Writes need a token covering the commune ([`CommuneWriter`]) and accept an
//! `Idempotency-Key`; a replay answers `Idempotent-Replayed: true`.

use actix_web::http::{StatusCode, header};
use actix_web::web;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::core::domain::{GenerationId, InseeCode, Slug};
use crate::core::history::{Adoption, Feedback, Ratings};
use crate::error::Error;
use crate::http::extract::{Body, CommuneWriter, IdempotencyKey, NoParams, Query, RecordId, Viewer, WholeNumber, in_range};
use crate::http::problem::Problem;
use crate::http::respond::{Res, blocking, get_only, json, mark_replay, not_allowed, with_header};
use crate::service::{AdoptionChanges, AdoptionDraft, AdoptionView, FeedbackDraft, Service};

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/communes/{code}/adoptions")
            .route(web::get().to(list_adoptions))
            .route(web::head().to(list_adoptions))
            .route(web::post().to(create_adoption))
            .default_service(web::to(|| not_allowed("GET, HEAD, POST"))),
    )
    .service(
        web::resource("/api/v1/communes/{code}/adoptions/{id}")
            .route(web::get().to(one_adoption))
            .route(web::head().to(one_adoption))
            .route(web::patch().to(update_adoption))
            .default_service(web::to(|| not_allowed("GET, HEAD, PATCH"))),
    )
    .service(
        web::resource("/api/v1/communes/{code}/adoptions/{id}/feedback")
            .route(web::post().to(create_feedback))
            .default_service(web::to(|| not_allowed("POST"))),
    )
    .service(get_only("/api/v1/communes/{code}/adoptions/{id}/feedback/{feedback_id}", one_feedback));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(list_adoptions, create_adoption, one_adoption, update_adoption, create_feedback, one_feedback))]
pub struct Doc;

/// Feedback as shown publicly: the comment text is withheld (it may hold personal data).
#[derive(Serialize, ToSchema)]
pub struct FeedbackOut {
    id: u64,
    adoption_id: u64,
    date: NaiveDate,
    /// 1 (unreliable) to 5 (never failed).
    reliability: u8,
    incidents: u32,
    /// Hours out of service.
    downtime_hours: f64,
    /// 1 (poor) to 5 (excellent).
    support: u8,
    has_comment: bool,
    /// Only for a caller whose token covers the commune (it may hold personal data).
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    simulated: bool,
}

impl FeedbackOut {
    /// The feedback, with its comment only if the caller may read it.
    fn new(f: &Feedback, visible: bool) -> Self {
        FeedbackOut {
            id: f.id,
            adoption_id: f.adoption_id,
            date: f.date,
            reliability: f.reliability,
            incidents: f.incidents,
            downtime_hours: f.downtime_hours,
            support: f.support,
            has_comment: f.comment.is_some(),
            comment: if visible { f.comment.clone() } else { None },
            simulated: f.simulated,
        }
    }
}

/// An adoption with its state, ratings and feedback.
#[derive(Serialize, ToSchema)]
pub struct AdoptionOut {
    #[serde(flatten)]
    adoption: Adoption,
    /// Whether it is in service on the reference date.
    active: bool,
    ratings: Ratings,
    feedback: Vec<FeedbackOut>,
}

impl From<AdoptionView> for AdoptionOut {
    fn from(v: AdoptionView) -> Self {
        let feedback = v.feedback.iter().map(|f| FeedbackOut::new(f, v.comments_visible)).collect();
        AdoptionOut { adoption: v.adoption, active: v.active, ratings: v.ratings, feedback }
    }
}

/// Answer of `GET /api/v1/communes/{code}/adoptions`.
#[derive(Serialize, ToSchema)]
pub struct AdoptionList {
    code: InseeCode,
    /// The commune's adoptions, all pages together.
    total: usize,
    /// The `offset` asked for.
    offset: usize,
    /// The `limit` asked for.
    limit: usize,
    /// Adoptions on this page.
    count: usize,
    adoptions: Vec<AdoptionOut>,
}

/// Query of `GET /api/v1/communes/{code}/adoptions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdoptionListQuery {
    /// Most adoptions, 1 to 500, default 100.
    limit: Option<i64>,
    /// Adoptions to skip, 0 to 1,000,000, default 0.
    offset: Option<i64>,
}

/// A commune's adoptions, with their feedback, paginated.
///
/// Every product the commune runs or ran, oldest record first, with its state on the reference
/// date, its ratings and each feedback record; `limit` of them from `offset`, with the
/// `total`. Free-text comments may hold personal data: they appear only for a token covering
/// the commune (`has_comment` says whether there is one).
#[utoipa::path(get, path = "/api/v1/communes/{code}/adoptions", tag = "adoptions", operation_id = "list_adoptions", security((), ("bearer" = [])),
    params(("code" = String, Path, description = "Code INSEE"),
        ("limit" = Option<i64>, Query, description = "Most adoptions, 1 to 500, default 100", minimum = 1, maximum = 500, example = 100),
        ("offset" = Option<i64>, Query, description = "Adoptions to skip, 0 to 1000000, default 0", minimum = 0, maximum = 1000000, example = 0)),
    responses((status = 200, description = "The commune's adoptions (here: Brest on a store without the demo history)", body = AdoptionList,
            example = json!({"code": "29019", "total": 1, "offset": 0, "limit": 100, "count": 1, "adoptions": [{
                "id": 1, "commune": "29019", "category": "elections", "product": "openelec", "generation": null, "since": "2019-03-01", "until": null,
                "contract_end": "2028-02-29", "workstations": 8, "simulated": false, "active": true,
                "ratings": {"n": 1, "mean_reliability": 4.0, "mean_support": 5.0, "incidents": 1, "downtime_hours": 2.5},
                "feedback": [{"id": 2, "adoption_id": 1, "date": "2026-03-20", "reliability": 4, "incidents": 1, "downtime_hours": 2.5, "support": 5,
                    "has_comment": true, "simulated": false}]}]})),
        (status = 400, description = "`malformed-input`: a malformed code, `limit` or `offset` not an integer, a parameter given twice or unknown", body = Problem),
        (status = 404, description = "`not-found`: no such commune", body = Problem),
        (status = 422, description = "`invalid-value`: `limit` out of 1 to 500, `offset` out of 0 to 1000000", body = Problem)))]
pub async fn list_adoptions(viewer: Viewer, s: web::Data<Service>, code: web::Path<InseeCode>, q: Query<AdoptionListQuery>) -> Res {
    let limit = in_range("limit", q.limit.unwrap_or(100), 1, 500)? as usize;
    let offset = in_range("offset", q.offset.unwrap_or(0), 0, 1_000_000)? as usize;
    let (page, total) = s.adoptions_page(viewer.0.as_ref(), &code, offset, limit)?;
    let list: Vec<AdoptionOut> = page.into_iter().map(AdoptionOut::from).collect();
    json(StatusCode::OK, &AdoptionList { code: *code, total, offset, limit, count: list.len(), adoptions: list })
}

/// One adoption of a commune.
///
/// The adoption with its state, ratings and feedback (comments only for a token covering the
/// commune). The `Location` of a new adoption or feedback.
#[utoipa::path(get, path = "/api/v1/communes/{code}/adoptions/{id}", tag = "adoptions", operation_id = "get_adoption", security((), ("bearer" = [])),
    params(("code" = String, Path, description = "Code INSEE"), ("id" = u64, Path, description = "Adoption id")),
    responses((status = 200, description = "The adoption", body = AdoptionOut, example = json!({
            "id": 1, "commune": "29019", "category": "elections", "product": "openelec", "generation": null, "since": "2019-03-01", "until": null,
            "contract_end": "2028-02-29", "workstations": 8, "simulated": false, "active": true,
            "ratings": {"n": 1, "mean_reliability": 4.0, "mean_support": 5.0, "incidents": 1, "downtime_hours": 2.5},
            "feedback": [{"id": 2, "adoption_id": 1, "date": "2026-03-20", "reliability": 4, "incidents": 1, "downtime_hours": 2.5, "support": 5,
                "has_comment": true, "simulated": false}]})),
        (status = 400, body = Problem), (status = 404, description = "`not-found`: no such commune, or no such adoption of this commune", body = Problem)))]
pub async fn one_adoption(viewer: Viewer, s: web::Data<Service>, path: web::Path<(InseeCode, RecordId)>, _no_query: Query<NoParams>) -> Res {
    let (code, RecordId(id)) = path.into_inner();
    json(StatusCode::OK, &AdoptionOut::from(s.adoption(viewer.0.as_ref(), &code, id)?))
}

/// Body of `POST /api/v1/communes/{code}/adoptions`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"product": "openelec", "since": "2019-03-01", "contract_end": "2027-02-28", "workstations": 6}))]
#[serde(deny_unknown_fields)]
pub struct AdoptionIn {
    /// Catalogue product slug.
    #[schema(example = "openelec")]
    product: Slug,
    /// Generation of the product, as the catalogue lists it.
    #[serde(default)]
    generation: Option<GenerationId>,
    /// Defaults to the product's main category.
    #[serde(default)]
    category: Option<Slug>,
    /// First day in service.
    since: NaiveDate,
    /// Last day in service, if it ended.
    #[serde(default)]
    until: Option<NaiveDate>,
    /// End of the current contract.
    #[serde(default)]
    contract_end: Option<NaiveDate>,
    /// Number of workstations (0 to 100,000).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 100000)]
    workstations: Option<WholeNumber>,
}

impl TryFrom<AdoptionIn> for AdoptionDraft {
    type Error = Error;
    fn try_from(b: AdoptionIn) -> Result<Self, Error> {
        Ok(AdoptionDraft {
            product: b.product,
            generation: b.generation,
            category: b.category,
            since: b.since,
            until: b.until,
            contract_end: b.contract_end,
            workstations: b.workstations.map(|w| workstations(w.0)).transpose()?,
        })
    }
}

/// A workstation count, 0 to 100,000. Errors: `Invalid` (422).
fn workstations(w: i64) -> Result<u32, Error> {
    Ok(in_range("workstations", w, 0, 100_000)? as u32)
}

/// Records a product the commune runs.
///
/// Token `commune:{code}`, its EPCI's, or `admin`. Durable before the 201, whose `Location`
/// reads the adoption. With an `Idempotency-Key`, a retry with the same key and body answers
/// the first result again (`Idempotent-Replayed: true`) and writes nothing twice.
#[utoipa::path(post, path = "/api/v1/communes/{code}/adoptions", tag = "adoptions", operation_id = "create_adoption", security(("bearer" = [])),
    params(("code" = String, Path, description = "Code INSEE"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters: a retry with the same key and body writes nothing twice")),
    request_body = AdoptionIn,
    responses((status = 201, description = "Recorded", body = AdoptionOut, headers(("Location" = String), ("Idempotent-Replayed" = String)),
            example = json!({"id": 1, "commune": "29019", "category": "elections", "product": "openelec", "generation": null, "since": "2019-03-01",
                "until": null, "contract_end": "2027-02-28", "workstations": 6, "simulated": false, "active": true,
                "ratings": {"n": 0, "mean_reliability": null, "mean_support": null, "incidents": 0, "downtime_hours": 0.0}, "feedback": []})),
        (status = 400, body = Problem), (status = 403, description = "`forbidden`: the token's scope does not cover this commune", body = Problem),
        (status = 404, description = "`not-found`: no such commune, product or category", body = Problem),
        (status = 409, description = "`conflict`: the same product generation is already recorded for this category over an overlapping period", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "`invalid-value`: a rule across fields or the catalogue: `since` or `until` before 1980 or after tomorrow, \
`contract_end` before 1980 or over 30 years ahead, `until` or `contract_end` before `since`, `since` before the generation's release, \
a generation the catalogue does not list (or none where it lists them), a product that does not serve the category, \
`workstations` out of 0 to 100,000, an `Idempotency-Key` already used with another body", body = Problem)))]
pub async fn create_adoption(w: CommuneWriter, s: web::Data<Service>, key: IdempotencyKey, body: Body<AdoptionIn>, _no_query: Query<NoParams>) -> Res {
    let idem = key.with_fingerprint(body.fingerprint);
    let draft = AdoptionDraft::try_from(body.value)?;
    let CommuneWriter { principal, code } = w;
    let st = s.clone();
    let written = blocking(move || st.record_adoption(&principal, &code, draft, idem.as_ref())).await?;
    let a = written.record;
    let location = format!("/api/v1/communes/{}/adoptions/{}", a.commune, a.id);
    let out = AdoptionOut { active: a.active_on(s.today()), adoption: a, ratings: Ratings::default(), feedback: vec![] };
    let mut r = with_header(json(StatusCode::CREATED, &out)?, header::LOCATION, &location)?;
    mark_replay(&mut r, written.replayed);
    Ok(r)
}

/// Body of `PATCH /api/v1/communes/{code}/adoptions/{id}`: the fields that may change. A field
/// absent is left as it is; `null` clears it (`"until": null` puts the adoption back in
/// service). `product`, `generation`, `category` and `since` cannot change (400).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"contract_end": "2028-02-29", "workstations": 8}))]
pub struct AdoptionPatch {
    /// Last day in service (the adoption ends), or `null`.
    #[serde(default, with = "patch_field")]
    #[schema(value_type = Option<NaiveDate>)]
    until: Option<Option<NaiveDate>>,
    /// End of the current contract, or `null`.
    #[serde(default, with = "patch_field")]
    #[schema(value_type = Option<NaiveDate>)]
    contract_end: Option<Option<NaiveDate>>,
    /// Workstations (0 to 100,000), or `null`.
    #[serde(default, with = "patch_field")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 100000)]
    workstations: Option<Option<WholeNumber>>,
    #[serde(default, rename = "product", deserialize_with = "immutable")]
    #[schema(ignore)]
    _product: (),
    #[serde(default, rename = "generation", deserialize_with = "immutable")]
    #[schema(ignore)]
    _generation: (),
    #[serde(default, rename = "category", deserialize_with = "immutable")]
    #[schema(ignore)]
    _category: (),
    #[serde(default, rename = "since", deserialize_with = "immutable")]
    #[schema(ignore)]
    _since: (),
}

/// Absent → `None`, `null` → `Some(None)`, a value → `Some(Some(v))`.
mod patch_field {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// A field of an adoption that never changes: present at all (even `null`), it is refused.
fn immutable<'de, D: serde::Deserializer<'de>>(_: D) -> Result<(), D::Error> {
    Err(serde::de::Error::custom("cannot change: record a new adoption (and end this one with until)"))
}

impl TryFrom<AdoptionPatch> for AdoptionChanges {
    type Error = Error;
    fn try_from(p: AdoptionPatch) -> Result<Self, Error> {
        let workstations = match p.workstations {
            Some(w) => Some(w.map(|w| workstations(w.0)).transpose()?),
            None => None,
        };
        Ok(AdoptionChanges { until: p.until, contract_end: p.contract_end, workstations })
    }
}

/// Ends or corrects an adoption.
///
/// The body holds the fields that change: `until` (the commune left the product),
/// `contract_end`, `workstations`; `null` clears one (`"until": null` puts it back in
/// service). The product, generation, category and start cannot change (400): record a new
/// adoption instead. Same tokens as the other writes.
#[utoipa::path(patch, path = "/api/v1/communes/{code}/adoptions/{id}", tag = "adoptions", operation_id = "update_adoption", security(("bearer" = [])),
    params(("code" = String, Path, description = "Code INSEE"), ("id" = u64, Path, description = "Adoption id")),
    request_body = AdoptionPatch,
    responses((status = 200, description = "The adoption as changed", body = AdoptionOut, example = json!({
            "id": 1, "commune": "29019", "category": "elections", "product": "openelec", "generation": null, "since": "2019-03-01", "until": null,
            "contract_end": "2028-02-29", "workstations": 8, "simulated": false, "active": true,
            "ratings": {"n": 1, "mean_reliability": 4.0, "mean_support": 5.0, "incidents": 1, "downtime_hours": 2.5},
            "feedback": [{"id": 2, "adoption_id": 1, "date": "2026-03-20", "reliability": 4, "incidents": 1, "downtime_hours": 2.5, "support": 5,
                "has_comment": true, "comment": "mise à jour REU sans souci", "simulated": false}]})),
        (status = 400, description = "`malformed-input`: a field of the wrong type, or one that cannot change (`product`, `generation`, `category`, `since`)", body = Problem),
        (status = 403, description = "`forbidden`: the token's scope does not cover this commune", body = Problem),
        (status = 404, description = "`not-found`: no such commune, or no such adoption of this commune", body = Problem),
        (status = 409, description = "`conflict`: the period as changed would overlap another adoption of the same product generation", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "`invalid-value`: a rule across fields: `until` or `contract_end` before `since`, a date out of range, \
`workstations` out of 0 to 100,000", body = Problem)))]
pub async fn update_adoption(
    w: CommuneWriter,
    s: web::Data<Service>,
    path: web::Path<(InseeCode, RecordId)>,
    body: Body<AdoptionPatch>,
    _no_query: Query<NoParams>,
) -> Res {
    let changes = AdoptionChanges::try_from(body.value)?;
    let CommuneWriter { principal, code } = w;
    let id = path.1.0;
    let st = s.clone();
    let view = blocking(move || st.amend_adoption(&principal, &code, id, changes)).await?;
    json(StatusCode::OK, &AdoptionOut::from(view))
}

/// Body of `POST .../adoptions/{id}/feedback`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reliability": 4, "incidents": 1, "downtime_hours": 2.5, "support": 5, "comment": "mise à jour REU sans souci", "date": "2026-03-20"}))]
pub struct FeedbackIn {
    /// 1 (unreliable) to 5 (never failed).
    #[schema(value_type = i64, minimum = 1, maximum = 5)]
    reliability: WholeNumber,
    /// Incidents since the previous feedback.
    #[schema(value_type = i64, minimum = 0, maximum = 100000)]
    incidents: WholeNumber,
    /// Hours out of service, 0 to 8,784 (a leap year).
    #[schema(minimum = 0, maximum = 8784)]
    downtime_hours: f64,
    /// Support quality, 1 (poor) to 5 (excellent).
    #[schema(value_type = i64, minimum = 1, maximum = 5)]
    support: WholeNumber,
    /// Free text, at most 2,000 characters; may hold personal data, so never public.
    #[serde(default)]
    #[schema(max_length = 2000)]
    comment: Option<String>,
    /// Defaults to today.
    #[serde(default)]
    date: Option<NaiveDate>,
}

impl TryFrom<FeedbackIn> for FeedbackDraft {
    type Error = Error;
    fn try_from(b: FeedbackIn) -> Result<Self, Error> {
        Ok(FeedbackDraft {
            date: b.date,
            reliability: in_range("reliability", b.reliability.0, 1, 5)? as u8,
            incidents: in_range("incidents", b.incidents.0, 0, 100_000)? as u32,
            downtime_hours: b.downtime_hours,
            support: in_range("support", b.support.0, 1, 5)? as u8,
            comment: b.comment,
        })
    }
}

/// Records feedback on one of the commune's adoptions.
///
/// Same tokens and `Idempotency-Key` as adoptions; the 201's `Location` reads the feedback
/// (`.../feedback/{feedback_id}`). The comment (at most 2,000 characters) is shown only to tokens covering
/// the commune.
#[utoipa::path(post, path = "/api/v1/communes/{code}/adoptions/{id}/feedback", tag = "adoptions", operation_id = "create_feedback", security(("bearer" = [])),
    params(("code" = String, Path, description = "Code INSEE"), ("id" = u64, Path, description = "Adoption id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters: a retry with the same key and body writes nothing twice")),
    request_body = FeedbackIn,
    responses((status = 201, description = "Recorded", body = FeedbackOut, headers(("Location" = String), ("Idempotent-Replayed" = String)),
            example = json!({"id": 2, "adoption_id": 1, "date": "2026-03-20", "reliability": 4, "incidents": 1, "downtime_hours": 2.5, "support": 5,
                "has_comment": true, "comment": "mise à jour REU sans souci", "simulated": false})),
        (status = 400, body = Problem), (status = 403, description = "`forbidden`: the token's scope does not cover this commune", body = Problem),
        (status = 404, description = "`not-found`: no such commune, or no such adoption of this commune", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "`invalid-value`: a rule across fields or dates: `date` before 1980, after tomorrow, before the adoption \
started or more than a year after it ended; an `Idempotency-Key` already used with another body", body = Problem)))]
pub async fn create_feedback(
    w: CommuneWriter,
    s: web::Data<Service>,
    path: web::Path<(InseeCode, RecordId)>,
    key: IdempotencyKey,
    body: Body<FeedbackIn>,
    _no_query: Query<NoParams>,
) -> Res {
    let idem = key.with_fingerprint(body.fingerprint);
    let draft = FeedbackDraft::try_from(body.value)?;
    let CommuneWriter { principal, code } = w;
    let id = path.1.0;
    let written = blocking(move || s.record_feedback(&principal, &code, id, draft, idem.as_ref())).await?;
    let r = json(StatusCode::CREATED, &FeedbackOut::new(&written.record, true))?;
    let mut r = with_header(r, header::LOCATION, &format!("/api/v1/communes/{code}/adoptions/{id}/feedback/{}", written.record.id))?;
    mark_replay(&mut r, written.replayed);
    Ok(r)
}

/// One feedback record on an adoption.
///
/// The feedback, its comment only for a token covering the commune. The `Location` of new
/// feedback.
#[utoipa::path(get, path = "/api/v1/communes/{code}/adoptions/{id}/feedback/{feedback_id}", tag = "adoptions", operation_id = "get_feedback",
    security((), ("bearer" = [])),
    params(("code" = String, Path, description = "Code INSEE"), ("id" = u64, Path, description = "Adoption id"),
        ("feedback_id" = u64, Path, description = "Feedback id")),
    responses((status = 200, description = "The feedback", body = FeedbackOut, example = json!({"id": 2, "adoption_id": 1, "date": "2026-03-20",
            "reliability": 4, "incidents": 1, "downtime_hours": 2.5, "support": 5, "has_comment": true, "simulated": false})),
        (status = 400, body = Problem),
        (status = 404, description = "`not-found`: no such commune, no such adoption of this commune, or no such feedback on this adoption", body = Problem)))]
pub async fn one_feedback(viewer: Viewer, s: web::Data<Service>, path: web::Path<(InseeCode, RecordId, RecordId)>, _no_query: Query<NoParams>) -> Res {
    let (code, RecordId(id), RecordId(feedback_id)) = path.into_inner();
    let view = s.adoption(viewer.0.as_ref(), &code, id)?;
    let f = view
        .feedback
        .iter()
        .find(|f| f.id == feedback_id)
        .ok_or_else(|| Error::NotFound(format!("no feedback {feedback_id} on adoption {id} of commune {code}")))?;
    json(StatusCode::OK, &FeedbackOut::new(f, view.comments_visible))
}
