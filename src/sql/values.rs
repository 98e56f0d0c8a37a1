//! Attribute values back to SQL values: the VIEWS.md value table read right to left, with the
//! `as` conversions inverted (epoch → DATETIME in UTC, SS → SET, text → number, …).
//!
//! Pure, and total over every input: any [`Attr`] an application can write, for any column
//! kind and conversion, gives a value or a reason to reject the record — never a panic.
//! Validation is strict where SQL would otherwise guess: dates and times are checked field by
//! field (years 1000..=9999, as MariaDB's DATE and DATETIME hold), floats must be finite, ENUM
//! and SET labels must be the column's.

use mysql_async::Value;

use crate::view::row::{ColumnKind, TableSchema};
use crate::view::value::{datetime_from_epoch, is_number_text, Attr, Cell, Conversion};

/// An attribute value as the column's SQL value, per the VIEWS.md table and `as` conversion.
pub fn to_sql(attr: &Attr, kind: &ColumnKind, conversion: Conversion) -> Result<Value, String> {
    if *attr == Attr::Null && !matches!(kind, ColumnKind::Json) {
        return Ok(Value::NULL);
    }
    match conversion {
        Conversion::EpochSeconds | Conversion::EpochMillis => {
            let n = expect_n(attr, "an epoch conversion")?;
            from_epoch(n, conversion == Conversion::EpochMillis)
        }
        Conversion::JsonString => {
            let s = expect_s(attr, "a json_string conversion")?;
            serde_json::from_str::<serde_json::Value>(s).map_err(|e| format!("not JSON: {e}"))?;
            Ok(Value::Bytes(s.as_bytes().to_vec()))
        }
        Conversion::String => from_text(expect_s(attr, "an as = \"string\" attribute")?, kind),
        Conversion::Number => {
            let n = expect_n(attr, "an as = \"number\" attribute")?;
            match kind {
                ColumnKind::Text | ColumnKind::Enum(_) => from_text(n, kind),
                other => native(&Attr::N(n.to_string()), other),
            }
        }
        Conversion::Native => native(attr, kind),
    }
}

fn attr_type(attr: &Attr) -> &'static str {
    match attr {
        Attr::S(_) => "S",
        Attr::N(_) => "N",
        Attr::B(_) => "B",
        Attr::Ss(_) => "SS",
        Attr::M(_) => "M",
        Attr::L(_) => "L",
        Attr::Bool(_) => "BOOL",
        Attr::Null => "NULL",
    }
}

fn expect_n<'a>(attr: &'a Attr, what: &str) -> Result<&'a str, String> {
    match attr {
        Attr::N(n) => Ok(n),
        other => Err(format!(
            "expected a number (N) for {what}, got {}",
            attr_type(other)
        )),
    }
}

fn expect_s<'a>(attr: &'a Attr, what: &str) -> Result<&'a str, String> {
    match attr {
        Attr::S(s) => Ok(s),
        other => Err(format!(
            "expected a string (S) for {what}, got {}",
            attr_type(other)
        )),
    }
}

/// A text (as `as = "string"` renders the column) back to the column's value.
fn from_text(text: &str, kind: &ColumnKind) -> Result<Value, String> {
    match kind {
        ColumnKind::Set(_) => native(
            &Attr::Ss(
                text.split(',')
                    .filter(|s| !s.is_empty())
                    .map(Into::into)
                    .collect(),
            ),
            kind,
        ),
        ColumnKind::Text
        | ColumnKind::Enum(_)
        | ColumnKind::Date
        | ColumnKind::DateTime { .. }
        | ColumnKind::Timestamp { .. }
        | ColumnKind::Time { .. } => native(&Attr::S(text.to_string()), kind),
        ColumnKind::Binary { .. } | ColumnKind::Json => Ok(Value::Bytes(text.as_bytes().to_vec())),
        ColumnKind::Native(_) => native(&Attr::S(text.to_string()), kind),
        ColumnKind::Other(name) => Err(format!("write-back does not handle {name} columns")),
        _ => native(&Attr::N(text.to_string()), kind),
    }
}

