//! Tests of the store's record format, its migration from JSON values and from one feedback
//! record per key, and the index snapshot.
//!
//! The old stores of these tests are made by test-only paths: [`make_format_1`] stores every
//! feedback record alone under adoption id ++ record id, as format 1 did; [`make_json`] then
//! also rewrites every value as the code before the binary format wrote it: `serde_json::to_vec`
//! of the domain type (`Adoption`, `Feedback`, `Token`, `PriceEstimate`, and the idempotency
//! record's three fields), with no `format` key in `meta`. (A store made by the binary before the change,
//! the Brittany demo, was also migrated by hand; see the report of the change.)

use std::path::Path;

use chrono::NaiveDate;

use super::*;
use crate::core::domain::Slug;
use crate::core::prices::{EurHt, PriceBasis};

use super::tests::{new_adoption_in as new_adoption, open_unlocked, reopen};

/// Opens a store just dropped in this process, migrating it if need be.
fn reopen_with(dir: &Path) -> (Store, Option<Migration>) {
    open_unlocked(dir, |d| Store::open_with_progress(d, &mut |_, _, _| {})).unwrap_or_else(|e| panic!("{}", e.chain()))
}

fn open_err(dir: &Path) -> Error {
    match open_unlocked(dir, Store::open) {
        Err(e) => e,
        Ok(_) => panic!("the store opened"),
    }
}

fn feedback(comment: Option<&str>) -> NewFeedback {
    NewFeedback {
        date: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
        reliability: 4,
        incidents: 1,
        downtime_hours: 2.5,
        support: 3,
        comment: comment.map(str::to_string),
    }
}

/// A store with records of every kind: 5 adoptions (one ended in place), 6 feedback records
/// (one with an idempotency key), 2 tokens (one revoked), 1 price estimate.
fn fill(s: &Store) {
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00.123456Z").unwrap().to_utc();
    let idem = Idempotency { scope: "POST /x".into(), key: "k1".into(), fingerprint: 42 };
    let (a, _) = s.insert_adoption_once(new_adoption("29019"), Some(&idem)).unwrap();
    let more = s.insert_adoptions(&[new_adoption("35238"), new_adoption("2A004"), new_adoption("29232"), new_adoption("56260")]).unwrap();
    let mut ended = more[0].clone();
    ended.until = Some(NaiveDate::from_ymd_opt(2024, 6, 30).unwrap());
    s.update_adoption(&ended).unwrap();
    let fidem = Idempotency { scope: "POST /f".into(), key: "k2".into(), fingerprint: 43 };
    s.insert_feedback_once(a.id, feedback(Some("lent le lundi")), Some(&fidem)).unwrap();
    for m in &more {
        s.insert_feedback(m.id, feedback(None)).unwrap();
    }
    s.insert_feedback(a.id, feedback(None)).unwrap();
    s.create_token(TokenScope::Admin, "admin", now).unwrap();
    s.create_token(TokenScope::parse("commune:29019").unwrap(), "Brest", now).unwrap();
    s.revoke_token(2, now).unwrap();
    let by = EstimateAuthor { token_id: 1, scope: TokenScope::Admin, name: "x".into() };
    let estimate = NewPriceEstimate {
        epci: Siren::parse("243500139").unwrap(),
        product: Slug::parse("openelec").unwrap(),
        generation: None,
        basis: PriceBasis::PerSeat,
        amount_eur_ht: EurHt::from_cents(123_456),
        made_on: NaiveDate::from_ymd_opt(2026, 10, 8).unwrap(),
        note: Some("devis".into()),
    };
    s.insert_price_estimate(estimate, by, now).unwrap();
}

/// Every record the store holds, as a backup gives them.
fn records_of(s: &Store) -> Vec<Record> {
    let state = s.backup_state().unwrap();
    s.export_records(&state).collect::<Result<Vec<_>>>().unwrap()
}

/// Every value of the record trees (and the idempotency values), with its tree's name.
fn values(s: &Store) -> Vec<(&'static str, sled::IVec)> {
    let mut out = Vec::new();
    for (name, tree, prefix) in [
        ("adoptions", &s.adoptions, &b""[..]),
        ("feedback", &s.feedback, b""),
        ("tokens", &s.tokens, b""),
        ("price_estimates", &s.price_estimates, b""),
        ("idem", &s.meta, IDEM_PREFIX),
    ] {
        out.extend(tree.scan_prefix(prefix).values().map(|v| (name, v.unwrap())));
    }
    out
}

