//! Groupements de commandes for an EPCI, and their exports for EPCI staff:
//! `GET /api/v1/epcis/{siren}/pooled-purchases` (JSON), `.../pooled-purchases.csv`
//! (LibreOffice, Excel) and `GET /api/v1/epcis/{siren}/map.geojson` (QGIS).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

use crate::core::domain::Siren;
use crate::core::map::MapStatus;
use crate::core::pooling::{Concerned, Member, Need, PooledPurchases, need_of};
use crate::error::Error;
use crate::http::extract::{HorizonQuery, Query};
use crate::http::problem::Problem;
use crate::http::respond::{Res, get_only, json};
use crate::service::Service;

/// The routes of this resource.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/api/v1/epcis/{siren}/pooled-purchases", pooled))
        .service(get_only("/api/v1/epcis/{siren}/pooled-purchases.csv", csv_export))
        .service(get_only("/api/v1/epcis/{siren}/map.geojson", geojson_export));
}

/// The OpenAPI paths of this resource.
#[derive(OpenApi)]
#[openapi(paths(pooled, csv_export, geojson_export))]
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

/// The `besoin` column of the CSV: the kind of need, in French snake case.
fn need_kind(n: &Need) -> &'static str {
    match n {
        Need::NoProduct => "aucun_produit",
        Need::EndOfSupport { .. } => "fin_de_support",
        Need::EndsSoon { .. } => "fin_de_support_proche",
        Need::Regulation { .. } => "reglementation",
        Need::ContractEnds { .. } => "fin_de_contrat",
        Need::PoorRating { .. } => "peu_fiable",
    }
}

/// A CSV cell that a spreadsheet will not read as a formula: text starting with `=`, `+`, `-`,
/// `@`, tab or carriage return gets a leading `'` (OWASP "CSV injection"). Numbers are left as
/// they are.
fn inert(cell: &str) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.parse::<f64>().is_err();
    if risky { format!("'{cell}") } else { cell.to_string() }
}

/// Header of the CSV export.
const CSV_HEADER: [&str; 20] = [
    "categorie",
    "libelle_categorie",
    "code_insee",
    "commune",
    "population",
    "besoin",
    "motif",
    "echeance",
    "option_produit",
    "option_generation",
    "coordonnateur",
    "procedure",
    "simule",
    "ligne",
    "statut_option",
    "montant_estime_eur_ht",
    "prix_unitaire_eur_ht",
    "base_estimation",
    "estimation_par",
    "estimation_du",
];

/// An amount as a French spreadsheet reads a number: `52000`, `52000,50`.
fn csv_amount(a: crate::core::prices::EurHt) -> String {
    match a.cents() % 100 {
        0 => a.whole_euros().to_string(),
        c => format!("{},{c:02}", a.whole_euros()),
    }
}

/// The member, need kind, reason and deadline of a member with a need.
fn need_row(m: &Concerned) -> (&Member, &'static str, String, String) {
    (&m.member, need_kind(&m.need), m.reason.clone(), m.need.deadline().map(|d| d.to_string()).unwrap_or_default())
}

