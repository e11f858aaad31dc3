//! Sessions and the short byte strings that name them.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

/// OpenSSL's `SSL_MAX_SSL_SESSION_ID_LENGTH`.
pub const MAX_SESSION_ID_LEN: usize = 32;

/// OpenSSL's `SSL_MAX_SID_CTX_LENGTH`.
pub const MAX_SID_CTX_LEN: usize = 32;

/// The timeout `SSL_SESSION_new` gives a session: five minutes and four
/// seconds, in seconds.
pub const SESSION_DEFAULT_TIMEOUT: u64 = 60 * 5 + 4;

/// Why a session, id or context was refused. Nothing is ever truncated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A session id must hold at least one byte.
    #[error("a session id must not be empty")]
    EmptyId,
    /// A session id holds at most 32 bytes.
    #[error("a session id holds at most {MAX_SESSION_ID_LEN} bytes, got {0}")]
    IdTooLong(usize),
    /// A session-id context holds at most 32 bytes.
    #[error("a session-id context holds at most {MAX_SID_CTX_LEN} bytes, got {0}")]
    ContextTooLong(usize),
}

/// Up to 32 bytes inline, zero-padded, so that comparing and hashing the
/// whole array (fixed-size, branch-free) sees only the meaningful bytes
/// and the length.
#[derive(Clone, Copy, Default)]
struct Short {
    len: u8,
    bytes: [u8; 32],
}

impl PartialEq for Short {
    fn eq(&self, other: &Self) -> bool {
        // Empty ones are not read past their length: comparing a session's
        // empty session-id context reads one byte of it, not 33.
        self.len == other.len && (self.len == 0 || self.bytes == other.bytes)
    }
}

impl Eq for Short {}

impl std::hash::Hash for Short {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equal values are equal here too: the padding is zero.
        self.len.hash(state);
        self.bytes.hash(state);
    }
}

impl Short {
    fn new(from: &[u8]) -> Option<Self> {
        let mut bytes = [0; 32];
        // The common lengths without a `memcpy` call: a full 32 bytes (most
        // ids) is two 16-byte moves, and none (most contexts) copies
        // nothing. Every lookup builds two of these.
        match <[u8; 32]>::try_from(from) {
            Ok(full) => bytes = full,
            Err(_) if from.is_empty() => {}
            Err(_) => bytes.get_mut(..from.len())?.copy_from_slice(from),
        }
        Some(Self {
            len: from.len() as u8,
            bytes,
        })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A session id: 1 to 32 bytes, the key a session is cached under.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(Short);

impl SessionId {
    /// The id `bytes`, or why it is not one (empty, or over 32 bytes).
    pub fn new(bytes: &[u8]) -> Result<Self, SessionError> {
        if bytes.is_empty() {
            return Err(SessionError::EmptyId);
        }
        Short::new(bytes)
            .map(Self)
            .ok_or(SessionError::IdTooLong(bytes.len()))
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:?})", self.0)
    }
}

/// A session-id context (`SSL_CTX_set_session_id_context`): 0 to 32 bytes
/// naming the application context a session may be resumed in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SidCtx(Short);

impl SidCtx {
    /// The context `bytes`, or an error if it is over 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, SessionError> {
        Short::new(bytes)
            .map(Self)
            .ok_or(SessionError::ContextTooLong(bytes.len()))
    }

    /// The context's bytes (empty when none was set).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for SidCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SidCtx({:?})", self.0)
    }
}

/// A protocol version as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolVersion(pub u16);

impl ProtocolVersion {
    /// TLS 1.2.
    pub const TLS1_2: Self = Self(0x0303);
    /// TLS 1.3.
    pub const TLS1_3: Self = Self(0x0304);
}

/// The peer a client session belongs to: opaque bytes, for instance the
/// server name and port. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PeerKey(Arc<[u8]>);

impl PeerKey {
    /// A key of `bytes`.
    pub fn new(bytes: impl AsRef<[u8]>) -> Self {
        Self(Arc::from(bytes.as_ref()))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::borrow::Borrow<[u8]> for PeerKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerKey({})", String::from_utf8_lossy(&self.0))
    }
}

