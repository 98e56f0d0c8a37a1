//! Raw → validated, for a view's `[[lookup]]`, `[[embed]]` and `[[aggregate]]` sections.

use std::collections::BTreeMap;
use std::path::Path;

use super::compile::{check_attribute_name, Problems};
use super::raw::{RawEmbed, RawLookup, RawView};
use super::view::compile_attribute;
use crate::view::spec::{Aggregate, Attributes, Join, JoinKind, OrderBy, TableRef};

fn compile_on(
    file: &Path,
    field: &str,
    on: &BTreeMap<String, String>,
    problems: &mut Problems,
) -> Vec<(String, String)> {
    if on.is_empty() {
        problems.add(
            file,
            format!("{field}.on"),
            "needs at least one column pair",
        );
    }
    let mut pairs = Vec::new();
    for (from_column, root_column) in on {
        if from_column.is_empty() || root_column.is_empty() {
            problems.add(
                file,
                format!("{field}.on.{from_column}"),
                "column name is empty",
            );
        }
        pairs.push((from_column.clone(), root_column.clone()));
    }
    pairs
}

fn compile_from(file: &Path, field: &str, text: &str, problems: &mut Problems) -> TableRef {
    TableRef::parse(text).unwrap_or_else(|| {
        problems.add(
            file,
            format!("{field}.from"),
            format!("{text:?} must be database.table"),
        );
        TableRef {
            database: String::new(),
            table: String::new(),
        }
    })
}

fn compile_order_by(
    file: &Path,
    field: &str,
    raw: Option<&toml::Value>,
    problems: &mut Problems,
) -> Vec<OrderBy> {
    let texts: Vec<String> = match raw {
        None => return Vec::new(),
        Some(toml::Value::String(text)) => text.split(',').map(str::to_string).collect(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().unwrap_or("").to_string())
            .collect(),
        Some(other) => {
            problems.add(
                file,
                format!("{field}.order_by"),
                format!(
                    "expected a column, \"col DESC\" or a list of them, found a {}",
                    other.type_str()
                ),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for text in texts {
        let words: Vec<&str> = text.split_whitespace().collect();
        let parsed = match words.as_slice() {
            [column] => Some((column, false)),
            [column, dir] if dir.eq_ignore_ascii_case("desc") => Some((column, true)),
            [column, dir] if dir.eq_ignore_ascii_case("asc") => Some((column, false)),
            _ => None,
        };
        match parsed {
            Some((column, descending)) => out.push(OrderBy {
                column: column.to_string(),
                descending,
            }),
            None => problems.add(
                file,
                format!("{field}.order_by"),
                format!("{text:?}: expected \"column\" or \"column DESC\""),
            ),
        }
    }
    out
}

/// Lookups, embeds and aggregates; every attribute they add must be new to the item.
pub(super) fn compile_joins(
    file: &Path,
    raw: &RawView,
    attributes: &Attributes,
    keys: [&str; 2],
    problems: &mut Problems,
) -> Vec<Join> {
    let mut names = AttributeNames {
        file,
        taken: keys
            .iter()
            .filter(|k| !k.is_empty())
            .map(|k| k.to_string())
            .collect(),
    };
    if let Attributes::Explicit(specs) = attributes {
        names.taken.extend(specs.iter().map(|s| s.name.to_string()));
    }
    let mut joins = Vec::new();
    for (i, lookup) in raw.lookup.iter().flatten().enumerate() {
        joins.push(compile_lookup(file, i, lookup, &mut names, problems));
    }
    for (i, embed) in raw.embed.iter().flatten().enumerate() {
        joins.push(compile_embed(file, i, embed, &mut names, problems));
    }
    for (i, aggregate) in raw.aggregate.iter().flatten().enumerate() {
        let field = format!("aggregate[{i}]");
        names.claim(
            &format!("{field}.attribute"),
            &aggregate.attribute,
            problems,
        );
        let function = Aggregate::parse(&aggregate.function).unwrap_or_else(|| {
            let message = format!(
                "{:?}: expected count, sum:COLUMN, min:COLUMN or max:COLUMN",
                aggregate.function
            );
            problems.add(file, format!("{field}.function"), message);
            Aggregate::Count
        });
        joins.push(Join {
            from: compile_from(file, &field, &aggregate.from, problems),
            on: compile_on(file, &field, &aggregate.on, problems),
            kind: JoinKind::Aggregate {
                attribute: aggregate.attribute.clone(),
                function,
            },
            field,
        });
    }
    joins
}

/// The attribute names a view's item already has: a join may not add one twice.
struct AttributeNames<'a> {
    file: &'a Path,
    taken: Vec<String>,
}

impl AttributeNames<'_> {
    fn claim(&mut self, field: &str, name: &str, problems: &mut Problems) {
        check_attribute_name(self.file, field, name, problems);
        if self.taken.iter().any(|t| t == name) {
            let message = format!("{name:?} is already an attribute of this view");
            problems.add(self.file, field, message);
        }
        self.taken.push(name.to_string());
    }
}

fn compile_lookup(
    file: &Path,
    i: usize,
    lookup: &RawLookup,
    names: &mut AttributeNames<'_>,
    problems: &mut Problems,
) -> Join {
    let field = format!("lookup[{i}]");
    if lookup.attributes.is_empty() {
        problems.add(file, format!("{field}.attributes"), "copies no attribute");
    }
    let mut specs = Vec::new();
    for (name, attribute) in &lookup.attributes {
        let attr_field = format!("{field}.attributes.{name}");
        names.claim(&attr_field, name, problems);
        specs.push(compile_attribute(
            file,
            &attr_field,
            name,
            attribute,
            problems,
        ));
    }
    Join {
        from: compile_from(file, &field, &lookup.from, problems),
        on: compile_on(file, &field, &lookup.on, problems),
        kind: JoinKind::Lookup { attributes: specs },
        field,
    }
}

fn compile_embed(
    file: &Path,
    i: usize,
    embed: &RawEmbed,
    names: &mut AttributeNames<'_>,
    problems: &mut Problems,
) -> Join {
    let field = format!("embed[{i}]");
    names.claim(&format!("{field}.attribute"), &embed.attribute, problems);
    let specs = embed.attributes.as_ref().map(|map| {
        map.iter()
            .map(|(name, attribute)| {
                let attr_field = format!("{field}.attributes.{name}");
                if name.is_empty() {
                    problems.add(file, &attr_field, "attribute name is empty");
                }
                compile_attribute(file, &attr_field, name, attribute, problems)
            })
            .collect()
    });
    Join {
        from: compile_from(file, &field, &embed.from, problems),
        on: compile_on(file, &field, &embed.on, problems),
        kind: JoinKind::Embed {
            attribute: embed.attribute.clone(),
            order_by: compile_order_by(file, &field, embed.order_by.as_ref(), problems),
            attributes: specs,
        },
        field,
    }
}
