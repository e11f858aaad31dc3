//! Heap bytes per session, measured by a counting allocator that the
//! binary installs and that counts only while a probe runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::workload::{session_id, Workload};
use tlscache_engines::EngineKind;

/// The system allocator, counting live bytes while [`probe`] runs. Outside
/// a probe it costs one relaxed load per call, so timed runs are not
/// disturbed.
pub struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn count(delta: i64) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds
// `GlobalAlloc`'s contract; the counting around it touches only atomics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        INSTALLED.store(true, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's pointer, layout and size.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Heap bytes per session of an engine of `kind` filled to the workload's
/// capacity with distinct sessions (their shared states counted only where
/// the engine copies them), or `None` when [`CountingAlloc`] is not the
/// global allocator, or for OpenSSL's cache, which allocates through
/// libcrypto's `malloc` where a Rust allocator does not see it.
pub fn probe(kind: EngineKind, w: &Workload) -> Option<f64> {
    if !INSTALLED.load(Ordering::Relaxed) || kind == EngineKind::Openssl {
        return None;
    }
    let states = w.states();
    settle_epoch_garbage();
    LIVE.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let engine = kind.build(w.capacity, w.timeout).ok()?;
    for c in 0..w.capacity as u32 {
        engine.store(
            session_id(c),
            &states[c as usize % states.len()],
            Duration::from_secs(3600),
        );
    }
    let held = engine.sessions().unwrap_or(w.capacity as u64).max(1);
    let bytes = LIVE.load(Ordering::Relaxed);
    COUNTING.store(false, Ordering::SeqCst);
    drop(engine);
    Some(bytes as f64 / held as f64)
}

/// Frees what earlier runs left to crossbeam-epoch's global collector
/// (tlscache's retired nodes and arenas), so those frees are not counted
/// against the engine under probe. The earlier runs' threads have ended,
/// so nothing pinned holds the epoch back.
fn settle_epoch_garbage() {
    for _ in 0..16 {
        crossbeam_epoch::pin().flush();
    }
}
