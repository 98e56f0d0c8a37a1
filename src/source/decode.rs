//! Decoding of binlog row images into typed [`Row`]s.
//!
//! The table's shape comes from the binlog itself (TABLE_MAP with `binlog_row_metadata=FULL`:
//! column names, types, signedness, charsets, ENUM/SET labels, decimal scale and fractional
//! precision), so rows are read with the schema in force when they were written. Two facts the
//! binlog lacks come from `information_schema` ([`TableExtras`]): which MariaDB LONGTEXT columns
//! are JSON (`json_valid` check) and which columns are virtual.

use std::sync::Arc;

use mysql_async::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_async::Value;

use crate::sql::TableExtras;
use crate::view::native::NativeType;
use crate::view::row::{ColumnKind, ColumnSchema, Label, Row, TableSchema};
use crate::view::spec::TableRef;
use crate::view::value::{with_scale, Cell, DateTime};

const BINARY_CHARSET: u16 = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("table map of {table}: {reason}")]
    TableMap { table: String, reason: String },
    #[error("table map of {table}: the binlog carries no column names (binlog_row_metadata must be FULL): {names} names for {columns} columns")]
    NoColumnNames {
        table: String,
        names: usize,
        columns: usize,
    },
    #[error("row of {table}: {reason}")]
    Row { table: String, reason: String },
}

impl DecodeError {
    /// Whether the table map lacks its column names (`binlog_row_metadata` not FULL).
    pub fn lacks_column_names(&self) -> bool {
        matches!(self, DecodeError::NoColumnNames { .. })
    }
}

fn no_column_names(table: &TableRef, names: usize, columns: usize) -> DecodeError {
    let table = table.to_string();
    DecodeError::NoColumnNames {
        table,
        names,
        columns,
    }
}

/// Builds the schema of a TABLE_MAP event.
pub fn schema_from_table_map(
    tme: &TableMapEvent<'_>,
    extras: &TableExtras,
    mariadb: bool,
) -> Result<TableSchema, DecodeError> {
    let table = TableRef {
        database: tme.database_name().into_owned(),
        table: tme.table_name().into_owned(),
    };
    let fail = |reason: String| DecodeError::TableMap {
        table: table.to_string(),
        reason,
    };
    let extractor =
        OptionalMetaExtractor::new(tme.iter_optional_meta()).map_err(|e| fail(e.to_string()))?;
    let names: Vec<String> = extractor
        .iter_column_name()
        .map(|n| n.map(|n| n.name().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| fail(e.to_string()))?;
    let mut signedness = extractor.iter_signedness();
    let mut charsets = extractor.iter_charset();
    // One per ENUM and SET column, in column order: the charset their labels are written in.
    let mut label_charsets = extractor.iter_enum_and_set_charset();
    let (enum_labels, set_labels) = labels(tme).map_err(fail)?;
    let count = tme.columns_count() as usize;
    if names.len() != count {
        return Err(no_column_names(&table, names.len(), count));
    }
    let mut columns = Vec::with_capacity(count);
    let (mut enum_i, mut set_i) = (0usize, 0usize);
    for (i, name) in names.into_iter().enumerate() {
        let ty = tme
            .get_column_type(i)
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| fail(format!("no type for column {i}")))?;
        let meta = tme.get_column_metadata(i).unwrap_or(&[]);
        let unsigned = ty.is_numeric_type() && signedness.next().unwrap_or(false);
        let charset = if has_listed_charset(ty, mariadb) {
            charsets
                .next()
                .transpose()
                .map_err(|e| fail(e.to_string()))?
                .unwrap_or(0)
        } else {
            0
        };
        let kind = match ty {
            ColumnType::MYSQL_TYPE_ENUM => {
                enum_i += 1;
                let labels = enum_labels.get(enum_i - 1);
                ColumnKind::Enum(label_texts(labels, label_charsets.next()).map_err(fail)?)
            }
            ColumnType::MYSQL_TYPE_SET => {
                set_i += 1;
                let labels = set_labels.get(set_i - 1);
                ColumnKind::Set(label_texts(labels, label_charsets.next()).map_err(fail)?)
            }
            ColumnType::MYSQL_TYPE_STRING => match stored_native(extras, &name, charset, meta) {
                Some(native) => ColumnKind::Native(native),
                None => column_kind(ty, meta, unsigned, charset, false),
            },
            _ => column_kind(
                ty,
                meta,
                unsigned,
                charset,
                extras.json_columns.contains(&name),
            ),
        };
        columns.push(ColumnSchema {
            is_virtual: extras.virtual_columns.contains(&name),
            name,
            kind,
        });
    }
    Ok(TableSchema::new(table, columns))
}

