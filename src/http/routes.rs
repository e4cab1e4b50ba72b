//! Route handlers of `/health` and `/api/v1`. Each handler parses its input into domain types
//! (400 on a malformed value), calls the core or the store, and answers JSON.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{AdminToken, CommuneWriter, Viewer};
use super::openapi::Problem;
use super::{AppState, json};
use crate::core::auth::{Principal, Scope, Token};
use crate::core::catalog::{Category, Product};
use crate::core::domain::SizeClass;
use crate::core::domain::{GenerationId, InseeCode, Siren, Slug};
use crate::core::history::{Adoption, Feedback, NewAdoption, NewFeedback, Ratings};
use crate::core::pooling::PooledPurchases;
use crate::core::pooling::{DEFAULT_HORIZON_MONTHS, pooled_purchases};
use crate::core::recommend::Answer;
use crate::core::recommend::{Ctx, Params, recommend};
use crate::core::territory::EpciMember;
use crate::core::territory::{CommuneIdx, EdgeKind};
use crate::error::Error;
use crate::store::DemoInfo;
use crate::store::Idempotency;

type Res = Result<HttpResponse, Error>;
type State = web::Data<AppState>;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/health", web::get().to(health), web::head().to(health)))
        .service(get_only("/metrics", web::get().to(metrics), web::head().to(metrics)))
        .service(get_only("/api/v1/communes/{code}", web::get().to(commune), web::head().to(commune)))
        .service(get_only("/api/v1/communes/{code}/neighbours", web::get().to(neighbours), web::head().to(neighbours)))
        .service(
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
        .service(get_only("/api/v1/communes", web::get().to(search_communes), web::head().to(search_communes)))
        .service(get_only("/api/v1/epcis", web::get().to(list_epcis), web::head().to(list_epcis)))
        .service(
            web::resource("/api/v1/communes/{code}/adoptions/{id}/feedback")
                .route(web::post().to(create_feedback))
                .default_service(web::to(|| not_allowed("POST"))),
        )
        .service(get_only("/api/v1/communes/{code}/recommendations", web::get().to(recommendations), web::head().to(recommendations)))
        .service(get_only("/api/v1/epcis/{siren}", web::get().to(epci), web::head().to(epci)))
        .service(get_only("/api/v1/epcis/{siren}/pooled-purchases", web::get().to(pooled), web::head().to(pooled)))
        .service(get_only("/api/v1/catalog/categories", web::get().to(categories), web::head().to(categories)))
        .service(get_only("/api/v1/openapi.json", web::get().to(super::openapi::openapi_json), web::head().to(super::openapi::openapi_json)))
        .service(get_only("/api/v1/catalog/products", web::get().to(products), web::head().to(products)))
        .service(
            web::resource("/api/v1/tokens")
                .route(web::get().to(list_tokens))
                .route(web::head().to(list_tokens))
                .route(web::post().to(create_token))
                .default_service(web::to(|| not_allowed("GET, HEAD, POST"))),
        )
        .service(web::resource("/api/v1/tokens/{id}").route(web::delete().to(revoke_token)).default_service(web::to(|| not_allowed("DELETE"))));
}

/// A read-only resource: GET and HEAD, anything else 405 with `Allow`.
fn get_only(path: &str, get: actix_web::Route, head: actix_web::Route) -> actix_web::Resource {
    web::resource(path).route(get).route(head).default_service(web::to(|| not_allowed("GET, HEAD")))
}

pub(super) async fn not_allowed(allow: &'static str) -> Res {
    let mut r = actix_web::ResponseError::error_response(&Error::MethodNotAllowed(format!("this resource allows {allow}")));
    r.headers_mut().insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static(allow));
    Ok(r)
}

/// Reads a JSON object body into `T`: a JSON array or scalar is refused (400) even where serde
/// would map it onto the struct's fields by position.
fn object<T: serde::de::DeserializeOwned>(body: JsonObject) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::Object(body.0)).map_err(|e| Error::Malformed(format!("invalid JSON body: {e}")))
}

/// A JSON object body whose top-level keys are unique: `{"scope": "admin", "scope": "..."}` is
/// refused (400) rather than read as its last value, so that every reader of the request sees
/// the same thing.
pub(super) struct JsonObject(serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<JsonObject, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some((k, v)) = m.next_entry::<String, serde_json::Value>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate key '{}'", k.chars().take(40).collect::<String>())));
                    }
                    out.insert(k, v);
                }
                Ok(JsonObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn ctx<'a>(s: &'a AppState, h: &'a crate::core::history::History) -> Ctx<'a> {
    Ctx::new(&s.territory, &s.catalog, h, s.today())
}

fn read_history(s: &AppState) -> std::sync::RwLockReadGuard<'_, crate::core::history::History> {
    s.history.read().unwrap_or_else(|p| p.into_inner())
}

/// Parses an optional integer query parameter: 400 when not an integer.
fn int_param(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Error> {
    q.get(name)
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| Error::Malformed(format!("query parameter {name} must be an integer, got '{}'", v.chars().take(20).collect::<String>())))
        })
        .transpose()
}

