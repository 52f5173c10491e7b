//! A transparent MySQL-protocol proxy that records every command.
//!
//! - [`listener`]: accepts clients, shuts down cleanly on SIGINT/SIGTERM;
//! - [`relay`]: one task per client connection, relaying bytes as they arrive (each
//!   side a `peer::Peer`: socket, read buffer, whole packets);
//! - [`codec`]: everything about MySQL packets: framing, compression, handshake,
//!   commands, the response state machine and the digest of its rows;
//! - [`sink`]: the bounded capture queue and its writer thread;
//! - [`secrets`]: passwords in account statements are masked in the capture;
//! - [`tls`]: TLS toward clients (terminated) and toward the upstream.

pub mod codec;
pub mod config;
pub mod error;
pub mod listener;
mod peer;
pub mod relay;
pub mod secrets;
pub mod sink;
pub mod tls;

pub use error::Error;
