//! Lookups, embeds and aggregates: the related rows of one root row, turned into attributes.
//!
//! Pure. The rows come from a read of the related tables in the same consistent snapshot as the
//! root row (see `sql/join.rs`), so an item is always the join evaluated over one state of
//! the source. The rules, from VIEWS.md: join values compare numerically for numeric columns
//! and exactly for strings (not by collation); a lookup without a matching row leaves its
//! attributes absent; an embed without rows is an empty list, ordered by `order_by` with NULLs
//! first and ties broken by primary key; aggregates skip NULLs, count 0 and sum 0 over no rows,
//! min and max absent; sums of integers and DECIMALs are exact; strings compare by UTF-8 bytes.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::project::Item;
use super::row::Row;
use super::spec::{Aggregate, AttributeSpec, Join, JoinKind, OrderBy};
use super::value::{format_f64, plain_decimal, Attr, Cell, Conversion, DecimalNumber};

/// A join column value normalised for matching: numbers by value, strings and bytes exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JoinValue {
    Number(String),
    Text(String),
    Bytes(Vec<u8>),
    /// DATE, DATETIME and TIMESTAMP by instant, in microseconds since the epoch (a DATETIME
    /// read as UTC, as the snapshot's session reads a TIMESTAMP): MariaDB compares a DATETIME
    /// with a DATETIME(6), and a DATE with a DATETIME at midnight, as equal.
    Instant(i128),
    /// TIME in signed microseconds (`TIME` and `TIME(6)` of one value are equal).
    Duration(i128),
    /// Other values, by their rendering.
    Other(String),
}

/// `None` for NULL (which matches nothing).
pub fn join_value(cell: &Cell) -> Option<JoinValue> {
    Some(match cell {
        Cell::Null | Cell::ZeroDate => return None,
        Cell::Int(v) => JoinValue::Number(normal_number(&v.to_string())),
        Cell::UInt(v) => JoinValue::Number(normal_number(&v.to_string())),
        Cell::Bit(v) => JoinValue::Number(normal_number(&v.to_string())),
        Cell::Year(v) => JoinValue::Number(normal_number(&v.to_string())),
        Cell::Decimal(text) => JoinValue::Number(normal_number(text)),
        Cell::Float(v) => JoinValue::Number(normal_number(&format_f64(f64::from(*v)))),
        Cell::Double(v) => JoinValue::Number(normal_number(&format_f64(*v))),
        Cell::Text(s) => JoinValue::Text(s.clone()),
        Cell::Enum(label) => JoinValue::Text(String::from(&**label)),
        Cell::Bytes(b) => JoinValue::Bytes(b.clone()),
        Cell::Date { .. } | Cell::DateTime(_) | Cell::Timestamp { .. } => {
            match cell.epoch_micros() {
                Ok(Some(micros)) => JoinValue::Instant(micros),
                _ => JoinValue::Other(cell.to_text().ok().flatten().unwrap_or_default()),
            }
        }
        Cell::Time { .. } => JoinValue::Duration(time_micros(cell)),
        other => JoinValue::Other(other.to_text().ok().flatten().unwrap_or_default()),
    })
}

/// `12.50` and `12.5` and `1.25e1` alike.
fn normal_number(text: &str) -> String {
    match DecimalNumber::parse(text) {
        Some(n) if n.digits.is_empty() => "0".into(),
        Some(n) => {
            let digits: String = n.digits.iter().map(|d| char::from(b'0' + d)).collect();
            format!(
                "{}{}e{}",
                if n.negative { "-" } else { "" },
                digits,
                n.point
            )
        }
        None => text.to_string(),
    }
}

/// The values of `columns` in `row`; `None` when one is NULL or missing.
pub fn row_join_key<'a>(
    row: &Row,
    columns: impl IntoIterator<Item = &'a str>,
) -> Option<Vec<JoinValue>> {
    columns
        .into_iter()
        .map(|c| row.get(c).and_then(join_value))
        .collect()
}

