//! The French pages (server-rendered HTML, no JavaScript needed) and the EPCI exports (CSV for
//! LibreOffice and Excel, GeoJSON for QGIS). All data is escaped with [`escape`].

use std::collections::HashMap;
use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::AppState;
use super::routes::{horizon, not_allowed};
use crate::core::domain::{Siren, Slug};
use crate::core::map::{MapItem, MapStatus, escape, svg};
use crate::core::pooling::{Need, PooledPurchases, need_of, pooled_purchases};
use crate::core::recommend::Ctx;
use crate::core::territory::fold;
use crate::error::Error;

type Res = Result<HttpResponse, Error>;
type State = web::Data<AppState>;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    // GET and HEAD only; other methods get 405 with `Allow`, like the API.
    fn get_only(path: &str, route: impl Fn() -> actix_web::Route) -> actix_web::Resource {
        web::resource(path)
            .route(route().method(actix_web::http::Method::GET))
            .route(route().method(actix_web::http::Method::HEAD))
            .default_service(web::to(|| not_allowed("GET, HEAD")))
    }
    cfg.service(get_only("/", || web::route().to(index)))
        .service(get_only("/recherche", || web::route().to(|s: State, q| async move { in_french(&s.clone(), search(s, q).await) })))
        .service(get_only("/epcis/{siren}", || web::route().to(|s: State, p, q| async move { in_french(&s.clone(), epci_page(s, p, q).await) })))
        .service(get_only("/api/v1/epcis/{siren}/pooled-purchases.csv", || web::route().to(csv_export)))
        .service(get_only("/api/v1/epcis/{siren}/map.geojson", || web::route().to(geojson_export)));
}

/// A page's error as a French HTML page with the same status (the API answers problem+json).
fn in_french(s: &AppState, r: Res) -> Res {
    let e = match r {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    if e.status() >= 500 {
        return Err(e);
    }
    let title = match e.status() {
        404 => "Page introuvable",
        _ => "Demande incorrecte",
    };
    let c = format!(
        "<h1>{title}</h1><p>{}</p><p>Détail : {}</p>{}<p><a href=\"/\">Retour à l'accueil</a></p>",
        match e.status() {
            404 => "La commune, l'EPCI ou la catégorie demandée n'existe pas.",
            _ => "Un paramètre de l'adresse n'est pas valide (code SIREN sur 9 chiffres, catégorie du catalogue, horizon de 1 à 120 mois).",
        },
        escape(&e.to_string()),
        search_form("")
    );
    Ok(HttpResponse::build(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST)).content_type("text/html; charset=utf-8").body(page(
        title,
        simulated(s),
        &c,
    )))
}

