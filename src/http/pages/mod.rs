//! The French pages: server-rendered HTML, usable without JavaScript. All data is escaped with
//! [`escape`]. An error on a page is a French HTML page with the same status ([`PageError`]),
//! where the API answers problem+json.
//!
//! - `/` and `/recherche`: [`home`];
//! - `/epcis/{siren}`: [`epci`] (map, groupements de commandes, members, export links);
//! - `/communes/{code}`: [`commune`] (neighbours, and per category what runs, the advice, the
//!   first recommendation with its evidence, what the neighbours run), with the forms of
//!   [`forms`] for a signed-in commune or its EPCI;
//! - `/connexion`, `/deconnexion`, `/communes/{code}/lettre`: [`session`];
//! - `/epcis/{siren}/inventaire` and `/epcis/{siren}/estimation`: [`epci_forms`] (the inventory
//!   upload and the price estimate of a signed-in EPCI).
//!
//! Every page is readable at 390 px wide (tables wrap, the map scales with its `viewBox`) and
//! prints on A4 without the navigation and the forms.

pub mod commune;
pub mod epci;
pub mod epci_forms;
pub mod forms;
pub mod home;
pub mod session;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::core::map::escape;
use crate::error::Error;
use crate::service::Service;

/// Registers the pages: GET and HEAD for reading, POST for the forms (sign-in, sign-out, the
/// commune's and the EPCI's forms); other methods get a French 405 with `Allow`. A malformed
/// path or query on a page is answered by a French page, not a problem body.
pub fn configure(cfg: &mut web::ServiceConfig) {
    fn page_resource<F, Args>(path: &str, handler: F) -> actix_web::Resource
    where
        F: actix_web::Handler<Args> + Clone,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        web::resource(path)
            .app_data(page_path())
            .route(web::get().to(handler.clone()))
            .route(web::head().to(handler))
            .default_service(web::to(|s: web::Data<Service>| async move { method_not_allowed(&s) }))
    }
    /// A resource taking a form post only (405 with `Allow: POST` otherwise).
    fn post_resource<F, Args>(path: &str, handler: F) -> actix_web::Resource
    where
        F: actix_web::Handler<Args> + Clone,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        web::resource(path).app_data(page_path()).route(web::post().to(handler)).default_service(web::to(|s: web::Data<Service>| async move {
            let mut r = PageError::new(
                &s,
                Error::MethodNotAllowed(
                    "cette adresse reçoit seulement un formulaire envoyé depuis la page de la commune ou de l'EPCI : ouvrez plutôt cette page".into(),
                ),
            )
            .error_response();
            r.headers_mut().insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static("POST"));
            r
        }))
    }
    let sign_in = web::resource("/connexion")
        .route(web::get().to(session::sign_in_form))
        .route(web::head().to(session::sign_in_form))
        .route(web::post().to(session::sign_in));
    let sign_out = web::resource("/deconnexion")
        .route(web::get().to(session::sign_out_form))
        .route(web::head().to(session::sign_out_form))
        .route(web::post().to(session::sign_out));
    cfg.service(page_resource("/static/voisinage.css", stylesheet))
        .service(page_resource("/", home::index))
        .service(page_resource("/recherche", home::search))
        .service(page_resource("/epcis/{siren}", epci::epci_page))
        .service(page_resource("/communes/{code}", commune::commune_page))
        .service(sign_in)
        .service(sign_out)
        .service(post_resource("/communes/{code}/lettre", session::access_letter))
        .service(post_resource("/epcis/{siren}/inventaire", epci_forms::upload))
        .service(
            web::resource("/epcis/{siren}/estimation")
                .app_data(page_path())
                .route(web::get().to(epci_forms::estimate_form))
                .route(web::head().to(epci_forms::estimate_form))
                .route(web::post().to(epci_forms::estimate)),
        )
        .service(post_resource("/communes/{code}/adoptions", forms::declare))
        .service(post_resource("/communes/{code}/adoptions/{id}/fin", forms::end))
        .service(post_resource("/communes/{code}/adoptions/{id}/correction", forms::correct))
        .service(post_resource("/communes/{code}/adoptions/{id}/avis", forms::feedback));
}

/// What a page handler returns: the page, or an error shown as a French page.
pub type PageResult = Result<HttpResponse, PageError>;

/// An error on a page, answered as a French HTML page with the error's status (5xx errors keep
/// the problem body and their log line).
#[derive(Debug)]
pub struct PageError {
    error: Error,
    simulated: bool,
    /// HTML shown after the explanation (the communes a 404 code probably meant).
    more: String,
}

impl PageError {
    /// The error as a page of this service (with the "simulated data" banner if it applies).
    pub fn new(s: &Service, error: Error) -> PageError {
        PageError { error, simulated: s.is_simulated(), more: String::new() }
    }