/// Total order of two cells of one column: NULL first, numbers by value, strings and bytes by
/// bytes, temporals chronologically.
pub fn compare_cells(a: &Cell, b: &Cell) -> Ordering {
    let rank = |c: &Cell| match c {
        Cell::Null => 0,
        Cell::ZeroDate => 1,
        _ => 2,
    };
    match (a, b) {
        (Cell::Null | Cell::ZeroDate, _) | (_, Cell::Null | Cell::ZeroDate) => {
            rank(a).cmp(&rank(b))
        }
        (Cell::Text(_) | Cell::Enum(_), Cell::Text(_) | Cell::Enum(_)) => a
            .text()
            .unwrap_or_default()
            .as_bytes()
            .cmp(b.text().unwrap_or_default().as_bytes()),
        (Cell::Bytes(x), Cell::Bytes(y)) => x.cmp(y),
        (Cell::Float(_) | Cell::Double(_), _) | (_, Cell::Float(_) | Cell::Double(_)) => {
            match (as_f64(a), as_f64(b)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => render(a).cmp(&render(b)),
            }
        }
        (Cell::Date { .. } | Cell::DateTime(_), Cell::Date { .. } | Cell::DateTime(_)) => {
            render(a).cmp(&render(b))
        }
        (
            Cell::Timestamp {
                secs: s1,
                micros: m1,
                ..
            },
            Cell::Timestamp {
                secs: s2,
                micros: m2,
                ..
            },
        ) => (s1, m1).cmp(&(s2, m2)),
        (Cell::Time { .. }, Cell::Time { .. }) => time_micros(a).cmp(&time_micros(b)),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => render(a).cmp(&render(b)),
        },
    }
}

fn render(cell: &Cell) -> String {
    cell.to_text().ok().flatten().unwrap_or_default()
}

fn as_f64(cell: &Cell) -> Option<f64> {
    match cell {
        Cell::Float(v) => Some(f64::from(*v)),
        Cell::Double(v) => Some(*v),
        other => render(other).parse().ok(),
    }
}

fn number(cell: &Cell) -> Option<DecimalNumber> {
    match cell {
        Cell::Int(_) | Cell::UInt(_) | Cell::Decimal(_) | Cell::Bit(_) | Cell::Year(_) => {
            DecimalNumber::parse(&render(cell))
        }
        _ => None,
    }
}

