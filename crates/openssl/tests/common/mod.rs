//! Shared by the OpenSSL tests: a certified server context, a client
//! context, and one connection over a socket pair.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use foreign_types::ForeignTypeRef;
use openssl::pkey::PKey;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslRef, SslSession, SslSessionCacheMode,
    SslStream, SslVerifyMode, SslVersion,
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

/// The server's side of one connection over `sock`, on its own thread:
/// reports the handshake's start to `report` (if any), runs `handshake`
/// on a new `Ssl` of `server` (what it returns beside the stream is the
/// thread's result), reports the handshake's end, then sends close_notify
/// and reads to the client's end.
fn serve_one<T: Send + 'static>(
    server: &SslContext,
    sock: UnixStream,
    report: Option<&Arc<SessionCache>>,
    handshake: impl FnOnce(Ssl, UnixStream) -> (SslStream<UnixStream>, T) + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let server = server.clone();
    let report = report.cloned();
    std::thread::spawn(move || {
        if let Some(cache) = &report {
            cache.handshake_started(Side::Server);
        }
        let (mut s, seen) = handshake(Ssl::new(&server).unwrap(), sock);
        if let Some(cache) = &report {
            tlscache_openssl::handshake_finished(cache, s.ssl());
        }
        s.shutdown().unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        seen
    })
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
    let server_side = serve_one(server, s_sock, report, |ssl, sock| {
        let s = ssl.accept(sock).unwrap();
        let reused = s.ssl().session_reused();
        (s, reused)
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

extern "C" {
    // Public libssl API that openssl-sys does not declare.
    fn SSL_get_early_data_status(s: *const openssl_sys::SSL) -> std::ffi::c_int;
}

/// `SSL_EARLY_DATA_ACCEPTED` (ssl.h).
const EARLY_DATA_ACCEPTED: std::ffi::c_int = 2;

/// Whether `ssl`'s early data was accepted.
fn early_accepted(ssl: &SslRef) -> bool {
    // SAFETY: a live connection.
    unsafe { SSL_get_early_data_status(ssl.as_ptr()) == EARLY_DATA_ACCEPTED }
}

/// What a connection with early data saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Early {
    /// Whether the handshake resumed.
    pub resumed: bool,
    /// Whether the server accepted the early data.
    pub accepted: bool,
    /// The early data the server read, as bytes.
    pub read: usize,
}

/// [`connect_reporting`] with TLS 1.3 early data: the client offers
/// `offer` and writes `early` before its handshake completes, and the
/// server reads early data (`SSL_read_early_data`) before it finishes the
/// handshake. Both ends agree on whether it was accepted.
pub fn connect_early(
    server: &SslContext,
    client: &SslContext,
    offer: &SslSession,
    early: &[u8],
    report: Option<&Arc<SessionCache>>,
) -> (Early, SslSession) {
    let (s_sock, c_sock) = UnixStream::pair().unwrap();
    let server_side = serve_one(server, s_sock, report, |mut ssl, sock| {
        ssl.set_accept_state();
        let mut s = SslStream::new(ssl, sock).unwrap();
        let mut read = 0;
        let mut buf = [0u8; 1024];
        loop {
            match s.read_early_data(&mut buf) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) => panic!("server reading early data: {e}"),
            }
        }
        s.do_handshake().unwrap();
        let seen = Early {
            resumed: s.ssl().session_reused(),
            accepted: early_accepted(s.ssl()),
            read,
        };
        (s, seen)
    });
    let mut ssl = Ssl::new(client).unwrap();
    // SAFETY: the session came from a connection of this same client
    // context, as `SSL_set_session` requires.
    unsafe { ssl.set_session(offer).unwrap() };
    ssl.set_connect_state();
    let mut c = SslStream::new(ssl, c_sock).unwrap();
    let written = c.write_early_data(early).unwrap();
    assert_eq!(written, early.len());
    c.do_handshake().unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let accepted = early_accepted(c.ssl());
    let resumed = c.ssl().session_reused();
    let session = c.ssl().session().unwrap().to_owned();
    let _ = c.shutdown();
    let seen = server_side.join().unwrap();
    assert_eq!(
        (seen.resumed, seen.accepted),
        (resumed, accepted),
        "both ends agree"
    );
    (seen, session)
}
