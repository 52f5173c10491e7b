//! Query classes: a query with its literals abstracted, as pt-fingerprint does it.
//!
//! `SELECT * FROM t WHERE id = 42 AND name IN ('a','b')` and
//! `select * from t where id=7 and name in ('c')` are the same *class*; replay
//! statistics and reports are kept per class. The class id is xxh3-64 of the text.
//!
//! The rules follow percona-toolkit's `QueryRewriter::fingerprint` (pt-fingerprint):
//! comments removed (but not `/*!…*/` version comments), whitespace collapsed, everything
//! lower-cased, strings, numbers and NULL become `?`, `IN (…)` and `VALUES (…),(…)` lists
//! collapse to `in(?+)` / `values(?+)`, multi-row INSERTs keep their first row, `LIMIT a,b`
//! and `LIMIT a OFFSET b` become `limit ?`, `ASC` disappears after `ORDER BY`, identical
//! `UNION` arms collapse, `USE db` is `use ?`, `CALL p(…)` is `call p`.
//!
//! It is one pass over the bytes plus a few in-place passes over the (shorter) output,
//! with no allocation per token; a regex or full parser is 20–100× slower. Where
//! pt-fingerprint is plainly wrong we deviate, each case pinned by a test in
//! `tests/fingerprint.rs`:
//! - digits inside identifiers are kept (`sbtest1` stays `sbtest1`; pt makes every table
//!   `sbtest?`, merging classes that touch different tables — its own
//!   `--match-embedded-numbers` option exists for this);
//! - a minus between two operands is an operator (`a-1` → `a-?`; pt gives `a?`), while a
//!   unary minus belongs to its number (`= -5` → `= ?`, as pt);
//! - strings with escaped or doubled quotes are one literal (pt's non-greedy regex can
//!   split `'it''s'` into `??`), and quotes inside backtick identifiers are not strings;
//! - charset introducers and hex/bit strings (`_utf8mb4'x'`, `X'ff'`, `b'01'`) are one `?`;
//! - `--` starts a comment only when followed by whitespace, as in MySQL (pt also cuts
//!   `a--1`); `#` and `--` comments that contain a quote are removed too;
//! - trailing whitespace and a trailing `;` are dropped.

use xxhash_rust::xxh3::xxh3_64;

/// Reusable fingerprinting state: keep one per thread and call
/// [`fingerprint`](Self::fingerprint) for each query; buffers are reused.
#[derive(Debug, Default)]
pub struct Fingerprinter {
    out: Vec<u8>,
    scratch: Vec<u8>,
}

impl Fingerprinter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The class text of `sql` (which need not be UTF-8; invalid bytes become U+FFFD).
    pub fn fingerprint(&mut self, sql: &[u8]) -> &str {
        self.fingerprint_bytes(sql);
        if std::str::from_utf8(&self.out).is_err() {
            let lossy = String::from_utf8_lossy(&self.out).into_owned();
            self.out = lossy.into_bytes();
        }
        // Valid by now; the fallback is unreachable but keeps this free of panics.
        std::str::from_utf8(&self.out).unwrap_or_default()
    }

    /// The class text as bytes, without UTF-8 validation: the class of valid UTF-8 input
    /// is valid UTF-8, and bytes of invalid input pass through unchanged.
    pub fn fingerprint_bytes(&mut self, sql: &[u8]) -> &[u8] {
        self.out.clear();
        if let Some(special) = special_case(sql) {
            self.out.extend_from_slice(special);
        } else {
            // The rewrites below each scan the output again; the single pass notes which
            // words occur so that most queries (no list, no LIMIT, no UNION) skip them.
            let seen = scan(sql, &mut self.out);
            if seen.insert {
                shorten_multi_row_insert(&mut self.out, &mut self.scratch);
            }
            if seen.list {
                collapse_lists(&mut self.out, &mut self.scratch);
            }
            if seen.limit {
                collapse_limit(&mut self.out, &mut self.scratch);
            }
            if seen.union {
                collapse_union(&mut self.out);
            }
        }
        &self.out
    }
}