/// One TLS session: what `SSL_SESSION` is to OpenSSL.
///
/// A session is shared as `Arc<Session>`; the cache, the handshakes that
/// resume it and an external store may all hold it. Everything is fixed at
/// creation except the resumable flag, which
/// [`remove_session`](crate::SessionCache::remove_session) and the cache's
/// flushes and evictions clear. The resumption state is zeroized when the
/// last holder drops the session.
// In this order: what a lookup's checks read (time, timeout, the flag,
// the version, the context) comes first, right after the reference count
// the lookup takes, so that those checks miss less often on a cache line
// of their own. (The context's length byte sits after its 32 bytes, where
// rustc lays `Short` out: putting it first was tried, see
// docs/performance.md.)
#[repr(C)]
pub struct Session {
    /// Seconds since the epoch; moved forward by an add under
    /// [`CacheMode::UPDATE_TIME`](crate::CacheMode::UPDATE_TIME).
    time: AtomicU64,
    timeout: u64,
    not_resumable: AtomicBool,
    version: ProtocolVersion,
    sid_ctx: SidCtx,
    id: SessionId,
    /// What most sessions lack (a client session's peer, application
    /// data), boxed so that a server session does not carry the room.
    extras: Option<Box<Extras>>,
    /// Exactly as long as the state (no spare capacity), zeroized on drop.
    state: Secret,
}

/// A session's rarely present parts.
struct Extras {
    peer: Option<PeerKey>,
    ex_data: Option<ExData>,
}

/// Application data riding with a session: OpenSSL's
/// `SSL_SESSION_set_ex_data`, typed.
pub type ExData = Arc<dyn std::any::Any + Send + Sync>;

impl Session {
    /// Starts a session with id `id` and resumption state `state`; see
    /// [`SessionBuilder`] for the defaults.
    pub fn builder(id: &[u8], state: impl Into<Vec<u8>>) -> SessionBuilder {
        SessionBuilder {
            id: SessionId::new(id),
            sid_ctx: SidCtx::new(&[]),
            version: ProtocolVersion::TLS1_2,
            time: None,
            timeout: SESSION_DEFAULT_TIMEOUT,
            state: Zeroizing::new(state.into()),
            peer: None,
            ex_data: None,
        }
    }

    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The session-id context the session was made in.
    pub fn sid_ctx(&self) -> &SidCtx {
        &self.sid_ctx
    }

    /// The protocol version it was negotiated with.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Creation time, in seconds since the Unix epoch.
    pub fn time(&self) -> u64 {
        // Relaxed: the time is a value of its own, ordered with nothing.
        self.time.load(Ordering::Relaxed)
    }

    /// Sets the creation time (`SSL_SESSION_set_time`), for
    /// [`CacheMode::UPDATE_TIME`](crate::CacheMode::UPDATE_TIME).
    pub(crate) fn set_time(&self, time: u64) {
        self.time.store(time, Ordering::Relaxed);
    }

    /// Lifetime in seconds from [`time`](Self::time).
    pub fn timeout(&self) -> u64 {
        self.timeout
    }

    /// The last second it is valid in: `time + timeout`, or `None` when that
    /// overflows, which OpenSSL 3.0 takes to mean it never times out.
    pub fn expires_at(&self) -> Option<u64> {
        self.time().checked_add(self.timeout)
    }

    /// OpenSSL's `sess_timedout`: timed out once `now` (seconds since the
    /// epoch) is past `time + timeout`.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at().is_some_and(|last| now > last)
    }

    /// The opaque state a TLS stack resumes from (secret: zeroized on drop).
    pub fn state(&self) -> &[u8] {
        &self.state[..]
    }

    /// For a client session, the peer it belongs to.
    pub fn peer(&self) -> Option<&PeerKey> {
        self.extras.as_ref()?.peer.as_ref()
    }

    /// The application data attached at creation, if it is a `T`
    /// (`SSL_SESSION_get_ex_data`). A TLS stack whose session objects
    /// cannot be serialized keeps them here. Not part of
    /// [`encode`](Self::encode).
    pub fn ex_data<T: std::any::Any>(&self) -> Option<&T> {
        self.extras.as_ref()?.ex_data.as_deref()?.downcast_ref()
    }

    /// Whether it may still be resumed (`SSL_SESSION_is_resumable`).
    pub fn is_resumable(&self) -> bool {
        // Acquire pairs with the Release in `mark_not_resumable`: whoever
        // sees the flag set also sees everything done before the removal.
        !self.not_resumable.load(Ordering::Acquire)
    }

    /// Marks it non-resumable, as OpenSSL does when a session leaves the
    /// cache by removal, flush or eviction.
    pub(crate) fn mark_not_resumable(&self) {
        self.not_resumable.store(true, Ordering::Release);
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("sid_ctx", &self.sid_ctx)
            .field("version", &self.version)
            .field("time", &self.time())
            .field("timeout", &self.timeout)
            .field(
                "state",
                &format_args!("<{} secret bytes>", self.state.len()),
            )
            .field("peer", &self.peer())
            .field(
                "ex_data",
                &self.extras.as_ref().is_some_and(|e| e.ex_data.is_some()),
            )
            .field("resumable", &self.is_resumable())
            .finish()
    }
}

