//! Key templates: literal text and `{column}` / `{column:0N}` placeholders.
//!
//! `{col}` renders the value as `as = "string"` would; `{col:0N}` zero-pads an integer to N
//! digits like Rust's `{:0N}` (`-042` for -42 at width 4). A NULL in a key column means the row
//! has no item; an empty rendered key is the caller's to dead-letter.

use super::row::ColumnName;
use super::value::{push_integer, Cell, ValueError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Column {
        name: ColumnName,
        pad: Option<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub source: String,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed '{{' at byte {0}")]
    Unclosed(usize),
    #[error("'}}' without '{{' at byte {0}")]
    Unopened(usize),
    #[error("empty placeholder at byte {0}")]
    Empty(usize),
    #[error("bad format {spec:?} for column {column:?}: only {{column:0N}} (zero padding to N digits) is supported")]
    BadFormat { column: String, spec: String },
}

/// Why a row gives no key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("key column {0} is NULL")]
    NullColumn(String),
    #[error("key column {0} is missing from the row")]
    MissingColumn(String),
    #[error("key column {column}: {source}")]
    Value { column: String, source: ValueError },
    #[error("key column {column} must be an integer for zero padding, got a {kind} value")]
    PadNotInteger { column: String, kind: &'static str },
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(TemplateError::Unclosed(at));
                    }
                    let inner = inner.trim();
                    if inner.is_empty() {
                        return Err(TemplateError::Empty(at));
                    }
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(parse_placeholder(inner)?);
                }
                '}' => return Err(TemplateError::Unopened(at)),
                _ => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template {
            source: source.to_string(),
            segments,
        })
    }

    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Column { name, .. } => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Renders the key from a column lookup.
    pub fn render<'a>(
        &self,
        lookup: impl Fn(&ColumnName) -> Option<&'a Cell>,
    ) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.source.len() + 16);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Column { name, pad } => {
                    let cell =
                        lookup(name).ok_or_else(|| RenderError::MissingColumn(name.to_string()))?;
                    render_cell(&mut out, name, cell, *pad)?;
                }
            }
        }
        Ok(out)
    }
}

fn render_cell(
    out: &mut String,
    name: &str,
    cell: &Cell,
    pad: Option<usize>,
) -> Result<(), RenderError> {
    if cell.is_null() {
        return Err(RenderError::NullColumn(name.to_string()));
    }
    // Written into `out` directly, integers without `fmt`: keys render for every row.
    match pad {
        Some(width) => match cell {
            Cell::Int(v) => push_integer(out, *v, width),
            Cell::UInt(v) => push_integer(out, *v, width),
            other => {
                return Err(RenderError::PadNotInteger {
                    column: name.to_string(),
                    kind: other.kind(),
                })
            }
        },
        None => match cell {
            Cell::Int(v) => push_integer(out, *v, 0),
            Cell::UInt(v) => push_integer(out, *v, 0),
            Cell::Text(v) => out.push_str(v),
            Cell::Enum(label) => out.push_str(label),
            other => {
                let text = other
                    .to_text()
                    .map_err(|source| RenderError::Value {
                        column: name.to_string(),
                        source,
                    })?
                    .ok_or_else(|| RenderError::NullColumn(name.to_string()))?;
                out.push_str(&text);
            }
        },
    }
    Ok(())
}

fn parse_placeholder(inner: &str) -> Result<Segment, TemplateError> {
    let (name, spec) = match inner.split_once(':') {
        Some((name, spec)) => (name.trim(), Some(spec.trim())),
        None => (inner, None),
    };
    let pad = match spec {
        None => None,
        Some(spec) => {
            let width = spec
                .strip_prefix('0')
                .and_then(|w| w.parse::<usize>().ok())
                .filter(|w| (1..=40).contains(w));
            match width {
                Some(width) => Some(width),
                None => {
                    return Err(TemplateError::BadFormat {
                        column: name.to_string(),
                        spec: spec.to_string(),
                    })
                }
            }
        }
    };
    Ok(Segment::Column {
        name: name.into(),
        pad,
    })
}

/// A placeholder's value read from a key: for `{name:0N}` only the exact rendering (`{id:04}`
/// reads `0042`, not `42` or `+042`); `Err` says why not. An empty value is one: an empty
/// string renders as nothing (`SKU#{sku}` makes `SKU#` of `''`).
fn column_value(name: &str, pad: Option<usize>, value: &str) -> Result<String, String> {
    match pad {
        Some(width) => {
            let number = value
                .parse::<i128>()
                .map_err(|_| format!("{{{name}}} is not an integer"))?;
            if format!("{number:0width$}") != value {
                return Err(format!(
                    "{{{name}}} is not an integer padded to {width} digits"
                ));
            }
            Ok(number.to_string())
        }
        None => Ok(value.to_string()),
    }
}

