//! Issue 15: the spreadsheets for EPCI staff, through the real HTTP API and read back with
//! calamine. The pooled purchases as XLSX hold the CSV's rows with typed cells (codes as text,
//! dates as dates, amounts as numbers in euros), a frozen header row, set widths and a `Source`
//! sheet; the EPCI's inventory in service as XLSX in the template's columns, sent back
//! unchanged without writing anything; both 404 for an unknown EPCI and 400 for a malformed
//! SIREN; documented in the OpenAPI document and linked from the EPCI page.

mod common;

use std::io::{Cursor, Read};

use calamine::{Data, Range, Reader, Xlsx};
use serde_json::{Value, json};

use common::{TestApp, spawn};

const RENNES_METROPOLE: &str = "243500139";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// GETs `path`, asserts a 200 XLSX attachment named `filename`, returns the bytes.
async fn workbook(app: &TestApp, path: &str, filename: &str) -> Vec<u8> {
    let r = app.anon.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    assert_eq!(r.headers()["content-type"], XLSX);
    assert_eq!(r.headers()["content-disposition"], format!("attachment; filename=\"{filename}\"").as_str());
    let body = r.bytes().await.unwrap().to_vec();
    assert!(body.starts_with(b"PK\x03\x04"));
    body
}

fn sheet(bytes: &[u8], name: &str) -> Range<Data> {
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes.to_vec())).unwrap();
    book.worksheet_range(name).unwrap()
}

fn sheet_names(bytes: &[u8]) -> Vec<String> {
    Xlsx::new(Cursor::new(bytes.to_vec())).map(|b: Xlsx<_>| b.sheet_names()).unwrap()
}

/// A part of the XLSX archive, as text.
fn part(bytes: &[u8], name: &str) -> String {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut s = String::new();
    zip.by_name(name).unwrap().read_to_string(&mut s).unwrap();
    s
}

/// A date cell's `YYYY-MM-DD`; panics on any other cell.
fn date(d: &Data) -> String {
    match d {
        Data::DateTime(x) => {
            let (y, m, d, ..) = x.to_ymd_hms_milli();
            format!("{y:04}-{m:02}-{d:02}")
        }
        other => panic!("not a date cell: {other:?}"),
    }
}

/// The value of the `Source` sheet's row labelled `label`.
fn fact(source: &Range<Data>, label: &str) -> Data {
    source.rows().find(|r| r[0] == Data::String(label.into())).map(|r| r[1].clone()).unwrap_or_else(|| panic!("no {label} in the Source sheet"))
}

/// The column named `name` in a header row.
fn col(header: &[Data], name: &str) -> usize {
    header.iter().position(|c| *c == Data::String(name.into())).unwrap_or_else(|| panic!("no column {name}"))
}

async fn problem(r: reqwest::Response, status: u16, code: &str) {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], code, "{v}");
}

