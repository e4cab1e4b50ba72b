//! Issue 14, part 6: an EPCI records estimated prices; its groupements then give the pooled
//! amount and the procurement procedure from the dated thresholds of
//! `catalog/procurement.toml`, and say whose estimate it is and when it was made.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::NaiveDate;
use serde_json::{Value, json};
use voisinage::core::auth::{Principal, TokenScope};
use voisinage::core::domain::{InseeCode, Siren, Slug};
use voisinage::core::prices::{EurHt, PriceBasis};
use voisinage::service::{AdoptionDraft, PriceEstimateDraft};

/// CC Douarnenez Communauté: five members.
const DOUARNENEZ: &str = "242900645";
/// CC de Belle Ile en Mer: four members.
const BELLE_ILE: &str = "245600465";

const MAPA: &str = "Procédure adaptée (MAPA), sans publication obligatoire au BOAMP ou dans un JAL";
const NO_PUBLICITY: &str = "Marché sans publicité ni mise en concurrence préalables";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn adopt(app: &common::TestApp, code: &str, product: &str, generation: Option<&str>, since: &str, workstations: Option<u32>) -> u64 {
    let draft = AdoptionDraft {
        product: Slug::parse(product).unwrap(),
        generation: generation.map(|g| voisinage::core::domain::GenerationId::parse(g).unwrap()),
        category: None,
        since: d(since),
        until: None,
        contract_end: None,
        workstations,
    };
    app.service.record_adoption(&Principal::OPERATOR, &InseeCode::parse(code).unwrap(), draft, None).unwrap().record.id
}

/// Douarnenez, Poullan-sur-Mer and Pouldergat run openElec since 2019; Le Juch and Kerlaz run
/// nothing for elections: a groupement of 2 communes whose option is openElec.
fn douarnenez_elections(app: &common::TestApp) {
    for code in ["29046", "29226", "29224"] {
        adopt(app, code, "openelec", None, "2019-03-01", None);
    }
}

fn group<'a>(pp: &'a Value, category: &str) -> &'a Value {
    pp["groupements"].as_array().unwrap().iter().find(|g| g["category"] == category).unwrap_or_else(|| panic!("no {category} groupement in {pp}"))
}

