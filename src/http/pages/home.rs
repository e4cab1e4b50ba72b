//! The home page (`/`: search form and the list of EPCI) and the search results page
//! (`/recherche?q=`: EPCI by name or SIREN, communes by name or code INSEE).

use std::fmt::Write as _;

use actix_web::web;
use serde::Deserialize;

use super::session::SignedIn;
use super::{Nav, PageError, PageResult, html, page_query, page_with, search_form};
use crate::core::fr;
use crate::core::map::escape;
use crate::core::territory::fold;
use crate::error::Error;
use crate::http::extract::Query;
use crate::service::Service;

/// Query of `/`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexQuery {
    /// Set after a sign-out: the page says so.
    deconnecte: Option<String>,
}

/// `GET /`: the search form and every EPCI of the territory, grouped by département (the
/// département of most of its members here) and sorted by name (French collation: accents and
/// case folded).
pub async fn index(s: web::Data<Service>, signed: SignedIn, q: Result<Query<IndexQuery>, actix_web::Error>) -> PageResult {
    let q = page_query(&s, q)?;
    let mut c = String::new();
    if q.deconnecte.is_some() && signed.session().is_none() {
        c.push_str("<p class=\"ok\" role=\"status\">Déconnexion effectuée.</p>");
    }
    c.push_str("<h1>Trouver une commune ou un EPCI</h1>");
    c.push_str(&search_form(""));
    let t = s.territory();
    let mut by_dept: std::collections::BTreeMap<String, Vec<&crate::core::territory::Epci>> = std::collections::BTreeMap::new();
    for e in t.epcis() {
        let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for &m in t.members(&e.siren) {
            *counts.entry(t.commune(m).department.as_str()).or_default() += 1;
        }
        let dept = counts.iter().max_by_key(|(d, n)| (**n, std::cmp::Reverse(**d))).map_or("—", |(d, _)| d);
        by_dept.entry(dept.to_string()).or_default().push(e);
    }
    let _ = write!(c, "<h2>Les {} EPCI, par département</h2>", t.epcis().len());
    for (dept, mut list) in by_dept {
        list.sort_by_cached_key(|e| (fold(&e.name), e.siren));
        let _ = write!(c, "<h3>{} ({})</h3><ul>", escape(&format!("Département {dept}")), list.len());
        for e in list {
            let _ = write!(c, "<li><a href=\"/epcis/{}\">{}</a> ({})</li>", e.siren, escape(&e.name), escape(super::epci::kind_fr(&e.kind)));
        }
        c.push_str("</ul>");
    }
    html(page_with("Accueil", &Nav::of(&s, signed.session()), &c))
}

/// Query of `/recherche`.
#[derive(Deserialize)]
pub struct SearchQuery {
    /// What was typed, at most 100 characters once trimmed; empty shows the form only.
    q: Option<String>,
    /// Page of the communes found, from 1 (20 per page).
    page: Option<u32>,
}

/// Communes per page of `/recherche`.
const PER_PAGE: usize = 20;

/// `GET /recherche?q=`: EPCI whose name contains `q` (compared by
/// [`crate::core::territory::search_key`]; or whose SIREN is `q`) and communes
/// found by [`crate::core::territory::Territory::search`], 20 of each at most.
pub async fn search(s: web::Data<Service>, signed: SignedIn, q: Result<Query<SearchQuery>, actix_web::Error>) -> PageResult {
    let nav = Nav::of(&s, signed.session());
    let q = page_query(&s, q)?;
    let query = q.q.as_deref().unwrap_or_default().trim().to_string();
    if query.chars().count() > 100 {
        return Err(PageError::new(&s, Error::Invalid("q must be at most 100 characters".into())));
    }
    // `<bdi>`: a right-to-left override typed in the query does not turn the page around.
    let mut c = format!("<h1>Résultats pour « <bdi>{}</bdi> »</h1>", escape(&query));
    c.push_str(&search_form(&query));
    if query.is_empty() {
        c.push_str("<p>Saisissez un nom ou un code.</p>");
        return html(page_with("Recherche", &nav, &c));
    }
    let t = s.territory();
    let epcis = t.search_epcis(&query);
    let page = q.page.unwrap_or(1).max(1) as usize;
    let found = t.search(&query, (page - 1) * PER_PAGE, PER_PAGE);
    let _ = write!(c, "<h2>EPCI ({})</h2><ul>", epcis.len());
    for e in epcis.iter().take(PER_PAGE) {
        let _ = write!(c, "<li><a href=\"/epcis/{}\">{}</a></li>", e.siren, escape(&e.name));
    }
    c.push_str("</ul>");
    if epcis.len() > PER_PAGE {
        let _ = write!(c, "<p>… et {} autres : précisez la recherche.</p>", fr::int((epcis.len() - PER_PAGE) as u64));
    }
    let _ = write!(c, "<h2>Communes ({})</h2>", found.total);
    let last = found.total.div_ceil(PER_PAGE).max(1);
    if found.hits.is_empty() && page > 1 {
        let _ = write!(c, "<p>La page {page} est au-delà des résultats : il y en a {last}.</p>");
    } else if found.total > PER_PAGE {
        let first = (page - 1) * PER_PAGE + 1;
        let _ = write!(c, "<p>Page {page} sur {last}, {first} à {} :</p>", first + found.hits.len() - 1);
    }
    c.push_str("<ul>");
    for hit in &found.hits {
        let cm = t.commune(hit.idx);
        let how = match hit.matched {
            crate::core::territory::Match::Name => String::new(),
            _ => format!(" — <span class=\"muted\">{}</span>", escape(&t.match_label(hit))),
        };
        match cm.epci.and_then(|e| t.epci(&e).ok()) {
            Some(e) => {
                let _ = write!(
                    c,
                    "<li><a href=\"/communes/{}\">{}</a> ({}){how} — <a href=\"/epcis/{}\">{}</a></li>",
                    cm.code,
                    escape(&cm.name),
                    cm.code,
                    e.siren,
                    escape(&e.name)
                );
            }
            None => {
                let _ = write!(c, "<li><a href=\"/communes/{}\">{}</a> ({}){how} — hors EPCI</li>", cm.code, escape(&cm.name), cm.code);
            }
        }
    }
    c.push_str("</ul>");
    let link = |p: usize, label: &str| {
        format!("<a href=\"/recherche?q={}&amp;page={p}\">{label}</a>", escape(&form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()))
    };
    let mut pager = Vec::new();
    if page > 1 && found.total > 0 {
        pager.push(link((page - 1).min(last), "← Précédents"));
    }
    if page * PER_PAGE < found.total {
        pager.push(link(page + 1, "Suivants →"));
    }
    if !pager.is_empty() {
        let _ = write!(c, "<nav aria-label=\"Pages de résultats\"><p>{}</p></nav>", pager.join(" · "));
    }
    html(page_with("Recherche", &nav, &c))
}
