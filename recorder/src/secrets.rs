//! Passwords out of the capture: the string literals that are passwords in account
//! statements (`CREATE USER … IDENTIFIED BY '…'`, `ALTER USER`, `GRANT … IDENTIFIED BY`,
//! `SET PASSWORD … = …`, `PASSWORD('…')`, `CHANGE MASTER TO MASTER_PASSWORD = '…'`,
//! `CREATE SERVER … OPTIONS (PASSWORD '…')`) are replaced by `'***'` in what is captured,
//! with or without `--redact`. The bytes relayed to the server are never changed.
//!
//! A light tokenizer, not a parser: it knows comments, quoted strings and identifiers, so
//! a keyword inside a string or comment is not mistaken for one, and looks at the one or
//! two tokens before each string literal. Statements without the words PASSWORD or
//! IDENTIFIED are left alone after one scan for them.

/// What replaces a password literal's contents.
const MASK: &[u8] = b"***";

/// Replaces password literals in `sql` (see the module documentation); whether any was.
pub fn scrub(sql: &mut Vec<u8>) -> bool {
    if !mentions_secrets(sql) {
        return false;
    }
    let spans = password_literals(sql);
    if spans.is_empty() {
        return false;
    }
    let mut out = Vec::with_capacity(sql.len());
    let mut at = 0;
    for (start, end) in spans {
        // Keep the quotes, replace what is between them (an unterminated literal has no
        // closing quote: all of the rest is masked).
        out.extend_from_slice(&sql[at..=start]);
        out.extend_from_slice(MASK);
        let closed = end - 1 > start && sql[end - 1] == sql[start];
        at = if closed { end - 1 } else { end };
    }
    out.extend_from_slice(&sql[at..]);
    *sql = out;
    true
}

/// Whether `sql` contains PASSWORD or IDENTIFIED in any case: one pass, cheap enough for
/// every query (a multi-MiB INSERT included).
fn mentions_secrets(sql: &[u8]) -> bool {
    sql.iter().enumerate().any(|(i, &b)| match b | 0x20 {
        b'p' => sql[i..]
            .get(..8)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"password")),
        b'i' => sql[i..]
            .get(..10)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"identified")),
        _ => false,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    /// A keyword or unquoted identifier.
    Word(&'a [u8]),
    /// A quoted string: byte offsets of its opening and closing quote (exclusive end).
    Str(usize, usize),
    Punct(u8),
}

/// The statement-level context the rules need.
#[derive(Debug, Default)]
struct Statement<'a> {
    /// Significant tokens seen in this statement: the first two and the last two.
    first: Option<Tok<'a>>,
    second: Option<Tok<'a>>,
    prev: Option<Tok<'a>>,
    prev2: Option<Tok<'a>>,
    identified: bool,
}

impl<'a> Statement<'a> {
    fn push(&mut self, tok: Tok<'a>) {
        if self.first.is_none() {
            self.first = Some(tok);
        } else if self.second.is_none() {
            self.second = Some(tok);
        }
        if matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(b"identified")) {
            self.identified = true;
        }
        self.prev2 = self.prev.replace(tok);
    }

    /// Whether a string literal here is a password.
    fn is_password(&self) -> bool {
        let word = |t: Option<Tok<'_>>, any: &[&[u8]]| matches!(t, Some(Tok::Word(w)) if any.iter().any(|k| w.eq_ignore_ascii_case(k)));
        // PASSWORD('x'), OLD_PASSWORD('x'), in any statement.
        (self.prev == Some(Tok::Punct(b'('))
            && word(self.prev2, &[b"password", b"old_password"]))
            // IDENTIFIED [WITH|VIA plugin] BY|USING|AS 'x', BY PASSWORD 'hash',
            // REPLACE 'old'; and PASSWORD 'x' (CREATE SERVER ... OPTIONS).
            || (self.identified
                && word(self.prev, &[b"by", b"using", b"as", b"replace"]))
            || word(self.prev, &[b"password"])
            // SET PASSWORD [FOR user] = 'hash', MASTER_PASSWORD = 'x', PASSWORD = 'x'.
            || (self.prev == Some(Tok::Punct(b'='))
                && (word(self.prev2, &[b"password", b"master_password"])
                    || (word(self.first, &[b"set"]) && word(self.second, &[b"password"]))))
    }
}

/// Spans (opening quote, end) of the string literals in `sql` that are passwords.
fn password_literals(sql: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut st = Statement::default();
    let mut at = 0;
    while let Some((tok, next)) = next_token(sql, at) {
        at = next;
        match tok {
            Tok::Punct(b';') => st = Statement::default(),
            Tok::Str(start, end) => {
                if st.is_password() {
                    spans.push((start, end));
                }
                st.push(tok);
            }
            // A charset introducer (_utf8mb4'x', N'x', X'ab') belongs to the string.
            Tok::Word(w)
                if matches!(sql.get(next), Some(b'\'' | b'"'))
                    && (w.starts_with(b"_")
                        || matches!(w, [b'n' | b'N' | b'x' | b'X' | b'b' | b'B'])) => {}
            _ => st.push(tok),
        }
    }
    spans
}

