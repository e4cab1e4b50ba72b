//! Crash harness (ignored by default; `.ci/run` runs it on the release build):
//! starts the real binary, drives concurrent feedback and adoption writes, kills the process
//! with SIGKILL at a random moment, restarts it, and checks that every write that got a 201 is
//! there and that the store opens cleanly. At least 20 cycles. The report (cycles,
//! acknowledged writes, lost writes) is printed and written to `crash-report.md` in the cargo
//! target folder.
//!
//! `CRASH_CYCLES` (default 25) and `CRASH_SEED` (default 20261129) tune it.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

fn start(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voisinage"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn,voisinage=info")
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
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the service did not start: the store did not open cleanly");
    (child, format!("http://{addr}"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Every feedback id and adoption id the service lists for these communes.
async fn stored(c: &reqwest::Client, base: &str, communes: &[&str]) -> (HashSet<u64>, HashSet<u64>) {
    let (mut adoptions, mut feedback) = (HashSet::new(), HashSet::new());
    for code in communes {
        // The list is paginated (at most 500 a page): every page, until the total is read.
        let mut offset = 0;
        loop {
            let v: Value = c.get(format!("{base}/api/v1/communes/{code}/adoptions?limit=500&offset={offset}")).send().await.unwrap().json().await.unwrap();
            for a in v["adoptions"].as_array().unwrap() {
                adoptions.insert(a["id"].as_u64().unwrap());
                feedback.extend(a["feedback"].as_array().unwrap().iter().map(|f| f["id"].as_u64().unwrap()));
            }
            offset += v["count"].as_u64().unwrap();
            if v["count"].as_u64().unwrap() == 0 || offset >= v["total"].as_u64().unwrap() {
                break;
            }
        }
    }
    (adoptions, feedback)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "crash harness: run by .ci/run on the release build (cargo test --release -- --ignored)"]
async fn sigkill_loses_no_acknowledged_write() {
    let cycles: usize = std::env::var("CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20261129);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voisinage")).args(["token", "create", "--scope", "admin", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap());
    let client = reqwest::Client::builder().default_headers(headers).timeout(Duration::from_secs(10)).build().unwrap();
    let communes = ["29019", "35238", "56260", "22278"];

    // One adoption per commune to hang feedback on.
    let (mut child, base) = start(dir.path());
    let mut targets = Vec::new();
    for code in communes {
        let r =
            client.post(format!("{base}/api/v1/communes/{code}/adoptions")).json(&json!({"product": "openelec", "since": "2019-03-01"})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        targets.push((code, r.json::<Value>().await.unwrap()["id"].as_u64().unwrap()));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut acked_feedback, mut acked_adoptions) = (HashSet::new(), HashSet::new());
    acked_adoptions.extend(targets.iter().map(|t| t.1));
    let mut lost_total = 0;
    let mut attempted = 0u64;
    let started = Instant::now();
    let products = ["spip", "pastell", "idelibre", "opencimetiere", "openads"];
    for cycle in 0..cycles {
        let (mut child, base) = start(dir.path());
        // The store opened: every write acknowledged so far must be there.
        let (adoptions, feedback) = stored(&client, &base, &communes).await;
        let lost = acked_feedback.difference(&feedback).count() + acked_adoptions.difference(&adoptions).count();
        assert_eq!(lost, 0, "cycle {cycle}: acknowledged writes missing after SIGKILL");
        lost_total += lost;
        // 8 concurrent writers until the kill.
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let (c, base, stop, targets) = (client.clone(), base.clone(), stop.clone(), targets.clone());
            tasks.push(tokio::spawn(async move {
                let (mut fb, mut ad, mut tried) = (Vec::new(), Vec::new(), 0u64);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    tried += 1;
                    let (code, id) = targets[((w + i) % targets.len() as u64) as usize];
                    let adoption = w == 0 && i.is_multiple_of(5);
                    let req = if adoption {
                        // Short, dated adoptions long ago (a repeat of the same one is a 409).
                        let year = 1990 + (cycle as u64 * 7 + i) % 30;
                        let p = products[(i as usize / 5) % products.len()];
                        c.post(format!("{base}/api/v1/communes/{code}/adoptions"))
                            .json(&json!({"product": p, "since": format!("{year}-01-01"), "until": format!("{year}-01-02")}))
                    } else {
                        c.post(format!("{base}/api/v1/communes/{code}/adoptions/{id}/feedback"))
                            .json(&json!({"reliability": 1 + i % 5, "incidents": i % 3, "downtime_hours": 0.25, "support": 3, "date": "2026-01-15"}))
                    };
                    match req.send().await {
                        Ok(r) if r.status() == 201 => {
                            if let Ok(v) = r.json::<Value>().await {
                                let id = v["id"].as_u64().unwrap();
                                if adoption { ad.push(id) } else { fb.push(id) }
                            }
                        }
                        Ok(r) if r.status() == 409 => {} // the same dated adoption again
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(_) => break, // the process is gone: this write was not acknowledged
                    }
                }
                (fb, ad, tried)
            }));
        }
        let delay = rng.random_range(50..600);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let (fb, ad, tried) = t.await.unwrap();
            acked_feedback.extend(fb);
            acked_adoptions.extend(ad);
            attempted += tried;
        }
    }
    // Final check after the last kill.
    let (mut child, base) = start(dir.path());
    let (adoptions, feedback) = stored(&client, &base, &communes).await;
    let lost = acked_feedback.difference(&feedback).count() + acked_adoptions.difference(&adoptions).count();
    lost_total += lost;
    let health: Value = client.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let report = format!(
        "# Crash harness report\n\n- binary: {}\n- seed: {seed}\n- cycles (SIGKILL at a random 50-600 ms into concurrent writes): {cycles}\n- writes attempted: {attempted}\n\
- acknowledged writes (201): {} ({} feedback, {} adoptions)\n- lost acknowledged writes: {lost_total}\n- records stored at the end: {} adoptions, {} feedback \
(more than acknowledged when a write was durable but its 201 was cut off by the kill)\n- store opened cleanly after every kill: yes\n- duration: {:.1} s\n",
        env!("CARGO_BIN_EXE_voisinage"),
        acked_feedback.len() + acked_adoptions.len(),
        acked_feedback.len(),
        acked_adoptions.len(),
        health["adoptions"],
        health["feedback"],
        started.elapsed().as_secs_f64()
    );
    println!("{report}");
    let _ = std::fs::write(target_dir().join("crash-report.md"), &report);
    assert_eq!(lost_total, 0);
    assert!(cycles >= 20);
    assert!(acked_feedback.len() > 100, "too few writes to mean anything: {}", acked_feedback.len());
}
