//! The forms of the EPCI page, for a signed-in EPCI (or the administrator):
//!
//! - the **inventory upload** (`POST /epcis/{siren}/inventaire`, `multipart/form-data`: the
//!   filled template, XLSX or CSV, and "vérifier seulement"), answered by a French report per
//!   row; the same parsing ([`crate::inventory::parse_inventory`]) and the same all-or-nothing
//!   use case ([`Service::import_inventory`]) as `POST /api/v1/epcis/{siren}/inventory`;
//! - the **price estimate** of a groupement's option (`GET /epcis/{siren}/estimation?option=`,
//!   `POST /epcis/{siren}/estimation`), the same use case as
//!   `POST /api/v1/epcis/{siren}/price-estimates` ([`Service::record_price_estimate`]), with
//!   French messages by field and the input kept on error (422).
//!
//! Both carry the session's CSRF token; both answer only once the write is durable.

use std::collections::HashMap;
use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use futures_util::StreamExt;

use super::session::{SignedIn, checked_session, read_form};
use super::{Nav, PageError, PageResult, page_query, page_with};
use crate::core::domain::{GenerationId, Siren, Slug};
use crate::core::inventory::{InventoryReport, RowStatus};
use crate::core::map::escape;
use crate::core::prices::{EurHt, PriceBasis};
use crate::core::session::Session;
use crate::error::Error;
use crate::http::respond::blocking;
use crate::inventory::MAX_UPLOAD_BYTES;
use crate::service::{PriceEstimateDraft, Service};

/// The signed-in session allowed to write EPCI `siren`'s data. Errors: `Unauthorized`,
/// `Forbidden`, `NotFound`.
fn epci_session<'a>(s: &Service, signed: &'a SignedIn, siren: &Siren) -> Result<&'a Session, Error> {
    let session = signed.session().ok_or_else(|| Error::Unauthorized("not signed in, or the session has ended: sign in again".into()))?;
    s.authorize_epci(&session.principal, siren)?;
    Ok(session)
}

/// What the EPCI page shows a signed-in EPCI: the upload form, with the template link.
pub fn upload_form(siren: &Siren, session: &Session) -> String {
    format!(
        "<section class=\"non-imprime\" id=\"inventaire\"><h2>Déclarer l'inventaire des communes membres</h2>\
<p>1. Téléchargez le <a href=\"/api/v1/epcis/{siren}/inventory-template.xlsx\">modèle de tableur</a> (une ligne par commune et catégorie, déjà rempli de ce qui est déclaré). \
2. Complétez-le dans LibreOffice ou Excel. 3. Envoyez-le ici (XLSX, ou CSV en UTF-8). Chaque ligne est vérifiée ; si une seule est en erreur, rien n'est enregistré.</p>\
<form method=\"post\" action=\"/epcis/{siren}/inventaire\" enctype=\"multipart/form-data\" class=\"formulaire\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<p><label for=\"fichier\">Tableur rempli</label><br><input id=\"fichier\" name=\"fichier\" type=\"file\" required accept=\".xlsx,.csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,text/csv\"></p>\
<p><input id=\"verifier\" name=\"verifier\" type=\"checkbox\" value=\"1\"> <label for=\"verifier\">Vérifier seulement, sans rien enregistrer</label></p>\
<p><button type=\"submit\">Envoyer l'inventaire</button></p></form></section>",
        session.csrf
    )
}

/// The parts of an upload form: its text fields and its file (bytes, declared content type).
struct Upload {
    fields: HashMap<String, String>,
    file: Option<(Vec<u8>, Option<String>)>,
}

/// Reads a `multipart/form-data` body: text fields of at most 1 KiB, one file of at most
/// [`MAX_UPLOAD_BYTES`]. Errors: `TooLarge`, `Malformed`.
async fn read_upload(mut payload: actix_multipart::Multipart) -> Result<Upload, Error> {
    let mut up = Upload { fields: HashMap::new(), file: None };
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(|e| Error::Malformed(format!("multipart body: {e}")))?;
        let name = field.name().unwrap_or_default().to_string();
        let is_file = name == "fichier";
        let limit = if is_file { MAX_UPLOAD_BYTES } else { 1024 };
        let content_type = field.content_type().map(|m| m.essence_str().to_string());
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| Error::Malformed(format!("multipart body: {e}")))?;
            if bytes.len() + chunk.len() > limit {
                return Err(Error::TooLarge(format!("the field '{}' is over {limit} bytes", name.chars().take(40).collect::<String>())));
            }
            bytes.extend_from_slice(&chunk);
        }
        if is_file {
            up.file = Some((bytes, content_type));
        } else if up.fields.insert(name.clone(), String::from_utf8_lossy(&bytes).into_owned()).is_some() {
            return Err(Error::Malformed(format!("form field '{}' is given more than once", name.chars().take(40).collect::<String>())));
        }
    }
    Ok(up)
}

