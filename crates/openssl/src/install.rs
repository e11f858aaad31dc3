//! Installing a cache in an `SSL_CTX`.

use std::sync::Arc;

use openssl::error::ErrorStack;
use openssl::ssl::{
    SslContextBuilder, SslOptions, SslRef, SslSession, SslSessionCacheMode, SslSessionRef,
    SslVersion,
};
use tlscache_policy::{ProtocolVersion, SessionCache, SessionError, SidCtx, Side};

/// `SSL_OP_NO_ANTI_REPLAY` (ssl.h, OpenSSL 1.1.1 and later), which
/// openssl-sys does not name.
const NO_ANTI_REPLAY: u64 = 1 << 24;

/// Why [`install`] failed; the context may be half configured.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The session-id context is over 32 bytes.
    #[error(transparent)]
    Context(#[from] SessionError),
    /// OpenSSL refused a setting.
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] ErrorStack),
}

/// Makes `cache` the session cache of the context being built, in session
/// context `sid_ctx` (also set as the context's own,
/// `SSL_CTX_set_session_id_context`). Several contexts may share one cache,
/// each with its own `sid_ctx`; none resumes another's sessions.
pub fn install(
    ctx: &mut SslContextBuilder,
    cache: Arc<SessionCache>,
    sid_ctx: &[u8],
) -> Result<(), InstallError> {
    let sid_ctx = SidCtx::new(sid_ctx)?;
    ctx.set_session_id_context(sid_ctx.as_bytes())?;
    ctx.set_session_cache_mode(SslSessionCacheMode::SERVER | SslSessionCacheMode::NO_INTERNAL);
    // The get callback takes TLS 1.3 tickets once, which is the replay
    // protection early data needs; OpenSSL's own would remove them again
    // from the internal cache, which is off, and so refuse them all.
    ctx.set_options(SslOptions::NO_TICKET | SslOptions::from_bits_retain(NO_ANTI_REPLAY));

    let new_cache = Arc::clone(&cache);
    ctx.set_new_session_callback(move |ssl, session| {
        store(&new_cache, &sid_ctx, ssl, &session);
    });

    let get_cache = Arc::clone(&cache);
    let get = move |ssl: &mut SslRef, id: &[u8]| -> Option<SslSession> {
        let found = if ssl.version2() == Some(SslVersion::TLS1_3) {
            // Only a TLS 1.3 session is taken: a TLS 1.2 session id sent as
            // a ticket would fail OpenSSL's version check after the take.
            get_cache.lookup_once_version(id, sid_ctx.as_bytes(), ProtocolVersion::TLS1_3)
        } else {
            get_cache.lookup(id, sid_ctx.as_bytes())
        }?;
        // A session that no longer decodes resumes nothing.
        SslSession::from_der(found.state()).ok()
    };
    // SAFETY: the callback returns sessions freshly decoded from DER by
    // `d2i_SSL_SESSION`, which belong to no `SSL_CTX` at all, so none is
    // associated with a different context (the requirement of
    // `set_get_session_callback`). Which sessions may resume here is
    // decided by the lookup's session-id context.
    unsafe { ctx.set_get_session_callback(get) };

    ctx.set_remove_session_callback(move |_, session: &SslSessionRef| {
        cache.remove_session_id(session.id());
    });
    Ok(())
}

/// The new-session callback: the session as DER, under its id, with
/// OpenSSL's creation time and the cache's timeout.
fn store(cache: &SessionCache, sid_ctx: &SidCtx, ssl: &SslRef, session: &SslSessionRef) {
    let Ok(der) = session.to_der() else {
        return;
    };
    let version = match ssl.version2() {
        Some(SslVersion::TLS1_3) => ProtocolVersion::TLS1_3,
        Some(SslVersion::TLS1_2) => ProtocolVersion::TLS1_2,
        Some(SslVersion::TLS1_1) => ProtocolVersion(0x0302),
        Some(SslVersion::TLS1) => ProtocolVersion(0x0301),
        _ => ProtocolVersion(0),
    };
    let mut builder = cache
        .session_builder(session.id(), der)
        .sid_ctx(sid_ctx.as_bytes())
        .version(version);
    // `time_t`: signed on some OpenSSL versions, unsigned on others.
    #[allow(clippy::useless_conversion)]
    if let Ok(time) = u64::try_from(session.time()) {
        builder = builder.time(time);
    }
    if let Ok(built) = builder.build() {
        cache.new_session(Side::Server, &built);
    }
}
