//! Signing in without curl: `/connexion` takes an access code (a commune's, an EPCI's or the
//! administrator's token secret) in a form and opens a session; `/deconnexion` ends it.
//!
//! - The browser holds only a session id, in the cookie [`SESSION_COOKIE`]
//!   (`HttpOnly; Secure; SameSite=Strict; Path=/`), never the code. Sessions live in the
//!   service ([`crate::core::session`]): 30 minutes idle, 8 hours at most.
//! - Every form carries a CSRF token: the session's own, or before sign-in the value of the
//!   short-lived cookie [`LOGIN_COOKIE`] (double submit), compared in constant time.
//! - A wrong code (malformed, unknown, revoked) is answered after [`WRONG_CODE_DELAY`] from
//!   the request's arrival, with the same page and status (401) whatever was wrong.
//! - The code travels only in a POST body: never in a URL, and the request log holds the path.
//! - An EPCI or administrator signed in can print a member commune's access code as a letter
//!   (`POST /communes/{code}/lettre`): a new `commune:{code}` token, shown once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};

use super::{Nav, PageError, PageResult, page_with};
use crate::core::auth::TokenScope;
use crate::core::domain::InseeCode;
use crate::core::map::escape;
use crate::core::session::{Session, constant_time_eq, hex};
use crate::error::Error;
use crate::http::respond::blocking;
use crate::service::Service;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "vsn_session";

/// Name of the cookie that carries the sign-in form's CSRF value (15 minutes, path
/// `/connexion`).
pub const LOGIN_COOKIE: &str = "vsn_connexion";

/// Time from a request's arrival to the answer to a wrong access code.
pub const WRONG_CODE_DELAY: Duration = Duration::from_secs(1);

/// Largest accepted form body, bytes: a 2,000-character comment of 4-byte characters,
/// percent-encoded, fits.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The signed-in session of a page request, if any (from the session cookie).
pub struct SignedIn(pub Option<(String, Session)>);

impl SignedIn {
    /// The session, if signed in.
    pub fn session(&self) -> Option<&Session> {
        self.0.as_ref().map(|(_, s)| s)
    }
}

impl FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let found = req.cookie(SESSION_COOKIE).and_then(|c| {
            let s = req.app_data::<web::Data<Service>>()?;
            let id = c.value().to_string();
            s.session(&id).map(|session| (id, session))
        });
        std::future::ready(Ok(SignedIn(found)))
    }
}

/// Reads the fields of a form body (`application/x-www-form-urlencoded`, at most
/// [`MAX_FORM_BYTES`]; line breaks `\r\n` read as `\n`, as browsers count them). Errors (shown
/// as French pages by the caller): `UnsupportedMediaType` for another content type, `TooLarge`
/// over the limit, `Malformed` for a field given twice or a broken body.
pub async fn read_form(req: &HttpRequest, mut payload: web::Payload) -> Result<HashMap<String, String>, Error> {
    use futures_util::StreamExt;
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(Error::UnsupportedMediaType("a form is sent as application/x-www-form-urlencoded".into()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Error::Malformed(format!("form body: {e}")))?;
        if body.len() + chunk.len() > MAX_FORM_BYTES {
            return Err(Error::TooLarge(format!("a form is at most {} KiB", MAX_FORM_BYTES / 1024)));
        }
        body.extend_from_slice(&chunk);
    }
    let mut fields = HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        if fields.insert(k.to_string(), v.replace("\r\n", "\n")).is_some() {
            return Err(Error::Malformed(format!("form field '{}' is given more than once", k.chars().take(40).collect::<String>())));
        }
    }
    Ok(fields)
}

