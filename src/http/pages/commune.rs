//! The commune page (`/communes/{code}`): the commune (EPCI, population, border neighbours with
//! their distance), and for each category what it runs, the advice in one sentence, the first
//! recommendation with its evidence, and what its neighbours run. French, server-rendered, no
//! JavaScript.

use std::fmt::Write as _;

use actix_web::web;

use super::forms::{Writer, adoption_forms, declare_form};
use super::session::SignedIn;
use super::{Nav, PageError, PageResult, page_query, page_with};
use crate::core::catalog::Category;
use crate::core::domain::InseeCode;
use crate::core::fr;
use crate::core::map::escape;
use crate::core::recommend::{Answer, Ctx, Params, Recommendation, Status, recommend};
use crate::core::territory::{AliasKind, CommuneIdx, Place};
use crate::error::Error;
use crate::service::Service;

/// Query of the commune page.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunePageQuery {
    /// The notice after a form was saved: `declaration`, `fin`, `correction` or `avis`.
    enregistre: Option<String>,
    /// The category the form was in: the notice is shown at the top of its section (where the
    /// page opens), else at the top of the page.
    categorie: Option<crate::core::domain::Slug>,
}

/// `GET /communes/{code}`: the commune page, with the forms for a signed-in commune, its EPCI
/// or the administrator. Errors (French pages): 400 for a malformed code INSEE, 404 for a
/// commune not in the territory.
pub async fn commune_page(
    s: web::Data<Service>,
    signed: SignedIn,
    code: web::Path<InseeCode>,
    q: Result<crate::http::extract::Query<CommunePageQuery>, actix_web::Error>,
) -> PageResult {
    let q = page_query(&s, q)?;
    let notice = match q.enregistre.as_deref() {
        Some("declaration") => Some("Déclaration enregistrée."),
        Some("fin") => Some("Fin d'utilisation enregistrée."),
        Some("correction") => Some("Correction enregistrée."),
        Some("avis") => Some("Avis enregistré. Merci : il aide les communes voisines."),
        _ => None,
    };
    let writer = signed.session().filter(|x| s.authorize_commune(&x.principal, &code).is_ok()).map(|session| Writer { session, state: None });
    let notice = notice.map(|n| (n, q.categorie.clone()));
    match render(&s, &code, writer.as_ref(), signed.session(), notice.as_ref().map(|(n, c)| (*n, c.as_ref()))) {
        Ok(body) => super::page_for(signed.session().is_some(), body),
        Err(e @ Error::NotFound(_)) => {
            let meant = probably_meant(&s, &code);
            // The list says in French what the English detail says.
            let e = if meant.is_empty() { e } else { Error::NotFound(format!("{code} n'est le code INSEE d'aucune commune actuelle")) };
            Err(PageError::with_more(&s, e, meant))
        }
        Err(e) => Err(PageError::new(&s, e)),
    }
}

/// For a code that is no current commune's: the communes it probably means (a postal code's,
/// an arrondissement's city, a delegated commune's commune nouvelle), as a French list of
/// links; empty when none.
fn probably_meant(s: &Service, code: &InseeCode) -> String {
    let t = s.territory();
    let mut items: Vec<String> = Vec::new();
    for a in t.aliases_of_code(code.as_str()) {
        let c = t.commune(a.commune);
        let what = match a.kind {
            AliasKind::PostalCode => format!("{} est le code postal {}", code, fr::de(&c.name)),
            AliasKind::FormerCode => format!("{} est un ancien code {}", code, fr::de(&c.name)),
            k => format!("{} est le code de la {} {} {}", code, k.fr(), a.name, fr::de(&c.name)),
        };
        let item = format!("<li>{} : <a href=\"/communes/{}\">{} ({})</a></li>", escape(&what), c.code, escape(&c.name), c.code);
        if !items.contains(&item) {
            items.push(item);
        }
    }
    if items.is_empty() { String::new() } else { format!("<p>Vouliez-vous dire :</p><ul>{}</ul>", items.join("")) }
}

