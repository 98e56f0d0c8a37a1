//! Applying a decision in SQL, touching exactly the row behind the item or nothing.
//!
//! - A new item is a plain `INSERT` of its key columns and writable columns, inside a
//!   transaction that reads the new row back and commits only if that row makes this very item
//!   (a row the filter leaves out, or that renders another key, is rolled back). A duplicate on
//!   any unique key is refused — unless the row behind the key already holds exactly what the
//!   item says (a replay of this insert after a restart). No `ON DUPLICATE KEY UPDATE`: it
//!   would rewrite another row that shares a unique value.
//! - An update or delete locks the rows the key columns name (`SELECT … FOR UPDATE`), keeps the
//!   one that still makes this very item (key rendered equal, filter passed), and changes that
//!   row by its primary key. No such row (deleted, moved to another key, left the filter): the
//!   record is refused, nothing is changed. Key columns are never assigned.
//!
//! Parameterized statements only, session time zone UTC; with `streams.skip_replication` the
//! session also sets MariaDB's `skip_replication` (see the README on that choice).
//!
//! Errors: server errors a retry can fix (lock wait timeout, deadlock, too many connections,
//! server shutdown, lost connection) are [`SqlError::Retry`]; a connection that cannot be had
//! is [`SqlError::Unreachable`], a server that takes no writes for now [`SqlError::ReadOnly`],
//! a foreign key that refuses the statement for now [`SqlError::ForeignKey`]; every other
//! server error refuses the record.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, Pool, Value};

use super::inverse::{Decision, Image};
use super::seen::{differing, made_by, Left, Rejected};
use crate::control::Lease;
use crate::error::{Classify, ErrorClass};
use crate::sql::SqlError as ReadError;
use crate::sql::{cell_param, key_param, quote_name, select_rows, SqlTable};
use crate::view::spec::View;
use crate::view::{item_key, ItemKey, Row};

/// What happened to a decision in SQL.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// A replay: SQL already holds exactly this change.
    AlreadyDone,
    /// The row already held these values as SQL stores them (perhaps rounded: 1.234 into a
    /// DECIMAL(…,2) holding 1.23): no binlog event follows, so the item must be restored.
    NoChange,
    Refused(String),
}