/// Stores every feedback record alone under adoption id ++ record id, its value's version byte
/// 1, fills `adoptions_by_commune` (INSEE code ++ adoption id, counted by the ledger) and sets
/// the `format` key to 1: a store of format 1.
fn make_format_1(s: &Store) {
    for v in s.adoptions.iter().values() {
        let a: Adoption = records::decode(&v.unwrap()).unwrap();
        let key = id_key(a.commune.as_bytes(), a.id);
        s.by_commune.insert(&key, &[]).unwrap();
        s.tally().add(Kind::ByCommune, &key, a.id);
    }
    for kv in s.feedback.iter() {
        let (k, v) = kv.unwrap();
        if k.len() == SINGLE_KEY {
            let mut single = v.to_vec();
            single[0] = records::FORMAT_POSTCARD_1;
            s.feedback.insert(k, single).unwrap();
            continue;
        }
        assert_eq!(k.len(), GROUP_KEY);
        s.feedback.remove(&k).unwrap();
        for f in records::decode::<FeedbackGroup>(&v).unwrap().0 {
            let mut single = records::encode(&f).unwrap();
            single[0] = records::FORMAT_POSTCARD_1;
            s.feedback.insert(id_key(&k, f.id), single).unwrap();
        }
    }
    s.meta.insert(FORMAT_KEY, &[records::FORMAT_POSTCARD_1]).unwrap();
    s.flush().unwrap();
}

/// Whether `adoptions_by_commune` is empty and the ledger counts none there (format 2).
fn by_commune_gone(s: &Store) -> bool {
    s.by_commune.is_empty() && s.tally().tally(Kind::ByCommune).count == 0
}

/// The lengths of the `feedback` tree's keys, in key order.
fn feedback_key_lengths(s: &Store) -> Vec<usize> {
    s.feedback.iter().keys().map(|k| k.unwrap().len()).collect()
}

/// Rewrites every value as the code before the binary format did (JSON of the domain type, one
/// feedback record per key) and removes the `format` key: a store of format 0.
fn make_json(s: &Store) {
    make_format_1(s);
    fn rewrite<T: records::Codec + serde::Serialize>(tree: &sled::Tree, prefix: &[u8]) {
        for kv in tree.scan_prefix(prefix) {
            let (k, v) = kv.unwrap();
            let record: T = records::decode(&v).unwrap();
            tree.insert(k, serde_json::to_vec(&record).unwrap()).unwrap();
        }
    }
    rewrite::<Adoption>(&s.adoptions, b"");
    rewrite::<Feedback>(&s.feedback, b"");
    rewrite::<Token>(&s.tokens, b"");
    rewrite::<PriceEstimate>(&s.price_estimates, b"");
    rewrite::<IdemRecord>(&s.meta, IDEM_PREFIX);
    s.meta.remove(FORMAT_KEY).unwrap();
    s.flush().unwrap();
}

/// A store of format 1 in `dir` holding [`fill`]'s records; returns them.
fn format_1_store(dir: &Path) -> Vec<Record> {
    let s = Store::open(dir).unwrap();
    fill(&s);
    let before = records_of(&s);
    make_format_1(&s);
    assert_eq!(feedback_key_lengths(&s), [16; 6]);
    assert_eq!(s.by_commune.len(), 5);
    assert_eq!(records_of(&s), before, "a store of format 1 reads the same");
    before
}

/// A JSON store in `dir` holding [`fill`]'s records; returns them.
fn json_store(dir: &Path) -> Vec<Record> {
    let s = Store::open(dir).unwrap();
    fill(&s);
    let before = records_of(&s);
    make_json(&s);
    assert!(values(&s).iter().all(|(_, v)| v[0] == b'{'), "every value is JSON");
    assert_eq!(s.format().unwrap(), records::FORMAT_JSON);
    assert_eq!(records_of(&s), before, "a JSON store reads the same");
    before
}