/// Settings for a new [`Session`]. Defaults: TLS 1.2, no session-id
/// context, created now, [`SESSION_DEFAULT_TIMEOUT`] (OpenSSL's
/// `SSL_SESSION_new`), no peer. A cache's
/// [`session_builder`](crate::SessionCache::session_builder) starts from the
/// cache's context and timeout instead, as `ssl_get_new_session` does.
pub struct SessionBuilder {
    /// Checked as given (no copy to the heap); an error waits for `build`.
    id: Result<SessionId, SessionError>,
    sid_ctx: Result<SidCtx, SessionError>,
    version: ProtocolVersion,
    time: Option<u64>,
    timeout: u64,
    state: Zeroizing<Vec<u8>>,
    peer: Option<PeerKey>,
    ex_data: Option<ExData>,
}

impl SessionBuilder {
    /// The session-id context (at most 32 bytes).
    pub fn sid_ctx(mut self, sid_ctx: &[u8]) -> Self {
        self.sid_ctx = SidCtx::new(sid_ctx);
        self
    }

    /// The protocol version.
    pub fn version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    /// The creation time in seconds since the Unix epoch.
    pub fn time(mut self, time: u64) -> Self {
        self.time = Some(time);
        self
    }

    /// The lifetime in seconds. Zero: valid only within its creation
    /// second. A sum with the creation time past `u64::MAX`: never times
    /// out.
    pub fn timeout(mut self, timeout: u64) -> Self {
        self.timeout = timeout;
        self
    }

    /// The peer a client session belongs to.
    pub fn peer(mut self, peer: PeerKey) -> Self {
        self.peer = Some(peer);
        self
    }

    /// Application data to ride with the session; see [`Session::ex_data`].
    pub fn ex_data(mut self, data: ExData) -> Self {
        self.ex_data = Some(data);
        self
    }

    /// The session, or why its id or context is not acceptable.
    pub fn build(self) -> Result<Session, SessionError> {
        Ok(Session {
            id: self.id?,
            sid_ctx: self.sid_ctx?,
            version: self.version,
            time: AtomicU64::new(self.time.unwrap_or_else(unix_now)),
            timeout: self.timeout,
            state: Secret(into_exact(self.state)),
            extras: (self.peer.is_some() || self.ex_data.is_some()).then(|| {
                Box::new(Extras {
                    peer: self.peer,
                    ex_data: self.ex_data,
                })
            }),
            not_resumable: AtomicBool::new(false),
        })
    }
}

/// The state's bytes in an allocation of exactly their length. A vector
/// with spare capacity is copied (and the original zeroized when dropped)
/// rather than shrunk in place, which could leave the secret in memory the
/// allocator has taken back.
fn into_exact(mut state: Zeroizing<Vec<u8>>) -> Box<[u8]> {
    if state.len() == state.capacity() {
        std::mem::take(&mut *state).into_boxed_slice()
    } else {
        Box::from(&state[..])
    }
}

/// A session's state: zeroized when dropped, a word at a time.
///
/// `zeroize` writes a byte slice one volatile byte at a time: 256 stores
/// for a 256-byte state, and most of the cost of dropping a session
/// (`perf annotate` of `drop_in_place<Session>`). Eight-byte stores do the
/// same work in an eighth of the stores, and are just as volatile, so the
/// compiler keeps them though the memory is freed right after.
struct Secret(Box<[u8]>);

impl std::ops::Deref for Secret {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Overwrites `bytes` with zeros through volatile stores: eight bytes at a
/// time where aligned, single bytes at the ends.
fn wipe(bytes: &mut [u8]) {
    // SAFETY: any eight bytes are a valid `u64`, and `align_to_mut` hands
    // out only aligned, in-bounds, non-overlapping parts of `bytes`.
    let (head, words, tail) = unsafe { bytes.align_to_mut::<u64>() };
    for byte in head.iter_mut().chain(tail.iter_mut()) {
        // SAFETY: a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
    for word in words {
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(word, 0) };
    }
    // As `zeroize` does: no later access is moved before the wipe.
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Seconds since the Unix epoch by the system clock (zero before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipe_zeroes_every_byte_whatever_the_length_and_alignment() {
        let mut buffer = [0xA5u8; 96];
        for start in 0..8 {
            for len in 0..=80 {
                buffer.fill(0xA5);
                wipe(&mut buffer[start..start + len]);
                assert!(buffer[start..start + len].iter().all(|&b| b == 0));
                // Nothing around the slice is touched.
                assert!(buffer[..start].iter().all(|&b| b == 0xA5));
                assert!(buffer[start + len..].iter().all(|&b| b == 0xA5));
            }
        }
    }

    #[test]
    fn a_session_holds_its_whole_state() {
        let session = Session::builder(b"id", vec![7u8; 300]).build().unwrap();
        assert_eq!(session.state(), &[7u8; 300][..]);
    }
}