/// SQL failures that are not the record's fault.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("cannot reach the SQL server")]
    Unreachable(#[source] mysql_async::Error),
    #[error("the statement failed in a way a retry may fix")]
    Retry(#[source] mysql_async::Error),
    /// The server takes no writes for now (`read_only` during a switchover, a read-only
    /// transaction): like an unreachable server, the record waits without end, since no other
    /// record could be applied either.
    #[error("the SQL server takes no writes now (read-only)")]
    ReadOnly(#[source] mysql_async::Error),
    /// A foreign key refuses the statement: the row it references is not there yet, or rows
    /// still reference the one it deletes. The record that makes it right may be on its way
    /// in another shard or another table's stream (the order of records across items is not
    /// kept), so the record waits for it (see `record::FOREIGN_KEY_PATIENCE`) while the
    /// stream's other shards go on.
    #[error("a foreign key refuses the statement for now")]
    ForeignKey(#[source] mysql_async::Error),
    /// This instance's ownership of the checkpoint is not confirmed (see `control::Lease`):
    /// nothing was committed; the record waits, without counting as a failed try.
    #[error("this instance's ownership of the checkpoint is not confirmed (write lease); nothing committed")]
    LeaseLapsed,
}

impl Classify for SqlError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Transient
    }
}

/// Server errors a retry may fix: lock wait timeout, deadlock, too many connections, server
/// shutdown, connection killed, server gone away, lost connection, query interrupted, a record
/// changed since the transaction's snapshot (`innodb_snapshot_isolation`), the statement's
/// time limit reached (MariaDB's `max_statement_time`, 1969; MySQL's `max_execution_time`,
/// 3024), disk or table full, an error during commit, too many active
/// transactions, a connection closed for being idle (MySQL's 4031), a read of the client's
/// packet interrupted or timed out (1158, 1159: how a server may end a session idle past
/// `idle_transaction_timeout`, set below).
const RETRY_CODES: [u16; 18] = [
    1205, 1213, 1040, 1053, 1927, 2006, 2013, 1317, 1020, 1969, 1021, 1114, 1180, 1637, 4031, 3024,
    1158, 1159,
];

/// Server errors of a server that takes no writes for now: `--read-only` (1290, what a
/// switchover sets on the old primary), a read-only transaction (1792), MySQL's read-only
/// mode (1836). Before 2026-12-06's seventh stop they refused the record at once: an
/// application's change made during a switchover was dead-lettered and its item put back to
/// SQL's older state (found by a review; `tests/writeback_safety.rs`, seen failing).
const READ_ONLY_CODES: [u16; 3] = [1290, 1792, 1836];

/// Server errors of a foreign key: a child row whose parent is missing (1452, and 1216 of
/// older servers), a parent row still referenced (1451, 1217). Before 2026-12-07 they refused
/// the record at once: an application's new order read before its new customer (another
/// table, or another shard) was dead-lettered and its item removed (found by a review;
/// `tests/writeback_safety.rs`, seen failing).
const FOREIGN_KEY_CODES: [u16; 4] = [1451, 1452, 1216, 1217];

/// A failed statement: `Err` when a retry may fix it, `Ok(reason)` when the record is refused.
pub fn sort(error: mysql_async::Error) -> Result<String, SqlError> {
    match &error {
        mysql_async::Error::Server(server) if RETRY_CODES.contains(&server.code) => {
            Err(SqlError::Retry(error))
        }
        mysql_async::Error::Server(server) if READ_ONLY_CODES.contains(&server.code) => {
            Err(SqlError::ReadOnly(error))
        }
        mysql_async::Error::Server(server) if FOREIGN_KEY_CODES.contains(&server.code) => {
            Err(SqlError::ForeignKey(error))
        }
        mysql_async::Error::Server(server) => Ok(format!(
            "SQL refused it: {} ({})",
            server.message, server.code
        )),
        mysql_async::Error::Io(_)
        | mysql_async::Error::Driver(
            DriverError::ConnectionClosed
            | DriverError::PoolDisconnected
            | DriverError::PacketOutOfOrder,
        ) => Err(SqlError::Retry(error)),
        other => Ok(format!("SQL refused it: {other}")),
    }
}

/// Why a statement sequence stopped.
enum Failure {
    Sql(mysql_async::Error),
    Refused(String),
    /// The write lease ran out before COMMIT (see [`commit`]).
    Lapsed,
}

impl From<mysql_async::Error> for Failure {
    fn from(error: mysql_async::Error) -> Self {
        Failure::Sql(error)
    }
}

impl From<ReadError> for Failure {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Query(e) | ReadError::Connect(e) => Failure::Sql(e),
            other => Failure::Refused(crate::error::chain(&other)),
        }
    }
}

/// The item a decision is for.
pub struct Target<'a> {
    pub view: &'a View,
    pub table: &'a SqlTable,
    pub key: &'a ItemKey,
    /// The key columns parsed from the item's key, as text.
    pub key_columns: &'a [(String, String)],
    /// Held before every COMMIT (see [`commit`]).
    pub lease: &'a Lease,
}

impl Target<'_> {
    /// `WHERE` condition and parameters over the key columns.
    fn condition(&self) -> (String, Vec<Value>) {
        let condition: Vec<String> = self
            .key_columns
            .iter()
            .map(|(c, _)| format!("{} = ?", quote_name(c)))
            .collect();
        let params = self
            .key_columns
            .iter()
            .map(|(c, v)| key_param(self.table, c, v))
            .collect();
        (condition.join(" AND "), params)
    }

    /// The row among `rows` that makes this very item.
    fn behind(&self, rows: Vec<Row>) -> Option<Row> {
        rows.into_iter()
            .find(|row| item_key(self.view, row).as_ref() == Some(self.key))
    }

    /// `WHERE` condition and parameters naming exactly `row`: its primary key, or the key
    /// columns when the table has none (`check --connect` verifies they are a unique key).
    fn identity(&self, row: &Row) -> (String, Vec<Value>) {
        let pk: Option<Vec<(String, Value)>> = self
            .table
            .primary_key
            .iter()
            .map(|c| Some((c.clone(), cell_param(row.get(c)?)?)))
            .collect();
        match pk {
            Some(pk) if !pk.is_empty() => {
                let condition: Vec<String> = pk
                    .iter()
                    .map(|(c, _)| format!("{} = ?", quote_name(c)))
                    .collect();
                (
                    condition.join(" AND "),
                    pk.into_iter().map(|(_, v)| v).collect(),
                )
            }
            _ => self.condition(),
        }
    }
}

