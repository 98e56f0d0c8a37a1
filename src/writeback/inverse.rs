//! The inverse mapping, pure: a stream record of a write-back view's item → what to do in SQL.
//!
//! Whose change is it: a record is rowcast's own when its new image carries a version that
//! differs from the old image's (rowcast writes a new `_version` on every write; an
//! application's UpdateItem keeps it, and an application's PutItem of its own carries none or
//! copies it). A removal by the TTL service principal is skipped; any other removal is decided
//! against SQL (see `apply.rs`: rowcast only deletes items whose rows no longer make them).
//!
//! An application's change maps back through the view: the key attributes parse into key
//! columns through the templates, and only the attributes listed in `writeback.attributes` map
//! to their columns, converted back by the VIEWS.md value table (`as` conversions inverted) and
//! validated against the column's type. A record that sets or changes any other attribute, or
//! an attribute that does not convert, is rejected as a whole: nothing of it reaches SQL.

use std::collections::BTreeMap;

use mysql_async::Value;

use crate::sink::dynamo::VERSION_ATTRIBUTE;
use crate::view::row::{ColumnKind, TableSchema};
use crate::view::spec::{Attributes, View};
use crate::view::value::{datetime_from_epoch, is_number_text, Attr, Cell, Conversion};

pub type Image = BTreeMap<String, Attr>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

/// A stream record in rowcast's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamChange {
    pub kind: ChangeKind,
    pub keys: Image,
    pub old: Option<Image>,
    pub new: Option<Image>,
    /// Removed by DynamoDB's TTL (the service principal).
    pub ttl: bool,
    pub sequence: String,
}

/// What a record becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// rowcast's own write.
    Own,
    Ttl,
    /// Nothing writable changed (metadata only).
    Unchanged,
    Reject(String),
    /// INSERT … ON DUPLICATE KEY UPDATE (replays are harmless).
    Upsert(Vec<(String, Value)>),
    Update {
        set: Vec<(String, Value)>,
    },
    /// DELETE of the row behind the key, if it still makes this item.
    Delete,
}

/// The key columns parsed back from an item's key attributes; `None` when the key is not one
/// of this view's.
pub fn key_columns(view: &View, keys: &Image) -> Option<Vec<(String, String)>> {
    let Some(Attr::S(pk)) = keys.get(&view.key.pk_attribute) else {
        return None;
    };
    let mut columns = view.key.pk.parse_key(pk).ok()?;
    match (&view.key.sk, &view.key.sk_attribute) {
        (Some(template), Some(name)) => {
            let Some(Attr::S(sk)) = keys.get(name) else {
                return None;
            };
            columns.extend(template.parse_key(sk).ok()?);
        }
        (None, None) => {}
        _ => return None,
    }
    Some(columns)
}

/// `(column, conversion)` of a writable attribute.
pub fn writable(view: &View, attribute: &str) -> Option<(String, Conversion)> {
    if !view.writeback_attributes.iter().any(|a| a == attribute) {
        return None;
    }
    match &view.attributes {
        Attributes::Implicit => Some((attribute.to_string(), Conversion::Native)),
        Attributes::Explicit(specs) => specs
            .iter()
            .find(|s| s.name == attribute)
            .map(|s| (s.column.clone(), s.conversion)),
    }
}

fn version(image: Option<&Image>) -> Option<&Attr> {
    image.and_then(|i| i.get(VERSION_ATTRIBUTE))
}

/// The attributes an application may not set: keys and metadata are not values.
fn is_value_attribute(view: &View, name: &str) -> bool {
    !name.starts_with('_') && !view.is_key_attribute(name)
}

