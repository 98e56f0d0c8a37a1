//! Table names as the server compares them: views that spell one table two ways.

use mysql_async::Conn;

use crate::config::Problem;
use crate::source::SourceError;
use crate::view::spec::{TableRef, View};

/// Views that spell one table in two ways (`Orders`, `orders`) on a server that compares
/// table names lowercased (`lower_case_table_names` 1 or 2): the binlog reader would give the
/// table's changes to one spelling only.
pub(super) async fn check_spellings(
    conn: &mut Conn,
    views: &[std::sync::Arc<View>],
) -> Result<Vec<Problem>, SourceError> {
    let folded = crate::source::folds_table_names(conn).await?;
    let tables = views
        .iter()
        .flat_map(|view| std::iter::once(&view.source).chain(view.joins.iter().map(|j| &j.from)));
    let Some((a, b)) = crate::source::statement::spelled_twice(tables, folded) else {
        return Ok(Vec::new());
    };
    let spells = |table: &TableRef| {
        views
            .iter()
            .find(|view| view.source == *table || view.joins.iter().any(|join| join.from == *table))
    };
    Ok(spells(&b)
        .map(|view| Problem {
            file: view.file.clone(),
            field: if view.source == b { "source" } else { "join" }.into(),
            message: crate::source::statement::spelling_problem(&a, &b),
        })
        .into_iter()
        .collect())
}