pub struct SqlWriter {
    pool: Pool,
    conn: Option<Conn>,
    session: String,
    /// Per table: columns an INSERT must name (NOT NULL, no default, not generated).
    required: HashMap<String, Vec<String>>,
    /// What this writer's last statements left in their rows (see `seen.rs`).
    left: Left,
    /// The application's changes rejected lately (see `seen.rs`).
    rejected: Rejected,
}

impl SqlWriter {
    pub fn new(pool: Pool, skip_replication: bool) -> SqlWriter {
        // A row (or a table, behind a DDL) the application holds locked makes the record wait
        // 5 s (10 s) per try, not 50 s (a year). Strict whatever the server's mode: a value that
        // does not fit (too long, out of range, NULL in a NOT NULL column) is refused, never
        // stored cut, clamped or as the column's implicit default. On MariaDB (10.3 and later:
        // an executable comment the others skip) a transaction idle for 2 s is ended by the
        // server: a record's transaction never waits between its statements, so only a frozen
        // instance's is (SIGSTOP, a stalled VM), whose row lock would otherwise keep its
        // successor's statements waiting until they were rejected (found by a review;
        // `tests/writeback.rs`, seen failing), and whose late COMMIT then fails. Any
        // transaction, not only one that wrote (`idle_write_transaction_timeout`): the row is
        // locked by a read (`FOR UPDATE`) before anything is written, and a write-only limit
        // leaves that lock held (tried on MariaDB 10.11: the other session waited out its
        // 10 s lock wait).
        let timeouts =
            "time_zone = '+00:00', innodb_lock_wait_timeout = 5, lock_wait_timeout = 10, \
            sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES') \
            /*M!100300 , idle_transaction_timeout = 2 */";
        let session = if skip_replication {
            format!("SET SESSION skip_replication = 1, {timeouts}")
        } else {
            format!("SET SESSION {timeouts}")
        };
        SqlWriter {
            pool,
            conn: None,
            session,
            required: HashMap::new(),
            left: Left::default(),
            rejected: Rejected::default(),
        }
    }

    /// Forgets what was read of `table` (after a refusal that a schema change may explain).
    pub fn forget(&mut self, table: &SqlTable) {
        self.required.remove(&table.qualified_name());
    }

    /// Notes an application's change of the item of `key` from `old` to `new` that write-back
    /// rejected: a delete of the item it left is compared with `old` (see `seen::Rejected`).
    pub fn note_rejected(&mut self, view: &View, key: &ItemKey, old: &Image, new: &Image) {
        self.rejected.note(view, &key.to_string(), old, new);
    }

    /// Forgets what was read of every table (after a DDL statement).
    pub fn forget_all(&mut self) {
        self.required.clear();
    }

    async fn connect(&mut self) -> Result<Conn, SqlError> {
        if let Some(conn) = self.conn.take() {
            return Ok(conn);
        }
        let mut conn = self.pool.get_conn().await.map_err(SqlError::Unreachable)?;
        conn.query_drop(&self.session)
            .await
            .map_err(SqlError::Unreachable)?;
        Ok(conn)
    }

    /// Whether a row under `target`'s key columns makes its item, read without a lock: which
    /// of a key's readings has the row behind the item.
    pub async fn makes_item(&mut self, target: &Target<'_>) -> Result<bool, SqlError> {
        let mut conn = self.connect().await?;
        let (condition, params) = target.condition();
        let where_ = format!("WHERE {condition}");
        match select_rows(&mut conn, target.table, &where_, params).await {
            Ok((rows, _)) => {
                self.conn = Some(conn);
                Ok(target.behind(rows).is_some())
            }
            Err(ReadError::Query(error)) | Err(ReadError::Connect(error)) => {
                Err(SqlError::Retry(error))
            }
            // Not a read that says anything of the row: none taken to be there.
            Err(_) => Ok(false),
        }
    }