crate::error::definite_errors!(TemplateError, RenderError, KeyParseError);

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_with_a_literal_inside_a_value_is_ambiguous() {
        let template = Template::parse("{tenant}#{id}").unwrap();
        assert!(template.parses_unambiguously("acme#7"));
        assert!(
            !template.parses_unambiguously("a#b#7"),
            "tenant 'a#b' or 'a'"
        );
        assert!(
            template.parses_unambiguously("#7"),
            "tenant '': an empty value"
        );
        assert_eq!(
            Template::parse("SKU#{sku}").unwrap().readings("SKU#", 4),
            Some(vec![vec![("sku".to_string(), String::new())]]),
            "an empty string renders as nothing"
        );
        assert_eq!(
            Template::parse("{a:02}{b}#{id}")
                .unwrap()
                .readings("07x#1", 8),
            Some(vec![vec![
                ("a".to_string(), "7".to_string()),
                ("b".into(), "x".into()),
                ("id".into(), "1".into())
            ]]),
            "side by side: only the padded split reads"
        );
        let side_by_side = Template::parse("{a}{b}").unwrap();
        assert_eq!(
            side_by_side.readings("pq", 8).unwrap().len(),
            3,
            "'' + pq, p + q, pq + ''"
        );
        assert_eq!(
            side_by_side.readings("a-long-key", 4),
            None,
            "over the limit"
        );
        let overlapping = Template::parse("{tenant}::{id}").unwrap();
        assert!(overlapping.parses_unambiguously("acme::7"));
        assert!(
            !overlapping.parses_unambiguously("acme:::7"),
            "tenant 'acme:' or 'acme' (the literal overlaps itself)"
        );
        assert_eq!(
            overlapping.readings("acme:::7", 8).unwrap(),
            vec![
                vec![
                    ("tenant".to_string(), "acme".to_string()),
                    ("id".into(), ":7".into())
                ],
                vec![
                    ("tenant".to_string(), "acme:".to_string()),
                    ("id".into(), "7".into())
                ],
            ]
        );
        let many = Template::parse("{a}#{b}").unwrap();
        assert_eq!(many.readings("1#2#3#4", 3).map(|r| r.len()), Some(3));
        assert_eq!(many.readings("1#2#3#4#5", 3), None, "over the limit");
        assert_eq!(
            many.readings("12", 3),
            Some(Vec::new()),
            "not this template's"
        );
        let padded = Template::parse("{a}#{b:03}").unwrap();
        assert_eq!(
            padded.readings("x#1#002", 8).unwrap(),
            vec![vec![
                ("a".to_string(), "x#1".to_string()),
                ("b".into(), "2".into())
            ]],
            "a reading whose padded value is not the exact rendering is none"
        );
        let one = Template::parse("USER#{email}").unwrap();
        assert!(
            one.parses_unambiguously("USER#a#b"),
            "nothing after the value to split on"
        );
    }

    use super::*;
    use std::collections::HashMap;

    fn render(template: &str, cells: &[(&str, Cell)]) -> Result<String, RenderError> {
        let map: HashMap<&str, &Cell> = cells.iter().map(|(k, v)| (*k, v)).collect();
        Template::parse(template)
            .unwrap()
            .render(|name| map.get(name.as_str()).copied())
    }

    #[test]
    fn renders_and_pads() {
        assert_eq!(
            render("CUSTOMER#{customer_id}", &[("customer_id", Cell::Int(7))]).unwrap(),
            "CUSTOMER#7"
        );
        assert_eq!(
            render("ORDER#{id:010}", &[("id", Cell::UInt(42))]).unwrap(),
            "ORDER#0000000042"
        );
        assert_eq!(
            render("{id:04}", &[("id", Cell::Int(-42))]).unwrap(),
            "-042"
        );
        assert_eq!(
            render(
                "CATEGORY#{pos:04}#{id}",
                &[("pos", Cell::Int(3)), ("id", Cell::Text("x".into()))]
            )
            .unwrap(),
            "CATEGORY#0003#x"
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Template::parse("A#{id"),
            Err(TemplateError::Unclosed(2))
        ));
        assert!(matches!(
            Template::parse("A#}"),
            Err(TemplateError::Unopened(2))
        ));
        assert!(matches!(
            Template::parse("{}"),
            Err(TemplateError::Empty(0))
        ));
        assert!(matches!(
            Template::parse("{id:x5}"),
            Err(TemplateError::BadFormat { .. })
        ));
        assert_eq!(
            render("{id}", &[("id", Cell::Null)]),
            Err(RenderError::NullColumn("id".into()))
        );
        assert!(matches!(
            render("{id:03}", &[("id", Cell::Text("a".into()))]),
            Err(RenderError::PadNotInteger { .. })
        ));
    }
}