/// An ENUM or SET column's labels as text, decoded in `charset` (the next of the table map's
/// ENUM and SET charsets; none from an older server: UTF-8).
fn label_texts(
    labels: Option<&Vec<Vec<u8>>>,
    charset: Option<std::io::Result<u16>>,
) -> Result<Vec<Label>, String> {
    let collation = charset
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or(UTF8MB4_BIN);
    Ok(labels
        .into_iter()
        .flatten()
        .map(|label| Label::interned(&super::charset::decode(label, collation)))
        .collect())
}

/// utf8mb4_bin: what ENUM and SET labels are read as when the binlog gives no charset.
const UTF8MB4_BIN: u16 = 46;

/// The labels of each column of one kind (ENUM or SET), in column order, as the bytes the
/// binlog carries (in the column's charset).
type Labels = Vec<Vec<Vec<u8>>>;

/// The labels of the ENUM and of the SET columns, in column order.
fn labels(tme: &TableMapEvent<'_>) -> Result<(Labels, Labels), String> {
    let mut enums: Labels = Vec::new();
    let mut sets: Labels = Vec::new();
    for field in tme.iter_optional_meta() {
        match field.map_err(|e| e.to_string())? {
            OptionalMetadataField::EnumStrValue(values) => {
                for column in values.iter_values() {
                    let column = column.map_err(|e| e.to_string())?;
                    enums.push(
                        column
                            .values()
                            .iter()
                            .map(|v| v.value_raw().to_vec())
                            .collect(),
                    );
                }
            }
            OptionalMetadataField::SetStrValue(values) => {
                for column in values.iter_values() {
                    let column = column.map_err(|e| e.to_string())?;
                    sets.push(
                        column
                            .values()
                            .iter()
                            .map(|v| v.value_raw().to_vec())
                            .collect(),
                    );
                }
            }
            _ => {}
        }
    }
    Ok((enums, sets))
}

/// A MariaDB UUID, INET4 or INET6 column stored as BINARY(16) or BINARY(4), as its table map
/// shows it. Only then: an event from before an `ALTER … MODIFY c UUID` (read again from an
/// older checkpoint) has the column's earlier type, CHAR(36) say, which `information_schema`
/// no longer says (`tests/values.rs`).
fn stored_native(
    extras: &TableExtras,
    name: &str,
    charset: u16,
    meta: &[u8],
) -> Option<NativeType> {
    let native = *extras.native_columns.get(name)?;
    (charset == BINARY_CHARSET && fixed_length(meta) == Some(native.width())).then_some(native)
}

/// Declared length in bytes of a CHAR/BINARY column, from its TABLE_MAP metadata.
fn fixed_length(meta: &[u8]) -> Option<usize> {
    let (byte0, byte1) = (*meta.first()? as usize, *meta.get(1)? as usize);
    if (byte0 & 0x30) != 0x30 {
        Some(byte1 | (((byte0 & 0x30) ^ 0x30) << 4))
    } else {
        Some(byte1)
    }
}

