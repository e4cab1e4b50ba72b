//! The application service: the one type between the pure core and its callers (the HTTP API,
//! the CLI, the tests).
//!
//! [`Service`] owns the territory, the catalogue, the commune shapes, the durable store, the
//! in-memory index of the store ([`AdoptionIndex`]), the write lock and the answer cache. It is built
//! by one function, [`Service::open`], from a [`Config`]. Its methods are the use cases; each
//! write use case takes the caller's [`Principal`] and, where a retry must not write twice, an
//! optional [`Idempotency`] key, checks the caller's rights, and writes its audit line.
//!
//! The order of every write is fixed here and nowhere else: take the writers' lock (a feedback
//! record takes it only to publish), replay an idempotent retry, check against the index, write
//! to the store **durably**, then publish the index with the change (so that the running
//! service never shows what is not stored), which also retires the cached answers (they carry
//! the index version they were computed at), then audit.
//!
//! Reads never wait for writes (issue 17, item 4): the index is published whole behind an
//! [`ArcSwap`]; a reader takes the version published when it starts and keeps it to its end; a
//! writer applies its change to a clone that shares every part the change does not touch and
//! publishes it. Writers are serialised among themselves only.
//!
//! The index keeps, for the reference date and the default parameters, the feedback sums of
//! every adoption that the scoring reads instead of the records
//! ([`AdoptionIndex::keep_feedback_sums`]); every write keeps them, and on a new day they are
//! computed again from the published version while readers go on, and published with it. A
//! question at another date (`as_of`) or with other parameters reads the records: the same
//! answers.

use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{Datelike, NaiveDate};

use crate::backup;
use crate::core::auth::{Principal, Token, TokenHash, TokenScope};
use crate::core::catalog::Catalog;
use crate::core::domain::{GenerationId, InseeCode, Siren, Slug};
use crate::core::history::{Adoption, AdoptionIndex, Feedback, MIN_DATE, NewAdoption, NewFeedback, Ratings};
use crate::core::inventory::{CheckedInventory, InventoryReport, InventoryRow, check_inventory};
use crate::core::map::Shapes;
use crate::core::pooling::{PooledPurchases, pooled_purchases_with};
use crate::core::prices::{EstimateAuthor, EurHt, NewPriceEstimate, PriceBasis, PriceEstimate};
use crate::core::recommend::{Ctx, Params, recommend};
use crate::core::session::{Session, Sessions};
use crate::core::simulate::{SimParams, simulate_with_progress};
use crate::core::territory::Territory;
use crate::error::{Error, Result};
use crate::progress::{Progress, Steps};
use crate::seeds;
use crate::store::{DemoInfo, Idempotency, Store};

/// Bytes the answer cache holds by default ([`Config::answer_cache_bytes`]): 32 MiB, 2,000 to
/// 3,000 national answers of 10 to 20 kB (2,891 in `bench/run.sh --national`). Parameters come
/// from requests, so the number of distinct questions is unbounded; past the budget the cache
/// evicts (S3-FIFO, `quick_cache`: an answer asked only once mostly leaves before one asked
/// again).
pub const DEFAULT_ANSWER_CACHE_BYTES: u64 = 32 << 20;

/// Bytes an answer is counted for in the cache's budget besides its body and key: the entry's
/// own fields and the cache's bookkeeping (an estimate).
const ANSWER_ENTRY_BYTES: usize = 96;

/// The answer cache's measure of an entry: the bytes of its body and key, plus
/// [`ANSWER_ENTRY_BYTES`].
#[derive(Clone, Copy)]
struct AnswerBytes;

impl quick_cache::Weighter<Box<[u8]>, CachedAnswer> for AnswerBytes {
    fn weight(&self, key: &Box<[u8]>, answer: &CachedAnswer) -> u64 {
        (key.len() + answer.body.len() + ANSWER_ENTRY_BYTES) as u64
    }
}

/// The answer cache: JSON bodies by [`answer_key`], within a budget of bytes.
type AnswerCache = quick_cache::sync::Cache<Box<[u8]>, CachedAnswer, AnswerBytes>;

/// How long a successful readiness probe is answered again without a new one.
pub const PROBE_REUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// What [`Service::open`] needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Folder of the durable store (sled), created if missing.
    pub data_dir: PathBuf,
    /// A seeds folder written by `voisinage import`; `None`: the embedded Brittany seeds.
    pub seeds: Option<PathBuf>,
    /// A catalogue folder (the five TOML files of `catalog/`); `None`: the embedded catalogue.
    pub catalog: Option<PathBuf>,
    /// Load this simulated history into the store first, if the store holds no adoption.
    pub demo: Option<DemoRequest>,
    /// Fixed reference date of every answer (tests); `None`: the system clock's date (UTC).
    pub today: Option<NaiveDate>,
    /// Bytes of recommendation answers (JSON bodies and their keys) kept in memory, 0 for none;
    /// default [`DEFAULT_ANSWER_CACHE_BYTES`].
    pub answer_cache_bytes: u64,
}

impl Config {
    /// The embedded reference data over the store in `data_dir`, no demo, the clock's date.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config { data_dir: data_dir.into(), seeds: None, catalog: None, demo: None, today: None, answer_cache_bytes: DEFAULT_ANSWER_CACHE_BYTES }
    }
}

/// A simulated history to load into an empty store ([`crate::core::simulate`]).
#[derive(Clone, Copy, Debug)]
pub struct DemoRequest {
    /// Seed of the simulation (the same seed gives the same history).
    pub seed: u64,
    /// Last simulated day.
    pub until: NaiveDate,
}

/// The read-only reference data: communes and graph, catalogue, commune shapes.
pub struct ReferenceData {
    /// Communes, EPCI and the neighbour graph.
    pub territory: Territory,
    /// Products, generations, regulations and procurement thresholds.
    pub catalog: Catalog,
    /// Simplified commune polygons for maps (empty when a seeds folder has none).
    pub shapes: Shapes,
}

impl ReferenceData {
    /// Reads the seeds and the catalogue from these folders, or the embedded ones for `None`.
    /// Errors: `Data` when a file is missing or does not parse.
    pub fn load(seeds_dir: Option<&Path>, catalog_dir: Option<&Path>) -> Result<ReferenceData> {
        let (territory, shapes) = match seeds_dir {
            Some(d) => (seeds::territory_from_dir(d)?, seeds::shapes_from_dir(d)?),
            None => (seeds::territory()?, seeds::shapes()?),
        };
        let catalog = match catalog_dir {
            Some(d) => seeds::catalog_from_dir(d)?,
            None => seeds::catalog()?,
        };
        Ok(ReferenceData { territory, catalog, shapes })
    }
}

/// A record written by a use case, or the one an earlier request with the same
/// `Idempotency-Key` wrote (`replayed`).
#[derive(Debug)]
pub struct Written<T> {
    /// The record as stored.
    pub record: T,
    /// Whether this is the first request's record, returned again without writing.
    pub replayed: bool,
}

/// What a caller gives to record an adoption (the commune comes from the request's target).
#[derive(Clone, Debug)]
pub struct AdoptionDraft {
    /// Catalogue product.
    pub product: Slug,
    /// Generation of the product, if the catalogue lists generations for it.
    pub generation: Option<GenerationId>,
    /// Category it serves; `None`: the product's main (first) category.
    pub category: Option<Slug>,
    /// First day in service.
    pub since: NaiveDate,
    /// Last day in service, if it ended.
    pub until: Option<NaiveDate>,
    /// End of the current contract, if known.
    pub contract_end: Option<NaiveDate>,
    /// Workstations covered, 0 to 100,000.
    pub workstations: Option<u32>,
}

/// Changes to an adoption: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct AdoptionChanges {
    /// Last day in service (`Some(None)` puts the adoption back in service).
    pub until: Option<Option<NaiveDate>>,
    /// End of the current contract.
    pub contract_end: Option<Option<NaiveDate>>,
    /// Workstations covered, 0 to 100,000.
    pub workstations: Option<Option<u32>>,
}