/// `POST /epcis/{siren}/inventaire` (`multipart/form-data`: `csrf`, `fichier`, `verifier`):
/// checks the file and records it all or nothing; answers a French report per row (200 when
/// every row passes, 422 otherwise: nothing is written). Errors (French pages): 401, 403 (not
/// this EPCI, CSRF), 404, 400/413/415 for a file that is not a readable spreadsheet.
pub async fn upload(req: HttpRequest, s: web::Data<Service>, signed: SignedIn, siren: web::Path<Siren>, payload: actix_multipart::Multipart) -> PageResult {
    let siren = *siren;
    let err = |e| PageError::new(&s, e);
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err(err(Error::UnsupportedMediaType("the inventory form is sent as multipart/form-data".into())));
    }
    epci_session(&s, &signed, &siren).map_err(err)?;
    let up = read_upload(payload).await.map_err(err)?;
    let session = checked_session(&signed, &up.fields).map_err(err)?;
    let who = session.principal;
    let dry_run = up.fields.get("verifier").is_some_and(|v| !v.is_empty());
    let Some((bytes, content_type)) = up.file.filter(|(b, _)| !b.is_empty()) else {
        return Err(err(Error::Malformed("no file was sent: choose the filled spreadsheet".into())));
    };
    let st = s.clone();
    let report = blocking(move || {
        let rows = crate::inventory::parse_inventory(&bytes, content_type.as_deref())?;
        st.import_inventory(&who, &siren, &rows, dry_run)
    })
    .await
    .map_err(err)?;
    let status = if report.errors > 0 { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let name = s.territory().epci(&siren).map(|e| e.name.clone()).unwrap_or_default();
    let body = page_with(&format!("Inventaire — {name}"), &Nav::of(&s, signed.session()), &report_html(&report, &name));
    Ok(super::private_html(status, body))
}

/// The French report of an upload: the outcome, the rows in error, then every row.
fn report_html(r: &InventoryReport, epci_name: &str) -> String {
    use crate::core::fr::count;
    let mut c = format!("<h1>Inventaire des communes membres</h1><p>{}</p>", escape(epci_name));
    let outcome = if r.errors > 0 {
        format!(
            "<p class=\"erreur\" role=\"alert\">{} : rien n'a été enregistré. Corrigez le tableur et envoyez-le à nouveau.</p>",
            count(r.errors as u64, "ligne en erreur", "lignes en erreur")
        )
    } else if r.dry_run {
        format!(
            "<p class=\"ok\" role=\"status\">Vérification seulement : {} à enregistrer, rien n'a été enregistré.</p>",
            count(r.accepted as u64, "ligne", "lignes")
        )
    } else if r.written {
        format!("<p class=\"ok\" role=\"status\">Inventaire enregistré : {}.</p>", count(r.accepted as u64, "déclaration", "déclarations"))
    } else {
        "<p class=\"ok\" role=\"status\">Rien de nouveau à enregistrer.</p>".to_string()
    };
    c.push_str(&outcome);
    let _ = write!(
        c,
        "<p>{} lues : {}, {} (rien de déclaré, ou déjà enregistré), {} en erreur.</p>",
        count(r.rows as u64, "ligne", "lignes"),
        count(r.accepted as u64, "acceptée", "acceptées"),
        count(r.skipped as u64, "ignorée", "ignorées"),
        r.errors
    );
    let table = |title: &str, keep: &dyn Fn(RowStatus) -> bool| {
        let mut t = format!(
            "<table><caption>{}</caption><thead><tr><th scope=\"col\">Ligne</th><th scope=\"col\">Code INSEE</th><th scope=\"col\">Catégorie</th><th scope=\"col\">Résultat</th><th scope=\"col\">Colonne</th><th scope=\"col\">Motif</th></tr></thead><tbody>",
            escape(title)
        );
        for l in r.lines.iter().filter(|l| keep(l.status)) {
            let status = match l.status {
                RowStatus::Accepted => "acceptée",
                RowStatus::Skipped => "ignorée",
                RowStatus::Error => "erreur",
            };
            let _ = write!(
                t,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{status}</td><td>{}</td><td>{}</td></tr>",
                l.row,
                escape(&l.code_insee),
                escape(&l.category),
                escape(l.field.as_deref().unwrap_or("")),
                escape(&l.reason)
            );
        }
        t.push_str("</tbody></table>");
        t
    };
    if r.errors > 0 {
        c.push_str(&table("Lignes en erreur", &|st| st == RowStatus::Error));
    }
    let accepted_or_all = if r.errors > 0 { "Toutes les lignes" } else { "Lignes acceptées et ignorées" };
    let _ = write!(c, "<details><summary>{accepted_or_all}</summary>{}</details>", table(accepted_or_all, &|_| true));
    let _ = write!(c, "<p><a href=\"/epcis/{}\">Retour à la page de l'EPCI</a></p>", r.siren);
    c
}