fn column_kind(
    ty: ColumnType,
    meta: &[u8],
    unsigned: bool,
    charset: u16,
    is_json: bool,
) -> ColumnKind {
    use ColumnType::*;
    let fsp = meta.first().copied().unwrap_or(0).min(6);
    match ty {
        MYSQL_TYPE_INT24 if !unsigned => ColumnKind::SignedMedium,
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG
        | MYSQL_TYPE_LONGLONG => ColumnKind::Int { unsigned },
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => ColumnKind::Decimal {
            scale: meta.get(1).copied().unwrap_or(0),
        },
        MYSQL_TYPE_FLOAT => ColumnKind::Float,
        MYSQL_TYPE_DOUBLE => ColumnKind::Double,
        MYSQL_TYPE_STRING if charset == BINARY_CHARSET => ColumnKind::Binary {
            fixed_len: fixed_length(meta),
        },
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING if charset == BINARY_CHARSET => {
            ColumnKind::Binary { fixed_len: None }
        }
        MYSQL_TYPE_STRING | MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => ColumnKind::Text,
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            if is_json {
                ColumnKind::Json
            } else if charset == BINARY_CHARSET {
                ColumnKind::Binary { fixed_len: None }
            } else {
                ColumnKind::Text
            }
        }
        MYSQL_TYPE_JSON => ColumnKind::Json,
        MYSQL_TYPE_BIT => ColumnKind::Bit,
        MYSQL_TYPE_YEAR => ColumnKind::Year,
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => ColumnKind::Date,
        MYSQL_TYPE_DATETIME => ColumnKind::DateTime { fsp: 0 },
        MYSQL_TYPE_DATETIME2 => ColumnKind::DateTime { fsp },
        MYSQL_TYPE_TIMESTAMP => ColumnKind::Timestamp { fsp: 0 },
        MYSQL_TYPE_TIMESTAMP2 => ColumnKind::Timestamp { fsp },
        MYSQL_TYPE_TIME => ColumnKind::Time { fsp: 0 },
        MYSQL_TYPE_TIME2 => ColumnKind::Time { fsp },
        other => ColumnKind::Other(format!("{other:?}")),
    }
}

/// A negative `TIME(1)` or `TIME(2)` with a fraction as mysql_common 0.37 reads it, put right.
/// It takes the stored fraction byte `f` as `f - 0x100` in an unsigned 32-bit integer, which
/// wraps (with overflow checks it panics: `Cargo.toml` turns them off for that crate), so the
/// packed time it builds (whole seconds' fields shifted 24 bits, plus microseconds) is
/// 2^32 × 10,000 too large, which is 625 hours' worth of its packed fields. For a time above
/// -625 hours that packed time is positive and its microsecond field at least 15,787,216
/// (2^24 less at most 990,000); no right reading has one of a million or more. Its fields give
/// that packed time back exactly (they are its bits), and the right one is unpacked as it would
/// have been. From -625 hours down the wrapped packed time is negative and reads as a valid
/// time 625 hours nearer zero, which nothing tells from a real one: those stay wrong.
fn wrapped_time(negative: bool, hours: u32, minutes: u8, seconds: u8, micros: u32) -> TimeFields {
    const WRAP: i64 = (1 << 32) * 10_000;
    let hms = (i64::from(hours) << 12) | (i64::from(minutes) << 6) | i64::from(seconds);
    let read = (hms << 24) + i64::from(micros);
    let packed = if negative { -read } else { read } - WRAP;
    let magnitude = packed.unsigned_abs();
    let hms = magnitude >> 24;
    let field = |shift: u32, bits: u32| ((hms >> shift) & ((1 << bits) - 1)) as u32;
    (
        packed < 0,
        field(12, 10),
        field(6, 6) as u8,
        field(0, 6) as u8,
        (magnitude & ((1 << 24) - 1)) as u32,
    )
}

/// A TIME's sign, hours, minutes, seconds and microseconds.
type TimeFields = (bool, u32, u8, u8, u32);

