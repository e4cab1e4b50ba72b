//! The commune page (`/communes/{code}`): the commune (EPCI, population, border neighbours with
//! their distance), and for each category what it runs, the advice in one sentence, the first
//! recommendation with its evidence, and what its neighbours run. French, server-rendered, no
//! JavaScript.

use std::fmt::Write as _;

use actix_web::web;

use super::{PageError, PageResult, html, page};
use crate::core::catalog::Category;
use crate::core::domain::InseeCode;
use crate::core::fr;
use crate::core::map::escape;
use crate::core::recommend::{Answer, Ctx, Params, Recommendation, Status, recommend};
use crate::core::territory::CommuneIdx;
use crate::error::Error;
use crate::service::Service;

/// `GET /communes/{code}`: the commune page. Errors (French pages): 400 for a malformed code
/// INSEE, 404 for a commune not in the territory.
pub async fn commune_page(s: web::Data<Service>, code: web::Path<InseeCode>) -> PageResult {
    match render(&s, &code) {
        Ok(content) => html(content),
        Err(e) => Err(PageError::new(&s, e)),
    }
}

/// The whole page. Errors: `NotFound` for an unknown commune.
fn render(s: &Service, code: &InseeCode) -> Result<String, Error> {
    let content = s.with_ctx(|ctx| -> Result<String, Error> {
        let idx = ctx.territory.find(code)?;
        let mut c = header(ctx, idx);
        for cat in &ctx.catalog.categories {
            let answer = recommend(ctx, code, &cat.slug, &Params::default())?;
            c.push_str(&category_section(ctx, idx, cat, &answer));
        }
        Ok(c)
    })?;
    let name = &s.territory().commune(s.territory().find(code)?).name;
    Ok(page(name, s.is_simulated(), &content))
}

/// A link to a commune's page.
fn commune_link(ctx: &Ctx, j: CommuneIdx) -> String {
    let c = ctx.territory.commune(j);
    format!("<a href=\"/communes/{}\">{}</a>", c.code, escape(&c.name))
}

/// Name, code, EPCI, population, and the border neighbours with their distance.
fn header(ctx: &Ctx, idx: CommuneIdx) -> String {
    let t = ctx.territory;
    let c = t.commune(idx);
    let epci = match c.epci.and_then(|s| t.epci(&s).ok()) {
        Some(e) => format!("<a href=\"/epcis/{}\">{}</a>", e.siren, escape(&e.name)),
        None => "hors EPCI".to_string(),
    };
    let mut h = format!(
        "<h1>{} <small>({})</small></h1><p>{} habitants · département {} · {}</p><p>Situation au {}.</p>",
        escape(&c.name),
        c.code,
        fr::int(u64::from(c.population)),
        escape(&c.department),
        epci,
        ctx.today.format("%d/%m/%Y")
    );
    let neighbours = t.neighbours(idx);
    if neighbours.is_empty() {
        h.push_str("<p>Aucune commune limitrophe (île).</p>");
    } else {
        let _ = write!(h, "<h2>Communes voisines ({})</h2><ul>", neighbours.len());
        for (j, _) in &neighbours {
            let _ = write!(h, "<li>{} — {}</li>", commune_link(ctx, *j), fr::km(t.distance_km(idx, *j)));
        }
        h.push_str("</ul>");
    }
    h.push_str("<h2>Par catégorie</h2><p>Pour chaque catégorie : ce que la commune utilise, le conseil, l'option la mieux classée parmi celles éprouvées à proximité avec ses preuves, et ce que les communes voisines utilisent.</p>");
    h
}

/// French label of a maturity status.
fn status_label(s: Status) -> &'static str {
    match s {
        Status::Proven => "éprouvée à proximité",
        Status::NewestNotYetProven => "génération la plus récente, pas encore éprouvée à proximité",
        Status::NotYetProven => "pas encore éprouvée à proximité",
        Status::RatedPoorly => "en service à proximité mais mal notée",
    }
}

