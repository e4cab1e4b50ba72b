//! The EPCI page (`/epcis/{siren}?categorie=&horizon=`): who runs what on a map of the
//! members for one category, the groupements de commandes proposed, the members, links to
//! the exports (groupements as XLSX, or CSV for scripts; the inventory in service as XLSX;
//! the GeoJSON map), and to the inventory template (XLSX).

use std::fmt::Write as _;

use actix_web::web;
use serde::Deserialize;

use super::session::SignedIn;
use super::{Nav, PageError, PageResult, page_query, page_with};
use crate::core::domain::{Siren, Slug};
use crate::core::fr;
use crate::core::map::{MapItem, MapStatus, escape, svg};
use crate::core::pooling::{Groupement, PooledPurchases, need_of};
use crate::core::recommend::Ctx;
use crate::core::session::Session;
use crate::core::territory::Epci;
use crate::error::Error;
use crate::http::extract::{HorizonQuery, Query};
use crate::service::Service;

/// Query of the EPCI page.
#[derive(Deserialize)]
pub struct EpciPageQuery {
    /// Category shown on the map; default: the first groupement's, else the catalogue's first.
    categorie: Option<Slug>,
    /// Months ahead, 1 to 120, default 24 (see [`HorizonQuery`]).
    horizon: Option<i64>,
    /// The notice after a form was saved: `estimation`.
    enregistre: Option<String>,
}

/// `GET /epcis/{siren}`: the EPCI page; for the EPCI signed in (or admin), the inventory upload
/// form and, on each groupement, the link to record an estimated price.
pub async fn epci_page(s: web::Data<Service>, signed: SignedIn, siren: web::Path<Siren>, q: Result<Query<EpciPageQuery>, actix_web::Error>) -> PageResult {
    let q = page_query(&s, q)?;
    let writer = signed.session().filter(|x| s.authorize_epci(&x.principal, &siren).is_ok());
    match render(&s, &siren, &q, writer) {
        Ok(content) => {
            let body = page_with(&s.territory().epci(&siren).map(|e| e.name.clone()).unwrap_or_default(), &Nav::of(&s, signed.session()), &content);
            super::page_for(signed.session().is_some(), body)
        }
        Err(e) => Err(PageError::new(&s, e)),
    }
}

/// The page's content. Errors: `Invalid` (horizon), `NotFound` (EPCI, category).
fn render(s: &Service, siren: &Siren, q: &EpciPageQuery, writer: Option<&Session>) -> Result<String, Error> {
    let horizon = HorizonQuery { horizon: q.horizon, as_of: None }.months()?;
    let estimates = s.price_estimates(siren)?;
    let content = s.with_ctx(|ctx| -> Result<String, Error> {
        let pp = crate::core::pooling::pooled_purchases_with(ctx, siren, horizon, &estimates)?;
        let epci = ctx.territory.epci(siren)?;
        let category = match &q.categorie {
            Some(c) => {
                ctx.catalog.category(c)?;
                c.clone()
            }
            None => pp.groupements.first().map(|g| g.category.clone()).unwrap_or_else(|| ctx.catalog.categories[0].slug.clone()),
        };
        let mut c = String::new();
        if q.enregistre.as_deref() == Some("estimation") {
            c.push_str("<p class=\"ok\" role=\"status\">Estimation de prix enregistrée : les groupements de cette option en tiennent compte.</p>");
        }
        c.push_str(&header(ctx, epci, &pp, horizon));
        c.push_str(&map_section(ctx, s, epci, &category, horizon));
        // A category chosen in the selector filters the groupements too.
        c.push_str(&groupements_section(&pp, q.categorie.as_ref(), &ctx.catalog.category(&category)?.label, epci, horizon, writer.is_some()));
        if let Some(session) = writer {
            c.push_str(&super::epci_forms::upload_form(siren, session));
        } else {
            let _ = write!(
                c,
                "<p class=\"non-imprime\">Vous êtes l'EPCI ? <a href=\"/connexion?suite=/epcis/{siren}\">Connectez-vous</a> pour envoyer l'inventaire des communes et saisir des estimations de prix.</p>"
            );
        }
        c.push_str(&members_section(epci, horizon));
        Ok(c)
    })?;
    Ok(content)
}

/// Title and one line of facts: kind, SIREN, population, members, date, horizon.
fn header(ctx: &Ctx, epci: &Epci, pp: &PooledPurchases, horizon: u32) -> String {
    // Members outside the seeded territory (an EPCI across a regional border) are said.
    let seeded = ctx.territory.members(&epci.siren).len();
    let outside = if seeded < epci.members.len() { format!(" (dont {seeded} dans le territoire chargé)") } else { String::new() };
    format!(
        "<h1>{}</h1><p>{} — SIREN {} — {} habitants — {}{outside}. Situation au {}, horizon de {} mois.</p>",
        escape(&epci.name),
        escape(kind_fr(&epci.kind)),
        epci.siren,
        fr::int(u64::from(epci.population)),
        fr::count(epci.members.len() as u64, "commune membre", "communes membres"),
        fr::date(pp.as_of),
        horizon
    )
}

