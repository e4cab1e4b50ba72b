//! The forms of the commune page, for a signed-in commune, its EPCI or the administrator:
//! declare a product in use, end one, correct one, give feedback. Server-rendered, no
//! JavaScript: each form is a `<details>` of its category's section.
//!
//! A post is checked field by field with French messages shown next to the field and the input
//! kept (the page comes back with 422); what passes goes to the same use cases as the API
//! ([`Service::record_adoption`], [`Service::amend_adoption`], [`Service::record_feedback`]),
//! with the same rules, audit lines and durability: the answer (303 back to the commune page,
//! with a notice) comes only once the write is on disk. Each rendered declaration and feedback
//! form carries a random `idem` key used as the write's idempotency key, so a double submit
//! writes once. Every form carries the session's CSRF token.

use std::collections::HashMap;
use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;

use super::session::{SignedIn, checked_session, read_form};
use super::{PageError, PageResult};
use crate::core::catalog::Category;
use crate::core::domain::{GenerationId, InseeCode, Slug};
use crate::core::history::{Adoption, MAX_COMMENT_CHARS};
use crate::core::map::escape;
use crate::core::recommend::Ctx;
use crate::core::session::{Session, hex};
use crate::error::Error;
use crate::http::extract::RecordId;
use crate::http::respond::blocking;
use crate::service::{AdoptionChanges, AdoptionDraft, FeedbackDraft, Service};
use crate::store::Idempotency;

/// Which form a post came from.
#[derive(Clone, Debug, PartialEq)]
pub enum FormTarget {
    /// Declaring a product in use in a category.
    Declare(Slug),
    /// Ending adoption `id`.
    End(u64),
    /// Correcting adoption `id` (contract end, workstations).
    Correct(u64),
    /// Feedback on adoption `id`.
    Feedback(u64),
}

/// A form sent back with errors: what was typed, and the French message of each field at fault
/// (`""` for the form as a whole).
#[derive(Clone, Debug)]
pub struct FormState {
    /// The form.
    pub target: FormTarget,
    /// The values typed, by field name.
    pub values: HashMap<String, String>,
    /// French messages by field name.
    pub errors: Vec<(&'static str, String)>,
}

impl FormState {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

/// What the commune page shows to a signed-in writer: the session (for the CSRF token) and the
/// form sent back with errors, if any.
pub struct Writer<'a> {
    /// The session.
    pub session: &'a Session,
    /// The form sent back, if any.
    pub state: Option<&'a FormState>,
}

impl Writer<'_> {
    /// The state if it is this form's.
    fn state_of(&self, t: &FormTarget) -> Option<&FormState> {
        self.state.filter(|s| s.target == *t)
    }
}

/// A random key for a form's idempotency (32 hex digits).
fn idem_key() -> String {
    let mut b = [0u8; 16];
    // Without randomness the form still works; a double submit is then refused as a duplicate.
    let _ = getrandom::fill(&mut b);
    hex(&b)
}

/// One labelled field: its input, its error (linked with `aria-describedby`), the typed value.
fn field(state: Option<&FormState>, id_prefix: &str, name: &'static str, label: &str, input: &str, default: &str, extra: &str) -> String {
    let value = state.and_then(|s| s.values.get(name)).map_or(default, String::as_str);
    let id = format!("{id_prefix}-{name}");
    let (aria, err) = match state.and_then(|s| s.error(name)) {
        Some(m) => {
            (format!(" aria-invalid=\"true\" aria-describedby=\"{id}-erreur\""), format!("<span class=\"erreur\" id=\"{id}-erreur\">{}</span>", escape(m)))
        }
        None => (String::new(), String::new()),
    };
    format!("<p><label for=\"{id}\">{label}</label><br><input id=\"{id}\" name=\"{name}\" type=\"{input}\" value=\"{}\"{extra}{aria}>{err}</p>", escape(value))
}

