//! The connection phase: the server's greeting (patched in place for the client), the
//! client's SSLRequest and login, and the packets of an authentication exchange. The
//! functions here take whole packets as read, header included.

use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{HandshakePacket, HandshakeResponse, SslRequest};
use mysql_common::proto::MySerialize;

use super::compress::Algorithm;
use super::framing::{self, HEADER};
use super::{CodecError, packets, until_nul};

/// CLIENT_MYSQL: MariaDB's name for bit 0 (CLIENT_LONG_PASSWORD to mysql_common). A
/// MariaDB server clears it to say its greeting carries extended capabilities.
const CLIENT_MYSQL: CapabilityFlags = CapabilityFlags::CLIENT_LONG_PASSWORD;

/// MariaDB capabilities stripped from the relayed greeting: bulk execution
/// (COM_STMT_BULK_EXECUTE), which the relay cannot decode and would have to pass through
/// uncaptured. Metadata caching is kept and followed (see
/// [`super::response::Response::skip_metadata_possible`]).
const MARIADB_STRIPPED: MariadbCapabilities =
    MariadbCapabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS
        .union(MariadbCapabilities::MARIADB_CLIENT_BULK_UNIT_RESULTS);

/// Length of an SSLRequest's payload: only a client's first packet of this size can be
/// one (and then the bytes after it belong to TLS).
pub const SSL_REQUEST_LEN: usize = 32;

/// The first byte of a protocol 10 greeting, the only one in use since MySQL 3.21.
const PROTOCOL_10: u8 = 10;

/// What the greeting told us, after patching its capabilities in place.
#[derive(Debug, Clone)]
pub struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    /// Capabilities as relayed to the client.
    pub capabilities: CapabilityFlags,
    /// Capabilities as the server sent them.
    pub server_capabilities: CapabilityFlags,
    /// MariaDB extended capabilities as relayed (empty for MySQL).
    pub mariadb_capabilities: MariadbCapabilities,
}

/// Parses the server greeting, clears the `strip` capabilities and sets the `set` ones
/// in the packet (in place, so every other byte is relayed as the server sent it).
pub fn patch_greeting(
    raw: &mut [u8],
    strip: CapabilityFlags,
    set: CapabilityFlags,
) -> Result<Greeting, CodecError> {
    let payload = raw
        .get_mut(HEADER..)
        .ok_or(CodecError::Short("handshake"))?;
    let at = GreetingLayout::of(payload)?;
    let (server_version, connection_id, capabilities, mariadb_capabilities) = {
        let hs: HandshakePacket<'_> = ParseBuf(payload)
            .parse(())
            .map_err(CodecError::bad("handshake"))?;
        (
            String::from_utf8_lossy(hs.server_version_ref()).into_owned(),
            hs.connection_id(),
            hs.capabilities(),
            hs.mariadb_ext_capabilities(),
        )
    };
    let patch = |bits: u16, shift: u32| {
        (bits & !((strip.bits() >> shift) as u16)) | (set.bits() >> shift) as u16
    };
    for (at, shift) in [(at.caps_lo, 0), (at.caps_hi, 16)] {
        if let Some(half) = payload.get_mut(at..at + 2) {
            let patched = patch(u16::from_le_bytes([half[0], half[1]]), shift);
            half.copy_from_slice(&patched.to_le_bytes());
        }
    }
    let mariadb_capabilities = match payload.get_mut(at.mariadb_caps..at.mariadb_caps + 4) {
        Some(field) if !capabilities.contains(CLIENT_MYSQL) => {
            let relayed = mariadb_capabilities.difference(MARIADB_STRIPPED);
            field.copy_from_slice(&relayed.bits().to_le_bytes());
            relayed
        }
        _ => MariadbCapabilities::empty(),
    };
    Ok(Greeting {
        server_version,
        connection_id,
        capabilities: capabilities.difference(strip).union(set),
        server_capabilities: capabilities,
        mariadb_capabilities,
    })
}

/// Where the fields patched in place sit in a greeting's payload: protocol(1)
/// version\0 conn_id(4) auth1(8) filler(1) caps_lo(2) charset(1) status(2) caps_hi(2)
/// auth_len(1) reserved(6) mariadb_caps(4).
struct GreetingLayout {
    caps_lo: usize,
    caps_hi: usize,
    mariadb_caps: usize,
}

