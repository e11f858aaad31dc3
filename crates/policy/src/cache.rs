//! The session cache OpenSSL keeps per `SSL_CTX`.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tlscache_core::Cache;

use crate::builder::SessionCacheBuilder;
use crate::client::ClientStore;
use crate::clock::SharedClock;
use crate::config::{Config, DEFAULT_TIMEOUT};
use crate::external::{External, ExternalStore, Fetched, Removal, StoreError};
use crate::mode::CacheMode;
use crate::session::{ProtocolVersion, SessionBuilder, SessionId, SidCtx};
use crate::stats::{Counter, Counters, SessionStats};
use crate::Session;

/// OpenSSL flushes expired sessions when the count of finished handshakes
/// (before the current one) has its low eight bits all set: on every 256th
/// handshake, which its manual calls "every 255 connections".
const AUTO_FLUSH_MASK: u64 = 0xff;

/// How far in the future a session's creation time may lie and the session
/// still resume: room for clock skew across a fleet sharing sessions.
pub const MAX_CLOCK_SKEW: u64 = 60;

/// Where in the engine's time a session's entry is flushed: the first
/// second past `time + timeout` (OpenSSL's strict `now > calc_timeout`),
/// or never when that overflows.
fn flush_deadline(session: &Session) -> Duration {
    session
        .expires_at()
        .and_then(|last| last.checked_add(1))
        .map_or(Duration::MAX, Duration::from_secs)
}

/// What a resumption asks of a session it found.
struct Wanted<'a> {
    sid_ctx: &'a SidCtx,
    /// The negotiated protocol version, when the caller has the cache
    /// check it.
    version: Option<ProtocolVersion>,
    /// Seconds since the epoch.
    now: u64,
}

/// Whether a found session resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Resumes,
    /// Timed out: counted, and removed from the cache.
    Expired,
    /// Another version or context, non-resumable, or from the future: not
    /// counted, and left where it is.
    Refused,
}

impl Wanted<'_> {
    /// `ssl_get_prev_session`'s checks in its order (version, context,
    /// timeout), then the two this crate adds (see the crate docs).
    fn verdict(&self, session: &Session) -> Verdict {
        if self.version.is_some_and(|v| v != session.version())
            || !session.in_context(self.sid_ctx.as_bytes())
        {
            Verdict::Refused
        } else if session.is_expired(self.now) {
            Verdict::Expired
        } else if session.time() > self.now.saturating_add(MAX_CLOCK_SKEW)
            || !session.is_resumable()
        {
            Verdict::Refused
        } else {
            Verdict::Resumes
        }
    }
}

/// Which end of a handshake an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The server: counted as `accept`, stored under [`CacheMode::SERVER`].
    Server,
    /// The client: counted as `connect`, stored under [`CacheMode::CLIENT`].
    Client,
}

impl Side {
    fn mode(self) -> CacheMode {
        match self {
            Side::Server => CacheMode::SERVER,
            Side::Client => CacheMode::CLIENT,
        }
    }
}

/// How a handshake ended, for [`SessionCache::handshake_finished`].
#[derive(Debug, Clone, Copy)]
pub enum Handshake<'a> {
    /// A full handshake made this session (and a TLS 1.3 server issuing a
    /// ticket after a resumption reports the ticket's session this way).
    New(&'a Arc<Session>),
    /// A previous session was resumed. On the server, the hit was counted
    /// by the [`lookup`](SessionCache::lookup) that found it; on the
    /// client it is counted now.
    Resumed,
    /// A session the cache never saw was resumed: a stateless ticket the
    /// TLS stack decrypted itself. Counted as a hit (OpenSSL counts
    /// `sess_hit` for every resumption, tickets included); nothing is
    /// looked up or stored.
    ResumedStateless,
    /// A full handshake whose sessions were handed over already, through
    /// [`SessionCache::new_session`]: counted, and nothing stored.
    Full,
}

