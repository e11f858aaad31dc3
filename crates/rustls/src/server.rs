//! rustls's server session store.

use std::fmt;
use std::sync::Arc;

use rustls::server::StoresServerSessions;
use tlscache_policy::{CacheMode, ProtocolVersion, SessionCache, SessionError, SidCtx, Side};

/// rustls's server session store on a [`SessionCache`].
///
/// rustls hands the store a key (a TLS 1.2 session id, or a TLS 1.3
/// stateful ticket's id) and its own encoded session; the store keeps that
/// as the state of a [`Session`](tlscache_policy::Session) in its
/// session-id context. A key a client made up (empty, or longer than 32
/// bytes, as a TLS 1.3 identity may be) is never found: a full handshake,
/// with nothing counted.
///
/// Each session records the protocol version rustls's encoding names, and
/// a TLS 1.3 ticket is taken only if it is a TLS 1.3 session
/// ([`SessionCache::lookup_once_version`]): a ClientHello that offers a
/// TLS 1.2 session id as its ticket neither resumes nor deletes it.
pub struct ServerStore {
    cache: Arc<SessionCache>,
    sid_ctx: SidCtx,
}

impl ServerStore {
    /// A store in the cache's current session-id context.
    pub fn new(cache: Arc<SessionCache>) -> Self {
        let sid_ctx = cache.session_id_context();
        Self { cache, sid_ctx }
    }

    /// A store in context `sid_ctx`: several server configurations sharing
    /// one cache, each with its own context, never resume each other's
    /// sessions (OpenSSL's `SSL_CTX_set_session_id_context`).
    pub fn with_context(cache: Arc<SessionCache>, sid_ctx: &[u8]) -> Result<Self, SessionError> {
        Ok(Self {
            cache,
            sid_ctx: SidCtx::new(sid_ctx)?,
        })
    }

    /// The cache behind this store.
    pub fn cache(&self) -> &Arc<SessionCache> {
        &self.cache
    }
}

impl StoresServerSessions for ServerStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        if !self.can_cache() {
            return false;
        }
        // rustls's keys are ids it made itself: 32 random bytes.
        let version = encoded_version(&value).unwrap_or(ProtocolVersion(0));
        let Ok(session) = self
            .cache
            .session_builder(&key, value)
            .sid_ctx(self.sid_ctx.as_bytes())
            .version(version)
            .build()
        else {
            return false;
        };
        self.cache.new_session(Side::Server, &session);
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let session = self.cache.lookup(key, self.sid_ctx.as_bytes())?;
        Some(session.state().to_vec())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        // rustls takes only TLS 1.3 tickets.
        let session = self.cache.lookup_once_version(
            key,
            self.sid_ctx.as_bytes(),
            ProtocolVersion::TLS1_3,
        )?;
        Some(session.state().to_vec())
    }

    fn can_cache(&self) -> bool {
        self.cache.mode().contains(CacheMode::SERVER)
    }
}

impl fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerStore")
            .field("sid_ctx", &self.sid_ctx)
            .field("cache", &self.cache)
            .finish()
    }
}

/// The protocol version in rustls's encoding of a server session (rustls
/// 0.23's `ServerSessionValue`): a presence byte for the server name, the
/// name (a length byte and its bytes) if present, then the version, two
/// bytes big-endian. `None` if the bytes do not start that way. The
/// handshake tests check it against real TLS 1.2 and 1.3 sessions, so a
/// rustls that encodes differently fails them.
fn encoded_version(value: &[u8]) -> Option<ProtocolVersion> {
    let at = match *value.first()? {
        0 => 1,
        1 => 2 + usize::from(*value.get(1)?),
        _ => return None,
    };
    let bytes = value.get(at..at + 2)?;
    Some(ProtocolVersion(u16::from_be_bytes([bytes[0], bytes[1]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_follows_the_optional_server_name() {
        assert_eq!(
            encoded_version(&[0, 3, 4, 9]),
            Some(ProtocolVersion::TLS1_3)
        );
        assert_eq!(
            encoded_version(&[1, 2, b'a', b'b', 3, 3, 9]),
            Some(ProtocolVersion::TLS1_2)
        );
        assert_eq!(encoded_version(&[]), None);
        assert_eq!(encoded_version(&[0, 3]), None);
        assert_eq!(encoded_version(&[1, 9, b'a', 3, 3]), None);
        assert_eq!(encoded_version(&[2, 3, 3]), None);
    }
}
