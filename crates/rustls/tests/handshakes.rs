//! Real rustls handshakes, in memory, resuming through tlscache.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::StoresServerSessions;
use rustls::{
    ClientConfig, ClientConnection, Connection, HandshakeKind, RootCertStore, ServerConfig,
    ServerConnection, SupportedProtocolVersion,
};
use tlscache_policy::{CacheMode, SessionCache};
use tlscache_rustls::{ClientStore, ServerStore};

struct Pki {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn pki() -> Pki {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    Pki {
        cert: made.cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()),
    }
}

fn cache(mode: CacheMode) -> Arc<SessionCache> {
    Arc::new(SessionCache::builder().mode(mode).build().unwrap())
}

fn server_config(
    pki: &Pki,
    versions: &[&'static SupportedProtocolVersion],
    store: Arc<dyn StoresServerSessions>,
) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_protocol_versions(versions)
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.cert.clone()],
            PrivateKeyDer::Pkcs8(pki.key.clone_key()),
        )
        .unwrap();
    config.session_storage = store;
    Arc::new(config)
}

fn client_config(
    pki: &Pki,
    versions: &[&'static SupportedProtocolVersion],
    store: Arc<ClientStore>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.cert.clone()).unwrap();
    let mut config = ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::store(store);
    Arc::new(config)
}

/// Moves every pending TLS byte from `from` to `to`; the bytes moved.
fn transfer(from: &mut Connection, to: &mut Connection) -> Vec<u8> {
    let mut moved = Vec::new();
    while from.wants_write() {
        let mut buf = Vec::new();
        from.write_tls(&mut buf).unwrap();
        let mut rest = &buf[..];
        while !rest.is_empty() {
            to.read_tls(&mut rest).unwrap();
        }
        moved.extend_from_slice(&buf);
    }
    to.process_new_packets().unwrap();
    moved
}

/// A whole handshake, and the tickets after it; the client's first flight
/// (its ClientHello) is returned for replays.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> (HandshakeKind, Vec<u8>) {
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = Connection::Client(ClientConnection::new(client.clone(), name).unwrap());
    let mut s = Connection::Server(ServerConnection::new(server.clone()).unwrap());
    let hello = transfer(&mut c, &mut s);
    for _ in 0..10 {
        transfer(&mut s, &mut c);
        transfer(&mut c, &mut s);
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    let kind = s.handshake_kind().unwrap();
    assert_eq!(c.handshake_kind(), Some(kind));
    (kind, hello)
}

/// What a server decides for a ClientHello it is sent (a replay).
fn server_answer(server: &Arc<ServerConfig>, hello: &[u8]) -> Option<HandshakeKind> {
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut rest = hello;
    while !rest.is_empty() {
        s.read_tls(&mut rest).unwrap();
    }
    s.process_new_packets().unwrap();
    s.handshake_kind()
}

/// A client on its own tlscache client cache.
fn our_client(pki: &Pki, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let store = ClientStore::new(cache(CacheMode::CLIENT), 16).unwrap();
    client_config(pki, versions, Arc::new(store))
}