impl GreetingLayout {
    fn of(payload: &[u8]) -> Result<Self, CodecError> {
        let nul = payload
            .iter()
            .skip(1)
            .position(|b| *b == 0)
            .ok_or(CodecError::Short("handshake"))?
            + 1;
        let caps_lo = nul + 1 + 4 + 8 + 1;
        let caps_hi = caps_lo + 2 + 1 + 2;
        let auth_len = caps_hi + 2;
        // mysql_common computes `len as i8 - 8`, which overflows (a panic in a debug
        // build) for these: refused first.
        if let Some(len @ 0x80..=0x87) = payload.get(auth_len) {
            return Err(CodecError::Bad {
                what: "handshake",
                cause: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("auth data length {len}"),
                ),
            });
        }
        Ok(GreetingLayout {
            caps_lo,
            caps_hi,
            mariadb_caps: auth_len + 1 + 6,
        })
    }
}

/// The server version a greeting names, from its first bytes (the recorder's probe
/// reads once and does not wait for the rest of the packet).
pub fn server_version(greeting: &[u8]) -> Option<String> {
    let payload = greeting.get(HEADER..)?;
    if payload.first() != Some(&PROTOCOL_10) {
        return None;
    }
    let end = payload.iter().skip(1).position(|b| *b == 0)? + 1;
    Some(String::from_utf8_lossy(&payload[1..end]).into_owned())
}

/// Whether a server's first packet is an ERR (too many connections, host blocked): the
/// connection is refused.
pub fn is_refusal(greeting: &[u8]) -> bool {
    greeting.get(HEADER) == Some(&packets::ERR)
}

/// The client's login: who, which database, what it can do. Never the password.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub db: Option<String>,
    pub capabilities: CapabilityFlags,
    /// MariaDB extended capabilities the client asked for (empty when it speaks plain
    /// MySQL).
    pub mariadb_capabilities: MariadbCapabilities,
    pub charset: u8,
    pub max_packet_size: u32,
    pub auth_plugin: String,
}

impl Login {
    /// Whether the client speaks the 4.1 protocol (an ERR to it carries a SQL state).
    pub fn protocol_41(&self) -> bool {
        self.capabilities
            .contains(CapabilityFlags::CLIENT_PROTOCOL_41)
    }
}

/// Parses a handshake response (the login packet).
pub fn parse_login(raw: &[u8]) -> Result<Login, CodecError> {
    let payload = raw.get(HEADER..).unwrap_or_default();
    let r: HandshakeResponse<'_> = ParseBuf(payload)
        .parse(())
        .map_err(CodecError::bad("handshake response"))?;
    Ok(Login {
        user: String::from_utf8_lossy(r.user()).into_owned(),
        db: r
            .db_name()
            .filter(|d| !d.is_empty())
            .map(|d| String::from_utf8_lossy(d).into_owned()),
        capabilities: r.capabilities(),
        mariadb_capabilities: if r.capabilities().contains(CLIENT_MYSQL) {
            MariadbCapabilities::empty()
        } else {
            r.mariadb_ext_capabilities()
        },
        charset: r.collation(),
        // Not exposed by mysql_common; fixed at bytes 4..8 of every 4.1 login.
        max_packet_size: payload
            .get(4..8)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        auth_plugin: r
            .auth_plugin()
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .unwrap_or_default(),
    })
}

/// Whether a client's first packet header announces a payload the size of an SSLRequest:
/// then it is read alone, without reading past it (what follows an SSLRequest is the TLS
/// ClientHello, which belongs to the TLS layer).
pub fn may_be_ssl_request(header: &[u8]) -> bool {
    framing::payload_len(header) == Some(SSL_REQUEST_LEN)
}

/// Whether a client's first packet (header included) is an SSLRequest rather than a
/// login: 32 bytes with CLIENT_SSL set.
pub fn is_ssl_request(raw: &[u8]) -> bool {
    match raw.get(HEADER..) {
        Some(payload @ &[a, b, c, d, ..]) if payload.len() == SSL_REQUEST_LEN => {
            CapabilityFlags::from_bits_retain(u32::from_le_bytes([a, b, c, d]))
                .contains(CapabilityFlags::CLIENT_SSL)
        }
        _ => false,
    }
}

/// Sets or clears CLIENT_SSL in a login packet (header included), in place: a login
/// relayed to a plaintext upstream must not claim TLS (the server would start a TLS
/// handshake), and one relayed over TLS the recorder opened must claim it, as the
/// SSLRequest before it did. CLIENT_SSL lives in the low 16 bits, which old and 4.1
/// logins both start with.
pub fn set_login_ssl(raw: &mut [u8], ssl: bool) {
    const SSL: u16 = CapabilityFlags::CLIENT_SSL.bits() as u16;
    if let Some(lo) = raw.get_mut(HEADER..HEADER + 2) {
        let mut caps = u16::from_le_bytes([lo[0], lo[1]]);
        if ssl {
            caps |= SSL;
        } else {
            caps &= !SSL;
        }
        lo.copy_from_slice(&caps.to_le_bytes());
    }
}