/// A select of 1 to 5 (ratings).
fn rating(state: Option<&FormState>, id_prefix: &str, name: &'static str, label: &str, hint: &str) -> String {
    let chosen = state.and_then(|s| s.values.get(name)).map_or("", String::as_str);
    let id = format!("{id_prefix}-{name}");
    let (aria, err) = match state.and_then(|s| s.error(name)) {
        Some(m) => {
            (format!(" aria-invalid=\"true\" aria-describedby=\"{id}-erreur\""), format!("<span class=\"erreur\" id=\"{id}-erreur\">{}</span>", escape(m)))
        }
        None => (String::new(), String::new()),
    };
    let mut s = format!(
        "<p><label for=\"{id}\">{label}</label> <small>({hint})</small><br><select id=\"{id}\" name=\"{name}\" required{aria}><option value=\"\">—</option>"
    );
    for v in 1..=5 {
        let sel = if chosen == v.to_string() { " selected" } else { "" };
        let _ = write!(s, "<option value=\"{v}\"{sel}>{v}</option>");
    }
    s.push_str("</select>");
    s.push_str(&err);
    s.push_str("</p>");
    s
}

fn form_errors(state: Option<&FormState>) -> String {
    match state.and_then(|s| s.error("")) {
        Some(m) => format!("<p class=\"erreur\" role=\"alert\">{}</p>", escape(m)),
        None if state.is_some() => "<p class=\"erreur\" role=\"alert\">Le formulaire contient des erreurs : voir les messages sous les champs.</p>".into(),
        None => String::new(),
    }
}

/// The hidden fields of every form: CSRF token and idempotency key.
fn hidden(w: &Writer, state: Option<&FormState>) -> String {
    let idem = state.and_then(|s| s.values.get("idem")).cloned().unwrap_or_else(idem_key);
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"idem\" value=\"{}\">", w.session.csrf, escape(&idem))
}

/// The "declare a product" form of a category: one list of the catalogue's products of the
/// category, their generations and the generations' releases (`produit/génération` or
/// `produit/version`), the start date, optional contract end and workstations.
pub fn declare_form(ctx: &Ctx, code: &InseeCode, cat: &Category, w: &Writer) -> String {
    let t = FormTarget::Declare(cat.slug.clone());
    let st = w.state_of(&t);
    let p = format!("declarer-{}", cat.slug);
    let open = if st.is_some() { " open" } else { "" };
    let chosen = st.and_then(|s| s.values.get("option")).map_or("", String::as_str);
    let mut s = format!(
        "<details{open}><summary>Déclarer un produit en service ({})</summary><form method=\"post\" action=\"/communes/{code}/adoptions\" class=\"formulaire\">{}{}<input type=\"hidden\" name=\"categorie\" value=\"{}\">",
        escape(&cat.label),
        form_errors(st),
        hidden(w, st),
        cat.slug
    );
    let (aria, err) = match st.and_then(|x| x.error("option")) {
        Some(m) => (
            format!(" aria-invalid=\"true\" aria-describedby=\"{p}-option-erreur\""),
            format!("<span class=\"erreur\" id=\"{p}-option-erreur\">{}</span>", escape(m)),
        ),
        None => (String::new(), String::new()),
    };
    let _ = write!(
        s,
        "<p><label for=\"{p}-option\">Produit et génération</label><br><select id=\"{p}-option\" name=\"option\" required{aria}><option value=\"\">— choisir —</option>"
    );
    for prod in ctx.catalog.products_in(&cat.slug) {
        let _ = write!(s, "<optgroup label=\"{}\">", escape(&prod.name));
        // Each generation (newest first), then its releases (newest first) for a mairie that
        // knows which one it runs (`Windows 11 24H2`).
        let mut options: Vec<(String, String)> = Vec::new();
        for g in prod.generations.iter().rev() {
            options.push((format!("{}/{}", prod.id, g.id), ctx.catalog.label(&prod.id, Some(&g.id))));
            let releases: Vec<_> = prod.releases_of(g).filter(|r| r.id != g.id).collect();
            for r in releases.into_iter().rev() {
                options.push((format!("{}/{}", prod.id, r.id), format!("{} — version {}", ctx.catalog.label(&prod.id, Some(&g.id)), r.label)));
            }
        }
        if options.is_empty() {
            options.push((format!("{}/", prod.id), prod.name.clone()));
        }
        for (v, l) in options {
            let sel = if v == chosen { " selected" } else { "" };
            let _ = write!(s, "<option value=\"{}\"{sel}>{}</option>", escape(&v), escape(&l));
        }
        s.push_str("</optgroup>");
    }
    let _ = write!(s, "</select>{err}</p>");
    s.push_str(&field(st, &p, "depuis", "En service depuis le", "date", "", " required"));
    s.push_str(&field(st, &p, "fin_contrat", "Fin du contrat (facultatif)", "date", "", ""));
    s.push_str(&field(st, &p, "postes", "Postes concernés (facultatif)", "number", "", " min=\"0\" max=\"100000\" inputmode=\"numeric\""));
    s.push_str("<p><button type=\"submit\">Enregistrer la déclaration</button></p></form></details>");
    let _ = code;
    s
}

