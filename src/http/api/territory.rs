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
use crate::http::extract::{NoParams, Query, in_range};
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

/// A commune, its EPCI and its border neighbours.
///
/// The commune's name, department, population and size class, the codes of the former
/// communes merged into it, its centroid and area, where they come from (`place`: its own 2018
/// polygon, or derived for a commune re-created since 2018), its other codes (postal codes,
/// delegated and associated communes, arrondissements, former codes), its EPCI (`null` for
/// Île-de-Bréhat, Île-de-Sein and Ouessant) and its neighbours: each with the length of the
/// shared border and the distance between centroids (`nearest` edges link the islands that
/// touch nobody, `derived` ones a commune without a polygon). A code that is no current
/// commune's answers 404 naming the commune(s) meant (a postal code's, an arrondissement's
/// city, a delegated commune's commune nouvelle).
#[utoipa::path(get, path = "/api/v1/communes/{code}", tag = "territory", operation_id = "get_commune",
    params(("code" = String, Path, description = "Code INSEE of the commune")),
    responses((status = 200, description = "The commune", body = CommuneOut, example = json!({
            "code": "29019", "name": "Brest", "department": "29", "population": 142346, "size_class": "over10000", "former_codes": [],
            "centroid": {"lon": -4.50259, "lat": 48.40031}, "area_km2": 49.182, "place": {"kind": "polygon"},
            "other_codes": [
                {"kind": "former_code", "code": "29096", "name": ""}, {"kind": "former_code", "code": "29253", "name": ""},
                {"kind": "former_code", "code": "29258", "name": ""}, {"kind": "postal_code", "code": "29000", "name": ""},
                {"kind": "postal_code", "code": "29200", "name": ""}, {"kind": "postal_code", "code": "29240", "name": ""}],
            "epci": {"siren": "242900314", "name": "Brest Métropole", "kind": "METRO"},
            "neighbours": [
                {"code": "29011", "name": "Bohars", "kind": "border", "border_km": 6.839, "distance_km": 3.726},
                {"code": "29015", "name": "Bourg-Blanc", "kind": "border", "border_km": 1.492, "distance_km": 10.608},
                {"code": "29061", "name": "Gouesnou", "kind": "border", "border_km": 5.639, "distance_km": 5.919},
                {"code": "29069", "name": "Guilers", "kind": "border", "border_km": 4.741, "distance_km": 4.875},
                {"code": "29075", "name": "Guipavas", "kind": "border", "border_km": 5.155, "distance_km": 8.526},
                {"code": "29076", "name": "Milizac-Guipronvel", "kind": "border", "border_km": 2.16, "distance_km": 8.655},
                {"code": "29212", "name": "Plouzané", "kind": "border", "border_km": 4.724, "distance_km": 7.562}]})),
        (status = 400, description = "`malformed-input`: not a code INSEE (`3523`)", body = Problem),
        (status = 404, description = "`not-found`: no such commune in the territory; a postal code, an arrondissement's, a delegated commune's or a former code names the commune(s) meant", body = Problem)))]