/// The class text of one query (allocates; use [`Fingerprinter`] in loops).
pub fn fingerprint(sql: &str) -> String {
    Fingerprinter::new().fingerprint(sql.as_bytes()).to_owned()
}

/// The class id: xxh3-64 of the class text.
pub fn class_id(fingerprint: &str) -> u64 {
    xxh3_64(fingerprint.as_bytes())
}

/// A class id as 16 lower-case hex digits, as reports and JSON show it.
pub fn class_id_hex(id: u64) -> String {
    ClassId(id).to_string()
}

/// A query class id where it crosses a seam (reports, JSON, command lines): a number in
/// the program, 16 lower-case hex digits in text, so it is never parsed back from a
/// string the program itself printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId(pub u64);

impl std::fmt::Display for ClassId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for ClassId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match u64::from_str_radix(s, 16) {
            Ok(id) if !s.is_empty() && s.len() <= 16 => Ok(ClassId(id)),
            _ => Err(format!("{s:?} is not a class id (16 hex digits)")),
        }
    }
}

impl serde::Serialize for ClassId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ClassId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Whole-query shapes pt-fingerprint recognises before abstracting.
fn special_case(sql: &[u8]) -> Option<&[u8]> {
    if sql.starts_with(b"SELECT /*!40001 SQL_NO_CACHE */ * FROM `") {
        return Some(b"mysqldump");
    }
    if sql.starts_with(b"administrator command: ") {
        return Some(trim_end(sql));
    }
    None
}

fn trim_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// Bytes that continue an identifier or keyword: a table lookup, because the scanner
/// asks this for nearly every input byte.
const IDENT: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
        b += 1;
    }
    t
};

#[inline]
fn is_ident(b: u8) -> bool {
    IDENT[b as usize]
}

/// Words the single pass saw that call for a rewrite of its output.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// First word `insert` or `replace`: multi-row VALUES keep their first row.
    insert: bool,
    /// `in`, `value` or `values`: a list may collapse.
    list: bool,
    limit: bool,
    union: bool,
}

