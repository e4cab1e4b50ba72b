//! Each adoption's feedback [`Report`]s packed as bytes: what the index keeps in memory for the
//! 4.2 million records of the national demo history (about 6.4 bytes a record instead of the
//! 32 of a [`Report`]; measured in `BENCHMARKS.md`).
//!
//! A list holds its reports in id order, each written relative to the one before it:
//!
//! | field | bytes |
//! |---|---|
//! | id − previous id (the first: − 0) | LEB128 varint |
//! | date − previous date, in days (the first: − 2020-01-01), zigzag | LEB128 varint |
//! | reliability (bits 0-2), support (bits 3-5), 7 = the value follows as a byte; simulated (bit 6) | 1 |
//! | incidents · 4 + how downtime is written (0: +0.0, 1: as an `f32` that gives the same `f64`, 2: as an `f64`) | LEB128 varint |
//! | reliability, then support, when they did not fit in 3 bits | 0-2 |
//! | downtime in hours, little-endian | 0, 4 or 8 |
//!
//! Every value is given back exactly (the same bits for the downtime): the encoding only
//! removes what is the same from one report to the next. The lists of 1,024 adoptions sit end to
//! end in one byte vector behind an `Arc`, shared between versions of the index and copied
//! whole by the first write to one of them (as [`crate::core::shared::Chunks`]).

use crate::core::history::Report;
use chrono::{Datelike, NaiveDate};
use smallvec::SmallVec;
use std::sync::Arc;

/// Adoptions per chunk, as a power of two.
const SHIFT: u32 = 10;
const MASK: usize = (1 << SHIFT) - 1;
/// Days from the common era to 2020-01-01: the first date of a list is written from it.
const DAY0: i64 = 737_425;
/// 3 bits of the flags byte: the value does not fit and follows as a byte.
const ESCAPE: u8 = 7;

/// Per position (an adoption's place in the index), its reports packed, in id order.
#[derive(Debug, Clone, Default)]
pub struct PackedReports {
    chunks: Vec<Arc<Chunk>>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Chunk {
    /// Where each list starts in `bytes`, and where the last one ends (one more than lists).
    starts: Vec<u32>,
    bytes: Vec<u8>,
}

impl PackedReports {
    /// Number of lists (positions).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no list.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The reports at position `i`, `None` past the end.
    pub fn get(&self, i: usize) -> Option<Reports<'_>> {
        if i >= self.len {
            return None;
        }
        let (c, k) = (&self.chunks[i >> SHIFT], i & MASK);
        Some(Reports { bytes: &c.bytes[c.starts[k] as usize..c.starts[k + 1] as usize] })
    }

    /// The lists in position order.
    pub fn iter(&self) -> impl Iterator<Item = Reports<'_>> + '_ {
        self.chunks.iter().flat_map(|c| c.starts.windows(2).map(|w| Reports { bytes: &c.bytes[w[0] as usize..w[1] as usize] }))
    }

    /// Appends an empty list (a new position).
    pub fn push_empty(&mut self) {
        if self.len & MASK == 0 {
            let mut starts = Vec::with_capacity((1 << SHIFT) + 1);
            starts.push(0);
            self.chunks.push(Arc::new(Chunk { starts, bytes: Vec::new() }));
        }
        if let Some(last) = self.chunks.last_mut() {
            let c = Arc::make_mut(last);
            c.starts.push(u32::try_from(c.bytes.len()).expect("fewer than 4 GiB of reports in a chunk"));
        }
        self.len += 1;
    }

    /// Inserts `r` into the list at position `i`, at its place by id (the list is kept in id
    /// order); returns that place and whether it is the end of the list. `None`, changing
    /// nothing, past the end of the positions or when a report of that id is there already.
    /// The list is read once, without decoding the reports before the place; only `r` and the
    /// report after it are written again: the others keep their bytes.
    pub fn insert_by_id(&mut self, i: usize, r: Report) -> Option<(usize, bool)> {
        let list = self.get(i)?.bytes;
        let mut read = ReportIter::new(list);
        let mut at = 0;
        loop {
            let before = read.clone();
            match read.skip_one() {
                Some(id) if id == r.id => return None,
                Some(id) if id < r.id => at += 1,
                _ => {
                    read = before;
                    break;
                }
            }
        }
        let (from, state) = (list.len() - read.bytes.len(), read.state());
        let after = read.next();
        let to = list.len() - read.bytes.len();
        let mut bytes = Vec::with_capacity(16);
        let written = encode(&mut bytes, state, &r);
        if let Some(next) = &after {
            encode(&mut bytes, written, next);
        }
        // Never fewer: the two reports written again take at least the bytes of the one there.
        self.splice_list(i, from..to, &bytes);
        Some((at, after.is_none()))
    }

