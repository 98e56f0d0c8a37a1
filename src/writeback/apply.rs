//! Applying a decision in SQL: parameterized statements only, on a connection marked with
//! `SET SESSION skip_replication = 1` (its binlog events carry MariaDB's skip-replication flag,
//! so the binlog side can tell a write-back from any other change; rowcast still follows them,
//! which is what brings derived attributes up to date) and the session time zone UTC.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, Value};

use super::inverse::Decision;
use crate::snapshot::read::{quote_name, select_rows, SqlTable};
use crate::source::SourceError;
use crate::view::spec::View;
use crate::view::{item_key, ItemKey};

/// What happened to a decision in SQL.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// The removal was rowcast's own (the row no longer makes that item) or moot.
    NotOurs,
    Refused(String),
}

/// SQL errors a retry cannot fix: the record is refused (dead letter).
fn refused_code(code: u16) -> bool {
    [
        1048, // column cannot be null
        1062, // duplicate entry
        1264, // out of range
        1265, // data truncated
        1292, // incorrect datetime value
        1364, // field has no default
        1366, // incorrect value
        1406, // data too long
        1451, 1452, // foreign keys
        3140, // invalid JSON
        4025, // CHECK constraint
    ]
    .contains(&code)
}

pub struct SqlWriter {
    pool: Pool,
    conn: Option<Conn>,
    /// Per table: columns an INSERT must name (NOT NULL, no default, not generated).
    required: HashMap<String, Vec<String>>,
}

impl SqlWriter {
    pub fn new(pool: Pool) -> SqlWriter {
        SqlWriter {
            pool,
            conn: None,
            required: HashMap::new(),
        }
    }

    async fn conn(&mut self) -> Result<&mut Conn, SourceError> {
        if self.conn.is_none() {
            let mut conn = self.pool.get_conn().await.map_err(SourceError::Query)?;
            conn.query_drop("SET SESSION skip_replication = 1, time_zone = '+00:00'")
                .await
                .map_err(SourceError::Query)?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("set above"))
    }