/// The session of a form post whose `csrf` field matches it. Errors: `Unauthorized` when not
/// signed in (or the session ended), `Forbidden` when the CSRF token is missing or wrong.
pub fn checked_session<'a>(signed: &'a SignedIn, fields: &HashMap<String, String>) -> Result<&'a Session, Error> {
    let s = signed.session().ok_or_else(|| Error::Unauthorized("not signed in, or the session has ended: sign in again".into()))?;
    if !fields.get("csrf").is_some_and(|c| s.csrf_matches(c)) {
        return Err(Error::Forbidden("the form's security token does not match this session: reload the page and send it again".into()));
    }
    Ok(s)
}

/// A cookie of this service: `HttpOnly; Secure; SameSite=Strict`.
fn cookie<'c>(name: &'c str, value: String, path: &'c str, max_age: time_dur::Duration) -> Cookie<'c> {
    Cookie::build(name, value).path(path).http_only(true).secure(true).same_site(SameSite::Strict).max_age(max_age).finish()
}

mod time_dur {
    pub use actix_web::cookie::time::Duration;
}

/// A local path to go back to after sign-in (`/communes/29195`); anything else (another site,
/// `//host`, odd characters) becomes `None`.
fn local_path(p: &str) -> Option<&str> {
    let ok = p.starts_with('/') && !p.starts_with("//") && p.len() <= 200 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_".contains(&b));
    ok.then_some(p)
}

/// Query of `/connexion`.
#[derive(serde::Deserialize)]
pub struct SignInQuery {
    /// Where to go after sign-in (a local path).
    suite: Option<String>,
}

/// `GET /connexion`: the sign-in form.
pub async fn sign_in_form(s: web::Data<Service>, signed: SignedIn, q: Result<crate::http::extract::Query<SignInQuery>, actix_web::Error>) -> PageResult {
    let q = super::page_query(&s, q)?;
    let next = q.suite.as_deref().and_then(local_path).unwrap_or("");
    sign_in_page(&s, &signed, next, None, StatusCode::OK)
}

/// The sign-in page, with a new CSRF value in the form and its cookie.
fn sign_in_page(s: &Service, signed: &SignedIn, next: &str, error: Option<&str>, status: StatusCode) -> PageResult {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| PageError::new(s, Error::Internal { context: format!("random source: {e}"), source: None }))?;
    let csrf = hex(&bytes);
    let mut c = String::from("<h1>Se connecter</h1>");
    if let Some(sess) = signed.session() {
        let _ = write!(c, "<p>Vous êtes déjà connecté ({}).</p>", escape(&scope_label(s, &sess.principal.scope)));
    }
    c.push_str(
        "<p>Saisissez le code d'accès reçu par courrier de votre EPCI (ou de l'administrateur du service). \
Il permet de déclarer les logiciels et équipements de la commune et de donner un avis sur eux.</p>",
    );
    let (invalid, err) = match error {
        Some(e) => (" aria-invalid=\"true\" aria-describedby=\"code-erreur\"", format!("<p class=\"erreur\" id=\"code-erreur\">{}</p>", escape(e))),
        None => ("", String::new()),
    };
    let _ = write!(
        c,
        "<form method=\"post\" action=\"/connexion\" class=\"formulaire\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"suite\" value=\"{}\">\
<p><label for=\"code\">Code d'accès</label><br><input id=\"code\" name=\"code\" type=\"text\" autocomplete=\"off\" autocapitalize=\"none\" required maxlength=\"200\" size=\"50\" spellcheck=\"false\"{invalid}></p>{err}\
<p><button type=\"submit\">Se connecter</button></p></form>\
<p>Le code s'affiche pendant la saisie, pour le vérifier sur le courrier ; ses espaces peuvent être tapés ou non. La session se termine après 30 minutes sans activité, ou au plus tard 8 heures après la connexion.</p>",
        escape(next)
    );
    let body = page_with("Se connecter", &Nav::of(s, signed.session()), &c);
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie(LOGIN_COOKIE, csrf, "/connexion", time_dur::Duration::minutes(15)))
        .body(body))
}