/// One session cache: what OpenSSL keeps per `SSL_CTX`, on a sharded engine
/// whose lookups take no lock.
///
/// See the [crate documentation](crate) for the map from OpenSSL's
/// functions to these methods, and where the two differ.
pub struct SessionCache {
    pub(crate) sessions: Cache<SessionId, Session>,
    pub(crate) client: ClientStore,
    pub(crate) config: ArcSwap<Config>,
    /// The mode's bits, apart from the rest of the configuration: every
    /// lookup and store reads the mode, and only the mode, so an atomic
    /// load serves them where an `ArcSwap` load costs a thread-local slot
    /// taken and given back.
    pub(crate) mode: AtomicU64,
    /// Serializes setters, so the engine's bound and the configured size
    /// change together. Readers never take it.
    pub(crate) setters: Mutex<()>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) external: Option<External>,
    pub(crate) clock: SharedClock,
}

impl SessionCache {
    /// A builder with OpenSSL's defaults.
    pub fn builder() -> SessionCacheBuilder {
        SessionCacheBuilder::default()
    }

    // ---- the cache -----------------------------------------------------

    /// A builder for a session made now in this cache's context, with its
    /// timeout: what `ssl_get_new_session` fills in.
    pub fn session_builder<'a>(
        &self,
        id: &[u8],
        state: impl Into<Cow<'a, [u8]>>,
    ) -> SessionBuilder<'a> {
        let config = self.config.load();
        let timeout = match config.timeout {
            0 => DEFAULT_TIMEOUT,
            t => t,
        };
        SessionBuilder::with(
            id,
            state.into(),
            config.sid_ctx,
            Some(self.clock.secs()),
            timeout,
        )
    }

    /// `SSL_CTX_add_session`: stores `session` under its id.
    ///
    /// Returns `true` if it was stored. The identical object (the same
    /// `Arc` allocation) again is a no-op returning `false`; a different
    /// object with the same id replaces the old one, which leaves without
    /// the remove callback, as in OpenSSL. A full shard first evicts its
    /// least recently used session (counted as `cache_full`, marked
    /// non-resumable, reported to the external store's remove). Works in
    /// every mode. One shard lock; O(1).
    ///
    /// Under [`CacheMode::UPDATE_TIME`] the session's creation time is set
    /// to now first (OpenSSL 3.2's `SSL_CTX_add_session`), so its timeout
    /// runs from this add; the identical object is then refreshed in place
    /// (its new deadline, and most recently used) and `false` returned.
    pub fn add_session(&self, session: &Arc<Session>) -> bool {
        self.add_in(self.mode(), session)
    }

    /// [`add_session`](Self::add_session) under `mode`, read once by the
    /// caller.
    fn add_in(&self, mode: CacheMode, session: &Arc<Session>) -> bool {
        if mode.contains(CacheMode::UPDATE_TIME) {
            session.set_time(self.clock.secs());
            let mut identical = false;
            let stored = self.sessions.put_if_until(
                *session.id(),
                Arc::clone(session),
                flush_deadline(session),
                |current| {
                    identical = current.is_some_and(|c| Arc::ptr_eq(c, session));
                    true
                },
            );
            return stored.is_ok() && !identical;
        }
        let fresh =
            |current: Option<&Arc<Session>>| !current.is_some_and(|c| Arc::ptr_eq(c, session));
        self.sessions
            .put_if_until(
                *session.id(),
                Arc::clone(session),
                flush_deadline(session),
                fresh,
            )
            .is_ok()
    }

    /// `SSL_CTX_remove_session`: removes whatever session is cached under
    /// `session`'s id, marks `session` non-resumable and tells the external
    /// store (always, as OpenSSL calls its remove callback whether or not
    /// the id was cached). Returns `false` when nothing with that id was
    /// cached.
    ///
    /// Once this returns, no lookup resumes `session`.
    pub fn remove_session(&self, session: &Arc<Session>) -> bool {
        self.remove_for(session, Removal::Removed)
    }

    /// `SSL_CTX_remove_session` for a TLS stack that names the session by
    /// id only (OpenSSL's remove callback hands over its own session
    /// object): removes the session cached under `id`, marks it
    /// non-resumable and tells the external store. Returns `false`, and
    /// does nothing, when no session is cached under `id` (an invalid `id`
    /// included).
    pub fn remove_session_id(&self, id: &[u8]) -> bool {
        let Ok(id) = SessionId::new(id) else {
            return false;
        };
        let Some(session) = self.sessions.remove(&id) else {
            return false;
        };
        session.mark_not_resumable();
        if let Some(external) = &self.external {
            external.call(|store| store.remove_session(&session, Removal::Removed));
        }
        true
    }

    fn remove_for(&self, session: &Arc<Session>, why: Removal) -> bool {
        let removed = self.sessions.remove(session.id()).is_some();
        session.mark_not_resumable();
        if let Some(external) = &self.external {
            external.call(|store| store.remove_session(session, why));
        }
        removed
    }

    /// Server resumption, as `ssl_get_prev_session` does it with the cache:
    /// the session to resume for session id `id` offered in a connection
    /// whose session-id context is `sid_ctx`, or `None` for a full
    /// handshake.
    ///
    /// The internal cache first (lock-free) unless
    /// [`CacheMode::NO_INTERNAL_LOOKUP`], counting a miss there; then the
    /// external store, whose hit counts as `cb_hits` and is copied into the
    /// internal cache unless [`CacheMode::NO_INTERNAL_STORE`]. A session
    /// from another context does not resume (uncounted, as in OpenSSL); an
    /// expired one counts as a timeout and is removed. A usable session
    /// counts as a hit.
    ///
    /// The protocol version check `ssl_get_prev_session` also makes is the
    /// TLS stack's: compare [`Session::version`] with the negotiated one.
    ///
    /// An empty or oversized `id`, or a `sid_ctx` over 32 bytes, is never
    /// looked up and counts nothing (OpenSSL does not look up an empty id;
    /// the wire format forbids more than 32 bytes, and no session has a
    /// longer context). A session created more than [`MAX_CLOCK_SKEW`]
    /// seconds in the future does not resume.
    pub fn lookup(&self, id: &[u8], sid_ctx: &[u8]) -> Option<Arc<Session>> {
        let id = SessionId::new(id).ok()?;
        let sid_ctx = SidCtx::new(sid_ctx).ok()?;
        let mode = self.mode();
        let mut found = None;
        if !mode.contains(CacheMode::NO_INTERNAL_LOOKUP) {
            found = self.sessions.get(&id);
            if found.is_none() {
                self.counters.bump(Counter::Misses);
            }
        }
        if found.is_none() {
            let session = self.fetch(&id, |store| store.get_session(&id, &sid_ctx))?;
            if !mode.contains(CacheMode::NO_INTERNAL_STORE) {
                // Either answer lets the resumption go on, as in OpenSSL.
                self.add_in(mode, &session);
            }
            found = Some(session);
        }
        let want = Wanted {
            sid_ctx: &sid_ctx,
            version: None,
            now: self.clock.secs(),
        };
        self.judge(found?, &want, |session| {
            self.remove_for(session, Removal::Expired);
        })
    }

    /// Single-use resumption for TLS 1.3 stateful tickets and 0-RTT
    /// anti-replay: like [`lookup`](Self::lookup), but the session it
    /// resumes leaves the cache as it is found, so among any number of
    /// racing handshakes at most one resumes it.
    ///
    /// Only a session that resumes is consumed: one from another session-id
    /// context, one marked non-resumable or one from the future stays
    /// where it is, uncounted, as if never offered. An expired one is
    /// removed and counted as a timeout, as [`lookup`](Self::lookup) does.
    /// The decision and the removal are one step under the shard's lock.
    /// The protocol version is not checked here; a TLS stack that can
    /// offer a session of another version under the same id (a TLS 1.2
    /// session id sent as a TLS 1.3 ticket) uses
    /// [`lookup_once_version`](Self::lookup_once_version).
    ///
    /// With an external store that [shares
    /// sessions](ExternalStore::shares_sessions) the store decides: the
    /// session resumes only if the store's atomic
    /// [`take_session`](ExternalStore::take_session) also yields it (so a
    /// ticket used on another server sharing the store does not resume
    /// here), and a store error means no resumption. A store that only
    /// listens is asked only after a local miss. A taken session is never
    /// copied into the internal cache.
    pub fn lookup_once(&self, id: &[u8], sid_ctx: &[u8]) -> Option<Arc<Session>> {
        self.take_resumable(id, sid_ctx, None)
    }

    /// [`lookup_once`](Self::lookup_once) that also refuses, and leaves in
    /// the cache, a session negotiated with a protocol version other than
    /// `version`, counting a miss (OpenSSL keys its cache by version and
    /// id, so such a session is not there for it). A TLS 1.3 server passes
    /// [`ProtocolVersion::TLS1_3`], so a ClientHello naming a TLS 1.2
    /// session's id as its ticket neither resumes nor deletes it.
    pub fn lookup_once_version(
        &self,
        id: &[u8],
        sid_ctx: &[u8],
        version: ProtocolVersion,
    ) -> Option<Arc<Session>> {
        self.take_resumable(id, sid_ctx, Some(version))
    }

    fn take_resumable(
        &self,
        id: &[u8],
        sid_ctx: &[u8],
        version: Option<ProtocolVersion>,
    ) -> Option<Arc<Session>> {
        let id = SessionId::new(id).ok()?;
        let sid_ctx = SidCtx::new(sid_ctx).ok()?;
        let mode = self.mode();
        let want = Wanted {
            sid_ctx: &sid_ctx,
            version,
            now: self.clock.secs(),
        };
        let mut found = None;
        if !mode.contains(CacheMode::NO_INTERNAL_LOOKUP) {
            let mut seen = false;
            found = self.sessions.take_if(&id, |session| {
                // OpenSSL keys its cache by version and id: a session of
                // another version is not there for this lookup, a miss.
                seen = version.is_none_or(|v| v == session.version());
                // An expired session goes too: a lookup removes it.
                want.verdict(session) != Verdict::Refused
            });
            if !seen {
                self.counters.bump(Counter::Misses);
            }
        }
        match &self.external {
            Some(external) if external.shares || found.is_none() => {
                let remote = self.fetch(&id, |store| store.take_session(&id, &sid_ctx));
                match (&found, remote) {
                    (Some(_), None) if external.shares => return None,
                    (Some(_), _) => {}
                    (None, remote) => found = remote,
                }
            }
            _ => {}
        }
        let session = found?;
        self.judge(session, &want, |session| {
            // Out of the cache already (taken); the rest of a removal.
            session.mark_not_resumable();
            if let Some(external) = &self.external {
                external.call(|store| store.remove_session(session, Removal::Expired));
            }
        })
    }

    /// An external store's answer for `id`, counted as a callback hit when
    /// it is a resumable session with that id.
    fn fetch(
        &self,
        id: &SessionId,
        call: impl FnOnce(&dyn ExternalStore) -> Result<Option<Fetched>, StoreError>,
    ) -> Option<Arc<Session>> {
        let external = self.external.as_ref()?;
        let session = external.call(call)??.into_arc();
        if session.id() != id {
            // A store that answers for another id is broken; never resume
            // what it says.
            self.counters.bump(Counter::ExternalErrors);
            return None;
        }
        if !session.is_resumable() {
            return None;
        }
        self.counters.bump(Counter::CbHits);
        Some(session)
    }

    /// The step `lookup` and `lookup_once` share once they have found a
    /// session: `ssl_get_prev_session`'s checks (see [`Wanted::verdict`]),
    /// counted. A session that resumes is a hit; one that timed out is a
    /// timeout, and `expired` finishes taking it out of the cache.
    fn judge(
        &self,
        session: Arc<Session>,
        want: &Wanted<'_>,
        expired: impl FnOnce(&Arc<Session>),
    ) -> Option<Arc<Session>> {
        match want.verdict(&session) {
            Verdict::Resumes => {
                self.counters.bump(Counter::Hits);
                Some(session)
            }
            Verdict::Expired => {
                self.counters.bump(Counter::Timeouts);
                expired(&session);
                None
            }
            Verdict::Refused => None,
        }
    }

    // ---- handshakes ----------------------------------------------------

    /// A handshake began: counts `accept` (server) or `connect` (client).
    pub fn handshake_started(&self, side: Side) {
        self.counters.bump(match side {
            Side::Server => Counter::Accept,
            Side::Client => Counter::Connect,
        });
    }

    /// A handshake finished: what OpenSSL's `ssl_update_cache` and the end
    /// of `tls_finish_handshake` do.
    ///
    /// For a [`Handshake::New`] session, if the mode enables `side`: store
    /// it internally unless [`CacheMode::NO_INTERNAL_STORE`] (a client
    /// session with a [peer](Session::peer) goes to that peer's list, see
    /// [`client_session`](Self::client_session)), then hand it to the
    /// external store's `new_session`. A resumed client handshake counts a
    /// hit. Then `accept_good` or `connect_good` counts it, and if the
    /// count before it had its low eight bits set, the mode includes `side`
    /// and not [`CacheMode::NO_AUTO_CLEAR`], expired sessions are flushed:
    /// on every 256th handshake, in O(1) here, the O(expired) sweep spread
    /// over the shards' next writes (see the crate docs).
    pub fn handshake_finished(&self, side: Side, outcome: Handshake<'_>) {
        // One read of the mode serves the store and the flush.
        let mode = self.mode();
        match outcome {
            Handshake::New(session) => self.store_new(mode, side, session),
            Handshake::Full => {}
            Handshake::Resumed => {
                if side == Side::Client {
                    self.counters.bump(Counter::Hits);
                }
            }
            Handshake::ResumedStateless => self.counters.bump(Counter::Hits),
        }
        let before = self.counters.finished(side == Side::Server);
        if !mode.contains(CacheMode::NO_AUTO_CLEAR)
            && mode.contains(side.mode())
            && before & AUTO_FLUSH_MASK == AUTO_FLUSH_MASK
        {
            // Every later lookup, store and count sees the flush; the
            // shards' next writes do its work (see the crate docs).
            self.sessions
                .flush_expired_lazily_at(Duration::from_secs(self.clock.secs()));
        }
    }

    /// The storing half of [`handshake_finished`](Self::handshake_finished)
    /// for [`Handshake::New`], without counting a handshake: for a TLS
    /// stack that hands sessions over apart from the end of a handshake
    /// (a TLS 1.3 server issuing several tickets, say). Report the
    /// handshake itself as [`Handshake::Full`].
    ///
    /// If the mode enables `side`: stores `session` internally unless
    /// [`CacheMode::NO_INTERNAL_STORE`] (a client session with a
    /// [peer](Session::peer) goes to that peer's list), then hands it to
    /// the external store's `new_session`.
    pub fn new_session(&self, side: Side, session: &Arc<Session>) {
        self.store_new(self.mode(), side, session);
    }

    /// [`new_session`](Self::new_session) under `mode`.
    fn store_new(&self, mode: CacheMode, side: Side, session: &Arc<Session>) {
        if !mode.intersects(side.mode()) {
            return;
        }
        if !mode.contains(CacheMode::NO_INTERNAL_STORE) {
            match (side, session.peer()) {
                (Side::Client, Some(peer)) => self.client.put(peer, Arc::clone(session)),
                _ => {
                    self.add_in(mode, session);
                }
            }
        }
        if let Some(external) = &self.external {
            external.call(|store| store.new_session(session));
        }
    }

    /// The client side: `peer`'s newest session that is still resumable and
    /// unexpired, handed out once (TLS 1.3 tickets are single-use). Spent
    /// or expired sessions met on the way are dropped.
    pub fn client_session(&self, peer: &[u8]) -> Option<Arc<Session>> {
        self.client.take(peer, self.clock.secs())
    }

    // ---- flushing and counters -----------------------------------------

    /// `SSL_CTX_flush_sessions`: removes every session that has timed out
    /// at `now` (seconds since the epoch: past `time + timeout`), marking
    /// each non-resumable and reporting it to the external store's remove.
    /// `now` of 0 removes every session, client sessions included. Costs
    /// O(expired) per shard, not O(sessions).
    pub fn flush_sessions(&self, now: u64) {
        if now == 0 {
            self.sessions.clear();
            self.client.clear();
        } else {
            self.sessions.flush_expired_at(Duration::from_secs(now));
        }
    }

    /// `SSL_CTX_sess_number`: sessions in the internal cache, including
    /// expired ones not yet flushed.
    pub fn sess_number(&self) -> u64 {
        self.sessions.len()
    }

    /// Every counter at once (each read without a lock; counts in flight
    /// may or may not show).
    pub fn stats(&self) -> SessionStats {
        self.counters
            .snapshot(self.sessions.len(), self.client.peers())
    }
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("mode", &self.mode())
            .field("config", &**self.config.load())
            .field("sessions", &self.sessions.len())
            .field("external", &self.external.is_some())
            .finish_non_exhaustive()
    }
}