fn native(attr: &Attr, kind: &ColumnKind) -> Result<Value, String> {
    match kind {
        ColumnKind::Int { unsigned } => integer(expect_n(attr, "an integer column")?, *unsigned),
        ColumnKind::SignedMedium => integer(expect_n(attr, "an integer column")?, false),
        ColumnKind::Bit | ColumnKind::Year => integer(expect_n(attr, "a numeric column")?, true),
        ColumnKind::Decimal { .. } => number_text(expect_n(attr, "a DECIMAL column")?),
        ColumnKind::Float | ColumnKind::Double => float(expect_n(attr, "a floating-point column")?),
        ColumnKind::Text => Ok(Value::Bytes(
            expect_s(attr, "a text column")?.as_bytes().to_vec(),
        )),
        ColumnKind::Enum(labels) => {
            let s = expect_s(attr, "an ENUM column")?;
            if labels.iter().any(|l| **l == *s) {
                Ok(Value::Bytes(s.as_bytes().to_vec()))
            } else {
                Err(format!("{s:?} is not one of {labels:?}"))
            }
        }
        ColumnKind::Set(labels) => {
            let Attr::Ss(items) = attr else {
                return Err(format!(
                    "expected a string set (SS) for a SET column, got {}",
                    attr_type(attr)
                ));
            };
            if let Some(bad) = items.iter().find(|i| !labels.contains(i)) {
                return Err(format!("{bad:?} is not one of {labels:?}"));
            }
            Ok(Value::Bytes(items.join(",").into_bytes()))
        }
        ColumnKind::Binary { .. } => match attr {
            Attr::B(bytes) => Ok(Value::Bytes(bytes.clone())),
            other => Err(format!(
                "expected binary (B) for a binary column, got {}",
                attr_type(other)
            )),
        },
        ColumnKind::Date => date_time(expect_s(attr, "a DATE column")?, false),
        ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. } => {
            date_time(expect_s(attr, "a DATETIME or TIMESTAMP column")?, true)
        }
        ColumnKind::Time { .. } => time(expect_s(attr, "a TIME column")?),
        ColumnKind::Json => Ok(Value::Bytes(attr.to_json().to_string().into_bytes())),
        ColumnKind::Native(native) => Ok(Value::Bytes(
            native
                .normalise(expect_s(attr, "a UUID, INET4 or INET6 column")?)?
                .into_bytes(),
        )),
        ColumnKind::Other(name) => Err(format!("write-back does not handle {name} columns")),
    }
}

fn integer(text: &str, unsigned: bool) -> Result<Value, String> {
    let text = text.trim();
    if unsigned {
        text.parse::<u64>()
            .map(Value::UInt)
            .map_err(|_| format!("{text:?} is not an unsigned 64-bit integer"))
    } else {
        text.parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("{text:?} is not a 64-bit integer"))
    }
}

fn number_text(text: &str) -> Result<Value, String> {
    let text = text.trim();
    if is_number_text(text) {
        Ok(Value::Bytes(text.as_bytes().to_vec()))
    } else {
        Err(format!("{text:?} is not a number"))
    }
}

fn float(text: &str) -> Result<Value, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(Value::Double(value)),
        _ => Err(format!("{text:?} is not a finite number")),
    }
}