/// `POST /connexion` (`code`, `csrf`, `suite`): opens a session and redirects (303) to
/// `suite`, else to the commune's or the EPCI's page. A wrong code: 401 with the form again,
/// after [`WRONG_CODE_DELAY`]. A CSRF value that does not match the form's cookie: 403.
pub async fn sign_in(req: HttpRequest, s: web::Data<Service>, signed: SignedIn, payload: web::Payload) -> PageResult {
    let arrived = Instant::now();
    let fields = read_form(&req, payload).await.map_err(|e| PageError::new(&s, e))?;
    let expected = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    let presented = fields.get("csrf").map(String::as_str).unwrap_or_default();
    let next = fields.get("suite").map(String::as_str).and_then(local_path).unwrap_or("").to_string();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), presented.as_bytes()) {
        return sign_in_page(&s, &signed, &next, Some("Le formulaire a expiré : saisissez à nouveau le code."), StatusCode::FORBIDDEN);
    }
    // As printed on the letter: groups separated by spaces; any case.
    let code: String = fields.get("code").map(String::as_str).unwrap_or_default().chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
    let st = s.clone();
    match blocking(move || st.sign_in(&code)).await {
        Ok((id, session)) => {
            // Signing in again in the same browser ends the session it held.
            if let Some((old, _)) = &signed.0 {
                s.sign_out(old);
            }
            let to = if next.is_empty() { home_of(&session.principal.scope) } else { next };
            let mut r = HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .cookie(cookie(SESSION_COOKIE, id, "/", time_dur::Duration::hours(crate::core::session::MAX_AGE_HOURS)))
                .finish();
            let _ = r.add_removal_cookie(&cookie(LOGIN_COOKIE, String::new(), "/connexion", time_dur::Duration::ZERO));
            Ok(r)
        }
        Err(Error::Unauthorized(_)) => {
            actix_web::rt::time::sleep(WRONG_CODE_DELAY.saturating_sub(arrived.elapsed())).await;
            sign_in_page(
                &s,
                &signed,
                &next,
                Some("Code d'accès non reconnu. Vérifiez le code imprimé sur le courrier, ou demandez-en un nouveau à votre EPCI."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(e) => Err(PageError::new(&s, e)),
    }
}

/// The page a scope lands on after sign-in.
fn home_of(scope: &TokenScope) -> String {
    match scope {
        TokenScope::Commune(c) => format!("/communes/{c}"),
        TokenScope::Epci(s) => format!("/epcis/{s}"),
        TokenScope::Admin => "/".into(),
    }
}

/// Who a scope is, in French: "commune de Plouguerneau", "EPCI Pays des Abers",
/// "administration du service".
pub fn scope_label(s: &Service, scope: &TokenScope) -> String {
    let t = s.territory();
    match scope {
        TokenScope::Commune(c) => t.find(c).map_or_else(|_| format!("commune {c}"), |i| format!("commune de {}", t.commune(i).name)),
        TokenScope::Epci(e) => t.epci(e).map_or_else(|_| format!("EPCI {e}"), |x| format!("EPCI {}", x.name)),
        TokenScope::Admin => "administration du service".into(),
    }
}

/// `GET /deconnexion`: a button to sign out (the sign-out itself is a POST with the CSRF
/// token); not signed in, a link to sign in.
pub async fn sign_out_form(s: web::Data<Service>, signed: SignedIn) -> PageResult {
    let c = match signed.session() {
        Some(sess) => format!(
            "<h1>Se déconnecter</h1><p>Connecté : {}.</p><form method=\"post\" action=\"/deconnexion\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Se déconnecter</button></form>",
            escape(&scope_label(&s, &sess.principal.scope)),
            sess.csrf
        ),
        None => "<h1>Se déconnecter</h1><p>Vous n'êtes pas connecté.</p><p><a href=\"/connexion\">Se connecter</a></p>".into(),
    };
    Ok(super::private_html(StatusCode::OK, page_with("Se déconnecter", &Nav::of(&s, signed.session()), &c)))
}

/// `POST /deconnexion` (`csrf`): ends the session, clears the cookie, redirects (303) to the
/// home page. Without a session, the same redirect.
pub async fn sign_out(req: HttpRequest, s: web::Data<Service>, signed: SignedIn, payload: web::Payload) -> PageResult {
    let fields = read_form(&req, payload).await.map_err(|e| PageError::new(&s, e))?;
    if let Some((id, _)) = &signed.0 {
        checked_session(&signed, &fields).map_err(|e| PageError::new(&s, e))?;
        s.sign_out(id);
    }
    let mut r = HttpResponse::SeeOther().insert_header((header::LOCATION, "/?deconnecte=1")).finish();
    let _ = r.add_removal_cookie(&cookie(SESSION_COOKIE, String::new(), "/", time_dur::Duration::ZERO));
    Ok(r)
}

/// `POST /communes/{code}/lettre` (`csrf`): for an EPCI or administrator signed in, a new
/// access code for the commune, as a letter to print and post (name, code, how to sign in).
/// `Cache-Control: no-store`. Errors (French pages): 401 not signed in, 403 CSRF or scope, 404.
pub async fn access_letter(req: HttpRequest, s: web::Data<Service>, signed: SignedIn, code: web::Path<InseeCode>, payload: web::Payload) -> PageResult {
    let fields = read_form(&req, payload).await.map_err(|e| PageError::new(&s, e))?;
    let session = checked_session(&signed, &fields).map_err(|e| PageError::new(&s, e))?;
    let who = session.principal;
    let code = *code;
    let st = s.clone();
    let label = format!("courrier du {}", s.today().format("%Y-%m-%d"));
    let (token, secret) = blocking(move || st.issue_access_code(&who, &code, &label)).await.map_err(|e| PageError::new(&s, e))?;
    let t = s.territory();
    let c = t.commune(t.find(&code).map_err(|e| PageError::new(&s, e))?);
    let grouped: Vec<String> = secret.as_bytes().chunks(4).map(|g| String::from_utf8_lossy(g).into_owned()).collect();
    let host = req.connection_info().host().to_string();
    let html = format!(
        "<article class=\"lettre\"><p>{}, le {}</p><p>À l'attention du secrétariat de mairie<br><strong>Mairie de {}</strong> (code INSEE {})</p>\
<h1>Votre code d'accès à voisinage</h1>\
<p>voisinage montre ce que les communes voisines utilisent comme logiciels et équipements, et depuis quand. Avec ce code, la mairie peut déclarer ce qu'elle utilise et donner son avis.</p>\
<p>Code d'accès (n° {}) :</p><p class=\"code\"><code>{}</code></p>\
<ol><li>Ouvrez <strong>{}/connexion</strong> dans un navigateur.</li><li>Saisissez le code ci-dessus (les espaces peuvent être omis).</li>\
<li>Sur la page de la commune, déclarez vos logiciels et donnez votre avis.</li></ol>\
<p>Gardez ce courrier en lieu sûr : le code permet d'écrire au nom de la commune. Les codes envoyés auparavant à la commune ne fonctionnent plus. En cas de perte, demandez un nouveau code à votre EPCI : celui-ci cessera alors de fonctionner.</p></article>\
<p class=\"non-imprime\"><a href=\"/communes/{}\">Retour à la page de la commune</a> — imprimez cette page (Ctrl+P) : la navigation n'est pas imprimée.</p>",
        escape(&scope_label(&s, &who.scope)),
        super::date_fr(s.today()),
        escape(&c.name),
        c.code,
        token.id,
        grouped.join(" "),
        escape(&host),
        c.code
    );
    Ok(super::private_html(StatusCode::OK, page_with(&format!("Code d'accès — {}", c.name), &Nav::of(&s, signed.session()), &html)))
}
