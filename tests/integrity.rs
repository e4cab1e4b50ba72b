//! Integrity you can check: a store damaged on disk is refused at start with what was found and
//! what to do (never served with silently fewer records), `voisinage check` reports it without
//! changing a byte, `voisinage accept-loss` lets it go on without reusing lost ids, and sled's
//! interrupted or emptied snapshots are set aside and recovered from its log.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::NaiveDate;
use voisinage::Error;
use voisinage::core::auth::Principal;
use voisinage::core::domain::{InseeCode, Slug};
use voisinage::service::{AdoptionDraft, Config, Service};

const COMMUNE: &str = "29019";

fn config(dir: &Path) -> Config {
    Config { today: Some(NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()), ..Config::new(dir) }
}

/// Opens the service; sled releases its file lock a moment after the last handle of a store
/// dropped in this process, so a lock error is retried.
fn open(dir: &Path) -> Result<Service, Error> {
    for _ in 0..400 {
        match Service::open(&config(dir)) {
            Err(e) if e.chain().contains("could not acquire lock") => std::thread::sleep(std::time::Duration::from_millis(25)),
            r => return r,
        }
    }
    panic!("the store lock was never released")
}

/// Waits until no handle of this process holds the store's lock (before running the binary).
fn wait_unlocked(dir: &Path) {
    for _ in 0..400 {
        let f = std::fs::File::open(dir.join("store/db")).unwrap();
        if f.try_lock().is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("the store lock was never released")
}

/// Records `n` adoptions of openelec in Brest, one a year from `first_year` (one day each, so
/// that none is a duplicate of another), durably; returns their ids.
fn adopt(s: &Service, first_year: i32, n: i32) -> Vec<u64> {
    (0..n)
        .map(|k| {
            let since = NaiveDate::from_ymd_opt(first_year + k, 1, 1).unwrap();
            let draft = AdoptionDraft {
                product: Slug::parse("openelec").unwrap(),
                generation: None,
                category: None,
                since,
                until: Some(since.succ_opt().unwrap()),
                contract_end: None,
                workstations: None,
            };
            s.record_adoption(&Principal::OPERATOR, &InseeCode::parse(COMMUNE).unwrap(), draft, None).unwrap().record.id
        })
        .collect()
}

fn held(s: &Service) -> Vec<u64> {
    let mut ids: Vec<u64> = s.adoptions_of(None, &InseeCode::parse(COMMUNE).unwrap()).unwrap().iter().map(|a| a.adoption.id).collect();
    ids.sort();
    ids
}

/// A store in a temporary folder holding 40 acknowledged adoptions (ids 1 to 40), closed and
/// opened once more (so that sled has written a snapshot), then closed.
fn store_with_40() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path()).unwrap();
        assert_eq!(adopt(&s, 1986, 40), (1..=40).collect::<Vec<u64>>());
    }
    assert_eq!(held(&open(dir.path()).unwrap()).len(), 40);
    dir
}

fn db(dir: &Path) -> PathBuf {
    dir.join("store/db")
}

/// The middle of the part of sled's log that holds the adoptions (the `db` file is mostly
/// padding past the log's tip).
fn middle_of_the_records(dir: &Path) -> usize {
    let bytes = std::fs::read(db(dir)).unwrap();
    let at: Vec<usize> = bytes.windows(COMMUNE.len()).enumerate().filter(|(_, w)| *w == COMMUNE.as_bytes()).map(|(i, _)| i).collect();
    (at[0] + at[at.len() - 1]) / 2
}

fn voisinage(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voisinage")).args(args).arg("--data-dir").arg(dir).env("RUST_LOG", "info").output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file under `dir` with its bytes.
fn snapshot_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot_of(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// The damaged store: refused with the counts and the ids missing; `check` says so (exit 1) and
/// changes nothing; `accept-loss` lets it open with what survived, and new ids go past 40.
fn refused_checked_then_accepted(dir: &Path) {
    let msg = match open(dir) {
        Err(Error::StoreDamaged(msg)) => msg,
        Err(e) => panic!("another error: {}", e.chain()),
        Ok(s) => panic!("the damaged store opened with {} adoptions", held(&s).len()),
    };
    let caps = regex::Regex::new(r"adoptions: (\d+) held, 40 acknowledged").unwrap().captures(&msg).unwrap_or_else(|| panic!("{msg}"));
    let survivors: u64 = caps[1].parse().unwrap();
    assert!(survivors < 40, "{msg}");
    // `adoptions_by_commune` is empty since store format 2: nothing acknowledged, nothing lost.
    assert!(!msg.contains("adoptions_by_commune"), "{msg}");
    // sled recovers a prefix of its log: the latest ids are those lost.
    let missing = if survivors == 39 { "40".to_string() } else { format!("{}-40", survivors + 1) };
    assert!(msg.contains(&format!("ids missing: {missing}")), "{msg}");
    assert!(msg.contains("voisinage restore --from FILE") && msg.contains("voisinage accept-loss --data-dir"), "{msg}");

    wait_unlocked(dir);
    let before = snapshot_of(dir);
    let out = voisinage(&["check"], dir);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("ledger: found"), "{stdout}");
    assert!(regex::Regex::new(&format!(r"adoptions +{survivors} +40 +0  NO")).unwrap().is_match(&stdout), "{stdout}");
    assert!(stdout.contains(&format!("ids missing: {missing}")) && stdout.contains("verdict: DAMAGED"), "{stdout}");
    let out = voisinage(&["check", "--json"], dir);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "damaged");
    assert_eq!(report["kinds"][0], serde_json::json!({"kind": "adoptions", "held": survivors, "acknowledged": 40, "matches": false, "after_ledger": 0}));
    assert!(before == snapshot_of(dir), "check changed the store's files");

    let out = voisinage(&["accept-loss"], dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("loss accepted (adoptions: {survivors} held, 40 acknowledged")), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("loss accepted"), "the loss is logged: {}", text(&out.stderr));
    assert_eq!(voisinage(&["check"], dir).status.code(), Some(0));
    let s = open(dir).unwrap();
    assert_eq!(held(&s), (1..=survivors).collect::<Vec<u64>>());
    assert_eq!(adopt(&s, 1980, 1), vec![41], "a lost id is never given again");
    drop(s);
    assert_eq!(held(&open(dir).unwrap()).len() as u64, survivors + 1);
}

