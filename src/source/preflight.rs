//! Preflight: what must hold on the servers before streaming, each problem reported clearly.
//!
//! Source: `log_bin`, `binlog_format=ROW`, `binlog_row_image=FULL`, `binlog_row_metadata=FULL`,
//! the replication and SELECT privileges, that the checkpoint's binlog file is still on the
//! server, and that every column a view names exists with a type its conversion applies to.
//! DynamoDB: every table exists with the key schema (and streams) the views need.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{binlog_files, SourceError};
use crate::config::{Config, Problem};
use crate::pipeline::Checkpoint;
use crate::view::spec::{Aggregate, Attributes, JoinKind, TableRef, View};
use crate::view::value::Conversion;

/// Server variables rowcast needs.
pub async fn check_server(conn: &mut Conn, config: &Config) -> Result<Vec<Problem>, SourceError> {
    let mut problems = Vec::new();
    let mut add = |field: &str, message: String| {
        problems.push(Problem {
            file: config.file.clone(),
            field: field.into(),
            message,
        });
    };
    let rows: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
             ('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata', 'binlog_row_value_options')",
        )
        .await
        .map_err(SourceError::Query)?;
    let vars: HashMap<String, String> = rows
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_uppercase()))
        .collect();
    let want = [
        ("log_bin", "ON"),
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
        ("binlog_row_metadata", "FULL"),
    ];
    for (name, value) in want {
        match vars.get(name) {
            Some(actual) if actual == value => {}
            Some(actual) => add(
                "source",
                format!("server has {name}={actual}; rowcast needs {name}={value}"),
            ),
            None => add(
                "source",
                format!("server does not report {name}; rowcast needs {name}={value}"),
            ),
        }
    }
    if vars
        .get("binlog_row_value_options")
        .is_some_and(|v| v.contains("PARTIAL_JSON"))
    {
        add(
            "source",
            "server has binlog_row_value_options=PARTIAL_JSON; rowcast needs full JSON images"
                .into(),
        );
    }
    let marking =
        config.streams_skip_replication && config.views.iter().any(|v| v.writeback_enabled);
    if marking {
        // Set and cleared on this connection: MySQL has no such variable.
        if let Err(error) = conn.query_drop("SET SESSION skip_replication = 1").await {
            add(
                "streams.skip_replication",
                format!("the server does not take skip_replication ({error}): set streams.skip_replication = false; loop prevention does not need it"),
            );
        } else {
            conn.query_drop("SET SESSION skip_replication = 0")
                .await
                .map_err(SourceError::Query)?;
        }
    }
    Ok(problems)
}

/// Privileges as `SHOW GRANTS` lists them. Grants through roles are not resolved, so `run` only
/// warns about these (a missing privilege then fails clearly on use); `check --connect` lists them.
pub async fn check_privileges(
    conn: &mut Conn,
    config: &Config,
) -> Result<Vec<Problem>, SourceError> {
    let mut problems = Vec::new();
    let mut add = |field: &str, message: String| {
        problems.push(Problem {
            file: config.file.clone(),
            field: field.into(),
            message,
        });
    };
    let grants: Vec<String> = conn
        .query("SHOW GRANTS")
        .await
        .map_err(SourceError::Query)?;
    let grants = grants.join("\n").to_ascii_uppercase();
    let has = |what: &str| grants.contains("ALL PRIVILEGES ON *.*") || grants.contains(what);
    if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
        add(
            "source.url",
            "the user lacks REPLICATION SLAVE (needed to read the binlog)".into(),
        );
    }
    if !has("REPLICATION CLIENT") && !has("BINLOG MONITOR") {
        add(
            "source.url",
            "the user lacks REPLICATION CLIENT / BINLOG MONITOR (needed for the binlog position)"
                .into(),
        );
    }
    if !has("SELECT") {
        add(
            "source.url",
            "the user lacks SELECT (needed for schemas and snapshots)".into(),
        );
    }
    Ok(problems)
}

