//! The durable store: sled 0.34 under the data directory. This module is the only user of sled.
//!
//! Trees and keys (all ids are u64, big-endian in keys):
//! - `meta`: `next_id` (u64 BE, shared by adoptions and feedback), `catalog_version` (text),
//!   `demo` (JSON: seed and end date of the simulated history, when one was loaded),
//!   `demo_loading` (present only while a demo load is under way), `idem:{METHOD path}\n{key}`
//!   (JSON: the record an `Idempotency-Key` created, written in the same transaction);
//! - `adoptions`: `id` → JSON [`Adoption`];
//! - `adoptions_by_commune`: INSEE code (5 bytes) ++ `id` → empty;
//! - `feedback`: adoption `id` ++ feedback `id` → JSON [`Feedback`];
//! - `tokens`: token `id` → JSON [`Token`] (scope, label, creation and revocation times);
//! - `token_hashes`: SHA-256 of the secret (32 bytes) → token `id`. Secrets are never stored.
//!   Token ids come from `meta` `next_token_id`;
//! - `price_estimates`: EPCI SIREN (9 bytes) ++ estimate `id` → JSON [`PriceEstimate`]; every
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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::backup::{BackupState, IdempotencyEntry, Record};
use crate::core::auth::{Token, TokenHash, TokenScope};
use crate::core::domain::Siren;
use crate::core::history::{Adoption, AdoptionIndex, Feedback, NewAdoption, NewFeedback};
use crate::core::prices::{EstimateAuthor, NewPriceEstimate, PriceEstimate};
use crate::core::simulate::DemoHistory;
use crate::error::{Error, Result};

const DEMO_LOADING: &[u8] = b"demo_loading";

/// sled's page cache, bytes.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Group-commit state shared by the clones of a store.
#[derive(Default)]
struct Syncer {
    /// Writes committed (each takes the next ticket after its transaction).
    written: AtomicU64,
    /// Highest ticket covered by a completed sync.
    synced: Mutex<u64>,
    /// Number of syncs run (for tests and metrics).
    syncs: AtomicU64,
}

/// Handle on the store; cheap to clone, safe to share across threads.
#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
    sync: Arc<Syncer>,
    db: sled::Db,
    meta: sled::Tree,
    adoptions: sled::Tree,
    by_commune: sled::Tree,
    feedback: sled::Tree,
    tokens: sled::Tree,
    token_hashes: sled::Tree,
    price_estimates: sled::Tree,
}

/// `fdatasync` every file under `dir` (recursively) and `fsync` the folders themselves.
fn sync_tree(dir: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::storage(format!("syncing {}", dir.display()), e);
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if entry.file_type().map_err(io)?.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path).and_then(|f| f.sync_data()).map_err(io)?;
        }
    }
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io)
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

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
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

#[derive(serde::Serialize, serde::Deserialize)]
struct IdemRecord {
    fingerprint: u64,
    id: u64,
    adoption_id: Option<u64>,
}

impl Idempotency {
    fn store_key(&self) -> Vec<u8> {
        format!("idem:{}\n{}", self.scope, self.key).into_bytes()
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

impl Store {
    /// Opens (or creates) the store in `dir`. Errors: `Storage` when the folder cannot be
    /// created or the files are locked by another process or corrupt.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| Error::storage(format!("creating {}", dir.display()), e))?;
        // No periodic background flush: every write flushes and syncs itself (group commit).
        // The read path is served from memory (`AdoptionIndex`), so sled's page cache only serves
        // writes, tokens and idempotency keys: 64 MiB instead of sled's default 1 GiB.
        let db = sled::Config::new()
            .path(dir.join("store"))
            .flush_every_ms(None)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| Error::storage(format!("opening {}", dir.display()), e))?;
        let store = Store {
            dir: dir.join("store"),
            sync: Arc::new(Syncer::default()),
            meta: db.open_tree("meta").map_err(st)?,
            adoptions: db.open_tree("adoptions").map_err(st)?,
            by_commune: db.open_tree("adoptions_by_commune").map_err(st)?,
            feedback: db.open_tree("feedback").map_err(st)?,
            tokens: db.open_tree("tokens").map_err(st)?,
            token_hashes: db.open_tree("token_hashes").map_err(st)?,
            price_estimates: db.open_tree("price_estimates").map_err(st)?,
            db,
        };
        store.recover()?;
        Ok(store)
    }