/// What a caller gives to record feedback on an adoption.
#[derive(Clone, Debug)]
pub struct FeedbackDraft {
    /// Day of the report; `None`: today.
    pub date: Option<NaiveDate>,
    /// 1 (unreliable) to 5 (never failed).
    pub reliability: u8,
    /// Incidents since the previous report, 0 to 100,000.
    pub incidents: u32,
    /// Hours out of service, 0 to 8,784.
    pub downtime_hours: f64,
    /// Support quality, 1 (poor) to 5 (excellent).
    pub support: u8,
    /// Free text (may hold personal data: shown only to tokens covering the commune).
    pub comment: Option<String>,
}

/// What a caller gives to record an EPCI's estimated price for an option (the EPCI comes from
/// the request's target), already parsed: an amount from a form parses with
/// `"52 000,50".parse::<EurHt>()`, a basis is [`PriceBasis::PerCommune`] or
/// [`PriceBasis::PerSeat`].
#[derive(Clone, Debug)]
pub struct PriceEstimateDraft {
    /// Catalogue product.
    pub product: Slug,
    /// Generation (or release) of the product, as a groupement names its option; `None`: every
    /// generation of the product.
    pub generation: Option<GenerationId>,
    /// Per commune or per seat (workstation).
    pub basis: PriceBasis,
    /// Price for one commune or one seat, € HT over the contract, above 0 and at most
    /// 10,000,000.
    pub amount_eur_ht: EurHt,
    /// Day the estimate was made; `None`: the reference date.
    pub made_on: Option<NaiveDate>,
    /// Free note, at most 500 characters (shown only to tokens covering the EPCI).
    pub note: Option<String>,
}

/// An adoption as a reader sees it on the reference date.
#[derive(Clone, Debug)]
pub struct AdoptionView {
    /// The adoption.
    pub adoption: Adoption,
    /// Whether it is in service on the reference date.
    pub active: bool,
    /// Its ratings so far (reliability, support, incidents, downtime).
    pub ratings: Ratings,
    /// Its feedback, oldest first, comments included: render them only if `comments_visible`.
    pub feedback: Vec<Feedback>,
    /// Whether the reader may see the free-text comments (its token covers the commune).
    pub comments_visible: bool,
}

/// Counts for `/health` and `/metrics`.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Adoptions held (simulated ones included).
    pub adoptions: usize,
    /// Feedback records held.
    pub feedback: usize,
    /// Size of the store's files on disk, bytes.
    pub store_bytes: u64,
    /// Store writes (and readiness probes) that failed since the service started.
    pub store_errors: u64,
    /// Whether the store is failing now ([`Service::store_failure`]).
    pub store_failing: bool,
}

/// The answer cache's state ([`Service::answer_cache_stats`], for `/metrics`: it reads every
/// shard of the cache, which `/health` has no need to).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerCacheStats {
    /// Bytes it counts now: bodies, keys and 96 bytes of bookkeeping each (`ANSWER_ENTRY_BYTES`).
    pub bytes: u64,
    /// Its budget, bytes ([`Config::answer_cache_bytes`]).
    pub capacity: u64,
    /// Answers it holds now (some may be of an earlier version of the index, left to evict).
    pub answers: usize,
    /// Recommendations answered from it since the service started.
    pub hits: u64,
    /// Recommendations computed since the service started (not in it, or of an earlier version
    /// or date; a question refused, as for an unknown commune, is not counted).
    pub misses: u64,
}

/// The answer cache's key of a question: the commune's 5 bytes, the category and a newline (a
/// slug has none), the date (days since 1 January of year 1, 4 bytes) and the parameters in
/// `postcard` (each `f64` as its 8 bytes: two parameters are the same key only when they are
/// the same numbers). Errors: `Internal` if the parameters cannot be encoded (they always can).
fn answer_key(code: &InseeCode, category: &Slug, today: NaiveDate, params: &Params) -> Result<Vec<u8>> {
    // About 155 bytes: the parameters take 127.
    let mut key = Vec::with_capacity(192);
    key.extend_from_slice(code.as_bytes());
    key.extend_from_slice(category.as_str().as_bytes());
    key.push(b'\n');
    key.extend_from_slice(&today.num_days_from_ce().to_le_bytes());
    postcard::to_extend(params, key).map_err(|e| Error::internal("the key of a cached answer", e))
}

/// The usual size of a recommendation answer's JSON (a few items with 20 evidence rows each: 10
/// to 20 kB): the capacity of the buffer each thread writes answers into.
const ANSWER_JSON_CAPACITY: usize = 32 * 1024;

/// A thread's answer buffer grown beyond this (an answer of 50 items) is let go after use.
const MAX_KEPT_JSON_BUFFER: usize = 256 * 1024;

thread_local! {
    /// The buffer a thread writes recommendation answers into, kept from one answer to the next
    /// (its pages stay in memory and warm); each answer is then copied out at its own size.
    static ANSWER_JSON: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(ANSWER_JSON_CAPACITY));
}

/// A serialised recommendation answer and what it was computed from.
#[derive(Clone)]
struct CachedAnswer {
    /// [`AdoptionIndex::version`] at the time.
    version: u64,
    /// Reference date at the time.
    today: NaiveDate,
    /// The JSON body.
    body: Bytes,
}

/// The application: reference data, store, index, and the use cases over them.
pub struct Service {
    territory: Territory,
    catalog: Catalog,
    shapes: Shapes,
    store: Store,
    /// In-memory index of the store, as last published: a reader takes the version published
    /// when it starts and keeps it to its end, never waiting for a writer; a writer applies its
    /// change to a clone (which shares all but the parts the change touches, see
    /// [`AdoptionIndex`]) after the durable write and publishes it ([`Service::publish`]).
    index: ArcSwap<AdoptionIndex>,
    /// Serialises writers among themselves (never readers): an adoption's duplicate check and
    /// write happen as one step, and each publication of the index starts from the last one.
    write_lock: Mutex<()>,
    /// Recommendation answers by commune, category and parameters, within
    /// [`Config::answer_cache_bytes`]; each is served while the index version and the date are
    /// those it was computed at.
    answers: AnswerCache,
    /// Recommendations answered from `answers`, and computed, since start.
    answer_counts: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64),
    today: Option<NaiveDate>,
    /// The simulated history the store holds, read once at open (a demo is only ever loaded
    /// then).
    demo: Option<DemoInfo>,
    /// Sign-in sessions of the pages (in memory: a restart signs everyone out).
    sessions: Mutex<Sessions>,
    /// The store's last write failure, while it lasts ([`Service::store_failure`]).
    store_failure: Mutex<Option<StoreFailure>>,
    /// Count of failed store writes and probes since start (metrics).
    store_errors: std::sync::atomic::AtomicU64,
    /// When the last successful readiness probe started, and how long it took (ms).
    last_probe: Mutex<Option<(std::time::Instant, f64)>>,
}

/// A failed store write that has not been followed by a successful probe: while it lasts,
/// writes answer `Unavailable` (503) at once, and `/health` and `/health/ready` answer 503.
#[derive(Clone, Debug)]
pub struct StoreFailure {
    /// When the first failing write happened (UTC).
    pub since: chrono::DateTime<chrono::Utc>,
}

/// What the store's watchdog should do ([`Service::watch_store`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreWatch {
    /// No write has failed, or the store accepts writes again (the failure is cleared).
    Healthy,
    /// The store still fails and the disk still refuses a 1 MiB write: wait.
    Failing,
    /// The disk accepts writes again but the store still fails (sled keeps its first write
    /// error until it is reopened): the process should exit so that its supervisor restarts
    /// it on the same data folder, where every acknowledged write is.
    RestartNeeded,
}

