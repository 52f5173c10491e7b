//! Result digests: a compact fingerprint of the rows a command returned, computed the
//! same way by the recorder (from the wire) and the replayer (from its driver), so a
//! replay can tell "the same answer" from "other rows" and from "the same rows in another
//! order" without keeping any row.
//!
//! **Canonical row.** Every row is encoded as the text protocol sends it — one
//! length-encoded string per column, `0xFB` for NULL — whichever protocol carried it, so
//! a text result and a binary (prepared statement) result of the same data agree: binary
//! integers, dates and times are spelled as the server spells them in text. FLOAT and
//! DOUBLE are the exception: their text spelling is the server's choice (digits shown
//! vary by version and type), so on both sides they are spelled in one canonical form
//! rounded to the digits the type guarantees (6 for FLOAT, 15 for DOUBLE). A text row
//! without such columns is already canonical: the recorder hashes the packet as it
//! passes, without parsing it.
//!
//! **Hashes.** Each canonical row gets a 64-bit xxh3. The order-insensitive hash is
//! their wrapping sum (a multiset hash: duplicate rows count, order does not); the
//! order-sensitive one chains them (`h = xxh3(row, seed = h)`). Same count and same
//! unordered hash but another ordered hash: "same rows, other order". xxh3's output is
//! fixed by its specification, so digests written by one build compare with another's.

use std::borrow::Cow;
use std::fmt::Write as _;

use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::io::{BufMutExt, ParseBuf};
use mysql_common::packets::NullBitmap;
use mysql_common::value::{BinValue, ServerSide, Value, ValueDeserializer};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// The digest of every row a response returned (all its result sets, in order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Digest {
    /// Order-insensitive: the wrapping sum of the row hashes.
    pub unordered: u64,
    /// Order-sensitive: the row hashes chained in the order the rows came.
    pub ordered: u64,
}

/// How two digests of results with the same row count compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Likeness {
    Same,
    /// The same rows in another order.
    OrderOnly,
    /// Other rows.
    Different,
}

impl Digest {
    pub fn likeness(&self, other: &Digest) -> Likeness {
        if self == other {
            Likeness::Same
        } else if self.unordered == other.unordered {
            Likeness::OrderOnly
        } else {
            Likeness::Different
        }
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}/{:016x}", self.unordered, self.ordered)
    }
}

/// A row that cannot be digested (the response then has no digest; the traffic is not
/// affected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot digest a row: {0}")]
pub struct DigestError(&'static str);

impl DigestError {
    pub fn reason(&self) -> &'static str {
        self.0
    }
}

/// What the digest needs to know about one column of a result set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSpec {
    ty: ColumnType,
    flags: ColumnFlags,
    decimals: u8,
}

/// Length of the fixed-length tail of a result set's column definition: `0x0c`, then
/// charset (2), length (4), type (1), flags (2), decimals (1), filler (2).
const DEFINITION_TAIL: usize = 13;

impl ColumnSpec {
    pub fn new(ty: ColumnType, flags: ColumnFlags, decimals: u8) -> Self {
        ColumnSpec {
            ty,
            flags,
            decimals,
        }
    }

    /// From a result set's column definition packet. Read from its fixed-length tail:
    /// the names before it vary, and MariaDB's extended metadata adds a field there.
    pub fn from_definition(payload: &[u8]) -> Option<Self> {
        let start = payload.len().checked_sub(DEFINITION_TAIL)?;
        let mut buf = ParseBuf(&payload[start..]);
        if buf.checked_eat_u8()? != 0x0c {
            return None;
        }
        let _charset = buf.checked_eat_u16_le()?;
        let _length = buf.checked_eat_u32_le()?;
        let ty = ColumnType::try_from(buf.checked_eat_u8()?).ok()?;
        let flags = ColumnFlags::from_bits_truncate(buf.checked_eat_u16_le()?);
        let decimals = buf.checked_eat_u8()?;
        Some(ColumnSpec::new(ty, flags, decimals))
    }

    fn is_float(&self) -> bool {
        matches!(
            self.ty,
            ColumnType::MYSQL_TYPE_FLOAT | ColumnType::MYSQL_TYPE_DOUBLE
        )
    }