/// The legal form of an EPCI in words (INSEE's codes `CC`, `CA`, `CU`, `METRO`, `MET69`); an
/// unknown code as given.
pub fn kind_fr(kind: &str) -> &str {
    match kind {
        "CC" => "Communauté de communes",
        "CA" => "Communauté d'agglomération",
        "CU" => "Communauté urbaine",
        "METRO" => "Métropole",
        "MET69" => "Métropole de Lyon",
        other => other,
    }
}

/// The map of the members for one category (SVG, each commune coloured by its situation), its
/// category selector and legend.
fn map_section(ctx: &Ctx, s: &Service, epci: &Epci, category: &Slug, horizon: u32) -> String {
    let cat_label = ctx.catalog.category(category).map(|c| c.label.clone()).unwrap_or_default();
    let items: Vec<MapItem> = ctx
        .territory
        .members(&epci.siren)
        .iter()
        .map(|&m| {
            let cm = ctx.territory.commune(m);
            let need = need_of(ctx, &cm.code, category, horizon);
            let running: Vec<String> = ctx.index.active(&cm.code, category, ctx.today).map(|a| ctx.catalog.label(&a.product, a.generation.as_ref())).collect();
            let detail = if running.is_empty() { "aucun produit".to_string() } else { running.join(", ") };
            MapItem { code: cm.code, name: &cm.name, status: MapStatus::of(need.as_ref()), detail, labelled: false }
        })
        .collect();
    // Names on the map for the larger members only (all of them up to 15), so they stay legible;
    // every member is listed under the map by situation.
    let mut items = items;
    let mut by_size: Vec<usize> = (0..items.len()).collect();
    by_size.sort_by_key(|&i| std::cmp::Reverse(ctx.territory.find(&items[i].code).map_or(0, |j| ctx.territory.commune(j).population)));
    let named = if items.len() <= 15 { items.len() } else { 12 };
    for &i in by_size.iter().take(named) {
        items[i].labelled = true;
    }
    let mut c = format!("<h2>Carte : {}</h2>", escape(&cat_label));
    c.push_str("<form method=\"get\"><label for=\"categorie\">Catégorie</label> <select id=\"categorie\" name=\"categorie\">");
    for cat in &ctx.catalog.categories {
        let sel = if &cat.slug == category { " selected" } else { "" };
        let _ = write!(c, "<option value=\"{}\"{sel}>{}</option>", cat.slug, escape(&cat.label));
    }
    let _ = write!(c, "</select> <input type=\"hidden\" name=\"horizon\" value=\"{horizon}\"> <button type=\"submit\">Afficher</button></form>");
    c.push_str(&svg(s.shapes(), &items, &format!("Communes membres de {} selon leur situation pour : {}", epci.name, cat_label), 720.0));
    c.push_str("<ul class=\"legende\" aria-label=\"Légende\">");
    for st in MapStatus::ALL {
        let n = items.iter().filter(|i| i.status == st).count();
        let _ = write!(c, "<li>{}{} ({})</li>", st.swatch(), escape(st.label()), fr::count(n as u64, "commune", "communes"));
    }
    c.push_str("</ul>");
    let _ = write!(
        c,
        "<p>Noms écrits sur la carte : les {} communes les plus peuplées. Toutes les communes, par situation :</p><ul class=\"par-situation\">",
        named.min(items.len())
    );
    for st in MapStatus::ALL {
        let mut names: Vec<&MapItem> = items.iter().filter(|i| i.status == st).collect();
        if names.is_empty() {
            continue;
        }
        names.sort_by_cached_key(|i| crate::core::territory::fold(i.name));
        let links: Vec<String> = names.iter().map(|i| format!("<a href=\"/communes/{}\">{}</a>", i.code, escape(i.name))).collect();
        let _ = write!(c, "<li><strong>{}</strong> : {}</li>", escape(st.label()), links.join(", "));
    }
    c.push_str("</ul>");
    c
}

