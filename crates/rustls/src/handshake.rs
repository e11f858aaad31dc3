//! Reporting finished handshakes, which rustls does not tell a store.

use rustls::HandshakeKind;
use tlscache_policy::{Handshake, SessionCache, Side};

/// Reports a finished handshake of a rustls connection to `cache`: a
/// resumption, or a full handshake (whose sessions the store already
/// has). Does nothing while the connection is still handshaking.
pub fn handshake_finished(cache: &SessionCache, side: Side, conn: &rustls::CommonState) {
    let outcome = match conn.handshake_kind() {
        Some(HandshakeKind::Resumed) => Handshake::Resumed,
        Some(HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest) => Handshake::Full,
        None => return,
    };
    if conn.is_handshaking() {
        return;
    }
    cache.handshake_finished(side, outcome);
}