/// The SSLRequest packet the recorder sends the upstream for a client that logged in
/// without TLS: the login's own capabilities plus CLIENT_SSL, as a client would send
/// it, with sequence id 1.
pub fn ssl_request_packet(login: &Login) -> Vec<u8> {
    let request = SslRequest::new(
        login.capabilities | CapabilityFlags::CLIENT_SSL,
        login.max_packet_size,
        login.charset,
    )
    .with_mariadb_capabilities(login.mariadb_capabilities);
    let mut payload = Vec::with_capacity(SSL_REQUEST_LEN);
    request.serialize(&mut payload);
    framing::packet(1, &payload)
}

/// The compression a session negotiated: both sides switch to it once logged in.
/// (MySQL clients set at most one of the two flags.)
pub fn compression(caps: CapabilityFlags) -> Option<Algorithm> {
    if caps.contains(CapabilityFlags::CLIENT_COMPRESS) {
        Some(Algorithm::Zlib)
    } else if caps.contains(CapabilityFlags::CLIENT_ZSTD_COMPRESSION_ALGORITHM) {
        Some(Algorithm::Zstd)
    } else {
        None
    }
}

/// A server packet during an authentication exchange (login, COM_CHANGE_USER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// Logged in; the OK's status flags (as captured) if it parses as an OK.
    Ok(Option<u16>),
    /// Refused, with this error code (0 if the packet is too short to say).
    Err(u16),
    /// An auth switch to this plugin (e.g. client_ed25519).
    Switch(String),
    /// More data for the plugin (0x01), an old-style switch (a lone 0xfe), or anything
    /// else the exchange goes on after.
    More,
}

