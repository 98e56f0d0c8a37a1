//! Preflight: what must hold on the servers before streaming, each problem reported clearly.
//!
//! Source: `log_bin`, `binlog_format=ROW`, `binlog_row_image=FULL`, `binlog_row_metadata=FULL`,
//! `log_bin_compress=OFF` (MariaDB),
//! the replication and SELECT privileges, that the checkpoint's binlog file is still on the
//! server, and that every column a view names exists with a type its conversion applies to, and
//! no table a view reads has a cascading foreign key (cascades are not in the binlog).
//! DynamoDB: every table exists with the key schema (and streams) the views need.

mod cascades;
mod columns;
mod grants;
mod joins;
mod names;
mod types;
mod views;

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

pub use self::cascades::check_cascades;
use self::columns::unique_keys;
pub use self::types::{check_column_types, check_system_versioned};
pub use self::views::{check_view_columns, check_views};
use super::{binlog_files, SourceError};
use crate::config::{Config, Problem};
use crate::pipeline::Checkpoint;
use crate::view::spec::{TableRef, View};

/// Server variables rowcast needs.
pub async fn check_server(
    conn: &mut Conn,
    config: &Config,
    flavor: super::Flavor,
) -> Result<Vec<Problem>, SourceError> {
    let mut problems = Vec::new();
    let mut add = |field: &str, message: String| {
        problems.push(Problem {
            file: config.file.clone(),
            field: field.into(),
            message,
        });
    };
    if config.source.resume_by_gtid && flavor == super::Flavor::MySql {
        add(
            "source.resume",
            "resume = \"gtid\" is supported on MariaDB only".into(),
        );
    }
    let vars = global_variables(
        conn,
        "'log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata', \
         'binlog_row_value_options', 'log_bin_compress'",
    )
    .await?;
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
    if vars.get("log_bin_compress").is_some_and(|v| v == "ON") {
        add(
            "source",
            "server has log_bin_compress=ON; rowcast cannot read compressed binlog events (a change in one halts its views): SET GLOBAL log_bin_compress = OFF".into(),
        );
    }
    if let Some(message) = server_id_problem(conn, config, flavor).await {
        add("source.server_id", message);
    }
    if let Some(message) = skip_replication_problem(conn, config).await? {
        add("streams.skip_replication", message);
    }
    // Every view's tables against each other: at start, at a reload, and by `check --connect`.
    problems.extend(names::check_spellings(conn, &config.views).await?);
    Ok(problems)
}

/// The server's global variables of `names` (a quoted list), by lower-case name, upper-case
/// values.
async fn global_variables(
    conn: &mut Conn,
    names: &str,
) -> Result<HashMap<String, String>, SourceError> {
    let rows: Vec<(String, String)> = conn
        .query(format!(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})"
        ))
        .await
        .map_err(SourceError::Query)?;
    Ok(rows
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_uppercase()))
        .collect())
}

/// Write-back marks its statements with `skip_replication` (`streams.skip_replication`): the
/// server must take it (MySQL has no such variable). Set and cleared on this connection.
async fn skip_replication_problem(
    conn: &mut Conn,
    config: &Config,
) -> Result<Option<String>, SourceError> {
    let marking =
        config.streams_skip_replication && config.views.iter().any(|v| v.writeback_enabled);
    if !marking {
        return Ok(None);
    }
    if let Err(error) = conn.query_drop("SET SESSION skip_replication = 1").await {
        return Ok(Some(format!("the server does not take skip_replication ({error}): set streams.skip_replication = false; loop prevention does not need it")));
    }
    conn.query_drop("SET SESSION skip_replication = 0")
        .await
        .map_err(SourceError::Query)?;
    Ok(None)
}

/// A replica that uses rowcast's `server_id` (MariaDB only: see `source::replica_using`).
async fn server_id_problem(
    conn: &mut Conn,
    config: &Config,
    flavor: super::Flavor,
) -> Option<String> {
    if flavor != super::Flavor::MariaDb {
        return None;
    }
    let replica = super::replica_using(conn, config.source.server_id).await?;
    Some(super::server_id_taken(config.source.server_id, &replica))
}

