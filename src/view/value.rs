//! Decoded SQL values ([`Cell`]), DynamoDB values ([`Attr`]) and the conversions between them
//! that VIEWS.md's value table and `as` rules specify.
//!
//! Everything here is pure. A value that DynamoDB cannot hold (a number out of range, more
//! than 38 significant digits, text that `as = "number"` cannot parse) is a [`ValueError`]; the
//! caller sends the row's item to the dead-letter store with it.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One column value as decoded from the binlog (or read by a query), typed by its column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    UInt(u64),
    /// Exact decimal text with exactly the column's declared scale.
    Decimal(String),
    Float(f32),
    Double(f64),
    /// CHAR, VARCHAR, TEXT (and ENUM labels, see [`Cell::Enum`]).
    Text(String),
    Bytes(Vec<u8>),
    Enum(String),
    /// SET labels in definition order.
    Set(Vec<String>),
    Bit(u64),
    Year(u16),
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    DateTime(DateTime),
    /// Seconds and microseconds since the Unix epoch, UTC.
    Timestamp {
        secs: i64,
        micros: u32,
        fsp: u8,
    },
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
        fsp: u8,
    },
    Json(serde_json::Value),
    /// `0000-00-00` and friends: the attribute is left out and counted.
    ZeroDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
    pub fsp: u8,
}

/// A DynamoDB attribute value, independent of the SDK so the view engine stays pure.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    S(String),
    N(String),
    B(Vec<u8>),
    Ss(Vec<String>),
    M(BTreeMap<String, Attr>),
    L(Vec<Attr>),
    Bool(bool),
    Null,
}

/// `as` conversions of VIEWS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    Native,
    String,
    Number,
    EpochSeconds,
    EpochMillis,
    JsonString,
}

impl Conversion {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "string" => Self::String,
            "number" => Self::Number,
            "epoch_seconds" => Self::EpochSeconds,
            "epoch_millis" => Self::EpochMillis,
            "json_string" => Self::JsonString,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "number {0} is outside what DynamoDB can hold (38 significant digits, 1E-130 to 1E+126)"
    )]
    NumberOutOfRange(String),
    /// The text, shortened to a preview when long (see [`preview`]).
    #[error("text {0} does not parse as a number")]
    NotANumber(String),
    #[error("conversion {conversion:?} does not apply to a {kind} value")]
    Inapplicable {
        conversion: Conversion,
        kind: &'static str,
    },
    #[error("binary value is not UTF-8 text")]
    NotUtf8,
}