pub async fn commune(s: web::Data<Service>, code: web::Path<InseeCode>, _no_query: Query<NoParams>) -> Res {
    let t = s.territory();
    let idx = t.find(&code)?;
    let c = t.commune(idx);
    let epci = c.epci.and_then(|e| t.epci(&e).ok()).map(|e| EpciRef { siren: e.siren, name: e.name.clone(), kind: e.kind.clone() });
    let neighbours: Vec<NeighbourOut> = t
        .neighbours(idx)
        .into_iter()
        .map(|(j, e)| {
            let n = t.commune(j);
            NeighbourOut { code: n.code, name: n.name.to_string(), kind: e.kind, border_km: e.border_km, distance_km: e.distance_km }
        })
        .collect();
    json(
        StatusCode::OK,
        &CommuneOut {
            code: c.code,
            name: c.name.to_string(),
            department: c.department.clone(),
            population: c.population,
            size_class: c.size_class(),
            former_codes: c.former_codes.clone(),
            centroid: c.centroid.map(|(lon, lat)| Centroid { lon, lat }),
            area_km2: c.area_km2,
            place: c.place.clone(),
            other_codes: {
                let mut v: Vec<AliasOut> = t.aliases_of_commune(idx).map(|a| AliasOut { kind: a.kind, code: a.code.clone(), name: a.name.clone() }).collect();
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

/// Communes within `hops` edges of a commune.
///
/// Every commune within `hops` edges of the neighbour graph, nearest first (by hops, then
/// distance between centroids).
#[utoipa::path(get, path = "/api/v1/communes/{code}/neighbours", tag = "territory", operation_id = "list_neighbours",
    params(("code" = String, Path, description = "Code INSEE"),
        ("hops" = Option<i64>, Query, description = "Graph distance, 1 to 6, default 1", minimum = 1, maximum = 6, example = 1)),
    responses((status = 200, description = "The communes within `hops` edges", body = NeighboursOut, example = json!({
            "code": "29019", "hops": 1, "count": 7, "neighbours": [
                {"code": "29011", "name": "Bohars", "hops": 1, "distance_km": 3.726},
                {"code": "29015", "name": "Bourg-Blanc", "hops": 1, "distance_km": 10.607},
                {"code": "29061", "name": "Gouesnou", "hops": 1, "distance_km": 5.919},
                {"code": "29069", "name": "Guilers", "hops": 1, "distance_km": 4.875},
                {"code": "29075", "name": "Guipavas", "hops": 1, "distance_km": 8.526},
                {"code": "29076", "name": "Milizac-Guipronvel", "hops": 1, "distance_km": 8.655},
                {"code": "29212", "name": "Plouzané", "hops": 1, "distance_km": 7.561}]})),
        (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 422, description = "`invalid-value`: `hops` out of 1 to 6", body = Problem)))]
pub async fn neighbours(s: web::Data<Service>, code: web::Path<InseeCode>, q: Query<NeighboursQuery>) -> Res {
    let t = s.territory();
    let idx = t.find(&code)?;
    let hops = in_range("hops", q.hops.unwrap_or(1), 1, 6)? as u32;
    let list: Vec<_> = t
        .within_hops(idx, hops)
        .into_iter()
        .map(|n| {
            let c = t.commune(n.idx);
            HopNeighbour {
                code: c.code,
                name: c.name.to_string(),
                hops: n.hops,
                distance_km: (t.distance_km(idx, n.idx).unwrap_or(0.0) * 1000.0).round() / 1000.0,
            }
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
    /// Name or code, 1 to 100 characters as sent (spaces around it then dropped).
    q: Option<String>,
    /// Most hits, 1 to 100, default 20.
    limit: Option<i64>,
    /// Hits to skip, 0 to 100,000, default 0.
    offset: Option<i64>,
}

/// Search communes by name or code, paginated.
///
/// Names compared as people type them: accents and case ignored, hyphens, spaces and
/// apostrophes alike, `St`/`Ste` for Saint/Sainte, a leading article optional, codes INSEE in
/// any case. Postal codes, communes déléguées and associées (by name and code),
/// arrondissements municipaux and former codes find the current commune. Rank: the code INSEE,
/// another code (a postal code before a former code), the name (whole, start, a word's start,
/// inside), a delegated commune's name, then names one or two typos away. A commune appears
/// once, with its best match, and `matched` says how. `limit` hits from `offset`, with the
/// `total`. `q` is 1 to 100 characters; one of spaces only finds nothing.
#[utoipa::path(get, path = "/api/v1/communes", tag = "territory", operation_id = "search_communes",
    params(("q" = String, Query, description = "Name or code (code INSEE, postal code, delegated commune, former code), 1 to 100 characters", min_length = 1, max_length = 100, example = "29200"),
        ("limit" = Option<i64>, Query, description = "Most hits, 1 to 100, default 20", minimum = 1, maximum = 100, example = 20),
        ("offset" = Option<i64>, Query, description = "Hits to skip, 0 to 100000, default 0", minimum = 0, maximum = 100000, example = 0)),
    responses((status = 200, description = "The communes found, best first, one page of them", body = SearchOut, example = json!({
            "q": "29200", "total": 2, "offset": 0, "limit": 20, "count": 2,
            "communes": [
                {"code": "29019", "name": "Brest", "department": "29", "population": 142346, "epci_siren": "242900314",
                    "matched": {"kind": "postal_code", "code": "29200", "label": "code postal 29200 de Brest"}},
                {"code": "29151", "name": "Morlaix", "department": "29", "population": 15194, "epci_siren": "242900835",
                    "matched": {"kind": "former_code", "code": "29200", "label": "ancien code 29200 de Morlaix"}}]})),
        (status = 400, description = "`malformed-input`: `q` missing or empty, `limit` or `offset` not an integer, a parameter given twice or unknown", body = Problem),
        (status = 422, description = "`invalid-value`: `q` over 100 characters, `limit` out of 1 to 100, `offset` out of 0 to 100000", body = Problem)))]
pub async fn search_communes(s: web::Data<Service>, q: Query<SearchQuery>) -> Res {
    // The length is the text's as sent (what the document's `maxLength` counts); spaces around
    // it are then dropped, and a query of spaces only finds nothing.
    let raw = q.q.as_deref().filter(|v| !v.is_empty()).ok_or_else(|| Error::Malformed("query parameter q is required (1 to 100 characters)".into()))?;
    if raw.chars().count() > 100 {
        return Err(Error::Invalid("q must be at most 100 characters".into()));
    }
    let query = raw.trim();
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
                    let kind = a.kind.as_str().to_string();
                    (kind, Some(a.code.clone()), Some(a.name.clone()).filter(|n| !n.is_empty()))
                }
            };
            let matched = MatchOut { kind, code, name, label: t.match_label(hit) };
            CommuneHit { code: c.code, name: c.name.to_string(), department: c.department.clone(), population: c.population, epci_siren: c.epci, matched }
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
///
/// Each EPCI with its SIREN, name, kind (`CC`, `CA`, `CU`, `METRO`), population and the number
/// of its members in the territory.
#[utoipa::path(get, path = "/api/v1/epcis", tag = "territory", operation_id = "list_epcis",
    responses((status = 200, description = "Every EPCI", body = EpciList, example = crate::http::api::examples::epcis)))]
