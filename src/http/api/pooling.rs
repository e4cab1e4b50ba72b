//! Groupements de commandes for an EPCI, and their exports for EPCI staff:
//! `GET /api/v1/epcis/{siren}/pooled-purchases` (JSON), `.../pooled-purchases.xlsx`
//! (LibreOffice, Excel: typed cells), `.../pooled-purchases.csv` (for scripts) and
//! `GET /api/v1/epcis/{siren}/map.geojson` (QGIS). The files are written by
//! [`crate::export`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

use crate::core::domain::Siren;
use crate::core::map::MapStatus;
use crate::core::pooling::{PooledPurchases, need_of};
use crate::http::api::inventory::SpreadsheetFile;
use crate::http::extract::{HorizonQuery, Query};
use crate::http::problem::Problem;
use crate::http::respond::{Res, attachment, blocking, get_only, json};
use crate::inventory::XLSX_MEDIA_TYPE;
use crate::service::Service;

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/api/v1/epcis/{siren}/pooled-purchases", pooled))
        .service(get_only("/api/v1/epcis/{siren}/pooled-purchases.csv", csv_export))
        .service(get_only("/api/v1/epcis/{siren}/pooled-purchases.xlsx", xlsx_export))
        .service(get_only("/api/v1/epcis/{siren}/map.geojson", geojson_export));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(pooled, csv_export, xlsx_export, geojson_export))]
pub struct Doc;

/// Groupements de commandes proposed to an EPCI.
///
/// Per category, the members that need something within the horizon (no product, end of
/// support, a regulatory date the generation fails, a contract end, a poor rating), the option
/// most proven among the members and their neighbours, the members already on it, the volume
/// (with the pooled amount and the procurement procedure when the EPCI recorded a price
/// estimate), the deadline and the coordinator; needs of one commune alone in `single_needs`.
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/pooled-purchases", tag = "pooling", operation_id = "get_pooled_purchases",
    params(("siren" = String, Path, description = "SIREN of the EPCI"),
        ("horizon" = Option<i64>, Query, description = "Months ahead, 1 to 120, default 24", minimum = 1, maximum = 120, example = 24),
        ("as_of" = Option<String>, Query, description = "Ask at this past date (YYYY-MM-DD, from 1980-01-01 to today); default: today", format = Date)),
    responses((status = 200, description = "The groupements and needs (here: Quimper Bretagne Occidentale, shortened)", body = PooledPurchases,
            example = crate::http::api::examples::pooled_purchases),
        (status = 400, body = Problem), (status = 404, description = "`not-found`: no such EPCI", body = Problem),
        (status = 422, description = "`invalid-value`: `horizon` out of 1 to 120, `as_of` before 1980-01-01 or after today", body = Problem)))]
pub async fn pooled(s: web::Data<Service>, siren: web::Path<Siren>, q: Query<HorizonQuery>) -> Res {
    json(StatusCode::OK, &s.pooled_purchases(&siren, q.months()?, q.as_of)?)
}

/// The pooled purchases as CSV, for scripts.
///
/// `GET /api/v1/epcis/{siren}/pooled-purchases.csv`: UTF-8 with BOM, `;` separator, dates
/// `YYYY-MM-DD`, amounts with a decimal comma; one row per member per groupement, per need of
/// one commune and per member whose path stays in its product (column `ligne`), with the
/// option's maturity, the procedure, the pooled amount and the EPCI's estimate
/// ([`crate::export::pooled_rows`]). A spreadsheet guesses the cells' types (French
/// LibreOffice reads the code `01001` as the number 1001): people should open
/// `pooled-purchases.xlsx`, the same rows with typed cells.
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/pooled-purchases.csv", tag = "pooling", operation_id = "export_pooled_purchases_csv",
    params(("siren" = String, Path, description = "SIREN of the EPCI"),
        ("horizon" = Option<i64>, Query, description = "Months ahead, 1 to 120, default 24", minimum = 1, maximum = 120, example = 24),
        ("as_of" = Option<String>, Query, description = "Ask at this past date (YYYY-MM-DD, from 1980-01-01 to today); default: today", format = Date)),
    responses((status = 200, description = "UTF-8 CSV with BOM, `;`-separated, one row per member per groupement (for scripts)", body = String, content_type = "text/csv",
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"groupements-{siren}.csv\"`")),
            example = json!("\u{feff}categorie;libelle_categorie;code_insee;commune;population;besoin;motif;echeance;option_produit;option_generation;coordonnateur;procedure;simule;ligne;statut_option;montant_estime_eur_ht;prix_unitaire_eur_ht;base_estimation;estimation_par;estimation_du\n\
sauvegarde;Sauvegarde;29061;Gouesnou;6501;fin_de_support;Proxmox Backup Server 3 n'est plus supporté depuis le 31 août 2026.;2026-08-31;Proxmox Backup Server;4;Gouesnou;;oui;besoin_seul;newest_not_yet_proven;;;;;\n")),
        (status = 400, body = Problem), (status = 404, description = "`not-found`: no such EPCI", body = Problem),
        (status = 422, description = "`invalid-value`: `horizon` out of 1 to 120, `as_of` before 1980-01-01 or after today", body = Problem)))]
pub async fn csv_export(s: web::Data<Service>, siren: web::Path<Siren>, q: Query<HorizonQuery>) -> Res {
    let horizon = q.months()?;
    let body = s.pooled_purchases_csv(&siren, horizon, q.as_of)?;
    attachment("text/csv; charset=utf-8", &format!("groupements-{siren}.csv"), body)
}

