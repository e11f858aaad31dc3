//! Sessions and the short byte strings that name them.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tlscache_core::{Tailed, Thin};

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
        // Empty ones are not read past their length: comparing empty
        // session-id contexts reads one byte of each, not 33.
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
        // The compiler folds these arms into one call of the library's
        // `memcpy` (of `from.len()` bytes). Fixed-size moves instead made
        // no difference that cachegrind or perf could show: the time
        // `perf` puts on that call is the first touch of the caller's id.
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
/// resume it and an external store may all hold it.
/// [`SessionBuilder::build`] makes one. Everything is fixed at creation
/// except the resumable flag, which
/// [`remove_session`](crate::SessionCache::remove_session) and the cache's
/// flushes and evictions clear. The resumption state is zeroized when the
/// last holder drops the session.
///
/// When a cache lets go of the last handle on a session (it was removed,
/// replaced, evicted or flushed, and nobody else holds it), the state is
/// zeroized at once and the session's memory kept by the thread that
/// collected it (up to 256 sessions a thread, of up to 8 KiB each), for
/// that thread's next
/// [`build`](SessionBuilder::build) of a session of the same size class:
/// the memory is reused instead of freed and allocated again. What a
/// thread keeps is freed when it exits.
///
/// A session is one allocation: its fixed fields, then its context's and
/// its state's bytes, each exactly as long as it is, then as many zeros
/// as round the allocation up to its size class (none for a session
/// under 512 bytes on a `malloc` of 16-byte chunks, at most an eighth of
/// the size above; see `class_tail`). It is a
/// [`Tailed`](tlscache_core::Tailed) record; that is why the type is
/// unsized, and only ever met behind a reference or an `Arc`.
#[repr(transparent)]
pub struct Session(
    /// The tail: the session-id context's bytes (`ctx_len` of them), then
    /// the state's, which are zeroized on drop.
    Tailed<Head>,
);

/// A session's fields of fixed size: 64 bytes, after the record's length
/// (72 in all). In this order: what a
/// lookup's checks read (time, timeout, the flag, the context's length,
/// the version) comes first, right after the reference count the lookup
/// takes, so that those checks miss less often on a cache line of their
/// own.
#[repr(C)]
struct Head {
    /// Seconds since the epoch; moved forward by an add under
    /// [`CacheMode::UPDATE_TIME`](crate::CacheMode::UPDATE_TIME).
    time: AtomicU64,
    timeout: u64,
    not_resumable: AtomicBool,
    /// How many of the tail's bytes are the context: at most
    /// [`MAX_SID_CTX_LEN`].
    ctx_len: u8,
    version: ProtocolVersion,
    id: SessionId,
    /// How many zero bytes end the tail after the state: its memory is
    /// rounded up to a size class (see [`class_tail`]).
    pad: u16,
    /// What most sessions lack (a client session's peer, application
    /// data), boxed so that a server session does not carry the room.
    extras: Option<Box<Extras>>,
}

/// A session's rarely present parts.
struct Extras {
    peer: Option<PeerKey>,
    ex_data: Option<ExData>,
}

/// Application data riding with a session: OpenSSL's
/// `SSL_SESSION_set_ex_data`, typed.
pub type ExData = Arc<dyn std::any::Any + Send + Sync>;

// SAFETY: a session is its record (`repr(transparent)`), with the same
// pointer metadata, which the record's own `Thin` reads back.
unsafe impl Thin for Session {
    #[inline]
    unsafe fn from_thin(thin: *const u8) -> *const Session {
        // SAFETY: the caller's guarantee, passed on: a live session at
        // `thin` is a live record there.
        unsafe { <Tailed<Head> as Thin>::from_thin(thin) as *const Session }
    }

    /// A cache's last handle on a session: wiped and kept for this
    /// thread's next new session (see `spare`), as far as it has room.
    fn release(mut session: Arc<Session>) {
        if let Some(last) = Arc::get_mut(&mut session) {
            last.wipe_state();
            // Dropped now, as they would be with the session.
            last.0.head_mut().extras = None;
            crate::spare::keep(session);
        }
    }
}