/// The forms of one adoption in service: give feedback, correct, end.
pub fn adoption_forms(ctx: &Ctx, code: &InseeCode, a: &Adoption, w: &Writer) -> String {
    let name = escape(&ctx.catalog.label(&a.product, a.generation.as_ref()));
    let id = a.id;
    let mut s = String::new();
    let t = FormTarget::Feedback(id);
    let st = w.state_of(&t);
    let p = format!("avis-{id}");
    let _ = write!(
        s,
        "<details{}><summary>Donner un avis sur {name}</summary><form method=\"post\" action=\"/communes/{code}/adoptions/{id}/avis\" class=\"formulaire\">{}{}",
        if st.is_some() { " open" } else { "" },
        form_errors(st),
        hidden(w, st)
    );
    s.push_str(&rating(st, &p, "fiabilite", "Fiabilité", "1 : peu fiable, 5 : jamais en panne"));
    s.push_str(&field(st, &p, "incidents", "Incidents depuis le dernier avis", "number", "0", " min=\"0\" max=\"100000\" inputmode=\"numeric\" required"));
    s.push_str(&field(st, &p, "indisponibilite", "Heures d'indisponibilité", "text", "0", " inputmode=\"decimal\" required"));
    s.push_str(&rating(st, &p, "support", "Qualité du support", "1 : mauvaise, 5 : excellente"));
    let comment = st.and_then(|x| x.values.get("commentaire")).map_or("", String::as_str);
    let (aria, err) = match st.and_then(|x| x.error("commentaire")) {
        Some(m) => (
            format!(" aria-invalid=\"true\" aria-describedby=\"{p}-commentaire-erreur\""),
            format!("<span class=\"erreur\" id=\"{p}-commentaire-erreur\">{}</span>", escape(m)),
        ),
        None => (String::new(), String::new()),
    };
    let _ = write!(
        s,
        "<p><label for=\"{p}-commentaire\">Commentaire (facultatif, visible seulement par la commune et son EPCI)</label><br><textarea id=\"{p}-commentaire\" name=\"commentaire\" rows=\"3\" maxlength=\"{MAX_COMMENT_CHARS}\"{aria}>{}</textarea>{err}</p>\
<p><button type=\"submit\">Enregistrer l'avis</button></p></form></details>",
        escape(comment)
    );
    let t = FormTarget::Correct(id);
    let st = w.state_of(&t);
    let p = format!("corriger-{id}");
    let _ = write!(
        s,
        "<details{}><summary>Corriger {name}</summary><form method=\"post\" action=\"/communes/{code}/adoptions/{id}/correction\" class=\"formulaire\">{}{}",
        if st.is_some() { " open" } else { "" },
        form_errors(st),
        hidden(w, st)
    );
    let end = a.contract_end.map(|d| d.to_string()).unwrap_or_default();
    let seats = a.workstations.map(|n| n.to_string()).unwrap_or_default();
    s.push_str(&field(st, &p, "fin_contrat", "Fin du contrat (vide : inconnue)", "date", &end, ""));
    s.push_str(&field(st, &p, "postes", "Postes concernés (vide : inconnu)", "number", &seats, " min=\"0\" max=\"100000\" inputmode=\"numeric\""));
    s.push_str("<p><button type=\"submit\">Enregistrer la correction</button></p></form></details>");
    let t = FormTarget::End(id);
    let st = w.state_of(&t);
    let p = format!("fin-{id}");
    let _ = write!(
        s,
        "<details{}><summary>Ne plus utiliser {name}</summary><form method=\"post\" action=\"/communes/{code}/adoptions/{id}/fin\" class=\"formulaire\">{}{}",
        if st.is_some() { " open" } else { "" },
        form_errors(st),
        hidden(w, st)
    );
    s.push_str(&field(st, &p, "jusqu_au", "Dernier jour d'utilisation", "date", "", " required"));
    s.push_str("<p><button type=\"submit\">Enregistrer la fin d'utilisation</button></p></form></details>");
    s
}

