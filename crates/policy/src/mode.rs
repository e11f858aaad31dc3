//! `SSL_CTX_set_session_cache_mode`'s bits.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

/// A session cache mode, with OpenSSL's bit values.
///
/// Like OpenSSL's `long`, a mode keeps every bit it is given: bits with no
/// meaning here are stored and reported back by
/// [`SessionCache::mode`](crate::SessionCache::mode) and change nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheMode(u64);

impl CacheMode {
    /// `SSL_SESS_CACHE_OFF`: no sessions are stored automatically.
    pub const OFF: Self = Self(0x0);
    /// `SSL_SESS_CACHE_CLIENT`: client sessions are stored.
    pub const CLIENT: Self = Self(0x1);
    /// `SSL_SESS_CACHE_SERVER`: server sessions are stored. The default.
    pub const SERVER: Self = Self(0x2);
    /// `SSL_SESS_CACHE_BOTH`.
    pub const BOTH: Self = Self(0x3);
    /// `SSL_SESS_CACHE_NO_AUTO_CLEAR`: no flush every 255 connections.
    pub const NO_AUTO_CLEAR: Self = Self(0x80);
    /// `SSL_SESS_CACHE_NO_INTERNAL_LOOKUP`: server lookups skip the internal
    /// cache and go to the external store.
    pub const NO_INTERNAL_LOOKUP: Self = Self(0x100);
    /// `SSL_SESS_CACHE_NO_INTERNAL_STORE`: new sessions and external hits
    /// are not stored internally (`add_session` still works).
    pub const NO_INTERNAL_STORE: Self = Self(0x200);
    /// `SSL_SESS_CACHE_NO_INTERNAL`.
    pub const NO_INTERNAL: Self = Self(0x300);
    /// `SSL_SESS_CACHE_UPDATE_TIME` (OpenSSL 3.2 and later):
    /// [`add_session`](crate::SessionCache::add_session) sets the session's
    /// creation time to now, so its timeout counts from its latest add,
    /// the identical object included.
    pub const UPDATE_TIME: Self = Self(0x400);

    /// The mode with exactly these bits.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The mode's bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
}

impl Default for CacheMode {
    fn default() -> Self {
        Self::SERVER
    }
}

impl BitOr for CacheMode {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for CacheMode {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for CacheMode {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl fmt::Debug for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(CacheMode, &str); 6] = [
            (CacheMode::CLIENT, "CLIENT"),
            (CacheMode::SERVER, "SERVER"),
            (CacheMode::NO_AUTO_CLEAR, "NO_AUTO_CLEAR"),
            (CacheMode::NO_INTERNAL_LOOKUP, "NO_INTERNAL_LOOKUP"),
            (CacheMode::NO_INTERNAL_STORE, "NO_INTERNAL_STORE"),
            (CacheMode::UPDATE_TIME, "UPDATE_TIME"),
        ];
        let mut rest = self.0;
        let mut first = true;
        write!(f, "CacheMode(")?;
        for (mode, name) in NAMES {
            if self.contains(mode) {
                write!(f, "{}{name}", if first { "" } else { " | " })?;
                rest &= !mode.0;
                first = false;
            }
        }
        if rest != 0 || first {
            write!(f, "{}{rest:#x}", if first { "" } else { " | " })?;
        }
        write!(f, ")")
    }
}
