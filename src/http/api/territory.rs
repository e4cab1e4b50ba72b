//! Communes, EPCI and the neighbour graph: `GET /api/v1/communes`, `/api/v1/communes/{code}`,
//! `/api/v1/communes/{code}/neighbours`, `/api/v1/epcis`, `/api/v1/epcis/{siren}`.
//! Sources: INSEE COG 2026 (communes, EPCI, populations), IGN Admin Express 2018 (borders).

use actix_web::http::StatusCode;
use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::core::domain::{InseeCode, Siren, SizeClass};
use crate::core::territory::{AliasKind, EdgeKind, EpciMember, Match, Place};
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

/// Another code or name of a commune (source: INSEE COG 2026, postal file `codes-postaux`).
#[derive(Serialize, ToSchema)]
pub struct AliasOut {
    kind: AliasKind,
    /// The code (postal code, INSEE code of the delegated commune or arrondissement).
    code: String,
    /// Its name; empty for a former code or a postal code named after the commune itself.
    name: String,
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
    /// `null` when no place can be derived (see `place`).
    centroid: Option<Centroid>,
    /// Area, km² (geodesic, 2018 polygons); `null` without a polygon of its own.
    area_km2: Option<f64>,
    /// Where the centroid and neighbours come from: its own 2018 polygon, or derived for a
    /// commune re-created since 2018 (`part_of`, `postal_code`), or `unknown`.
    place: Place,
    /// Postal codes, delegated and associated communes, arrondissements municipaux and former
    /// codes of the commune, by kind then code.
    other_codes: Vec<AliasOut>,
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
            centroid: c.centroid.map(|(lon, lat)| Centroid { lon, lat }),
            area_km2: c.area_km2,
            place: c.place.clone(),
            other_codes: {
                let mut v: Vec<AliasOut> =
                    t.aliases().iter().filter(|a| a.commune == idx).map(|a| AliasOut { kind: a.kind, code: a.code.clone(), name: a.name.clone() }).collect();
                v.sort_by(|a, b| (a.kind, &a.code, &a.name).cmp(&(b.kind, &b.code, &b.name)));
                v.dedup_by(|a, b| a.kind == b.kind && a.code == b.code);
                v
            },
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
            HopNeighbour { code: c.code, name: c.name.clone(), hops: n.hops, distance_km: (t.distance_km(idx, n.idx).unwrap_or(0.0) * 1000.0).round() / 1000.0 }
        })
        .collect();
    json(StatusCode::OK, &NeighboursOut { code: *code, hops, count: list.len(), neighbours: list })
}

/// How a search hit matched.
#[derive(Serialize, ToSchema)]
pub struct MatchOut {
    /// `code` (code INSEE), `name`, `approximate_name` (a typo), or the kind of the other code
    /// or name that matched: `postal_code`, `delegated`, `associated`, `arrondissement`,
    /// `former_code`.
    kind: String,
    /// The other code that matched (`29200`), when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    /// Its name (`Antrain`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// In French, as the page shows it: `code postal 29200 de Brest`, `commune déléguée
    /// Antrain (35004) de Val-Couesnon`, `nom approché`.
    label: String,
}

/// A commune found by the search.
#[derive(Serialize, ToSchema)]
pub struct CommuneHit {
    code: InseeCode,
    name: String,
    department: String,
    population: u32,
    epci_siren: Option<Siren>,
    matched: MatchOut,
}

/// Answer of `GET /api/v1/communes`.
#[derive(Serialize, ToSchema)]
pub struct SearchOut {
    q: String,
    /// Communes matching, all pages together.
    total: usize,
    /// The `offset` asked for.
    offset: usize,
    /// The `limit` asked for.
    limit: usize,
    /// Communes on this page.
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
    /// Hits to skip, 0 to 100,000, default 0.
    offset: Option<i64>,
}

/// Communes whose name or code matches, best first, `limit` of them from `offset`, with the
/// `total`. Accents, case, hyphens, apostrophes, `St`/`Saint` and a leading article aside,
/// small typos tolerated (ranked after); postal codes, delegated and associated communes,
/// arrondissements municipaux and former codes find the current commune, and each hit says how
/// it matched.
#[utoipa::path(get, path = "/api/v1/communes", tag = "territory",
    params(("q" = String, Query, description = "Name or code (code INSEE, postal code, former code; accents and case ignored), 1 to 100 characters", example = "saint malo"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20", minimum = 1, maximum = 100),
        ("offset" = Option<i64>, Query, description = "hits to skip, 0 to 100000, default 0", minimum = 0, maximum = 100000)),
    responses((status = 200, body = SearchOut), (status = 400, body = Problem), (status = 422, body = Problem)))]
pub async fn search_communes(s: web::Data<Service>, q: Query<SearchQuery>) -> Res {
    let query = q.q.as_deref().map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| Error::Malformed("query parameter q is required".into()))?;
    if query.chars().count() > 100 {
        return Err(Error::Invalid("q must be at most 100 characters".into()));
    }
    let limit = in_range("limit", q.limit.unwrap_or(20), 1, 100)? as usize;
    let offset = in_range("offset", q.offset.unwrap_or(0), 0, 100_000)? as usize;
    let t = s.territory();
    let page = t.search(query, offset, limit);
    let list: Vec<_> = page
        .hits
        .iter()
        .map(|hit| {
            let c = t.commune(hit.idx);
            let (kind, code, name) = match &hit.matched {
                Match::Code => ("code".to_string(), None, None),
                Match::Name => ("name".to_string(), None, None),
                Match::ApproximateName => ("approximate_name".to_string(), None, None),
                Match::Alias(a) => {
                    let a = &t.aliases()[*a];
                    let kind = serde_json::to_value(a.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                    (kind, Some(a.code.clone()), Some(a.name.clone()).filter(|n| !n.is_empty()))
                }
            };
            let matched = MatchOut { kind, code, name, label: t.match_label(hit) };
            CommuneHit { code: c.code, name: c.name.clone(), department: c.department.clone(), population: c.population, epci_siren: c.epci, matched }
        })
        .collect();
    json(StatusCode::OK, &SearchOut { q: query.to_string(), total: page.total, offset, limit, count: list.len(), communes: list })
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