impl Cell {
    pub fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "NULL",
            Cell::Int(_) | Cell::UInt(_) => "integer",
            Cell::Decimal(_) => "decimal",
            Cell::Float(_) | Cell::Double(_) => "float",
            Cell::Text(_) => "text",
            Cell::Bytes(_) => "binary",
            Cell::Enum(_) => "enum",
            Cell::Set(_) => "set",
            Cell::Bit(_) => "bit",
            Cell::Year(_) => "year",
            Cell::Date { .. } => "date",
            Cell::DateTime(_) => "datetime",
            Cell::Timestamp { .. } => "timestamp",
            Cell::Time { .. } => "time",
            Cell::Json(_) => "json",
            Cell::ZeroDate => "zero date",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }

    /// The value as `as = "string"` renders it; `None` for NULL and zero dates.
    pub fn to_text(&self) -> Result<Option<String>, ValueError> {
        Ok(Some(match self {
            Cell::Null | Cell::ZeroDate => return Ok(None),
            Cell::Int(v) => v.to_string(),
            Cell::UInt(v) => v.to_string(),
            Cell::Decimal(v) => v.clone(),
            Cell::Float(v) => format_f32(*v),
            Cell::Double(v) => format_f64(*v),
            Cell::Text(v) | Cell::Enum(v) => v.clone(),
            Cell::Bytes(v) => String::from_utf8(v.clone()).map_err(|_| ValueError::NotUtf8)?,
            Cell::Set(labels) => labels.join(","),
            Cell::Bit(v) => v.to_string(),
            Cell::Year(v) => v.to_string(),
            Cell::Date { year, month, day } => format!("{year:04}-{month:02}-{day:02}"),
            Cell::DateTime(dt) => format_datetime(dt),
            Cell::Timestamp { secs, micros, fsp } => {
                let dt = datetime_from_epoch(*secs, *micros, *fsp);
                let mut text = format_datetime(&dt);
                text.push('Z');
                text
            }
            Cell::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
                fsp,
            } => {
                let sign = if *negative { "-" } else { "" };
                let mut text = format!("{sign}{hours:02}:{minutes:02}:{seconds:02}");
                push_fraction(&mut text, *micros, *fsp);
                text
            }
            Cell::Json(v) => v.to_string(),
        }))
    }

    /// The DynamoDB value under a conversion; `Ok(None)` means the attribute is absent.
    pub fn to_attr(&self, conversion: Conversion) -> Result<Option<Attr>, ValueError> {
        if matches!(self, Cell::Null | Cell::ZeroDate) {
            return Ok(None);
        }
        match conversion {
            Conversion::Native => self.native_attr(),
            Conversion::String => Ok(self.to_text()?.map(Attr::S)),
            Conversion::Number => self.number_attr(conversion),
            Conversion::EpochSeconds | Conversion::EpochMillis => {
                let Some((secs, micros)) = self.epoch() else {
                    return Err(self.inapplicable(conversion));
                };
                let text = if conversion == Conversion::EpochSeconds {
                    decimal_from_parts(secs, micros, 6)
                } else {
                    decimal_from_parts(secs * 1000 + i64::from(micros / 1000), micros % 1000, 3)
                };
                Ok(Some(Attr::N(text)))
            }
            Conversion::JsonString => match self {
                Cell::Json(v) => Ok(Some(Attr::S(v.to_string()))),
                _ => Err(self.inapplicable(conversion)),
            },
        }
    }

    fn inapplicable(&self, conversion: Conversion) -> ValueError {
        ValueError::Inapplicable {
            conversion,
            kind: self.kind(),
        }
    }

    fn native_attr(&self) -> Result<Option<Attr>, ValueError> {
        Ok(Some(match self {
            Cell::Null | Cell::ZeroDate => return Ok(None),
            Cell::Int(_) | Cell::UInt(_) | Cell::Bit(_) | Cell::Year(_) => {
                Attr::N(self.to_text()?.unwrap_or_default())
            }
            Cell::Decimal(v) => Attr::N(plain_decimal(&checked_number(v)?)),
            Cell::Float(_) | Cell::Double(_) => {
                Attr::N(checked_number(&self.to_text()?.unwrap_or_default())?)
            }
            Cell::Text(v) | Cell::Enum(v) => Attr::S(v.clone()),
            Cell::Bytes(v) => Attr::B(v.clone()),
            Cell::Set(labels) if labels.is_empty() => return Ok(None),
            Cell::Set(labels) => Attr::Ss(labels.clone()),
            Cell::Date { .. } | Cell::DateTime(_) | Cell::Timestamp { .. } | Cell::Time { .. } => {
                Attr::S(self.to_text()?.unwrap_or_default())
            }
            Cell::Json(v) => json_to_attr(v)?,
        }))
    }

    fn number_attr(&self, conversion: Conversion) -> Result<Option<Attr>, ValueError> {
        match self {
            Cell::Int(_)
            | Cell::UInt(_)
            | Cell::Decimal(_)
            | Cell::Float(_)
            | Cell::Double(_)
            | Cell::Bit(_)
            | Cell::Year(_) => self.native_attr(),
            Cell::Text(text) | Cell::Enum(text) => {
                let trimmed = text.trim();
                if !is_number_text(trimmed) {
                    return Err(ValueError::NotANumber(preview(text)));
                }
                Ok(Some(Attr::N(checked_number(trimmed)?)))
            }
            _ => Err(self.inapplicable(conversion)),
        }
    }

    /// Seconds and microseconds since the epoch for DATE, DATETIME (read as UTC) and TIMESTAMP.
    fn epoch(&self) -> Option<(i64, u32)> {
        match self {
            Cell::Date { year, month, day } => {
                Some((days_from_civil(*year, *month, *day) * 86_400, 0))
            }
            Cell::DateTime(dt) => {
                let days = days_from_civil(dt.year, dt.month, dt.day);
                let secs = days * 86_400
                    + i64::from(dt.hour) * 3600
                    + i64::from(dt.minute) * 60
                    + i64::from(dt.second);
                Some((secs, dt.micros))
            }
            Cell::Timestamp { secs, micros, .. } => Some((*secs, *micros)),
            _ => None,
        }
    }
}

