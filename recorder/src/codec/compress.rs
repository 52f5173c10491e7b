//! The compressed protocol (CLIENT_COMPRESS, zlib; MySQL 8's
//! CLIENT_ZSTD_COMPRESSION_ALGORITHM, zstd) on one hop, as the relay sees it.
//!
//! Design: the recorder relays the compressed frames *untouched*, byte for byte and in
//! the order they came, and feeds a decompressed copy of their content to the plain
//! packet state machine. The alternative, decompressing and compressing again toward the
//! other side, would cost a compression per byte relayed and, worse, put the recorder in
//! charge of both hops' compressed sequence ids — and clients check those, and also the
//! plain sequence ids inside, which servers resynchronise with the compressed ones at
//! every flush (mysql_common's codec accepts either). Relaying the frames as they are
//! keeps every id exactly what the two ends would have seen without the recorder.
//!
//! A frame is relayed as soon as any of its content has been consumed by the state
//! machine. That can only be early, never late: a server flushes at the end of each
//! response (and after a LOCAL INFILE request), so a frame never holds the end of one
//! response and the start of the next; a client that packs two pipelined commands in one
//! frame gets both relayed with the first, as a direct server would have read them.
//!
//! Frame: 3-byte compressed length, 1-byte compressed sequence id, 3-byte uncompressed
//! length (0: the content is stored, not compressed), then the content. The content is
//! a stretch of the plain packet stream; plain packets may straddle frames.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use mysql_common::proto::codec::CompDecoder;

use super::framing::le_u24;

/// Size of a compressed frame's header.
pub const HEADER: usize = 7;

/// Largest content of one frame: both lengths are 3 bytes.
const MAX_FRAME: usize = 0xFF_FFFF;

/// The algorithm a connection negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// CLIENT_COMPRESS.
    Zlib,
    /// CLIENT_ZSTD_COMPRESSION_ALGORITHM (MySQL 8.0.18+; MariaDB has none).
    Zstd,
}

/// A frame that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("compressed frame: {0}")]
    Zlib(#[from] mysql_common::proto::codec::error::PacketCodecError),
    #[error("zstd frame: {0}")]
    Zstd(std::io::Error),
    #[error("compressed frame declares {declared} bytes but holds {got}")]
    Length { declared: usize, got: usize },
}

/// One direction of a compressed hop: bytes read, frames decoded and waiting to be
/// relayed, and how far the consumer has got.
#[derive(Debug)]
pub struct Inflow {
    algorithm: Algorithm,
    /// Bytes read from the socket, not yet decoded (at most one partial frame beyond what
    /// the reader asked for: see `Peer::fill`; `Peer::read_ahead` bounds it otherwise).
    raw: BytesMut,
    /// Decoded frames not yet relayed, as read (bounded by the decoded content not yet
    /// consumed, itself bounded by the packet the reader waits for).
    pending: BytesMut,
    /// (frame length, content length) of each frame in `pending`, oldest first.
    frames: VecDeque<(usize, usize)>,
    /// Content bytes whose frame was already relayed but which are not yet consumed.
    ahead: usize,
}

impl Inflow {
    /// `read`: bytes already read past the switch to compression (a client that did not
    /// wait for its login's OK); they are frames.
    pub fn new(algorithm: Algorithm, read: BytesMut) -> Self {
        Inflow {
            algorithm,
            raw: read,
            pending: BytesMut::new(),
            frames: VecDeque::new(),
            ahead: 0,
        }
    }

    /// Where socket reads go.
    pub fn raw_mut(&mut self) -> &mut BytesMut {
        &mut self.raw
    }

    /// Bytes read and not yet relayed or decoded.
    pub fn buffered(&self) -> usize {
        self.raw.len() + self.pending.len()
    }

    /// Whether undecoded bytes are left (a partial frame, or frames not yet asked for).
    pub fn has_raw(&self) -> bool {
        !self.raw.is_empty()
    }

    /// Decodes every complete frame read so far, appending its content to `plain`.
    pub fn decode(&mut self, plain: &mut BytesMut) -> Result<(), FrameError> {
        while self.raw.len() >= HEADER {
            let clen = le_u24([self.raw[0], self.raw[1], self.raw[2]]);
            if self.raw.len() < HEADER + clen {
                break;
            }
            let ulen = le_u24([self.raw[4], self.raw[5], self.raw[6]]);
            let before = plain.len();
            self.pending.extend_from_slice(&self.raw[..HEADER + clen]);
            match (self.algorithm, ulen) {
                // Stored, or zlib: mysql_common's decoder (it checks the lengths and
                // inflates into a buffer of exactly the declared size).
                (Algorithm::Zlib, _) | (Algorithm::Zstd, 0) => {
                    let mut decoder = CompDecoder::Idle;
                    if decoder.decode(&mut self.raw, plain, MAX_FRAME)?.is_none() {
                        return Err(FrameError::Length {
                            declared: clen,
                            got: self.raw.len(),
                        });
                    }
                }
                (Algorithm::Zstd, _) => {
                    // Bounded by the declared length: zstd::bulk refuses to write more.
                    let out = zstd::bulk::decompress(&self.raw[HEADER..HEADER + clen], ulen)
                        .map_err(FrameError::Zstd)?;
                    if out.len() != ulen {
                        return Err(FrameError::Length {
                            declared: ulen,
                            got: out.len(),
                        });
                    }
                    plain.extend_from_slice(&out);
                    self.raw.advance(HEADER + clen);
                }
            }
            self.frames.push_back((HEADER + clen, plain.len() - before));
        }
        Ok(())
    }