/// The privileges rowcast needs, resolved from `SHOW GRANTS` (global, database, wildcard and
/// table grants, and the grants of roles, see `grants`): REPLICATION SLAVE and REPLICATION
/// CLIENT / BINLOG MONITOR globally, SELECT on every table a view reads, and INSERT, UPDATE and
/// DELETE on the root table of each write-back view. Each problem names what is missing where.
pub async fn check_privileges(
    conn: &mut Conn,
    config: &Config,
    flavor: super::Flavor,
) -> Result<Vec<Problem>, SourceError> {
    let resolved = resolved_grants(conn).await?;
    let mut problems = Vec::new();
    let mut add = |message: String| {
        problems.push(Problem {
            file: config.file.clone(),
            field: "source.url".into(),
            message,
        });
    };
    let global = |privilege: &str| grants::has(&resolved, privilege, None);
    if !global("REPLICATION SLAVE") && !global("REPLICATION REPLICA") {
        add("the user lacks REPLICATION SLAVE on *.* (needed to read the binlog)".into());
    }
    if !global("REPLICATION CLIENT") && !global("BINLOG MONITOR") {
        add(
            "the user lacks REPLICATION CLIENT / BINLOG MONITOR on *.* (needed for the binlog position)"
                .into(),
        );
    }
    let mut needed: Vec<(TableRef, &str, &str)> = Vec::new();
    for view in &config.views {
        needed.push((view.source.clone(), "SELECT", "snapshots and schemas"));
        for join in &view.joins {
            needed.push((join.from.clone(), "SELECT", "join reads"));
        }
        if view.writeback_enabled {
            for privilege in ["INSERT", "UPDATE", "DELETE"] {
                needed.push((view.source.clone(), privilege, "write-back"));
            }
        }
    }
    // A server that compares table names lowercased keeps them lowercased in its grants.
    let folded = super::folds_table_names(conn).await?;
    let mut said = std::collections::HashSet::new();
    for (table, privilege, why) in needed {
        let (database, name) = if folded {
            (table.database.to_lowercase(), table.table.to_lowercase())
        } else {
            (table.database.clone(), table.table.clone())
        };
        let on = Some((database.as_str(), name.as_str()));
        if !grants::has(&resolved, privilege, on) && said.insert((table.clone(), privilege)) {
            add(format!(
                "the user lacks {privilege} on {table} (needed for {why})"
            ));
        }
    }
    if config.views.iter().any(|v| v.writeback_enabled) {
        for message in read_only_problems(conn, &resolved, flavor).await? {
            add(message);
        }
    }
    Ok(problems)
}

/// Write-back's statements would be refused: the server takes no writes from this user
/// (`read_only`, a replica's or a switchover's setting), from anyone (`innodb_read_only`, set
/// at the server's start), or sessions begin read-only (a global `transaction_read_only`,
/// `tx_read_only` on MariaDB before 11.1: error 1792 for every user; rowcast does not override
/// it, since it is the server's administrator's choice). `run` waits for such a server (an hour
/// at most, then dead-letters) and only warns at start; `check --connect` reports it. Users who
/// may write under `read_only`: MariaDB's READ_ONLY ADMIN (in SUPER before 10.11; none under
/// `read_only = NO_LOCK_NO_ADMIN`), MySQL's SUPER or CONNECTION_ADMIN (none under
/// `super_read_only`).
async fn read_only_problems(
    conn: &mut Conn,
    resolved: &[grants::Grant],
    flavor: super::Flavor,
) -> Result<Vec<String>, SourceError> {
    let vars = global_variables(
        conn,
        "'read_only', 'super_read_only', 'innodb_read_only', 'transaction_read_only', 'tx_read_only'",
    )
    .await?;
    let on = |name: &str| {
        vars.get(name)
            .is_some_and(|v| !matches!(v.as_str(), "OFF" | "0"))
    };
    let refused = "write-back's statements would be refused (`run` holds them an hour at most, then dead-letters them)";
    let mut problems = Vec::new();
    if on("innodb_read_only") {
        problems.push(format!(
            "the server's InnoDB is read-only (innodb_read_only=ON, set at its start): {refused}"
        ));
    }
    for name in ["transaction_read_only", "tx_read_only"] {
        if on(name) {
            problems.push(format!(
                "sessions begin read-only on the server (global {name}=ON): {refused}; is source.url a replica?"
            ));
            break;
        }
    }
    let read_only = vars.get("read_only").map_or("OFF", String::as_str);
    if !on("read_only") {
        return Ok(problems);
    }
    let global = |privilege: &str| grants::has(resolved, privilege, None);
    let exempt = if flavor == super::Flavor::MariaDb {
        let before_10_11 = conn.server_version() < (10, 11, 0);
        read_only != "NO_LOCK_NO_ADMIN"
            && (global("READ_ONLY ADMIN") || (before_10_11 && global("SUPER")))
    } else {
        !on("super_read_only") && (global("SUPER") || global("CONNECTION_ADMIN"))
    };
    if !exempt {
        problems.push(format!(
            "the server is read-only (read_only={read_only}) and the user may not write through it (READ_ONLY ADMIN on MariaDB, SUPER or CONNECTION_ADMIN on MySQL): {refused}; is source.url a replica?"
        ));
    }
    Ok(problems)
}

