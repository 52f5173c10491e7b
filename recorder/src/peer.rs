//! One side of a relayed connection: a socket (plain or TLS) and its read buffer. It
//! reads whole logical packets (the codec's framing says where they end), decodes
//! compressed frames for the parser while keeping them to relay as they came, and
//! writes.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::codec::CodecError;
use crate::codec::compress::{Algorithm, Inflow};
use crate::codec::framing::{self, HEADER, Scan};
use crate::codec::handshake::{self, SSL_REQUEST_LEN};
use crate::error::{Error, Side};
use crate::tls::Stream;

/// Largest logical packet accepted from a client: MySQL's own max_allowed_packet limit.
/// A bigger length is a broken or hostile client, not a query.
pub(crate) const MAX_PACKET: usize = 1 << 30;

/// Initial read buffer per direction; grows for big packets, shrinks back after.
const BUF: usize = 16 * 1024;

/// While a response is awaited the client's socket is still read, to notice at once
/// that it went away (the upstream is then closed, so the server aborts the statement as
/// it would for a direct client). What a pipelining client sends meanwhile is kept, up
/// to this much; beyond it the rest waits in the kernel until the response is done.
const READ_AHEAD: usize = 1024 * 1024;

/// A socket (plain or TLS) with its read buffer. Reads only ever append to `buf`, so a
/// read that is cancelled (in `select!`) loses nothing.
pub(crate) struct Peer {
    pub(crate) stream: Stream,
    pub(crate) buf: BytesMut,
    side: Side,
    /// Largest logical packet accepted (headers included).
    pub(crate) max_packet: usize,
    /// Set once the connection speaks the compressed protocol: `buf` then holds the
    /// frames' decompressed content, and what is relayed is the frames themselves.
    comp: Option<Box<Inflow>>,
}

impl Peer {
    pub(crate) fn new(stream: TcpStream, side: Side) -> Self {
        Peer {
            stream: Stream::Tcp(stream),
            buf: BytesMut::with_capacity(BUF),
            side,
            max_packet: MAX_PACKET,
            comp: None,
        }
    }

    /// Switches to the compressed protocol (after the login's OK, as clients and servers
    /// do). Anything already read is frames.
    pub(crate) fn compress(&mut self, algorithm: Algorithm) {
        let read = self.buf.split();
        self.comp = Some(Box::new(Inflow::new(algorithm, read)));
    }

    /// Takes the first `n` bytes of the (plain) buffer: the packet bytes, and what to
    /// relay for them — the same bytes, or under compression the frames that carried
    /// them (see [`crate::codec::compress`]).
    pub(crate) fn take(&mut self, n: usize) -> Taken {
        let plain = self.buf.split_to(n);
        let frames = self.comp.as_mut().map(|z| z.consume(n));
        Taken { plain, frames }
    }

    /// Everything read and not yet relayed, for a switch to blind relaying.
    pub(crate) fn leftover(&mut self) -> BytesMut {
        match &mut self.comp {
            Some(z) => {
                self.buf.clear();
                z.leftover()
            }
            None => self.buf.split(),
        }
    }

    /// Decodes the compressed frames read so far into `buf` (nothing when plain).
    fn decode(&mut self) -> Result<(), Error> {
        if let Some(z) = &mut self.comp {
            z.decode(&mut self.buf)
                .map_err(|e| Error::packet(self.side)(e.into()))?;
        }
        Ok(())
    }

    /// Reads once from the socket into the buffer reads go to: `buf`, or the undecoded
    /// frames. Returns the bytes read (0 at end of stream).
    async fn read_some(&mut self) -> std::io::Result<usize> {
        let to = match &mut self.comp {
            Some(z) => z.raw_mut(),
            None => &mut self.buf,
        };
        to.reserve(BUF);
        self.stream.read_buf(to).await
    }

    /// The client's first packet, read without reading past it: if it is an SSLRequest,
    /// the bytes after it are the TLS ClientHello, which belong to the TLS layer, not to
    /// our buffer. (Only a 32-byte packet can be an SSLRequest; others read as usual.)
    pub(crate) async fn first_packet(&mut self) -> Result<Option<usize>, Error> {
        debug_assert!(self.buf.is_empty());
        let mut header = [0u8; HEADER];
        match self.stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        self.buf.extend_from_slice(&header);
        if handshake::may_be_ssl_request(&header) {
            self.buf.resize(HEADER + SSL_REQUEST_LEN, 0);
            self.stream.read_exact(&mut self.buf[HEADER..]).await?;
        }
        self.next_packet().await
    }