    /// Types the binary protocol sends as a length-encoded string: their text spelling,
    /// as mysql_common's binary decoding also reads them.
    fn binary_is_text(&self) -> bool {
        use ColumnType::*;
        matches!(
            self.ty,
            MYSQL_TYPE_STRING
                | MYSQL_TYPE_VAR_STRING
                | MYSQL_TYPE_BLOB
                | MYSQL_TYPE_TINY_BLOB
                | MYSQL_TYPE_MEDIUM_BLOB
                | MYSQL_TYPE_LONG_BLOB
                | MYSQL_TYPE_SET
                | MYSQL_TYPE_ENUM
                | MYSQL_TYPE_DECIMAL
                | MYSQL_TYPE_VARCHAR
                | MYSQL_TYPE_BIT
                | MYSQL_TYPE_NEWDECIMAL
                | MYSQL_TYPE_GEOMETRY
                | MYSQL_TYPE_VECTOR
                | MYSQL_TYPE_JSON
        )
    }

    /// Types mysql_common decodes in a binary row (it panics on the others, which a
    /// server never sends in a result set; a broken one must not crash the recorder).
    fn binary_decodable(&self) -> bool {
        use ColumnType::*;
        !matches!(
            self.ty,
            MYSQL_TYPE_TIMESTAMP2
                | MYSQL_TYPE_DATETIME2
                | MYSQL_TYPE_TIME2
                | MYSQL_TYPE_TYPED_ARRAY
                | MYSQL_TYPE_UNKNOWN
        )
    }

    /// Digits a value of this type is exact to, when it is a float.
    fn float_digits(&self) -> usize {
        if self.ty == ColumnType::MYSQL_TYPE_FLOAT {
            6
        } else {
            15
        }
    }

    /// Fractional-second digits the server prints for this temporal column.
    fn fraction_digits(&self) -> usize {
        usize::from(self.decimals.min(6))
    }
}

/// The columns of one result set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    specs: Vec<ColumnSpec>,
    /// Whether a text row must be re-encoded (it has a float column) rather than hashed
    /// as it came.
    any_float: bool,
    /// Whether every column travels as a length-encoded string in a binary row too, so
    /// a binary row without NULLs is already canonical after its header and bitmap.
    all_text: bool,
}

impl Columns {
    pub fn push(&mut self, spec: ColumnSpec) {
        self.any_float |= spec.is_float();
        self.all_text = (self.specs.is_empty() || self.all_text) && spec.binary_is_text();
        self.specs.push(spec);
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}

impl FromIterator<ColumnSpec> for Columns {
    fn from_iter<I: IntoIterator<Item = ColumnSpec>>(iter: I) -> Self {
        let mut columns = Columns::default();
        for spec in iter {
            columns.push(spec);
        }
        columns
    }
}

/// One value as it arrived: text bytes, or a binary-protocol value.
enum Cell<'a> {
    Null,
    Text(&'a [u8]),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// year, month, day, hour, minute, second, microsecond
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// negative, days, hours, minutes, seconds, microseconds
    Time(bool, u32, u8, u8, u8, u32),
}

impl<'a> From<&'a Value> for Cell<'a> {
    fn from(v: &'a Value) -> Self {
        match *v {
            Value::NULL => Cell::Null,
            Value::Bytes(ref b) => Cell::Text(b),
            Value::Int(i) => Cell::Int(i),
            Value::UInt(u) => Cell::UInt(u),
            Value::Float(f) => Cell::Float(f64::from(f)),
            Value::Double(d) => Cell::Float(d),
            Value::Date(y, mo, d, h, mi, s, us) => Cell::Date(y, mo, d, h, mi, s, us),
            Value::Time(neg, d, h, m, s, us) => Cell::Time(neg, d, h, m, s, us),
        }
    }
}

/// Folds rows into a [`Digest`]. Keeps two scratch buffers, so digesting allocates only
/// while they grow to the widest row.
#[derive(Debug, Default)]
pub struct Digester {
    digest: Digest,
    row: Vec<u8>,
    text: String,
}

impl Digester {
    pub fn new() -> Self {
        Self::default()
    }

    /// The digest of the rows so far.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// A text-protocol row packet of a result set with these columns.
    pub fn text_row(&mut self, payload: &[u8], columns: &Columns) -> Result<(), DigestError> {
        if !columns.any_float {
            self.add(xxh3_64(payload));
            return Ok(());
        }
        let mut buf = ParseBuf(payload);
        self.row.clear();
        for spec in &columns.specs {
            let cell = if buf.0.first() == Some(&0xfb) {
                buf.0 = &buf.0[1..];
                Cell::Null
            } else {
                Cell::Text(
                    buf.checked_eat_lenenc_str()
                        .ok_or(DigestError("short text row"))?,
                )
            };
            self.encode(cell, spec);
        }
        if !buf.is_empty() {
            return Err(DigestError("text row longer than its columns"));
        }
        self.add(xxh3_64(&self.row));
        Ok(())
    }