impl Service {
    /// Opens the service: reads the reference data, opens (or creates) the store, records the
    /// catalogue version, loads the demo history if asked and the store is empty, and builds
    /// the index from every stored record. Errors: `Data` for reference data, `Storage` when
    /// the store cannot be opened (locked by a running service, corrupt) or read; `StoreDamaged`
    /// when it lost acknowledged records (see [`crate::store`]), or is of a newer format than
    /// this program reads. A store of an older format is backed up and migrated first, with a
    /// progress bar (or log lines) per step ([`Store::open_with_progress`]).
    ///
    /// When the data folder holds a store, the reference data are read in a thread of their
    /// own while the store opens and its index is read: neither needs the other, and on two
    /// cores the national seeds (about 1.4 s, mostly the communes' shapes) no longer wait for
    /// the index snapshot (about 3 s) or the reverse. If the reference data then fail, the
    /// store, unchanged, is sealed again (the next start need not count its records) and the
    /// error is theirs. A folder without a store gets one only once the reference data read.
    pub fn open(config: &Config) -> Result<Service> {
        if !Store::exists_in(&config.data_dir) {
            let data = ReferenceData::load(config.seeds.as_deref(), config.catalog.as_deref())?;
            let (store, index) = Service::open_store(config)?;
            return Service::with_store(data, store, index, config);
        }
        let (data, opened) = std::thread::scope(|scope| {
            let data = std::thread::Builder::new()
                .name("reference-data".into())
                .spawn_scoped(scope, || ReferenceData::load(config.seeds.as_deref(), config.catalog.as_deref()))
                .map_err(|e| Error::storage("starting the thread that reads the reference data", e));
            let opened = Service::open_store(config);
            let data = data.and_then(|d| d.join().unwrap_or_else(|_| Err(Error::Data("reading the reference data panicked".into()))));
            (data, opened)
        });
        match (data, opened) {
            (Ok(data), Ok((store, index))) => Service::with_store(data, store, index, config),
            (Err(e), Ok((store, _))) => {
                if let Err(not) = store.seal() {
                    tracing::warn!(error = %not.chain(), "store not sealed again: the next start counts its records");
                }
                Err(e)
            }
            (Err(e), Err(_)) | (Ok(_), Err(e)) => Err(e),
        }
    }

    /// Opens the store and, when it holds adoptions (a demo is then never loaded), reads its
    /// index; `None` for an empty store, whose index [`Service::with_store`] builds.
    fn open_store(config: &Config) -> Result<(Store, Option<AdoptionIndex>)> {
        let mut steps = Steps::default();
        let opened = Store::open_with_progress(&config.data_dir, &mut |step, done, total| steps.update(step, done, total));
        steps.finish();
        let (store, _) = opened?;
        if store.is_empty() {
            return Ok((store, None));
        }
        let index = read_index(&store)?;
        Ok((store, Some(index)))
    }

    /// The end of a clean shutdown, once no request runs: writes the index snapshot that makes
    /// the next start fast ([`Store::write_snapshot`]), with a progress bar (or log lines), then
    /// seals the store ([`Store::seal`]: the next start need not count its records if it is
    /// unchanged). Nothing may be written after it. Errors: `Storage` (the next start then
    /// rebuilds the index, or counts the records).
    pub fn close(&self) -> Result<()> {
        let started = std::time::Instant::now();
        let mut progress = Progress::new("snapshot", 0);
        let written = self.store.write_snapshot(&mut |done, total| progress.update(done, total));
        progress.finish();
        let bytes = written?;
        tracing::info!(bytes, ms = started.elapsed().as_millis() as u64, "index snapshot written for the next start");
        let started = std::time::Instant::now();
        self.store.seal()?;
        tracing::info!(ms = started.elapsed().as_millis() as u64, "store sealed: the next start does not count its records again if it is unchanged");
        Ok(())
    }

    /// Seals the store without writing the index snapshot ([`Store::seal`]): for a command that
    /// wrote nothing the snapshot holds (a token), so that the next start need not count the
    /// records. Nothing may be written after it. Errors: `Storage`.
    pub fn seal(&self) -> Result<()> {
        self.store.seal()
    }

    /// The service on `store`, whose index is `index` when already read ([`Service::open_store`]).
    fn with_store(data: ReferenceData, store: Store, index: Option<AdoptionIndex>, config: &Config) -> Result<Service> {
        if store.catalog_version()?.as_deref() != Some(data.catalog.version.as_str()) {
            tracing::info!(version = %data.catalog.version, "catalogue version recorded");
            store.set_catalog_version(&data.catalog.version)?;
        }
        let mut index = match (index, config.demo) {
            (Some(index), Some(_)) => {
                tracing::info!("store not empty: demo history not loaded again");
                index
            }
            (Some(index), None) => index,
            (None, Some(demo)) => load_demo(&data, &store, demo)?,
            (None, None) => read_index(&store)?,
        };
        let today = config.today.unwrap_or_else(paris_today);
        index.keep_feedback_sums(Params::default().sums_basis(today));
        let demo = store.demo_info()?;
        Ok(Service {
            territory: data.territory,
            catalog: data.catalog,
            shapes: data.shapes,
            store,
            index: ArcSwap::from_pointee(index),
            write_lock: Mutex::new(()),
            // Sized for answers of about 16 kB.
            answers: AnswerCache::with_weighter((config.answer_cache_bytes / 16_384).max(16) as usize, config.answer_cache_bytes, AnswerBytes),
            answer_counts: Default::default(),
            today: config.today,
            demo,
            sessions: Mutex::default(),
            store_failure: Mutex::default(),
            store_errors: Default::default(),
            last_probe: Mutex::default(),
        })
    }

    /// Communes, EPCI and the neighbour graph.
    pub fn territory(&self) -> &Territory {
        &self.territory
    }

    /// The product catalogue.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Simplified commune polygons (WGS84) for maps and GeoJSON exports.
    pub fn shapes(&self) -> &Shapes {
        &self.shapes
    }

    /// The reference date of every answer: the configured one, or today in metropolitan France
    /// (Europe/Paris: a mairie entering a date just after midnight gets its own day).
    pub fn today(&self) -> NaiveDate {
        self.today.unwrap_or_else(paris_today)
    }

    /// The index as last published: the caller keeps this version as long as it holds it
    /// (later writes publish new versions without waiting for it, and it never sees them).
    pub fn index(&self) -> Arc<AdoptionIndex> {
        self.index.load_full()
    }

    /// Publishes the index changed by `change`, applied to a clone of the last one published
    /// (readers keep the version they hold). Call only with `write_lock` held, after the
    /// durable write the change reflects.
    fn publish(&self, change: impl FnOnce(&mut AdoptionIndex)) {
        let mut next = AdoptionIndex::clone(&self.index.load());
        change(&mut next);
        self.index.store(Arc::new(next));
    }