/// Turns one binlog row image into a [`Row`] of `schema`.
pub fn decode_row(
    schema: &Arc<TableSchema>,
    row: &BinlogRow,
    charsets: &[u16],
) -> Result<Row, DecodeError> {
    let fail = |reason: String| DecodeError::Row {
        table: schema.table.to_string(),
        reason,
    };
    if row.len() != schema.columns.len() {
        return Err(fail(format!(
            "row image has {} columns, table map {} (binlog_row_image must be FULL)",
            row.len(),
            schema.columns.len()
        )));
    }
    let mut cells = Vec::with_capacity(row.len());
    for (i, column) in schema.columns.iter().enumerate() {
        let value = row
            .as_ref(i)
            .ok_or_else(|| fail(format!("column {} missing", column.name)))?;
        let charset = charsets.get(i).copied().unwrap_or(0);
        let cell = decode_value(&column.kind, value, charset)
            .map_err(|reason| fail(format!("column {}: {reason}", column.name)))?;
        cells.push(cell);
    }
    Ok(Row {
        schema: schema.clone(),
        cells,
    })
}

/// The text of a string value of the binlog: its bytes are in the column's charset, which the
/// binlog names by the collation id (see `source::charset`).
fn text_of(bytes: &[u8], collation: u16) -> String {
    super::charset::decode(bytes, collation)
}

fn ascii(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "non-ASCII numeric text".to_string())
}

/// One binlog value as a cell of a column of `kind`. Integers, doubles and ENUMs are decoded
/// here, inlined into the caller; everything else in [`decode_other`], whose match over every
/// kind needs a large stack frame that these would pay for too (3.7 % of the instructions of the
/// whole CPU path of an 8-column update, callgrind, `benches/cpu.rs`).
#[inline]
pub fn decode_value(
    kind: &ColumnKind,
    value: &BinlogValue<'_>,
    charset: u16,
) -> Result<Cell, String> {
    if let BinlogValue::Value(value) = value {
        match (kind, value) {
            (ColumnKind::Int { unsigned: true }, Value::Int(v)) => {
                return Ok(Cell::UInt(*v as u64))
            }
            (ColumnKind::Int { .. }, Value::Int(v)) => return Ok(Cell::Int(*v)),
            (ColumnKind::Int { .. }, Value::UInt(v)) => return Ok(Cell::UInt(*v)),
            (ColumnKind::Double, Value::Double(d)) => return Ok(Cell::Double(*d)),
            (ColumnKind::Enum(labels), Value::Int(index @ 1..)) => {
                if let Some(label) = labels.get((*index - 1) as usize) {
                    return Ok(Cell::Enum(label.clone()));
                }
            }
            _ => {}
        }
    }
    decode_other(kind, value, charset)
}

