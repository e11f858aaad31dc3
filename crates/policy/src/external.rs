//! The external store: OpenSSL's new, get and remove session callbacks.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tlscache_core::RemovalCause;

use crate::session::{Session, SessionId, SidCtx};
use crate::stats::{Counter, Counters};

/// A failure reported by an [`ExternalStore`]. The cache counts it
/// ([`SessionStats::external_errors`](crate::SessionStats::external_errors))
/// and carries on as if the store had missed: a store never fails a
/// handshake.
#[derive(Debug, thiserror::Error)]
#[error("external session store: {0}")]
pub struct StoreError(Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// Wraps any error (or message) as a store error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }
}

/// What a store's lookup hands back: the "copy" argument of OpenSSL's get
/// callback, in Rust terms.
///
/// In C the callback sets `*copy = 1` when it keeps its own reference to
/// the session (OpenSSL then takes another), and `0` when it hands its only
/// reference over. Here ownership says the same thing without a flag.
#[derive(Debug)]
pub enum Fetched {
    /// The store keeps the session and shares it (`*copy = 1`): an
    /// in-process store handing out a clone of its `Arc`.
    Shared(Arc<Session>),
    /// A session made for this call, now the cache's (`*copy = 0`): for
    /// instance one decoded from bytes a remote store returned, whose
    /// handle no one else holds.
    Owned(Arc<Session>),
}

impl Fetched {
    /// The session as a shared handle.
    pub fn into_arc(self) -> Arc<Session> {
        match self {
            Fetched::Shared(session) | Fetched::Owned(session) => session,
        }
    }
}

/// Why a session left the cache, for [`ExternalStore::remove_session`].
///
/// OpenSSL's remove callback is not told; a store shared by a fleet wants
/// to be, since only some of these mean the session must not resume
/// anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removal {
    /// [`remove_session`](crate::SessionCache::remove_session) was called:
    /// the application wants it never to resume.
    Removed,
    /// Timed out: found expired by a lookup, or flushed as expired.
    Expired,
    /// Evicted from this cache because it was full.
    Evicted,
    /// Flushed with every other session by
    /// [`flush_sessions(0)`](crate::SessionCache::flush_sessions).
    Cleared,
}

/// A session store outside the process-local cache, such as a shared tier
/// for a fleet: OpenSSL's `SSL_CTX_sess_set_new_cb`, `_get_cb` and
/// `_remove_cb`, plus an atomic take for single-use tickets.
///
/// The cache calls these on handshake paths, so they should answer within
/// a few milliseconds. An `Err`, a panic, or an answer slower than the
/// cache's external budget is counted and treated as a miss (a store or
/// removal that errs is counted and otherwise ignored); none of them ever
/// fails the caller.
pub trait ExternalStore: Send + Sync + 'static {
    /// A new session was negotiated (`new_session_cb`). Called for every
    /// new session whose side is enabled in the cache mode, whether or not
    /// it is also stored internally.
    fn new_session(&self, session: &Arc<Session>) -> Result<(), StoreError>;

    /// Looks `id` up (`get_session_cb`) after an internal miss, or at once
    /// under [`CacheMode::NO_INTERNAL_LOOKUP`](crate::CacheMode::NO_INTERNAL_LOOKUP).
    /// `sid_ctx` is the context of the connection asking (what OpenSSL's
    /// callback reads off its `SSL *`); a store may key sessions by it, and
    /// the cache resumes only a session made in that context anyway.
    fn get_session(&self, id: &SessionId, sid_ctx: &SidCtx) -> Result<Option<Fetched>, StoreError>;

    /// Gets and deletes `id` in one atomic step (Redis's `GETDEL`), so that
    /// a single-use ticket resumes at most once across everyone sharing the
    /// store. With a store that [shares sessions](Self::shares_sessions),
    /// every single-use resumption, local hits included, needs this to
    /// succeed; a store that does not is asked only after a local miss.
    /// `sid_ctx` is as for [`get_session`](Self::get_session).
    fn take_session(&self, id: &SessionId, sid_ctx: &SidCtx)
        -> Result<Option<Fetched>, StoreError>;

    /// The session left the cache (`remove_session_cb`) for the reason
    /// `why`: removed, flushed, evicted, or found expired by a lookup. Not
    /// called when a session is replaced by another with the same id, as
    /// in OpenSSL.
    fn remove_session(&self, session: &Arc<Session>, why: Removal) -> Result<(), StoreError>;

    /// Whether the store keeps the sessions it is given and hands them out
    /// again, as a tier shared by a fleet does: then its
    /// [`take_session`](Self::take_session) has the last word on single
    /// use, local hits included. A store that only wants to hear of new
    /// sessions (OpenSSL's `ssl_update_cache`: "some applications just
    /// want to know about the creation of a session") answers `false`, and
    /// a ticket found locally resumes without asking it. Asked once, when
    /// the cache is built. The default is `true`.
    fn shares_sessions(&self) -> bool {
        true
    }
}

/// The external store and what it needs to call it safely.
#[derive(Clone)]
pub(crate) struct External {
    pub(crate) store: Arc<dyn ExternalStore>,
    pub(crate) budget: Duration,
    pub(crate) counters: Arc<Counters>,
    /// [`ExternalStore::shares_sessions`], asked once.
    pub(crate) shares: bool,
}

impl External {
    /// Runs one store call. An error or a panic is counted as an error and
    /// becomes `None`; so does an answer slower than the budget, counted as
    /// slow.
    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&dyn ExternalStore) -> Result<T, StoreError>,
    ) -> Option<T> {
        let start = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| f(&*self.store))) {
            Ok(Ok(value)) if start.elapsed() <= self.budget => Some(value),
            Ok(Ok(_)) => {
                self.counters.bump(Counter::ExternalSlow);
                None
            }
            Ok(Err(_)) | Err(_) => {
                self.counters.bump(Counter::ExternalErrors);
                None
            }
        }
    }
}

/// What the engine's removal listener does with a session that left the
/// cache: an eviction counts as `cache_full`; an eviction, an expiry or a
/// clear marks the session non-resumable and tells the external store.
/// Removal by `remove_session` tells the store itself; a replaced session
/// leaves without a word (OpenSSL's `SSL_CTX_add_session`); a taken one
/// was used.
pub(crate) fn on_removal(
    counters: &Counters,
    external: Option<&External>,
    session: &Arc<Session>,
    cause: RemovalCause,
) {
    let why = match cause {
        RemovalCause::Evicted => {
            counters.bump(Counter::CacheFull);
            Removal::Evicted
        }
        RemovalCause::Expired => Removal::Expired,
        RemovalCause::Cleared => Removal::Cleared,
        _ => return,
    };
    session.mark_not_resumable();
    if let Some(external) = external {
        external.call(|store| store.remove_session(session, why));
    }
}
