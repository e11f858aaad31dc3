//! Shared test helpers: a manual clock at a fixed Unix time, sessions, and
//! an in-memory external store that records what it was asked.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tlscache_core::ManualClock;
use tlscache_policy::{
    ExternalStore, Fetched, Removal, Session, SessionCache, SessionCacheBuilder, SessionId, SidCtx,
    StoreError,
};

/// The tests' "now": an ordinary Unix time.
pub const T0: u64 = 1_700_000_000;

/// A one-shard cache (exact LRU) on a manual clock standing at `T0`.
pub fn cache_with(builder: SessionCacheBuilder) -> (SessionCache, ManualClock) {
    let clock = ManualClock::new();
    clock.set(Duration::from_secs(T0));
    let cache = builder.shards(1).clock(clock.clone()).build().unwrap();
    (cache, clock)
}

pub fn cache() -> (SessionCache, ManualClock) {
    cache_with(SessionCache::builder())
}

/// A session with id `[n; 32]` made now in `cache`'s context.
pub fn session(cache: &SessionCache, n: u8) -> Arc<Session> {
    cache
        .session_builder(&[n; 32], vec![n; 48])
        .build()
        .unwrap()
}

/// A session with id `[n; 32]` made now in `cache`'s context, living
/// `timeout` seconds.
pub fn session_for(cache: &SessionCache, n: u8, timeout: u64) -> Arc<Session> {
    cache
        .session_builder(&[n; 32], vec![n])
        .timeout(timeout)
        .build()
        .unwrap()
}

pub fn id(n: u8) -> [u8; 32] {
    [n; 32]
}

/// Waits until the cache's retired entries have been reclaimed and
/// `session` is held by `expected` handles: the engine releases a removed
/// entry's reference once no reader can still be looking at it (epoch
/// reclamation), not at the instant of removal.
pub fn await_count(session: &Arc<Session>, expected: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while Arc::strong_count(session) != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "{} handles remain, expected {expected}",
            Arc::strong_count(session)
        );
        crossbeam_epoch::pin().flush();
        std::thread::yield_now();
    }
}

/// What the recording store was asked, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    New(u8),
    Get(u8),
    Take(u8),
    /// A session left, and why.
    Remove(u8, Removal),
}

/// How the recording store misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    Error = 1,
    Panic = 2,
    Slow = 3,
}

/// An in-memory external store that logs every call and can be told to
/// fail, panic or dawdle. Lookups hand out shared handles (`*copy = 1`)
/// unless `owned` is set, when they hand out fresh copies. A store made
/// with [`Recorder::listening`] only listens: it keeps nothing and says
/// it does not share sessions.
#[derive(Default)]
pub struct Recorder {
    pub sessions: Mutex<HashMap<SessionId, Arc<Session>>>,
    pub calls: Mutex<Vec<Call>>,
    fault: AtomicU8,
    pub owned: std::sync::atomic::AtomicBool,
    listening: bool,
}

impl Recorder {
    /// A store that only wants to hear of new sessions.
    pub fn listening() -> Self {
        Self {
            listening: true,
            ..Self::default()
        }
    }

    pub fn set_fault(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    pub fn calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    pub fn put(&self, session: &Arc<Session>) {
        self.sessions
            .lock()
            .unwrap()
            .insert(*session.id(), Arc::clone(session));
    }

    pub fn holds(&self, n: u8) -> bool {
        let id = SessionId::new(&id(n)).unwrap();
        self.sessions.lock().unwrap().contains_key(&id)
    }

    fn misbehave(&self) -> Result<(), StoreError> {
        match self.fault.load(Ordering::SeqCst) {
            1 => Err(StoreError::new("store down")),
            2 => panic!("store bug"),
            3 => {
                std::thread::sleep(Duration::from_millis(30));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn hand_out(&self, session: Arc<Session>) -> Fetched {
        if self.owned.load(Ordering::SeqCst) {
            Fetched::Owned(
                Session::builder(session.id().as_bytes(), session.state().to_vec())
                    .sid_ctx(session.sid_ctx().as_bytes())
                    .time(session.time())
                    .timeout(session.timeout())
                    .build()
                    .unwrap(),
            )
        } else {
            Fetched::Shared(session)
        }
    }
}

fn tag(id: &SessionId) -> u8 {
    id.as_bytes()[0]
}

impl ExternalStore for Recorder {
    fn new_session(&self, session: &Arc<Session>) -> Result<(), StoreError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::New(tag(session.id())));
        self.misbehave()?;
        if !self.listening {
            self.put(session);
        }
        Ok(())
    }

    fn get_session(&self, id: &SessionId, _: &SidCtx) -> Result<Option<Fetched>, StoreError> {
        self.calls.lock().unwrap().push(Call::Get(tag(id)));
        self.misbehave()?;
        let found = self.sessions.lock().unwrap().get(id).cloned();
        Ok(found.map(|s| self.hand_out(s)))
    }

    fn take_session(&self, id: &SessionId, _: &SidCtx) -> Result<Option<Fetched>, StoreError> {
        self.calls.lock().unwrap().push(Call::Take(tag(id)));
        self.misbehave()?;
        let found = self.sessions.lock().unwrap().remove(id);
        Ok(found.map(|s| self.hand_out(s)))
    }

    fn remove_session(&self, session: &Arc<Session>, why: Removal) -> Result<(), StoreError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Remove(tag(session.id()), why));
        self.misbehave()?;
        self.sessions.lock().unwrap().remove(session.id());
        Ok(())
    }

    fn shares_sessions(&self) -> bool {
        !self.listening
    }
}

/// A one-shard cache with a recording external store.
pub fn with_store(builder: SessionCacheBuilder) -> (SessionCache, ManualClock, Arc<Recorder>) {
    let store = Arc::new(Recorder::default());
    let (cache, clock) = cache_with(builder.external_store(store.clone()));
    (cache, clock, store)
}
