//! Backups of the store: the file format, its writer and its verifying reader. Pure format code:
//! the records come from and go to the store through [`Store::backup_state`],
//! [`Store::export_records`], [`Store::import_record`] and [`Store::import_finish`]; the use
//! cases (the admin API, `voisinage backup`, `voisinage restore`) are in [`crate::service`].
//!
//! # The file (format `voisinage-backup`, version 1)
//!
//! A gzip stream (one member) of JSON Lines, UTF-8, each line ending with `\n`:
//!
//! 1. a **header**: `{"format":"voisinage-backup","version":1,"created":"2026-11-29T03:00:00Z",
//!    "catalog_version":"2026.11" or null,"next_id":N,"next_token_id":N,
//!    "next_price_estimate_id":N,"demo":{...} or null}`: when the backup was taken (RFC 3339,
//!    UTC), the catalogue version recorded in the store, the store's high-water ids (the next id
//!    of adoptions and feedback, of tokens, of price estimates) and the description of the
//!    simulated history it holds, if any ([`DemoInfo`]);
//! 2. one line per **record**, typed by its one key: `{"adoption":{...}}` ([`Adoption`]),
//!    `{"feedback":{...}}` ([`Feedback`]), `{"token":{...},"hash":"64 hex digits"}` ([`Token`]
//!    and the SHA-256 of its secret: secrets are never stored, so a backup holds none, but the
//!    hashes authenticate the tokens again once restored, **so keep backups private**),
//!    `{"price_estimate":{...}}` ([`PriceEstimate`]), `{"idempotency":{"scope":"POST
//!    /api/v1/communes/29019/adoptions","key":"...","fingerprint":N,"id":N,"adoption_id":N or
//!    null}}` (an `Idempotency-Key` and the record it created). Records are grouped by kind in
//!    that order, each kind in the store's key order (tokens in the order of their hashes);
//! 3. a **footer**: `{"end":{"records":N,"counts":{"adoption":N,"feedback":N,"token":N,
//!    "price_estimate":N,"idempotency":N},"sha256":"64 hex digits"}}`: the number of record
//!    lines, per kind, and the SHA-256 of every byte of the uncompressed stream before the
//!    footer (header and records, newlines included). Nothing follows it.
//!
//! A reader ([`read`]) refuses a file that is not gzip or whose compressed data is damaged
//! (gzip's CRC-32 and length), that ends early (no footer: a backup whose stream was cut),
//! whose header names another format or a newer version, whose footer's counts or digest
//! do not match the lines, with a line that does not parse, or with a record whose id is not
//! below the header's high-water id. The message says which.
//!
//! # Consistency while writers run
//!
//! [`write()`] first reads the high-water ids, then writes only the records whose id is below
//! them. An id is taken and its record written in one sled transaction, and ids only grow, so
//! every id below the high-water mark read at the start is committed by then: the backup holds
//! **every record inserted before it started** (every write acknowledged before it, and
//! perhaps a few committed but not yet synced), and none inserted after. A change made
//! during the backup to a record inserted before it (an adoption ended, a token revoked) may
//! or may not be in it, record by record. The trees are read lazily, one record at a time, so
//! memory stays bounded whatever the store's size.

use std::io::{BufRead, BufWriter, Read, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::auth::{Token, TokenHash};
use crate::core::history::{Adoption, Feedback};
use crate::core::prices::PriceEstimate;
use crate::error::{Error, Result};
use crate::store::{DemoInfo, Store};

/// The header's `format`.
pub const FORMAT: &str = "voisinage-backup";

/// The format version this program writes and the newest it reads.
pub const VERSION: u32 = 1;

/// Longest line a reader accepts, bytes (a record is well under 10 KB; this bounds the memory a
/// damaged or hostile file can take).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What a backup starts from: the store's high-water ids, catalogue version and demo
/// description (the header's content).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupState {
    /// Next id of adoptions and feedback: every record of the backup has a smaller id.
    pub next_id: u64,
    /// Next token id.
    pub next_token_id: u64,
    /// Next price estimate id.
    pub next_price_estimate_id: u64,
    /// Catalogue version recorded in the store, if any.
    pub catalog_version: Option<String>,
    /// The simulated history the store holds, if any.
    pub demo: Option<DemoInfo>,
}