#[test]
fn a_new_store_is_of_the_current_format_and_writes_binary_values() {
    let dir = tempfile::tempdir().unwrap();
    let (s, migration) = reopen_with(dir.path());
    assert_eq!(migration, None);
    assert_eq!(s.format().unwrap(), records::FORMAT);
    fill(&s);
    let v = values(&s);
    // 6 feedback records in 5 groups: two on the first adoption, one on each other.
    assert_eq!(v.len(), 5 + 5 + 2 + 1 + 2);
    assert!(v.iter().all(|(_, v)| v[0] == records::FORMAT), "{v:?}");
    assert_eq!(feedback_key_lengths(&s), [8; 5]);
    assert!(by_commune_gone(&s), "format 2 writes nothing there");
    assert_eq!(
        records::decode::<FeedbackGroup>(&s.feedback.get(1u64.to_be_bytes()).unwrap().unwrap()).unwrap().0.iter().map(|f| f.id).collect::<Vec<_>>(),
        [6, 11]
    );
    assert!(!dir.path().join("backups").exists(), "no backup for a new store");
}

#[test]
fn a_json_store_is_migrated_after_a_backup_and_reads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let before = json_store(dir.path());
    let (s, migration) = reopen_with(dir.path());
    let m = migration.expect("migrated");
    // 16 values rewritten in postcard, then the 6 feedback records grouped in 5 values.
    assert_eq!((m.from, m.to, m.records, m.rewritten), (0, 2, 16, 16 + 5));
    assert_eq!(s.format().unwrap(), records::FORMAT);
    assert!(values(&s).iter().all(|(_, v)| v[0] == records::FORMAT));
    assert_eq!(feedback_key_lengths(&s), [8; 5]);
    assert!(by_commune_gone(&s));
    assert_eq!(records_of(&s), before, "every record reads back equal");
    // The tokens still authenticate, the idempotency keys still answer.
    let idem = Idempotency { scope: "POST /x".into(), key: "k1".into(), fingerprint: 42 };
    assert_eq!(s.adoption_for_key(&idem).unwrap().map(|a| a.id), Some(1));
    assert_eq!(s.tokens().unwrap().iter().map(|t| t.revoked.is_some()).collect::<Vec<_>>(), [false, true]);
    // The backup: in DATA_DIR/backups, named with the date and pre-migrate, and it restores.
    assert_eq!(m.backup.parent().unwrap(), dir.path().join("backups"));
    let name = m.backup.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("voisinage-{}", chrono::Utc::now().format("%Y%m%d"))) && name.ends_with("-pre-migrate.jsonl.gz"), "{name}");
    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let summary = crate::service::restore(&m.backup, &target, &mut |_, _, _| {}).unwrap();
    assert_eq!(summary.counts.total(), 16);
    let r = reopen(&target);
    assert_eq!(r.format().unwrap(), records::FORMAT);
    assert_eq!(records_of(&r), before, "the backup restores the same records");
    drop(s);
    // Opened again: nothing more to do.
    let (s, migration) = reopen_with(dir.path());
    assert_eq!(migration, None);
    assert_eq!(records_of(&s), before);
    assert_eq!(std::fs::read_dir(dir.path().join("backups")).unwrap().count(), 1);
}

#[test]
fn a_migration_cut_short_is_finished_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let before = json_store(dir.path());
    {
        // What a crash mid-migration leaves: some values rewritten, no `format` key.
        let (s, _) = Store::open_with(dir.path(), OnDamage::Refuse).unwrap();
        assert_eq!(s.upgrade_values(Some(7), &mut |_, _| {}).unwrap(), (7, 7));
        s.flush().unwrap();
        let v = values(&s);
        assert_eq!(v.iter().filter(|(_, v)| v[0] == records::FORMAT).count(), 7);
        assert_eq!(v.iter().filter(|(_, v)| v[0] == b'{').count(), 9);
        assert_eq!(records_of(&s), before, "a half-migrated store reads whole");
    }
    // The next open checks the ledger (the keys did not change) and finishes.
    let (s, migration) = reopen_with(dir.path());
    let m = migration.expect("migrated");
    assert_eq!((m.records, m.rewritten), (16, 9 + 5));
    assert!(values(&s).iter().all(|(_, v)| v[0] == records::FORMAT));
    assert_eq!(records_of(&s), before);
}

