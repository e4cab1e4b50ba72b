//! The index snapshot, `DATA_DIR/index.snapshot`: every adoption and feedback record in one
//! sequential file, written on a clean shutdown ([`crate::store::Store::write_snapshot`]) so
//! that the next start reads one file instead of walking sled's trees
//! ([`crate::store::Store::load_index_with_progress`]).
//!
//! **Never trusted blindly.** The header holds the [`Fingerprint`] of the store it was taken
//! from: the ledger's high-water record id, the counts and key digests of adoptions and
//! feedback (already checked against the records by the census at open), and the store's
//! write counter (`meta` `writes`, raised in the transaction of every write of an adoption or
//! a feedback record, in-place updates included; tokens and price estimates, which the snapshot
//! does not hold, leave it fresh). It is read only when that
//! fingerprint equals the store's at start; the file ends with a CRC-32 of every byte before
//! it, and a file that is short, damaged, or does not decode is ignored with a warning (the
//! index is then rebuilt from the records). The store deletes the file before its first write
//! after a start, so a crash cannot leave a snapshot behind a store that moved on (and the write
//! counter would tell anyway).
//!
//! **File**, integers little-endian:
//!
//! | bytes | field |
//! |-------|-------|
//! | 8 | magic `VSNINDEX` |
//! | 4 | header length `h` |
//! | `h` | header: postcard of [`Header`] (snapshot version, record format, fingerprint, counts) |
//! | to the CRC | the records, compressed as one raw DEFLATE stream (RFC 1951, `flate2` at its fastest level): per record, 4 bytes length `n`, then the record's value as a single record of the store (`n` bytes: the format version byte, then postcard; [`crate::store::records`]) — the adoptions, then the feedback records, each in key order |
//! | 4 | CRC-32 (IEEE) of every byte above, as in the file (compressed) |
//!
//! Compressed since version 3: at national scale (987,307 adoptions, 4,235,402 feedback
//! records) the records take 163 MB as they are, a quarter of the store on disk; see
//! BENCHMARKS.md for the compressed size and the time it adds to a start.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};

use flate2::Compression;
use flate2::bufread::DeflateDecoder;
use flate2::write::DeflateEncoder;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ledger::{Kind, LedgerState};
use crate::error::{Error, Result};

/// Version of the snapshot file layout.
pub const VERSION: u32 = 3;

const MAGIC: &[u8; 8] = b"VSNINDEX";

/// Longest record or header accepted, bytes (a record is well under 10 KB; bounds what a
/// damaged length can make the reader allocate).
const MAX_ITEM_BYTES: u32 = 1 << 20;

/// Path of the snapshot of the store in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("index.snapshot")
}

/// What a snapshot was taken from: the part of the ledger state that covers what it holds
/// (adoptions and feedback) and the write counter. Tokens, price estimates and idempotency
/// keys are not in the snapshot: writing them leaves it fresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `next_id`: every adoption and feedback id below it was given out.
    pub next_id: u64,
    /// Count and key digest of the adoptions, their by-commune entries (none since store format
    /// 2) and the feedback, in
    /// that order.
    pub tallies: [(u64, u64); 3],
    /// The store's write counter (`meta` `writes`: writes of adoptions and feedback).
    pub writes: u64,
}

/// The ledger kinds a snapshot holds, in the order of [`Fingerprint::tallies`].
const HELD: [Kind; 3] = [Kind::Adoptions, Kind::ByCommune, Kind::Feedback];

impl Fingerprint {
    /// The fingerprint of a store whose ledger state is `l` and write counter `writes`.
    pub fn new(l: &LedgerState, writes: u64) -> Fingerprint {
        Fingerprint { next_id: l.next_id, tallies: HELD.map(|k| l.tally(k)).map(|t| (t.count, t.digest)), writes }
    }

