//! The real binary: writes acknowledged with 201 survive a SIGKILL and a restart, and `--demo`
//! does not load the simulated history twice.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<String>>>;

/// Creates a token with the CLI (`voisinage token create`) and returns its secret.
fn token(dir: &Path, scope: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_voisinage")).args(["token", "create", "--scope", scope, "--data-dir"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn client(secret: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(reqwest::header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap());
    reqwest::Client::builder().default_headers(h).build().unwrap()
}

/// Starts `voisinage serve` on port 0 and returns the child and its base URL.
fn start(dir: &Path, extra: &[&str]) -> (Child, String) {
    let (child, base, _) = start_logged(dir, extra);
    (child, base)
}

/// Like [`start`], also returning the lines the service logs on stderr.
fn start_logged(dir: &Path, extra: &[&str]) -> (Child, String, Log) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voisinage"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let log: Log = Arc::default();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line.clone());
            if let Some(addr) = line.split("address=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(120)).expect("server did not report its address");
    (child, format!("http://{addr}"), log)
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let secret = token(dir.path(), "commune:29019");
    let c = client(&secret);
    let (mut child, base, log) = start_logged(dir.path(), &[]);
    let r = c.post(format!("{base}/api/v1/communes/29019/adoptions")).json(&json!({"product": "openelec", "since": "2019-03-01"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let a: Value = r.json().await.unwrap();
    let id = a["id"].as_u64().unwrap();
    let r = c
        .post(format!("{base}/api/v1/communes/29019/adoptions/{id}/feedback"))
        .json(&json!({"reliability": 4, "incidents": 1, "downtime_hours": 2.5, "support": 5, "comment": "confidentiel"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let feedback_id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    // The audit trail: who (token 1, its scope), what, when; never the secret nor the comment.
    // (The log is read by another thread: wait up to 10 s for both lines.)
    let audit_lines = || -> Vec<String> { log.lock().unwrap().iter().filter(|l| l.contains("voisinage::audit")).cloned().collect() };
    for _ in 0..100 {
        if audit_lines().len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let audit = audit_lines();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[0].contains("token=1") && audit[0].contains("scope=commune:29019") && audit[0].contains("action=\"adoption.create\""), "{}", audit[0]);
    assert!(audit[0].contains(&format!("record={id}")) && audit[0].contains("commune=29019") && audit[0].contains(" at=2026-"), "{}", audit[0]);
    assert!(audit[1].contains("action=\"feedback.create\"") && audit[1].contains(&format!("record={feedback_id}")), "{}", audit[1]);
    let all = log.lock().unwrap().join("\n");
    assert!(!all.contains(&secret[4..]) && !all.contains("confidentiel"));
    child.kill().unwrap(); // SIGKILL: no graceful shutdown
    child.wait().unwrap();

    let (mut child, base) = start(dir.path(), &[]);
    let list: Value = c.get(format!("{base}/api/v1/communes/29019/adoptions")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["count"], 1);
    assert_eq!(list["adoptions"][0]["product"], "openelec");
    assert_eq!(list["adoptions"][0]["feedback"][0]["downtime_hours"], 2.5);
    // New ids continue after the old ones.
    let r = c.post(format!("{base}/api/v1/communes/29019/adoptions")).json(&json!({"product": "spip", "since": "2020-01-01"})).send().await.unwrap();
    let b: Value = r.json().await.unwrap();
    assert!(b["id"].as_u64().unwrap() > id + 1);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn demo_is_loaded_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = client(&token(dir.path(), "admin"));
    let args = ["--demo", "--demo-until", "2026-11-29"];
    let (mut child, base) = start(dir.path(), &args);
    let h1: Value = c.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
    let n = h1["adoptions"].as_u64().unwrap();
    assert!(n > 20_000);
    assert_eq!(h1["demo"]["end"], "2026-11-29");
    let r = c
        .post(format!("{base}/api/v1/communes/35238/adoptions"))
        .json(&json!({"product": "spip", "since": "1990-01-01", "until": "1990-06-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, base) = start(dir.path(), &args);
    let h2: Value = c.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(h2["adoptions"].as_u64().unwrap(), n + 1);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_cli_audits_the_tokens_it_creates_and_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_voisinage")).args(args).arg("--data-dir").arg(dir.path()).env("RUST_LOG", "info").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (secret, log) = run(&["token", "create", "--scope", "epci:243500139", "--label", "DSI"]);
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("voisinage::audit")).collect();
    assert_eq!(audit.len(), 1, "{log}");
    // The operator at the command line is token 0 with every right; the new token is record 1.
    assert!(
        audit[0].contains("token=0") && audit[0].contains("scope=admin") && audit[0].contains("action=\"token.create\"") && audit[0].contains("record=1"),
        "{}",
        audit[0]
    );
    assert!(!log.contains(secret.trim()));
    let (_, log) = run(&["token", "revoke", "1"]);
    assert!(log.lines().any(|l| l.contains("voisinage::audit") && l.contains("action=\"token.revoke\"") && l.contains("record=1")), "{log}");
}

/// A clean stop (SIGTERM) writes the index snapshot and seals the store, and so does the token
/// CLI after its write: the next start reads the snapshot and does not count the records
/// again. The seal is used once: after a SIGKILL (no clean stop) the next start counts them.
#[tokio::test]
async fn a_clean_stop_seals_the_store_and_only_the_next_start_skips_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let seal = dir.path().join("store.seal");
    let adoptions = |base: String| async move {
        let h: Value = reqwest::get(format!("{base}/health")).await.unwrap().json().await.unwrap();
        h["adoptions"].as_u64().unwrap()
    };
    let has = |log: &Log, text: &str| log.lock().unwrap().iter().any(|l| l.contains(text));
    let (mut child, base, _) = start_logged(dir.path(), &["--demo", "--demo-until", "2026-11-29"]);
    let n = adoptions(base).await;
    assert!(n > 20_000);
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success(), "a clean stop");
    assert!(seal.exists(), "sealed on the clean stop");
    // The token CLI opens the store (taking the seal), writes a token, and seals it again.
    token(dir.path(), "admin");
    assert!(seal.exists(), "sealed again by the CLI");
    let (mut child, base, log) = start_logged(dir.path(), &[]);
    assert_eq!(adoptions(base).await, n);
    assert!(has(&log, "store opened, unchanged since its seal"), "{:?}", log.lock().unwrap());
    assert!(has(&log, "index read from the snapshot"));
    assert!(!seal.exists(), "a seal is used once");
    child.kill().unwrap(); // SIGKILL: no seal
    child.wait().unwrap();
    let (mut child, base, log) = start_logged(dir.path(), &[]);
    assert_eq!(adoptions(base).await, n);
    assert!(has(&log, "store opened and its records counted against the ledger"), "{:?}", log.lock().unwrap());
    child.kill().unwrap();
    child.wait().unwrap();
}