/// The single pass: comments, whitespace, case, literals.
///
/// Long on purpose: it is the scanner, one loop over the bytes whose states share a
/// handful of locals; split into functions, the hot loop of `replayer fingerprint` would
/// pass them around on every byte.
fn scan(sql: &[u8], out: &mut Vec<u8>) -> Seen {
    let mut seen = Seen::default();
    out.reserve(sql.len());
    let n = sql.len();
    let mut i = 0;
    // Whether a space is owed before the next emitted token (collapsed whitespace).
    let mut space = false;
    // Inside ORDER BY (after the first one): ASC is dropped.
    let mut order_by = false;
    // `use`/`call` handling needs the first word.
    let mut first_word: Option<(usize, usize)> = None;

    while i < n {
        let b = sql[i];
        // Whitespace.
        if b.is_ascii_whitespace() {
            space = !out.is_empty();
            i += 1;
            continue;
        }
        // Comments.
        if b == b'/' && sql.get(i + 1) == Some(&b'*') && sql.get(i + 2) != Some(&b'!') {
            i = find(sql, i + 2, b"*/").map_or(n, |e| e + 2);
            space = !out.is_empty();
            continue;
        }
        if b == b'#'
            || (b == b'-'
                && sql.get(i + 1) == Some(&b'-')
                && sql.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()))
        {
            while i < n && sql[i] != b'\n' && sql[i] != b'\r' {
                i += 1;
            }
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(b' ');
            space = false;
        }
        // Strings (and `"…"`, which pt also treats as a string).
        if b == b'\'' || b == b'"' {
            i = skip_string(sql, i);
            // A charset introducer or x/b/n prefix just emitted belongs to this literal.
            strip_string_prefix(out);
            out.push(b'?');
            continue;
        }
        // Backtick identifiers are copied (lower-cased), quotes inside them are not strings.
        if b == b'`' {
            let end = find(sql, i + 1, b"`").map_or(n, |e| e + 1);
            let start_out = out.len();
            out.extend_from_slice(&sql[i..end]);
            out[start_out..].make_ascii_lowercase();
            i = end;
            continue;
        }
        // Numbers, with a unary sign when the previous token is not an operand.
        let unary = (b == b'-' || b == b'+')
            && sql
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
            && !ends_with_operand(out);
        if b.is_ascii_digit()
            || (b == b'.'
                && sql.get(i + 1).is_some_and(u8::is_ascii_digit)
                && !ends_with_operand(out))
            || unary
        {
            let start = i;
            if unary {
                i += 1;
            }
            let end = skip_number(sql, i);
            if end < n && is_ident(sql[end]) && !sql[start..end].contains(&b'.') {
                // `1abc` is an identifier in MySQL.
                let e = skip_ident(sql, end);
                out.extend(sql[start..e].iter().map(u8::to_ascii_lowercase));
                i = e;
            } else {
                out.push(b'?');
                i = end;
            }
            continue;
        }
        // Words: identifiers and keywords.
        if is_ident(b) {
            let end = skip_ident(sql, i);
            let start_out = out.len();
            out.extend_from_slice(&sql[i..end]);
            out[start_out..].make_ascii_lowercase();
            let lw = &out[start_out..];
            match lw {
                b"in" | b"value" | b"values" => seen.list = true,
                b"limit" => seen.limit = true,
                b"union" => seen.union = true,
                _ => {}
            }
            if lw == b"null" {
                out.truncate(start_out);
                out.push(b'?');
            } else if order_by && lw == b"asc" {
                out.truncate(start_out);
                // Drop the space owed before ASC as well.
                if out.last() == Some(&b' ') {
                    out.pop();
                }
            } else if lw == b"by" && out[..start_out].ends_with(b"order ") {
                order_by = true;
            }
            if first_word.is_none() {
                first_word = Some((start_out, out.len()));
                let fw = &out[start_out..];
                if fw == b"use" {
                    // `USE db` → `use ?`.
                    let rest = trim_end(&sql[end..]);
                    let rest = trim_end(rest.strip_suffix(b";").unwrap_or(rest));
                    if !rest.is_empty() && !rest.trim_ascii_start().contains(&b' ') {
                        out.extend_from_slice(b" ?");
                        return seen;
                    }
                } else if fw == b"call" {
                    // `CALL p(…)` → `call p`.
                    let rest = &sql[end..];
                    let name_start = rest.len() - rest.trim_ascii_start().len();
                    let name_end = rest[name_start..]
                        .iter()
                        .position(|c| *c == b'(' || c.is_ascii_whitespace() || *c == b';')
                        .map_or(rest.len(), |p| name_start + p);
                    if rest[name_end..].trim_ascii_start().starts_with(b"(") {
                        out.push(b' ');
                        out.extend(
                            rest[name_start..name_end]
                                .iter()
                                .map(u8::to_ascii_lowercase),
                        );
                        return seen;
                    }
                }
            }
            i = end;
            continue;
        }
        // Everything else (operators, punctuation, `?` placeholders) is copied.
        out.push(b);
        i += 1;
    }
    // Trailing `;` (and the space before it) is not part of the class.
    while matches!(out.last(), Some(b';' | b' ')) {
        out.pop();
    }
    seen.insert = out.starts_with(b"insert") || out.starts_with(b"replace");
    seen
}

