//! Errors of the shop's library code.

use std::borrow::Cow;
use std::fmt;

use hyper::StatusCode;

/// Everything the store (and so the API) can fail with. Each variant is one kind of
/// failure and decides its HTTP status ([`Error::status`]); messages are for people and
/// never inspected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is well formed but asks for something invalid (400).
    #[error("{0}")]
    Invalid(String),
    /// The thing asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method (405); `allow` lists the methods it
    /// takes, for the `Allow` header.
    #[error("{method} is not allowed on {path} (allowed: {allow})")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: String,
    },
    /// The request body is longer than the API takes (413), whether its
    /// `Content-Length` said so or its bytes did.
    #[error("body too large (limit {limit} bytes)")]
    TooLarge { limit: usize },
    /// The request conflicts with the current state: short stock, empty cart, a taken
    /// email (409).
    #[error("{0}")]
    Conflict(String),
    /// The database refused a statement (a bug in the shop, or a schema mismatch).
    #[error("database error: {0}")]
    Db(#[from] mysql_async::Error),
    /// Something the shop itself cannot handle: a row it cannot read (a schema
    /// mismatch), a reply it cannot encode (500). Never the client's fault.
    #[error("internal error: {0}")]
    Internal(String),
    /// The database cannot be reached at all (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn invalid(what: impl fmt::Display) -> Self {
        Error::Invalid(what.to_string())
    }

    pub fn not_found(what: impl fmt::Display) -> Self {
        Error::NotFound(what.to_string())
    }

    /// The HTTP status of this kind of failure: decided here, by the variant alone.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Db(_) if self.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Error::Db(_) | Error::Internal(_) | Error::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the database (not the statement) is the problem: connection refused or
    /// lost, pool closed, server gone. Those map to 503 so a client retries later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unavailable(_) => true,
            Error::Db(e) => {
                matches!(e, mysql_async::Error::Io(_) | mysql_async::Error::Driver(_))
                    || matches!(e, mysql_async::Error::Server(s) if is_unavailable_code(s.code))
            }
            _ => false,
        }
    }

    /// A deadlock or lock wait timeout: the transaction is safe to run again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Db(mysql_async::Error::Server(s)) if s.code == 1213 || s.code == 1205)
    }
}

/// Most characters of a client's input that an error message repeats.
pub const ECHO_CHARS: usize = 64;

/// `input` as an error message may repeat it: whole if short, else its first
/// [`ECHO_CHARS`] characters and "…". Otherwise a client sending a 60 KiB value gets (and
/// the logs keep) a 60 KiB error, and a message says no more for being longer.
pub fn clip(input: &str) -> Cow<'_, str> {
    clip_to(input, ECHO_CHARS)
}

/// [`clip`] to `max` characters.
pub fn clip_to(input: &str, max: usize) -> Cow<'_, str> {
    match input.char_indices().nth(max) {
        None => Cow::Borrowed(input),
        Some((end, _)) => Cow::Owned(format!("{}…", &input[..end])),
    }
}

/// Server errors that mean "try again later" rather than "your statement is wrong":
/// too many connections, server shutting down, Vitess with no healthy tablet.
fn is_unavailable_code(code: u16) -> bool {
    matches!(code, 1040 | 1053 | 1317 | 2002 | 2003 | 2006 | 2013)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_clipped_on_character_boundaries() {
        assert_eq!(clip("short"), "short");
        let exact = "é".repeat(ECHO_CHARS);
        assert_eq!(clip(&exact), exact);
        let long = "é".repeat(ECHO_CHARS + 1);
        assert_eq!(clip(&long), format!("{exact}…"));
        assert_eq!(clip_to("abcdef", 3), "abc…");
    }

    #[test]
    fn the_variant_not_the_message_decides_the_status() {
        let too_large = Error::TooLarge { limit: 10 };
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let lookalike = Error::invalid(too_large.to_string());
        assert_eq!(lookalike.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            Error::Internal("column 6".into()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            Error::Unavailable("x".into()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
