//! Containers whose clones share their contents, copied piece by piece on write: what lets the
//! service publish a new [`crate::core::history::AdoptionIndex`] after each write while readers
//! keep the one they started with (issue 17, item 4). Cloning one costs a pointer per piece;
//! a change copies only the piece it touches, and only when another clone still holds it.
//!
//! Why not `imbl`'s persistent vector: the recommender reads adoptions at random positions
//! (hundreds to tens of thousands per answer), and a tree of 64-wide nodes is four dependent
//! loads deep at national scale where [`Chunks`] is two; and the index finds an adoption's
//! position from its address ([`Chunks::position_of`]), which a tree does not offer.

use std::sync::Arc;

/// Asks the processor to bring the cache line holding `x` into its caches, without waiting for
/// it: a hint that reads nothing the program sees. For a pass that knows the addresses it will
/// read next (the kept sums of a reach's adopters, the places of its communes), so that their
/// memory reads overlap instead of each waiting for the one before (issue 17; measured in
/// BENCHMARKS.md). A no-op on targets other than x86-64.
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` needs SSE, which every x86-64 processor has; it only hints at the
    // caches: it does not fault, even on an invalid address, and changes no value the program
    // reads. `x` is a valid reference anyway.
    #[allow(unsafe_code)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((x as *const T).cast::<i8>())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// [`prefetch`] of what cloning `a` writes: its reference counts, which the standard library
/// keeps just before the value (in the same cache line, or the one before). A clone's
/// increment is a locked instruction, which waits for its cache line before any later read
/// goes on: for the names of a recommendation's evidence rows, one full wait per row if their
/// lines are not asked for first. A wrong guess of the layout costs only a useless hint.
#[inline(always)]
pub fn prefetch_counts<T: ?Sized>(a: &Arc<T>) {
    let value = Arc::as_ptr(a).cast::<u8>();
    // The counts: two words before the value.
    let counts = value.wrapping_sub(2 * std::mem::size_of::<usize>());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `prefetch`: a hint that cannot fault, whatever the address.
    #[allow(unsafe_code)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(counts.cast::<i8>())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = counts;
}

/// A vector of `T` in chunks of `2^SHIFT` elements, each behind an [`Arc`]. Reading element `i`
/// is one more indirection than a `Vec`; a clone copies `len / 2^SHIFT` pointers; a change
/// copies the chunk it touches if another clone shares it (`2^SHIFT` clones of `T`).
///
/// It also keeps its chunks sorted by address, so that [`Chunks::position_of`] finds the
/// position of an element from a reference to it in O(log chunks).
#[derive(Debug, Clone)]
pub struct Chunks<T, const SHIFT: u32> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
    /// `(address of the chunk's first element, chunk number)`, sorted by address.
    by_address: Arc<Vec<(usize, u32)>>,
}

impl<T, const SHIFT: u32> Default for Chunks<T, SHIFT> {
    fn default() -> Self {
        Chunks { chunks: Vec::new(), len: 0, by_address: Arc::default() }
    }
}

impl<T, const SHIFT: u32> Chunks<T, SHIFT> {
    const SIZE: usize = 1 << SHIFT;
    const MASK: usize = (1 << SHIFT) - 1;

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `i`, `None` past the end.
    pub fn get(&self, i: usize) -> Option<&T> {
        (i < self.len).then(|| &self.chunks[i >> SHIFT][i & Self::MASK])
    }

    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The position of the element `x` refers to, if it is one of these chunks' elements (by
    /// address: an equal value held elsewhere is `None`); `None` for a zero-sized `T`.
    pub fn position_of(&self, x: &T) -> Option<usize> {
        let size = std::mem::size_of::<T>();
        if size == 0 {
            return None;
        }
        let at = std::ptr::from_ref(x) as usize;
        let k = self.by_address.partition_point(|&(start, _)| start <= at).checked_sub(1)?;
        let (start, c) = self.by_address[k];
        let (i, rest) = ((at - start) / size, (at - start) % size);
        (rest == 0 && i < self.chunks[c as usize].len()).then(|| ((c as usize) << SHIFT) + i)
    }