    /// A binary-protocol row packet (COM_STMT_EXECUTE) of a result set with these columns.
    pub fn binary_row(&mut self, payload: &[u8], columns: &Columns) -> Result<(), DigestError> {
        let mut buf = ParseBuf(payload);
        if buf.checked_eat_u8() != Some(0x00) {
            return Err(DigestError("binary row without its 0x00 header"));
        }
        let nulls: NullBitmap<ServerSide, Cow<'_, [u8]>> = buf
            .parse(columns.len())
            .map_err(|_| DigestError("short NULL bitmap"))?;
        if columns.all_text && nulls.as_ref().iter().all(|b| *b == 0) {
            // Strings only, none NULL: the values are the text row's bytes already.
            self.add(xxh3_64(buf.0));
            return Ok(());
        }
        self.row.clear();
        for (i, spec) in columns.specs.iter().enumerate() {
            if nulls.is_null(i) {
                self.encode(Cell::Null, spec);
                continue;
            }
            if spec.binary_is_text() {
                // Sent as its text spelling already: borrowed, not copied out.
                let bytes = buf
                    .checked_eat_lenenc_str()
                    .ok_or(DigestError("short binary row"))?;
                self.encode(Cell::Text(bytes), spec);
                continue;
            }
            if !spec.binary_decodable() {
                return Err(DigestError("column type a result set cannot carry"));
            }
            let value: ValueDeserializer<BinValue> = buf
                .parse((spec.ty, spec.flags))
                .map_err(|_| DigestError("short binary row"))?;
            self.encode(Cell::from(&value.0), spec);
        }
        if !buf.is_empty() {
            return Err(DigestError("binary row longer than its columns"));
        }
        self.add(xxh3_64(&self.row));
        Ok(())
    }

    /// A row as a driver returned it (text or binary protocol alike); `None` stands for
    /// a value the driver no longer holds and counts as NULL.
    pub fn value_row<'v>(
        &mut self,
        values: impl IntoIterator<Item = Option<&'v Value>>,
        columns: &Columns,
    ) {
        self.row.clear();
        for (value, spec) in values.into_iter().zip(&columns.specs) {
            self.encode(value.map_or(Cell::Null, Cell::from), spec);
        }
        self.add(xxh3_64(&self.row));
    }

    fn add(&mut self, row_hash: u64) {
        let d = &mut self.digest;
        d.unordered = d.unordered.wrapping_add(row_hash);
        d.ordered = xxh3_64_with_seed(&row_hash.to_le_bytes(), d.ordered);
    }

    /// Appends one value's canonical encoding to the row.
    fn encode(&mut self, cell: Cell<'_>, spec: &ColumnSpec) {
        let text = &mut self.text;
        text.clear();
        // Writing to a String cannot fail.
        let _ = match cell {
            Cell::Null => {
                self.row.push(0xfb);
                return;
            }
            Cell::Text(bytes) if spec.is_float() => {
                match std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                {
                    Some(v) => float(text, v, spec.float_digits()),
                    None => {
                        self.row.put_lenenc_str(bytes);
                        return;
                    }
                }
            }
            Cell::Text(bytes) => {
                self.row.put_lenenc_str(bytes);
                return;
            }
            Cell::Int(i) if spec.ty == ColumnType::MYSQL_TYPE_YEAR => write!(text, "{i:04}"),
            Cell::UInt(u) if spec.ty == ColumnType::MYSQL_TYPE_YEAR => write!(text, "{u:04}"),
            Cell::Int(i) => write!(text, "{i}"),
            Cell::UInt(u) => write!(text, "{u}"),
            Cell::Float(v) => float(text, v, spec.float_digits()),
            Cell::Date(y, mo, d, h, mi, s, us) => {
                date(text, spec, [y, mo.into(), d.into()], [h, mi, s], us)
            }
            Cell::Time(neg, days, h, m, s, us) => {
                let hours = u64::from(days) * 24 + u64::from(h);
                let sign = if neg { "-" } else { "" };
                let _ = write!(text, "{sign}{hours:02}:{m:02}:{s:02}");
                fraction(text, spec, us)
            }
        };
        self.row.put_lenenc_str(self.text.as_bytes());
    }
}