/// The groupements de commandes proposed, most valuable first; only those of `only` when a
/// category was chosen in the selector (`label` is its name), with a link to all of them.
fn groupements_section(pp: &PooledPurchases, only: Option<&Slug>, label: &str, epci: &Epci, horizon: u32, writer: bool) -> String {
    let estimate_for = writer.then_some(&epci.siren);
    let keep = |cat: &Slug| only.is_none_or(|o| o == cat);
    let groupements: Vec<&Groupement> = pp.groupements.iter().filter(|g| keep(&g.category)).collect();
    let mut c = match only {
        Some(_) => format!(
            "<h2>Groupements de commandes proposés : {} ({})</h2><p>Seule la catégorie choisie est montrée. <a href=\"/epcis/{}?horizon={horizon}\">Voir les groupements de toutes les catégories</a>.</p>",
            escape(label),
            groupements.len(),
            epci.siren
        ),
        None => format!("<h2>Groupements de commandes proposés ({})</h2>", groupements.len()),
    };
    c.push_str("<p>Classés par intérêt pour les membres : nombre de communes concernées, pondéré par l'urgence de leur échéance.</p>");
    if groupements.is_empty() {
        c.push_str("<p>Aucun groupement de commandes à proposer.</p>");
    }
    for g in groupements {
        c.push_str(&groupement(g, estimate_for));
    }
    for t in pp.to_check.iter().filter(|t| keep(&t.category)) {
        let names: Vec<String> = t.members.iter().map(|m| escape(&m.name)).collect();
        let _ = write!(
            c,
            "<p class=\"verifier\"><strong>Conformité à vérifier ({}) :</strong> {} ({}) — {} : {}. Les sources ne disent pas si les produits en place y répondent.</p>",
            escape(&t.category_label),
            escape(&t.check.title),
            fr::date(t.check.date),
            fr::count(t.members.len() as u64, "commune", "communes"),
            names.join(", ")
        );
    }
    let singles: Vec<&Groupement> = pp.single_needs.iter().filter(|g| keep(&g.category)).collect();
    if !singles.is_empty() {
        let _ = write!(c, "<h2>Besoins d'une seule commune ({})</h2>", singles.len());
        c.push_str("<p>Une seule commune membre a un achat à prévoir dans ces catégories : ce n'est pas un groupement de commandes, mais l'option éprouvée à proximité est indiquée.</p>");
        for g in singles {
            c.push_str(&groupement(g, estimate_for));
        }
    }
    c
}

/// One groupement: option, coordinator, deadline, volume and procedure, the communes concerned
/// and those already on the option.
fn groupement(g: &Groupement, estimate_for: Option<&Siren>) -> String {
    let mut c = format!("<section class=\"groupement\" id=\"g-{}\"><h3>{}</h3><p>{}</p>", g.category, escape(&g.category_label), escape(&g.rank_reason));
    match &g.option {
        Some(o) => {
            let _ = write!(c, "<p><strong>Option proposée :</strong> {}</p>", escape(&o.reason));
        }
        None => c.push_str("<p><strong>Option proposée :</strong> aucune option éprouvée n'est en service à proximité.</p>"),
    }
    let _ = write!(c, "<p><strong>Coordonnateur suggéré :</strong> {}.", escape(&g.coordinator));
    if let Some(d) = g.earliest_deadline {
        let _ = write!(
            c,
            " <strong>Première échéance :</strong> {} ({} à échéance dans les 6 mois suivants).",
            fr::date(d),
            fr::count(g.due_together.len() as u64, "commune", "communes")
        );
    }
    c.push_str("</p>");
    let _ =
        write!(c, "<p><strong>Volume :</strong> {}, {} habitants", fr::count(g.volume.communes as u64, "commune", "communes"), fr::int(g.volume.population));
    if let Some(w) = g.volume.workstations {
        let _ = write!(c, ", {w} postes déclarés");
    }
    c.push_str(".</p>");
    c.push_str(&amount(g));
    if let (Some(siren), Some(o)) = (estimate_for, &g.option) {
        let option = format!("{}/{}", o.product, o.generation.as_ref().map(|x| x.as_str()).unwrap_or_default());
        let _ = write!(
            c,
            "<p class=\"non-imprime\"><a href=\"/epcis/{siren}/estimation?option={}\">Saisir une estimation de prix pour cette option</a></p>",
            escape(&form_urlencoded::byte_serialize(option.as_bytes()).collect::<String>())
        );
    }
    let _ = write!(
        c,
        "<table><caption>Communes concernées : {}</caption><thead><tr><th scope=\"col\">Commune</th><th scope=\"col\">Population</th><th scope=\"col\">Motif</th><th scope=\"col\">Échéance</th></tr></thead><tbody>",
        escape(&g.category_label)
    );
    for m in &g.concerned {
        let _ = write!(
            c,
            "<tr><th scope=\"row\"><a href=\"/communes/{}\">{}</a> ({})</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            m.member.code,
            escape(&m.member.name),
            m.member.code,
            fr::int(u64::from(m.member.population)),
            escape(&m.reason),
            m.need.deadline().map(fr::date).unwrap_or_else(|| "—".into())
        );
    }
    c.push_str("</tbody></table>");
    if !g.own_path.is_empty() {
        let names: Vec<String> =
            g.own_path.iter().map(|m| format!("<a href=\"/communes/{}\">{}</a> ({})", m.member.code, escape(&m.member.name), escape(&m.reason))).collect();
        let _ = write!(c, "<p><strong>Hors groupement (restent sur leur produit) :</strong> {}</p>", names.join(" ; "));
    }
    if !g.already_on.is_empty() {
        let names: Vec<String> = g.already_on.iter().map(|m| escape(&m.name)).collect();
        let _ = write!(c, "<p><strong>Déjà sur l'option (contrat de maintenance commun possible) :</strong> {}.</p>", names.join(", "));
    }
    c.push_str("</section>");
    c
}

