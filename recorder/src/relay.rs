//! One client connection: handshake, then command by command, relaying bytes as they
//! arrive and capturing what each command was and how it ended.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use captures::fingerprint::Fingerprinter;
use captures::{CloseReason, Cmd, Command, ConnClose, ConnOpen, Outcome, Record, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Side};
use crate::protocol::{
    self, CLIENT_COMPRESS, CLIENT_SSL, CLIENT_ZSTD, COM_QUIT, COM_RESET_CONNECTION, COM_STMT_CLOSE,
    COM_STMT_EXECUTE, COM_STMT_PREPARE, COM_STMT_RESET, COM_STMT_SEND_LONG_DATA, Expect,
    MAX_PAYLOAD, Response, Step, StmtInfo,
};
use crate::sink::Sink;

/// CLIENT_DEPRECATE_EOF: result sets end with an OK packet instead of EOF.
const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;

/// Largest logical packet accepted from a client: MySQL's own max_allowed_packet limit.
/// A bigger length is a broken or hostile client, not a query.
const MAX_PACKET: usize = 1 << 30;

/// Initial read buffer per direction; grows for big packets, shrinks back after.
const BUF: usize = 16 * 1024;

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub upstream: String,
    pub sink: Sink,
    pub origin: Instant,
    pub redact: bool,
    pub next_conn: AtomicU64,
    pub stats: Stats,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub active: AtomicU64,
    pub commands: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub failed: AtomicU64,
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A socket with its read buffer. Reads only ever append to `buf`, so a read that is
/// cancelled (in `select!`) loses nothing.
struct Peer {
    stream: TcpStream,
    buf: BytesMut,
    side: Side,
}

impl Peer {
    fn new(stream: TcpStream, side: Side) -> Self {
        Peer {
            stream,
            buf: BytesMut::with_capacity(BUF),
            side,
        }
    }

