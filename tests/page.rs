//! The EPCI page in a real headless Chromium: it loads, it is French, the map has one shape per
//! member, and a screenshot is written under `target/`. Chromium comes from Debian's `chromium`
//! package (installed by `.ci/run`); without it the test is skipped locally and fails in CI.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.exists())
}

fn headless(bin: &PathBuf, profile: &std::path::Path, extra: &[&str], url: &str) -> std::process::Output {
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs")
}

#[tokio::test]
async fn epci_page_in_headless_chromium() {
    let Some(bin) = chromium() else {
        assert!(std::env::var("CI").is_err(), "CI must install Debian's chromium (see .ci/run)");
        eprintln!("skipped: no chromium on this machine (apt-get install chromium)");
        return;
    };
    let app = common::spawn(true).await;
    let url = app.url("/epcis/243500139?categorie=poste-de-travail");
    let profile = tempfile::tempdir().unwrap();
    let b = bin.clone();
    let (p, u) = (profile.path().to_path_buf(), url.clone());
    let dom = tokio::task::spawn_blocking(move || headless(&b, &p, &["--dump-dom"], &u)).await.unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(dom.contains("<html lang=\"fr\">"), "{}", &dom[..dom.len().min(500)]);
    assert!(dom.contains("<h1>Rennes Métropole</h1>"));
    assert_eq!(dom.matches("<path class=\"commune").count(), 43, "one shape per member");
    // Each shape is a link to the commune's page (Rennes, 35238, among them), the map scales to
    // the screen, and the members' table links each commune too.
    let map = &dom[dom.find("<svg").unwrap()..dom.find("</svg>").unwrap()];
    assert_eq!(map.matches("<a href=\"/communes/").count(), 43);
    assert!(map.contains("<a href=\"/communes/35238\" aria-label=\"Rennes : "));
    // Its natural size in attributes, scaled down by the stylesheet (no inline style: the
    // Content-Security-Policy allows none).
    assert!(map.contains("viewBox=\"0 0 ") && !map.contains("style="));
    // The 12 most populous members are named on the map (Rennes, Cesson-Sévigné, Bruz...), a
    // small one is not; all 43 are listed under it by situation.
    assert_eq!(map.matches("<text class=\"nom\"").count(), 12, "the larger members named on the map");
    assert!(map.contains(">Cesson-Sévigné</text>") && map.contains(">Rennes</text>") && !map.contains(">Bécherel</text>"));
    let list = &dom[dom.find("<ul class=\"par-situation\">").unwrap()..];
    let list = &list[..list.find("</ul>").unwrap()];
    assert_eq!(list.matches("<a href=\"/communes/").count(), 43);
    // Each status has its own pattern as well as its colour (greyscale printing).
    assert_eq!(map.matches("<pattern id=\"motif-").count(), 5);
    // The category chosen filters the groupements: none of another category is shown.
    let shown: Vec<&str> = dom.split("<section class=\"groupement\" id=\"g-").skip(1).map(|rest| &rest[..rest.find('"').unwrap()]).collect();
    assert!(shown.iter().all(|c| *c == "poste-de-travail"), "{shown:?}");
    assert!(dom.contains("Voir les groupements de toutes les catégories"));
    assert!(dom.contains("<th scope=\"row\"><a href=\"/communes/35238\">Rennes</a></th>"));
    assert!(dom.contains("Groupements de commandes proposés"));
    assert!(dom.contains("Données simulées"));
    // Under the cargo target folder (CI points CARGO_TARGET_DIR outside the clone).
    let dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("epci-page.png");
    let _ = std::fs::remove_file(&shot);
    let (b, p, u) = (bin.clone(), profile.path().to_path_buf(), url.clone());
    let arg = format!("--screenshot={}", shot.display());
    let out = tokio::task::spawn_blocking(move || headless(&b, &p, &[&arg, "--window-size=1280,1600", "--hide-scrollbars"], &u)).await.unwrap();
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot {} is {size} bytes; chromium said: {}", shot.display(), String::from_utf8_lossy(&out.stderr));
    eprintln!("screenshot written to {}", shot.display());
}