async fn pooled(app: &common::TestApp, siren: &str, query: &str) -> Value {
    let r = app.anon.get(app.url(&format!("/api/v1/epcis/{siren}/pooled-purchases{query}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_50000_eur_groupement_is_a_mapa_before_1_april_2026_and_needs_no_publicity_after() {
    let app = common::spawn(false).await;
    douarnenez_elections(&app);
    // Before any estimate: no amount, no procedure, today's wording.
    let g = group(&pooled(&app, DOUARNENEZ, "?as_of=2026-03-15").await, "elections").clone();
    assert_eq!(g["option"]["product"], "openelec");
    assert_eq!(g["concerned"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect::<Vec<_>>(), vec!["29087", "29090"]);
    assert_eq!(
        (g["volume"]["estimated_amount_eur_ht"].clone(), g["volume"]["procedure"].clone(), g["volume"]["estimate"].clone()),
        (Value::Null, Value::Null, Value::Null)
    );
    assert_eq!(g["volume"]["note"], "Le catalogue ne donne pas de prix indicatif pour cette option : montant et procédure à établir.");

    // The EPCI's own token records 25,000 € HT per commune, made on 2026-03-01.
    let epci = app.client_with(&app.token(&format!("epci:{DOUARNENEZ}")));
    let r = epci
        .post(app.url(&format!("/api/v1/epcis/{DOUARNENEZ}/price-estimates")))
        .json(&json!({"product": "openelec", "basis": "per_commune", "amount_eur_ht": 25000, "made_on": "2026-03-01", "note": "devis de l'éditeur"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let e: Value = r.json().await.unwrap();
    assert_eq!((e["id"].as_u64(), e["amount_eur_ht"].as_f64(), e["basis"].as_str()), (Some(1), Some(25000.0), Some("per_commune")));
    assert_eq!((e["by"]["scope"].as_str(), e["by"]["name"].as_str()), (Some("epci:242900645"), Some("CC Douarnenez Communauté")));
    assert_eq!((e["in_force"].as_bool(), e["note"].as_str()), (Some(true), Some("devis de l'éditeur")));

    // 2 communes × 25,000 = 50,000 € HT: a MAPA on 2026-03-15 (40,000 to 90,000 row) ...
    let g = group(&pooled(&app, DOUARNENEZ, "?as_of=2026-03-15").await, "elections").clone();
    let v = &g["volume"];
    assert_eq!(v["estimated_amount_eur_ht"].as_f64(), Some(50_000.0));
    assert_eq!((v["procedure"]["procedure"].as_str(), v["procedure"]["id"].as_str()), (Some(MAPA), Some("mapa-fournitures-services")));
    assert_eq!(v["procedure"]["valid_until"], "2026-03-31");
    assert_eq!(v["estimate"]["amount_eur_ht"].as_f64(), Some(25_000.0));
    assert_eq!((v["estimate"]["basis"].as_str(), v["estimate"]["made_on"].as_str()), (Some("per_commune"), Some("2026-03-01")));
    assert_eq!((v["estimate"]["by"]["name"].as_str(), v["estimate"]["by"]["token_id"].as_u64()), (Some("CC Douarnenez Communauté"), Some(2)));
    assert_eq!(v["note"], Value::Null);
    assert!(v["estimate"].get("note").is_none(), "the note is not repeated in the public answer");
    // ... and needs no publicity on 2026-04-15 (below 60,000 € HT from 2026-04-01).
    let g = group(&pooled(&app, DOUARNENEZ, "?as_of=2026-04-15").await, "elections").clone();
    assert_eq!(g["volume"]["estimated_amount_eur_ht"].as_f64(), Some(50_000.0));
    assert_eq!(
        (g["volume"]["procedure"]["procedure"].as_str(), g["volume"]["procedure"]["id"].as_str(), g["volume"]["procedure"]["reference"].as_str()),
        (Some(NO_PUBLICITY), Some("dispense-fournitures-services-2026"), Some("R2122-8; décret 2025-1386"))
    );
    // Asked before the estimate was made: not used.
    let g = group(&pooled(&app, DOUARNENEZ, "?as_of=2026-02-15").await, "elections").clone();
    assert_eq!((g["volume"]["estimated_amount_eur_ht"].clone(), g["volume"]["estimate"].clone()), (Value::Null, Value::Null));

    // The CSV carries the amount, the procedure, the unit price, its basis, whose and when.
    let csv = app.anon.get(app.url(&format!("/api/v1/epcis/{DOUARNENEZ}/pooled-purchases.csv?as_of=2026-03-15"))).send().await.unwrap().text().await.unwrap();
    let header = csv.lines().next().unwrap().trim_start_matches('\u{feff}');
    assert!(header.ends_with(";statut_option;montant_estime_eur_ht;prix_unitaire_eur_ht;base_estimation;estimation_par;estimation_du"), "{header}");
    let row = csv.lines().find(|l| l.starts_with("elections;") && l.contains(";29087;")).unwrap();
    assert!(row.contains(&format!(";{MAPA};")), "{row}");
    assert!(row.ends_with(";50000;25000;par commune;CC Douarnenez Communauté;2026-03-01"), "{row}");

    // A later estimate replaces it (the first stays listed, no longer in force); the note is
    // shown to the EPCI's token only.
    let r = epci
        .post(app.url(&format!("/api/v1/epcis/{DOUARNENEZ}/price-estimates")))
        .json(&json!({"product": "openelec", "basis": "per_commune", "amount_eur_ht": 31000.5, "made_on": "2026-10-08"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let list: Value = app.anon.get(app.url(&format!("/api/v1/epcis/{DOUARNENEZ}/price-estimates"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["count"], 2);
    assert_eq!(list["estimates"].as_array().unwrap().iter().map(|e| e["in_force"].as_bool().unwrap()).collect::<Vec<_>>(), vec![false, true]);
    assert_eq!((list["estimates"][0]["has_note"].as_bool(), list["estimates"][0].get("note")), (Some(true), None));
    let own: Value = epci.get(app.url(&format!("/api/v1/epcis/{DOUARNENEZ}/price-estimates"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(own["estimates"][0]["note"], "devis de l'éditeur");
    let g = group(&pooled(&app, DOUARNENEZ, "").await, "elections").clone();
    assert_eq!(g["volume"]["estimated_amount_eur_ht"].as_f64(), Some(62_001.0));
    assert_eq!(g["volume"]["procedure"]["procedure"].as_str(), Some(MAPA));
    assert_eq!(g["volume"]["procedure"]["id"].as_str(), Some("mapa-fournitures-services-2026"));
    // Asked on 2026-04-15, the estimate of 2026-03-01 is still the one in force.
    let g = group(&pooled(&app, DOUARNENEZ, "?as_of=2026-04-15").await, "elections").clone();
    assert_eq!(g["volume"]["estimate"]["id"].as_u64(), Some(1));
}

#[tokio::test]
async fn per_seat_amount_comes_from_declared_workstations_and_is_partial_without_them() {
    let app = common::spawn(false).await;
    // Belle-Île: Bangor and Locmaria run Windows 11; Le Palais (12 seats) and Sauzon (8 seats)
    // still run Windows 10, whose support has ended.
    adopt(&app, "56009", "windows", Some("11"), "2022-01-01", Some(6));
    adopt(&app, "56114", "windows", Some("11"), "2022-01-01", Some(4));
    adopt(&app, "56152", "windows", Some("10"), "2018-01-01", Some(12));
    let sauzon = adopt(&app, "56241", "windows", Some("10"), "2018-01-01", Some(8));
    // An admin records 1,500 € HT per seat for Windows 11 (a release names its generation).
    let r = app
        .client
        .post(app.url(&format!("/api/v1/epcis/{BELLE_ILE}/price-estimates")))
        .json(&json!({"product": "windows", "generation": "11-24h2-w", "basis": "per_seat", "amount_eur_ht": 1500, "made_on": "2026-10-08"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        (e["generation"].as_str(), e["by"]["scope"].as_str(), e["by"]["name"].as_str()),
        (Some("11"), Some("admin"), Some("administrateur de voisinage"))
    );

    let g = group(&pooled(&app, BELLE_ILE, "").await, "poste-de-travail").clone();
    assert_eq!((g["option"]["product"].as_str(), g["option"]["generation"].as_str()), (Some("windows"), Some("11")));
    assert_eq!(g["concerned"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect::<Vec<_>>(), vec!["56152", "56241"]);
    let v = &g["volume"];
    // 1,500 € × (12 + 8) seats = 30,000 € HT: no publicity on 2026-11-29.
    assert_eq!((v["workstations"].as_u64(), v["estimated_amount_eur_ht"].as_f64()), (Some(20), Some(30_000.0)));
    assert_eq!(v["procedure"]["procedure"].as_str(), Some(NO_PUBLICITY));
    assert_eq!((v["estimate"]["basis"].as_str(), v["estimate"]["amount_eur_ht"].as_f64()), (Some("per_seat"), Some(1500.0)));

    // Sauzon's workstations cleared: the amount is partial (Le Palais only), no procedure.
    let r = app.client.patch(app.url(&format!("/api/v1/communes/56241/adoptions/{sauzon}"))).json(&json!({"workstations": null})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let g = group(&pooled(&app, BELLE_ILE, "").await, "poste-de-travail").clone();
    let v = &g["volume"];
    assert_eq!((v["estimated_amount_eur_ht"].clone(), v["procedure"].clone()), (Value::Null, Value::Null));
    assert_eq!(v["partial_amount_eur_ht"].as_f64(), Some(18_000.0));
    assert_eq!(v["missing_workstations"], json!(["56241"]));
    assert_eq!(
        v["note"],
        "Montant partiel : 18\u{202f}000 € HT pour les communes qui ont déclaré leurs postes ; Sauzon n'a pas déclaré de postes : montant total et procédure à établir."
    );
}

#[tokio::test]
async fn who_may_record_an_estimate_and_what_is_refused() {
    let app = common::spawn(false).await;
    let url = app.url(&format!("/api/v1/epcis/{DOUARNENEZ}/price-estimates"));
    let body = json!({"product": "openelec", "basis": "per_commune", "amount_eur_ht": 25000});
    let post = |c: &reqwest::Client, b: &Value| c.post(&url).json(b).send();
    let problem = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let p: Value = r.json().await.unwrap();
        (status, p["code"].as_str().unwrap().to_string())
    };
    // No token: 401. Another EPCI's token, a member commune's token: 403.
    assert_eq!(problem(post(&app.anon, &body).await.unwrap()).await, (401, "unauthorized".into()));
    let other = app.client_with(&app.token("epci:243500139"));
    assert_eq!(problem(post(&other, &body).await.unwrap()).await, (403, "forbidden".into()));
    let commune = app.client_with(&app.token("commune:29046"));
    assert_eq!(problem(post(&commune, &body).await.unwrap()).await, (403, "forbidden".into()));
    let epci = app.client_with(&app.token(&format!("epci:{DOUARNENEZ}")));
    // Amounts: 0, negative, over 10,000,000 € HT, sub-cent: 422.
    for amount in [json!(0), json!(-5), json!(10_000_000.5), json!(1.005)] {
        let b = json!({"product": "openelec", "basis": "per_commune", "amount_eur_ht": amount});
        assert_eq!(problem(post(&epci, &b).await.unwrap()).await, (422, "invalid-value".into()), "{amount}");
    }
    // Unknown product: 404; a generation the catalogue does not list, a date ahead: 422.
    assert_eq!(problem(post(&epci, &json!({"product": "nope", "basis": "per_seat", "amount_eur_ht": 100})).await.unwrap()).await, (404, "not-found".into()));
    let b = json!({"product": "windows", "generation": "99", "basis": "per_seat", "amount_eur_ht": 100});
    assert_eq!(problem(post(&epci, &b).await.unwrap()).await, (422, "invalid-value".into()));
    let b = json!({"product": "openelec", "basis": "per_commune", "amount_eur_ht": 100, "made_on": "2026-11-30"});
    assert_eq!(problem(post(&epci, &b).await.unwrap()).await, (422, "invalid-value".into()));
    // A basis that is not one, an unknown field: 400.
    assert_eq!(
        problem(post(&epci, &json!({"product": "openelec", "basis": "per_year", "amount_eur_ht": 100})).await.unwrap()).await,
        (400, "malformed-input".into())
    );
    let b = json!({"product": "openelec", "basis": "per_seat", "amount_eur_ht": 100, "vat": 20});
    assert_eq!(problem(post(&epci, &b).await.unwrap()).await, (400, "malformed-input".into()));
    // Unknown EPCI: 404; a malformed SIREN: 400.
    let r = app.client.post(app.url("/api/v1/epcis/200000000/price-estimates")).json(&body).send().await.unwrap();
    assert_eq!(problem(r).await, (404, "not-found".into()));
    let r = app.client.post(app.url("/api/v1/epcis/24290064/price-estimates")).json(&body).send().await.unwrap();
    assert_eq!(problem(r).await, (400, "malformed-input".into()));
    // Nothing refused was written.
    assert!(app.service.price_estimates(&Siren::parse(DOUARNENEZ).unwrap()).unwrap().is_empty());
    // The EPCI's token: 201.
    assert_eq!(post(&epci, &body).await.unwrap().status(), 201);

    // The use case without HTTP, as a page form will call it: a commune's principal is refused.
    let siren = Siren::parse(DOUARNENEZ).unwrap();
    let draft = PriceEstimateDraft {
        product: Slug::parse("openelec").unwrap(),
        generation: None,
        basis: PriceBasis::PerSeat,
        amount_eur_ht: "1 200,50".parse::<EurHt>().unwrap(),
        made_on: None,
        note: None,
    };
    let commune = Principal { token_id: 99, scope: TokenScope::Commune(InseeCode::parse("29046").unwrap()) };
    assert_eq!(app.service.record_price_estimate(&commune, &siren, draft.clone()).unwrap_err().status(), 403);
    let e = app.service.record_price_estimate(&Principal::OPERATOR, &siren, draft).unwrap();
    assert_eq!((e.amount_eur_ht.cents(), e.made_on, e.by.name.as_str()), (120_050, common::today(), "opérateur de voisinage"));
    assert_eq!(app.service.price_estimates(&siren).unwrap().len(), 2);

    // Documented in the OpenAPI document.
    let doc: Value = app.anon.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let path = &doc["paths"]["/api/v1/epcis/{siren}/price-estimates"];
    assert!(path["post"]["responses"]["201"].is_object() && path["post"]["responses"]["403"].is_object() && path["get"]["responses"]["200"].is_object());
}

#[tokio::test]
async fn the_epci_page_shows_the_amount_whose_estimate_and_the_procedure() {
    let app = common::spawn(false).await;
    douarnenez_elections(&app);
    let page = || async { app.anon.get(app.url(&format!("/epcis/{DOUARNENEZ}?categorie=elections"))).send().await.unwrap().text().await.unwrap() };
    let html = page().await;
    assert!(html.contains("<strong>Montant estimé :</strong> pas encore d'estimation de prix de l'EPCI pour cette option."), "no estimate yet");
    let epci = app.client_with(&app.token(&format!("epci:{DOUARNENEZ}")));
    let r = epci
        .post(app.url(&format!("/api/v1/epcis/{DOUARNENEZ}/price-estimates")))
        .json(&json!({"product": "openelec", "basis": "per_commune", "amount_eur_ht": 25000, "made_on": "2026-03-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let html = page().await;
    let expected = "<strong>Montant estimé :</strong> 50\u{202f}000 € HT (estimation de CC Douarnenez Communauté, 1er mars 2026 : 25\u{202f}000 € HT par commune) — <strong>procédure :</strong> Marché sans publicité ni mise en concurrence préalables (R2122-8; décret 2025-1386).";
    assert!(html.contains(expected), "{}", html.split("id=\"g-elections\"").nth(1).unwrap_or(&html).chars().take(2000).collect::<String>());
}

/// Starts the real binary on port 0 over `dir` and returns it with its base URL.
fn start(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voisinage"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("address=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(120)).expect("server did not report its address");
    (child, format!("http://{addr}"))
}

#[tokio::test]
async fn an_acknowledged_estimate_survives_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voisinage"))
        .args(["token", "create", "--scope", &format!("epci:{DOUARNENEZ}"), "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(reqwest::header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap());
    let c = reqwest::Client::builder().default_headers(h).build().unwrap();
    let (mut child, base) = start(dir.path());
    let r = c
        .post(format!("{base}/api/v1/epcis/{DOUARNENEZ}/price-estimates"))
        .json(&json!({"product": "openelec", "basis": "per_commune", "amount_eur_ht": 25000.5, "made_on": "2026-03-01", "note": "devis"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    child.kill().unwrap(); // SIGKILL right after the 201
    child.wait().unwrap();
    let (mut child, base) = start(dir.path());
    let list: Value = c.get(format!("{base}/api/v1/epcis/{DOUARNENEZ}/price-estimates")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["count"], 1);
    let e = &list["estimates"][0];
    assert_eq!((e["product"].as_str(), e["basis"].as_str(), e["amount_eur_ht"].as_f64()), (Some("openelec"), Some("per_commune"), Some(25000.5)));
    assert_eq!((e["made_on"].as_str(), e["note"].as_str(), e["by"]["name"].as_str()), (Some("2026-03-01"), Some("devis"), Some("CC Douarnenez Communauté")));
    assert_eq!(e["in_force"], true);
    child.kill().unwrap();
    child.wait().unwrap();
}
