//! Shared by the OpenSSL tests: a certified server context, a client
//! context, and one connection over a socket pair.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use openssl::pkey::PKey;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslSession, SslSessionCacheMode, SslVerifyMode,
    SslVersion,
};
use openssl::x509::X509;
use tlscache_policy::{SessionCache, Side};

/// Gives `ctx` a fresh self-signed certificate for `localhost`.
pub fn certified(ctx: &mut SslContextBuilder) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = X509::from_der(made.cert.der()).unwrap();
    let key = PKey::private_key_from_der(&made.signing_key.serialize_der()).unwrap();
    ctx.set_certificate(&cert).unwrap();
    ctx.set_private_key(&key).unwrap();
}

/// A client context up to `max` that hands each session back itself.
pub fn client(max: SslVersion) -> SslContext {
    let mut ctx = SslContext::builder(SslMethod::tls_client()).unwrap();
    ctx.set_verify(SslVerifyMode::NONE);
    ctx.set_max_proto_version(Some(max)).unwrap();
    // Client caching on, as a client that resumes has it; the test hands
    // each session back itself.
    ctx.set_session_cache_mode(SslSessionCacheMode::CLIENT);
    ctx.build()
}

/// One connection: whether it resumed, and the client's session after it.
pub fn connect(
    server: &SslContext,
    client: &SslContext,
    offer: Option<&SslSession>,
) -> (bool, SslSession) {
    connect_reporting(server, client, offer, None)
}

/// [`connect`], reporting the server's handshake to `report` as an
/// application does (`handshake_started`, then the adapter's
/// `handshake_finished`). The server's side is over, callbacks included,
/// when this returns.
pub fn connect_reporting(
    server: &SslContext,
    client: &SslContext,
    offer: Option<&SslSession>,
    report: Option<&Arc<SessionCache>>,
) -> (bool, SslSession) {
    let (s_sock, c_sock) = UnixStream::pair().unwrap();
    let server = server.clone();
    let report = report.cloned();
    let server_side = std::thread::spawn(move || {
        if let Some(cache) = &report {
            cache.handshake_started(Side::Server);
        }
        let mut s = Ssl::new(&server).unwrap().accept(s_sock).unwrap();
        if let Some(cache) = &report {
            tlscache_openssl::handshake_finished(cache, s.ssl());
        }
        let reused = s.ssl().session_reused();
        s.shutdown().unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        reused
    });
    let mut ssl = Ssl::new(client).unwrap();
    if let Some(session) = offer {
        // SAFETY: the session came from a connection of this same client
        // context, as `SSL_set_session` requires.
        unsafe { ssl.set_session(session).unwrap() };
    }
    let mut c = ssl.connect(c_sock).unwrap();
    // TLS 1.3 sessions arrive after the handshake: read to the server's
    // close_notify so that they have.
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let reused = c.ssl().session_reused();
    let session = c.ssl().session().unwrap().to_owned();
    let _ = c.shutdown();
    assert_eq!(server_side.join().unwrap(), reused, "both ends agree");
    (reused, session)
}