/// A server on its own tlscache server cache, and that cache.
fn our_server(
    pki: &Pki,
    versions: &[&'static SupportedProtocolVersion],
) -> (Arc<ServerConfig>, Arc<SessionCache>) {
    let cache = cache(CacheMode::SERVER);
    let store = Arc::new(ServerStore::new(cache.clone()));
    (server_config(pki, versions, store), cache)
}

const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

#[test]
fn tls12_resumes_by_session_id_through_both_stores() {
    let pki = pki();
    let (server, server_cache) = our_server(&pki, TLS12);
    let client_cache = cache(CacheMode::CLIENT);
    let client = client_config(
        &pki,
        TLS12,
        Arc::new(ClientStore::new(client_cache.clone(), 16).unwrap()),
    );

    assert_eq!(handshake(&client, &server).0, HandshakeKind::Full);
    assert_eq!(
        server_cache.sess_number(),
        1,
        "the session went to tlscache"
    );
    assert_eq!(handshake(&client, &server).0, HandshakeKind::Resumed);
    assert_eq!(handshake(&client, &server).0, HandshakeKind::Resumed);
    let stats = server_cache.stats();
    assert_eq!(stats.hits, 2);
    assert_eq!(stats.number, 1);
}

#[test]
fn tls13_resumes_with_a_single_use_ticket_through_both_stores() {
    let pki = pki();
    let (server, server_cache) = our_server(&pki, TLS13);
    let client_cache = cache(CacheMode::CLIENT);
    let client = client_config(
        &pki,
        TLS13,
        Arc::new(ClientStore::new(client_cache.clone(), 16).unwrap()),
    );

    assert_eq!(handshake(&client, &server).0, HandshakeKind::Full);
    // rustls issues two stateful tickets per handshake by default.
    assert_eq!(server_cache.sess_number(), 2);
    assert_eq!(
        client_cache.stats().client_peers,
        1,
        "tickets kept per server name"
    );
    assert_eq!(handshake(&client, &server).0, HandshakeKind::Resumed);
    assert_eq!(server_cache.stats().hits, 1);
    // The ticket used is gone; the resumption issued two new ones.
    assert_eq!(server_cache.sess_number(), 3);
}

#[test]
fn a_tls13_ticket_cannot_be_used_twice() {
    let pki = pki();
    let (server, server_cache) = our_server(&pki, TLS13);
    let client = our_client(&pki, TLS13);
    handshake(&client, &server);
    let (kind, hello) = handshake(&client, &server);
    assert_eq!(kind, HandshakeKind::Resumed);
    // The same ClientHello again, byte for byte: the ticket was taken.
    assert_eq!(server_answer(&server, &hello), Some(HandshakeKind::Full));
    assert_eq!(server_cache.stats().hits, 1);
}

#[test]
fn a_session_from_another_context_does_not_resume() {
    let pki = pki();
    let shared = cache(CacheMode::SERVER);
    let front = server_config(
        &pki,
        TLS12,
        Arc::new(ServerStore::with_context(shared.clone(), b"front").unwrap()),
    );
    let admin = server_config(
        &pki,
        TLS12,
        Arc::new(ServerStore::with_context(shared.clone(), b"admin").unwrap()),
    );
    let client = our_client(&pki, TLS12);
    assert_eq!(handshake(&client, &front).0, HandshakeKind::Full);
    assert_eq!(handshake(&client, &admin).0, HandshakeKind::Full);
    assert_eq!(shared.stats().hits, 0);
    // admin's session replaced front's in the client; front resumes its own.
    assert_eq!(handshake(&client, &admin).0, HandshakeKind::Resumed);
}

#[test]
fn unknown_and_oversized_ids_get_a_full_handshake() {
    let pki = pki();
    // A session from another server (another cache): unknown here.
    let (elsewhere, _) = our_server(&pki, TLS12);
    let (here, here_cache) = our_server(&pki, TLS12);
    let client = our_client(&pki, TLS12);
    handshake(&client, &elsewhere);
    assert_eq!(handshake(&client, &here).0, HandshakeKind::Full);
    assert_eq!(here_cache.stats().misses, 1);

    // A stateless TLS 1.3 ticket from a server with a ticketer is an
    // identity of ~100 bytes: offered here, it is never looked up.
    let mut ticketing = ServerConfig::builder_with_protocol_versions(TLS13)
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.cert.clone()],
            PrivateKeyDer::Pkcs8(pki.key.clone_key()),
        )
        .unwrap();
    ticketing.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    let ticketing = Arc::new(ticketing);
    let here13_cache = cache(CacheMode::SERVER);
    let here13 = server_config(
        &pki,
        TLS13,
        Arc::new(ServerStore::new(here13_cache.clone())),
    );
    let client = our_client(&pki, TLS13);
    handshake(&client, &ticketing);
    assert_eq!(handshake(&client, &here13).0, HandshakeKind::Full);
    let stats = here13_cache.stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (0, 0),
        "an oversized id counts nothing"
    );

    // Straight at the store: the same, and never a panic.
    let store = ServerStore::new(here13_cache.clone());
    for key in [&[][..], &[0xff; 33][..], &[0; 4096][..]] {
        assert_eq!(store.get(key), None);
        assert_eq!(store.take(key), None);
    }
    assert!(
        !store.put(vec![0; 33], b"state".to_vec()),
        "an id rustls would never make"
    );
}

#[test]
fn a_cache_without_server_mode_caches_nothing() {
    let pki = pki();
    let off = cache(CacheMode::OFF);
    let store = Arc::new(ServerStore::new(off.clone()));
    assert!(!store.can_cache());
    let server = server_config(&pki, TLS12, store);
    let client = our_client(&pki, TLS12);
    handshake(&client, &server);
    assert_eq!(handshake(&client, &server).0, HandshakeKind::Full);
    assert_eq!(off.sess_number(), 0);
}

/// A store that remembers the keys rustls stores under.
struct Recording {
    inner: ServerStore,
    keys: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording").finish_non_exhaustive()
    }
}

impl StoresServerSessions for Recording {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.keys.lock().unwrap().push(key.clone());
        self.inner.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.take(key)
    }
    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// Issue 23, gap 1: a TLS 1.2 session id offered as a TLS 1.3 ticket (any
/// client that saw the cleartext TLS 1.2 handshake can) must neither
/// resume nor delete the TLS 1.2 session.
#[test]
fn a_tls12_session_id_offered_as_a_ticket_is_not_consumed() {
    let pki = pki();
    let shared = cache(CacheMode::SERVER);
    let store = Arc::new(Recording {
        inner: ServerStore::new(shared.clone()),
        keys: std::sync::Mutex::new(Vec::new()),
    });
    let tls12 = server_config(&pki, TLS12, store.clone());
    let client = our_client(&pki, TLS12);
    assert_eq!(handshake(&client, &tls12).0, HandshakeKind::Full);
    let keys = store.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 1);
    let session = shared
        .lookup(&keys[0], shared.session_id_context().as_bytes())
        .unwrap();
    assert_eq!(session.version(), tlscache_policy::ProtocolVersion::TLS1_2);

    // What rustls's TLS 1.3 path does with a PSK identity.
    assert_eq!(store.take(&keys[0]), None);
    assert_eq!(shared.sess_number(), 1, "the TLS 1.2 session stays");
    assert_eq!(handshake(&client, &tls12).0, HandshakeKind::Resumed);

    // TLS 1.3 tickets record their version, and take as before.
    let tls13 = server_config(&pki, TLS13, store.clone());
    let client13 = our_client(&pki, TLS13);
    assert_eq!(handshake(&client13, &tls13).0, HandshakeKind::Full);
    let ticket = store.keys.lock().unwrap().last().unwrap().clone();
    let ticket_session = shared
        .lookup(&ticket, shared.session_id_context().as_bytes())
        .unwrap();
    assert_eq!(
        ticket_session.version(),
        tlscache_policy::ProtocolVersion::TLS1_3
    );
    assert!(store.take(&ticket).is_some());
}
