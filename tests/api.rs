//! The HTTP API end to end: a real server on port 0, a real HTTP client.

mod common;

use common::{spawn, today};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn get(app: &common::TestApp, path: &str) -> (StatusCode, Value) {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap())
}

async fn post(app: &common::TestApp, path: &str, body: &Value) -> (StatusCode, Value) {
    let r = app.client.post(app.url(path)).json(body).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap())
}

/// Asserts an RFC 9457 problem with the given status and code.
async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], status);
    assert_eq!(v["code"], code);
    assert_eq!(v["type"], format!("/problems/{code}"));
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    v
}

#[tokio::test]
async fn health_and_commune() {
    let app = spawn(false).await;
    let (s, h) = get(&app, "/health").await;
    assert_eq!(s, 200);
    assert_eq!((h["communes"].as_u64(), h["epcis"].as_u64(), h["adoptions"].as_u64()), (Some(1202), Some(61), Some(0)));
    let (s, live) = get(&app, "/health/live").await;
    assert_eq!((s.as_u16(), live["status"].as_str()), (200, Some("live")));
    // Ready: the probe wrote and synced the store (one more sync than before).
    let syncs = app.service.store_syncs();
    let (s, ready) = get(&app, "/health/ready").await;
    assert_eq!((s.as_u16(), ready["status"].as_str()), (200, Some("ready")), "{ready}");
    assert!(ready["probe_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(app.service.store_syncs(), syncs + 1);
    // A second probe within a second reuses the first: no sync.
    let (s, _) = get(&app, "/health/ready").await;
    assert_eq!((s.as_u16(), app.service.store_syncs()), (200, syncs + 1));
    let metrics = app.anon.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("voisinage_store_failing 0"), "{metrics}");
    assert!(metrics.contains("voisinage_store_errors_total 0"));
    assert!(metrics.contains("voisinage_store_sync_duration_seconds_bucket{le=\"30\"}"));

    let (s, c) = get(&app, "/api/v1/communes/35238").await;
    assert_eq!(s, 200);
    assert_eq!(c["name"], "Rennes");
    assert_eq!(c["epci"]["siren"], "243500139");
    assert_eq!(c["epci"]["name"], "Rennes Métropole");
    let n = c["neighbours"].as_array().unwrap();
    assert_eq!(n.len(), 10);
    let cesson = n.iter().find(|x| x["code"] == "35051").unwrap();
    assert_eq!(cesson["name"], "Cesson-Sévigné");
    assert_eq!(cesson["kind"], "border");
    assert!(cesson["border_km"].as_f64().unwrap() > 7.0);
    assert!(cesson["distance_km"].as_f64().unwrap() > 6.0);

    let (_, o) = get(&app, "/api/v1/communes/29155").await;
    assert!(o["epci"].is_null());
    assert!(o["neighbours"].as_array().unwrap().iter().all(|x| x["kind"] == "nearest" && x["border_km"].is_null()));

    let (s, n2) = get(&app, "/api/v1/communes/35238/neighbours?hops=2").await;
    assert_eq!(s, 200);
    assert!(n2["count"].as_u64().unwrap() > 10);
    assert!(n2["neighbours"].as_array().unwrap().iter().all(|x| x["hops"].as_u64().unwrap() <= 2));
    let (_, list) = get(&app, "/api/v1/communes?q=hoedic").await;
    assert_eq!(list["communes"][0]["code"], "56085", "accents ignored: Hœdic");
    let (_, epcis) = get(&app, "/api/v1/epcis").await;
    assert_eq!(epcis["count"], 61);
    let (_, p) = get(&app, "/api/v1/communes/56173").await;
    assert!(p["former_codes"].as_array().unwrap().contains(&json!("56016")));
}

#[tokio::test]
async fn bad_input_is_a_problem() {
    let app = spawn(false).await;
    let c = &app.client;
    problem(c.get(app.url("/api/v1/communes/3523")).send().await.unwrap(), 400, "malformed-input").await;
    problem(c.get(app.url("/api/v1/communes/99999")).send().await.unwrap(), 404, "not-found").await;
    problem(c.get(app.url("/api/v1/communes/35238/neighbours?hops=0")).send().await.unwrap(), 422, "invalid-value").await;
    problem(c.get(app.url("/api/v1/communes/35238/neighbours?hops=abc")).send().await.unwrap(), 400, "malformed-input").await;
    problem(c.get(app.url("/api/v1/communes/35238/recommendations")).send().await.unwrap(), 400, "malformed-input").await;
    problem(c.get(app.url("/api/v1/communes/35238/recommendations?category=nope")).send().await.unwrap(), 404, "not-found").await;
    problem(c.get(app.url("/api/v1/communes/35238/recommendations?category=site-web&limit=500")).send().await.unwrap(), 422, "invalid-value").await;
    problem(c.get(app.url("/api/v1/epcis/12345")).send().await.unwrap(), 400, "malformed-input").await;
    problem(c.get(app.url("/api/v1/epcis/200000000/pooled-purchases")).send().await.unwrap(), 404, "not-found").await;
    problem(c.get(app.url("/api/v1/catalog/products?category=zzz")).send().await.unwrap(), 404, "not-found").await;
    problem(c.get(app.url("/nowhere")).send().await.unwrap(), 404, "not-found").await;

    let adoptions = app.url("/api/v1/communes/35238/adoptions");
    let ok = json!({"product": "libreoffice", "generation": "24.8", "since": "2025-01-10"});
    // Malformed JSON, unknown field, wrong type, wrong content type, too large.
    problem(c.post(&adoptions).header("content-type", "application/json").body("{\"product\":").send().await.unwrap(), 400, "malformed-input").await;
    problem(
        c.post(&adoptions).json(&json!({"product": "libreoffice", "generation": "24.8", "since": "2025-01-10", "x": 1})).send().await.unwrap(),
        400,
        "malformed-input",
    )
    .await;
    problem(c.post(&adoptions).json(&json!({"product": 3, "since": "2025-01-10"})).send().await.unwrap(), 400, "malformed-input").await;
    problem(c.post(&adoptions).header("content-type", "text/plain").body(ok.to_string()).send().await.unwrap(), 415, "unsupported-media-type").await;
    problem(
        c.post(&adoptions).header("content-type", "application/json").body(format!("{{\"product\":\"{}\"}}", "a".repeat(40_000))).send().await.unwrap(),
        413,
        "payload-too-large",
    )
    .await;
    // Unknown product 404; unknown generation, wrong category, future date, until < since 422.
    problem(c.post(&adoptions).json(&json!({"product": "nope", "since": "2025-01-10"})).send().await.unwrap(), 404, "not-found").await;
    problem(
        c.post(&adoptions).json(&json!({"product": "libreoffice", "generation": "99.9", "since": "2025-01-10"})).send().await.unwrap(),
        422,
        "invalid-value",
    )
    .await;
    problem(
        c.post(&adoptions).json(&json!({"product": "libreoffice", "generation": "24.8", "category": "paie-rh", "since": "2025-01-10"})).send().await.unwrap(),
        422,
        "invalid-value",
    )
    .await;
    problem(
        c.post(&adoptions).json(&json!({"product": "libreoffice", "generation": "24.8", "since": "2031-01-10"})).send().await.unwrap(),
        422,
        "invalid-value",
    )
    .await;
    problem(
        c.post(&adoptions).json(&json!({"product": "libreoffice", "generation": "24.8", "since": "2025-01-10", "until": "2024-01-01"})).send().await.unwrap(),
        422,
        "invalid-value",
    )
    .await;
    problem(c.post(app.url("/api/v1/communes/99999/adoptions")).json(&ok).send().await.unwrap(), 404, "not-found").await;
    // JSON arrays are not objects; contract ends before the start; wrong methods; HEAD.
    problem(c.post(&adoptions).json(&json!(["openelec", null, null, "2019-03-01"])).send().await.unwrap(), 400, "malformed-input").await;
    problem(
        c.post(&adoptions).json(&json!({"product": "openelec", "since": "2019-03-01", "contract_end": "1990-01-01"})).send().await.unwrap(),
        422,
        "invalid-value",
    )
    .await;
    problem(
        c.post(&adoptions).json(&json!({"product": "openelec", "generation": "5\u{202e}", "since": "2019-03-01"})).send().await.unwrap(),
        400,
        "malformed-input",
    )
    .await;
    let r = c.delete(app.url("/api/v1/communes/35238")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    problem(r, 405, "method-not-allowed").await;
    let r = c.put(&adoptions).json(&ok).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD, POST");
    problem(r, 405, "method-not-allowed").await;
    let r = c.head(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Nothing was written by any of these.
    let (_, h) = get(&app, "/health").await;
    assert_eq!(h["adoptions"], 0);
}

#[tokio::test]
async fn adoption_feedback_and_recommendation() {
    let app = spawn(false).await;
    // Cesson-Sévigné runs Windows 11 25H2 and rates it; Rennes asks for poste-de-travail.
    let (s, a) = post(&app, "/api/v1/communes/35051/adoptions", &json!({"product": "windows", "generation": "11-26h1-w", "since": "2026-03-01"})).await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["category"], "poste-de-travail", "the product's main category by default");
    assert_eq!(a["simulated"], false);
    assert!(a["ratings"]["mean_reliability"].is_null(), "no feedback yet: no mean");
    let id = a["id"].as_u64().unwrap();
    let fb = format!("/api/v1/communes/35051/adoptions/{id}/feedback");
    for r in [5, 4, 5] {
        let (s, f) =
            post(&app, &fb, &json!({"reliability": r, "incidents": 0, "downtime_hours": 0.5, "support": 4, "comment": "RAS", "date": "2026-06-01"})).await;
        assert_eq!(s, 201, "{f}");
        assert_eq!(f["has_comment"], true);
        assert_eq!(f["comment"], "RAS", "the writer sees its own comment");
    }
    let c = &app.client;
    problem(
        c.post(app.url(&fb)).json(&json!({"reliability": 7, "incidents": 0, "downtime_hours": 0, "support": 4})).send().await.unwrap(),
        422,
        "invalid-value",
    )
    .await;
    problem(
        c.post(app.url(&fb)).json(&json!({"reliability": 3, "incidents": -1, "downtime_hours": 0, "support": 4})).send().await.unwrap(),
        422,
        "invalid-value",
    )
    .await;
    problem(
        c.post(app.url(&fb)).json(&json!({"reliability": 3, "incidents": 0, "downtime_hours": 0, "support": 4, "date": "2020-01-01"})).send().await.unwrap(),
        422,
        "invalid-value",
    )
    .await;
    // The Location of the adoption answers; the same adoption twice is a conflict.
    let (s, one) = get(&app, &format!("/api/v1/communes/35051/adoptions/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(one["ratings"]["n"], 3);
    problem(
        c.post(app.url("/api/v1/communes/35051/adoptions"))
            .json(&json!({"product": "windows", "generation": "11-26h1-w", "since": "2026-03-01"}))
            .send()
            .await
            .unwrap(),
        409,
        "conflict",
    )
    .await;
    problem(
        c.post(app.url("/api/v1/communes/35051/adoptions"))
            .json(&json!({"product": "windows", "generation": "11-26h1-w", "since": "2001-01-01"}))
            .send()
            .await
            .unwrap(),
        422,
        "invalid-value",
    )
    .await;
    // Another commune cannot attach feedback to this adoption.
    problem(
        c.post(app.url(&format!("/api/v1/communes/35238/adoptions/{id}/feedback")))
            .json(&json!({"reliability": 1, "incidents": 9, "downtime_hours": 0, "support": 1}))
            .send()
            .await
            .unwrap(),
        404,
        "not-found",
    )
    .await;
    problem(
        c.post(app.url("/api/v1/communes/35051/adoptions/abc/feedback"))
            .json(&json!({"reliability": 1, "incidents": 9, "downtime_hours": 0, "support": 1}))
            .send()
            .await
            .unwrap(),
        400,
        "malformed-input",
    )
    .await;

    let (s, list) = get(&app, "/api/v1/communes/35051/adoptions").await;
    assert_eq!(s, 200);
    assert_eq!(list["count"], 1);
    let r = &list["adoptions"][0]["ratings"];
    assert_eq!((r["n"].as_u64(), r["mean_reliability"].as_f64()), (Some(3), Some(14.0 / 3.0)));

    let (s, rec) = get(&app, "/api/v1/communes/35238/recommendations?category=poste-de-travail").await;
    assert_eq!(s, 200, "{rec}");
    // Nothing is proven anywhere (one adopter, 8 months): the search widens to the whole
    // territory, and says so.
    assert_eq!(rec["scope"]["step"], "territory");
    assert_eq!(rec["scope"]["note"], "Aucune option éprouvée, même sur tout le territoire : les options listées ne sont pas encore éprouvées.");
    let item = &rec["items"][0];
    // The generation is Windows 11 (what a commune migrates to); the release advised within it
    // is the newest out of its 3-month teething period and supported beyond 12 months.
    assert_eq!((item["product"].as_str(), item["generation"].as_str()), (Some("windows"), Some("11")));
    assert_eq!((item["release"].as_str(), item["release_label"].as_str()), (Some("11-26h1-w"), Some("11 26H1 (W)")));
    assert_eq!(item["evidence"][0]["code"], "35051");
    assert_eq!(item["evidence"][0]["hops"], 1);
    assert_eq!(item["evidence"][0]["n_ratings"], 3);
    assert_eq!(item["evidence"][0]["months_in_service"], 8, "2026-03-01 to 2026-11-29");
    // Windows 11 is still being released (26H1 is Windows' newest release): no end known yet.
    assert_eq!(item["support"]["status"], "no_end_known");
    // The only records of the category are these three: the posterior mean is their mean
    // quality, rating minus 0.15 ln(1 + 0.5 h of downtime).
    let q = 14.0 / 3.0 - 0.15 * 1.5f64.ln();
    assert!((item["reliability"]["mean"].as_f64().unwrap() - q).abs() < 1e-3, "{}", item["reliability"]);
    assert!(item["reliability"]["lower_bound"].as_f64().unwrap() < q);
    assert_eq!(item["status"], "newest_not_yet_proven", "one adopter, 8 months");
    let reason = item["reason"].as_str().unwrap();
    assert!(reason.starts_with("Microsoft Windows 11 : en service dans 1 commune à 6 km au plus depuis 8 mois en moyenne ;"), "{reason}");
    assert!(reason.contains("pas encore éprouvée à proximité") && !reason.contains("saut"), "{reason}");
    // Cesson itself is not recommended what it already runs.
    let (_, own) = get(&app, "/api/v1/communes/35051/recommendations?category=poste-de-travail&hops=1").await;
    assert!(own["items"].as_array().unwrap().iter().all(|i| i["generation"] != "11"));
    assert_eq!(own["current"][0]["adoption_id"].as_u64(), Some(id));
    assert_eq!((own["current"][0]["generation"].as_str(), own["current"][0]["release"].as_str()), (Some("11"), Some("11-26h1-w")));
    assert_eq!(own["current"][0]["advice"], "stay");
    // Parameters can be overridden within bounds; out of bounds is 422, unknown is 400.
    let (s, tuned) = get(&app, "/api/v1/communes/35238/recommendations?category=poste-de-travail&hop_decay=0.9&z=0").await;
    assert_eq!(s, 200);
    assert_eq!(tuned["params"]["z"], 0.0);
    problem(c.get(app.url("/api/v1/communes/35238/recommendations?category=poste-de-travail&z=9")).send().await.unwrap(), 422, "invalid-value").await;
    problem(c.get(app.url("/api/v1/communes/35238/recommendations?category=poste-de-travail&zz=1")).send().await.unwrap(), 400, "malformed-input").await;
}

#[tokio::test]
async fn epci_and_catalog() {
    let app = spawn(false).await;
    let (s, e) = get(&app, "/api/v1/epcis/243500139").await;
    assert_eq!(s, 200);
    assert_eq!(e["name"], "Rennes Métropole");
    assert_eq!(e["kind"], "METRO");
    assert_eq!(e["members_in_scope"], 43);
    assert_eq!(e["members"][0]["code"], "35238", "largest member first");

    let (s, p) = get(&app, "/api/v1/epcis/243500139/pooled-purchases").await;
    assert_eq!(s, 200);
    // Empty store: every member needs something in every category.
    let g = p["groupements"].as_array().unwrap();
    assert_eq!(g.len(), 21);
    assert!(g.iter().all(|x| x["concerned"].as_array().unwrap().len() == 43 && x["option"].is_null()));
    assert_eq!(g[0]["concerned"][0]["need"]["kind"], "no_product");

    let (_, cats) = get(&app, "/api/v1/catalog/categories").await;
    let slugs: Vec<&str> = cats["categories"].as_array().unwrap().iter().map(|c| c["slug"].as_str().unwrap()).collect();
    for needed in [
        "etat-civil",
        "elections",
        "finances",
        "paie-rh",
        "urbanisme",
        "cimetiere",
        "ged-courrier",
        "parapheur",
        "teletransmission",
        "site-web",
        "bureautique",
        "poste-de-travail",
        "messagerie",
        "sauvegarde",
        "pare-feu",
        "connexion-internet",
    ] {
        assert!(slugs.contains(&needed), "{needed}");
    }
    let (_, all) = get(&app, "/api/v1/catalog/products").await;
    assert!(all["count"].as_u64().unwrap() >= 40);
    let (_, web) = get(&app, "/api/v1/catalog/products?category=site-web").await;
    let ids: Vec<&str> = web["products"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"wordpress") && ids.contains(&"spip"), "{ids:?}");
    let lo = all["products"].as_array().unwrap().iter().find(|p| p["id"] == "libreoffice").unwrap();
    // LibreOffice is one generation (the line, updated in place); its branches are releases.
    let gens = lo["generations"].as_array().unwrap();
    assert_eq!((gens.len(), gens[0]["id"].as_str(), gens[0]["releases"].as_array().unwrap().len()), (1, Some("all"), 9));
    assert_eq!(lo["generation_rule"], "line");
    let g248 = lo["releases"].as_array().unwrap().iter().find(|g| g["id"] == "24.8").unwrap();
    assert_eq!(g248["released"], "2024-07-09", "imported from endoflife.date");
    assert_eq!(g248["end_of_support"], "2025-06-12");
    assert!(g248["source"].as_str().unwrap().contains("endoflife.date"));
}

#[tokio::test]
async fn demo_history_is_labelled_and_recommendations_have_evidence() {
    let app = spawn(true).await;
    let (_, h) = get(&app, "/health").await;
    assert!(h["adoptions"].as_u64().unwrap() > 20_000);
    assert_eq!(h["demo"]["seed"], 2026);
    // The availability dates the simulation made up are listed: one per non-component product
    // (the sources never give one), and the wired access technologies, which have no dates.
    let made_up = h["demo"]["simulated_dates"].as_array().unwrap();
    assert!(made_up.iter().any(|d| d["product"] == "acces-internet-filaire" && d["generation"] == "ftth"));
    assert!(made_up.iter().any(|d| d["product"] == "office" && d["generation"].is_null()));
    let (_, list) = get(&app, "/api/v1/communes/29019/adoptions").await;
    let ads = list["adoptions"].as_array().unwrap();
    assert!(!ads.is_empty());
    assert!(ads.iter().all(|a| { a["simulated"] == true && a["feedback"].as_array().unwrap().iter().all(|f| f["simulated"] == true) }));
    // (Brest's postes de travail all run Windows 11, the only generation in service nearby:
    // nothing else to propose there. Its servers have options.)
    let (s, rec) = get(&app, "/api/v1/communes/29019/recommendations?category=serveur&limit=3").await;
    assert_eq!(s, 200);
    let radius = rec["scope"]["hops"].as_u64().unwrap();
    let items = rec["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.len() <= 3);
    for it in items {
        let score = it["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert!(it["evidence"].as_array().unwrap().iter().all(|e| e["simulated"] == true && e["hops"].as_u64().is_none_or(|h| h <= radius)));
        assert_ne!(it["support"]["status"], "ended", "past end of support is never recommended");
    }
    // Proven options first, then by score within each group.
    let key: Vec<(bool, f64)> = items.iter().map(|i| (i["status"] != "proven", -i["score"].as_f64().unwrap())).collect();
    assert!(key.windows(2).all(|w| w[0] <= w[1]), "{key:?}");
    assert_eq!(items[0]["status"], "proven");
    // Ouessant: an island outside any EPCI still gets an answer, and says it is isolated.
    let (_, o) = get(&app, "/api/v1/communes/29155/recommendations?category=site-web").await;
    assert_eq!(o["scope"]["isolated"], true);
    assert!(o["scope"]["note"].as_str().is_some());
    assert_eq!(o["as_of"], today().to_string());
    // Pooled purchases for Rennes Métropole: concerned members have reasons, options evidence.
    let (_, p) = get(&app, "/api/v1/epcis/243500139/pooled-purchases").await;
    let g = p["groupements"].as_array().unwrap();
    assert!(!g.is_empty());
    assert!(g.iter().all(|x| { x["concerned"].as_array().unwrap().iter().all(|c| c["reason"].as_str().is_some_and(|r| !r.is_empty())) }));
    assert!(g.iter().any(|x| !x["option"].is_null()));
}

#[tokio::test]
async fn idempotency_key_replays_the_first_result_and_stores_once() {
    let app = spawn(false).await;
    let c = &app.client;
    let url = app.url("/api/v1/communes/29019/adoptions");
    let body = json!({"product": "openelec", "since": "2019-03-01"});
    let first = c.post(&url).header("Idempotency-Key", "k-1").json(&body).send().await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let a: Value = first.json().await.unwrap();
    let again = c.post(&url).header("Idempotency-Key", "k-1").json(&body).send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let b: Value = again.json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    // The same key for another request is refused; a malformed key is 400.
    problem(
        c.post(&url).header("Idempotency-Key", "k-1").json(&json!({"product": "openelec", "since": "2019-04-01"})).send().await.unwrap(),
        422,
        "invalid-value",
    )
    .await;
    problem(c.post(&url).header("Idempotency-Key", "a b").json(&body).send().await.unwrap(), 400, "malformed-input").await;
    problem(c.post(&url).header("Idempotency-Key", "x".repeat(256)).json(&body).send().await.unwrap(), 400, "malformed-input").await;

    // 20 parallel retries of one feedback: one record, the same answer for all.
    let fb = app.url(&format!("/api/v1/communes/29019/adoptions/{}/feedback", a["id"]));
    let fbody = json!({"reliability": 4, "incidents": 0, "downtime_hours": 0, "support": 4});
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (c, fb, fbody) = (c.clone(), fb.clone(), fbody.clone());
            tokio::spawn(async move {
                let r = c.post(&fb).header("Idempotency-Key", "f-1").json(&fbody).send().await.unwrap();
                assert_eq!(r.status(), 201);
                r.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (_, h) = get(&app, "/health").await;
    assert_eq!((h["adoptions"].as_u64(), h["feedback"].as_u64()), (Some(1), Some(1)));
}

#[tokio::test]
async fn openapi_document_covers_every_api_route() {
    let app = spawn(false).await;
    let r = app.anon.get(app.url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    // A path item's keys are its methods, and its description (the `Allow` of its 405).
    let mut ops: Vec<String> = paths
        .iter()
        .flat_map(|(p, item)| item.as_object().unwrap().keys().filter(|k| *k != "description").map(move |m| format!("{} {p}", m.to_uppercase())))
        .collect();
    ops.sort();
    assert_eq!(
        ops,
        [
            "DELETE /api/v1/tokens/{id}",
            "GET /api/v1/catalog/categories",
            "GET /api/v1/catalog/products",
            "GET /api/v1/communes",
            "GET /api/v1/communes/{code}",
            "GET /api/v1/communes/{code}/adoptions",
            "GET /api/v1/communes/{code}/adoptions/{id}",
            "GET /api/v1/communes/{code}/adoptions/{id}/feedback/{feedback_id}",
            "GET /api/v1/communes/{code}/neighbours",
            "GET /api/v1/communes/{code}/recommendations",
            "GET /api/v1/epcis",
            "GET /api/v1/epcis/{siren}",
            "GET /api/v1/epcis/{siren}/inventory-template.xlsx",
            "GET /api/v1/epcis/{siren}/inventory.xlsx",
            "GET /api/v1/epcis/{siren}/map.geojson",
            "GET /api/v1/epcis/{siren}/pooled-purchases",
            "GET /api/v1/epcis/{siren}/pooled-purchases.csv",
            "GET /api/v1/epcis/{siren}/pooled-purchases.xlsx",
            "GET /api/v1/epcis/{siren}/price-estimates",
            "GET /api/v1/epcis/{siren}/price-estimates/{id}",
            "GET /api/v1/openapi.json",
            "GET /api/v1/tokens",
            "GET /api/v1/tokens/{id}",
            "GET /health",
            "GET /health/live",
            "GET /health/ready",
            "GET /metrics",
            "PATCH /api/v1/communes/{code}/adoptions/{id}",
            "POST /api/v1/admin/backups",
            "POST /api/v1/communes/{code}/adoptions",
            "POST /api/v1/communes/{code}/adoptions/{id}/feedback",
            "POST /api/v1/epcis/{siren}/inventory",
            "POST /api/v1/epcis/{siren}/price-estimates",
            "POST /api/v1/tokens",
        ]
    );
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Errors are documented as problem+json; the recommender's parameters follow the code.
    let post = &paths["/api/v1/communes/{code}/adoptions"]["post"];
    assert!(post["responses"]["403"]["content"]["application/problem+json"].is_object());
    assert!(post["responses"]["401"]["content"]["application/problem+json"].is_object());
    let params = paths["/api/v1/communes/{code}/recommendations"]["get"]["parameters"].as_array().unwrap();
    let hops = params.iter().find(|p| p["name"] == "hops").unwrap();
    assert_eq!(
        (hops["schema"]["minimum"].as_f64(), hops["schema"]["maximum"].as_f64(), hops["schema"]["type"].as_str()),
        (Some(1.0), Some(6.0), Some("integer"))
    );
    assert_eq!(params.len(), 3 + voisinage::core::recommend::PARAM_BOUNDS.len(), "code, category, as_of and the parameters");
    // Every documented operation is a route of the service (no "no route" 404).
    for op in &ops {
        let (method, path) = op.split_once(' ').unwrap();
        let path = path.replace("{code}", "35238").replace("{siren}", "243500139").replace("{id}", "1").replace("{feedback_id}", "1");
        let text = app.anon.request(method.parse().unwrap(), app.url(&path)).send().await.unwrap().text().await.unwrap();
        assert!(!text.contains("no route for"), "{op}: {text}");
    }
}

#[tokio::test]
async fn metrics_count_requests_per_route_pattern() {
    let app = spawn(false).await;
    for code in ["35238", "29019"] {
        assert_eq!(app.anon.get(app.url(&format!("/api/v1/communes/{code}"))).send().await.unwrap().status(), 200);
    }
    assert_eq!(app.anon.get(app.url("/api/v1/communes/99999")).send().await.unwrap().status(), 404);
    let r = app.client.post(app.url("/api/v1/communes/29019/adoptions")).json(&json!({"product": "openelec", "since": "2019-03-01"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    // The same question twice (the second from the answer cache), then another; a question
    // refused (an unknown category) is neither a hit nor a miss.
    for (category, status) in [("elections", 200), ("elections", 200), ("finances", 200), ("no-such-category", 404)] {
        let r = app.anon.get(app.url(&format!("/api/v1/communes/29019/recommendations?category={category}"))).send().await.unwrap();
        assert_eq!(r.status(), status, "{category}");
    }
    let r = app.anon.get(app.url("/metrics")).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    let line = |prefix: &str| text.lines().find(|l| l.starts_with(prefix)).map(|l| l.rsplit(' ').next().unwrap().to_string());
    // One series per route pattern, not per commune.
    assert_eq!(line(r#"voisinage_http_requests_total{method="GET",route="/api/v1/communes/{code}",status="200"}"#).as_deref(), Some("2"));
    assert_eq!(line(r#"voisinage_http_requests_total{method="GET",route="/api/v1/communes/{code}",status="404"}"#).as_deref(), Some("1"));
    assert_eq!(line(r#"voisinage_http_requests_total{method="POST",route="/api/v1/communes/{code}/adoptions",status="201"}"#).as_deref(), Some("1"));
    assert_eq!(line(r#"voisinage_http_request_duration_seconds_count{method="GET",route="/api/v1/communes/{code}"}"#).as_deref(), Some("3"));
    assert_eq!(line("voisinage_adoptions ").as_deref(), Some("1"));
    assert!(line("voisinage_store_bytes ").unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(line(r#"voisinage_answer_cache_requests_total{result="hit"}"#).as_deref(), Some("1"));
    assert_eq!(line(r#"voisinage_answer_cache_requests_total{result="miss"}"#).as_deref(), Some("2"));
    assert_eq!(line("voisinage_answer_cache_answers ").as_deref(), Some("2"));
    assert_eq!(line("voisinage_answer_cache_capacity_bytes ").as_deref(), Some((32u64 << 20).to_string().as_str()));
    let held: u64 = line("voisinage_answer_cache_bytes ").unwrap().parse().unwrap();
    assert!((500..(32 << 20)).contains(&held), "{held}");
}

#[tokio::test]
async fn an_adoption_is_ended_or_corrected_with_patch() {
    let app = spawn(false).await;
    let c = &app.client;
    let (s, a) = post(&app, "/api/v1/communes/29019/adoptions", &json!({"product": "openelec", "since": "2019-03-01"})).await;
    assert_eq!(s, 201);
    let url = app.url(&format!("/api/v1/communes/29019/adoptions/{}", a["id"]));
    // Brest left openElec at the end of June 2024.
    let r = c.patch(&url).json(&json!({"until": "2024-06-30", "workstations": 3})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["until"].as_str(), v["workstations"].as_u64(), v["active"].as_bool()), (Some("2024-06-30"), Some(3), Some(false)));
    let (_, list) = get(&app, "/api/v1/communes/29019/adoptions").await;
    assert_eq!(list["adoptions"][0]["until"], "2024-06-30");
    // null reopens it; what is absent stays.
    let v: Value = c.patch(&url).json(&json!({"until": null})).send().await.unwrap().json().await.unwrap();
    assert!(v["until"].is_null() && v["active"] == true && v["workstations"] == 3);
    // The product and start cannot change; bad dates are refused; nothing changes then.
    problem(c.patch(&url).json(&json!({"product": "pastell"})).send().await.unwrap(), 400, "malformed-input").await;
    problem(c.patch(&url).json(&json!({"until": "2018-01-01"})).send().await.unwrap(), 422, "invalid-value").await;
    problem(c.patch(&url).json(&json!({"until": "2031-01-01"})).send().await.unwrap(), 422, "invalid-value").await;
    problem(c.patch(&url).json(&json!({"workstations": -1})).send().await.unwrap(), 422, "invalid-value").await;
    problem(c.patch(app.url("/api/v1/communes/35238/adoptions/1")).json(&json!({"until": null})).send().await.unwrap(), 404, "not-found").await;
    let (_, after) = get(&app, &format!("/api/v1/communes/29019/adoptions/{}", a["id"])).await;
    assert!(after["until"].is_null() && after["workstations"] == 3);
    // Survives a reopen of the store.
    let (adoptions, _) = app.service.stored_records().unwrap();
    assert_eq!(adoptions[0].workstations, Some(3));
}

#[tokio::test]
async fn a_pooled_option_is_supported_beyond_the_horizon() {
    let app = spawn(true).await;
    let (_, products) = get(&app, "/api/v1/catalog/products").await;
    let eos = |p: &str, g: &str| -> Option<String> {
        let p = products["products"].as_array().unwrap().iter().find(|x| x["id"] == p).unwrap();
        p["generations"].as_array().unwrap().iter().find(|x| x["id"] == g).and_then(|x| x["end_of_support"].as_str().map(String::from))
    };
    let mut checked = 0;
    for (siren, horizon, end) in [("243500139", 24, "2028-11-29"), ("242900314", 60, "2031-11-29")] {
        let (s, pp) = get(&app, &format!("/api/v1/epcis/{siren}/pooled-purchases?horizon={horizon}")).await;
        assert_eq!(s, 200);
        for g in pp["groupements"].as_array().unwrap() {
            let o = &g["option"];
            if let (Some(p), Some(gn)) = (o["product"].as_str(), o["generation"].as_str())
                && let Some(e) = eos(p, gn)
            {
                assert!(e.as_str() > end, "{siren}: option {p} {gn} ends {e}, within the horizon");
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
    // Quimper already runs the newest Windows: nothing else can be proposed, so the search
    // widens to the whole territory and says so.
    let (_, q) = get(&app, "/api/v1/communes/29232/recommendations?category=poste-de-travail").await;
    assert_eq!((q["scope"]["step"].as_str(), q["scope"]["communes_considered"].as_u64()), (Some("territory"), Some(1201)));
    assert!(q["items"].as_array().unwrap().is_empty());
    assert_eq!(q["current"][0]["advice"], "stay");
}

#[tokio::test]
async fn a_write_is_seen_by_the_next_recommendation() {
    let app = spawn(false).await;
    let url = "/api/v1/communes/35238/recommendations?category=elections";
    let (_, before) = get(&app, url).await;
    assert!(before["items"].as_array().unwrap().is_empty());
    let (_, again) = get(&app, url).await; // served from the answer cache
    assert_eq!(again, before);
    // Cesson-Sévigné, a neighbour, records openElec: the next answer for Rennes shows it.
    let (s, _) = post(&app, "/api/v1/communes/35051/adoptions", &json!({"product": "openelec", "since": "2019-03-01"})).await;
    assert_eq!(s, 201);
    let (_, after) = get(&app, url).await;
    assert_eq!(after["items"][0]["product"], "openelec");
    // Ending it with PATCH removes it again.
    let id = app.service.stored_records().unwrap().0[0].id;
    let r = app.client.patch(app.url(&format!("/api/v1/communes/35051/adoptions/{id}"))).json(&json!({"until": "2024-01-01"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, ended) = get(&app, url).await;
    assert!(ended["items"].as_array().unwrap().is_empty(), "{ended}");
    // Other parameters are other answers.
    let (_, tuned) = get(&app, &format!("{url}&hops=1")).await;
    assert_eq!(tuned["params"]["hops"], 1);
}

#[tokio::test]
async fn a_field_that_does_not_fit_is_named_in_the_problem() {
    let app = spawn(false).await;
    let c = &app.client;
    let (s, a) = post(&app, "/api/v1/communes/29019/adoptions", &json!({"product": "openelec", "since": "2019-03-01"})).await;
    assert_eq!(s, 201);
    let feedback = app.url(&format!("/api/v1/communes/29019/adoptions/{}/feedback", a["id"]));
    let v = problem(
        c.post(&feedback).json(&json!({"reliability": 3.5, "incidents": 0, "downtime_hours": 0, "support": 4})).send().await.unwrap(),
        400,
        "malformed-input",
    )
    .await;
    assert_eq!(v["detail"], "invalid JSON body at 'reliability': invalid type: floating point `3.5`, expected a whole number");
    let v = problem(
        c.post(app.url("/api/v1/communes/29019/adoptions")).json(&json!({"product": "Open Elec", "since": "2019-03-01"})).send().await.unwrap(),
        400,
        "malformed-input",
    )
    .await;
    assert!(v["detail"].as_str().unwrap().starts_with("invalid JSON body at 'product': "), "{v}");
    let url = app.url(&format!("/api/v1/communes/29019/adoptions/{}", a["id"]));
    let v = problem(c.patch(&url).json(&json!({"since": null})).send().await.unwrap(), 400, "malformed-input").await;
    assert_eq!(v["detail"], "invalid JSON body at 'since': cannot change: record a new adoption (and end this one with until)");
    let v = problem(c.get(app.url("/api/v1/communes/35238/neighbours?hops=two")).send().await.unwrap(), 400, "malformed-input").await;
    assert!(v["detail"].as_str().unwrap().starts_with("invalid query string at 'hops': "), "{v}");
    let v = problem(c.post(app.url("/api/v1/tokens")).json(&json!({"scope": "mairie"})).send().await.unwrap(), 400, "malformed-input").await;
    assert!(v["detail"].as_str().unwrap().starts_with("invalid JSON body at 'scope': 'mairie' is not a scope"), "{v}");
    // Nothing was written by the refused requests: the one adoption, no feedback.
    let (adoptions, feedback) = app.service.stored_records().unwrap();
    assert_eq!((adoptions.len(), feedback.len()), (1, 0));
    // A whole number written as a float is the integer the OpenAPI document asks for (JSON
    // Schema's `integer` reads `4.0` as 4).
    let (s, f) = post(
        &app,
        &format!("/api/v1/communes/29019/adoptions/{}/feedback", a["id"]),
        &json!({"reliability": 4.0, "incidents": 1e0, "downtime_hours": 0, "support": 5.0}),
    )
    .await;
    assert_eq!(s, 201, "{f}");
    assert_eq!((f["reliability"].as_u64(), f["incidents"].as_u64(), f["support"].as_u64()), (Some(4), Some(1), Some(5)));
}

#[tokio::test]
async fn the_problem_codes_documented_are_those_of_the_error_table() {
    let app = spawn(false).await;
    let (_, doc) = get(&app, "/api/v1/openapi.json").await;
    let codes: Vec<&str> =
        doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let table: Vec<&str> = voisinage::error::PROBLEM_TYPES.iter().map(|t| t.code).collect();
    assert_eq!(codes, table);
    assert!(codes.contains(&"internal") && codes.contains(&"malformed-input"));
}

#[tokio::test]
async fn query_strings_are_strict_and_paths_say_what_they_expect() {
    let app = spawn(true).await;
    let c = &app.anon;
    let v = problem(c.get(app.url("/api/v1/communes/35238/recommendations?category=finances&z=9&z=1")).send().await.unwrap(), 400, "malformed-input").await;
    assert_eq!(v["detail"], "query parameter 'z' is given more than once");
    let v = problem(c.get(app.url("/api/v1/catalog/products?categroy=finances")).send().await.unwrap(), 400, "malformed-input").await;
    assert!(v["detail"].as_str().unwrap().contains("unknown field `categroy`"), "{v}");
    problem(c.get(app.url("/api/v1/epcis/243500139/pooled-purchases?horizn=5")).send().await.unwrap(), 400, "malformed-input").await;
    let v = problem(c.get(app.url("/api/v1/communes/35238/adoptions/abc")).send().await.unwrap(), 400, "malformed-input").await;
    assert!(v["detail"].as_str().unwrap().contains("'abc' is not a record id (a whole number from 1)"), "{v}");
    problem(c.get(app.url("/api/v1/communes/35238/adoptions/0")).send().await.unwrap(), 400, "malformed-input").await;
    // Without a token, a write is 401 whatever its path holds.
    problem(c.post(app.url("/api/v1/communes/3523/adoptions")).json(&json!({})).send().await.unwrap(), 401, "unauthorized").await;
    // The GeoJSON export asks at as_of too: in 2000 nobody ran anything yet.
    let map = |q: &str| {
        let url = app.url(&format!("/api/v1/epcis/243500139/map.geojson{q}"));
        async move { c.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let (now, then) = (map("").await, map("?as_of=2000-01-01").await);
    let products = |m: &Value| m["features"].as_array().unwrap().iter().filter(|f| !f["properties"]["bureautique_product"].is_null()).count();
    assert!(products(&now) > 0);
    assert_eq!(products(&then), 0);
    problem(c.get(app.url("/api/v1/epcis/243500139/map.geojson?as_of=2031-01-01")).send().await.unwrap(), 422, "invalid-value").await;
}

/// A single-valued query parameter given twice is refused (400 `malformed-input`, naming it),
/// never read as its last value: `?horizon=999&horizon=24` is not a 24-month horizon. Checked
/// with that exact input, then on every parameter of every operation of the OpenAPI document
/// that takes query parameters (a new route is covered as soon as it is documented).
#[tokio::test]
async fn a_query_parameter_given_twice_is_refused_on_every_route() {
    let app = spawn(false).await;
    let r = app.client.get(app.url("/api/v1/epcis/243500139/pooled-purchases?horizon=999&horizon=24")).send().await.unwrap();
    let v = problem(r, 400, "malformed-input").await;
    assert_eq!(v["detail"], "query parameter 'horizon' is given more than once");
    let (_, doc) = get(&app, "/api/v1/openapi.json").await;
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap().iter().filter(|(_, op)| op.is_object()) {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let concrete = path.replace("{code}", "29019").replace("{siren}", "242900314").replace("{id}", "1").replace("{feedback_id}", "1");
            for p in params.iter().filter(|p| p["in"] == "query") {
                let name = p["name"].as_str().unwrap();
                let example = match &p["example"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                // The admin token passes the callers' checks, so the query is what is refused.
                let url = app.url(&format!("{concrete}?{name}={example}&{name}={example}"));
                let r = app.client.request(method.to_uppercase().parse().unwrap(), url).send().await.unwrap();
                let v = problem(r, 400, "malformed-input").await;
                assert_eq!(v["detail"], format!("query parameter '{name}' is given more than once"), "{method} {path}");
                checked.push(format!("{method} {path} {name}"));
            }
        }
    }
    for expected in [
        "get /api/v1/communes q",
        "get /api/v1/communes limit",
        "get /api/v1/communes/{code}/neighbours hops",
        "get /api/v1/communes/{code}/recommendations category",
        "get /api/v1/communes/{code}/recommendations hops",
        "get /api/v1/epcis/{siren}/pooled-purchases horizon",
        "get /api/v1/epcis/{siren}/pooled-purchases.csv as_of",
        "get /api/v1/epcis/{siren}/map.geojson horizon",
        "get /api/v1/catalog/products category",
        "post /api/v1/epcis/{siren}/inventory dry_run",
    ] {
        assert!(checked.iter().any(|c| c == expected), "{expected} not checked: {checked:?}");
    }
}

/// The commune page: Plouguerneau (29195) with its EPCI, its border neighbours linked (Lannilis
/// 29117 among them), one section per category with what it runs and "ce que vos voisines
/// utilisent", the simulated banner; linked from the search; French error pages.
#[actix_web::test]
async fn the_commune_page_shows_what_runs_the_advice_and_the_neighbours() {
    let app = spawn(true).await;
    let r = app.client.get(app.url("/communes/29195")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = r.text().await.unwrap();
    assert!(body.contains("<h1>Plouguerneau <small>(29195)</small></h1>"));
    assert!(body.contains("href=\"/epcis/242900553\""), "its EPCI, the CC du Pays des Abers");
    assert!(body.contains("<a href=\"/communes/29117\">Lannilis</a>"), "a border neighbour, linked");
    assert!(body.contains("Données simulées"));
    let categories = voisinage::seeds::catalog().unwrap().categories.len();
    assert_eq!(body.matches("<section id=\"categorie-").count(), categories);
    assert!(body.contains("<section id=\"categorie-etat-civil\"><h3>État civil</h3>"));
    assert_eq!(body.matches("<caption>Ce que vos voisines utilisent</caption>").count(), categories);
    assert!(body.contains("<h3>État civil</h3>") && body.contains("Conseil : "));
    // Linked from the search results.
    let r = app.client.get(app.url("/recherche?q=plouguerneau")).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("<a href=\"/communes/29195\">Plouguerneau</a>"));
    // French error pages: unknown commune, malformed code.
    for (path, status) in [("/communes/99999", StatusCode::NOT_FOUND), ("/communes/abc", StatusCode::BAD_REQUEST)] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
    }
}

/// Issue 15: the search API finds communes by other codes, says how each hit matched, and is
/// paginated (`q=saint` stopped at 100 with no total, and `offset` was silently ignored).
#[tokio::test]
async fn search_says_how_it_matched_and_is_paginated() {
    let app = spawn(false).await;
    let (s, r) = get(&app, "/api/v1/communes?q=29200").await;
    assert_eq!(s, 200);
    assert_eq!(r["total"], 2);
    assert_eq!(r["communes"][0]["code"], "29019");
    assert_eq!(r["communes"][0]["matched"], json!({"kind": "postal_code", "code": "29200", "label": "code postal 29200 de Brest"}));
    assert_eq!(r["communes"][1]["matched"]["kind"], "former_code", "Ploujean's code until 1959, now Morlaix");
    let (_, r) = get(&app, "/api/v1/communes?q=Antrain").await;
    assert_eq!(r["communes"][0]["code"], "35004");
    assert_eq!(r["communes"][0]["matched"]["kind"], "delegated");
    assert_eq!(r["communes"][0]["matched"]["label"], "commune déléguée Antrain (35004) de Val-Couesnon");
    let (_, r) = get(&app, "/api/v1/communes?q=saint%20malo").await;
    assert_eq!((r["communes"][0]["code"].as_str(), r["communes"][0]["matched"]["kind"].as_str()), (Some("35288"), Some("name")));

    let (_, first) = get(&app, "/api/v1/communes?q=saint&limit=100").await;
    let total = first["total"].as_u64().unwrap();
    assert!(total > 100, "{total}");
    assert_eq!((first["count"].as_u64(), first["offset"].as_u64(), first["limit"].as_u64()), (Some(100), Some(0), Some(100)));
    let (_, rest) = get(&app, "/api/v1/communes?q=saint&limit=100&offset=100").await;
    assert_eq!(rest["count"].as_u64().unwrap(), total - 100);
    let codes = |v: &Value| v["communes"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let mut all = codes(&first);
    all.extend(codes(&rest));
    all.sort();
    all.dedup();
    assert_eq!(all.len() as u64, total, "two pages, no commune twice, none lost");
    problem(app.client.get(app.url("/api/v1/communes?q=saint&offset=-1")).send().await.unwrap(), 422, "invalid-value").await;
    problem(app.client.get(app.url("/api/v1/communes?q=saint&offset=x")).send().await.unwrap(), 400, "malformed-input").await;
}

/// Issue 15: `GET` of a postal code or a delegated commune's code names the commune meant; a
/// commune's page lists its other codes.
#[tokio::test]
async fn a_postal_code_on_get_names_the_commune_meant() {
    let app = spawn(false).await;
    let p = problem(app.client.get(app.url("/api/v1/communes/29200")).send().await.unwrap(), 404, "not-found").await;
    assert_eq!(p["detail"], "29200 is not the INSEE code of a current commune; as a postal code it serves 29019 Brest; it is a former code of 29151 Morlaix");
    let (_, c) = get(&app, "/api/v1/communes/35004").await;
    assert_eq!(c["place"], json!({"kind": "polygon"}));
    let other = c["other_codes"].as_array().unwrap();
    assert!(other.contains(&json!({"kind": "delegated", "code": "35004", "name": "Antrain"})), "{other:?}");
    assert!(other.iter().any(|o| o["kind"] == "postal_code" && o["code"] == "35560"), "{other:?}");
}

/// Issue 15: a commune's adoptions are paginated with a total.
#[tokio::test]
async fn a_communes_adoptions_are_paginated() {
    let app = spawn(true).await;
    let (s, all) = get(&app, "/api/v1/communes/35238/adoptions?limit=500").await;
    assert_eq!(s, 200);
    let total = all["total"].as_u64().unwrap();
    assert!(total >= 4, "{total}");
    assert_eq!(all["count"].as_u64(), Some(total));
    let (_, page) = get(&app, "/api/v1/communes/35238/adoptions?limit=2&offset=1").await;
    assert_eq!((page["total"].as_u64(), page["count"].as_u64(), page["offset"].as_u64()), (Some(total), Some(2), Some(1)));
    assert_eq!(page["adoptions"][0]["id"], all["adoptions"][1]["id"]);
    assert_eq!(page["adoptions"][1]["id"], all["adoptions"][2]["id"]);
    let (_, past) = get(&app, &format!("/api/v1/communes/35238/adoptions?offset={total}")).await;
    assert_eq!((past["count"].as_u64(), past["total"].as_u64()), (Some(0), Some(total)));
    problem(app.client.get(app.url("/api/v1/communes/35238/adoptions?limit=0")).send().await.unwrap(), 422, "invalid-value").await;
    problem(app.client.get(app.url("/api/v1/communes/35238/adoptions?limit=501")).send().await.unwrap(), 422, "invalid-value").await;
}

/// Found by the bad-input session: a route that takes no query parameter refuses one (the
/// inventory export ignored `as_of`, answering today's inventory as if it were that day's).
#[tokio::test]
async fn a_route_without_query_parameters_refuses_one() {
    let app = spawn(false).await;
    for path in [
        "/api/v1/epcis/243500139/inventory.xlsx?as_of=2020-01-01",
        "/api/v1/epcis/243500139/inventory-template.xlsx?foo=1",
        "/api/v1/communes/35238?foo=1",
        "/api/v1/epcis?x",
        "/api/v1/epcis/243500139?foo=1",
        "/api/v1/catalog/categories?foo=1",
        "/health?verbose=1",
    ] {
        let p = problem(app.client.get(app.url(path)).send().await.unwrap(), 400, "malformed-input").await;
        assert!(p["detail"].as_str().unwrap().contains("unknown field"), "{path}: {p}");
    }
    let (s, _) = get(&app, "/api/v1/communes/35238").await;
    assert_eq!(s, 200);
}