fn html(body: String) -> Res {
    Ok(HttpResponse::build(StatusCode::OK).content_type("text/html; charset=utf-8").body(body))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:72rem;margin:0 auto;padding:1rem;color:#1a1a1a;background:#fff;line-height:1.45}\
a{color:#0b4f9c}table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}th,td{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#eef2f7}caption{text-align:left;font-weight:600;padding:.3rem 0}.simule{background:#fff3cd;border:1px solid #8a6d00;padding:.5rem}\
.legende{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}.pastille{display:inline-block;width:1rem;height:1rem;border:1px solid #333;vertical-align:middle;margin-right:.3rem}\
section.groupement{border-top:2px solid #0b4f9c;margin-top:1.5rem}label{font-weight:600}input,select,button{font-size:1rem;padding:.3rem}";

fn page(title: &str, simulated: bool, content: &str) -> String {
    let banner = if simulated {
        "<p class=\"simule\" role=\"note\"><strong>Données simulées.</strong> Les adoptions et retours affichés proviennent d'un historique simulé pour la démonstration : ce ne sont pas des avis réels sur les produits.</p>"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — voisinage</title><style>{STYLE}</style></head>\
<body><header><p><a href=\"/\">voisinage</a> : ce que les communes voisines utilisent déjà</p></header><main>{banner}{content}</main>\
<footer><p>Sources : INSEE COG 2026, IGN Admin Express 2018 (Licence Ouverte), endoflife.date (MIT). Communes et EPCI de Bretagne.</p></footer></body></html>",
        escape(title)
    )
}

fn search_form(q: &str) -> String {
    format!(
        "<form action=\"/recherche\" method=\"get\" role=\"search\"><label for=\"q\">Commune ou EPCI (nom, code INSEE ou SIREN)</label> <input id=\"q\" name=\"q\" value=\"{}\" required maxlength=\"100\"> <button type=\"submit\">Rechercher</button></form>",
        escape(q)
    )
}

fn simulated(s: &AppState) -> bool {
    s.store.demo_info().ok().flatten().is_some()
}

async fn index(s: State) -> Res {
    let mut c = String::from("<h1>Trouver une commune ou un EPCI</h1>");
    c.push_str(&search_form(""));
    c.push_str("<h2>EPCI</h2><ul>");
    for e in s.territory.epcis() {
        let _ = write!(c, "<li><a href=\"/epcis/{}\">{}</a> ({})</li>", e.siren, escape(&e.name), escape(&e.kind));
    }
    c.push_str("</ul>");
    html(page("Accueil", simulated(&s), &c))
}

async fn search(s: State, q: web::Query<HashMap<String, String>>) -> Res {
    let query = q.get("q").map(|v| v.trim().to_string()).unwrap_or_default();
    if query.chars().count() > 100 {
        return Err(Error::Invalid("q must be at most 100 characters".into()));
    }
    let mut c = format!("<h1>Résultats pour « {} »</h1>", escape(&query));
    c.push_str(&search_form(&query));
    if query.is_empty() {
        c.push_str("<p>Saisissez un nom ou un code.</p>");
        return html(page("Recherche", simulated(&s), &c));
    }
    let fq = fold(&query);
    let epcis: Vec<_> = s.territory.epcis().iter().filter(|e| e.siren.as_str() == query || fold(&e.name).contains(&fq)).take(20).collect();
    let communes = s.territory.search(&query, 20);
    let _ = write!(c, "<h2>EPCI ({})</h2><ul>", epcis.len());
    for e in epcis {
        let _ = write!(c, "<li><a href=\"/epcis/{}\">{}</a></li>", e.siren, escape(&e.name));
    }
    let _ = write!(c, "</ul><h2>Communes ({})</h2><ul>", communes.len());
    for i in communes {
        let cm = s.territory.commune(i);
        let epci = cm.epci.and_then(|e| s.territory.epci(&e).ok());
        match epci {
            Some(e) => {
                let _ = write!(c, "<li>{} ({}) — <a href=\"/epcis/{}\">{}</a></li>", escape(&cm.name), cm.code, e.siren, escape(&e.name));
            }
            None => {
                let _ = write!(c, "<li>{} ({}) — hors EPCI</li>", escape(&cm.name), cm.code);
            }
        }
    }
    c.push_str("</ul>");
    html(page("Recherche", simulated(&s), &c))
}

fn fr_int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    out
}

async fn epci_page(s: State, path: web::Path<String>, q: web::Query<HashMap<String, String>>) -> Res {
    let siren = Siren::parse(&path)?;
    let horizon = horizon(&q)?;
    let h = s.history.read().unwrap_or_else(|p| p.into_inner());
    let ctx = Ctx::new(&s.territory, &s.catalog, &h, s.today());
    let pp = pooled_purchases(&ctx, &siren, horizon)?;
    let epci = s.territory.epci(&siren)?;
    let category = match q.get("categorie") {
        Some(c) => {
            let c = Slug::parse(c)?;
            s.catalog.category(&c)?;
            c
        }
        None => pp.groupements.first().map(|g| g.category.clone()).unwrap_or_else(|| s.catalog.categories[0].slug.clone()),
    };
    let cat_label = s.catalog.category(&category).map(|c| c.label.clone()).unwrap_or_default();
    let members = s.territory.members(&siren);
    let mut c = String::new();
    let _ = write!(
        c,
        "<h1>{}</h1><p>{} — SIREN {} — {} habitants — {} communes membres (dont {} en Bretagne). Situation au {}, horizon de {} mois.</p>",
        escape(&epci.name),
        escape(&epci.kind),
        epci.siren,
        fr_int(u64::from(epci.population)),
        epci.members.len(),
        members.len(),
        pp.as_of,
        horizon
    );
    // Map.
    let items: Vec<MapItem> = members
        .iter()
        .map(|&m| {
            let cm = s.territory.commune(m);
            let need = need_of(&ctx, &cm.code, &category, horizon);
            let running: Vec<String> =
                h.active(&cm.code, &category, ctx.today).map(|a| product_label(&s, &a.product, a.generation.as_ref().map(|g| g.as_str()))).collect();
            let detail = if running.is_empty() { "aucun produit".to_string() } else { running.join(", ") };
            MapItem { code: cm.code, name: &cm.name, status: MapStatus::of(need.as_ref()), detail }
        })
        .collect();
    let _ = write!(c, "<h2>Carte : {}</h2>", escape(&cat_label));
    c.push_str("<form method=\"get\"><label for=\"categorie\">Catégorie</label> <select id=\"categorie\" name=\"categorie\">");
    for cat in &s.catalog.categories {
        let sel = if cat.slug == category { " selected" } else { "" };
        let _ = write!(c, "<option value=\"{}\"{sel}>{}</option>", cat.slug, escape(&cat.label));
    }
    let _ = write!(c, "</select> <input type=\"hidden\" name=\"horizon\" value=\"{horizon}\"> <button type=\"submit\">Afficher</button></form>");
    c.push_str(&svg(&s.shapes, &items, &format!("Communes membres de {} selon leur situation pour : {}", epci.name, cat_label), 720.0));
    c.push_str("<ul class=\"legende\" aria-label=\"Légende\">");
    for st in MapStatus::ALL {
        let n = items.iter().filter(|i| i.status == st).count();
        let _ = write!(c, "<li><span class=\"pastille\" style=\"background:{}\"></span>{} ({n})</li>", st.colour(), escape(st.label()));
    }
    c.push_str("</ul>");
    // Groupements.
    let _ = write!(c, "<h2>Groupements de commandes proposés ({})</h2>", pp.groupements.len());
    c.push_str("<p>Classés par intérêt pour les membres : nombre de communes concernées, pondéré par l'urgence de leur échéance.</p>");
    for g in &pp.groupements {
        let _ = write!(c, "<section class=\"groupement\" id=\"g-{}\"><h3>{}</h3><p>{}</p>", g.category, escape(&g.category_label), escape(&g.rank_reason));
        match &g.option {
            Some(o) => {
                let _ = write!(c, "<p><strong>Option proposée :</strong> {}</p>", escape(&o.reason));
            }
            None => c.push_str("<p><strong>Option proposée :</strong> aucune option éprouvée n'est en service à proximité.</p>"),
        }
        let _ = write!(c, "<p><strong>Coordonnateur suggéré :</strong> {}.", escape(&g.coordinator));
        if let Some(d) = g.earliest_deadline {
            let _ = write!(c, " <strong>Première échéance :</strong> {d} ({} commune(s) à échéance dans les 6 mois suivants).", g.due_together.len());
        }
        c.push_str("</p>");
        let _ = write!(c, "<p><strong>Volume :</strong> {} communes, {} habitants", g.volume.communes, fr_int(g.volume.population));
        if let Some(w) = g.volume.workstations {
            let _ = write!(c, ", {w} postes déclarés");
        }
        c.push('.');
        if let Some(p) = &g.volume.procedure {
            let _ = write!(c, " <strong>Procédure :</strong> {} ({}).", escape(&p.procedure), escape(&p.reference));
        }
        if let Some(n) = &g.volume.note {
            let _ = write!(c, " {}", escape(n));
        }
        c.push_str("</p>");
        let _ = write!(
            c,
            "<table><caption>Communes concernées : {}</caption><thead><tr><th scope=\"col\">Commune</th><th scope=\"col\">Population</th><th scope=\"col\">Motif</th><th scope=\"col\">Échéance</th></tr></thead><tbody>",
            escape(&g.category_label)
        );
        for m in &g.concerned {
            let _ = write!(
                c,
                "<tr><th scope=\"row\">{} ({})</th><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&m.member.name),
                m.member.code,
                fr_int(u64::from(m.member.population)),
                escape(&m.reason),
                m.need.deadline().map(|d| d.to_string()).unwrap_or_else(|| "—".into())
            );
        }
        c.push_str("</tbody></table>");
        if !g.already_on.is_empty() {
            let names: Vec<String> = g.already_on.iter().map(|m| escape(&m.name)).collect();
            let _ = write!(c, "<p><strong>Déjà sur l'option (contrat de maintenance commun possible) :</strong> {}.</p>", names.join(", "));
        }
        c.push_str("</section>");
    }
    // Members.
    c.push_str("<h2>Communes membres</h2><table><caption>Membres de l'EPCI</caption><thead><tr><th scope=\"col\">Commune</th><th scope=\"col\">Code INSEE</th><th scope=\"col\">Population</th></tr></thead><tbody>");
    for m in &epci.members {
        let _ = write!(c, "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>", escape(&m.name), m.code, fr_int(u64::from(m.population)));
    }
    let _ = write!(
        c,
        "</tbody></table><p>Exports : <a href=\"/api/v1/epcis/{0}/pooled-purchases.csv?horizon={1}\">tableau CSV</a> (LibreOffice, Excel), <a href=\"/api/v1/epcis/{0}/map.geojson?horizon={1}\">carte GeoJSON</a> (QGIS).</p>",
        epci.siren, horizon
    );
    html(page(&epci.name, simulated(&s), &c))
}

fn product_label(s: &AppState, product: &Slug, generation: Option<&str>) -> String {
    let p = s.catalog.product(product).ok();
    let name = p.map_or_else(|| product.to_string(), |p| p.name.clone());
    match generation {
        Some(g) => {
            let label = p.and_then(|p| p.generations.iter().find(|x| x.id.as_str() == g)).map_or_else(|| g.to_string(), |x| x.label.clone());
            format!("{name} {label}")
        }
        None => name,
    }
}

fn pooled(s: &AppState, siren: &Siren, horizon: u32) -> Result<PooledPurchases, Error> {
    let h = s.history.read().unwrap_or_else(|p| p.into_inner());
    pooled_purchases(&Ctx::new(&s.territory, &s.catalog, &h, s.today()), siren, horizon)
}

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

/// `GET /api/v1/epcis/{siren}/pooled-purchases.csv`: UTF-8 with BOM, `;` separator, one row
/// per member per groupement (members concerned, then members already on the option).
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/pooled-purchases.csv", tag = "pooling",
    params(("siren" = String, Path, description = "SIREN of the EPCI", example = "243500139"),
        ("horizon" = Option<i64>, Query, description = "Months ahead, 1 to 120, default 24", minimum = 1, maximum = 120)),
    responses((status = 200, description = "UTF-8 CSV with BOM, `;`-separated, one row per member per groupement", body = String, content_type = "text/csv"),
        (status = 400, body = super::openapi::Problem), (status = 404, body = super::openapi::Problem), (status = 422, body = super::openapi::Problem)))]
pub(super) async fn csv_export(s: State, path: web::Path<String>, q: web::Query<HashMap<String, String>>) -> Res {
    let siren = Siren::parse(&path)?;
    let horizon = horizon(&q)?;
    let pp = pooled(&s, &siren, horizon)?;
    let mut w = csv::WriterBuilder::new().delimiter(b';').from_writer(Vec::from("\u{feff}".as_bytes()));
    let csv_err = |e: csv::Error| Error::Storage(format!("csv: {e}"));
    w.write_record([
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
    ])
    .map_err(csv_err)?;
    let sim = if simulated(&s) { "oui" } else { "non" };
    for g in &pp.groupements {
        let (op, og) = g.option.as_ref().map_or((String::new(), String::new()), |o| (o.product_name.clone(), o.generation_label.clone().unwrap_or_default()));
        let procedure = g.volume.procedure.as_ref().map(|p| p.procedure.clone()).unwrap_or_default();
        let rows = g
            .concerned
            .iter()
            .map(|m| (&m.member, need_kind(&m.need), m.reason.clone(), m.need.deadline().map(|d| d.to_string()).unwrap_or_default()))
            .chain(g.already_on.iter().map(|m| (m, "deja_sur_option", "Déjà sur l'option proposée.".to_string(), String::new())));
        for (m, kind, reason, deadline) in rows {
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
            ];
            w.write_record(record.map(inert)).map_err(csv_err)?;
        }
    }
    let body = w.into_inner().map_err(|e| Error::Storage(format!("csv: {e}")))?;
    Ok(HttpResponse::build(StatusCode::OK)
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"groupements-{siren}.csv\"")))
        .body(body))
}