/// Whether the output so far ends with something a binary operator could follow.
fn ends_with_operand(out: &[u8]) -> bool {
    let trimmed = out.strip_suffix(b" ").unwrap_or(out);
    match trimmed.last() {
        None => false,
        Some(b')' | b'?' | b'`') => true,
        Some(&c) if is_ident(c) => {
            // Keywords after which a sign is unary: `select -1`, `limit -1`, `and -x`...
            let start = trimmed
                .iter()
                .rposition(|c| !is_ident(*c))
                .map_or(0, |p| p + 1);
            !matches!(
                &trimmed[start..],
                b"select"
                    | b"where"
                    | b"and"
                    | b"or"
                    | b"not"
                    | b"set"
                    | b"values"
                    | b"value"
                    | b"in"
                    | b"by"
                    | b"limit"
                    | b"offset"
                    | b"then"
                    | b"else"
                    | b"when"
                    | b"return"
                    | b"interval"
                    | b"between"
                    | b"like"
                    | b"is"
                    | b"having"
                    | b"on"
                    | b"as"
                    | b"case"
                    | b"div"
                    | b"mod"
                    | b"xor"
            )
        }
        Some(_) => false,
    }
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay.get(from..)?, needle).map(|p| from + p)
}

fn skip_ident(sql: &[u8], mut i: usize) -> usize {
    while i < sql.len() && is_ident(sql[i]) {
        i += 1;
    }
    i
}

/// Skips a quoted string starting at `i` (the quote), honouring `\` escapes and doubled
/// quotes; an unterminated string runs to the end.
fn skip_string(sql: &[u8], i: usize) -> usize {
    let quote = sql[i];
    let mut j = i + 1;
    while j < sql.len() {
        match sql[j] {
            b'\\' => j += 2,
            c if c == quote => {
                if sql.get(j + 1) == Some(&quote) {
                    j += 2;
                } else {
                    return j + 1;
                }
            }
            _ => j += 1,
        }
    }
    sql.len()
}

