//! What a cluster store knows of its cluster's masters, and the thread
//! that does a cluster's slow work off the handshake path: making
//! connections, reading the slot map, and probing masters that failed.
//!
//! A new cluster connection reads the slot map and connects to every
//! master, so a master that accepts connections but never answers (hung,
//! or its host gone with SYNs unanswered) costs it a timeout or two. So a
//! call that fails for a slot marks the slot's whole master down (through
//! the slot map this thread keeps): every call for that master's slots
//! then fails at once, and none waits for it again, until this thread's
//! probe (a `PING` every `retry_after`) finds it answering, or a new slot
//! map moves its slots elsewhere (a failover). While a master is down,
//! calls never make a connection themselves: this thread keeps a few idle
//! ones ready.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::Value;

use crate::pool::{Conn, SLOTS};
use crate::stats::bump;

/// Masters a slot map can name (a cluster has at most about a thousand).
const MAX_NODES: usize = 1024;
/// In `slot_node`: the slot's master is not known.
const UNKNOWN: u16 = u16::MAX;
/// In `node_down`: down until the maker's probe finds it answering.
const UNTIL_PROBED: u64 = u64::MAX;
/// Idle connections the maker keeps ready (at most the pool's limit).
const RESERVE: usize = 4;
/// Reading the slot map tries this many times (each may meet the master
/// that does not answer).
const MAP_TRIES: usize = 3;

/// The cluster as the store knows it. Calls read it; the maker writes the
/// map, calls write the back-offs.
pub(crate) struct Topology {
    /// Per slot: the index of its master in `nodes`, or [`UNKNOWN`].
    slot_node: Box<[AtomicU16]>,
    /// Per master index: 0 while up, [`UNTIL_PROBED`] once a call for
    /// one of its slots failed.
    node_down: Box<[AtomicU64]>,
    /// Per slot: a `down_until` (see `Pool`), for a call that failed
    /// before its slot's master was known.
    slot_down: Box<[AtomicU64]>,
    /// Master addresses (`host:port`) by index; only the maker adds.
    nodes: Mutex<Vec<String>>,
}

impl Topology {
    pub(crate) fn new() -> Self {
        Self {
            slot_node: (0..SLOTS).map(|_| AtomicU16::new(UNKNOWN)).collect(),
            node_down: (0..MAX_NODES).map(|_| AtomicU64::new(0)).collect(),
            slot_down: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            nodes: Mutex::new(Vec::new()),
        }
    }

    /// The later of `slot`'s own `down_until` and its master's.
    pub(crate) fn down_until(&self, slot: usize) -> u64 {
        let own = self.slot_down[slot].load(Ordering::Relaxed);
        match self.node_of(slot) {
            None => own,
            Some(node) => own.max(self.node_down[node].load(Ordering::Relaxed)),
        }
    }

    /// The index of `slot`'s master, if known.
    fn node_of(&self, slot: usize) -> Option<usize> {
        match self.slot_node[slot].load(Ordering::Relaxed) {
            UNKNOWN => None,
            node => Some(usize::from(node)),
        }
    }

    /// `slot` answered: it and its master are up.
    pub(crate) fn up(&self, slot: usize) {
        // Loads first: calls on every core pass here, and a store would
        // bounce the lines between them.
        let clear = |at: &AtomicU64| {
            if at.load(Ordering::Relaxed) != 0 {
                at.store(0, Ordering::Relaxed);
            }
        };
        clear(&self.slot_down[slot]);
        if let Some(node) = self.node_of(slot) {
            clear(&self.node_down[node]);
        }
    }

    /// A call for `slot` failed as if its master were gone: its master
    /// (when known) is down until probed, and the slot itself until
    /// `until`.
    pub(crate) fn down(&self, slot: usize, until: u64) {
        self.slot_down[slot].store(until, Ordering::Relaxed);
        if let Some(node) = self.node_of(slot) {
            self.node_down[node].store(UNTIL_PROBED, Ordering::Relaxed);
        }
    }

    /// Whether some master is down.
    pub(crate) fn any_down(&self) -> bool {
        let known = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        self.node_down[..known]
            .iter()
            .any(|d| d.load(Ordering::Relaxed) != 0)
    }

    /// The masters that are down: index and address.
    fn down_nodes(&self) -> Vec<(usize, String)> {
        let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.node_down[i].load(Ordering::Relaxed) != 0)
            .map(|(i, addr)| (i, addr.clone()))
            .collect()
    }

    /// Records a slot map: `(first slot, last slot, master address)`.
    fn learn(&self, map: &[(u16, u16, String)]) {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        for (first, last, addr) in map {
            let index = match nodes.iter().position(|n| n == addr) {
                Some(i) => i,
                None if nodes.len() < MAX_NODES => {
                    nodes.push(addr.clone());
                    nodes.len() - 1
                }
                None => continue,
            };
            // Fewer than MAX_NODES (1024) masters: fits in a u16.
            let index = index as u16;
            for slot in usize::from(*first)..=usize::from(*last).min(SLOTS - 1) {
                self.slot_node[slot].store(index, Ordering::Relaxed);
            }
        }
    }
}

/// Work for the maker.
pub(crate) enum Job {
    /// Make a connection and add it to the idle list, if there is room.
    Refill,
    /// Read the slot map again.
    Map,
}

/// What the maker shares with the pool.
pub(crate) struct Maker {
    pub(crate) client: ClusterClient,
    pub(crate) idle: Arc<Mutex<Vec<Conn>>>,
    pub(crate) max_idle: usize,
    pub(crate) connects: Arc<AtomicU64>,
    pub(crate) topology: Arc<Topology>,
    /// How often a master that is down is probed.
    pub(crate) retry_after: Duration,
}