/// An `Idempotency-Key` as stored: the key scoped to its request's route, the fingerprint of
/// the request body, and the record it created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyEntry {
    /// `METHOD path` of the request.
    pub scope: String,
    /// The header's value.
    pub key: String,
    /// FNV-1a fingerprint of the request body.
    pub fingerprint: u64,
    /// Id of the adoption or feedback created.
    pub id: u64,
    /// For feedback, its adoption's id.
    pub adoption_id: Option<u64>,
}

/// One record of a backup.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// An adoption.
    Adoption(Adoption),
    /// A feedback record.
    Feedback(Feedback),
    /// A token and the SHA-256 of its secret.
    Token(Token, TokenHash),
    /// An EPCI's price estimate.
    PriceEstimate(PriceEstimate),
    /// An idempotency key.
    Idempotency(IdempotencyEntry),
}

/// Number of records of each kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Adoptions.
    pub adoption: u64,
    /// Feedback records.
    pub feedback: u64,
    /// Tokens.
    pub token: u64,
    /// Price estimates.
    pub price_estimate: u64,
    /// Idempotency keys.
    pub idempotency: u64,
}

impl Counts {
    /// Every record.
    pub fn total(&self) -> u64 {
        self.adoption + self.feedback + self.token + self.price_estimate + self.idempotency
    }

    fn add(&mut self, r: &Record) {
        match r {
            Record::Adoption(_) => self.adoption += 1,
            Record::Feedback(_) => self.feedback += 1,
            Record::Token(..) => self.token += 1,
            Record::PriceEstimate(_) => self.price_estimate += 1,
            Record::Idempotency(_) => self.idempotency += 1,
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} adoptions, {} feedback, {} tokens, {} price estimates, {} idempotency keys",
            self.adoption, self.feedback, self.token, self.price_estimate, self.idempotency
        )
    }
}

/// What a backup holds: its header and its counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// When it was taken.
    pub created: DateTime<Utc>,
    /// The store's state at the start.
    pub state: BackupState,
    /// Records written, by kind.
    pub counts: Counts,
}

/// The header line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    created: DateTime<Utc>,
    catalog_version: Option<String>,
    next_id: u64,
    next_token_id: u64,
    next_price_estimate_id: u64,
    demo: Option<DemoInfo>,
}

/// The footer's content.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    records: u64,
    counts: Counts,
    sha256: String,
}

/// A record line or the footer: exactly one of the kinds (with `hash` for a token).
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adoption: Option<Adoption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feedback: Option<Feedback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<Token>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    price_estimate: Option<PriceEstimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency: Option<IdempotencyEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<End>,
}

impl From<Record> for Line {
    fn from(r: Record) -> Line {
        match r {
            Record::Adoption(a) => Line { adoption: Some(a), ..Line::default() },
            Record::Feedback(f) => Line { feedback: Some(f), ..Line::default() },
            Record::Token(t, h) => Line { token: Some(t), hash: Some(hex(&h.0)), ..Line::default() },
            Record::PriceEstimate(e) => Line { price_estimate: Some(e), ..Line::default() },
            Record::Idempotency(i) => Line { idempotency: Some(i), ..Line::default() },
        }
    }
}

/// Lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes of 64 hexadecimal digits.
fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The name a backup taken at `created` is saved under: `voisinage-YYYYMMDD-HHMMSS.jsonl.gz`
/// (UTC).
pub fn file_name(created: DateTime<Utc>) -> String {
    format!("voisinage-{}.jsonl.gz", created.format("%Y%m%d-%H%M%S"))
}

/// A writer that also hashes what goes through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Io(e)
}

fn write_line<W: Write, T: Serialize>(w: &mut W, v: &T) -> Result<()> {
    serde_json::to_writer(&mut *w, v).map_err(|e| if e.is_io() { Error::Io(e.into()) } else { Error::internal("serialising a backup line", e) })?;
    w.write_all(b"\n").map_err(io)
}

/// Writes a backup of `store`, taken at `created`, to `out` (the format of the module doc),
/// reading the store one record at a time. Returns what it holds. Errors: `Storage` when the
/// store cannot be read, `Io` when `out` fails (then `out` holds a file without its footer,
/// which [`read`] refuses).
pub fn write(store: &Store, out: impl Write, created: DateTime<Utc>) -> Result<Summary> {
    write_with_progress(store, out, created, &mut |_, _| {})
}