/// The ASCII digits of `text[range]` as a number, if they are all digits.
fn digits(text: &[u8], range: std::ops::Range<usize>) -> Option<u32> {
    let part = text.get(range)?;
    if part.is_empty() || part.len() > 9 || !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DD`, then (with `with_time`) optionally `THH:MM:SS[.ffffff]` (or a space), then
/// optionally `Z`: checked field by field, as a SQL literal with a space between date and time.
fn date_time(text: &str, with_time: bool) -> Result<Value, String> {
    let shape = if with_time {
        "YYYY-MM-DDTHH:MM:SS[.ffffff] value with a year in 1000..=9999"
    } else {
        "YYYY-MM-DD value with a year in 1000..=9999"
    };
    let bad = || format!("{text:?} is not a {shape}");
    let body = text.strip_suffix('Z').unwrap_or(text).as_bytes();
    let (date, time) = body.split_at(body.len().min(10));
    if date.len() != 10 || date[4] != b'-' || date[7] != b'-' {
        return Err(bad());
    }
    let (year, month, day) = (
        digits(date, 0..4).ok_or_else(bad)?,
        digits(date, 5..7).ok_or_else(bad)?,
        digits(date, 8..10).ok_or_else(bad)?,
    );
    if !(1000..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
    {
        return Err(bad());
    }
    let mut literal = String::from_utf8_lossy(date).into_owned();
    if !time.is_empty() {
        if !with_time || !(time[0] == b'T' || time[0] == b' ') {
            return Err(bad());
        }
        let clock = clock(&time[1..], 23).ok_or_else(bad)?;
        literal.push(' ');
        literal.push_str(&clock);
    }
    Ok(Value::Bytes(literal.into_bytes()))
}

/// `HH:MM:SS[.ffffff]` with hours up to `max_hours`, as text.
fn clock(text: &[u8], max_hours: u32) -> Option<String> {
    let first = text.iter().position(|&b| b == b':')?;
    let hours = digits(text, 0..first)?;
    let rest = &text[first + 1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let (minutes, seconds) = (digits(rest, 0..2)?, digits(rest, 3..5)?);
    let fraction = &rest[5..];
    let fraction_ok = fraction.is_empty()
        || (fraction[0] == b'.'
            && (2..=7).contains(&fraction.len())
            && fraction[1..].iter().all(u8::is_ascii_digit));
    if hours > max_hours || minutes > 59 || seconds > 59 || !fraction_ok {
        return None;
    }
    Some(String::from_utf8_lossy(text).into_owned())
}

/// `[-]HH:MM:SS[.ffffff]`, hours up to 838 as MariaDB's TIME holds.
fn time(text: &str) -> Result<Value, String> {
    let (sign, body) = match text.strip_prefix('-') {
        Some(body) => ("-", body),
        None => ("", text),
    };
    match clock(body.as_bytes(), 838) {
        Some(clock) => Ok(Value::Bytes(format!("{sign}{clock}").into_bytes())),
        None => Err(format!(
            "{text:?} is not a [-]HH:MM:SS[.ffffff] value with hours up to 838"
        )),
    }
}

/// First and last second of the years 1000..=9999 since the epoch.
const EPOCH_RANGE: std::ops::RangeInclusive<i64> = -30_610_224_000..=253_402_300_799;

/// An epoch number (seconds or milliseconds, fraction allowed) as a UTC `DATETIME` literal.
fn from_epoch(text: &str, millis: bool) -> Result<Value, String> {
    let bad = || format!("{text:?} is not an epoch number within the years 1000..=9999");
    let trimmed = text.trim();
    let (int_part, frac) = trimmed.split_once('.').unwrap_or((trimmed, ""));
    let whole: i64 = int_part.parse().map_err(|_| bad())?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // The fraction in microseconds for the unit (digits beyond a microsecond are dropped).
    let width = if millis { 3 } else { 6 };
    let kept: String = frac.chars().take(width).collect();
    let mut frac_units = i128::from(
        format!("{kept:0<width$}")
            .parse::<u32>()
            .map_err(|_| bad())?,
    );
    if int_part.starts_with('-') {
        frac_units = -frac_units;
    }
    let micros_per_unit: i128 = if millis { 1000 } else { 1_000_000 };
    let micros_total = i128::from(whole) * micros_per_unit + frac_units;
    let secs = i64::try_from(micros_total.div_euclid(1_000_000)).map_err(|_| bad())?;
    if !EPOCH_RANGE.contains(&secs) {
        return Err(bad());
    }
    let micros = u32::try_from(micros_total.rem_euclid(1_000_000)).map_err(|_| bad())?;
    let text = Cell::DateTime(datetime_from_epoch(secs, micros, 6))
        .to_text()
        .ok()
        .flatten()
        .ok_or_else(bad)?;
    Ok(Value::Bytes(text.replacen('T', " ", 1).into_bytes()))
}

/// Whether the key columns parsed from an item's key are values their columns can hold, in the
/// form rowcast renders them (integers without sign or leading zeros, dates as dates, ENUM
/// labels, …). A key that parses with the templates but not with the types is another item's
/// (e.g. the application's own `ACC#1#SETTINGS` next to a view's `ACC#{id}`).
pub fn typed_key(table: &TableSchema, columns: &[(String, String)]) -> bool {
    columns.iter().all(|(column, text)| {
        let Some(kind) = table.column(column).map(|c| &c.kind) else {
            return false;
        };
        match kind {
            ColumnKind::Int { .. }
            | ColumnKind::SignedMedium
            | ColumnKind::Bit
            | ColumnKind::Year => text.parse::<i128>().is_ok_and(|n| n.to_string() == *text),
            // A UUID or address as MariaDB prints it: `…ABCD` would insert the row whose item
            // is `…abcd`, a second item of one row.
            ColumnKind::Native(native) => native.normalise(text).is_ok_and(|t| t == *text),
            other => to_sql(&Attr::S(text.clone()), other, Conversion::String).is_ok(),
        }
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::strategies::any_attr;
    use super::*;
    use crate::view::native::NativeType;

    #[test]
    fn values_convert_back_or_are_refused() {
        let int = ColumnKind::Int { unsigned: false };
        assert_eq!(
            to_sql(&Attr::N("-42".into()), &int, Conversion::Native),
            Ok(Value::Int(-42))
        );
        assert!(to_sql(&Attr::S("42".into()), &int, Conversion::Native).is_err());
        assert!(to_sql(&Attr::N("4.2".into()), &int, Conversion::Native).is_err());
        assert!(to_sql(&Attr::N("1".repeat(40)), &int, Conversion::Native).is_err());
        assert_eq!(
            to_sql(&Attr::S("42".into()), &int, Conversion::String),
            Ok(Value::Int(42))
        );
        let dec = ColumnKind::Decimal { scale: 2 };
        assert_eq!(
            to_sql(&Attr::N("12.5".into()), &dec, Conversion::Native),
            Ok(Value::Bytes(b"12.5".to_vec()))
        );
        assert!(to_sql(&Attr::S("abc".into()), &dec, Conversion::Native).is_err());
        assert!(to_sql(
            &Attr::N("1e999".into()),
            &ColumnKind::Double,
            Conversion::Native
        )
        .is_err());
        let status = ColumnKind::Enum(vec!["open".into(), "closed".into()]);
        assert!(to_sql(&Attr::S("frozen".into()), &status, Conversion::Native).is_err());
        let dt = ColumnKind::DateTime { fsp: 3 };
        assert_eq!(
            to_sql(
                &Attr::S("2024-02-29T12:34:15.123".into()),
                &dt,
                Conversion::Native
            ),
            Ok(Value::Bytes(b"2024-02-29 12:34:15.123".to_vec()))
        );
        assert_eq!(
            to_sql(
                &Attr::N("1709210055123".into()),
                &dt,
                Conversion::EpochMillis
            ),
            Ok(Value::Bytes(b"2024-02-29 12:34:15.123000".to_vec()))
        );
        assert_eq!(
            to_sql(
                &Attr::N("1709210055.5".into()),
                &dt,
                Conversion::EpochSeconds
            ),
            Ok(Value::Bytes(b"2024-02-29 12:34:15.500000".to_vec()))
        );
        assert_eq!(
            to_sql(&Attr::N("-1.5".into()), &dt, Conversion::EpochSeconds),
            Ok(Value::Bytes(b"1969-12-31 23:59:58.500000".to_vec()))
        );
        for bad in [
            "yesterday",
            "2024年1月1日",
            "2023-02-29T00:00:00",
            "2024-13-01T00:00:00",
            "2024-01-01T24:00:00",
            "0999-01-01T00:00:00",
            "2024-01-01T00:00:00.1234567",
            "2024-01-01X00:00:00",
        ] {
            assert!(
                to_sql(&Attr::S(bad.into()), &dt, Conversion::Native).is_err(),
                "{bad}"
            );
        }
        for bad in [
            "99999999999999999",
            "-99999999999999",
            "1e3",
            "9223372036854775807",
        ] {
            assert!(
                to_sql(&Attr::N(bad.into()), &dt, Conversion::EpochSeconds).is_err(),
                "{bad}"
            );
        }
        let date = ColumnKind::Date;
        assert_eq!(
            to_sql(&Attr::S("2024-01-01".into()), &date, Conversion::Native),
            Ok(Value::Bytes(b"2024-01-01".to_vec()))
        );
        assert!(to_sql(
            &Attr::S("2024-01-01T00:00:00".into()),
            &date,
            Conversion::Native
        )
        .is_err());
        let time_kind = ColumnKind::Time { fsp: 0 };
        assert_eq!(
            to_sql(
                &Attr::S("-838:59:59".into()),
                &time_kind,
                Conversion::Native
            ),
            Ok(Value::Bytes(b"-838:59:59".to_vec()))
        );
        assert!(to_sql(&Attr::S("839:00:00".into()), &time_kind, Conversion::Native).is_err());
        assert!(to_sql(&Attr::S("10:60:00".into()), &time_kind, Conversion::Native).is_err());
        let set = ColumnKind::Set(vec!["a".into(), "b".into()]);
        assert_eq!(
            to_sql(
                &Attr::Ss(vec!["a".into(), "b".into()]),
                &set,
                Conversion::Native
            ),
            Ok(Value::Bytes(b"a,b".to_vec()))
        );
        assert_eq!(
            to_sql(&Attr::Null, &ColumnKind::Text, Conversion::Native),
            Ok(Value::NULL)
        );
    }

    fn any_kind() -> impl Strategy<Value = ColumnKind> {
        let labels = proptest::collection::vec("[a-z年]{0,3}", 0..3);
        prop_oneof![
            any::<bool>().prop_map(|unsigned| ColumnKind::Int { unsigned }),
            Just(ColumnKind::SignedMedium),
            (0u8..40).prop_map(|scale| ColumnKind::Decimal { scale }),
            Just(ColumnKind::Float),
            Just(ColumnKind::Double),
            Just(ColumnKind::Text),
            proptest::option::of(0usize..20).prop_map(|fixed_len| ColumnKind::Binary { fixed_len }),
            labels.clone().prop_map(|l: Vec<String>| ColumnKind::Enum(
                l.into_iter().map(Into::into).collect()
            )),
            labels.prop_map(|l: Vec<String>| ColumnKind::Set(
                l.into_iter().map(Into::into).collect()
            )),
            Just(ColumnKind::Bit),
            Just(ColumnKind::Year),
            Just(ColumnKind::Date),
            (0u8..7).prop_map(|fsp| ColumnKind::DateTime { fsp }),
            (0u8..7).prop_map(|fsp| ColumnKind::Timestamp { fsp }),
            (0u8..7).prop_map(|fsp| ColumnKind::Time { fsp }),
            Just(ColumnKind::Json),
            Just(ColumnKind::Native(NativeType::Uuid)),
            Just(ColumnKind::Native(NativeType::Inet4)),
            Just(ColumnKind::Native(NativeType::Inet6)),
            Just(ColumnKind::Other("GEOMETRY".into())),
        ]
    }

    fn any_conversion() -> impl Strategy<Value = Conversion> {
        prop_oneof![
            Just(Conversion::Native),
            Just(Conversion::String),
            Just(Conversion::Number),
            Just(Conversion::EpochSeconds),
            Just(Conversion::EpochMillis),
            Just(Conversion::JsonString),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Every value, for every column kind and conversion, converts or is refused.
        #[test]
        fn never_panics(attr in any_attr(), kind in any_kind(), conversion in any_conversion()) {
            let _ = to_sql(&attr, &kind, conversion);
        }

        /// A temporal value that converts is one MariaDB can hold.
        #[test]
        fn accepted_dates_are_in_range(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}", secs in any::<i64>()) {
            if let Ok(Value::Bytes(bytes)) = to_sql(&Attr::S(text.clone()), &ColumnKind::Date, Conversion::Native) {
                let year: u32 = text[..4].parse().unwrap();
                prop_assert!((1000..=9999).contains(&year));
                prop_assert_eq!(bytes, text.into_bytes());
            }
            let epoch = to_sql(&Attr::N(secs.to_string()), &ColumnKind::DateTime { fsp: 0 }, Conversion::EpochSeconds);
            prop_assert_eq!(epoch.is_ok(), EPOCH_RANGE.contains(&secs));
        }
    }
}

/// Arbitrary attribute values, as an application may write them.
#[cfg(test)]
pub mod strategies {
    use proptest::prelude::*;

    use crate::view::value::Attr;

    pub fn any_attr() -> impl Strategy<Value = Attr> {
        let text = prop_oneof![
            any::<String>(),
            "[0-9]{1,45}",
            "-?[0-9]{1,20}(\\.[0-9]{0,10})?",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,8})?)?Z?",
            "-?[0-9]{1,4}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,8})?",
            "[年月日0-9:.T-]{0,12}",
        ];
        let leaf = prop_oneof![
            text.clone().prop_map(Attr::S),
            text.clone().prop_map(Attr::N),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Attr::B),
            proptest::collection::vec(text, 0..4).prop_map(|items: Vec<String>| Attr::Ss(
                items.into_iter().map(Into::into).collect()
            )),
            any::<bool>().prop_map(Attr::Bool),
            Just(Attr::Null),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Attr::L),
                proptest::collection::btree_map("[a-z]{1,3}", inner, 0..4).prop_map(Attr::M),
            ]
        })
    }
}