/// Query of the estimate form: the option as `produit/génération` (`génération` empty for the
/// whole product).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateQuery {
    option: Option<String>,
}

/// The option of a form field `produit/génération`, if the catalogue knows it.
fn option_of(s: &Service, v: &str) -> Option<(Slug, Option<GenerationId>)> {
    let (p, g) = v.split_once('/')?;
    let prod = s.catalog().product(&Slug::parse(p).ok()?).ok()?;
    let generation = if g.is_empty() { None } else { Some(GenerationId::parse(g).ok().filter(|g| prod.generation(g).is_some() || prod.release(g).is_some())?) };
    Some((prod.id.clone(), generation))
}

/// The estimate form, with the values typed and French messages by field.
fn estimate_page(
    s: &Service,
    signed: &SignedIn,
    session: &Session,
    siren: &Siren,
    values: &HashMap<String, String>,
    errors: &[(&str, String)],
) -> Result<String, Error> {
    let epci = s.territory().epci(siren)?;
    let v = |k: &str| values.get(k).map_or("", String::as_str);
    let e = |k: &str| errors.iter().find(|(f, _)| *f == k).map(|(_, m)| m.as_str());
    let label = option_of(s, v("option")).map_or_else(|| v("option").to_string(), |(p, g)| s.catalog().label(&p, g.as_ref()));
    let mut c = format!("<h1>Estimation de prix</h1><p>{} — option <strong>{}</strong>.</p>", escape(&epci.name), escape(&label));
    c.push_str(
        "<p>Le montant estimé d'un groupement (prix × communes concernées, ou × postes déclarés) permet de nommer la procédure d'achat selon les seuils en vigueur. \
Indiquez un prix hors taxes pour toute la durée du marché. L'estimation est datée et porte le nom de l'EPCI.</p>",
    );
    if let Some(m) = e("") {
        let _ = write!(c, "<p class=\"erreur\" role=\"alert\">{}</p>", escape(m));
    } else if !errors.is_empty() {
        c.push_str("<p class=\"erreur\" role=\"alert\">Le formulaire contient des erreurs : voir les messages sous les champs.</p>");
    }
    let err = |k: &str, id: &str| match e(k) {
        Some(m) => {
            (format!(" aria-invalid=\"true\" aria-describedby=\"{id}-erreur\""), format!("<span class=\"erreur\" id=\"{id}-erreur\">{}</span>", escape(m)))
        }
        None => (String::new(), String::new()),
    };
    let (a_base, e_base) = err("base", "base");
    let (a_montant, e_montant) = err("montant", "montant");
    let (a_date, e_date) = err("date", "date");
    let (a_note, e_note) = err("note", "note");
    let per_seat = v("base") == "poste";
    let date = if values.contains_key("date") { v("date").to_string() } else { s.today().to_string() };
    let _ = write!(
        c,
        "<form method=\"post\" action=\"/epcis/{siren}/estimation\" class=\"formulaire\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"option\" value=\"{}\">\
<p><label for=\"base\">Base du prix</label><br><select id=\"base\" name=\"base\"{a_base}><option value=\"commune\"{}>par commune</option><option value=\"poste\"{}>par poste de travail</option></select>{e_base}</p>\
<p><label for=\"montant\">Prix unitaire (€ HT)</label><br><input id=\"montant\" name=\"montant\" type=\"text\" inputmode=\"decimal\" required value=\"{}\"{a_montant}>{e_montant}</p>\
<p><label for=\"date\">Date de l'estimation</label><br><input id=\"date\" name=\"date\" type=\"date\" required value=\"{}\"{a_date}>{e_date}</p>\
<p><label for=\"note\">Note (facultative, visible seulement de l'EPCI : devis, source)</label><br><textarea id=\"note\" name=\"note\" rows=\"2\" maxlength=\"500\"{a_note}>{}</textarea>{e_note}</p>\
<p><button type=\"submit\">Enregistrer l'estimation</button></p></form><p><a href=\"/epcis/{siren}\">Retour à la page de l'EPCI</a></p>",
        session.csrf,
        escape(v("option")),
        if per_seat { "" } else { " selected" },
        if per_seat { " selected" } else { "" },
        escape(v("montant")),
        escape(&date),
        escape(v("note")),
    );
    Ok(page_with("Estimation de prix", &Nav::of(s, signed.session()), &c))
}