#[test]
fn a_store_of_format_1_is_grouped_and_a_grouping_cut_short_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let before = format_1_store(dir.path());
    {
        // What a crash mid-grouping leaves: two adoptions' records grouped, the others alone.
        let (s, _) = Store::open_with(dir.path(), OnDamage::Refuse).unwrap();
        assert_eq!(s.group_feedback(Some(2), &mut |_, _| {}).unwrap(), 2);
        s.flush().unwrap();
        assert_eq!(feedback_key_lengths(&s), [8, 8, 16, 16, 16]);
        assert_eq!(records_of(&s), before, "a half-grouped store reads whole");
        assert_eq!(s.load_index().unwrap().feedback(1).iter().map(|f| f.id).collect::<Vec<_>>(), [6, 11]);
    }
    // The next open counts every record where it is (the ledger holds), then groups the rest:
    // 15 values read (5 adoptions, 2 feedback groups and 3 feedback records, 2 tokens, 1 price
    // estimate, 2 idempotency keys), none rewritten in postcard, three groups written.
    let (s, migration) = reopen_with(dir.path());
    let m = migration.expect("migrated");
    assert_eq!((m.from, m.to, m.records, m.rewritten), (1, 2, 15, 3));
    assert_eq!(feedback_key_lengths(&s), [8; 5]);
    assert!(by_commune_gone(&s));
    assert_eq!(records_of(&s), before);
    // New feedback joins its adoption's group, after the records already there.
    let f = s.insert_feedback(1, feedback(Some("après"))).unwrap();
    let group = records::decode::<FeedbackGroup>(&s.feedback.get(1u64.to_be_bytes()).unwrap().unwrap()).unwrap();
    assert_eq!(group.0.iter().map(|f| f.id).collect::<Vec<_>>(), [6, 11, f.id]);
    drop(s);
    let s = reopen(dir.path());
    assert_eq!(s.load_index().unwrap().feedback(1).len(), 3);
}

#[test]
fn a_migration_cut_while_it_empties_adoptions_by_commune_is_finished_before_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let before = format_1_store(dir.path());
    {
        // The marker durable, the tree emptied, then a crash before the ledger was written:
        // the ledger still counts 5 records in a tree that holds none.
        let (s, _) = Store::open_with(dir.path(), OnDamage::Refuse).unwrap();
        s.meta.insert(DROPPING_BY_COMMUNE, &[1]).unwrap();
        s.flush().unwrap();
        s.by_commune.clear().unwrap();
        s.db.flush().unwrap();
        assert_eq!(s.tally().tally(Kind::ByCommune).count, 5);
    }
    // The next open finishes the drop first (no damage reported), then migrates the rest.
    let (s, migration) = reopen_with(dir.path());
    assert_eq!(migration.map(|m| (m.from, m.to)), Some((1, 2)));
    assert!(by_commune_gone(&s));
    assert!(s.meta.get(DROPPING_BY_COMMUNE).unwrap().is_none());
    assert_eq!(records_of(&s), before);
    drop(s);
    assert_eq!(open_reporting(dir.path()).unwrap().1.verdict, ledger::Verdict::Ok);
}