    /// The writers' lock (see the `write_lock` field).
    fn writers(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The index for questions asked at `date`: at the reference date, its feedback sums are
    /// first made to be kept for that date and the default parameters
    /// ([`AdoptionIndex::keep_feedback_sums`]: once a day, O(feedback records), computed
    /// while readers go on; every write keeps them after that). At another date, or with other
    /// parameters, a recommendation reads the records (the same answers).
    fn index_at(&self, date: NaiveDate) -> Arc<AdoptionIndex> {
        let basis = Params::default().sums_basis(date);
        let h = self.index();
        if date != self.today() || h.kept_sums_basis() == Some(basis) {
            return h;
        }
        drop(h);
        // A new day: the sums are computed from the version published (nobody waits), then
        // published with it under the writers' lock, unless a write came in between (then
        // again; after three tries, computed under the writers' lock: writers wait, readers
        // do not).
        let started = std::time::Instant::now();
        for attempt in 1..=3 {
            let table = {
                let h = self.index();
                if h.kept_sums_basis() == Some(basis) {
                    return h;
                }
                h.feedback_sums(basis)
            };
            let _writers = self.writers();
            let current = self.index();
            if current.kept_sums_basis() == Some(basis) {
                break;
            }
            if table.version() == current.version() || attempt == 3 {
                drop(current);
                self.publish(|h| {
                    if !h.install_feedback_sums(table) {
                        h.keep_feedback_sums(basis);
                    }
                });
                break;
            }
        }
        tracing::info!(date = %date, ms = started.elapsed().as_millis() as u64, "feedback sums computed for the day");
        self.index()
    }

    /// Runs `f` with a recommendation context over the index at the reference date.
    pub fn with_ctx<R>(&self, f: impl FnOnce(&Ctx<'_>) -> R) -> R {
        let today = self.today();
        let h = self.index_at(today);
        f(&Ctx::new(&self.territory, &self.catalog, &h, today))
    }

    /// Runs `f` with a recommendation context at `as_of` ([`Service::as_of`]). Errors:
    /// `Invalid` for `as_of`.
    pub fn with_ctx_at<R>(&self, as_of: Option<NaiveDate>, f: impl FnOnce(&Ctx<'_>) -> R) -> Result<R> {
        let today = self.as_of(as_of)?;
        let h = self.index_at(today);
        Ok(f(&Ctx::new(&self.territory, &self.catalog, &h, today)))
    }

    /// The date a question is asked at: `as_of` (a past date: nothing recorded after it is
    /// read), or the reference date. Errors: `Invalid` for a date after the reference date or
    /// before 1980-01-01.
    pub fn as_of(&self, as_of: Option<NaiveDate>) -> Result<NaiveDate> {
        let today = self.today();
        match as_of {
            None => Ok(today),
            Some(d) if d > today => Err(Error::Invalid(format!("as_of {d} is after the reference date {today}"))),
            Some(d) if d < NaiveDate::from_ymd_opt(MIN_DATE.0, MIN_DATE.1, MIN_DATE.2).unwrap_or(NaiveDate::MIN) => {
                Err(Error::Invalid(format!("as_of {d} is before {}-{:02}-{:02}", MIN_DATE.0, MIN_DATE.1, MIN_DATE.2)))
            }
            Some(d) => Ok(d),
        }
    }

    /// The simulated history the store holds, if any (seed, end, counts).
    pub fn demo_info(&self) -> Option<&DemoInfo> {
        self.demo.as_ref()
    }

    /// Whether the store holds a simulated history (pages then show the "simulated" banner).
    pub fn is_simulated(&self) -> bool {
        self.demo.is_some()
    }

    /// Record counts and the store's size.
    pub fn stats(&self) -> Stats {
        let h = self.index();
        Stats {
            adoptions: h.adoption_count(),
            feedback: h.feedback_count(),
            store_bytes: self.store.size_on_disk(),
            store_errors: self.store_errors.load(std::sync::atomic::Ordering::Relaxed),
            store_failing: self.store_failure().is_some(),
        }
    }

    /// The answer cache's bytes, budget, answers, hits and misses.
    pub fn answer_cache_stats(&self) -> AnswerCacheStats {
        let (hits, misses) = &self.answer_counts;
        AnswerCacheStats {
            bytes: self.answers.weight(),
            capacity: self.answers.capacity(),
            answers: self.answers.len(),
            hits: hits.load(std::sync::atomic::Ordering::Relaxed),
            misses: misses.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The principal of a bearer token secret. Errors: `Unauthorized` for a secret that is not
    /// a token's shape, unknown or revoked; `Storage` when the store cannot be read.
    pub fn authenticate(&self, secret: &str) -> Result<Principal> {
        let hash = TokenHash::of_secret(secret)?;
        let token = self.store.token_by_hash(&hash)?.ok_or_else(|| Error::Unauthorized("unknown token".into()))?;
        if token.revoked.is_some() {
            return Err(Error::Unauthorized(format!("token {} was revoked", token.id)));
        }
        Ok(Principal { token_id: token.id, scope: token.scope })
    }

    /// `Ok` when `who` may write the data of commune `code`. Errors: `NotFound` for a commune
    /// not in the territory, `Forbidden` when the token's scope does not cover it.
    pub fn authorize_commune(&self, who: &Principal, code: &InseeCode) -> Result<()> {
        let idx = self.territory.find(code)?;
        who.may_write(code, self.territory.commune(idx).epci.as_ref())
    }

    /// `Ok` when `who` may write the data of EPCI `siren` itself (its price estimates): its own
    /// EPCI token or admin. Errors: `NotFound` for an EPCI not in the territory, `Forbidden`
    /// for another scope (a commune's token, another EPCI's).
    pub fn authorize_epci(&self, who: &Principal, siren: &Siren) -> Result<()> {
        self.territory.epci(siren)?;
        who.may_write_epci(siren)
    }

    /// Whether `viewer` may read commune `code`'s free-text comments (its own token, its EPCI's
    /// token, or admin). Errors: `NotFound` for an unknown commune.
    pub fn sees_comments(&self, viewer: Option<&Principal>, code: &InseeCode) -> Result<bool> {
        let idx = self.territory.find(code)?;
        Ok(viewer.is_some_and(|p| p.scope.covers(code, self.territory.commune(idx).epci.as_ref())))
    }

    /// A commune's adoptions, as `viewer` may see them. Errors: `NotFound`.
    pub fn adoptions_of(&self, viewer: Option<&Principal>, code: &InseeCode) -> Result<Vec<AdoptionView>> {
        Ok(self.adoptions_page(viewer, code, 0, usize::MAX)?.0)
    }

    /// One page of a commune's adoptions (oldest record first, `offset` skipped, at most
    /// `limit`), as `viewer` may see them, and how many the commune has in all. Errors:
    /// `NotFound` for an unknown commune.
    pub fn adoptions_page(&self, viewer: Option<&Principal>, code: &InseeCode, offset: usize, limit: usize) -> Result<(Vec<AdoptionView>, usize)> {
        let visible = self.sees_comments(viewer, code)?;
        let h = self.index();
        let all: Vec<&Adoption> = h.of_commune(code).collect();
        Ok((all.iter().skip(offset).take(limit).map(|a| view(&h, a, self.today(), visible)).collect(), all.len()))
    }

    /// One adoption of a commune, as `viewer` may see it. Errors: `NotFound` for an unknown
    /// commune or an adoption that is not this commune's.
    pub fn adoption(&self, viewer: Option<&Principal>, code: &InseeCode, id: u64) -> Result<AdoptionView> {
        let visible = self.sees_comments(viewer, code)?;
        let h = self.index();
        let a = own_adoption(&h, code, id)?;
        Ok(view(&h, a, self.today(), visible))
    }

    /// Records an adoption of commune `code`. A retry with the same idempotency key returns
    /// the first record (`replayed`). Errors: `Forbidden`, `NotFound` (commune, product,
    /// category), `Invalid` (dates, generation), `Conflict` (the same product and generation
    /// already in service), `Storage`.
    pub fn record_adoption(&self, who: &Principal, code: &InseeCode, draft: AdoptionDraft, idem: Option<&Idempotency>) -> Result<Written<Adoption>> {
        self.authorize_commune(who, code)?;
        let new = self.new_adoption(code, draft)?;
        let _guard = self.writers();
        if let Some(i) = idem
            && let Some(a) = self.store.adoption_for_key(i)?
        {
            return Ok(Written { record: a, replayed: true });
        }
        new.check_duplicate(&self.index())?;
        let (a, replayed) = self.write(|| self.store.insert_adoption_once(new, idem))?;
        if !replayed {
            self.publish(|h| h.add_adoption(a.clone()));
            audit(who, "adoption.create", Some(&a.commune), a.id);
        }
        Ok(Written { record: a, replayed })
    }

    /// The adoption a draft describes, checked against the catalogue and the reference date.
    fn new_adoption(&self, code: &InseeCode, d: AdoptionDraft) -> Result<NewAdoption> {
        let product = self.catalog.product(&d.product)?;
        let category = match d.category {
            Some(c) => {
                self.catalog.category(&c)?;
                c
            }
            None => product.categories[0].clone(),
        };
        let new = NewAdoption {
            commune: *code,
            category,
            product: d.product,
            generation: d.generation,
            since: d.since,
            until: d.until,
            contract_end: d.contract_end,
            workstations: d.workstations,
        };
        new.validate(&self.catalog, self.today())?;
        Ok(new)
    }

    /// Ends or corrects an adoption of commune `code` (its product, generation, category and
    /// start never change). Errors: `Forbidden`, `NotFound`, `Invalid`, `Conflict`, `Storage`.
    pub fn amend_adoption(&self, who: &Principal, code: &InseeCode, id: u64, changes: AdoptionChanges) -> Result<AdoptionView> {
        self.authorize_commune(who, code)?;
        let _guard = self.writers();
        let mut a = own_adoption(&self.index(), code, id)?.clone();
        if let Some(u) = changes.until {
            a.until = u;
        }
        if let Some(c) = changes.contract_end {
            a.contract_end = c;
        }
        if let Some(w) = changes.workstations {
            a.workstations = w;
        }
        let new = NewAdoption::of(&a);
        new.validate(&self.catalog, self.today())?;
        new.check_duplicate_except(&self.index(), Some(id))?;
        self.write(|| self.store.update_adoption(&a))?;
        self.publish(|h| h.add_adoption(a.clone()));
        audit(who, "adoption.update", Some(&a.commune), a.id);
        Ok(view(&self.index(), &a, self.today(), true))
    }

    /// Records feedback on adoption `id` of commune `code`. A retry with the same idempotency
    /// key returns the first record. Errors: `Forbidden`, `NotFound`, `Invalid` (a date before
    /// the adoption or in the future, a comment over 2,000 characters), `Storage`.
    pub fn record_feedback(&self, who: &Principal, code: &InseeCode, id: u64, draft: FeedbackDraft, idem: Option<&Idempotency>) -> Result<Written<Feedback>> {
        self.authorize_commune(who, code)?;
        let adoption = own_adoption(&self.index(), code, id)?.clone();
        let new = NewFeedback {
            date: draft.date.unwrap_or_else(|| self.today()),
            reliability: draft.reliability,
            incidents: draft.incidents,
            downtime_hours: draft.downtime_hours + 0.0, // -0.0 becomes 0.0
            support: draft.support,
            comment: draft.comment.filter(|c| !c.trim().is_empty()),
        };
        new.validate(&adoption, self.today())?;
        // Written without the writers' lock (concurrent feedback writes share the store's syncs),
        // then published under it.
        let (f, replayed) = self.write(|| self.store.insert_feedback_once(id, new, idem))?;
        if !replayed {
            let _guard = self.writers();
            self.publish(|h| {
                h.add_feedback(f.clone());
            });
            audit(who, "feedback.create", Some(code), f.id);
        }
        Ok(Written { record: f, replayed })
    }

    /// Checks an EPCI's inventory (rows read from its filled spreadsheet by
    /// [`crate::inventory::parse_inventory`]) against the territory, the catalogue and what is
    /// recorded ([`crate::core::inventory::check_inventory`]), and, only when no row has an
    /// error and `dry_run` is false, records every accepted row, **all or nothing** (one store
    /// transaction, one durable commit; then the index; one audit line per adoption, action
    /// `adoption.import`). The report says per row what was (or would be) recorded, skipped,
    /// or refused and why; `written` says whether anything was recorded. A report with errors
    /// is an `Ok`: the caller answers it (422 on the API).
    ///
    /// Who: a token `epci:{siren}` of this EPCI, or `admin`. Errors: `Forbidden` for any other
    /// scope (a commune's token, another EPCI's), `NotFound` for an unknown EPCI, `Storage`.
    pub fn import_inventory(&self, who: &Principal, siren: &Siren, rows: &[InventoryRow], dry_run: bool) -> Result<InventoryReport> {
        self.authorize_epci(who, siren)?;
        // Checked and written under the write lock, so that no other write slips in between.
        let _guard = (!dry_run).then(|| self.writers());
        let checked = {
            let h = self.index();
            check_inventory(&self.territory, &self.catalog, &h, siren, rows, self.today())
        };
        let CheckedInventory { mut report, adoptions } = checked;
        report.dry_run = dry_run;
        if dry_run || report.errors > 0 || adoptions.is_empty() {
            return Ok(report);
        }
        let news: Vec<NewAdoption> = adoptions.iter().map(|(_, a)| a.clone()).collect();
        let written = self.write(|| self.store.insert_adoptions(&news))?;
        self.publish(|h| {
            for a in &written {
                h.add_adoption(a.clone());
            }
        });
        for ((line, _), a) in adoptions.iter().zip(&written) {
            report.lines[*line].adoption = Some(a.id);
            audit(who, "adoption.import", Some(&a.commune), a.id);
        }
        report.written = true;
        Ok(report)
    }

    /// The inventory template of EPCI `siren` as XLSX bytes
    /// ([`crate::inventory::template_xlsx`]): one row per member commune × category,
    /// pre-filled with what each runs on the reference date. Errors: `NotFound` for an unknown
    /// EPCI, `Internal` when the workbook cannot be written.
    pub fn inventory_template(&self, siren: &Siren) -> Result<Vec<u8>> {
        self.territory.epci(siren)?;
        let h = self.index();
        crate::inventory::template_xlsx(&self.territory, &self.catalog, &h, siren, self.today())
    }

    /// What the members of EPCI `siren` run on the reference date, as XLSX bytes
    /// ([`crate::export::inventory_xlsx`]): one row per adoption in service, in the columns of
    /// the inventory template (it can be sent back). Errors: `NotFound` for an unknown EPCI,
    /// `Internal` when the workbook cannot be written.
    pub fn inventory_xlsx(&self, siren: &Siren) -> Result<Vec<u8>> {
        self.territory.epci(siren)?;
        let h = self.index();
        crate::export::inventory_xlsx(&self.territory, &self.catalog, &h, siren, self.today())
    }

    /// The recommendation answer for a commune and category, as JSON bytes (shared, not
    /// copied: the cache and every caller hold the same buffer), at the reference date or at
    /// `as_of` ([`Service::as_of`]). Answers are cached until the next write or the next day
    /// (reads far outnumber writes), or until the cache's budget evicts them. Errors: `NotFound`
    /// (commune, category), `Invalid` (parameters, `as_of`).
    pub fn recommend_json(&self, code: &InseeCode, category: &Slug, params: &Params, as_of: Option<NaiveDate>) -> Result<Bytes> {
        let today = self.as_of(as_of)?;
        let key = answer_key(code, category, today, params)?;
        let h = self.index_at(today);
        let version = h.version();
        let (hits, misses) = &self.answer_counts;
        if let Some(c) = self.answers.get(key.as_slice()).filter(|c| c.version == version && c.today == today) {
            hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(c.body);
        }
        let answer = recommend(&Ctx::new(&self.territory, &self.catalog, &h, today), code, category, params)?;
        // Counted once computed: a question refused (unknown commune or category) is no miss.
        misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = ANSWER_JSON.with_borrow_mut(|json| {
            json.clear();
            answer.write_json(json).map_err(|e| Error::internal("serialising a recommendation", e))?;
            // Kept at its own size: the cache holds it, maybe for long, and counts its bytes.
            let body = Bytes::copy_from_slice(json);
            if json.capacity() > MAX_KEPT_JSON_BUFFER {
                *json = Vec::with_capacity(ANSWER_JSON_CAPACITY);
            }
            Ok::<_, Error>(body)
        })?;
        self.answers.insert(key.into_boxed_slice(), CachedAnswer { version, today, body: body.clone() });
        Ok(body)
    }

    /// The groupements de commandes proposed to EPCI `siren` over `horizon_months`, at the
    /// reference date or at `as_of`, each priced with the EPCI's estimate in force on that date
    /// (amount, procedure, whose estimate: see [`crate::core::pooling::Volume`]). Errors:
    /// `NotFound` for an unknown EPCI, `Invalid` for `as_of` or the horizon, `Storage`.
    pub fn pooled_purchases(&self, siren: &Siren, horizon_months: u32, as_of: Option<NaiveDate>) -> Result<PooledPurchases> {
        let estimates = self.price_estimates(siren)?;
        self.with_ctx_at(as_of, |ctx| pooled_purchases_with(ctx, siren, horizon_months, &estimates))?
    }

    /// [`Service::pooled_purchases`] as CSV bytes, for scripts
    /// ([`crate::export::pooled_purchases_csv`]; `simule` says whether the store holds the
    /// simulated history). Errors: those of [`Service::pooled_purchases`], `Internal`.
    pub fn pooled_purchases_csv(&self, siren: &Siren, horizon_months: u32, as_of: Option<NaiveDate>) -> Result<Vec<u8>> {
        crate::export::pooled_purchases_csv(&self.pooled_purchases(siren, horizon_months, as_of)?, self.is_simulated())
    }

    /// [`Service::pooled_purchases`] as XLSX bytes, the same rows as the CSV with typed cells
    /// ([`crate::export::pooled_purchases_xlsx`]). Errors: those of
    /// [`Service::pooled_purchases`], `Internal`.
    pub fn pooled_purchases_xlsx(&self, siren: &Siren, horizon_months: u32, as_of: Option<NaiveDate>) -> Result<Vec<u8>> {
        crate::export::pooled_purchases_xlsx(&self.pooled_purchases(siren, horizon_months, as_of)?, self.is_simulated())
    }

    /// Records an estimated price of EPCI `siren` for an option, durably, and audits it
    /// (`price_estimate.create`). The latest estimate in force for an option wins; earlier ones
    /// are kept as history. `who` must hold the EPCI's token or an admin token. Errors:
    /// `NotFound` (EPCI, product), `Forbidden` (a commune's token, another EPCI's), `Invalid` (a
    /// generation the catalogue does not list for the product, an amount out of 0 to
    /// 10,000,000 € HT, `made_on` after the reference date, a note over 500 characters),
    /// `Storage`.
    pub fn record_price_estimate(&self, who: &Principal, siren: &Siren, draft: PriceEstimateDraft) -> Result<PriceEstimate> {
        self.authorize_epci(who, siren)?;
        let new = NewPriceEstimate {
            epci: *siren,
            product: draft.product,
            generation: draft.generation,
            basis: draft.basis,
            amount_eur_ht: draft.amount_eur_ht,
            made_on: draft.made_on.unwrap_or_else(|| self.today()),
            note: draft.note,
        }
        .validate(&self.catalog, self.today())?;
        let name = match who.scope {
            TokenScope::Epci(s) => self.territory.epci(&s)?.name.clone(),
            TokenScope::Admin if *who == Principal::OPERATOR => "opérateur de voisinage".to_string(),
            TokenScope::Admin => "administrateur de voisinage".to_string(),
            TokenScope::Commune(c) => c.to_string(),
        };
        let by = EstimateAuthor { token_id: who.token_id, scope: who.scope, name };
        let e = self.write(|| self.store.insert_price_estimate(new, by, chrono::Utc::now()))?;
        audit_epci(who, "price_estimate.create", siren, e.id);
        Ok(e)
    }

    /// Every price estimate of EPCI `siren`, in recording order (the history included; see
    /// [`crate::core::prices::in_force`]). Errors: `NotFound` for an unknown EPCI, `Storage`.
    pub fn price_estimates(&self, siren: &Siren) -> Result<Vec<PriceEstimate>> {
        self.territory.epci(siren)?;
        self.store.price_estimates(siren)
    }

    /// Whether `viewer` may read the notes of EPCI `siren`'s price estimates (its token or
    /// admin).
    pub fn sees_epci_notes(&self, viewer: Option<&Principal>, siren: &Siren) -> bool {
        viewer.is_some_and(|p| p.may_write_epci(siren).is_ok())
    }

    /// Creates a token (admin only) and returns it with its secret, which is not stored.
    /// Errors: `Forbidden` for a non-admin, `NotFound` for a scope naming an unknown commune or
    /// EPCI, `Invalid` for a label over 200 characters, `Storage`.
    pub fn create_token(&self, who: &Principal, scope: TokenScope, label: &str) -> Result<(Token, String)> {
        who.must_be_admin()?;
        self.territory.check_scope(&scope)?;
        let (t, secret) = self.write(|| self.store.create_token(scope, label, chrono::Utc::now()))?;
        audit(who, "token.create", None, t.id);
        Ok((t, secret))
    }

    /// Every token, without secrets (admin only). Errors: `Forbidden`, `Storage`.
    pub fn tokens(&self, who: &Principal) -> Result<Vec<Token>> {
        who.must_be_admin()?;
        self.store.tokens()
    }

    /// Token `id`, without its secret (admin only). Errors: `Forbidden`, `NotFound`, `Storage`.
    pub fn token(&self, who: &Principal, id: u64) -> Result<Token> {
        who.must_be_admin()?;
        self.store.token(id)?.ok_or_else(|| Error::NotFound(format!("no token {id}")))
    }

    /// Revokes token `id` at once (admin only; a token cannot revoke itself). Errors:
    /// `Forbidden`, `Conflict` (itself), `NotFound`, `Storage`.
    pub fn revoke_token(&self, who: &Principal, id: u64) -> Result<Token> {
        who.must_be_admin()?;
        if id == who.token_id && *who != Principal::OPERATOR {
            return Err(Error::Conflict("a token cannot revoke itself: use another admin token, or `voisinage token revoke` with the service stopped".into()));
        }
        let t = self.write(|| self.store.revoke_token(id, chrono::Utc::now()))?;
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).close_token(t.id);
        audit(who, "token.revoke", None, t.id);
        Ok(t)
    }

    /// Signs in with an access code (a token secret) and opens a page session. Returns the
    /// session id for the cookie and the session. Errors: `Unauthorized` for a code that is not
    /// a token's shape, unknown or revoked (the caller answers every one the same way);
    /// `Internal` when the random source fails.
    pub fn sign_in(&self, secret: &str) -> Result<(String, Session)> {
        let principal = self.authenticate(secret)?;
        let (mut id, mut csrf) = ([0u8; 32], [0u8; 32]);
        for b in [&mut id, &mut csrf] {
            getrandom::fill(b).map_err(|e| Error::Internal { context: format!("random source: {e}"), source: None })?;
        }
        let opened = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).open(principal, &id, &csrf, chrono::Utc::now());
        tracing::info!(target: "voisinage::audit", token = principal.token_id, scope = %principal.scope, action = "session.open", "sign-in");
        Ok(opened)
    }

    /// The live session of a cookie's session id, its idle timer restarted; `None` for an
    /// unknown, expired or malformed id, or one whose token has since been revoked.
    pub fn session(&self, id: &str) -> Option<Session> {
        let s = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).touch(id, chrono::Utc::now())?;
        // A token revoked from the command line (another process) is seen here.
        match self.store.token(s.principal.token_id) {
            Ok(Some(t)) if t.revoked.is_none() => Some(s),
            _ => {
                self.sign_out(id);
                None
            }
        }
    }

    /// Ends a session (sign-out); nothing happens for an unknown id.
    pub fn sign_out(&self, id: &str) {
        if self.sessions.lock().unwrap_or_else(|p| p.into_inner()).close(id) {
            tracing::info!(target: "voisinage::audit", action = "session.close", "sign-out");
        }
    }

    /// Issues a new access code for commune `code` (a `commune:{code}` token labelled
    /// `label`), for the letter an EPCI or the administrator posts to the mairie; the commune's
    /// earlier tokens are revoked (and their sessions ended), so a lost code stops working. Allowed to an
    /// admin token and to the token of the commune's EPCI. Returns the token and its secret
    /// (shown once, never stored). Errors: `NotFound` (commune), `Forbidden` (another scope),
    /// `Invalid` (label over 200 characters), `Storage`.
    pub fn issue_access_code(&self, who: &Principal, code: &InseeCode, label: &str) -> Result<(Token, String)> {
        let idx = self.territory.find(code)?;
        let epci = self.territory.commune(idx).epci;
        let allowed = match who.scope {
            TokenScope::Admin => true,
            TokenScope::Epci(s) => epci == Some(s),
            TokenScope::Commune(_) => false,
        };
        if !allowed {
            return Err(Error::Forbidden(format!("a token of scope {} may not issue an access code for commune {code}", who.scope)));
        }
        let now = chrono::Utc::now();
        let (t, secret) = self.write(|| self.store.create_token(TokenScope::Commune(*code), label, now))?;
        audit(who, "token.create", Some(code), t.id);
        // The letter replaces the commune's earlier codes: a lost one stops working.
        for old in self.store.tokens()?.into_iter().filter(|o| o.scope == TokenScope::Commune(*code) && o.id != t.id && o.revoked.is_none()) {
            self.write(|| self.store.revoke_token(old.id, now))?;
            self.sessions.lock().unwrap_or_else(|p| p.into_inner()).close_token(old.id);
            audit(who, "token.revoke", Some(code), old.id);
        }
        Ok((t, secret))
    }

    /// Runs a store write, unless the store has failed a write and not recovered since
    /// (`Unavailable` at once, without touching it); records a failure of the write (any
    /// `Storage` error: disk full, I/O error) as the store's failure, answered as
    /// `Unavailable`. Nothing is acknowledged that was not durably written.
    fn write<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if let Some(failure) = self.store_failure() {
            return Err(failure.unavailable());
        }
        f().map_err(|e| self.note_store_error(e))
    }

    /// Records `e` as the store's failure when it is one (`Storage`), and turns it into
    /// `Unavailable`; other errors pass unchanged.
    fn note_store_error(&self, e: Error) -> Error {
        if !matches!(e, Error::Storage { .. }) {
            return e;
        }
        self.store_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut slot = self.store_failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            tracing::error!(error = %e.chain(), "store write failed: writes are refused until the store is healthy again (GET /health/ready)");
        } else {
            tracing::debug!(error = %e.chain(), "the store still fails");
        }
        // The store's own error is in the log line above (it may name files): not in the answer.
        slot.get_or_insert_with(|| StoreFailure { since: chrono::Utc::now() }).unavailable()
    }