/// The pooled amount, whose estimate it is and when it was made, and the procedure it requires
/// (`Montant estimé : 50 000 € HT (estimation de Douarnenez Communauté, 1er mars 2026 :
/// 25 000 € HT par commune) — procédure : …`), or why there is none yet.
fn amount(g: &Groupement) -> String {
    let v = &g.volume;
    let mut c = String::from("<p class=\"montant\"><strong>Montant estimé :</strong> ");
    let source = |e: &crate::core::pooling::EstimateUsed| {
        format!("estimation de {}, {} : {} {}", escape(&e.by.name), fr::date(e.made_on), e.amount_eur_ht.fr(), e.basis.fr())
    };
    match (&v.estimate, v.estimated_amount_eur_ht) {
        (Some(e), Some(a)) => {
            let _ = write!(c, "{} ({})", a.fr(), source(e));
        }
        (Some(e), None) => {
            let _ = write!(c, "à établir ({})", source(e));
        }
        (None, Some(a)) => {
            let _ = write!(c, "{} (prix indicatif du catalogue)", a.fr());
        }
        (None, None) if g.option.is_some() => c.push_str("pas encore d'estimation de prix de l'EPCI pour cette option"),
        (None, None) => c.push_str("aucun"),
    }
    match &v.procedure {
        Some(p) => {
            let _ = write!(c, " — <strong>procédure :</strong> {} ({}).", escape(&p.procedure), escape(&p.reference));
        }
        None => c.push('.'),
    }
    if let Some(n) = &v.note {
        let _ = write!(c, " {}", escape(n));
    }
    c.push_str("</p>");
    c
}

/// The table of members (as INSEE lists them), the links to the exports (the groupements as
/// a spreadsheet, `Tableur (XLSX)`, or `CSV (pour les scripts)`; the inventory in service as
/// XLSX; the GeoJSON map) and to the inventory template.
fn members_section(epci: &Epci, horizon: u32) -> String {
    let mut c = String::from(
        "<h2>Communes membres</h2><table><caption>Membres de l'EPCI</caption><thead><tr><th scope=\"col\">Commune</th><th scope=\"col\">Code INSEE</th><th scope=\"col\">Population</th></tr></thead><tbody>",
    );
    for m in &epci.members {
        let _ = write!(
            c,
            "<tr><th scope=\"row\"><a href=\"/communes/{}\">{}</a></th><td>{}</td><td>{}</td></tr>",
            m.code,
            escape(&m.name),
            m.code,
            fr::int(u64::from(m.population))
        );
    }
    let _ = write!(
        c,
        "</tbody></table><h2>Exports</h2><ul>\
         <li>Groupements de commandes : <a href=\"/api/v1/epcis/{0}/pooled-purchases.xlsx?horizon={1}\">Tableur (XLSX)</a> pour LibreOffice ou Excel \
         (codes INSEE, dates et montants gardent leur forme), ou <a href=\"/api/v1/epcis/{0}/pooled-purchases.csv?horizon={1}\">CSV (pour les scripts)</a>.</li>\
         <li>Ce que les communes membres utilisent aujourd'hui : <a href=\"/api/v1/epcis/{0}/inventory.xlsx\">Tableur (XLSX) de l'inventaire en service</a>, une ligne par produit en service \
         (il peut être renvoyé comme le modèle d'inventaire ci-dessous).</li>\
         <li>Carte : <a href=\"/api/v1/epcis/{0}/map.geojson?horizon={1}\">GeoJSON</a> (QGIS).</li></ul>",
        epci.siren, horizon
    );
    let _ = write!(
        c,
        "<h2>Inventaire des communes membres</h2><p><a href=\"/api/v1/epcis/{}/inventory-template.xlsx\">Télécharger le modèle d'inventaire (XLSX)</a> : une ligne par commune membre et par catégorie, \
         déjà remplie avec ce qui est enregistré, avec des listes déroulantes des produits et générations du catalogue. Complétez les colonnes produit, generation et depuis \
         (date de mise en service, AAAA-MM-JJ), puis renvoyez le fichier : chaque ligne est vérifiée, et rien n'est enregistré tant qu'une ligne est en erreur \
         (le rapport indique la ligne, la colonne et la raison).</p>",
        epci.siren
    );
    c
}
