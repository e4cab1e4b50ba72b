//! Issue 14, inventory upload for an EPCI, through the real HTTP API: the template, a valid
//! file (XLSX and CSV), a dry run, a file with bad rows (nothing written, each error reported
//! with its line and column), files that are not spreadsheets, a decompression bomb and a file
//! of too many rows (refused without the service's memory growing), and who may upload.

mod common;

use std::io::{Cursor, Write};

use reqwest::StatusCode;
use rust_xlsxwriter::{Format, Workbook};
use serde_json::Value;

use common::{TestApp, spawn};

const RENNES_METROPOLE: &str = "243500139";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const HEADER: [&str; 9] = ["code_insee", "commune", "categorie", "libelle_categorie", "produit", "generation", "depuis", "fin_contrat", "postes"];

/// An XLSX workbook with the template's header and these rows (every cell as text, as the
/// template's text columns hold them; `postes` as a number).
fn xlsx(rows: &[[&str; 9]]) -> Vec<u8> {
    let mut book = Workbook::new();
    let text = Format::new().set_num_format("@");
    let sheet = book.add_worksheet();
    sheet.set_name("Inventaire").unwrap();
    for (c, h) in HEADER.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            if cell.is_empty() {
                continue;
            }
            let (r, c) = (r as u32 + 1, c as u16);
            match cell.parse::<f64>() {
                Ok(n) if c == 8 => sheet.write_number(r, c, n).map(|_| ()).unwrap(),
                _ => sheet.write_string_with_format(r, c, *cell, &text).map(|_| ()).unwrap(),
            }
        }
    }
    book.save_to_buffer().unwrap()
}

/// The valid rows: Rennes runs openElec since 2019-03-01 on 12 workstations, Cesson-Sévigné
/// Windows 11 since 2022-06-01 (contract to 2027-12-31, 40 workstations); nothing declared for
/// Rennes's website.
const VALID: [[&str; 9]; 3] = [
    ["35238", "Rennes", "elections", "Élections", "openelec", "", "2019-03-01", "", "12"],
    ["35051", "Cesson-Sévigné", "poste-de-travail", "Poste de travail", "windows", "11", "2022-06-01", "2027-12-31", "40"],
    ["35238", "Rennes", "site-web", "Site web", "", "", "", "", ""],
];

async fn upload(app: &TestApp, client: &reqwest::Client, query: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    client.post(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/inventory{query}"))).header("content-type", content_type).body(body).send().await.unwrap()
}

async fn adoption_count(app: &TestApp) -> u64 {
    let h: Value = app.anon.get(app.url("/health")).send().await.unwrap().json().await.unwrap();
    h["adoptions"].as_u64().unwrap()
}

async fn adoptions_of(app: &TestApp, code: &str) -> Vec<Value> {
    let v: Value = app.anon.get(app.url(&format!("/api/v1/communes/{code}/adoptions"))).send().await.unwrap().json().await.unwrap();
    v["adoptions"].as_array().unwrap().clone()
}

/// Asserts a problem+json answer with this status and code.
async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], code, "{v}");
    v
}

