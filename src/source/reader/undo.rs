//! Rolled-back rows the binlog carries, undone.
//!
//! MariaDB logs a transaction that created a temporary table whole, rows and all, ending with
//! ROLLBACK when it rolled back (checked with `mariadb-binlog` on 10.11). The reader has sent
//! those rows on by then: the views may already hold them. In row format only transactional
//! tables' rows are in a transaction's group (a non-transactional table's go to a group of their
//! own, committed, as they happened), so every row change of such a group never happened.
//!
//! At the ROLLBACK the reader reads the group again on a second connection (`reread.rs`; nothing
//! is copied while a transaction streams, which would cost every transaction for a rare event),
//! keeps its row changes here (bounded: [`MAX_CHANGES`] changes, about [`MAX_BYTES`] of cells)
//! and sends their inverses, latest first: a delete for an insert, the update back for an update
//! (a moved key moves back), the insert back for a delete. They are row changes of the same
//! transaction, later in it, so their versions are above those of the changes they undo. The
//! state undone to is the state before the transaction if the server writes the group to the
//! binlog before InnoDB rolls back and frees those rows, so that no other transaction's change
//! of them is in the binlog before the group: engines roll back latest-registered first (read in
//! the server's handler code), and the binlog registers after InnoDB when the transaction touched
//! an InnoDB table before its first logged change (reasoned, not read in MariaDB's source). The
//! other order is a known limitation (README).
//!
//! A `ROLLBACK TO` a savepoint (logged when a non-transactional table changed in the
//! transaction) is not undone so: InnoDB frees the rows inserted after the savepoint at once,
//! while the group is written at the commit, so another transaction can insert the same key and
//! commit first. Then, as when the changes cannot be undone (too many to keep, a table whose
//! engine is not InnoDB), the reader reads the tables' views again from SQL, as after a
//! TRUNCATE (`Source::resync`).

use crate::pipeline::RowChange;
use crate::view::row::Row;
use crate::view::spec::TableRef;
use crate::view::value::Cell;

/// Most row changes of one transaction kept for an undo.
pub const MAX_CHANGES: usize = 10_000;
/// Most bytes of cells kept for an undo (about: text and binary lengths, 24 bytes per cell).
pub const MAX_BYTES: usize = 16 << 20;

/// A row change kept for an undo.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub table: TableRef,
    pub before: Option<Row>,
    pub after: Option<Row>,
}

impl From<RowChange> for Kept {
    fn from(change: RowChange) -> Kept {
        Kept {
            table: change.table,
            before: change.before,
            after: change.after,
        }
    }
}

impl Kept {
    /// The change that undoes this one.
    pub fn inverse(self) -> Kept {
        Kept {
            table: self.table,
            before: self.after,
            after: self.before,
        }
    }
}

/// The row changes of the transaction under way.
#[derive(Debug, Default)]
pub struct UndoLog {
    changes: Vec<Kept>,
    bytes: usize,
    /// Why the changes can no longer be undone, once they cannot.
    lost: Option<&'static str>,
}

impl UndoLog {
    /// Keeps a row change (`transactional`: its table's engine rolls back).
    pub fn keep(&mut self, change: Kept, transactional: bool) {
        if crate::util::failpoint::fails("reader.undo") {
            self.lose("failpoint reader.undo");
        }
        if self.lost.is_some() {
            return;
        }
        if !transactional {
            return self.lose("a table whose engine is not known to roll back");
        }
        let bytes = row_bytes(&change.before) + row_bytes(&change.after);
        if self.changes.len() >= MAX_CHANGES || self.bytes + bytes > MAX_BYTES {
            return self.lose("too many changes to keep");
        }
        self.bytes += bytes;
        self.changes.push(change);
    }

    /// A log of changes that cannot be undone (`why`).
    pub fn lost(why: &'static str) -> UndoLog {
        let mut log = UndoLog::default();
        log.lose(why);
        log
    }

    /// How many changes are kept; `None` once they cannot be undone.
    pub fn len(&self) -> Option<usize> {
        self.lost.is_none().then_some(self.changes.len())
    }