/// Reads a server packet of an authentication exchange (header included).
pub fn auth_reply(raw: &[u8], caps: CapabilityFlags) -> AuthReply {
    let payload = framing::payload(raw);
    match payload.first() {
        Some(&packets::OK) => AuthReply::Ok(packets::ok_status(&payload, caps)),
        Some(&packets::ERR) => AuthReply::Err(
            payload
                .get(1..3)
                .map_or(0, |b| u16::from_le_bytes([b[0], b[1]])),
        ),
        // The plugin name, NUL-terminated, then its data (read leniently: a name without
        // its NUL is still a name).
        Some(&packets::EOF) if payload.len() > 1 => {
            AuthReply::Switch(String::from_utf8_lossy(until_nul(&payload[1..])).into_owned())
        }
        _ => AuthReply::More,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MariaDB 11 greeting: protocol 10, version, id 9, scramble, capabilities with
    /// CLIENT_SSL and CLIENT_MYSQL clear, and the extended capabilities (bulk, cache
    /// metadata, bulk unit results).
    fn greeting() -> Vec<u8> {
        let caps = (CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_SSL
            | CapabilityFlags::CLIENT_DEPRECATE_EOF)
            .bits();
        let mut p = vec![10];
        p.extend_from_slice(b"11.4.2-MariaDB\0");
        p.extend_from_slice(&9u32.to_le_bytes());
        p.extend_from_slice(b"12345678\0");
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&0x34u32.to_le_bytes());
        p.extend_from_slice(b"901234567890\0mysql_native_password\0");
        framing::packet(0, &p)
    }

    #[test]
    fn the_greeting_is_patched_in_place() {
        let mut raw = greeting();
        let before = raw.clone();
        let g = patch_greeting(
            &mut raw,
            CapabilityFlags::CLIENT_SSL,
            CapabilityFlags::empty(),
        )
        .unwrap();
        assert_eq!(g.server_version, "11.4.2-MariaDB");
        assert_eq!(g.connection_id, 9);
        assert!(g.server_capabilities.contains(CapabilityFlags::CLIENT_SSL));
        assert!(!g.capabilities.contains(CapabilityFlags::CLIENT_SSL));
        assert_eq!(
            g.mariadb_capabilities,
            MariadbCapabilities::MARIADB_CLIENT_CACHE_METADATA
        );
        // Only the capability bytes changed, and they say what Greeting says.
        let changed: Vec<usize> = (0..raw.len()).filter(|&i| raw[i] != before[i]).collect();
        assert_eq!(
            changed.len(),
            2,
            "CLIENT_SSL's byte and the MariaDB capabilities'"
        );
        let again =
            patch_greeting(&mut raw, CapabilityFlags::empty(), CapabilityFlags::empty()).unwrap();
        assert_eq!(again.server_capabilities, g.capabilities);
        assert_eq!(again.mariadb_capabilities, g.mariadb_capabilities);
        assert_eq!(server_version(&raw).as_deref(), Some("11.4.2-MariaDB"));
        // The probe reads the version from a greeting's first bytes only.
        assert_eq!(
            server_version(&raw[..20]).as_deref(),
            Some("11.4.2-MariaDB")
        );
        assert!(!is_refusal(&raw));
        assert!(is_refusal(&[9, 0, 0, 0, 0xff, 0x10, 0x04]));
    }

    #[test]
    fn a_login_and_an_ssl_request_are_told_apart() {
        let caps = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_CONNECT_WITH_DB;
        let mut p = caps.bits().to_le_bytes().to_vec();
        p.extend_from_slice(&(1u32 << 24).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(b"bob\0");
        p.extend_from_slice(&[2, 0xaa, 0xbb]);
        p.extend_from_slice(b"shop\0mysql_native_password\0");
        let mut raw = framing::packet(1, &p);
        let login = parse_login(&raw).unwrap();
        assert_eq!(login.user, "bob");
        assert_eq!(login.db.as_deref(), Some("shop"));
        assert_eq!((login.charset, login.max_packet_size), (45, 1 << 24));
        assert_eq!(login.auth_plugin, "mysql_native_password");
        assert!(login.protocol_41());
        assert!(!is_ssl_request(&raw));
        assert!(!may_be_ssl_request(&raw[..4]));
        set_login_ssl(&mut raw, true);
        assert!(
            parse_login(&raw)
                .unwrap()
                .capabilities
                .contains(CapabilityFlags::CLIENT_SSL)
        );
        set_login_ssl(&mut raw, false);
        assert_eq!(parse_login(&raw).unwrap().capabilities, caps);
        // The SSLRequest made from it: 32 bytes, sequence id 1, the login's capabilities.
        let request = ssl_request_packet(&login);
        assert_eq!(request[..4], [32, 0, 0, 1]);
        assert!(is_ssl_request(&request));
        assert!(may_be_ssl_request(&request[..4]));
        assert_eq!(
            request[4..8],
            (caps | CapabilityFlags::CLIENT_SSL).bits().to_le_bytes()
        );
    }

    #[test]
    fn auth_replies() {
        let caps = CapabilityFlags::CLIENT_PROTOCOL_41;
        let reply = |p: &[u8]| auth_reply(&framing::packet(2, p), caps);
        assert_eq!(reply(&[0, 0, 0, 2, 0, 0, 0]), AuthReply::Ok(Some(2)));
        assert_eq!(reply(&[0]), AuthReply::Ok(None));
        assert_eq!(reply(b"\xff\x15\x04#28000denied"), AuthReply::Err(1045));
        assert_eq!(reply(&[0xff]), AuthReply::Err(0));
        assert_eq!(
            reply(b"\xfeclient_ed25519\0data"),
            AuthReply::Switch("client_ed25519".into())
        );
        assert_eq!(
            reply(b"\xfeunterminated"),
            AuthReply::Switch("unterminated".into())
        );
        assert_eq!(reply(&[0xfe]), AuthReply::More, "an old-style switch");
        assert_eq!(reply(&[0x01, 4]), AuthReply::More);
        assert_eq!(auth_reply(&[], caps), AuthReply::More);
    }

    #[test]
    fn malformed_handshakes_are_errors_not_panics() {
        let raw = greeting();
        for cut in [0, 3, 4, 5, 20, 40] {
            let mut short = raw[..cut].to_vec();
            let _ = patch_greeting(
                &mut short,
                CapabilityFlags::CLIENT_SSL,
                CapabilityFlags::empty(),
            );
            let _ = server_version(&short);
            assert!(parse_login(&short).is_err());
            assert!(!is_ssl_request(&short));
            set_login_ssl(&mut short, true);
        }
        assert!(
            patch_greeting(
                &mut [1, 0, 0, 0, 10],
                CapabilityFlags::empty(),
                CapabilityFlags::empty()
            )
            .is_err()
        );
        assert_eq!(
            server_version(&[5, 0, 0, 0, 9, b'x', 0]),
            None,
            "not protocol 10"
        );
        assert_eq!(server_version(&[5, 0, 0, 0, 10, b'x']), None, "no NUL yet");
    }

    #[test]
    fn compression_follows_the_capabilities() {
        assert_eq!(
            compression(CapabilityFlags::CLIENT_COMPRESS),
            Some(Algorithm::Zlib)
        );
        assert_eq!(
            compression(CapabilityFlags::CLIENT_ZSTD_COMPRESSION_ALGORITHM),
            Some(Algorithm::Zstd)
        );
        assert_eq!(compression(CapabilityFlags::CLIENT_PROTOCOL_41), None);
    }
}