/// [`decode_value`] of every other kind and value.
#[inline(never)]
fn decode_other(kind: &ColumnKind, value: &BinlogValue<'_>, charset: u16) -> Result<Cell, String> {
    let value = match value {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => {
            let json = serde_json::Value::try_from(j.clone()).map_err(|e| format!("JSON: {e}"))?;
            return Ok(Cell::Json(json));
        }
        BinlogValue::JsonDiff(_) => {
            return Err(
                "partial JSON update in the binlog (set binlog_row_value_options='')".into(),
            )
        }
    };
    if let Value::NULL = value {
        return Ok(Cell::Null);
    }
    // Integers and doubles were decoded in `decode_value`; an ENUM's index is here when it is 0
    // or beyond the labels.
    Ok(match (kind, value) {
        // 24-bit two's complement read without sign extension.
        (ColumnKind::SignedMedium, Value::Int(v)) if *v >= 0x80_0000 => Cell::Int(*v - 0x100_0000),
        (ColumnKind::SignedMedium, Value::Int(v)) => Cell::Int(*v),
        (ColumnKind::Decimal { scale }, Value::Bytes(b)) => {
            Cell::Decimal(with_scale(ascii(b)?, *scale))
        }
        (ColumnKind::Float, Value::Float(f)) => Cell::Float(*f),
        (ColumnKind::Float, Value::Double(d)) => Cell::Float(*d as f32),
        (ColumnKind::Double, Value::Float(f)) => Cell::Double(f64::from(*f)),
        (ColumnKind::Text, Value::Bytes(b)) => Cell::Text(text_of(b, charset)),
        (ColumnKind::Binary { fixed_len }, Value::Bytes(b)) => {
            let mut bytes = b.clone();
            if let Some(len) = fixed_len {
                if bytes.len() < *len {
                    bytes.resize(*len, 0);
                }
            }
            Cell::Bytes(bytes)
        }
        (ColumnKind::Enum(labels), Value::Int(index)) => match *index {
            0 => Cell::Enum(Label::Interned("")),
            i => Cell::Enum(
                labels
                    .get((i - 1) as usize)
                    .cloned()
                    .ok_or_else(|| format!("ENUM index {i} beyond {} labels", labels.len()))?,
            ),
        },
        (ColumnKind::Set(labels), Value::Bytes(mask)) => {
            let mut bits: u64 = 0;
            for (i, byte) in mask.iter().enumerate().take(8) {
                bits |= u64::from(*byte) << (8 * i);
            }
            Cell::Set(
                labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, l)| l.clone())
                    .collect(),
            )
        }
        (ColumnKind::Bit, Value::Bytes(b)) => Cell::Bit(
            b.iter()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)),
        ),
        (ColumnKind::Year, Value::Bytes(b)) => {
            let year: u16 = ascii(b)?.parse().map_err(|_| "bad YEAR".to_string())?;
            Cell::Year(if year == 1900 { 0 } else { year })
        }
        (ColumnKind::Year, Value::Int(y)) => Cell::Year(*y as u16),
        (ColumnKind::Date, Value::Date(y, m, d, ..)) => {
            if *m == 0 || *d == 0 {
                Cell::ZeroDate
            } else {
                Cell::Date {
                    year: *y,
                    month: *m,
                    day: *d,
                }
            }
        }
        (ColumnKind::DateTime { fsp }, Value::Date(y, mo, d, h, mi, s, us)) => {
            if *mo == 0 || *d == 0 {
                Cell::ZeroDate
            } else {
                Cell::DateTime(DateTime {
                    year: *y,
                    month: *mo,
                    day: *d,
                    hour: *h,
                    minute: *mi,
                    second: *s,
                    micros: *us,
                    fsp: *fsp,
                })
            }
        }
        (ColumnKind::Timestamp { fsp }, Value::Bytes(b)) => {
            let text = ascii(b)?;
            let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
            let secs: i64 = secs.parse().map_err(|_| "bad TIMESTAMP".to_string())?;
            let micros: u32 = with_scale(&format!("0.{frac}"), 6)[2..]
                .parse()
                .map_err(|_| "bad TIMESTAMP".to_string())?;
            if secs == 0 && micros == 0 {
                Cell::ZeroDate
            } else {
                Cell::Timestamp {
                    secs,
                    micros,
                    fsp: *fsp,
                }
            }
        }
        (ColumnKind::Timestamp { fsp }, Value::Int(secs)) => {
            if *secs == 0 {
                Cell::ZeroDate
            } else {
                Cell::Timestamp {
                    secs: *secs,
                    micros: 0,
                    fsp: *fsp,
                }
            }
        }
        (ColumnKind::Time { fsp }, Value::Time(negative, days, h, m, s, us)) => {
            let hours = days * 24 + u32::from(*h);
            let (negative, hours, minutes, seconds, micros) = match *fsp {
                1 | 2 if *us >= 1_000_000 => wrapped_time(*negative, hours, *m, *s, *us),
                _ => (*negative, hours, *m, *s, *us),
            };
            Cell::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
                fsp: *fsp,
            }
        }
        (ColumnKind::Native(native), Value::Bytes(b)) => Cell::Text(native.text(b)?),
        (ColumnKind::Json, Value::Bytes(b)) => match serde_json::from_slice(b) {
            Ok(json) => Cell::Json(json),
            Err(_) => Cell::Text(text_of(b, charset)),
        },
        (ColumnKind::Other(_), Value::Bytes(b)) => Cell::Bytes(b.clone()),
        (kind, value) => {
            return Err(format!(
                "unexpected binlog value {value:?} for a {kind:?} column"
            ))
        }
    })
}