#[tokio::test]
async fn a_valid_xlsx_is_recorded_all_at_once_and_a_dry_run_writes_nothing() {
    let app = spawn(false).await;
    let epci = app.client_with(&app.token(&format!("epci:{RENNES_METROPOLE}")));
    let before = adoption_count(&app).await;

    let r = upload(&app, &epci, "?dry_run=true", XLSX, xlsx(&VALID)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let dry: Value = r.json().await.unwrap();
    assert_eq!((dry["dry_run"].as_bool(), dry["written"].as_bool()), (Some(true), Some(false)));
    assert_eq!((dry["rows"].as_u64(), dry["accepted"].as_u64(), dry["skipped"].as_u64(), dry["errors"].as_u64()), (Some(3), Some(2), Some(1), Some(0)));
    assert_eq!(adoption_count(&app).await, before, "a dry run writes nothing");

    let r = upload(&app, &epci, "", XLSX, xlsx(&VALID)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["written"], true);
    let lines = report["lines"].as_array().unwrap();
    assert_eq!(lines.iter().map(|l| l["row"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(lines.iter().map(|l| l["status"].as_str().unwrap()).collect::<Vec<_>>(), ["accepted", "accepted", "skipped"]);
    assert_eq!(lines[0]["reason"], "acceptée : openElec depuis le 1er mars 2019");
    assert_eq!(lines[2]["reason"], "aucun produit déclaré : ligne ignorée");
    assert_eq!(adoption_count(&app).await, before + 2);

    let rennes = adoptions_of(&app, "35238").await;
    assert_eq!(rennes.len(), 1);
    let a = &rennes[0];
    assert_eq!(a["id"], lines[0]["adoption"]);
    assert_eq!((a["product"].as_str(), a["category"].as_str(), a["since"].as_str()), (Some("openelec"), Some("elections"), Some("2019-03-01")));
    assert_eq!((a["generation"].is_null(), a["workstations"].as_u64(), a["contract_end"].is_null(), a["until"].is_null()), (true, Some(12), true, true));
    assert_eq!(a["simulated"], false);
    let cesson = adoptions_of(&app, "35051").await;
    assert_eq!(cesson.len(), 1);
    let a = &cesson[0];
    assert_eq!((a["product"].as_str(), a["generation"].as_str(), a["since"].as_str()), (Some("windows"), Some("11"), Some("2022-06-01")));
    assert_eq!((a["contract_end"].as_str(), a["workstations"].as_u64(), a["category"].as_str()), (Some("2027-12-31"), Some(40), Some("poste-de-travail")));

    // The same file again: both rows already recorded, skipped, nothing written twice.
    let r = upload(&app, &epci, "", XLSX, xlsx(&VALID)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    assert_eq!((again["accepted"].as_u64(), again["skipped"].as_u64(), again["written"].as_bool()), (Some(0), Some(3), Some(false)));
    assert!(again["lines"][0]["reason"].as_str().unwrap().starts_with("déjà enregistrée (adoption "), "{again}");
    assert_eq!(adoption_count(&app).await, before + 2);
    // And durably: the store holds them.
    assert_eq!(app.service.stored_records().unwrap().0.len() as u64, before + 2);
}

#[tokio::test]
async fn bad_rows_write_nothing_and_each_error_is_reported() {
    let app = spawn(false).await;
    let before = adoption_count(&app).await;
    let rows = [
        ["35238", "Rennes", "elections", "", "openelec", "", "2019-03-01", "", ""],
        ["35238", "Rennes", "finances", "", "logiciel-inconnu", "", "2019-03-01", "", ""],
        ["29019", "Brest", "elections", "", "openelec", "", "2019-03-01", "", ""],
        ["35051", "Cesson-Sévigné", "elections", "", "openelec", "", "2030-01-01", "", ""],
        ["35051", "Cesson-Sévigné", "poste-de-travail", "", "windows", "99", "2022-06-01", "", ""],
        ["35051", "Cesson-Sévigné", "bureautique", "", "openelec", "", "2022-06-01", "", ""],
        ["35051", "Cesson-Sévigné", "cimetiere", "", "opencimetiere", "", "01/02/2020", "", "beaucoup"],
        ["35238", "Rennes", "elections", "", "openelec", "", "2019-03-01", "", ""],
    ];
    let r = upload(&app, &app.client, "", XLSX, xlsx(&rows)).await;
    let v = problem(r, 422, "invalid-value").await;
    assert_eq!(v["type"], "/problems/invalid-value");
    let report = &v["report"];
    assert_eq!(
        (report["rows"].as_u64(), report["accepted"].as_u64(), report["errors"].as_u64(), report["written"].as_bool()),
        (Some(8), Some(1), Some(7), Some(false))
    );
    let lines = report["lines"].as_array().unwrap();
    let got: Vec<(u64, &str, &str)> =
        lines.iter().map(|l| (l["row"].as_u64().unwrap(), l["status"].as_str().unwrap(), l["field"].as_str().unwrap_or("-"))).collect();
    assert_eq!(
        got,
        [
            (2, "accepted", "-"),
            (3, "error", "produit"),
            (4, "error", "code_insee"),
            (5, "error", "depuis"),
            (6, "error", "generation"),
            (7, "error", "produit"),
            (8, "error", "postes"),
            (9, "error", "produit"),
        ]
    );
    assert_eq!(lines[1]["reason"], "le produit « logiciel-inconnu » n'est pas au catalogue");
    assert_eq!(lines[2]["reason"], "Brest (29019) n'est pas membre de Rennes Métropole (elle est membre de Brest Métropole)");
    assert_eq!(lines[3]["reason"], "la date 2030-01-01 est dans le futur (au plus tard le 2026-11-30)");
    assert!(lines[4]["reason"].as_str().unwrap().starts_with("le produit windows n'a pas de génération ni de version « 99 »"), "{}", lines[4]);
    assert_eq!(lines[5]["reason"], "le produit openelec ne sert pas la catégorie bureautique (il sert : elections)");
    assert_eq!(lines[6]["reason"], "« beaucoup » : un nombre entier de postes, de 0 à 100 000");
    assert_eq!(lines[7]["reason"], "même adoption que la ligne 2 (openElec, même période)");
    assert_eq!(adoption_count(&app).await, before, "nothing written");
    assert!(adoptions_of(&app, "35238").await.is_empty());
}

#[tokio::test]
async fn a_csv_upload_works() {
    let app = spawn(false).await;
    let csv = "\u{feff}code_insee;commune;categorie;produit;generation;depuis;fin_contrat;postes\r\n\
               35238;Rennes;bureautique;libreoffice;all;15/09/2018;;250\r\n\
               35051;Cesson-Sévigné;elections;;;;;\r\n";
    let r = upload(&app, &app.client, "", "text/csv; charset=utf-8", csv.as_bytes().to_vec()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert_eq!((report["accepted"].as_u64(), report["skipped"].as_u64(), report["written"].as_bool()), (Some(1), Some(1), Some(true)));
    let a = &adoptions_of(&app, "35238").await[0];
    assert_eq!(
        (a["product"].as_str(), a["generation"].as_str(), a["since"].as_str(), a["workstations"].as_u64()),
        (Some("libreoffice"), Some("all"), Some("2018-09-15"), Some(250))
    );
}

#[tokio::test]
async fn files_that_are_not_spreadsheets_are_refused() {
    let app = spawn(false).await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89".to_vec();
    let v = problem(upload(&app, &app.client, "", "image/png", png.clone()).await, 415, "unsupported-media-type").await;
    assert!(v["detail"].as_str().unwrap().contains("type de contenu non pris en charge (image/png)"), "{v}");
    problem(upload(&app, &app.client, "", XLSX, png.clone()).await, 415, "unsupported-media-type").await;
    problem(upload(&app, &app.client, "", "application/octet-stream", png).await, 415, "unsupported-media-type").await;
    let random: Vec<u8> = (0u32..4096).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    problem(upload(&app, &app.client, "", "text/csv", random).await, 415, "unsupported-media-type").await;
    // A zip that is not a workbook, a truncated workbook, text without the columns, nothing.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("notes.txt", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(b"bonjour").unwrap();
    let not_a_workbook = zip.finish().unwrap().into_inner();
    problem(upload(&app, &app.client, "", XLSX, not_a_workbook).await, 415, "unsupported-media-type").await;
    let truncated = xlsx(&VALID)[..600].to_vec();
    problem(upload(&app, &app.client, "", XLSX, truncated).await, 400, "malformed-input").await;
    let v = problem(upload(&app, &app.client, "", "text/csv", b"nom;prenom\nDupont;Jean\n".to_vec()).await, 422, "invalid-value").await;
    assert!(v["detail"].as_str().unwrap().starts_with("colonne(s) manquante(s) dans la ligne d'en-tête : code_insee, categorie, produit, depuis"), "{v}");
    problem(upload(&app, &app.client, "", "text/csv", Vec::new()).await, 400, "malformed-input").await;
    // Over the body limit.
    problem(upload(&app, &app.client, "", "text/csv", vec![b'a'; 5 * 1024 * 1024 + 1]).await, 413, "payload-too-large").await;
    assert_eq!(adoption_count(&app).await, 0);
}

/// Peak resident memory of this process (the server runs in it), bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_quickly_without_memory_growth() {
    let app = spawn(false).await;
    // A workbook whose sheet part expands to 2 GiB of spaces: written chunk by chunk, so the
    // test holds only the compressed archive (about 2 MB).
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflate = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("[Content_Types].xml", deflate).unwrap();
    zip.write_all(br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#).unwrap();
    zip.start_file("xl/workbook.xml", deflate).unwrap();
    zip.write_all(br#"<?xml version="1.0"?><workbook/>"#).unwrap();
    zip.start_file("xl/worksheets/sheet1.xml", deflate.large_file(true)).unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..2048 {
        zip.write_all(&chunk).unwrap();
    }
    let bomb = zip.finish().unwrap().into_inner();
    eprintln!("bomb: {} bytes compressed, 2 GiB declared", bomb.len());
    assert!(bomb.len() < 5 * 1024 * 1024, "the bomb fits the body limit: {} bytes", bomb.len());

    let peak = peak_rss();
    let start = std::time::Instant::now();
    let v = problem(upload(&app, &app.client, "", XLSX, bomb).await, 413, "payload-too-large").await;
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "refused in {:?}", start.elapsed());
    assert!(v["detail"].as_str().unwrap().contains("se décompresse"), "{v}");
    let grown = peak_rss().saturating_sub(peak);
    eprintln!("bomb refused in {:?}, peak memory grew by {grown} bytes", start.elapsed());
    assert!(grown < 64 * 1024 * 1024, "peak memory grew by {grown} bytes");
    assert_eq!(adoption_count(&app).await, 0);
}

#[tokio::test]
async fn too_many_rows_are_refused() {
    let app = spawn(false).await;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in HEADER.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for r in 1..=20_001u32 {
        sheet.write_string(r, 0, "35238").unwrap();
        sheet.write_string(r, 2, "elections").unwrap();
    }
    let body = book.save_to_buffer().unwrap();
    let v = problem(upload(&app, &app.client, "", XLSX, body).await, 413, "payload-too-large").await;
    assert_eq!(v["detail"], "le fichier compte plus de 20000 lignes");
}

#[tokio::test]
async fn only_the_epci_or_an_admin_may_upload() {
    let app = spawn(false).await;
    let commune = app.client_with(&app.token("commune:35238"));
    let other_epci = app.client_with(&app.token("epci:242900314"));
    problem(upload(&app, &commune, "", XLSX, xlsx(&VALID)).await, 403, "forbidden").await;
    problem(upload(&app, &other_epci, "", XLSX, xlsx(&VALID)).await, 403, "forbidden").await;
    problem(upload(&app, &app.anon, "", XLSX, xlsx(&VALID)).await, 401, "unauthorized").await;
    let r = app.client.post(app.url("/api/v1/epcis/999999999/inventory")).header("content-type", XLSX).body(xlsx(&VALID)).send().await.unwrap();
    problem(r, 404, "not-found").await;
    assert_eq!(adoption_count(&app).await, 0);
}

#[tokio::test]
async fn the_template_lists_every_member_and_category_prefilled_and_comes_back_unchanged() {
    use calamine::{Data, Reader, Xlsx};
    let app = spawn(false).await;
    // Rennes runs openElec: the template says so.
    let r = app
        .client
        .post(app.url("/api/v1/communes/35238/adoptions"))
        .json(&serde_json::json!({"product": "openelec", "since": "2019-03-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let r = app.anon.get(app.url(&format!("/api/v1/epcis/{RENNES_METROPOLE}/inventory-template.xlsx"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], XLSX);
    let body = r.bytes().await.unwrap().to_vec();
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(body.clone())).unwrap();
    assert_eq!(book.sheet_names(), ["Inventaire", "Notice", "Listes"]);
    let sheet = book.worksheet_range("Inventaire").unwrap();
    let siren = voisinage::core::domain::Siren::parse(RENNES_METROPOLE).unwrap();
    let members = app.service.territory().members(&siren).len();
    let categories = app.service.catalog().categories.len();
    assert_eq!((members, categories), (43, 21));
    assert_eq!(sheet.height(), 1 + members * categories);
    let header: Vec<String> = sheet.rows().next().unwrap().iter().map(|c| c.to_string()).collect();
    assert_eq!(header, HEADER);
    let rennes_elections: Vec<&[Data]> = sheet.rows().filter(|r| r[0] == Data::String("35238".into()) && r[2] == Data::String("elections".into())).collect();
    assert_eq!(rennes_elections.len(), 1);
    let row = rennes_elections[0];
    assert_eq!((row[1].to_string(), row[4].to_string(), row[6].to_string()), ("Rennes".into(), "openelec".into(), "2019-03-01".into()));
    let lists = book.worksheet_range("Listes").unwrap();
    let elections: Vec<String> = lists.rows().map(|r| r[1].to_string()).take_while(|s| !s.is_empty()).collect();
    assert_eq!(elections[0], "elections");
    assert!(elections.contains(&"openelec".to_string()));
    assert!(book.defined_names().iter().any(|(n, f)| n == "g_windows" && f.starts_with("Listes!")), "{:?}", book.defined_names());

    // Sent back as it is: every row skipped (nothing declared, or already recorded).
    let r = upload(&app, &app.client, "", XLSX, body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert_eq!((report["rows"].as_u64(), report["accepted"].as_u64(), report["errors"].as_u64()), (Some((members * categories) as u64), Some(0), Some(0)));
    assert_eq!(adoption_count(&app).await, 1);
    // The EPCI page links to it.
    let page = app.anon.get(app.url(&format!("/epcis/{RENNES_METROPOLE}"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("href=\"/api/v1/epcis/{RENNES_METROPOLE}/inventory-template.xlsx\"")));
}

#[tokio::test]
async fn the_openapi_document_describes_the_inventory_routes() {
    let app = spawn(false).await;
    let doc: Value = app.anon.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let post = &doc["paths"]["/api/v1/epcis/{siren}/inventory"]["post"];
    let body = post["requestBody"]["content"].as_object().unwrap();
    assert_eq!(body.keys().collect::<Vec<_>>(), ["application/octet-stream", XLSX, "text/csv"]);
    assert_eq!(body[XLSX]["schema"]["format"], "binary");
    assert_eq!(post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/InventoryReport");
    assert_eq!(post["responses"]["422"]["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/InventoryProblem");
    for status in ["400", "401", "403", "404", "413", "415"] {
        assert!(post["responses"][status]["content"]["application/problem+json"].is_object(), "{status}");
    }
    assert!(post["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "dry_run" && p["in"] == "query"));
    let get = &doc["paths"]["/api/v1/epcis/{siren}/inventory-template.xlsx"]["get"];
    assert!(get["responses"]["200"]["content"][XLSX].is_object(), "{get}");
    let report = &doc["components"]["schemas"]["InventoryReport"];
    assert!(report["properties"]["lines"].is_object(), "{report}");
    assert!(doc["components"]["schemas"]["InventoryProblem"]["allOf"].is_array());
}

/// Columns in another order, an extra column, French headers with accents, a code typed as a
/// number and real date cells are all read as meant.
#[tokio::test]
async fn columns_in_any_order_numbers_and_date_cells_are_read() {
    use rust_xlsxwriter::ExcelDateTime;
    let app = spawn(false).await;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let date = Format::new().set_num_format("dd/mm/yyyy");
    for (c, h) in ["Remarques", "Dépuis", "Produit", "Catégorie", "Code INSEE", "Fin contrat", "Génération"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_string(1, 0, "x".repeat(5000)).unwrap();
    sheet.write_datetime_with_format(1, 1, ExcelDateTime::from_ymd(2021, 1, 4).unwrap(), &date).unwrap();
    sheet.write_string(1, 2, "windows").unwrap();
    sheet.write_string(1, 3, "poste-de-travail").unwrap();
    sheet.write_number(1, 4, 35238).unwrap();
    sheet.write_number(1, 5, 46_387).unwrap(); // 2026-12-31 as a bare Excel day number
    sheet.write_string(1, 6, "10").unwrap();
    let body = book.save_to_buffer().unwrap();
    let r = upload(&app, &app.client, "", XLSX, body).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let a = &adoptions_of(&app, "35238").await[0];
    assert_eq!((a["product"].as_str(), a["generation"].as_str()), (Some("windows"), Some("10")));
    assert_eq!((a["since"].as_str(), a["contract_end"].as_str()), (Some("2021-01-04"), Some("2026-12-31")));
}