fn in_range(name: &str, v: i64, lo: i64, hi: i64) -> Result<i64, Error> {
    if (lo..=hi).contains(&v) { Ok(v) } else { Err(Error::Invalid(format!("{name} must be {lo} to {hi}, got {v}"))) }
}

/// Prometheus text exposition: request counts and latency histograms per route pattern, store
/// size in bytes, adoptions and feedback held.
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
pub(super) async fn metrics(s: State) -> Res {
    let (adoptions, feedback) = {
        let h = read_history(&s);
        (h.adoptions().len(), h.feedback_count())
    };
    let body = s.metrics.render(s.store.size_on_disk(), adoptions, feedback);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body))
}

/// Answer of `GET /health`.
#[derive(Serialize, ToSchema)]
pub(super) struct HealthOut {
    /// Always `ok` when the service answers.
    status: String,
    /// Communes in the territory.
    communes: usize,
    /// EPCI in the territory.
    epcis: usize,
    /// Edges of the neighbour graph.
    edges: usize,
    /// Adoptions held (simulated ones included).
    adoptions: usize,
    /// Feedback records held.
    feedback: usize,
    /// Version of the embedded catalogue.
    catalog_version: String,
    /// The simulated history loaded at start-up, if any.
    demo: Option<DemoInfo>,
    /// Reference date of the answers.
    as_of: NaiveDate,
}

/// Liveness and contents of the service.
#[utoipa::path(get, path = "/health", tag = "service", responses((status = 200, description = "The service answers", body = HealthOut)))]
pub(super) async fn health(s: State) -> Res {
    let h = read_history(&s);
    json(
        StatusCode::OK,
        &HealthOut {
            status: "ok".into(),
            communes: s.territory.communes().len(),
            epcis: s.territory.epcis().len(),
            edges: s.territory.edge_count(),
            adoptions: h.adoptions().len(),
            feedback: h.feedback_count(),
            catalog_version: s.catalog.version.clone(),
            demo: s.store.demo_info()?,
            as_of: s.today(),
        },
    )
}

/// A border (or nearest) neighbour of a commune.
#[derive(Serialize, ToSchema)]
pub(super) struct NeighbourOut {
    code: InseeCode,
    name: String,
    kind: EdgeKind,
    border_km: Option<f64>,
    distance_km: f64,
}

/// The EPCI a commune belongs to.
#[derive(Serialize, ToSchema)]
pub(super) struct EpciRef {
    siren: Siren,
    name: String,
    kind: String,
}

/// Centroid of a commune, WGS84 degrees.
#[derive(Serialize, ToSchema)]
pub(super) struct Centroid {
    lon: f64,
    lat: f64,
}

/// Answer of `GET /api/v1/communes/{code}`.
#[derive(Serialize, ToSchema)]
pub(super) struct CommuneOut {
    code: InseeCode,
    name: String,
    /// Department code (`35`, `2A`, `971`).
    department: String,
    /// Population municipale (INSEE).
    population: u32,
    size_class: SizeClass,
    /// Codes of former communes merged into this one.
    former_codes: Vec<InseeCode>,
    centroid: Centroid,
    /// Area, km².
    area_km2: f64,
    /// `null` for the few communes in no EPCI (Ouessant, Sein, Bréhat).
    epci: Option<EpciRef>,
    neighbours: Vec<NeighbourOut>,
}