    /// The consumer took `n` more content bytes: the frames to relay for them (empty
    /// when their frames already went out).
    pub fn consume(&mut self, n: usize) -> BytesMut {
        let mut need = n;
        let mut out = 0;
        while need > self.ahead {
            need -= self.ahead;
            let Some((frame, content)) = self.frames.pop_front() else {
                // More consumed than decoded: cannot happen (the consumer reads the
                // decoded buffer); relay what there is.
                self.ahead = 0;
                return self.pending.split_to(out);
            };
            out += frame;
            self.ahead = content;
        }
        self.ahead -= need;
        // Frames with no content left at the front go with these.
        while self.ahead == 0
            && let Some(&(frame, 0)) = self.frames.front()
        {
            out += frame;
            self.frames.pop_front();
        }
        self.pending.split_to(out)
    }

    /// Gives memory back after an unusually large frame (a frame holds up to 16 MiB, and
    /// emptied buffers keep their capacity).
    pub fn shrink(&mut self, above: usize) {
        for b in [&mut self.raw, &mut self.pending] {
            if b.is_empty() && b.capacity() > above {
                *b = BytesMut::new();
            }
        }
    }

    /// Everything read and not yet relayed, for a switch to blind relaying.
    pub fn leftover(&mut self) -> BytesMut {
        self.frames.clear();
        self.ahead = 0;
        let mut out = self.pending.split();
        out.extend_from_slice(&self.raw);
        self.raw.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of `content`, compressed by `algorithm` (or stored).
    fn frame(seq: u8, content: &[u8], algorithm: Option<Algorithm>) -> Vec<u8> {
        let (body, ulen) = match algorithm {
            None => (content.to_vec(), 0),
            Some(Algorithm::Zstd) => (zstd::bulk::compress(content, 3).unwrap(), content.len()),
            Some(Algorithm::Zlib) => {
                let mut src = BytesMut::from(content);
                let mut dst = BytesMut::new();
                mysql_common::proto::codec::compress(
                    seq,
                    flate2::Compression::fast(),
                    MAX_FRAME,
                    &mut src,
                    &mut dst,
                )
                .unwrap();
                return dst.to_vec();
            }
        };
        let mut out = (body.len() as u32).to_le_bytes()[..3].to_vec();
        out.push(seq);
        out.extend_from_slice(&(ulen as u32).to_le_bytes()[..3]);
        out.extend_from_slice(&body);
        out
    }

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        p.push(seq);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn frames_are_relayed_untouched_once_their_content_is_consumed() {
        // Two plain packets; the second straddles a zlib frame and a stored one.
        let query = packet(
            0,
            &[b"\x03SELECT '".as_slice(), &[b'x'; 200], b"'"].concat(),
        );
        let ok = packet(1, &[0, 0, 0, 2, 0, 0, 0]);
        let stream = [query.clone(), ok.clone()].concat();
        let cut = query.len() + 3;
        let f1 = frame(0, &stream[..cut], Some(Algorithm::Zlib));
        let f2 = frame(1, &stream[cut..], None);
        let mut inflow = Inflow::new(Algorithm::Zlib, BytesMut::new());
        let mut plain = BytesMut::new();
        // Half a frame decodes nothing.
        inflow.raw_mut().extend_from_slice(&f1[..10]);
        inflow.decode(&mut plain).unwrap();
        assert!(plain.is_empty());
        inflow.raw_mut().extend_from_slice(&f1[10..]);
        inflow.raw_mut().extend_from_slice(&f2);
        inflow.decode(&mut plain).unwrap();
        assert_eq!(plain[..], stream[..]);
        // The query consumed: the first frame goes, byte for byte.
        assert_eq!(inflow.consume(query.len())[..], f1[..]);
        // The rest of the first frame's content went with it; then the second frame.
        assert!(inflow.consume(3).is_empty());
        assert_eq!(inflow.consume(ok.len() - 3)[..], f2[..]);
        assert_eq!(inflow.buffered(), 0);
    }

    #[test]
    fn zstd_frames_decode_and_bad_frames_are_errors() {
        let content = [b'z'; 300];
        let f = frame(5, &content, Some(Algorithm::Zstd));
        let mut inflow = Inflow::new(Algorithm::Zstd, BytesMut::from(&f[..]));
        let mut plain = BytesMut::new();
        inflow.decode(&mut plain).unwrap();
        assert_eq!(plain[..], content[..]);
        assert_eq!(inflow.consume(300)[..], f[..]);
        // A frame whose content inflates to less than it declares.
        let mut bad = frame(0, &content, Some(Algorithm::Zlib));
        bad[4] = bad[4].wrapping_add(1);
        let mut inflow = Inflow::new(Algorithm::Zlib, BytesMut::from(&bad[..]));
        assert!(inflow.decode(&mut BytesMut::new()).is_err());
        // A zstd frame claiming more than it holds.
        let mut bad = frame(0, &content, Some(Algorithm::Zstd));
        bad[4] = bad[4].wrapping_add(1);
        let mut inflow = Inflow::new(Algorithm::Zstd, BytesMut::from(&bad[..]));
        assert!(inflow.decode(&mut BytesMut::new()).is_err());
    }

    #[test]
    fn leftover_is_every_byte_not_relayed() {
        let f = frame(0, &packet(0, b"\x0e"), None);
        let mut raw = BytesMut::from(&f[..]);
        raw.extend_from_slice(&f[..4]);
        let mut inflow = Inflow::new(Algorithm::Zlib, raw);
        inflow.decode(&mut BytesMut::new()).unwrap();
        assert_eq!(inflow.leftover()[..], [&f[..], &f[..4]].concat()[..]);
    }
}