#[test]
fn a_store_of_a_newer_format_is_refused_with_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        s.insert_adoption(new_adoption("29019")).unwrap();
        s.meta.insert(FORMAT_KEY, &[records::FORMAT + 1]).unwrap();
        s.flush().unwrap();
    }
    let e = open_err(dir.path());
    assert!(matches!(e, Error::Storage { source: None, .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("is of store format version 3, newer than this program reads (up to 2)"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(!dir.path().join("backups").exists(), "nothing was written");
}

/// A store with records and a snapshot written, then reopened.
fn store_with_snapshot(dir: &Path) -> Store {
    {
        let s = Store::open(dir).unwrap();
        fill(&s);
        let bytes = s.write_snapshot(&mut |_, _| {}).unwrap();
        assert_eq!(bytes, std::fs::metadata(snapshot::path(dir)).unwrap().len());
    }
    reopen(dir)
}

/// Changes adoption 1's workstations in sled behind the store's back (no write counted): an
/// index read from the snapshot still has 3, one rebuilt from the records has 99.
fn change_behind_the_back(s: &Store) {
    let mut a: Adoption = records::decode(&s.adoptions.get(1u64.to_be_bytes()).unwrap().unwrap()).unwrap();
    a.workstations = Some(99);
    s.adoptions.insert(1u64.to_be_bytes(), records::encode(&a).unwrap()).unwrap();
}

fn workstations(h: &AdoptionIndex) -> Option<u32> {
    h.adoption(1).unwrap().workstations
}

#[test]
fn the_snapshot_is_read_when_fresh_and_gives_the_same_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_snapshot(dir.path());
    let rebuilt = s.index_from_records(&mut |_, _| {}).unwrap();
    change_behind_the_back(&s);
    let mut calls = Vec::new();
    let h = s.load_index_with_progress(&mut |done, total| calls.push((done, total))).unwrap();
    assert_eq!(workstations(&h), Some(3), "read from the snapshot");
    assert_eq!(calls.last(), Some(&(11, 11)));
    for id in 1..=5 {
        assert_eq!(h.adoption(id), rebuilt.adoption(id));
        assert_eq!(h.feedback(id), rebuilt.feedback(id));
    }
    assert_eq!((h.adoption_count(), h.feedback_count()), (5, 6));
    // Read again (no write since): still fresh.
    assert_eq!(workstations(&s.load_index().unwrap()), Some(3));
}

#[test]
fn the_first_write_deletes_the_snapshot_and_a_stale_one_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_snapshot(dir.path());
    let path = snapshot::path(dir.path());
    let kept = std::fs::read(&path).unwrap();
    // An in-place update: the ledger does not change, the write counter does.
    let mut a = s.adoption(2).unwrap().unwrap();
    a.contract_end = Some(NaiveDate::from_ymd_opt(2030, 1, 1).unwrap());
    s.update_adoption(&a).unwrap();
    assert!(!path.exists(), "deleted before the first write");
    // Put back (as if the write had not deleted it): stale, the index is rebuilt.
    std::fs::write(&path, &kept).unwrap();
    drop(s);
    let s = reopen(dir.path());
    change_behind_the_back(&s);
    let h = s.load_index().unwrap();
    assert_eq!(workstations(&h), Some(99), "rebuilt from the records");
    assert_eq!(h.adoption(2).unwrap().contract_end, a.contract_end);
    // A snapshot written now is fresh again, and a write after it deletes it.
    s.write_snapshot(&mut |_, _| {}).unwrap();
    assert!(path.exists());
    s.insert_feedback(2, feedback(None)).unwrap();
    assert!(!path.exists(), "a write after a snapshot deletes it");
}

#[test]
fn a_damaged_or_truncated_snapshot_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_snapshot(dir.path());
    change_behind_the_back(&s);
    // The snapshot read during the open (before the file is damaged below) is taken first.
    assert_eq!(workstations(&s.load_index().unwrap()), Some(3), "read during the open");
    let path = snapshot::path(dir.path());
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    let at = good.len() - 20;
    flipped[at] ^= 0x40;
    for (what, bytes) in
        [("a flipped byte", flipped), ("truncated", good[..good.len() - 9].to_vec()), ("header only", good[..40].to_vec()), ("empty", Vec::new())]
    {
        std::fs::write(&path, &bytes).unwrap();
        let h = s.load_index().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(workstations(&h), Some(99), "{what}: rebuilt from the records");
        assert_eq!((h.adoption_count(), h.feedback_count()), (5, 6), "{what}");
    }
    std::fs::write(&path, &good).unwrap();
    assert_eq!(workstations(&s.load_index().unwrap()), Some(3), "the good file is read again");
}

#[test]
fn a_snapshot_read_during_the_open_is_dropped_when_the_count_finds_more_than_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_snapshot(dir.path());
    assert_eq!(s.load_index().unwrap().feedback_count(), 6);
    let (ledger_file, snapshot_file) = (ledger::path(dir.path()), snapshot::path(dir.path()));
    let (ledger_before, snapshot_before) = (std::fs::read(&ledger_file).unwrap(), std::fs::read(&snapshot_file).unwrap());
    let writes = s.meta.get(WRITES_KEY).unwrap().unwrap();
    // A feedback record synced, then a crash before the ledger was written: the ledger file and
    // the write counter still say what the snapshot was taken from.
    s.insert_feedback(2, feedback(Some("after the ledger"))).unwrap();
    s.meta.insert(WRITES_KEY, writes).unwrap();
    s.flush().unwrap();
    drop(s);
    std::fs::write(&ledger_file, &ledger_before).unwrap();
    std::fs::write(&snapshot_file, &snapshot_before).unwrap();
    let s = reopen(dir.path());
    // The open counted one feedback record more than the ledger promised: the snapshot read
    // meanwhile (it matched the ledger file) is not used; the index is rebuilt with the record.
    let h = s.load_index().unwrap();
    assert_eq!((h.adoption_count(), h.feedback_count()), (5, 7));
    assert_eq!(h.feedback(2).iter().filter(|f| f.comment.as_deref() == Some("after the ledger")).count(), 1);
}