    /// Runs `decision` for `target`. `Err` is transient (retry); a statement SQL refuses is
    /// `Applied::Refused`, with nothing changed.
    pub async fn apply(
        &mut self,
        target: &Target<'_>,
        decision: &Decision,
    ) -> Result<Applied, SqlError> {
        // Waited for before the transaction, so that no row stays locked while it is waited for.
        if !target.lease.held().await {
            return Err(SqlError::LeaseLapsed);
        }
        let mut conn = self.connect().await?;
        let result = match decision {
            Decision::Insert {
                set,
                written,
                or_update,
            } => {
                let required = self.required_columns(&mut conn, target.table).await;
                let left = &mut self.left;
                match required {
                    Ok(required) if *or_update => {
                        let new = (set.as_slice(), written, required.as_slice());
                        insert_or_update(&mut conn, target, new, left).await
                    }
                    Ok(required) => insert(&mut conn, target, set, written, &required, left).await,
                    Err(failure) => Err(failure),
                }
            }
            Decision::Update { set } => update(&mut conn, target, set, &mut self.left).await,
            Decision::Delete { seen } => {
                let memory = (&self.left, &self.rejected);
                delete(&mut conn, target, seen, memory).await
            }
            _ => Ok(Applied::Done),
        };
        let failure = match result {
            Ok(applied) => {
                self.conn = Some(conn);
                return Ok(applied);
            }
            Err(Failure::Refused(reason)) => reason,
            Err(Failure::Lapsed) => {
                if conn.query_drop("ROLLBACK").await.is_ok() {
                    self.conn = Some(conn);
                }
                return Err(SqlError::LeaseLapsed);
            }
            Err(Failure::Sql(error)) => match sort(error) {
                Ok(reason) => reason,
                Err(retry) => {
                    // Closed, not pooled: the server rolls back what it had open.
                    let _ = conn.disconnect().await;
                    return Err(retry);
                }
            },
        };
        // Refused: end the transaction; the connection stays good.
        if conn.query_drop("ROLLBACK").await.is_ok() {
            self.conn = Some(conn);
        }
        Ok(Applied::Refused(failure))
    }

    async fn required_columns(
        &mut self,
        conn: &mut Conn,
        table: &SqlTable,
    ) -> Result<Vec<String>, Failure> {
        let name = table.qualified_name();
        if let Some(found) = self.required.get(&name) {
            return Ok(found.clone());
        }
        let t = &table.schema.table;
        let columns: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? AND IS_NULLABLE = 'NO' AND COLUMN_DEFAULT IS NULL \
                 AND EXTRA NOT LIKE '%auto_increment%' AND EXTRA NOT LIKE '%GENERATED%'",
                (&t.database, &t.table),
            )
            .await?;
        self.required.insert(name, columns.clone());
        Ok(columns)
    }
}

async fn insert(
    conn: &mut Conn,
    target: &Target<'_>,
    set: &[(String, Value)],
    written: &Image,
    required: &[String],
    left: &mut Left,
) -> Result<Applied, Failure> {
    let mut columns: Vec<(String, Value)> = target
        .key_columns
        .iter()
        .map(|(c, v)| (c.clone(), Value::Bytes(v.clone().into_bytes())))
        .collect();
    for (column, value) in set {
        if !columns.iter().any(|(c, _)| c == column) {
            columns.push((column.clone(), value.clone()));
        }
    }
    let missing: Vec<&str> = required
        .iter()
        .filter(|r| !columns.iter().any(|(c, v)| c == *r && *v != Value::NULL))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Failure::Refused(format!(
            "a new item must carry every column the table needs; missing: {}",
            missing.join(", ")
        )));
    }
    let names: Vec<String> = columns.iter().map(|(c, _)| quote_name(c)).collect();
    let statement = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        target.table.qualified_name(),
        names.join(", "),
        vec!["?"; names.len()].join(", ")
    );
    let params: Vec<Value> = columns.into_iter().map(|(_, v)| v).collect();
    conn.query_drop("START TRANSACTION").await?;
    insert_row(conn, target, written, (statement, params), left).await
}