    /// Appends `run` (in increasing id order, the caller's promise) to the end of the list at
    /// position `i`, the whole run packed and put in place at once (packed on the stack for up
    /// to 64 bytes: no allocation for a run of a few reports); returns `false`, changing
    /// nothing, past the end of the positions or when the list holds a report whose id is not
    /// below the run's first. The same bytes as [`PackedReports::insert_by_id`] report by report.
    pub fn append(&mut self, i: usize, run: impl IntoIterator<Item = Report>) -> bool {
        let mut run = run.into_iter().peekable();
        let Some(first) = run.peek().map(|r| r.id) else { return true };
        let Some(list) = self.get(i).map(|l| l.bytes) else { return false };
        let mut read = ReportIter::new(list);
        while let Some(id) = read.skip_one() {
            if id >= first {
                return false;
            }
        }
        let mut bytes: SmallVec<[u8; 64]> = SmallVec::new();
        let mut state = read.state();
        for r in run {
            state = encode(&mut bytes, state, &r);
        }
        self.splice_list(i, list.len()..list.len(), &bytes);
        true
    }

    /// Puts `bytes` in place of bytes `within` of the list at position `i` (`bytes` at least as
    /// long), the lists after it in its chunk moved by the difference.
    fn splice_list(&mut self, i: usize, within: std::ops::Range<usize>, bytes: &[u8]) {
        let grown = u32::try_from(bytes.len() - within.len()).expect("a few reports");
        let (c, k) = (Arc::make_mut(&mut self.chunks[i >> SHIFT]), i & MASK);
        let start = c.starts[k] as usize;
        c.bytes.splice(start + within.start..start + within.end, bytes.iter().copied());
        // The last end is the largest: checked once, the loop stays a plain (vectorised) add.
        c.starts.last().and_then(|e| e.checked_add(grown)).expect("fewer than 4 GiB of reports in a chunk");
        c.starts[k + 1..].iter_mut().for_each(|s| *s += grown);
    }

    /// Gives back spare capacity (after a bulk load). Each chunk's bytes are copied into a
    /// block of their size: `shrink_to_fit` alone leaves a block in place when the bytes fill
    /// half of it or more (mimalloc's `realloc`), which the doubling growth of a bulk load
    /// always gives.
    pub fn shrink_to_fit(&mut self) {
        self.chunks.shrink_to_fit();
        for c in &mut self.chunks {
            let c = Arc::make_mut(c);
            c.starts.shrink_to_fit();
            if c.bytes.capacity() > c.bytes.len() {
                c.bytes = c.bytes.to_vec();
            }
        }
    }
}

/// One adoption's reports as packed ([`PackedReports`]): read in id order by decoding them.
/// Two lists are equal when their bytes are: the same reports bit for bit (a downtime of −0.0
/// is not one of +0.0 here, and a NaN equals the same NaN), the encoding of a list being unique.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reports<'a> {
    bytes: &'a [u8],
}

impl<'a> Reports<'a> {
    /// No report.
    pub const EMPTY: Reports<'static> = Reports { bytes: &[] };

    /// The reports, in id order.
    pub fn iter(&self) -> ReportIter<'a> {
        ReportIter::new(self.bytes)
    }

    /// Number of reports (they are decoded to count them).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there is no report.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The reports, decoded into a vector.
    pub fn to_vec(&self) -> Vec<Report> {
        self.iter().collect()
    }
}

impl<'a> IntoIterator for Reports<'a> {
    type Item = Report;
    type IntoIter = ReportIter<'a>;
    fn into_iter(self) -> ReportIter<'a> {
        self.iter()
    }
}