// ---- Reading the fields, with French messages ----

/// Reads the form's fields one by one, collecting a French message per field at fault.
struct Check<'f> {
    fields: &'f HashMap<String, String>,
    today: NaiveDate,
    errors: Vec<(&'static str, String)>,
}

impl<'f> Check<'f> {
    fn text(&self, name: &str) -> &'f str {
        self.fields.get(name).map_or("", |v| v.trim())
    }

    fn fail(&mut self, name: &'static str, msg: impl Into<String>) {
        self.errors.push((name, msg.into()));
    }

    /// A date typed `AAAA-MM-JJ` (what a date input sends) or `JJ/MM/AAAA`; `required` or
    /// not; `future` allowed or not.
    fn date(&mut self, name: &'static str, required: bool, future: bool) -> Option<NaiveDate> {
        let v = self.text(name);
        if v.is_empty() {
            if required {
                self.fail(name, "Indiquez une date.");
            }
            return None;
        }
        let Some(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(v, "%d/%m/%Y")).ok() else {
            self.fail(name, "Date non reconnue : écrivez-la sous la forme JJ/MM/AAAA (par exemple 08/10/2024).");
            return None;
        };
        let (y, m, dd) = crate::core::history::MIN_DATE;
        let min = NaiveDate::from_ymd_opt(y, m, dd).unwrap_or(NaiveDate::MIN);
        if d < min {
            self.fail(name, format!("La date doit être postérieure au {}.", super::date_fr(min)));
            return None;
        }
        if !future && d > self.today {
            self.fail(name, format!("La date ne peut pas être postérieure à aujourd'hui ({}).", super::date_fr(self.today)));
            return None;
        }
        if d > self.today + chrono::Days::new(366 * 20) {
            self.fail(name, "Date trop lointaine.");
            return None;
        }
        Some(d)
    }

    /// A whole number in `lo..=hi`; empty gives `None` unless `required`.
    fn int(&mut self, name: &'static str, lo: u32, hi: u32, required: bool) -> Option<u32> {
        let v = self.text(name).replace(['\u{202f}', '\u{a0}', ' '], "");
        if v.is_empty() {
            if required {
                self.fail(name, "Indiquez un nombre.");
            }
            return None;
        }
        match v.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                self.fail(name, format!("Indiquez un nombre entier de {} à {}.", crate::core::fr::int(lo.into()), crate::core::fr::int(hi.into())));
                None
            }
        }
    }

    /// Hours, decimal comma or point, 0 to 8,784.
    fn hours(&mut self, name: &'static str) -> Option<f64> {
        let v = self.text(name).replace(',', ".");
        match v.parse::<f64>() {
            Ok(h) if h.is_finite() && (0.0..=8784.0).contains(&h) => Some(h),
            _ => {
                self.fail(name, "Indiquez un nombre d'heures de 0 à 8 784 (par exemple 2,5).");
                None
            }
        }
    }

    /// A rating 1 to 5.
    fn rating(&mut self, name: &'static str) -> Option<u8> {
        match self.text(name).parse::<u8>() {
            Ok(n) if (1..=5).contains(&n) => Some(n),
            _ => {
                self.fail(name, "Choisissez une note de 1 à 5.");
                None
            }
        }
    }
}

/// The idempotency of a form post: its random `idem` key, scoped to the path and the token,
/// with a fingerprint of the fields typed (not the CSRF token).
fn idempotency(fields: &HashMap<String, String>, path: &str, token_id: u64) -> Option<Idempotency> {
    let key = fields.get("idem").filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|c| (0x21..=0x7e).contains(&c)))?;
    let mut pairs: Vec<(&String, &String)> = fields.iter().filter(|(k, _)| k.as_str() != "csrf").collect();
    pairs.sort();
    let fingerprint = {
        use std::hash::Hasher;
        let mut h = fnv::FnvHasher::default();
        for (k, v) in pairs {
            h.write(k.as_bytes());
            h.write(&[0]);
            h.write(v.as_bytes());
            h.write(&[0]);
        }
        h.finish()
    };
    Some(Idempotency { scope: format!("form POST {path} token:{token_id}"), key: key.clone(), fingerprint })
}

