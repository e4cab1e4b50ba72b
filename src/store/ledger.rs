//! The integrity ledger: what the store has acknowledged, kept outside sled so that a damaged
//! sled log cannot take it along.
//!
//! **File** `DATA_DIR/store.ledger` (the sled folder is `DATA_DIR/store`): two fixed slots of
//! [`SLOT_BYTES`] bytes, at offsets 0 and 4096, written alternately (slot = sequence number
//! mod 2) with `pwrite` and `fdatasync`. The valid slot with the highest sequence number wins, so
//! a write torn by a power cut leaves the other, older slot intact. The file is first made whole
//! under a temporary name and renamed, so it never exists without a valid slot. A slot, all
//! integers little-endian:
//!
//! | bytes | field |
//! |-------|-------|
//! | 8 | magic `VSNLEDGR` |
//! | 4 | format version ([`FORMAT`]) |
//! | 8 | sequence number |
//! | 3 × 8 | high-water ids: `next_id`, `next_token_id`, `next_price_estimate_id` |
//! | 7 × 16 | per [`Kind`], in its order: count, digest |
//! | 4 | CRC-32 (IEEE) of the bytes above |
//!
//! **Counts and digests.** For each kind of record, the ledger holds the number of records with
//! an id below the kind's high-water id, and a digest: the wrapping sum of a 64-bit hash of
//! each record's *key* ([`key_hash`]). Keys never change (an update rewrites the value under
//! the same key), so updates leave the digest alone; a sum does not depend on the order in
//! which records were added. A record's id: the key's last 8 bytes (adoptions, their commune
//! index, feedback, tokens, price estimates), the value (a token hash maps to its token's id), or
//! the `id` of the JSON value (idempotency keys).
//!
//! **Records at or above the high-water ids** were written and synced by sled, but the process
//! stopped before the ledger was written (the ledger is always written after sled's sync): they
//! are accepted. The store can be *ahead* of its ledger, never behind it.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Format version of a slot.
pub const FORMAT: u32 = 1;

/// Size of a slot in the file, bytes (the slots sit at 0 and `SLOT_BYTES`).
pub const SLOT_BYTES: u64 = 4096;

const MAGIC: &[u8; 8] = b"VSNLEDGR";

/// Bytes of a slot that are used (the rest of the 4,096 is left as is).
const SLOT_USED: usize = 8 + 4 + 8 + 3 * 8 + KINDS.len() * 16 + 4;

/// A kind of record the ledger counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `adoptions` tree.
    Adoptions,
    /// `adoptions_by_commune` index entries (none since store format 2: the tree stays empty).
    ByCommune,
    /// `feedback` tree.
    Feedback,
    /// `tokens` tree.
    Tokens,
    /// `token_hashes` tree.
    TokenHashes,
    /// `price_estimates` tree.
    PriceEstimates,
    /// `idem:` keys of the `meta` tree.
    IdempotencyKeys,
}

/// Every kind, in the order of the slot.
pub const KINDS: [Kind; 7] = [Kind::Adoptions, Kind::ByCommune, Kind::Feedback, Kind::Tokens, Kind::TokenHashes, Kind::PriceEstimates, Kind::IdempotencyKeys];

/// Which high-water id bounds the ids of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdSpace {
    /// `next_id`: adoptions and feedback (and their index entries and idempotency keys).
    Records,
    /// `next_token_id`.
    Tokens,
    /// `next_price_estimate_id`.
    PriceEstimates,
}

impl Kind {
    /// The name used in reports (the sled tree's name, or `idempotency_keys`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Adoptions => "adoptions",
            Kind::ByCommune => "adoptions_by_commune",
            Kind::Feedback => "feedback",
            Kind::Tokens => "tokens",
            Kind::TokenHashes => "token_hashes",
            Kind::PriceEstimates => "price_estimates",
            Kind::IdempotencyKeys => "idempotency_keys",
        }
    }

    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// The id space of this kind's ids.
    pub fn space(self) -> IdSpace {
        match self {
            Kind::Adoptions | Kind::ByCommune | Kind::Feedback | Kind::IdempotencyKeys => IdSpace::Records,
            Kind::Tokens | Kind::TokenHashes => IdSpace::Tokens,
            Kind::PriceEstimates => IdSpace::PriceEstimates,
        }
    }
}

