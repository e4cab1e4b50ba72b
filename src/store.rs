//! The durable store: sled 0.34 under the data directory. This module is the only user of sled.
//!
//! Trees and keys (all ids are u64, big-endian in keys). A *record* below is a value of the
//! store format of [`records`]: a format version byte, then the store's own record struct
//! encoded with postcard (format 1; a value starting with `{` is the JSON of the stores made
//! before it, read as such and rewritten by the migration at open, after a backup):
//! - `meta`: `next_id` (u64 BE, shared by adoptions and feedback), `catalog_version` (text),
//!   `format` (the store format version), `writes` (the write counter the index snapshot's
//!   fingerprint holds), `demo` (JSON: seed and end date of the simulated history, when one was
//!   loaded), `demo_loading` (present only while a demo load is under way),
//!   `idem:{METHOD path}\n{key}` (record: what an `Idempotency-Key` created, written in the
//!   same transaction);
//! - `adoptions`: `id` → record of an [`Adoption`];
//! - `adoptions_by_commune`: empty since format 2. Formats 0 and 1 kept INSEE code (5 bytes) ++
//!   `id` → empty there for every adoption, which nothing read (the index is in memory) and
//!   which cost a million sled values at national scale; the migration empties it
//!   ([`Store::open_with_progress`]);
//! - `feedback`: adoption `id` → the adoption's feedback records, one value (a
//!   [`records::FeedbackGroup`], records in id order; format 2), at most `GROUP_MAX` of them:
//!   past that, the adoption's later records are stored one per key, under adoption `id` ++
//!   feedback `id` (16 bytes). Stores of formats 0 and 1 held every record that way; the
//!   migration groups them, and every reader takes either key (a store half-way through its
//!   migration reads whole). The ledger counts and digests feedback *records* by that 16-byte key either way;
//! - `tokens`: token `id` → record of a [`Token`] (scope, label, creation and revocation times);
//! - `token_hashes`: SHA-256 of the secret (32 bytes) → token `id`. Secrets are never stored.
//!   Token ids come from `meta` `next_token_id`;
//! - `price_estimates`: EPCI SIREN (9 bytes) ++ estimate `id` → record of a [`PriceEstimate`]; every
//!   estimate is kept (the latest in force wins when read, see [`crate::core::prices`]). Ids
//!   come from `meta` `next_price_estimate_id`.
//!
//! Every write is one sled transaction over the trees it touches, followed by a **group
//! commit**: sled's flush, then `fdatasync` of every file of the store and `fsync` of its
//! folders. sled 0.34's own flush uses `sync_file_range` on Linux (sled issues 1351 and 1452),
//! which neither flushes the disk's write cache nor file metadata; the explicit sync closes that
//! gap. Concurrent writers share one sync: a writer whose record was committed before a sync
//! started is covered by it. Methods return only after that, so a returned record survives a
//! process crash and a power cut (on a disk that honours flush requests).
//!
//! **Integrity you can check.** sled recovers from a damaged log (flipped bytes, a truncated
//! `db` file) by stopping at the first record whose CRC fails and silently dropping the rest:
//! the store opens with a consistent *prefix* of what was acknowledged, its own counters rolled
//! back too. So the store keeps, outside sled, a [`ledger`] (`DATA_DIR/store.ledger`): the
//! high-water ids and, per kind of record, a count and a digest of the keys of every record
//! acknowledged. Each write adds its records to an in-memory copy right after its transaction
//! commits (under one mutex, so that every record below the high-water ids is counted); the
//! group commit copies that state *before* sled's flush and writes it to the ledger file after
//! the flush and sync (one more small `pwrite` + `fdatasync` per group commit, shared by its
//! writers like the sync itself; measured with 120 sequential adoptions over HTTP on the 2-core
//! VM, debug builds: 27-30 ms a write before, 34-38 ms with it). A
//! crash between sled's sync and the ledger's write leaves sled ahead of the ledger, never
//! behind: records at or above the ledger's high-water ids are accepted at the next start.
//!
//! At [`Store::open`], one pass over the keys (values are not decoded, except the few
//! idempotency records and the feedback groups, read for their records' ids; the feedback tree in one thread, the others in a second, the index
//! snapshot read meanwhile in a third against the fingerprint the ledger file promises, and
//! used only if the count agrees: [`Store::load_index_with_progress`]) counts and digests the
//! records below the ledger's high-water ids; any
//! difference and the store refuses to open with [`Error::StoreDamaged`], saying what was found
//! and what to do: restore the latest backup, or run [`Store::accept_loss`] (`voisinage
//! accept-loss`), which rewrites the ledger to what the store holds and keeps the high-water ids,
//! so that lost ids are never given again. A store sealed at its last clean stop and byte for
//! byte the same since is not counted again ([`seal`]). A store without a ledger (made before it, or just
//! rebuilt from a backup) gets one made from its records. [`Store::check`] (`voisinage check`)
//! reports the same on a copy, changing nothing.
//!
//! **Snapshots.** sled picks the snapshot file whose name sorts last, and a SIGKILL while it
//! writes one (it does at start-up, after recovering from its log) leaves a
//! `snap.*.generating` file that sorts after the good one: sled then refuses to open ("Read
//! corrupted data"). Such a file is moved to `DATA_DIR/quarantine/` before sled opens (never
//! deleted), with a warning. If sled still fails with a corruption error while snapshot files
//! are there (an emptied `snap.*`), they are moved aside too and sled is opened once more, then
//! rebuilding its state from the log; the ledger check then says whether that was complete.
//!
//! Code that writes records into sled without these methods (a restore) must do it into a
//! store that is then closed and opened again: the records are then above the ledger's
//! high-water ids, and counted at that open.

#[cfg(test)]
mod format_tests;
pub mod ledger;
pub mod records;
pub mod seal;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::backup::{BackupState, IdempotencyEntry, Record};
use crate::core::auth::{Token, TokenHash, TokenScope};
use crate::core::domain::Siren;
use crate::core::history::{Adoption, AdoptionIndex, Feedback, NewAdoption, NewFeedback};
use crate::core::prices::{EstimateAuthor, NewPriceEstimate, PriceEstimate};
use crate::core::simulate::DemoHistory;
use crate::error::{Error, Result};
use ledger::{Census, Found, Kind, LedgerFile, LedgerState};
pub use ledger::{IntegrityReport, KindReport, Verdict};
use records::{FeedbackGroup, IdemRecord};

const DEMO_LOADING: &[u8] = b"demo_loading";

/// `meta` key present while the migration to format 2 empties `adoptions_by_commune` (tree and
/// ledger count): a start that finds it finishes the job before counting the records.
const DROPPING_BY_COMMUNE: &[u8] = b"dropping_by_commune";

/// `meta` key of the store's format version (one byte, [`records::FORMAT`]), written once every
/// value is of that format; absent: the first format (JSON values, [`records::FORMAT_JSON`]).
const FORMAT_KEY: &[u8] = b"format";

/// `meta` key of the write counter (u64, big-endian): raised by one in the transaction of every
/// write of a record (in-place updates included), part of the snapshot's fingerprint.
const WRITES_KEY: &[u8] = b"writes";

/// Values rewritten per sled batch during a migration.
const MIGRATION_BATCH: usize = 1000;

/// Length of a `feedback` key of format 2: the adoption id (its group of records).
const GROUP_KEY: usize = 8;

/// Length of a `feedback` key of formats 0 and 1: adoption id ++ record id (one record). Format
/// 2 uses it too for the records of an adoption past [`GROUP_MAX`].
const SINGLE_KEY: usize = 16;

/// Most records in one feedback group (about 7 KB): an adoption's later records are stored one
/// per key, so that a write never rewrites more than this, however many reports one adoption
/// gathers (an adoption hammered by a benchmark took 15,000 in a minute, a 400 KB value
/// rewritten at every write).
const GROUP_MAX: usize = 256;

/// The feedback records under one key of the `feedback` tree: an adoption's group (8-byte key,
/// format 2) or one record (16-byte key, a store of format 0 or 1 not yet migrated). Errors:
/// `Storage` for a value that does not decode or a key of another length.
fn feedback_entries(k: &[u8], v: &[u8]) -> Result<Vec<Feedback>> {
    match k.len() {
        GROUP_KEY => records::decode::<FeedbackGroup>(v).map(|g| g.0),
        SINGLE_KEY => records::decode::<Feedback>(v).map(|f| vec![f]),
        n => Err(Error::storage_state(format!("a feedback key of {n} bytes"))),
    }
}

/// The adoption's feedback group in a transaction (empty when it has none yet). Errors:
/// `Storage` (aborting) for a value that does not decode.
fn group_in(feedback: &sled::transaction::TransactionalTree, adoption_id: u64) -> std::result::Result<FeedbackGroup, ConflictableTransactionError<Error>> {
    match feedback.get(adoption_id.to_be_bytes())? {
        Some(v) => records::decode::<FeedbackGroup>(&v).map_err(abort),
        None => Ok(FeedbackGroup::default()),
    }
}

/// Prefix of the idempotency keys in `meta`.
const IDEM_PREFIX: &[u8] = b"idem:";

/// sled's page cache budget, bytes. sled fills it while it recovers at open and while the
/// store's records are counted (a start without a seal), and counts it by serialised size, so
/// it costs several times the budget in resident memory: on the national store, about 200 MiB
/// more at 64 MiB than at 8 MiB, and 23 MB more at 8 MiB than at 1 MiB at a start that counts
/// (issue 17; BENCHMARKS.md). The read path is served from the in-memory index, so the cache
/// only serves writes (the leaves they change, read again from the OS's cache when evicted),
/// tokens and idempotency keys.
const CACHE_BYTES: u64 = 1024 * 1024;

/// Group-commit state shared by the clones of a store.
#[derive(Default)]
struct Syncer {
    /// Writes committed (each takes the next ticket after its transaction).
    written: AtomicU64,
    /// Highest ticket covered by a completed sync.
    synced: Mutex<u64>,
    /// Number of syncs run (for tests and metrics).
    syncs: AtomicU64,
    /// Told the duration of every sync, seconds (the metrics' histogram), once set.
    observer: std::sync::OnceLock<SyncObserver>,
}

/// A function told the duration of each sync of the store, in seconds ([`Store::on_sync`]).
pub type SyncObserver = Box<dyn Fn(f64) + Send + Sync>;

/// Bytes the disk probe writes and syncs ([`Store::disk_probe`]): two of sled's 512 KiB log
/// segments, what the store needs to go on writing after a restart.
const DISK_PROBE_BYTES: usize = 1024 * 1024;

/// How many records the long loops go between two calls of their progress callback
/// ([`Store::load_index_with_progress`]; [`Store::load_demo_with_progress`], whose two writing
/// threads are reported every 50 ms, calls it once at least this many more were written).
pub const PROGRESS_EVERY: u64 = 1000;

/// The in-memory ledger and its file (see [`ledger`]).
#[derive(Default)]
struct Ledger {
    /// What every committed write added (writers hold it from their transaction to their
    /// tally, so that no record below the high-water ids is left out).
    state: Mutex<LedgerState>,
    /// The file; `None` while the store is being opened, and in [`Store::check`]'s copy.
    file: Mutex<Option<LedgerFile>>,
}

/// Handle on the store; cheap to clone, safe to share across threads.
#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
    sync: Arc<Syncer>,
    /// Whether `DATA_DIR/index.snapshot` may exist: the first write after a start (or after a
    /// snapshot was written) deletes it and clears this.
    snapshot_armed: Arc<AtomicBool>,
    ledger: Arc<Ledger>,
    /// The index being read from the snapshot while the records are counted at open
    /// ([`Store::open`]), taken by the first [`Store::load_index_with_progress`].
    prefetched: Arc<Mutex<Option<Prefetch>>>,
    db: sled::Db,
    meta: sled::Tree,
    adoptions: sled::Tree,
    by_commune: sled::Tree,
    feedback: sled::Tree,
    tokens: sled::Tree,
    token_hashes: sled::Tree,
    price_estimates: sled::Tree,
}

/// What a migration of the store's format did ([`Store::open_with_progress`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    /// The format version found.
    pub from: u8,
    /// The format version written ([`records::FORMAT`]).
    pub to: u8,
    /// The backup written before anything was changed.
    pub backup: PathBuf,
    /// Values read (every record, and every idempotency key).
    pub records: u64,
    /// Values written: records rewritten in the current format (fewer than `records` when an
    /// earlier migration was cut short), plus the feedback groups made from single records
    /// (format 2).
    pub rewritten: u64,
}

/// Deletes the index snapshot of the store in `data_dir`, if any, and syncs the folder.
fn remove_snapshot(data_dir: &Path) -> Result<()> {
    let path = snapshot::path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(|e| Error::storage(format!("syncing {}", data_dir.display()), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::storage(format!("removing {}", path.display()), e)),
    }
}