/// Whether the table map's list of column charsets has an entry for a column of this type:
/// every column with a charset but ENUM and SET (listed apart); on MariaDB spatial ones too
/// (their charset is binary: "base class is blob for geom type" in its binlog code; MySQL 8
/// lists strings and blobs only, as go-mysql and python-mysql-replication read it). mysql_common
/// 0.37 never counts spatial columns, and on MariaDB the columns after one took the charsets of
/// the ones before them: a VARCHAR after a POINT was written as binary, a VARBINARY as text, a
/// latin1 column decoded in another charset (before 2026-12-05; found by a review,
/// `tests/values.rs` `text_after_a_spatial_column_keeps_its_charset`, seen failing).
fn has_listed_charset(ty: ColumnType, mariadb: bool) -> bool {
    ty.is_character_type() || (mariadb && ty == ColumnType::MYSQL_TYPE_GEOMETRY)
}

/// Per-column charsets of the rows of a table map's table, as the server lists them (0 for
/// columns without one).
pub fn column_charsets(tme: &TableMapEvent<'_>, mariadb: bool) -> Result<Vec<u16>, String> {
    let extractor =
        OptionalMetaExtractor::new(tme.iter_optional_meta()).map_err(|e| e.to_string())?;
    let mut charsets = extractor.iter_charset();
    let mut out = Vec::with_capacity(tme.columns_count() as usize);
    for i in 0..tme.columns_count() as usize {
        let listed =
            matches!(tme.get_column_type(i), Ok(Some(ty)) if has_listed_charset(ty, mariadb));
        let charset = if listed {
            charsets.next().transpose().map_err(|e| e.to_string())?
        } else {
            None
        };
        out.push(charset.unwrap_or(0));
    }
    Ok(out)
}

crate::error::definite_errors!(DecodeError);

#[cfg(test)]
mod tests {
    use super::*;

    /// `TIME(1)` and `TIME(2)` values, negative ones with a fraction among them, written as
    /// MariaDB stores them and read by mysql_common's own functions, decode to their value.
    #[test]
    fn negative_times_with_one_or_two_fraction_digits_decode_to_their_value() {
        use mysql_common::binlog::misc::{my_time_packed_from_binary, time_from_packed};
        // (negative, hours, minutes, seconds, hundredths)
        let times = [
            (true, 0, 0, 1, 50),
            (true, 1, 2, 3, 45),
            (true, 1, 2, 3, 40),
            (true, 0, 0, 0, 1),
            (true, 624, 59, 59, 99),
            (true, 5, 0, 0, 0),
            (false, 838, 59, 59, 99),
            (false, 0, 0, 0, 1),
        ];
        // MariaDB's packed time, then its 4-byte TIME(2) form (my_time_packed_to_binary), read
        // back by mysql_common.
        let read = |negative: bool, hours: u32, minutes: u8, seconds: u8, hundredths: u32| {
            let hms = (i64::from(hours) << 12) | (i64::from(minutes) << 6) | i64::from(seconds);
            let magnitude = (hms << 24) + i64::from(hundredths) * 10_000;
            let packed = if negative { -magnitude } else { magnitude };
            // As C computes them: `>>` floors, `%` truncates toward zero.
            let (int_part, frac_part) = (packed >> 24, packed % (1 << 24));
            let stored = u32::try_from(int_part + 0x80_0000).unwrap();
            let mut bytes = stored.to_be_bytes()[1..].to_vec();
            bytes.push((frac_part / 10_000) as i8 as u8);
            let read = my_time_packed_from_binary(&bytes[..], 2).unwrap();
            BinlogValue::Value(time_from_packed(read))
        };
        for (negative, hours, minutes, seconds, hundredths) in times {
            let magnitude = (hours, minutes, seconds, hundredths) != (0, 0, 0, 0);
            for fsp in [1, 2] {
                let value = read(negative, hours, minutes, seconds, hundredths);
                let cell = decode_value(&ColumnKind::Time { fsp }, &value, 0).unwrap();
                let expected = Cell::Time {
                    negative: negative && magnitude,
                    hours,
                    minutes,
                    seconds,
                    micros: hundredths * 10_000,
                    fsp,
                };
                assert_eq!(cell, expected, "{value:?}");
            }
        }
        // From 625 hours below zero the wrapped reading is another valid time, 625 hours
        // nearer zero, that nothing tells from a real one: still wrong (README, Known
        // limitations). Should mysql_common be fixed, this fails and the note can go.
        let value = read(true, 625, 59, 59, 10);
        let cell = decode_value(&ColumnKind::Time { fsp: 2 }, &value, 0);
        let wrong = Cell::Time {
            negative: true,
            hours: 0,
            minutes: 59,
            seconds: 59,
            micros: 100_000,
            fsp: 2,
        };
        assert_eq!(cell, Ok(wrong));
    }

