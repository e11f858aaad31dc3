//! Records in one allocation: a fixed head, then bytes of any length.

use std::fmt;
use std::mem::MaybeUninit;

use crate::entry::Thin;
use crate::sync::Arc;

/// A record in one allocation: the length of its bytes, a fixed head `H`,
/// then the bytes. As a cache's value it costs one allocation where a
/// head beside an `Arc<Vec<u8>>` costs two or three, which is the
/// difference between one cold line to free and several when it leaves.
/// It is [`Thin`], so a [`Cache`](crate::Cache) holds it; [`Blob`] is the
/// one without a head.
///
/// ```
/// use tlscache_core::{Cache, Tailed};
///
/// let cache: Cache<u32, Tailed<u64>> = Cache::builder().capacity(100).build()?;
/// cache.put(1, Tailed::new(7, &[b"session ", b"state"]));
/// let hit = cache.get(&1).expect("just stored");
/// assert_eq!((*hit.head(), hit.bytes()), (7, &b"session state"[..]));
/// # Ok::<(), tlscache_core::BuildError>(())
/// ```
#[repr(C)]
pub struct Tailed<H> {
    len: usize,
    head: H,
    bytes: [u8],
}

/// `Tailed<H>` with no bytes, sized, for its fields' offsets: `repr(C)`
/// places them alike (a byte array needs no padding either way).
#[repr(C)]
struct Fixed<H> {
    len: usize,
    head: H,
    bytes: [u8; 0],
}

/// The bytes' length of a record whose fixed part is `at` bytes and whose
/// parts are `lens` long, if the record stays within `isize::MAX` bytes.
fn record_len(at: usize, mut lens: impl Iterator<Item = usize>) -> Option<usize> {
    let len = lens.try_fold(0usize, usize::checked_add)?;
    at.checked_add(len)
        .filter(|&n| n <= isize::MAX as usize)
        .map(|_| len)
}

/// A byte string in one allocation: its length, then its bytes.
///
/// ```
/// use tlscache_core::{Blob, Cache};
///
/// let cache: Cache<u32, Blob> = Cache::builder().capacity(100).build()?;
/// cache.put(1, Blob::from_bytes(b"session state"));
/// let hit = cache.get(&1).expect("just stored");
/// assert_eq!(&**hit, b"session state");
/// # Ok::<(), tlscache_core::BuildError>(())
/// ```
pub type Blob = Tailed<()>;

impl<H> Tailed<H> {
    const WORD: usize = size_of::<usize>();

    /// Where the bytes start: the size of the fixed part.
    const AT: usize = {
        assert!(
            align_of::<H>() <= Self::WORD,
            "a Tailed head aligned past a usize"
        );
        std::mem::offset_of!(Fixed<H>, bytes)
    };

    /// The bytes' length of a record of `parts`.
    ///
    /// # Panics
    ///
    /// If the record would be larger than `isize::MAX` bytes.
    fn len_of(parts: &[&[u8]]) -> usize {
        // Checked: a wrapped length would make the record smaller than the
        // copies into it.
        record_len(Self::AT, parts.iter().map(|p| p.len()))
            .expect("capacity overflow: a Tailed record past isize::MAX bytes")
    }

    /// The words a record of `len` bytes takes: its fixed part and its
    /// bytes, rounded up to its alignment (a `usize`'s, by the check in
    /// `AT`).
    fn words_for(len: usize) -> usize {
        (Self::AT + len).div_ceil(Self::WORD)
    }

    /// A record of `head` followed by each of `parts`, back to back.
    ///
    /// A head aligned beyond a `usize` (rare: a SIMD type) is refused
    /// where this is compiled.
    ///
    /// # Panics
    ///
    /// If the record would be larger than `isize::MAX` bytes, as `Vec`
    /// and `Arc` do for a slice that large (the parts may name the same
    /// bytes many times, so their total is checked, not assumed).
    pub fn new(head: H, parts: &[&[u8]]) -> Arc<Self> {
        Self::allocate(head, parts, Self::len_of(parts))
    }