    /// The position of the element whose key is `key`, for elements sorted by `key_of`
    /// (ascending, no two equal): a binary search among the chunks by their first element,
    /// then within one. `None` when no element has that key; meaningless if they are not sorted.
    pub fn search_sorted<K: Ord>(&self, key: &K, key_of: impl Fn(&T) -> K) -> Option<usize> {
        let c = self.chunks.partition_point(|chunk| chunk.first().is_some_and(|x| key_of(x) <= *key)).checked_sub(1)?;
        let i = self.chunks[c].binary_search_by(|x| key_of(x).cmp(key)).ok()?;
        Some((c << SHIFT) + i)
    }

    /// Notes that chunk `c` may have moved from `before` (its address before a change).
    fn moved(&mut self, c: usize, before: Option<usize>) {
        let now = self.chunks[c].as_ptr() as usize;
        if before == Some(now) {
            return;
        }
        let table = Arc::make_mut(&mut self.by_address);
        if let Some(b) = before
            && let Ok(k) = table.binary_search(&(b, c as u32))
        {
            table.remove(k);
        }
        let entry = (now, u32::try_from(c).expect("fewer than 2^32 chunks"));
        let k = table.partition_point(|e| *e < entry);
        table.insert(k, entry);
    }
}

impl<T: Clone, const SHIFT: u32> Chunks<T, SHIFT> {
    /// Appends `v`: copies the last chunk first if another clone shares it.
    pub fn push(&mut self, v: T) {
        if self.len & Self::MASK == 0 {
            self.chunks.push(Arc::new(Vec::with_capacity(Self::SIZE)));
            self.moved(self.chunks.len() - 1, None);
        }
        let c = self.chunks.len() - 1;
        let before = self.chunks[c].as_ptr() as usize;
        Arc::make_mut(&mut self.chunks[c]).push(v);
        self.moved(c, Some(before));
        self.len += 1;
    }

    /// Element `i` to change, `None` past the end: copies its chunk first if another clone
    /// shares it.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let c = i >> SHIFT;
        let before = self.chunks[c].as_ptr() as usize;
        Arc::make_mut(&mut self.chunks[c]);
        self.moved(c, Some(before));
        Arc::get_mut(&mut self.chunks[c]).map(|v| &mut v[i & Self::MASK])
    }

    /// Calls `f` on every element to change it (copying the shared chunks), then gives back
    /// every chunk's spare capacity: after a bulk load.
    pub fn shrink_each(&mut self, mut f: impl FnMut(&mut T)) {
        for c in 0..self.chunks.len() {
            let before = self.chunks[c].as_ptr() as usize;
            let chunk = Arc::make_mut(&mut self.chunks[c]);
            chunk.iter_mut().for_each(&mut f);
            chunk.shrink_to_fit();
            self.moved(c, Some(before));
        }
    }
}

impl<T: Clone, const SHIFT: u32> FromIterator<T> for Chunks<T, SHIFT> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut out = Chunks::default();
        for v in iter {
            out.push(v);
        }
        out
    }
}

impl<T, const SHIFT: u32> std::ops::Index<usize> for Chunks<T, SHIFT> {
    type Output = T;

    /// Element `i`. Panics past the end, as a slice does.
    fn index(&self, i: usize) -> &T {
        assert!(i < self.len, "index {i} past the end ({})", self.len);
        &self.chunks[i >> SHIFT][i & Self::MASK]
    }
}

/// Number of shards of a [`ShardedMap`].
const SHARDS: usize = 256;

/// A map from `u64` record ids to `V` in 256 shards (by the id's low bits: record ids are
/// consecutive), each a sorted array of ids beside their values (12 bytes an entry for a `u32`,
/// where a hash table half full takes 32), behind an [`Arc`]: a clone copies 256 pointers, an
/// insertion copies the one shard it touches if another clone shares it. The ids of adoptions
/// come in increasing order (the store's order, and every new one is the largest): an insertion
/// is then a push, a lookup a binary search in a shard of a few thousand ids. An id out of
/// order moves the larger ids of its shard (the comments' feedback ids, few, come by adoption).
#[derive(Debug, Clone)]
pub struct ShardedMap<V> {
    shards: Vec<Arc<Shard<V>>>,
}