/// A commune, its EPCI and its neighbours. A former commune's code answers 404 naming the
/// commune nouvelle.
#[utoipa::path(get, path = "/api/v1/communes/{code}", tag = "territory",
    params(("code" = String, Path, description = "Code INSEE of the commune", example = "35238")),
    responses((status = 200, body = CommuneOut), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn commune(s: State, path: web::Path<String>) -> Res {
    let code = InseeCode::parse(&path)?;
    let idx = s.territory.find(&code)?;
    let c = s.territory.commune(idx);
    let epci = c.epci.and_then(|e| s.territory.epci(&e).ok()).map(|e| EpciRef { siren: e.siren, name: e.name.clone(), kind: e.kind.clone() });
    let neighbours: Vec<NeighbourOut> = s
        .territory
        .neighbours(idx)
        .into_iter()
        .map(|(j, e)| {
            let n = s.territory.commune(j);
            NeighbourOut { code: n.code, name: n.name.clone(), kind: e.kind, border_km: e.border_km, distance_km: e.distance_km }
        })
        .collect();
    json(
        StatusCode::OK,
        &CommuneOut {
            code: c.code,
            name: c.name.clone(),
            department: c.department.clone(),
            population: c.population,
            size_class: c.size_class(),
            former_codes: c.former_codes.clone(),
            centroid: Centroid { lon: c.lon, lat: c.lat },
            area_km2: c.area_km2,
            epci,
            neighbours,
        },
    )
}

/// A commune within `hops` of another.
#[derive(Serialize, ToSchema)]
pub(super) struct HopNeighbour {
    code: InseeCode,
    name: String,
    /// Graph distance, 1 = border neighbour.
    hops: u32,
    /// Distance between centroids, km (haversine), rounded to metres.
    distance_km: f64,
}

/// Answer of `GET /api/v1/communes/{code}/neighbours`.
#[derive(Serialize, ToSchema)]
pub(super) struct NeighboursOut {
    code: InseeCode,
    hops: u32,
    count: usize,
    /// Nearest first (by hops, then distance).
    neighbours: Vec<HopNeighbour>,
}

/// Communes within `hops` of a commune in the neighbour graph.
#[utoipa::path(get, path = "/api/v1/communes/{code}/neighbours", tag = "territory",
    params(("code" = String, Path, description = "Code INSEE", example = "35238"),
        ("hops" = Option<i64>, Query, description = "1 to 6, default 1", minimum = 1, maximum = 6)),
    responses((status = 200, body = NeighboursOut), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn neighbours(s: State, path: web::Path<String>, q: web::Query<HashMap<String, String>>) -> Res {
    let code = InseeCode::parse(&path)?;
    let hops = int_param(&q, "hops")?.unwrap_or(1);
    let idx = s.territory.find(&code)?;
    let hops = in_range("hops", hops, 1, 6)? as u32;
    let list: Vec<_> = s
        .territory
        .within_hops(idx, hops)
        .into_iter()
        .map(|n| {
            let c = s.territory.commune(n.idx);
            HopNeighbour { code: c.code, name: c.name.clone(), hops: n.hops, distance_km: (s.territory.distance_km(idx, n.idx) * 1000.0).round() / 1000.0 }
        })
        .collect();
    json(StatusCode::OK, &NeighboursOut { code, hops, count: list.len(), neighbours: list })
}

/// Feedback as shown publicly: the comment text is withheld (it may hold personal data).
#[derive(Serialize, ToSchema)]
pub(super) struct FeedbackOut {
    id: u64,
    adoption_id: u64,
    date: NaiveDate,
    reliability: u8,
    incidents: u32,
    downtime_hours: f64,
    support: u8,
    has_comment: bool,
    /// Only for a caller whose token covers the commune (it may hold personal data).
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    simulated: bool,
}

impl FeedbackOut {
    /// The feedback with its comment, for a caller allowed to read it.
    fn with_comment(f: &Feedback, visible: bool) -> Self {
        FeedbackOut { comment: if visible { f.comment.clone() } else { None }, ..FeedbackOut::from(f) }
    }
}

impl From<&Feedback> for FeedbackOut {
    fn from(f: &Feedback) -> Self {
        FeedbackOut {
            id: f.id,
            adoption_id: f.adoption_id,
            date: f.date,
            reliability: f.reliability,
            incidents: f.incidents,
            downtime_hours: f.downtime_hours,
            support: f.support,
            has_comment: f.comment.is_some(),
            comment: None,
            simulated: f.simulated,
        }
    }
}

/// An adoption with its state, ratings and feedback.
#[derive(Serialize, ToSchema)]
pub(super) struct AdoptionOut<'a> {
    #[serde(flatten)]
    adoption: &'a Adoption,
    /// Whether it is in service on the reference date.
    active: bool,
    ratings: Ratings,
    feedback: Vec<FeedbackOut>,
}

/// Whether the viewer may read the free-text comments of commune `code`.
fn sees_comments(s: &AppState, viewer: &Viewer, code: &InseeCode) -> Result<bool, Error> {
    let idx = s.territory.find(code)?;
    Ok(viewer.sees_comments_of(code, s.territory.commune(idx).epci.as_ref()))
}

/// Answer of `GET /api/v1/communes/{code}/adoptions`.
#[derive(Serialize, ToSchema)]
pub(super) struct AdoptionList<'a> {
    code: InseeCode,
    count: usize,
    adoptions: Vec<AdoptionOut<'a>>,
}