/// The whole page; with a `writer` (signed in, covering the commune), the forms. Errors:
/// `NotFound` for an unknown commune.
pub fn render(
    s: &Service,
    code: &InseeCode,
    writer: Option<&Writer>,
    session: Option<&crate::core::session::Session>,
    notice: Option<(&str, Option<&crate::core::domain::Slug>)>,
) -> Result<String, Error> {
    let content = s.with_ctx(|ctx| -> Result<String, Error> {
        let idx = ctx.territory.find(code)?;
        let mut c = String::new();
        let in_section = notice.and_then(|(_, cat)| cat).filter(|cat| ctx.catalog.category(cat).is_ok());
        if let (Some((n, _)), None) = (notice, in_section) {
            let _ = write!(c, "<p class=\"ok\" role=\"status\">{}</p>", escape(n));
        }
        // A form sent back: said at the top too (its form may be further down, or no longer
        // drawn, for an adoption that has ended).
        if let Some(state) = writer.and_then(|w| w.state) {
            let messages: Vec<String> = state.errors.iter().map(|(_, m)| escape(m)).collect();
            let _ = write!(
                c,
                "<p class=\"erreur\" role=\"alert\">Le formulaire n'a pas été enregistré{}{}</p>",
                if messages.is_empty() { "." } else { " : " },
                messages.join(" ")
            );
        }
        c.push_str(&header(ctx, idx));
        c.push_str(&writer_intro(ctx, code, writer));
        for cat in &ctx.catalog.categories {
            let answer = recommend(ctx, code, &cat.slug, &Params::default())?;
            let here = notice.filter(|_| in_section == Some(&cat.slug)).map(|(n, _)| n);
            c.push_str(&category_section(ctx, idx, cat, &answer, writer, here));
        }
        Ok(c)
    })?;
    let name = &s.territory().commune(s.territory().find(code)?).name;
    Ok(page_with(name, &Nav::of(s, session), &content))
}