/// `secs.frac` with `frac_digits` digits of `frac`, trailing zeros (and a bare dot) removed.
fn decimal_from_parts(whole: i64, frac: u32, frac_digits: usize) -> String {
    let mut text = whole.to_string();
    if frac != 0 {
        let digits = format!("{frac:0frac_digits$}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text
}

fn push_fraction(text: &mut String, micros: u32, fsp: u8) {
    if fsp == 0 {
        return;
    }
    let digits = format!("{micros:06}");
    text.push('.');
    text.push_str(&digits[..usize::from(fsp.min(6))]);
}

fn format_datetime(dt: &DateTime) -> String {
    let mut text = String::with_capacity(26);
    let _ = write!(
        text,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second
    );
    push_fraction(&mut text, dt.micros, dt.fsp);
    text
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: u16, month: u8, day: u8) -> i64 {
    let (year, month, day) = (i64::from(year), i64::from(month), i64::from(day));
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn datetime_from_epoch(secs: i64, micros: u32, fsp: u8) -> DateTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    DateTime {
        year: year as u16,
        month: month as u8,
        day: day as u8,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
        micros,
        fsp,
    }
}

/// A value for a message: quoted, and cut after 64 bytes with its length when longer (an error
/// message must not carry a 500 KB value).
pub fn preview(text: &str) -> String {
    const KEEP: usize = 64;
    if text.len() <= KEEP {
        return format!("{text:?}");
    }
    let mut end = KEEP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..end], text.len())
}

/// Pads or trims DECIMAL text to exactly `scale` fraction digits.
pub fn with_scale(text: &str, scale: u8) -> String {
    let scale = usize::from(scale);
    let (int_part, frac) = text.split_once('.').unwrap_or((text, ""));
    if scale == 0 {
        return int_part.to_string();
    }
    let mut out = String::with_capacity(int_part.len() + 1 + scale);
    out.push_str(int_part);
    out.push('.');
    out.push_str(&frac[..frac.len().min(scale)]);
    for _ in frac.len()..scale {
        out.push('0');
    }
    out
}