    /// What differs from `other`, in words (for the log).
    pub fn difference(&self, other: &Fingerprint) -> String {
        if self.writes != other.writes {
            format!("{} writes since the snapshot's {}", other.writes, self.writes)
        } else if self.next_id != other.next_id {
            "the high-water ids differ".into()
        } else {
            "the records counted differ".into()
        }
    }
}

/// The header of a snapshot file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`VERSION`].
    pub version: u32,
    /// The record format of the values ([`crate::store::records::FORMAT`]).
    pub record_format: u8,
    /// The store it was taken from.
    pub fingerprint: Fingerprint,
    /// Adoption records that follow.
    pub adoptions: u64,
    /// Feedback records that follow them.
    pub feedback: u64,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::storage(format!("writing {}", path.display()), e)
}

/// Writes a snapshot to `path` (whole under a temporary name, synced, renamed, folder synced):
/// the header, then the values given by `values` (adoptions then feedback: `header.adoptions +
/// header.feedback` of them, checked). Errors: `Storage` (no file is left at `path` then,
/// except one that was there before).
pub fn write(path: &Path, header: &Header, values: &mut dyn Iterator<Item = Result<sled::IVec>>) -> Result<u64> {
    let tmp = path.with_extension("snapshot.tmp");
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        let mut out = Crc { inner: BufWriter::with_capacity(1 << 20, file), crc: crc32fast::Hasher::new() };
        let head = postcard::to_allocvec(header).map_err(|e| Error::storage("encoding the snapshot header", e))?;
        out.write_all(MAGIC).map_err(|e| io(&tmp, e))?;
        out.write_all(&(head.len() as u32).to_le_bytes()).map_err(|e| io(&tmp, e))?;
        out.write_all(&head).map_err(|e| io(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, DeflateEncoder::new(out, Compression::fast()));
        let mut n = 0u64;
        for v in values {
            let v = v?;
            w.write_all(&(v.len() as u32).to_le_bytes()).map_err(|e| io(&tmp, e))?;
            w.write_all(&v).map_err(|e| io(&tmp, e))?;
            n += 1;
        }
        if n != header.adoptions + header.feedback {
            return Err(Error::storage_state(format!("the snapshot found {n} records, the ledger counts {}", header.adoptions + header.feedback)));
        }
        let out = w.into_inner().map_err(|e| io(&tmp, e.into_error()))?.finish().map_err(|e| io(&tmp, e))?;
        let crc = out.crc.finalize();
        let mut file = out.inner;
        file.write_all(&crc.to_le_bytes()).map_err(|e| io(&tmp, e))?;
        let file = file.into_inner().map_err(|e| io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io(&tmp, e))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(path, e))?;
        }
        Ok(bytes)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Why a snapshot was not used.
#[derive(Debug)]
pub enum Miss {
    /// No file.
    Absent,
    /// A whole file, of another store state or format: the reason.
    Stale(String),
    /// A file that cannot be read to its end, or whose checksum or content is wrong.
    Damaged(String),
}

/// An open snapshot whose header was read and matched: [`Reader::next_value`] gives the values,
/// [`Reader::finish`] checks the end. The records are decompressed by a thread of their own,
/// `CHUNK_BYTES` at a time, while the caller builds the index from the ones before (two cores:
/// the decompression adds nothing to a start).
pub struct Reader {
    input: BufReader<Chunks>,
    /// The decompressing thread: the end of the stream, the CRC-32 and the end of the file
    /// checked.
    inflater: std::thread::JoinHandle<std::result::Result<(), Miss>>,
    /// The header read.
    pub header: Header,
    left: u64,
    buf: Vec<u8>,
}

fn damaged(e: impl std::fmt::Display) -> Miss {
    Miss::Damaged(e.to_string())
}