/// A commune's adoptions. Free-text comments appear only for a token covering the commune.
#[utoipa::path(get, path = "/api/v1/communes/{code}/adoptions", tag = "adoptions",
    params(("code" = String, Path, description = "Code INSEE", example = "35238")),
    responses((status = 200, body = AdoptionList), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn list_adoptions(viewer: Viewer, s: State, path: web::Path<String>) -> Res {
    let code = InseeCode::parse(&path)?;
    let visible = sees_comments(&s, &viewer, &code)?;
    let h = read_history(&s);
    let today = s.today();
    let list: Vec<AdoptionOut> = h
        .of_commune(&code)
        .map(|a| AdoptionOut {
            adoption: a,
            active: a.active_on(today),
            ratings: h.ratings(a.id, today),
            feedback: h.feedback(a.id).iter().map(|f| FeedbackOut::with_comment(f, visible)).collect(),
        })
        .collect();
    json(StatusCode::OK, &AdoptionList { code, count: list.len(), adoptions: list })
}

fn adoption_id(raw: &str) -> Result<u64, Error> {
    raw.parse().map_err(|_| Error::Malformed(format!("'{}' is not an adoption id", raw.chars().take(20).collect::<String>())))
}

/// One adoption of a commune.
#[utoipa::path(get, path = "/api/v1/communes/{code}/adoptions/{id}", tag = "adoptions",
    params(("code" = String, Path, description = "Code INSEE", example = "35238"), ("id" = u64, Path, description = "Adoption id")),
    responses((status = 200, body = AdoptionOut), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn one_adoption(viewer: Viewer, s: State, path: web::Path<(String, String)>) -> Res {
    let (code, id) = path.into_inner();
    let code = InseeCode::parse(&code)?;
    let id = adoption_id(&id)?;
    let visible = sees_comments(&s, &viewer, &code)?;
    let h = read_history(&s);
    let a = h.adoption(id).filter(|a| a.commune == code).ok_or_else(|| Error::NotFound(format!("commune {code} has no adoption {id}")))?;
    let today = s.today();
    json(
        StatusCode::OK,
        &AdoptionOut {
            adoption: a,
            active: a.active_on(today),
            ratings: h.ratings(a.id, today),
            feedback: h.feedback(a.id).iter().map(|f| FeedbackOut::with_comment(f, visible)).collect(),
        },
    )
}

/// `GET /api/v1/communes?q=...&limit=...`: communes whose name or code matches (accents and
/// case ignored), at most `limit` (1-100, default 20).
/// A commune found by the search.
#[derive(Serialize, ToSchema)]
pub(super) struct CommuneHit {
    code: InseeCode,
    name: String,
    department: String,
    population: u32,
    epci_siren: Option<Siren>,
}

/// Answer of `GET /api/v1/communes`.
#[derive(Serialize, ToSchema)]
pub(super) struct SearchOut {
    q: String,
    count: usize,
    communes: Vec<CommuneHit>,
}

#[utoipa::path(get, path = "/api/v1/communes", tag = "territory",
    params(("q" = String, Query, description = "Name or code (accents and case ignored), 1 to 100 characters", example = "hoedic"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = SearchOut), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn search_communes(s: State, q: web::Query<HashMap<String, String>>) -> Res {
    let query = q.get("q").map(|v| v.trim()).filter(|v| !v.is_empty()).ok_or_else(|| Error::Malformed("query parameter q is required".into()))?;
    if query.chars().count() > 100 {
        return Err(Error::Invalid("q must be at most 100 characters".into()));
    }
    let limit = in_range("limit", int_param(&q, "limit")?.unwrap_or(20), 1, 100)? as usize;
    let list: Vec<_> = s
        .territory
        .search(query, limit)
        .into_iter()
        .map(|i| {
            let c = s.territory.commune(i);
            CommuneHit { code: c.code, name: c.name.clone(), department: c.department.clone(), population: c.population, epci_siren: c.epci }
        })
        .collect();
    json(StatusCode::OK, &SearchOut { q: query.to_string(), count: list.len(), communes: list })
}

/// An EPCI in the list.
#[derive(Serialize, ToSchema)]
pub(super) struct EpciSummary {
    siren: Siren,
    name: String,
    /// `CC`, `CA`, `CU`, `METRO`.
    kind: String,
    population: u32,
    /// Members among the seeded communes.
    members_in_scope: usize,
}

/// Answer of `GET /api/v1/epcis`.
#[derive(Serialize, ToSchema)]
pub(super) struct EpciList {
    count: usize,
    epcis: Vec<EpciSummary>,
}

/// Every EPCI of the territory.
#[utoipa::path(get, path = "/api/v1/epcis", tag = "territory", responses((status = 200, body = EpciList)))]
pub(super) async fn list_epcis(s: State) -> Res {
    let list: Vec<_> = s
        .territory
        .epcis()
        .iter()
        .map(|e| EpciSummary {
            siren: e.siren,
            name: e.name.clone(),
            kind: e.kind.clone(),
            population: e.population,
            members_in_scope: s.territory.members(&e.siren).len(),
        })
        .collect();
    json(StatusCode::OK, &EpciList { count: list.len(), epcis: list })
}

/// Body of `POST /api/v1/communes/{code}/adoptions`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AdoptionIn {
    /// Catalogue product slug.
    #[schema(example = "openelec")]
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    product: String,
    #[serde(default)]
    generation: Option<String>,
    /// Defaults to the product's main category.
    #[serde(default)]
    category: Option<String>,
    since: NaiveDate,
    #[serde(default)]
    until: Option<NaiveDate>,
    #[serde(default)]
    contract_end: Option<NaiveDate>,
    /// Number of workstations (0 to 100,000).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100000)]
    workstations: Option<i64>,
}

/// Records an adoption of the commune (token `commune:{code}`, its EPCI's, or `admin`). Accepts
/// an `Idempotency-Key` header; a replay answers `Idempotent-Replayed: true`.
#[utoipa::path(post, path = "/api/v1/communes/{code}/adoptions", tag = "adoptions", security(("bearer" = [])),
    params(("code" = String, Path, description = "Code INSEE", example = "35238"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters")),
    request_body = AdoptionIn,
    responses((status = 201, body = AdoptionOut), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]

pub(super) async fn create_adoption(w: CommuneWriter, s: State, req: HttpRequest, body: web::Json<JsonObject>) -> Res {
    let CommuneWriter { principal, code } = w;
    let body = body.into_inner();
    let idem = idempotency(&req, &body)?;
    let body: AdoptionIn = object(body)?;
    let product = Slug::parse(&body.product)?;
    let generation = body.generation.as_deref().map(GenerationId::parse).transpose()?;
    let category = body.category.as_deref().map(Slug::parse).transpose()?;
    let p = s.catalog.product(&product)?;
    let category = match category {
        Some(c) => {
            s.catalog.category(&c)?;
            c
        }
        None => p.categories[0].clone(),
    };
    let workstations = body.workstations.map(|w| in_range("workstations", w, 0, 100_000)).transpose()?.map(|w| w as u32);
    let new = NewAdoption { commune: code, category, product, generation, since: body.since, until: body.until, contract_end: body.contract_end, workstations };
    new.validate(&s.catalog, s.today())?;
    // The write and the in-memory update run together on the blocking pool: they complete even
    // if the client goes away meanwhile, so the running service always shows what is stored.
    let st = s.clone();
    let (a, replayed) = web::block(move || -> Result<(Adoption, bool), Error> {
        // Checked and written under one lock, so that two identical requests cannot both pass.
        let _guard = st.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = &idem
            && let Some(a) = st.store.adoption_for_key(i)?
        {
            return Ok((a, true));
        }
        new.check_duplicate(&st.history.read().unwrap_or_else(|p| p.into_inner()))?;
        let (a, replayed) = st.store.insert_adoption_once(new, idem.as_ref())?;
        if !replayed {
            st.history.write().unwrap_or_else(|p| p.into_inner()).add_adoption(a.clone());
            audit(&principal, "adoption.create", Some(&a.commune), a.id);
        }
        Ok((a, replayed))
    })
    .await
    .map_err(|e| Error::Storage(e.to_string()))??;
    let location = format!("/api/v1/communes/{}/adoptions/{}", a.commune, a.id);
    let out = AdoptionOut { adoption: &a, active: a.active_on(s.today()), ratings: Ratings::default(), feedback: vec![] };
    let mut r = json(StatusCode::CREATED, &out)?;
    r.headers_mut().insert(actix_web::http::header::LOCATION, location.parse().map_err(|_| Error::Storage("location header".into()))?);
    mark_replay(&mut r, replayed);
    Ok(r)
}

/// Body of `PATCH /api/v1/communes/{code}/adoptions/{id}`: the fields that may change. A field
/// absent is left as it is; `null` clears it (`"until": null` puts the adoption back in
/// service).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AdoptionPatch {
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
    workstations: Option<Option<i64>>,
}

/// Absent → `None`, `null` → `Some(None)`, a value → `Some(Some(v))`.
mod patch_field {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Ends or corrects an adoption: `until` (the commune left the product), `contract_end`,
/// `workstations`. The product, generation, category and start cannot change: record a new
/// adoption instead. Same tokens as the other writes.
#[utoipa::path(patch, path = "/api/v1/communes/{code}/adoptions/{id}", tag = "adoptions", security(("bearer" = [])),
    params(("code" = String, Path, description = "Code INSEE", example = "35238"), ("id" = u64, Path, description = "Adoption id")),
    request_body = AdoptionPatch,
    responses((status = 200, body = AdoptionOut), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn update_adoption(w: CommuneWriter, s: State, path: web::Path<(String, String)>, body: web::Json<JsonObject>) -> Res {
    let CommuneWriter { principal, code } = w;
    let id = adoption_id(&path.1)?;
    let body = body.into_inner();
    if let Some(k) = body.0.keys().find(|k| ["product", "generation", "category", "since"].contains(&k.as_str())) {
        return Err(Error::Malformed(format!("{k} cannot change: record a new adoption (and end this one with until)")));
    }
    let patch: AdoptionPatch = object(body)?;
    let st = s.clone();
    let a = web::block(move || -> Result<Adoption, Error> {
        let _guard = st.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut a = read_history(&st)
            .adoption(id)
            .filter(|a| a.commune == code)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("commune {code} has no adoption {id}")))?;
        if let Some(u) = patch.until {
            a.until = u;
        }
        if let Some(c) = patch.contract_end {
            a.contract_end = c;
        }
        if let Some(w) = patch.workstations {
            a.workstations = w.map(|w| in_range("workstations", w, 0, 100_000)).transpose()?.map(|w| w as u32);
        }
        let new = NewAdoption::of(&a);
        new.validate(&st.catalog, st.today())?;
        new.check_duplicate_except(&read_history(&st), Some(id))?;
        st.store.update_adoption(&a)?;
        st.history.write().unwrap_or_else(|p| p.into_inner()).add_adoption(a.clone());
        audit(&principal, "adoption.update", Some(&a.commune), a.id);
        Ok(a)
    })
    .await
    .map_err(|e| Error::Storage(e.to_string()))??;
    let h = read_history(&s);
    let today = s.today();
    json(
        StatusCode::OK,
        &AdoptionOut {
            adoption: &a,
            active: a.active_on(today),
            ratings: h.ratings(a.id, today),
            feedback: h.feedback(a.id).iter().map(|f| FeedbackOut::with_comment(f, true)).collect(),
        },
    )
}

/// Marks a response that replays the first result of an idempotent request.
fn mark_replay(r: &mut HttpResponse, replayed: bool) {
    if replayed {
        r.headers_mut()
            .insert(actix_web::http::header::HeaderName::from_static("idempotent-replayed"), actix_web::http::header::HeaderValue::from_static("true"));
    }
}

/// The request's `Idempotency-Key` (1-255 visible ASCII characters; 400 otherwise), scoped to
/// its method, path and token, and fingerprinted with its body.
fn idempotency(req: &HttpRequest, body: &JsonObject) -> Result<Option<Idempotency>, Error> {
    use std::hash::Hasher;
    let Some(v) = req.headers().get("idempotency-key") else { return Ok(None) };
    let key = v
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|c| (0x21..=0x7e).contains(&c)))
        .ok_or_else(|| Error::Malformed("Idempotency-Key must be 1 to 255 visible ASCII characters".into()))?;
    let mut h = fnv::FnvHasher::default();
    h.write(serde_json::to_string(&body.0).unwrap_or_default().as_bytes());
    // Keys are per token: another token reusing a key gets its own write, not a replay.
    let token = actix_web::HttpMessage::extensions(req).get::<Principal>().map_or(0, |p| p.token_id);
    Ok(Some(Idempotency { scope: format!("{} {} token:{token}", req.method(), req.path()), key: key.to_string(), fingerprint: h.finish() }))
}

/// Body of `POST .../adoptions/{id}/feedback`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedbackIn {
    /// 1 (unreliable) to 5 (never failed).
    #[schema(minimum = 1, maximum = 5)]
    reliability: i64,
    /// Incidents since the previous feedback.
    #[schema(minimum = 0, maximum = 100000)]
    incidents: i64,
    /// Hours out of service, 0 to 8,784 (a leap year).
    #[schema(minimum = 0, maximum = 8784)]
    downtime_hours: f64,
    /// Support quality, 1 (poor) to 5 (excellent).
    #[schema(minimum = 1, maximum = 5)]
    support: i64,
    #[serde(default)]
    /// Free text, at most 2,000 characters; may hold personal data, so never public.
    #[schema(max_length = 2000)]
    comment: Option<String>,
    /// Defaults to today.
    #[serde(default)]
    date: Option<NaiveDate>,
}