    /// The same, with `more` (trusted HTML) shown after the explanation.
    pub fn with_more(s: &Service, error: Error, more: String) -> PageError {
        PageError { error, simulated: s.is_simulated(), more }
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.error.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let e = &self.error;
        if e.status() >= 500 {
            return e.error_response();
        }
        let (title, explanation) = match e.status() {
            404 => ("Page introuvable", "La commune, l'EPCI ou la catégorie demandée n'existe pas."),
            401 => (
                "Connexion nécessaire",
                "Cette action demande d'être connecté avec le code d'accès de la commune ou de son EPCI. La session a peut-être expiré : connectez-vous à nouveau.",
            ),
            403 => ("Action refusée", "Votre code d'accès ne permet pas cette action, ou le formulaire a expiré : rechargez la page et recommencez."),
            413 => ("Envoi trop volumineux", "Le formulaire ou le fichier envoyé dépasse la taille acceptée."),
            415 => ("Format non accepté", "Le contenu envoyé n'est pas dans un format accepté."),
            405 => ("Action impossible", "Cette adresse ne répond pas à cette action (le détail ci-dessous dit laquelle elle accepte)."),
            _ => ("Demande incorrecte", "Un paramètre de l'adresse n'est pas valide (le détail ci-dessous le nomme)."),
        };
        let c = format!(
            "<h1>{title}</h1><p>{explanation}</p>{}<p>Détail : {}</p>{}<p><a href=\"/\">Retour à l'accueil</a></p>",
            self.more,
            escape(&e.to_string()),
            search_form("")
        );
        HttpResponse::build(self.status_code()).content_type("text/html; charset=utf-8").body(page(title, self.simulated, &c))
    }
}

/// 405 on a page: a French page, with `Allow: GET, HEAD`.
fn method_not_allowed(s: &Service) -> HttpResponse {
    let mut r = PageError::new(s, Error::MethodNotAllowed("cette page ne se consulte qu'en lecture (GET, HEAD)".into())).error_response();
    r.headers_mut().insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static("GET, HEAD"));
    r
}

/// A page's query string read into `T` ([`crate::http::extract::Query`], which names the
/// parameter at fault), an error becoming a French page.
pub fn page_query<T>(s: &Service, q: Result<crate::http::extract::Query<T>, actix_web::Error>) -> Result<T, PageError> {
    q.map(|q| q.0).map_err(|e| PageError::new(s, Error::Malformed(e.to_string())))
}

/// The extractor error handler of the pages: the error as a French page.
fn page_error(req: &HttpRequest, error: Error) -> actix_web::Error {
    let simulated = req.app_data::<web::Data<Service>>().is_some_and(|s| s.is_simulated());
    PageError { error, simulated, more: String::new() }.into()
}

/// The stylesheet of every page ([`STYLE`]), revalidated by its `ETag`.
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok().content_type("text/css; charset=utf-8").body(STYLE)
}

/// A 200 HTML answer.
fn html(body: String) -> PageResult {
    Ok(HttpResponse::build(StatusCode::OK).content_type("text/html; charset=utf-8").body(body))
}

/// An HTML answer that shows what only a signed-in reader sees (forms with their CSRF token, a
/// letter's access code): `Cache-Control: no-store`, so no cache keeps it.
pub fn private_html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").insert_header((actix_web::http::header::CACHE_CONTROL, "no-store")).body(body)
}

/// A 200 page, private ([`private_html`]) when the reader is signed in.
fn page_for(signed_in: bool, body: String) -> PageResult {
    if signed_in { Ok(private_html(StatusCode::OK, body)) } else { html(body) }
}

/// The path extractor of the pages: a malformed path is a French 400 page.
fn page_path() -> web::PathConfig {
    web::PathConfig::default().error_handler(|e, req| page_error(req, Error::Malformed(format!("invalid path: {e}"))))
}