    #[test]
    fn decimal_scale() {
        assert_eq!(with_scale("12.5", 6), "12.500000");
        assert_eq!(with_scale("-3", 2), "-3.00");
        assert_eq!(with_scale("7.25", 0), "7");
    }

    #[test]
    fn values() {
        let v = |x: Value| BinlogValue::Value(x);
        assert_eq!(
            decode_value(&ColumnKind::Int { unsigned: true }, &v(Value::Int(-1)), 0),
            Ok(Cell::UInt(u64::MAX))
        );
        assert_eq!(
            decode_value(
                &ColumnKind::Binary { fixed_len: Some(4) },
                &v(Value::Bytes(vec![1])),
                63
            ),
            Ok(Cell::Bytes(vec![1, 0, 0, 0]))
        );
        assert_eq!(
            decode_value(
                &ColumnKind::Set(vec!["a".into(), "b".into(), "c".into()]),
                &v(Value::Bytes(vec![5])),
                0
            ),
            Ok(Cell::Set(vec!["a".into(), "c".into()]))
        );
        assert_eq!(
            decode_value(
                &ColumnKind::Enum(vec!["x".into(), "y".into()]),
                &v(Value::Int(2)),
                0
            ),
            Ok(Cell::Enum("y".into()))
        );
        assert_eq!(
            decode_value(&ColumnKind::Bit, &v(Value::Bytes(vec![1, 2])), 0),
            Ok(Cell::Bit(258))
        );
        assert_eq!(
            decode_value(
                &ColumnKind::Timestamp { fsp: 3 },
                &v(Value::Bytes(b"1709212455.123000".to_vec())),
                0
            ),
            Ok(Cell::Timestamp {
                secs: 1_709_212_455,
                micros: 123_000,
                fsp: 3
            })
        );
        assert_eq!(
            decode_value(&ColumnKind::Text, &v(Value::Bytes(vec![0xe9])), 8),
            Ok(Cell::Text("é".into()))
        );
    }

    /// The kinds decoded before the general match, and their values that go on to it.
    #[test]
    fn inlined_kinds_and_their_edges() {
        let v = |x: Value| BinlogValue::Value(x);
        let labels = ColumnKind::Enum(vec!["x".into(), "y".into()]);
        let signed = ColumnKind::Int { unsigned: false };
        assert_eq!(
            decode_value(&signed, &v(Value::Int(-7)), 0),
            Ok(Cell::Int(-7))
        );
        assert_eq!(
            decode_value(&signed, &v(Value::UInt(7)), 0),
            Ok(Cell::UInt(7))
        );
        assert_eq!(decode_value(&signed, &v(Value::NULL), 0), Ok(Cell::Null));
        assert!(decode_value(&signed, &v(Value::Double(1.0)), 0).is_err());
        assert_eq!(
            decode_value(&ColumnKind::Double, &v(Value::Double(2.75)), 0),
            Ok(Cell::Double(2.75))
        );
        assert_eq!(
            decode_value(&ColumnKind::Double, &v(Value::Float(0.5)), 0),
            Ok(Cell::Double(0.5))
        );
        assert_eq!(
            decode_value(&labels, &v(Value::Int(1)), 0),
            Ok(Cell::Enum("x".into()))
        );
        assert_eq!(
            decode_value(&labels, &v(Value::Int(0)), 0),
            Ok(Cell::Enum("".into()))
        );
        assert_eq!(decode_value(&labels, &v(Value::NULL), 0), Ok(Cell::Null));
        for beyond in [3, -1] {
            let error = decode_value(&labels, &v(Value::Int(beyond)), 0).unwrap_err();
            assert!(error.contains("beyond 2 labels"), "{error}");
        }
    }