/// A TIME's signed microseconds (0 for other kinds).
fn time_micros(cell: &Cell) -> i128 {
    match cell {
        Cell::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            ..
        } => {
            let magnitude = ((i128::from(*hours) * 60 + i128::from(*minutes)) * 60
                + i128::from(*seconds))
                * 1_000_000
                + i128::from(*micros);
            if *negative {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => 0,
    }
}

/// Sorts embedded rows by `order_by` (`DESC` reversing; NULLs first either way), ties by
/// primary key.
pub fn sort_embedded(rows: &mut [Row], order_by: &[OrderBy], primary_key: &[String]) {
    let null = Cell::Null;
    rows.sort_by(|a, b| {
        for order in order_by {
            let x = a.get(&order.column).unwrap_or(&null);
            let y = b.get(&order.column).unwrap_or(&null);
            // NULLs first in either direction (VIEWS.md: "NULLs sort first").
            let ordering = match (x.is_null(), y.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                _ if order.descending => compare_cells(x, y).reverse(),
                _ => compare_cells(x, y),
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        for column in primary_key {
            let ordering = compare_cells(
                a.get(column).unwrap_or(&null),
                b.get(column).unwrap_or(&null),
            );
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    });
}

/// The running value of one aggregate over the related rows of one root row.
#[derive(Debug, Clone, PartialEq)]
pub enum Accumulator {
    Count(u64),
    /// Integers (and YEAR, BIT) exactly.
    SumInt(i128),
    /// DECIMALs exactly: the unscaled sum and its scale.
    SumDecimal {
        unscaled: i128,
        scale: u32,
    },
    SumFloat(f64),
    /// No non-NULL value yet.
    SumEmpty,
    Min(Option<Cell>),
    Max(Option<Cell>),
    /// The sum went out of range or met a value that is not a number.
    Failed(String),
}

impl Accumulator {
    pub fn new(function: &Aggregate) -> Accumulator {
        match function {
            Aggregate::Count => Accumulator::Count(0),
            Aggregate::Sum(_) => Accumulator::SumEmpty,
            Aggregate::Min(_) => Accumulator::Min(None),
            Aggregate::Max(_) => Accumulator::Max(None),
        }
    }

    /// Folds in one related row's value (`Cell::Null` for a row of a `count`).
    pub fn add(&mut self, cell: &Cell) {
        let next = match (&*self, cell) {
            (Accumulator::Failed(_), _) => return,
            (Accumulator::Count(n), _) => Accumulator::Count(n + 1),
            (_, Cell::Null | Cell::ZeroDate) => return,
            (Accumulator::Min(current), _) => Accumulator::Min(Some(match current {
                Some(c) if compare_cells(c, cell) != Ordering::Greater => c.clone(),
                _ => cell.clone(),
            })),
            (Accumulator::Max(current), _) => Accumulator::Max(Some(match current {
                Some(c) if compare_cells(c, cell) != Ordering::Less => c.clone(),
                _ => cell.clone(),
            })),
            (sum, value) => add_to_sum(sum, value),
        };
        *self = next;
    }

    /// The attribute, `None` when absent (min or max over no value).
    pub fn finish(&self) -> Result<Option<Attr>, String> {
        Ok(match self {
            Accumulator::Count(n) => Some(Attr::N(n.to_string())),
            Accumulator::SumEmpty => Some(Attr::N("0".into())),
            Accumulator::SumInt(v) => Some(Attr::N(v.to_string())),
            Accumulator::SumDecimal { unscaled, scale } => {
                Some(Attr::N(plain_decimal(&format_scaled(*unscaled, *scale))))
            }
            Accumulator::SumFloat(v) => {
                if !v.is_finite() {
                    return Err("the sum is not a finite number".into());
                }
                Some(Attr::N(format_f64(*v)))
            }
            Accumulator::Min(value) | Accumulator::Max(value) => match value {
                None => None,
                Some(cell) => cell
                    .to_attr(Conversion::Native)
                    .map_err(|e| e.to_string())?,
            },
            Accumulator::Failed(reason) => return Err(reason.clone()),
        })
    }
}

fn add_to_sum(sum: &Accumulator, value: &Cell) -> Accumulator {
    let overflow = || Accumulator::Failed("the sum is out of range".into());
    let integer = match value {
        Cell::Int(v) => Some(i128::from(*v)),
        Cell::UInt(v) => Some(i128::from(*v)),
        Cell::Year(v) => Some(i128::from(*v)),
        Cell::Bit(v) => Some(i128::from(*v)),
        _ => None,
    };
    match (sum, integer, value) {
        (Accumulator::SumEmpty, Some(v), _) => Accumulator::SumInt(v),
        (Accumulator::SumInt(s), Some(v), _) => {
            s.checked_add(v).map_or_else(overflow, Accumulator::SumInt)
        }
        (Accumulator::SumEmpty, None, Cell::Decimal(text)) => match parse_scaled(text) {
            Some((unscaled, scale)) => Accumulator::SumDecimal { unscaled, scale },
            None => overflow(),
        },
        (Accumulator::SumDecimal { unscaled, scale }, None, Cell::Decimal(text)) => {
            match parse_scaled(text).and_then(|(v, s)| add_scaled(*unscaled, *scale, v, s)) {
                Some((unscaled, scale)) => Accumulator::SumDecimal { unscaled, scale },
                None => overflow(),
            }
        }
        (Accumulator::SumEmpty, None, Cell::Float(_) | Cell::Double(_)) => {
            Accumulator::SumFloat(as_f64(value).unwrap_or(0.0))
        }
        (Accumulator::SumFloat(s), None, Cell::Float(_) | Cell::Double(_)) => {
            Accumulator::SumFloat(s + as_f64(value).unwrap_or(0.0))
        }
        (_, _, other) => Accumulator::Failed(format!(
            "sum over a {} value (sum needs one numeric column)",
            other.kind()
        )),
    }
}

/// `-12.50` → (-1250, 2).
fn parse_scaled(text: &str) -> Option<(i128, u32)> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = format!("{int_part}{frac}");
    let magnitude: i128 = digits.parse().ok()?;
    Some((
        if negative { -magnitude } else { magnitude },
        frac.len() as u32,
    ))
}

fn add_scaled(a: i128, a_scale: u32, b: i128, b_scale: u32) -> Option<(i128, u32)> {
    let scale = a_scale.max(b_scale);
    let a = a.checked_mul(10i128.checked_pow(scale - a_scale)?)?;
    let b = b.checked_mul(10i128.checked_pow(scale - b_scale)?)?;
    Some((a.checked_add(b)?, scale))
}

fn format_scaled(unscaled: i128, scale: u32) -> String {
    if scale == 0 {
        return unscaled.to_string();
    }
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{}", "0".repeat(scale + 1 - digits.len()), digits)
    } else {
        digits
    };
    let (int_part, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int_part}.{frac}", if unscaled < 0 { "-" } else { "" })
}

/// What the related tables hold for one root row, one part per join of the view.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub parts: Vec<JoinPart>,
}

impl Joined {
    /// About what the related rows hold in memory, in bytes (see [`Row::weight`]).
    pub fn weight(&self) -> usize {
        self.parts
            .iter()
            .map(|part| match part {
                JoinPart::Lookup(row) => row.as_ref().map_or(0, Row::weight),
                JoinPart::Embed(rows) => rows.iter().map(Row::weight).sum(),
                JoinPart::EmbedTooLarge | JoinPart::Aggregate(_) => 0,
            })
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum JoinPart {
    Lookup(Option<Row>),
    /// Already in `order_by` order.
    Embed(Vec<Row>),
    /// The related rows would make the item larger than DynamoDB accepts; they were not all
    /// read.
    EmbedTooLarge,
    Aggregate(Accumulator),
}

/// The value of one attribute of a related row; `Ok(None)` when it is absent (NULL).
fn attr_of(spec: &AttributeSpec, row: &Row, zero_dates: &mut u32) -> Result<Option<Attr>, String> {
    let Some(cell) = row.get(&spec.column) else {
        return Err(format!(
            "column {} is not in {}",
            spec.column, row.schema.table
        ));
    };
    if matches!(cell, Cell::ZeroDate) {
        *zero_dates += 1;
    }
    cell.to_attr(spec.conversion)
        .map_err(|error| format!("attribute {}: {error}", spec.name))
}

fn embedded_map(
    row: &Row,
    attributes: Option<&[AttributeSpec]>,
    zero_dates: &mut u32,
) -> Result<Attr, String> {
    let mut map = BTreeMap::new();
    match attributes {
        Some(specs) => {
            for spec in specs {
                if let Some(attr) = attr_of(spec, row, zero_dates)? {
                    map.insert(spec.name.to_string(), attr);
                }
            }
        }
        None => {
            for (column, cell) in row.schema.columns.iter().zip(&row.cells) {
                if column.is_virtual {
                    continue;
                }
                if matches!(cell, Cell::ZeroDate) {
                    *zero_dates += 1;
                }
                match cell.to_attr(Conversion::Native) {
                    Ok(Some(attr)) => {
                        map.insert(column.name.clone(), attr);
                    }
                    Ok(None) => {}
                    Err(error) => return Err(format!("attribute {}: {error}", column.name)),
                }
            }
        }
    }
    Ok(Attr::M(map))
}

/// Adds the join attributes of `joined` to `item`; `Err` is the dead-letter reason.
pub fn apply_joins(
    joins: &[Join],
    joined: &Joined,
    item: &mut Item,
    zero_dates: &mut u32,
) -> Result<(), String> {
    for (join, part) in joins.iter().zip(&joined.parts) {
        match (&join.kind, part) {
            (JoinKind::Lookup { attributes }, JoinPart::Lookup(row)) => {
                let Some(row) = row else { continue };
                for spec in attributes {
                    if let Some(attr) = attr_of(spec, row, zero_dates)? {
                        item.insert(spec.name.clone(), attr);
                    }
                }
            }
            (
                JoinKind::Embed {
                    attribute,
                    attributes,
                    ..
                },
                JoinPart::Embed(rows),
            ) => {
                let mut list = Vec::with_capacity(rows.len());
                for row in rows {
                    list.push(embedded_map(row, attributes.as_deref(), zero_dates)?);
                }
                item.insert(attribute.clone(), Attr::L(list));
            }
            (JoinKind::Embed { attribute, .. }, JoinPart::EmbedTooLarge) => {
                return Err(format!(
                    "embedded list {attribute} makes the item larger than 400 KB"
                ));
            }
            (JoinKind::Aggregate { attribute, .. }, JoinPart::Aggregate(acc)) => {
                match acc.finish() {
                    Ok(Some(attr)) => {
                        item.insert(attribute.clone(), attr);
                    }
                    Ok(None) => {}
                    Err(reason) => return Err(format!("aggregate {attribute}: {reason}")),
                }
            }
            _ => return Err(format!("{}: related rows of the wrong shape", join.field)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::view::row::{ColumnKind, ColumnSchema, TableSchema};
    use crate::view::spec::TableRef;

    /// Temporal join values as MariaDB compares them: by instant, whatever the precision.
    #[test]
    fn temporal_join_values_compare_by_instant() {
        let datetime = |micros: u32, fsp: u8| {
            Cell::DateTime(crate::view::value::DateTime {
                year: 2024,
                month: 5,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                micros,
                fsp,
            })
        };
        let date = Cell::Date {
            year: 2024,
            month: 5,
            day: 1,
        };
        let time = |micros: u32, fsp: u8| Cell::Time {
            negative: false,
            hours: 10,
            minutes: 0,
            seconds: 0,
            micros,
            fsp,
        };
        let timestamp = |micros: u32| Cell::Timestamp {
            secs: 1_714_521_600,
            micros,
            fsp: 6,
        };
        assert_eq!(join_value(&datetime(0, 0)), join_value(&datetime(0, 6)));
        assert_eq!(join_value(&date), join_value(&datetime(0, 3)));
        assert_eq!(join_value(&timestamp(0)), join_value(&datetime(0, 0)));
        assert_ne!(join_value(&datetime(1, 6)), join_value(&datetime(0, 0)));
        assert_ne!(join_value(&timestamp(1)), join_value(&date));
        assert_eq!(join_value(&time(0, 0)), join_value(&time(0, 6)));
        assert_eq!(join_value(&time(500_000, 1)), join_value(&time(500_000, 6)));
        assert_ne!(join_value(&time(500_000, 6)), join_value(&time(0, 6)));
    }

    fn row(cells: Vec<(&str, ColumnKind, Cell)>) -> Row {
        let columns = cells
            .iter()
            .map(|(name, kind, _)| ColumnSchema {
                name: name.to_string(),
                kind: kind.clone(),
                is_virtual: false,
            })
            .collect();
        let schema = Arc::new(TableSchema::new(
            TableRef::parse("shop.order_items").unwrap(),
            columns,
        ));
        Row {
            schema,
            cells: cells.into_iter().map(|(_, _, c)| c).collect(),
        }
    }

    #[test]
    fn join_values_compare_numbers_by_value_and_strings_exactly() {
        assert_eq!(join_value(&Cell::Int(7)), join_value(&Cell::UInt(7)));
        assert_eq!(
            join_value(&Cell::Int(10)),
            join_value(&Cell::Decimal("10.00".into()))
        );
        assert_eq!(
            join_value(&Cell::Int(0)),
            join_value(&Cell::Decimal("0.0".into()))
        );
        assert_ne!(join_value(&Cell::Int(1)), join_value(&Cell::Int(10)));
        assert_ne!(join_value(&Cell::Int(-1)), join_value(&Cell::Int(1)));
        assert_eq!(
            join_value(&Cell::Decimal("7.50".into())),
            join_value(&Cell::Double(7.5))
        );
        assert_ne!(
            join_value(&Cell::Text("abc".into())),
            join_value(&Cell::Text("ABC".into()))
        );
        assert_ne!(
            join_value(&Cell::Text("a".into())),
            join_value(&Cell::Text("a ".into()))
        );
        assert_eq!(join_value(&Cell::Null), None);
    }

    #[test]
    fn exact_sums() {
        let mut acc = Accumulator::new(&Aggregate::Sum("price".into()));
        for text in ["0.10", "0.20", "-0.05", "99999999999999999999999999.99"] {
            acc.add(&Cell::Decimal(text.into()));
        }
        acc.add(&Cell::Null);
        assert_eq!(
            acc.finish().unwrap(),
            Some(Attr::N("100000000000000000000000000.24".into()))
        );
        let mut tens = Accumulator::new(&Aggregate::Sum("price".into()));
        tens.add(&Cell::Decimal("0.50".into()));
        tens.add(&Cell::Decimal("0.50".into()));
        assert_eq!(tens.finish().unwrap(), Some(Attr::N("1".into())));
        let mut ints = Accumulator::new(&Aggregate::Sum("qty".into()));
        ints.add(&Cell::UInt(u64::MAX));
        ints.add(&Cell::UInt(u64::MAX));
        ints.add(&Cell::Int(-1));
        assert_eq!(
            ints.finish().unwrap(),
            Some(Attr::N("36893488147419103229".into()))
        );
        let empty = Accumulator::new(&Aggregate::Sum("qty".into()));
        assert_eq!(empty.finish().unwrap(), Some(Attr::N("0".into())));
        assert_eq!(format_scaled(-5, 2), "-0.05");
    }

    #[test]
    fn min_max_and_count() {
        let mut min = Accumulator::new(&Aggregate::Min("sku".into()));
        let mut max = Accumulator::new(&Aggregate::Max("sku".into()));
        let mut count = Accumulator::new(&Aggregate::Count);
        for s in ["b", "Z", "é", "a"] {
            min.add(&Cell::Text(s.into()));
            max.add(&Cell::Text(s.into()));
            count.add(&Cell::Text(s.into()));
        }
        min.add(&Cell::Null);
        count.add(&Cell::Null);
        assert_eq!(min.finish().unwrap(), Some(Attr::S("Z".into())));
        assert_eq!(max.finish().unwrap(), Some(Attr::S("é".into())));
        assert_eq!(count.finish().unwrap(), Some(Attr::N("5".into())));
        let none = Accumulator::new(&Aggregate::Max("sku".into()));
        assert_eq!(none.finish().unwrap(), None);
        let mut numbers = Accumulator::new(&Aggregate::Max("n".into()));
        numbers.add(&Cell::Int(9));
        numbers.add(&Cell::Int(10));
        assert_eq!(numbers.finish().unwrap(), Some(Attr::N("10".into())));
    }

    #[test]
    fn embedded_order_nulls_first_desc_ties_by_key() {
        let make = |id: i64, n: Option<i64>| {
            row(vec![
                ("id", ColumnKind::Int { unsigned: false }, Cell::Int(id)),
                (
                    "n",
                    ColumnKind::Int { unsigned: false },
                    n.map_or(Cell::Null, Cell::Int),
                ),
            ])
        };
        let mut rows = vec![
            make(3, Some(1)),
            make(1, Some(2)),
            make(2, None),
            make(4, Some(1)),
        ];
        sort_embedded(
            &mut rows,
            &[OrderBy {
                column: "n".into(),
                descending: false,
            }],
            &["id".into()],
        );
        let ids: Vec<&Cell> = rows.iter().map(|r| r.get("id").unwrap()).collect();
        assert_eq!(
            ids,
            [&Cell::Int(2), &Cell::Int(3), &Cell::Int(4), &Cell::Int(1)]
        );
        sort_embedded(
            &mut rows,
            &[OrderBy {
                column: "n".into(),
                descending: true,
            }],
            &["id".into()],
        );
        let ids: Vec<&Cell> = rows.iter().map(|r| r.get("id").unwrap()).collect();
        assert_eq!(
            ids,
            [&Cell::Int(2), &Cell::Int(1), &Cell::Int(3), &Cell::Int(4)]
        );
    }
}