impl Session {
    /// Starts a session with id `id` and resumption state `state`; see
    /// [`SessionBuilder`] for the defaults. The state is borrowed (`&[u8]`)
    /// or owned (`Vec<u8>`, zeroized when the builder drops); either way
    /// `build` copies it into the session.
    pub fn builder<'a>(id: &[u8], state: impl Into<Cow<'a, [u8]>>) -> SessionBuilder<'a> {
        SessionBuilder::with(
            id,
            state.into(),
            SidCtx::default(),
            None,
            SESSION_DEFAULT_TIMEOUT,
        )
    }

    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.head().id
    }

    /// The session-id context the session was made in.
    pub fn sid_ctx(&self) -> SidCtx {
        // Never over 32 bytes: `build` took it from a `SidCtx`.
        SidCtx::new(self.sid_ctx_bytes()).unwrap_or_default()
    }

    /// The session-id context's bytes (empty when none was set).
    pub fn sid_ctx_bytes(&self) -> &[u8] {
        // `ctx_len` is at most the tail's length: `assemble` wrote both.
        self.tail()
            .get(..usize::from(self.head().ctx_len))
            .unwrap_or_default()
    }

    /// Whether the session was made in context `ctx`: by the length alone
    /// when it differs or is zero (the common case, no context), so that
    /// a lookup reads no more of the session than its head.
    #[inline]
    pub(crate) fn in_context(&self, ctx: &[u8]) -> bool {
        usize::from(self.head().ctx_len) == ctx.len()
            && (ctx.is_empty() || self.sid_ctx_bytes() == ctx)
    }

    /// The protocol version it was negotiated with.
    pub fn version(&self) -> ProtocolVersion {
        self.head().version
    }

    /// Creation time, in seconds since the Unix epoch.
    pub fn time(&self) -> u64 {
        // Relaxed: the time is a value of its own, ordered with nothing.
        self.head().time.load(Ordering::Relaxed)
    }

    /// Sets the creation time (`SSL_SESSION_set_time`), for
    /// [`CacheMode::UPDATE_TIME`](crate::CacheMode::UPDATE_TIME).
    pub(crate) fn set_time(&self, time: u64) {
        self.head().time.store(time, Ordering::Relaxed);
    }

    /// Lifetime in seconds from [`time`](Self::time).
    pub fn timeout(&self) -> u64 {
        self.head().timeout
    }

    /// The last second it is valid in: `time + timeout`, or `None` when that
    /// overflows, which OpenSSL 3.0 takes to mean it never times out.
    pub fn expires_at(&self) -> Option<u64> {
        self.time().checked_add(self.head().timeout)
    }

    /// OpenSSL's `sess_timedout`: timed out once `now` (seconds since the
    /// epoch) is past `time + timeout`.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at().is_some_and(|last| now > last)
    }

    /// The opaque state a TLS stack resumes from (secret: zeroized on drop).
    pub fn state(&self) -> &[u8] {
        let tail = self.tail();
        // `assemble` wrote the context, the state, then `pad` zeros.
        let end = tail.len().saturating_sub(usize::from(self.head().pad));
        tail.get(usize::from(self.head().ctx_len)..end)
            .unwrap_or_default()
    }

    /// For a client session, the peer it belongs to.
    pub fn peer(&self) -> Option<&PeerKey> {
        self.head().extras.as_ref()?.peer.as_ref()
    }

    /// The application data attached at creation, if it is a `T`
    /// (`SSL_SESSION_get_ex_data`). A TLS stack whose session objects
    /// cannot be serialized keeps them here. Not part of
    /// [`encode`](Self::encode).
    pub fn ex_data<T: std::any::Any>(&self) -> Option<&T> {
        self.head()
            .extras
            .as_ref()?
            .ex_data
            .as_deref()?
            .downcast_ref()
    }

    /// Whether it may still be resumed (`SSL_SESSION_is_resumable`).
    pub fn is_resumable(&self) -> bool {
        // Acquire pairs with the Release in `mark_not_resumable`: whoever
        // sees the flag set also sees everything done before the removal.
        !self.head().not_resumable.load(Ordering::Acquire)
    }

    /// Marks it non-resumable, as OpenSSL does when a session leaves the
    /// cache by removal, flush or eviction.
    pub(crate) fn mark_not_resumable(&self) {
        self.head().not_resumable.store(true, Ordering::Release);
    }

    /// A session of `head` and a tail of `ctx` then `state`, in one
    /// allocation: a kept one of that size if this thread has one (see
    /// `spare`).
    fn assemble(mut head: Head, ctx: &[u8], state: &[u8]) -> Arc<Session> {
        // A sum past `usize::MAX` fits no spare; `renew` then refuses it.
        let len = ctx.len().saturating_add(state.len());
        // At most `MAX_PAD` zeros, by `class_tail`'s rule.
        let zeros = ZEROS.get(..class_tail(len) - len).unwrap_or_default();
        head.pad = zeros.len() as u16;
        let spare = crate::spare::take(len + zeros.len()).map(Session::into_record);
        let record = Tailed::renew(spare, head, &[ctx, state, zeros]);
        let record = Arc::into_raw(record);
        // SAFETY: a `Session` is its record (`repr(transparent)`): the cast
        // keeps the address and the length, and the `Arc`'s count passes
        // from one handle to the other.
        unsafe { Arc::from_raw(record as *const Session) }
    }

    /// The session as its record.
    fn into_record(session: Arc<Session>) -> Arc<Tailed<Head>> {
        let session = Arc::into_raw(session);
        // SAFETY: a `Session` is its record (`repr(transparent)`): the cast
        // keeps the address and the length, and the count passes from one
        // handle to the other.
        unsafe { Arc::from_raw(session as *const Tailed<Head>) }
    }

    /// The bytes a session with `len` bytes of context and state takes
    /// (its `size_of_val`), or `None` if no session can be that long.
    pub(crate) fn size_for(len: usize) -> Option<usize> {
        Tailed::<Head>::size_for(len)
    }

    /// Zeroizes the state.
    fn wipe_state(&mut self) {
        let ctx = usize::from(self.head().ctx_len);
        if let Some(state) = self.0.bytes_mut().get_mut(ctx..) {
            wipe(state);
        }
    }

    /// The fixed fields.
    #[inline]
    fn head(&self) -> &Head {
        self.0.head()
    }

    /// The context's bytes, then the state's.
    #[inline]
    fn tail(&self) -> &[u8] {
        self.0.bytes()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.wipe_state();
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.head().id)
            .field("sid_ctx", &self.sid_ctx())
            .field("version", &self.head().version)
            .field("time", &self.time())
            .field("timeout", &self.head().timeout)
            .field(
                "state",
                &format_args!("<{} secret bytes>", self.state().len()),
            )
            .field("peer", &self.peer())
            .field(
                "ex_data",
                &self
                    .head()
                    .extras
                    .as_ref()
                    .is_some_and(|e| e.ex_data.is_some()),
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
pub struct SessionBuilder<'a> {
    /// Checked as given (no copy to the heap); an error waits for `build`.
    id: Result<SessionId, SessionError>,
    sid_ctx: Result<SidCtx, SessionError>,
    version: ProtocolVersion,
    time: Option<u64>,
    timeout: u64,
    state: Wiped<'a>,
    peer: Option<PeerKey>,
    ex_data: Option<ExData>,
}