/// The token starting at or after `at` (skipping blanks and comments) and the offset
/// after it; `None` at the end.
fn next_token(sql: &[u8], mut at: usize) -> Option<(Tok<'_>, usize)> {
    loop {
        let b = *sql.get(at)?;
        let rest = &sql[at..];
        if b.is_ascii_whitespace() {
            at += 1;
        } else if b == b'#' || rest.starts_with(b"-- ") || rest.starts_with(b"--\t") {
            at = line_end(sql, at);
        } else if rest.starts_with(b"/*!") || rest.starts_with(b"/*M!") {
            // Executable comment: its contents are SQL; skip the marker and version.
            at += if rest[2] == b'M' { 4 } else { 3 };
            while sql.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
        } else if rest.starts_with(b"/*") {
            at = find(sql, at + 2, b"*/").map_or(sql.len(), |e| e + 2);
        } else if rest.starts_with(b"*/") {
            at += 2; // the end of an executable comment
        } else if b == b'\'' || b == b'"' {
            let end = quoted_end(sql, at, b, true);
            return Some((Tok::Str(at, end), end));
        } else if b == b'`' {
            let end = quoted_end(sql, at, b'`', false);
            return Some((Tok::Word(&sql[at..end]), end));
        } else if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80 {
            let len = rest
                .iter()
                .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80))
                .unwrap_or(rest.len());
            return Some((Tok::Word(&rest[..len]), at + len));
        } else {
            return Some((Tok::Punct(b), at + 1));
        }
    }
}

fn line_end(sql: &[u8], at: usize) -> usize {
    sql[at..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(sql.len(), |p| at + p + 1)
}

fn find(sql: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    sql.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// The offset after the closing `quote` of the literal opening at `at` (doubled quotes
/// and, if `backslash`, backslash escapes inside); the end of `sql` if unterminated.
fn quoted_end(sql: &[u8], at: usize, quote: u8, backslash: bool) -> usize {
    let mut i = at + 1;
    while i < sql.len() {
        match sql[i] {
            b'\\' if backslash => i += 2,
            c if c == quote => {
                if sql.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    sql.len()
}

#[cfg(test)]
mod tests {
    use super::scrub;

    fn scrubbed(sql: &str) -> String {
        let mut v = sql.as_bytes().to_vec();
        scrub(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn password_literals_are_masked() {
        for (sql, want) in [
            (
                "CREATE USER 'u'@'%' IDENTIFIED BY 'hunter2'",
                "CREATE USER 'u'@'%' IDENTIFIED BY '***'",
            ),
            (
                "alter user u identified by \"s3cr'et\" require ssl",
                "alter user u identified by \"***\" require ssl",
            ),
            (
                "ALTER USER u IDENTIFIED BY 'new' REPLACE 'old'",
                "ALTER USER u IDENTIFIED BY '***' REPLACE '***'",
            ),
            (
                "CREATE USER u IDENTIFIED BY PASSWORD '*ABCDEF'",
                "CREATE USER u IDENTIFIED BY PASSWORD '***'",
            ),
            (
                "CREATE USER u IDENTIFIED WITH mysql_native_password BY 'pw'",
                "CREATE USER u IDENTIFIED WITH mysql_native_password BY '***'",
            ),
            (
                "CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('pw') OR unix_socket",
                "CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('***') OR unix_socket",
            ),
            (
                "CREATE USER u IDENTIFIED WITH caching_sha2_password AS '$A$005$x'",
                "CREATE USER u IDENTIFIED WITH caching_sha2_password AS '***'",
            ),
            (
                "GRANT SELECT ON db.* TO 'u'@'h' IDENTIFIED BY 'pw' WITH GRANT OPTION",
                "GRANT SELECT ON db.* TO 'u'@'h' IDENTIFIED BY '***' WITH GRANT OPTION",
            ),
            (
                "SET PASSWORD FOR 'u'@'%' = PASSWORD('pw')",
                "SET PASSWORD FOR 'u'@'%' = PASSWORD('***')",
            ),
            ("SET PASSWORD = '*94BDCEBE'", "SET PASSWORD = '***'"),
            (
                "set password for u = _utf8mb4'pw'",
                "set password for u = _utf8mb4'***'",
            ),
            (
                "CHANGE MASTER TO MASTER_USER='r', MASTER_PASSWORD='pw'",
                "CHANGE MASTER TO MASTER_USER='r', MASTER_PASSWORD='***'",
            ),
            (
                "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'r', PASSWORD 'pw')",
                "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'r', PASSWORD '***')",
            ),
            (
                "SELECT 1; /* c */ CREATE USER u IDENTIFIED BY 'a\\'b' ; SELECT 'x'",
                "SELECT 1; /* c */ CREATE USER u IDENTIFIED BY '***' ; SELECT 'x'",
            ),
            (
                "/*!80000 ALTER USER u IDENTIFIED BY 'pw' */",
                "/*!80000 ALTER USER u IDENTIFIED BY '***' */",
            ),
        ] {
            assert_eq!(scrubbed(sql), want, "{sql}");
        }
    }

    #[test]
    fn other_statements_are_left_alone() {
        for sql in [
            "SELECT * FROM t WHERE a = 'identified by' ORDER BY 'x'",
            "SELECT 'password' AS p, `password` FROM users WHERE name = 'by'",
            "INSERT INTO t VALUES ('IDENTIFIED BY')",
            "UPDATE users SET password_hash = 'abc' WHERE id = 1",
            "-- IDENTIFIED BY 'x'\nSELECT 'kept'",
            "CREATE USER u IDENTIFIED BY 'unterminated",
        ] {
            if sql.contains("unterminated") {
                // An unterminated password is still a password.
                assert_eq!(scrubbed(sql), "CREATE USER u IDENTIFIED BY '***");
            } else {
                assert_eq!(scrubbed(sql), sql);
            }
        }
    }
}