/// The checkpoint's binlog file must still be on the server: never skip data silently.
pub async fn check_checkpoint(
    conn: &mut Conn,
    config: &Config,
    checkpoint: &Checkpoint,
) -> Result<Vec<Problem>, SourceError> {
    let files = binlog_files(conn).await?;
    if files.contains(&checkpoint.position.file) {
        return Ok(Vec::new());
    }
    Ok(vec![Problem {
        file: config.file.clone(),
        field: "checkpoint".into(),
        message: format!(
            "checkpoint position {} is no longer on the server (oldest binlog: {}); the binlog was purged",
            checkpoint.position,
            files.first().map_or("none", String::as_str)
        ),
    }])
}

#[derive(Debug)]
struct ColumnInfo {
    data_type: String,
}

/// Every write-back view's key templates name a unique key of its root table, so that an
/// item leads to one row. `run` checks this too: write-back must never guess a row.
pub async fn check_writeback_keys(
    conn: &mut Conn,
    views: &[std::sync::Arc<View>],
) -> Result<Vec<Problem>, SourceError> {
    let mut problems = Vec::new();
    for view in views.iter().filter(|v| v.writeback_enabled) {
        let mut key_columns: Vec<&str> = view.key.pk.columns().collect();
        if let Some(sk) = &view.key.sk {
            key_columns.extend(sk.columns());
        }
        let unique = unique_keys(conn, &view.source).await?;
        if !unique
            .iter()
            .any(|key| key.iter().all(|c| key_columns.contains(&c.as_str())))
        {
            problems.push(Problem {
                file: view.file.clone(),
                field: "writeback.enabled".into(),
                message: format!(
                    "the key templates name no unique key of {} (they name {}): write-back could not find the one row behind an item",
                    view.source,
                    key_columns.join(", ")
                ),
            });
        }
    }
    Ok(problems)
}

/// Columns named by the views exist, and `as` conversions apply to their types.
pub async fn check_views(
    conn: &mut Conn,
    views: &[std::sync::Arc<View>],
) -> Result<Vec<Problem>, SourceError> {
    let mut problems = Vec::new();
    let mut cache: HashMap<TableRef, HashMap<String, ColumnInfo>> = HashMap::new();
    for view in views {
        load_columns(conn, &mut cache, &view.source).await?;
        for join in &view.joins {
            load_columns(conn, &mut cache, &join.from).await?;
        }
        let columns = &cache[&view.source];
        let mut add = |field: String, message: String| {
            problems.push(Problem {
                file: view.file.clone(),
                field,
                message,
            })
        };
        if columns.is_empty() {
            add(
                "source".into(),
                format!("table {} does not exist or is not readable", view.source),
            );
            continue;
        }
        let templates = std::iter::once(("key.pk", &view.key.pk))
            .chain(view.key.sk.as_ref().map(|t| ("key.sk", t)));
        for (field, template) in templates {
            for segment in &template.segments {
                if let crate::view::template::Segment::Column { name, pad } = segment {
                    match columns.get(name) {
                        None => add(
                            field.into(),
                            format!("column {name} is not in {}", view.source),
                        ),
                        Some(info) if pad.is_some() && !is_integer(&info.data_type) => add(
                            field.into(),
                            format!(
                                "{{{name}:0N}} needs an integer column; {name} is {}",
                                info.data_type
                            ),
                        ),
                        _ => {}
                    }
                }
            }
        }
        if let Some(filter) = &view.filter {
            let mut comparisons = Vec::new();
            filter.comparisons(&mut comparisons);
            for (column, literal) in comparisons {
                match columns.get(&column) {
                    None => add("filter".into(), format!("column {column} is not in {}", view.source)),
                    Some(info) if is_numeric(&info.data_type) && matches!(literal, Some(crate::view::filter::Literal::Str(_))) => {
                        add("filter".into(), format!("column {column} is numeric ({}) but is compared with a string literal", info.data_type))
                    }
                    _ => {}
                }
            }
        }
        match &view.attributes {
            Attributes::Implicit => {
                for name in columns.keys() {
                    if name.starts_with('_') || view.is_key_attribute(name) {
                        add("attributes".into(), format!("column {name} collides with a key or metadata attribute; map it under another name in [attributes]"));
                    }
                }
            }
            Attributes::Explicit(specs) => {
                for spec in specs {
                    let field = format!("attributes.{}", spec.name);
                    match columns.get(&spec.column) {
                        None => add(
                            field,
                            format!("column {} is not in {}", spec.column, view.source),
                        ),
                        Some(info) => {
                            if let Some(message) =
                                conversion_problem(spec.conversion, &info.data_type)
                            {
                                add(format!("{field}.as"), message);
                            }
                        }
                    }
                }
            }
        }
        if view.writeback_enabled {
            for (i, name) in view.writeback_attributes.iter().enumerate() {
                let column = view.writable(name).map(|(c, _)| c);
                if column.as_ref().is_some_and(|c| !columns.contains_key(c)) {
                    problems.push(Problem {
                        file: view.file.clone(),
                        field: format!("writeback.attributes[{i}]"),
                        message: format!(
                            "column {} is not in {}",
                            column.unwrap_or_default(),
                            view.source
                        ),
                    });
                }
            }
        }
        if view.has_joins() {
            let mut join_problems = Vec::new();
            check_joins(conn, view, &cache, &mut join_problems).await?;
            for (field, message) in join_problems {
                problems.push(Problem {
                    file: view.file.clone(),
                    field,
                    message,
                });
            }
        }
    }
    problems.extend(check_writeback_keys(conn, views).await?);
    Ok(problems)
}