impl<'a> SessionBuilder<'a> {
    /// A builder with its context, creation time and timeout given at
    /// once: each setter moves the whole builder (about 160 bytes, a
    /// `memcpy` call), and a cache's `session_builder` would call three.
    pub(crate) fn with(
        id: &[u8],
        state: Cow<'a, [u8]>,
        sid_ctx: SidCtx,
        time: Option<u64>,
        timeout: u64,
    ) -> Self {
        SessionBuilder {
            id: SessionId::new(id),
            sid_ctx: Ok(sid_ctx),
            version: ProtocolVersion::TLS1_2,
            time,
            timeout,
            state: Wiped(state),
            peer: None,
            ex_data: None,
        }
    }

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

    /// The session, ready to share, or why its id, context or state is not
    /// acceptable. The state is copied into the session's own allocation,
    /// and the builder's copy zeroized.
    ///
    /// ```
    /// use tlscache_policy::Session;
    ///
    /// let session = Session::builder(b"id", b"secret".to_vec())
    ///     .sid_ctx(b"web")
    ///     .build()?;
    /// assert_eq!(session.state(), b"secret");
    /// assert_eq!(session.sid_ctx_bytes(), b"web");
    /// # Ok::<(), tlscache_policy::SessionError>(())
    /// ```
    pub fn build(self) -> Result<Arc<Session>, SessionError> {
        let sid_ctx = self.sid_ctx?;
        let ctx = sid_ctx.as_bytes();
        let head = Head {
            time: AtomicU64::new(self.time.unwrap_or_else(unix_now)),
            timeout: self.timeout,
            not_resumable: AtomicBool::new(false),
            // At most 32: a `SidCtx` is never longer.
            ctx_len: ctx.len() as u8,
            version: self.version,
            id: self.id?,
            pad: 0,
            extras: (self.peer.is_some() || self.ex_data.is_some()).then(|| {
                Box::new(Extras {
                    peer: self.peer,
                    ex_data: self.ex_data,
                })
            }),
        };
        Ok(Session::assemble(head, ctx, &self.state.0))
    }
}