/// Records feedback on one of the commune's adoptions (same tokens and `Idempotency-Key` as
/// adoptions). The comment (at most 2,000 characters) is shown only to tokens covering the
/// commune.
#[utoipa::path(post, path = "/api/v1/communes/{code}/adoptions/{id}/feedback", tag = "adoptions", security(("bearer" = [])),
    params(("code" = String, Path, description = "Code INSEE", example = "35238"), ("id" = u64, Path, description = "Adoption id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters")),
    request_body = FeedbackIn,
    responses((status = 201, body = FeedbackOut), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]

pub(super) async fn create_feedback(w: CommuneWriter, s: State, req: HttpRequest, path: web::Path<(String, String)>, body: web::Json<JsonObject>) -> Res {
    let CommuneWriter { principal, code } = w;
    let id = adoption_id(&path.1)?;
    let adoption =
        read_history(&s).adoption(id).filter(|a| a.commune == code).cloned().ok_or_else(|| Error::NotFound(format!("commune {code} has no adoption {id}")))?;
    let body = body.into_inner();
    let idem = idempotency(&req, &body)?;
    let b: FeedbackIn = object(body)?;
    let new = NewFeedback {
        date: b.date.unwrap_or_else(|| s.today()),
        reliability: in_range("reliability", b.reliability, 1, 5)? as u8,
        incidents: in_range("incidents", b.incidents, 0, 100_000)? as u32,
        downtime_hours: b.downtime_hours + 0.0, // -0.0 becomes 0.0
        support: in_range("support", b.support, 1, 5)? as u8,
        comment: b.comment.filter(|c| !c.trim().is_empty()),
    };
    new.validate(&adoption, s.today())?;
    let st = s.clone();
    let (f, replayed) = web::block(move || -> Result<(Feedback, bool), Error> {
        let (f, replayed) = st.store.insert_feedback_once(id, new, idem.as_ref())?;
        if !replayed {
            st.history.write().unwrap_or_else(|p| p.into_inner()).add_feedback(f.clone());
            audit(&principal, "feedback.create", Some(&code), f.id);
        }
        Ok((f, replayed))
    })
    .await
    .map_err(|e| Error::Storage(e.to_string()))??;
    let mut r = json(StatusCode::CREATED, &FeedbackOut::with_comment(&f, true))?;
    let location = format!("/api/v1/communes/{code}/adoptions/{id}");
    r.headers_mut().insert(actix_web::http::header::LOCATION, location.parse().map_err(|_| Error::Storage("location header".into()))?);
    mark_replay(&mut r, replayed);
    Ok(r)
}