    async fn required_columns(&mut self, table: &SqlTable) -> Result<Vec<String>, SourceError> {
        let name = table.qualified_name();
        if let Some(found) = self.required.get(&name) {
            return Ok(found.clone());
        }
        let t = table.schema.table.clone();
        let columns: Vec<String> = self
            .conn()
            .await?
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? AND IS_NULLABLE = 'NO' AND COLUMN_DEFAULT IS NULL \
                 AND EXTRA NOT LIKE '%auto_increment%' AND EXTRA NOT LIKE '%GENERATED%'",
                (&t.database, &t.table),
            )
            .await
            .map_err(SourceError::Query)?;
        self.required.insert(name, columns.clone());
        Ok(columns)
    }

    /// Runs `decision` for the item `key` of `view` (whose key columns are `key_columns`).
    /// `Err` is transient (retry); a statement SQL refuses is `Applied::Refused`.
    pub async fn apply(
        &mut self,
        view: &View,
        table: &SqlTable,
        key: &ItemKey,
        key_columns: &[(String, String)],
        decision: &Decision,
    ) -> Result<Applied, SourceError> {
        let result = match decision {
            Decision::Upsert(set) => self.upsert(table, key_columns, set).await,
            Decision::Update { set } => self.update(table, key_columns, set).await,
            Decision::Delete => self.delete(view, table, key, key_columns).await,
            _ => return Ok(Applied::Done),
        };
        match result {
            Err(SourceError::Query(mysql_async::Error::Server(server)))
                if refused_code(server.code) =>
            {
                // The connection is fine; a failed statement inside a transaction is rolled
                // back by the caller's ROLLBACK below.
                if let Some(conn) = self.conn.as_mut() {
                    let _ = conn.query_drop("ROLLBACK").await;
                }
                Ok(Applied::Refused(format!(
                    "SQL refused it: {} ({})",
                    server.message, server.code
                )))
            }
            Err(error) => {
                self.conn = None;
                Err(error)
            }
            ok => ok,
        }
    }

    async fn upsert(
        &mut self,
        table: &SqlTable,
        key_columns: &[(String, String)],
        set: &[(String, Value)],
    ) -> Result<Applied, SourceError> {
        let mut columns: Vec<(String, Value)> = key_columns
            .iter()
            .map(|(c, v)| (c.clone(), Value::Bytes(v.clone().into_bytes())))
            .collect();
        for (column, value) in set {
            if !columns.iter().any(|(c, _)| c == column) {
                columns.push((column.clone(), value.clone()));
            }
        }
        let required = self.required_columns(table).await?;
        let missing: Vec<&String> = required
            .iter()
            .filter(|r| !columns.iter().any(|(c, v)| c == *r && *v != Value::NULL))
            .collect();
        if !missing.is_empty() {
            return Ok(Applied::Refused(format!(
                "a new item must carry every column the table needs; missing: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let names: Vec<String> = columns.iter().map(|(c, _)| quote_name(c)).collect();
        let updates: Vec<String> = names.iter().map(|n| format!("{n} = VALUES({n})")).collect();
        let statement = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON DUPLICATE KEY UPDATE {}",
            table.qualified_name(),
            names.join(", "),
            vec!["?"; names.len()].join(", "),
            updates.join(", ")
        );
        let params: Vec<Value> = columns.into_iter().map(|(_, v)| v).collect();
        self.conn()
            .await?
            .exec_drop(statement, params)
            .await
            .map_err(SourceError::Query)?;
        Ok(Applied::Done)
    }

    async fn update(
        &mut self,
        table: &SqlTable,
        key_columns: &[(String, String)],
        set: &[(String, Value)],
    ) -> Result<Applied, SourceError> {
        let assignments: Vec<String> = set
            .iter()
            .map(|(c, _)| format!("{} = ?", quote_name(c)))
            .collect();
        let (condition, key_params) = key_condition(key_columns);
        let statement = format!(
            "UPDATE {} SET {} WHERE {condition}",
            table.qualified_name(),
            assignments.join(", ")
        );
        let mut params: Vec<Value> = set.iter().map(|(_, v)| v.clone()).collect();
        params.extend(key_params);
        let conn = self.conn().await?;
        conn.exec_drop(statement, params)
            .await
            .map_err(SourceError::Query)?;
        Ok(Applied::Done)
    }

    /// Deletes the row behind the item only if it still makes that very item: rowcast deletes
    /// items only when their rows are gone, moved or filtered out, so a removal whose row
    /// still makes the item is an application's.
    async fn delete(
        &mut self,
        view: &View,
        table: &SqlTable,
        key: &ItemKey,
        key_columns: &[(String, String)],
    ) -> Result<Applied, SourceError> {
        let (condition, params) = key_condition(key_columns);
        let conn = self.conn().await?;
        conn.query_drop("START TRANSACTION")
            .await
            .map_err(SourceError::Query)?;
        let (rows, _) = select_rows(
            conn,
            table,
            &format!("WHERE {condition} LIMIT 100 FOR UPDATE"),
            params,
        )
        .await?;
        let ours: Vec<_> = rows
            .iter()
            .filter(|row| item_key(view, row).as_ref() == Some(key))
            .collect();
        if ours.is_empty() || table.primary_key.is_empty() {
            conn.query_drop("ROLLBACK")
                .await
                .map_err(SourceError::Query)?;
            return Ok(Applied::NotOurs);
        }
        for row in ours {
            let pk: Vec<(String, Value)> = table
                .primary_key
                .iter()
                .filter_map(|c| {
                    let cell = row.get(c)?;
                    Some((c.clone(), crate::snapshot::join::cell_param(cell)?))
                })
                .collect();
            let condition: Vec<String> = pk
                .iter()
                .map(|(c, _)| format!("{} = ?", quote_name(c)))
                .collect();
            let statement = format!(
                "DELETE FROM {} WHERE {}",
                table.qualified_name(),
                condition.join(" AND ")
            );
            let params: Vec<Value> = pk.into_iter().map(|(_, v)| v).collect();
            conn.exec_drop(statement, params)
                .await
                .map_err(SourceError::Query)?;
        }
        conn.query_drop("COMMIT")
            .await
            .map_err(SourceError::Query)?;
        Ok(Applied::Done)
    }
}

fn key_condition(key_columns: &[(String, String)]) -> (String, Vec<Value>) {
    let condition: Vec<String> = key_columns
        .iter()
        .map(|(c, _)| format!("{} = ?", quote_name(c)))
        .collect();
    let params = key_columns
        .iter()
        .map(|(_, v)| Value::Bytes(v.clone().into_bytes()))
        .collect();
    (condition.join(" AND "), params)
}