    /// The changes can no longer be undone: a rollback reads the views again.
    pub fn lose(&mut self, why: &'static str) {
        self.lost = Some(why);
        self.changes = Vec::new();
        self.bytes = 0;
    }

    /// The changes to send to undo a logged ROLLBACK, latest first and inverted, or why they
    /// cannot be.
    pub fn roll_back(self) -> Result<Vec<Kept>, &'static str> {
        match self.lost {
            Some(why) => Err(why),
            None => Ok(self.changes.into_iter().rev().map(Kept::inverse).collect()),
        }
    }
}

/// About the memory a row image holds.
fn row_bytes(row: &Option<Row>) -> usize {
    let Some(row) = row else {
        return 0;
    };
    row.cells
        .iter()
        .map(|cell| {
            24 + match cell {
                Cell::Decimal(s) | Cell::Text(s) => s.len(),
                Cell::Enum(label) => label.len(),
                Cell::Bytes(b) => b.len(),
                Cell::Set(labels) => labels.iter().map(|l| l.len() + 24).sum(),
                Cell::Json(value) => json_bytes(value),
                _ => 0,
            }
        })
        .sum()
}

/// About the memory a JSON value holds.
fn json_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    32 + match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(json_bytes).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + json_bytes(v)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::view::row::{ColumnKind, ColumnSchema, TableSchema};

    fn row(id: u64, body: &str) -> Option<Row> {
        let schema = Arc::new(TableSchema::new(
            TableRef::parse("db.t").unwrap(),
            vec![
                ColumnSchema {
                    name: "id".into(),
                    kind: ColumnKind::Int { unsigned: true },
                    is_virtual: false,
                },
                ColumnSchema {
                    name: "body".into(),
                    kind: ColumnKind::Text,
                    is_virtual: false,
                },
            ],
        ));
        Some(Row {
            schema,
            cells: vec![Cell::UInt(id), Cell::Text(body.into())],
        })
    }

    fn change(before: Option<Row>, after: Option<Row>) -> Kept {
        Kept {
            table: TableRef::parse("db.t").unwrap(),
            before,
            after,
        }
    }

    #[test]
    fn a_rollback_undoes_every_change_latest_first() {
        let mut log = UndoLog::default();
        log.keep(change(None, row(1, "a")), true);
        log.keep(change(row(2, "b"), row(2, "c")), true);
        log.keep(change(row(3, "d"), None), true);
        let undone = log.roll_back().unwrap();
        assert_eq!(
            undone,
            vec![
                change(None, row(3, "d")),
                change(row(2, "c"), row(2, "b")),
                change(row(1, "a"), None),
            ]
        );
    }

    #[test]
    fn changes_that_cannot_be_kept_make_a_rollback_fail() {
        assert_eq!(UndoLog::lost("why").len(), None);
        assert_eq!(UndoLog::lost("why").roll_back(), Err("why"));
        let mut log = UndoLog::default();
        log.keep(change(None, row(1, "a")), false);
        log.keep(change(None, row(2, "b")), true);
        assert!(log.roll_back().is_err());
        let mut log = UndoLog::default();
        for id in 0..MAX_CHANGES as u64 {
            log.keep(change(None, row(id, "a")), true);
        }
        assert_eq!(log.roll_back().map(|u| u.len()), Ok(MAX_CHANGES));
        let mut log = UndoLog::default();
        for id in 0..=MAX_CHANGES as u64 {
            log.keep(change(None, row(id, "a")), true);
        }
        assert_eq!(log.roll_back(), Err("too many changes to keep"));
        let mut log = UndoLog::default();
        let big = "x".repeat(MAX_BYTES / 2);
        log.keep(change(None, row(1, &big)), true);
        log.keep(change(None, row(2, &big)), true);
        assert_eq!(log.roll_back(), Err("too many changes to keep"));
    }

    #[test]
    fn json_cells_count_their_text() {
        let value = serde_json::json!({"a": ["xyz", 1, {"bb": "cc"}]});
        assert!(json_bytes(&value) >= "a".len() + "xyz".len() + "bb".len() + "cc".len());
        assert!(row_bytes(&None) == 0);
    }
}