    /// A record like [`new`](Self::new)'s, made in `spare`'s memory when
    /// there is a `spare`, its handle is the only one on its record, and
    /// the new record takes the same memory (see [`fits`](Self::fits));
    /// otherwise `spare` is dropped and the record allocated, as `new`
    /// does. For a value type that keeps the records a cache lets go of
    /// (see [`Thin::release`]) and fills them again without a free and an
    /// allocation. `spare`'s head is dropped, and all of its bytes are
    /// overwritten (what follows the new ones with zeros).
    ///
    /// ```
    /// use tlscache_core::{Arc, Tailed};
    ///
    /// let spare = Tailed::new(1u32, &[b"old bytes"]);
    /// let at = Arc::as_ptr(&spare).cast::<u8>();
    /// let record = Tailed::renew(Some(spare), 2, &[b"new", b" byte"]);
    /// assert_eq!((*record.head(), record.bytes()), (2, &b"new byte"[..]));
    /// assert_eq!(Arc::as_ptr(&record).cast::<u8>(), at);
    /// ```
    ///
    /// # Panics
    ///
    /// As `new` does.
    pub fn renew(spare: Option<Arc<Self>>, head: H, parts: &[&[u8]]) -> Arc<Self> {
        let len = Self::len_of(parts);
        let Some(mut spare) = spare.filter(|spare| spare.fits(len)) else {
            return Self::allocate(head, parts, len);
        };
        let Some(old) = Arc::get_mut(&mut spare) else {
            return Self::allocate(head, parts, len);
        };
        old.head = head;
        // The new length changes the pointer's metadata: from here on the
        // record is reached through a raw pointer with it.
        let data = Arc::into_raw(spare).cast_mut().cast::<u8>();
        let record = std::ptr::slice_from_raw_parts_mut(data, len) as *mut Self;
        // SAFETY: `spare` was the record's only handle (`get_mut`), and its
        // count went into the raw pointer, so nothing else reaches `data`:
        // `words_for(len)` writable words (`fits`), aligned for the record,
        // whose head is initialized.
        unsafe { Self::fill(record, len, parts) };
        // SAFETY: the record is initialized, and the pointer is from
        // `Arc::into_raw` of a record of the same size (`fits`) and
        // alignment, so the `Arc` finds its counts where they are and
        // frees the allocation with the layout it was made with.
        unsafe { Arc::from_raw(record) }
    }

    /// A new record of `head` and `parts`, `len` bytes long, which `len_of`
    /// checked.
    fn allocate(head: H, parts: &[&[u8]], len: usize) -> Arc<Self> {
        let memory: Arc<[MaybeUninit<usize>]> = Arc::new_uninit_slice(Self::words_for(len));
        let data = Arc::into_raw(memory) as *mut MaybeUninit<usize> as *mut u8;
        let record = std::ptr::slice_from_raw_parts_mut(data, len) as *mut Self;
        // SAFETY: `data` is `words_for(len)` writable words, aligned for
        // `usize` and so for the record, that nothing else reaches (the
        // `Arc` was just made and its count went into the raw pointer).
        unsafe {
            std::ptr::addr_of_mut!((*record).head).write(head);
            Self::fill(record, len, parts);
        }
        // SAFETY: the record is initialized (what follows its bytes is
        // padding), and the pointer is from `Arc::into_raw` of data of the
        // same size (`words_for(len)` words, the record's `size_of_val`)
        // and alignment (`usize`'s), so `Arc<Self>` finds its counts where
        // they are and frees the allocation with the layout it was made
        // with.
        unsafe { Arc::from_raw(record) }
    }

    /// Writes `record`'s length `len` (its pointer's metadata), its bytes
    /// from `parts`, and zeros in the padding after them.
    ///
    /// # Safety
    ///
    /// `record` points to `words_for(len)` words, aligned for the record,
    /// that this thread alone may write; `len` is its metadata and `parts`'
    /// total length.
    unsafe fn fill(record: *mut Self, len: usize, parts: &[&[u8]]) {
        // SAFETY: per the contract: the length and `len` bytes from offset
        // `AT`, then the padding up to `words_for(len)` words, are within
        // the record's memory; `parts` add up to `len` bytes.
        unsafe {
            std::ptr::addr_of_mut!((*record).len).write(len);
            let mut to = std::ptr::addr_of_mut!((*record).bytes) as *mut u8;
            for part in parts {
                std::ptr::copy_nonoverlapping(part.as_ptr(), to, part.len());
                to = to.add(part.len());
            }
            let end = Self::words_for(len) * Self::WORD;
            to.write_bytes(0, end - Self::AT - len);
        }
    }

    /// Whether a record of `len` bytes takes exactly this one's memory,
    /// so that [`renew`](Self::renew) can make it here.
    pub fn fits(&self, len: usize) -> bool {
        Self::size_for(len) == Some(size_of_val(self))
    }

    /// The bytes a record of `len` bytes takes (its `size_of_val`), or
    /// `None` if it would be larger than `isize::MAX` bytes.
    pub fn size_for(len: usize) -> Option<usize> {
        record_len(Self::AT, std::iter::once(len))?;
        Some(Self::words_for(len) * Self::WORD)
    }

    /// The head.
    pub fn head(&self) -> &H {
        &self.head
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The head, to change in place.
    pub fn head_mut(&mut self) -> &mut H {
        &mut self.head
    }

    /// The bytes, to change in place (for instance to zeroize them as the
    /// record drops).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl Blob {
    /// A blob holding a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Arc<Blob> {
        Tailed::new((), &[bytes])
    }
}

impl std::ops::Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl<H: fmt::Debug> fmt::Debug for Tailed<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tailed")
            .field("head", &self.head)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .finish()
    }
}