/// 64-bit hash of a record's key: FNV-1a, then the SplitMix64 finaliser (so that the sum of
/// hashes of neighbouring keys is well spread). Stable: it is part of the file format.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Count and digest of a set of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Number of records.
    pub count: u64,
    /// Wrapping sum of [`key_hash`] of their keys.
    pub digest: u64,
}

impl Tally {
    /// Adds one record by its key.
    pub fn add(&mut self, key: &[u8]) {
        self.count += 1;
        self.digest = self.digest.wrapping_add(key_hash(key));
    }
}

/// What the ledger holds: high-water ids and a [`Tally`] per [`Kind`] of the records below them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerState {
    /// Every adoption and feedback id below this was given out.
    pub next_id: u64,
    /// Every token id below this was given out.
    pub next_token_id: u64,
    /// Every price estimate id below this was given out.
    pub next_price_estimate_id: u64,
    /// Per kind, in the order of [`KINDS`].
    pub tallies: [Tally; KINDS.len()],
}

impl Default for LedgerState {
    fn default() -> Self {
        LedgerState { next_id: 1, next_token_id: 1, next_price_estimate_id: 1, tallies: [Tally::default(); KINDS.len()] }
    }
}

impl LedgerState {
    /// The high-water id of a space.
    pub fn high_water(&self, space: IdSpace) -> u64 {
        match space {
            IdSpace::Records => self.next_id,
            IdSpace::Tokens => self.next_token_id,
            IdSpace::PriceEstimates => self.next_price_estimate_id,
        }
    }

    /// Raises the high-water id of a space to `next` (never lowers it).
    pub fn raise(&mut self, space: IdSpace, next: u64) {
        let hw = match space {
            IdSpace::Records => &mut self.next_id,
            IdSpace::Tokens => &mut self.next_token_id,
            IdSpace::PriceEstimates => &mut self.next_price_estimate_id,
        };
        *hw = (*hw).max(next);
    }

    /// The tally of a kind.
    pub fn tally(&self, kind: Kind) -> Tally {
        self.tallies[kind.index()]
    }

    /// Records a new record of `kind` with key `key` and id `id` (raising the high-water id
    /// past it).
    pub fn add(&mut self, kind: Kind, key: &[u8], id: u64) {
        self.tallies[kind.index()].add(key);
        self.raise(kind.space(), id + 1);
    }

    /// Adds the records `other` tallied (counts and digests) and raises the high-water ids to
    /// its own: the state as if its records had been added here one by one, in any order.
    pub fn absorb(&mut self, other: &LedgerState) {
        for (mine, theirs) in self.tallies.iter_mut().zip(&other.tallies) {
            mine.count += theirs.count;
            mine.digest = mine.digest.wrapping_add(theirs.digest);
        }
        self.raise(IdSpace::Records, other.next_id);
        self.raise(IdSpace::Tokens, other.next_token_id);
        self.raise(IdSpace::PriceEstimates, other.next_price_estimate_id);
    }

    /// Forgets every record of `kind` (the tree was cleared).
    pub fn clear(&mut self, kind: Kind) {
        self.tallies[kind.index()] = Tally::default();
    }

