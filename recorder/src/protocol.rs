//! The connection phase: greeting and login.

use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{HandshakePacket, HandshakeResponse};

/// CLIENT_SSL is stripped from the relayed greeting unless the recorder terminates TLS
/// itself (the relay reads plaintext). The compression flags are relayed as offered:
/// the relay decodes compressed frames (see [`crate::codec::compress`]).
pub const CLIENT_SSL: u32 = 0x0000_0800;
pub const CLIENT_COMPRESS: u32 = 0x0000_0020;
/// CLIENT_ZSTD_COMPRESSION_ALGORITHM (MySQL 8).
pub const CLIENT_ZSTD: u32 = 0x0400_0000;

/// MariaDB's extended capabilities (the 4 bytes in the greeting's filler, used when the
/// server clears CLIENT_MYSQL). Bulk execution (COM_STMT_BULK_EXECUTE) is stripped: the
/// relay cannot decode it and would have to pass the connection through uncaptured.
/// Metadata caching is kept and followed (see `Response::skip_metadata_possible`).
pub const MARIADB_CLIENT_STMT_BULK_OPERATIONS: u32 = 0x0000_0004;
pub const MARIADB_CLIENT_CACHE_METADATA: u32 = 0x0000_0010;
pub const MARIADB_CLIENT_BULK_UNIT_RESULTS: u32 = 0x0000_0020;
const CLIENT_MYSQL: u32 = 0x0000_0001;

/// What the greeting told us, after patching its capabilities in place.
#[derive(Debug, Clone)]
pub struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    /// Capabilities as relayed to the client.
    pub capabilities: u32,
    /// Capabilities as the server sent them.
    pub server_capabilities: u32,
    /// MariaDB extended capabilities as relayed (0 for MySQL).
    pub mariadb_capabilities: u32,
}

/// Parses the server greeting, clears the `strip` capabilities and sets the `set` ones
/// in `payload` (in place, so every other byte is relayed as the server sent it).
pub fn patch_greeting(payload: &mut [u8], strip: u32, set: u32) -> Option<Greeting> {
    let (server_version, connection_id, capabilities, mariadb_capabilities) = {
        let hs: HandshakePacket<'_> = ParseBuf(payload).parse(()).ok()?;
        (
            String::from_utf8_lossy(hs.server_version_ref()).into_owned(),
            hs.connection_id(),
            hs.capabilities().bits(),
            hs.mariadb_ext_capabilities().bits(),
        )
    };
    // protocol(1) version\0 conn_id(4) auth1(8) filler(1) caps_lo(2) charset(1)
    // status(2) caps_hi(2) auth_len(1) reserved(6) mariadb_caps(4)
    let nul = payload.iter().skip(1).position(|b| *b == 0)? + 1;
    let lo = nul + 1 + 4 + 8 + 1;
    let hi = lo + 2 + 1 + 2;
    let patch = |bits: u16, shift: u32| (bits & !((strip >> shift) as u16)) | (set >> shift) as u16;
    if payload.len() >= hi + 2 {
        let caps_lo = patch(u16::from_le_bytes([payload[lo], payload[lo + 1]]), 0);
        payload[lo..lo + 2].copy_from_slice(&caps_lo.to_le_bytes());
        let caps_hi = patch(u16::from_le_bytes([payload[hi], payload[hi + 1]]), 16);
        payload[hi..hi + 2].copy_from_slice(&caps_hi.to_le_bytes());
    } else if payload.len() >= lo + 2 {
        let caps_lo = patch(u16::from_le_bytes([payload[lo], payload[lo + 1]]), 0);
        payload[lo..lo + 2].copy_from_slice(&caps_lo.to_le_bytes());
    }
    let mut mariadb_capabilities = mariadb_capabilities;
    let ext = hi + 2 + 1 + 6;
    if capabilities & CLIENT_MYSQL == 0 && payload.len() >= ext + 4 {
        mariadb_capabilities &=
            !(MARIADB_CLIENT_STMT_BULK_OPERATIONS | MARIADB_CLIENT_BULK_UNIT_RESULTS);
        payload[ext..ext + 4].copy_from_slice(&mariadb_capabilities.to_le_bytes());
    } else {
        mariadb_capabilities = 0;
    }
    Some(Greeting {
        server_version,
        connection_id,
        capabilities: (capabilities & !strip) | set,
        server_capabilities: capabilities,
        mariadb_capabilities,
    })
}

/// The client's login: who, which database, what it can do. Never the password.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub db: Option<String>,
    pub capabilities: u32,
    /// MariaDB extended capabilities the client asked for (0 when it speaks plain MySQL).
    pub mariadb_capabilities: u32,
    pub charset: u8,
    pub max_packet_size: u32,
    pub auth_plugin: String,
}

/// Whether a handshake response is really an SSLRequest (32 bytes, CLIENT_SSL set).
pub fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == 32
        && u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) & CLIENT_SSL != 0
}

/// Sets or clears CLIENT_SSL in a login packet's payload, in place: a login relayed to a
/// plaintext upstream must not claim TLS (the server would start a TLS handshake), and one
/// relayed over TLS the recorder opened must claim it, as the SSLRequest before it did.
/// CLIENT_SSL lives in the low 16 bits, which old and 4.1 logins both start with.
pub fn set_login_ssl(payload: &mut [u8], ssl: bool) {
    if let Some(lo) = payload.get_mut(0..2) {
        let mut caps = u16::from_le_bytes([lo[0], lo[1]]);
        if ssl {
            caps |= CLIENT_SSL as u16;
        } else {
            caps &= !(CLIENT_SSL as u16);
        }
        lo.copy_from_slice(&caps.to_le_bytes());
    }
}

/// The SSLRequest the recorder sends the upstream for a client that logged in without
/// TLS: the login's own capabilities plus CLIENT_SSL, as a client would send it.
pub fn ssl_request(login: &Login) -> Vec<u8> {
    use mysql_common::constants::MariadbCapabilities;
    use mysql_common::proto::MySerialize;
    let request = mysql_common::packets::SslRequest::new(
        CapabilityFlags::from_bits_retain(login.capabilities | CLIENT_SSL),
        login.max_packet_size,
        login.charset,
    )
    .with_mariadb_capabilities(MariadbCapabilities::from_bits_retain(
        login.mariadb_capabilities,
    ));
    let mut payload = Vec::with_capacity(32);
    request.serialize(&mut payload);
    payload
}

pub fn parse_login(payload: &[u8]) -> Option<Login> {
    let r: HandshakeResponse<'_> = ParseBuf(payload).parse(()).ok()?;
    Some(Login {
        user: String::from_utf8_lossy(r.user()).into_owned(),
        db: r
            .db_name()
            .filter(|d| !d.is_empty())
            .map(|d| String::from_utf8_lossy(d).into_owned()),
        capabilities: r.capabilities().bits(),
        mariadb_capabilities: if r.capabilities().bits() & CLIENT_MYSQL == 0 {
            r.mariadb_ext_capabilities().bits()
        } else {
            0
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