/// `GET /api/v1/epcis/{siren}/map.geojson`: member polygons (simplified) with, per category,
/// `{slug}_product`, `{slug}_generation` and `{slug}_status` properties (flat, for QGIS).
#[utoipa::path(get, path = "/api/v1/epcis/{siren}/map.geojson", tag = "pooling",
    params(("siren" = String, Path, description = "SIREN of the EPCI", example = "243500139"),
        ("horizon" = Option<i64>, Query, description = "Months ahead, 1 to 120, default 24", minimum = 1, maximum = 120)),
    responses((status = 200, description = "GeoJSON FeatureCollection of the member communes (WGS84), flat properties per category", body = Object, content_type = "application/geo+json"),
        (status = 400, body = super::openapi::Problem), (status = 404, body = super::openapi::Problem), (status = 422, body = super::openapi::Problem)))]
pub(super) async fn geojson_export(s: State, path: web::Path<String>, q: web::Query<HashMap<String, String>>) -> Res {
    let siren = Siren::parse(&path)?;
    let horizon = horizon(&q)?;
    s.territory.epci(&siren)?;
    let h = s.history.read().unwrap_or_else(|p| p.into_inner());
    let ctx = Ctx::new(&s.territory, &s.catalog, &h, s.today());
    let mut features = Vec::new();
    for &m in s.territory.members(&siren) {
        let cm = s.territory.commune(m);
        let Some(shape) = s.shapes.get(&cm.code) else { continue };
        let mut props = serde_json::Map::new();
        props.insert("code".into(), cm.code.to_string().into());
        props.insert("name".into(), cm.name.clone().into());
        props.insert("population".into(), cm.population.into());
        for cat in &s.catalog.categories {
            let a = h.active(&cm.code, &cat.slug, ctx.today).next();
            let status = MapStatus::of(need_of(&ctx, &cm.code, &cat.slug, horizon).as_ref());
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
    let fc = geojson::FeatureCollection { bbox: None, features, foreign_members: None };
    Ok(HttpResponse::build(StatusCode::OK).content_type("application/geo+json").body(fc.to_string()))
}