#[derive(Debug, Clone)]
struct Shard<V> {
    /// Sorted.
    ids: Vec<u64>,
    /// The value of `ids[k]` at `k`.
    values: Vec<V>,
}

impl<V> Default for Shard<V> {
    fn default() -> Self {
        Shard { ids: Vec::new(), values: Vec::new() }
    }
}

impl<V> Default for ShardedMap<V> {
    fn default() -> Self {
        ShardedMap { shards: (0..SHARDS).map(|_| Arc::default()).collect() }
    }
}

impl<V> ShardedMap<V> {
    fn shard(id: u64) -> usize {
        (id % SHARDS as u64) as usize
    }

    /// The value of `id`.
    pub fn get(&self, id: &u64) -> Option<&V> {
        let s = &self.shards[Self::shard(*id)];
        s.ids.binary_search(id).ok().map(|k| &s.values[k])
    }
}

impl<V: Clone> ShardedMap<V> {
    /// Sets the value of `id`, returning the one it replaces.
    pub fn insert(&mut self, id: u64, v: V) -> Option<V> {
        let s = Arc::make_mut(&mut self.shards[Self::shard(id)]);
        // The usual case first: a new id, larger than every other.
        let at = if s.ids.last().is_none_or(|&last| last < id) {
            s.ids.len()
        } else {
            match s.ids.binary_search(&id) {
                Ok(k) => return Some(std::mem::replace(&mut s.values[k], v)),
                Err(k) => k,
            }
        };
        s.ids.insert(at, id);
        s.values.insert(at, v);
        None
    }

    /// Gives back spare capacity (after a bulk load).
    pub fn shrink_to_fit(&mut self) {
        for s in &mut self.shards {
            let s = Arc::make_mut(s);
            s.ids.shrink_to_fit();
            s.values.shrink_to_fit();
        }
    }
}

/// A sequence of bits, appended at the end, that tells of each set bit how many set bits come
/// before it (its rank) in O(1), with one memory read: what maps the positions of a sparse
/// subset of a [`Chunks`] to a dense one. 16 bytes per 64 positions (the bits and the rank of
/// the first: about 250 KB for a million positions); a clone shares them, an append copies
/// them only when another clone shares them.
#[derive(Debug, Default, Clone)]
pub struct RankedBits {
    /// Per 64 positions: the number of set bits before them, and their bits.
    words: Arc<Vec<RankedWord>>,
    len: usize,
    ones: u32,
}

/// 64 bits of a [`RankedBits`] and the number of set bits before them.
#[derive(Debug, Default, Clone, Copy)]
struct RankedWord {
    before: u32,
    bits: u64,
}

impl RankedBits {
    /// Number of bits (set or not).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no bit.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of set bits.
    pub fn ones(&self) -> u32 {
        self.ones
    }

    /// Appends a bit; returns its rank when it is set. Panics past `u32::MAX` set bits.
    pub fn push(&mut self, bit: bool) -> Option<u32> {
        let p = self.len;
        if p.is_multiple_of(64) {
            Arc::make_mut(&mut self.words).push(RankedWord { before: self.ones, bits: 0 });
        }
        self.len += 1;
        if !bit {
            return None;
        }
        Arc::make_mut(&mut self.words)[p / 64].bits |= 1 << (p % 64);
        self.ones = self.ones.checked_add(1).expect("fewer than 2^32 set bits");
        Some(self.ones - 1)
    }

    /// The rank of position `p` (the number of set bits before it) when its bit is set; `None`
    /// when it is not or `p` is past the end.
    #[inline]
    pub fn rank(&self, p: usize) -> Option<u32> {
        let w = self.words.get(p / 64)?;
        let b = p % 64;
        ((w.bits >> b) & 1 == 1).then(|| w.before + (w.bits & ((1u64 << b) - 1)).count_ones())
    }