/// After an application's put over an item rowcast never wrote: the row that makes the item
/// is updated, or, when there is none, a new row inserted. `new`: the columns to set, the
/// item's writable attributes, the columns an INSERT must name.
async fn insert_or_update(
    conn: &mut Conn,
    target: &Target<'_>,
    (set, written, required): (&[(String, Value)], &Image, &[String]),
    left: &mut Left,
) -> Result<Applied, Failure> {
    match lock_row(conn, target).await? {
        Some(row) => update_row(conn, target, &row, set, left).await,
        None => {
            conn.query_drop("ROLLBACK").await?;
            insert(conn, target, set, written, required, left).await
        }
    }
}

/// Inside the insert's transaction: the INSERT, then the new row read back.
async fn insert_row(
    conn: &mut Conn,
    target: &Target<'_>,
    written: &Image,
    (statement, params): (String, Vec<Value>),
    left: &mut Left,
) -> Result<Applied, Failure> {
    if let Err(error) = conn.exec_drop(statement, params).await {
        let duplicate = matches!(&error, mysql_async::Error::Server(server) if server.code == 1062);
        if !duplicate {
            return Err(error.into());
        }
        conn.query_drop("ROLLBACK").await?;
        return replayed(conn, target, written, error).await;
    }
    let Some(row) = locked_behind(conn, target).await? else {
        return Err(Failure::Refused(
            "the new row would not make this item (the view's filter leaves it out, or its key renders differently)".into(),
        ));
    };
    commit(conn, target).await?;
    note_left(left, target, &row);
    Ok(Applied::Done)
}

/// Notes what `row` makes now, just after write-back's own statement on it (see `seen.rs`).
fn note_left(left: &mut Left, target: &Target<'_>, row: &Row) {
    if let Some(made) = made_by(target.view, row) {
        left.note(&target.key.to_string(), &made);
    }
}

/// After a duplicate key: the insert was applied before (a replay) when the row behind the
/// item holds exactly the written attributes, compared as a delete compares them
/// (`seen::differing`: numbers by value, a NULL as no attribute; before 2026-12-07's sixth
/// stop by their spelling, its own projection walk: reasoned, not reproduced); otherwise the
/// record is refused.
async fn replayed(
    conn: &mut Conn,
    target: &Target<'_>,
    written: &Image,
    duplicate: mysql_async::Error,
) -> Result<Applied, Failure> {
    let (condition, params) = target.condition();
    let (rows, _) = select_rows(conn, target.table, &format!("WHERE {condition}"), params).await?;
    let same = (target
        .behind(rows)
        .and_then(|row| made_by(target.view, &row)))
    .is_some_and(|made| differing(target.view, &made, written).is_none());
    if same {
        return Ok(Applied::AlreadyDone);
    }
    Err(Failure::Sql(duplicate))
}

async fn update(
    conn: &mut Conn,
    target: &Target<'_>,
    set: &[(String, Value)],
    left: &mut Left,
) -> Result<Applied, Failure> {
    let Some(row) = lock_row(conn, target).await? else {
        return Err(no_row());
    };
    update_row(conn, target, &row, set, left).await
}