/// A refusal of the use case shown on the form: a duplicate (409) on the product field, any
/// other 4xx as the form's message; 5xx and the rest stay errors.
fn refusal(e: Error, product_field: Option<&'static str>) -> Result<Vec<(&'static str, String)>, Error> {
    match e {
        Error::Conflict(_) if product_field.is_some() => {
            Ok(vec![(product_field.unwrap_or(""), "Ce produit, dans cette génération, est déjà déclaré en service pour la commune à ces dates.".into())])
        }
        Error::Invalid(m) if m.contains("Idempotency-Key") => {
            Ok(vec![("", "Ce formulaire a déjà été envoyé avec d'autres valeurs : rechargez la page avant de le remplir à nouveau.".into())])
        }
        Error::Invalid(m) | Error::Conflict(m) => Ok(vec![("", format!("Enregistrement refusé : {m}"))]),
        e => Err(e),
    }
}

/// The commune page again with the form's errors (422).
fn again(
    s: &Service,
    signed: &SignedIn,
    code: &InseeCode,
    target: FormTarget,
    fields: HashMap<String, String>,
    errors: Vec<(&'static str, String)>,
) -> PageResult {
    let session = signed.session().ok_or_else(|| PageError::new(s, Error::Unauthorized("not signed in".into())))?;
    let mut values = fields;
    values.remove("csrf");
    let state = FormState { target, values, errors };
    let body = super::commune::render(s, code, Some(&Writer { session, state: Some(&state) }), Some(session), None).map_err(|e| PageError::new(s, e))?;
    Ok(super::private_html(StatusCode::UNPROCESSABLE_ENTITY, body))
}

/// 303 back to the commune page, with the notice `done` and the anchor of the category.
fn done(code: &InseeCode, notice: &str, category: &Slug) -> PageResult {
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/communes/{code}?enregistre={notice}&categorie={category}#categorie-{category}")))
        .finish())
}

/// The signed-in writer of a commune form, its CSRF token checked and its scope covering the
/// commune. Errors (French pages): 401, 403, 404.
fn writer<'a>(s: &Service, signed: &'a SignedIn, fields: &HashMap<String, String>, code: &InseeCode) -> Result<&'a Session, PageError> {
    let session = checked_session(signed, fields).map_err(|e| PageError::new(s, e))?;
    s.authorize_commune(&session.principal, code).map_err(|e| {
        if let Error::Forbidden(_) = &e {
            tracing::warn!(target: "voisinage::audit", token = session.principal.token_id, commune = %code, "form write refused: scope does not cover the commune");
        }
        PageError::new(s, e)
    })?;
    Ok(session)
}

