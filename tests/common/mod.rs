//! Starts the real server on port 0 with a temporary store, as a client would meet it. The
//! service is built by the same `Service::open` as `voisinage serve`.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use voisinage::core::auth::{Principal, TokenScope};
use voisinage::http::{HttpConfig, serve};
use voisinage::service::{Config, DemoRequest, Service};

/// The reference date of every test server.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
}

pub struct TestApp {
    pub base: String,
    /// A client sending an `admin` bearer token with every request.
    pub client: reqwest::Client,
    /// A client without a token (the public).
    pub anon: reqwest::Client,
    pub service: Arc<Service>,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A new token of this scope (`commune:35238`, `epci:...`, `admin`); returns its secret.
    pub fn token(&self, scope: &str) -> String {
        let scope = TokenScope::parse(scope).unwrap();
        self.service.create_token(&Principal::OPERATOR, scope, "test").unwrap().1
    }

    /// A client sending this token with every request.
    pub fn client_with(&self, secret: &str) -> reqwest::Client {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap());
        reqwest::Client::builder().default_headers(h).build().unwrap()
    }
}

/// Starts a server on a store in `dir`; with `demo`, an empty store first gets the simulated
/// history (seed 2026, ending on `today()`).
pub async fn spawn_in(dir: tempfile::TempDir, demo: bool) -> TestApp {
    spawn_configured(dir, demo, HttpConfig::default()).await
}

/// [`spawn_in`] with this HTTP configuration (CORS origins, trusted proxies).
pub async fn spawn_configured(dir: tempfile::TempDir, demo: bool, config: HttpConfig) -> TestApp {
    let service = Arc::new(open(dir.path(), demo));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve(service.clone(), listener, config).unwrap();
    tokio::spawn(server);
    let mut app = TestApp { base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new(), anon: reqwest::Client::new(), service, dir };
    let admin = app.token("admin");
    app.client = app.client_with(&admin);
    app
}

pub async fn spawn(demo: bool) -> TestApp {
    spawn_in(tempfile::tempdir().unwrap(), demo).await
}

/// The service over the store in `dir`, on the embedded Brittany data, dated `today()`.
pub fn open(dir: &Path, demo: bool) -> Service {
    let demo = demo.then_some(DemoRequest { seed: 2026, until: today() });
    Service::open(&Config { demo, today: Some(today()), ..Config::new(dir) }).unwrap()
}
