//! Packets on the wire. Each physical packet is a 4-byte header (3-byte payload length,
//! little-endian, then a sequence id) and its payload. A payload of [`MAX_PAYLOAD`] bytes
//! or more is cut into pieces of exactly [`MAX_PAYLOAD`] bytes, each with a header of its
//! own, ending with a shorter piece (possibly empty): one *logical* packet made of
//! several physical ones. Nothing else in the recorder reads a packet header.

use std::borrow::Cow;

/// Size of a physical packet's header.
pub const HEADER: usize = 4;

/// Largest payload of one physical packet; a payload of exactly this size continues in
/// the next packet.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

/// A 3-byte little-endian length (packet headers, compressed frame headers).
pub fn le_u24(bytes: [u8; 3]) -> usize {
    usize::from(bytes[0]) | usize::from(bytes[1]) << 8 | usize::from(bytes[2]) << 16
}

/// The payload length a physical packet header announces, once `buf` holds the whole
/// header.
pub fn payload_len(buf: &[u8]) -> Option<usize> {
    match buf.get(..HEADER)? {
        &[a, b, c, _] => Some(le_u24([a, b, c])),
        _ => None,
    }
}

/// The sequence id of the (first) physical packet in `raw`.
pub fn seq(raw: &[u8]) -> Option<u8> {
    raw.get(3).copied()
}

/// Where the logical packet at the front of a buffer ends, as far as the buffer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// It is complete: this many bytes, the header of every piece included.
    Complete(usize),
    /// The buffer must hold at least this many bytes to tell more: the next header, or
    /// the whole of the piece whose header it holds (a size checked before reading it).
    Need(usize),
}

/// Scans the logical packet at the front of `buf`.
pub fn scan(buf: &[u8]) -> Scan {
    let mut at = 0;
    loop {
        let Some(len) = payload_len(&buf[at..]) else {
            return Scan::Need(at + HEADER);
        };
        let end = at + HEADER + len;
        if buf.len() < end {
            return Scan::Need(end);
        }
        at = end;
        if len < MAX_PAYLOAD {
            return Scan::Complete(at);
        }
    }
}

/// Bytes the physical packet at the front of `buf` takes, header included; just the
/// header's size while the header is incomplete.
pub fn front_len(buf: &[u8]) -> usize {
    HEADER + payload_len(buf).unwrap_or(0)
}

/// One complete physical packet, as [`Pieces`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    /// Its length, header included.
    pub len: usize,
    /// Its payload when it starts a logical packet; `None` for a continuation piece.
    pub first: Option<&'a [u8]>,
}

/// Walks the complete physical packets of a stream, remembering across buffers whether
/// the next one continues a logical packet (a reader that looks at each logical packet's
/// first piece only: its first bytes and whether it continues).
#[derive(Debug, Default)]
pub struct Pieces {
    continuing: bool,
}

impl Pieces {
    /// The physical packet at the front of `buf`, if `buf` holds all of it.
    pub fn next_in<'a>(&mut self, buf: &'a [u8]) -> Option<Piece<'a>> {
        let len = payload_len(buf)?;
        let payload = buf.get(HEADER..HEADER + len)?;
        let continuation = std::mem::replace(&mut self.continuing, len == MAX_PAYLOAD);
        Some(Piece {
            len: HEADER + len,
            first: (!continuation).then_some(payload),
        })
    }
}

/// The payload of a logical packet, its pieces joined (`raw` holds the headers and
/// pieces; a truncated `raw` gives what it holds).
pub fn payload(raw: &[u8]) -> Cow<'_, [u8]> {
    if raw.len() < HEADER + MAX_PAYLOAD {
        return Cow::Borrowed(&raw[HEADER.min(raw.len())..]);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    while let Some(len) = payload_len(&raw[at..]) {
        out.extend_from_slice(&raw[at + HEADER..(at + HEADER + len).min(raw.len())]);
        at = (at + HEADER + len).min(raw.len());
    }
    Cow::Owned(out)
}

/// One physical packet: a header with sequence id `seq`, then `payload` (shorter than
/// [`MAX_PAYLOAD`]: what the recorder writes itself is small).
pub fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() < MAX_PAYLOAD);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut packet = Vec::with_capacity(HEADER + payload.len());
    packet.extend_from_slice(&len.to_le_bytes()[..3]);
    packet.push(seq);
    packet.extend_from_slice(payload);
    packet
}