    /// The store's current write failure, if one happened and no probe succeeded since.
    pub fn store_failure(&self) -> Option<StoreFailure> {
        self.store_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Readiness: the store takes a probe write and syncs it ([`Store::probe`]); the index is
    /// loaded by construction (a `Service` exists only once it is). A success clears a past
    /// failure; a failure is recorded as the store's. Returns the probe's duration in ms.
    /// Errors: `Unavailable` naming the store's error.
    ///
    /// Probes are serialised and a result younger than [`PROBE_REUSE`] is answered again, so
    /// that callers hammering `/health/ready` cost at most one sync a second.
    pub fn readiness(&self) -> Result<f64> {
        let mut last = self.last_probe.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, ms)) = *last
            && at.elapsed() < PROBE_REUSE
            && self.store_failure().is_none()
        {
            return Ok(ms);
        }
        let start = std::time::Instant::now();
        match self.store.probe() {
            Ok(()) => {
                if self.store_failure.lock().unwrap_or_else(|p| p.into_inner()).take().is_some() {
                    tracing::info!("the store accepts writes again");
                }
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                *last = Some((start, ms));
                Ok(ms)
            }
            Err(e) => {
                *last = None;
                Err(self.note_store_error(e))
            }
        }
    }

    /// One round of the store's watchdog (run every few seconds by `voisinage serve`): when a
    /// write has failed, probes the store, then the disk. See [`StoreWatch`].
    pub fn watch_store(&self) -> StoreWatch {
        if self.store_failure().is_none() || self.readiness().is_ok() {
            return StoreWatch::Healthy;
        }
        match self.store.disk_probe() {
            Ok(()) => StoreWatch::RestartNeeded,
            Err(_) => StoreWatch::Failing,
        }
    }

    /// Sets the function told the duration of every store sync, seconds (metrics); only the
    /// first call takes effect.
    pub fn on_store_sync(&self, observer: crate::store::SyncObserver) -> bool {
        self.store.on_sync(observer)
    }

    /// Count of store syncs since opening (group commit: concurrent writes share one).
    pub fn store_syncs(&self) -> u64 {
        self.store.syncs()
    }

    /// Every stored adoption and feedback record, read from the store itself (not the index),
    /// in key order. Errors: `Storage`.
    pub fn stored_records(&self) -> Result<(Vec<Adoption>, Vec<Feedback>)> {
        self.store.load()
    }

    /// A stored token by id, read from the store. Errors: `Storage`.
    pub fn stored_token(&self, id: u64) -> Result<Option<Token>> {
        self.store.token(id)
    }

    /// Writes a backup of the store to `out` (admin only), taken at `created` and read while
    /// writers run: every record inserted before it started, none after
    /// ([`crate::backup`] gives the format and the consistency rule). Returns its header and
    /// counts. Errors: `Forbidden` for a non-admin, `Storage`, `Io` when `out` fails (the
    /// client went away: the file has no footer and a restore refuses it).
    pub fn backup(&self, who: &Principal, created: chrono::DateTime<chrono::Utc>, out: impl std::io::Write) -> Result<backup::Summary> {
        who.must_be_admin()?;
        let summary = backup::write(&self.store, out, created)?;
        tracing::info!(
            target: "voisinage::audit",
            token = who.token_id,
            scope = %who.scope,
            action = "backup.create",
            records = summary.counts.total(),
            next_id = summary.state.next_id,
            at = %chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "backup"
        );
        Ok(summary)
    }
}