/// `GET /epcis/{siren}/estimation?option=produit/génération`: the form to record an estimated
/// price for a groupement's option. Errors (French pages): 401 not signed in, 403 another scope,
/// 404 unknown EPCI or option.
pub async fn estimate_form(
    s: web::Data<Service>,
    signed: SignedIn,
    siren: web::Path<Siren>,
    q: Result<crate::http::extract::Query<EstimateQuery>, actix_web::Error>,
) -> PageResult {
    let q = page_query(&s, q)?;
    let err = |e| PageError::new(&s, e);
    let session = epci_session(&s, &signed, &siren).map_err(err)?;
    let option = q.option.unwrap_or_default();
    if option_of(&s, &option).is_none() {
        return Err(err(Error::NotFound(format!("no catalogue option '{}'", option.chars().take(60).collect::<String>()))));
    }
    let values = HashMap::from([("option".to_string(), option)]);
    let body = estimate_page(&s, &signed, session, &siren, &values, &[]).map_err(err)?;
    Ok(super::private_html(StatusCode::OK, body))
}

/// `POST /epcis/{siren}/estimation` (`csrf`, `option`, `base` = `commune` | `poste`, `montant`
/// in € HT with a decimal comma or point, `date`, `note`): records the estimate, then 303 back
/// to the EPCI page with a notice; the form again with French messages (422) otherwise.
pub async fn estimate(req: HttpRequest, s: web::Data<Service>, signed: SignedIn, siren: web::Path<Siren>, payload: web::Payload) -> PageResult {
    let siren = *siren;
    let err = |e| PageError::new(&s, e);
    let fields = read_form(&req, payload).await.map_err(err)?;
    let session = checked_session(&signed, &fields).map_err(err)?;
    s.authorize_epci(&session.principal, &siren).map_err(err)?;
    let who = session.principal;
    let mut errors: Vec<(&str, String)> = vec![];
    let text = |k: &str| fields.get(k).map_or("", |v| v.trim());
    let option = option_of(&s, text("option"));
    if option.is_none() {
        errors.push(("", "Option inconnue du catalogue : revenez à la page de l'EPCI et choisissez le groupement.".into()));
    }
    let basis = match text("base") {
        "commune" => Some(PriceBasis::PerCommune),
        "poste" => Some(PriceBasis::PerSeat),
        _ => {
            errors.push(("base", "Choisissez « par commune » ou « par poste de travail ».".into()));
            None
        }
    };
    let amount = match text("montant").parse::<EurHt>() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.push(("montant", "Indiquez un montant en euros, par exemple 25 000 ou 1 250,50.".into()));
            None
        }
    };
    let made_on = match NaiveDate::parse_from_str(text("date"), "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(text("date"), "%d/%m/%Y")) {
        Ok(d) if d <= s.today() => Some(d),
        Ok(_) => {
            errors.push(("date", format!("La date ne peut pas être postérieure à aujourd'hui ({}).", super::date_fr(s.today()))));
            None
        }
        Err(_) => {
            errors.push(("date", "Date non reconnue : écrivez-la sous la forme JJ/MM/AAAA.".into()));
            None
        }
    };
    let note = text("note").to_string();
    if note.chars().count() > 500 {
        errors.push(("note", "La note dépasse 500 caractères.".into()));
    }
    let again = |errors: Vec<(&str, String)>| -> PageResult {
        let mut values = fields.clone();
        values.remove("csrf");
        let body = estimate_page(&s, &signed, session, &siren, &values, &errors).map_err(err)?;
        Ok(super::private_html(StatusCode::UNPROCESSABLE_ENTITY, body))
    };
    let (Some((product, generation)), Some(basis), Some(amount_eur_ht), Some(made_on), true) = (option, basis, amount, made_on, errors.is_empty()) else {
        return again(errors);
    };
    let draft = PriceEstimateDraft { product, generation, basis, amount_eur_ht, made_on: Some(made_on), note: Some(note).filter(|n| !n.is_empty()) };
    let st = s.clone();
    match blocking(move || st.record_price_estimate(&who, &siren, draft)).await {
        Ok(_) => Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/epcis/{siren}?enregistre=estimation"))).finish()),
        Err(Error::Invalid(m)) => again(vec![("", format!("Estimation refusée : {m}"))]),
        Err(e) => Err(err(e)),
    }
}
