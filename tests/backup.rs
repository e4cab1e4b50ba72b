//! Backups and restore (`voisinage::backup`): a backup taken through the admin API while
//! writers run holds every write acknowledged before it was asked for, and restores with the
//! same ids, fields, tokens and idempotency keys; a demo store backed up from its folder
//! restores with the same counts; damaged files and occupied folders are refused, leaving no
//! store behind; only an admin token may take a backup.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::NaiveDate;
use serde_json::{Value, json};
use voisinage::core::auth::Principal;

fn voisinage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voisinage")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `voisinage restore --from FILE --data-dir DIR`.
fn restore(file: &Path, dir: &Path) -> Output {
    voisinage(&["restore", "--from", path(file), "--data-dir", path(dir)])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut s).unwrap();
    s
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// The header line of a backup file.
fn header(bytes: &[u8]) -> Value {
    serde_json::from_str(gunzip(bytes).lines().next().unwrap()).unwrap()
}

/// A write acknowledged by the service: what, its id, and when its 201 arrived.
#[derive(Clone, Debug)]
struct Ack {
    at: Instant,
    feedback: bool,
    id: u64,
}

/// Posts adoptions (every one with an `Idempotency-Key`, feedback on every third) to
/// `commune` until `stop` is set and `after` more writes were acknowledged since `done`.
async fn writer(base: String, client: reqwest::Client, commune: &'static str, w: usize, acks: Arc<Mutex<Vec<Ack>>>, stop: Arc<AtomicBool>) -> usize {
    let start = NaiveDate::from_ymd_opt(2001, 1, 1).unwrap();
    let mut after_stop = 0;
    for k in 0.. {
        if stop.load(Ordering::SeqCst) {
            after_stop += 1;
            if after_stop > 2 {
                return k;
            }
        }
        // One day in service each, two days apart: never a duplicate of another.
        let since = start + chrono::Days::new(2 * k as u64);
        let body = json!({"product": "openelec", "since": since, "until": since + chrono::Days::new(1), "workstations": w * 1000 + k});
        let r =
            client.post(format!("{base}/api/v1/communes/{commune}/adoptions")).header("Idempotency-Key", format!("w{w}-{k}")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let at = Instant::now();
        let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
        acks.lock().unwrap().push(Ack { at, feedback: false, id });
        if k % 3 == 0 {
            let r = client
                .post(format!("{base}/api/v1/communes/{commune}/adoptions/{id}/feedback"))
                .json(&json!({"date": since, "reliability": 4, "incidents": k % 7, "downtime_hours": 1.5, "support": 3, "comment": format!("rapport {k}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let at = Instant::now();
            let fid = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
            acks.lock().unwrap().push(Ack { at, feedback: true, id: fid });
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_writers_run_holds_every_write_acknowledged_before_it() {
    let app = common::spawn(false).await;
    let admin = app.token("admin");
    let client = app.client_with(&admin);
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let communes = ["29019", "35238", "56260", "22278"];
    let writers: Vec<_> =
        communes.iter().enumerate().map(|(w, c)| tokio::spawn(writer(app.base.clone(), client.clone(), c, w, acks.clone(), stop.clone()))).collect();
    while acks.lock().unwrap().len() < 40 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The backup, while the writers go on.
    let sent = Instant::now();
    let r = client.post(app.url("/api/v1/admin/backups")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    let disposition = r.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(regex::Regex::new(r#"^attachment; filename="voisinage-\d{8}-\d{6}\.jsonl\.gz"$"#).unwrap().is_match(&disposition), "{disposition}");
    let file = r.bytes().await.unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    let before: Vec<&Ack> = acks.iter().filter(|a| a.at < sent).collect();
    assert!(before.len() >= 40);
    let next_id = header(&file)["next_id"].as_u64().unwrap();
    let (original_adoptions, original_feedback) = app.service.stored_records().unwrap();
    assert!(original_adoptions.iter().any(|a| a.id >= next_id), "the writers went on past the backup");

    // Restored into an empty folder, then served.
    let saved = app.dir.path().join("backup.jsonl.gz");
    std::fs::write(&saved, &file).unwrap();
    let target = tempfile::tempdir().unwrap();
    let out = restore(&saved, target.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("adoptions"), "{}", String::from_utf8_lossy(&out.stdout));
    let restored = common::spawn_in(target, false).await;
    let (adoptions, feedback) = restored.service.stored_records().unwrap();
    for ack in &before {
        if ack.feedback {
            let f = feedback.iter().find(|f| f.id == ack.id).unwrap_or_else(|| panic!("feedback {} acknowledged before the backup is missing", ack.id));
            assert_eq!(Some(f), original_feedback.iter().find(|o| o.id == ack.id));
        } else {
            let a = adoptions.iter().find(|a| a.id == ack.id).unwrap_or_else(|| panic!("adoption {} acknowledged before the backup is missing", ack.id));
            assert_eq!(Some(a), original_adoptions.iter().find(|o| o.id == ack.id));
        }
    }
    assert!(adoptions.iter().map(|a| a.id).chain(feedback.iter().map(|f| f.id)).all(|id| id < next_id), "nothing from after the backup started");
    // Every restored record is the original's.
    for a in &adoptions {
        assert_eq!(Some(a), original_adoptions.iter().find(|o| o.id == a.id));
    }
    // The tokens, as hashes: the original admin secret works on the restored service, with its
    // id and scope; its idempotency keys replay; new ids go on from the backup's.
    let p = restored.service.authenticate(&admin).unwrap();
    assert_eq!(p, app.service.authenticate(&admin).unwrap());
    let c = restored.client_with(&admin);
    let first = before.iter().find(|a| !a.feedback).unwrap();
    let original = original_adoptions.iter().find(|a| a.id == first.id).unwrap();
    let w = communes.iter().position(|c| *c == original.commune.to_string()).unwrap();
    let k = original.workstations.unwrap() as usize - w * 1000;
    let since = NaiveDate::from_ymd_opt(2001, 1, 1).unwrap() + chrono::Days::new(2 * k as u64);
    let body = json!({"product": "openelec", "since": since, "until": since + chrono::Days::new(1), "workstations": w * 1000 + k});
    let r = c
        .post(restored.url(&format!("/api/v1/communes/{}/adoptions", original.commune)))
        .header("Idempotency-Key", format!("w{w}-{k}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(r.json::<Value>().await.unwrap()["id"].as_u64(), Some(first.id));
    let r = c.post(restored.url("/api/v1/communes/29232/adoptions")).json(&json!({"product": "openelec", "since": "1999-03-01"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["id"].as_u64(), Some(next_id));
}

#[test]
fn a_demo_store_backed_up_from_its_folder_restores_with_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("demo.jsonl.gz");
    let (stats, demo, token) = {
        let s = common::open(&data, true);
        let (t, _) = s.create_token(&Principal::OPERATOR, voisinage::core::auth::TokenScope::Admin, "ops").unwrap();
        // While the store is in use, the folder cannot be backed up directly: the message says
        // what to do instead.
        let out = voisinage(&["backup", "--data-dir", path(&data), "--to", path(&file)]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("--url"), "{}", stderr(&out));
        assert!(!file.exists() && !dir.path().join("demo.jsonl.gz.partial").exists());
        (s.stats(), s.demo_info().cloned().unwrap(), t)
    };
    // Stopped: sled releases its lock a moment after the drop.
    let mut out = voisinage(&["backup", "--data-dir", path(&data), "--to", path(&file)]);
    for _ in 0..400 {
        if out.status.success() || !stderr(&out).contains("lock") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
        out = voisinage(&["backup", "--data-dir", path(&data), "--to", path(&file)]);
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.contains(&format!("{} adoptions, {} feedback, 1 tokens", stats.adoptions, stats.feedback)), "{printed}");
    assert!(!dir.path().join("demo.jsonl.gz.partial").exists());
    let restored_dir = dir.path().join("restored");
    let out = restore(&file, &restored_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!dir.path().read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".partial")));
    let restored = common::open(&restored_dir, false);
    let s = restored.stats();
    assert_eq!((s.adoptions, s.feedback), (stats.adoptions, stats.feedback));
    assert!(s.adoptions > 1000);
    assert_eq!(restored.demo_info(), Some(&demo));
    assert!(restored.is_simulated());
    assert_eq!(restored.stored_token(token.id).unwrap(), Some(token));
}

/// A small store's backup file (a few adoptions, feedback and tokens), over 500 bytes compressed.
fn small_backup(dir: &Path) -> Vec<u8> {
    let s = common::open(&dir.join("data"), false);
    for code in ["29019", "35238", "56260", "22278", "29232", "56121"] {
        s.create_token(&Principal::OPERATOR, voisinage::core::auth::TokenScope::parse(&format!("commune:{code}")).unwrap(), &format!("mairie {code}")).unwrap();
        let draft = voisinage::service::AdoptionDraft {
            product: voisinage::core::domain::Slug::parse("openelec").unwrap(),
            generation: None,
            category: None,
            since: NaiveDate::from_ymd_opt(2019, 3, 1).unwrap(),
            until: None,
            contract_end: None,
            workstations: Some(4),
        };
        let a = s.record_adoption(&Principal::OPERATOR, &voisinage::core::domain::InseeCode::parse(code).unwrap(), draft, None).unwrap().record;
        let fb = voisinage::service::FeedbackDraft {
            date: None,
            reliability: 5,
            incidents: 0,
            downtime_hours: 0.0,
            support: 4,
            comment: Some(format!("retour de la mairie {code}, rien à signaler")),
        };
        s.record_feedback(&Principal::OPERATOR, &a.commune, a.id, fb, None).unwrap();
    }
    let mut out = Vec::new();
    s.backup(&Principal::OPERATOR, chrono::Utc::now(), &mut out).unwrap();
    assert!(out.len() > 500, "{} bytes", out.len());
    out
}

#[test]
fn damaged_backups_are_refused_and_leave_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_backup(dir.path());
    let text = gunzip(&good);
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        ("truncated", good[..good.len() - 100].to_vec(), vec!["truncated"]),
        // Where a flipped bit lands decides which check sees it first.
        ("flipped", flipped, vec!["compressed data is corrupt", "does not parse", "checksum mismatch", "truncated"]),
        ("edited", gzip(&text.replacen("mairie 29019", "mairie 29018", 1)), vec!["checksum mismatch"]),
        ("newer", gzip(&text.replacen("\"version\":1", "\"version\":99", 1)), vec!["format version 99 is newer than this program reads"]),
        ("no footer", gzip(&text[..text.trim_end().rfind('\n').unwrap() + 1]), vec!["without its footer"]),
    ];
    for (name, bytes, faults) in cases {
        let file = dir.path().join(format!("{name}.jsonl.gz"));
        std::fs::write(&file, &bytes).unwrap();
        let target = dir.path().join(format!("new-{}", name.replace(' ', "-")));
        let out = restore(&file, &target);
        let err = stderr(&out);
        assert!(!out.status.success(), "{name}");
        assert!(err.contains("backup refused") && faults.iter().any(|f| err.contains(f)), "{name}: {err}");
        assert!(!target.exists(), "{name}: no store is left");
    }
    assert!(!dir.path().read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".partial")), "no partial folder is left");
    // The good file restores.
    let file = dir.path().join("good.jsonl.gz");
    std::fs::write(&file, &good).unwrap();
    let out = restore(&file, &dir.path().join("new-good"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(common::open(&dir.path().join("new-good"), false).stats().feedback, 6);
}

#[test]
fn a_restore_never_writes_into_a_folder_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.jsonl.gz");
    std::fs::write(&file, small_backup(dir.path())).unwrap();
    // Over the store it came from, or over any file.
    let out = restore(&file, &dir.path().join("data"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "à garder").unwrap();
    let out = restore(&file, &other);
    assert!(!out.status.success() && stderr(&out).contains("is not empty"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(other.join("notes.txt")).unwrap(), "à garder");
    assert_eq!(other.read_dir().unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_token_takes_a_backup_and_the_cli_fetches_it() {
    let app = common::spawn(false).await;
    let url = app.url("/api/v1/admin/backups");
    let problem = |r: reqwest::Response, status: u16, code: &'static str| async move {
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], code);
    };
    problem(app.anon.post(&url).send().await.unwrap(), 401, "unauthorized").await;
    let commune = app.client_with(&app.token("commune:29019"));
    problem(commune.post(&url).send().await.unwrap(), 403, "forbidden").await;
    let epci = app.client_with(&app.token("epci:242900314"));
    problem(epci.post(&url).send().await.unwrap(), 403, "forbidden").await;
    problem(app.client.post(format!("{url}?full=1")).send().await.unwrap(), 400, "malformed-input").await;
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    problem(r, 405, "method-not-allowed").await;

    // `voisinage backup --url`, with the token in a file, then with a commune's token.
    let admin = app.token("admin");
    let token_file = app.dir.path().join("token");
    std::fs::write(&token_file, format!("{admin}\n")).unwrap();
    let to = app.dir.path().join("out.jsonl.gz");
    let (base, tf, dest) = (app.base.clone(), token_file.clone(), to.clone());
    let out = tokio::task::spawn_blocking(move || voisinage(&["backup", "--url", &base, "--token-file", path(&tf), "--to", path(&dest)])).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.contains("0 adoptions, 0 feedback, 4 tokens"), "{printed}");
    let h = header(&std::fs::read(&to).unwrap());
    assert_eq!((h["format"].as_str(), h["version"].as_u64(), h["next_token_id"].as_u64()), (Some("voisinage-backup"), Some(1), Some(5)));
    std::fs::write(&token_file, app.token("commune:35238")).unwrap();
    let refused = app.dir.path().join("refused.jsonl.gz");
    let (base, tf, dest) = (app.base.clone(), token_file.clone(), refused.clone());
    let out = tokio::task::spawn_blocking(move || voisinage(&["backup", "--url", &base, "--token-file", path(&tf), "--to", path(&dest)])).await.unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("403") && stderr(&out).contains("needs an admin token"), "{}", stderr(&out));
    assert!(!refused.exists() && !app.dir.path().join("refused.jsonl.gz.partial").exists());
}