/// Writes a backup of the store in `data_dir` to `out`, the service being stopped (`voisinage
/// backup --data-dir`): the store is opened directly, without the reference data. Errors:
/// `NotFound` when `data_dir` holds no store; `Storage` when it cannot be opened (locked by a
/// running service: the message says to use the admin API) or read; `Io` when `out` fails.
/// `progress(done, total)` counts the records written ([`backup::write_with_progress`]).
pub fn backup_data_dir(
    data_dir: &Path,
    created: chrono::DateTime<chrono::Utc>,
    out: impl std::io::Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<backup::Summary> {
    if !Store::exists_in(data_dir) {
        return Err(Error::NotFound(format!("{} holds no voisinage store (no store/ folder in it)", data_dir.display())));
    }
    let store = Store::open(data_dir).map_err(|e| match e {
        Error::Storage { context, source } => Error::Storage {
            context: format!(
                "{context} (is the service running on this data folder? back it up through the service instead: `voisinage backup --url http://HOST:PORT --token-file FILE`)"
            ),
            source,
        },
        e => e,
    })?;
    backup::write_with_progress(&store, out, created, progress)
}

/// Rebuilds a store in `data_dir` from the backup file `from` (`voisinage restore`). Refuses a
/// `data_dir` that exists and is not empty. Reads and checks the whole file first (gzip
/// integrity, format and version, footer, counts, checksum: [`backup::read`]), then writes
/// every record into a fresh store beside it (`{data_dir}.partial-{pid}`; ids, high-water ids,
/// catalogue version, demo description, idempotency keys and token hashes kept), flushes,
/// opens it again with [`Store::open`] and counts its records against the file, and only then
/// renames it to `data_dir`: on any failure no store is left at `data_dir` and the partial
/// folder is removed. `progress(step, done, total)` is called as it goes (`verifying`: bytes
/// of the file; `writing`, `checking`: records). Errors: `Invalid` for a damaged file or a
/// folder in use, `Io`, `Storage`.
pub fn restore(from: &Path, data_dir: &Path, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<backup::Summary> {
    let occupied = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::Invalid(format!("restore refused: {} cannot be used as the new data folder ({e})", data_dir.display()))),
    };
    if occupied {
        return Err(Error::Invalid(format!(
            "restore refused: {} is not empty (it may hold a store); restore into a new or empty folder, never over a store",
            data_dir.display()
        )));
    }
    let open = || std::fs::File::open(from).map_err(|e| Error::Invalid(format!("cannot read the backup file {}: {e}", from.display())));
    // 1. The whole file, checked before anything is written.
    let size = open()?.metadata().map(|m| m.len()).unwrap_or(0);
    let mut read_bytes = 0u64;
    let reader = ProgressReader { inner: open()?, read: &mut read_bytes, total: size, progress: &mut *progress };
    let verified = backup::read(std::io::BufReader::new(reader), &mut |_| Ok(()))?;
    // 2. Into a fresh store beside the target, renamed at the end.
    let name = data_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    let partial = data_dir.with_file_name(format!("{name}.partial-{}", std::process::id()));
    if partial.exists() {
        return Err(Error::Invalid(format!("restore refused: {} exists (left by an earlier restore?); remove it first", partial.display())));
    }
    let result = fill_store(from, &partial, &verified, progress);
    let result = result.and_then(|()| {
        if data_dir.exists() {
            std::fs::remove_dir(data_dir)?; // empty, checked above
        }
        std::fs::rename(&partial, data_dir)?;
        if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent).and_then(|f| f.sync_all())?;
        }
        Ok(())
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    Ok(verified)
}