/// `POST /communes/{code}/adoptions` (`categorie`, `option` = `produit/génération`, `depuis`,
/// `fin_contrat`, `postes`, `csrf`, `idem`): declares a product in use.
pub async fn declare(req: HttpRequest, s: web::Data<Service>, signed: SignedIn, code: web::Path<InseeCode>, payload: web::Payload) -> PageResult {
    let code = *code;
    let fields = read_form(&req, payload).await.map_err(|e| PageError::new(&s, e))?;
    let who = writer(&s, &signed, &fields, &code)?.principal;
    let mut c = Check { fields: &fields, today: s.today(), errors: vec![] };
    let category = Slug::parse(c.text("categorie")).and_then(|cat| s.catalog().category(&cat).map(|_| cat)).map_err(|e| PageError::new(&s, e))?;
    let option = c.text("option");
    let product = option.split_once('/').and_then(|(p, g)| {
        let prod = s.catalog().products_in(&category).find(|x| x.id.as_str() == p)?;
        let generation =
            if g.is_empty() { None } else { Some(GenerationId::parse(g).ok().filter(|g| prod.generation(g).is_some() || prod.release(g).is_some())?) };
        Some((prod.id.clone(), generation))
    });
    if product.is_none() {
        c.fail("option", "Choisissez un produit de la liste.");
    }
    let since = c.date("depuis", true, false);
    let contract_end = c.date("fin_contrat", false, true);
    let workstations = c.int("postes", 0, 100_000, false);
    if let (Some(a), Some(b)) = (since, contract_end)
        && b < a
    {
        c.fail("fin_contrat", "La fin du contrat ne peut pas précéder la mise en service.");
    }
    if let (Some((p, Some(g))), Some(d)) = (&product, since)
        && let Ok(prod) = s.catalog().product(p)
        && let Some(r) = prod.release(g).or_else(|| prod.generation(g)).and_then(|x| x.released)
        && d < r
    {
        c.fail("depuis", format!("Cette génération est sortie le {} : la mise en service ne peut pas la précéder.", super::date_fr(r)));
    }
    let errors = std::mem::take(&mut c.errors);
    let target = FormTarget::Declare(category.clone());
    if !errors.is_empty() {
        return again(&s, &signed, &code, target, fields, errors);
    }
    let (Some((product, generation)), Some(since)) = (product, since) else { return again(&s, &signed, &code, target, fields, vec![]) };
    let draft = AdoptionDraft { product, generation, category: Some(category.clone()), since, until: None, contract_end, workstations };
    let idem = idempotency(&fields, req.path(), who.token_id);
    let st = s.clone();
    match blocking(move || st.record_adoption(&who, &code, draft, idem.as_ref())).await {
        Ok(_) => done(&code, "declaration", &category),
        Err(e) => {
            let errors = refusal(e, Some("option")).map_err(|e| PageError::new(&s, e))?;
            again(&s, &signed, &code, target, fields, errors)
        }
    }
}

/// The category of adoption `id` of commune `code`. Errors: `NotFound`.
fn category_of(s: &Service, code: &InseeCode, id: u64) -> Result<Slug, Error> {
    s.index()
        .adoption(id)
        .filter(|a| a.commune == *code)
        .map(|a| a.category.clone())
        .ok_or_else(|| Error::NotFound(format!("commune {code} has no adoption {id}")))
}

/// `POST /communes/{code}/adoptions/{id}/fin` (`jusqu_au`, `csrf`): the commune no longer uses
/// the product from the day after `jusqu_au`.
pub async fn end(req: HttpRequest, s: web::Data<Service>, signed: SignedIn, path: web::Path<(InseeCode, RecordId)>, payload: web::Payload) -> PageResult {
    let (code, id) = (path.0, path.1.0);
    let fields = read_form(&req, payload).await.map_err(|e| PageError::new(&s, e))?;
    let who = writer(&s, &signed, &fields, &code)?.principal;
    let category = category_of(&s, &code, id).map_err(|e| PageError::new(&s, e))?;
    let mut c = Check { fields: &fields, today: s.today(), errors: vec![] };
    let until = c.date("jusqu_au", true, false);
    if let (Some(u), Some(a)) = (until, s.index().adoption(id))
        && u < a.since
    {
        c.fail("jusqu_au", format!("Le produit est en service depuis le {} : la fin ne peut pas précéder cette date.", super::date_fr(a.since)));
    }
    let errors = std::mem::take(&mut c.errors);
    if !errors.is_empty() || until.is_none() {
        return again(&s, &signed, &code, FormTarget::End(id), fields, errors);
    }
    let changes = AdoptionChanges { until: Some(until), ..Default::default() };
    let st = s.clone();
    match blocking(move || st.amend_adoption(&who, &code, id, changes)).await {
        Ok(_) => done(&code, "fin", &category),
        Err(e) => {
            let errors = refusal(e, None).map_err(|e| PageError::new(&s, e))?;
            again(&s, &signed, &code, FormTarget::End(id), fields, errors)
        }
    }
}