/// What a signed-in writer is told (and, for an EPCI or the administrator, the form printing
/// the commune's access code); the sign-in link otherwise.
fn writer_intro(ctx: &Ctx, code: &InseeCode, writer: Option<&Writer>) -> String {
    let Some(w) = writer else {
        return format!(
            "<p class=\"non-imprime\">Vous êtes la mairie ? <a href=\"/connexion?suite=/communes/{code}\">Connectez-vous</a> avec votre code d'accès pour déclarer vos logiciels et donner votre avis.</p>"
        );
    };
    let _ = ctx;
    let mut c = String::from(
        "<p>Vous pouvez déclarer ce que la commune utilise et donner votre avis : chaque catégorie ci-dessous a ses formulaires (« Déclarer un produit en service », « Donner un avis »…).</p>",
    );
    if !matches!(w.session.principal.scope, crate::core::auth::TokenScope::Commune(_)) {
        let _ = write!(
            c,
            "<form method=\"post\" action=\"/communes/{code}/lettre\" class=\"non-imprime\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Imprimer un courrier avec un nouveau code d'accès pour la mairie</button></form>",
            w.session.csrf
        );
    }
    c
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
        fr::date(ctx.today)
    );
    let mut other: Vec<String> = Vec::new();
    for (kind, label) in [
        (AliasKind::PostalCode, "Codes postaux"),
        (AliasKind::Delegated, "Communes déléguées"),
        (AliasKind::Associated, "Communes associées"),
        (AliasKind::Arrondissement, "Arrondissements municipaux"),
        (AliasKind::FormerCode, "Anciens codes"),
    ] {
        let mut v: Vec<String> = t
            .aliases_of_commune(idx)
            .filter(|a| a.kind == kind)
            .map(|a| if kind == AliasKind::PostalCode || a.name.is_empty() { a.code.clone() } else { format!("{} ({})", a.name, a.code) })
            .collect();
        v.sort();
        v.dedup();
        if !v.is_empty() {
            other.push(format!("{label} : {}", escape(&v.join(", "))));
        }
    }
    if !other.is_empty() {
        let _ = write!(h, "<p>{}</p>", other.join(" · "));
    }
    match &c.place {
        Place::Polygon => {}
        Place::PartOf { commune } => {
            let p = t.idx_of(commune).map(|j| commune_link(ctx, j)).unwrap_or_else(|| commune.to_string());
            let _ = write!(
                h,
                "<p>Pas de contour propre dans les données de 2018 (commune recréée depuis) : elle faisait partie de {p} (déduit du code postal et de l'EPCI), dont elle reprend la position et les voisines.</p>"
            );
        }
        Place::PostalCode { postal_codes } => {
            let _ = write!(
                h,
                "<p>Pas de contour propre dans les données de 2018 : reliée aux communes de son code postal ({}).</p>",
                escape(&postal_codes.join(", "))
            );
        }
        Place::Unknown => h.push_str("<p>Pas de contour ni de position dans les données (collectivité d'outre-mer) : aucune commune voisine connue.</p>"),
    }
    let neighbours = t.neighbours(idx);
    if neighbours.is_empty() {
        // A commune without a place already said so above; otherwise an island.
        if c.place != Place::Unknown {
            h.push_str("<p>Aucune commune limitrophe (île).</p>");
        }
    } else {
        let _ = write!(h, "<h2>Communes voisines ({})</h2><ul>", fr::count(neighbours.len() as u64, "commune limitrophe", "communes limitrophes"));
        for (j, _) in &neighbours {
            let _ = write!(h, "<li>{} — {}</li>", commune_link(ctx, *j), t.distance_km(idx, *j).map(fr::km).unwrap_or_default());
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
fn category_section(ctx: &Ctx, idx: CommuneIdx, cat: &Category, a: &Answer, writer: Option<&Writer>, notice: Option<&str>) -> String {
    let mut c = format!("<section id=\"categorie-{}\"><h3>{}</h3>", cat.slug, escape(&cat.label));
    if let Some(n) = notice {
        let _ = write!(c, "<p class=\"ok\" role=\"status\">{}</p>", escape(n));
    }
    if a.current.is_empty() {
        c.push_str("<p>En service : rien de déclaré.</p>");
    }
    for p in &a.current {
        let rating = p.own_rating.map_or_else(
            || "pas encore de retour".to_string(),
            |(m, n)| format!("note {}/5 sur {}", fr::decimal(m, 1), fr::count(u64::from(n), "retour", "retours")),
        );
        let release = p.release.as_ref().filter(|r| Some(*r) != p.generation.as_ref()).map(|r| format!(", version {}", escape(r.as_str()))).unwrap_or_default();
        let _ = write!(
            c,
            "<p>En service : <strong>{}</strong>{release}, depuis le {} ({rating}).</p><p>Conseil : {}</p>",
            escape(&ctx.catalog.label(&p.product, p.generation.as_ref())),
            fr::date(p.since),
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
    if let Some(w) = writer {
        let code = ctx.territory.commune(idx).code;
        for adoption in ctx.index.active(&code, &cat.slug, ctx.today) {
            c.push_str(&adoption_forms(ctx, &code, adoption, w));
        }
        c.push_str(&declare_form(ctx, &code, cat, w));
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
            .map(|a| format!("{}|{}", escape(&ctx.catalog.label(&a.product, a.generation.as_ref())), fr::month(a.since)))
            .collect();
        let (product, since) = if running.is_empty() {
            ("rien de déclaré".to_string(), "—".to_string())
        } else {
            let (p, s): (Vec<&str>, Vec<&str>) = running.iter().filter_map(|x| x.split_once('|')).unzip();
            (p.join(" ; "), s.join(" ; "))
        };
        let _ = write!(
            c,
            "<tr><td>{}</td><td>{}</td><td>{product}</td><td>{since}</td></tr>",
            commune_link(ctx, *j),
            t.distance_km(idx, *j).map(fr::km).unwrap_or_default()
        );
    }
    c.push_str("</tbody></table>");
    c
}