    /// Collation ids: latin1_swedish_ci 8, latin1_bin 47, latin1_swedish_nopad_ci 1032,
    /// cp1250_general_ci 26, gbk_chinese_ci 28, big5_chinese_ci 1, sjis_japanese_ci 13,
    /// ujis_japanese_ci 12, ucs2_general_ci 35, utf16_general_ci 54, utf16le_general_ci 56,
    /// utf32_general_ci 60, utf8mb4_general_ci 45.
    #[test]
    fn text_in_the_charset_of_its_collation() {
        let text = |bytes: &[u8], collation| text_of(bytes, collation);
        // MySQL's latin1 is cp1252, its undefined bytes the C1 controls, under every collation.
        for latin1 in [8, 47, 1032] {
            assert_eq!(text(&[0x80, 0x8A, 0xE9], latin1), "€Šé");
            assert_eq!(
                text(&[0x81, 0x8D, 0x8F, 0x90, 0x9D], latin1),
                "\u{81}\u{8d}\u{8f}\u{90}\u{9d}"
            );
        }
        assert_eq!(text(b"plain", 8), "plain");
        // cp1250: its letters, and a byte MySQL leaves undefined.
        assert_eq!(text(&[0x8A, 0x9E, 0xF5, 0x81], 26), "Šžő?");
        assert_eq!(text(&[0x61, 0xD6, 0xD0, 0xCE, 0xC4], 28), "a中文");
        // Where MySQL's table differs from WHATWG's: kana in big5, the wave dash in sjis and
        // ujis, and ujis's three-byte codes (JIS X 0212) and user-defined area.
        assert_eq!(text(&[0xA4, 0xA4, 0xC6, 0xA6, 0xC7, 0xB4], 1), "中あЖ");
        assert_eq!(text(&[0x93, 0xFA, 0x81, 0x60, 0xB1], 13), "日〜ｱ");
        assert_eq!(
            text(&[0xA1, 0xC1, 0x8F, 0xB0, 0xA1, 0xF5, 0xA1], 12),
            "〜丂\u{e000}"
        );
        // A well-formed code that neither table maps is '?', as the server reads it.
        assert_eq!(text(&[0x85, 0x40, 0x41], 13), "?A");
        // The wide charsets, with an astral character where the charset has them.
        let astral = "ü😀";
        let utf16: Vec<u8> = astral.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let utf16le: Vec<u8> = astral.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let utf32: Vec<u8> = astral
            .chars()
            .flat_map(|c| u32::from(c).to_be_bytes())
            .collect();
        assert_eq!(text(&utf16, 54), astral);
        assert_eq!(text(&utf16le, 56), astral);
        assert_eq!(text(&utf32, 60), astral);
        assert_eq!(text(&[0x00, 0xFC, 0x03, 0xA9], 35), "üΩ");
        // UTF-8 and unknown ids: UTF-8, invalid bytes replaced.
        assert_eq!(text(astral.as_bytes(), 45), astral);
        assert_eq!(text(&[0x61, 0xFF], 45), "a\u{fffd}");
        assert_eq!(text(&[0x61, 0xFF], 9999), "a\u{fffd}");
    }
}