/// The grants of the current user and, transitively, of its active roles (the default role
/// MariaDB sets at login, the default roles of MySQL): a granted role that is not active gives
/// nothing, since rowcast never runs `SET ROLE`.
async fn resolved_grants(conn: &mut Conn) -> Result<Vec<grants::Grant>, SourceError> {
    let own: Vec<String> = conn
        .query("SHOW GRANTS")
        .await
        .map_err(SourceError::Query)?;
    // MariaDB: the role's name or NULL; MySQL: "`r`@`%`,`s`@`%`" or "NONE".
    let current: Option<String> = conn
        .query_first("SELECT CURRENT_ROLE()")
        .await
        .unwrap_or_default()
        .flatten();
    let active: std::collections::HashSet<String> = current
        .unwrap_or_default()
        .split(',')
        .map(|role| {
            role.trim()
                .split('@')
                .next()
                .unwrap_or_default()
                .trim_matches('`')
                .to_string()
        })
        .filter(|role| !role.is_empty() && role != "NONE")
        .collect();
    let mut lines: Vec<(String, bool)> = own.into_iter().map(|line| (line, true)).collect();
    let mut resolved = Vec::new();
    let mut seen_roles = std::collections::HashSet::new();
    while let Some((line, direct)) = lines.pop() {
        match grants::parse(&line) {
            Some(grants::Line::Privileges(grant)) => resolved.push(grant),
            Some(grants::Line::Roles(roles)) => {
                for role in roles {
                    // A role granted to the user counts only when active; roles granted to an
                    // active role come with it.
                    if (direct && !active.contains(&role)) || !seen_roles.insert(role.clone()) {
                        continue;
                    }
                    let quoted = role.replace('`', "``");
                    // A role this user may not inspect: its grants stay unknown (reported as
                    // missing privileges, which names what to check).
                    if let Ok(more) = conn
                        .query::<String, _>(format!("SHOW GRANTS FOR `{quoted}`"))
                        .await
                    {
                        lines.extend(more.into_iter().map(|line| (line, false)));
                    }
                }
            }
            None => {}
        }
    }
    Ok(resolved)
}

/// The checkpoint's binlog file must still be on the server: never skip data silently.
pub async fn check_checkpoint(
    conn: &mut Conn,
    config: &Config,
    checkpoint: &Checkpoint,
) -> Result<Option<Problem>, SourceError> {
    let files = binlog_files(conn).await?;
    if files.contains(&checkpoint.position.file) {
        return Ok(None);
    }
    Ok(Some(Problem {
        file: config.file.clone(),
        field: "checkpoint".into(),
        message: format!(
            "checkpoint position {} is no longer on the server (oldest binlog: {}); the binlog was purged",
            checkpoint.position,
            files.first().map_or("none", String::as_str)
        ),
    }))
}

/// Every write-back view's key templates name a unique key of its root table, so that an
/// item leads to one row. `run` checks this too: write-back must never guess a row.
pub async fn check_writeback_keys(
    conn: &mut Conn,
    views: &[std::sync::Arc<View>],
) -> Result<Vec<Problem>, SourceError> {
    let mut problems = Vec::new();
    for view in views.iter().filter(|v| v.writeback_enabled) {
        // Without case, as `unique_keys` names them.
        let mut key_columns: Vec<String> = view.key.pk.columns().map(str::to_lowercase).collect();
        if let Some(sk) = &view.key.sk {
            key_columns.extend(sk.columns().map(str::to_lowercase));
        }
        let unique = unique_keys(conn, &view.source).await?;
        if !unique
            .iter()
            .any(|key| key.iter().all(|c| key_columns.contains(c)))
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
