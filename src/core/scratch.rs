//! Per-thread scratch buffers for the hot paths (recommendation, graph walks): a slot per
//! commune of the territory, kept between calls instead of an array the size of the territory
//! allocated and zeroed on each.

use std::cell::RefCell;

/// A set of communes of the territory, as a slot per commune (`u32::MAX`: not in it), kept by
/// the thread between calls instead of an array the size of the territory allocated and zeroed
/// on each: only the slots a call set are cleared when it is done (see [`Marks::take`]).
pub struct Marks(MarkBuffers);

/// The buffers of [`Marks`]: every slot `u32::MAX` but those listed in `touched`.
#[derive(Default)]
struct MarkBuffers {
    slot: Vec<u32>,
    touched: Vec<u32>,
}

thread_local! {
    /// Spare [`Marks`] buffers of this thread, all clear (a few: a call rarely holds more than
    /// one at a time).
    static SPARE_MARKS: RefCell<Vec<MarkBuffers>> = const { RefCell::new(Vec::new()) };
}

/// A spare of this thread's `pool`, or new buffers (the pool may be in use or gone, during the
/// thread's exit).
fn take_spare<T: Default>(pool: &'static std::thread::LocalKey<RefCell<Vec<T>>>) -> T {
    pool.try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop())).ok().flatten().unwrap_or_default()
}

/// Gives cleared buffers back to this thread's `pool` (at most 4 kept; during the thread's exit
/// the pool may be gone: they are then just freed).
fn give_back<T>(pool: &'static std::thread::LocalKey<RefCell<Vec<T>>>, b: T) {
    let _ = pool.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut()
            && s.len() < 4
        {
            s.push(b);
        }
    });
}

impl Marks {
    /// Empty marks for a territory of `n` communes: a spare of this thread's, or new.
    pub fn take(n: usize) -> Marks {
        let mut b = take_spare(&SPARE_MARKS);
        if b.slot.len() != n {
            b.slot.clear();
            b.slot.resize(n, u32::MAX);
            b.touched.clear();
        }
        Marks(b)
    }

    /// The value of commune `i` (`u32::MAX`: unset; `None`: out of the territory).
    pub fn get(&self, i: usize) -> Option<u32> {
        self.0.slot.get(i).copied()
    }

    /// Sets commune `i` to `v` (not `u32::MAX`); returns the value it had.
    pub fn set(&mut self, i: usize, v: u32) -> u32 {
        let old = std::mem::replace(&mut self.0.slot[i], v);
        if old == u32::MAX {
            self.0.touched.push(i as u32);
        }
        old
    }
}

impl Drop for Marks {
    /// Clears the slots set and gives the buffers back to the thread (at most 4 kept).
    fn drop(&mut self) {
        let mut b = std::mem::take(&mut self.0);
        for &i in &b.touched {
            b.slot[i as usize] = u32::MAX;
        }
        b.touched.clear();
        give_back(&SPARE_MARKS, b);
    }
}

/// A set of communes of the territory as one bit per commune (4.4 kB for the 34,968 communes of
/// France: it stays in the core's first-level cache, where [`Marks`]' 140 kB of slots do not),
/// kept by the thread between calls like [`Marks`]: only the words a call touched are cleared
/// when it is done. For walks that only ask whether a commune was seen.
pub struct Seen(SeenBuffers);

/// The buffers of [`Seen`]: every bit clear but those of the communes listed in `touched`.
#[derive(Default)]
struct SeenBuffers {
    bits: Vec<u64>,
    touched: Vec<u32>,
}

thread_local! {
    /// Spare [`Seen`] buffers of this thread, all clear.
    static SPARE_SEEN: RefCell<Vec<SeenBuffers>> = const { RefCell::new(Vec::new()) };
}

impl Seen {
    /// An empty set for a territory of `n` communes: a spare of this thread's, or new.
    pub fn take(n: usize) -> Seen {
        let mut b = take_spare(&SPARE_SEEN);
        let words = n.div_ceil(64);
        if b.bits.len() != words {
            b.bits.clear();
            b.bits.resize(words, 0);
            b.touched.clear();
        }
        Seen(b)
    }

    /// Adds commune `i` (below the `n` of [`Seen::take`]; panics otherwise); returns whether it
    /// was not in the set yet.
    pub fn insert(&mut self, i: u32) -> bool {
        let (w, bit) = ((i >> 6) as usize, 1u64 << (i & 63));
        let word = &mut self.0.bits[w];
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        self.0.touched.push(i);
        true
    }

    /// Whether commune `i` is in the set (`false` out of the territory).
    pub fn contains(&self, i: u32) -> bool {
        self.0.bits.get((i >> 6) as usize).is_some_and(|w| w & (1u64 << (i & 63)) != 0)
    }
}

impl Drop for Seen {
    /// Clears the words touched and gives the buffers back to the thread (at most 4 kept).
    fn drop(&mut self) {
        let mut b = std::mem::take(&mut self.0);
        for &i in &b.touched {
            b.bits[(i >> 6) as usize] = 0;
        }
        b.touched.clear();
        give_back(&SPARE_SEEN, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seen_set_comes_back_empty_whatever_was_inserted() {
        let mut s = Seen::take(130);
        assert!(s.insert(0) && s.insert(63) && s.insert(64) && s.insert(129));
        assert!(!s.insert(64) && s.contains(129) && !s.contains(1) && !s.contains(130) && !s.contains(u32::MAX));
        drop(s);
        let s = Seen::take(130);
        assert!((0..130).all(|i| !s.contains(i)));
        drop(s);
        // Another size: new buffers, empty too.
        let mut s = Seen::take(10);
        assert!(!s.contains(9) && s.insert(9) && s.contains(9));
    }

    #[test]
    fn marks_come_back_unset_whatever_was_set() {
        let mut m = Marks::take(100);
        assert_eq!(m.set(5, 7), u32::MAX);
        assert_eq!(m.set(5, 8), 7);
        assert_eq!(m.get(5), Some(8));
        drop(m);
        let m = Marks::take(100);
        assert!((0..100).all(|i| m.get(i) == Some(u32::MAX)));
        assert_eq!(m.get(100), None);
    }
}