/// Why a key does not parse with a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key {key:?} does not match template {template:?}: {reason}")]
pub struct KeyParseError {
    pub key: String,
    pub template: String,
    pub reason: String,
}

impl Template {
    /// Whether `text` parses with no other way to read it: exactly one reading (see
    /// [`Template::readings`]; a value holding a literal that follows it, even overlapping it as
    /// `acme:` before `::` does, could be split elsewhere, and the key would name another row).
    pub fn parses_unambiguously(&self, text: &str) -> bool {
        matches!(self.readings(text, 1), Some(readings) if readings.len() == 1)
    }

    /// Every way `key` parses with this template, as the column values (text) of each: a
    /// placeholder followed by a literal may end at any occurrence of that literal, overlapping
    /// ones included. `None` when there are more than `limit`. No reading: not this template's.
    pub fn readings(&self, key: &str, limit: usize) -> Option<Vec<Vec<(String, String)>>> {
        let mut out = Vec::new();
        let complete = self.readings_from(0, key, &mut Vec::new(), &mut out, limit);
        complete.then_some(out)
    }

    /// [`Template::readings`] from segment `index` on, `rest` left of the key: `false` once
    /// `out` holds more than `limit`.
    fn readings_from(
        &self,
        index: usize,
        rest: &str,
        values: &mut Vec<(String, String)>,
        out: &mut Vec<Vec<(String, String)>>,
        limit: usize,
    ) -> bool {
        let Some(segment) = self.segments.get(index) else {
            if rest.is_empty() {
                out.push(values.clone());
            }
            return out.len() <= limit;
        };
        let (name, pad) = match segment {
            Segment::Literal(text) => {
                return match rest.strip_prefix(text.as_str()) {
                    Some(after) => self.readings_from(index + 1, after, values, out, limit),
                    None => true,
                };
            }
            Segment::Column { name, pad } => (name, *pad),
        };
        let mut ends = Vec::new();
        match self.segments.get(index + 1) {
            None => ends.push(rest.len()),
            Some(Segment::Literal(next)) if !next.is_empty() => {
                let mut from = 0;
                while let Some(found) = rest[from..].find(next.as_str()) {
                    ends.push(from + found);
                    // The next occurrence may overlap this one: look from its next character.
                    from += found
                        + rest[from + found..]
                            .chars()
                            .next()
                            .map_or(1, char::len_utf8);
                }
            }
            // Two placeholders side by side: the first may end anywhere (within `limit`).
            Some(_) => ends.extend(
                rest.char_indices()
                    .map(|(at, _)| at)
                    .chain(std::iter::once(rest.len())),
            ),
        }
        for end in ends {
            let Ok(value) = column_value(name.as_str(), pad, &rest[..end]) else {
                continue;
            };
            values.push((name.to_string(), value));
            let complete = self.readings_from(index + 1, &rest[end..], values, out, limit);
            values.pop();
            if !complete {
                return false;
            }
        }
        true
    }

    /// The column values a key was rendered from: the inverse of [`Template::render`], as text.
    /// A placeholder takes everything up to the next literal (the shortest match); two
    /// placeholders side by side cannot be told apart, and an empty value is refused (see
    /// [`Template::readings`] for every reading, empty values included).
    pub fn parse_key(&self, key: &str) -> Result<Vec<(String, String)>, KeyParseError> {
        let fail = |reason: &str| KeyParseError {
            key: key.to_string(),
            template: self.source.clone(),
            reason: reason.to_string(),
        };
        let mut rest = key;
        let mut values = Vec::new();
        let mut segments = self.segments.iter().peekable();
        while let Some(segment) = segments.next() {
            match segment {
                Segment::Literal(text) => {
                    rest = rest
                        .strip_prefix(text.as_str())
                        .ok_or_else(|| fail(&format!("expected {text:?}")))?;
                }
                Segment::Column { name, pad } => {
                    let value = match segments.peek() {
                        None => std::mem::take(&mut rest),
                        Some(Segment::Literal(next)) => {
                            let end = rest.find(next.as_str()).ok_or_else(|| {
                                fail(&format!("expected {next:?} after {{{name}}}"))
                            })?;
                            let (value, after) = rest.split_at(end);
                            rest = after;
                            value
                        }
                        Some(Segment::Column { .. }) => {
                            return Err(fail("two placeholders side by side are ambiguous"))
                        }
                    };
                    let value = column_value(name.as_str(), *pad, value).map_err(|r| fail(&r))?;
                    // The one reading write-back takes: never an empty value (an application's
                    // own item `ORDER#` is not taken for a row whose column is '').
                    if value.is_empty() {
                        return Err(fail(&format!("empty value for {{{name}}}")));
                    }
                    values.push((name.to_string(), value));
                }
            }
        }
        if !rest.is_empty() {
            return Err(fail("text left after the template"));
        }
        Ok(values)
    }
}

