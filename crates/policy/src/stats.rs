//! Counters mirroring OpenSSL's `SSL_CTX_sess_*` family.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// The counters, read together by [`SessionCache::stats`](crate::SessionCache::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// `SSL_CTX_sess_number`: sessions in the internal cache, expired ones
    /// not yet flushed included.
    pub number: u64,
    /// `SSL_CTX_sess_connect`: client handshakes started.
    pub connect: u64,
    /// `SSL_CTX_sess_connect_good`: client handshakes finished.
    pub connect_good: u64,
    /// `SSL_CTX_sess_accept`: server handshakes started.
    pub accept: u64,
    /// `SSL_CTX_sess_accept_good`: server handshakes finished.
    pub accept_good: u64,
    /// `SSL_CTX_sess_hits`: sessions resumed: server lookups that found a
    /// usable session (internally or externally), stateless resumptions
    /// reported as [`Handshake::ResumedStateless`](crate::Handshake::ResumedStateless),
    /// and client resumptions. A found session the stack then refuses is
    /// counted all the same, unless the cache made the check
    /// ([`lookup_once_version`](crate::SessionCache::lookup_once_version)).
    pub hits: u64,
    /// `SSL_CTX_sess_cb_hits`: sessions the external store supplied.
    pub cb_hits: u64,
    /// `SSL_CTX_sess_misses`: internal lookups that found nothing.
    pub misses: u64,
    /// `SSL_CTX_sess_timeouts`: sessions found but expired.
    pub timeouts: u64,
    /// `SSL_CTX_sess_cache_full`: sessions evicted to make room.
    pub cache_full: u64,
    /// External store calls that failed or panicked (not in OpenSSL).
    pub external_errors: u64,
    /// External store calls slower than the cache's budget (not in OpenSSL).
    pub external_slow: u64,
    /// Peers with client sessions in the per-peer store (not in OpenSSL).
    pub client_peers: u64,
}

/// The counters bumped on every lookup, striped so that cores do not fight
/// over one cache line.
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    Connect,
    Accept,
    Hits,
    CbHits,
    Misses,
    Timeouts,
    CacheFull,
    ExternalErrors,
    ExternalSlow,
}

const STRIPED: usize = 9;

/// The most own stripes: beyond this, summing for a snapshot costs more
/// than the contention it saves.
const MAX_STRIPES: usize = 64;

/// The counters, in `own` own stripes and as many shared ones, as
/// [`tlscache_core::thread_stripe`] picks them.
pub(crate) struct Counters {
    stripes: Box<[CachePadded<[AtomicU64; STRIPED]>]>,
    /// Own stripes: one per core, a power of two.
    own: usize,
    /// Kept whole: the auto-flush rule needs its exact value.
    accept_good: CachePadded<AtomicU64>,
    connect_good: CachePadded<AtomicU64>,
}

impl Counters {
    pub(crate) fn new() -> Self {
        let own = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .next_power_of_two()
            .min(MAX_STRIPES);
        Self {
            stripes: (0..2 * own)
                .map(|_| CachePadded::new(Default::default()))
                .collect(),
            own,
            accept_good: Default::default(),
            connect_good: Default::default(),
        }
    }

    #[inline]
    pub(crate) fn bump(&self, counter: Counter) {
        // The core's thread numbers: threads alive at once hold distinct
        // numbers, the smallest free, so up to `own` of them never share a
        // stripe (round-robin handing out let exited threads' stripes go
        // unused while live ones doubled up), and each counts on its own
        // without a locked instruction.
        let (at, own) = tlscache_core::thread_stripe(self.own);
        tlscache_core::count_on_stripe(&self.stripes[at][counter as usize], own);
    }

    /// Counts a finished handshake and returns the count before it.
    pub(crate) fn finished(&self, server: bool) -> u64 {
        let counter = if server {
            &self.accept_good
        } else {
            &self.connect_good
        };
        counter.fetch_add(1, Ordering::Relaxed)
    }

    fn sum(&self, counter: Counter) -> u64 {
        self.stripes
            .iter()
            .map(|s| s[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn snapshot(&self, number: u64, client_peers: u64) -> SessionStats {
        SessionStats {
            number,
            connect: self.sum(Counter::Connect),
            connect_good: self.connect_good.load(Ordering::Relaxed),
            accept: self.sum(Counter::Accept),
            accept_good: self.accept_good.load(Ordering::Relaxed),
            hits: self.sum(Counter::Hits),
            cb_hits: self.sum(Counter::CbHits),
            misses: self.sum(Counter::Misses),
            timeouts: self.sum(Counter::Timeouts),
            cache_full: self.sum(Counter::CacheFull),
            external_errors: self.sum(Counter::ExternalErrors),
            external_slow: self.sum(Counter::ExternalSlow),
            client_peers,
        }
    }
}