/// Shortest text that round-trips as a 32-bit float.
pub fn format_f32(v: f32) -> String {
    let abs = v.abs();
    if abs != 0.0 && !(1e-7..1e21).contains(&abs) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Shortest text that round-trips as a 64-bit float.
pub fn format_f64(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && !(1e-7..1e21).contains(&abs) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// `[-+]digits[.digits][e[-+]digits]`, the literal forms MySQL and DynamoDB both accept.
pub fn is_number_text(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() && frac_part.is_empty() {
        return false;
    }
    if !digits_ok(int_part) || !digits_ok(frac_part) {
        return false;
    }
    match exponent {
        None => true,
        Some(exp) => {
            let exp = exp.strip_prefix(['-', '+']).unwrap_or(exp);
            !exp.is_empty() && digits_ok(exp)
        }
    }
}

/// A DECIMAL's text without trailing fraction zeros (`12.50` → `12.5`, `-0.00` → `0`), as
/// DynamoDB itself normalises numbers (DynamoDB Local does not inside lists and maps).
pub fn plain_decimal(text: &str) -> String {
    if !text.contains('.') || text.contains(['e', 'E']) {
        return text.to_string();
    }
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    match trimmed {
        "-0" | "" | "-" => "0".to_string(),
        other => other.to_string(),
    }
}

/// Checks that DynamoDB can hold the number: at most 38 significant digits and a magnitude
/// between 1E-130 and 9.99…E+125. Returns the text unchanged.
pub fn checked_number(text: &str) -> Result<String, ValueError> {
    let out_of_range = || ValueError::NumberOutOfRange(text.to_string());
    let number = DecimalNumber::parse(text).ok_or_else(out_of_range)?;
    if number.digits.is_empty() {
        return Ok(text.to_string()); // zero
    }
    // Decimal exponent of the leading significant digit.
    let magnitude = number.point - 1;
    if number.digits.len() > 38 || !(-130..=125).contains(&magnitude) {
        return Err(out_of_range());
    }
    Ok(text.to_string())
}

/// A decimal number in text, normalised: sign, significant digits without leading or trailing
/// zeros, and the decimal point's place counted from the first digit (`12.5` → 125, point 2;
/// zero has no digits).
#[derive(Debug, PartialEq, Eq)]
pub struct DecimalNumber {
    pub negative: bool,
    pub digits: Vec<u8>,
    pub point: i64,
}

impl DecimalNumber {
    pub fn parse(text: &str) -> Option<DecimalNumber> {
        if !is_number_text(text) {
            return None;
        }
        let (negative, body) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(at) => (&body[..at], body[at + 1..].parse::<i64>().ok()?),
            None => (body, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let mut digits: Vec<u8> = int_part
            .bytes()
            .chain(frac_part.bytes())
            .map(|b| b - b'0')
            .collect();
        let mut point = int_part.len() as i64 + exponent;
        while digits.first() == Some(&0) {
            digits.remove(0);
            point -= 1;
        }
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Some(DecimalNumber {
                negative: false,
                digits,
                point: 0,
            });
        }
        Some(DecimalNumber {
            negative,
            digits,
            point,
        })
    }

    fn cmp_magnitude(&self, other: &DecimalNumber) -> Ordering {
        match (self.digits.is_empty(), other.digits.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        self.point
            .cmp(&other.point)
            .then_with(|| self.digits.cmp(&other.digits))
    }
}

impl Ord for DecimalNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for DecimalNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub fn json_to_attr(value: &serde_json::Value) -> Result<Attr, ValueError> {
    Ok(match value {
        serde_json::Value::Null => Attr::Null,
        serde_json::Value::Bool(b) => Attr::Bool(*b),
        serde_json::Value::Number(n) => Attr::N(checked_number(&n.to_string())?),
        serde_json::Value::String(s) => Attr::S(s.clone()),
        serde_json::Value::Array(items) => {
            Attr::L(items.iter().map(json_to_attr).collect::<Result<_, _>>()?)
        }
        serde_json::Value::Object(map) => {
            let mut out = BTreeMap::new();
            for (k, v) in map {
                out.insert(k.clone(), json_to_attr(v)?);
            }
            Attr::M(out)
        }
    })
}

impl Attr {
    /// Approximate stored size in bytes, by DynamoDB's accounting (names + values).
    pub fn size(&self) -> usize {
        match self {
            Attr::S(s) | Attr::N(s) => s.len(),
            Attr::B(b) => b.len(),
            Attr::Ss(items) => items.iter().map(String::len).sum(),
            Attr::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, v)| k.len() + v.size() + 1)
                    .sum::<usize>()
            }
            Attr::L(items) => 3 + items.iter().map(|v| v.size() + 1).sum::<usize>(),
            Attr::Bool(_) | Attr::Null => 1,
        }
    }

    /// Plain JSON (no AttributeValue wrappers), for logs, dead letters and the HTTP API.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Attr::S(s) => Value::String(s.clone()),
            Attr::N(n) => serde_json::from_str::<serde_json::Number>(n)
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(n.clone())),
            Attr::B(b) => Value::String(b.iter().fold(String::new(), |mut acc, byte| {
                let _ = write!(acc, "{byte:02x}");
                acc
            })),
            Attr::Ss(items) => Value::Array(items.iter().cloned().map(Value::String).collect()),
            Attr::M(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
            Attr::L(items) => Value::Array(items.iter().map(Attr::to_json).collect()),
            Attr::Bool(b) => Value::Bool(*b),
            Attr::Null => Value::Null,
        }
    }
}