/// The most zero bytes [`class_tail`] adds: an eighth of the largest
/// size it rounds.
const MAX_PAD: usize = CLASSED / 8;

/// The largest memory, in bytes with the allocator's word of header, that
/// [`class_tail`] rounds to a size class: sessions up to this size are the
/// ones a thread keeps for reuse (see `spare`).
const CLASSED: usize = 8 * 1024;

/// What a session's padding is copied from.
static ZEROS: [u8; MAX_PAD] = [0; MAX_PAD];

/// The tail length a session whose context and state take `len` bytes is
/// given: `len`, or more (zeros after the state) so that its memory is one
/// of a few size classes. A thread keeps the sessions a cache lets go of
/// and fills them again with new sessions of the same size (see
/// `spare`). With sizes that vary (a session with a certificate chain,
/// one without) an exact size was often not there, and the allocation
/// and the free that then run can take the allocator's arena lock, on
/// which two threads freeing each other's sessions sleep: in the main
/// job's `tls13-tickets` preset (sessions of 100 to 2,000 bytes), frees
/// of sessions a thread could not keep were 28% of the policy's sleeps
/// (`perf record -e context-switches`), and 12% with the classes.
///
/// The classes are of the memory a `malloc` with a word of header and
/// 16-byte chunks spends on the session: 16-byte steps up to 512 bytes
/// (the chunk such a `malloc` makes anyway, so no byte more), then eight
/// classes to each doubling, each step an eighth of the doubling's upper
/// end (at most 12.5% more than the exact size) up to [`CLASSED`]. Past
/// that, and for a sum that overflows, the tail is exact.
fn class_tail(len: usize) -> usize {
    // The `Arc`'s two counts, the record's length and head, and the
    // allocator's header word.
    const OVER: usize = 2 * size_of::<usize>() + size_of::<usize>() + size_of::<Head>() + 8;
    let Some(chunk) = len.checked_add(OVER).filter(|&c| c <= CLASSED) else {
        return len;
    };
    // The step, a power of two: 16, or a sixteenth of the power of two
    // at or above `chunk` (masks, not a division: every new session
    // pays this).
    let log = if chunk <= 512 {
        4
    } else {
        usize::BITS - (chunk - 1).leading_zeros() - 4
    };
    let mask = (1usize << log) - 1;
    ((chunk + mask) & !mask) - OVER
}

/// A builder's state: borrowed, or owned and then zeroized (all its
/// capacity) when the builder drops.
struct Wiped<'a>(Cow<'a, [u8]>);

impl Drop for Wiped<'_> {
    fn drop(&mut self) {
        if let Cow::Owned(state) = &mut self.0 {
            let capacity = state.capacity();
            // SAFETY: the vector's buffer is `capacity` writable bytes
            // (none when it has not allocated, and then nothing is
            // written).
            unsafe { wipe_raw(state.as_mut_ptr(), capacity) };
        }
    }
}

/// Overwrites `bytes` with zeros through volatile stores: eight bytes at a
/// time where aligned, single bytes at the ends.
///
/// `zeroize` writes a byte slice one volatile byte at a time: 256 stores
/// for a 256-byte state, and most of the cost of dropping a session
/// (`perf annotate` of `drop_in_place<Session>`). Eight-byte stores do the
/// same work in an eighth of the stores, and are just as volatile, so the
/// compiler keeps them though the memory is freed right after.
fn wipe(bytes: &mut [u8]) {
    // SAFETY: a slice's bytes are writable and `len` long.
    unsafe { wipe_raw(bytes.as_mut_ptr(), bytes.len()) }
}