    fn encode(&self, seq: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(SLOT_USED);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&FORMAT.to_le_bytes());
        b.extend_from_slice(&seq.to_le_bytes());
        for v in [self.next_id, self.next_token_id, self.next_price_estimate_id] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for t in &self.tallies {
            b.extend_from_slice(&t.count.to_le_bytes());
            b.extend_from_slice(&t.digest.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// The state and sequence number held by a slot, if it is whole and of this format.
    fn decode(b: &[u8]) -> Option<(u64, LedgerState)> {
        let b = b.get(..SLOT_USED)?;
        let (body, crc) = b.split_at(SLOT_USED - 4);
        if &body[..8] != MAGIC || crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().unwrap_or_default());
        if u32::from_le_bytes(body[8..12].try_into().unwrap_or_default()) != FORMAT {
            return None;
        }
        let mut s = LedgerState { next_id: u64_at(20), next_token_id: u64_at(28), next_price_estimate_id: u64_at(36), ..LedgerState::default() };
        for (k, t) in s.tallies.iter_mut().enumerate() {
            *t = Tally { count: u64_at(44 + 16 * k), digest: u64_at(52 + 16 * k) };
        }
        Some((u64_at(12), s))
    }
}

/// What was found in the ledger file.
#[derive(Debug)]
pub enum Found {
    /// No ledger file (a store made before the ledger, or just rebuilt from a backup).
    Missing,
    /// A file whose two slots are both unreadable.
    Unreadable,
    /// The newest valid slot.
    Slot {
        /// Its sequence number.
        seq: u64,
        /// What it holds.
        state: LedgerState,
    },
}

/// Path of the ledger of the store in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("store.ledger")
}

/// Reads the ledger file. Errors: `Storage` when the file exists but cannot be read.
pub fn read(path: &Path) -> Result<Found> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(Error::storage(format!("reading {}", path.display()), e)),
    };
    let slots = [0, SLOT_BYTES as usize].map(|at| bytes.get(at..).and_then(LedgerState::decode));
    Ok(slots.into_iter().flatten().max_by_key(|(seq, _)| *seq).map_or(Found::Unreadable, |(seq, state)| Found::Slot { seq, state }))
}

/// The open ledger file, with the sequence number of its newest slot.
pub struct LedgerFile {
    file: File,
    path: PathBuf,
    seq: u64,
}

impl LedgerFile {
    /// Writes `state` as the ledger at `path`, replacing any file there: written whole under
    /// a temporary name, synced, renamed, and the folder synced. Errors: `Storage`.
    pub fn create(path: &Path, state: &LedgerState) -> Result<LedgerFile> {
        let io = |e: std::io::Error| Error::storage(format!("writing {}", path.display()), e);
        let tmp = path.with_extension("ledger.tmp");
        let mut f = File::create(&tmp).map_err(io)?;
        // Both slots hold the state (sequence numbers 0 and 1, each in its slot `seq mod 2`).
        let mut bytes = state.encode(0);
        bytes.resize(SLOT_BYTES as usize, 0);
        bytes.extend(state.encode(1));
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(io)?;
        Ok(LedgerFile { file, path: path.to_path_buf(), seq: 1 })
    }

    /// Opens the existing ledger at `path`, whose newest slot has sequence number `seq`.
    pub fn open(path: &Path, seq: u64) -> Result<LedgerFile> {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(|e| Error::storage(format!("opening {}", path.display()), e))?;
        Ok(LedgerFile { file, path: path.to_path_buf(), seq })
    }

    /// Writes `state` into the older slot, durably (`pwrite` then `fdatasync`). Errors:
    /// `Storage` (the other slot still holds the previous state).
    pub fn write(&mut self, state: &LedgerState) -> Result<()> {
        let seq = self.seq + 1;
        let io = |e: std::io::Error| Error::storage(format!("writing {}", self.path.display()), e);
        self.file.write_all_at(&state.encode(seq), (seq % 2) * SLOT_BYTES).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.seq = seq;
        Ok(())
    }
}

/// What a pass over the store's keys found, per kind: the records below the ledger's high-water
/// ids and those at or above them.
#[derive(Clone, Debug, Default)]
pub struct Census {
    /// Records with an id below the high-water id of their kind's space, per kind.
    pub below: [Tally; KINDS.len()],
    /// Records at or above it (synced after the ledger was last written), per kind.
    pub above: [Tally; KINDS.len()],
    /// Highest id seen + 1, per space (`Records`, `Tokens`, `PriceEstimates`).
    pub next_seen: [u64; 3],
    /// Adoption and feedback ids present below the ledger's `next_id` (one bit each), when
    /// that is under 2^32.
    pub present: Vec<u64>,
}