/// On the demo, with an estimate recorded for a groupement's option: every row of the CSV is in
/// the XLSX, cell for cell, with its type.
#[tokio::test]
async fn the_pooled_purchases_workbook_holds_the_csv_rows_with_typed_cells() {
    let app = spawn(true).await;
    let json: Value = app.anon.get(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases"))).send().await.unwrap().json().await.unwrap();
    // The EPCI prices the first groupement's option at 1,234.56 € HT per commune.
    let g = json["groupements"].as_array().unwrap().iter().find(|g| g["option"].is_object()).unwrap();
    let (category, option) = (g["category"].as_str().unwrap().to_string(), &g["option"]);
    let mut estimate = json!({"product": option["product"], "basis": "per_commune", "amount_eur_ht": 1234.56});
    if let Some(generation) = option["generation"].as_str() {
        estimate["generation"] = generation.into();
    }
    let r = app.client.post(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/price-estimates"))).json(&estimate).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let json: Value = app.anon.get(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases"))).send().await.unwrap().json().await.unwrap();
    let g = json["groupements"].as_array().unwrap().iter().find(|g| g["category"] == category.as_str()).unwrap();
    let pooled = g["volume"]["estimated_amount_eur_ht"].as_f64().unwrap();
    let concerned = g["concerned"].as_array().unwrap().len() as f64;
    assert!((pooled - 1234.56 * concerned).abs() < 1e-6, "{pooled}");

    let bytes = workbook(&app, &format!("/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases.xlsx"), &format!("groupements-{RENNES_METROPOLE}.xlsx")).await;
    assert_eq!(sheet_names(&bytes), ["Groupements", "Source"]);
    let rows = sheet(&bytes, "Groupements");
    let csv = app.anon.get(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases.csv"))).send().await.unwrap().text().await.unwrap();
    let mut rd = csv::ReaderBuilder::new().delimiter(b';').from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
    let csv_rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    let head: Vec<Data> = rows.rows().next().unwrap().to_vec();
    assert_eq!(head.iter().map(|c| c.to_string()).collect::<Vec<_>>(), header, "the CSV's columns");
    assert_eq!(rows.height(), 1 + csv_rows.len(), "the CSV's rows");
    assert!(csv_rows.len() > 40, "{}", csv_rows.len());

    let [code, population, deadline, simulated, amount, unit, made_on] =
        ["code_insee", "population", "echeance", "simule", "montant_estime_eur_ht", "prix_unitaire_eur_ht", "estimation_du"].map(|n| col(&head, n));
    let mut dates = 0;
    for (x, c) in rows.rows().skip(1).zip(&csv_rows) {
        // Codes are text cells (a Brittany code such as 35238 stays "35238", not 35238.0).
        assert!(matches!(&x[code], Data::String(s) if s.len() == 5 && s.starts_with("35") && *s == c[code]), "{:?} / {}", x[code], &c[code]);
        assert_eq!(x[population], Data::Float(c[population].parse().unwrap()));
        if c[deadline].is_empty() {
            assert_eq!(x[deadline], Data::Empty);
        } else {
            assert_eq!(date(&x[deadline]), c[deadline]);
            dates += 1;
        }
        assert_eq!(x[simulated], Data::String("oui".into()), "the demo is labelled simulated on every row");
        // Every other cell says what the CSV says.
        for (i, cell) in x.iter().enumerate() {
            let text = match cell {
                Data::Empty => String::new(),
                Data::String(s) => s.clone(),
                Data::Float(f) if i == amount || i == unit => format!("{f:.2}").replace('.', ",").trim_end_matches(",00").to_string(),
                Data::Float(f) => format!("{f}"),
                d @ Data::DateTime(_) => date(d),
                other => panic!("unexpected cell {other:?}"),
            };
            assert_eq!(text, c[i].trim_start_matches('\''), "row {c:?}, column {}", header[i]);
        }
    }
    assert!(dates > 0, "some rows have a deadline");
    // The priced groupement: numbers in euros, the estimate's date a date cell.
    let priced: Vec<&[Data]> =
        rows.rows().filter(|r| r[0] == Data::String(category.clone()) && r[col(&head, "ligne")] == Data::String("groupement".into())).collect();
    assert!(!priced.is_empty());
    for r in priced {
        assert!(matches!(r[amount], Data::Float(a) if (a - pooled).abs() < 1e-6), "{:?}", r[amount]);
        assert_eq!(r[unit], Data::Float(1234.56));
        assert_eq!(date(&r[made_on]), "2026-11-29");
        assert_eq!(r[col(&head, "base_estimation")], Data::String("par commune".into()));
    }

    let source = sheet(&bytes, "Source");
    assert_eq!(
        source.get_value((0, 0)),
        Some(&Data::String("Groupements de commandes proposés — Rennes Métropole (SIREN 243500139) (données simulées)".into()))
    );
    assert_eq!(fact(&source, "EPCI"), Data::String("Rennes Métropole".into()));
    assert_eq!(fact(&source, "SIREN"), Data::String(RENNES_METROPOLE.into()));
    assert_eq!(date(&fact(&source, "Situation au")), "2026-11-29");
    assert_eq!(fact(&source, "Horizon (mois)"), Data::Float(24.0));
    assert_eq!(fact(&source, "Lignes"), Data::Float(csv_rows.len() as f64));
    assert!(fact(&source, "Données").to_string().starts_with("DONNÉES SIMULÉES"));

    // The header row is frozen, the columns have widths, the amounts a euro format.
    let xml = part(&bytes, "xl/worksheets/sheet1.xml");
    assert!(xml.contains(r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#), "{xml}");
    assert_eq!(xml.matches("customWidth=\"1\"").count(), 20, "a width for each of the 20 columns");
    assert!(xml.contains(r#"<col min="3" max="3" width="12.7109375" customWidth="1"/>"#), "code_insee");
    assert!(part(&bytes, "xl/styles.xml").contains("formatCode=\"#,##0.00\\ &quot;€&quot;\""));

    // ?horizon and ?as_of as on the CSV.
    let short = workbook(
        &app,
        &format!("/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases.xlsx?horizon=6&as_of=2025-01-01"),
        &format!("groupements-{RENNES_METROPOLE}.xlsx"),
    )
    .await;
    let source = sheet(&short, "Source");
    assert_eq!((fact(&source, "Horizon (mois)"), date(&fact(&source, "Situation au"))), (Data::Float(6.0), "2025-01-01".to_string()));
    let csv = app
        .anon
        .get(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases.csv?horizon=6&as_of=2025-01-01")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sheet(&short, "Groupements").height(), csv.lines().count());
}

/// What the members run, in the template's columns with typed cells; sent back unchanged, it
/// writes nothing.
#[tokio::test]
async fn the_inventory_workbook_lists_what_runs_and_comes_back_unchanged() {
    let app = spawn(false).await;
    let post = |path: String, body: Value| app.client.post(app.url(&path)).json(&body).send();
    // Rennes: openElec since 2019-03-01, contract to 2027-06-30, 12 workstations, rated 4 and 5.
    let r = post(
        "/api/v1/communes/35238/adoptions".into(),
        json!({"product": "openelec", "since": "2019-03-01", "contract_end": "2027-06-30", "workstations": 12}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    for reliability in [4, 5] {
        let r = post(
            format!("/api/v1/communes/35238/adoptions/{id}/feedback"),
            json!({"reliability": reliability, "incidents": 0, "downtime_hours": 0, "support": 4, "comment": "privé"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Cesson-Sévigné: Windows 10 since 2021-01-04; an ended adoption is not listed.
    for body in
        [json!({"product": "windows", "generation": "10", "since": "2021-01-04"}), json!({"product": "openelec", "since": "2015-01-05", "until": "2020-12-31"})]
    {
        assert_eq!(post("/api/v1/communes/35051/adoptions".into(), body).await.unwrap().status(), 201);
    }

    let bytes = workbook(&app, &format!("/api/v1/epcis/{RENNES_METROPOLE}/inventory.xlsx"), &format!("inventaire-en-service-{RENNES_METROPOLE}.xlsx")).await;
    assert_eq!(sheet_names(&bytes), ["Inventaire", "Source"]);
    let rows = sheet(&bytes, "Inventaire");
    let head: Vec<String> = rows.rows().next().unwrap().iter().map(|c| c.to_string()).collect();
    assert_eq!(
        head,
        [
            "code_insee",
            "commune",
            "categorie",
            "libelle_categorie",
            "produit",
            "generation",
            "depuis",
            "fin_contrat",
            "postes",
            "libelle_produit",
            "fin_support",
            "avis",
            "fiabilite_moyenne",
            "simule"
        ]
    );
    assert_eq!(rows.height(), 3, "header and the two adoptions in service");
    // Members by name: Cesson-Sévigné before Rennes.
    let cesson: Vec<Data> = rows.rows().nth(1).unwrap().to_vec();
    let windows_10 =
        app.service.catalog().product(&"windows".parse().unwrap()).unwrap().generations.iter().find(|g| g.id.as_str() == "10").unwrap().end_of_support;
    let windows_10 = windows_10.expect("Windows 10 has an end of support").to_string();
    assert_eq!(cesson[0], Data::String("35051".into()));
    assert_eq!((cesson[2].to_string(), cesson[4].to_string(), cesson[5].clone()), ("poste-de-travail".into(), "windows".into(), Data::String("10".into())));
    assert_eq!(date(&cesson[6]), "2021-01-04");
    assert_eq!((&cesson[7], &cesson[8]), (&Data::Empty, &Data::Empty));
    assert_eq!(cesson[9], Data::String("Microsoft Windows 10".into()));
    assert_eq!(date(&cesson[10]), windows_10);
    assert_eq!((&cesson[11], &cesson[12], &cesson[13]), (&Data::Float(0.0), &Data::Empty, &Data::String("non".into())));
    let rennes: Vec<Data> = rows.rows().nth(2).unwrap().to_vec();
    assert_eq!(
        (&rennes[0], &rennes[1], &rennes[2], &rennes[3], &rennes[4], &rennes[5]),
        (
            &Data::String("35238".into()),
            &Data::String("Rennes".into()),
            &Data::String("elections".into()),
            &Data::String("Élections et listes électorales".into()),
            &Data::String("openelec".into()),
            &Data::Empty
        )
    );
    assert_eq!((date(&rennes[6]), date(&rennes[7])), ("2019-03-01".to_string(), "2027-06-30".to_string()));
    assert_eq!(rennes[8], Data::Float(12.0));
    assert_eq!(rennes[9], Data::String("openElec".into()));
    assert_eq!((&rennes[11], &rennes[12]), (&Data::Float(2.0), &Data::Float(4.5)));
    assert!(!rows.rows().flatten().any(|c| c.to_string().contains("privé")), "no comment in the export");

    let source = sheet(&bytes, "Source");
    assert_eq!(fact(&source, "SIREN"), Data::String(RENNES_METROPOLE.into()));
    assert_eq!(date(&fact(&source, "Situation au")), "2026-11-29");
    assert_eq!((fact(&source, "Communes membres"), fact(&source, "Adoptions en service")), (Data::Float(43.0), Data::Float(2.0)));
    assert_eq!(fact(&source, "Données"), Data::String("Adoptions et avis enregistrés par les communes et l'EPCI dans voisinage.".into()));
    let xml = part(&bytes, "xl/worksheets/sheet1.xml");
    assert!(xml.contains(r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#), "{xml}");
    assert_eq!(xml.matches("customWidth=\"1\"").count(), 14);

    // Sent back unchanged by the EPCI: every row already recorded, nothing written.
    let epci = app.client_with(&app.token(&format!("epci:{RENNES_METROPOLE}")));
    let r = epci.post(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/inventory"))).header("content-type", XLSX).body(bytes).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(
        (report["rows"].as_u64(), report["accepted"].as_u64(), report["skipped"].as_u64(), report["errors"].as_u64()),
        (Some(2), Some(0), Some(2), Some(0)),
        "{report}"
    );
    assert!(report["lines"].as_array().unwrap().iter().all(|l| l["reason"].as_str().unwrap().contains("déjà enregistrée")), "{report}");
    let h: Value = app.anon.get(app.url("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["adoptions"], 3);
}

/// On the demo, every adoption in service of the members is a row, labelled simulated.
#[tokio::test]
async fn the_demo_inventory_is_labelled_simulated() {
    let app = spawn(true).await;
    let bytes = workbook(&app, &format!("/api/v1/epcis/{RENNES_METROPOLE}/inventory.xlsx"), &format!("inventaire-en-service-{RENNES_METROPOLE}.xlsx")).await;
    let rows = sheet(&bytes, "Inventaire");
    let siren = voisinage::core::domain::Siren::parse(RENNES_METROPOLE).unwrap();
    let in_service = app.service.with_ctx(|ctx| {
        let members = ctx.territory.members(&siren);
        ctx.catalog
            .categories
            .iter()
            .map(|c| members.iter().map(|&m| ctx.index.active(&ctx.territory.commune(m).code, &c.slug, ctx.today).count()).sum::<usize>())
            .sum::<usize>()
    });
    assert!(in_service > 300, "{in_service}");
    assert_eq!(rows.height(), 1 + in_service);
    assert!(
        rows.rows()
            .skip(1)
            .all(|r| matches!(&r[0], Data::String(s) if s.len() == 5) && r[13] == Data::String("oui".into()) && matches!(r[6], Data::DateTime(_)))
    );
    let source = sheet(&bytes, "Source");
    assert!(source.get_value((0, 0)).unwrap().to_string().ends_with("(SIREN 243500139) (données simulées)"));
    assert!(fact(&source, "Données").to_string().starts_with("DONNÉES SIMULÉES"));
}

#[tokio::test]
async fn the_exports_refuse_an_unknown_epci_and_a_malformed_siren() {
    let app = spawn(false).await;
    for route in ["pooled-purchases.xlsx", "inventory.xlsx", "pooled-purchases.csv"] {
        problem(app.anon.get(app.url(&format!("/api/v1/epcis/999999999/{route}"))).send().await.unwrap(), 404, "not-found").await;
        problem(app.anon.get(app.url(&format!("/api/v1/epcis/24350013/{route}"))).send().await.unwrap(), 400, "malformed-input").await;
        problem(app.anon.get(app.url(&format!("/api/v1/epcis/2435001390/{route}"))).send().await.unwrap(), 400, "malformed-input").await;
    }
    problem(app.anon.get(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases.xlsx?horizon=999"))).send().await.unwrap(), 422, "invalid-value")
        .await;
    problem(
        app.anon.get(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases.xlsx?as_of=2030-01-01"))).send().await.unwrap(),
        422,
        "invalid-value",
    )
    .await;
    let r = app.anon.post(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases.xlsx"))).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["allow"].to_str().unwrap()), (405, "GET, HEAD"));
}

#[tokio::test]
async fn the_exports_are_documented_and_linked_from_the_epci_page() {
    let app = spawn(false).await;
    let doc: Value = app.anon.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    for (path, statuses) in [
        ("/api/v1/epcis/{siren}/pooled-purchases.xlsx", &["200", "304", "400", "401", "404", "422", "429", "500"][..]),
        ("/api/v1/epcis/{siren}/inventory.xlsx", &["200", "304", "400", "401", "404", "429", "500"][..]),
        ("/api/v1/epcis/{siren}/pooled-purchases.csv", &["200", "304", "400", "401", "404", "422", "429", "500"][..]),
    ] {
        let get = &doc["paths"][path]["get"];
        let responses = get["responses"].as_object().unwrap_or_else(|| panic!("{path} is not documented"));
        assert_eq!(responses.keys().collect::<Vec<_>>(), statuses, "{path}");
        for (status, r) in responses {
            assert!(r["description"].as_str().is_some_and(|d| d.len() > 10), "{path} {status}: {r}");
        }
        assert_eq!(get["security"], serde_json::json!([]), "{path} is public, as the CSV: {get}");
        assert!(get["description"].as_str().unwrap().len() > 100, "{path}");
    }
    for path in ["/api/v1/epcis/{siren}/pooled-purchases.xlsx", "/api/v1/epcis/{siren}/inventory.xlsx"] {
        let ok = &doc["paths"][path]["get"]["responses"]["200"];
        assert_eq!(ok["content"][XLSX]["schema"]["format"], "binary", "{path}");
        assert!(ok["headers"]["Content-Disposition"].is_object(), "{path}");
    }
    let csv = &doc["paths"]["/api/v1/epcis/{siren}/pooled-purchases.csv"]["get"];
    assert!(csv["summary"].as_str().unwrap().ends_with("for scripts."), "{csv}");
    assert!(csv["description"].as_str().unwrap().contains("reads the code `01001` as the number 1001"), "{csv}");
    assert!(csv["responses"]["200"]["description"].as_str().unwrap().contains("(for scripts)"));

    let page = app.anon.get(app.url(&format!("/epcis/{RENNES_METROPOLE}?horizon=36"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("<a href=\"/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases.xlsx?horizon=36\">Tableur (XLSX)</a>")), "{page}");
    assert!(page.contains(&format!("<a href=\"/api/v1/epcis/{RENNES_METROPOLE}/pooled-purchases.csv?horizon=36\">CSV (pour les scripts)</a>")));
    assert!(page.contains(&format!("<a href=\"/api/v1/epcis/{RENNES_METROPOLE}/inventory.xlsx\">Tableur (XLSX) de l'inventaire en service</a>")));
}