/// The reports of a [`Reports`], decoded one by one.
#[derive(Clone, Debug)]
pub struct ReportIter<'a> {
    bytes: &'a [u8],
    id: u64,
    day: i64,
}

impl<'a> ReportIter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        ReportIter { bytes, id: 0, day: DAY0 }
    }

    /// What the next report is written relative to: the id and day of the one before it.
    fn state(&self) -> (u64, i64) {
        (self.id, self.day)
    }

    /// The fields every report starts with (id, day, flags, incidents and downtime kind), read
    /// off the front of `b` relative to the report before; `None` at the end or on a short read.
    fn head(&self, b: &mut &[u8]) -> Option<(u64, i64, u8, u64)> {
        if b.is_empty() {
            return None;
        }
        Some((self.id.wrapping_add(varint(b)?), self.day.wrapping_add(unzigzag(varint(b)?)), byte(b)?, varint(b)?))
    }

    /// Moves past the next report without decoding it whole (no date, no downtime): its id.
    fn skip_one(&mut self) -> Option<u64> {
        let mut b = self.bytes;
        let (id, day, flags, tail) = self.head(&mut b)?;
        let extra = usize::from(flags & 7 == ESCAPE) + usize::from((flags >> 3) & 7 == ESCAPE) + [0, 4, 8, 8][(tail & 3) as usize];
        (self.bytes, self.id, self.day) = (b.get(extra..)?, id, day);
        Some(id)
    }
}

impl Iterator for ReportIter<'_> {
    type Item = Report;

    fn next(&mut self) -> Option<Report> {
        let mut bytes = self.bytes;
        let b = &mut bytes;
        let (id, day, flags, tail) = self.head(b)?;
        let reliability = if flags & 7 == ESCAPE { byte(b)? } else { flags & 7 };
        let support = if (flags >> 3) & 7 == ESCAPE { byte(b)? } else { (flags >> 3) & 7 };
        let downtime_hours = match tail & 3 {
            0 => 0.0,
            1 => f64::from(f32::from_le_bytes(take(b)?)),
            _ => f64::from_le_bytes(take(b)?),
        };
        let date = NaiveDate::from_num_days_from_ce_opt(i32::try_from(day).ok()?)?;
        let incidents = u32::try_from(tail >> 2).ok()?;
        (self.bytes, self.id, self.day) = (bytes, id, day);
        Some(Report { id, downtime_hours, date, incidents, reliability, support, simulated: flags & 0x40 != 0 })
    }
}

/// Writes `r` relative to `(id, day)` of the report before it; returns its own.
fn encode(out: &mut impl Extend<u8>, (id, day): (u64, i64), r: &Report) -> (u64, i64) {
    let r_day = i64::from(r.date.num_days_from_ce());
    put_varint(out, r.id.wrapping_sub(id));
    put_varint(out, zigzag(r_day.wrapping_sub(day)));
    let small = |v: u8| if v < ESCAPE { v } else { ESCAPE };
    out.extend([small(r.reliability) | small(r.support) << 3 | u8::from(r.simulated) << 6]);
    let d = r.downtime_hours;
    let kind = if d.to_bits() == 0 {
        0
    } else if f64::from(d as f32).to_bits() == d.to_bits() {
        1
    } else {
        2
    };
    put_varint(out, u64::from(r.incidents) << 2 | kind);
    for v in [r.reliability, r.support] {
        if v >= ESCAPE {
            out.extend([v]);
        }
    }
    match kind {
        0 => {}
        1 => out.extend((d as f32).to_le_bytes()),
        _ => out.extend(d.to_le_bytes()),
    }
    (r.id, r_day)
}

/// Appends `v` as an LEB128 varint (7 bits a byte, low first; also the commune shapes' format).
pub(crate) fn put_varint(out: &mut impl Extend<u8>, mut v: u64) {
    while v >= 0x80 {
        out.extend([v as u8 | 0x80]);
        v >>= 7;
    }
    out.extend([v as u8]);
}

/// Reads an LEB128 varint off the front of `b`; `None` when `b` ends first or it is too long.
pub(crate) fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = byte(b)?;
        v |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn byte(b: &mut &[u8]) -> Option<u8> {
    let (&x, rest) = b.split_first()?;
    *b = rest;
    Some(x)
}

