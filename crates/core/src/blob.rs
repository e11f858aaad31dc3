//! A byte string in one allocation: a cache value for bytes.

use std::fmt;
use std::mem::MaybeUninit;

use crate::entry::Thin;
use crate::sync::Arc;

/// A byte string in one allocation: its length, then its bytes. As a
/// cache's value it costs one allocation where an `Arc<Vec<u8>>` costs
/// two (the `Arc` with the vector's header, and the bytes), which is the
/// difference between one cold line to free and two when it leaves.
///
/// ```
/// use tlscache_core::{Blob, Cache};
///
/// let cache: Cache<u32, Blob> = Cache::builder().capacity(100).build()?;
/// cache.put(1, Blob::new(b"session state"));
/// let hit = cache.get(&1).expect("just stored");
/// assert_eq!(&**hit, b"session state");
/// # Ok::<(), tlscache_core::BuildError>(())
/// ```
#[repr(C)]
pub struct Blob {
    len: usize,
    bytes: [u8],
}

impl Blob {
    /// A blob holding a copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Arc<Blob> {
        const WORD: usize = size_of::<usize>();
        // A blob's size: its length word and its bytes, rounded up to the
        // word's alignment. So it is exactly `words` words.
        let words = (WORD + bytes.len()).div_ceil(WORD);
        let memory: Arc<[MaybeUninit<usize>]> = Arc::new_uninit_slice(words);
        let data = Arc::into_raw(memory) as *mut MaybeUninit<usize> as *mut u8;
        let blob = std::ptr::slice_from_raw_parts_mut(data, bytes.len()) as *mut Blob;
        // SAFETY: `data` is `words * WORD` writable bytes, aligned for
        // `usize`, that nothing else reaches (the `Arc` was just made and
        // its count went into the raw pointer): the length word first,
        // then `bytes.len()` bytes, which fit by the choice of `words`.
        unsafe {
            std::ptr::addr_of_mut!((*blob).len).write(bytes.len());
            let to = std::ptr::addr_of_mut!((*blob).bytes) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), to, bytes.len());
        }
        // SAFETY: the blob is initialized (what follows its bytes is
        // padding), and the pointer is from `Arc::into_raw` of data of the
        // same size (`words * WORD`, the blob's `size_of_val`) and
        // alignment (`usize`'s), so `Arc<Blob>` finds its counts where
        // they are and frees the allocation with the layout it was made
        // with.
        unsafe { Arc::from_raw(blob) }
    }
}

impl std::ops::Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob(<{} bytes>)", self.bytes.len())
    }
}

// SAFETY: a blob's pointer metadata is its bytes' length, which `new`
// writes at the blob's address before the blob is shared; nothing changes
// it after.
unsafe impl Thin for Blob {
    #[inline]
    unsafe fn from_thin(thin: *const u8) -> *const Blob {
        // SAFETY: the caller's guarantee: a live blob at `thin`, whose
        // length word sits at that address.
        let len = unsafe { *thin.cast::<usize>() };
        std::ptr::slice_from_raw_parts(thin, len) as *const Blob
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_its_bytes_in_an_allocation_of_its_size() {
        for len in 0..=40 {
            let bytes: Vec<u8> = (0..len as u8).collect();
            let blob = Blob::new(&bytes);
            assert_eq!(&blob[..], &bytes[..]);
            let words = (size_of::<usize>() + len).div_ceil(size_of::<usize>());
            assert_eq!(size_of_val(&*blob), words * size_of::<usize>());
            let full = Arc::as_ptr(&blob);
            // SAFETY: the address of a live blob, held by an `Arc`.
            let back = unsafe { <Blob as Thin>::from_thin(full.cast()) };
            assert!(std::ptr::eq(back, full));
        }
    }
}