impl Reader {
    /// Opens the snapshot at `path` and reads its header; `Err` when it is absent, damaged, or
    /// not of `expected` (the store's fingerprint now) and `record_format`.
    pub fn open(path: &Path, expected: &Fingerprint, record_format: u8) -> std::result::Result<Reader, Miss> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Miss::Absent),
            Err(e) => return Err(damaged(e)),
        };
        let mut input = Crc { inner: BufReader::with_capacity(1 << 20, file), crc: crc32fast::Hasher::new() };
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(damaged)?;
        if &magic != MAGIC {
            return Err(Miss::Damaged("not a snapshot file (magic)".into()));
        }
        let mut buf = Vec::new();
        read_item(&mut input, &mut buf)?;
        // The version first: an older header may not decode as this one.
        match postcard::take_from_bytes::<u32>(&buf) {
            Ok((version, _)) if version != VERSION => return Err(Miss::Stale(format!("snapshot version {version}"))),
            Ok(_) => {}
            Err(e) => return Err(damaged(format!("header: {e}"))),
        }
        let header: Header = postcard::from_bytes(&buf).map_err(|e| damaged(format!("header: {e}")))?;
        if header.version != VERSION || header.record_format != record_format {
            return Err(Miss::Stale(format!("snapshot version {} with record format {}", header.version, header.record_format)));
        }
        if header.fingerprint != *expected {
            return Err(Miss::Stale(header.fingerprint.difference(expected)));
        }
        let left = header.adoptions + header.feedback;
        let (send, receive) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
        let inflater = std::thread::Builder::new()
            .name("snapshot-inflate".into())
            .spawn(move || inflate(input, &send))
            .map_err(|e| damaged(format!("starting the decompression: {e}")))?;
        let input = BufReader::with_capacity(64 * 1024, Chunks { receive, chunk: Vec::new(), at: 0 });
        Ok(Reader { input, inflater, header, left, buf })
    }

    /// The next value (adoptions first, then feedback), `None` after the last.
    pub fn next_value(&mut self) -> std::result::Result<Option<&[u8]>, Miss> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        read_item(&mut self.input, &mut self.buf)?;
        Ok(Some(&self.buf))
    }

    /// Checks the end: every record read, the compressed stream ended, the CRC-32, nothing
    /// after it.
    pub fn finish(mut self) -> std::result::Result<(), Miss> {
        if self.left != 0 {
            return Err(Miss::Damaged(format!("{} records not read", self.left)));
        }
        let mut rest = [0u8; 1];
        let more = self.input.read(&mut rest).map_err(damaged)?;
        // Dropping the reader closes the channel: a thread still sending stops.
        drop(self.input);
        let inflated = self.inflater.join().unwrap_or_else(|_| Err(Miss::Damaged("the decompression failed (a thread panicked)".into())));
        inflated?;
        if more != 0 {
            return Err(Miss::Damaged("more records than the header counts".into()));
        }
        Ok(())
    }
}

/// Decompressed bytes handed from the decompressing thread to the reader at a time.
const CHUNK_BYTES: usize = 256 * 1024;

/// Chunks decompressed ahead of the reader, at most.
const CHUNKS_AHEAD: usize = 8;

/// The decompressing thread of a [`Reader`]: the records' stream from `input` (just after the
/// header) to its end, sent in chunks; then the CRC-32 of the file and its end checked. Stops
/// early, with `Ok`, when the reader is gone.
fn inflate(input: Crc<BufReader<std::fs::File>>, send: &std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>) -> std::result::Result<(), Miss> {
    let mut decoder = DeflateDecoder::new(input);
    loop {
        let mut chunk = vec![0u8; CHUNK_BYTES];
        let mut filled = 0;
        while filled < CHUNK_BYTES {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    let why = damaged(&e);
                    let _ = send.send(Err(e));
                    return Err(why);
                }
            }
        }
        if filled == 0 {
            break;
        }
        chunk.truncate(filled);
        if send.send(Ok(chunk)).is_err() {
            return Ok(());
        }
    }
    // The decoder consumed the stream to its end and not a byte more (`bufread`).
    let mut input = decoder.into_inner();
    let computed = input.crc.clone().finalize();
    let mut stored = [0u8; 4];
    input.inner.read_exact(&mut stored).map_err(damaged)?;
    if u32::from_le_bytes(stored) != computed {
        return Err(Miss::Damaged("checksum mismatch".into()));
    }
    let mut rest = [0u8; 1];
    match input.inner.read(&mut rest) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Miss::Damaged("bytes after the checksum".into())),
        Err(e) => Err(damaged(e)),
    }
}