/// `POST /communes/{code}/adoptions/{id}/correction` (`fin_contrat`, `postes`, `csrf`): sets
/// (or clears, when empty) the contract end and the workstations.
pub async fn correct(req: HttpRequest, s: web::Data<Service>, signed: SignedIn, path: web::Path<(InseeCode, RecordId)>, payload: web::Payload) -> PageResult {
    let (code, id) = (path.0, path.1.0);
    let fields = read_form(&req, payload).await.map_err(|e| PageError::new(&s, e))?;
    let who = writer(&s, &signed, &fields, &code)?.principal;
    let category = category_of(&s, &code, id).map_err(|e| PageError::new(&s, e))?;
    // Both fields are in the form: one missing is a broken post, not "clear it".
    if !fields.contains_key("fin_contrat") || !fields.contains_key("postes") {
        return Err(PageError::new(&s, Error::Malformed("the correction form sends fin_contrat and postes".into())));
    }
    let mut c = Check { fields: &fields, today: s.today(), errors: vec![] };
    let contract_end = c.date("fin_contrat", false, true);
    let workstations = c.int("postes", 0, 100_000, false);
    if let (Some(e), Some(a)) = (contract_end, s.index().adoption(id))
        && e < a.since
    {
        c.fail("fin_contrat", "La fin du contrat ne peut pas précéder la mise en service.");
    }
    let errors = std::mem::take(&mut c.errors);
    if !errors.is_empty() {
        return again(&s, &signed, &code, FormTarget::Correct(id), fields, errors);
    }
    let changes = AdoptionChanges { until: None, contract_end: Some(contract_end), workstations: Some(workstations) };
    let st = s.clone();
    match blocking(move || st.amend_adoption(&who, &code, id, changes)).await {
        Ok(_) => done(&code, "correction", &category),
        Err(e) => {
            let errors = refusal(e, None).map_err(|e| PageError::new(&s, e))?;
            again(&s, &signed, &code, FormTarget::Correct(id), fields, errors)
        }
    }
}

/// `POST /communes/{code}/adoptions/{id}/avis` (`fiabilite` 1-5, `incidents`,
/// `indisponibilite` in hours, `support` 1-5, `commentaire`, `csrf`, `idem`): feedback dated
/// today.
pub async fn feedback(req: HttpRequest, s: web::Data<Service>, signed: SignedIn, path: web::Path<(InseeCode, RecordId)>, payload: web::Payload) -> PageResult {
    let (code, id) = (path.0, path.1.0);
    let fields = read_form(&req, payload).await.map_err(|e| PageError::new(&s, e))?;
    let who = writer(&s, &signed, &fields, &code)?.principal;
    let category = category_of(&s, &code, id).map_err(|e| PageError::new(&s, e))?;
    let mut c = Check { fields: &fields, today: s.today(), errors: vec![] };
    let reliability = c.rating("fiabilite");
    let incidents = c.int("incidents", 0, 100_000, true);
    let downtime = c.hours("indisponibilite");
    let support = c.rating("support");
    let comment = c.text("commentaire").replace("\r\n", "\n");
    if comment.chars().count() > MAX_COMMENT_CHARS {
        c.fail("commentaire", format!("Le commentaire dépasse {} caractères.", crate::core::fr::int(MAX_COMMENT_CHARS as u64)));
    }
    if let Some(u) = s.index().adoption(id).and_then(|a| a.until).filter(|u| s.today() > *u + chrono::Days::new(366)) {
        c.fail("", format!("Ce produit n'est plus utilisé depuis le {} : un avis n'est plus possible plus d'un an après.", super::date_fr(u)));
    }
    let errors = std::mem::take(&mut c.errors);
    let (Some(reliability), Some(incidents), Some(downtime_hours), Some(support), true) = (reliability, incidents, downtime, support, errors.is_empty()) else {
        return again(&s, &signed, &code, FormTarget::Feedback(id), fields, errors);
    };
    let draft = FeedbackDraft { date: None, reliability, incidents, downtime_hours, support, comment: Some(comment) };
    let idem = idempotency(&fields, req.path(), who.token_id);
    let st = s.clone();
    match blocking(move || st.record_feedback(&who, &code, id, draft, idem.as_ref())).await {
        Ok(_) => done(&code, "avis", &category),
        Err(e) => {
            let errors = refusal(e, None).map_err(|e| PageError::new(&s, e))?;
            again(&s, &signed, &code, FormTarget::Feedback(id), fields, errors)
        }
    }
}