    /// Start-up repairs: a demo load interrupted by a crash is wiped (the demo is only ever
    /// loaded into an empty store, so nothing else is lost), and `next_id` is set past every id
    /// present, so that no new record can overwrite an old one.
    fn recover(&self) -> Result<()> {
        if self.meta.get(DEMO_LOADING).map_err(st)?.is_some() {
            tracing::warn!("an interrupted demo load was found: its partial data is removed");
            for t in [&self.adoptions, &self.by_commune, &self.feedback] {
                t.clear().map_err(st)?;
            }
            self.meta.remove(b"next_id").map_err(st)?;
            self.meta.remove(b"demo").map_err(st)?;
            self.meta.remove(DEMO_LOADING).map_err(st)?;
            self.flush()?;
        }
        let max_adoption = self.adoptions.last().map_err(st)?.map_or(0, |(k, _)| be(&k));
        let mut max_feedback = 0;
        for k in self.feedback.iter().keys() {
            let k = k.map_err(st)?;
            max_feedback = max_feedback.max(be(&k[8.min(k.len())..]));
        }
        let next = self.meta.get(b"next_id").map_err(st)?.map_or(1, |v| be(&v));
        let needed = max_adoption.max(max_feedback) + 1;
        if next < needed {
            self.meta.insert(b"next_id", &needed.to_be_bytes()).map_err(st)?;
            self.flush()?;
        }
        Ok(())
    }

    /// Writes everything to disk: sled flush, then `fdatasync` of each file of the store and
    /// `fsync` of its folders.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map_err(st)?;
        sync_tree(&self.dir)?;
        self.sync.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Makes a committed write durable, sharing one [`Store::flush`] among concurrent writers.
    fn durable(&self) -> Result<()> {
        let ticket = self.sync.written.fetch_add(1, Ordering::SeqCst) + 1;
        let mut done = self.sync.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *done >= ticket {
            return Ok(()); // a sync that started after our commit already finished
        }
        let target = self.sync.written.load(Ordering::SeqCst);
        self.flush()?;
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
        let a =
            self.adoptions.iter().values().map(|v| v.map_err(st).and_then(|v| serde_json::from_slice(&v).map_err(st))).collect::<Result<Vec<Adoption>>>()?;
        let f = self.feedback.iter().values().map(|v| v.map_err(st).and_then(|v| serde_json::from_slice(&v).map_err(st))).collect::<Result<Vec<Feedback>>>()?;
        Ok((a, f))
    }

    /// Builds the in-memory index from every adoption and feedback record, decoding one record
    /// at a time (no intermediate copy of the whole store). Errors: `Storage` on an unreadable
    /// record.
    pub fn load_index(&self) -> Result<AdoptionIndex> {
        let mut h = AdoptionIndex::default();
        for v in self.adoptions.iter().values() {
            h.add_adoption(serde_json::from_slice(&v.map_err(st)?).map_err(st)?);
        }
        let mut orphans = 0u64;
        for v in self.feedback.iter().values() {
            if !h.add_feedback(serde_json::from_slice(&v.map_err(st)?).map_err(st)?) {
                orphans += 1;
            }
        }
        if orphans > 0 {
            tracing::warn!(orphans, "feedback records without their adoption (or repeated) were left out of the index");
        }
        h.shrink_to_fit();
        Ok(h)
    }