/// [`wipe`] of the `len` bytes at `start`, which may be uninitialized.
///
/// # Safety
///
/// `start` points to `len` bytes this thread may write.
unsafe fn wipe_raw(start: *mut u8, len: usize) {
    let head = start.align_offset(align_of::<u64>()).min(len);
    let words = (len - head) / size_of::<u64>();
    for i in (0..head).chain(head + words * size_of::<u64>()..len) {
        // SAFETY: `i < len`, in bounds by the caller's guarantee.
        unsafe { std::ptr::write_volatile(start.add(i), 0) };
    }
    // SAFETY: `start + head` is aligned for `u64` (or `words` is zero),
    // and `words` words from it end within `len`.
    let aligned = unsafe { start.add(head) } as *mut u64;
    for i in 0..words {
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(aligned.add(i), 0) };
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
    fn ids_and_contexts_of_every_length_keep_their_bytes_and_zero_the_rest() {
        let source: Vec<u8> = (1..=40).collect();
        for len in 0..=40 {
            let from = &source[..len];
            let ctx = SidCtx::new(from);
            let id = SessionId::new(from);
            if len > 32 {
                assert_eq!(ctx, Err(SessionError::ContextTooLong(len)));
                assert_eq!(id, Err(SessionError::IdTooLong(len)));
                continue;
            }
            let ctx = ctx.expect("at most 32 bytes");
            assert_eq!(ctx.as_bytes(), from);
            // The padding is zero, so equal contexts compare and hash alike.
            assert!(ctx.0.bytes[len..].iter().all(|&b| b == 0), "length {len}");
            if len == 0 {
                assert_eq!(id, Err(SessionError::EmptyId));
            } else {
                let id = id.expect("1 to 32 bytes");
                assert_eq!(id.as_bytes(), from);
                assert!(id.0.bytes[len..].iter().all(|&b| b == 0), "length {len}");
            }
        }
    }

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
    fn a_session_is_one_allocation_of_its_head_and_tail() {
        for ctx_len in [0, 1, 7, 32] {
            for state_len in 0..=80 {
                let ctx: Vec<u8> = (0..ctx_len as u8).map(|b| b ^ 0x5A).collect();
                let state: Vec<u8> = (0..state_len as u8).collect();
                let session = Session::builder(&[3; 32], state.clone())
                    .sid_ctx(&ctx)
                    .build()
                    .unwrap();
                assert_eq!(session.sid_ctx_bytes(), &ctx[..]);
                assert_eq!(session.sid_ctx().as_bytes(), &ctx[..]);
                assert_eq!(session.state(), &state[..]);
                assert_eq!(session.id().as_bytes(), &[3; 32]);
                // The size `assemble` allocated: the fixed part and the
                // tail rounded up to its class, in whole words.
                let tail = class_tail(ctx_len + state_len);
                let words = (FIXED + tail).div_ceil(8);
                assert_eq!(size_of_val(&*session), words * 8);
                assert_eq!(session.0.bytes().len(), tail);
                assert!(session.0.bytes()[ctx_len + state_len..]
                    .iter()
                    .all(|&b| b == 0));
                assert_eq!(align_of_val(&*session), 8);
                // The cache keeps the address alone and gets the very
                // pointer back, length included.
                let full = Arc::as_ptr(&session);
                // SAFETY: the address of a live session, held by an `Arc`.
                let back = unsafe { <Session as Thin>::from_thin(full.cast()) };
                assert!(std::ptr::eq(back, full));
            }
        }
    }

    /// A session's fixed part: the record's length and the head.
    const FIXED: usize = size_of::<usize>() + size_of::<Head>();

    #[test]
    fn the_fixed_part_takes_72_bytes() {
        // What the memory figures assume: a server session costs its
        // allocation's header, these 72 bytes and its tail.
        assert_eq!(FIXED, 72);
        let bare = Session::builder(b"id", Vec::new()).build().unwrap();
        assert_eq!(size_of_val(&*bare), 72);
    }

    #[test]
    fn a_builders_state_is_wiped_with_its_spare_room() {
        // What `Wiped` does as it drops: the whole buffer, not only the
        // bytes in use, since spare room can hold what a shorter state
        // left there.
        let mut state = vec![0xA5u8; 40];
        state.truncate(20);
        // SAFETY: the vector's buffer is `capacity` writable bytes.
        unsafe { wipe_raw(state.as_mut_ptr(), state.capacity()) };
        // SAFETY: all 40 bytes were just written (zeros).
        unsafe { state.set_len(40) };
        assert!(state.iter().all(|&b| b == 0));
    }

    /// Releases `session` as a cache does its last handle, checks that
    /// this thread, which kept nothing, now keeps it wiped, and returns
    /// where its memory lies.
    fn released_and_kept(session: Arc<Session>) -> *const u8 {
        assert_eq!(crate::spare::kept(), 0);
        let place = Arc::as_ptr(&session).cast::<u8>();
        <Session as Thin>::release(session);
        assert_eq!(crate::spare::kept(), 1);
        assert!(crate::spare::all_wiped());
        place
    }

    #[test]
    fn a_thread_with_no_room_passes_its_oldest_session_to_one_that_has_none() {
        // A size no other test builds, so that no other test's thread
        // takes it from the shared pool meanwhile.
        let state = vec![0x5Au8; 2_500];
        let build = || Session::builder(b"pass", &state[..]).build().unwrap();
        assert_eq!(crate::spare::kept(), 0);
        let sessions: Vec<_> = (0..=crate::spare::SPARES).map(|_| build()).collect();
        let oldest = Arc::as_ptr(&sessions[0]).cast::<u8>() as usize;
        for session in sessions {
            <Session as Thin>::release(session);
        }
        // The last one took the oldest's place in this thread's ring.
        assert_eq!(crate::spare::kept(), crate::spare::SPARES);
        assert!(crate::spare::all_wiped());
        // A thread that keeps nothing builds in the oldest's memory.
        let (place, state_seen) = std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(crate::spare::kept(), 0);
                let session = build();
                (
                    Arc::as_ptr(&session).cast::<u8>() as usize,
                    session.state().to_vec(),
                )
            })
            .join()
            .unwrap()
        });
        assert_eq!(place, oldest);
        assert_eq!(state_seen, state);
    }

    #[test]
    fn a_released_session_is_wiped_and_filled_by_the_next_of_its_size() {
        // Each test runs on its own thread, so this thread keeps nothing
        // yet.
        assert_eq!(crate::spare::kept(), 0);
        let data: ExData = Arc::new(7u32);
        let first = Session::builder(b"one", vec![0xA5u8; 48])
            .sid_ctx(b"web")
            .ex_data(Arc::clone(&data))
            .build()
            .unwrap();
        let place = released_and_kept(first);
        assert_eq!(Arc::strong_count(&data), 1, "the extras went at once");
        // A session of another size leaves it.
        let other = Session::builder(b"two", vec![1u8; 100]).build().unwrap();
        assert_ne!(Arc::as_ptr(&other).cast::<u8>(), place);
        assert_eq!(crate::spare::kept(), 1);
        // One of its size fills it, and is whole.
        let second = Session::builder(b"three", vec![2u8; 48])
            .sid_ctx(b"ctx")
            .timeout(9)
            .time(100)
            .build()
            .unwrap();
        assert_eq!(crate::spare::kept(), 0);
        assert_eq!(Arc::as_ptr(&second).cast::<u8>(), place);
        assert_eq!(second.id().as_bytes(), b"three");
        assert_eq!(second.sid_ctx_bytes(), b"ctx");
        assert_eq!(second.state(), &[2u8; 48][..]);
        assert_eq!((second.time(), second.timeout()), (100, 9));
        assert!(second.is_resumable());
        assert!(second.ex_data::<u32>().is_none());
    }

    #[test]
    fn a_session_with_another_handle_out_is_not_kept() {
        let session = Session::builder(b"id", vec![0xA5u8; 48]).build().unwrap();
        let held = Arc::clone(&session);
        <Session as Thin>::release(session);
        assert_eq!(crate::spare::kept(), 0);
        assert_eq!(held.state(), &[0xA5u8; 48][..]);
        assert_eq!(Arc::strong_count(&held), 1);
    }

    #[test]
    fn a_thread_keeps_at_most_its_share_of_spares() {
        let sessions: Vec<_> = (0..crate::spare::SPARES + 10)
            .map(|_| Session::builder(b"id", vec![3u8; 16]).build().unwrap())
            .collect();
        for session in sessions {
            <Session as Thin>::release(session);
        }
        assert_eq!(crate::spare::kept(), crate::spare::SPARES);
        assert!(crate::spare::all_wiped());
        // A full thread keeps the newest: a session of a size it has not
        // kept yet takes the oldest one's place, and is found.
        let new_size = Session::builder(b"id", vec![4u8; 100]).build().unwrap();
        let place = Arc::as_ptr(&new_size).cast::<u8>();
        <Session as Thin>::release(new_size);
        assert_eq!(crate::spare::kept(), crate::spare::SPARES);
        let again = Session::builder(b"id", vec![5u8; 100]).build().unwrap();
        assert_eq!(Arc::as_ptr(&again).cast::<u8>(), place);
        assert_eq!(again.state(), &[5u8; 100][..]);
    }

    #[test]
    fn a_session_past_the_largest_kept_size_is_not_kept() {
        // 72 bytes of fixed part and 10,000 of state: past 8 KiB.
        let large = Session::builder(b"id", vec![6u8; 10_000]).build().unwrap();
        <Session as Thin>::release(large);
        assert_eq!(crate::spare::kept(), 0);
        // One just below it is.
        let below = Session::builder(b"id", vec![6u8; 8_000]).build().unwrap();
        <Session as Thin>::release(below);
        assert_eq!(crate::spare::kept(), 1);
    }

    #[test]
    fn tails_round_up_to_few_classes_that_cost_a_malloc_nothing_below_512_bytes() {
        // What a session's allocation and its allocator's header take.
        let memory = |tail: usize| 2 * 8 + FIXED + tail + 8;
        let mut classes = std::collections::BTreeSet::new();
        for len in 0..12_000 {
            let tail = class_tail(len);
            assert!(tail >= len, "{len}");
            if memory(len) > CLASSED {
                assert_eq!(tail, len, "exact past the classed sizes");
                continue;
            }
            let size = memory(tail);
            assert!(size <= CLASSED);
            assert_eq!(size % 16, 0, "{len}: a whole chunk of 16-byte steps");
            if memory(len) <= 512 {
                // The chunk a malloc makes of the exact size anyway.
                assert_eq!(size, memory(len).next_multiple_of(16), "{len}");
            } else {
                // At most an eighth more.
                assert!(size - memory(len) < size / 8, "{len}: {size}");
                classes.insert(size);
            }
            assert!(tail - len <= MAX_PAD);
        }
        // Eight classes to each doubling from 512 bytes to 8 KiB.
        assert_eq!(classes.len(), 8 * 4);
        assert_eq!(class_tail(usize::MAX), usize::MAX);
    }

    #[test]
    fn a_released_session_is_filled_by_the_next_of_its_class() {
        let first = Session::builder(b"one", vec![0xA5u8; 1000])
            .build()
            .unwrap();
        let place = released_and_kept(first);
        // Ten bytes longer: another size, the same class.
        let second = Session::builder(b"two", vec![3u8; 1010]).build().unwrap();
        assert_eq!(crate::spare::kept(), 0);
        assert_eq!(Arc::as_ptr(&second).cast::<u8>(), place);
        assert_eq!(second.state(), &[3u8; 1010][..]);
        assert_eq!(second.id().as_bytes(), b"two");
        // And back to a shorter one: the state ends where it did.
        <Session as Thin>::release(second);
        let third = Session::builder(b"three", vec![4u8; 990]).build().unwrap();
        assert_eq!(Arc::as_ptr(&third).cast::<u8>(), place);
        assert_eq!(third.state(), &[4u8; 990][..]);
    }

    #[test]
    fn a_session_holds_its_whole_state() {
        let session = Session::builder(b"id", vec![7u8; 300]).build().unwrap();
        assert_eq!(session.state(), &[7u8; 300][..]);
    }
}