impl Maker {
    /// Starts the thread; it ends when every sender of `jobs` is gone.
    pub(crate) fn spawn(self, jobs: Receiver<Job>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("tlscache-redis-cluster".into())
            .spawn(move || self.run(jobs))
            .map(drop)
    }

    fn run(self, jobs: Receiver<Job>) {
        // The maker's own connection, for the slot map and the probes.
        let mut control: Option<ClusterConnection> = None;
        loop {
            let (mut refill, mut map) = (false, false);
            let first = if self.topology.any_down() {
                match jobs.recv_timeout(self.retry_after) {
                    Ok(job) => Some(job),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match jobs.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return,
                }
            };
            // Jobs queued meanwhile are done once.
            for job in first.into_iter().chain(jobs.try_iter()) {
                match job {
                    Job::Refill => refill = true,
                    Job::Map => map = true,
                }
            }
            if map {
                self.read_map(&mut control);
            }
            self.probe(&mut control);
            let want = if refill {
                self.max_idle
            } else {
                RESERVE.min(self.max_idle)
            };
            self.fill(want);
        }
    }

    /// The control connection, made if need be.
    fn control<'c>(
        &self,
        control: &'c mut Option<ClusterConnection>,
    ) -> Option<&'c mut ClusterConnection> {
        if control.is_none() {
            *control = self.client.get_connection().ok();
            bump(&self.connects);
        }
        control.as_mut()
    }

    /// Sends `cmd` on the control connection by `route`; a connection
    /// that failed is dropped (it may hold a late reply).
    fn send(
        &self,
        control: &mut Option<ClusterConnection>,
        cmd: &redis::Cmd,
        route: RoutingInfo,
    ) -> Option<Value> {
        let answer = self.control(control)?.route_command(cmd, route);
        if answer.is_err() {
            *control = None;
        }
        answer.ok()
    }

    /// `CLUSTER SLOTS` from some node, into the topology.
    fn read_map(&self, control: &mut Option<ClusterConnection>) {
        for _ in 0..MAP_TRIES {
            let answer = self.send(
                control,
                redis::cmd("CLUSTER").arg("SLOTS"),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            );
            if let Some(map) = answer.as_ref().and_then(parse_slots) {
                self.topology.learn(&map);
                return;
            }
        }
    }

    /// `PING`s each master that is down; one that answers is up again.
    fn probe(&self, control: &mut Option<ClusterConnection>) {
        for (index, addr) in self.topology.down_nodes() {
            let Some((host, port)) = addr
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
            else {
                continue;
            };
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
            if self.send(control, &redis::cmd("PING"), route).is_some() {
                self.topology.node_down[index].store(0, Ordering::Relaxed);
            }
        }
    }

    /// Adds connections until `want` are idle (or one cannot be made).
    fn fill(&self, want: usize) {
        while self.idle_len() < want {
            let Ok(conn) = self.client.get_connection() else {
                return;
            };
            bump(&self.connects);
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < self.max_idle {
                idle.push(Conn::Cluster(Box::new(conn)));
            }
        }
    }

    fn idle_len(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// `CLUSTER SLOTS`'s answer as `(first, last, "host:port")`, or `None` if
/// it is not one.
fn parse_slots(value: &Value) -> Option<Vec<(u16, u16, String)>> {
    let Value::Array(ranges) = value else {
        return None;
    };
    ranges
        .iter()
        .map(|range| {
            let Value::Array(parts) = range else {
                return None;
            };
            let slot = |v: &Value| match v {
                Value::Int(n) => u16::try_from(*n).ok(),
                _ => None,
            };
            let (first, last) = (slot(parts.first()?)?, slot(parts.get(1)?)?);
            let Value::Array(master) = parts.get(2)? else {
                return None;
            };
            let host = match master.first()? {
                Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
                Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            let port = match master.get(1)? {
                Value::Int(n) => u16::try_from(*n).ok()?,
                _ => return None,
            };
            Some((first, last, format!("{host}:{port}")))
        })
        .collect()
}

/// Sends `job` to the maker; a maker gone (it never ends while the pool
/// lives) loses it.
pub(crate) fn ask(jobs: &Mutex<Sender<Job>>, job: Job) {
    let _ = jobs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send(job);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_map_is_parsed_and_learned() {
        let int = Value::Int;
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let answer = Value::Array(vec![
            Value::Array(vec![
                int(0),
                int(5460),
                Value::Array(vec![bulk("10.0.0.1"), int(7000), bulk("id-a")]),
            ]),
            Value::Array(vec![
                int(5461),
                int(16383),
                Value::Array(vec![bulk("10.0.0.2"), int(7001), bulk("id-b")]),
                Value::Array(vec![bulk("10.0.0.3"), int(7002), bulk("replica")]),
            ]),
        ]);
        let map = parse_slots(&answer).unwrap();
        assert_eq!(
            map,
            vec![
                (0, 5460, "10.0.0.1:7000".to_owned()),
                (5461, 16383, "10.0.0.2:7001".to_owned())
            ]
        );
        assert_eq!(parse_slots(&Value::Nil), None);
        let t = Topology::new();
        t.learn(&map);
        // A failure in one slot backs off its master's slots, not others.
        assert!(!t.any_down());
        t.down(100, 5);
        assert!(t.any_down());
        assert_eq!(t.down_nodes(), vec![(0, "10.0.0.1:7000".to_owned())]);
        assert_eq!(t.down_until(100), UNTIL_PROBED);
        assert_eq!(t.down_until(5460), UNTIL_PROBED);
        assert_eq!(t.down_until(5461), 0);
        t.up(200);
        assert!(!t.any_down());
        assert_eq!(t.down_until(5460), 0);
        assert_eq!(t.down_until(100), 5, "slot 100's own back-off stays");
    }
}