/// Raises the write counter (`meta` `writes`: writes of adoptions and feedback, what the index
/// snapshot holds) inside a write's transaction.
fn count_write(meta: &sled::transaction::TransactionalTree) -> std::result::Result<(), sled::transaction::UnabortableTransactionError> {
    let n = meta.get(WRITES_KEY)?.map_or(0, |v| be(&v));
    meta.insert(WRITES_KEY, &(n + 1).to_be_bytes())?;
    Ok(())
}

/// What [`Store::open_with`] does with a store that lost acknowledged records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnDamage {
    /// Refuse to open it (`StoreDamaged`): the service.
    Refuse,
    /// Open it and report, writing no ledger: `check`, on a copy.
    Report,
    /// Rewrite the ledger to what it holds: `accept-loss`.
    Accept,
}

/// The sled folder of the data folder `dir`: `dir/store`.
fn store_dir(dir: &Path) -> PathBuf {
    dir.join("store")
}

/// Opens sled in `store_dir` with the store's settings.
fn open_sled(store_dir: &Path) -> sled::Result<sled::Db> {
    // No periodic background flush: every write flushes and syncs itself (group commit).
    // The read path is served from memory (`AdoptionIndex`), so sled's page cache only serves
    // writes, tokens and idempotency keys: 1 MiB instead of sled's default 1 GiB.
    sled::Config::new().path(store_dir).flush_every_ms(None).cache_capacity(CACHE_BYTES).open()
}

/// Whether a process holds sled's lock on `store_dir` (then nothing in it may be moved).
fn folder_in_use(store_dir: &Path) -> bool {
    std::fs::File::open(store_dir.join("db")).is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

/// sled's snapshot files in `store_dir` (every `snap.*`, as sled itself lists them).
fn snapshot_files(store_dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |e: std::io::Error| Error::storage(format!("listing {}", store_dir.display()), e);
    let mut out = Vec::new();
    match std::fs::read_dir(store_dir) {
        Ok(entries) => {
            for e in entries {
                let e = e.map_err(io)?;
                if e.file_name().to_string_lossy().starts_with("snap.") && e.file_type().map_err(io)?.is_file() {
                    out.push(e.path());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    out.sort();
    Ok(out)
}

/// Moves `file` to `data_dir/quarantine/{UTC time}-{name}` (never deletes it) and syncs both
/// folders. Returns the new path.
fn move_aside(data_dir: &Path, file: &Path) -> Result<PathBuf> {
    let q = data_dir.join("quarantine");
    let io = |e: std::io::Error| Error::storage(format!("moving {} to {}", file.display(), q.display()), e);
    std::fs::create_dir_all(&q).map_err(io)?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let to = q.join(format!("{}-{name}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")));
    std::fs::rename(file, &to).map_err(io)?;
    for dir in [q.as_path(), file.parent().unwrap_or(data_dir)] {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(to)
}

/// Copies the folder `from` to `to`, recursively (files and folders only).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::storage(format!("copying {} to {}", from.display(), to.display()), e);
    std::fs::create_dir_all(to).map_err(io)?;
    for e in std::fs::read_dir(from).map_err(io)? {
        let e = e.map_err(io)?;
        let target = to.join(e.file_name());
        if e.file_type().map_err(io)?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target).map_err(io)?;
        }
    }
    Ok(())
}

/// `fdatasync` every file under `dir` (recursively) and `fsync` the folders themselves.
fn sync_tree(dir: &Path) -> Result<()> {
    sync_folder(dir, true)
}

/// `Ok` for a file or folder that is gone: sled removes files while a sync walks its folder
/// (the blob files of large values, under `blobs/`, replaced at every write of the value), and
/// a file removed needs no sync (its removal is made durable by its folder's, which follows).
fn unless_gone(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// [`sync_tree`] of `dir`; a subfolder (`top` false) that is gone is skipped.
fn sync_folder(dir: &Path, top: bool) -> Result<()> {
    let io = |e: std::io::Error| Error::storage(format!("syncing {}", dir.display()), e);
    let entries = match std::fs::read_dir(dir) {
        Err(e) if !top && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        entries => entries.map_err(io)?,
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => sync_folder(&path, false)?,
            Ok(_) => unless_gone(std::fs::File::open(&path).and_then(|f| f.sync_data())).map_err(io)?,
            Err(e) => unless_gone(Err(e)).map_err(io)?,
        }
    }
    let folder = std::fs::File::open(dir).and_then(|f| f.sync_all());
    if top { folder.map_err(io) } else { unless_gone(folder).map_err(io) }
}

/// A sled or decoding failure, with its source kept for the log.
fn st<E: Into<crate::error::Source>>(e: E) -> Error {
    Error::storage("sled", e)
}

fn tx_err(e: TransactionError<Error>) -> Error {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => st(e),
    }
}

fn be(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&v[..8.min(v.len())]);
    u64::from_be_bytes(b)
}

/// `prefix` ++ `id` (big-endian): the key of an index entry, a feedback or a price estimate.
fn id_key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Adds an adoption just written (its record and its commune index entry) to the ledger.
fn tally_adoption(ledger: &mut LedgerState, a: &Adoption) {
    ledger.add(Kind::Adoptions, &a.id.to_be_bytes(), a.id);
}

/// Counts down the threads still writing when one of them ends (returns, fails or panics).
struct Leaving<'a>(&'a AtomicUsize);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// The JSON of a `meta` value that is not a record (the demo description).
fn meta_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(st)
}

fn abort(e: Error) -> ConflictableTransactionError<Error> {
    ConflictableTransactionError::Abort(e)
}

/// An `Idempotency-Key` of a write request: the key scoped to the request's route, and a
/// fingerprint of its body, so that a retry returns the first result and a reuse of the key for
/// another request is refused.
#[derive(Clone, Debug)]
pub struct Idempotency {
    /// `METHOD path` of the request.
    pub scope: String,
    /// The header value (1-255 visible ASCII characters, checked by the caller).
    pub key: String,
    /// Fingerprint of the request body.
    pub fingerprint: u64,
}

impl Idempotency {
    fn store_key(&self) -> Vec<u8> {
        [IDEM_PREFIX, format!("{}\n{}", self.scope, self.key).as_bytes()].concat()
    }

    fn check(&self, rec: &IdemRecord) -> Result<()> {
        if rec.fingerprint == self.fingerprint { Ok(()) } else { Err(Error::Invalid("this Idempotency-Key was already used for a different request".into())) }
    }
}

/// Description of the simulated history held by the store, if any.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DemoInfo {
    /// Seed of the simulation.
    pub seed: u64,
    /// Last simulated day.
    pub end: chrono::NaiveDate,
    /// Adoptions written.
    pub adoptions: usize,
    /// Feedback records written.
    pub feedback: usize,
    /// Dates the simulation made up where the sources give none: when each product (and each
    /// undated generation) can first be adopted in the demo history. Empty for a store
    /// loaded before they were recorded.
    #[serde(default)]
    pub simulated_dates: Vec<crate::core::simulate::SimulatedDate>,
}

/// An index snapshot read in the background from the start of [`Store::open`], against the
/// fingerprint the ledger file promised.
struct Prefetch {
    /// The fingerprint it was read against.
    expected: snapshot::Fingerprint,
    /// The reading.
    job: std::thread::JoinHandle<SnapshotRead>,
}

impl Prefetch {
    /// Its result when it was read against `expected` (the store's fingerprint once counted);
    /// `None` otherwise, or when the reader panicked (the caller then reads the snapshot itself).
    fn result_for(self, expected: &snapshot::Fingerprint) -> Option<SnapshotRead> {
        let same = self.expected == *expected;
        let read = self.job.join().ok();
        if !same {
            tracing::info!(reason = %self.expected.difference(expected), "the snapshot read during the open was of another store state: read again");
        }
        read.filter(|_| same)
    }
}

/// The index and the number of records read from a snapshot, or why it was not used.
type SnapshotRead = std::result::Result<(AdoptionIndex, u64), snapshot::Miss>;

/// Feedback records on their way into an index, gathered while they are of one adoption and
/// added as one run ([`AdoptionIndex::add_feedback_run`]).
#[derive(Default)]
struct FeedbackRun(Vec<Feedback>);

impl FeedbackRun {
    /// Takes `f`, first adding the run gathered when `f` is of another adoption; returns the
    /// records of that run the index left out (unknown adoption, repeated id).
    fn push(&mut self, h: &mut AdoptionIndex, f: Feedback) -> u64 {
        let left_out = match self.0.last() {
            Some(last) if last.adoption_id != f.adoption_id => self.end(h),
            _ => 0,
        };
        self.0.push(f);
        left_out
    }

    /// Adds the run gathered (its vector kept for the next); returns the records the index
    /// left out.
    fn end(&mut self, h: &mut AdoptionIndex) -> u64 {
        let n = self.0.len();
        (n - h.add_feedback_run(&mut self.0)) as u64
    }
}

/// Reads the index from the snapshot at `path` when it is of `expected` ([`index_from_snapshot`]).
fn read_snapshot(path: &Path, expected: &snapshot::Fingerprint, progress: &mut dyn FnMut(u64, u64)) -> SnapshotRead {
    let reader = snapshot::Reader::open(path, expected, records::FORMAT)?;
    index_from_snapshot(reader, progress).map_err(snapshot::Miss::Damaged)
}

/// Builds the index from a snapshot whose header matched; `Err` with the reason when the file
/// turns out damaged (the index built so far is dropped). Returns it with the records read.
fn index_from_snapshot(mut r: snapshot::Reader, progress: &mut dyn FnMut(u64, u64)) -> std::result::Result<(AdoptionIndex, u64), String> {
    let (adoptions, total) = (r.header.adoptions, r.header.adoptions + r.header.feedback);
    let why = |m: snapshot::Miss| match m {
        snapshot::Miss::Damaged(s) | snapshot::Miss::Stale(s) => s,
        snapshot::Miss::Absent => "the file went away".into(),
    };
    let mut h = AdoptionIndex::default();
    let (mut done, mut orphans) = (0u64, 0u64);
    // The feedback records come adoption by adoption: each adoption's run is added at once.
    let mut run = FeedbackRun::default();
    while let Some(v) = r.next_value().map_err(why)? {
        if done < adoptions {
            h.add_adoption(records::decode(v).map_err(|e| e.to_string())?);
        } else {
            orphans += run.push(&mut h, records::decode(v).map_err(|e| e.to_string())?);
        }
        done += 1;
        if done.is_multiple_of(PROGRESS_EVERY) {
            progress(done, total);
        }
    }
    orphans += run.end(&mut h);
    r.finish().map_err(why)?;
    progress(done, done);
    if orphans > 0 {
        tracing::warn!(orphans, "feedback records without their adoption (or repeated) were left out of the index");
    }
    h.shrink_to_fit();
    Ok((h, done))
}