/// The decompressed records as the decompressing thread sends them: read like a file, ending
/// when the thread has sent the last chunk.
struct Chunks {
    receive: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.receive.recv() {
                Ok(chunk) => (self.chunk, self.at) = (chunk?, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Reads a 4-byte length then that many bytes into `buf`.
fn read_item(input: &mut impl Read, buf: &mut Vec<u8>) -> std::result::Result<(), Miss> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(damaged)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_ITEM_BYTES {
        return Err(Miss::Damaged(format!("an item of {len} bytes")));
    }
    buf.resize(len as usize, 0);
    input.read_exact(buf).map_err(damaged)
}

/// A reader or writer that keeps the CRC-32 of the bytes that went through it.
struct Crc<T> {
    inner: T,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for Crc<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

/// Through the buffer, as the decompressor reads: the bytes it consumes are the ones counted.
impl<R: BufRead> BufRead for Crc<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            self.crc.update(&buf[..n.min(buf.len())]);
        }
        self.inner.consume(n);
    }
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(adoptions: u64, feedback: u64) -> Header {
        let fingerprint = Fingerprint { next_id: 7, tallies: [(1, 2), (0, 0), (3, 4)], writes: 9 };
        Header { version: VERSION, record_format: 2, fingerprint, adoptions, feedback }
    }

    /// Every value of the snapshot at `path`, or why it was not read.
    fn read_all(path: &Path, h: &Header) -> std::result::Result<Vec<Vec<u8>>, String> {
        let mut r = Reader::open(path, &h.fingerprint, h.record_format).map_err(|m| format!("{m:?}"))?;
        let mut out = Vec::new();
        while let Some(v) = r.next_value().map_err(|m| format!("{m:?}"))? {
            out.push(v.to_vec());
        }
        r.finish().map_err(|m| format!("{m:?}"))?;
        Ok(out)
    }

    #[test]
    fn records_are_compressed_read_back_whole_and_a_flipped_byte_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        // 3,000 values of 40 bytes, alike as stored records are (same slugs, close numbers).
        let values: Vec<Vec<u8>> =
            (0..3000u32).map(|i| [&[2u8][..], b"poste-de-travail/windows-11", &i.to_le_bytes(), &[4, 0, 1, 3, 0, 0, 0, 0]].concat()).collect();
        let h = header(1000, 2000);
        let bytes = write(&path, &h, &mut values.iter().map(|v| Ok(sled::IVec::from(v.as_slice())))).unwrap();
        let raw: usize = values.iter().map(|v| 4 + v.len()).sum();
        assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
        assert!((bytes as usize) < raw / 4, "{bytes} bytes for {raw} bytes of records");
        assert_eq!(read_all(&path, &h).unwrap(), values);
        // Another store state: stale, not read.
        let other = Fingerprint { writes: 10, ..h.fingerprint.clone() };
        assert!(matches!(Reader::open(&path, &other, 2), Err(Miss::Stale(_))));
        // A byte flipped in the compressed records, or the last byte cut: damaged, never taken.
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        let at = good.len() / 2;
        flipped[at] ^= 0x40;
        std::fs::write(&path, &flipped).unwrap();
        assert!(read_all(&path, &h).unwrap_err().starts_with("Damaged"));
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(read_all(&path, &h).unwrap_err().starts_with("Damaged"));
        // The writer refuses values that are not as many as the header counts.
        let h2 = header(1000, 1999);
        assert!(write(&path, &h2, &mut values.iter().map(|v| Ok(sled::IVec::from(v.as_slice())))).is_err(), "the writer checks the count");
    }
}