/// Writes the verified backup `from` into a new store in `dir`, then reopens it and counts.
fn fill_store(from: &Path, dir: &Path, verified: &backup::Summary, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<()> {
    let total = verified.counts.total();
    {
        let store = Store::open(dir)?;
        let mut done = 0u64;
        let file = std::fs::File::open(from)?;
        let again = backup::read(std::io::BufReader::new(file), &mut |r| {
            store.import_record(r)?;
            done += 1;
            if done.is_multiple_of(4096) || done == total {
                progress("writing", done, total);
            }
            Ok(())
        })?;
        if again != *verified {
            return Err(Error::Invalid("restore refused: the backup file changed while it was read".into()));
        }
        store.import_finish(&verified.state)?;
    }
    // The ledger the empty store was given when created does not count the records written
    // raw: removed, the next open computes it from the restored records.
    match std::fs::remove_file(crate::store::ledger::path(dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    // Proof: the store opens as the service would open it, and holds what the file holds.
    let store = open_released(dir)?;
    let mut counted = backup::Counts::default();
    let state = store.backup_state()?;
    if (state.next_id, state.next_token_id, state.next_price_estimate_id)
        != (verified.state.next_id, verified.state.next_token_id, verified.state.next_price_estimate_id)
    {
        return Err(Error::storage_state("the restored store's high-water ids differ from the backup's"));
    }
    for (i, r) in store.export_records(&state).enumerate() {
        match r? {
            backup::Record::Adoption(_) => counted.adoption += 1,
            backup::Record::Feedback(_) => counted.feedback += 1,
            backup::Record::Token(..) => counted.token += 1,
            backup::Record::PriceEstimate(_) => counted.price_estimate += 1,
            backup::Record::Idempotency(_) => counted.idempotency += 1,
        }
        if (i + 1).is_multiple_of(4096) {
            progress("checking", i as u64 + 1, total);
        }
    }
    progress("checking", total, total);
    if counted != verified.counts {
        return Err(Error::storage_state(format!("the restored store holds {counted}, the backup {}", verified.counts)));
    }
    Ok(())
}

/// Opens the store in `dir` just closed by this process: sled releases its file lock when its
/// last internal handle goes, which may be a moment after the drop (tries for up to 10 s).
fn open_released(dir: &Path) -> Result<Store> {
    for _ in 0..400 {
        match Store::open(dir) {
            Err(e) if e.chain().contains("lock") => std::thread::sleep(std::time::Duration::from_millis(25)),
            other => return other,
        }
    }
    Store::open(dir)
}

/// A reader that reports how many bytes it has given out.
struct ProgressReader<'a, R> {
    inner: R,
    read: &'a mut u64,
    total: u64,
    progress: &'a mut dyn FnMut(&str, u64, u64),
}

impl<R: std::io::Read> std::io::Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.read += n as u64;
        (self.progress)("verifying", *self.read, self.total);
        Ok(n)
    }
}