/// Inside the transaction that locked `row`: the UPDATE by its identity, the row read back
/// (what the server made of it: `left`), then COMMIT.
async fn update_row(
    conn: &mut Conn,
    target: &Target<'_>,
    row: &Row,
    set: &[(String, Value)],
    left: &mut Left,
) -> Result<Applied, Failure> {
    if set.is_empty() {
        commit(conn, target).await?;
        note_left(left, target, row);
        return Ok(Applied::NoChange);
    }
    let assignments: Vec<String> = set
        .iter()
        .map(|(c, _)| format!("{} = ?", quote_name(c)))
        .collect();
    let (condition, row_params) = target.identity(row);
    let statement = format!(
        "UPDATE {} SET {} WHERE {condition}",
        target.table.qualified_name(),
        assignments.join(", ")
    );
    let mut params: Vec<Value> = set.iter().map(|(_, v)| v.clone()).collect();
    params.extend(row_params);
    conn.exec_drop(statement, params).await?;
    let changed = conn.affected_rows();
    if changed > 1 {
        return Err(Failure::Refused(format!(
            "the update would change {changed} rows; the key columns must name one row"
        )));
    }
    let after = match changed {
        0 => Some(row.clone()),
        _ => locked_behind(conn, target).await?,
    };
    commit(conn, target).await?;
    if let Some(after) = &after {
        note_left(left, target, after);
    }
    Ok(if changed == 0 {
        Applied::NoChange
    } else {
        Applied::Done
    })
}

/// The DELETE of the row behind the item, while it makes what the application deleted
/// (`seen`), what write-back's own last statement left in it, or what the item showed before
/// the application's rejected change that `seen` carries (see `seen.rs`).
async fn delete(
    conn: &mut Conn,
    target: &Target<'_>,
    seen: &Image,
    (left, rejected): (&Left, &Rejected),
) -> Result<Applied, Failure> {
    let Some(row) = lock_row(conn, target).await? else {
        return Err(no_row());
    };
    // A row that makes no item now (a dead letter, a view halted by its schema): the item
    // the application deleted was not the row's.
    let Some(made) = made_by(target.view, &row) else {
        return Err(Failure::Refused(
            "the row makes no item now (its change is a dead letter, or the view is halted): not deleted".into(),
        ));
    };
    if let Some(name) = differing(target.view, &made, seen) {
        let item = target.key.to_string();
        if !left.is_left(&item, &made) && !rejected.excuses(target.view, &item, seen, &made) {
            return Err(Failure::Refused(format!(
                "the row changed since the item the application deleted was written ({name} differs, or the row was deleted and another inserted under its key): not deleted"
            )));
        }
    }
    let (condition, params) = target.identity(&row);
    let statement = format!(
        "DELETE FROM {} WHERE {condition}",
        target.table.qualified_name()
    );
    conn.exec_drop(statement, params).await?;
    let deleted = conn.affected_rows();
    if deleted != 1 {
        return Err(Failure::Refused(format!(
            "the delete would remove {deleted} rows; the key columns must name one row"
        )));
    }
    commit(conn, target).await?;
    Ok(Applied::Done)
}

/// Commits the record's transaction if this instance may still write (its write lease: see
/// `control::Lease`); otherwise it is rolled back and the record tried again later. Not waited
/// for here, with the row locked: an instance taken over while it held the record (a pause
/// between the lease check in `apply` and this point) commits nothing.
async fn commit(conn: &mut Conn, target: &Target<'_>) -> Result<(), Failure> {
    crate::util::failpoint::delay("writeback.before_commit").await;
    if !target.lease.is_held() {
        return Err(Failure::Lapsed);
    }
    conn.query_drop("COMMIT").await?;
    Ok(())
}

/// Starts a transaction and locks the row behind the item, if a row still makes it.
async fn lock_row(conn: &mut Conn, target: &Target<'_>) -> Result<Option<Row>, Failure> {
    conn.query_drop("START TRANSACTION").await?;
    let locked = locked_behind(conn, target).await;
    crate::util::failpoint::delay("writeback.after_lock").await;
    locked
}

/// Inside a transaction: locks the rows the key columns name, and returns the one that makes
/// the item.
async fn locked_behind(conn: &mut Conn, target: &Target<'_>) -> Result<Option<Row>, Failure> {
    let (condition, params) = target.condition();
    let (rows, _) = select_rows(
        conn,
        target.table,
        &format!("WHERE {condition} FOR UPDATE"),
        params,
    )
    .await?;
    Ok(target.behind(rows))
}

/// Why an update or delete is refused when no row is behind the item (under the key columns it
/// was given: another reading of the key may find the row).
pub const NO_ROW: &str =
    "no row makes this item any more (deleted, moved to another key, or out of the view's filter)";

fn no_row() -> Failure {
    Failure::Refused(NO_ROW.into())
}
