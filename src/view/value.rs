//! Decoded SQL values ([`Cell`]), DynamoDB values ([`Attr`]) and the conversions between them
//! that VIEWS.md's value table and `as` rules specify.
//!
//! Everything here is pure. A value that DynamoDB cannot hold (a number out of range, more
//! than 38 significant digits, text that `as = "number"` cannot parse) is a [`ValueError`]; the
//! caller sends the row's item to the dead-letter store with it.

use super::row::Label;
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
    Enum(Label),
    /// SET labels in definition order.
    Set(Vec<Label>),
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

impl Cell {
    /// About what the value holds in memory, in bytes: its size, and its text, bytes or
    /// document (walked: JSON columns are the rare large ones).
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Cell>()
            + match self {
                Cell::Text(text) | Cell::Decimal(text) => text.len(),
                Cell::Bytes(bytes) => bytes.len(),
                Cell::Set(labels) => labels.len() * std::mem::size_of::<Label>(),
                Cell::Json(document) => json_weight(document),
                _ => 0,
            }
    }
}

fn json_weight(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    std::mem::size_of::<Value>()
        + match value {
            Value::String(text) => text.len(),
            Value::Array(values) => values.iter().map(json_weight).sum(),
            Value::Object(map) => map.iter().map(|(k, v)| k.len() + json_weight(v)).sum(),
            _ => 0,
        }
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
    Ss(Vec<Label>),
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

    /// The text of a CHAR, VARCHAR, TEXT or ENUM value, as it is held.
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(text) => Some(text),
            Cell::Enum(label) => Some(label),
            _ => None,
        }
    }

    /// The value as `as = "string"` renders it; `None` for NULL and zero dates.
    pub fn to_text(&self) -> Result<Option<String>, ValueError> {
        Ok(Some(match self {
            Cell::Null | Cell::ZeroDate => return Ok(None),
            Cell::Int(v) => itoa::Buffer::new().format(*v).to_string(),
            Cell::UInt(v) => itoa::Buffer::new().format(*v).to_string(),
            Cell::Decimal(v) => v.clone(),
            Cell::Float(v) => format_f32(*v),
            Cell::Double(v) => format_f64(*v),
            Cell::Text(v) => v.clone(),
            Cell::Enum(label) => String::from(&**label),
            Cell::Bytes(v) => String::from_utf8(v.clone()).map_err(|_| ValueError::NotUtf8)?,
            Cell::Set(labels) => labels.join(","),
            Cell::Bit(v) => v.to_string(),
            Cell::Year(v) => v.to_string(),
            Cell::Date { year, month, day } => format!("{year:04}-{month:02}-{day:02}"),
            Cell::DateTime(dt) => format_datetime(dt),
            Cell::Timestamp { secs, micros, fsp } => {
                let dt = checked_datetime_from_epoch(*secs, *micros, *fsp)
                    .ok_or_else(|| self.out_of_range())?;
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
            Conversion::EpochSeconds | Conversion::EpochMillis => self.epoch_attr(conversion),
            Conversion::JsonString => match self {
                Cell::Json(v) => Ok(Some(Attr::S(v.to_string()))),
                _ => Err(self.inapplicable(conversion)),
            },
        }
    }

    /// A temporal value no instant of the years 0000..=9999 has (month 13, 30 February, hour 24,
    /// a million microseconds, a TIMESTAMP beyond 9999), named by its fields.
    fn out_of_range(&self) -> ValueError {
        ValueError::NumberOutOfRange(format!("{self:?}"))
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
            Cell::Decimal(v) => Attr::N(super::number::decimal_number(v)?),
            Cell::Double(v) if super::number::double_in_range(*v) => Attr::N(format_f64(*v)),
            Cell::Float(_) | Cell::Double(_) => {
                let text = self.to_text()?.unwrap_or_default();
                check_number(&text)?;
                Attr::N(text)
            }
            Cell::Text(v) => Attr::S(v.clone()),
            Cell::Enum(label) => Attr::S(String::from(&**label)),
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
            Cell::Text(_) | Cell::Enum(_) => {
                let text = self.text().unwrap_or_default();
                let trimmed = text.trim();
                if !is_number_text(trimmed) {
                    return Err(ValueError::NotANumber(preview(text)));
                }
                Ok(Some(Attr::N(checked_number(trimmed)?)))
            }
            _ => Err(self.inapplicable(conversion)),
        }
    }

    /// `epoch_seconds` (up to six fraction digits) or `epoch_millis` (up to three) of DATE,
    /// DATETIME (read as UTC) and TIMESTAMP: the exact number of the instant, whatever the
    /// instant (an `i128` of microseconds holds every `i64` second), so 1969-12-31T23:59:59.5 is
    /// `-0.5` seconds.
    fn epoch_attr(&self, conversion: Conversion) -> Result<Option<Attr>, ValueError> {
        let micros = self
            .epoch_micros()?
            .ok_or_else(|| self.inapplicable(conversion))?;
        let frac_digits = if conversion == Conversion::EpochSeconds {
            6
        } else {
            3
        };
        Ok(Some(Attr::N(decimal_from_parts(micros, frac_digits))))
    }

    /// Microseconds since the epoch for DATE, DATETIME (read as UTC) and TIMESTAMP; `Ok(None)`
    /// for other kinds. A field outside its calendar range is an error (see
    /// [`Cell::out_of_range`]), not the number of some other instant.
    pub fn epoch_micros(&self) -> Result<Option<i128>, ValueError> {
        let (secs, micros) = match self {
            Cell::Date { year, month, day } => {
                let days = checked_days_from_civil(*year, *month, *day);
                (days.map(|days| days * 86_400), 0)
            }
            Cell::DateTime(dt) => (checked_datetime_secs(dt), dt.micros),
            Cell::Timestamp { secs, micros, .. } => (Some(*secs), *micros),
            _ => return Ok(None),
        };
        match secs {
            Some(secs) if micros < 1_000_000 => {
                Ok(Some(i128::from(secs) * 1_000_000 + i128::from(micros)))
            }
            _ => Err(self.out_of_range()),
        }
    }
}

/// Whole seconds since the epoch of a DATETIME read as UTC; `None` when a field is outside its
/// range (see [`checked_days_from_civil`]; hour 0..=23, minute and second 0..=59).
fn checked_datetime_secs(dt: &DateTime) -> Option<i64> {
    let days = checked_days_from_civil(dt.year, dt.month, dt.day)?;
    if dt.hour > 23 || dt.minute > 59 || dt.second > 59 {
        return None;
    }
    Some(
        days * 86_400
            + i64::from(dt.hour) * 3600
            + i64::from(dt.minute) * 60
            + i64::from(dt.second),
    )
}

/// The exact decimal text of `units / 10^frac_digits`: sign, whole part, and the fraction
/// without trailing zeros (and without a bare point): `(-500_000, 6)` → `-0.5`.
fn decimal_from_parts(units: i128, frac_digits: u32) -> String {
    // Written digit by digit rather than through `format!`: an epoch conversion runs for every
    // row of a view that has one (`benches/cpu.rs`). The callers' scales are 3 and 6.
    let scale = 10u128.pow(frac_digits);
    let magnitude = units.unsigned_abs();
    let (whole, mut frac) = (magnitude / scale, magnitude % scale);
    let mut out = String::with_capacity(24);
    if units < 0 {
        out.push('-');
    }
    out.push_str(u128_text(&mut itoa::Buffer::new(), whole));
    if frac != 0 {
        let mut width = frac_digits as usize;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        out.push('.');
        push_padded(&mut out, u128_text(&mut itoa::Buffer::new(), frac), width);
    }
    out
}

/// The digits of `value`, through `itoa`'s `u64` path when it fits one (a third of the cost of
/// its `u128` path, callgrind, `benches/cpu.rs`): the whole and fraction parts of epoch times
/// and of decimals made from units. Item versions are above 2^64 and do not come here.
#[inline]
pub fn u128_text(buffer: &mut itoa::Buffer, value: u128) -> &str {
    match u64::try_from(value) {
        Ok(small) => buffer.format(small),
        Err(_) => buffer.format(value),
    }
}

/// `digits` (no sign) left-padded with zeros to `width`.
fn push_padded(out: &mut String, digits: &str, width: usize) {
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// An integer's text as `format!("{value:0width$}")` writes it (the sign counts in the width).
pub fn push_integer(out: &mut String, value: impl itoa::Integer, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(value);
    match text.strip_prefix('-') {
        Some(digits) => {
            out.push('-');
            push_padded(out, digits, width.saturating_sub(1));
        }
        None => push_padded(out, text, width),
    }
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

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). Any
/// arguments compute without overflow, but the answer means something only for a valid date:
/// unchecked input goes through [`checked_days_from_civil`].
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

/// Days since 1970-01-01 of a valid proleptic Gregorian date; `None` for month 0 or 13+, day 0
/// or a day past the month's end (30 February, 29 February of a common year).
pub fn checked_days_from_civil(year: u16, month: u8, day: u8) -> Option<i64> {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let last = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    (1..=last)
        .contains(&day)
        .then(|| days_from_civil(year, month, day))
}

/// 0000-01-01T00:00:00Z in seconds since the epoch: the first instant a four-digit year writes.
pub const MIN_EPOCH_SECS: i64 = -62_167_219_200;
/// 9999-12-31T23:59:59Z in seconds since the epoch: the last instant a four-digit year writes.
pub const MAX_EPOCH_SECS: i64 = 253_402_300_799;

/// The UTC date and time of an instant; `None` outside the years 0000..=9999
/// ([`MIN_EPOCH_SECS`]..=[`MAX_EPOCH_SECS`]) or for `micros` of a whole second or more.
pub fn checked_datetime_from_epoch(secs: i64, micros: u32, fsp: u8) -> Option<DateTime> {
    if !(MIN_EPOCH_SECS..=MAX_EPOCH_SECS).contains(&secs) || micros >= 1_000_000 {
        return None;
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Some(DateTime {
        year: u16::try_from(year).ok()?,
        month: u8::try_from(month).ok()?,
        day: u8::try_from(day).ok()?,
        hour: u8::try_from(rem / 3600).ok()?,
        minute: u8::try_from(rem % 3600 / 60).ok()?,
        second: u8::try_from(rem % 60).ok()?,
        micros,
        fsp,
    })
}

/// The UTC date and time of an instant, for callers that keep to the years 0000..=9999 (as
/// writeback's range check does). Outside them the answer saturates at the first or last
/// second of that range (a whole second or more of `micros` carries into `secs` first): always
/// a real date, never a wrapped year. Use [`checked_datetime_from_epoch`] to be told instead.
pub fn datetime_from_epoch(secs: i64, micros: u32, fsp: u8) -> DateTime {
    let secs = secs
        .saturating_add(i64::from(micros / 1_000_000))
        .clamp(MIN_EPOCH_SECS, MAX_EPOCH_SECS);
    let first = DateTime {
        year: 0,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
        fsp,
    };
    checked_datetime_from_epoch(secs, micros % 1_000_000, fsp).unwrap_or(first)
}

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's algorithm; no
/// overflow for the day count of any `i64` second count).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
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

/// Pads or trims DECIMAL text to exactly `scale` fraction digits (characters, so text that is
/// not ASCII is cut between characters, never inside one).
pub fn with_scale(text: &str, scale: u8) -> String {
    let scale = usize::from(scale);
    // The point found byte by byte: cheaper for a short text than `split_once`'s searcher, and
    // an ASCII byte is always at a character boundary.
    let (int_part, frac) = match text.bytes().position(|byte| byte == b'.') {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, ""),
    };
    if scale == 0 {
        return int_part.to_string();
    }
    if frac.len() == scale && frac.is_ascii() {
        return text.to_string(); // as the binlog gives a DECIMAL: nothing to pad or cut
    }
    // The first `scale` characters of the fraction, as one slice (DECIMAL text is ASCII, but a
    // column read as text may not be): copied at once, not character by character.
    let kept = frac
        .char_indices()
        .nth(scale)
        .map_or(frac, |(end, _)| &frac[..end]);
    let pad = scale - kept.chars().count();
    let mut out = String::with_capacity(int_part.len() + 1 + kept.len() + pad);
    out.push_str(int_part);
    out.push('.');
    out.push_str(kept);
    out.extend(std::iter::repeat_n('0', pad));
    out
}

/// Shortest text that round-trips as a 32-bit float; when several shortest texts do, the one
/// closest to the float's exact value, and of two equally close the one whose last digit is
/// even (348261.125 → `348261.12`, where Rust's `{}` writes `348261.13`). Exponent form
/// (`1.5e-8`) outside 1e-7..1e21, plain (`0.001`, `1000`) inside; zero, infinities and NaN as
/// Rust writes them.
pub fn format_f32(v: f32) -> String {
    format_f32_from(v, ryu::Buffer::new().format(v.abs()))
}

/// [`format_f32`] from a shortest round-trip text of `|v|` (ryu's, or Rust's `{:e}`: any form
/// [`shortest_parts`] reads).
fn format_f32_from(v: f32, shortest: &str) -> String {
    let abs = v.abs();
    let sci = abs != 0.0 && !(1e-7..1e21).contains(&abs);
    // An f32 widens to f64 exactly, so the f64's exact value is the f32's.
    closest_shortest(f64::from(abs), shortest, |digits, exp| {
        format!("{digits}e{exp}").parse::<f32>() == Ok(abs)
    })
    .map(|(digits, exp)| float_text(v.is_sign_negative(), digits, exp, sci))
    .unwrap_or_else(|| rust_text_f32(v))
}

/// Shortest text that round-trips as a 64-bit float, by the rules of [`format_f32`].
pub fn format_f64(v: f64) -> String {
    let abs = v.abs();
    if let Some((digits, exp)) = few_fraction_digits(abs) {
        let sci = !(1e-7..1e21).contains(&abs);
        return float_text(v.is_sign_negative(), digits, exp, sci);
    }
    // ryu's shortest digits: written into a stack buffer, faster than `{:e}` into a String.
    format_f64_from(v, ryu::Buffer::new().format(abs))
}

/// The digits [`closest_shortest`] gives for a float of few fraction digits (2.75, 1234.5),
/// found in a few multiplications (a fifth of the cost of ryu's digits and the checks after
/// them, `benches/cpu.rs`): the first count of fraction digits `k` at which the integer nearest
/// to `abs × 10^k` reads back as the float. That integer is then the closest at `k`, and no
/// shorter text reads back: the floats that round to `abs` form an interval around it,
/// symmetric except at a power of two, so where any integer at a smaller `k` read back, the
/// nearest would have too. `None` (the general way then decides) for a power of two (kept out
/// to be safe: no power of two differs, `every_power_of_two_has_its_general_text`), for zero
/// and non-finite floats, past 2^40 (where `abs × 10^k` might not round to the nearest integer)
/// and where both integers around a product near a half read back.
fn few_fraction_digits(abs: f64) -> Option<(u64, i64)> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    const LIMIT: f64 = (1u64 << 40) as f64;
    if !abs.is_normal() || abs.to_bits() & ((1 << 52) - 1) == 0 {
        return None;
    }
    for (k, power) in (0i64..).zip(POW10) {
        let scaled = abs * power; // within half an ulp of the exact product: below 2^-13
        if scaled >= LIMIT {
            return None;
        }
        // Positive and below 2^40: the cast truncates to the floor, and the fraction is exact
        // (no call to libm's `floor` and `round`, which this target does not inline).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let floor = scaled as u64;
        #[allow(clippy::cast_precision_loss)] // exact: below 2^40
        let fraction = scaled - floor as f64;
        let reads_back = |digits: u64| digits != 0 && exact_f64(digits, -k) == Some(abs);
        if (fraction - 0.5).abs() >= 1.0 / 1024.0 {
            let nearest = floor + u64::from(fraction > 0.5);
            if reads_back(nearest) {
                return Some((nearest, -k));
            }
            continue;
        }
        // Near a half (27.5 for 2.75 at one digit): the nearest integer is one of the two
        // around; when neither reads back no integer at this `k` does.
        match (reads_back(floor), reads_back(floor + 1)) {
            (false, false) => continue,
            (true, false) => return Some((floor, -k)),
            (false, true) => return Some((floor + 1, -k)),
            (true, true) => return None,
        }
    }
    None
}

/// [`format_f64`] from a shortest round-trip text of `|v|`, as [`format_f32_from`].
fn format_f64_from(v: f64, shortest: &str) -> String {
    let abs = v.abs();
    let sci = abs != 0.0 && !(1e-7..1e21).contains(&abs);
    closest_shortest(abs, shortest, |digits, exp| {
        exact_f64(digits, exp)
            .unwrap_or_else(|| format!("{digits}e{exp}").parse::<f64>().unwrap_or(f64::NAN))
            == abs
    })
    .map(|(digits, exp)| float_text(v.is_sign_negative(), digits, exp, sci))
    .unwrap_or_else(|| rust_text_f64(v))
}

/// Rust's own shortest text in the forms of [`format_f32`] (its last digit rounded half up).
fn rust_text_f32(v: f32) -> String {
    let abs = v.abs();
    if abs != 0.0 && !(1e-7..1e21).contains(&abs) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Rust's own shortest text in the forms of [`format_f64`].
fn rust_text_f64(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && !(1e-7..1e21).contains(&abs) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// The shortest round-trip digits of a finite, positive float `abs` as `(digits, exp)`, the
/// value `digits × 10^exp`: the closest to `abs` of those that read back as the float, an exact
/// tie to the even digit. A shortest round-trip text `shortest` gives the digit count (any of
/// the shortest: which one does not matter); the closeness is decided on the float's exact
/// decimal value, never in floating point (which cannot see a tie). `round_trips` says whether
/// a text reads back as the float. `None` for zero and non-finite floats (and, defensively,
/// for anything unexpected).
fn closest_shortest(
    abs: f64,
    shortest: &str,
    round_trips: impl Fn(u64, i64) -> bool,
) -> Option<(u64, i64)> {
    if abs == 0.0 || !abs.is_finite() {
        return None;
    }
    let (rust_digits, exp) = shortest_parts(shortest)?;
    // The digit values that round-trip are consecutive: when neither neighbour of Rust's does,
    // Rust's is the only shortest text and nothing needs the exact value.
    let neighbour = |digits: Option<u64>| digits.is_some_and(|d| round_trips(d, exp));
    if !neighbour(rust_digits.checked_sub(1)) && !neighbour(rust_digits.checked_add(1)) {
        return Some((rust_digits, exp));
    }
    let exact = DecimalNumber::parse(&exact_text(abs))?;
    let nearest = round_half_even(&exact, exp)?;
    nearest_round_trip(nearest, rust_digits, exp, round_trips)
}

/// `3.4826113e5` → `(34826113, -2)`, `1200.0` → `(12, 2)`: a positive number's significant
/// digits as an integer (no trailing zeros) and the exponent of the last one. Reads Rust's `{:e}`
/// and ryu's forms; `None` for anything else and for zero.
fn shortest_parts(text: &str) -> Option<(u64, i64)> {
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((mantissa, exp)) => (mantissa, exp.parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: u64 = 0;
    for byte in whole.bytes().chain(frac.bytes()) {
        if !byte.is_ascii_digit() {
            return None;
        }
        digits = digits
            .checked_mul(10)?
            .checked_add(u64::from(byte - b'0'))?;
    }
    if digits == 0 {
        return None;
    }
    let mut exp = exp.checked_sub(i64::try_from(frac.len()).ok()?)?;
    while digits.is_multiple_of(10) {
        digits /= 10;
        exp = exp.checked_add(1)?;
    }
    Some((digits, exp))
}

/// `digits × 10^exp` as the nearest f64, when one IEEE operation gives it exactly rounded:
/// both operands exact (`digits` ≤ 2^53, |exp| ≤ 22, every such power of ten is a float), as
/// Clinger's fast path reads decimals. `None` otherwise (then the text is parsed).
fn exact_f64(digits: u64, exp: i64) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    if digits > 1 << 53 {
        return None;
    }
    let power = *POW10.get(usize::try_from(exp.unsigned_abs()).ok()?)?;
    #[allow(clippy::cast_precision_loss)] // exact: at most 2^53
    let digits = digits as f64;
    Some(if exp >= 0 {
        digits * power
    } else {
        digits / power
    })
}

/// The exact decimal value of a finite float: every float is a whole number times 2^e, so its
/// expansion ends after -e fraction digits, e counted at its lowest set bit.
fn exact_text(v: f64) -> String {
    let bits = v.to_bits();
    let biased = i64::try_from((bits >> 52) & 0x7ff).unwrap_or(0);
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let lowest_bit = e + i64::from(mantissa.trailing_zeros());
    let places = usize::try_from(-lowest_bit).unwrap_or(0);
    format!("{v:.places$}")
}

/// `exact / 10^exp` rounded to a whole number, half to even, from the exact digits.
fn round_half_even(exact: &DecimalNumber, exp: i64) -> Option<u64> {
    // How many of the digits stand before the rounding place; none: below a tenth, rounds to 0.
    let Ok(whole_len) = usize::try_from(exact.point.checked_sub(exp)?) else {
        return Some(0);
    };
    let mut whole: u64 = 0;
    for at in 0..whole_len {
        let digit = exact.digits.get(at).copied().unwrap_or(0);
        whole = whole.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    let next = exact.digits.get(whole_len).copied().unwrap_or(0);
    let beyond = exact.digits.len() > whole_len.saturating_add(1);
    let up = next > 5 || (next == 5 && (beyond || whole % 2 == 1));
    whole.checked_add(u64::from(up))
}

/// Of the digit values that read back as the float at exponent `exp` (consecutive integers,
/// Rust's `rust_digits` among them), the one nearest to `nearest`: `nearest` itself when it
/// round-trips, else the first that does stepping from it toward Rust's (all of them lie on
/// that side). `None` if the two are implausibly far apart (then Rust's text stands).
fn nearest_round_trip(
    nearest: u64,
    rust_digits: u64,
    exp: i64,
    round_trips: impl Fn(u64, i64) -> bool,
) -> Option<(u64, i64)> {
    if nearest.abs_diff(rust_digits) > 20 {
        return None;
    }
    let mut digits = nearest;
    while digits != rust_digits && !round_trips(digits, exp) {
        digits = if digits < rust_digits {
            digits + 1
        } else {
            digits - 1
        };
    }
    Some((digits, exp))
}

/// `digits × 10^exp` in Rust's float forms: exponent form when `sci` (`1.5e-8`, `1e21`), plain
/// otherwise (`348261.12`, `0.001`, `1000`); `-` first when negative.
fn float_text(negative: bool, mut digits: u64, mut exp: i64, sci: bool) -> String {
    use std::fmt::Write as _;
    while digits != 0 && digits.is_multiple_of(10) {
        digits /= 10;
        exp = exp.saturating_add(1);
    }
    // The digits into a stack buffer, two at a time, as text (no UTF-8 check to read them).
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(digits);
    let mut out = String::with_capacity(digits.len() + 24);
    if negative {
        out.push('-');
    }
    let count = i64::try_from(digits.len()).unwrap_or(0);
    if sci {
        let lead = exp.saturating_add(count).saturating_sub(1);
        let (first, rest) = digits.split_at(digits.len().min(1));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(out, "e{lead}");
    } else if let Ok(zeros) = usize::try_from(exp) {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', zeros));
    } else {
        let frac = usize::try_from(exp.unsigned_abs()).unwrap_or(usize::MAX);
        match digits.len().checked_sub(frac) {
            Some(whole) if whole > 0 => {
                out.push_str(&digits[..whole]);
                out.push('.');
                out.push_str(&digits[whole..]);
            }
            _ => {
                out.push_str("0.");
                out.extend(std::iter::repeat_n('0', frac - digits.len()));
                out.push_str(digits);
            }
        }
    }
    out
}

/// `[-+]digits[.digits][e[-+]digits]`, the literal forms MySQL and DynamoDB both accept.
pub fn is_number_text(text: &str) -> bool {
    number_parts(text).is_some()
}

/// A number's text in its parts.
struct NumberParts<'a> {
    negative: bool,
    /// The digits before and after the point.
    int: &'a [u8],
    frac: &'a [u8],
    /// The exponent's text, its sign included; empty when there is none.
    exponent: &'a [u8],
}

/// `None` when the text is not a number: an optional sign, digits with at most one point (at
/// least one digit), then an optional `e`/`E`, an optional sign and at least one digit.
fn number_parts(text: &str) -> Option<NumberParts<'_>> {
    let bytes = text.as_bytes();
    let (negative, body) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let digits_from = |at: usize| at + body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let int_end = digits_from(0);
    let (frac_start, frac_end) = match body.get(int_end) {
        Some(b'.') => (int_end + 1, digits_from(int_end + 1)),
        _ => (int_end, int_end),
    };
    let (int, frac) = (&body[..int_end], &body[frac_start..frac_end]);
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let exponent: &[u8] = match body.get(frac_end) {
        None => &[],
        Some(b'e' | b'E') => {
            let exp = &body[frac_end + 1..];
            let digits = exp
                .strip_prefix(b"-")
                .or(exp.strip_prefix(b"+"))
                .unwrap_or(exp);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            exp
        }
        Some(_) => return None,
    };
    Some(NumberParts {
        negative,
        int,
        frac,
        exponent,
    })
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
/// between 1E-130 and 9.99…E+125. Returns the text unchanged. Any text is an answer, never a
/// panic: an exponent too large for an `i64` is out of range too.
pub fn checked_number(text: &str) -> Result<String, ValueError> {
    check_number(text).map(|()| text.to_string())
}

/// [`checked_number`] without the copy. Plain text (`[-]digits[.digits]`) of at most 38 digits
/// is in range without parsing: its magnitude lies between 1E-38 and 1E+38.
pub fn check_number(text: &str) -> Result<(), ValueError> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let mut digits = 0;
    let mut points = 0;
    let plain = body.bytes().all(|b| match b {
        b'0'..=b'9' => {
            digits += 1;
            true
        }
        b'.' => {
            points += 1;
            true
        }
        _ => false,
    });
    if plain && digits > 0 && digits <= 38 && points <= 1 {
        return Ok(());
    }
    let out_of_range = || ValueError::NumberOutOfRange(text.to_string());
    let number = DecimalNumber::parse(text).ok_or_else(out_of_range)?;
    if number.digits.is_empty() {
        return Ok(()); // zero
    }
    // The leading digit's exponent is `point - 1`, so -130..=125 is a point of -129..=126
    // (compared as the point itself: `point - 1` could overflow).
    if number.digits.len() > 38 || !(-129..=126).contains(&number.point) {
        return Err(out_of_range());
    }
    Ok(())
}

/// A decimal number in text, normalised: sign, significant digits without leading or trailing
/// zeros, and the decimal point's place counted from the first digit (`12.5` → 125, point 2;
/// zero has no digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalNumber {
    pub negative: bool,
    pub digits: Vec<u8>,
    pub point: i64,
}

impl DecimalNumber {
    /// `None` for text that is not a number (see [`is_number_text`]) and for a number whose point
    /// does not fit an `i64` (an exponent beyond ±9.2E18): never a wrapped or clamped point.
    /// Zero is zero whatever its exponent, as long as the exponent itself fits an `i64`.
    pub fn parse(text: &str) -> Option<DecimalNumber> {
        let number = DecimalText::parse(text)?;
        Some(DecimalNumber {
            negative: number.negative,
            digits: number.digits().map(|b| b - b'0').collect(),
            point: number.point,
        })
    }
}

impl Ord for DecimalNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        signed_cmp(
            (self.negative, other.negative),
            (self.digits.is_empty(), other.digits.is_empty()),
            || (self.point.cmp(&other.point)).then_with(|| self.digits.cmp(&other.digits)),
        )
    }
}