#[test]
fn tokens_and_price_estimates_leave_the_snapshot_fresh() {
    use crate::core::auth::TokenScope;
    use crate::core::domain::Siren;
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_snapshot(dir.path());
    let path = snapshot::path(dir.path());
    let now = chrono::DateTime::parse_from_rfc3339("2026-10-08T09:00:00Z").unwrap().to_utc();
    let (t, _) = s.create_token(TokenScope::Admin, "exploitant", now).unwrap();
    s.revoke_token(t.id, now).unwrap();
    let rm = Siren::parse("243500139").unwrap();
    let estimate = NewPriceEstimate {
        epci: rm,
        product: Slug::parse("openelec").unwrap(),
        generation: None,
        basis: PriceBasis::PerCommune,
        amount_eur_ht: EurHt::from_whole_euros(1_000),
        made_on: NaiveDate::from_ymd_opt(2026, 10, 8).unwrap(),
        note: None,
    };
    s.insert_price_estimate(estimate, EstimateAuthor { token_id: t.id, scope: TokenScope::Epci(rm), name: "Rennes Métropole".into() }, now).unwrap();
    assert!(path.exists(), "neither is in the snapshot: it is kept");
    drop(s);
    let s = reopen(dir.path());
    change_behind_the_back(&s);
    assert_eq!(workstations(&s.load_index().unwrap()), Some(3), "still fresh: read from the snapshot");
    // `fill` made two tokens and one estimate for Rennes Métropole.
    assert_eq!((s.tokens().unwrap().len(), s.price_estimates(&rm).unwrap().len()), (3, 2));
    // An adoption's write, by contrast, deletes it.
    s.insert_feedback(2, feedback(None)).unwrap();
    assert!(!path.exists());
}

/// Opens the store in `dir` as the service does, with its integrity report.
fn open_reporting(dir: &Path) -> Result<(Store, ledger::IntegrityReport)> {
    super::tests::open_unlocked(dir, |d| Store::open_with(d, OnDamage::Refuse))
}

#[test]
fn a_store_unchanged_since_its_seal_is_not_counted_again_and_a_changed_one_is() {
    let dir = tempfile::tempdir().unwrap();
    let (store_dir, ledger_file) = (dir.path().join("store"), ledger::path(dir.path()));
    {
        let s = Store::open(dir.path()).unwrap();
        fill(&s);
        s.seal().unwrap();
        assert!(seal::path(dir.path()).exists());
    }
    // Sealed again once sled has let go of its files (dropping a store may write).
    let s = reopen(dir.path());
    drop(s);
    seal::write(dir.path(), &store_dir, &ledger_file).unwrap();
    let (s, report) = open_reporting(dir.path()).unwrap();
    assert!(report.sealed, "{report}");
    assert_eq!(report.verdict, ledger::Verdict::Ok);
    assert!(!seal::path(dir.path()).exists(), "a seal is used once");
    assert_eq!((s.load_index().unwrap().adoption_count(), s.tokens().unwrap().len()), (5, 2));
    // Sealed in that state; then a feedback record lost behind the store's back (sled opened
    // directly): the files differ from the seal, the records are counted and the loss found.
    drop(s);
    seal::write(dir.path(), &store_dir, &ledger_file).unwrap();
    {
        let db = open_unlocked(&store_dir, |d| open_sled(d).map_err(st)).unwrap();
        let feedback = db.open_tree("feedback").unwrap();
        let key = feedback.iter().keys().next().unwrap().unwrap();
        feedback.remove(key).unwrap();
        db.flush().unwrap();
    }
    let e = match open_reporting(dir.path()) {
        Err(e) => e,
        Ok((_, report)) => panic!("opened: {report}"),
    };
    assert!(matches!(e, Error::StoreDamaged(_)), "{e}");
    assert!(e.to_string().contains("feedback"), "{e}");
}

#[test]
fn an_adoption_past_a_group_keeps_its_later_records_alone_through_a_migration() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let s = Store::open(dir.path()).unwrap();
        let a = s.insert_adoption(new_adoption("29019")).unwrap();
        for _ in 0..GROUP_MAX + 44 {
            s.insert_feedback(a.id, feedback(None)).unwrap();
        }
        assert_eq!(feedback_key_lengths(&s), [[8].as_slice(), &[16; 44]].concat(), "written past a full group: one per key");
        let before = records_of(&s);
        make_format_1(&s);
        before
    };
    let (s, migration) = reopen_with(dir.path());
    assert_eq!(migration.map(|m| m.rewritten), Some(1), "one group written");
    assert_eq!(feedback_key_lengths(&s), [[8].as_slice(), &[16; 44]].concat());
    assert_eq!(records_of(&s), before);
}