pub fn decide(view: &View, table: &TableSchema, change: &StreamChange) -> Decision {
    if change.kind == ChangeKind::Remove {
        return if change.ttl {
            Decision::Ttl
        } else {
            Decision::Delete
        };
    }
    let new_version = version(change.new.as_ref());
    if new_version.is_some() && new_version != version(change.old.as_ref()) {
        return Decision::Own;
    }
    let empty = Image::new();
    let new = change.new.as_ref().unwrap_or(&empty);
    let old = change.old.as_ref().unwrap_or(&empty);
    let mut names: Vec<&String> = new.keys().chain(old.keys()).collect();
    names.sort();
    names.dedup();
    let mut set = Vec::new();
    for name in names {
        if !is_value_attribute(view, name) || new.get(name) == old.get(name) {
            continue;
        }
        let Some((column, conversion)) = writable(view, name) else {
            return Decision::Reject(format!(
                "attribute {name} is not writable (writeback.attributes)"
            ));
        };
        let Some(kind) = table.column(&column).map(|c| &c.kind) else {
            return Decision::Reject(format!("column {column} is not in {}", table.table));
        };
        let value = match new.get(name) {
            Some(attr) => match to_sql(attr, kind, conversion) {
                Ok(value) => value,
                Err(reason) => return Decision::Reject(format!("attribute {name}: {reason}")),
            },
            // Removing the attribute: NULL (an empty SET is an absent attribute too).
            None if matches!(kind, ColumnKind::Set(_)) => Value::Bytes(Vec::new()),
            None => Value::NULL,
        };
        set.push((column, value));
    }
    match change.kind {
        ChangeKind::Insert if change.old.is_none() => Decision::Upsert(set),
        _ if set.is_empty() => Decision::Unchanged,
        _ => Decision::Update { set },
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

fn integer(text: &str, unsigned: bool) -> Result<Value, String> {
    if unsigned {
        text.trim()
            .parse::<u64>()
            .map(Value::UInt)
            .map_err(|_| format!("{text:?} is not an unsigned integer"))
    } else {
        text.trim()
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("{text:?} is not an integer"))
    }
}

fn number_text(text: &str) -> Result<Value, String> {
    if is_number_text(text.trim()) {
        Ok(Value::Bytes(text.trim().as_bytes().to_vec()))
    } else {
        Err(format!("{text:?} is not a number"))
    }
}

fn digits(text: &str, at: std::ops::Range<usize>) -> bool {
    text.get(at)
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

/// `YYYY-MM-DD`, then optionally `THH:MM:SS[.ffffff]` (or a space), optionally `Z`.
fn temporal(text: &str, with_time: bool) -> Result<Value, String> {
    let body = text.strip_suffix('Z').unwrap_or(text);
    let date_ok = body.len() >= 10
        && digits(body, 0..4)
        && &body[4..5] == "-"
        && digits(body, 5..7)
        && &body[7..8] == "-"
        && digits(body, 8..10);
    let rest = body.get(10..).unwrap_or("");
    let time_ok = if with_time {
        rest.is_empty()
            || ((rest.starts_with('T') || rest.starts_with(' '))
                && rest.len() >= 9
                && digits(rest, 1..3)
                && &rest[3..4] == ":"
                && digits(rest, 4..6)
                && &rest[6..7] == ":"
                && digits(rest, 7..9)
                && (rest.len() == 9 || (&rest[9..10] == "." && digits(rest, 10..rest.len()))))
    } else {
        rest.is_empty()
    };
    if !date_ok || !time_ok {
        let shape = if with_time {
            "YYYY-MM-DDTHH:MM:SS[.ffffff]"
        } else {
            "YYYY-MM-DD"
        };
        return Err(format!("{text:?} is not a {shape} value"));
    }
    Ok(Value::Bytes(body.replacen('T', " ", 1).into_bytes()))
}

fn time(text: &str) -> Result<Value, String> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let mut parts = body.splitn(3, ':');
    let ok = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(m), Some(s)) => {
            let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
            [h, m, sec, frac]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        }
        _ => false,
    };
    if ok {
        Ok(Value::Bytes(text.as_bytes().to_vec()))
    } else {
        Err(format!("{text:?} is not a [-]HH:MM:SS[.ffffff] value"))
    }
}

