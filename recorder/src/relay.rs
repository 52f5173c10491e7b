//! One client connection: handshake, then command by command, relaying bytes as they
//! arrive and capturing what each command was and how it ended.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use captures::fingerprint::Fingerprinter;
use captures::{CloseReason, Cmd, Command, ConnClose, ConnOpen, LocalFile, Outcome, Record, Value};
use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::codec::command::{
    self, COM_QUIT, COM_RESET_CONNECTION, COM_STMT_EXECUTE, COM_STMT_PREPARE, Expect, StmtEffect,
    StmtInfo,
};
use crate::codec::digest::RowDigest;
use crate::codec::framing::{self, Pieces, payload, shift_seq};
use crate::codec::handshake::{self, AuthReply, Greeting, Login};
use crate::codec::packets::err_packet;
use crate::codec::response::{Response, Step};
use crate::error::{Error, Side};
use crate::peer::{MAX_PACKET, Peer};
use crate::sink::Sink;
use crate::tls::Tls;

/// Largest packet a client may send before it has logged in. A handshake response is a
/// few hundred bytes (plus connection attributes, at most a few KiB); an unauthenticated
/// client must not make the recorder buffer more.
const MAX_PACKET_BEFORE_LOGIN: usize = 64 * 1024;

/// At shutdown, how long an idle connection still waits for a command already sent.
const LINGER: Duration = Duration::from_millis(100);

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub upstream: String,
    pub sink: Sink,
    pub origin: Instant,
    pub redact: bool,
    pub next_conn: AtomicU64,
    pub stats: Stats,
    /// TLS toward clients and/or the upstream (both off by default).
    pub tls: Tls,
    /// The recorder's [`Phase`], broadcast to every connection.
    pub phase: watch::Receiver<Phase>,
    /// Longest a client may take from connecting to being logged in.
    pub handshake_timeout: Duration,
    /// LOCAL INFILE content kept per command (--max-infile-bytes).
    pub max_infile_bytes: usize,
    /// Keep a digest of the rows of every captured result (off: --no-result-digest).
    pub result_digest: bool,
}

/// Where the recorder is in its life, as every connection sees it (a `watch` channel:
/// each connection only needs the latest value, so nothing queues).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// Shutting down: no new commands. Idle connections close now, busy ones once the
    /// command in flight has its response.
    Draining,
    /// The grace period is over: commands still in flight are cut (captured as
    /// dropped) and their connections close.
    Stopping,
}