    /// The plain socket and buffer of a peer about to switch to TLS: only a plain socket
    /// can switch, and only with nothing buffered (what follows belongs to TLS).
    fn into_plain(self) -> Result<(TcpStream, BytesMut), Error> {
        let Stream::Tcp(tcp) = self.stream else {
            return Err(Error::tls(self.side, "TLS requested twice"));
        };
        if !self.buf.is_empty() {
            return Err(Error::malformed(self.side, "data before the TLS handshake"));
        }
        Ok((tcp, self.buf))
    }

    /// Switches a client that sent an SSLRequest to TLS, the recorder acting as server.
    pub(crate) async fn accept_tls(self, acceptor: &TlsAcceptor) -> Result<Peer, Error> {
        let (side, max_packet) = (self.side, self.max_packet);
        let (tcp, buf) = self.into_plain()?;
        let tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| Error::tls(side, format!("handshake failed: {e}")))?;
        Ok(Peer {
            stream: Stream::Server(Box::new(tls)),
            buf,
            side,
            max_packet,
            comp: None,
        })
    }

    /// Switches the upstream to TLS after the SSLRequest was sent, the recorder acting as
    /// client.
    pub(crate) async fn connect_tls(
        self,
        connector: &TlsConnector,
        name: &rustls::pki_types::ServerName<'static>,
    ) -> Result<Peer, Error> {
        let (side, max_packet) = (self.side, self.max_packet);
        let (tcp, buf) = self.into_plain()?;
        let tls = connector
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| Error::tls(side, format!("handshake failed: {e}")))?;
        Ok(Peer {
            stream: Stream::Client(Box::new(tls)),
            buf,
            side,
            max_packet,
            comp: None,
        })
    }

    /// Reads until `n` bytes are buffered; `false` at a clean end of stream.
    pub(crate) async fn fill(&mut self, n: usize) -> Result<bool, Error> {
        loop {
            // Decoding right after each read (never across an await) keeps a cancelled
            // fill from losing anything: the read bytes stay in the frame buffer.
            self.decode()?;
            if self.buf.len() >= n {
                return Ok(true);
            }
            if self.comp.is_none() {
                self.buf.reserve(n - self.buf.len());
            }
            if self.read_some().await? == 0 {
                let partial = self.comp.as_ref().is_some_and(|z| z.has_raw());
                if self.buf.is_empty() && !partial {
                    return Ok(false);
                }
                return Err(Error::malformed(
                    self.side,
                    "connection closed inside a packet",
                ));
            }
        }
    }

    /// Length of the complete logical packet (all continuation pieces, headers
    /// included) at the front of the buffer, reading as needed. `None` at end of stream.
    pub(crate) async fn next_packet(&mut self) -> Result<Option<usize>, Error> {
        loop {
            let need = match framing::scan(&self.buf) {
                Scan::Complete(n) => return Ok(Some(n)),
                Scan::Need(n) => n,
            };
            // Checked on the header, before the body is read: refused, it costs nothing.
            if need > self.max_packet {
                return Err(Error::packet(self.side)(CodecError::TooLarge {
                    size: need,
                    limit: self.max_packet,
                }));
            }
            if !self.fill(need).await? {
                return Ok(None);
            }
        }
    }

    /// Reads whatever the peer sends next into the buffer (kept for later), up to
    /// [`READ_AHEAD`] buffered bytes; past that it waits forever, so that it can sit in a
    /// `select!` beside the read that matters. An end of stream or a failed read is
    /// [`Error::ClientGone`]: the only reader is the wait for a response.
    pub(crate) async fn read_ahead(&mut self) -> Result<(), Error> {
        let buffered = self.buf.len() + self.comp.as_ref().map_or(0, |z| z.buffered());
        if buffered >= READ_AHEAD {
            std::future::pending::<()>().await;
        }
        match self.read_some().await {
            Ok(0) | Err(_) => Err(Error::ClientGone),
            Ok(_) => Ok(()),
        }
    }

    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.stream.write_all(bytes).await?;
        // A no-op on TCP; over TLS it pushes out records rustls may still hold.
        self.stream.flush().await?;
        Ok(())
    }

    /// Gives memory back after an unusually large packet.
    pub(crate) fn shrink(&mut self) {
        const ABOVE: usize = 4 * 1024 * 1024;
        if self.buf.capacity() > ABOVE && self.buf.is_empty() {
            self.buf = BytesMut::with_capacity(BUF);
        }
        if let Some(z) = &mut self.comp {
            z.shrink(ABOVE);
        }
    }
}

/// A packet taken off a peer's buffer, and what relays it.
pub(crate) struct Taken {
    pub(crate) plain: BytesMut,
    /// Under compression, the frames to relay instead of `plain`.
    frames: Option<BytesMut>,
}

impl Taken {
    /// The bytes to send the other side.
    pub(crate) fn wire(&self) -> &[u8] {
        self.frames.as_deref().unwrap_or(&self.plain)
    }
}