impl StoreFailure {
    /// `Unavailable` saying since when the store refuses writes (not its error, which may name
    /// files: that is in the log).
    pub fn unavailable(&self) -> Error {
        Error::Unavailable(format!(
            "the store has refused writes since {} (disk full or I/O error); nothing was recorded: retry later",
            self.since.format("%Y-%m-%d %H:%M:%S UTC")
        ))
    }
}

/// The index of `store`'s records, read with a progress bar (or log lines).
fn read_index(store: &Store) -> Result<AdoptionIndex> {
    let mut progress = Progress::new("index", 0);
    let index = store.load_index_with_progress(&mut |done, total| progress.update(done, total));
    progress.finish();
    index
}

/// Simulates the demo history and loads it into `store`, which must be empty (else `Invalid`,
/// from [`Store::load_demo_with_progress`]: a store holding adoptions is never touched); returns
/// the index of what it wrote, built from the same records in a second thread while the store
/// writes them (read from the store instead if it does not match what was written). Errors:
/// `Storage`, `Invalid`.
fn load_demo(data: &ReferenceData, store: &Store, demo: DemoRequest) -> Result<AdoptionIndex> {
    tracing::info!(seed = demo.seed, end = %demo.until, "simulating the demo history (simulated data, not real opinions)");
    let mut progress = Progress::new("simulation", 0).unit("months");
    let h = simulate_with_progress(&data.territory, &data.catalog, &SimParams::new(demo.seed, demo.until), &mut |done, total| progress.update(done, total));
    progress.finish();
    let mut progress = Progress::new("demo load", 0);
    let (loaded, index) = std::thread::scope(|s| {
        let building = s.spawn(|| {
            let mut index = AdoptionIndex::default();
            h.adoptions.iter().for_each(|a| index.add_adoption(a.clone()));
            // Sorted by adoption, then date (ids in that order): one run per adoption.
            let mut records = Vec::new();
            for run in h.feedback.chunk_by(|a, b| a.adoption_id == b.adoption_id) {
                records.extend_from_slice(run);
                index.add_feedback_run(&mut records);
            }
            index.shrink_to_fit();
            index
        });
        let loaded = store.load_demo_with_progress(&h, demo.seed, demo.until, &mut |done, total| progress.update(done, total));
        (loaded, building.join())
    });
    progress.finish();
    let info = loaded?;
    tracing::info!(adoptions = info.adoptions, feedback = info.feedback, website_share_2013 = h.website_share_2013, "demo history loaded");
    match index {
        Ok(index) if index.adoption_count() == info.adoptions && index.feedback_count() == info.feedback => Ok(index),
        _ => {
            tracing::warn!("the index built beside the demo load does not match what was stored: rebuilt from the store");
            read_index(store)
        }
    }
}

/// Adoption `id` if it is commune `code`'s. Errors: `NotFound`.
fn own_adoption<'h>(h: &'h AdoptionIndex, code: &InseeCode, id: u64) -> Result<&'h Adoption> {
    h.adoption(id).filter(|a| a.commune == *code).ok_or_else(|| Error::NotFound(format!("commune {code} has no adoption {id}")))
}

/// Today's date in Europe/Paris.
fn paris_today() -> NaiveDate {
    chrono::Utc::now().with_timezone(&chrono_tz::Europe::Paris).date_naive()
}

/// An adoption with its state, ratings and feedback on `today`, for a reader who may see the
/// comments or not (`visible`).
fn view(h: &AdoptionIndex, a: &Adoption, today: NaiveDate, visible: bool) -> AdoptionView {
    AdoptionView { adoption: a.clone(), active: a.active_on(today), ratings: h.ratings(a.id, today), feedback: h.feedback(a.id), comments_visible: visible }
}

/// Logs a write on an EPCI's own data for the audit trail, like [`audit`], naming the EPCI.
fn audit_epci(p: &Principal, action: &'static str, epci: &Siren, record: u64) {
    tracing::info!(
        target: "voisinage::audit",
        token = p.token_id,
        scope = %p.scope,
        action,
        epci = %epci,
        record,
        at = %chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "write"
    );
}

/// Logs a write for the audit trail (tracing target `voisinage::audit`): who (token id and
/// scope; `token=0` is the operator at the command line), what (action, commune, record id)
/// and when (UTC, ms). Never the token secret nor a comment's text.
fn audit(p: &Principal, action: &'static str, commune: Option<&InseeCode>, record: u64) {
    tracing::info!(
        target: "voisinage::audit",
        token = p.token_id,
        scope = %p.scope,
        action,
        commune = %commune.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        record,
        at = %chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "write"
    );
}
