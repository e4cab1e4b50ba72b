//! What a store's records weigh in sled, and what grouping the feedback per adoption would make
//! of it (issue 17: a store of at most 600 MB at national scale). Benchmark tooling, not part of
//! the service: it opens the sled folder directly, so run it on a **copy** of a stopped store
//! (opening sled writes into its folder, which voids the store's seal and its ledger checks).
//!
//! ```sh
//! cp -r target/bench-national/data/store /tmp/store-copy
//! cargo run --release --example store_layout -- /tmp/store-copy /tmp/store-layout
//! ```
//!
//! For each layout it writes the trees of `FROM` into a fresh sled folder under `OUT`, in key
//! order, one insert at a time as the demo load does, then flushes, and prints the records read,
//! their live bytes (keys and values as stored), the time and the folder's size on disk:
//! - `as-is`: every tree copied key by key (the store's own layout);
//! - `feedback-grouped`: the same, except the `feedback` tree (keys: adoption id, then record
//!   id, 8 bytes each), written as one value per adoption: its records' ids and values
//!   concatenated (each value preceded by its length as a LEB128 varint).

use std::path::{Path, PathBuf};
use std::time::Instant;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Bytes in the files under `dir`, recursively.
fn du(dir: &Path) -> BoxResult<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() { du(&e.path())? } else { m.len() };
    }
    Ok(total)
}

/// `n` as a LEB128 varint.
fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Copies every tree of `from` into a fresh sled folder `to`; returns (records, live bytes,
/// values written).
fn copy(from: &sled::Db, to: &Path, group_feedback: bool) -> BoxResult<(u64, u64, u64)> {
    let db = sled::Config::new().path(to).flush_every_ms(None).cache_capacity(64 << 20).open()?;
    let (mut records, mut live, mut written) = (0u64, 0u64, 0u64);
    for name in from.tree_names() {
        let (src, dst) = (from.open_tree(&name)?, db.open_tree(&name)?);
        let group = group_feedback && &name[..] == b"feedback";
        let mut current: Option<[u8; 8]> = None;
        let mut value: Vec<u8> = Vec::new();
        for kv in src.iter() {
            let (k, v) = kv?;
            records += 1;
            live += (k.len() + v.len()) as u64;
            if !group {
                dst.insert(k, v)?;
                written += 1;
                continue;
            }
            let adoption: [u8; 8] = k.get(..8).and_then(|p| p.try_into().ok()).ok_or("a feedback key shorter than 8 bytes")?;
            if current != Some(adoption) {
                if let Some(a) = current {
                    dst.insert(a, std::mem::take(&mut value))?;
                    written += 1;
                }
                current = Some(adoption);
            }
            value.extend_from_slice(&k[8..]);
            varint(v.len(), &mut value);
            value.extend_from_slice(&v);
        }
        if let Some(a) = current {
            dst.insert(a, value)?;
            written += 1;
        }
    }
    db.flush()?;
    Ok((records, live, written))
}

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, from, out] = args.as_slice() else {
        return Err("usage: store_layout FROM_SLED_FOLDER OUT_FOLDER (FROM: a copy of DATA_DIR/store)".into());
    };
    let from = sled::Config::new().path(from).cache_capacity(64 << 20).open()?;
    println!("source: {} bytes on disk (sled's own count)", from.size_on_disk()?);
    for (layout, group) in [("as-is", false), ("feedback-grouped", true)] {
        let to: PathBuf = Path::new(out).join(layout);
        if to.exists() {
            std::fs::remove_dir_all(&to)?;
        }
        let t0 = Instant::now();
        let (records, live, written) = copy(&from, &to, group)?;
        println!(
            "LAYOUT {layout}: records={records} live_bytes={live} values_written={written} seconds={:.1} size_on_disk={}",
            t0.elapsed().as_secs_f64(),
            du(&to)?
        );
        std::fs::remove_dir_all(&to)?;
    }
    Ok(())
}
