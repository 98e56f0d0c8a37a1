//! The views against the tables they read: every column a view names exists, `{col:0N}` pads
//! integers only, conversions apply to the column types, filters compare numbers with numbers,
//! implicit attributes collide with no key or metadata name, writable columns exist.

use std::collections::HashMap;

use mysql_async::Conn;

use super::columns::{conversion_problem, is_integer, is_numeric, load_columns, Columns};
use super::joins::check_joins;
use super::{check_cascades, check_writeback_keys};
use crate::config::Problem;
use crate::source::SourceError;
use crate::view::filter::Literal;
use crate::view::spec::{Attributes, TableRef, View};
use crate::view::template::{Segment, Template};

/// `(field, message)` of one view's problems.
type Found = Vec<(String, String)>;

/// Columns named by the views exist, and `as` conversions apply to their types.
pub async fn check_views(
    conn: &mut Conn,
    views: &[std::sync::Arc<View>],
) -> Result<Vec<Problem>, SourceError> {
    let mut problems = check_view_columns(conn, views).await?;
    problems.extend(check_writeback_keys(conn, views).await?);
    problems.extend(check_cascades(conn, views).await?);
    Ok(problems)
}

/// Each view's columns, conversions and joins against its tables (what a reload checks of the
/// views it adds or changes).
pub async fn check_view_columns(
    conn: &mut Conn,
    views: &[std::sync::Arc<View>],
) -> Result<Vec<Problem>, SourceError> {
    let mut problems = Vec::new();
    let mut cache: HashMap<TableRef, Columns> = HashMap::new();
    for view in views {
        load_columns(conn, &mut cache, &view.source).await?;
        for join in &view.joins {
            load_columns(conn, &mut cache, &join.from).await?;
        }
        let mut found = check_view(view, &cache[&view.source]);
        if view.has_joins() && !cache[&view.source].is_empty() {
            check_joins(conn, view, &cache, &mut found).await?;
        }
        problems.extend(found.into_iter().map(|(field, message)| Problem {
            file: view.file.clone(),
            field,
            message,
        }));
    }
    Ok(problems)
}

/// The view's own columns (its joins aside) against its root table's.
fn check_view(view: &View, columns: &Columns) -> Found {
    let mut found = Found::new();
    if columns.is_empty() {
        let message = format!("table {} does not exist or is not readable", view.source);
        found.push(("source".into(), message));
        return found;
    }
    check_templates(view, columns, &mut found);
    check_filter(view, columns, &mut found);
    check_attributes(view, columns, &mut found);
    found.extend(super::types::old_temporal_root(view, columns));
    if view.writeback_enabled {
        for (i, name) in view.writeback_attributes.iter().enumerate() {
            if let Some((column, _)) = view.writable(name) {
                if !columns.contains_key(&column) {
                    let message = format!("column {column} is not in {}", view.source);
                    found.push((format!("writeback.attributes[{i}]"), message));
                }
            }
        }
    }
    found
}

fn check_templates(view: &View, columns: &Columns, found: &mut Found) {
    let mut templates: Vec<(String, &Template)> = std::iter::once(("key.pk".into(), &view.key.pk))
        .chain(view.key.sk.as_ref().map(|t| ("key.sk".into(), t)))
        .collect();
    for (i, index) in view.indexes.iter().enumerate() {
        templates.extend(
            index
                .templates()
                .map(|(part, t)| (format!("index[{i}].{part}"), t)),
        );
    }
    for (field, template) in templates {
        for segment in &template.segments {
            let Segment::Column { name, pad } = segment else {
                continue;
            };
            match columns.get(name.as_str()) {
                None => {
                    let message = format!("column {name} is not in {}", view.source);
                    found.push((field.clone(), message));
                }
                Some(info) if pad.is_some() && !is_integer(&info.data_type) => {
                    let message = format!(
                        "{{{name}:0N}} needs an integer column; {name} is {}",
                        info.data_type
                    );
                    found.push((field.clone(), message));
                }
                _ => {}
            }
        }
    }
}

fn check_filter(view: &View, columns: &Columns, found: &mut Found) {
    let Some(filter) = &view.filter else {
        return;
    };
    let mut comparisons = Vec::new();
    filter.comparisons(&mut comparisons);
    for (column, literal) in comparisons {
        let message = match columns.get(&column) {
            None => format!("column {column} is not in {}", view.source),
            Some(info)
                if is_numeric(&info.data_type) && matches!(literal, Some(Literal::Str(_))) =>
            {
                format!(
                    "column {column} is numeric ({}) but is compared with a string literal",
                    info.data_type
                )
            }
            _ => continue,
        };
        found.push(("filter".into(), message));
    }
}

fn check_attributes(view: &View, columns: &Columns, found: &mut Found) {
    match &view.attributes {
        Attributes::Implicit => {
            for name in columns.keys() {
                if name.starts_with('_') || view.is_key_attribute(name) {
                    found.push(("attributes".into(), format!("column {name} collides with a key or metadata attribute; map it under another name in [attributes]")));
                }
            }
        }
        Attributes::Explicit(specs) => {
            for spec in specs {
                let field = format!("attributes.{}", spec.name);
                match columns.get(spec.column.as_str()) {
                    None => {
                        let message = format!("column {} is not in {}", spec.column, view.source);
                        found.push((field, message));
                    }
                    Some(info) => {
                        if let Some(message) = conversion_problem(spec.conversion, &info.data_type)
                        {
                            found.push((format!("{field}.as"), message));
                        }
                    }
                }
            }
        }
    }
}