#[tokio::test]
async fn exports_and_escaping() {
    let app = common::spawn(true).await;
    let r = app.client.get(app.url("/api/v1/epcis/243500139/pooled-purchases.csv")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let body = r.bytes().await.unwrap();
    assert_eq!(&body[..3], b"\xEF\xBB\xBF", "UTF-8 BOM for Excel");
    let text = std::str::from_utf8(&body[3..]).unwrap();
    let mut rd = csv::ReaderBuilder::new().delimiter(b';').from_reader(text.as_bytes());
    let headers = rd.headers().unwrap().clone();
    assert_eq!(&headers[2], "code_insee");
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert!(!rows.is_empty());
    let json: serde_json::Value = app.client.get(app.url("/api/v1/epcis/243500139/pooled-purchases")).send().await.unwrap().json().await.unwrap();
    let n = |g: &serde_json::Value, k: &str| g[k].as_array().unwrap().len();
    let expected: usize = json["groupements"].as_array().unwrap().iter().map(|g| n(g, "concerned") + n(g, "already_on") + n(g, "own_path")).sum::<usize>()
        + json["single_needs"].as_array().unwrap().iter().map(|g| n(g, "concerned") + n(g, "already_on") + n(g, "own_path")).sum::<usize>();
    assert_eq!(rows.len(), expected, "one row per member per groupement, single need and own path");
    assert!(rows.iter().all(|r| r[2].len() == 5 && &r[12] == "oui"));
    assert!(rows.iter().all(|r| ["groupement", "besoin_seul", "hors_groupement"].contains(&&r[13])));
    assert!(rows.iter().filter(|r| !r[8].is_empty()).all(|r| ["proven", "newest_not_yet_proven", "not_yet_proven", "rated_poorly"].contains(&&r[14])));

    // The category selector filters the groupements: exactly the JSON's groupements of the
    // first groupement's category, none of another; without a category, all of them.
    let all = json["groupements"].as_array().unwrap();
    let first = all[0]["category"].as_str().unwrap();
    let of_first = all.iter().filter(|g| g["category"] == first).count();
    let page = app.anon.get(app.url(&format!("/epcis/243500139?categorie={first}"))).send().await.unwrap().text().await.unwrap();
    let shown: Vec<&str> = page.split("<section class=\"groupement\" id=\"g-").skip(1).map(|rest| &rest[..rest.find('"').unwrap()]).collect();
    let singles = json["single_needs"].as_array().unwrap().iter().filter(|g| g["category"] == first).count();
    assert_eq!(shown.len(), of_first + singles, "{shown:?}");
    assert!(shown.iter().all(|c| *c == first));
    let page = app.anon.get(app.url("/epcis/243500139")).send().await.unwrap().text().await.unwrap();
    assert_eq!(page.matches("<section class=\"groupement\"").count(), all.len() + json["single_needs"].as_array().unwrap().len());

    let g: serde_json::Value = app.client.get(app.url("/api/v1/epcis/243500139/map.geojson")).send().await.unwrap().json().await.unwrap();
    let f = g["features"].as_array().unwrap();
    assert_eq!(f.len(), 43);
    assert!(f.iter().all(|x| x["geometry"]["type"] == "MultiPolygon" && x["properties"]["poste-de-travail_status"].is_string()));
    // Issue 15: each feature has its INSEE code as `id`, and its rings wound as RFC 7946 asks
    // (outer rings counter-clockwise: a positive shoelace area in lon/lat).
    assert!(f.iter().all(|x| x["id"].is_string() && x["id"] == x["properties"]["code"]));
    let rennes = f.iter().find(|x| x["id"] == "35238").unwrap();
    let ring: Vec<(f64, f64)> =
        rennes["geometry"]["coordinates"][0][0].as_array().unwrap().iter().map(|c| (c[0].as_f64().unwrap(), c[1].as_f64().unwrap())).collect();
    let twice_area: f64 = ring.windows(2).map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1).sum();
    assert!(twice_area > 0.0, "Rennes' outer ring is counter-clockwise: {twice_area}");

    // Search escapes what it echoes.
    let html = app.client.get(app.url("/recherche?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script>alert"));
    let html = app.client.get(app.url("/recherche?q=hoedic")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<a href=\"/communes/56085\">Hœdic</a> (56085)"));
    // The EPCI is found by the words people type (issue 15: "saint malo" for "Saint Malo").
    // Issue 15: other codes find the commune, and the page says how; results come in pages.
    let html = app.anon.get(app.url("/recherche?q=29200")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<a href=\"/communes/29019\">Brest</a> (29019) — <span class=\"muted\">code postal 29200 de Brest</span>"), "{html}");
    let html = app.anon.get(app.url("/recherche?q=antrain")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("commune déléguée Antrain (35004) de Val-Couesnon"), "{html}");
    let html = app.anon.get(app.url("/recherche?q=saint&page=2")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Page 2 sur ") && html.contains(", 21 à 40 :"), "{html}");
    assert!(html.contains("href=\"/recherche?q=saint&amp;page=1\">← Précédents</a>") && html.contains("page=3\">Suivants →</a>"), "{html}");
    // Found by the bad-input session: past the last page, the page says so and links back to
    // the last one; a query without a letter names no EPCI; the EPCI count is the true one.
    let html = app.anon.get(app.url("/recherche?q=saint&page=1000")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("La page 1000 est au-delà des résultats : il y en a 10.") && html.contains("page=10\">← Précédents</a>"), "{html}");
    let html = app.anon.get(app.url("/recherche?q=%F0%9F%98%80")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<h2>EPCI (0)</h2>") && html.contains("<h2>Communes (0)</h2>"), "{html}");
    let html = app.anon.get(app.url("/recherche?q=e")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<h2>EPCI (61)</h2>") && html.contains("… et 41 autres : précisez la recherche."), "{html}");
    let r = app.anon.get(app.url("/communes/29200")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let html = r.text().await.unwrap();
    assert!(html.contains("Vouliez-vous dire :</p><ul><li>29200 est le code postal de Brest : <a href=\"/communes/29019\">Brest (29019)</a>"), "{html}");
    assert!(html.contains("Détail : 29200 n&#39;est le code INSEE d&#39;aucune commune actuelle"), "in French: {html}");
    let html = app.anon.get(app.url("/recherche?q=saint%20malo")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<a href=\"/epcis/243500782\">CA du Pays de Saint Malo Agglomération</a>"));
    assert!(html.contains("<a href=\"/communes/35288\">Saint-Malo</a>"));
    let r = app.client.get(app.url("/epcis/243500139?categorie=nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn pages_answer_head_405_and_french_errors_and_csv_cells_are_inert() {
    let app = common::spawn(false).await;
    let r = app.anon.head(app.url("/epcis/243500139")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.anon.post(app.url("/epcis/243500139")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let r = app.anon.get(app.url("/epcis/999999999")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("Page introuvable"));
    let r = app.anon.get(app.url("/epcis/243500139?horizon=999")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Demande incorrecte"));
    // A bad parameter is named; a write on a page is a French 405.
    let r = app.anon.get(app.url("/epcis/243500139?horizon=abc")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("at &#39;horizon&#39;"));
    let r = app.anon.put(app.url("/recherche?q=ren")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["allow"].to_str().unwrap()), (405, "GET, HEAD"));
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("Action impossible"));
    // A generation that a spreadsheet would compute is quoted in the CSV.
    let r = app
        .client
        .post(app.url("/api/v1/communes/35238/adoptions"))
        .json(&serde_json::json!({"product": "openelec", "generation": "-1+1", "since": "2019-03-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let csv = app.anon.get(app.url("/api/v1/epcis/243500139/pooled-purchases.csv?horizon=120")).send().await.unwrap().text().await.unwrap();
    assert!(csv.lines().any(|l| l.contains(";'-1+1;")), "{csv}");
    assert!(!csv.lines().any(|l| l.contains(";-1+1;")));
    // Metric labels stay bounded whatever the method.
    let _ = app.anon.request(reqwest::Method::from_bytes(b"XYZZY").unwrap(), app.url("/health")).send().await.unwrap();
    let m = app.anon.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains(r#"method="other""#) && !m.contains("XYZZY"));
}
