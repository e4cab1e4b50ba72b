//! The seal of a cleanly stopped store, `DATA_DIR/store.seal`: the size and XXH3-128 hash of
//! every file of the sled folder and of the ledger, written on a clean stop once everything is
//! flushed ([`crate::store::Store::seal`]).
//!
//! At the next open, before sled opens (sled writes into its folder when it opens), the seal is
//! removed (so that a crash afterwards can never reuse it), then every file is hashed again: when
//! each is byte for byte what it was, the store holds exactly what the ledger said at the stop,
//! which the census had checked at the open before and every write kept since, and the records
//! are not counted again (a pass over every key: seconds at national scale, against a
//! sequential read of the files). Any difference (a file changed, added, missing, a flipped
//! byte, a truncation) and the store is counted as without a seal. Never trusted blindly: a
//! seal only says "these bytes", and is checked against the bytes.
//!
//! **File**, text, one line per file: `SIZE HASH PATH` (the hash in 32 hex digits, the path
//! relative to the data folder, `/`-separated), the files in path order; a first line
//! `voisinage-seal 1`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const HEADER: &str = "voisinage-seal 1";

/// Path of the seal in a data folder.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("store.seal")
}

fn io(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::storage(format!("{what} {}", p.display()), e)
}

/// The files the seal covers: every regular file under `store_dir`, and `ledger`, as
/// (path relative to `data_dir`, absolute path), in path order.
fn files(data_dir: &Path, store_dir: &Path, ledger: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut todo = vec![store_dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| io("listing", &dir, e))? {
            let entry = entry.map_err(|e| io("listing", &dir, e))?;
            let p = entry.path();
            let kind = entry.file_type().map_err(|e| io("reading", &p, e))?;
            if kind.is_dir() {
                todo.push(p);
            } else if kind.is_file() {
                out.push(p);
            }
        }
    }
    if ledger.is_file() {
        out.push(ledger.to_path_buf());
    }
    let mut named: Vec<(String, PathBuf)> = out
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(data_dir).unwrap_or(&p).components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
            (rel, p)
        })
        .collect();
    named.sort();
    Ok(named)
}

/// The seal's text for the files as they are now.
fn text(data_dir: &Path, store_dir: &Path, ledger: &Path) -> Result<String> {
    let mut out = format!("{HEADER}\n");
    let mut buf = vec![0u8; 1 << 20];
    for (rel, p) in files(data_dir, store_dir, ledger)? {
        let mut f = std::fs::File::open(&p).map_err(|e| io("reading", &p, e))?;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(|e| io("reading", &p, e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h.update(&buf[..n]);
        }
        out.push_str(&format!("{size} {:032x} {rel}\n", h.digest128()));
    }
    Ok(out)
}

/// Writes the seal of the files as they are now (the caller has flushed the store and writes
/// nothing more): to a temporary file, synced, then renamed, and the folder synced. Errors:
/// `Storage`.
pub fn write(data_dir: &Path, store_dir: &Path, ledger: &Path) -> Result<()> {
    let body = text(data_dir, store_dir, ledger)?;
    let (to, tmp) = (path(data_dir), data_dir.join("store.seal.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("writing", &tmp, e))?;
    f.write_all(body.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &to).map_err(|e| io("renaming", &tmp, e))?;
    std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(|e| io("syncing", data_dir, e))
}

/// Removes the seal if there is one (synced), and says whether the files are still exactly
/// those it describes. `false` without a seal, or when it cannot be read. Errors: `Storage`
/// when the seal cannot be removed or a file cannot be read.
pub fn take(data_dir: &Path, store_dir: &Path, ledger: &Path) -> Result<bool> {
    let p = path(data_dir);
    let sealed = match std::fs::read_to_string(&p) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            tracing::warn!(path = %p.display(), error = %e, "store seal unreadable: ignored");
            String::new()
        }
    };
    std::fs::remove_file(&p).map_err(|e| io("removing", &p, e))?;
    std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(|e| io("syncing", data_dir, e))?;
    Ok(sealed.starts_with(HEADER) && text(data_dir, store_dir, ledger)? == sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_matches_the_same_bytes_only_and_is_used_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ledger) = (dir.path().join("store"), dir.path().join("store.ledger"));
        std::fs::create_dir_all(store.join("blobs")).unwrap();
        std::fs::write(store.join("db"), b"0123456789").unwrap();
        std::fs::write(store.join("blobs/1"), b"blob").unwrap();
        std::fs::write(&ledger, b"ledger").unwrap();
        let seal = |()| write(dir.path(), &store, &ledger).unwrap();
        seal(());
        let body = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(body.starts_with("voisinage-seal 1\n"), "{body}");
        assert_eq!(body.lines().count(), 4, "{body}");
        assert!(body.lines().nth(1).unwrap().ends_with(" store.ledger") && body.lines().nth(2).unwrap().ends_with(" store/blobs/1"), "{body}");
        assert!(take(dir.path(), &store, &ledger).unwrap(), "the same bytes");
        assert!(!path(dir.path()).exists(), "taken: removed");
        assert!(!take(dir.path(), &store, &ledger).unwrap(), "no seal: not sealed");
        // A flipped byte, a truncation, a new file, a missing file, another ledger: not sealed.
        type Change<'a> = Box<dyn Fn() + 'a>;
        let changes: Vec<(&str, Change)> = vec![
            ("flipped byte", Box::new(|| std::fs::write(dir.path().join("store/db"), b"0123456788").unwrap())),
            ("truncated", Box::new(|| std::fs::write(dir.path().join("store/db"), b"012345678").unwrap())),
            ("new file", Box::new(|| std::fs::write(dir.path().join("store/snap.1"), b"").unwrap())),
            ("missing file", Box::new(|| std::fs::remove_file(dir.path().join("store/blobs/1")).unwrap())),
            ("ledger", Box::new(|| std::fs::write(dir.path().join("store.ledger"), b"ledgeR").unwrap())),
        ];
        for (what, change) in changes {
            seal(());
            change();
            assert!(!take(dir.path(), &store, &ledger).unwrap(), "{what}");
            assert!(!path(dir.path()).exists(), "{what}: removed all the same");
        }
    }
}