/// The CSV rows of the pooled purchases: one per member per groupement (members concerned,
/// then members already on the option: `ligne` = `groupement`), then the needs of one commune
/// alone (`besoin_seul`), then the members whose path stays in their product
/// (`hors_groupement`); `statut_option` is the option's maturity (`proven`, ...); the pooled
/// amount (`montant_estime_eur_ht`, empty without a complete estimate), the EPCI's price per
/// commune or seat, its basis (`par commune`, `par poste`), who made it and when. Cells made
/// inert.
fn csv_rows(pp: &PooledPurchases, simulated: bool) -> Vec<[String; 20]> {
    let sim = if simulated { "oui" } else { "non" };
    let mut out = Vec::new();
    let lists = pp.groupements.iter().map(|g| ("groupement", g)).chain(pp.single_needs.iter().map(|g| ("besoin_seul", g)));
    for (line, g) in lists {
        let (op, og) = g.option.as_ref().map_or((String::new(), String::new()), |o| (o.product_name.clone(), o.generation_label.clone().unwrap_or_default()));
        let status =
            g.option.as_ref().map(|o| serde_json::to_value(o.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()).unwrap_or_default();
        let procedure = g.volume.procedure.as_ref().map(|p| p.procedure.clone()).unwrap_or_default();
        let amount = g.volume.estimated_amount_eur_ht.map(csv_amount).unwrap_or_default();
        let e = g.volume.estimate.as_ref();
        let (unit, basis) = e.map_or((String::new(), ""), |e| (csv_amount(e.amount_eur_ht), e.basis.fr()));
        let (by, made_on) = e.map_or((String::new(), String::new()), |e| (e.by.name.clone(), e.made_on.to_string()));
        let rows = g
            .concerned
            .iter()
            .map(|m| (line, need_row(m)))
            .chain(g.already_on.iter().map(|m| (line, (m, "deja_sur_option", "Déjà sur l'option proposée.".to_string(), String::new()))))
            .chain(g.own_path.iter().map(|m| ("hors_groupement", need_row(m))));
        for (line, (m, kind, reason, deadline)) in rows {
            let population = m.population.to_string();
            let record = [
                g.category.as_str(),
                &g.category_label,
                m.code.as_str(),
                &m.name,
                &population,
                kind,
                &reason,
                &deadline,
                &op,
                &og,
                &g.coordinator,
                &procedure,
                sim,
                line,
                &status,
                &amount,
                &unit,
                basis,
                &by,
                &made_on,
            ];
            out.push(record.map(inert));
        }
    }
    out
}

/// The pooled purchases as a spreadsheet (CSV).
///
/// `GET /api/v1/epcis/{siren}/pooled-purchases.csv`: UTF-8 with BOM, `;` separator (as
/// LibreOffice and Excel in French open it), one row per member per groupement, per need of
/// one commune and per member whose path stays in its product (column `ligne`), with the
/// option's maturity, the procedure, the pooled amount and the EPCI's estimate.
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/pooled-purchases.csv", tag = "pooling", operation_id = "export_pooled_purchases_csv",
    params(("siren" = String, Path, description = "SIREN of the EPCI"),
        ("horizon" = Option<i64>, Query, description = "Months ahead, 1 to 120, default 24", minimum = 1, maximum = 120, example = 24),
        ("as_of" = Option<String>, Query, description = "Ask at this past date (YYYY-MM-DD, from 1980-01-01 to today); default: today", format = Date)),
    responses((status = 200, description = "UTF-8 CSV with BOM, `;`-separated, one row per member per groupement", body = String, content_type = "text/csv",
            headers(("Content-Disposition" = String)),
            example = json!("\u{feff}categorie;libelle_categorie;code_insee;commune;population;besoin;motif;echeance;option_produit;option_generation;coordonnateur;procedure;simule;ligne;statut_option;montant_estime_eur_ht;prix_unitaire_eur_ht;base_estimation;estimation_par;estimation_du\n\
sauvegarde;Sauvegarde;29061;Gouesnou;6501;fin_de_support;Proxmox Backup Server 3 n'est plus supporté depuis le 31 août 2026.;2026-08-31;Proxmox Backup Server;4;Gouesnou;;oui;besoin_seul;newest_not_yet_proven;;;;;\n")),
        (status = 400, body = Problem), (status = 404, description = "`not-found`: no such EPCI", body = Problem),
        (status = 422, description = "`invalid-value`: `horizon` out of 1 to 120, `as_of` before 1980-01-01 or after today", body = Problem)))]
pub async fn csv_export(s: web::Data<Service>, siren: web::Path<Siren>, q: Query<HorizonQuery>) -> Res {
    let pp = s.pooled_purchases(&siren, q.months()?, q.as_of)?;
    let mut w = csv::WriterBuilder::new().delimiter(b';').from_writer(Vec::from("\u{feff}".as_bytes()));
    let csv_err = |e: csv::Error| Error::internal("writing the CSV export", e);
    w.write_record(CSV_HEADER).map_err(csv_err)?;
    for row in csv_rows(&pp, s.is_simulated()) {
        w.write_record(&row).map_err(csv_err)?;
    }
    let body = w.into_inner().map_err(|e| Error::internal("writing the CSV export", e.into_error()))?;
    Ok(HttpResponse::build(StatusCode::OK)
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"groupements-{siren}.csv\"")))
        .body(body))
}

/// The EPCI's members as a map (GeoJSON).
///
/// `GET /api/v1/epcis/{siren}/map.geojson`: member polygons (simplified, WGS84) with, per
/// category, `{slug}_product`, `{slug}_generation` and `{slug}_status` properties (flat, for
/// QGIS).
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
            props.insert("name".into(), cm.name.clone().into());
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
            let geometry = geojson::Geometry::new(geojson::GeometryValue::from(shape));
            features.push(geojson::Feature { bbox: None, geometry: Some(geometry), id: None, properties: Some(props), foreign_members: None });
        }
        features
    })?;
    let fc = geojson::FeatureCollection { bbox: None, features, foreign_members: None };
    Ok(HttpResponse::build(StatusCode::OK).content_type("application/geo+json").body(fc.to_string()))
}