/// Skips a numeric literal: decimal with fraction and exponent, 0x…, 0b….
fn skip_number(sql: &[u8], mut i: usize) -> usize {
    let n = sql.len();
    if sql[i] == b'0' && matches!(sql.get(i + 1), Some(b'x' | b'X' | b'b' | b'B')) {
        let mut j = i + 2;
        while j < n && sql[j].is_ascii_hexdigit() {
            j += 1;
        }
        if j > i + 2 {
            return j;
        }
    }
    while i < n && sql[i].is_ascii_digit() {
        i += 1;
    }
    if i < n && sql[i] == b'.' {
        i += 1;
        while i < n && sql[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < n && (sql[i] == b'e' || sql[i] == b'E') {
        let mut j = i + 1;
        if j < n && (sql[j] == b'+' || sql[j] == b'-') {
            j += 1;
        }
        if j < n && sql[j].is_ascii_digit() {
            while j < n && sql[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

/// `x'…'`, `b'…'`, `n'…'`, `_utf8mb4'…'`: the prefix is part of the literal.
fn strip_string_prefix(out: &mut Vec<u8>) {
    let start = out.iter().rposition(|c| !is_ident(*c)).map_or(0, |p| p + 1);
    let word = &out[start..];
    if matches!(word, b"x" | b"b" | b"n") || (word.len() > 1 && word[0] == b'_') {
        out.truncate(start);
    }
}

/// `insert … values (…), (…), (…)` keeps its first row (pt does this before anything
/// else, so rows with expressions still group together).
fn shorten_multi_row_insert(out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    if !(out.starts_with(b"insert") || out.starts_with(b"replace")) {
        return;
    }
    let Some(v) = find_word(out, b"values", 0).or_else(|| find_word(out, b"value", 0)) else {
        return;
    };
    let mut i = v;
    while i < out.len() && out[i] != b'(' {
        i += 1;
    }
    let Some(first_end) = matching_paren(out, i) else {
        return;
    };
    // Skip `, (…)` groups after the first row.
    let mut j = first_end + 1;
    let mut cut_end = j;
    loop {
        let mut k = j;
        while k < out.len() && matches!(out[k], b' ' | b',') {
            k += 1;
        }
        if k > j && out.get(k) == Some(&b'(') && out[j..k].contains(&b',') {
            match matching_paren(out, k) {
                Some(e) => {
                    j = e + 1;
                    cut_end = j;
                }
                None => break,
            }
        } else {
            break;
        }
    }
    if cut_end > first_end + 1 {
        scratch.clear();
        scratch.extend_from_slice(&out[..first_end + 1]);
        scratch.extend_from_slice(&out[cut_end..]);
        std::mem::swap(out, scratch);
    }
}

/// `in (?, ?)` / `values (?, ?), (?)` → `in(?+)` / `values(?+)`.
fn collapse_lists(out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    // Most queries have no list at all: only rewrite when `in (` / `values (` occurs.
    if !has_list(out) {
        return;
    }
    scratch.clear();
    let mut i = 0;
    while i < out.len() {
        if !matches!(out[i], b'i' | b'v') {
            scratch.push(out[i]);
            i += 1;
            continue;
        }
        let word = [&b"values"[..], b"value", b"in"]
            .into_iter()
            .find(|w| out[i..].starts_with(w) && word_boundary(out, i, w.len()));
        if let Some(w) = word {
            // One or more `[\s,]*\([\s?,]*\)` groups.
            let mut j = i + w.len();
            let mut matched = false;
            loop {
                let mut k = j;
                while k < out.len() && matches!(out[k], b' ' | b',') {
                    k += 1;
                }
                if out.get(k) != Some(&b'(') {
                    break;
                }
                let mut m = k + 1;
                while m < out.len() && matches!(out[m], b' ' | b'?' | b',') {
                    m += 1;
                }
                if out.get(m) != Some(&b')') {
                    break;
                }
                j = m + 1;
                matched = true;
            }
            if matched {
                scratch.extend_from_slice(w);
                scratch.extend_from_slice(b"(?+)");
                i = j;
                continue;
            }
            scratch.extend_from_slice(w);
            i += w.len();
            continue;
        }
        scratch.push(out[i]);
        i += 1;
    }
    std::mem::swap(out, scratch);
}

/// Whether `in`/`value`/`values` is followed (after spaces) by `(`.
fn has_list(out: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = memchr::memchr(b'(', &out[from..]) {
        let open = from + p;
        let head = out[..open].trim_ascii_end();
        if (head.ends_with(b"in") || head.ends_with(b"value") || head.ends_with(b"values"))
            || matches!(head.last(), Some(b','))
        {
            return true;
        }
        from = open + 1;
    }
    false
}

/// `limit ?, ?` and `limit ? offset ?` → `limit ?`.
fn collapse_limit(out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    let Some(p) = find_word(out, b"limit ?", 0) else {
        return;
    };
    let after = p + b"limit ?".len();
    let rest = &out[after..];
    let skip = [&b", ?"[..], b",?", b" offset ?"]
        .into_iter()
        .find(|s| rest.starts_with(s) && word_boundary(out, after, s.len()))
        .map_or(0, <[u8]>::len);
    if skip > 0 {
        scratch.clear();
        scratch.extend_from_slice(&out[..after]);
        scratch.extend_from_slice(&out[after + skip..]);
        std::mem::swap(out, scratch);
    }
}

/// `select a from t union select a from t` → `select a from t /*repeat union*/`.
fn collapse_union(out: &mut Vec<u8>) {
    let Some(first) = find(out, 0, b" union ") else {
        return;
    };
    let sep: &[u8] = if out[first..].starts_with(b" union all ") {
        b" union all "
    } else {
        b" union "
    };
    let head = &out[..first];
    if !head.starts_with(b"select ") {
        return;
    }
    // Every arm must be the same text, separated by the same operator.
    let mut pos = first;
    while pos < out.len() {
        if !out[pos..].starts_with(sep) {
            return;
        }
        pos += sep.len();
        if !out[pos..].starts_with(head) {
            return;
        }
        pos += head.len();
    }
    let label: &[u8] = if sep == b" union all " {
        b" /*repeat union all*/"
    } else {
        b" /*repeat union*/"
    };
    out.truncate(first);
    out.extend_from_slice(label);
}

fn word_boundary(s: &[u8], start: usize, len: usize) -> bool {
    let before = start == 0 || !is_ident(s[start - 1]);
    let end = start + len;
    let last_is_ident = len > 0 && is_ident(s[end - 1]);
    let after = end >= s.len() || !last_is_ident || !is_ident(s[end]);
    before && after
}

fn find_word(s: &[u8], word: &[u8], from: usize) -> Option<usize> {
    let mut from = from;
    while let Some(p) = find(s, from, word) {
        if word_boundary(s, p, word.len()) {
            return Some(p);
        }
        from = p + 1;
    }
    None
}

fn matching_paren(s: &[u8], open: usize) -> Option<usize> {
    if s.get(open) != Some(&b'(') {
        return None;
    }
    let mut depth = 0usize;
    for (k, c) in s.iter().enumerate().skip(open) {
        match c {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// Streaming front ends for `replayer fingerprint`.
pub mod io {
    use std::borrow::Cow;
    use std::io::{BufRead, Write};

    use serde::{Deserialize, Serialize};

    use super::{Fingerprinter, class_id, class_id_hex};
    use crate::Error;

    /// How queries arrive.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Input {
        /// One JSON object per line: `{"query": "..."}`.
        JsonLines,
        /// SQL statements separated by `;` at the end of a line (pt-fingerprint's FILE mode).
        Sql,
    }

    /// How classes leave.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Output {
        /// `{"fingerprint": "...", "id": "<16 hex>"}` per query.
        Json,
        /// One fingerprint per line.
        Text,
    }

    #[derive(Deserialize)]
    struct InLine<'a> {
        #[serde(borrow)]
        query: Cow<'a, str>,
    }

    #[derive(Serialize)]
    struct OutLine<'a> {
        fingerprint: &'a str,
        id: &'a str,
    }

    /// Input is cut into blocks of about this size for the worker threads: large enough
    /// that handing a block over costs nothing next to fingerprinting it (~20,000
    /// queries), small enough that the blocks in flight stay a few MiB.
    const BLOCK: usize = 1 << 20;

    /// Fingerprints every query of `input` into `output`, in order. Returns how many.
    /// Uses one worker thread per available CPU (up to 8); the output is the same as
    /// one thread would write.
    pub fn transform<R: BufRead, W: Write>(
        input: R,
        output: W,
        input_mode: Input,
        output_mode: Output,
    ) -> Result<u64, Error> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        transform_with(input, output, input_mode, output_mode, threads, BLOCK)
    }

    /// [`transform`] with the thread count and block size chosen by the caller (tests use
    /// tiny blocks to put boundaries everywhere). `threads <= 1` runs in this thread.
    ///
    /// This thread reads the input and cuts it into blocks that end where a query ends
    /// (after a line for JSON lines; after a line ending in `;` for SQL, exactly where the
    /// one-thread reader would end a statement), hands block i to worker i mod N, and
    /// writes the workers' outputs in block order. At most two blocks per worker are in
    /// flight, so memory stays bounded whatever the input size.
    pub fn transform_with<R: BufRead, W: Write>(
        mut input: R,
        output: W,
        input_mode: Input,
        output_mode: Output,
        threads: usize,
        block: usize,
    ) -> Result<u64, Error> {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, output);
        if threads <= 1 {
            let mut emitter = Emitter::new(output_mode);
            run(&mut input, &mut out, input_mode, &mut emitter, 1)?;
            out.flush()?;
            return Ok(emitter.count);
        }
        let count = std::thread::scope(|scope| -> Result<u64, Error> {
            let (to, from): (Vec<_>, Vec<_>) = (0..threads)
                .map(|_| spawn_worker(scope, input_mode, output_mode))
                .unzip();
            let (mut sent, mut written, mut count) = (0usize, 0usize, 0u64);
            let mut collect = |upto: usize, written: &mut usize| -> Result<(), Error> {
                while *written < upto {
                    let (bytes, n) =
                        from[*written % threads].recv().map_err(|_| Error::Input {
                            line: 0,
                            message: "a fingerprint worker stopped".into(),
                        })??;
                    out.write_all(&bytes)?;
                    count += n;
                    *written += 1;
                }
                Ok(())
            };
            let mut line = 1u64;
            let mut blocks = Blocks {
                pending: Vec::with_capacity(block * 2),
                block,
                mode: input_mode,
                eof: false,
            };
            while let Some(job) = blocks.next(&mut input)? {
                let first_line = line;
                line += memchr::memchr_iter(b'\n', &job).count() as u64;
                if sent - written >= 2 * threads {
                    collect(written + 1, &mut written)?;
                }
                if to[sent % threads].send((job, first_line)).is_err() {
                    // The worker stopped on an error: collecting reaches it.
                    break;
                }
                sent += 1;
            }
            drop(to);
            collect(sent, &mut written)?;
            Ok(count)
        })?;
        out.flush()?;
        Ok(count)
    }

    /// What a worker sends back: a block's output and how many queries it held.
    type Done = Result<(Vec<u8>, u64), Error>;

    /// A worker fingerprinting blocks (with the line number each starts at), and the
    /// channels to it and from it.
    fn spawn_worker<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        input_mode: Input,
        output_mode: Output,
    ) -> (
        std::sync::mpsc::SyncSender<(Vec<u8>, u64)>,
        std::sync::mpsc::Receiver<Done>,
    ) {
        // Bounded at 2 each way: with at most 2 blocks outstanding per worker (see
        // `transform_with`), neither side can block the other for good.
        let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, u64)>(2);
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<Done>(2);
        scope.spawn(move || {
            let mut emitter = Emitter::new(output_mode);
            for (block, first_line) in job_rx {
                let mut bytes = Vec::with_capacity(block.len());
                emitter.count = 0;
                let done = run(
                    &mut &block[..],
                    &mut bytes,
                    input_mode,
                    &mut emitter,
                    first_line,
                )
                .map(|()| (bytes, emitter.count));
                let failed = done.is_err();
                if done_tx.send(done).is_err() || failed {
                    return;
                }
            }
        });
        (job_tx, done_rx)
    }

    /// Cuts the input into blocks of about `block` bytes that end where a query ends.
    struct Blocks {
        pending: Vec<u8>,
        block: usize,
        mode: Input,
        eof: bool,
    }

    impl Blocks {
        /// The next non-empty block, `None` at the end of the input.
        fn next<R: BufRead>(&mut self, input: &mut R) -> Result<Option<Vec<u8>>, Error> {
            while !self.eof {
                let target = self.pending.len() + self.block;
                while self.pending.len() < target {
                    let chunk = input.fill_buf()?;
                    if chunk.is_empty() {
                        self.eof = true;
                        break;
                    }
                    let take = chunk.len().min(target - self.pending.len());
                    self.pending.extend_from_slice(&chunk[..take]);
                    input.consume(take);
                }
                let cut = if self.eof {
                    self.pending.len()
                } else {
                    match block_end(&self.pending, self.mode) {
                        Some(cut) => cut,
                        None => continue, // one query longer than a block: read on
                    }
                };
                let rest = self.pending.split_off(cut);
                let job = std::mem::replace(&mut self.pending, rest);
                if !job.is_empty() {
                    return Ok(Some(job));
                }
            }
            Ok(None)
        }
    }

    /// Where a block may end: after the last query that ends inside `buf`.
    fn block_end(buf: &[u8], mode: Input) -> Option<usize> {
        let mut ends = memchr::memrchr_iter(b'\n', buf);
        match mode {
            Input::JsonLines => ends.next().map(|i| i + 1),
            Input::Sql => ends
                .find(|&i| terminated(&buf[..=i]).is_some())
                .map(|i| i + 1),
        }
    }

    fn run<R: BufRead>(
        input: &mut R,
        out: &mut impl Write,
        mode: Input,
        emitter: &mut Emitter,
        first_line: u64,
    ) -> Result<(), Error> {
        match mode {
            Input::JsonLines => json_lines(input, out, emitter, first_line),
            Input::Sql => sql_statements(input, out, emitter),
        }
    }

    struct Emitter {
        fp: Fingerprinter,
        mode: Output,
        count: u64,
    }

    impl Emitter {
        fn new(mode: Output) -> Self {
            Emitter {
                fp: Fingerprinter::new(),
                mode,
                count: 0,
            }
        }

        fn emit(&mut self, sql: &[u8], out: &mut impl Write) -> Result<(), Error> {
            self.count += 1;
            match self.mode {
                Output::Text => {
                    // Bytes as they are: the text mode, like pt-fingerprint, passes
                    // non-UTF-8 through rather than paying to validate every class.
                    out.write_all(self.fp.fingerprint_bytes(sql))?;
                    out.write_all(b"\n")?;
                }
                Output::Json => {
                    let text = self.fp.fingerprint(sql);
                    let id = class_id_hex(class_id(text));
                    serde_json::to_writer(
                        &mut *out,
                        &OutLine {
                            fingerprint: text,
                            id: &id,
                        },
                    )
                    .map_err(|e| Error::Input {
                        line: self.count,
                        message: e.to_string(),
                    })?;
                    out.write_all(b"\n")?;
                }
            }
            Ok(())
        }
    }

    fn json_lines<R: BufRead>(
        input: &mut R,
        out: &mut impl Write,
        emitter: &mut Emitter,
        first_line: u64,
    ) -> Result<(), Error> {
        let mut line = Vec::with_capacity(4096);
        let mut line_no = first_line - 1;
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            line_no += 1;
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            let parsed: InLine<'_> = serde_json::from_slice(trimmed).map_err(|e| Error::Input {
                line: line_no,
                message: format!("expected {{\"query\": \"...\"}}: {e}"),
            })?;
            emitter.emit(parsed.query.as_bytes(), out)?;
        }
    }

    /// pt-fingerprint's FILE mode: a statement ends with `;` at the end of a line.
    /// Statements that lie whole inside the reader's buffer are fingerprinted where they
    /// are; only one that straddles a buffer boundary (or spans lines) is copied.
    fn sql_statements<R: BufRead>(
        input: &mut R,
        out: &mut impl Write,
        emitter: &mut Emitter,
    ) -> Result<(), Error> {
        let mut statement = Vec::with_capacity(4096);
        loop {
            let chunk = input.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            let len = chunk.len();
            let mut pos = 0;
            while let Some(p) = memchr::memchr(b'\n', &chunk[pos..]) {
                let line = &chunk[pos..pos + p + 1];
                pos += p + 1;
                if statement.is_empty()
                    && let Some(sql) = terminated(line)
                {
                    emit_nonblank(emitter, sql, out)?;
                    continue;
                }
                statement.extend_from_slice(line);
                if let Some(sql) = terminated(&statement) {
                    emit_nonblank(emitter, sql, out)?;
                    statement.clear();
                }
            }
            statement.extend_from_slice(&chunk[pos..]);
            input.consume(len);
        }
        if !statement.trim_ascii().is_empty() {
            emitter.emit(trim_newline(&statement), out)?;
        }
        Ok(())
    }

    /// The statement in `text` (ending with a newline) if its line ends with `;`.
    fn terminated(text: &[u8]) -> Option<&[u8]> {
        trim_newline(text).strip_suffix(b";")
    }

    fn emit_nonblank(emitter: &mut Emitter, sql: &[u8], out: &mut impl Write) -> Result<(), Error> {
        if sql.trim_ascii().is_empty() {
            return Ok(());
        }
        emitter.emit(sql, out)
    }

    fn trim_newline(s: &[u8]) -> &[u8] {
        let s = s.strip_suffix(b"\n").unwrap_or(s);
        s.strip_suffix(b"\r").unwrap_or(s)
    }
}
