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

impl Marks {
    /// Empty marks for a territory of `n` communes: a spare of this thread's, or new.
    pub fn take(n: usize) -> Marks {
        let mut b = SPARE_MARKS.try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop())).ok().flatten().unwrap_or_default();
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
        // During the thread's exit the spares may be gone: the buffers are then just freed.
        let _ = SPARE_MARKS.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut()
                && s.len() < 4
            {
                s.push(b);
            }
        });
    }
}