#[test]
fn flipped_bytes_in_the_log_are_refused_reported_and_can_be_accepted() {
    let dir = store_with_40();
    let at = middle_of_the_records(dir.path());
    let mut bytes = std::fs::read(db(dir.path())).unwrap();
    for b in &mut bytes[at..at + 64] {
        *b ^= 0xff;
    }
    std::fs::write(db(dir.path()), bytes).unwrap();
    refused_checked_then_accepted(dir.path());
}

#[test]
fn a_truncated_log_is_refused_reported_and_can_be_accepted() {
    let dir = store_with_40();
    let at = middle_of_the_records(dir.path());
    std::fs::OpenOptions::new().write(true).open(db(dir.path())).unwrap().set_len(at as u64).unwrap();
    refused_checked_then_accepted(dir.path());
}

fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("store"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("snap."))
        .collect();
    v.sort();
    v
}

fn quarantined(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("quarantine")).map(|r| r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

#[test]
fn an_interrupted_snapshot_is_set_aside_and_nothing_is_lost() {
    let dir = store_with_40();
    let snap = snapshots(dir.path()).pop().expect("sled wrote a snapshot when it opened");
    // What a SIGKILL while sled writes its next snapshot leaves: a partial file.
    let partial = std::fs::read(&snap).unwrap()[..10].to_vec();
    let name = format!("{}.generating", snap.file_name().unwrap().to_string_lossy());
    std::fs::write(dir.path().join("store").join(&name), partial).unwrap();
    let s = open(dir.path()).unwrap();
    assert_eq!(held(&s), (1..=40).collect::<Vec<u64>>());
    let q = quarantined(dir.path());
    assert!(q.len() == 1 && q[0].ends_with(&name), "{q:?}");
    assert!(snapshots(dir.path()).iter().all(|p| !p.to_string_lossy().ends_with(".generating")));
}

#[test]
fn an_emptied_snapshot_is_set_aside_and_the_log_recovers_everything() {
    let dir = store_with_40();
    let snap = snapshots(dir.path()).pop().expect("sled wrote a snapshot when it opened");
    std::fs::write(&snap, b"").unwrap();
    let s = open(dir.path()).unwrap();
    assert_eq!(held(&s), (1..=40).collect::<Vec<u64>>(), "recovered from the log, checked by the ledger");
    let q = quarantined(dir.path());
    assert!(q.len() == 1 && q[0].ends_with(&*snap.file_name().unwrap().to_string_lossy()), "{q:?}");
    assert_eq!(adopt(&s, 1980, 1), vec![41]);
}

#[test]
fn a_store_without_ledger_gets_one() {
    let dir = store_with_40();
    let ledger = dir.path().join("store.ledger");
    std::fs::remove_file(&ledger).unwrap();
    let out = voisinage(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("ledger: missing") && text(&out.stdout).contains("verdict: no ledger"), "{}", text(&out.stdout));
    assert!(!ledger.exists(), "check makes nothing");
    assert_eq!(held(&open(dir.path()).unwrap()).len(), 40);
    assert!(ledger.exists());
    wait_unlocked(dir.path());
    let out = voisinage(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(regex::Regex::new(r"adoptions +40 +40 +0  yes").unwrap().is_match(&text(&out.stdout)), "{}", text(&out.stdout));
}

#[test]
fn a_crash_between_the_sync_and_the_ledger_write_is_harmless() {
    let dir = store_with_40();
    let ledger = dir.path().join("store.ledger");
    let older = std::fs::read(&ledger).unwrap();
    {
        let s = open(dir.path()).unwrap();
        assert_eq!(adopt(&s, 1980, 5), vec![41, 42, 43, 44, 45]);
    }
    // sled holds the 5 adoptions, the ledger was last written before them.
    std::fs::write(&ledger, older).unwrap();
    wait_unlocked(dir.path());
    let out = voisinage(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(regex::Regex::new(r"adoptions +40 +40 +5  yes").unwrap().is_match(&text(&out.stdout)), "{}", text(&out.stdout));
    let s = open(dir.path()).unwrap();
    assert_eq!(held(&s).len(), 45);
    assert_eq!(adopt(&s, 1985, 1), vec![46]);
}

#[test]
fn check_refuses_a_store_the_service_holds() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).unwrap();
    let out = voisinage(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the service is running on"), "{}", text(&out.stderr));
    drop(s);
}