/// Resolves once the recorder reached `at` (or is gone altogether).
async fn reached(phase: &mut watch::Receiver<Phase>, at: Phase) {
    // An error means the sender is dropped: serve() is over, as good as stopping.
    let _ = phase.wait_for(|p| *p >= at).await;
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

/// Handles one accepted client until either side closes.
pub async fn handle(client: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    shared.stats.active.fetch_add(1, Ordering::Relaxed);
    let _ = client.set_nodelay(true);
    let t_open = shared.now();
    let server = match connect_upstream(&shared).await {
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
    c.max_packet = MAX_PACKET_BEFORE_LOGIN;
    let s = Peer::new(server, Side::Server);
    let mut session = Session {
        conn,
        shared: shared.clone(),
        stmts: HashMap::new(),
        fp: Fingerprinter::new(),
        opened: false,
        caps: CapabilityFlags::empty(),
        cache_metadata: false,
        phase: shared.phase.clone(),
        infiles: None,
    };
    let reason = match session.run(c, s, peer, t_open).await {
        Ok(reason) => reason,
        Err(e) => {
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(conn, %peer, "connection closed: {e}");
            match e {
                Error::Malformed { .. } | Error::Packet { .. } | Error::Tls { .. } => {
                    CloseReason::ProtocolError
                }
                Error::ClientGone => CloseReason::ClientGone,
                Error::Shutdown => CloseReason::Shutdown,
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

/// Connects to the upstream within --handshake-timeout: an upstream that drops SYNs
/// would otherwise hold the client for the kernel's minutes.
async fn connect_upstream(shared: &Shared) -> std::io::Result<TcpStream> {
    let limit = shared.handshake_timeout;
    tokio::time::timeout(limit, TcpStream::connect(&shared.upstream))
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {limit:?}"),
            ))
        })
}

/// Sends a MySQL ERR packet as the first packet, as a server refusing a connection
/// does, so clients show a message instead of "lost connection".
async fn refuse(mut client: TcpStream, message: &str) {
    let _ = client.write_all(&err_packet(0, false, message)).await;
    let _ = client.shutdown().await;
}

/// The connection phase up to the login relayed upstream.
// Made and taken apart once per connection, on the stack: boxing the big variant would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Connected {
    /// Both sides ready for authentication. `seq_shift` is added to the sequence ids of
    /// client packets relayed upstream (and subtracted from the server's) until the
    /// authentication exchange ends.
    Ready {
        c: Peer,
        s: Peer,
        info: Greeting,
        login: Login,
        seq_shift: i8,
    },
    Closed(CloseReason),
}

/// The client's login as read, before it is relayed.
struct ClientLogin {
    c: Peer,
    /// The login packet.
    raw: BytesMut,
    /// The SSLRequest the client sent first, if it switched to TLS.
    ssl_request: Option<BytesMut>,
}

/// The command a response answers: its code, what kind of response it gets, and
/// whether it opens a cursor.
#[derive(Debug, Clone, Copy)]
struct Asked {
    code: u8,
    expect: Expect,
    cursor: bool,
}

/// A command relayed upstream, waiting for its answer.
struct Sent {
    t_start: u64,
    asked: Asked,
    /// The command as captured; `None` when capture was off as it started (nothing is
    /// built for it, nothing recorded).
    cmd: Option<Cmd>,
}

struct Session {
    conn: u64,
    shared: Arc<Shared>,
    stmts: HashMap<u32, StmtInfo>,
    fp: Fingerprinter,
    opened: bool,
    caps: CapabilityFlags,
    /// Negotiated MARIADB_CLIENT_CACHE_METADATA: EXECUTE results may omit column definitions.
    cache_metadata: bool,
    phase: watch::Receiver<Phase>,
    /// The LOCAL INFILE contents of the command in flight, when it is captured.
    infiles: Option<Infiles>,
}

/// The LOCAL INFILE contents a client sends during one command, kept up to
/// --max-infile-bytes in all (the content is relayed packet by packet whatever its size;
/// only the copy is bounded).
#[derive(Debug)]
struct Infiles {
    files: Vec<LocalFile>,
    /// Bytes the command may still keep.
    budget: usize,
}

impl Infiles {
    fn new(budget: usize) -> Self {
        Infiles {
            files: Vec::new(),
            budget,
        }
    }

    /// The server asked for a file: what the client sends next is its content.
    fn start(&mut self) {
        self.files.push(LocalFile {
            size: 0,
            content: Some(Vec::new()),
        });
    }

    /// One packet of the current file's content.
    fn add(&mut self, data: &[u8]) {
        let Some(file) = self.files.last_mut() else {
            return;
        };
        file.size += data.len() as u64;
        if let Some(content) = &mut file.content {
            if data.len() > self.budget {
                // Over the bound: given back at once, the file is recorded by size.
                self.budget += content.len();
                file.content = None;
            } else {
                self.budget -= data.len();
                content.extend_from_slice(data);
            }
        }
    }
}

/// The login's end: both sides ready for commands, or the connection already over.
// Made and taken apart once per connection, on the stack.
#[allow(clippy::large_enum_variant)]
enum LoggedIn {
    Ready(Peer, Peer),
    Closed(CloseReason),
}

impl Session {
    async fn run(
        &mut self,
        c: Peer,
        s: Peer,
        peer: SocketAddr,
        t_open: u64,
    ) -> Result<CloseReason, Error> {
        let limit = self.shared.handshake_timeout;
        let mut phase = self.phase.clone();
        // Before the login a client costs memory and a socket without having proved
        // anything: it gets a bounded time, and is cut at once at shutdown.
        let logged_in = tokio::select! {
            r = tokio::time::timeout(limit, self.login(c, s, peer, t_open)) => {
                r.map_err(|_| Error::HandshakeTimeout(limit))??
            }
            () = reached(&mut phase, Phase::Stopping) => return Ok(CloseReason::Shutdown),
        };
        match logged_in {
            LoggedIn::Ready(mut c, mut s) => self.commands(&mut c, &mut s).await,
            LoggedIn::Closed(reason) => Ok(reason),
        }
    }

    /// Greeting, login and authentication; writes the ConnOpen record once logged in.
    async fn login(
        &mut self,
        c: Peer,
        s: Peer,
        peer: SocketAddr,
        t_open: u64,
    ) -> Result<LoggedIn, Error> {
        let (mut c, mut s, info, login, seq_shift) = match self.connect(c, s).await? {
            Connected::Ready {
                c,
                s,
                info,
                login,
                seq_shift,
            } => (c, s, info, login, seq_shift),
            Connected::Closed(reason) => return Ok(LoggedIn::Closed(reason)),
        };
        self.caps = login.capabilities & info.capabilities;
        self.cache_metadata = (login.mariadb_capabilities & info.mariadb_capabilities)
            .contains(MariadbCapabilities::MARIADB_CLIENT_CACHE_METADATA);
        let mut auth_plugin = login.auth_plugin;
        if matches!(
            self.auth(&mut c, &mut s, seq_shift, &mut auth_plugin)
                .await?
                .0,
            Outcome::Err { .. }
        ) {
            return Ok(LoggedIn::Closed(CloseReason::Quit));
        }
        self.opened = true;
        self.shared.sink.send(Record::ConnOpen(ConnOpen {
            conn: self.conn,
            t: t_open,
            client_addr: peer.to_string(),
            user: login.user,
            db: login.db,
            capabilities: self.caps.bits(),
            charset: login.charset,
            auth_plugin,
            server_conn_id: info.connection_id,
        }));
        c.max_packet = MAX_PACKET;
        if let Some(algorithm) = handshake::compression(self.caps) {
            c.compress(algorithm);
            s.compress(algorithm);
        }
        Ok(LoggedIn::Ready(c, s))
    }

    /// Command after command until either side ends the connection or the recorder
    /// shuts down.
    async fn commands(&mut self, c: &mut Peer, s: &mut Peer) -> Result<CloseReason, Error> {
        loop {
            if let Some(reason) = self.wait_for_command(c).await? {
                return Ok(reason);
            }
            let Some(sent) = self.relay_command(c, s).await? else {
                return Ok(CloseReason::ClientGone);
            };
            if let Some(reason) = self.answer(c, s, sent).await? {
                return Ok(reason);
            }
            if *self.phase.borrow() >= Phase::Draining {
                return Ok(CloseReason::Shutdown);
            }
            c.shrink();
            s.shrink();
        }
    }

    /// Reads the client's next command, keeps what the capture and the response need of
    /// it, and relays it upstream. `None` if the client closed instead.
    async fn relay_command(&mut self, c: &mut Peer, s: &mut Peer) -> Result<Option<Sent>, Error> {
        let t_start = self.shared.now();
        let Some(n) = c.next_packet().await? else {
            return Ok(None);
        };
        let taken = c.take(n);
        self.shared
            .stats
            .bytes_up
            .fetch_add(n as u64, Ordering::Relaxed);
        let body = payload(&taken.plain);
        let code = command::code(&body).map_err(Error::packet(Side::Client))?;
        let capture = self.shared.sink.enabled();
        let sent = Sent {
            t_start,
            asked: Asked {
                code,
                expect: command::expect_for(code),
                cursor: command::execute_opens_cursor(&body),
            },
            cmd: capture.then(|| self.build_cmd(code, &body)),
        };
        self.track_statements(&body);
        drop(body);
        s.write(taken.wire()).await?;
        Ok(Some(sent))
    }

    /// Relays the answer to a command and captures the command with its outcome. `Some`
    /// when the connection is over.
    async fn answer(
        &mut self,
        c: &mut Peer,
        s: &mut Peer,
        sent: Sent,
    ) -> Result<Option<CloseReason>, Error> {
        let Sent {
            t_start,
            asked,
            mut cmd,
        } = sent;
        let (outcome, status) = match asked.expect {
            Expect::Nothing => (Outcome::NoResponse, None),
            Expect::Unknown => {
                let reason = self.follow_unknown(c, s, asked.code, cmd, t_start).await?;
                return Ok(Some(reason));
            }
            Expect::Auth => {
                self.stmts.clear();
                self.auth(c, s, 0, &mut String::new()).await?
            }
            _ => match self.response_to(c, s, asked, &mut cmd).await {
                Ok(done) => done,
                Err(e @ (Error::ClientGone | Error::Shutdown)) => {
                    // Returning drops the upstream socket: the server sees the client
                    // leave and stops the statement.
                    self.record(cmd, t_start, Outcome::Dropped, None);
                    return Ok(Some(match e {
                        Error::Shutdown => CloseReason::Shutdown,
                        _ => CloseReason::ClientGone,
                    }));
                }
                Err(e) => return Err(e),
            },
        };
        self.record(cmd, t_start, outcome, status);
        self.shared.stats.commands.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("recorder.commands").increment(1);
        Ok((asked.code == COM_QUIT).then_some(CloseReason::Quit))
    }

    /// Waits for the next command's first byte, without holding a timestamp. An idle
    /// connection has nothing in flight: at shutdown it closes at once. `Some` when the
    /// connection is over.
    async fn wait_for_command(&mut self, c: &mut Peer) -> Result<Option<CloseReason>, Error> {
        if !c.buf.is_empty() {
            return Ok(None);
        }
        let filled = tokio::select! {
            filled = c.fill(1) => filled?,
            () = reached(&mut self.phase, Phase::Draining) => {
                // A command already on its way (a COM_QUIT sent just before the
                // shutdown) is still taken.
                match tokio::time::timeout(LINGER, c.fill(1)).await {
                    Ok(filled) => filled?,
                    Err(_) => return Ok(Some(CloseReason::Shutdown)),
                }
            }
        };
        Ok((!filled).then_some(CloseReason::ClientGone))
    }

    /// The command as the capture keeps it.
    fn build_cmd(&mut self, code: u8, body: &[u8]) -> Cmd {
        if code != COM_STMT_EXECUTE {
            return command::parse_command(body);
        }
        let stmt_id = command::stmt_id(body).unwrap_or(0);
        // One the recorder cannot decode (parameters that do not match the types bound, a
        // type it does not know) is still relayed, and the server answers it as it would
        // directly; the capture keeps it raw.
        command::parse_execute(body, self.stmts.get_mut(&stmt_id)).unwrap_or_else(|e| {
            tracing::debug!(
                conn = self.conn,
                stmt_id,
                "undecodable COM_STMT_EXECUTE: {e}"
            );
            command::undecoded(body)
        })
    }

    /// Statement bookkeeping that needs no response.
    fn track_statements(&mut self, body: &[u8]) {
        match command::stmt_effect(body) {
            Some(StmtEffect::LongData { stmt_id, param }) => {
                if let Some(st) = self.stmts.get_mut(&stmt_id) {
                    st.long_data.push(param);
                }
            }
            Some(StmtEffect::Close(stmt_id)) => {
                self.stmts.remove(&stmt_id);
            }
            Some(StmtEffect::Reset(stmt_id)) => {
                if let Some(st) = self.stmts.get_mut(&stmt_id) {
                    st.long_data.clear();
                }
            }
            None => {}
        }
    }

    /// Something we cannot follow (replication, a new command): captured as is, then the
    /// rest of the connection is relayed untouched, until shutdown cuts it.
    async fn follow_unknown(
        &mut self,
        c: &mut Peer,
        s: &mut Peer,
        code: u8,
        cmd: Option<Cmd>,
        t_start: u64,
    ) -> Result<CloseReason, Error> {
        tracing::info!(
            conn = self.conn,
            code,
            "unknown command: relaying the rest of the connection untouched"
        );
        self.record(cmd, t_start, Outcome::NoResponse, None);
        let mut phase = self.phase.clone();
        tokio::select! {
            r = self.passthrough(c, s) => r?,
            () = reached(&mut phase, Phase::Stopping) => return Ok(CloseReason::Shutdown),
        }
        Ok(CloseReason::ClientGone)
    }

    /// Relays the response to a command and keeps what it says about statements; its
    /// outcome and final status flags.
    async fn response_to(
        &mut self,
        c: &mut Peer,
        s: &mut Peer,
        asked: Asked,
        cmd: &mut Option<Cmd>,
    ) -> Result<(Outcome, Option<u16>), Error> {
        // Only a captured query can meet a LOCAL INFILE request worth keeping.
        self.infiles = matches!(cmd, Some(Cmd::Query { .. }))
            .then(|| Infiles::new(self.shared.max_infile_bytes));
        let digest = self.row_digest(cmd.as_ref());
        let response = self.response(c, s, asked, digest).await?;
        if let Some(infiles) = self.infiles.take()
            && !infiles.files.is_empty()
            && let Some(Cmd::Query { sql }) = cmd
        {
            *cmd = Some(Cmd::LoadLocal {
                sql: std::mem::take(sql),
                files: infiles.files,
            });
        }
        self.learn_statements(&response, asked.code, cmd.as_mut());
        let outcome = response.outcome();
        if asked.code == COM_RESET_CONNECTION && matches!(outcome, Outcome::Ok { .. }) {
            self.stmts.clear();
        }
        Ok((outcome, response.status()))
    }

    /// What a response tells about prepared statements: a PREPARE_OK's statement (its id
    /// also completes the captured command), the columns an EXECUTE's rows came with.
    fn learn_statements(&mut self, response: &Response, code: u8, mut cmd: Option<&mut Cmd>) {
        if let (Some(prepared), COM_STMT_PREPARE) = (response.prepared(), code) {
            self.stmts.insert(
                prepared.stmt_id,
                StmtInfo {
                    params: prepared.params,
                    columns: response.columns_seen(),
                    ..Default::default()
                },
            );
            if let Some(Cmd::Prepare {
                stmt_id,
                params,
                columns,
                ..
            }) = cmd.as_deref_mut()
            {
                (*stmt_id, *params, *columns) =
                    (prepared.stmt_id, prepared.params, prepared.columns);
            }
        }
        if let (Some(Cmd::Execute { stmt_id, .. }), Some(columns)) =
            (cmd.as_deref(), response.columns_seen())
            && let Some(stmt) = self.stmts.get_mut(stmt_id)
        {
            stmt.columns = Some(columns);
        }
    }

    /// How the rows of the response to `cmd` are digested: only for captured commands,
    /// and not for cursor fetches (a replay
    /// does not compare them).
    fn row_digest(&self, cmd: Option<&Cmd>) -> Option<RowDigest> {
        if !self.shared.result_digest {
            return None;
        }
        match cmd? {
            Cmd::Query { .. } => Some(RowDigest::text()),
            Cmd::Prepare { .. } => Some(RowDigest::prepare()),
            Cmd::Execute { stmt_id, .. } => Some(RowDigest::binary(
                self.stmts.get(stmt_id).and_then(|s| s.columns.clone()),
            )),
            _ => None,
        }
    }

    /// Greeting, TLS on either hop, login: everything before authentication proper.
    ///
    /// Sequence ids: the greeting is 0 on both hops. A client that switches to TLS sends
    /// its SSLRequest as 1 and its login as 2; one that does not sends its login as 1.
    /// The recorder speaks to the upstream as the client would if it made the upstream's
    /// TLS choice, so when the two hops differ it renumbers the login and every packet of
    /// the authentication exchange after it, in both directions.
    async fn connect(&self, mut c: Peer, mut s: Peer) -> Result<Connected, Error> {
        let Some(info) = self.relay_greeting(&mut c, &mut s).await? else {
            return Ok(Connected::Closed(CloseReason::ServerGone));
        };
        let Some(ClientLogin {
            mut c,
            mut raw,
            ssl_request,
        }) = self.read_login(c).await?
        else {
            return Ok(Connected::Closed(CloseReason::ClientGone));
        };
        let login = handshake::parse_login(&raw).map_err(Error::packet(Side::Client))?;
        let upstream_tls = self.shared.tls.upstream.is_some();
        let seq_shift = i8::from(upstream_tls) - i8::from(ssl_request.is_some());
        if upstream_tls {
            s = self
                .upstream_tls(&mut c, s, &raw, &login, ssl_request.as_deref())
                .await?;
        }
        handshake::set_login_ssl(&mut raw, upstream_tls);
        shift_seq(&mut raw, seq_shift);
        s.write(&raw).await?;
        Ok(Connected::Ready {
            c,
            s,
            info,
            login,
            seq_shift,
        })
    }

    /// Relays the server's greeting, patched for what the recorder offers the client.
    /// `None` when the server closed or refused the connection (a refusal is relayed).
    async fn relay_greeting(&self, c: &mut Peer, s: &mut Peer) -> Result<Option<Greeting>, Error> {
        let tls = &self.shared.tls;
        let Some(n) = s.next_packet().await? else {
            return Ok(None);
        };
        let mut greeting = s.buf.split_to(n);
        if handshake::is_refusal(&greeting) {
            // The server refuses us (too many connections, host blocked): pass it on.
            c.write(&greeting).await?;
            return Ok(None);
        }
        // The client may use TLS only when we terminate it. Compression is offered as
        // the server offers it: the relay decodes the frames (see [`crate::codec::compress`]).
        let (strip, set) = if tls.acceptor.is_some() {
            (CapabilityFlags::empty(), CapabilityFlags::CLIENT_SSL)
        } else {
            (CapabilityFlags::CLIENT_SSL, CapabilityFlags::empty())
        };
        let info = handshake::patch_greeting(&mut greeting, strip, set)
            .map_err(Error::packet(Side::Server))?;
        if tls.upstream.is_some()
            && !info
                .server_capabilities
                .contains(CapabilityFlags::CLIENT_SSL)
        {
            let reason = "the upstream does not offer TLS, which --upstream-tls requires";
            c.write(&err_packet(0, false, &format!("recorder: {reason}")))
                .await?;
            return Err(Error::tls(Side::Server, reason));
        }
        c.write(&greeting).await?;
        Ok(Some(info))
    }

    /// The client's login packet, read after switching to TLS if the client asks for it
    /// first. `None` if the client closed.
    async fn read_login(&self, mut c: Peer) -> Result<Option<ClientLogin>, Error> {
        let Some(n) = c.first_packet().await? else {
            return Ok(None);
        };
        let first = c.buf.split_to(n);
        if !handshake::is_ssl_request(&first) {
            return Ok(Some(ClientLogin {
                c,
                raw: first,
                ssl_request: None,
            }));
        }
        let Some(acceptor) = &self.shared.tls.acceptor else {
            return Err(Error::malformed(
                Side::Client,
                "client insists on TLS, which this recorder does not terminate \
                 (start it with --tls-cert and --tls-key)",
            ));
        };
        let mut c = c.accept_tls(acceptor).await?;
        let Some(n) = c.next_packet().await? else {
            return Ok(None);
        };
        let raw = c.buf.split_to(n);
        Ok(Some(ClientLogin {
            c,
            raw,
            ssl_request: Some(first),
        }))
    }

    /// Switches the upstream to TLS (--upstream-tls) with the client's own SSLRequest if
    /// it sent one, else one made from its login (`login_raw`, `login`). A failure is also
    /// told to the client, in the sequence it expects after its login.
    async fn upstream_tls(
        &self,
        c: &mut Peer,
        mut s: Peer,
        login_raw: &[u8],
        login: &Login,
        ssl_request: Option<&[u8]>,
    ) -> Result<Peer, Error> {
        let Some((connector, name)) = &self.shared.tls.upstream else {
            return Ok(s);
        };
        match ssl_request {
            Some(request) => s.write(request).await?,
            None => s.write(&handshake::ssl_request_packet(login)).await?,
        }
        match s.connect_tls(connector, name).await {
            Ok(s) => Ok(s),
            Err(e) => {
                let seq = framing::seq(login_raw).unwrap_or(0).wrapping_add(1);
                c.write(&err_packet(
                    seq,
                    login.protocol_41(),
                    &format!("recorder: {e}"),
                ))
                .await?;
                Err(e)
            }
        }
    }

    /// Captures a command; `None`: it was not built (capture was off when it started),
    /// only counted if that is a loss.
    fn record(
        &mut self,
        cmd: Option<Cmd>,
        t_start: u64,
        mut outcome: Outcome,
        status: Option<u16>,
    ) {
        let Some(mut cmd) = cmd else {
            self.shared.sink.skip();
            return;
        };
        // Always, not only with --redact: a capture is a file people copy around.
        if let Cmd::Query { sql } | Cmd::Prepare { sql, .. } | Cmd::LoadLocal { sql, .. } = &mut cmd
        {
            crate::secrets::scrub(sql);
        }
        if self.shared.redact {
            redact(&mut cmd, &mut outcome, &mut self.fp);
        }
        self.shared.sink.send(Record::Command(Command {
            conn: self.conn,
            t_start,
            t_end: self.shared.now(),
            cmd,
            outcome,
            status,
        }));
    }

    /// Relays one response, packet by packet through the state machine, writing to the
    /// client in batches of whatever whole packets each read brought.
    async fn response(
        &mut self,
        c: &mut Peer,
        s: &mut Peer,
        asked: Asked,
        digest: Option<RowDigest>,
    ) -> Result<Response, Error> {
        let mut resp = Response::new(asked.expect, self.caps)
            .skip_metadata_possible(self.cache_metadata && asked.code == COM_STMT_EXECUTE)
            .cursor_possible(asked.cursor)
            .digest(digest);
        let mut pieces = Pieces::default();
        loop {
            let (fed, step) = feed_buffered(&mut resp, &mut pieces, &s.buf)?;
            if fed > 0 {
                self.shared
                    .stats
                    .bytes_down
                    .fetch_add(fed as u64, Ordering::Relaxed);
                c.write(s.take(fed).wire()).await?;
            }
            match step {
                Step::Done => return Ok(resp),
                Step::LocalInfile => {
                    if let Some(infiles) = &mut self.infiles {
                        infiles.start();
                    }
                    self.local_infile(c, s).await?;
                }
                Step::More => self.read_response(c, s).await?,
            }
        }
    }

    /// Reads more of a response (at least the rest of the packet at its front), watching
    /// meanwhile for the client going away and for the shutdown cutting the command.
    async fn read_response(&mut self, c: &mut Peer, s: &mut Peer) -> Result<(), Error> {
        let want = framing::front_len(&s.buf).max(s.buf.len() + 1);
        // Both reads only append to their buffers: the one cancelled loses nothing.
        let filled = tokio::select! {
            filled = s.fill(want) => filled?,
            ahead = c.read_ahead() => return ahead,
            () = reached(&mut self.phase, Phase::Stopping) => return Err(Error::Shutdown),
        };
        if !filled {
            return Err(Error::malformed(
                Side::Server,
                "closed in the middle of a response",
            ));
        }
        Ok(())
    }

    /// LOAD DATA LOCAL INFILE: the client streams the file as packets ending with an
    /// empty one; the server then answers as usual.
    async fn local_infile(&mut self, c: &mut Peer, s: &mut Peer) -> Result<(), Error> {
        loop {
            let Some(n) = c.next_packet().await? else {
                return Err(Error::malformed(Side::Client, "closed during LOCAL INFILE"));
            };
            self.shared
                .stats
                .bytes_up
                .fetch_add(n as u64, Ordering::Relaxed);
            let taken = c.take(n);
            // An empty packet ends the file.
            let empty = framing::payload_len(&taken.plain) == Some(0);
            s.write(taken.wire()).await?;
            if let Some(infiles) = &mut self.infiles {
                infiles.add(&payload(&taken.plain));
            }
            if empty {
                return Ok(());
            }
        }
    }

    /// An authentication exchange (login, CHANGE_USER): both directions relayed as they
    /// come until the server says OK or ERR. `seq_shift`: see [`Connected::Ready`].
    /// `plugin` becomes the plugin an auth switch names (e.g. client_ed25519), so the
    /// capture says which one was finally used. Also returns the final OK's status flags
    /// (a COM_CHANGE_USER resets the session's transaction state).
    async fn auth(
        &mut self,
        c: &mut Peer,
        s: &mut Peer,
        seq_shift: i8,
        plugin: &mut String,
    ) -> Result<(Outcome, Option<u16>), Error> {
        loop {
            tokio::select! {
                n = s.next_packet() => {
                    let Some(n) = n? else {
                        return Err(Error::malformed(Side::Server, "closed during authentication"));
                    };
                    // Only the first login shifts sequence ids, and it is never compressed.
                    let mut taken = s.take(n);
                    shift_seq(&mut taken.plain, -seq_shift);
                    c.write(taken.wire()).await?;
                    match handshake::auth_reply(&taken.plain, self.caps) {
                        AuthReply::Ok(status) => {
                            return Ok((Outcome::Ok { affected_rows: 0, last_insert_id: 0, warnings: 0 }, status));
                        }
                        AuthReply::Err(code) => {
                            return Ok((Outcome::Err { code, sqlstate: String::new(), message: String::new() }, None));
                        }
                        AuthReply::Switch(name) => *plugin = name,
                        AuthReply::More => {}
                    }
                }
                n = c.next_packet() => {
                    let Some(n) = n? else {
                        return Err(Error::malformed(Side::Client, "closed during authentication"));
                    };
                    let mut taken = c.take(n);
                    shift_seq(&mut taken.plain, seq_shift);
                    s.write(taken.wire()).await?;
                }
            }
        }
    }

    async fn passthrough(&mut self, c: &mut Peer, s: &mut Peer) -> Result<(), Error> {
        // Compressed frames are relayed untouched, so blind relaying works as well.
        let pending = s.leftover();
        if !pending.is_empty() {
            c.write(&pending).await?;
        }
        let pending = c.leftover();
        if !pending.is_empty() {
            s.write(&pending).await?;
        }
        tokio::io::copy_bidirectional(&mut c.stream, &mut s.stream).await?;
        Ok(())
    }
}

/// Feeds the complete packets at the front of a response's buffer to its state machine
/// (the first piece of each logical packet), until it needs no more. Returns how many
/// bytes that took, and the last step.
fn feed_buffered(
    resp: &mut Response,
    pieces: &mut Pieces,
    buf: &[u8],
) -> Result<(usize, Step), Error> {
    let mut fed = 0;
    let mut step = Step::More;
    while step == Step::More
        && let Some(piece) = pieces.next_in(&buf[fed..])
    {
        if let Some(first) = piece.first {
            step = resp.feed(first).map_err(Error::packet(Side::Server))?;
        }
        fed += piece.len;
    }
    Ok((fed, step))
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
        Cmd::LoadLocal { sql, files } => {
            *sql = fp.fingerprint(sql).as_bytes().to_vec();
            for f in files {
                f.content = None;
            }
        }
        Cmd::Other { payload, .. } => payload.clear(),
        _ => {}
    }
    match outcome {
        Outcome::Err { message, .. } => message.clear(),
        // A digest of a small result can be reversed by trying values: a redacted
        // capture is not replayed, so it has no use for one.
        Outcome::Rows { digest, .. } => *digest = None,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infile_content_is_kept_up_to_the_budget_for_all_files_together() {
        let mut infiles = Infiles::new(10);
        infiles.start();
        infiles.add(b"1,a\n");
        infiles.add(b"2,b\n");
        infiles.add(b"");
        // The second file does not fit in what is left: recorded by size, and its
        // partial copy gives the budget back for a third.
        infiles.start();
        infiles.add(b"3,");
        infiles.add(b"ccccc\n");
        infiles.start();
        infiles.add(b"4\n");
        let kept = |c: &[u8]| LocalFile {
            size: c.len() as u64,
            content: Some(c.to_vec()),
        };
        let dropped = LocalFile {
            size: 8,
            content: None,
        };
        assert_eq!(
            infiles.files,
            vec![kept(b"1,a\n2,b\n"), dropped, kept(b"4\n")]
        );
        // Redacted: statement fingerprinted, no content at all.
        let mut cmd = Cmd::LoadLocal {
            sql: b"LOAD DATA LOCAL INFILE '/secret/x.csv' INTO TABLE t".to_vec(),
            files: infiles.files,
        };
        redact(
            &mut cmd,
            &mut Outcome::NoResponse,
            &mut Fingerprinter::new(),
        );
        let Cmd::LoadLocal { sql, files } = cmd else {
            unreachable!()
        };
        assert!(!sql.windows(6).any(|w| w == b"secret"));
        assert!(files.iter().all(|f| f.content.is_none()));
    }
}
