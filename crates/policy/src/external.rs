//! The external store: OpenSSL's new, get and remove session callbacks.

use std::sync::Arc;

use crate::session::{Session, SessionId};

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
    /// instance one decoded from bytes a remote store returned.
    Owned(Session),
}

impl Fetched {
    /// The session as a shared handle.
    pub fn into_arc(self) -> Arc<Session> {
        match self {
            Fetched::Shared(session) => session,
            Fetched::Owned(session) => Arc::new(session),
        }
    }
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
    fn get_session(&self, id: &SessionId) -> Result<Option<Fetched>, StoreError>;

    /// Gets and deletes `id` in one atomic step (Redis's `GETDEL`), so that
    /// a single-use ticket resumes at most once across everyone sharing the
    /// store. With a store configured, every single-use resumption, local
    /// hits included, needs this to succeed.
    fn take_session(&self, id: &SessionId) -> Result<Option<Fetched>, StoreError>;

    /// The session left the cache (`remove_session_cb`): removed, flushed,
    /// evicted, or found expired by a lookup. Not called when a session is
    /// replaced by another with the same id, as in OpenSSL.
    fn remove_session(&self, session: &Arc<Session>) -> Result<(), StoreError>;
}
