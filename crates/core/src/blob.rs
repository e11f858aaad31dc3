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
        const WORD: usize = size_of::<usize>();
        const {
            assert!(
                align_of::<H>() <= WORD,
                "a Tailed head aligned past a usize"
            )
        };
        let at = std::mem::offset_of!(Fixed<H>, bytes);
        // Checked: a wrapped length would make the allocation smaller than
        // the copies below.
        let len = record_len(at, parts.iter().map(|p| p.len()))
            .expect("capacity overflow: a Tailed record past isize::MAX bytes");
        // A record's size: its fixed part and its bytes, rounded up to its
        // alignment (a `usize`'s, by the check above). So it is exactly
        // `words` words.
        let words = (at + len).div_ceil(WORD);
        let memory: Arc<[MaybeUninit<usize>]> = Arc::new_uninit_slice(words);
        let data = Arc::into_raw(memory) as *mut MaybeUninit<usize> as *mut u8;
        let record = std::ptr::slice_from_raw_parts_mut(data, len) as *mut Self;
        // SAFETY: `data` is `words * WORD` writable bytes, aligned for
        // `usize` and so for the record, that nothing else reaches (the
        // `Arc` was just made and its count went into the raw pointer):
        // the length and the head, then `len` bytes from offset `at`,
        // which fit by the choice of `words`.
        unsafe {
            std::ptr::addr_of_mut!((*record).len).write(len);
            std::ptr::addr_of_mut!((*record).head).write(head);
            let mut to = std::ptr::addr_of_mut!((*record).bytes) as *mut u8;
            for part in parts {
                std::ptr::copy_nonoverlapping(part.as_ptr(), to, part.len());
                to = to.add(part.len());
            }
        }
        // SAFETY: the record is initialized (what follows its bytes is
        // padding), and the pointer is from `Arc::into_raw` of data of the
        // same size (`words * WORD`, the record's `size_of_val`) and
        // alignment (`usize`'s), so `Arc<Self>` finds its counts where
        // they are and frees the allocation with the layout it was made
        // with.
        unsafe { Arc::from_raw(record) }
    }

    /// The head.
    pub fn head(&self) -> &H {
        &self.head
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
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
// writes at the record's address (`len` is its first field) before the
// record is shared; nothing changes it after.
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
