//! A session as bytes, for stores outside the process (a shared tier).

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::session::{PeerKey, ProtocolVersion, Session, SessionError};

/// The first bytes of every encoded session: a tag and the format version.
const MAGIC: [u8; 4] = *b"TSC\x01";

/// Flag bit: a peer key follows.
const HAS_PEER: u8 = 1;

/// Why bytes could not be decoded as a session. Decoding never panics and
/// never allocates more than the input's length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes do not start with this crate's tag and format version.
    #[error("not an encoded session, or a format version this build does not read")]
    Format,
    /// The bytes end before the session does.
    #[error("the encoded session is truncated")]
    Truncated,
    /// Bytes follow the end of the session.
    #[error("{0} bytes follow the encoded session")]
    Trailing(usize),
    /// Flags this build does not know are set.
    #[error("unknown flags {0:#04x} in the encoded session")]
    Flags(u8),
    /// The id or context inside is not valid.
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl Session {
    /// The session as bytes that [`Session::decode`] turns back into an
    /// equal session: id, context, version, time, timeout, peer and state.
    /// The resumable flag is not kept (a store keeps only sessions that
    /// may resume). The bytes hold the secret state, so they are wiped on
    /// drop.
    ///
    /// ```
    /// use tlscache_policy::Session;
    ///
    /// let session = Session::builder(b"id", b"secret".to_vec()).sid_ctx(b"web").build()?;
    /// let bytes = session.encode();
    /// let back = Session::decode(&bytes)?;
    /// assert_eq!((back.id(), back.sid_ctx(), back.state()), (session.id(), session.sid_ctx(), session.state()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let id = self.id().as_bytes();
        let ctx = self.sid_ctx_bytes();
        let peer = self.peer().map(PeerKey::as_bytes);
        let state = self.state();
        let mut out = Zeroizing::new(Vec::with_capacity(
            MAGIC.len()
                + 2
                + id.len()
                + ctx.len()
                + 2
                + 8
                + 8
                + 1
                + 16
                + state.len()
                + peer.map_or(0, <[u8]>::len),
        ));
        out.extend_from_slice(&MAGIC);
        // Ids and contexts hold at most 32 bytes, so their lengths fit a byte.
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.push(ctx.len() as u8);
        out.extend_from_slice(ctx);
        out.extend_from_slice(&self.version().0.to_be_bytes());
        out.extend_from_slice(&self.time().to_be_bytes());
        out.extend_from_slice(&self.timeout().to_be_bytes());
        out.push(if peer.is_some() { HAS_PEER } else { 0 });
        if let Some(peer) = peer {
            out.extend_from_slice(&(peer.len() as u64).to_be_bytes());
            out.extend_from_slice(peer);
        }
        out.extend_from_slice(&(state.len() as u64).to_be_bytes());
        out.extend_from_slice(state);
        out
    }

    /// The session [`Session::encode`] made these bytes from, resumable;
    /// or why they are not one.
    pub fn decode(bytes: &[u8]) -> Result<Arc<Session>, DecodeError> {
        let mut r = Reader(bytes);
        if r.take(MAGIC.len()).map_err(|_| DecodeError::Format)? != MAGIC {
            return Err(DecodeError::Format);
        }
        let id_len = r.byte()?;
        let id = r.take(usize::from(id_len))?;
        let ctx_len = r.byte()?;
        let ctx = r.take(usize::from(ctx_len))?;
        let version = u16::from_be_bytes(r.array()?);
        let time = u64::from_be_bytes(r.array()?);
        let timeout = u64::from_be_bytes(r.array()?);
        let flags = r.byte()?;
        if flags & !HAS_PEER != 0 {
            return Err(DecodeError::Flags(flags));
        }
        let peer = match flags & HAS_PEER {
            0 => None,
            _ => Some(PeerKey::new(r.sized()?)),
        };
        let state = r.sized()?;
        if !r.0.is_empty() {
            return Err(DecodeError::Trailing(r.0.len()));
        }
        let mut builder = Session::builder(id, state.to_vec())
            .sid_ctx(ctx)
            .version(ProtocolVersion(version))
            .time(time)
            .timeout(timeout);
        if let Some(peer) = peer {
            builder = builder.peer(peer);
        }
        Ok(builder.build()?)
    }
}