fn space_index(s: IdSpace) -> usize {
    match s {
        IdSpace::Records => 0,
        IdSpace::Tokens => 1,
        IdSpace::PriceEstimates => 2,
    }
}

impl Census {
    /// What a census of a store holding exactly what `ledger` says finds: its tallies below the
    /// high-water ids, nothing above (a store sealed at a clean stop and unchanged since:
    /// `store::seal`). Present ids are not tracked.
    pub fn of_ledger(ledger: &LedgerState) -> Census {
        Census {
            below: ledger.tallies,
            above: [Tally::default(); KINDS.len()],
            next_seen: [ledger.next_id, ledger.next_token_id, ledger.next_price_estimate_id],
            present: Vec::new(),
        }
    }

    /// An empty census against the high-water ids of `ledger`.
    pub fn new(ledger: &LedgerState) -> Census {
        let bits = if ledger.next_id < 1 << 32 { ledger.next_id.div_ceil(64) as usize } else { 0 };
        Census { next_seen: [1; 3], present: vec![0; bits], ..Census::default() }
    }

    /// Counts one record of `kind`, with key `key` and id `id`.
    pub fn add(&mut self, ledger: &LedgerState, kind: Kind, key: &[u8], id: u64) {
        let space = kind.space();
        let seen = &mut self.next_seen[space_index(space)];
        *seen = (*seen).max(id.saturating_add(1));
        if id < ledger.high_water(space) {
            self.below[kind.index()].add(key);
            if matches!(kind, Kind::Adoptions | Kind::Feedback)
                && let Some(w) = self.present.get_mut((id / 64) as usize)
            {
                *w |= 1 << (id % 64);
            }
        } else {
            self.above[kind.index()].add(key);
        }
    }

    /// Adds what `other` counted (a census of other keys against the same ledger): counts and
    /// digests add up (wrapping), the highest ids seen are kept, the present ids joined. The
    /// result does not depend on the order of the merges, so trees can be counted in parallel.
    pub fn merge(&mut self, other: Census) {
        for k in 0..KINDS.len() {
            for (mine, theirs) in [(&mut self.below[k], other.below[k]), (&mut self.above[k], other.above[k])] {
                mine.count += theirs.count;
                mine.digest = mine.digest.wrapping_add(theirs.digest);
            }
        }
        for (mine, theirs) in self.next_seen.iter_mut().zip(other.next_seen) {
            *mine = (*mine).max(theirs);
        }
        for (mine, theirs) in self.present.iter_mut().zip(other.present) {
            *mine |= theirs;
        }
    }

    /// Highest id seen + 1 in a space (1 when none).
    pub fn next_seen(&self, space: IdSpace) -> u64 {
        self.next_seen[space_index(space)]
    }

    /// Adoption and feedback ids from 1 to below `next_id` that are absent, as inclusive
    /// ranges (empty when the census did not track them).
    pub fn absent_ids(&self, next_id: u64) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        if self.present.is_empty() {
            return out;
        }
        for id in 1..next_id {
            if self.present[(id / 64) as usize] & (1 << (id % 64)) == 0 {
                match out.last_mut() {
                    Some(r) if r.1 + 1 == id => r.1 = id,
                    _ => out.push((id, id)),
                }
            }
        }
        out
    }

    /// The state a ledger should hold for the store as counted: every record (below and above
    /// the old high-water ids), high-water ids past every id seen and never below `floor`'s.
    pub fn as_ledger(&self, floor: &LedgerState) -> LedgerState {
        let mut s = floor.clone();
        for k in KINDS {
            let (b, a) = (self.below[k.index()], self.above[k.index()]);
            s.tallies[k.index()] = Tally { count: b.count + a.count, digest: b.digest.wrapping_add(a.digest) };
        }
        for space in [IdSpace::Records, IdSpace::Tokens, IdSpace::PriceEstimates] {
            s.raise(space, self.next_seen(space));
        }
        s
    }
}