impl PartialOrd for DecimalNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Two signed numbers compared from their signs, whether each is zero, and the comparison of
/// their magnitudes (`a` to `b`) when both are non-zero.
fn signed_cmp(
    (a_negative, b_negative): (bool, bool),
    (a_zero, b_zero): (bool, bool),
    magnitude: impl FnOnce() -> Ordering,
) -> Ordering {
    let a_negative = a_negative && !a_zero;
    let b_negative = b_negative && !b_zero;
    match (a_negative, b_negative) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => match (a_zero, b_zero) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => magnitude(),
        },
        // Both negative, so neither is zero.
        (true, true) => magnitude().reverse(),
    }
}

/// [`DecimalNumber`] read in place: the significant digits are the text's own (ASCII), in two
/// slices (before and after the point), so comparing numbers in a filter allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct DecimalText<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    point: i64,
}

impl<'a> DecimalText<'a> {
    /// As [`DecimalNumber::parse`], in one pass over the text.
    pub fn parse(text: &'a str) -> Option<DecimalText<'a>> {
        let NumberParts {
            negative,
            int,
            frac,
            exponent,
        } = number_parts(text)?;
        let exponent = match exponent {
            [] => 0,
            digits => std::str::from_utf8(digits).ok()?.parse::<i64>().ok()?,
        };
        let zeros = |digits: &[u8]| digits.iter().take_while(|&&b| b == b'0').count();
        let leading = match zeros(int) {
            all if all == int.len() => all + zeros(frac),
            some => some,
        };
        let zeros_back = |digits: &[u8]| digits.iter().rev().take_while(|&&b| b == b'0').count();
        let trailing = match zeros_back(frac) {
            all if all == frac.len() => all + zeros_back(int),
            some => some,
        };
        if leading == int.len() + frac.len() {
            let zero = DecimalText {
                negative: false,
                int: &[],
                frac: &[],
                point: 0,
            };
            return Some(zero);
        }
        // Both counts are string lengths, so the difference cannot overflow; the exponent can.
        let shift = i64::try_from(int.len()).ok()? - i64::try_from(leading).ok()?;
        let point = shift.checked_add(exponent)?;
        let (int, frac) = if leading >= int.len() {
            (&int[int.len()..], &frac[leading - int.len()..])
        } else {
            (&int[leading..], frac)
        };
        let (int, frac) = if trailing >= frac.len() {
            (&int[..int.len() - (trailing - frac.len())], &frac[..0])
        } else {
            (int, &frac[..frac.len() - trailing])
        };
        Some(DecimalText {
            negative,
            int,
            frac,
            point,
        })
    }

    /// The significant digits, as ASCII.
    fn digits(&self) -> impl Iterator<Item = u8> + Clone + 'a {
        self.int.iter().chain(self.frac).copied()
    }

    fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }

    /// As comparing with `other`'s text read as a `DecimalText`.
    pub fn cmp_number(&self, other: &DecimalNumber) -> Ordering {
        signed_cmp(
            (self.negative, other.negative),
            (self.is_zero(), other.digits.is_empty()),
            || {
                (self.point.cmp(&other.point)).then_with(|| {
                    self.digits()
                        .map(|b| b - b'0')
                        .cmp(other.digits.iter().copied())
                })
            },
        )
    }
}

impl Ord for DecimalText<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        signed_cmp(
            (self.negative, other.negative),
            (self.is_zero(), other.is_zero()),
            || (self.point.cmp(&other.point)).then_with(|| self.digits().cmp(other.digits())),
        )
    }
}

impl PartialOrd for DecimalText<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DecimalText<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DecimalText<'_> {}

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
    /// Whether maps and lists nest in this value more than `levels` deep (a map or list is one
    /// level, a scalar none); stops looking at the first path that does.
    pub fn nests_deeper_than(&self, levels: usize) -> bool {
        match self {
            Attr::M(map) => levels == 0 || map.values().any(|v| v.nests_deeper_than(levels - 1)),
            Attr::L(items) => levels == 0 || items.iter().any(|v| v.nests_deeper_than(levels - 1)),
            _ => false,
        }
    }

    /// Approximate stored size in bytes, by DynamoDB's accounting (names + values).
    pub fn size(&self) -> usize {
        match self {
            Attr::S(s) => s.len(),
            Attr::N(n) => number_size(n),
            Attr::B(b) => b.len(),
            Attr::Ss(items) => items.iter().map(|item| item.len()).sum(),
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

    /// At least [`Attr::size`], found without reading a number's digits (a number counts at
    /// most one byte per two characters of its text, plus one): most items are far below
    /// DynamoDB's limit, and counting every number's significant digits cost more than the
    /// rest of the check (`perf`, the daemon streaming).
    pub fn size_bound(&self) -> usize {
        match self {
            Attr::N(n) => n.len() / 2 + 2,
            // Maps and lists exactly: rare, and their numbers are counted as DynamoDB does.
            other => other.size(),
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
            Attr::Ss(items) => {
                Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
            }
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

/// A number's size as DynamoDB counts it: one byte per two significant digits (leading and
/// trailing zeros trimmed), plus one.
fn number_size(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    // Digits from the first non-zero one to the last non-zero one.
    let (mut significant, mut zeros) = (0usize, 0usize);
    for digit in mantissa.bytes().filter(u8::is_ascii_digit) {
        match digit {
            b'0' if significant > 0 => zeros += 1,
            b'0' => {}
            _ => {
                significant += zeros + 1;
                zeros = 0;
            }
        }
    }
    significant.div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    /// A number counts as DynamoDB counts it: one byte per two significant digits, plus one
    /// (leading and trailing zeros, the sign, the point and the exponent aside). Counting its
    /// text made an item of many numbers "over 400 KB" that DynamoDB would take.
    #[test]
    fn a_number_counts_its_significant_digits() {
        use super::Attr;
        for (text, size) in [
            ("0", 1),
            ("7", 2),
            ("1234567.891", 6),
            ("-0.000120", 2),
            ("1200", 2),
            ("1.5e300", 2),
            ("12345678901234567890123456789012345678", 20),
        ] {
            assert_eq!(Attr::N(text.into()).size(), size, "{text}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    /// `decimal_from_parts` as it was written with `format!`: the oracle of its rewrite.
    fn decimal_from_parts_slow(units: i128, frac_digits: usize) -> String {
        let width = frac_digits.saturating_add(1);
        let digits = format!("{:0>width$}", units.unsigned_abs());
        let (whole, frac) = digits.split_at(digits.len().saturating_sub(frac_digits));
        let frac = frac.trim_end_matches('0');
        let sign = if units < 0 { "-" } else { "" };
        if frac.is_empty() {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}.{frac}")
        }
    }

    #[test]
    fn decimal_numbers_are_normalised() {
        let parsed = |text: &str| {
            let n = DecimalNumber::parse(text).unwrap();
            (n.negative, n.digits, n.point)
        };
        assert_eq!(parsed("12.5"), (false, vec![1, 2, 5], 2));
        assert_eq!(parsed("0.0050"), (false, vec![5], -2));
        assert_eq!(parsed("100"), (false, vec![1], 3));
        assert_eq!(parsed("-100.00e-1"), (true, vec![1], 2));
        assert_eq!(parsed("-0.00"), (false, vec![], 0));
        assert_eq!(parsed("0e99"), (false, vec![], 0));
        assert_eq!(parsed("007.0700"), (false, vec![7, 0, 7], 1));
        assert_eq!(parsed(".5"), (false, vec![5], 0));
        assert_eq!(DecimalNumber::parse("1e9223372036854775807"), None);
        assert_eq!(DecimalNumber::parse("1.2.3"), None);
        for number in ["1.", ".5", "+1e+5", "-0E-0", "007"] {
            assert!(is_number_text(number), "{number}");
        }
        for text in [
            "", ".", "-", "+-1", "e5", "1e", "1e+", "1e5e5", "1.2.3", "1 ", "١",
        ] {
            assert!(!is_number_text(text), "{text}");
        }
    }

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
        fn the_float_fast_path_reads_decimals_as_parsing_does(
            digits in 0u64..=(1 << 53),
            exp in -22i64..=22,
        ) {
            let parsed: f64 = format!("{digits}e{exp}").parse().unwrap();
            prop_assert_eq!(exact_f64(digits, exp), Some(parsed));
        }

        #[test]
        fn a_size_bound_is_never_below_the_size(
            numbers in proptest::collection::vec(
                "-?[0-9]{0,60}(\\.[0-9]{0,60})?([eE][-+]?[0-9]{1,3})?", 0..6),
            text in ".{0,20}",
        ) {
            let attrs: Vec<Attr> = numbers.iter().cloned().map(Attr::N).collect();
            let list = Attr::L(attrs.clone());
            for attr in attrs.iter().chain([&list, &Attr::S(text)]) {
                prop_assert!(attr.size_bound() >= attr.size(), "{:?}", attr);
            }
        }

        #[test]
        fn number_checks_agree_with_the_parse(text in "-?[0-9]{0,45}(\\.[0-9]{0,45})?") {
            let parsed = DecimalNumber::parse(&text).map(|n| {
                n.digits.is_empty() || (n.digits.len() <= 38 && (-129..=126).contains(&n.point))
            });
            match parsed {
                Some(in_range) => prop_assert_eq!(check_number(&text).is_ok(), in_range),
                None => prop_assert!(check_number(&text).is_err()),
            }
        }

        #[test]
        fn decimal_text_orders_as_the_numbers_do(
            a in "[-+]?[0-9]{0,8}(\\.[0-9]{0,8})?([eE][-+]?[0-5])?",
            b in "[-+]?[0-9]{0,8}(\\.[0-9]{0,8})?([eE][-+]?[0-5])?",
        ) {
            // The oracle: each text as a whole mantissa times a power of ten, both brought to
            // the smaller power (at most 10^16 * 10^18: within an i128).
            let exact = |text: &str| -> Option<(i128, i64)> {
                if !is_number_text(text) {
                    return None;
                }
                let (mantissa, exp) = match text.split_once(['e', 'E']) {
                    Some((m, e)) => (m, e.parse::<i64>().unwrap()),
                    None => (text, 0),
                };
                let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
                let digits = format!("{int}{frac}").trim_start_matches(['-', '+']).to_string();
                let value: i128 = if digits.is_empty() { 0 } else { digits.parse().unwrap() };
                let sign = if mantissa.starts_with('-') { -1 } else { 1 };
                Some((sign * value, exp - frac.len() as i64))
            };
            let expected = match (exact(&a), exact(&b)) {
                (Some((x, ex)), Some((y, ey))) => {
                    let low = ex.min(ey);
                    let scale = |v: i128, e: i64| v * 10i128.pow((e - low) as u32);
                    Some(scale(x, ex).cmp(&scale(y, ey)))
                }
                _ => None,
            };
            let text = DecimalText::parse(&a).zip(DecimalText::parse(&b)).map(|(x, y)| x.cmp(&y));
            prop_assert_eq!(text, expected);
            let owned = DecimalNumber::parse(&a).zip(DecimalNumber::parse(&b)).map(|(x, y)| x.cmp(&y));
            prop_assert_eq!(owned, expected);
        }

        #[test]
        fn decimal_order_holds_at_any_exponent(
            a in "[-+]?[0-9]{0,6}(\\.[0-9]{0,6})?",
            b in "[-+]?[0-9]{0,6}(\\.[0-9]{0,6})?",
            k in -(1i64 << 62)..(1i64 << 62),
        ) {
            // Scaling both by one power of ten keeps their order, however far the point moves.
            let order = |x: &str, y: &str| {
                DecimalText::parse(x).zip(DecimalText::parse(y)).map(|(x, y)| x.cmp(&y))
            };
            prop_assert_eq!(order(&format!("{a}e{k}"), &format!("{b}e{k}")), order(&a, &b));
            prop_assert_eq!(order(&format!("{a}e{k}"), &format!("{a}E{k:+}")), order(&a, &a));
        }

        #[test]
        fn epoch_decimals_are_written_as_formatting_does(
            units in any::<i64>(),
            wide in any::<i128>(),
            frac_digits in 0u32..=8,
        ) {
            for units in [i128::from(units), wide] {
                prop_assert_eq!(
                    decimal_from_parts(units, frac_digits),
                    decimal_from_parts_slow(units, frac_digits as usize)
                );
            }
        }

        #[test]
        fn integers_are_padded_as_formatting_does(
            signed in any::<i64>(),
            unsigned in any::<u64>(),
            width in 0usize..=24,
        ) {
            let mut out = String::new();
            push_integer(&mut out, signed, width);
            prop_assert_eq!(&out, &format!("{signed:0width$}"));
            out.clear();
            push_integer(&mut out, unsigned, width);
            prop_assert_eq!(&out, &format!("{unsigned:0width$}"));
        }

        #[test]
        fn ryus_digits_give_the_text_rusts_gave(
            bits in any::<u64>(),
            bits32 in any::<u32>(),
            digits in 0u64..10_000_000,
            exp in -30i32..30,
        ) {
            // Any float, and the short decimals columns mostly hold (2.75, 1e-7, 348261.125).
            let short = format!("{digits}e{exp}");
            // And a power of two (the gap below it is half the gap above), and the float just
            // above a short decimal (its own text is long).
            let power = f64::from_bits(bits & !((1 << 52) - 1));
            let short64: f64 = short.parse().unwrap();
            for v in [f64::from_bits(bits), short64, power, short64.next_up()] {
                prop_assert_eq!(format_f64(v), format_f64_from(v, &format!("{:e}", v.abs())));
            }
            for v in [f32::from_bits(bits32), short.parse().unwrap()] {
                prop_assert_eq!(format_f32(v), format_f32_from(v, &format!("{:e}", v.abs())));
            }
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

        #[test]
        fn f32_text_is_shortest(bits in any::<u32>()) {
            let v = f32::from_bits(bits);
            prop_assume!(v.is_finite());
            let text = format_f32(v);
            prop_assert_eq!(text.parse::<f32>().unwrap().to_bits(), v.to_bits());
            prop_assert!(text.len() <= rust_text_f32(v).len(), "{} vs {}", text, rust_text_f32(v));
        }

        #[test]
        fn f64_text_is_shortest(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assume!(v.is_finite());
            let text = format_f64(v);
            prop_assert_eq!(text.parse::<f64>().unwrap().to_bits(), v.to_bits());
            prop_assert!(text.len() <= rust_text_f64(v).len(), "{} vs {}", text, rust_text_f64(v));
        }

        #[test]
        fn number_text_never_panics(text in ".{0,80}") {
            number_functions(&text);
        }

        #[test]
        fn number_shaped_text_never_panics(
            text in "[-+]?[0-9]{0,50}(\\.[0-9]{0,50})?([eE][-+]?[0-9]{1,25})?"
        ) {
            number_functions(&text);
            if let Some(number) = DecimalNumber::parse(&text) {
                // In range exactly when the leading digit's exponent is -130..=125.
                let in_range = number.digits.is_empty()
                    || (number.digits.len() <= 38 && (-129..=126).contains(&number.point));
                prop_assert_eq!(checked_number(&text).is_ok(), in_range);
            }
        }

        #[test]
        fn extreme_exponents_never_panic(
            mantissa in "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?",
            exponent in prop_oneof![any::<i64>(), Just(i64::MAX), Just(i64::MIN), -200i64..200],
        ) {
            prop_assume!(is_number_text(&mantissa));
            let text = format!("{mantissa}e{exponent}");
            number_functions(&text);
            let zero = mantissa.bytes().all(|b| !(b'1'..=b'9').contains(&b));
            // The mantissa is within 1E-31..1E+31, so beyond ±170 the number is out of range.
            prop_assert!(zero || (-170..=170).contains(&exponent) || checked_number(&text).is_err());
        }

        #[test]
        fn epoch_conversions_never_panic(
            secs in any::<i64>(), micros in any::<u32>(), fsp in any::<u8>(),
        ) {
            let ts = Cell::Timestamp { secs, micros, fsp };
            temporal_functions(&ts);
            let dt = datetime_from_epoch(secs, micros, fsp);
            prop_assert!(dt.year <= 9999 && dt.micros < 1_000_000);
            match checked_datetime_from_epoch(secs, micros, fsp) {
                Some(back) => prop_assert_eq!(back, dt),
                None => prop_assert!(!(MIN_EPOCH_SECS..=MAX_EPOCH_SECS).contains(&secs)
                    || micros >= 1_000_000),
            }
        }

        #[test]
        fn calendar_fields_never_panic(
            year in any::<u16>(), month in any::<u8>(), day in any::<u8>(), hour in any::<u8>(),
            minute in any::<u8>(), second in any::<u8>(), micros in any::<u32>(),
        ) {
            let _ = days_from_civil(year, month, day);
            temporal_functions(&Cell::Date { year, month, day });
            let dt = DateTime { year, month, day, hour, minute, second, micros, fsp: 6 };
            temporal_functions(&Cell::DateTime(dt));
            if let Some(days) = checked_days_from_civil(year, month, day) {
                match checked_datetime_from_epoch(days * 86_400, 0, 0) {
                    Some(back) => {
                        prop_assert_eq!((back.year, back.month, back.day), (year, month, day));
                    }
                    None => prop_assert!(year > 9999),
                }
            }
        }
    }

    #[test]
    fn every_power_of_two_has_its_general_text() {
        for e in -1074..=1023 {
            let v = 2f64.powi(e);
            assert_eq!(
                format_f64(v),
                format_f64_from(v, &format!("{v:e}")),
                "2^{e}"
            );
            let above = v.next_up();
            assert_eq!(
                format_f64(above),
                format_f64_from(above, &format!("{above:e}"))
            );
        }
    }

    /// `with_scale` as it was written first (character by character): the oracle of the
    /// property below.
    fn with_scale_by_chars(text: &str, scale: u8) -> String {
        let scale = usize::from(scale);
        let (int_part, frac) = text.split_once('.').unwrap_or((text, ""));
        if scale == 0 {
            return int_part.to_string();
        }
        let kept = frac.chars().take(scale);
        let pad = scale - kept.clone().count();
        format!("{int_part}.{}{}", kept.collect::<String>(), "0".repeat(pad))
    }

    proptest! {
        /// Any text at any scale, ASCII digits or not, gets the text the first version gave.
        #[test]
        fn with_scale_keeps_its_first_versions_text(
            text in "-?[0-9]{0,6}(\\.[0-9\u{e9}\u{1F600}]{0,8})?",
            scale in 0u8..12,
        ) {
            prop_assert_eq!(with_scale(&text, scale), with_scale_by_chars(&text, scale));
        }
    }

    /// Every function of this module that takes number text, for the no-panic properties.
    fn number_functions(text: &str) {
        let _ = checked_number(text);
        let _ = plain_decimal(text);
        let _ = DecimalNumber::parse(text);
        let _ = is_number_text(text);
        let _ = with_scale(text, 4);
        let _ = with_scale(text, 255);
        let _ = Cell::Text(text.to_string()).to_attr(Conversion::Number);
        let _ = Cell::Decimal(text.to_string()).to_attr(Conversion::Native);
    }

    fn temporal_functions(cell: &Cell) {
        let _ = cell.to_text();
        for conversion in [
            Conversion::EpochSeconds,
            Conversion::EpochMillis,
            Conversion::Native,
        ] {
            let _ = cell.to_attr(conversion);
        }
    }

    #[test]
    fn float_ties_go_to_the_even_digit() {
        // Exactly halfway between 348261.12 and 348261.13 (a literal would draw clippy's
        // excessive_precision, which cannot see the tie either).
        let tie: f32 = "348261.125".parse().unwrap();
        assert_eq!(format_f32(tie), "348261.12");
        assert_eq!(format_f32(-tie), "-348261.12");
        // Not ties: the closest shortest text, as Rust's own.
        assert_eq!(format_f32(348261.1), "348261.1");
        assert_eq!(format_f32(1e-8), "1e-8");
        assert_eq!(format_f32(f32::MAX), "3.4028235e38");
        assert_eq!(format_f32(f32::MIN_POSITIVE / 8.0), "1.469368e-39");
        assert_eq!(format_f64(5e-324), "5e-324");
        assert_eq!(few_fraction_digits(2.75), Some((275, -2)));
        assert_eq!(format_f64(2.75), "2.75");
        assert_eq!(format_f64(-1234.5), "-1234.5");
        assert_eq!(format_f64(5e-8), "5e-8");
        assert_eq!(format_f64(1e21), "1e21");
        assert_eq!(format_f64(123456.0), "123456");
        assert_eq!(format_f32(0.0), "0");
        assert_eq!(format_f32(-0.0), "-0");
        assert_eq!(format_f64(f64::NAN), "NaN");
    }

    #[test]
    fn extreme_numbers_are_out_of_range() {
        let out_of_range = |text: &str| {
            assert_eq!(
                checked_number(text),
                Err(ValueError::NumberOutOfRange(text.to_string())),
                "{text}"
            );
        };
        out_of_range("1e9223372036854775807");
        out_of_range("1e-9223372036854775808");
        out_of_range("0.01e-9223372036854775808");
        out_of_range("123e9223372036854775806");
        out_of_range("1e99999999999999999999");
        out_of_range(&format!("1{}", "0".repeat(5000)));
        out_of_range(&format!("0.{}1", "0".repeat(5000)));
        out_of_range(&format!("{}e-9223372036854775807", "1".repeat(3000)));
        assert!(checked_number("0e9223372036854775807").is_ok());
        assert!(checked_number(&format!("0.{}1e200", "0".repeat(200))).is_ok());
        let long = DecimalNumber::parse(&format!("0.{}25", "0".repeat(4000))).unwrap();
        assert_eq!((long.digits, long.point), (vec![2, 5], -4000));
        let top = DecimalNumber::parse("0.1e9223372036854775807").unwrap();
        assert_eq!(top.point, i64::MAX);
        assert_eq!(DecimalNumber::parse("10e9223372036854775807"), None);
        assert_eq!(with_scale("1.\u{e9}\u{e9}", 1), "1.\u{e9}");
        assert_eq!(with_scale("1.5", 3), "1.500");
        assert_eq!(plain_decimal(&format!("7.{}", "0".repeat(3000))), "7");
    }

    #[test]
    fn extreme_instants_are_errors_or_exact() {
        let ts = |secs, micros| Cell::Timestamp {
            secs,
            micros,
            fsp: 6,
        };
        assert_eq!(
            ts(i64::MAX, 999_999)
                .to_attr(Conversion::EpochMillis)
                .unwrap(),
            Some(Attr::N("9223372036854775807999.999".into()))
        );
        assert_eq!(
            ts(i64::MIN, 1).to_attr(Conversion::EpochSeconds).unwrap(),
            Some(Attr::N("-9223372036854775807.999999".into()))
        );
        assert!(ts(i64::MAX, 0).to_text().is_err());
        assert!(ts(i64::MIN, 0).to_text().is_err());
        assert!(ts(0, 1_000_000).to_attr(Conversion::EpochSeconds).is_err());
        assert!(ts(0, 1_000_000).to_text().is_err());
        assert_eq!(MIN_EPOCH_SECS, days_from_civil(0, 1, 1) * 86_400);
        assert_eq!(MAX_EPOCH_SECS, days_from_civil(10000, 1, 1) * 86_400 - 1);
        let last = datetime_from_epoch(i64::MAX, 0, 0);
        assert_eq!(format_datetime(&last), "9999-12-31T23:59:59");
        let first = datetime_from_epoch(i64::MIN, 0, 0);
        assert_eq!(format_datetime(&first), "0000-01-01T00:00:00");
        assert_eq!(checked_datetime_from_epoch(i64::MAX, 0, 0), None);
        assert_eq!(checked_days_from_civil(2024, 2, 30), None);
        assert_eq!(checked_days_from_civil(2024, 2, 29), Some(19_782));
        let _ = days_from_civil(u16::MAX, u8::MAX, u8::MAX);
        let date = |month, day| Cell::Date {
            year: 2024,
            month,
            day,
        };
        assert!(date(13, 1).to_attr(Conversion::EpochSeconds).is_err());
        assert!(date(2, 30).to_attr(Conversion::EpochMillis).is_err());
        let dt = |hour, second, micros| {
            Cell::DateTime(DateTime {
                year: 1969,
                month: 12,
                day: 31,
                hour,
                minute: 59,
                second,
                micros,
                fsp: 6,
            })
        };
        assert!(dt(24, 59, 0).to_attr(Conversion::EpochSeconds).is_err());
        assert!(dt(23, 59, 1_000_000)
            .to_attr(Conversion::EpochSeconds)
            .is_err());
        // Before 1970 the fraction counts up from the second, so the number is -0.5, not -1.5.
        let half = dt(23, 59, 500_000);
        assert_eq!(
            half.to_attr(Conversion::EpochSeconds).unwrap(),
            Some(Attr::N("-0.5".into()))
        );
        assert_eq!(
            half.to_attr(Conversion::EpochMillis).unwrap(),
            Some(Attr::N("-500".into()))
        );
        let odd = dt(23, 59, 500_500);
        assert_eq!(
            odd.to_attr(Conversion::EpochMillis).unwrap(),
            Some(Attr::N("-499.5".into()))
        );
    }
}