/// An epoch number (seconds or milliseconds, fraction allowed) as a UTC `DATETIME` literal.
fn from_epoch(text: &str, millis: bool) -> Result<Value, String> {
    let bad = || format!("{text:?} is not an epoch number");
    let (int_part, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let whole: i64 = int_part.parse().map_err(|_| bad())?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let negative = int_part.starts_with('-');
    // Microseconds of the fraction, for the unit.
    let frac_digits = if millis { 3 } else { 6 };
    let padded = format!("{frac:0<width$}", width = frac_digits);
    let mut frac_units: i64 = padded[..frac_digits].parse().map_err(|_| bad())?;
    if negative {
        frac_units = -frac_units;
    }
    let micros_total = if millis {
        i128::from(whole) * 1000 + i128::from(frac_units)
    } else {
        i128::from(whole) * 1_000_000 + i128::from(frac_units)
    };
    let secs = micros_total.div_euclid(1_000_000);
    let micros = micros_total.rem_euclid(1_000_000);
    let secs = i64::try_from(secs).map_err(|_| bad())?;
    let dt = datetime_from_epoch(secs, micros as u32, 6);
    let text = Cell::DateTime(dt)
        .to_text()
        .ok()
        .flatten()
        .ok_or_else(bad)?;
    Ok(Value::Bytes(text.replacen('T', " ", 1).into_bytes()))
}

/// An attribute value as the column's SQL value, per the VIEWS.md table and `as` conversion.
pub fn to_sql(attr: &Attr, kind: &ColumnKind, conversion: Conversion) -> Result<Value, String> {
    if *attr == Attr::Null && !matches!(kind, ColumnKind::Json) {
        return Ok(Value::NULL);
    }
    match conversion {
        Conversion::EpochSeconds | Conversion::EpochMillis => {
            let n = expect_n(attr, "an epoch conversion")?;
            return from_epoch(n, conversion == Conversion::EpochMillis);
        }
        Conversion::JsonString => {
            let s = expect_s(attr, "a json_string conversion")?;
            serde_json::from_str::<serde_json::Value>(s).map_err(|e| format!("not JSON: {e}"))?;
            return Ok(Value::Bytes(s.as_bytes().to_vec()));
        }
        Conversion::String => {
            let s = expect_s(attr, "an as = \"string\" attribute")?;
            return from_text(s, kind);
        }
        Conversion::Number => {
            let n = expect_n(attr, "an as = \"number\" attribute")?;
            return match kind {
                ColumnKind::Text | ColumnKind::Enum(_) => from_text(n, kind),
                other => native(&Attr::N(n.to_string()), other),
            };
        }
        Conversion::Native => {}
    }
    native(attr, kind)
}

/// A text (as `as = "string"` renders the column) back to the column's value.
fn from_text(text: &str, kind: &ColumnKind) -> Result<Value, String> {
    match kind {
        ColumnKind::Set(_) => native(
            &Attr::Ss(
                text.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
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
        ColumnKind::Binary { .. } | ColumnKind::Other(_) => {
            Ok(Value::Bytes(text.as_bytes().to_vec()))
        }
        ColumnKind::Json => Ok(Value::Bytes(text.as_bytes().to_vec())),
        _ => native(&Attr::N(text.to_string()), kind),
    }
}

fn native(attr: &Attr, kind: &ColumnKind) -> Result<Value, String> {
    match kind {
        ColumnKind::Int { unsigned } => integer(expect_n(attr, "an integer column")?, *unsigned),
        ColumnKind::SignedMedium => integer(expect_n(attr, "an integer column")?, false),
        ColumnKind::Bit | ColumnKind::Year => integer(expect_n(attr, "a numeric column")?, true),
        ColumnKind::Decimal { .. } => number_text(expect_n(attr, "a DECIMAL column")?),
        ColumnKind::Float | ColumnKind::Double => {
            let n = expect_n(attr, "a floating-point column")?;
            n.trim()
                .parse::<f64>()
                .map(Value::Double)
                .map_err(|_| format!("{n:?} is not a number"))
        }
        ColumnKind::Text => Ok(Value::Bytes(
            expect_s(attr, "a text column")?.as_bytes().to_vec(),
        )),
        ColumnKind::Enum(labels) => {
            let s = expect_s(attr, "an ENUM column")?;
            if labels.iter().any(|l| l == s) {
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
        ColumnKind::Date => temporal(expect_s(attr, "a DATE column")?, false),
        ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. } => {
            temporal(expect_s(attr, "a DATETIME or TIMESTAMP column")?, true)
        }
        ColumnKind::Time { .. } => time(expect_s(attr, "a TIME column")?),
        ColumnKind::Json => Ok(Value::Bytes(attr.to_json().to_string().into_bytes())),
        ColumnKind::Other(name) => Err(format!("write-back does not handle {name} columns")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::row::ColumnSchema;
    use crate::view::spec::TableRef;

    fn view() -> View {
        crate::config::compile_view(
            std::path::Path::new("accounts.toml"),
            r#"
name = "accounts"
table = "accounts_views"
source = "db.accounts"
[key]
pk = "ACC#{id}"
[attributes]
status = "status"
score = "score"
[writeback]
enabled = true
attributes = ["status"]
"#,
        )
        .unwrap()
    }

    fn table() -> TableSchema {
        let column = |name: &str, kind: ColumnKind| ColumnSchema {
            name: name.into(),
            kind,
            is_virtual: false,
        };
        TableSchema::new(
            TableRef::parse("db.accounts").unwrap(),
            vec![
                column("id", ColumnKind::Int { unsigned: false }),
                column("status", ColumnKind::Text),
                column("score", ColumnKind::Int { unsigned: false }),
            ],
        )
    }

    fn image(pairs: &[(&str, Attr)]) -> Image {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn change(kind: ChangeKind, old: Option<Image>, new: Option<Image>) -> StreamChange {
        StreamChange {
            kind,
            keys: image(&[("pk", Attr::S("ACC#1".into()))]),
            old,
            new,
            ttl: false,
            sequence: "1".into(),
        }
    }

    #[test]
    fn whose_change_by_the_version_rule() {
        let (view, table) = (view(), table());
        let v = |n: &str| (VERSION_ATTRIBUTE, Attr::N(n.into()));
        let s = |text: &str| ("status", Attr::S(text.into()));
        let pk = ("pk", Attr::S("ACC#1".into()));
        // rowcast's put of a new item, and of a new version over an existing one.
        let own_insert = change(
            ChangeKind::Insert,
            None,
            Some(image(&[pk.clone(), v("5"), s("open")])),
        );
        assert_eq!(decide(&view, &table, &own_insert), Decision::Own);
        let own_modify = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("5"), s("open")])),
            Some(image(&[pk.clone(), v("6"), s("closed")])),
        );
        assert_eq!(decide(&view, &table, &own_modify), Decision::Own);
        // An application's UpdateItem keeps rowcast's version (and its origin marker).
        let app_update = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("6"), s("open")])),
            Some(image(&[pk.clone(), v("6"), s("frozen")])),
        );
        assert_eq!(
            decide(&view, &table, &app_update),
            Decision::Update {
                set: vec![("status".into(), Value::Bytes(b"frozen".to_vec()))]
            }
        );
        // An application's PutItem over an existing item, without a version: still its own.
        let app_put = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("6"), s("open")])),
            Some(image(&[pk.clone(), s("frozen")])),
        );
        assert!(matches!(
            decide(&view, &table, &app_put),
            Decision::Update { .. }
        ));
        // A non-writable attribute rejects the whole record.
        let score = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("6"), s("open")])),
            Some(image(&[
                pk.clone(),
                v("6"),
                s("frozen"),
                ("score", Attr::N("3".into())),
            ])),
        );
        assert!(
            matches!(decide(&view, &table, &score), Decision::Reject(r) if r.contains("score is not writable"))
        );
        // Only metadata changed.
        let meta = change(
            ChangeKind::Modify,
            Some(image(&[pk.clone(), v("6"), s("open")])),
            Some(image(&[
                pk.clone(),
                v("6"),
                s("open"),
                ("_note", Attr::S("x".into())),
            ])),
        );
        assert_eq!(decide(&view, &table, &meta), Decision::Unchanged);
        // Removals: TTL skipped, others checked against SQL.
        let mut ttl = change(ChangeKind::Remove, Some(image(&[pk.clone(), v("6")])), None);
        ttl.ttl = true;
        assert_eq!(decide(&view, &table, &ttl), Decision::Ttl);
        ttl.ttl = false;
        assert_eq!(decide(&view, &table, &ttl), Decision::Delete);
        assert_eq!(
            key_columns(&view, &own_insert.keys),
            Some(vec![("id".to_string(), "1".to_string())])
        );
    }

    #[test]
    fn values_convert_back_or_are_refused() {
        let int = ColumnKind::Int { unsigned: false };
        assert_eq!(
            to_sql(&Attr::N("-42".into()), &int, Conversion::Native),
            Ok(Value::Int(-42))
        );
        assert!(to_sql(&Attr::S("42".into()), &int, Conversion::Native).is_err());
        assert!(to_sql(&Attr::N("4.2".into()), &int, Conversion::Native).is_err());
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
        assert!(to_sql(&Attr::S("yesterday".into()), &dt, Conversion::Native).is_err());
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
}
