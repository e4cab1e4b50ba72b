//! Signing in and writing through the French forms, as a browser would (cookies handled by
//! hand: the session cookie is `Secure`, which a cookie jar would keep off plain-HTTP test
//! servers).

mod common;

use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

/// A client that does not follow redirects (to read `Location` and `Set-Cookie`).
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// The value of `name="{field}" value="..."` in a page (the first such input).
fn input_value(html: &str, field: &str) -> String {
    let at = html.find(&format!("name=\"{field}\" value=\"")).unwrap_or_else(|| panic!("no field {field}"));
    let rest = &html[at + field.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The `Set-Cookie` header of `name`, whole.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).find(|c| c.starts_with(&format!("{name}=")))
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string()
}

/// Opens the sign-in form and posts `code`; returns the answer.
async fn post_code(app: &common::TestApp, b: &reqwest::Client, code: &str, suite: &str) -> reqwest::Response {
    let form = b.get(app.url("/connexion")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let login = set_cookie(&form, "vsn_connexion").expect("sign-in form cookie");
    assert!(login.contains("HttpOnly") && login.contains("Secure") && login.contains("SameSite=Strict"), "{login}");
    let html = form.text().await.unwrap();
    let csrf = input_value(&html, "csrf");
    assert_eq!(cookie_value(&login), csrf, "double-submit value");
    b.post(app.url("/connexion"))
        .header(COOKIE, format!("vsn_connexion={csrf}"))
        .form(&[("csrf", csrf.as_str()), ("code", code), ("suite", suite)])
        .send()
        .await
        .unwrap()
}

/// Signs in with `code`; returns the session cookie's value.
async fn sign_in(app: &common::TestApp, b: &reqwest::Client, code: &str) -> String {
    let r = post_code(app, b, code, "").await;
    assert_eq!(r.status(), 303);
    let c = set_cookie(&r, "vsn_session").expect("session cookie");
    cookie_value(&c)
}

#[tokio::test]
async fn wrong_codes_are_answered_slowly_and_alike() {
    let app = common::spawn(false).await;
    let b = browser();
    let revoked = app.token("commune:29195");
    let id = app.service.authenticate(&revoked).unwrap().token_id;
    app.service.revoke_token(&voisinage::core::auth::Principal::OPERATOR, id).unwrap();
    let unknown = format!("vsn_{}", "ab".repeat(32));
    let mut bodies = vec![];
    for code in ["", "hello", unknown.as_str(), revoked.as_str()] {
        let start = Instant::now();
        let r = post_code(&app, &b, code, "").await;
        let took = start.elapsed();
        assert_eq!(r.status(), 401, "{code}");
        assert!(took >= Duration::from_millis(990), "{code}: answered in {took:?}");
        assert!(set_cookie(&r, "vsn_session").is_none());
        let html = r.text().await.unwrap();
        assert!(html.contains("Code d&#39;accès non reconnu"));
        assert!(!html.contains(&revoked) && !html.contains(&unknown), "the code typed is never echoed");
        // The same page whatever was wrong, but for the fresh CSRF value.
        bodies.push(html.replace(&input_value(&html, "csrf"), "CSRF"));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    // A post whose CSRF value does not match the form's cookie: 403, no session.
    let r = b.post(app.url("/connexion")).header(COOKIE, "vsn_connexion=aaaa").form(&[("csrf", "bbbb"), ("code", &unknown)]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(set_cookie(&r, "vsn_session").is_none());
}

#[tokio::test]
async fn sign_in_declare_feedback_correct_end_sign_out() {
    let app = common::spawn(false).await;
    let b = browser();
    let code = app.token("commune:29195");
    // Typed as printed on the letter: groups of four, upper case.
    let typed: Vec<String> = code.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).to_uppercase()).collect();
    let r = post_code(&app, &b, &typed.join(" "), "").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/communes/29195");
    let sc = set_cookie(&r, "vsn_session").unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(sc.contains(attr), "{sc} lacks {attr}");
    }
    assert_eq!(r.headers()["x-frame-options"], "DENY", "never framed by another site");
    let session = cookie_value(&sc);
    assert!(session.starts_with("s_") && session.len() == 66 && !sc.contains(&code[4..]), "a session id, never the token");
    let cookie = format!("vsn_session={session}");

    // The page shows the forms to the commune signed in, not to the public.
    let public = app.anon.get(app.url("/communes/29195")).send().await.unwrap().text().await.unwrap();
    assert!(!public.contains("Déclarer un produit") && public.contains("/connexion?suite=/communes/29195"));
    let html = b.get(app.url("/communes/29195")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Connecté : commune de Plouguerneau"));
    assert!(html.contains("Déclarer un produit en service (Élections et listes électorales)"));
    let csrf = input_value(&html, "csrf");
    assert_eq!(csrf.len(), 64);
    // Generations and their releases are offered, as the catalogue lists them.
    assert!(html.contains("<option value=\"windows/11\">Microsoft Windows 11</option>"));
    assert!(html.contains("<option value=\"windows/11-24h2-w\">Microsoft Windows 11 — version 11 24H2 (W)</option>"), "a release");

    // Bad input: French messages next to the fields, the input kept, nothing written.
    let r = b
        .post(app.url("/communes/29195/adoptions"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("idem", "k1"), ("categorie", "elections"), ("option", "nope/"), ("depuis", "31/12/2031"), ("postes", "12a")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("Choisissez un produit de la liste."));
    assert!(
        page.contains("La date ne peut pas être postérieure à aujourd&#39;hui (29 novembre 2026)."),
        "{}",
        &page[page.find("erreur").unwrap_or(0)..][..400]
    );
    assert!(page.contains("Indiquez un nombre entier de 0 à 100\u{202f}000."));
    assert!(page.contains("value=\"31/12/2031\"") && page.contains("value=\"12a\""), "input kept");
    assert!(page.contains("<details open><summary>Déclarer un produit en service (Élections et listes électorales)"));
    assert_eq!(app.service.adoptions_of(None, &voisinage::core::domain::InseeCode::parse("29195").unwrap()).unwrap().len(), 0);

    // A valid declaration, sent twice (double click): one adoption.
    let form = [
        ("csrf", csrf.as_str()),
        ("idem", "k2"),
        ("categorie", "elections"),
        ("option", "openelec/"),
        ("depuis", "2019-03-01"),
        ("fin_contrat", "2027-06-30"),
        ("postes", "3"),
    ];
    for _ in 0..2 {
        let r = b.post(app.url("/communes/29195/adoptions")).header(COOKIE, &cookie).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()[LOCATION], "/communes/29195?enregistre=declaration&categorie=elections#categorie-elections");
    }
    let list: serde_json::Value = app.anon.get(app.url("/api/v1/communes/29195/adoptions")).send().await.unwrap().json().await.unwrap();
    let items = list["adoptions"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let a = &items[0];
    assert_eq!(
        (a["product"].as_str(), a["since"].as_str(), a["contract_end"].as_str(), a["workstations"].as_u64()),
        (Some("openelec"), Some("2019-03-01"), Some("2027-06-30"), Some(3))
    );
    let id = a["id"].as_u64().unwrap();
    let html = b.get(app.url("/communes/29195?enregistre=declaration&categorie=elections")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("depuis le 1er mars 2019"));
    assert!(
        html.contains(
            "<section id=\"categorie-elections\"><h3>Élections et listes électorales</h3><p class=\"ok\" role=\"status\">Déclaration enregistrée.</p>"
        ),
        "the notice where the page opens"
    );

    // Feedback: a bad rating is refused in French; a good one is stored once.
    let r = b
        .post(app.url(&format!("/communes/29195/adoptions/{id}/avis")))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("idem", "f1"), ("fiabilite", "9"), ("incidents", "1"), ("indisponibilite", "2,5"), ("support", "4")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Choisissez une note de 1 à 5."));
    let fb = [
        ("csrf", csrf.as_str()),
        ("idem", "f2"),
        ("fiabilite", "4"),
        ("incidents", "1"),
        ("indisponibilite", "2,5"),
        ("support", "5"),
        ("commentaire", "Mise à jour sans souci."),
    ];
    for _ in 0..2 {
        let r = b.post(app.url(&format!("/communes/29195/adoptions/{id}/avis"))).header(COOKIE, &cookie).form(&fb).send().await.unwrap();
        assert_eq!(r.status(), 303);
    }
    let one: serde_json::Value = app.client.get(app.url(&format!("/api/v1/communes/29195/adoptions/{id}"))).send().await.unwrap().json().await.unwrap();
    let f = one["feedback"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{one}");
    assert_eq!(
        (f[0]["reliability"].as_u64(), f[0]["downtime_hours"].as_f64(), f[0]["support"].as_u64(), f[0]["date"].as_str()),
        (Some(4), Some(2.5), Some(5), Some("2026-11-29"))
    );
    assert_eq!(f[0]["comment"], "Mise à jour sans souci.");

    // Correct (clear the contract end, 4 workstations), then end it.
    let r = b
        .post(app.url(&format!("/communes/29195/adoptions/{id}/correction")))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("idem", "c1"), ("fin_contrat", ""), ("postes", "4")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = b
        .post(app.url(&format!("/communes/29195/adoptions/{id}/fin")))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("idem", "e1"), ("jusqu_au", "2019-01-01")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "an end before the start is refused");
    let r = b
        .post(app.url(&format!("/communes/29195/adoptions/{id}/fin")))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("idem", "e2"), ("jusqu_au", "2026-10-31")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let one: serde_json::Value = app.anon.get(app.url(&format!("/api/v1/communes/29195/adoptions/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (one["until"].as_str(), one["contract_end"].as_str(), one["workstations"].as_u64(), one["active"].as_bool()),
        (Some("2026-10-31"), None, Some(4), Some(false))
    );
    // What the forms wrote is on disk, as the API's writes are.
    let (stored, feedback) = app.service.stored_records().unwrap();
    assert_eq!((stored.len(), feedback.len()), (1, 1));
    assert_eq!(stored[0].until.map(|d| d.to_string()).as_deref(), Some("2026-10-31"));

    // Without the CSRF token, or for another commune: refused, nothing written.
    let r = b
        .post(app.url("/communes/29195/adoptions"))
        .header(COOKIE, &cookie)
        .form(&[("categorie", "elections"), ("option", "openelec/"), ("depuis", "2020-01-01")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = b
        .post(app.url("/communes/29019/adoptions"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("categorie", "elections"), ("option", "openelec/"), ("depuis", "2020-01-01")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Action refusée"));
    assert_eq!(app.service.stored_records().unwrap().0.len(), 1);

    // Sign out: the cookie is cleared and the old session id no longer writes.
    let r = b.post(app.url("/deconnexion")).header(COOKIE, &cookie).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(set_cookie(&r, "vsn_session").unwrap().contains("Max-Age=0"));
    let r = b.post(app.url("/communes/29195/adoptions")).header(COOKIE, &cookie).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Connexion nécessaire"));
}

#[tokio::test]
async fn an_epci_prints_an_access_code_letter_that_signs_the_commune_in() {
    let app = common::spawn(false).await;
    let b = browser();
    // Plouguerneau is in the Pays des Abers (SIREN 242900553).
    let epci = app.token("epci:242900553");
    let session = sign_in(&app, &b, &epci).await;
    let cookie = format!("vsn_session={session}");
    let html = b.get(app.url("/communes/29195")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Imprimer un courrier avec un nouveau code d&#39;accès") || html.contains("Imprimer un courrier avec un nouveau code d'accès"));
    let csrf = input_value(&html, "csrf");
    let r = b.post(app.url("/communes/29195/lettre")).header(COOKIE, &cookie).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let letter = r.text().await.unwrap();
    assert!(letter.contains("<strong>Mairie de Plouguerneau</strong> (code INSEE 29195)"));
    assert!(letter.contains("le 29 novembre 2026"));
    let printed = &letter[letter.find("<p class=\"code\"><code>").unwrap() + 22..];
    let printed = &printed[..printed.find("</code>").unwrap()];
    assert_eq!(printed.len(), 68 + 16, "17 groups of four");
    // The printed code signs the mairie in, as the commune.
    let b2 = browser();
    let r = post_code(&app, &b2, printed, "").await;
    assert_eq!(r.headers()[LOCATION], "/communes/29195");
    // A commune's session cannot print letters, nor can the EPCI for a commune outside it.
    let r = b.post(app.url("/communes/29019/lettre")).header(COOKIE, &cookie).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let commune_session = sign_in(&app, &b2, printed).await;
    let c2 = format!("vsn_session={commune_session}");
    let html = b2.get(app.url("/communes/29195")).header(COOKIE, &c2).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("Imprimer un courrier"));
    let csrf2 = input_value(&html, "csrf");
    let r = b2.post(app.url("/communes/29195/lettre")).header(COOKIE, &c2).form(&[("csrf", csrf2.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // A second letter replaces the first: the first code stops working, its session ends.
    let r = b.post(app.url("/communes/29195/lettre")).header(COOKIE, &cookie).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = post_code(&app, &browser(), printed, "").await;
    assert_eq!(r.status(), 401, "the first letter's code is revoked");
    let r = b2.get(app.url("/communes/29195")).header(COOKIE, &c2).send().await.unwrap().text().await.unwrap();
    assert!(r.contains("Se connecter") && !r.contains("Connecté"), "its session ended");
}

#[tokio::test]
async fn an_epci_uploads_its_inventory_and_prices_an_option_through_its_page() {
    let app = common::spawn(false).await;
    let b = browser();
    let session = sign_in(&app, &b, &app.token("epci:242900553")).await;
    let cookie = format!("vsn_session={session}");
    let html = b.get(app.url("/epcis/242900553")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("action=\"/epcis/242900553/inventaire\" enctype=\"multipart/form-data\""));
    assert!(html.contains("Connecté : EPCI CC du Pays des Abers"));
    let csrf = input_value(&html, "csrf");
    let public = app.anon.get(app.url("/epcis/242900553")).send().await.unwrap().text().await.unwrap();
    assert!(!public.contains("/inventaire\"") && public.contains("/connexion?suite=/epcis/242900553"));

    let upload = |csv: &'static str, csrf: String, check_only: bool| {
        let mut form = reqwest::multipart::Form::new()
            .text("csrf", csrf)
            .part("fichier", reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("inventaire.csv").mime_str("text/csv").unwrap());
        if check_only {
            form = form.text("verifier", "1");
        }
        b.post(app.url("/epcis/242900553/inventaire")).header(COOKIE, cookie.clone()).multipart(form).send()
    };
    let count = || app.service.stored_records().unwrap().0.len();
    // A bad row: nothing written, the row and the column named in French.
    let bad = "code_insee;categorie;produit;generation;depuis;fin_contrat;postes\n29195;elections;openelec;;2019-03-01;;\n29117;elections;nope;;2019-03-01;;\n";
    let r = upload(bad, csrf.clone(), false).await.unwrap();
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("1 ligne en erreur : rien n'a été enregistré."), "{}", &page[page.find("<main>").unwrap()..][..600]);
    assert!(page.contains("<tr><td>3</td><td>29117</td><td>elections</td><td>erreur</td><td>produit</td>"));
    assert!(page.contains("2 lignes lues : 1 acceptée, 0 ignorée (rien de déclaré, ou déjà enregistré), 1 en erreur."));
    assert_eq!(count(), 0);
    // Without the CSRF token: refused.
    let good = "code_insee;categorie;produit;generation;depuis;fin_contrat;postes\n29195;elections;openelec;;2019-03-01;;2\n29117;elections;openelec;;2020-01-15;2027-12-31;\n";
    assert_eq!(upload(good, "x".repeat(64), false).await.unwrap().status(), 403);
    // Checked only, then recorded.
    let r = upload(good, csrf.clone(), true).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Vérification seulement : 2 lignes à enregistrer, rien n'a été enregistré."));
    assert_eq!(count(), 0);
    let r = upload(good, csrf.clone(), false).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Inventaire enregistré : 2 déclarations."));
    let (stored, _) = app.service.stored_records().unwrap();
    let lannilis = stored.iter().find(|a| a.commune.as_str() == "29117").unwrap();
    assert_eq!(
        (lannilis.product.as_str(), lannilis.since.to_string(), lannilis.contract_end.map(|d| d.to_string())),
        ("openelec", "2020-01-15".into(), Some("2027-12-31".into()))
    );

    // A price estimate for an option: French messages, then recorded and shown.
    let r = b.get(app.url("/epcis/242900553/estimation?option=openelec/")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let form = r.text().await.unwrap();
    assert!(
        form.contains("<h1>Estimation de prix</h1>") && form.contains("name=\"montant\"") && form.contains("value=\"2026-11-29\""),
        "the date defaults to today"
    );
    let post = |montant: &'static str, date: &'static str| {
        b.post(app.url("/epcis/242900553/estimation"))
            .header(COOKIE, cookie.clone())
            .form(&[("csrf", csrf.as_str()), ("option", "openelec/"), ("base", "commune"), ("montant", montant), ("date", date), ("note", "devis 2026")])
            .send()
    };
    let r = post("douze", "2026-11-01").await.unwrap();
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("Indiquez un montant en euros") && page.contains("value=\"douze\""));
    let r = post("25 000", "2026-11-01").await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/epcis/242900553?enregistre=estimation");
    let siren = voisinage::core::domain::Siren::parse("242900553").unwrap();
    let e = app.service.price_estimates(&siren).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].product.as_str(), e[0].made_on.to_string(), e[0].amount_eur_ht.to_string()), ("openelec", "2026-11-01".into(), "25000.00".into()));
    // A commune's session may not price the EPCI's options.
    let b2 = browser();
    let s2 = sign_in(&app, &b2, &app.token("commune:29195")).await;
    let r = b2.get(app.url("/epcis/242900553/estimation?option=openelec/")).header(COOKIE, format!("vsn_session={s2}")).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

/// Found by the bad-input session: limits of the form bodies and of the correction form.
#[tokio::test]
async fn long_comments_fit_oversized_forms_get_a_french_page_and_a_correction_never_erases_by_omission() {
    let app = common::spawn(false).await;
    let b = browser();
    let session = sign_in(&app, &b, &app.token("commune:29195")).await;
    let cookie = format!("vsn_session={session}");
    let html = b.get(app.url("/communes/29195")).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    let csrf = input_value(&html, "csrf");
    let form = [
        ("csrf", csrf.as_str()),
        ("idem", "d1"),
        ("categorie", "elections"),
        ("option", "openelec/"),
        ("depuis", "2019-03-01"),
        ("fin_contrat", "2030-01-01"),
        ("postes", "12"),
    ];
    assert_eq!(b.post(app.url("/communes/29195/adoptions")).header(COOKIE, &cookie).form(&form).send().await.unwrap().status(), 303);
    let id = app.service.stored_records().unwrap().0[0].id;
    // 2,000 characters of 3 bytes each (18 KB once percent-encoded), with line breaks sent as
    // CRLF: within the 2,000-character limit, so accepted.
    let comment = "€\r\n".repeat(1000);
    let r = b
        .post(app.url(&format!("/communes/29195/adoptions/{id}/avis")))
        .header(COOKIE, &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("idem", "f1"),
            ("fiabilite", "3"),
            ("incidents", "0"),
            ("indisponibilite", "0"),
            ("support", "3"),
            ("commentaire", &comment),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, feedback) = app.service.stored_records().unwrap();
    assert_eq!(feedback[0].comment.as_deref().map(|c| c.chars().count()), Some(1999), "CRLF stored as LF, the last one trimmed");
    // Over 64 KiB: a French page, not a JSON problem.
    let r = b.post(app.url("/connexion")).header(COOKIE, "vsn_connexion=x").form(&[("csrf", "x"), ("code", &"a".repeat(70_000))]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("Envoi trop volumineux"));
    // A correction without its fields is refused (400), and erases nothing.
    let r =
        b.post(app.url(&format!("/communes/29195/adoptions/{id}/correction"))).header(COOKIE, &cookie).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let a = &app.service.stored_records().unwrap().0[0];
    assert_eq!((a.contract_end.map(|d| d.to_string()), a.workstations), (Some("2030-01-01".into()), Some(12)));
    // Feedback on an ended adoption, from a stale tab: the reason is said at the top of the page.
    let r = b
        .post(app.url(&format!("/communes/29195/adoptions/{id}/fin")))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("jusqu_au", "2020-01-01")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = b
        .post(app.url(&format!("/communes/29195/adoptions/{id}/avis")))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("idem", "f2"), ("fiabilite", "3"), ("incidents", "0"), ("indisponibilite", "0"), ("support", "3")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("<p class=\"erreur\" role=\"alert\">Le formulaire n'a pas été enregistré : Ce produit n&#39;est plus utilisé depuis le 1er janvier 2020 : un avis n&#39;est plus possible plus d&#39;un an après."));
}