/// The pages' one stylesheet, served at `/static/voisinage.css` (an external file, so that the
/// Content-Security-Policy allows no inline style). The map's SVG carries its natural size in
/// `width` and `height`; `max-width:100%` scales it down on a narrow screen.
pub const STYLE: &str = "*,*::before,*::after{box-sizing:border-box}body{font-family:system-ui,sans-serif;max-width:72rem;margin:0 auto;padding:1rem;color:#1a1a1a;background:#fff;line-height:1.45}\
a{color:#0b4f9c}table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}th,td{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#eef2f7}caption{text-align:left;font-weight:600;padding:.3rem 0}.simule{background:#fff3cd;border:1px solid #8a6d00;padding:.5rem}\
.legende{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}.pastille{display:inline-block;width:1rem;height:1rem;border:1px solid #333;vertical-align:middle;margin-right:.3rem}\
section.groupement{border-top:2px solid #0b4f9c;margin-top:1.5rem}.verifier{background:#eef2f7;border:1px solid #0b4f9c;padding:.5rem}label{font-weight:600}input,select,button{font-size:1rem;padding:.3rem}svg.carte{display:block;max-width:100%;height:auto}\
header{display:flex;flex-wrap:wrap;justify-content:space-between;gap:.5rem;border-bottom:1px solid #999}header form{display:inline}.compte{margin:.5rem 0}\
.erreur{color:#8b0000;font-weight:600;margin:.2rem 0}.ok{background:#e6f4ea;border:1px solid #1e6b34;padding:.5rem}[aria-invalid=true]{border:2px solid #8b0000}\
details{margin:.4rem 0;border:1px solid #bbb;padding:.3rem .5rem}summary{cursor:pointer;font-weight:600;color:#0b4f9c}.formulaire p{margin:.4rem 0}input,select,textarea{max-width:100%}textarea{width:100%}\
.lettre .code code{font-size:1.3rem;letter-spacing:.05em;word-break:break-all}img,svg{max-width:100%}\
@media (max-width:40rem){body{padding:.5rem}th,td{padding:.25rem .3rem;hyphens:auto;font-size:.9rem}td{overflow-wrap:anywhere}th{font-size:.8rem}h1{font-size:1.4rem}}\
@media print{@page{size:A4;margin:15mm}header,footer,form,details,.non-imprime,.recherche{display:none!important}body{max-width:none;padding:0;font-size:10.5pt;color:#000}\
a{color:#000;text-decoration:none}table{page-break-inside:auto}tr,svg.carte{page-break-inside:avoid}section{page-break-inside:auto}.simule{border:1px solid #000}}";

/// What the frame of a page shows besides its content: the "simulated data" banner, and who is
/// signed in (with the sign-out form) or the sign-in link.
pub struct Nav {
    simulated: bool,
    /// Who is signed in (in French) and the session's CSRF token.
    user: Option<(String, String)>,
}

impl Nav {
    /// The frame for a page of this service seen by `session`.
    pub fn of(s: &Service, session: Option<&crate::core::session::Session>) -> Nav {
        Nav { simulated: s.is_simulated(), user: session.map(|x| (session::scope_label(s, &x.principal.scope), x.csrf.clone())) }
    }
}

/// A date in French: `8 octobre 2024`, `1er janvier 2026`.
pub fn date_fr(d: chrono::NaiveDate) -> String {
    crate::core::fr::date(d)
}

/// A whole page: head, header, the "simulated data" banner when `simulated`, the content
/// (already escaped HTML), the footer with the sources. Nobody is shown signed in.
fn page(title: &str, simulated: bool, content: &str) -> String {
    page_with(title, &Nav { simulated, user: None }, content)
}

/// A whole page with its frame ([`Nav`]): head, header (with who is signed in), banner,
/// content (already escaped HTML), footer.
pub fn page_with(title: &str, nav: &Nav, content: &str) -> String {
    let account = match &nav.user {
        Some((who, csrf)) => format!(
            "<div class=\"compte\">Connecté : {} · <form method=\"post\" action=\"/deconnexion\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\">Se déconnecter</button></form></div>",
            escape(who)
        ),
        None => "<div class=\"compte\"><a href=\"/connexion\">Se connecter</a></div>".to_string(),
    };
    let simulated = nav.simulated;
    let banner = if simulated {
        "<p class=\"simule\" role=\"note\"><strong>Données simulées.</strong> Les adoptions et retours affichés proviennent d'un historique simulé pour la démonstration : ce ne sont pas des avis réels sur les produits.</p>"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — voisinage</title><link rel=\"stylesheet\" href=\"/static/voisinage.css\"></head>\
<body><header><p><a href=\"/\">voisinage</a> : ce que les communes voisines utilisent déjà</p>{account}</header><main>{banner}{content}</main>\
<footer><p>Sources : INSEE COG 2026, IGN Admin Express 2018 (Licence Ouverte), endoflife.date (MIT). Communes et EPCI de Bretagne.</p></footer></body></html>",
        escape(title)
    )
}

/// The search form, pre-filled with `q`.
fn search_form(q: &str) -> String {
    format!(
        "<form action=\"/recherche\" method=\"get\" role=\"search\"><label for=\"q\">Commune ou EPCI (nom, code INSEE ou SIREN)</label> <input id=\"q\" name=\"q\" value=\"{}\" required maxlength=\"100\"> <button type=\"submit\">Rechercher</button></form>",
        escape(q)
    )
}
