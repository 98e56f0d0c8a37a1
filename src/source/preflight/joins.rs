//! A view's joins against the tables they read: tables and columns exist, a lookup's `on`
//! columns are a unique key of its table, conversions apply, sums are over numbers, the root has
//! a primary key, and join attributes collide with no implicit attribute.

use std::collections::HashMap;

use mysql_async::Conn;

use super::columns::{conversion_problem, has_primary_key, is_numeric, unique_keys, Columns};
use crate::source::SourceError;
use crate::view::spec::{Aggregate, Attributes, Join, JoinKind, TableRef, View};
use crate::view::value::Conversion;

/// Adds `(field, message)` for each problem of the view's joins.
pub(super) async fn check_joins(
    conn: &mut Conn,
    view: &View,
    cache: &HashMap<TableRef, Columns>,
    found: &mut Vec<(String, String)>,
) -> Result<(), SourceError> {
    let root = &cache[&view.source];
    // A PRIMARY KEY proper: a UNIQUE key of NOT NULL columns is not one to the marks that
    // make a joined view's items (`sql/table.rs` reads the constraint named PRIMARY), which
    // would halt the view at its first change.
    if !has_primary_key(conn, &view.source).await? {
        let message = format!(
            "{} has no primary key (a unique key is not enough); views with joins need one",
            view.source
        );
        found.push(("source".into(), message));
    }
    for join in &view.joins {
        if view.attributes == Attributes::Implicit {
            check_collisions(view, join, root, found);
        }
        let from = &cache[&join.from];
        if from.is_empty() {
            let message = format!("table {} does not exist or is not readable", join.from);
            found.push((format!("{}.from", join.field), message));
            continue;
        }
        if let Some(message) = super::types::old_temporal_columns(&join.from, from) {
            found.push((format!("{}.from", join.field), message));
        }
        check_on(view, join, root, from, found);
        check_columns(join, from, found);
        if matches!(join.kind, JoinKind::Lookup { .. }) {
            let mut on: Vec<String> = join.on.iter().map(|(f, _)| f.to_lowercase()).collect();
            on.sort();
            if !unique_keys(conn, &join.from).await?.contains(&on) {
                found.push((format!("{}.on", join.field), format!(
                    "({}) is not a unique key of {}: a lookup copies one row; use [[embed]] for many",
                    on.join(", "),
                    join.from
                )));
            }
        }
    }
    Ok(())
}

/// Attributes a join adds that are also columns of the root (implicit attributes).
fn check_collisions(view: &View, join: &Join, root: &Columns, found: &mut Vec<(String, String)>) {
    let added: Vec<&str> = match &join.kind {
        JoinKind::Lookup { attributes } => attributes.iter().map(|a| &*a.name).collect(),
        JoinKind::Embed { attribute, .. } | JoinKind::Aggregate { attribute, .. } => {
            vec![attribute.as_str()]
        }
    };
    for name in added.into_iter().filter(|n| root.contains_key(n)) {
        found.push((
            join.field.clone(),
            format!(
                "attribute {name} is also a column of {} (implicit attributes); rename one",
                view.source
            ),
        ));
    }
}

fn check_on(
    view: &View,
    join: &Join,
    root: &Columns,
    from: &Columns,
    found: &mut Vec<(String, String)>,
) {
    for (from_column, root_column) in &join.on {
        let field = format!("{}.on.{from_column}", join.field);
        if !from.contains_key(from_column) {
            let message = format!("column {from_column} is not in {}", join.from);
            found.push((field.clone(), message));
        }
        if !root.contains_key(root_column) {
            found.push((
                field,
                format!("column {root_column} is not in {}", view.source),
            ));
        }
    }
}

/// The related table's columns a join reads: they exist and their conversions apply.
fn check_columns(join: &Join, from: &Columns, found: &mut Vec<(String, String)>) {
    let field = &join.field;
    let mut column = |sub: String, name: &str, conversion: Conversion| match from.get(name) {
        None => found.push((
            format!("{field}.{sub}"),
            format!("column {name} is not in {}", join.from),
        )),
        Some(info) => {
            if let Some(message) = conversion_problem(conversion, &info.data_type) {
                found.push((format!("{field}.{sub}.as"), message));
            }
        }
    };
    match &join.kind {
        JoinKind::Lookup { attributes } => {
            for spec in attributes {
                let sub = format!("attributes.{}", spec.name);
                column(sub, &spec.column, spec.conversion);
            }
        }
        JoinKind::Embed {
            order_by,
            attributes,
            ..
        } => {
            for order in order_by {
                column("order_by".into(), &order.column, Conversion::Native);
            }
            for spec in attributes.iter().flatten() {
                let sub = format!("attributes.{}", spec.name);
                column(sub, &spec.column, spec.conversion);
            }
        }
        JoinKind::Aggregate { function, .. } => {
            let Some(name) = function.column() else {
                return;
            };
            column("function".into(), name, Conversion::Native);
            if let Some(info) = from.get(name) {
                if matches!(function, Aggregate::Sum(_)) && !is_numeric(&info.data_type) {
                    found.push((
                        format!("{field}.function"),
                        format!("sum needs a numeric column; {name} is {}", info.data_type),
                    ));
                }
            }
        }
    }
}
