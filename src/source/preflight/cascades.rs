//! Foreign keys with cascading actions on the tables the views read. The server applies a
//! cascade (`ON DELETE CASCADE`, `ON UPDATE SET NULL`, …) inside the storage engine and does not
//! log the rows it changes in the binlog (checked on MariaDB 10.11: a parent's DELETE logs the
//! parent's row only), so a view of the child table would keep rows that are gone.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::config::Problem;
use crate::source::SourceError;
use crate::view::spec::{TableRef, View};

/// One cascading foreign key of a watched (child) table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cascade {
    pub child: TableRef,
    pub name: String,
    pub parent: TableRef,
    /// `ON DELETE CASCADE`, `ON UPDATE SET NULL`, …
    pub actions: Vec<String>,
}

impl std::fmt::Display for Cascade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "foreign key {} of {} references {} {}: the server does not log the rows a cascade changes, so the views of {} would keep rows that are gone or changed; use RESTRICT or NO ACTION and change the child rows in the application, or backfill the views after each cascade",
            self.name,
            self.child,
            self.parent,
            self.actions.join(" "),
            self.child
        )
    }
}

/// The cascading foreign keys of one table.
pub async fn cascades_of(conn: &mut Conn, table: &TableRef) -> Result<Vec<Cascade>, SourceError> {
    let rows: Vec<(String, String, String, String, String)> = conn
        .exec(
            "SELECT CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE \
             FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? ORDER BY CONSTRAINT_NAME",
            (table.database.as_str(), table.table.as_str()),
        )
        .await
        .map_err(SourceError::Query)?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, schema, parent, update, delete)| {
            let actions: Vec<String> = [("ON DELETE", delete), ("ON UPDATE", update)]
                .into_iter()
                .filter(|(_, rule)| cascading(rule))
                .map(|(on, rule)| format!("{on} {rule}"))
                .collect();
            (!actions.is_empty()).then(|| Cascade {
                child: table.clone(),
                name,
                parent: TableRef {
                    database: schema,
                    table: parent,
                },
                actions,
            })
        })
        .collect())
}

/// A rule that changes the child rows (not RESTRICT or NO ACTION).
fn cascading(rule: &str) -> bool {
    !matches!(rule.to_ascii_uppercase().as_str(), "RESTRICT" | "NO ACTION")
}

/// Every view's tables (its root and its joins') with their cascading foreign keys, as
/// problems of the view: `source` or `joins[i].from`.
pub async fn check_cascades(
    conn: &mut Conn,
    views: &[std::sync::Arc<View>],
) -> Result<Vec<Problem>, SourceError> {
    let mut problems = Vec::new();
    for view in views {
        let tables = std::iter::once(("source".to_string(), &view.source)).chain(
            view.joins
                .iter()
                .map(|join| (format!("{}.from", join.field), &join.from)),
        );
        for (field, table) in tables {
            for cascade in cascades_of(conn, table).await? {
                problems.push(Problem {
                    file: view.file.clone(),
                    field: field.clone(),
                    message: cascade.to_string(),
                });
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(cascading("CASCADE"));
        assert!(cascading("SET NULL"));
        assert!(cascading("SET DEFAULT"));
        assert!(!cascading("RESTRICT"));
        assert!(!cascading("NO ACTION"));
    }
}
