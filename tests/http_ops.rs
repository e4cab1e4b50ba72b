//! The HTTP an operator and a browser client expect, through the real server: `Location` on
//! every 201, request ids, compression, `ETag` and 304, CORS, metrics, the limit on failed
//! authentications, security headers, and the JSON log line of the `voisinage` binary.

mod common;

use std::io::Read;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use voisinage::http::HttpConfig;

use common::{spawn, spawn_configured};

/// A header's value as text ("" when absent).
fn h<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test]
async fn every_201_has_a_location_that_reads_the_created_record() {
    let app = &spawn(false).await;
    let c = &app.client;
    let created = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 201);
        let location = h(r.headers(), "location").to_string();
        let body: Value = r.json().await.unwrap();
        (location, body)
    };
    let read = |location: String| async move {
        let r = app.client.get(app.url(&location)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{location}");
        r.json::<Value>().await.unwrap()
    };
    // An adoption.
    let r = c.post(app.url("/api/v1/communes/29019/adoptions")).json(&json!({"product": "openelec", "since": "2019-03-01"})).send().await.unwrap();
    let (location, adoption) = created(r).await;
    let id = adoption["id"].as_u64().unwrap();
    assert_eq!(location, format!("/api/v1/communes/29019/adoptions/{id}"));
    assert_eq!(read(location).await["product"], "openelec");
    // Feedback on it: its own record, comment included for the commune's token.
    let fb = json!({"reliability": 4, "incidents": 1, "downtime_hours": 2.5, "support": 5, "comment": "mise à jour sans souci", "date": "2026-03-20"});
    let (location, feedback) = created(c.post(app.url(&format!("/api/v1/communes/29019/adoptions/{id}/feedback"))).json(&fb).send().await.unwrap()).await;
    let fid = feedback["id"].as_u64().unwrap();
    assert_eq!(location, format!("/api/v1/communes/29019/adoptions/{id}/feedback/{fid}"));
    assert_eq!(read(location.clone()).await, feedback);
    // The public sees it without the comment; another adoption's path or an unknown id: 404.
    let public: Value = app.anon.get(app.url(&location)).send().await.unwrap().json().await.unwrap();
    assert_eq!((public["id"].as_u64(), public["has_comment"].as_bool(), public.get("comment")), (Some(fid), Some(true), None));
    assert_eq!(app.anon.get(app.url(&format!("/api/v1/communes/29019/adoptions/{id}/feedback/{}", fid + 1))).send().await.unwrap().status(), 404);
    assert_eq!(app.anon.get(app.url(&format!("/api/v1/communes/35238/adoptions/{id}/feedback/{fid}"))).send().await.unwrap().status(), 404);
    assert_eq!(app.anon.get(app.url(&format!("/api/v1/communes/29019/adoptions/{id}/feedback/0"))).send().await.unwrap().status(), 400);
    // A price estimate of Brest Métropole.
    let estimate = json!({"product": "openelec", "basis": "per_commune", "amount_eur_ht": 25000, "note": "devis"});
    let (location, e) = created(c.post(app.url("/api/v1/epcis/242900314/price-estimates")).json(&estimate).send().await.unwrap()).await;
    assert_eq!(location, format!("/api/v1/epcis/242900314/price-estimates/{}", e["id"]));
    assert_eq!(read(location.clone()).await, e);
    let public: Value = app.anon.get(app.url(&location)).send().await.unwrap().json().await.unwrap();
    assert_eq!((public["has_note"].as_bool(), public.get("note")), (Some(true), None));
    assert_eq!(app.anon.get(app.url("/api/v1/epcis/242900314/price-estimates/99")).send().await.unwrap().status(), 404);
    // A token: its record without the secret, for an admin only.
    let (location, t) = created(c.post(app.url("/api/v1/tokens")).json(&json!({"scope": "commune:29019", "label": "mairie"})).send().await.unwrap()).await;
    assert_eq!(location, format!("/api/v1/tokens/{}", t["id"]));
    let record = read(location.clone()).await;
    assert_eq!((record["id"].clone(), record["scope"].as_str(), record.get("token")), (t["id"].clone(), Some("commune:29019"), None));
    assert_eq!(app.anon.get(app.url(&location)).send().await.unwrap().status(), 401);
    let commune = app.client_with(&app.token("commune:29019"));
    assert_eq!(commune.get(app.url(&location)).send().await.unwrap().status(), 403);
    assert_eq!(c.get(app.url("/api/v1/tokens/999")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_request_id_is_echoed_or_made() {
    let app = spawn(false).await;
    let r = app.anon.get(app.url("/api/v1/communes/29019")).header("x-request-id", "mairie-brest-42").send().await.unwrap();
    assert_eq!(h(r.headers(), "x-request-id"), "mairie-brest-42");
    // Made when absent or not 1-200 visible ASCII characters; on errors too.
    for given in [None, Some("a b"), Some("")] {
        let mut req = app.anon.get(app.url("/api/v1/communes/99999"));
        if let Some(g) = given {
            req = req.header("x-request-id", g);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 404);
        let id = h(r.headers(), "x-request-id");
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{given:?}: {id}");
    }
    // A 401 made by the authentication middleware carries one too.
    let r = app.client_with("not-a-token").get(app.url("/api/v1/communes/29019")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(h(r.headers(), "x-request-id").len(), 32);
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out).unwrap();
    out
}

#[tokio::test]
async fn pages_and_the_geojson_map_are_compressed_as_asked() {
    let app = spawn(true).await;
    for path in ["/epcis/243500139", "/api/v1/epcis/243500139/map.geojson"] {
        let identity = app.anon.get(app.url(path)).send().await.unwrap();
        assert_eq!(identity.status(), 200);
        assert_eq!(h(identity.headers(), "content-encoding"), "", "{path}");
        let identity = identity.bytes().await.unwrap();
        assert!(identity.len() > 20_000, "{path}: {} bytes", identity.len());
        for (asked, encoding) in [("gzip", "gzip"), ("br", "br"), ("gzip, br", "br")] {
            let r = app.anon.get(app.url(path)).header("accept-encoding", asked).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(h(r.headers(), "content-encoding"), encoding, "{path} {asked}");
            assert!(h(r.headers(), "vary").to_lowercase().contains("accept-encoding"));
            let body = r.bytes().await.unwrap();
            // actix-web compresses at a fast level (gzip 1, brotli 3): less than half the size.
            eprintln!("{path} {asked}: {} of {} bytes", body.len(), identity.len());
            assert!(body.len() < identity.len() / 2, "{path} {asked}: {} of {} bytes", body.len(), identity.len());
            let plain = if encoding == "gzip" { gunzip(&body) } else { unbrotli(&body) };
            assert_eq!(plain, identity, "{path} {asked}");
        }
    }
    // Problems stay problems, and a download keeps its name, compressed.
    let r = app.anon.get(app.url("/api/v1/communes/99999")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!((r.status().as_u16(), h(r.headers(), "content-type")), (404, "application/problem+json"));
    let problem: Value = serde_json::from_slice(&gunzip(&r.bytes().await.unwrap())).unwrap();
    assert_eq!(problem["code"], "not-found");
    let r = app.anon.get(app.url("/api/v1/epcis/243500139/pooled-purchases.csv")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(h(r.headers(), "content-disposition").starts_with("attachment; filename=\""));
    let csv = String::from_utf8(gunzip(&r.bytes().await.unwrap())).unwrap();
    assert!(csv.lines().count() > 1, "{csv}");
}

#[tokio::test]
async fn reads_carry_an_etag_and_answer_304_until_a_write_changes_them() {
    let app = spawn(false).await;
    let url = app.url("/api/v1/communes/29019/adoptions");
    let r = app.anon.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = h(r.headers(), "etag").to_string();
    assert!(etag.starts_with("W/\"") && etag.len() == 36, "{etag}");
    assert_eq!(h(r.headers(), "cache-control"), "no-cache");
    // The same answer has the same tag; HEAD too.
    assert_eq!(h(app.anon.get(&url).send().await.unwrap().headers(), "etag"), etag);
    assert_eq!(h(app.anon.head(&url).send().await.unwrap().headers(), "etag"), etag);
    // If-None-Match with the tag, in a list, strong, or `*`: 304, the tag and no body.
    for inm in [etag.clone(), format!("W/\"0123\", {etag}"), etag.trim_start_matches("W/").to_string(), "*".to_string()] {
        let r = app.anon.get(&url).header("if-none-match", &inm).send().await.unwrap();
        assert_eq!(r.status(), 304, "{inm}");
        assert_eq!((h(r.headers(), "etag"), h(r.headers(), "cache-control")), (etag.as_str(), "no-cache"));
        assert!(r.bytes().await.unwrap().is_empty());
    }
    assert_eq!(app.anon.get(&url).header("if-none-match", "W/\"0123\"").send().await.unwrap().status(), 200);
    // The commune's page of the API too, compressed or not.
    let commune = app.url("/api/v1/communes/29019");
    let tag = h(app.anon.get(&commune).send().await.unwrap().headers(), "etag").to_string();
    let r = app.anon.get(&commune).header("if-none-match", &tag).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(r.status(), 304);
    // A write changes the answer: 200 with a new tag.
    let w = app.client.post(&url).json(&json!({"product": "openelec", "since": "2019-03-01"})).send().await.unwrap();
    assert_eq!(w.status(), 201);
    assert_eq!(h(w.headers(), "etag"), "", "no ETag on a write");
    let r = app.anon.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let new = h(r.headers(), "etag").to_string();
    assert!(new.starts_with("W/\"") && new != etag);
    assert_eq!(r.json::<Value>().await.unwrap()["total"], 1);
    // A reader with a token: private; errors and secrets get no tag.
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(h(r.headers(), "cache-control"), "private, no-cache");
    let r = app.anon.get(app.url("/api/v1/communes/99999")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), h(r.headers(), "etag")), (404, ""));
    let r = app.client.post(app.url("/api/v1/tokens")).json(&json!({"scope": "admin"})).send().await.unwrap();
    assert_eq!((h(r.headers(), "cache-control"), h(r.headers(), "etag")), ("no-store", ""));
}

#[tokio::test]
async fn cors_answers_the_configured_origins_only() {
    let origin = "https://mairie.example.fr";
    let config = HttpConfig { cors_origins: vec![HttpConfig::origin(origin).unwrap()], ..HttpConfig::default() };
    let app = spawn_configured(tempfile::tempdir().unwrap(), false, config).await;
    let url = app.url("/api/v1/communes/29019/adoptions");
    let preflight = |from: &'static str| {
        app.anon
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", from)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type, idempotency-key")
            .send()
    };
    let r = preflight(origin).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h(r.headers(), "access-control-allow-origin"), origin);
    let methods = h(r.headers(), "access-control-allow-methods").to_string();
    for m in ["GET", "HEAD", "POST", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = h(r.headers(), "access-control-allow-headers").to_lowercase();
    for name in ["authorization", "content-type", "idempotency-key", "if-none-match", "x-request-id"] {
        assert!(headers.contains(name), "{headers}");
    }
    // An unlisted origin gets no Access-Control-Allow-Origin (the browser refuses the answer).
    let r = preflight("https://evil.example.com").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_eq!((r.status().as_u16(), h(r.headers(), "content-type")), (400, "application/problem+json"));
    let r = app.anon.get(&url).header("origin", "https://evil.example.com").send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // An actual request from the origin: allowed, with the headers a client reads exposed.
    let r = app.anon.get(&url).header("origin", origin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h(r.headers(), "access-control-allow-origin"), origin);
    let exposed = h(r.headers(), "access-control-expose-headers").to_lowercase();
    for name in ["etag", "location", "x-request-id", "retry-after", "idempotent-replayed"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    // A 401 is readable by the origin's script too.
    let r = app.client_with("not-a-token").get(&url).header("origin", origin).send().await.unwrap();
    assert_eq!((r.status().as_u16(), h(r.headers(), "access-control-allow-origin")), (401, origin));

    // None configured (the default): no CORS header at all.
    let plain = spawn(false).await;
    let r = plain
        .anon
        .request(reqwest::Method::OPTIONS, plain.url("/api/v1/communes/29019/adoptions"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().keys().all(|k| !k.as_str().starts_with("access-control-")), "{:?}", r.headers());
    let r = plain.anon.get(plain.url("/api/v1/communes/29019")).header("origin", origin).send().await.unwrap();
    assert!(r.headers().keys().all(|k| !k.as_str().starts_with("access-control-")));
    // Origins are checked when configured.
    assert_eq!(HttpConfig::origin("HTTPS://Mairie.example.fr:8443").unwrap(), "https://mairie.example.fr:8443");
    for bad in ["mairie.example.fr", "https://mairie.example.fr/", "https://a.fr/path", "*", "ftp://a.fr", "https://"] {
        assert!(HttpConfig::origin(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn metrics_give_the_build_the_process_and_buckets_up_to_the_deadline() {
    let app = spawn(false).await;
    assert_eq!(app.anon.get(app.url("/api/v1/communes/29019")).send().await.unwrap().status(), 200);
    let text = app.anon.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(&format!("voisinage_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))), "{text}");
    let value = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name} missing"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    for name in ["process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"] {
        assert!(value(name) > 0.0, "{name}");
    }
    // Whole seconds: 0 for a test server that has hardly run.
    assert!(value("process_cpu_seconds_total") >= 0.0);
    // Started within the last day (the test's own process).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - 86_400.0..=now + 1.0).contains(&value("process_start_time_seconds")));
    for le in ["5", "10", "30"] {
        let bucket = format!("voisinage_http_request_duration_seconds_bucket{{method=\"GET\",route=\"/api/v1/communes/{{code}}\",le=\"{le}\"}} 1");
        assert!(text.contains(&bucket), "{bucket}");
    }
}

#[tokio::test]
async fn failed_authentications_are_limited_per_address() {
    let app = spawn(false).await;
    let url = app.url("/api/v1/communes/29019/adoptions");
    let guess = app.client_with(&format!("vsn_{}", "0".repeat(64)));
    for i in 0..10 {
        let r = guess.post(&url).json(&json!({"product": "openelec", "since": "2019-03-01"})).send().await.unwrap();
        assert_eq!(r.status(), 401, "guess {i}");
    }
    // The 11th guess is refused, whatever the route or method.
    let r = guess.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = h(r.headers(), "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(h(r.headers(), "content-type"), "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!((p["code"].as_str(), p["status"].as_u64()), (Some("too-many-requests"), Some(429)));
    // Even the right token is refused before it is checked, while anonymous reads still work.
    let r = app.client.post(&url).json(&json!({"product": "openelec", "since": "2019-03-01"})).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(app.anon.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(app.service.stored_records().unwrap().0.len(), 0, "nothing was written");
}

#[tokio::test]
async fn successful_and_malformed_authentications_are_not_counted() {
    let app = spawn(false).await;
    let url = app.url("/api/v1/communes/29019/adoptions");
    let malformed = app.client_with("not-a-token");
    for _ in 0..15 {
        assert_eq!(malformed.get(&url).send().await.unwrap().status(), 401);
        assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_no_inline_script_or_style() {
    let app = spawn(true).await;
    for path in ["/", "/epcis/243500139", "/communes/35238", "/connexion", "/api/v1/communes/29019"] {
        let r = app.anon.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let csp = h(r.headers(), "content-security-policy").to_string();
        assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h(r.headers(), "x-content-type-options"), "nosniff");
        assert_eq!(h(r.headers(), "referrer-policy"), "strict-origin-when-cross-origin");
        assert_eq!(h(r.headers(), "x-frame-options"), "DENY");
        if path.starts_with("/api") {
            continue;
        }
        let html = r.text().await.unwrap();
        assert!(html.contains("<link rel=\"stylesheet\" href=\"/static/voisinage.css\">"), "{path}");
        for inline in ["<script", "<style", "style=\"", " onclick=", " onsubmit=", "javascript:"] {
            assert!(!html.contains(inline), "{path}: {inline}");
        }
    }
    let r = app.anon.get(app.url("/static/voisinage.css")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), h(r.headers(), "content-type")), (200, "text/css; charset=utf-8"));
    assert!(r.text().await.unwrap().contains("svg.carte{display:block;max-width:100%;height:auto}"));
}

/// `voisinage --log-format json serve`: one JSON object a line, the request's line with its
/// request id, status, latency as a number and route pattern; the audit line of a write, logged
/// by the service on the blocking pool, carries the request id too.
#[test]
fn the_binary_logs_requests_as_json_lines() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_voisinage");
    // An admin token, made while the store is not yet served.
    let made = std::process::Command::new(bin).args(["token", "create", "--scope", "admin", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let secret = String::from_utf8(made.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(bin)
        .args(["--log-format", "json", "serve", "--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines: Vec<Value> = Vec::new();
    // Reads JSON lines until one satisfies `stop` (every line must be JSON).
    let mut until = |stop: &dyn Fn(&Value) -> bool| -> Value {
        loop {
            let mut line = String::new();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "the log ended: {lines:?}");
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            lines.push(v.clone());
            if stop(&v) {
                return v;
            }
        }
    };
    // The "listening" line comes once the embedded data is loaded and the port bound.
    until(&|v| v["message"] == "voisinage listening");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let status = rt.block_on(async {
        let r = reqwest::Client::new().get(format!("{base}/api/v1/communes/29019")).header("x-request-id", "essai-json-1").send().await.unwrap();
        r.status().as_u16()
    });
    assert_eq!(status, 200);
    let request = until(&|v| v["message"] == "request");
    assert_eq!(request["span"]["request_id"], "essai-json-1", "{request}");
    assert_eq!(request["level"], "INFO");
    assert_eq!((request["status"].as_u64(), request["method"].as_str()), (Some(200), Some("GET")));
    assert_eq!(request["route"], "/api/v1/communes/{code}");
    assert_eq!(request["path"], "/api/v1/communes/29019");
    assert_eq!(request["client"], "127.0.0.1");
    assert!(request["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{request}");
    assert!(request["bytes"].as_u64().is_some_and(|b| b > 100), "{request}");
    // A write: its audit line comes from the blocking pool, in the request's span.
    let status = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{base}/api/v1/communes/29019/adoptions"))
            .bearer_auth(&secret)
            .header("x-request-id", "essai-json-2")
            .json(&json!({"product": "openelec", "since": "2019-03-01"}))
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    });
    assert_eq!(status, 201);
    let audit = until(&|v| v["target"] == "voisinage::audit");
    assert_eq!((audit["action"].as_str(), audit["span"]["request_id"].as_str()), (Some("adoption.create"), Some("essai-json-2")), "{audit}");
    let request = until(&|v| v["message"] == "request");
    assert_eq!((request["status"].as_u64(), request["span"]["request_id"].as_str()), (Some(201), Some("essai-json-2")));
    child.kill().unwrap();
    child.wait().unwrap();
}
