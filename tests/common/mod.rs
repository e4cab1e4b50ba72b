//! Starts the real server on port 0 with a temporary store, as a client would meet it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use voisinage::core::simulate::{SimParams, simulate};
use voisinage::http::{AppState, serve};
use voisinage::seeds;
use voisinage::store::Store;

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
    pub state: Arc<AppState>,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A new token of this scope (`commune:35238`, `epci:...`, `admin`); returns its secret.
    pub fn token(&self, scope: &str) -> String {
        let scope = voisinage::core::auth::Scope::parse(scope).unwrap();
        self.state.store.create_token(scope, "test", chrono::Utc::now()).unwrap().1
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
    let state = Arc::new(state(dir.path(), demo));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve(state.clone(), listener).unwrap();
    tokio::spawn(server);
    let mut app = TestApp { base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new(), anon: reqwest::Client::new(), state, dir };
    let admin = app.token("admin");
    app.client = app.client_with(&admin);
    app
}

pub async fn spawn(demo: bool) -> TestApp {
    spawn_in(tempfile::tempdir().unwrap(), demo).await
}

pub fn state(dir: &Path, demo: bool) -> AppState {
    let (t, c) = (seeds::territory().unwrap(), seeds::catalog().unwrap());
    let store = Store::open(dir).unwrap();
    if demo && store.is_empty() {
        let h = simulate(&t, &c, &SimParams::new(2026, today()));
        store.load_demo(&h, 2026, today()).unwrap();
    }
    AppState::new(t, c, store, seeds::shapes().unwrap(), Some(today())).unwrap()
}