    /// Gives back the spare capacity (after a bulk load).
    pub fn shrink_to_fit(&mut self) {
        Arc::make_mut(&mut self.words).shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranked_bits_count_the_set_bits_before_each() {
        // Bits set at the multiples of 3 and 7 over 2,000 positions (32 words), each
        // rank checked against a plain count; a clone taken midway keeps its bits.
        let mut bits = RankedBits::default();
        let mut half = None;
        let set = |p: usize| p.is_multiple_of(3) || p.is_multiple_of(7);
        for p in 0..2_000 {
            let expected = (0..p).filter(|&q| set(q)).count() as u32;
            assert_eq!(bits.push(set(p)), set(p).then_some(expected), "push {p}");
            if p == 999 {
                half = Some(bits.clone());
            }
        }
        assert_eq!((bits.len(), bits.ones()), (2_000, (0..2_000).filter(|&q| set(q)).count() as u32));
        for p in 0..2_000 {
            let expected = (0..p).filter(|&q| set(q)).count() as u32;
            assert_eq!(bits.rank(p), set(p).then_some(expected), "rank {p}");
        }
        assert_eq!((bits.rank(2_000), bits.rank(1)), (None, None));
        let half = half.unwrap();
        assert_eq!((half.len(), half.rank(999), half.rank(1_001)), (1_000, Some((0..999).filter(|&q| set(q)).count() as u32), None));
        // The first five set, by hand: 0, 3, 6, 7 and 9.
        assert_eq!([0, 3, 6, 7, 9].map(|p| bits.rank(p)), [Some(0), Some(1), Some(2), Some(3), Some(4)]);
    }

    #[test]
    fn a_clone_keeps_its_values_while_the_other_changes() {
        let mut a: Chunks<u64, 2> = (0..10).collect();
        let b = a.clone();
        *a.get_mut(5).unwrap() = 50;
        a.push(10);
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 50, 6, 7, 8, 9, 10]);
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        assert_eq!((a.len(), b.len(), a[5], b[5], a.get(11), b.get(10)), (11, 10, 50, 5, None, None));
        // Only the touched chunks were copied: chunk 0 (0..4) is still shared.
        assert!(Arc::ptr_eq(&a.chunks[0], &b.chunks[0]));
        assert!(!Arc::ptr_eq(&a.chunks[1], &b.chunks[1]));
        assert!(!Arc::ptr_eq(&a.chunks[2], &b.chunks[2]));
    }

    #[test]
    fn an_element_is_found_by_its_address_in_either_clone() {
        let mut a: Chunks<(u64, u8), 3> = (0..100).map(|i| (i, 0)).collect();
        let b = a.clone();
        a.get_mut(42).unwrap().1 = 1;
        a.push((100, 0));
        for i in 0..a.len() {
            assert_eq!(a.position_of(&a[i]), Some(i));
        }
        for i in 0..b.len() {
            assert_eq!(b.position_of(&b[i]), Some(i));
        }
        // The copied chunk's old element belongs to `b` only; a value held elsewhere to neither.
        assert_eq!(a.position_of(&b[42]), None);
        assert_eq!(b.position_of(&a[42]), None);
        assert_eq!(a.position_of(&b[41]), None, "chunk 5 (40..48) was copied in a");
        assert_eq!(a.position_of(&b[0]), Some(0), "chunk 0 is shared");
        assert_eq!(a.position_of(&(3, 0)), None);
    }

    #[test]
    fn a_sharded_map_clone_keeps_its_values() {
        let mut a: ShardedMap<u32> = ShardedMap::default();
        for id in 1..1000u64 {
            a.insert(id, id as u32 * 2);
        }
        // After, before and between the ids of their shard (0, 2,560 and 1,280 share one).
        for id in [100_000u64, 0, 2_560, 1_280] {
            assert_eq!(a.insert(id, 3), None);
        }
        assert_eq!((a.get(&0), a.get(&100_000), a.get(&1_280), a.get(&2_560), a.get(&1_536)), (Some(&3), Some(&3), Some(&3), Some(&3), None));
        for id in [100_000u64, 0, 2_560, 1_280] {
            assert_eq!(a.insert(id, 0), Some(3));
        }
        let b = a.clone();
        assert_eq!(a.insert(7, 0), Some(14));
        a.insert(5000, 1);
        assert_eq!(
            (a.get(&7), b.get(&7), a.get(&5000), b.get(&5000), a.get(&999), b.get(&1_280)),
            (Some(&0), Some(&14), Some(&1), None, Some(&1_998), Some(&0))
        );
    }
}