impl Store {
    /// Opens (or creates) the store in `dir`, after the checks of the module doc (interrupted
    /// snapshots set aside, records counted against the ledger). Errors: `Storage` when the
    /// folder cannot be created or the files are locked by another process or unreadable;
    /// `StoreDamaged` when acknowledged records are missing (the message says which and what
    /// to do).
    ///
    /// A store of an older format is migrated first ([`Store::open_with_progress`]); a store of
    /// a format newer than this program reads is refused with `Storage` (the message says its
    /// version and what to do).
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_with_progress(dir, &mut |_, _, _| {}).map(|(s, _)| s)
    }

    /// [`Store::open`], saying what a migration did (`None`: none was needed) and calling
    /// `progress(step, done, total)` during one: step `backup before migration` (records
    /// written to the backup), then `migration` (values read), then `grouping feedback`
    /// (feedback records read). A migration of a store of format 0 (JSON values) or 1 (one
    /// feedback record per key): first a backup,
    /// `DATA_DIR/backups/voisinage-YYYYMMDD-HHMMSS-pre-migrate.jsonl.gz` (the [`crate::backup`]
    /// format, read back whole before going on); then every JSON value is rewritten in postcard,
    /// in batches (keys unchanged); then the feedback records are grouped per adoption, in
    /// batches (the ledger counts records by the same keys either way, so it still holds); then,
    /// flushed, the `meta` key `format` is written last. A crash at any point leaves a store
    /// that reads whole (each value says its format by its first byte, each feedback key by its
    /// length whether it holds a group or one record) and that the next open finishes migrating
    /// (with one more backup). Errors: those of [`Store::open`]; `Io`
    /// or `Storage` when the backup cannot be written (nothing is migrated then).
    pub fn open_with_progress(dir: &Path, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<(Store, Option<Migration>)> {
        let (store, _) = Store::open_with(dir, OnDamage::Refuse)?;
        let migration = store.migrate_if_needed(dir, progress)?;
        Ok((store, migration))
    }

    /// Reports the state of the store in `dir` without changing anything under `dir`: refuses
    /// when a running service holds the store, else copies the sled folder and the ledger into
    /// a temporary folder (under `TMPDIR`: it needs room for a copy of the store) and opens
    /// the copy. Errors: `Storage` when there is no store, it is in use, or it cannot be copied
    /// or opened at all.
    pub fn check(dir: &Path) -> Result<IntegrityReport> {
        let store_dir = store_dir(dir);
        let db = store_dir.join("db");
        let lock = std::fs::File::open(&db).map_err(|e| Error::storage(format!("no store in {} (reading {})", dir.display(), db.display()), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::storage_state(format!(
                    "the service is running on {}: ask it (GET /health/ready), or check a backup restored elsewhere",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::storage(format!("locking {}", db.display()), e)),
        }
        let copy = tempfile::Builder::new().prefix("voisinage-check-").tempdir().map_err(|e| Error::storage("making a temporary folder", e))?;
        copy_tree(&store_dir, &self::store_dir(copy.path()))?;
        let ledger_path = ledger::path(dir);
        if ledger_path.exists() {
            std::fs::copy(&ledger_path, ledger::path(copy.path())).map_err(|e| Error::storage(format!("copying {}", ledger_path.display()), e))?;
        }
        drop(lock);
        let (store, report) = Store::open_with(copy.path(), OnDamage::Report)?;
        drop(store);
        Ok(report)
    }

    /// Whether the data folder `dir` holds a store (its `store/` folder), without opening it.
    pub fn exists_in(dir: &Path) -> bool {
        store_dir(dir).is_dir()
    }

    /// Accepts, knowingly, the loss of acknowledged records: opens the store in `dir`, rewrites
    /// its ledger to what it holds and sets the next ids past every id ever acknowledged, so that
    /// lost ids are never given again. Logs what was given up; returns the report of the store
    /// as it was found. Errors: `Storage` (locked by a running service, unreadable).
    pub fn accept_loss(dir: &Path) -> Result<IntegrityReport> {
        Store::open_with(dir, OnDamage::Accept).map(|(_, r)| r)
    }

    fn open_with(dir: &Path, on_damage: OnDamage) -> Result<(Store, IntegrityReport)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::storage(format!("creating {}", dir.display()), e))?;
        let store_dir = store_dir(dir);
        // Before sled opens (it writes into its folder when it does).
        let sealed = on_damage == OnDamage::Refuse
            && store_dir.is_dir()
            && !folder_in_use(&store_dir)
            && seal::take(dir, &store_dir, &ledger::path(dir)).unwrap_or_else(|e| {
                tracing::warn!(error = %e.chain(), "store seal not checked: the records are counted");
                false
            });
        let mut set_aside = Vec::new();
        if !folder_in_use(&store_dir) {
            for snap in snapshot_files(&store_dir)?.into_iter().filter(|p| p.to_string_lossy().ends_with(".generating")) {
                let to = move_aside(dir, &snap)?;
                tracing::warn!(from = %snap.display(), to = %to.display(), "an interrupted sled snapshot (left by a crash while sled wrote it) was moved aside; sled opens from its previous snapshot and its log");
                set_aside.push(to);
            }
        }
        let opening = |e: sled::Error| Error::storage(format!("opening {}", dir.display()), e);
        let db = match open_sled(&store_dir) {
            Err(sled::Error::Corruption { .. }) if !snapshot_files(&store_dir)?.is_empty() => {
                tracing::warn!("sled reports corrupted data: its snapshot files are moved aside and the store is opened again from its log");
                for snap in snapshot_files(&store_dir)? {
                    let to = move_aside(dir, &snap)?;
                    tracing::warn!(from = %snap.display(), to = %to.display(), "sled snapshot moved aside");
                    set_aside.push(to);
                }
                let db = open_sled(&store_dir).map_err(opening)?;
                tracing::info!("sled opened from its log; the ledger check decides whether that recovery is complete");
                db
            }
            r => r.map_err(opening)?,
        };
        let store = Store {
            dir: store_dir,
            sync: Arc::new(Syncer::default()),
            snapshot_armed: Arc::new(AtomicBool::new(true)),
            ledger: Arc::new(Ledger::default()),
            prefetched: Arc::default(),
            meta: db.open_tree("meta").map_err(st)?,
            adoptions: db.open_tree("adoptions").map_err(st)?,
            by_commune: db.open_tree("adoptions_by_commune").map_err(st)?,
            feedback: db.open_tree("feedback").map_err(st)?,
            tokens: db.open_tree("tokens").map_err(st)?,
            token_hashes: db.open_tree("token_hashes").map_err(st)?,
            price_estimates: db.open_tree("price_estimates").map_err(st)?,
            db,
        };
        let format = store.format()?;
        if format > records::FORMAT {
            return Err(records::too_new(&format!("the store in {}", dir.display()), format));
        }
        if on_damage == OnDamage::Refuse && format == records::FORMAT {
            store.prefetch_index(dir)?;
        }
        let started = std::time::Instant::now();
        let report = store.recover(dir, set_aside, on_damage, sealed)?;
        let records: u64 = report.kinds.iter().map(|k| k.held + k.after_ledger).sum();
        if report.sealed {
            tracing::info!(records, format, ms = started.elapsed().as_millis() as u64, "store opened, unchanged since its seal");
        } else {
            tracing::info!(records, format, ms = started.elapsed().as_millis() as u64, "store opened and its records counted against the ledger");
        }
        Ok((store, report))
    }

    /// The store's format version (`meta` `format`; [`records::FORMAT_JSON`] without it).
    fn format(&self) -> Result<u8> {
        Ok(self.meta.get(FORMAT_KEY).map_err(st)?.and_then(|v| v.first().copied()).unwrap_or(records::FORMAT_JSON))
    }

    /// Whether no tree holds a record (a new store).
    fn holds_no_record(&self) -> Result<bool> {
        let idem = self.meta.scan_prefix(IDEM_PREFIX).next().transpose().map_err(st)?;
        Ok([&self.adoptions, &self.feedback, &self.tokens, &self.price_estimates].iter().all(|t| t.is_empty()) && idem.is_none())
    }

    /// Migrates the store when its format is older than [`records::FORMAT`] (a new, empty
    /// store is simply marked as of the current format).
    fn migrate_if_needed(&self, data_dir: &Path, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<Option<Migration>> {
        if self.format()? == records::FORMAT {
            return Ok(None);
        }
        if self.holds_no_record()? {
            self.meta.insert(FORMAT_KEY, &[records::FORMAT]).map_err(st)?;
            self.flush()?;
            return Ok(None);
        }
        self.migrate(data_dir, progress).map(Some)
    }

    /// The migration of [`Store::open_with_progress`].
    fn migrate(&self, data_dir: &Path, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<Migration> {
        let from = self.format()?;
        let started = std::time::Instant::now();
        tracing::info!(data_dir = %data_dir.display(), from, to = records::FORMAT, "the store is of an older format: it is backed up, then migrated");
        remove_snapshot(data_dir)?;
        let backup = self.backup_before_migration(data_dir, progress)?;
        let (records, rewritten) = self.upgrade_values(None, &mut |done, total| progress("migration", done, total))?;
        self.flush()?;
        progress("migration", records, records);
        let grouped = self.group_feedback(None, &mut |done, total| progress("grouping feedback", done, total))?;
        self.flush()?;
        self.drop_by_commune()?;
        // Last: a crash before this leaves a store that the next open migrates again.
        self.meta.insert(FORMAT_KEY, &[records::FORMAT]).map_err(st)?;
        self.flush()?;
        let m = Migration { from, to: records::FORMAT, backup, records, rewritten: rewritten + grouped };
        tracing::info!(
            from = m.from,
            to = m.to,
            records = m.records,
            rewritten = m.rewritten,
            backup = %m.backup.display(),
            seconds = started.elapsed().as_secs(),
            size_on_disk = self.size_on_disk(),
            "store migrated"
        );
        Ok(m)
    }

    /// Writes a backup of the store into `DATA_DIR/backups/` before a migration, reads it back
    /// whole, and returns its path.
    fn backup_before_migration(&self, data_dir: &Path, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<PathBuf> {
        let folder = data_dir.join("backups");
        let created = chrono::Utc::now();
        let name = format!("voisinage-{}-pre-migrate.jsonl.gz", created.format("%Y%m%d-%H%M%S"));
        let (path, partial) = (folder.join(&name), folder.join(format!("{name}.partial")));
        let io = |e: std::io::Error| Error::storage(format!("writing the backup {}", partial.display()), e);
        let result = (|| {
            std::fs::create_dir_all(&folder).map_err(io)?;
            let mut file = std::fs::File::create(&partial).map_err(io)?;
            let step = "backup before migration";
            let written = crate::backup::write_with_progress(self, &mut file, created, &mut |done, total| progress(step, done, total))?;
            file.sync_all().map_err(io)?;
            drop(file);
            let read = crate::backup::read(std::io::BufReader::new(std::fs::File::open(&partial).map_err(io)?), &mut |_| Ok(()))?;
            if read.counts != written.counts {
                return Err(Error::storage_state(format!("the backup {} reads back {}, {} were written", partial.display(), read.counts, written.counts)));
            }
            std::fs::rename(&partial, &path).map_err(io)?;
            std::fs::File::open(&folder).and_then(|d| d.sync_all()).map_err(io)?;
            tracing::info!(path = %path.display(), records = written.counts.total(), "backup written before the migration");
            Ok(path.clone())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// Rewrites every value not of the current format, tree by tree in batches of
    /// [`MIGRATION_BATCH`] (each batch atomic), stopping after `limit` values rewritten when
    /// given (tests: a migration cut short). Returns the values read and rewritten.
    fn upgrade_values(&self, limit: Option<u64>, progress: &mut dyn FnMut(u64, u64)) -> Result<(u64, u64)> {
        use records::upgrade;
        let total = self.export_count();
        let (mut done, mut rewritten) = (0u64, 0u64);
        type Upgrade = fn(&[u8], &[u8]) -> Result<Option<Vec<u8>>>;
        let trees: [(&sled::Tree, &[u8], Upgrade); 5] = [
            (&self.adoptions, b"", |_, v| upgrade::<Adoption>(v)),
            // Groups (format 2) are written in the current format; single records are upgraded
            // here, then grouped by `group_feedback`.
            (&self.feedback, b"", |k, v| if k.len() == GROUP_KEY { Ok(None) } else { upgrade::<Feedback>(v) }),
            (&self.tokens, b"", |_, v| upgrade::<Token>(v)),
            (&self.price_estimates, b"", |_, v| upgrade::<PriceEstimate>(v)),
            (&self.meta, IDEM_PREFIX, |_, v| upgrade::<IdemRecord>(v)),
        ];
        for (tree, prefix, upgrade) in trees {
            let mut batch = sled::Batch::default();
            let mut pending = 0usize;
            for kv in tree.scan_prefix(prefix) {
                if limit.is_some_and(|l| rewritten >= l) {
                    break;
                }
                let (k, v) = kv.map_err(st)?;
                if let Some(new) = upgrade(&k, &v)? {
                    batch.insert(k, new);
                    pending += 1;
                    rewritten += 1;
                }
                done += 1;
                if pending == MIGRATION_BATCH {
                    tree.apply_batch(std::mem::take(&mut batch)).map_err(st)?;
                    pending = 0;
                }
                if done.is_multiple_of(PROGRESS_EVERY) {
                    progress(done, total.max(done));
                }
            }
            if pending > 0 {
                tree.apply_batch(batch).map_err(st)?;
            }
        }
        Ok((done, rewritten))
    }

    /// Format 2: empties `adoptions_by_commune` and its count in the ledger. The marker
    /// [`DROPPING_BY_COMMUNE`] is made durable first and removed last: a crash in between
    /// leaves it, and the next open ([`Store::recover`]) finishes before counting, so that the
    /// tree and the ledger never disagree at a count.
    fn drop_by_commune(&self) -> Result<()> {
        self.meta.insert(DROPPING_BY_COMMUNE, &[1]).map_err(st)?;
        self.flush()?;
        self.by_commune.clear().map_err(st)?;
        self.tally().clear(Kind::ByCommune);
        // sled flushed, then the ledger written without the count.
        self.flush()?;
        self.meta.remove(DROPPING_BY_COMMUNE).map_err(st)?;
        self.flush()
    }

    /// Format 2: rewrites the feedback records stored one per key (16-byte keys) as one group
    /// per adoption (8-byte key, records in id order, merged with a group a previous, cut-short
    /// run wrote), in batches of [`MIGRATION_BATCH`] adoptions; each batch writes the groups and
    /// removes their single records atomically, so that a crash leaves every record in exactly
    /// one place. Stops after `limit` groups when given (tests). `progress(records read,
    /// records)`. Returns the groups written.
    fn group_feedback(&self, limit: Option<u64>, progress: &mut dyn FnMut(u64, u64)) -> Result<u64> {
        let total = self.tally().tally(Kind::Feedback).count;
        let mut batch = sled::Batch::default();
        let (mut pending, mut groups, mut done) = (0usize, 0u64, 0u64);
        // The adoption being read: its key, its records, the single keys they came from.
        let mut current: Option<(sled::IVec, Vec<Feedback>, Vec<sled::IVec>)> = None;
        let close = |c: (sled::IVec, Vec<Feedback>, Vec<sled::IVec>), batch: &mut sled::Batch| -> Result<bool> {
            let (adoption, mut fs, singles) = c;
            if singles.is_empty() {
                return Ok(false);
            }
            fs.sort_by_key(|f| f.id);
            fs.dedup_by_key(|f| f.id);
            // The first GROUP_MAX records in the group; the others stay alone.
            let grouped = &fs[..fs.len().min(GROUP_MAX)];
            let last = grouped.last().map_or(0, |f| f.id);
            batch.insert(adoption, records::encode_group(grouped)?);
            singles.into_iter().filter(|k| be(&k[GROUP_KEY..]) <= last).for_each(|k| batch.remove(k));
            Ok(true)
        };
        for kv in self.feedback.iter() {
            if limit.is_some_and(|l| groups >= l) {
                current = None;
                break;
            }
            let (k, v) = kv.map_err(st)?;
            let fs = feedback_entries(&k, &v)?;
            done += fs.len() as u64;
            let adoption = sled::IVec::from(&k[..GROUP_KEY]);
            if let Some(c) = current.take_if(|c| c.0 != adoption)
                && close(c, &mut batch)?
            {
                groups += 1;
                pending += 1;
                if pending == MIGRATION_BATCH {
                    self.feedback.apply_batch(std::mem::take(&mut batch)).map_err(st)?;
                    pending = 0;
                }
            }
            let c = current.get_or_insert_with(|| (adoption, Vec::new(), Vec::new()));
            c.1.extend(fs);
            if k.len() == SINGLE_KEY {
                c.2.push(k);
            }
            if done.is_multiple_of(PROGRESS_EVERY) {
                progress(done, total.max(done));
            }
        }
        if let Some(c) = current
            && close(c, &mut batch)?
        {
            groups += 1;
        }
        self.feedback.apply_batch(batch).map_err(st)?;
        progress(done, done);
        Ok(groups)
    }

    /// Start-up repairs and checks: a demo load interrupted by a crash is wiped (the demo is only
    /// ever loaded into an empty store, so nothing else is lost); the records are counted
    /// against the ledger; the next ids are set past every id present and every id the ledger
    /// saw given, so that no new record can take the id of an old (or lost) one; the ledger is
    /// written.
    fn recover(&self, data_dir: &Path, set_aside: Vec<PathBuf>, on_damage: OnDamage, sealed: bool) -> Result<IntegrityReport> {
        let ledger_path = ledger::path(data_dir);
        let found = ledger::read(&ledger_path)?;
        let mut acknowledged = match &found {
            Found::Slot { state, .. } => Some(state.clone()),
            Found::Missing | Found::Unreadable => None,
        };
        if self.meta.get(DEMO_LOADING).map_err(st)?.is_some() {
            tracing::warn!("an interrupted demo load was found: its partial data is removed");
            let trees = [(&self.adoptions, Kind::Adoptions), (&self.by_commune, Kind::ByCommune), (&self.feedback, Kind::Feedback)];
            self.empty_behind_marker(&trees, &[b"next_id", b"demo", DEMO_LOADING], &mut acknowledged, &ledger_path)?;
        }
        if self.meta.get(DROPPING_BY_COMMUNE).map_err(st)?.is_some() {
            tracing::info!("a migration was emptying adoptions_by_commune: finished before the count");
            self.empty_behind_marker(&[(&self.by_commune, Kind::ByCommune)], &[DROPPING_BY_COMMUNE], &mut acknowledged, &ledger_path)?;
        }
        // Without a ledger every record is above the high-water ids (1): all are accepted.
        let base = acknowledged.clone().unwrap_or_default();
        // A store sealed at its last clean stop and byte for byte the same since holds what its
        // ledger says (`seal`): not counted again. (An interrupted demo load above, or no
        // ledger, and it is counted.)
        let sealed = sealed && acknowledged.is_some() && matches!(found, Found::Slot { .. }) && self.meta.get(DEMO_LOADING).map_err(st)?.is_none();
        let census = if sealed {
            tracing::info!("the store is as it was sealed at its last clean stop: its records are not counted again");
            Census::of_ledger(&base)
        } else {
            self.census(&base)?
        };
        let mut report = IntegrityReport::new(&found, acknowledged.as_ref(), &census, set_aside);
        report.sealed = sealed;
        match (report.verdict, on_damage) {
            (_, OnDamage::Report) => return Ok(report),
            (Verdict::Damaged, OnDamage::Refuse) => return Err(Error::StoreDamaged(report.to_string())),
            (Verdict::Damaged, OnDamage::Accept) => {
                tracing::warn!(report = %report.findings(), "loss accepted: the ledger is rewritten to the records the store holds; lost ids are not given again");
            }
            _ => {}
        }
        let mut state = census.as_ledger(&base);
        for (key, space) in [
            (&b"next_id"[..], ledger::IdSpace::Records),
            (b"next_token_id", ledger::IdSpace::Tokens),
            (b"next_price_estimate_id", ledger::IdSpace::PriceEstimates),
        ] {
            let stored = self.meta.get(key).map_err(st)?.map_or(1, |v| be(&v));
            state.raise(space, stored);
            if stored < state.high_water(space) {
                self.meta.insert(key, &state.high_water(space).to_be_bytes()).map_err(st)?;
            }
        }
        if matches!(found, Found::Missing) {
            let records: u64 = ledger::KINDS.iter().map(|k| state.tally(*k).count).sum();
            if records == 0 {
                tracing::info!(path = %ledger_path.display(), "ledger created for an empty store");
            } else {
                tracing::info!(path = %ledger_path.display(), records, "the store had no ledger: one was made from the records it holds");
            }
        }
        *self.tally() = state.clone();
        self.db.flush().map_err(st)?;
        sync_tree(&self.dir)?;
        *self.ledger.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(LedgerFile::create(&ledger_path, &state)?);
        Ok(report)
    }

    /// The end of a job a crash interrupted, at start, before the count: empties `trees`, clears
    /// their kinds in the `acknowledged` ledger state and writes it, then removes the `meta`
    /// keys (the job's marker last) and flushes. A crash in between leaves the marker: the next
    /// start does it all again.
    fn empty_behind_marker(
        &self,
        trees: &[(&sled::Tree, Kind)],
        meta_keys: &[&[u8]],
        acknowledged: &mut Option<LedgerState>,
        ledger_path: &Path,
    ) -> Result<()> {
        for (t, _) in trees {
            t.clear().map_err(st)?;
        }
        if let Some(a) = acknowledged {
            trees.iter().for_each(|(_, k)| a.clear(*k));
            LedgerFile::create(ledger_path, a)?;
        }
        for k in meta_keys {
            self.meta.remove(k).map_err(st)?;
        }
        self.flush()
    }

    /// One pass over the keys of every tree, counting records against `l`'s high-water ids.
    fn census(&self, l: &LedgerState) -> Result<Census> {
        // Two passes in parallel (the largest tree, feedback, alone; the others together): the
        // census is a sum, merged in any order (`Census::merge`). (More passes were slower on
        // two cores: sled's threads contend.)
        let keyed = |c: &mut Census, kind: Kind, tree: &sled::Tree| -> Result<()> {
            for k in tree.iter().keys() {
                let k = k.map_err(st)?;
                c.add(l, kind, &k, be(&k[k.len().saturating_sub(8)..]));
            }
            Ok(())
        };
        // Feedback records are counted by their 16-byte key whether stored alone (formats 0
        // and 1) or in their adoption's group (format 2: the group is decoded for its ids; a
        // group that does not decode counts none of its records, which the ledger then misses).
        let grouped = |c: &mut Census| -> Result<()> {
            for kv in self.feedback.iter() {
                let (k, v) = kv.map_err(st)?;
                if k.len() != GROUP_KEY {
                    c.add(l, Kind::Feedback, &k, be(&k[k.len().saturating_sub(8)..]));
                    continue;
                }
                match records::decode::<FeedbackGroup>(&v) {
                    Ok(g) => g.0.iter().for_each(|f| c.add(l, Kind::Feedback, &id_key(&k, f.id), f.id)),
                    Err(e) => tracing::warn!(adoption = be(&k), error = %e, "a feedback group that does not decode: its records are not counted"),
                }
            }
            Ok(())
        };
        let (feedback, rest) = std::thread::scope(|s| {
            let feedback = s.spawn(|| {
                let started = std::time::Instant::now();
                let mut c = Census::new(l);
                let r = grouped(&mut c).map(|()| c);
                tracing::debug!(ms = started.elapsed().as_millis() as u64, "feedback records counted");
                r
            });
            let started = std::time::Instant::now();
            let rest = (|| {
                let mut c = Census::new(l);
                for (kind, tree) in [
                    (Kind::Adoptions, &self.adoptions),
                    (Kind::ByCommune, &self.by_commune),
                    (Kind::Tokens, &self.tokens),
                    (Kind::PriceEstimates, &self.price_estimates),
                ] {
                    keyed(&mut c, kind, tree)?;
                }
                for kv in self.token_hashes.iter() {
                    let (k, v) = kv.map_err(st)?;
                    c.add(l, Kind::TokenHashes, &k, be(&v));
                }
                for kv in self.meta.scan_prefix(IDEM_PREFIX) {
                    let (k, v) = kv.map_err(st)?;
                    c.add(l, Kind::IdempotencyKeys, &k, records::decode::<IdemRecord>(&v).map_or(0, |r| r.id));
                }
                Ok::<_, Error>(c)
            })();
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "other records counted");
            (feedback.join(), rest)
        });
        let feedback = feedback.map_err(|_| Error::storage_state("the census of the feedback records failed (a thread panicked)"))??;
        let mut c = rest?;
        c.merge(feedback);
        Ok(c)
    }

    /// The in-memory ledger, locked.
    fn tally(&self) -> MutexGuard<'_, LedgerState> {
        self.ledger.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes everything to disk: sled flush, then `fdatasync` of each file of the store and
    /// `fsync` of its folders, then the ledger.
    pub fn flush(&self) -> Result<()> {
        let _one_at_a_time = self.sync.synced.lock().unwrap_or_else(|e| e.into_inner());
        self.flush_locked()
    }

    /// [`Store::flush`], the caller holding `sync.synced`.
    fn flush_locked(&self) -> Result<()> {
        // Taken before sled's flush: everything it counts was committed before, so is covered.
        let start = std::time::Instant::now();
        let state = self.tally().clone();
        self.db.flush().map_err(st)?;
        sync_tree(&self.dir)?;
        if let Some(f) = self.ledger.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f.write(&state)?;
        }
        self.sync.syncs.fetch_add(1, Ordering::Relaxed);
        if let Some(observe) = self.sync.observer.get() {
            observe(start.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Sets the function told the duration of every later sync (seconds); only the first call
    /// takes effect. Returns whether this one did.
    pub fn on_sync(&self, observer: SyncObserver) -> bool {
        self.sync.observer.set(observer).is_ok()
    }

    /// The readiness probe of the store: writes the current time under the `meta` key `probe`
    /// (8 bytes, nanoseconds since 1970, big-endian) and makes it durable (flush and sync), as
    /// a write would. Errors: `Storage` when sled or the disk refuses (sled keeps a write error
    /// until the store is reopened, so a store that failed once fails here until a restart).
    pub fn probe(&self) -> Result<()> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        self.meta.insert(b"probe", &now.to_be_bytes()).map_err(st)?;
        self.flush()
    }

    /// Whether the disk under the data folder accepts writes: writes and syncs a 1 MiB file
    /// `.disk-probe` beside the store, then removes it. Independent of sled, so it tells when a
    /// disk that was full has room again. Errors: `Storage` with the I/O error.
    pub fn disk_probe(&self) -> Result<()> {
        use std::io::Write;
        let Some(data_dir) = self.dir.parent() else { return Err(Error::storage_state("the store has no data folder")) };
        let path = data_dir.join(".disk-probe");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&path)?;
            f.write_all(&vec![0u8; DISK_PROBE_BYTES])?;
            f.sync_all()
        };
        let result = write();
        let _ = std::fs::remove_file(&path);
        result.map_err(|e| Error::storage(format!("writing a probe file in {}", data_dir.display()), e))
    }

    /// Makes a committed write durable, sharing one [`Store::flush`] among concurrent writers.
    fn durable(&self) -> Result<()> {
        let ticket = self.sync.written.fetch_add(1, Ordering::SeqCst) + 1;
        let mut done = self.sync.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *done >= ticket {
            return Ok(()); // a sync that started after our commit already finished
        }
        let target = self.sync.written.load(Ordering::SeqCst);
        self.flush_locked()?;
        *done = target;
        Ok(())
    }

    /// Number of syncs run since the store was opened.
    pub fn syncs(&self) -> u64 {
        self.sync.syncs.load(Ordering::Relaxed)
    }

    /// Whether the store holds no adoption.
    pub fn is_empty(&self) -> bool {
        self.adoptions.is_empty()
    }

    /// All adoptions and feedback, in key order (to rebuild the in-memory index).
    pub fn load(&self) -> Result<(Vec<Adoption>, Vec<Feedback>)> {
        let a = self.adoptions.iter().values().map(|v| v.map_err(st).and_then(|v| records::decode(&v))).collect::<Result<Vec<Adoption>>>()?;
        let mut f = Vec::new();
        for kv in self.feedback.iter() {
            let (k, v) = kv.map_err(st)?;
            f.extend(feedback_entries(&k, &v)?);
        }
        Ok((a, f))
    }

    /// Builds the in-memory index from every adoption and feedback record, decoding one record
    /// at a time (no intermediate copy of the whole store). Errors: `Storage` on an unreadable
    /// record.
    pub fn load_index(&self) -> Result<AdoptionIndex> {
        self.load_index_with_progress(&mut |_, _| {})
    }

    /// [`Store::load_index`], calling `progress(records read, records in the store)` every
    /// [`PROGRESS_EVERY`] records (the total from the ledger's counts, read without a scan), the
    /// last call with `done == total` (the records actually read).
    ///
    /// Reads `DATA_DIR/index.snapshot` ([`snapshot`]) instead of the trees when its
    /// fingerprint is the store's now (the ledger state checked at open and the write counter);
    /// else, or when the file turns out damaged (a warning), decodes every record, logging why
    /// (`snapshot absent`, `snapshot stale`).
    pub fn load_index_with_progress(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<AdoptionIndex> {
        let started = std::time::Instant::now();
        let data_dir = self.data_dir()?;
        let path = snapshot::path(&data_dir);
        let expected = self.fingerprint()?;
        let prefetched = self.prefetched.lock().unwrap_or_else(|e| e.into_inner()).take();
        let read = match prefetched.and_then(|p| p.result_for(&expected)) {
            Some(read) => {
                if let Ok((_, n)) = &read {
                    progress(*n, *n);
                }
                read
            }
            None => read_snapshot(&path, &expected, progress),
        };
        match read {
            Ok((h, n)) => {
                tracing::info!(path = %path.display(), records = n, ms = started.elapsed().as_millis() as u64, "index read from the snapshot");
                return Ok(h);
            }
            Err(snapshot::Miss::Absent) => tracing::info!(path = %path.display(), "snapshot absent: index rebuilt from the records"),
            Err(snapshot::Miss::Stale(why)) => tracing::info!(path = %path.display(), reason = %why, "snapshot stale: index rebuilt from the records"),
            Err(snapshot::Miss::Damaged(why)) => {
                tracing::warn!(path = %path.display(), reason = %why, "snapshot damaged: ignored, index rebuilt from the records")
            }
        }
        let h = self.index_from_records(progress)?;
        tracing::info!(ms = started.elapsed().as_millis() as u64, "index rebuilt from the records");
        Ok(h)
    }

    /// Starts reading the index snapshot in the background, expecting the fingerprint of the
    /// ledger file as it is on disk (the store's own, once its records are counted, when
    /// nothing was lost): the two take about as long, and run on two cores. A snapshot of
    /// another fingerprint is not read past its header.
    fn prefetch_index(&self, data_dir: &Path) -> Result<()> {
        let Found::Slot { state, .. } = ledger::read(&ledger::path(data_dir))? else { return Ok(()) };
        let writes = self.meta.get(WRITES_KEY).map_err(st)?.map_or(0, |v| be(&v));
        let expected = snapshot::Fingerprint::new(&state, writes);
        let path = snapshot::path(data_dir);
        let job = {
            let expected = expected.clone();
            std::thread::Builder::new()
                .name("snapshot-read".into())
                .spawn(move || {
                    let started = std::time::Instant::now();
                    let read = read_snapshot(&path, &expected, &mut |_, _| {});
                    tracing::debug!(ms = started.elapsed().as_millis() as u64, ok = read.is_ok(), "snapshot read during the open");
                    read
                })
                .map_err(|e| Error::storage("starting the snapshot reader", e))?
        };
        *self.prefetched.lock().unwrap_or_else(|e| e.into_inner()) = Some(Prefetch { expected, job });
        Ok(())
    }

    /// The data folder (the sled folder's parent).
    fn data_dir(&self) -> Result<PathBuf> {
        self.dir.parent().map(Path::to_path_buf).ok_or_else(|| Error::storage_state("the store has no data folder"))
    }

    /// The state a snapshot is checked against: the in-memory ledger (checked against the
    /// records at open, kept by every write since) and the write counter.
    fn fingerprint(&self) -> Result<snapshot::Fingerprint> {
        let state = self.tally().clone();
        let writes = self.meta.get(WRITES_KEY).map_err(st)?.map_or(0, |v| be(&v));
        Ok(snapshot::Fingerprint::new(&state, writes))
    }

    /// Deletes the index snapshot before the first write after a start (or after a snapshot was
    /// written): from then on it would describe a store that moved on. Errors: `Storage` when
    /// the file cannot be removed (the write is not made).
    fn before_write(&self) -> Result<()> {
        if self.snapshot_armed.swap(false, Ordering::SeqCst)
            && let Err(e) = self.data_dir().and_then(|d| remove_snapshot(&d))
        {
            self.snapshot_armed.store(true, Ordering::SeqCst);
            return Err(e);
        }
        Ok(())
    }

    /// Seals the store for a fast next open ([`seal`]): flushes it, then writes the size and
    /// hash of each of its files. The last thing a clean stop does: nothing may be written
    /// after it (anything written makes the seal not match, and the next open counts the
    /// records). Errors: `Storage`.
    pub fn seal(&self) -> Result<()> {
        self.flush()?;
        let data_dir = self.data_dir()?;
        seal::write(&data_dir, &self.dir, &ledger::path(&data_dir))
    }

    /// Writes `DATA_DIR/index.snapshot` ([`snapshot`]): every adoption and feedback value as
    /// stored, behind the fingerprint of the store now; for a clean shutdown, once no write
    /// runs (a write that runs meanwhile makes it fail, and the next write deletes it anyway).
    /// `progress(records written, records)` is called every [`PROGRESS_EVERY`] records.
    /// Returns the file's size, bytes. Errors: `Storage` (no snapshot is left then).
    pub fn write_snapshot(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<u64> {
        let data_dir = self.data_dir()?;
        let path = snapshot::path(&data_dir);
        self.snapshot_armed.store(true, Ordering::SeqCst);
        let before = self.fingerprint()?;
        let (adoptions, feedback) = {
            let l = self.tally();
            (l.tally(Kind::Adoptions).count, l.tally(Kind::Feedback).count)
        };
        let header = snapshot::Header { version: snapshot::VERSION, record_format: records::FORMAT, fingerprint: before.clone(), adoptions, feedback };
        let total = adoptions + feedback;
        let mut done = 0u64;
        // One value per record, feedback records taken out of their groups.
        let feedback = self.feedback.iter().flat_map(|kv| -> Vec<Result<sled::IVec>> {
            match kv.map_err(st).and_then(|(k, v)| feedback_entries(&k, &v)) {
                Ok(fs) => fs.iter().map(|f| records::encode(f).map(sled::IVec::from)).collect(),
                Err(e) => vec![Err(e)],
            }
        });
        let mut values = self.adoptions.iter().values().map(|v| v.map_err(st)).chain(feedback).map(|v| {
            let v = v?;
            if !records::is_postcard(&v)? {
                return Err(Error::storage_state("a record of an older format (the store is not migrated)"));
            }
            done += 1;
            if done.is_multiple_of(PROGRESS_EVERY) {
                progress(done, total.max(done));
            }
            Ok(v)
        });
        let bytes = snapshot::write(&path, &header, &mut values)?;
        drop(values);
        progress(total, total);
        if self.fingerprint()? != before || !self.snapshot_armed.load(Ordering::SeqCst) {
            remove_snapshot(&data_dir)?;
            return Err(Error::storage_state("the store was written while its snapshot was taken: no snapshot kept"));
        }
        Ok(bytes)
    }

    /// Builds the index from the trees, decoding every record.
    fn index_from_records(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<AdoptionIndex> {
        let total = {
            let ledger = self.tally();
            ledger.tally(Kind::Adoptions).count + ledger.tally(Kind::Feedback).count
        };
        let mut done = 0u64;
        let mut step = |done: &mut u64| {
            *done += 1;
            if done.is_multiple_of(PROGRESS_EVERY) {
                progress(*done, total.max(*done));
            }
        };
        let mut h = AdoptionIndex::default();
        for v in self.adoptions.iter().values() {
            h.add_adoption(records::decode(&v.map_err(st)?)?);
            step(&mut done);
        }
        let (mut orphans, mut run) = (0u64, FeedbackRun::default());
        for kv in self.feedback.iter() {
            let (k, v) = kv.map_err(st)?;
            for f in feedback_entries(&k, &v)? {
                orphans += run.push(&mut h, f);
                step(&mut done);
            }
        }
        orphans += run.end(&mut h);
        progress(done, done);
        if orphans > 0 {
            tracing::warn!(orphans, "feedback records without their adoption (or repeated) were left out of the index");
        }
        h.shrink_to_fit();
        Ok(h)
    }

    /// One adoption by id.
    pub fn adoption(&self, id: u64) -> Result<Option<Adoption>> {
        match self.adoptions.get(id.to_be_bytes()).map_err(st)? {
            Some(v) => Ok(Some(records::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Records an adoption under a fresh id, durably. The caller has validated it.
    pub fn insert_adoption(&self, new: NewAdoption) -> Result<Adoption> {
        self.insert_adoption_once(new, None).map(|(a, _)| a)
    }

    /// The adoption recorded earlier under this idempotency key, if any. Errors: `Invalid` when
    /// the key was used for a different request.
    pub fn adoption_for_key(&self, idem: &Idempotency) -> Result<Option<Adoption>> {
        match self.meta.get(idem.store_key()).map_err(st)? {
            Some(v) => {
                let rec: IdemRecord = records::decode(&v)?;
                idem.check(&rec)?;
                self.adoption(rec.id)
            }
            None => Ok(None),
        }
    }

    /// Like [`Store::insert_adoption`], recording the idempotency key with the adoption in the
    /// same transaction. When the key is already recorded (a retry), nothing is written and the
    /// first adoption is returned with `true`. Errors: `Invalid` when the key was used for a
    /// different request.
    pub fn insert_adoption_once(&self, new: NewAdoption, idem: Option<&Idempotency>) -> Result<(Adoption, bool)> {
        self.before_write()?;
        let mut ledger = self.tally();
        let a = (&self.meta, &self.adoptions)
            .transaction(|(meta, adoptions)| {
                if let Some(i) = idem
                    && let Some(v) = meta.get(i.store_key())?
                {
                    let rec: IdemRecord = records::decode(&v).map_err(abort)?;
                    i.check(&rec).map_err(abort)?;
                    let first = adoptions.get(rec.id.to_be_bytes())?.ok_or_else(|| abort(Error::storage_state("idempotency record without its adoption")))?;
                    return Ok((records::decode::<Adoption>(&first).map_err(abort)?, true));
                }
                let id = meta.get(b"next_id")?.map_or(1, |v| be(&v));
                meta.insert(b"next_id", &(id + 1).to_be_bytes())?;
                count_write(meta)?;
                let a = new.clone().with_id(id, false);
                adoptions.insert(&id.to_be_bytes(), records::encode(&a).map_err(abort)?)?;
                if let Some(i) = idem {
                    meta.insert(i.store_key(), records::encode(&IdemRecord { fingerprint: i.fingerprint, id, adoption_id: None }).map_err(abort)?)?;
                }
                Ok((a, false))
            })
            .map_err(tx_err)?;
        if !a.1 {
            tally_adoption(&mut ledger, &a.0);
            if let Some(i) = idem {
                ledger.add(Kind::IdempotencyKeys, &i.store_key(), a.0.id);
            }
            drop(ledger);
            self.durable()?;
        }
        Ok(a)
    }

    /// Records several adoptions under fresh ids, all or nothing, in one transaction, then makes
    /// them durable (one group commit). The caller has validated them. Returns them in the
    /// order given. Errors: `Storage` (then nothing is written).
    pub fn insert_adoptions(&self, news: &[NewAdoption]) -> Result<Vec<Adoption>> {
        if news.is_empty() {
            return Ok(Vec::new());
        }
        self.before_write()?;
        let mut ledger = self.tally();
        let written = (&self.meta, &self.adoptions)
            .transaction(|(meta, adoptions)| {
                let first = meta.get(b"next_id")?.map_or(1, |v| be(&v));
                let mut out = Vec::with_capacity(news.len());
                for (k, new) in news.iter().enumerate() {
                    let id = first + k as u64;
                    let a = new.clone().with_id(id, false);
                    adoptions.insert(&id.to_be_bytes(), records::encode(&a).map_err(abort)?)?;
                    out.push(a);
                }
                meta.insert(b"next_id", &(first + news.len() as u64).to_be_bytes())?;
                count_write(meta)?;
                Ok(out)
            })
            .map_err(tx_err)?;
        for a in &written {
            tally_adoption(&mut ledger, a);
        }
        drop(ledger);
        self.durable()?;
        Ok(written)
    }

    /// Replaces a stored adoption (same id) with its changed version, durably. The caller has
    /// validated it. Errors: `NotFound` when no adoption has this id.
    pub fn update_adoption(&self, a: &Adoption) -> Result<()> {
        self.before_write()?;
        (&self.meta, &self.adoptions)
            .transaction(|(meta, adoptions)| {
                if adoptions.get(a.id.to_be_bytes())?.is_none() {
                    return Err(abort(Error::NotFound(format!("no adoption {}", a.id))));
                }
                adoptions.insert(&a.id.to_be_bytes(), records::encode(a).map_err(abort)?)?;
                count_write(meta)?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.durable()
    }

    /// Records feedback on an existing adoption under a fresh id, durably. Errors: `NotFound`
    /// when the adoption does not exist (checked inside the transaction).
    pub fn insert_feedback(&self, adoption_id: u64, new: NewFeedback) -> Result<Feedback> {
        self.insert_feedback_once(adoption_id, new, None).map(|(f, _)| f)
    }

    /// Like [`Store::insert_feedback`], with an idempotency key (see
    /// [`Store::insert_adoption_once`]).
    pub fn insert_feedback_once(&self, adoption_id: u64, new: NewFeedback, idem: Option<&Idempotency>) -> Result<(Feedback, bool)> {
        self.before_write()?;
        let mut ledger = self.tally();
        let f = (&self.meta, &self.adoptions, &self.feedback)
            .transaction(|(meta, adoptions, feedback)| {
                if let Some(i) = idem
                    && let Some(v) = meta.get(i.store_key())?
                {
                    let rec: IdemRecord = records::decode(&v).map_err(abort)?;
                    i.check(&rec).map_err(abort)?;
                    let owner = rec.adoption_id.unwrap_or(adoption_id);
                    let first = match group_in(feedback, owner)?.0.into_iter().find(|f| f.id == rec.id) {
                        Some(f) => Some(f),
                        None => feedback.get(id_key(&owner.to_be_bytes(), rec.id))?.map(|v| records::decode::<Feedback>(&v)).transpose().map_err(abort)?,
                    };
                    return Ok((first.ok_or_else(|| abort(Error::storage_state("idempotency record without its feedback")))?, true));
                }
                if adoptions.get(adoption_id.to_be_bytes())?.is_none() {
                    return Err(abort(Error::NotFound(format!("no adoption {adoption_id}"))));
                }
                let id = meta.get(b"next_id")?.map_or(1, |v| be(&v));
                meta.insert(b"next_id", &(id + 1).to_be_bytes())?;
                count_write(meta)?;
                let f = new.clone().with_id(id, adoption_id, false);
                // Ids only grow: the group stays in id order; a full one is left as it is.
                let mut group = group_in(feedback, adoption_id)?;
                if group.0.len() < GROUP_MAX {
                    group.0.push(f.clone());
                    feedback.insert(&adoption_id.to_be_bytes(), records::encode(&group).map_err(abort)?)?;
                } else {
                    feedback.insert(id_key(&adoption_id.to_be_bytes(), id), records::encode(&f).map_err(abort)?)?;
                }
                if let Some(i) = idem {
                    meta.insert(
                        i.store_key(),
                        records::encode(&IdemRecord { fingerprint: i.fingerprint, id, adoption_id: Some(adoption_id) }).map_err(abort)?,
                    )?;
                }
                Ok((f, false))
            })
            .map_err(tx_err)?;
        if !f.1 {
            ledger.add(Kind::Feedback, &id_key(&adoption_id.to_be_bytes(), f.0.id), f.0.id);
            if let Some(i) = idem {
                ledger.add(Kind::IdempotencyKeys, &i.store_key(), f.0.id);
            }
            drop(ledger);
            self.durable()?;
        }
        Ok(f)
    }

    /// Creates a token, durably, and returns it with its secret (`vsn_` + 64 hex digits, 256
    /// bits from the operating system's random source). Only the secret's SHA-256 is stored:
    /// the secret cannot be shown again. Errors: `Invalid` for a label over 200 characters or
    /// with control characters; `Storage` when the random source or the disk fails.
    pub fn create_token(&self, scope: TokenScope, label: &str, now: chrono::DateTime<chrono::Utc>) -> Result<(Token, String)> {
        use crate::core::auth::MAX_LABEL_CHARS;
        if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
            return Err(Error::Invalid(format!("label must be at most {MAX_LABEL_CHARS} characters, without control characters")));
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal { context: format!("random source: {e}"), source: None })?;
        let secret = TokenHash::secret_from_bytes(&bytes);
        let hash = TokenHash::of_secret(&secret)?;
        // Tokens are not in the index snapshot: it stays fresh (neither deleted nor counted).
        let mut ledger = self.tally();
        let token = (&self.meta, &self.tokens, &self.token_hashes)
            .transaction(|(meta, tokens, hashes)| {
                let id = meta.get(b"next_token_id")?.map_or(1, |v| be(&v));
                meta.insert(b"next_token_id", &(id + 1).to_be_bytes())?;
                let t = Token { id, scope, label: label.to_string(), created: now, revoked: None };
                tokens.insert(&id.to_be_bytes(), records::encode(&t).map_err(abort)?)?;
                hashes.insert(&hash.0, &id.to_be_bytes())?;
                Ok(t)
            })
            .map_err(tx_err)?;
        ledger.add(Kind::Tokens, &token.id.to_be_bytes(), token.id);
        ledger.add(Kind::TokenHashes, &hash.0, token.id);
        drop(ledger);
        self.durable()?;
        Ok((token, secret))
    }

    /// The token whose secret hashes to `hash`, revoked or not; `None` when unknown.
    pub fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<Token>> {
        match self.token_hashes.get(hash.0).map_err(st)? {
            Some(id) => self.token(be(&id)),
            None => Ok(None),
        }
    }

    /// One token by id.
    pub fn token(&self, id: u64) -> Result<Option<Token>> {
        match self.tokens.get(id.to_be_bytes()).map_err(st)? {
            Some(v) => Ok(Some(records::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Every token, by id (revoked ones included).
    pub fn tokens(&self) -> Result<Vec<Token>> {
        self.tokens.iter().values().map(|v| v.map_err(st).and_then(|v| records::decode(&v))).collect()
    }

    /// Revokes a token, durably; revoking twice keeps the first time. Errors: `NotFound` for an
    /// unknown id.
    pub fn revoke_token(&self, id: u64, now: chrono::DateTime<chrono::Utc>) -> Result<Token> {
        // Not in the index snapshot, which stays fresh.
        let t = self
            .tokens
            .transaction(|tokens| {
                let Some(v) = tokens.get(id.to_be_bytes())? else { return Err(abort(Error::NotFound(format!("no token {id}")))) };
                let mut t: Token = records::decode(&v).map_err(abort)?;
                if t.revoked.is_none() {
                    t.revoked = Some(now);
                    tokens.insert(&id.to_be_bytes(), records::encode(&t).map_err(abort)?)?;
                }
                Ok(t)
            })
            .map_err(tx_err)?;
        self.durable()?;
        Ok(t)
    }

    /// Records an EPCI's price estimate under a fresh id, durably (flushed and synced before it
    /// returns). The caller has validated it.
    pub fn insert_price_estimate(&self, new: NewPriceEstimate, by: EstimateAuthor, now: chrono::DateTime<chrono::Utc>) -> Result<PriceEstimate> {
        // Not in the index snapshot, which stays fresh.
        let mut ledger = self.tally();
        let e = (&self.meta, &self.price_estimates)
            .transaction(|(meta, estimates)| {
                let id = meta.get(b"next_price_estimate_id")?.map_or(1, |v| be(&v));
                meta.insert(b"next_price_estimate_id", &(id + 1).to_be_bytes())?;
                let e = new.clone().with_id(id, by.clone(), now);
                let mut key = e.epci.as_str().as_bytes().to_vec();
                key.extend_from_slice(&id.to_be_bytes());
                estimates.insert(key, records::encode(&e).map_err(abort)?)?;
                Ok(e)
            })
            .map_err(tx_err)?;
        ledger.add(Kind::PriceEstimates, &id_key(e.epci.as_str().as_bytes(), e.id), e.id);
        drop(ledger);
        self.durable()?;
        Ok(e)
    }

    /// Every price estimate of an EPCI, in recording order (history included).
    pub fn price_estimates(&self, epci: &Siren) -> Result<Vec<PriceEstimate>> {
        self.price_estimates.scan_prefix(epci.as_str().as_bytes()).values().map(|v| v.map_err(st).and_then(|v| records::decode(&v))).collect()
    }

    /// Writes a simulated history into an empty store, record by record, then flushes. Ids of the
    /// history are kept; `next_id` is set past them. Errors: `Invalid` if the store is not
    /// empty.
    pub fn load_demo(&self, h: &DemoHistory, seed: u64, end: chrono::NaiveDate) -> Result<DemoInfo> {
        self.load_demo_with_progress(h, seed, end, &mut |_, _| {})
    }

    /// [`Store::load_demo`], calling `progress(records written, records in the history)` every
    /// 50 ms once [`PROGRESS_EVERY`] more records were written (adoptions and feedback are
    /// written at once, in two threads), never backwards, the last call with `done == total`
    /// once the load is durable.
    pub fn load_demo_with_progress(&self, h: &DemoHistory, seed: u64, end: chrono::NaiveDate, progress: &mut dyn FnMut(u64, u64)) -> Result<DemoInfo> {
        let total = (h.adoptions.len() + h.feedback.len()) as u64;
        if !self.is_empty() {
            return Err(Error::Invalid("the store already holds adoptions: demo data is only loaded into an empty store".into()));
        }
        self.before_write()?;
        // Marker first: a crash before the end leaves it, and the next start wipes the partial load.
        self.meta.insert(DEMO_LOADING, &[1]).map_err(st)?;
        self.flush()?;
        // One insert per record, not batches: sled 0.34 keeps the pages of a large batch in
        // memory past its cache limit (sled issue 1303; measured on the Brittany demo: 703 MB
        // peak RSS with batches of 5,000, 148 MB with single inserts, and faster). Atomicity of
        // the whole load comes from the marker above, not from batches.
        //
        // The two trees are written at once, each by its own thread (one sled insert is about
        // 10 µs at national scale, and the load used one core for 23 s while the other idled).
        // Each thread tallies what it wrote in a ledger of its own, added to the store's once
        // both are done: no sync can copy the store's ledger in between, since this holds the
        // lock every sync takes (`sync.synced`) until then, so that a ledger written to disk
        // never misses a record below its high-water ids.
        let one_flush_at_a_time = self.sync.synced.lock().unwrap_or_else(|e| e.into_inner());
        let done = AtomicU64::new(0);
        let writing = AtomicUsize::new(2);
        let (adopted, grouped) = std::thread::scope(|scope| {
            let done = &done;
            let writing = &writing;
            let adoptions = scope.spawn(move || -> Result<LedgerState> {
                let _leaving = Leaving(writing);
                let mut tally = LedgerState::default();
                for a in &h.adoptions {
                    self.adoptions.insert(a.id.to_be_bytes(), records::encode(a)?).map_err(st)?;
                    tally_adoption(&mut tally, a);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(tally)
            });
            // One value per adoption: its records in id order.
            let feedback = scope.spawn(move || -> Result<LedgerState> {
                let _leaving = Leaving(writing);
                let mut tally = LedgerState::default();
                let mut order: Vec<&Feedback> = h.feedback.iter().collect();
                order.sort_unstable_by_key(|f| (f.adoption_id, f.id));
                for group in order.chunk_by(|a, b| a.adoption_id == b.adoption_id) {
                    let adoption = group[0].adoption_id.to_be_bytes();
                    let (grouped, alone) = group.split_at(group.len().min(GROUP_MAX));
                    self.feedback.insert(adoption, records::encode_group(grouped.iter().copied())?).map_err(st)?;
                    for f in alone {
                        self.feedback.insert(id_key(&adoption, f.id), records::encode(*f)?).map_err(st)?;
                    }
                    for f in group {
                        tally.add(Kind::Feedback, &id_key(&adoption, f.id), f.id);
                    }
                    done.fetch_add(group.len() as u64, Ordering::Relaxed);
                }
                Ok(tally)
            });
            // This thread reports the records written so far, every 50 ms, never backwards.
            let mut reported = 0;
            while writing.load(Ordering::Acquire) > 0 {
                let now = done.load(Ordering::Relaxed);
                if now / PROGRESS_EVERY > reported / PROGRESS_EVERY {
                    reported = now;
                    progress(now, total);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let join = |r: std::thread::Result<Result<LedgerState>>| r.unwrap_or_else(|_| Err(Error::storage_state("a thread of the demo load panicked")));
            (join(adoptions.join()), join(feedback.join()))
        });
        let (adopted, grouped) = (adopted?, grouped?);
        let max_id = adopted.next_id.max(grouped.next_id) - 1;
        self.tally().absorb(&adopted);
        self.tally().absorb(&grouped);
        drop(one_flush_at_a_time);
        let info = DemoInfo { seed, end, adoptions: h.adoptions.len(), feedback: h.feedback.len(), simulated_dates: h.simulated_dates.clone() };
        self.meta.insert(b"next_id", &(max_id + 1).to_be_bytes()).map_err(st)?;
        self.meta.insert(b"demo", meta_json(&info)?).map_err(st)?;
        let writes = self.meta.get(WRITES_KEY).map_err(st)?.map_or(0, |v| be(&v));
        self.meta.insert(WRITES_KEY, &(writes + 1).to_be_bytes()).map_err(st)?;
        self.flush()?;
        self.meta.remove(DEMO_LOADING).map_err(st)?;
        self.flush()?;
        progress(total, total);
        Ok(info)
    }

    /// The simulated history loaded into this store, if any.
    pub fn demo_info(&self) -> Result<Option<DemoInfo>> {
        match self.meta.get(b"demo").map_err(st)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(st)?)),
            None => Ok(None),
        }
    }

    /// The catalogue version recorded at the last start.
    pub fn catalog_version(&self) -> Result<Option<String>> {
        Ok(self.meta.get(b"catalog_version").map_err(st)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Records the catalogue version in use, durably.
    pub fn set_catalog_version(&self, v: &str) -> Result<()> {
        self.meta.insert(b"catalog_version", v.as_bytes()).map_err(st)?;
        self.flush()
    }

    /// Size of the store on disk, bytes.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    // ---- Backup and restore ([`crate::backup`]): the records as of a start, written back raw ----

    /// What a backup starts from: the high-water ids (read first: every record with a smaller
    /// id is committed, since a record and its id are one transaction), the catalogue version
    /// and the demo description. Never the `demo_loading` marker. Errors: `Storage`.
    pub fn backup_state(&self) -> Result<BackupState> {
        let next = |key: &[u8]| -> Result<u64> { Ok(self.meta.get(key).map_err(st)?.map_or(1, |v| be(&v))) };
        let (next_id, next_token_id, next_price_estimate_id) = (next(b"next_id")?, next(b"next_token_id")?, next(b"next_price_estimate_id")?);
        // A demo load under way has no `next_id` yet (1): none of its records is exported.
        Ok(BackupState { next_id, next_token_id, next_price_estimate_id, catalog_version: self.catalog_version()?, demo: self.demo_info()? })
    }

    /// How many records [`Store::export_records`] gives, about (from the ledger's counts,
    /// without a scan; records written since the backup state was read may be counted).
    pub fn export_count(&self) -> u64 {
        let ledger = self.tally();
        [Kind::Adoptions, Kind::Feedback, Kind::Tokens, Kind::PriceEstimates, Kind::IdempotencyKeys].iter().map(|k| ledger.tally(*k).count).sum()
    }

    /// Every record whose id is below `state`'s high-water ids, read lazily one at a time:
    /// adoptions, feedback, tokens with the SHA-256 of their secret, price estimates,
    /// idempotency keys (each kind in key order). Errors (per item): `Storage`.
    pub fn export_records<'a>(&'a self, state: &BackupState) -> impl Iterator<Item = Result<Record>> + 'a {
        let (n, nt, np) = (state.next_id, state.next_token_id, state.next_price_estimate_id);
        use records::decode;
        // Keys end with the record's id (after the adoption id, the INSEE code or the SIREN).
        let tail = |k: &[u8]| be(&k[k.len().saturating_sub(8)..]);
        let adoptions = self.adoptions.range(..n.to_be_bytes()).values().map(move |v| decode(&v.map_err(st)?).map(Record::Adoption));
        let feedback = self.feedback.range(..n.to_be_bytes()).flat_map(move |kv| -> Vec<Result<Record>> {
            match kv.map_err(st).and_then(|(k, v)| feedback_entries(&k, &v)) {
                Ok(fs) => fs.into_iter().filter(|f| f.id < n).map(|f| Ok(Record::Feedback(f))).collect(),
                Err(e) => vec![Err(e)],
            }
        });
        let tokens = self.token_hashes.iter().filter_map(move |kv| match kv {
            Ok((hash, id)) if be(&id) < nt => Some((|| {
                let t = self.token(be(&id))?.ok_or_else(|| Error::storage_state("a token hash without its token"))?;
                let hash: [u8; 32] = hash.as_ref().try_into().map_err(|_| Error::storage_state("a token hash that is not 32 bytes"))?;
                Ok(Record::Token(t, TokenHash(hash)))
            })()),
            Ok(_) => None,
            Err(e) => Some(Err(st(e))),
        });
        let estimates = self.price_estimates.iter().filter_map(move |kv| match kv {
            Ok((k, v)) => (tail(&k) < np).then(|| decode(&v).map(Record::PriceEstimate)),
            Err(e) => Some(Err(st(e))),
        });
        let keys = self.meta.scan_prefix(b"idem:").filter_map(move |kv| {
            let (k, v) = match kv {
                Ok(kv) => kv,
                Err(e) => return Some(Err(st(e))),
            };
            let rec: IdemRecord = match records::decode(&v) {
                Ok(r) => r,
                Err(e) => return Some(Err(st(e))),
            };
            let text = String::from_utf8_lossy(&k[b"idem:".len()..]).into_owned();
            let (scope, key) = text.split_once('\n').unwrap_or((text.as_str(), ""));
            (rec.id < n).then(|| {
                Ok(Record::Idempotency(IdempotencyEntry {
                    scope: scope.to_string(),
                    key: key.to_string(),
                    fingerprint: rec.fingerprint,
                    id: rec.id,
                    adoption_id: rec.adoption_id,
                }))
            })
        });
        adoptions.chain(feedback).chain(tokens).chain(estimates).chain(keys)
    }

    /// Writes one record of a backup into this store as it is (its id kept), without a sync
    /// (a restore flushes once at the end, [`Store::import_finish`]). Errors: `Invalid` when a
    /// record with the same key is already stored (a backup holds each once), `Storage`.
    pub fn import_record(&self, r: Record) -> Result<()> {
        let once = |tree: &sled::Tree, key: Vec<u8>, value: Vec<u8>, what: String| -> Result<()> {
            match tree.insert(key, value).map_err(st)? {
                Some(_) => Err(Error::Invalid(format!("{what} is in the backup twice"))),
                None => Ok(()),
            }
        };
        match r {
            Record::Adoption(a) => {
                once(&self.adoptions, a.id.to_be_bytes().to_vec(), records::encode(&a)?, format!("adoption {}", a.id))?;
            }
            Record::Feedback(f) => {
                let key = f.adoption_id.to_be_bytes();
                let mut group = match self.feedback.get(key).map_err(st)? {
                    Some(v) => records::decode::<FeedbackGroup>(&v)?,
                    None => FeedbackGroup::default(),
                };
                if group.0.len() >= GROUP_MAX {
                    once(&self.feedback, id_key(&key, f.id), records::encode(&f)?, format!("feedback {}", f.id))?;
                    return Ok(());
                }
                let at = group.0.partition_point(|g| g.id < f.id);
                if group.0.get(at).is_some_and(|g| g.id == f.id) {
                    return Err(Error::Invalid(format!("feedback {} is in the backup twice", f.id)));
                }
                group.0.insert(at, f);
                self.feedback.insert(key, records::encode(&group)?).map_err(st)?;
            }
            Record::Token(t, hash) => {
                once(&self.tokens, t.id.to_be_bytes().to_vec(), records::encode(&t)?, format!("token {}", t.id))?;
                once(&self.token_hashes, hash.0.to_vec(), t.id.to_be_bytes().to_vec(), format!("the hash of token {}", t.id))?;
            }
            Record::PriceEstimate(e) => {
                let mut key = e.epci.as_str().as_bytes().to_vec();
                key.extend_from_slice(&e.id.to_be_bytes());
                once(&self.price_estimates, key, records::encode(&e)?, format!("price estimate {}", e.id))?;
            }
            Record::Idempotency(i) => {
                let key = Idempotency { scope: i.scope, key: i.key, fingerprint: i.fingerprint };
                let rec = IdemRecord { fingerprint: i.fingerprint, id: i.id, adoption_id: i.adoption_id };
                once(&self.meta, key.store_key(), records::encode(&rec)?, format!("idempotency key '{}' of {}", key.key, key.scope))?;
            }
        }
        Ok(())
    }

    /// Ends a restore: records the backup's high-water ids, catalogue version and demo
    /// description, then flushes and syncs. Errors: `Storage`.
    pub fn import_finish(&self, state: &BackupState) -> Result<()> {
        self.meta.insert(b"next_id", &state.next_id.to_be_bytes()).map_err(st)?;
        self.meta.insert(b"next_token_id", &state.next_token_id.to_be_bytes()).map_err(st)?;
        self.meta.insert(b"next_price_estimate_id", &state.next_price_estimate_id.to_be_bytes()).map_err(st)?;
        if let Some(v) = &state.catalog_version {
            self.meta.insert(b"catalog_version", v.as_bytes()).map_err(st)?;
        }
        if let Some(d) = &state.demo {
            self.meta.insert(b"demo", meta_json(d)?).map_err(st)?;
        }
        self.flush()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::domain::{InseeCode, Slug};
    use chrono::NaiveDate;

    /// `open(dir)` on a store just dropped in this process, tried again while sled's file lock
    /// is held (sled releases it when its last internal handle goes, which may be a moment after
    /// the drop): the first answer that is not a lock error.
    pub(crate) fn open_unlocked<T>(dir: &Path, open: impl Fn(&Path) -> Result<T>) -> Result<T> {
        for _ in 0..200 {
            match open(dir) {
                Err(e) if e.chain().contains("lock") => std::thread::sleep(std::time::Duration::from_millis(25)),
                other => return other,
            }
        }
        panic!("the store lock was never released")
    }

    /// Reopens a store just dropped in this process ([`open_unlocked`]).
    pub(crate) fn reopen(dir: &Path) -> Store {
        open_unlocked(dir, Store::open).unwrap_or_else(|e| panic!("{}", e.chain()))
    }

    /// An adoption of openElec (élections) since 2019-03-01 by `commune`, 3 workstations.
    pub(crate) fn new_adoption_in(commune: &str) -> NewAdoption {
        NewAdoption {
            commune: InseeCode::parse(commune).unwrap(),
            category: Slug::parse("elections").unwrap(),
            product: Slug::parse("openelec").unwrap(),
            generation: None,
            since: NaiveDate::from_ymd_opt(2019, 3, 1).unwrap(),
            until: None,
            contract_end: None,
            workstations: Some(3),
        }
    }

    /// [`new_adoption_in`] Brest (29019).
    pub(crate) fn new_adoption() -> NewAdoption {
        new_adoption_in("29019")
    }

    #[test]
    fn demo_load_and_index_report_progress_up_to_the_total() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let adoptions: Vec<Adoption> = (1..=1500).map(|id| new_adoption().with_id(id, true)).collect();
        let date = NaiveDate::from_ymd_opt(2020, 3, 1).unwrap();
        let feedback: Vec<Feedback> = (1501..=2500)
            .map(|id| Feedback {
                id,
                adoption_id: id - 1500,
                date,
                reliability: 4,
                incidents: 0,
                downtime_hours: 0.0,
                support: 4,
                comment: None,
                simulated: true,
            })
            .collect();
        let h = DemoHistory { adoptions, feedback, website_hazard: 0.0, website_share_2013: 0.0, simulated_dates: Vec::new() };
        let mut calls = Vec::new();
        s.load_demo_with_progress(&h, 1, date, &mut |done, total| calls.push((done, total))).unwrap();
        // Written by two threads and reported every 50 ms: as many calls as the machine's speed
        // gives, never backwards, each at least `PROGRESS_EVERY` past the one before, the last at
        // the total.
        assert_eq!(calls.last(), Some(&(2500, 2500)), "{calls:?}");
        assert!(calls.iter().all(|&(_, total)| total == 2500), "{calls:?}");
        assert!(calls.windows(2).all(|w| w[1].0 >= w[0].0 + PROGRESS_EVERY || w[1].0 == 2500), "{calls:?}");
        // The ledger counts every record the two threads wrote: the store reopens checked.
        drop(s);
        let report = Store::check(dir.path()).unwrap();
        assert_eq!(report.verdict, Verdict::Ok, "{}", report.render());
        let counted: Vec<_> = report.kinds.iter().filter(|k| k.held > 0).map(|k| (k.kind, k.held, k.acknowledged, k.matches)).collect();
        assert_eq!((report.next_id, counted), (2501, vec![("adoptions", 1500, Some(1500), true), ("feedback", 1000, Some(1000), true)]));
        let s = Store::open(dir.path()).unwrap();
        let mut calls = Vec::new();
        let index = s.load_index_with_progress(&mut |done, total| calls.push((done, total))).unwrap();
        assert_eq!(calls, [(1000, 2500), (2000, 2500), (2500, 2500)]);
        assert_eq!(index.adoption(1500).map(|a| a.id), Some(1500));
    }

    #[test]
    fn tokens_are_stored_hashed_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z").unwrap().to_utc();
        let (t1, secret) = {
            let s = Store::open(dir.path()).unwrap();
            let (t1, secret) = s.create_token(TokenScope::parse("commune:29019").unwrap(), "mairie de Brest", now).unwrap();
            let (t2, secret2) = s.create_token(TokenScope::Admin, "", now).unwrap();
            assert_eq!((t1.id, t2.id), (1, 2));
            assert_ne!(secret, secret2);
            assert!(s.create_token(TokenScope::Admin, &"x".repeat(201), now).is_err());
            (t1, secret)
        };
        let s = reopen(dir.path());
        // The secret is nowhere in the files, its digest finds the token.
        let mut raw = Vec::new();
        for e in walk(dir.path()) {
            raw.extend(std::fs::read(e).unwrap());
        }
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
        let hash = TokenHash::of_secret(&secret).unwrap();
        assert_eq!(s.token_by_hash(&hash).unwrap().unwrap(), t1);
        let r = s.revoke_token(1, now).unwrap();
        assert_eq!(r.revoked, Some(now));
        assert_eq!(s.token_by_hash(&hash).unwrap().unwrap().revoked, Some(now));
        assert_eq!(s.revoke_token(9, now).unwrap_err().status(), 404);
        assert_eq!(s.tokens().unwrap().len(), 2);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
        out
    }

    #[test]
    fn price_estimates_are_kept_per_epci_across_a_reopen() {
        use crate::core::auth::TokenScope;
        use crate::core::domain::Siren;
        use crate::core::prices::{EurHt, PriceBasis};
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-10-08T09:00:00Z").unwrap().to_utc();
        let (rm, bm) = (Siren::parse("243500139").unwrap(), Siren::parse("242900314").unwrap());
        let new = |epci: Siren, eur: u64| NewPriceEstimate {
            epci,
            product: Slug::parse("openelec").unwrap(),
            generation: None,
            basis: PriceBasis::PerCommune,
            amount_eur_ht: EurHt::from_whole_euros(eur),
            made_on: NaiveDate::from_ymd_opt(2026, 10, 8).unwrap(),
            note: Some("devis".into()),
        };
        let by = EstimateAuthor { token_id: 2, scope: TokenScope::Epci(rm), name: "Rennes Métropole".into() };
        let first = {
            let s = Store::open(dir.path()).unwrap();
            let first = s.insert_price_estimate(new(rm, 1_000), by.clone(), now).unwrap();
            s.insert_price_estimate(new(bm, 2_000), by.clone(), now).unwrap();
            first
        };
        let s = reopen(dir.path());
        let list = s.price_estimates(&rm).unwrap();
        assert_eq!(list, vec![first]);
        let third = s.insert_price_estimate(new(rm, 1_500), by, now).unwrap();
        assert_eq!(third.id, 3, "ids move on after a reopen");
        assert_eq!(s.price_estimates(&rm).unwrap().iter().map(|e| e.amount_eur_ht.whole_euros()).collect::<Vec<_>>(), vec![1_000, 1_500]);
    }

    #[test]
    fn reopen_keeps_records_and_ids_move_on() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path()).unwrap().insert_adoption(new_adoption()).unwrap();
        let s = reopen(dir.path());
        assert_eq!(s.load().unwrap().0, vec![a.clone()]);
        assert_eq!(s.insert_adoption(new_adoption()).unwrap().id, a.id + 1);
    }

    #[test]
    fn a_batch_of_adoptions_is_written_at_once_with_consecutive_ids() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let first = s.insert_adoption(new_adoption()).unwrap();
        let before = s.syncs();
        let mut other = new_adoption();
        other.commune = InseeCode::parse("35238").unwrap();
        let batch = s.insert_adoptions(&[new_adoption(), other.clone()]).unwrap();
        assert_eq!(batch.iter().map(|a| a.id).collect::<Vec<_>>(), [first.id + 1, first.id + 2]);
        assert_eq!(batch[1].commune, other.commune);
        assert_eq!(s.syncs(), before + 1, "one durable commit for the batch");
        assert!(s.insert_adoptions(&[]).unwrap().is_empty());
        drop(s);
        let s = reopen(dir.path());
        assert_eq!(s.load().unwrap().0.len(), 3);
        assert_eq!(s.insert_adoption(new_adoption()).unwrap().id, first.id + 3);
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let before = s.syncs();
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || (0..20).map(|_| s.insert_adoption(new_adoption()).unwrap().id).collect::<Vec<u64>>())
            })
            .collect();
        let mut ids: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 320, "every write got its own id");
        assert!(s.syncs() > before, "writes were synced");
        drop(s);
        assert_eq!(reopen(dir.path()).load().unwrap().0.len(), 320);
    }

    fn feedback() -> NewFeedback {
        NewFeedback { date: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(), reliability: 4, incidents: 0, downtime_hours: 0.0, support: 4, comment: None }
    }

    fn reopen_err(dir: &Path) -> String {
        match open_unlocked(dir, Store::open) {
            Err(Error::StoreDamaged(m)) => m,
            Err(e) => panic!("{}", e.chain()),
            Ok(_) => panic!("the store opened"),
        }
    }

    #[test]
    fn a_file_or_folder_gone_during_a_sync_is_skipped_and_the_rest_synced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        std::fs::write(dir.path().join("blobs/1"), b"x").unwrap();
        sync_tree(dir.path()).unwrap();
        // What sled does meanwhile: a blob file removed between the listing and its sync.
        assert!(unless_gone(std::fs::File::open(dir.path().join("blobs/2")).and_then(|f| f.sync_data())).is_ok());
        assert!(sync_folder(&dir.path().join("gone"), false).is_ok(), "a subfolder removed meanwhile");
        // The store's own folder missing is an error, as is any other failure.
        assert!(sync_tree(&dir.path().join("gone")).unwrap_err().to_string().contains("syncing"));
        assert!(unless_gone(Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))).is_err());
    }

    #[test]
    fn an_adoption_with_thousands_of_reports_takes_them_all_across_a_reopen() {
        // A group of 2,000 records (about 60 KB), rewritten at every write by four writers at
        // once: every record is there after a reopen, none lost to a conflict. (Large values
        // can go to sled's blob files, replaced at every write: the syncs skip one removed.)
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let a = s.insert_adoption(new_adoption()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || (0..500).map(|_| s.insert_feedback(a.id, feedback()).map(|f| f.id)).collect::<Result<Vec<_>>>())
            })
            .collect();
        let mut ids: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap().unwrap()).collect();
        ids.sort_unstable();
        drop(s);
        let s = reopen(dir.path());
        let h = s.load_index().unwrap();
        assert_eq!(h.reports(a.id).iter().map(|r| r.id).collect::<Vec<_>>(), ids);
        assert_eq!(ids.len(), 2000);
        // The first GROUP_MAX in the group, the others one per key; a backup restores the same.
        let group = records::decode::<FeedbackGroup>(&s.feedback.get(a.id.to_be_bytes()).unwrap().unwrap()).unwrap();
        assert_eq!(group.0.iter().map(|f| f.id).collect::<Vec<_>>(), ids[..GROUP_MAX]);
        assert_eq!(s.feedback.len(), 1 + 2000 - GROUP_MAX);
        let state = s.backup_state().unwrap();
        let records = s.export_records(&state).collect::<Result<Vec<_>>>().unwrap();
        let other = tempfile::tempdir().unwrap();
        let r = Store::open(other.path()).unwrap();
        records.into_iter().for_each(|rec| r.import_record(rec).unwrap());
        r.import_finish(&state).unwrap();
        assert_eq!(r.feedback.len(), 1 + 2000 - GROUP_MAX);
        assert_eq!(r.load_index().unwrap().reports(a.id).iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    }

    #[test]
    fn every_write_path_keeps_the_ledger_and_a_lost_or_swapped_record_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z").unwrap().to_utc();
        let idem = |key: &str| Idempotency { scope: "POST /x".into(), key: key.into(), fingerprint: 7 };
        {
            let s = Store::open(dir.path()).unwrap();
            let (a, _) = s.insert_adoption_once(new_adoption(), Some(&idem("a"))).unwrap();
            assert!(s.insert_adoption_once(new_adoption(), Some(&idem("a"))).unwrap().1, "a retry writes nothing");
            s.insert_adoptions(&[new_adoption(), new_adoption()]).unwrap();
            s.insert_feedback_once(a.id, feedback(), Some(&idem("f"))).unwrap();
            s.insert_feedback(a.id, feedback()).unwrap();
            s.update_adoption(&a).unwrap();
            s.create_token(TokenScope::Admin, "", now).unwrap();
            s.revoke_token(1, now).unwrap();
            let by = EstimateAuthor { token_id: 1, scope: TokenScope::Admin, name: "x".into() };
            let epci = Siren::parse("243500139").unwrap();
            let estimate = NewPriceEstimate {
                epci,
                product: Slug::parse("openelec").unwrap(),
                generation: None,
                basis: crate::core::prices::PriceBasis::PerCommune,
                amount_eur_ht: crate::core::prices::EurHt::from_whole_euros(100),
                made_on: NaiveDate::from_ymd_opt(2026, 10, 8).unwrap(),
                note: None,
            };
            s.insert_price_estimate(estimate, by, now).unwrap();
            s.set_catalog_version("v").unwrap();
            assert_eq!(s.tally().tally(Kind::IdempotencyKeys).count, 2);
        }
        // Reopened twice: the ledger written at the last open holds too.
        drop(reopen(dir.path()));
        let s = reopen(dir.path());
        // A lost token hash, and a feedback record replaced by another with an id of the same
        // range: counts and digests see both.
        let (k, _) = s.token_hashes.iter().next().unwrap().unwrap();
        s.token_hashes.remove(k).unwrap();
        let (k, v) = s.feedback.iter().next().unwrap().unwrap();
        let mut group = records::decode::<FeedbackGroup>(&v).unwrap();
        group.0[0].id = 2;
        s.feedback.insert(k, records::encode(&group).unwrap()).unwrap();
        s.db.flush().unwrap();
        drop(s);
        let msg = reopen_err(dir.path());
        assert!(msg.contains("feedback: 2 held, 2 acknowledged but not the same records; token_hashes: 0 held, 1 acknowledged"), "{msg}");
        assert!(msg.contains("ids missing: 4"), "the first feedback, id 4: {msg}");
    }

    #[test]
    fn a_demo_load_cut_after_its_ledger_was_written_is_wiped_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            // As far as the ledger goes, a demo load that wrote (and ledgered) 2 adoptions, then a
            // crash before the marker was removed.
            s.insert_adoptions(&[new_adoption(), new_adoption()]).unwrap();
            s.meta.insert(DEMO_LOADING, &[1]).unwrap();
            s.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert!(s.is_empty());
        assert_eq!(s.insert_adoption(new_adoption()).unwrap().id, 3, "the wiped ids are not given again");
        drop(s);
        assert_eq!(reopen(dir.path()).load().unwrap().0.len(), 1);
    }

    #[test]
    fn interrupted_demo_load_is_wiped_and_ids_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            // What a crash mid-load leaves: the marker, some records, no next_id, perhaps the
            // description written just before the marker would have been removed.
            s.meta.insert(DEMO_LOADING, &[1]).unwrap();
            s.meta
                .insert(b"demo", meta_json(&DemoInfo { seed: 1, end: chrono::NaiveDate::MIN, adoptions: 1, feedback: 0, simulated_dates: Vec::new() }).unwrap())
                .unwrap();
            let a = new_adoption().with_id(7, true);
            s.adoptions.insert(7u64.to_be_bytes(), records::encode(&a).unwrap()).unwrap();
            s.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert!(s.is_empty(), "partial demo data removed");
        assert!(s.demo_info().unwrap().is_none(), "and its description");
        // Records present without next_id (an older store): new ids go past them.
        s.adoptions.insert(41u64.to_be_bytes(), records::encode(&new_adoption().with_id(41, false)).unwrap()).unwrap();
        s.meta.remove(b"next_id").unwrap();
        s.flush().unwrap();
        drop(s);
        let s = reopen(dir.path());
        assert_eq!(s.insert_adoption(new_adoption()).unwrap().id, 42);
    }
}
