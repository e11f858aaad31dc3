//! The client side: sessions kept per peer, each handed out once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tlscache_core::{BuildError, Cache, RemovalCause};

use crate::session::{PeerKey, Session};

/// TLS 1.3 tickets kept per peer by default: a server usually sends two
/// after a handshake, and a client that opens several connections at once
/// wants one each.
pub const DEFAULT_TICKETS_PER_PEER: usize = 8;

/// One peer's sessions, newest first.
#[derive(Default)]
struct Tickets {
    sessions: VecDeque<Arc<Session>>,
    /// Set once the entry has left the peer map: a put that still holds it
    /// must start a new entry instead of filling this orphan.
    detached: bool,
}

#[derive(Default)]
pub(crate) struct PeerTickets(Mutex<Tickets>);

impl PeerTickets {
    fn with(session: Arc<Session>) -> Self {
        let mut tickets = Tickets::default();
        tickets.sessions.push_front(session);
        Self(Mutex::new(tickets))
    }

    fn lock(&self) -> MutexGuard<'_, Tickets> {
        // A panic while holding the lock leaves a consistent deque.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sessions per peer. The peer map is a core cache (lock-free lookup, LRU
/// over peers); each peer's short list sits behind its own small lock, held
/// for a push or a pop and never across a call into the map.
pub(crate) struct ClientStore {
    peers: Cache<PeerKey, PeerTickets>,
    per_peer: usize,
}

impl ClientStore {
    pub(crate) fn new(peers: usize, per_peer: usize) -> Result<Self, BuildError> {
        let peers = Cache::builder()
            .capacity(peers)
            .removal_listener(|_peer: &PeerKey, entry: &Arc<PeerTickets>, cause| {
                // A replaced entry is one `put` found detached already.
                if cause != RemovalCause::Replaced {
                    let mut tickets = entry.lock();
                    tickets.detached = true;
                    for session in tickets.sessions.drain(..) {
                        session.mark_not_resumable();
                    }
                }
            })
            .build()?;
        Ok(Self { peers, per_peer })
    }

    /// Keeps `session` as `peer`'s newest, dropping its oldest beyond the
    /// per-peer bound.
    pub(crate) fn put(&self, peer: &PeerKey, session: Arc<Session>) {
        loop {
            let Some(entry) = self.peers.get(peer) else {
                let fresh = Arc::new(PeerTickets::with(Arc::clone(&session)));
                if self.peers.insert_if_absent(peer.clone(), fresh).is_ok() {
                    return;
                }
                continue;
            };
            {
                let mut tickets = entry.lock();
                if !tickets.detached {
                    tickets.sessions.push_front(session);
                    tickets.sessions.truncate(self.per_peer);
                    return;
                }
            }
            // Emptied by a take and on its way out: replace it, unless
            // someone already has.
            let fresh = Arc::new(PeerTickets::with(Arc::clone(&session)));
            let stale = |current: Option<&Arc<PeerTickets>>| {
                current.is_none_or(|current| Arc::ptr_eq(current, &entry))
            };
            if self
                .peers
                .insert_if(peer.clone(), fresh, None, stale)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Hands out `peer`'s newest session that is resumable and not expired
    /// at `now`, once; older or spent ones met on the way are dropped.
    pub(crate) fn take(&self, peer: &[u8], now: u64) -> Option<Arc<Session>> {
        let entry = self.peers.get(peer)?;
        let mut tickets = entry.lock();
        let found = loop {
            match tickets.sessions.pop_front() {
                Some(s) if s.is_resumable() && !s.is_expired(now) => break Some(s),
                Some(_) => continue,
                None => break None,
            }
        };
        if tickets.sessions.is_empty() && !tickets.detached {
            tickets.detached = true;
            drop(tickets);
            self.peers.remove_if(peer, |e| Arc::ptr_eq(e, &entry));
        }
        found
    }

    pub(crate) fn peers(&self) -> u64 {
        self.peers.len()
    }

    pub(crate) fn clear(&self) {
        self.peers.clear();
    }
}