impl Template {
    /// Whether some key could be parsed by both templates (conservative: `true` unless they
    /// are shown to be disjoint). Disjoint: literal prefixes or suffixes that differ, a literal
    /// template the other does not parse, or a zero-padded number where the other has a
    /// literal that cannot start (or end) a number.
    pub fn may_overlap(&self, other: &Template) -> bool {
        match (self.literal(), other.literal()) {
            (Some(a), Some(b)) => return a == b,
            (Some(a), None) => return other.parse_key(a).is_ok(),
            (None, Some(b)) => return self.parse_key(b).is_ok(),
            (None, None) => {}
        }
        let (prefix_a, prefix_b) = (self.edge_literal(true), other.edge_literal(true));
        if !(prefix_a.starts_with(prefix_b) || prefix_b.starts_with(prefix_a)) {
            return false;
        }
        let (suffix_a, suffix_b) = (self.edge_literal(false), other.edge_literal(false));
        if !(suffix_a.ends_with(suffix_b) || suffix_b.ends_with(suffix_a)) {
            return false;
        }
        // After the shorter prefix: a number on one side, a literal that no number starts with
        // on the other.
        let common = prefix_a.len().min(prefix_b.len());
        let number_start = |c: char| c == '-' || c.is_ascii_digit();
        let after = |t: &Template, prefix: &str| -> Option<(bool, Option<char>)> {
            let rest = &prefix[common..];
            if let Some(c) = rest.chars().next() {
                return Some((false, Some(c)));
            }
            let at = t
                .segments
                .iter()
                .position(|s| matches!(s, Segment::Column { .. }))?;
            match &t.segments[at] {
                Segment::Column { pad, .. } => Some((pad.is_some(), None)),
                Segment::Literal(_) => None,
            }
        };
        !matches!(
            (after(self, prefix_a), after(other, prefix_b)),
            (Some((true, _)), Some((_, Some(c)))) | (Some((_, Some(c))), Some((true, _)))
                if !number_start(c)
        )
    }

    /// The whole template when it has no placeholder.
    fn literal(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [] => Some(""),
            [Segment::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// The literal text before the first placeholder (`first`) or after the last.
    fn edge_literal(&self, first: bool) -> &str {
        let segment = if first {
            self.segments.first()
        } else {
            self.segments.last()
        };
        match segment {
            Some(Segment::Literal(text)) => text,
            _ => "",
        }
    }
}

#[cfg(test)]
mod overlap_tests {
    use super::*;

    fn t(source: &str) -> Template {
        Template::parse(source).unwrap()
    }

    #[test]
    fn templates_that_cannot_share_a_key_are_told_apart() {
        assert!(t("ACC#{id}").may_overlap(&t("ACC#{code}")));
        assert!(t("{id}").may_overlap(&t("ORDER#{id}")));
        assert!(t("A#{x}").may_overlap(&t("A#B{y}")));
        assert!(t("PROFILE").may_overlap(&t("PROFILE")));
        assert!(t("ORDER#{id:010}").may_overlap(&t("ORDER#-{x}")));
        assert!(!t("ACC#{id}").may_overlap(&t("ORDER#{id}")));
        assert!(!t("{id}#A").may_overlap(&t("{id}#B")));
        assert!(!t("PROFILE").may_overlap(&t("ORDER#{id:010}")));
        assert!(!t("PROFILE").may_overlap(&t("SETTINGS")));
        assert!(!t("ACC#{id:06}").may_overlap(&t("ACC#X{code}")));
        assert!(t("ORDER#{id}").may_overlap(&t("ORDER#0000000001")));
    }
}

#[cfg(test)]
mod parse_key_tests {
    use super::*;

    #[test]
    fn inverts_render() {
        let t = Template::parse("CATEGORY#{display_order:04}#{id}").unwrap();
        assert_eq!(
            t.parse_key("CATEGORY#0003#17").unwrap(),
            vec![
                ("display_order".into(), "3".into()),
                ("id".into(), "17".into())
            ]
        );
        assert_eq!(
            Template::parse("{id:04}")
                .unwrap()
                .parse_key("-042")
                .unwrap(),
            vec![("id".into(), "-42".into())]
        );
        assert!(t.parse_key("CATEGORY#x#1").is_err());
        assert!(t.parse_key("CATEGORY#3#17").is_err());
        assert!(t.parse_key("CATEGORY#+003#17").is_err());
        assert!(t.parse_key("PRODUCT#1#2").is_err());
        assert!(Template::parse("{a}{b}").unwrap().parse_key("12").is_err());
        assert_eq!(
            Template::parse("PROFILE")
                .unwrap()
                .parse_key("PROFILE")
                .unwrap(),
            vec![]
        );
    }
}