async fn load_columns(
    conn: &mut Conn,
    cache: &mut HashMap<TableRef, HashMap<String, ColumnInfo>>,
    table: &TableRef,
) -> Result<(), SourceError> {
    if cache.contains_key(table) {
        return Ok(());
    }
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.database, &table.table),
        )
        .await
        .map_err(SourceError::Query)?;
    let columns = rows
        .into_iter()
        .map(|(name, data_type)| {
            (
                name,
                ColumnInfo {
                    data_type: data_type.to_ascii_lowercase(),
                },
            )
        })
        .collect();
    cache.insert(table.clone(), columns);
    Ok(())
}

/// Unique keys (the primary key included) of a table, each as its set of columns.
async fn unique_keys(conn: &mut Conn, table: &TableRef) -> Result<Vec<Vec<String>>, SourceError> {
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (&table.database, &table.table),
        )
        .await
        .map_err(SourceError::Query)?;
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in rows {
        match keys.iter_mut().find(|(name, _)| *name == index) {
            Some((_, columns)) => columns.push(column),
            None => keys.push((index, vec![column])),
        }
    }
    Ok(keys
        .into_iter()
        .map(|(_, mut c)| {
            c.sort();
            c
        })
        .collect())
}

/// Joins: tables and columns exist, a lookup's `on` columns are a unique key of its table,
/// conversions apply, sums are over numbers, and the root has a primary key.
async fn check_joins(
    conn: &mut Conn,
    view: &View,
    cache: &HashMap<TableRef, HashMap<String, ColumnInfo>>,
    problems: &mut Vec<(String, String)>,
) -> Result<(), SourceError> {
    let root = &cache[&view.source];
    if !root.is_empty() && unique_keys(conn, &view.source).await?.is_empty() {
        problems.push((
            "source".into(),
            format!(
                "{} has no primary key; views with joins need one",
                view.source
            ),
        ));
    }
    for join in &view.joins {
        let from = &cache[&join.from];
        let field = &join.field;
        if view.attributes == Attributes::Implicit {
            let added: Vec<&str> = match &join.kind {
                JoinKind::Lookup { attributes } => {
                    attributes.iter().map(|a| a.name.as_str()).collect()
                }
                JoinKind::Embed { attribute, .. } | JoinKind::Aggregate { attribute, .. } => {
                    vec![attribute.as_str()]
                }
            };
            for name in added.into_iter().filter(|n| root.contains_key(*n)) {
                problems.push((
                    field.clone(),
                    format!(
                        "attribute {name} is also a column of {} (implicit attributes); rename one",
                        view.source
                    ),
                ));
            }
        }
        if from.is_empty() {
            problems.push((
                format!("{field}.from"),
                format!("table {} does not exist or is not readable", join.from),
            ));
            continue;
        }
        for (from_column, root_column) in &join.on {
            if !from.contains_key(from_column) {
                problems.push((
                    format!("{field}.on.{from_column}"),
                    format!("column {from_column} is not in {}", join.from),
                ));
            }
            if !root.is_empty() && !root.contains_key(root_column) {
                problems.push((
                    format!("{field}.on.{from_column}"),
                    format!("column {root_column} is not in {}", view.source),
                ));
            }
        }
        let mut column = |sub: String, name: &str, conversion: Conversion| match from.get(name) {
            None => problems.push((
                format!("{field}.{sub}"),
                format!("column {name} is not in {}", join.from),
            )),
            Some(info) => {
                if let Some(message) = conversion_problem(conversion, &info.data_type) {
                    problems.push((format!("{field}.{sub}.as"), message));
                }
            }
        };
        match &join.kind {
            JoinKind::Lookup { attributes } => {
                for spec in attributes {
                    column(
                        format!("attributes.{}", spec.name),
                        &spec.column,
                        spec.conversion,
                    );
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
                    column(
                        format!("attributes.{}", spec.name),
                        &spec.column,
                        spec.conversion,
                    );
                }
            }
            JoinKind::Aggregate { function, .. } => {
                if let Some(name) = function.column() {
                    column("function".into(), name, Conversion::Native);
                    let numeric = from
                        .get(name)
                        .is_none_or(|info| is_numeric(&info.data_type));
                    if matches!(function, Aggregate::Sum(_)) && !numeric {
                        problems.push((
                            format!("{field}.function"),
                            format!(
                                "sum needs a numeric column; {name} is {}",
                                from[name].data_type
                            ),
                        ));
                    }
                }
            }
        }
        if matches!(join.kind, JoinKind::Lookup { .. }) {
            let mut on: Vec<String> = join.on.iter().map(|(f, _)| f.clone()).collect();
            on.sort();
            if !unique_keys(conn, &join.from).await?.contains(&on) {
                problems.push((format!("{field}.on"), format!(
                    "({}) is not a unique key of {}: a lookup copies one row; use [[embed]] for many",
                    on.join(", "),
                    join.from
                )));
            }
        }
    }
    Ok(())
}

fn is_integer(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
    )
}

fn is_numeric(data_type: &str) -> bool {
    is_integer(data_type)
        || matches!(
            data_type,
            "decimal" | "numeric" | "float" | "double" | "real" | "bit" | "year"
        )
}

fn is_text(data_type: &str) -> bool {
    matches!(
        data_type,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum"
    )
}

fn conversion_problem(conversion: Conversion, data_type: &str) -> Option<String> {
    let ok = match conversion {
        Conversion::Native | Conversion::String => true,
        Conversion::Number => is_numeric(data_type) || is_text(data_type),
        Conversion::EpochSeconds | Conversion::EpochMillis => {
            matches!(data_type, "date" | "datetime" | "timestamp")
        }
        // MariaDB reports JSON columns as longtext.
        Conversion::JsonString => matches!(data_type, "json" | "longtext"),
    };
    (!ok).then(|| format!("conversion {conversion:?} does not apply to a {data_type} column"))
}