/// Adds `delta` to the sequence id of every physical packet in `raw` (whole packets).
/// Where TLS is on for one hop and not the other, the SSLRequest took a sequence id on
/// that hop only, so the rest of the connection phase is numbered one apart.
pub fn shift_seq(raw: &mut [u8], delta: i8) {
    if delta == 0 {
        return;
    }
    let mut at = 0;
    while let Some(len) = payload_len(&raw[at..]) {
        raw[at + 3] = raw[at + 3].wrapping_add_signed(delta);
        at = (at + HEADER + len).min(raw.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A logical packet of `len` payload bytes, cut into pieces as a sender would.
    fn logical(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut left = len;
        let mut seq = 0u8;
        loop {
            let piece = left.min(MAX_PAYLOAD);
            out.extend_from_slice(&(piece as u32).to_le_bytes()[..3]);
            out.push(seq);
            out.extend(std::iter::repeat_n(b'x', piece));
            seq = seq.wrapping_add(1);
            left -= piece;
            if piece < MAX_PAYLOAD {
                return out;
            }
        }
    }

    #[test]
    fn scan_tells_what_to_read_next() {
        assert_eq!(scan(&[]), Scan::Need(4));
        assert_eq!(scan(&[3, 0]), Scan::Need(4));
        assert_eq!(scan(&[3, 0, 0, 0, 1]), Scan::Need(7));
        assert_eq!(scan(&[3, 0, 0, 0, 1, 2, 3, 9]), Scan::Complete(7));
        assert_eq!(scan(&[0, 0, 0, 5]), Scan::Complete(4));
        assert_eq!(front_len(&[3, 0]), 4);
        assert_eq!(front_len(&[3, 0, 0, 0]), 7);
    }

    #[test]
    fn a_packet_of_16_mib_or_more_continues_until_a_shorter_piece() {
        let big = logical(MAX_PAYLOAD);
        // Exactly MAX_PAYLOAD: a full piece, then an empty one.
        assert_eq!(big.len(), 2 * HEADER + MAX_PAYLOAD);
        assert_eq!(
            scan(&big[..HEADER + MAX_PAYLOAD]),
            Scan::Need(2 * HEADER + MAX_PAYLOAD)
        );
        assert_eq!(scan(&big), Scan::Complete(big.len()));
        assert_eq!(payload(&big).len(), MAX_PAYLOAD);
        let bigger = logical(MAX_PAYLOAD + 10);
        assert_eq!(scan(&bigger), Scan::Complete(bigger.len()));
        assert_eq!(payload(&bigger).len(), MAX_PAYLOAD + 10);
        // The pieces: only the first starts a logical packet.
        let mut pieces = Pieces::default();
        let first = pieces.next_in(&bigger).unwrap();
        assert_eq!(first.len, HEADER + MAX_PAYLOAD);
        assert_eq!(first.first.map(<[u8]>::len), Some(MAX_PAYLOAD));
        let second = pieces.next_in(&bigger[first.len..]).unwrap();
        assert_eq!((second.len, second.first), (HEADER + 10, None));
        let next = pieces.next_in(&[1, 0, 0, 2, 0x0e]).unwrap();
        assert_eq!(next.first, Some(&[0x0e][..]));
    }

    #[test]
    fn truncated_input_is_never_a_panic() {
        let mut pieces = Pieces::default();
        assert_eq!(pieces.next_in(&[5, 0, 0, 0, 1]), None);
        assert_eq!(pieces.next_in(&[5, 0]), None);
        assert_eq!(payload(&[]).len(), 0);
        assert_eq!(payload(&[9, 0, 0, 0, 1]), &[1][..]);
        let mut cut = logical(MAX_PAYLOAD + 10);
        cut.truncate(cut.len() - 3);
        assert_eq!(payload(&cut).len(), MAX_PAYLOAD + 7);
        let mut raw = [9, 0, 0, 1, 1];
        shift_seq(&mut raw, 1);
        assert_eq!(raw[3], 2);
        assert_eq!(seq(&[1, 0]), None);
    }

    #[test]
    fn sequence_ids_shift_in_every_piece() {
        let mut raw = [&[1, 0, 0, 2, 0xaa][..], &[0, 0, 0, 3]].concat();
        shift_seq(&mut raw, -1);
        assert_eq!((raw[3], raw[8]), (1, 2));
        assert_eq!(packet(7, b"ab"), [2, 0, 0, 7, b'a', b'b']);
    }
}
