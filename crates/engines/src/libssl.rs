//! OpenSSL's own session cache as a peer: the internal cache of one
//! `SSL_CTX` (libssl's hash table and list behind one lock), driven
//! through libssl's public API the way a server's handshakes drive it.
//!
//! - a store builds a new `SSL_SESSION` (its id, a 48-byte master key made
//!   from the state, its timeout) and hands it to `SSL_CTX_add_session`,
//!   then drops its own reference, as a handshake does once the session is
//!   cached;
//! - a lookup is `SSL_has_matching_session_id`: the same read-locked hash
//!   lookup a resumption makes, without the handshake around it (it does
//!   not judge the session's age; libssl does that after its lookup);
//! - a take is `SSL_CTX_remove_session` of a session with the same id,
//!   which removes and frees the cached one and says whether there was one.
//!
//! libssl's cache size bounds the sessions; it evicts the least recently
//! used one, as the other engines do.

use std::ffi::{c_int, c_long, c_uint};
use std::time::Duration;

use foreign_types::ForeignType;
use openssl::ssl::{Ssl, SslContext, SslMethod, SslSessionCacheMode};
use openssl_sys as ffi;

use crate::engine::{Engine, SessionId, State};

extern "C" {
    // Public libssl API (OpenSSL 1.1.1 and 3.x) that openssl-sys does not
    // declare; libssl is linked through openssl-sys.
    fn SSL_SESSION_new() -> *mut ffi::SSL_SESSION;
    fn SSL_SESSION_set1_id(s: *mut ffi::SSL_SESSION, sid: *const u8, sid_len: c_uint) -> c_int;
    fn SSL_SESSION_set1_master_key(s: *mut ffi::SSL_SESSION, key: *const u8, len: usize) -> c_int;
    fn SSL_SESSION_set_protocol_version(s: *mut ffi::SSL_SESSION, version: c_int) -> c_int;
    fn SSL_SESSION_set_timeout(s: *mut ffi::SSL_SESSION, t: c_long) -> c_long;
    fn SSL_has_matching_session_id(ssl: *const ffi::SSL, id: *const u8, id_len: c_uint) -> c_int;
}

/// `SSL_CTRL_SESS_NUMBER` from `ssl.h` (`SSL_CTX_sess_number` is a macro
/// over `SSL_CTX_ctrl`).
const SSL_CTRL_SESS_NUMBER: c_int = 20;

/// Bytes of a TLS master secret.
const MASTER_KEY: usize = 48;

/// libssl's internal session cache in one `SSL_CTX`.
pub(crate) struct OpensslCache {
    ctx: SslContext,
    /// A server connection of `ctx`, through which lookups go (libssl's
    /// lookup takes one). Only read: `SSL_has_matching_session_id` reads
    /// its version and context, under the context's read lock.
    ssl: Ssl,
    /// The connection's protocol version: libssl compares a session's
    /// version with the connection's before its id.
    version: c_int,
}

// SAFETY: `SslContext` is Send + Sync (libssl locks its session cache);
// `ssl` is only passed to `SSL_has_matching_session_id`, which reads it
// and takes the context's lock, so sharing it between threads is sound.
unsafe impl Sync for OpensslCache {}

impl OpensslCache {
    /// An `SSL_CTX` whose server cache holds `capacity` sessions (its
    /// size is one more: libssl's cache of size N holds N - 1 once full).
    pub(crate) fn new(capacity: usize) -> Result<Self, String> {
        let size = i32::try_from(capacity)
            .ok()
            .and_then(|c| c.checked_add(1))
            .ok_or_else(|| format!("OpenSSL's cache size is an int: {capacity} is too large"))?;
        let mut builder =
            SslContext::builder(SslMethod::tls_server()).map_err(|e| e.to_string())?;
        builder.set_session_cache_mode(SslSessionCacheMode::SERVER);
        builder.set_session_cache_size(size);
        let ctx = builder.build();
        let ssl = Ssl::new(&ctx).map_err(|e| e.to_string())?;
        // SAFETY: `ssl` is a live connection.
        let version = unsafe { ffi::SSL_version(ssl.as_ptr()) };
        Ok(Self { ctx, ssl, version })
    }

    fn ctx(&self) -> *mut ffi::SSL_CTX {
        self.ctx.as_ptr()
    }