crate::error::definite_errors!(ValueError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn temporal_forms() {
        let dt = DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour: 13,
            minute: 14,
            second: 15,
            micros: 123_000,
            fsp: 3,
        };
        assert_eq!(
            Cell::DateTime(dt).to_text().unwrap().unwrap(),
            "2024-02-29T13:14:15.123"
        );
        let ts = Cell::Timestamp {
            secs: 1_709_212_455,
            micros: 123_000,
            fsp: 3,
        };
        assert_eq!(ts.to_text().unwrap().unwrap(), "2024-02-29T13:14:15.123Z");
        assert_eq!(
            ts.to_attr(Conversion::EpochSeconds).unwrap(),
            Some(Attr::N("1709212455.123".into()))
        );
        assert_eq!(
            ts.to_attr(Conversion::EpochMillis).unwrap(),
            Some(Attr::N("1709212455123".into()))
        );
        assert_eq!(
            Cell::DateTime(dt)
                .to_attr(Conversion::EpochSeconds)
                .unwrap(),
            Some(Attr::N("1709212455.123".into()))
        );
        let time = Cell::Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
            fsp: 0,
        };
        assert_eq!(time.to_text().unwrap().unwrap(), "-838:59:59");
        let time = Cell::Time {
            negative: false,
            hours: 1,
            minutes: 2,
            seconds: 3,
            micros: 500_000,
            fsp: 2,
        };
        assert_eq!(time.to_text().unwrap().unwrap(), "01:02:03.50");
    }

    #[test]
    fn numbers() {
        assert_eq!(format_f32(2.71), "2.71");
        assert_eq!(format_f32(0.1), "0.1");
        assert_eq!(format_f64(0.1 + 0.2), "0.30000000000000004");
        assert!(checked_number("1e126").is_err());
        assert!(checked_number("9.9e125").is_ok());
        assert!(checked_number("1e-130").is_ok());
        assert!(checked_number("1e-131").is_err());
        assert!(checked_number("123456789012345678901234567890123456789").is_err());
        assert!(checked_number("12345678901234567890123456789012345678").is_ok());
        assert!(checked_number("0.000000").is_ok());
        assert!(checked_number("-12.500000").is_ok());
        assert_eq!(
            Cell::Text(" 42 ".into())
                .to_attr(Conversion::Number)
                .unwrap(),
            Some(Attr::N("42".into()))
        );
        assert!(Cell::Text("4x".into()).to_attr(Conversion::Number).is_err());
        assert_eq!(
            Cell::UInt(u64::MAX).to_attr(Conversion::Native).unwrap(),
            Some(Attr::N("18446744073709551615".into()))
        );
    }

    #[test]
    fn sets_and_nulls() {
        assert_eq!(Cell::Set(vec![]).to_attr(Conversion::Native).unwrap(), None);
        assert_eq!(
            Cell::Set(vec!["a".into(), "b".into()])
                .to_attr(Conversion::String)
                .unwrap(),
            Some(Attr::S("a,b".into()))
        );
        assert_eq!(Cell::Null.to_attr(Conversion::String).unwrap(), None);
        assert_eq!(Cell::ZeroDate.to_attr(Conversion::Native).unwrap(), None);
        assert_eq!(
            Cell::Json(serde_json::Value::Null)
                .to_attr(Conversion::Native)
                .unwrap(),
            Some(Attr::Null)
        );
        assert!(Cell::Int(1).to_attr(Conversion::JsonString).is_err());
    }

    proptest! {
        #[test]
        fn f64_text_round_trips(v in proptest::num::f64::NORMAL) {
            let text = format_f64(v);
            prop_assert_eq!(text.parse::<f64>().unwrap(), v);
        }

        #[test]
        fn f32_text_round_trips(v in proptest::num::f32::NORMAL) {
            let text = format_f32(v);
            prop_assert_eq!(text.parse::<f32>().unwrap(), v);
        }

        #[test]
        fn epoch_civil_round_trip(secs in -62_135_596_800i64..253_402_300_799i64) {
            let dt = datetime_from_epoch(secs, 0, 0);
            let back = days_from_civil(dt.year, dt.month, dt.day) * 86_400
                + i64::from(dt.hour) * 3600 + i64::from(dt.minute) * 60 + i64::from(dt.second);
            prop_assert_eq!(back, secs);
        }

        #[test]
        fn integer_text_is_checked_number(v in any::<i64>()) {
            prop_assert!(checked_number(&v.to_string()).is_ok());
            prop_assert!(is_number_text(&v.to_string()));
        }
    }
}