fn take<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = b.split_first_chunk::<N>()?;
    *b = rest;
    Some(*head)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: u64, date: &str, reliability: u8, incidents: u32, downtime_hours: f64, support: u8) -> Report {
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        Report { id, downtime_hours, date, incidents, reliability, support, simulated: id.is_multiple_of(2) }
    }

    /// Awkward values: escapes, dates before the epoch and far apart, ids far apart, every
    /// kind of downtime (−0.0, a value an `f32` cannot hold, NaN, infinity, the largest).
    fn awkward() -> Vec<Report> {
        vec![
            report(1, "2019-03-01", 5, 0, 0.0, 4),
            report(2, "2026-11-29", 1, 3, 1.5, 1),
            report(7, "1999-12-31", 0, 0, -0.0, 0),
            report(1 << 40, "2026-01-01", 6, u32::MAX, 0.1, 7),
            report(u64::MAX - 1, "2262-04-11", 255, 12, f64::MAX, 200),
            report(u64::MAX, "1900-01-01", 3, 1, f64::NAN, 3),
        ]
    }

    fn bits(v: &[Report]) -> Vec<(u64, u64, NaiveDate, u32, u8, u8, bool)> {
        v.iter().map(|r| (r.id, r.downtime_hours.to_bits(), r.date, r.incidents, r.reliability, r.support, r.simulated)).collect()
    }

    #[test]
    fn varints_give_back_what_was_written() {
        let values = [0, 1, 127, 128, 300, 16_383, 16_384, 2_097_151, 2_097_152, u64::from(u32::MAX), u64::MAX];
        let mut bytes = Vec::new();
        for v in values {
            put_varint(&mut bytes, v);
        }
        assert_eq!(bytes.len(), 1 + 1 + 1 + 2 + 2 + 2 + 3 + 3 + 4 + 5 + 10);
        let mut rest = bytes.as_slice();
        let read: Vec<u64> = values.iter().map(|_| varint(&mut rest).unwrap()).collect();
        assert_eq!(read, values);
        assert!(rest.is_empty());
        // Cut short: no value.
        assert_eq!(varint(&mut &[0x80u8, 0x80][..]), None);
    }

    #[test]
    fn every_report_comes_back_exactly_whatever_order_it_was_inserted_in() {
        let all = awkward();
        // In order, in reverse, and middle-first: each insertion at its place by id.
        for order in [vec![0, 1, 2, 3, 4, 5], vec![5, 4, 3, 2, 1, 0], vec![3, 0, 5, 1, 4, 2]] {
            let mut p = PackedReports::default();
            (0..3).for_each(|_| p.push_empty());
            for (n, &k) in order.iter().enumerate() {
                let r = all[k];
                // Its place: after the reports of lower ids inserted before it.
                let at = order[..n].iter().filter(|&&j| j < k).count();
                let last = order[..n].iter().all(|&j| j < k);
                assert_eq!(p.insert_by_id(1, r), Some((at, last)), "{order:?}: {k}");
                // The neighbours' lists are untouched.
                assert!(p.get(0).unwrap().is_empty() && p.get(2).unwrap().is_empty());
            }
            assert_eq!(bits(&p.get(1).unwrap().to_vec()), bits(&all), "{order:?}");
            assert_eq!(p.get(1).unwrap().len(), 6);
            // A second record with a known id changes nothing.
            let held = p.clone();
            assert_eq!(p.insert_by_id(1, report(7, "2026-01-01", 1, 1, 1.0, 1)), None);
            assert!(Arc::ptr_eq(&p.chunks[0], &held.chunks[0]), "not even copied");
        }
        // Past the end of the positions: nothing changes.
        let mut p = PackedReports::default();
        p.push_empty();
        assert_eq!(p.insert_by_id(1, all[0]), None);
        assert!(p.get(0).unwrap().is_empty() && p.get(1).is_none());
    }

    #[test]
    fn a_run_appended_at_once_gives_the_bytes_of_its_reports_inserted_one_by_one() {
        let all = awkward();
        // Runs split anywhere, onto a list in the middle of a chunk and onto the last list of the
        // first chunk (the lists after it move by the run's bytes; the next chunk does not).
        for split in 0..=all.len() {
            for i in [1usize, 1023] {
                let (mut one_by_one, mut runs) = (PackedReports::default(), PackedReports::default());
                for _ in 0..1030 {
                    one_by_one.push_empty();
                    runs.push_empty();
                }
                for (j, r) in all.iter().enumerate() {
                    one_by_one.insert_by_id(i, *r);
                    one_by_one.insert_by_id(i + 2, report(j as u64 + 1, "2024-05-05", 4, 0, 0.0, 4));
                }
                assert!(runs.append(i + 2, (1..=all.len() as u64).map(|id| report(id, "2024-05-05", 4, 0, 0.0, 4))));
                assert!(runs.append(i, all[..split].iter().copied()));
                assert!(runs.append(i, all[split..].iter().copied()));
                assert!(runs.append(i, []), "an empty run changes nothing");
                for k in 0..1030 {
                    assert_eq!(runs.get(k).unwrap(), one_by_one.get(k).unwrap(), "split {split}, list {i}, position {k}");
                }
                assert_eq!(bits(&runs.get(i).unwrap().to_vec()), bits(&all));
            }
        }
        // Refused, changing nothing: a run whose first id is not above the list's last, and a
        // position past the end.
        let mut p = PackedReports::default();
        p.push_empty();
        assert!(p.append(0, all[2..4].iter().copied()));
        let held = p.clone();
        assert!(!p.append(0, all[3..5].iter().copied()), "id 2^40 is there already");
        assert!(!p.append(0, all[..1].iter().copied()), "id 1 is below the list's last");
        assert!(!p.append(1, all[..1].iter().copied()));
        assert!(Arc::ptr_eq(&p.chunks[0], &held.chunks[0]), "not even copied");
    }

    #[test]
    fn ordinary_reports_take_a_few_bytes_and_a_chunk_holds_1024_lists() {
        let mut p = PackedReports::default();
        for i in 0..3000u64 {
            p.push_empty();
            for m in 0..4u64 {
                let date = NaiveDate::from_ymd_opt(2022, 1 + (m as u32) * 3, 15).unwrap();
                let r = Report {
                    id: 10 * i + m,
                    downtime_hours: if m == 2 { 2.5 } else { 0.0 },
                    date,
                    incidents: m as u32,
                    reliability: 4,
                    support: 3,
                    simulated: true,
                };
                assert_eq!(p.insert_by_id(i as usize, r), Some((m as usize, true)));
            }
        }
        assert_eq!(p.chunks.len(), 3);
        let bytes: usize = p.chunks.iter().map(|c| c.bytes.len()).sum();
        // Per list: the first report takes its id's varint, 2 bytes of days since 2020-01-01,
        // the flags and the incidents; the next ones 1 byte of id, 2 of days (about 90), the
        // flags and the incidents, and 4 more for 2.5 hours of downtime: 6.4 bytes a report.
        let id_bytes = |v: u64| (64 - v.leading_zeros() as usize).div_ceil(7).max(1);
        assert_eq!(bytes, (0..3000u64).map(|i| id_bytes(10 * i) + 4 + 5 + 9 + 5).sum::<usize>());
        assert_eq!(bytes, 76_348);
        let second = p.get(1025).unwrap().to_vec();
        assert_eq!(
            second.iter().map(|r| (r.id, r.incidents, r.downtime_hours)).collect::<Vec<_>>(),
            vec![(10250, 0, 0.0), (10251, 1, 0.0), (10252, 2, 2.5), (10253, 3, 0.0)]
        );
        assert_eq!(p.iter().map(|l| l.len()).sum::<usize>(), 12_000);
    }

    #[test]
    fn a_clone_keeps_its_reports_when_the_original_is_written() {
        let mut p = PackedReports::default();
        p.push_empty();
        let r = awkward();
        p.insert_by_id(0, r[0]);
        let held = p.clone();
        p.insert_by_id(0, r[1]);
        assert_eq!(bits(&held.get(0).unwrap().to_vec()), bits(&r[..1]));
        assert_eq!(bits(&p.get(0).unwrap().to_vec()), bits(&r[..2]));
    }
}