    /// A new session with `id`, the given master key and timeout (null if
    /// libssl could not make one), owned by the caller.
    fn session(&self, id: &SessionId, key: &[u8; MASTER_KEY], timeout: Duration) -> Session {
        // SAFETY: plain constructor; a null result is checked below.
        let s = unsafe { SSL_SESSION_new() };
        let s = Session(s);
        if s.0.is_null() {
            return s;
        }
        let secs = c_long::try_from(timeout.as_secs()).unwrap_or(c_long::MAX);
        // SAFETY: `s.0` is a live session we own; the id (32 bytes, within
        // SSL_MAX_SSL_SESSION_ID_LENGTH) and key are read during the calls
        // only.
        let ok = unsafe {
            SSL_SESSION_set1_id(s.0, id.as_ptr(), id.len() as c_uint) == 1
                && SSL_SESSION_set1_master_key(s.0, key.as_ptr(), key.len()) == 1
                && SSL_SESSION_set_protocol_version(s.0, self.version) == 1
        };
        // SAFETY: as above.
        unsafe { SSL_SESSION_set_timeout(s.0, secs) };
        if ok {
            s
        } else {
            Session(std::ptr::null_mut())
        }
    }
}

/// An owned `SSL_SESSION` reference (null: none), freed on drop.
struct Session(*mut ffi::SSL_SESSION);

impl Drop for Session {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: we own this reference, released once here.
            unsafe { ffi::SSL_SESSION_free(self.0) };
        }
    }
}

/// The first `MASTER_KEY` bytes of `state`, repeated as needed.
fn master_key(state: &State) -> [u8; MASTER_KEY] {
    let mut key = [0u8; MASTER_KEY];
    if !state.is_empty() {
        for (k, b) in key.iter_mut().zip(state.iter().cycle()) {
            *k = *b;
        }
    }
    key
}

impl Engine for OpensslCache {
    fn name(&self) -> &'static str {
        "OpenSSL internal"
    }

    fn lookup(&self, id: &SessionId) -> bool {
        let ssl = self.ssl.as_ptr();
        // SAFETY: `ssl` is live for `self`'s life; the id is read during
        // the call only.
        unsafe { SSL_has_matching_session_id(ssl, id.as_ptr(), id.len() as c_uint) == 1 }
    }

    fn take(&self, id: &SessionId) -> bool {
        let probe = self.session(id, &[0; MASTER_KEY], Duration::ZERO);
        if probe.0.is_null() {
            return false;
        }
        // SAFETY: both pointers are live; libssl removes the cached session
        // with the probe's id (freeing its own reference) and says whether
        // there was one.
        unsafe { ffi::SSL_CTX_remove_session(self.ctx(), probe.0) == 1 }
    }

    fn store(&self, id: SessionId, state: &State, timeout: Duration) {
        let s = self.session(&id, &master_key(state), timeout);
        if !s.0.is_null() {
            // SAFETY: both pointers are live; the cache takes its own
            // reference, and `s` drops ours.
            unsafe { ffi::SSL_CTX_add_session(self.ctx(), s.0) };
        }
    }

    fn sessions(&self) -> Option<u64> {
        // SAFETY: `SSL_CTX_sess_number`, a read of the context's count.
        let n =
            unsafe { ffi::SSL_CTX_ctrl(self.ctx(), SSL_CTRL_SESS_NUMBER, 0, std::ptr::null_mut()) };
        u64::try_from(n).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        std::sync::Arc::new(vec![7u8; 100])
    }

    #[test]
    fn stores_finds_takes_once_and_evicts_at_its_size() {
        let c = OpensslCache::new(3).expect("an SSL_CTX");
        let ids: Vec<SessionId> = (0u8..5).map(|i| [i; 32]).collect();
        assert!(!c.lookup(&ids[0]));
        c.store(ids[0], &state(), Duration::from_secs(300));
        assert!(c.lookup(&ids[0]));
        assert_eq!(c.sessions(), Some(1));
        assert!(c.take(&ids[0]), "the first take finds it");
        assert!(!c.take(&ids[0]), "the second does not");
        assert!(!c.lookup(&ids[0]));
        for id in &ids {
            c.store(*id, &state(), Duration::from_secs(300));
        }
        assert_eq!(c.sessions(), Some(3), "bounded by the cache size");
        assert!(c.lookup(&ids[4]), "the newest stays");
        assert!(!c.lookup(&ids[0]), "the oldest went");
    }
}