pub async fn list_epcis(s: web::Data<Service>, _no_query: Query<NoParams>) -> Res {
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
///
/// Every member as INSEE lists it, largest first, each saying whether it is in the territory
/// served.
#[utoipa::path(get, path = "/api/v1/epcis/{siren}", tag = "territory", operation_id = "get_epci",
    params(("siren" = String, Path, description = "SIREN of the EPCI")),
    responses((status = 200, description = "The EPCI", body = EpciOut, example = json!({
            "siren": "242900314", "name": "Brest Métropole", "kind": "METRO", "population": 215278, "members_in_scope": 8,
            "members": [
                {"code": "29019", "name": "Brest", "population": 142346, "in_seeds": true},
                {"code": "29075", "name": "Guipavas", "population": 15538, "in_seeds": true},
                {"code": "29212", "name": "Plouzané", "population": 13567, "in_seeds": true},
                {"code": "29189", "name": "Plougastel-Daoulas", "population": 13434, "in_seeds": true},
                {"code": "29235", "name": "Le Relecq-Kerhuon", "population": 11897, "in_seeds": true},
                {"code": "29069", "name": "Guilers", "population": 8268, "in_seeds": true},
                {"code": "29061", "name": "Gouesnou", "population": 6501, "in_seeds": true},
                {"code": "29011", "name": "Bohars", "population": 3727, "in_seeds": true}]})),
        (status = 400, description = "`malformed-input`: not a SIREN (9 digits)", body = Problem),
        (status = 404, description = "`not-found`: no such EPCI in the territory", body = Problem)))]
pub async fn epci(s: web::Data<Service>, siren: web::Path<Siren>, _no_query: Query<NoParams>) -> Res {
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
