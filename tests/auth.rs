//! Access control through the real HTTP API: who may write what (OWASP API1, broken object
//! level authorisation, tested on every write route), token lifecycle, and who sees comments.

mod common;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use common::{TestApp, spawn};

/// Asserts a problem+json answer with this status and code.
async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    if status == 401 {
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"voisinage\"");
    }
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["type"], format!("/problems/{code}"));
    v
}

const ADOPTION: &str = r#"{"product": "openelec", "since": "2019-03-01"}"#;
const FEEDBACK: &str = r#"{"reliability": 4, "incidents": 1, "downtime_hours": 2, "support": 3, "comment": "Mme X. a appelé le support"}"#;

async fn send(c: &Client, method: &str, url: String, body: Option<&str>) -> reqwest::Response {
    let mut r = c.request(method.parse().unwrap(), url);
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b.to_string());
    }
    r.send().await.unwrap()
}

/// The number of adoptions and feedback the service holds.
async fn counts(app: &TestApp) -> (u64, u64) {
    let h: Value = app.anon.get(app.url("/health")).send().await.unwrap().json().await.unwrap();
    (h["adoptions"].as_u64().unwrap(), h["feedback"].as_u64().unwrap())
}

#[tokio::test]
async fn every_write_route_refuses_missing_bad_and_foreign_tokens() {
    let app = spawn(false).await;
    // Cesson-Sévigné (35051, Rennes Métropole) has an adoption, written by the admin client.
    let r = app.client.post(app.url("/api/v1/communes/35051/adoptions")).json(&json!({"product": "openelec", "since": "2019-03-01"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let cesson_adoption = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let rennes = app.client_with(&app.token("commune:35238"));
    let brest_metropole = app.client_with(&app.token("epci:242900314"));
    let garbage = app.client_with("vsn_0000000000000000000000000000000000000000000000000000000000000000");
    let malformed = app.client_with("not-a-token");

    // Every write route, aimed at Cesson's data (directly, or through Rennes Métropole's
    // inventory) or at token management.
    let routes: Vec<(&str, String, Option<&str>)> = vec![
        ("POST", app.url("/api/v1/communes/35051/adoptions"), Some(ADOPTION)),
        ("POST", app.url(&format!("/api/v1/communes/35051/adoptions/{cesson_adoption}/feedback")), Some(FEEDBACK)),
        ("PATCH", app.url(&format!("/api/v1/communes/35051/adoptions/{cesson_adoption}")), Some(r#"{"until": "2024-06-30"}"#)),
        ("POST", app.url("/api/v1/epcis/243500139/inventory"), Some("code_insee;categorie;produit;depuis\n35051;elections;openelec;2019-03-01\n")),
        ("POST", app.url("/api/v1/tokens"), Some(r#"{"scope": "admin"}"#)),
        ("DELETE", app.url("/api/v1/tokens/1"), None),
        ("POST", app.url("/api/v1/admin/backups"), None),
        // Rennes Métropole's (Cesson's EPCI) own data: its price estimates.
        ("POST", app.url("/api/v1/epcis/243500139/price-estimates"), Some(r#"{"product": "openelec", "basis": "per_commune", "amount_eur_ht": 1000}"#)),
    ];
    let before = counts(&app).await;
    for (method, url, body) in &routes {
        problem(send(&app.anon, method, url.clone(), *body).await, 401, "unauthorized").await;
        problem(send(&garbage, method, url.clone(), *body).await, 401, "unauthorized").await;
        problem(send(&malformed, method, url.clone(), *body).await, 401, "unauthorized").await;
        // Valid tokens whose scope does not cover the object: 403 (BOLA).
        problem(send(&rennes, method, url.clone(), *body).await, 403, "forbidden").await;
        problem(send(&brest_metropole, method, url.clone(), *body).await, 403, "forbidden").await;
        // Refused before the body is read: a malformed body from a foreign token is still 403.
        if body.is_some() {
            problem(send(&rennes, method, url.clone(), Some("{not json")).await, 403, "forbidden").await;
        }
    }
    assert_eq!(counts(&app).await, before, "refused writes store nothing");
    assert!(app.service.price_estimates(&voisinage::core::domain::Siren::parse("243500139").unwrap()).unwrap().is_empty());
    let a: Value = app.anon.get(app.url(&format!("/api/v1/communes/35051/adoptions/{cesson_adoption}"))).send().await.unwrap().json().await.unwrap();
    assert!(a["until"].is_null(), "the refused PATCH changed nothing");
    // The admin token (1) was not revoked by the refused DELETE.
    assert!(app.service.stored_token(1).unwrap().unwrap().revoked.is_none());
    // A token of Rennes cannot reach Cesson's adoption through its own path either.
    problem(send(&rennes, "POST", app.url(&format!("/api/v1/communes/35238/adoptions/{cesson_adoption}/feedback")), Some(FEEDBACK)).await, 404, "not-found")
        .await;
    // Reads stay public, and a foreign token does not hinder them.
    assert_eq!(app.anon.get(app.url("/api/v1/communes/35051/adoptions")).send().await.unwrap().status(), 200);
    assert_eq!(rennes.get(app.url("/api/v1/communes/35051/recommendations?category=elections")).send().await.unwrap().status(), 200);
    // Token listing is admin-only too.
    problem(app.anon.get(app.url("/api/v1/tokens")).send().await.unwrap(), 401, "unauthorized").await;
    problem(rennes.get(app.url("/api/v1/tokens")).send().await.unwrap(), 403, "forbidden").await;
    // Another scheme is refused.
    problem(app.anon.post(app.url("/api/v1/communes/35051/adoptions")).basic_auth("a", Some("b")).body(ADOPTION).send().await.unwrap(), 401, "unauthorized")
        .await;
}

#[tokio::test]
async fn commune_and_epci_tokens_write_their_own_data() {
    let app = spawn(false).await;
    // A commune token writes its commune.
    let cesson = app.client_with(&app.token("commune:35051"));
    let r = cesson.post(app.url("/api/v1/communes/35051/adoptions")).json(&json!({"product": "openelec", "since": "2019-03-01"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let r = send(&cesson, "POST", app.url(&format!("/api/v1/communes/35051/adoptions/{id}/feedback")), Some(FEEDBACK)).await;
    assert_eq!(r.status(), 201);
    // Rennes Métropole's token writes for a member (Rennes), not for Brest.
    let rm = app.client_with(&app.token("epci:243500139"));
    let r = send(&rm, "POST", app.url("/api/v1/communes/35238/adoptions"), Some(ADOPTION)).await;
    assert_eq!(r.status(), 201);
    problem(send(&rm, "POST", app.url("/api/v1/communes/29019/adoptions"), Some(ADOPTION)).await, 403, "forbidden").await;
    // No EPCI token covers Ouessant (in no EPCI); only its own token or admin does.
    problem(send(&rm, "POST", app.url("/api/v1/communes/29155/adoptions"), Some(ADOPTION)).await, 403, "forbidden").await;
    let ouessant = app.client_with(&app.token("commune:29155"));
    assert_eq!(send(&ouessant, "POST", app.url("/api/v1/communes/29155/adoptions"), Some(ADOPTION)).await.status(), 201);
    assert_eq!(counts(&app).await, (3, 1));
}

#[tokio::test]
async fn comments_are_shown_only_to_the_commune_its_epci_and_admin() {
    let app = spawn(false).await;
    let cesson = app.client_with(&app.token("commune:35051"));
    let r = cesson.post(app.url("/api/v1/communes/35051/adoptions")).json(&json!({"product": "openelec", "since": "2019-03-01"})).send().await.unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let r = send(&cesson, "POST", app.url(&format!("/api/v1/communes/35051/adoptions/{id}/feedback")), Some(FEEDBACK)).await;
    let f: Value = r.json().await.unwrap();
    assert_eq!(f["comment"], "Mme X. a appelé le support");
    let comment_seen_by = |c: Client| {
        let url = app.url(&format!("/api/v1/communes/35051/adoptions/{id}"));
        let list = app.url("/api/v1/communes/35051/adoptions");
        async move {
            let one: Value = c.get(url).send().await.unwrap().json().await.unwrap();
            let all: Value = c.get(list).send().await.unwrap().json().await.unwrap();
            assert_eq!(one["feedback"][0]["has_comment"], true);
            assert_eq!(one["feedback"][0].get("comment"), all["adoptions"][0]["feedback"][0].get("comment"));
            one["feedback"][0].get("comment").is_some()
        }
    };
    assert!(!comment_seen_by(app.anon.clone()).await, "public");
    assert!(!comment_seen_by(app.client_with(&app.token("commune:35238"))).await, "another commune");
    assert!(!comment_seen_by(app.client_with(&app.token("epci:242900314"))).await, "another EPCI");
    assert!(comment_seen_by(cesson.clone()).await, "the commune itself");
    assert!(comment_seen_by(app.client_with(&app.token("epci:243500139"))).await, "its EPCI");
    assert!(comment_seen_by(app.client.clone()).await, "admin");
    // The page and the exports never show it.
    let page = app.anon.get(app.url("/epcis/243500139")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Mme X."));
}

#[tokio::test]
async fn tokens_are_created_once_listed_without_secret_and_revoked_at_once() {
    let app = spawn(false).await;
    let r = app.client.post(app.url("/api/v1/tokens")).json(&json!({"scope": "commune:29019", "label": "mairie de Brest"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    let secret = t["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("vsn_") && secret.len() == 68);
    assert_eq!(t["scope"], "commune:29019");
    let brest = app.client_with(&secret);
    assert_eq!(send(&brest, "POST", app.url("/api/v1/communes/29019/adoptions"), Some(ADOPTION)).await.status(), 201);
    // Listed without the secret.
    let list = app.client.get(app.url("/api/v1/tokens")).send().await.unwrap().text().await.unwrap();
    assert!(!list.contains(&secret[4..]));
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["count"], 2);
    assert_eq!(list["tokens"][1]["label"], "mairie de Brest");
    // Bad scopes and labels.
    for (body, status) in [
        (json!({"scope": "commune:99999"}), 404),
        (json!({"scope": "epci:123"}), 400),
        (json!({"scope": "root"}), 400),
        (json!({"scope": "admin", "label": "x".repeat(201)}), 422),
        (json!({"scope": "admin", "extra": 1}), 400),
    ] {
        assert_eq!(app.client.post(app.url("/api/v1/tokens")).json(&body).send().await.unwrap().status().as_u16(), status, "{body}");
    }
    // Revoked: refused at once, on reads too.
    let id = t["id"].as_u64().unwrap();
    let r = app.client.delete(app.url(&format!("/api/v1/tokens/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["revoked"].is_string());
    let v = problem(
        send(&brest, "POST", app.url("/api/v1/communes/29019/adoptions"), Some(r#"{"product": "spip", "since": "2019-03-01"}"#)).await,
        401,
        "unauthorized",
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("revoked"));
    problem(brest.get(app.url("/api/v1/communes/29019")).send().await.unwrap(), 401, "unauthorized").await;
    problem(app.client.delete(app.url("/api/v1/tokens/99")).send().await.unwrap(), 404, "not-found").await;
    // An admin cannot lock itself out by revoking the token it uses (id 1 here).
    problem(app.client.delete(app.url("/api/v1/tokens/1")).send().await.unwrap(), 409, "conflict").await;
    problem(app.client.delete(app.url("/api/v1/tokens/x")).send().await.unwrap(), 400, "malformed-input").await;
}

#[tokio::test]
async fn ambiguous_requests_are_refused() {
    let app = spawn(false).await;
    // Duplicate JSON keys: refused, not read as the last value.
    for (url, body) in [
        ("/api/v1/tokens", r#"{"scope": "admin", "scope": "commune:29019"}"#),
        ("/api/v1/communes/29019/adoptions", r#"{"product": "openelec", "product": "pastell", "since": "2018-01-01"}"#),
    ] {
        let v = problem(send(&app.client, "POST", app.url(url), Some(body)).await, 400, "malformed-input").await;
        assert!(v["detail"].as_str().unwrap().contains("duplicate key"), "{v}");
    }
    // Two Authorization headers: 401, whichever comes first.
    let (brest, rennes) = (app.token("commune:29019"), app.token("commune:35238"));
    let r = app
        .anon
        .post(app.url("/api/v1/communes/29019/adoptions"))
        .header("authorization", format!("Bearer {rennes}"))
        .header("authorization", format!("Bearer {brest}"))
        .json(&json!({"product": "openelec", "since": "2019-03-01"}))
        .send()
        .await
        .unwrap();
    problem(r, 401, "unauthorized").await;
    assert_eq!(counts(&app).await, (0, 0));
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_token() {
    let app = spawn(false).await;
    let body = json!({"product": "openelec", "since": "2019-03-01"});
    let url = app.url("/api/v1/communes/29019/adoptions");
    let first = app.client_with(&app.token("commune:29019")).post(&url).header("Idempotency-Key", "k").json(&body).send().await.unwrap();
    assert_eq!(first.status(), 201);
    // The EPCI's token reusing the key is not served the commune's result: its own write runs
    // (and meets the duplicate check).
    let other = app.client_with(&app.token("epci:242900314")).post(&url).header("Idempotency-Key", "k").json(&body).send().await.unwrap();
    assert!(other.headers().get("idempotent-replayed").is_none());
    problem(other, 409, "conflict").await;
}