/// Mature options proven nearby for one category, with their evidence. Every recommender
/// parameter can be overridden as a query parameter within its bounds (listed below).
#[utoipa::path(get, path = "/api/v1/communes/{code}/recommendations", tag = "recommendations",
    params(("code" = String, Path, description = "Code INSEE", example = "35238"),
        ("category" = String, Query, description = "Catalogue category slug", example = "poste-de-travail")),
    responses((status = 200, body = Answer), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn recommendations(s: State, path: web::Path<String>, q: web::Query<HashMap<String, String>>) -> Res {
    let code = InseeCode::parse(&path)?;
    let category = Slug::parse(q.get("category").ok_or_else(|| Error::Malformed("query parameter category is required".into()))?)?;
    let mut params = Params::default();
    let mut names: Vec<&String> = q.keys().filter(|k| k.as_str() != "category").collect();
    names.sort();
    for name in names {
        if !Params::is_param(name) {
            return Err(Error::Malformed(format!("unknown query parameter '{}'", name.chars().take(40).collect::<String>())));
        }
        params.set(name, &q[name])?;
    }
    // Answers are cached until the next write (or the next day): reads far outnumber writes.
    let key = format!("{code}\n{category}\n{}", serde_json::to_string(&params).unwrap_or_default());
    let h = read_history(&s);
    let (version, today) = (h.version(), s.today());
    let cached = s.answers.lock().unwrap_or_else(|p| p.into_inner()).get(&key).filter(|c| c.version == version && c.today == today).map(|c| c.body.clone());
    let body = match cached {
        Some(b) => b,
        None => {
            let answer = recommend(&ctx(&s, &h), &code, &category, &params)?;
            let body = web::Bytes::from(serde_json::to_vec(&answer).map_err(|e| Error::Storage(format!("serialising the response: {e}")))?);
            let mut cache = s.answers.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= super::MAX_CACHED_ANSWERS {
                cache.clear();
            }
            cache.insert(key, super::CachedAnswer { version, today, body: body.clone() });
            body
        }
    };
    Ok(HttpResponse::Ok().insert_header(actix_web::http::header::ContentType::json()).body(body))
}

/// Answer of `GET /api/v1/epcis/{siren}`.
#[derive(Serialize, ToSchema)]
pub(super) struct EpciOut {
    siren: Siren,
    name: String,
    kind: String,
    population: u32,
    members_in_scope: usize,
    /// Every member as INSEE lists it, largest first.
    members: Vec<EpciMember>,
}

/// An EPCI and its members.
#[utoipa::path(get, path = "/api/v1/epcis/{siren}", tag = "territory",
    params(("siren" = String, Path, description = "SIREN of the EPCI", example = "243500139")),
    responses((status = 200, body = EpciOut), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn epci(s: State, path: web::Path<String>) -> Res {
    let siren = Siren::parse(&path)?;
    let e = s.territory.epci(&siren)?;
    let members: Vec<CommuneIdx> = s.territory.members(&siren).to_vec();
    json(
        StatusCode::OK,
        &EpciOut {
            siren: e.siren,
            name: e.name.clone(),
            kind: e.kind.clone(),
            population: e.population,
            members_in_scope: members.len(),
            members: e.members.clone(),
        },
    )
}

/// The `horizon` query parameter in months (default 24, 1-120): 400 when not an integer, 422
/// out of bounds.
pub(super) fn horizon(q: &HashMap<String, String>) -> Result<u32, Error> {
    Ok(in_range("horizon", int_param(q, "horizon")?.unwrap_or(i64::from(DEFAULT_HORIZON_MONTHS)), 1, 120)? as u32)
}

/// Proposed groupements de commandes for the EPCI's members over the horizon.
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/pooled-purchases", tag = "pooling",
    params(("siren" = String, Path, description = "SIREN of the EPCI", example = "243500139"),
        ("horizon" = Option<i64>, Query, description = "Months ahead, 1 to 120, default 24", minimum = 1, maximum = 120)),
    responses((status = 200, body = PooledPurchases), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn pooled(s: State, path: web::Path<String>, q: web::Query<HashMap<String, String>>) -> Res {
    let siren = Siren::parse(&path)?;
    let horizon = horizon(&q)?;
    let h = read_history(&s);
    json(StatusCode::OK, &pooled_purchases(&ctx(&s, &h), &siren, horizon)?)
}

/// A catalogue category with its product count.
#[derive(Serialize, ToSchema)]
pub(super) struct CategoryOut {
    #[serde(flatten)]
    category: Category,
    /// Products in this category.
    products: usize,
}

/// Answer of `GET /api/v1/catalog/categories`.
#[derive(Serialize, ToSchema)]
pub(super) struct CategoriesOut {
    catalog_version: String,
    categories: Vec<CategoryOut>,
}

/// The catalogue's categories.
#[utoipa::path(get, path = "/api/v1/catalog/categories", tag = "catalog", responses((status = 200, body = CategoriesOut)))]
pub(super) async fn categories(s: State) -> Res {
    let list: Vec<_> = s.catalog.categories.iter().map(|c| CategoryOut { category: c.clone(), products: s.catalog.products_in(&c.slug).count() }).collect();
    json(StatusCode::OK, &CategoriesOut { catalog_version: s.catalog.version.clone(), categories: list })
}

/// Answer of `GET /api/v1/catalog/products`.
#[derive(Serialize, ToSchema)]
pub(super) struct ProductsOut<'a> {
    catalog_version: String,
    count: usize,
    products: Vec<&'a Product>,
}

/// The catalogue's products, optionally of one category.
#[utoipa::path(get, path = "/api/v1/catalog/products", tag = "catalog",
    params(("category" = Option<String>, Query, description = "Category slug", example = "etat-civil")),
    responses((status = 200, body = ProductsOut), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn products(s: State, q: web::Query<HashMap<String, String>>) -> Res {
    let category = q.get("category").map(|c| Slug::parse(c)).transpose()?;
    if let Some(c) = &category {
        s.catalog.category(c)?;
    }
    let list: Vec<_> = s.catalog.products.iter().filter(|p| category.as_ref().is_none_or(|c| p.categories.contains(c))).collect();
    json(StatusCode::OK, &ProductsOut { catalog_version: s.catalog.version.clone(), count: list.len(), products: list })
}

/// Logs a write for the audit trail (tracing target `voisinage::audit`): who (token id and
/// scope), what (action, commune, record id) and when (UTC). Never the token nor comment text.
fn audit(p: &Principal, action: &'static str, commune: Option<&InseeCode>, record: u64) {
    tracing::info!(
        target: "voisinage::audit",
        token = p.token_id,
        scope = %p.scope,
        action,
        commune = %commune.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        record,
        at = %chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "write"
    );
}

/// Body of `POST /api/v1/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenIn {
    /// `commune:{code}`, `epci:{siren}` or `admin`.
    #[schema(example = "commune:29019")]
    scope: String,
    /// Who holds it, at most 200 characters.
    #[serde(default)]
    label: Option<String>,
}

/// A token just created, with its secret (shown this once).
#[derive(Serialize, ToSchema)]
pub(super) struct TokenCreated {
    /// The secret: `vsn_` and 64 hex digits. Not stored; cannot be shown again.
    token: String,
    #[serde(flatten)]
    record: Token,
}

/// Answer of `GET /api/v1/tokens`.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenList {
    count: usize,
    tokens: Vec<Token>,
}

/// `POST /api/v1/tokens` (admin): creates a token; the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])), request_body = TokenIn,
    responses((status = 201, body = TokenCreated), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn create_token(admin: AdminToken, s: State, body: web::Json<JsonObject>) -> Res {
    let b: TokenIn = object(body.into_inner())?;
    let scope = Scope::parse(&b.scope)?;
    s.territory.check_scope(&scope)?;
    let label = b.label.unwrap_or_default();
    let st = s.clone();
    let (t, secret) = web::block(move || st.store.create_token(scope, &label, chrono::Utc::now())).await.map_err(|e| Error::Storage(e.to_string()))??;
    audit(&admin.0, "token.create", None, t.id);
    let mut r = json(StatusCode::CREATED, &TokenCreated { token: secret, record: t })?;
    r.headers_mut().insert(actix_web::http::header::CACHE_CONTROL, actix_web::http::header::HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /api/v1/tokens` (admin): every token, without secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = TokenList), (status = 403, body = Problem)))]
pub(super) async fn list_tokens(_admin: AdminToken, s: State) -> Res {
    let list = s.store.tokens()?;
    json(StatusCode::OK, &TokenList { count: list.len(), tokens: list })
}

/// `DELETE /api/v1/tokens/{id}` (admin): revokes a token at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Token id")),
    responses((status = 200, body = Token), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The token used is the one to revoke", body = Problem)))]
pub(super) async fn revoke_token(admin: AdminToken, s: State, path: web::Path<String>) -> Res {
    let id: u64 = path.parse().map_err(|_| Error::Malformed(format!("'{}' is not a token id", path.chars().take(20).collect::<String>())))?;
    if id == admin.0.token_id {
        return Err(Error::Conflict("a token cannot revoke itself: use another admin token, or `voisinage token revoke` with the service stopped".into()));
    }
    let st = s.clone();
    let t = web::block(move || st.store.revoke_token(id, chrono::Utc::now())).await.map_err(|e| Error::Storage(e.to_string()))??;
    audit(&admin.0, "token.revoke", None, t.id);
    json(StatusCode::OK, &t)
}