    /// One adoption by id.
    pub fn adoption(&self, id: u64) -> Result<Option<Adoption>> {
        match self.adoptions.get(id.to_be_bytes()).map_err(st)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(st)?)),
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
                let rec: IdemRecord = serde_json::from_slice(&v).map_err(st)?;
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
        let a = (&self.meta, &self.adoptions, &self.by_commune)
            .transaction(|(meta, adoptions, by_commune)| {
                if let Some(i) = idem
                    && let Some(v) = meta.get(i.store_key())?
                {
                    let rec: IdemRecord = serde_json::from_slice(&v).map_err(|e| abort(st(e)))?;
                    i.check(&rec).map_err(abort)?;
                    let first = adoptions.get(rec.id.to_be_bytes())?.ok_or_else(|| abort(Error::storage_state("idempotency record without its adoption")))?;
                    return Ok((serde_json::from_slice::<Adoption>(&first).map_err(|e| abort(st(e)))?, true));
                }
                let id = meta.get(b"next_id")?.map_or(1, |v| be(&v));
                meta.insert(b"next_id", &(id + 1).to_be_bytes())?;
                let a = new.clone().with_id(id, false);
                adoptions.insert(&id.to_be_bytes(), json(&a).map_err(abort)?)?;
                let mut key = a.commune.as_bytes().to_vec();
                key.extend_from_slice(&id.to_be_bytes());
                by_commune.insert(key, &[])?;
                if let Some(i) = idem {
                    meta.insert(i.store_key(), json(&IdemRecord { fingerprint: i.fingerprint, id, adoption_id: None }).map_err(abort)?)?;
                }
                Ok((a, false))
            })
            .map_err(tx_err)?;
        if !a.1 {
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
        let written = (&self.meta, &self.adoptions, &self.by_commune)
            .transaction(|(meta, adoptions, by_commune)| {
                let first = meta.get(b"next_id")?.map_or(1, |v| be(&v));
                let mut out = Vec::with_capacity(news.len());
                for (k, new) in news.iter().enumerate() {
                    let id = first + k as u64;
                    let a = new.clone().with_id(id, false);
                    adoptions.insert(&id.to_be_bytes(), json(&a).map_err(abort)?)?;
                    let mut key = a.commune.as_bytes().to_vec();
                    key.extend_from_slice(&id.to_be_bytes());
                    by_commune.insert(key, &[])?;
                    out.push(a);
                }
                meta.insert(b"next_id", &(first + news.len() as u64).to_be_bytes())?;
                Ok(out)
            })
            .map_err(tx_err)?;
        self.durable()?;
        Ok(written)
    }

    /// Replaces a stored adoption (same id) with its changed version, durably. The caller has
    /// validated it. Errors: `NotFound` when no adoption has this id.
    pub fn update_adoption(&self, a: &Adoption) -> Result<()> {
        self.adoptions
            .transaction(|adoptions| {
                if adoptions.get(a.id.to_be_bytes())?.is_none() {
                    return Err(abort(Error::NotFound(format!("no adoption {}", a.id))));
                }
                adoptions.insert(&a.id.to_be_bytes(), json(a).map_err(abort)?)?;
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
        let f = (&self.meta, &self.adoptions, &self.feedback)
            .transaction(|(meta, adoptions, feedback)| {
                if let Some(i) = idem
                    && let Some(v) = meta.get(i.store_key())?
                {
                    let rec: IdemRecord = serde_json::from_slice(&v).map_err(|e| abort(st(e)))?;
                    i.check(&rec).map_err(abort)?;
                    let mut key = rec.adoption_id.unwrap_or(adoption_id).to_be_bytes().to_vec();
                    key.extend_from_slice(&rec.id.to_be_bytes());
                    let first = feedback.get(key)?.ok_or_else(|| abort(Error::storage_state("idempotency record without its feedback")))?;
                    return Ok((serde_json::from_slice::<Feedback>(&first).map_err(|e| abort(st(e)))?, true));
                }
                if adoptions.get(adoption_id.to_be_bytes())?.is_none() {
                    return Err(abort(Error::NotFound(format!("no adoption {adoption_id}"))));
                }
                let id = meta.get(b"next_id")?.map_or(1, |v| be(&v));
                meta.insert(b"next_id", &(id + 1).to_be_bytes())?;
                let f = new.clone().with_id(id, adoption_id, false);
                let mut key = adoption_id.to_be_bytes().to_vec();
                key.extend_from_slice(&id.to_be_bytes());
                feedback.insert(key, json(&f).map_err(abort)?)?;
                if let Some(i) = idem {
                    meta.insert(i.store_key(), json(&IdemRecord { fingerprint: i.fingerprint, id, adoption_id: Some(adoption_id) }).map_err(abort)?)?;
                }
                Ok((f, false))
            })
            .map_err(tx_err)?;
        if !f.1 {
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
        let token = (&self.meta, &self.tokens, &self.token_hashes)
            .transaction(|(meta, tokens, hashes)| {
                let id = meta.get(b"next_token_id")?.map_or(1, |v| be(&v));
                meta.insert(b"next_token_id", &(id + 1).to_be_bytes())?;
                let t = Token { id, scope, label: label.to_string(), created: now, revoked: None };
                tokens.insert(&id.to_be_bytes(), json(&t).map_err(abort)?)?;
                hashes.insert(&hash.0, &id.to_be_bytes())?;
                Ok(t)
            })
            .map_err(tx_err)?;
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
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(st)?)),
            None => Ok(None),
        }
    }

    /// Every token, by id (revoked ones included).
    pub fn tokens(&self) -> Result<Vec<Token>> {
        self.tokens.iter().values().map(|v| v.map_err(st).and_then(|v| serde_json::from_slice(&v).map_err(st))).collect()
    }

    /// Revokes a token, durably; revoking twice keeps the first time. Errors: `NotFound` for an
    /// unknown id.
    pub fn revoke_token(&self, id: u64, now: chrono::DateTime<chrono::Utc>) -> Result<Token> {
        let t = self
            .tokens
            .transaction(|tokens| {
                let Some(v) = tokens.get(id.to_be_bytes())? else { return Err(abort(Error::NotFound(format!("no token {id}")))) };
                let mut t: Token = serde_json::from_slice(&v).map_err(|e| abort(st(e)))?;
                if t.revoked.is_none() {
                    t.revoked = Some(now);
                    tokens.insert(&id.to_be_bytes(), json(&t).map_err(abort)?)?;
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
        let e = (&self.meta, &self.price_estimates)
            .transaction(|(meta, estimates)| {
                let id = meta.get(b"next_price_estimate_id")?.map_or(1, |v| be(&v));
                meta.insert(b"next_price_estimate_id", &(id + 1).to_be_bytes())?;
                let e = new.clone().with_id(id, by.clone(), now);
                let mut key = e.epci.as_str().as_bytes().to_vec();
                key.extend_from_slice(&id.to_be_bytes());
                estimates.insert(key, json(&e).map_err(abort)?)?;
                Ok(e)
            })
            .map_err(tx_err)?;
        self.durable()?;
        Ok(e)
    }

    /// Every price estimate of an EPCI, in recording order (history included).
    pub fn price_estimates(&self, epci: &Siren) -> Result<Vec<PriceEstimate>> {
        self.price_estimates
            .scan_prefix(epci.as_str().as_bytes())
            .values()
            .map(|v| v.map_err(st).and_then(|v| serde_json::from_slice(&v).map_err(st)))
            .collect()
    }

    /// Writes a simulated history into an empty store, record by record, then flushes. Ids of the
    /// history are kept; `next_id` is set past them. Errors: `Invalid` if the store is not
    /// empty.
    pub fn load_demo(&self, h: &DemoHistory, seed: u64, end: chrono::NaiveDate) -> Result<DemoInfo> {
        if !self.is_empty() {
            return Err(Error::Invalid("the store already holds adoptions: demo data is only loaded into an empty store".into()));
        }
        // Marker first: a crash before the end leaves it, and the next start wipes the partial load.
        self.meta.insert(DEMO_LOADING, &[1]).map_err(st)?;
        self.flush()?;
        let mut max_id = 0;
        // One insert per record, not batches: sled 0.34 keeps the pages of a large batch in
        // memory past its cache limit (sled issue 1303; measured on the Brittany demo: 703 MB
        // peak RSS with batches of 5,000, 148 MB with single inserts, and faster). Atomicity of
        // the whole load comes from the marker above, not from batches.
        for a in &h.adoptions {
            self.adoptions.insert(a.id.to_be_bytes(), json(a)?).map_err(st)?;
            let mut key = a.commune.as_bytes().to_vec();
            key.extend_from_slice(&a.id.to_be_bytes());
            self.by_commune.insert(key, &[]).map_err(st)?;
            max_id = max_id.max(a.id);
        }
        for f in &h.feedback {
            let mut key = f.adoption_id.to_be_bytes().to_vec();
            key.extend_from_slice(&f.id.to_be_bytes());
            self.feedback.insert(key, json(f)?).map_err(st)?;
            max_id = max_id.max(f.id);
        }
        let info = DemoInfo { seed, end, adoptions: h.adoptions.len(), feedback: h.feedback.len(), simulated_dates: h.simulated_dates.clone() };
        self.meta.insert(b"next_id", &(max_id + 1).to_be_bytes()).map_err(st)?;
        self.meta.insert(b"demo", json(&info)?).map_err(st)?;
        self.flush()?;
        self.meta.remove(DEMO_LOADING).map_err(st)?;
        self.flush()?;
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

    /// Every record whose id is below `state`'s high-water ids, read lazily one at a time:
    /// adoptions, feedback, tokens with the SHA-256 of their secret, price estimates,
    /// idempotency keys (each kind in key order). Errors (per item): `Storage`.
    pub fn export_records<'a>(&'a self, state: &BackupState) -> impl Iterator<Item = Result<Record>> + 'a {
        let (n, nt, np) = (state.next_id, state.next_token_id, state.next_price_estimate_id);
        fn decode<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T> {
            serde_json::from_slice(v).map_err(st)
        }
        // Keys end with the record's id (after the adoption id, the INSEE code or the SIREN).
        let tail = |k: &[u8]| be(&k[k.len().saturating_sub(8)..]);
        let adoptions = self.adoptions.range(..n.to_be_bytes()).values().map(move |v| decode(&v.map_err(st)?).map(Record::Adoption));
        let feedback = self.feedback.range(..n.to_be_bytes()).filter_map(move |kv| match kv {
            Ok((k, v)) => (tail(&k) < n).then(|| decode(&v).map(Record::Feedback)),
            Err(e) => Some(Err(st(e))),
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
            let rec: IdemRecord = match serde_json::from_slice(&v) {
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
                once(&self.adoptions, a.id.to_be_bytes().to_vec(), json(&a)?, format!("adoption {}", a.id))?;
                let mut key = a.commune.as_bytes().to_vec();
                key.extend_from_slice(&a.id.to_be_bytes());
                self.by_commune.insert(key, &[]).map_err(st)?;
            }
            Record::Feedback(f) => {
                let mut key = f.adoption_id.to_be_bytes().to_vec();
                key.extend_from_slice(&f.id.to_be_bytes());
                once(&self.feedback, key, json(&f)?, format!("feedback {}", f.id))?;
            }
            Record::Token(t, hash) => {
                once(&self.tokens, t.id.to_be_bytes().to_vec(), json(&t)?, format!("token {}", t.id))?;
                once(&self.token_hashes, hash.0.to_vec(), t.id.to_be_bytes().to_vec(), format!("the hash of token {}", t.id))?;
            }
            Record::PriceEstimate(e) => {
                let mut key = e.epci.as_str().as_bytes().to_vec();
                key.extend_from_slice(&e.id.to_be_bytes());
                once(&self.price_estimates, key, json(&e)?, format!("price estimate {}", e.id))?;
            }
            Record::Idempotency(i) => {
                let key = Idempotency { scope: i.scope, key: i.key, fingerprint: i.fingerprint };
                let rec = IdemRecord { fingerprint: i.fingerprint, id: i.id, adoption_id: i.adoption_id };
                once(&self.meta, key.store_key(), json(&rec)?, format!("idempotency key '{}' of {}", key.key, key.scope))?;
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
            self.meta.insert(b"demo", json(d)?).map_err(st)?;
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::{InseeCode, Slug};
    use chrono::NaiveDate;

    /// Reopens a store just dropped in this process: sled releases its file lock when its last
    /// internal handle goes, which may be a moment after the drop.
    fn reopen(dir: &Path) -> Store {
        for _ in 0..200 {
            match Store::open(dir) {
                Ok(s) => return s,
                Err(e) if e.to_string().contains("could not acquire lock") => std::thread::sleep(std::time::Duration::from_millis(25)),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the store lock was never released")
    }

    fn new_adoption() -> NewAdoption {
        NewAdoption {
            commune: InseeCode::parse("29019").unwrap(),
            category: Slug::parse("elections").unwrap(),
            product: Slug::parse("openelec").unwrap(),
            generation: None,
            since: NaiveDate::from_ymd_opt(2019, 3, 1).unwrap(),
            until: None,
            contract_end: None,
            workstations: None,
        }
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

    #[test]
    fn interrupted_demo_load_is_wiped_and_ids_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            // What a crash mid-load leaves: the marker, some records, no next_id, perhaps the
            // description written just before the marker would have been removed.
            s.meta.insert(DEMO_LOADING, &[1]).unwrap();
            s.meta
                .insert(b"demo", json(&DemoInfo { seed: 1, end: chrono::NaiveDate::MIN, adoptions: 1, feedback: 0, simulated_dates: Vec::new() }).unwrap())
                .unwrap();
            let a = new_adoption().with_id(7, true);
            s.adoptions.insert(7u64.to_be_bytes(), json(&a).unwrap()).unwrap();
            s.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert!(s.is_empty(), "partial demo data removed");
        assert!(s.demo_info().unwrap().is_none(), "and its description");
        // Records present without next_id (an older store): new ids go past them.
        s.adoptions.insert(41u64.to_be_bytes(), json(&new_adoption().with_id(41, false)).unwrap()).unwrap();
        s.meta.remove(b"next_id").unwrap();
        s.flush().unwrap();
        drop(s);
        let s = reopen(dir.path());
        assert_eq!(s.insert_adoption(new_adoption()).unwrap().id, 42);
    }
}