    /// Reads until `n` bytes are buffered; `false` at a clean end of stream.
    async fn fill(&mut self, n: usize) -> Result<bool, Error> {
        while self.buf.len() < n {
            self.buf.reserve((n - self.buf.len()).max(BUF));
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(false);
                }
                return Err(Error::malformed(
                    self.side,
                    "connection closed inside a packet",
                ));
            }
        }
        Ok(true)
    }

    /// Length of the complete logical packet (all continuation pieces, headers
    /// included) at the front of the buffer, reading as needed. `None` at end of stream.
    async fn next_packet(&mut self) -> Result<Option<usize>, Error> {
        let mut at = 0;
        loop {
            if !self.fill(at + 4).await? {
                return Ok(None);
            }
            let len = usize::from(self.buf[at])
                | usize::from(self.buf[at + 1]) << 8
                | usize::from(self.buf[at + 2]) << 16;
            if at + 4 + len > MAX_PACKET {
                return Err(Error::malformed(
                    self.side,
                    format!("packet of {} bytes", at + 4 + len),
                ));
            }
            if !self.fill(at + 4 + len).await? {
                return Ok(None);
            }
            at += 4 + len;
            if len < MAX_PAYLOAD {
                return Ok(Some(at));
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }
}

/// The payload of a logical packet (`raw` holds headers and pieces).
fn payload(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if raw.len() < 4 + MAX_PAYLOAD {
        return std::borrow::Cow::Borrowed(&raw[4.min(raw.len())..]);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    while at + 4 <= raw.len() {
        let len =
            usize::from(raw[at]) | usize::from(raw[at + 1]) << 8 | usize::from(raw[at + 2]) << 16;
        out.extend_from_slice(&raw[at + 4..(at + 4 + len).min(raw.len())]);
        at += 4 + len;
    }
    std::borrow::Cow::Owned(out)
}

/// Handles one accepted client until either side closes.
pub async fn handle(client: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    shared.stats.active.fetch_add(1, Ordering::Relaxed);
    let _ = client.set_nodelay(true);
    let t_open = shared.now();
    let server = match TcpStream::connect(&shared.upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(conn, %peer, "upstream {} unreachable: {e}", shared.upstream);
            refuse(
                client,
                &format!("recorder: cannot reach upstream {}: {e}", shared.upstream),
            )
            .await;
            shared.stats.active.fetch_sub(1, Ordering::Relaxed);
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let mut c = Peer::new(client, Side::Client);
    let mut s = Peer::new(server, Side::Server);
    let mut session = Session {
        conn,
        shared: shared.clone(),
        stmts: HashMap::new(),
        fp: Fingerprinter::new(),
        opened: false,
        caps: 0,
        cache_metadata: false,
    };
    let reason = match session.run(&mut c, &mut s, peer, t_open).await {
        Ok(reason) => reason,
        Err(e) => {
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(conn, %peer, "connection closed: {e}");
            match e {
                Error::Malformed { .. } => CloseReason::ProtocolError,
                _ => CloseReason::ServerGone,
            }
        }
    };
    if session.opened {
        shared.sink.send(Record::ConnClose(ConnClose {
            conn,
            t: shared.now(),
            reason,
        }));
    }
    shared.stats.active.fetch_sub(1, Ordering::Relaxed);
}

/// Sends a MySQL ERR packet as the first packet, as a server refusing a connection
/// does, so clients show a message instead of "lost connection".
async fn refuse(mut client: TcpStream, message: &str) {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&2003u16.to_le_bytes()); // CR_CONN_HOST_ERROR
    payload.extend_from_slice(message.as_bytes());
    let len = payload.len().min(MAX_PAYLOAD - 1);
    let mut packet = Vec::with_capacity(4 + len);
    packet.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
    packet.push(0);
    packet.extend_from_slice(&payload[..len]);
    let _ = client.write_all(&packet).await;
    let _ = client.shutdown().await;
}

struct Session {
    conn: u64,
    shared: Arc<Shared>,
    stmts: HashMap<u32, StmtInfo>,
    fp: Fingerprinter,
    opened: bool,
    caps: u32,
    /// Negotiated MARIADB_CLIENT_CACHE_METADATA: EXECUTE results may omit column definitions.
    cache_metadata: bool,
}

impl Session {
    async fn run(
        &mut self,
        c: &mut Peer,
        s: &mut Peer,
        peer: SocketAddr,
        t_open: u64,
    ) -> Result<CloseReason, Error> {
        // Greeting: relay it with SSL and compression switched off.
        let Some(n) = s.next_packet().await? else {
            return Ok(CloseReason::ServerGone);
        };
        let mut greeting = s.buf.split_to(n);
        if greeting.get(4) == Some(&0xff) {
            // The server refuses us (too many connections, host blocked): pass it on.
            c.write(&greeting).await?;
            return Ok(CloseReason::ServerGone);
        }
        let info = protocol::patch_greeting(
            &mut greeting[4..],
            CLIENT_SSL | CLIENT_COMPRESS | CLIENT_ZSTD,
        )
        .ok_or_else(|| Error::malformed(Side::Server, "unparseable handshake"))?;
        c.write(&greeting).await?;

        // Login.
        let Some(n) = c.next_packet().await? else {
            return Ok(CloseReason::ClientGone);
        };
        let raw = c.buf.split_to(n);
        if protocol::is_ssl_request(&raw[4..]) {
            return Err(Error::malformed(
                Side::Client,
                "client insists on TLS, which this recorder does not terminate",
            ));
        }
        let login = protocol::parse_login(&raw[4..])
            .ok_or_else(|| Error::malformed(Side::Client, "unparseable handshake response"))?;
        s.write(&raw).await?;
        self.caps = login.capabilities & info.capabilities;
        self.cache_metadata = login.mariadb_capabilities
            & info.mariadb_capabilities
            & protocol::MARIADB_CLIENT_CACHE_METADATA
            != 0;
        if matches!(self.auth(c, s).await?, Outcome::Err { .. }) {
            return Ok(CloseReason::Quit);
        }
        self.opened = true;
        self.shared.sink.send(Record::ConnOpen(ConnOpen {
            conn: self.conn,
            t: t_open,
            client_addr: peer.to_string(),
            user: login.user,
            db: login.db,
            capabilities: self.caps,
            charset: login.charset,
            auth_plugin: login.auth_plugin,
            server_conn_id: info.connection_id,
        }));
        let deprecate_eof = self.caps & CLIENT_DEPRECATE_EOF != 0;

        loop {
            if c.buf.is_empty() {
                // Wait for the next command without holding a timestamp.
                if !c.fill(1).await? {
                    return Ok(CloseReason::ClientGone);
                }
            }
            let t_start = self.shared.now();
            let Some(n) = c.next_packet().await? else {
                return Ok(CloseReason::ClientGone);
            };
            let raw = c.buf.split_to(n);
            self.shared
                .stats
                .bytes_up
                .fetch_add(n as u64, Ordering::Relaxed);
            let body = payload(&raw);
            let code = *body
                .first()
                .ok_or_else(|| Error::malformed(Side::Client, "empty command"))?;
            let expect = protocol::expect_for(code);
            let capture = self.shared.sink.enabled();
            let mut cmd = if !capture {
                Cmd::Ping
            } else if code == COM_STMT_EXECUTE {
                let stmt_id = body
                    .get(1..5)
                    .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                protocol::parse_execute(&body, self.stmts.get_mut(&stmt_id))
                    .ok_or_else(|| Error::malformed(Side::Client, "unparseable COM_STMT_EXECUTE"))?
            } else {
                protocol::parse_command(&body)
            };
            // Statement bookkeeping that needs no response.
            match code {
                COM_STMT_SEND_LONG_DATA => {
                    if let (Some(id), Some(p)) = (body.get(1..5), body.get(5..7))
                        && let Some(st) = self
                            .stmts
                            .get_mut(&u32::from_le_bytes([id[0], id[1], id[2], id[3]]))
                    {
                        st.long_data.push(u16::from_le_bytes([p[0], p[1]]));
                    }
                }
                COM_STMT_CLOSE => {
                    if let Some(id) = body.get(1..5) {
                        self.stmts
                            .remove(&u32::from_le_bytes([id[0], id[1], id[2], id[3]]));
                    }
                }
                COM_STMT_RESET => {
                    if let Some(id) = body.get(1..5)
                        && let Some(st) = self
                            .stmts
                            .get_mut(&u32::from_le_bytes([id[0], id[1], id[2], id[3]]))
                    {
                        st.long_data.clear();
                    }
                }
                _ => {}
            }
            drop(body);
            s.write(&raw).await?;

            let outcome = match expect {
                Expect::Nothing => Outcome::NoResponse,
                Expect::Unknown => {
                    tracing::info!(
                        conn = self.conn,
                        code,
                        "unknown command: relaying the rest of the connection untouched"
                    );
                    // Something we cannot follow (replication, a new command): relay the
                    // rest of the connection untouched.
                    self.record(cmd, t_start, Outcome::NoResponse);
                    self.passthrough(c, s).await?;
                    return Ok(CloseReason::ClientGone);
                }
                Expect::Auth => {
                    self.stmts.clear();
                    self.auth(c, s).await?
                }
                _ => {
                    let response = self.response(c, s, code, expect, deprecate_eof).await?;
                    if let (Some((id, params, columns)), COM_STMT_PREPARE) =
                        (response.prepared, code)
                    {
                        self.stmts.insert(
                            id,
                            StmtInfo {
                                params,
                                ..Default::default()
                            },
                        );
                        if let Cmd::Prepare {
                            stmt_id,
                            params: p,
                            columns: col,
                            ..
                        } = &mut cmd
                        {
                            (*stmt_id, *p, *col) = (id, params, columns);
                        }
                    }
                    let outcome = response.outcome();
                    if code == COM_RESET_CONNECTION && matches!(outcome, Outcome::Ok { .. }) {
                        self.stmts.clear();
                    }
                    outcome
                }
            };
            if capture {
                self.record(cmd, t_start, outcome);
            }
            self.shared.stats.commands.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("recorder.commands").increment(1);
            if code == COM_QUIT {
                return Ok(CloseReason::Quit);
            }
            // Give memory back after an unusually large packet.
            if c.buf.capacity() > 4 * 1024 * 1024 && c.buf.is_empty() {
                c.buf = BytesMut::with_capacity(BUF);
            }
            if s.buf.capacity() > 4 * 1024 * 1024 && s.buf.is_empty() {
                s.buf = BytesMut::with_capacity(BUF);
            }
        }
    }

    fn record(&mut self, mut cmd: Cmd, t_start: u64, mut outcome: Outcome) {
        if self.shared.redact {
            redact(&mut cmd, &mut outcome, &mut self.fp);
        }
        self.shared.sink.send(Record::Command(Command {
            conn: self.conn,
            t_start,
            t_end: self.shared.now(),
            cmd,
            outcome,
        }));
    }

    /// Relays one response, packet by packet through the state machine, writing to the
    /// client in batches of whatever whole packets each read brought.
    async fn response(
        &mut self,
        c: &mut Peer,
        s: &mut Peer,
        code: u8,
        expect: Expect,
        deprecate_eof: bool,
    ) -> Result<Response, Error> {
        let mut resp = Response::new(expect, deprecate_eof, self.caps)
            .skip_metadata_possible(self.cache_metadata && code == COM_STMT_EXECUTE);
        let mut continuation = false;
        loop {
            let mut pos = 0;
            let mut step = Step::More;
            while s.buf.len() >= pos + 4 {
                let len = usize::from(s.buf[pos])
                    | usize::from(s.buf[pos + 1]) << 8
                    | usize::from(s.buf[pos + 2]) << 16;
                if s.buf.len() < pos + 4 + len {
                    break;
                }
                if !continuation {
                    let body = &s.buf[pos + 4..pos + 4 + len];
                    step = resp
                        .feed(body, expect)
                        .map_err(|reason| Error::malformed(Side::Server, reason))?;
                }
                continuation = len == MAX_PAYLOAD;
                pos += 4 + len;
                if step != Step::More {
                    break;
                }
            }
            if pos > 0 {
                self.shared
                    .stats
                    .bytes_down
                    .fetch_add(pos as u64, Ordering::Relaxed);
                c.write(&s.buf[..pos]).await?;
                s.buf.advance(pos);
            }
            match step {
                Step::Done => return Ok(resp),
                Step::LocalInfile => self.local_infile(c, s).await?,
                Step::More => {
                    // Need more bytes: at least the rest of the packet at the front.
                    let need = if s.buf.len() >= 4 {
                        4 + (usize::from(s.buf[0])
                            | usize::from(s.buf[1]) << 8
                            | usize::from(s.buf[2]) << 16)
                    } else {
                        4
                    };
                    let want = need.max(s.buf.len() + 1);
                    if !s.fill(want).await? {
                        return Err(Error::malformed(
                            Side::Server,
                            "closed in the middle of a response",
                        ));
                    }
                }
            }
        }
    }

    /// LOAD DATA LOCAL INFILE: the client streams the file as packets ending with an
    /// empty one; the server then answers as usual.
    async fn local_infile(&mut self, c: &mut Peer, s: &mut Peer) -> Result<(), Error> {
        loop {
            let Some(n) = c.next_packet().await? else {
                return Err(Error::malformed(Side::Client, "closed during LOCAL INFILE"));
            };
            let empty = n == 4;
            self.shared
                .stats
                .bytes_up
                .fetch_add(n as u64, Ordering::Relaxed);
            s.write(&c.buf[..n]).await?;
            c.buf.advance(n);
            if empty {
                return Ok(());
            }
        }
    }

    /// An authentication exchange (login, CHANGE_USER): both directions relayed as they
    /// come until the server says OK or ERR.
    async fn auth(&mut self, c: &mut Peer, s: &mut Peer) -> Result<Outcome, Error> {
        loop {
            tokio::select! {
                n = s.next_packet() => {
                    let Some(n) = n? else {
                        return Err(Error::malformed(Side::Server, "closed during authentication"));
                    };
                    let raw = s.buf.split_to(n);
                    c.write(&raw).await?;
                    match raw.get(4) {
                        Some(0x00) => return Ok(Outcome::Ok { affected_rows: 0, last_insert_id: 0, warnings: 0 }),
                        Some(0xff) => {
                            let code = raw.get(5..7).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
                            return Ok(Outcome::Err { code, sqlstate: String::new(), message: String::new() });
                        }
                        _ => {} // auth switch (0xfe), more data (0x01)
                    }
                }
                n = c.next_packet() => {
                    let Some(n) = n? else {
                        return Err(Error::malformed(Side::Client, "closed during authentication"));
                    };
                    let raw = c.buf.split_to(n);
                    s.write(&raw).await?;
                }
            }
        }
    }

    async fn passthrough(&mut self, c: &mut Peer, s: &mut Peer) -> Result<(), Error> {
        if !s.buf.is_empty() {
            let pending = s.buf.split();
            c.write(&pending).await?;
        }
        if !c.buf.is_empty() {
            let pending = c.buf.split();
            s.write(&pending).await?;
        }
        tokio::io::copy_bidirectional(&mut c.stream, &mut s.stream).await?;
        Ok(())
    }
}

/// `--redact`: classes instead of literals, no values, no error messages (they quote
/// values). Such a capture can be inspected and compared, not replayed.
fn redact(cmd: &mut Cmd, outcome: &mut Outcome, fp: &mut Fingerprinter) {
    match cmd {
        Cmd::Query { sql } | Cmd::Prepare { sql, .. } => {
            *sql = fp.fingerprint(sql).as_bytes().to_vec();
        }
        Cmd::Execute { params, .. } => {
            for p in params {
                p.value = Value::Redacted;
            }
        }
        Cmd::SendLongData { data, .. } => data.clear(),
        Cmd::Other { payload, .. } => payload.clear(),
        _ => {}
    }
    if let Outcome::Err { message, .. } = outcome {
        message.clear();
    }
}
