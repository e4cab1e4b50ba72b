#![warn(missing_docs)]
//! voisinage: recommends to French communes the software and equipment already proven by their
//! neighbours, and proposes groupements de commandes to their EPCI.
//!
//! Layout, inside out:
//! - [`core`] is pure (domain types, graph, catalogue, recommendation, pooling, demo simulator;
//!   no I/O; time enters as a `today` argument);
//! - [`store`] is the only user of sled (durable writes, group commit);
//! - [`service`] is the application service: the one type that owns the reference data, the
//!   store and its in-memory index, and whose methods are the use cases;
//! - [`http`] is the only user of actix-web: typed input, a call to the service, rendering;
//! - [`inventory`] reads an EPCI's uploaded inventory spreadsheet (XLSX, CSV) and writes its
//!   template, at the edge (bomb-proof limits);
//! - [`export`] writes the spreadsheets handed to EPCI staff: the pooled purchases (CSV for
//!   scripts, XLSX with typed cells) and the members' inventory (XLSX);
//! - [`backup`] writes and reads the backup files of the store (gzip JSON Lines, verified);
//! - [`import`] derives the seeds from the shared open data; [`seeds`] embeds them;
//! - [`progress`] shows the progress of long work (a bar on a terminal, else log lines);
//! - `main.rs` is the CLI that wires them.

/// The memory allocator of every program built on this crate (the service, its tests and
/// benchmarks): mimalloc instead of the system's, for the many small short-lived allocations of
/// a recommendation (measured in `BENCHMARKS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// While it lives, the allocator returns freed memory to the system at once; dropped, it puts
/// back the delay in force before (mimalloc 2.3's 10 ms, or what `MIMALLOC_PURGE_DELAY` set). mimalloc
/// purges a freed page only after that delay and only when it next allocates, so the memory that
/// loading the index used and freed would stay resident in an idle service (national scale,
/// sealed store, RSS when ready: 338,556-340,408 kB without the guard against 296,164-296,692 kB
/// with it, mimalloc 2.3, 2026-12-01; about 35 MB with mimalloc 3.3: `BENCHMARKS.md`, tenth and
/// eleventh slices). The service purges at once while it loads,
/// then goes back to the delay, which spares a system call per freed page while it answers.
#[must_use = "the delay comes back when the guard is dropped"]
pub struct PurgeAtOnce {
    previous: std::ffi::c_long,
}

/// Starts purging freed memory at once, until the [`PurgeAtOnce`] returned is dropped.
pub fn purge_freed_memory_at_once() -> PurgeAtOnce {
    let previous = purge_delay();
    set_purge_delay(0);
    PurgeAtOnce { previous }
}

impl Drop for PurgeAtOnce {
    fn drop(&mut self) {
        set_purge_delay(self.previous);
    }
}

/// mimalloc's purge delay in ms (read from `MIMALLOC_PURGE_DELAY` the first time).
fn purge_delay() -> std::ffi::c_long {
    // SAFETY: `mi_option_get` has no precondition.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
    }
}

fn set_purge_delay(ms: std::ffi::c_long) {
    // SAFETY: `mi_option_set` has no precondition; mimalloc documents its options as settable
    // at run time. It writes the value with a plain store that a thread allocating at that
    // moment may read: a race on one aligned word, which reads the old value or the new one.
    // The service sets it before its workers start and once loading is done.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms)
    }
}

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (libmimalloc-sys 0.1.49 names only some
/// options, the same in mimalloc 2 and 3); its default is 10 ms in mimalloc 2.3, the version this
/// crate builds (feature `v2` in Cargo.toml; 1,000 ms in mimalloc 3), tested.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

pub mod backup;
pub mod core;
pub mod error;
pub mod export;
pub mod http;
pub mod import;
pub mod inventory;
pub mod progress;
pub mod seeds;
pub mod service;
pub mod store;

pub use error::{Error, Result};

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_set_is_mimallocs_purge_delay_and_comes_back() {
        let before = super::purge_delay();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(before, 10, "the option's default is mimalloc 2.3's purge delay");
        }
        let guard = super::purge_freed_memory_at_once();
        assert_eq!(super::purge_delay(), 0);
        drop(guard);
        assert_eq!(super::purge_delay(), before);
    }
}
