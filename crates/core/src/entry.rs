//! A cache entry: the node readers reach through the index, and how a
//! reader and the shard lock's holder share its value and deadline.

use std::marker::PhantomData;

use crate::sync::{Arc, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// A deadline meaning "never expires".
pub(crate) const NEVER: u64 = u64::MAX;

/// One cache entry as readers see it. Nodes live in the shard's arena
/// (see `arena`), so a node's address is fixed from the insert that places
/// it until the epoch after its removal.
///
/// `repr(C)` in the order a lookup touches fields: it reads `hash` and
/// `key`, then `deadline` and `value` (and writes `stamp` when its
/// thread's access buffer is full); the writers' `placed` sits in the
/// room before the key. With a 32-byte key, or a 33-byte one (an id with
/// its length, as the policy layer's session ids are), the node is 64
/// bytes, one cache line in the arena. Its slot is not stored: the
/// index entry that leads to a node names it, and so do the LRU list and
/// the wheel.
///
/// A store to a key that is present replaces the value and deadline in
/// place (see [`Node::replace`]); readers load them as [`Node::get`]
/// says, so that whichever value they get, they judge it by a deadline no
/// later than its own.
#[repr(C)]
pub(crate) struct Node<K, V: ?Sized + Thin> {
    /// The low half of the newest access stamp that did not fit its
    /// thread's buffer (see `access` and `lru`; `widen` restores the rest);
    /// written by readers, `Relaxed`: it only orders evictions and a stale
    /// read makes one less exact.
    pub(crate) stamp: AtomicU32,
    /// The low half of the key's hash: its tag and group in the index.
    /// Writers find the node's entry by it and rebuild the index from it;
    /// readers compare it before the key (the index keeps only seven bits
    /// of it).
    pub(crate) hash: u32,
    /// The low half of the stamp the LRU list placed the node by (its
    /// *list stamp*, widened again against the list's newest, see `lru`).
    /// Only the shard lock's holder reads or writes it. Here, before the
    /// key, it takes room the key's alignment leaves: with a 33-byte key
    /// (a session id and its length) a full stamp after the deadline made
    /// the node 72 bytes, and most nodes then spanned two lines.
    pub(crate) placed: AtomicU32,
    pub(crate) key: K,
    /// The value's address, from `Arc::into_raw` (made whole again by
    /// [`Thin::from_thin`]): the node holds one strong count. A value
    /// replaced in place is dropped through the epoch collector, so a
    /// reader that loaded it can still take its own count.
    value: AtomicPtr<u8>,
    _value: PhantomData<Arc<V>>,
    /// Clock nanoseconds at which the entry expires; `u64::MAX` is never.
    deadline: AtomicU64,
}

/// A value type the cache can hold: one whose `Arc` pointer can be kept
/// as its address alone, in one atomic word, and made whole again.
///
/// Every sized type is one. An unsized type is one if its pointer's
/// metadata can be read back from the value itself: a record that ends in
/// a byte slice and keeps that slice's length in its fixed part, so that
/// the whole record can live in one allocation.
///
/// # Safety
///
/// For every `arc: Arc<Self>`, while `arc`'s value is alive,
/// `from_thin(Arc::into_raw(arc).cast())` must return the very pointer
/// `Arc::into_raw(arc)` returned, metadata included.
pub unsafe trait Thin {
    /// The full pointer to the value at `thin`.
    ///
    /// # Safety
    ///
    /// `thin` is the address of a live `Self` that an `Arc` holds.
    unsafe fn from_thin(thin: *const u8) -> *const Self;

    /// What a cache does with its handle on a value it has removed (or
    /// replaced, or evicted), once no reader can take a count from it any
    /// more: by default, drops it.
    ///
    /// A type whose values are dear to free and allocate again may keep
    /// the memory for its next value instead (see
    /// [`Tailed::renew`](crate::Tailed::renew)), when this handle turns
    /// out to be the last ([`Arc::get_mut`] says so): other handles on the
    /// value may still be out, the cache's is only one of them. It runs
    /// wherever the value's drop would have run: on the thread that
    /// collected it, most often in one of that thread's writes once it has
    /// released its shard's lock, or as the cache drops.
    #[inline]
    fn release(value: Arc<Self>) {
        drop(value);
    }
}

// SAFETY: a pointer to a sized type is its address alone.
unsafe impl<T> Thin for T {
    #[inline]
    unsafe fn from_thin(thin: *const u8) -> *const T {
        thin.cast()
    }
}

/// The address `Arc::into_raw(value)` gives, which takes the count.
#[inline]
fn into_thin<V: ?Sized + Thin>(value: Arc<V>) -> *mut u8 {
    Arc::into_raw(value).cast::<u8>().cast_mut()
}

impl<K, V: ?Sized + Thin> Node<K, V> {
    /// A node first placed by `stamp`.
    pub(crate) fn new(key: K, value: Arc<V>, deadline: u64, stamp: u64, hash: u32) -> Self {
        Self {
            // Truncation intended: see the field.
            stamp: AtomicU32::new(stamp as u32),
            hash,
            placed: AtomicU32::new(stamp as u32),
            key,
            value: AtomicPtr::new(into_thin(value)),
            _value: PhantomData,
            deadline: AtomicU64::new(deadline),
        }
    }

    /// The value and a deadline to judge it by, for a reader: the earlier
    /// of the deadlines loaded before and after the value. A replacement
    /// (see [`Node::replace`]) lowers the deadline to the earlier of the
    /// old and new ones before it swaps the value, and sets the new one
    /// after, so:
    /// - a reader that gets the old value loaded, before it, a deadline
    ///   the replacement had not yet raised past the old one (had it seen
    ///   the raise, its `Acquire` would have shown it the new value);
    /// - a reader that gets the new value loads, after it, at least the
    ///   lowered deadline, which is no later than the new one.
    ///
    /// Either way the deadline is no later than the value's own; it may be
    /// earlier only while a replacement runs, and then the entry is
    /// expired at one side of that replacement, where the read can take
    /// its place.
    ///
    /// The pointer is valid while the caller's epoch guard stays pinned:
    /// a value leaves a node only to the epoch collector, or with the
    /// node.
    #[inline]
    pub(crate) fn get(&self) -> (*const u8, u64) {
        // Acquire pairs with the Release stores of `replace`.
        let before = self.deadline.load(Ordering::Acquire);
        let value = self.value.load(Ordering::Acquire);
        // After the value's Acquire load, so it sees at least the lowered
        // deadline of the replacement that stored the value.
        let after = self.deadline.load(Ordering::Relaxed);
        (value, before.min(after))
    }

    /// A new handle on the value at `thin`, as [`get`](Self::get) loaded
    /// it.
    ///
    /// # Safety
    ///
    /// `thin` is a value this node held, and its count has not been
    /// released: the caller's guard was pinned when `get` loaded it, or
    /// the caller holds the shard lock.
    #[inline]
    pub(crate) unsafe fn share(thin: *const u8) -> Arc<V> {
        // SAFETY: per the contract the value is alive and `thin` is its
        // address from `Arc::into_raw`, which `from_thin` makes whole.
        unsafe {
            let p = V::from_thin(thin);
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }

    /// A new handle on the value. Caller holds the shard lock (or the node
    /// is retired and its guard pinned), so the value cannot change.
    pub(crate) fn value(&self) -> Arc<V> {
        let p = self.value.load(Ordering::Relaxed);
        // SAFETY: the node still holds its count on `p` (the caller's lock
        // or guard keeps it from being released).
        unsafe { Self::share(p) }
    }

    /// Calls `f` with the value, borrowed. As for `value`.
    pub(crate) fn with_value<R>(&self, f: impl FnOnce(&Arc<V>) -> R) -> R {
        let p = self.value.load(Ordering::Relaxed);
        // SAFETY: as in `value`; `ManuallyDrop` leaves the node's count
        // alone.
        let held = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(V::from_thin(p)) });
        f(&held)
    }

    /// The deadline, for the shard lock's holder.
    #[inline]
    pub(crate) fn deadline(&self) -> u64 {
        self.deadline.load(Ordering::Relaxed)
    }

    /// Replaces the value and deadline in place and returns the old value,
    /// whose release the caller must defer past every pinned reader (one
    /// may be about to take a count on it). Caller holds the shard lock.
    /// The order of the three stores is what `get` relies on.
    pub(crate) fn replace(&self, value: Arc<V>, deadline: u64) -> Arc<V> {
        let old = self.deadline.load(Ordering::Relaxed);
        self.deadline.store(old.min(deadline), Ordering::Release);
        // A load and a store, not a swap: only the lock's holder writes the
        // value, so nothing can come between them, and a locked
        // read-modify-write would cost a write its slowest instruction.
        let p = self.value.load(Ordering::Relaxed);
        self.value.store(into_thin(value), Ordering::Release);
        self.deadline.store(deadline, Ordering::Release);
        // SAFETY: `p` is from `Arc::into_raw`, made whole by `from_thin`
        // while the node's count keeps it alive, and that count passes to
        // the returned handle.
        unsafe { Arc::from_raw(V::from_thin(p)) }
    }

    /// Moves the node's count on its value out, as a handle.
    ///
    /// # Safety
    ///
    /// Called once, as the node's contents are dropped, when no reader can
    /// reach the node; the node's value is not used again.
    pub(crate) unsafe fn take_value(&self) -> Arc<V> {
        // SAFETY: per the contract, the node's count passes to the handle
        // once; `from_thin` makes the pointer whole.
        unsafe { Arc::from_raw(V::from_thin(self.value.load(Ordering::Relaxed))) }
    }

    /// Releases the node's count on its value.
    ///
    /// # Safety
    ///
    /// Called once, as the node's contents are dropped, when no reader can
    /// reach the node.
    pub(crate) unsafe fn release_value(&self) {
        // SAFETY: per the contract, the node's count is taken out once.
        V::release(unsafe { self.take_value() });
    }

    /// Whether the entry has a deadline at all. For the lock's holder.
    #[inline]
    pub(crate) fn expires(&self) -> bool {
        self.deadline() != NEVER
    }

    /// Whether the entry has expired at `now` (clock nanoseconds). For the
    /// lock's holder.
    #[inline]
    pub(crate) fn expired(&self, now: u64) -> bool {
        expired(self.deadline(), now)
    }
}

impl<K, V: ?Sized + Thin> Drop for Node<K, V> {
    fn drop(&mut self) {
        // SAFETY: the node is being dropped whole, so nothing reaches it.
        unsafe { self.release_value() }
    }
}

/// Whether an entry with `deadline` has expired at `now`.
#[inline]
pub(crate) fn expired(deadline: u64, now: u64) -> bool {
    now >= deadline && deadline != NEVER
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_node_with_a_session_id_key_fills_one_line() {
        assert_eq!(std::mem::size_of::<Node<[u8; 32], Vec<u8>>>(), 64);
        // A session id with its length (the policy layer's key).
        assert_eq!(std::mem::size_of::<Node<(u8, [u8; 32]), Vec<u8>>>(), 64);
    }
}