// SAFETY: a record's pointer metadata is its bytes' length, which `new`
// and `renew` write at the record's address (`len` is its first field)
// before the record is shared, and which changes only in `renew`, while
// no other handle exists.
unsafe impl<H> Thin for Tailed<H> {
    #[inline]
    unsafe fn from_thin(thin: *const u8) -> *const Self {
        // SAFETY: the caller's guarantee: a live record at `thin`, whose
        // length sits at that address.
        let len = unsafe { *thin.cast::<usize>() };
        std::ptr::slice_from_raw_parts(thin, len) as *const Self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<H: PartialEq + fmt::Debug>(record: &Arc<Tailed<H>>, head: &H, bytes: &[u8]) {
        assert_eq!((record.head(), record.bytes()), (head, bytes));
        let at = std::mem::offset_of!(Fixed<H>, bytes);
        let words = (at + bytes.len()).div_ceil(size_of::<usize>());
        assert_eq!(size_of_val(&**record), words * size_of::<usize>());
        let full = Arc::as_ptr(record);
        // SAFETY: the address of a live record, held by an `Arc`.
        let back = unsafe { <Tailed<H> as Thin>::from_thin(full.cast()) };
        assert!(std::ptr::eq(back, full));
    }

    #[test]
    fn a_record_is_its_head_and_parts_in_an_allocation_of_its_size() {
        for len in 0..=40 {
            let bytes: Vec<u8> = (0..len as u8).collect();
            let blob = Blob::from_bytes(&bytes);
            assert_eq!(&blob[..], &bytes[..]);
            check(&blob, &(), &bytes);
            let (a, b) = bytes.split_at(len / 3);
            check(&Tailed::new(0xABu8, &[a, b]), &0xAB, &bytes);
            check(&Tailed::new([7u64; 3], &[a, &[], b]), &[7; 3], &bytes);
        }
    }

    #[test]
    fn renew_fills_a_lone_record_of_the_same_size_and_allocates_otherwise() {
        let at = std::mem::offset_of!(Fixed<u32>, bytes);
        // Lengths 0 to 7 past a word boundary take the same words.
        let same = |len: usize| (at + len).div_ceil(8);
        for (old, new) in [(5, 5), (5, 3), (0, 7 - at % 8), (8, 9), (30, 2)] {
            let old_bytes = vec![0xA5u8; old];
            let spare = Tailed::new(1u32, &[&old_bytes]);
            let place = Arc::as_ptr(&spare).cast::<u8>();
            let new_bytes: Vec<u8> = (0..new as u8).collect();
            let (a, b) = new_bytes.split_at(new / 2);
            let record = Tailed::renew(Some(spare), 2, &[a, b]);
            check(&record, &2, &new_bytes);
            // Made in the spare's memory when the sizes match. (When they
            // do not, the allocator may hand the freed spare's memory back,
            // so the address says nothing then.)
            if same(old) == same(new) {
                let reused = std::ptr::eq(Arc::as_ptr(&record).cast::<u8>(), place);
                assert!(reused, "{old} then {new} bytes");
            }
            assert_eq!(record.fits(old), same(old) == same(new));
            // The padding after the new bytes is zero, not the old ones.
            let whole = size_of_val(&*record);
            // SAFETY: the record's own `whole` bytes, all initialized (the
            // padding by `fill`), read while its `Arc` holds it.
            let memory =
                unsafe { std::slice::from_raw_parts(Arc::as_ptr(&record).cast::<u8>(), whole) };
            assert!(memory[at + new..].iter().all(|&b| b == 0));
        }
        // A record with another handle out is left as it is.
        let spare = Tailed::new(1u32, &[b"held"]);
        let held = Arc::clone(&spare);
        let record = Tailed::renew(Some(spare), 2, &[b"mine"]);
        assert!(!Arc::ptr_eq(&record, &held));
        check(&held, &1, b"held");
        check(&record, &2, b"mine");
        // A length no record can have fits none.
        assert!(!held.fits(usize::MAX));
        assert_eq!(Tailed::<u32>::size_for(usize::MAX), None);
        assert_eq!(
            Tailed::<u32>::size_for(3),
            Some(size_of_val(&*Tailed::new(0u32, &[b"abc"])))
        );
    }

    #[test]
    fn renew_drops_the_spares_head() {
        let count = Arc::new(());
        let spare = Tailed::new(Arc::clone(&count), &[b"x"]);
        let record = Tailed::renew(Some(spare), Arc::new(()), &[b"y"]);
        assert_eq!(Arc::strong_count(&count), 1);
        drop(record);
    }

    #[test]
    fn a_total_past_isize_max_or_wrapping_is_no_record_length() {
        // Lengths alone: slices this long cannot be made in a test, but
        // many names of one slice can add up to them.
        let max = isize::MAX as usize;
        assert_eq!(record_len(8, [3, 4].into_iter()), Some(7));
        assert_eq!(record_len(8, [max - 8].into_iter()), Some(max - 8));
        assert_eq!(record_len(8, [max - 7].into_iter()), None);
        assert_eq!(record_len(8, [usize::MAX, 2].into_iter()), None);
        assert_eq!(record_len(0, [max, max, max].into_iter()), None);
    }
}