/// The canonical spelling of a float: `digits` significant digits, exponent form, no
/// negative zero.
fn float(out: &mut String, v: f64, digits: usize) -> std::fmt::Result {
    let v = if v == 0.0 { 0.0 } else { v };
    write!(out, "{:.*e}", digits - 1, v)
}

/// DATE as `YYYY-MM-DD`; DATETIME and TIMESTAMP with the time and the column's
/// fractional digits, as the text protocol prints them.
fn date(
    out: &mut String,
    spec: &ColumnSpec,
    [y, mo, d]: [u16; 3],
    [h, mi, s]: [u8; 3],
    us: u32,
) -> std::fmt::Result {
    write!(out, "{y:04}-{mo:02}-{d:02}")?;
    if matches!(
        spec.ty,
        ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE
    ) {
        return Ok(());
    }
    write!(out, " {h:02}:{mi:02}:{s:02}")?;
    fraction(out, spec, us)
}

fn fraction(out: &mut String, spec: &ColumnSpec, us: u32) -> std::fmt::Result {
    let digits = spec.fraction_digits();
    if digits == 0 {
        return Ok(());
    }
    let scaled = us / 10u32.pow(6 - digits as u32);
    write!(out, ".{scaled:0digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ty: ColumnType, decimals: u8) -> ColumnSpec {
        ColumnSpec::new(ty, ColumnFlags::empty(), decimals)
    }

    fn text_row(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut row = Vec::new();
        for v in values {
            match v {
                Some(b) => row.put_lenenc_str(b),
                None => row.push(0xfb),
            }
        }
        row
    }

    fn digest_text(values: &[Option<&[u8]>], columns: &Columns) -> Digest {
        let mut d = Digester::new();
        d.text_row(&text_row(values), columns).unwrap();
        d.digest()
    }

    fn digest_values(values: &[Value], columns: &Columns) -> Digest {
        let mut d = Digester::new();
        d.value_row(values.iter().map(Some), columns);
        d.digest()
    }

    #[test]
    fn binary_values_digest_as_their_text_spelling() {
        use ColumnType::*;
        let columns: Columns = [
            spec(MYSQL_TYPE_LONG, 0),
            spec(MYSQL_TYPE_VAR_STRING, 0),
            spec(MYSQL_TYPE_DATETIME, 3),
            spec(MYSQL_TYPE_DATE, 0),
            spec(MYSQL_TYPE_TIME, 0),
            spec(MYSQL_TYPE_YEAR, 0),
            spec(MYSQL_TYPE_NEWDECIMAL, 2),
            spec(MYSQL_TYPE_LONG, 0),
        ]
        .into_iter()
        .collect();
        let text: [Option<&[u8]>; 8] = [
            Some(b"-42"),
            Some(b"abc"),
            Some(b"2024-02-29 13:05:09.120"),
            Some(b"2024-02-29"),
            Some(b"-838:59:59"),
            Some(b"0000"),
            Some(b"3.14"),
            None,
        ];
        let binary = [
            Value::Int(-42),
            Value::Bytes(b"abc".to_vec()),
            Value::Date(2024, 2, 29, 13, 5, 9, 120_000),
            Value::Date(2024, 2, 29, 0, 0, 0, 0),
            Value::Time(true, 34, 22, 59, 59, 0),
            Value::Int(0),
            Value::Bytes(b"3.14".to_vec()),
            Value::NULL,
        ];
        let as_text = digest_text(&text, &columns);
        assert_eq!(as_text, digest_values(&binary, &columns));
        // The driver's text values (bytes) digest like the packet.
        let bytes: Vec<Value> = text
            .iter()
            .map(|v| v.map_or(Value::NULL, |b| Value::Bytes(b.to_vec())))
            .collect();
        assert_eq!(as_text, digest_values(&bytes, &columns));
    }

    #[test]
    fn floats_compare_at_the_precision_their_type_keeps() {
        let columns: Columns = [
            spec(ColumnType::MYSQL_TYPE_FLOAT, 31),
            spec(ColumnType::MYSQL_TYPE_DOUBLE, 31),
        ]
        .into_iter()
        .collect();
        let text = digest_text(&[Some(b"0.123457"), Some(b"0.30000000000000004")], &columns);
        let binary = digest_values(
            &[Value::Float(0.123_456_79), Value::Double(0.1 + 0.2)],
            &columns,
        );
        assert_eq!(text, binary);
        let other = digest_values(&[Value::Float(0.5), Value::Double(0.3)], &columns);
        assert_ne!(text, other);
    }

    #[test]
    fn order_and_content_are_told_apart() {
        let columns: Columns = [spec(ColumnType::MYSQL_TYPE_LONG, 0)].into_iter().collect();
        let rows = |values: &[&[u8]]| {
            let mut d = Digester::new();
            for v in values {
                d.text_row(&text_row(&[Some(v)]), &columns).unwrap();
            }
            d.digest()
        };
        let a = rows(&[b"1", b"2", b"3"]);
        assert_eq!(a.likeness(&rows(&[b"1", b"2", b"3"])), Likeness::Same);
        assert_eq!(a.likeness(&rows(&[b"3", b"1", b"2"])), Likeness::OrderOnly);
        assert_eq!(a.likeness(&rows(&[b"1", b"2", b"4"])), Likeness::Different);
        // Duplicates count: {1, 1} is not {1}, nor does it cancel out.
        assert_ne!(rows(&[b"1", b"1"]).unordered, rows(&[]).unordered);
    }

    #[test]
    fn binary_rows_from_the_wire_match_driver_values() {
        use ColumnType::*;
        let columns: Columns = [
            ColumnSpec::new(MYSQL_TYPE_LONGLONG, ColumnFlags::UNSIGNED_FLAG, 0),
            spec(MYSQL_TYPE_VAR_STRING, 0),
            spec(MYSQL_TYPE_DOUBLE, 31),
        ]
        .into_iter()
        .collect();
        // header, NULL bitmap (offset 2: column 1 is bit 3), u64 7, f64 2.5
        let mut row = vec![0x00, 0b0000_1000];
        row.extend_from_slice(&7u64.to_le_bytes());
        row.extend_from_slice(&2.5f64.to_le_bytes());
        let mut d = Digester::new();
        d.binary_row(&row, &columns).unwrap();
        let expected = digest_text(&[Some(b"7"), None, Some(b"2.5")], &columns);
        assert_eq!(d.digest(), expected);
        // Cut short or padded: an error, never a panic.
        assert!(
            Digester::new()
                .binary_row(&row[..row.len() - 1], &columns)
                .is_err()
        );
        row.push(0);
        assert!(Digester::new().binary_row(&row, &columns).is_err());
        assert!(Digester::new().binary_row(&[], &columns).is_err());
    }

    #[test]
    fn string_rows_digest_alike_with_and_without_nulls() {
        let columns: Columns = [
            spec(ColumnType::MYSQL_TYPE_VAR_STRING, 0),
            spec(ColumnType::MYSQL_TYPE_NEWDECIMAL, 2),
        ]
        .into_iter()
        .collect();
        let binary = |bitmap: u8, values: &[&[u8]]| {
            let mut row = vec![0x00, bitmap];
            for v in values {
                row.put_lenenc_str(v);
            }
            let mut d = Digester::new();
            d.binary_row(&row, &columns).unwrap();
            d.digest()
        };
        // No NULL: hashed as it came (the fast path); one NULL: re-encoded.
        assert_eq!(
            binary(0, &[b"abc", b"1.50"]),
            digest_text(&[Some(b"abc"), Some(b"1.50")], &columns)
        );
        assert_eq!(
            binary(0b0000_0100, &[b"1.50"]),
            digest_text(&[None, Some(b"1.50")], &columns)
        );
    }

    #[test]
    fn column_specs_come_from_the_definitions_tail() {
        // catalog "def", schema, table, org_table, name "c", org_name, then the tail.
        let mut def = Vec::new();
        for s in [&b"def"[..], b"db", b"t", b"t", b"c", b"c"] {
            def.put_lenenc_str(s);
        }
        def.extend_from_slice(&[0x0c, 63, 0, 11, 0, 0, 0, 12, 0x80, 0, 3, 0, 0]);
        let spec = ColumnSpec::from_definition(&def).unwrap();
        assert_eq!(spec.ty, ColumnType::MYSQL_TYPE_DATETIME);
        assert_eq!(spec.decimals, 3);
        assert_eq!(ColumnSpec::from_definition(&def[..5]), None);
    }
}