/// [`write()`], calling `progress(records written, records to write)` every
/// [`crate::store::PROGRESS_EVERY`] records (the total from [`Store::export_count`]), the last
/// call with `done == total` (the records written) once the file is complete.
pub fn write_with_progress(store: &Store, out: impl Write, created: DateTime<Utc>, progress: &mut dyn FnMut(u64, u64)) -> Result<Summary> {
    let state = store.backup_state()?;
    let total = store.export_count();
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut w = BufWriter::with_capacity(64 * 1024, Hashing { inner: gz, sha: Sha256::new() });
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        created,
        catalog_version: state.catalog_version.clone(),
        next_id: state.next_id,
        next_token_id: state.next_token_id,
        next_price_estimate_id: state.next_price_estimate_id,
        demo: state.demo.clone(),
    };
    write_line(&mut w, &header)?;
    let mut counts = Counts::default();
    for r in store.export_records(&state) {
        let r = r?;
        counts.add(&r);
        write_line(&mut w, &Line::from(r))?;
        if counts.total().is_multiple_of(crate::store::PROGRESS_EVERY) {
            progress(counts.total(), total.max(counts.total()));
        }
    }
    let Hashing { inner: mut gz, sha } = w.into_inner().map_err(|e| io(e.into_error()))?;
    let end = End { records: counts.total(), counts, sha256: hex(&sha.finalize()) };
    write_line(&mut gz, &Line { end: Some(end), ..Line::default() })?;
    gz.finish().map_err(io)?.flush().map_err(io)?;
    progress(counts.total(), counts.total());
    Ok(Summary { created, state, counts })
}

/// Refuses a backup file: `Invalid` with "backup refused: {why}".
fn refused(why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("backup refused: {why}"))
}

/// What a failure of the gzip layer means for the file.
fn gzip_fault(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        refused("the file is truncated: its compressed stream ends early (an interrupted download or copy?)")
    } else {
        refused(format!("the file is damaged: its compressed data is corrupt ({e})"))
    }
}

/// Reads the next line (without its `\n`) into `buf`; `false` at the end of the stream.
/// Errors: a damaged stream, a line over [`MAX_LINE_BYTES`], a last line without its `\n`.
fn next_line(r: &mut impl BufRead, buf: &mut Vec<u8>, line_no: u64) -> Result<bool> {
    buf.clear();
    let n = r.take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', buf).map_err(gzip_fault)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n > MAX_LINE_BYTES {
            refused(format!("line {line_no} is over {MAX_LINE_BYTES} bytes"))
        } else {
            refused(format!("the file is truncated: line {line_no} is cut short and there is no footer"))
        });
    }
    buf.pop();
    Ok(true)
}

/// Checks the header line: the format, then the version (before anything else, so that a newer
/// file is named as such), then its fields.
fn parse_header(line: &[u8]) -> Result<(DateTime<Utc>, BackupState)> {
    let v: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| refused(format!("the first line is not a JSON header ({e}): not a voisinage backup?")))?;
    match v.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => return Err(refused(format!("unknown format '{}': a voisinage backup says '{FORMAT}'", other.chars().take(60).collect::<String>()))),
        None => return Err(refused(format!("the header names no format: not a voisinage backup (format '{FORMAT}')"))),
    }
    match v.get("version").and_then(|f| f.as_u64()) {
        Some(n) if n == u64::from(VERSION) => {}
        Some(n) if n > u64::from(VERSION) => {
            return Err(refused(format!("format version {n} is newer than this program reads (version {VERSION}): restore it with a newer voisinage")));
        }
        _ => return Err(refused(format!("the header's version is not one this program reads (version {VERSION})"))),
    }
    let h: Header = serde_json::from_value(v).map_err(|e| refused(format!("the header does not parse: {e}")))?;
    let state = BackupState {
        next_id: h.next_id,
        next_token_id: h.next_token_id,
        next_price_estimate_id: h.next_price_estimate_id,
        catalog_version: h.catalog_version,
        demo: h.demo,
    };
    Ok((h.created, state))
}

