//! Key templates: literal text and `{column}` / `{column:0N}` placeholders.
//!
//! `{col}` renders the value as `as = "string"` would; `{col:0N}` zero-pads an integer to N
//! digits like Rust's `{:0N}` (`-042` for -42 at width 4). A NULL in a key column means the row
//! has no item; an empty rendered key is the caller's to dead-letter.

use super::value::{Cell, ValueError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Column { name: String, pad: Option<usize> },
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
        lookup: impl Fn(&str) -> Option<&'a Cell>,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Column { name, pad } => {
                    let cell =
                        lookup(name).ok_or_else(|| RenderError::MissingColumn(name.clone()))?;
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
    match pad {
        Some(width) => match cell {
            Cell::Int(v) => out.push_str(&format!("{v:0width$}")),
            Cell::UInt(v) => out.push_str(&format!("{v:0width$}")),
            other => {
                return Err(RenderError::PadNotInteger {
                    column: name.to_string(),
                    kind: other.kind(),
                })
            }
        },
        None => {
            let text = cell
                .to_text()
                .map_err(|source| RenderError::Value {
                    column: name.to_string(),
                    source,
                })?
                .ok_or_else(|| RenderError::NullColumn(name.to_string()))?;
            out.push_str(&text);
        }
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
        name: name.to_string(),
        pad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn render(template: &str, cells: &[(&str, Cell)]) -> Result<String, RenderError> {
        let map: HashMap<&str, &Cell> = cells.iter().map(|(k, v)| (*k, v)).collect();
        Template::parse(template)
            .unwrap()
            .render(|name| map.get(name).copied())
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
    /// The column values a key was rendered from: the inverse of [`Template::render`], as text.
    /// A placeholder takes everything up to the next literal (the shortest match); two
    /// placeholders side by side cannot be told apart.
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
                    if value.is_empty() {
                        return Err(fail(&format!("empty value for {{{name}}}")));
                    }
                    let value = match pad {
                        Some(_) => value
                            .parse::<i128>()
                            .map_err(|_| fail(&format!("{{{name}}} is not an integer")))?
                            .to_string(),
                        None => value.to_string(),
                    };
                    values.push((name.clone(), value));
                }
            }
        }
        if !rest.is_empty() {
            return Err(fail("text left after the template"));
        }
        Ok(values)
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
