//! Communes, EPCI and the neighbour graph: `GET /api/v1/communes`, `/api/v1/communes/{code}`,
//! `/api/v1/communes/{code}/neighbours`, `/api/v1/epcis`, `/api/v1/epcis/{siren}`.
//! Sources: INSEE COG 2026 (communes, EPCI, populations), IGN Admin Express 2018 (borders).

use actix_web::http::StatusCode;
use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::core::domain::{InseeCode, Siren, SizeClass};
use crate::core::territory::{EdgeKind, EpciMember};
use crate::error::Error;
use crate::http::extract::{Query, in_range};
use crate::http::problem::Problem;
use crate::http::respond::{Res, get_only, json};
use crate::service::Service;

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/api/v1/communes", search_communes))
        .service(get_only("/api/v1/communes/{code}", commune))
        .service(get_only("/api/v1/communes/{code}/neighbours", neighbours))
        .service(get_only("/api/v1/epcis", list_epcis))
        .service(get_only("/api/v1/epcis/{siren}", epci));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(search_communes, commune, neighbours, list_epcis, epci))]
pub struct Doc;

/// A border (or nearest) neighbour of a commune.
#[derive(Serialize, ToSchema)]
pub struct NeighbourOut {
    code: InseeCode,
    name: String,
    kind: EdgeKind,
    /// Length of the shared border, km (`null` for a nearest-commune edge).
    border_km: Option<f64>,
    /// Distance between centroids, km (haversine).
    distance_km: f64,
}

/// The EPCI a commune belongs to.
#[derive(Serialize, ToSchema)]
pub struct EpciRef {
    siren: Siren,
    name: String,
    /// `CC`, `CA`, `CU`, `METRO`.
    kind: String,
}

/// Centroid of a commune, WGS84 degrees.
#[derive(Serialize, ToSchema)]
pub struct Centroid {
    lon: f64,
    lat: f64,
}

/// Answer of `GET /api/v1/communes/{code}`.
#[derive(Serialize, ToSchema)]
pub struct CommuneOut {
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
pub async fn commune(s: web::Data<Service>, code: web::Path<InseeCode>) -> Res {
    let t = s.territory();
    let idx = t.find(&code)?;
    let c = t.commune(idx);
    let epci = c.epci.and_then(|e| t.epci(&e).ok()).map(|e| EpciRef { siren: e.siren, name: e.name.clone(), kind: e.kind.clone() });
    let neighbours: Vec<NeighbourOut> = t
        .neighbours(idx)
        .into_iter()
        .map(|(j, e)| {
            let n = t.commune(j);
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
pub struct HopNeighbour {
    code: InseeCode,
    name: String,
    /// Graph distance, 1 = border neighbour.
    hops: u32,
    /// Distance between centroids, km (haversine), rounded to metres.
    distance_km: f64,
}

/// Answer of `GET /api/v1/communes/{code}/neighbours`.
#[derive(Serialize, ToSchema)]
pub struct NeighboursOut {
    code: InseeCode,
    hops: u32,
    count: usize,
    /// Nearest first (by hops, then distance).
    neighbours: Vec<HopNeighbour>,
}

/// Query of `GET /api/v1/communes/{code}/neighbours`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighboursQuery {
    /// Graph distance, 1 to 6 (422 outside), default 1; 400 when not an integer.
    hops: Option<i64>,
}

/// Communes within `hops` of a commune in the neighbour graph.
#[utoipa::path(get, path = "/api/v1/communes/{code}/neighbours", tag = "territory",
    params(("code" = String, Path, description = "Code INSEE", example = "35238"),
        ("hops" = Option<i64>, Query, description = "1 to 6, default 1", minimum = 1, maximum = 6)),
    responses((status = 200, body = NeighboursOut), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn neighbours(s: web::Data<Service>, code: web::Path<InseeCode>, q: Query<NeighboursQuery>) -> Res {
    let t = s.territory();
    let idx = t.find(&code)?;
    let hops = in_range("hops", q.hops.unwrap_or(1), 1, 6)? as u32;
    let list: Vec<_> = t
        .within_hops(idx, hops)
        .into_iter()
        .map(|n| {
            let c = t.commune(n.idx);
            HopNeighbour { code: c.code, name: c.name.clone(), hops: n.hops, distance_km: (t.distance_km(idx, n.idx) * 1000.0).round() / 1000.0 }
        })
        .collect();
    json(StatusCode::OK, &NeighboursOut { code: *code, hops, count: list.len(), neighbours: list })
}

/// A commune found by the search.
#[derive(Serialize, ToSchema)]
pub struct CommuneHit {
    code: InseeCode,
    name: String,
    department: String,
    population: u32,
    epci_siren: Option<Siren>,
}

/// Answer of `GET /api/v1/communes`.
#[derive(Serialize, ToSchema)]
pub struct SearchOut {
    q: String,
    count: usize,
    communes: Vec<CommuneHit>,
}

/// Query of `GET /api/v1/communes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Name or code, 1 to 100 characters once trimmed.
    q: Option<String>,
    /// Most hits, 1 to 100, default 20.
    limit: Option<i64>,
}

/// Communes whose name or code matches (accents and case ignored), at most `limit`.
#[utoipa::path(get, path = "/api/v1/communes", tag = "territory",
    params(("q" = String, Query, description = "Name or code (accents and case ignored), 1 to 100 characters", example = "hoedic"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = SearchOut), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn search_communes(s: web::Data<Service>, q: Query<SearchQuery>) -> Res {
    let query = q.q.as_deref().map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| Error::Malformed("query parameter q is required".into()))?;
    if query.chars().count() > 100 {
        return Err(Error::Invalid("q must be at most 100 characters".into()));
    }
    let limit = in_range("limit", q.limit.unwrap_or(20), 1, 100)? as usize;
    let t = s.territory();
    let list: Vec<_> = t
        .search(query, limit)
        .into_iter()
        .map(|i| {
            let c = t.commune(i);
            CommuneHit { code: c.code, name: c.name.clone(), department: c.department.clone(), population: c.population, epci_siren: c.epci }
        })
        .collect();
    json(StatusCode::OK, &SearchOut { q: query.to_string(), count: list.len(), communes: list })
}

/// An EPCI in the list.
#[derive(Serialize, ToSchema)]
pub struct EpciSummary {
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
pub struct EpciList {
    count: usize,
    epcis: Vec<EpciSummary>,
}

/// Every EPCI of the territory.
#[utoipa::path(get, path = "/api/v1/epcis", tag = "territory", responses((status = 200, body = EpciList)))]
pub async fn list_epcis(s: web::Data<Service>) -> Res {
    let t = s.territory();
    let list: Vec<_> = t
        .epcis()
        .iter()
        .map(|e| EpciSummary {
            siren: e.siren,
            name: e.name.clone(),
            kind: e.kind.clone(),
            population: e.population,
            members_in_scope: t.members(&e.siren).len(),
        })
        .collect();
    json(StatusCode::OK, &EpciList { count: list.len(), epcis: list })
}

/// Answer of `GET /api/v1/epcis/{siren}`.
#[derive(Serialize, ToSchema)]
pub struct EpciOut {
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
pub async fn epci(s: web::Data<Service>, siren: web::Path<Siren>) -> Res {
    let t = s.territory();
    let e = t.epci(&siren)?;
    json(
        StatusCode::OK,
        &EpciOut {
            siren: e.siren,
            name: e.name.clone(),
            kind: e.kind.clone(),
            population: e.population,
            members_in_scope: t.members(&siren).len(),
            members: e.members.clone(),
        },
    )
}