/// One record line as a record, its id checked against the header's high-water ids.
fn parse_record(line: Line, state: &BackupState, line_no: u64) -> Result<Record> {
    let below = |kind: &str, id: u64, next: u64, name: &str| {
        if id < next { Ok(()) } else { Err(refused(format!("line {line_no}: {kind} id {id} is not below the header's {name} {next}"))) }
    };
    let r = match line {
        Line { adoption: Some(a), feedback: None, token: None, hash: None, price_estimate: None, idempotency: None, end: None } => {
            below("adoption", a.id, state.next_id, "next_id")?;
            Record::Adoption(a)
        }
        Line { adoption: None, feedback: Some(f), token: None, hash: None, price_estimate: None, idempotency: None, end: None } => {
            below("feedback", f.id, state.next_id, "next_id")?;
            Record::Feedback(f)
        }
        Line { adoption: None, feedback: None, token: Some(t), hash: Some(h), price_estimate: None, idempotency: None, end: None } => {
            below("token", t.id, state.next_token_id, "next_token_id")?;
            let hash = unhex32(&h).ok_or_else(|| refused(format!("line {line_no}: a token's hash is not 64 hexadecimal digits")))?;
            Record::Token(t, TokenHash(hash))
        }
        Line { adoption: None, feedback: None, token: None, hash: None, price_estimate: Some(e), idempotency: None, end: None } => {
            below("price estimate", e.id, state.next_price_estimate_id, "next_price_estimate_id")?;
            Record::PriceEstimate(e)
        }
        Line { adoption: None, feedback: None, token: None, hash: None, price_estimate: None, idempotency: Some(i), end: None } => {
            below("idempotency key's record", i.id, state.next_id, "next_id")?;
            Record::Idempotency(i)
        }
        _ => return Err(refused(format!("line {line_no} is not one record (adoption, feedback, token with its hash, price_estimate, idempotency)"))),
    };
    Ok(r)
}