/// What to do about a damaged store (the end of the `StoreDamaged` message).
pub const ADVICE: &str = "What to do: restore the latest backup into a new folder (`voisinage restore --from FILE --data-dir NEW`) \
and serve that folder; or, to go on with what is left, knowingly, run `voisinage accept-loss --data-dir DIR` (the ledger is rewritten \
to what the store holds, and lost ids are never given again). `voisinage check --data-dir DIR` prints this report without changing anything.";

/// The verdict of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every record the ledger counts is there.
    Ok,
    /// Records the ledger counts are missing or different, or the ledger is unreadable.
    Damaged,
    /// No ledger: nothing to compare with (the service makes one at its next start).
    NoLedger,
}

/// One kind of record in an [`IntegrityReport`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct KindReport {
    /// The kind's name ([`Kind::name`]).
    pub kind: &'static str,
    /// Records held with an id below the ledger's high-water id.
    pub held: u64,
    /// Records the ledger counts (`None` without a ledger).
    pub acknowledged: Option<u64>,
    /// Whether the records held are those the ledger counts (same count and same digest).
    pub matches: bool,
    /// Records at or above the high-water id: synced after the ledger was last written
    /// (a crash in between), accepted.
    pub after_ledger: u64,
}

/// What opening a store found, compared with its ledger.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IntegrityReport {
    /// The ledger file: `found`, `missing` or `unreadable`.
    pub ledger: &'static str,
    /// The ledger's high-water adoption and feedback id (1 without a ledger).
    pub next_id: u64,
    /// Per kind, in the order of [`KINDS`].
    pub kinds: Vec<KindReport>,
    /// Adoption and feedback ids below `next_id` that the store does not hold, as inclusive
    /// ranges; listed only when adoptions or feedback differ from the ledger (ids given up by an
    /// earlier `accept-loss` are listed too).
    pub ids_missing: Vec<(u64, u64)>,
    /// sled snapshot files moved to the quarantine folder before sled opened.
    pub set_aside: Vec<PathBuf>,
    /// The verdict.
    pub verdict: Verdict,
    /// Whether the store was unchanged since its seal at the last clean stop, so that its
    /// records were not counted again (the ledger's tallies stand for the census).
    pub sealed: bool,
}

impl IntegrityReport {
    /// Compares a census with the ledger it was taken against (`acknowledged`: `None` when the
    /// file is missing or unreadable, as `found` says).
    pub fn new(found: &Found, acknowledged: Option<&LedgerState>, census: &Census, set_aside: Vec<PathBuf>) -> IntegrityReport {
        let kinds: Vec<KindReport> = KINDS
            .iter()
            .map(|k| {
                let (held, ack) = (census.below[k.index()], acknowledged.map(|a| a.tally(*k)));
                KindReport {
                    kind: k.name(),
                    held: held.count,
                    acknowledged: ack.map(|a| a.count),
                    matches: ack.is_none_or(|a| a == held),
                    after_ledger: census.above[k.index()].count,
                }
            })
            .collect();
        let (ledger, verdict) = match found {
            Found::Missing => ("missing", Verdict::NoLedger),
            Found::Unreadable => ("unreadable", Verdict::Damaged),
            Found::Slot { .. } if kinds.iter().all(|k| k.matches) => ("found", Verdict::Ok),
            Found::Slot { .. } => ("found", Verdict::Damaged),
        };
        let next_id = acknowledged.map_or(1, |a| a.next_id);
        let ids_missing = if kinds.iter().any(|k| !k.matches && matches!(k.kind, "adoptions" | "feedback")) { census.absent_ids(next_id) } else { Vec::new() };
        IntegrityReport { ledger, next_id, kinds, ids_missing, set_aside, verdict, sealed: false }
    }