/// One category: what runs, the advice, the first recommendation, the neighbours' table.
fn category_section(ctx: &Ctx, idx: CommuneIdx, cat: &Category, a: &Answer) -> String {
    let mut c = format!("<section><h3>{}</h3>", escape(&cat.label));
    if a.current.is_empty() {
        c.push_str("<p>En service : rien de déclaré.</p>");
    }
    for p in &a.current {
        let rating = p.own_rating.map_or_else(|| "pas encore de retour".to_string(), |(m, n)| format!("note {}/5 sur {n} retour(s)", fr::decimal(m, 1)));
        let release = p.release.as_ref().filter(|r| Some(*r) != p.generation.as_ref()).map(|r| format!(", version {}", escape(r.as_str()))).unwrap_or_default();
        let _ = write!(
            c,
            "<p>En service : <strong>{}</strong>{release}, depuis le {} ({rating}).</p><p>Conseil : {}</p>",
            escape(&ctx.catalog.label(&p.product, p.generation.as_ref())),
            p.since.format("%d/%m/%Y"),
            escape(&p.reason)
        );
    }
    match a.items.first() {
        Some(r) => c.push_str(&recommendation(ctx, r)),
        None => {
            let note = a.scope.note.as_deref().unwrap_or("Aucune autre option en service à proximité.");
            let _ = write!(c, "<p>Option à proximité : aucune. {}</p>", escape(note));
        }
    }
    c.push_str(&neighbours_table(ctx, idx, cat));
    c.push_str("</section>");
    c
}

/// The first recommendation and its evidence (up to 5 communes).
fn recommendation(ctx: &Ctx, r: &Recommendation) -> String {
    let mut c = format!(
        "<p>Option la mieux classée : <strong>{}</strong> ({}). {}</p>",
        escape(&ctx.catalog.label(&r.product, r.generation.as_ref())),
        status_label(r.status),
        escape(&r.reason)
    );
    if r.evidence.is_empty() {
        return c;
    }
    c.push_str("<table><caption>Communes qui l'utilisent</caption><thead><tr><th>Commune</th><th>Distance</th><th>En service depuis</th><th>Note moyenne</th><th>Retours</th></tr></thead><tbody>");
    for e in r.evidence.iter().take(5) {
        let name = match ctx.territory.idx_of(&e.code) {
            Some(j) => commune_link(ctx, j),
            None => escape(&e.name),
        };
        let _ = write!(
            c,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.distance_km.map_or_else(|| "—".to_string(), fr::km),
            fr::months(e.months_in_service),
            e.mean_rating.map_or_else(|| "—".to_string(), |m| format!("{}/5", fr::decimal(m, 1))),
            e.n_ratings
        );
    }
    c.push_str("</tbody></table>");
    c
}

/// "Ce que vos voisines utilisent": each border neighbour and what it runs in the category.
fn neighbours_table(ctx: &Ctx, idx: CommuneIdx, cat: &Category) -> String {
    let t = ctx.territory;
    let neighbours = t.neighbours(idx);
    if neighbours.is_empty() {
        return String::new();
    }
    let mut c = String::from(
        "<table><caption>Ce que vos voisines utilisent</caption><thead><tr><th>Commune</th><th>Distance</th><th>Produit</th><th>Depuis</th></tr></thead><tbody>",
    );
    for (j, _) in &neighbours {
        let code = t.commune(*j).code;
        let running: Vec<String> = ctx
            .index
            .active(&code, &cat.slug, ctx.today)
            .map(|a| format!("{}|{}", escape(&ctx.catalog.label(&a.product, a.generation.as_ref())), a.since.format("%m/%Y")))
            .collect();
        let (product, since) = if running.is_empty() {
            ("rien de déclaré".to_string(), "—".to_string())
        } else {
            let (p, s): (Vec<&str>, Vec<&str>) = running.iter().filter_map(|x| x.split_once('|')).unzip();
            (p.join(" ; "), s.join(" ; "))
        };
        let _ = write!(c, "<tr><td>{}</td><td>{}</td><td>{product}</td><td>{since}</td></tr>", commune_link(ctx, *j), fr::km(t.distance_km(idx, *j)));
    }
    c.push_str("</tbody></table>");
    c
}
