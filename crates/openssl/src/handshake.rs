//! Reporting finished handshakes to the cache's counters.

use openssl::ssl::SslRef;
use tlscache_policy::{Handshake, SessionCache, Side};

/// Reports a finished server handshake to `cache`: a resumption or a full
/// handshake (whose session the new-session callback already stored).
pub fn handshake_finished(cache: &SessionCache, ssl: &SslRef) {
    let outcome = if ssl.session_reused() {
        Handshake::Resumed
    } else {
        Handshake::Full
    };
    cache.handshake_finished(Side::Server, outcome);
}