    /// What was found, in one line: the kinds that differ, the ids missing, the snapshots set
    /// aside.
    pub fn findings(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.ledger == "unreadable" {
            parts.push("the ledger file store.ledger is unreadable (both of its slots fail their checksum)".into());
        }
        for k in self.kinds.iter().filter(|k| !k.matches) {
            let ack = k.acknowledged.unwrap_or_default();
            let same = if k.held == ack { " but not the same records" } else { "" };
            parts.push(format!("{}: {} held, {ack} acknowledged{same}", k.kind, k.held));
        }
        if !self.ids_missing.is_empty() {
            parts.push(format!("ids missing: {}", ranges(&self.ids_missing)));
        }
        if !self.set_aside.is_empty() {
            let names: Vec<String> = self.set_aside.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
            parts.push(format!("sled snapshots set aside: {}", names.join(", ")));
        }
        if parts.is_empty() { "every acknowledged record is held".into() } else { parts.join("; ") }
    }

    /// The report for a person: the ledger, a table of the kinds, the ids missing, the
    /// snapshots set aside and the verdict (with what to do when damaged).
    pub fn render(&self) -> String {
        let mut out = format!(
            "ledger: {}\n",
            match self.ledger {
                "found" => "found (store.ledger)",
                "missing" => "missing (the service makes one from the records held at its next start)",
                _ => "unreadable (both slots fail their checksum)",
            }
        );
        out.push_str(&format!("{:<22} {:>12} {:>12} {:>14}  same records\n", "kind", "held", "acknowledged", "after ledger"));
        for k in &self.kinds {
            let ack = k.acknowledged.map_or("-".to_string(), |a| a.to_string());
            let same = match (k.acknowledged, k.matches) {
                (None, _) => "-",
                (Some(_), true) => "yes",
                (Some(_), false) => "NO",
            };
            out.push_str(&format!("{:<22} {:>12} {:>12} {:>14}  {same}\n", k.kind, k.held, ack, k.after_ledger));
        }
        if !self.ids_missing.is_empty() {
            out.push_str(&format!("ids missing: {}\n", ranges(&self.ids_missing)));
        }
        for p in &self.set_aside {
            out.push_str(&format!(
                "snapshot set aside (in the copy checked; the service does the same at its start): {}\n",
                p.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
        out.push_str(match self.verdict {
            Verdict::Ok => "verdict: ok\n",
            Verdict::NoLedger => "verdict: no ledger (nothing to compare with)\n",
            Verdict::Damaged => "verdict: DAMAGED: acknowledged records are missing\n",
        });
        if self.verdict == Verdict::Damaged {
            out.push_str(ADVICE);
            out.push('\n');
        }
        out
    }
}

/// The store's refusal: what was found and what to do (the message of `StoreDamaged`).
impl std::fmt::Display for IntegrityReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the store lost acknowledged records ({}). {ADVICE}", self.findings())
    }
}

/// `34-40, 52` for `[(34, 40), (52, 52)]`, at most 20 ranges then `…`.
fn ranges(r: &[(u64, u64)]) -> String {
    let mut parts: Vec<String> = r.iter().take(20).map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    if r.len() > 20 {
        parts.push(format!("… ({} ranges in all)", r.len()));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> LedgerState {
        let mut s = LedgerState::default();
        for id in 1..=40u64 {
            s.add(Kind::Adoptions, &id.to_be_bytes(), id);
        }
        s.add(Kind::Tokens, &1u64.to_be_bytes(), 1);
        s
    }

    #[test]
    fn absorbing_two_tallies_is_adding_their_records_one_by_one() {
        let mut one_by_one = LedgerState::default();
        let (mut evens, mut odds) = (LedgerState::default(), LedgerState::default());
        for id in 1..=40u64 {
            one_by_one.add(Kind::Adoptions, &id.to_be_bytes(), id);
            if id % 2 == 0 { &mut evens } else { &mut odds }.add(Kind::Adoptions, &id.to_be_bytes(), id);
        }
        odds.add(Kind::Tokens, &1u64.to_be_bytes(), 1);
        one_by_one.add(Kind::Tokens, &1u64.to_be_bytes(), 1);
        let mut absorbed = LedgerState::default();
        absorbed.absorb(&odds);
        absorbed.absorb(&evens);
        assert_eq!(absorbed, one_by_one);
        assert_eq!((absorbed.next_id, absorbed.next_token_id, absorbed.tally(Kind::Adoptions).count), (41, 2, 40));
        assert_eq!(absorbed, state());
    }

    #[test]
    fn slots_round_trip_and_a_torn_slot_leaves_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        assert!(matches!(read(&p).unwrap(), Found::Missing));
        let first = state();
        let mut f = LedgerFile::create(&p, &first).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), SLOT_BYTES + SLOT_USED as u64);
        let mut second = first.clone();
        second.add(Kind::Adoptions, &41u64.to_be_bytes(), 41);
        f.write(&second).unwrap(); // seq 2, slot 0
        match read(&p).unwrap() {
            Found::Slot { seq, state } => assert_eq!((seq, state.next_id, state.tally(Kind::Adoptions).count), (2, 42, 41)),
            other => panic!("{other:?}"),
        }
        // A torn write of slot 0: the older slot 1 is read.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[30] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        match read(&p).unwrap() {
            Found::Slot { seq, state } => assert_eq!((seq, state), (1, first)),
            other => panic!("{other:?}"),
        }
        bytes[SLOT_BYTES as usize + 30] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(read(&p).unwrap(), Found::Unreadable));
    }

    #[test]
    fn the_digest_ignores_order_and_sees_a_swapped_record() {
        let (mut a, mut b) = (Tally::default(), Tally::default());
        for id in [1u64, 2, 3] {
            a.add(&id.to_be_bytes());
        }
        for id in [3u64, 1, 2] {
            b.add(&id.to_be_bytes());
        }
        assert_eq!(a, b);
        let mut c = Tally::default();
        for id in [1u64, 2, 4] {
            c.add(&id.to_be_bytes());
        }
        assert_eq!(c.count, a.count);
        assert_ne!(c.digest, a.digest);
    }

    #[test]
    fn censuses_of_parts_merged_equal_the_census_of_the_whole() {
        let l = LedgerState { next_id: 41, next_token_id: 3, ..LedgerState::default() };
        let records: Vec<(Kind, u64)> =
            (1..=45).map(|id| (if id % 3 == 0 { Kind::Feedback } else { Kind::Adoptions }, id)).chain([(Kind::Tokens, 1), (Kind::Tokens, 4)]).collect();
        let mut whole = Census::new(&l);
        let (mut feedback, mut rest) = (Census::new(&l), Census::new(&l));
        for &(kind, id) in &records {
            whole.add(&l, kind, &id.to_be_bytes(), id);
            let part = if kind == Kind::Feedback { &mut feedback } else { &mut rest };
            part.add(&l, kind, &id.to_be_bytes(), id);
        }
        rest.merge(feedback);
        assert_eq!((rest.below, rest.above, rest.next_seen), (whole.below, whole.above, whole.next_seen));
        assert_eq!(rest.present, whole.present);
        assert_eq!((rest.below[Kind::Feedback.index()].count, rest.above[Kind::Adoptions.index()].count, rest.next_seen), (13, 3, [46, 5, 1]));
        assert!(rest.absent_ids(41).is_empty());
    }

    #[test]
    fn absent_ids_are_ranges() {
        let l = LedgerState { next_id: 41, ..LedgerState::default() };
        let mut c = Census::new(&l);
        for id in (1..=33).chain([36]) {
            c.add(&l, Kind::Adoptions, &u64::to_be_bytes(id), id);
        }
        c.add(&l, Kind::Adoptions, &u64::to_be_bytes(50), 50);
        assert_eq!(c.absent_ids(41), vec![(34, 35), (37, 40)]);
        assert_eq!((c.below[0].count, c.above[0].count, c.next_seen(IdSpace::Records)), (34, 1, 51));
        assert_eq!(c.as_ledger(&l).next_id, 51);
    }
}