/// A cursor over the input that refuses to read past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A u64 length, then that many bytes.
    fn sized(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = u64::from_be_bytes(self.array()?);
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn session() -> Arc<Session> {
        Session::builder(&[9; 32], vec![1, 2, 3])
            .sid_ctx(b"ctx")
            .version(ProtocolVersion::TLS1_3)
            .time(1_700_000_000)
            .timeout(u64::MAX)
            .peer(PeerKey::new(b"example.com:443"))
            .build()
            .unwrap()
    }

    fn same(a: &Session, b: &Session) -> bool {
        (
            a.id(),
            a.sid_ctx(),
            a.version(),
            a.time(),
            a.timeout(),
            a.peer(),
            a.state(),
        ) == (
            b.id(),
            b.sid_ctx(),
            b.version(),
            b.time(),
            b.timeout(),
            b.peer(),
            b.state(),
        )
    }

    #[test]
    fn every_field_survives() {
        let s = session();
        assert!(same(&s, &Session::decode(&s.encode()).unwrap()));
        let plain = Session::builder(b"x", Vec::new()).build().unwrap();
        assert!(same(&plain, &Session::decode(&plain.encode()).unwrap()));
    }

    #[test]
    fn damaged_bytes_are_typed_errors() {
        let bytes = session().encode();
        assert_eq!(Session::decode(b"").unwrap_err(), DecodeError::Format);
        assert_eq!(
            Session::decode(b"TSC\x02").unwrap_err(),
            DecodeError::Format
        );
        for cut in MAGIC.len()..bytes.len() {
            assert_eq!(
                Session::decode(&bytes[..cut]).unwrap_err(),
                DecodeError::Truncated,
                "cut at {cut}"
            );
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(
            Session::decode(&longer).unwrap_err(),
            DecodeError::Trailing(1)
        );
        let mut empty_id = bytes.to_vec();
        empty_id[4] = 0;
        assert!(Session::decode(&empty_id).is_err());
        let mut long_ctx = MAGIC.to_vec();
        long_ctx.extend_from_slice(&[1, 7, 33]);
        long_ctx.extend_from_slice(&[0; 33 + 2 + 16 + 1 + 8]);
        assert_eq!(
            Session::decode(&long_ctx).unwrap_err(),
            DecodeError::Session(SessionError::ContextTooLong(33))
        );
    }

    #[test]
    fn a_huge_length_is_truncation_not_an_allocation() {
        let mut bytes = session().encode().to_vec();
        let at = bytes.len() - 3 - 8;
        bytes[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(Session::decode(&bytes).unwrap_err(), DecodeError::Truncated);
    }

    proptest! {
        #[test]
        fn round_trips(
            id in proptest::collection::vec(any::<u8>(), 1..=32),
            ctx in proptest::collection::vec(any::<u8>(), 0..=32),
            version: u16, time: u64, timeout: u64,
            peer in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            state in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut b = Session::builder(&id, state).sid_ctx(&ctx).version(ProtocolVersion(version)).time(time).timeout(timeout);
            if let Some(peer) = peer {
                b = b.peer(PeerKey::new(peer));
            }
            let s = b.build().unwrap();
            prop_assert!(same(&s, &Session::decode(&s.encode()).unwrap()));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128), keep_magic: bool) {
            let mut bytes = bytes;
            if keep_magic {
                bytes.splice(0..0, MAGIC);
            }
            // Whatever decodes is canonical: it encodes back to the same bytes.
            if let Ok(session) = Session::decode(&bytes) {
                prop_assert_eq!(&session.encode()[..], &bytes[..]);
            }
        }
    }
}