/// Reads a backup file from `input` (gzip), checking everything the module doc lists, and
/// gives each record to `on_record` as it is read (so a caller can check the whole file first
/// with a sink that keeps nothing, then read it again to write it). Memory stays bounded.
/// Returns the header and counts. Errors: `Invalid` "backup refused: {why}" for a damaged,
/// truncated, foreign or newer file; `on_record`'s own errors.
pub fn read(input: impl Read, on_record: &mut dyn FnMut(Record) -> Result<()>) -> Result<Summary> {
    let mut r = std::io::BufReader::with_capacity(64 * 1024, flate2::read::GzDecoder::new(input));
    let mut sha = Sha256::new();
    let mut buf = Vec::with_capacity(4096);
    if !next_line(&mut r, &mut buf, 1)? {
        return Err(refused("the file is empty"));
    }
    let (created, state) = parse_header(&buf)?;
    sha.update(&buf);
    sha.update(b"\n");
    let mut counts = Counts::default();
    let mut line_no = 1;
    let end = loop {
        line_no += 1;
        if !next_line(&mut r, &mut buf, line_no)? {
            return Err(refused(format!("the file is truncated: it ends after {} records without its footer (an interrupted backup?)", line_no - 2)));
        }
        let line: Line = serde_json::from_slice(&buf).map_err(|e| refused(format!("line {line_no} does not parse: {e}")))?;
        if let Some(end) = line.end {
            let Line { adoption, feedback, token, hash, price_estimate, idempotency, end: _ } = line;
            if adoption.is_some() || feedback.is_some() || token.is_some() || hash.is_some() || price_estimate.is_some() || idempotency.is_some() {
                return Err(refused(format!("line {line_no}: the footer holds a record too")));
            }
            break end;
        }
        sha.update(&buf);
        sha.update(b"\n");
        let rec = parse_record(line, &state, line_no)?;
        counts.add(&rec);
        on_record(rec)?;
    };
    if next_line(&mut r, &mut buf, line_no + 1)? {
        return Err(refused(format!("there is data after the footer (line {})", line_no + 1)));
    }
    if end.records != counts.total() || end.counts != counts {
        return Err(refused(format!("the footer counts {} records ({}) but the file holds {} ({counts})", end.records, end.counts, counts.total())));
    }
    let digest = hex(&sha.finalize());
    if end.sha256 != digest {
        return Err(refused(format!("checksum mismatch: the footer's sha256 is {} but the content's is {digest} (the file was altered)", end.sha256)));
    }
    Ok(Summary { created, state, counts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::auth::TokenScope;
    use crate::core::domain::Slug;
    use crate::store::tests::{new_adoption, reopen};
    use chrono::NaiveDate;

    /// A small store and its backup, uncompressed.
    fn sample() -> (tempfile::TempDir, Vec<u8>, Summary, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-29T03:00:00Z").unwrap().to_utc();
        let (_, secret) = store.create_token(TokenScope::Admin, "admin", now).unwrap();
        store.insert_adoption(new_adoption()).unwrap();
        let mut out = Vec::new();
        let s = write(&store, &mut out, now).unwrap();
        (dir, out, s, secret)
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut s = String::new();
        flate2::read::GzDecoder::new(bytes).read_to_string(&mut s).unwrap();
        s
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    fn refusal(bytes: &[u8]) -> String {
        read(bytes, &mut |_| Ok(())).unwrap_err().to_string()
    }

    #[test]
    fn a_backup_reads_back_with_its_header_and_counts() {
        let (dir, out, s, secret) = sample();
        assert_eq!(s.counts, Counts { adoption: 1, token: 1, ..Counts::default() });
        // The same backup with its progress: the ledger's count, one final call at the total.
        let store = reopen(dir.path());
        assert_eq!(store.export_count(), 2);
        let mut calls = Vec::new();
        let mut again = Vec::new();
        write_with_progress(&store, &mut again, s.created, &mut |done, total| calls.push((done, total))).unwrap();
        drop(store);
        assert_eq!(calls, [(2, 2)]);
        assert_eq!(gunzip(&again), gunzip(&out));
        assert_eq!((s.state.next_id, s.state.next_token_id, s.state.next_price_estimate_id), (2, 2, 1));
        let text = gunzip(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with(r#"{"format":"voisinage-backup","version":1,"created":"2026-11-29T03:00:00Z","#), "{}", lines[0]);
        assert!(lines[1].starts_with(r#"{"adoption":{"id":1,"commune":"29019""#), "{}", lines[1]);
        assert!(lines[2].starts_with(r#"{"token":{"id":1,"scope":"admin""#), "{}", lines[2]);
        let hash = hex(&TokenHash::of_secret(&secret).unwrap().0);
        assert!(lines[2].ends_with(&format!(r#"}},"hash":"{hash}"}}"#)), "{}", lines[2]);
        assert!(!text.contains(&secret), "never the secret");
        assert!(lines[3].starts_with(r#"{"end":{"records":2,"counts":{"adoption":1,"feedback":0,"token":1,"price_estimate":0,"idempotency":0},"sha256":""#));
        let mut seen = Vec::new();
        let back = read(&out[..], &mut |r| {
            seen.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(back, s);
        assert!(matches!(&seen[..], [Record::Adoption(a), Record::Token(t, _)] if a.workstations == Some(3) && t.label == "admin"));
        assert_eq!(file_name(s.created), "voisinage-20261129-030000.jsonl.gz");
    }

    #[test]
    fn damaged_files_are_refused_with_their_fault() {
        let (_dir, out, ..) = sample();
        let text = gunzip(&out);
        assert!(refusal(&out[..out.len() - 10]).contains("truncated"));
        let no_footer: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert!(refusal(&gzip(&no_footer)).contains("without its footer"));
        let altered = text.replace("\"label\":\"admin\"", "\"label\":\"admiN\"");
        assert!(refusal(&gzip(&altered)).contains("checksum mismatch"));
        let newer = text.replacen("\"version\":1", "\"version\":99", 1);
        assert!(refusal(&gzip(&newer)).contains("format version 99 is newer"));
        let foreign = text.replacen("voisinage-backup", "other", 1);
        assert!(refusal(&gzip(&foreign)).contains("unknown format 'other'"));
        let recount = text.replacen("\"records\":2", "\"records\":3", 1);
        assert!(refusal(&gzip(&recount)).contains("the footer counts 3 records"));
        let trailing = format!("{text}{{}}\n");
        assert!(refusal(&gzip(&trailing)).contains("data after the footer"));
        assert!(refusal(b"not gzip at all").contains("damaged"));
        // An id at or past the header's high-water id.
        let past = text.replacen("\"next_token_id\":2", "\"next_token_id\":1", 1);
        assert!(refusal(&gzip(&past)).contains("token id 1 is not below the header's next_token_id 1"));
    }

    #[test]
    fn every_kind_of_record_is_imported_as_it_was() {
        use crate::core::domain::Siren;
        use crate::core::history::NewFeedback;
        use crate::core::prices::{EstimateAuthor, EurHt, NewPriceEstimate, PriceBasis};
        use crate::store::Idempotency;
        let now = DateTime::parse_from_rfc3339("2026-11-29T03:00:00Z").unwrap().to_utc();
        let (dir, _, _, secret) = sample();
        let rm = Siren::parse("243500139").unwrap();
        let (file, secret2, estimate, fb, idem) = {
            let store = reopen(dir.path());
            let (t2, secret2) = store.create_token(TokenScope::Epci(rm), "Rennes Métropole", now).unwrap();
            store.revoke_token(t2.id, now).unwrap();
            let by = EstimateAuthor { token_id: t2.id, scope: t2.scope, name: "Rennes Métropole".into() };
            let new = NewPriceEstimate {
                epci: rm,
                product: Slug::parse("openelec").unwrap(),
                generation: None,
                basis: PriceBasis::PerCommune,
                amount_eur_ht: EurHt::from_whole_euros(1_200),
                made_on: NaiveDate::from_ymd_opt(2026, 10, 8).unwrap(),
                note: Some("devis".into()),
            };
            let estimate = store.insert_price_estimate(new, by, now).unwrap();
            let idem = Idempotency { scope: "POST /api/v1/communes/29019/adoptions/1/feedback".into(), key: "k-1".into(), fingerprint: 42 };
            let new = NewFeedback {
                date: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
                reliability: 4,
                incidents: 1,
                downtime_hours: 0.1 + 0.2,
                support: 5,
                comment: Some("très bien".into()),
            };
            let (fb, _) = store.insert_feedback_once(1, new, Some(&idem)).unwrap();
            let mut file = Vec::new();
            let s = write(&store, &mut file, now).unwrap();
            assert_eq!(s.counts, Counts { adoption: 1, feedback: 1, token: 2, price_estimate: 1, idempotency: 1 });
            (file, secret2, estimate, fb, idem)
        };
        let new_dir = tempfile::tempdir().unwrap();
        let store = Store::open(new_dir.path()).unwrap();
        let summary = read(&file[..], &mut |r| store.import_record(r)).unwrap();
        store.import_finish(&summary.state).unwrap();
        assert_eq!(store.price_estimates(&rm).unwrap(), vec![estimate]);
        assert_eq!(store.load().unwrap().1, vec![fb.clone()], "feedback (a float kept to the bit)");
        let (again, replayed) = store
            .insert_feedback_once(
                1,
                NewFeedback { date: NaiveDate::MIN, reliability: 1, incidents: 0, downtime_hours: 0.0, support: 1, comment: None },
                Some(&idem),
            )
            .unwrap();
        assert!(replayed && again == fb, "the idempotency key replays");
        let admin = store.token_by_hash(&TokenHash::of_secret(&secret).unwrap()).unwrap().unwrap();
        assert_eq!((admin.id, admin.revoked), (1, None));
        assert!(store.token_by_hash(&TokenHash::of_secret(&secret2).unwrap()).unwrap().unwrap().revoked.is_some(), "revoked stays revoked");
        assert_eq!(store.backup_state().unwrap(), summary.state, "the high-water ids");
        // A record twice is refused.
        let mut twice = None;
        read(&file[..], &mut |r| {
            twice.get_or_insert(r);
            Ok(())
        })
        .unwrap();
        assert!(store.import_record(twice.unwrap()).unwrap_err().to_string().contains("adoption 1 is in the backup twice"));
    }

    #[test]
    fn hex_round_trips() {
        let b: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex32(&hex(&b)), Some(b));
        assert_eq!(unhex32("zz"), None);
    }
}