/// The pooled purchases as a workbook (XLSX), for people.
///
/// `GET /api/v1/epcis/{siren}/pooled-purchases.xlsx`: the CSV's rows with typed cells, a
/// frozen header row and a `Source` sheet ([`crate::export::pooled_purchases_xlsx`]).
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/pooled-purchases.xlsx", tag = "pooling", operation_id = "export_pooled_purchases_xlsx",
    description = "The rows of `pooled-purchases.csv` as a workbook to open in LibreOffice or Excel: sheet `Groupements` (header row frozen, with a filter; `code_insee` and `option_generation` text cells, `population` a number, `echeance` and `estimation_du` date cells `dd/mm/yyyy`, `montant_estime_eur_ht` and `prix_unitaire_eur_ht` numbers in euros; `simule` = `oui` on the simulated demo data) and sheet `Source` (the EPCI, SIREN, date of the situation, horizon, source, whether the data are simulated, and what each column holds).",
    params(("siren" = String, Path, description = "SIREN of the EPCI"),
        ("horizon" = Option<i64>, Query, description = "Months ahead, 1 to 120, default 24", minimum = 1, maximum = 120, example = 24),
        ("as_of" = Option<String>, Query, description = "Ask at this past date (YYYY-MM-DD, from 1980-01-01 to today); default: today", format = Date)),
    responses((status = 200, description = "XLSX workbook (sheets Groupements and Source), sent as an attachment `groupements-{siren}.xlsx`", body = inline(SpreadsheetFile),
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"groupements-{siren}.xlsx\"`"))),
        (status = 400, description = "A malformed SIREN, or a parameter that is not a number or a date", body = Problem),
        (status = 404, description = "No EPCI with this SIREN", body = Problem),
        (status = 422, description = "`invalid-value`: `horizon` out of 1 to 120, `as_of` before 1980-01-01 or after today", body = Problem)))]
pub async fn xlsx_export(s: web::Data<Service>, siren: web::Path<Siren>, q: Query<HorizonQuery>) -> Res {
    let (siren, horizon, as_of) = (siren.into_inner(), q.months()?, q.as_of);
    let st = s.clone();
    let body = blocking(move || st.pooled_purchases_xlsx(&siren, horizon, as_of)).await?;
    attachment(XLSX_MEDIA_TYPE, &format!("groupements-{siren}.xlsx"), body)
}

/// The EPCI's members as a map (GeoJSON).
///
/// `GET /api/v1/epcis/{siren}/map.geojson`: one feature per member with a shape, its INSEE code
/// as the feature's `id` and `properties.code`, its simplified polygons (MultiPolygon, WGS84,
/// valid, outer rings counter-clockwise and holes clockwise as RFC 7946 §3.1.6 asks, see
/// `seeds/README.md`) and, per category, `{slug}_product`, `{slug}_generation` and
/// `{slug}_status` properties (flat, for QGIS).
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/map.geojson", tag = "pooling", operation_id = "export_map_geojson",
    params(("siren" = String, Path, description = "SIREN of the EPCI"),
        ("horizon" = Option<i64>, Query, description = "Months ahead, 1 to 120, default 24", minimum = 1, maximum = 120, example = 24),
        ("as_of" = Option<String>, Query, description = "Ask at this past date (YYYY-MM-DD, from 1980-01-01 to today); default: today", format = Date)),
    responses((status = 200, description = "GeoJSON FeatureCollection of the member communes (here: Brest Métropole, the feature of Bohars only)", body = Object,
            content_type = "application/geo+json", example = crate::http::api::examples::map),
        (status = 400, body = Problem), (status = 404, description = "`not-found`: no such EPCI", body = Problem),
        (status = 422, description = "`invalid-value`: `horizon` out of 1 to 120, `as_of` before 1980-01-01 or after today", body = Problem)))]
pub async fn geojson_export(s: web::Data<Service>, siren: web::Path<Siren>, q: Query<HorizonQuery>) -> Res {
    let horizon = q.months()?;
    s.territory().epci(&siren)?;
    let features = s.with_ctx_at(q.as_of, |ctx| {
        let mut features = Vec::new();
        for &m in ctx.territory.members(&siren) {
            let cm = ctx.territory.commune(m);
            let Some(shape) = s.shapes().get(&cm.code) else { continue };
            let mut props = serde_json::Map::new();
            props.insert("code".into(), cm.code.to_string().into());
            props.insert("name".into(), cm.name.to_string().into());
            props.insert("population".into(), cm.population.into());
            for cat in &ctx.catalog.categories {
                let a = ctx.index.active(&cm.code, &cat.slug, ctx.today).next();
                let status = MapStatus::of(need_of(ctx, &cm.code, &cat.slug, horizon).as_ref());
                props.insert(format!("{}_product", cat.slug), a.map(|a| serde_json::Value::from(a.product.to_string())).unwrap_or(serde_json::Value::Null));
                props.insert(
                    format!("{}_generation", cat.slug),
                    a.and_then(|a| a.generation.as_ref()).map(|g| serde_json::Value::from(g.to_string())).unwrap_or(serde_json::Value::Null),
                );
                props.insert(format!("{}_status", cat.slug), status.id().into());
            }
            let geometry = geojson::Geometry::new(geojson::GeometryValue::from(&shape));
            let id = Some(geojson::feature::Id::String(cm.code.to_string()));
            features.push(geojson::Feature { bbox: None, geometry: Some(geometry), id, properties: Some(props), foreign_members: None });
        }
        features
    })?;
    let fc = geojson::FeatureCollection { bbox: None, features, foreign_members: None };
    Ok(HttpResponse::build(StatusCode::OK).content_type("application/geo+json").body(fc.to_string()))
}
