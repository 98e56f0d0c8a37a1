//! Statements the binlog carries as text: which are row changes (DML logged in statement format,
//! by a session with `binlog_format = STATEMENT` or a MIXED server) and which tables they
//! change. rowcast cannot know the rows such a statement changed, so the views of those tables
//! halt (`source::reader`); the rest is transaction control or DDL.
//!
//! The tables are found by a small lexer (comments, strings and quoted names understood), not a
//! SQL parser: a statement may name a table it only reads (a multi-table UPDATE or DELETE), and
//! then its views halt too. When in doubt, halt: a view halted by mistake is visible and held,
//! a change ignored is silent.

use crate::view::spec::TableRef;

/// The watched tables, and how the server compares table names: with
/// `lower_case_table_names = 0` (the default on Linux) `Orders` and `orders` are two tables,
/// with 1 or 2 one (names compared lowercased). Before 2026-12-06 names
/// were always compared case-insensitively, so a DDL on `Orders` was taken for one on `orders`.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    pub tables: Vec<TableRef>,
    /// `lower_case_table_names` is 1 or 2.
    pub folded: bool,
}

impl Watched {
    /// Whether the server takes names `a` and `b` (of databases or tables) for the same.
    pub fn same(&self, a: &str, b: &str) -> bool {
        same_name(self.folded, a, b)
    }

    /// The watched table `database.table` names, spelled as watched.
    pub fn find(&self, database: &str, table: &str) -> Option<&TableRef> {
        find_table(&self.tables, self.folded, database, table)
    }
}

/// The table of `tables` that `database.table` names, compared as [`Watched::same`] does.
pub fn find_table<'a>(
    tables: impl IntoIterator<Item = &'a TableRef>,
    folded: bool,
    database: &str,
    table: &str,
) -> Option<&'a TableRef> {
    (tables.into_iter())
        .find(|w| same_name(folded, &w.database, database) && same_name(folded, &w.table, table))
}

fn same_name(folded: bool, a: &str, b: &str) -> bool {
    if folded {
        // As the server lowercases names (its character set's rules; Unicode's here).
        (a.chars().flat_map(char::to_lowercase)).eq(b.chars().flat_map(char::to_lowercase))
    } else {
        a == b
    }
}

/// The problem of views that spell one table in two ways on a server that folds names.
pub fn spelling_problem(a: &TableRef, b: &TableRef) -> String {
    format!("{a} and {b} name one table on this server (lower_case_table_names is not 0: it compares table names lowercased), and rowcast would give its changes to one spelling only: spell it the same way in every view")
}

/// Two of `tables` that the server takes for one table (`folded`: it compares names
/// lowercased) though they are spelled differently, if any, in name order: the reader could
/// give a change of that table to one spelling only, so views must spell it one way.
pub fn spelled_twice<'a>(
    tables: impl IntoIterator<Item = &'a TableRef>,
    folded: bool,
) -> Option<(TableRef, TableRef)> {
    let mut tables: Vec<&TableRef> = tables.into_iter().collect();
    tables.sort_by(|a, b| (&a.database, &a.table).cmp(&(&b.database, &b.table)));
    tables.dedup();
    tables.iter().enumerate().find_map(|(i, a)| {
        let b = find_table(
            tables[i + 1..].iter().copied(),
            folded,
            &a.database,
            &a.table,
        )?;
        Some(((*a).clone(), b.clone()))
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A name or keyword; `quoted` for a backquoted name.
    Word {
        text: String,
        quoted: bool,
    },
    Dot,
    /// Anything else (a string, an operator); `(` is a `Word` so that it can end a list.
    Other,
}

/// The kind of row change a statement makes (`INSERT`, `UPDATE`, …), `None` for anything else.
pub fn dml_kind(text: &str) -> Option<&'static str> {
    let tokens = lex(text);
    let Some(Token::Word {
        text: first,
        quoted: false,
    }) = tokens.first()
    else {
        return None;
    };
    const KINDS: [&str; 6] = ["INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD", "WITH"];
    KINDS
        .into_iter()
        .find(|kind| first.eq_ignore_ascii_case(kind))
}

/// What a statement is, for logs: its first two keywords (`ALTER TABLE`, `ALTER USER`, `GRANT
/// SELECT`), never its text, which may hold a password (`IDENTIFIED BY '…'`) or user data.
pub fn kind(text: &str) -> String {
    let words: Vec<String> = lex(text)
        .into_iter()
        .take(2)
        .map_while(|token| match token {
            Token::Word {
                text,
                quoted: false,
            } if text.chars().all(|c| c.is_ascii_alphabetic()) => Some(text.to_ascii_uppercase()),
            _ => None,
        })
        .collect();
    if words.is_empty() {
        "(statement)".to_string()
    } else {
        words.join(" ")
    }
}

/// The tables of `watched` a statement names anywhere (for logs).
pub fn named_tables(text: &str, schema: &str, watched: &Watched) -> Vec<TableRef> {
    watched_among(qualified_names(&lex(text), &[]), schema, watched)
}

/// The tables of `watched` among `names` (a name without a database is in `schema`).
fn watched_among(
    names: Vec<(Option<String>, String)>,
    schema: &str,
    watched: &Watched,
) -> Vec<TableRef> {
    let mut found = Vec::new();
    for (database, table) in names {
        let database = database.as_deref().unwrap_or(schema);
        if let Some(candidate) = watched.find(database, &table) {
            if !found.contains(candidate) {
                found.push(candidate.clone());
            }
        }
    }
    found
}

/// The tables of `watched` a DML statement may change: for INSERT, REPLACE and LOAD the table
/// it writes; for UPDATE the tables before SET; for DELETE the tables before WHERE (a
/// multi-table statement may change any of them). `schema` is the session's default database.
pub fn changed_tables(text: &str, schema: &str, watched: &Watched) -> Vec<TableRef> {
    let tokens = lex(text);
    let Some(kind) = dml_kind(text) else {
        return Vec::new();
    };
    let stop: &[&str] = match kind {
        "UPDATE" => &["SET"],
        "DELETE" => &["WHERE", "ORDER", "LIMIT"],
        // The table written comes first: INSERT [options] [INTO] t, LOAD DATA … INTO TABLE t.
        "INSERT" | "REPLACE" => &["VALUES", "VALUE", "SET", "SELECT", "(", "ON"],
        "LOAD" => &["FIELDS", "COLUMNS", "LINES", "CHARACTER", "(", "SET"],
        // A common table expression and then any DML: every name may be the changed one.
        _ => &[],
    };
    watched_among(qualified_names(&tokens, stop), schema, watched)
}

/// The tables of `watched` a `TRUNCATE [TABLE] name` statement empties (logged as a statement
/// whatever the binlog format, with no row events).
pub fn truncated_tables(text: &str, schema: &str, watched: &Watched) -> Vec<TableRef> {
    let tokens = lex(text);
    let is_truncate = matches!(
        tokens.first(),
        Some(Token::Word { text, quoted: false }) if text.eq_ignore_ascii_case("TRUNCATE")
    );
    if !is_truncate {
        return Vec::new();
    }
    qualified_names(&tokens, &[])
        .into_iter()
        .filter_map(|name| watched_table(watched, schema, &name))
        .collect()
}

/// What a DDL statement does to the watched tables' names: the tables it drops or renames away
/// (`gone`) and the watched names it creates or renames a table to (`back`). Temporary tables
/// are not the watched ones and are left out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableMoves {
    pub gone: Vec<TableRef>,
    pub back: Vec<TableRef>,
}

/// The table moves of `text` (`DROP TABLE`, `DROP DATABASE` — every watched table in it —,
/// `RENAME TABLE a TO b, …`, `ALTER TABLE a RENAME [TO|AS] b`, `CREATE [OR REPLACE] TABLE`),
/// for the tables in `watched`.
pub fn table_moves(text: &str, schema: &str, watched: &Watched) -> TableMoves {
    let tokens = lex(text);
    let words = unquoted_words(&tokens);
    let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let find = |name: &(Option<String>, String)| watched_table(watched, schema, name);
    let keywords = [
        "TABLE", "TABLES", "IF", "EXISTS", "NOT", "TO", "AS", "OR", "REPLACE", "WAIT", "NOWAIT",
        "RESTRICT", "CASCADE",
    ];
    // An unquoted name is never all digits: such a word is WAIT's number of seconds.
    let names = |stop: &[&str]| -> Vec<(Option<String>, String)> {
        qualified_names(&tokens, stop)
            .into_iter()
            .filter(|(db, name)| {
                db.is_some()
                    || !(keywords.iter().any(|k| name.eq_ignore_ascii_case(k))
                        || name.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect()
    };
    let mut moves = TableMoves::default();
    match (word(0), word(1)) {
        ("DROP", "TABLE") => moves.gone = names(&[]).iter().filter_map(find).collect(),
        ("DROP", "DATABASE") | ("DROP", "SCHEMA") => {
            let database = tokens.iter().rev().find_map(|t| match t {
                Token::Word { text, quoted } if *quoted || !keywords.contains(&text.as_str()) => {
                    Some(text.as_str())
                }
                _ => None,
            });
            moves.gone = (watched.tables.iter())
                .filter(|t| database.is_some_and(|d| watched.same(&t.database, d)))
                .cloned()
                .collect();
        }
        ("RENAME", "TABLE") => {
            for pair in names(&[]).chunks(2) {
                moves.gone.extend(find(&pair[0]));
                if let Some(to) = pair.get(1) {
                    moves.back.extend(find(to));
                }
            }
        }
        ("ALTER", "TABLE") | ("ALTER", "ONLINE") | ("ALTER", "IGNORE") => {
            let keyword = |i: usize, words: &[&str]| matches!(tokens.get(i), Some(Token::Word { text, quoted: false }) if words.iter().any(|k| text.eq_ignore_ascii_case(k)));
            // The RENAME [TO|AS] clause among the others (a RENAME COLUMN, INDEX, KEY or
            // CONSTRAINT names no table).
            let Some(rename) = (0..tokens.len()).find(|&i| {
                keyword(i, &["RENAME"])
                    && !keyword(i + 1, &["COLUMN", "INDEX", "KEY", "CONSTRAINT"])
            }) else {
                return moves;
            };
            let at = if keyword(rename + 1, &["TO", "AS"]) {
                rename + 2
            } else {
                rename + 1
            };
            if let (Some(from), Some(to)) = (names(&[]).first(), name_at(&tokens, at)) {
                moves.gone.extend(find(from));
                moves.back.extend(find(&to));
            }
        }
        ("CREATE", "TABLE") | ("CREATE", "OR") => {
            let temporary = words.iter().take(6).any(|w| w == "TEMPORARY");
            if !temporary {
                moves.back = names(&["(", "LIKE", "SELECT", "AS"])
                    .first()
                    .and_then(find)
                    .into_iter()
                    .collect();
            }
        }
        _ => {}
    }
    moves
}

/// The watched tables an `ALTER TABLE` of *another* table moves through its partitions: one
/// whose rows an `EXCHANGE PARTITION p WITH TABLE t` swaps for the partition's, or that
/// `CONVERT PARTITION p TO TABLE t` makes, is `back` (read again, as after a CREATE); one that
/// `CONVERT TABLE t TO PARTITION p` turns into a partition is `gone`. None of them has row
/// events. (The altered table itself: [`altered_table`].)
pub fn partition_moves(text: &str, schema: &str, watched: &Watched) -> TableMoves {
    let tokens = lex(text);
    let mut moves = TableMoves::default();
    let words = unquoted_words(&tokens);
    if !alters_a_table(&words) || !words.iter().any(|w| w == "PARTITION") {
        return moves;
    }
    let is = |i: usize, word: &str| matches!(tokens.get(i), Some(Token::Word { text, quoted: false }) if text.eq_ignore_ascii_case(word));
    for i in 0..tokens.len() {
        // EXCHANGE PARTITION p WITH TABLE t; CONVERT PARTITION p TO TABLE t.
        if (is(i, "WITH") || is(i, "TO")) && is(i + 1, "TABLE") {
            moves
                .back
                .extend(name_at(&tokens, i + 2).and_then(|n| watched_table(watched, schema, &n)));
        }
        // CONVERT TABLE t TO PARTITION p.
        if is(i, "CONVERT") && is(i + 1, "TABLE") {
            moves
                .gone
                .extend(name_at(&tokens, i + 2).and_then(|n| watched_table(watched, schema, &n)));
        }
    }
    moves
}

/// `ALTER [ONLINE|IGNORE] TABLE …`, not `ALTER EVENT … DO ALTER TABLE …` (which runs nothing
/// when it is defined).
fn alters_a_table(words: &[String]) -> bool {
    let word = |i: usize| words.get(i).map(String::as_str);
    word(0) == Some("ALTER")
        && (word(1) == Some("TABLE")
            || matches!(word(1), Some("ONLINE") | Some("IGNORE")) && word(2) == Some("TABLE"))
}

/// The `db.table` or `table` name at token `i`.
fn name_at(tokens: &[Token], i: usize) -> Option<(Option<String>, String)> {
    let Some(Token::Word { text, .. }) = tokens.get(i) else {
        return None;
    };
    match (tokens.get(i + 1), tokens.get(i + 2)) {
        (Some(Token::Dot), Some(Token::Word { text: table, .. })) => {
            Some((Some(text.clone()), table.clone()))
        }
        _ => Some((None, text.clone())),
    }
}

/// What an `ALTER TABLE` does to a table's rows as rowcast sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alter {
    /// Columns added, dropped or renamed: the rows keep their keys and values.
    Columns,
    /// Columns changed in type or charset (`MODIFY`, `CHANGE`, `CONVERT TO`): the server
    /// rewrote every row without row events, and their values (and keys) may read differently.
    Retyped,
    /// System versioning added (MariaDB): deletes and updates are logged as row changes of
    /// history rows from then on, which rowcast does not read (its views halt).
    Versioned,
    /// Partitions dropped, truncated, exchanged or converted, duplicates deleted by `ALTER
    /// IGNORE … ADD UNIQUE`, a tablespace imported: rows may be gone or replaced without row
    /// events, as with TRUNCATE.
    Rows,
}

/// The watched table an `ALTER TABLE` changes in place and how (not a rename: see
/// [`table_moves`]); `None` for an ALTER that changes neither columns nor rows (an index, a
/// constraint, a comment, a default, the engine).
pub fn altered_table(text: &str, schema: &str, watched: &Watched) -> Option<(TableRef, Alter)> {
    let tokens = lex(text);
    let words = unquoted_words(&tokens);
    if words.first().map(String::as_str) != Some("ALTER")
        || !words.iter().take(4).any(|w| w == "TABLE")
    {
        return None;
    }
    if table_moves(text, schema, watched) != TableMoves::default() {
        return None;
    }
    let keywords = ["TABLE", "ONLINE", "IGNORE", "IF", "EXISTS"];
    let name = qualified_names(&tokens, &[])
        .into_iter()
        .find(|(db, name)| {
            db.is_some() || !keywords.iter().any(|k| name.eq_ignore_ascii_case(k))
        })?;
    let table = watched_table(watched, schema, &name)?;
    let has = |word: &str| words.iter().any(|w| w == word);
    // Rows gone or replaced without row events: partitions dropped, truncated, exchanged or
    // converted (reorganised, coalesced or unpartitioned ones keep every row); duplicates
    // deleted by `ALTER IGNORE … ADD UNIQUE | PRIMARY KEY`; a tablespace imported (a restore).
    if words
        .windows(3)
        .any(|w| w == ["ADD", "SYSTEM", "VERSIONING"])
    {
        return Some((table, Alter::Versioned));
    }
    let partition_rows = ["DROP", "TRUNCATE", "EXCHANGE", "CONVERT"];
    let ignored_duplicates = has("IGNORE")
        && words
            .windows(2)
            .any(|pair| pair[0] == "ADD" && (pair[1] == "UNIQUE" || pair[1] == "PRIMARY"));
    if (has("PARTITION") && partition_rows.iter().any(|w| has(w)))
        || ignored_duplicates
        || words
            .windows(2)
            .any(|pair| pair == ["IMPORT", "TABLESPACE"])
    {
        return Some((table, Alter::Rows));
    }
    // A clause changes columns unless what follows ADD/DROP names an index, a key, a
    // constraint or a partition.
    if ["MODIFY", "CHANGE", "CONVERT"].iter().any(|w| has(w)) {
        return Some((table, Alter::Retyped));
    }
    let changes_columns = words.windows(2).any(|pair| match pair[0].as_str() {
        "RENAME" => pair[1] == "COLUMN",
        "ADD" | "DROP" => !NOT_COLUMNS.contains(&pair[1].as_str()),
        _ => false,
    });
    changes_columns.then_some((table, Alter::Columns))
}

/// The clauses of `ADD`/`DROP` that name something other than a column.
const NOT_COLUMNS: [&str; 13] = [
    "INDEX",
    "KEY",
    "UNIQUE",
    "PRIMARY",
    "FOREIGN",
    "CONSTRAINT",
    "CHECK",
    "FULLTEXT",
    "SPATIAL",
    "PARTITION",
    "SYSTEM",
    "PERIOD",
    "DEFAULT",
];

/// The columns an `ALTER TABLE` drops (`DROP [COLUMN] [IF EXISTS] c`) or renames away
/// (`RENAME COLUMN c TO d`), lower-cased: a view that reads one of them must not keep items made
/// from it, even when a column of that name is back before any row changes (added again, or
/// two names swapped).
pub fn columns_moved(text: &str) -> Vec<String> {
    let tokens = lex(text);
    let words = unquoted_words(&tokens);
    if !alters_a_table(&words) {
        return Vec::new();
    }
    let keyword = |i: usize, word: &str| matches!(tokens.get(i), Some(Token::Word { text, quoted: false }) if text.eq_ignore_ascii_case(word));
    let mut moved = Vec::new();
    for i in 0..tokens.len() {
        let mut at = if keyword(i, "DROP") {
            i + 1
        } else if keyword(i, "RENAME") && keyword(i + 1, "COLUMN") {
            i + 2
        } else {
            continue;
        };
        // After COLUMN any word is the column's name (`system`, `period` are not reserved).
        let column = keyword(at, "COLUMN");
        if column {
            at += 1;
        }
        if keyword(at, "IF") && keyword(at + 1, "EXISTS") {
            at += 2;
        }
        if let Some(Token::Word { text, quoted }) = tokens.get(at) {
            let other =
                !column && !quoted && NOT_COLUMNS.iter().any(|w| text.eq_ignore_ascii_case(w));
            if !other && text != "(" {
                moved.push(text.to_ascii_lowercase());
            }
        }
    }
    moved
}

/// The columns an `ALTER TABLE` adds (`ADD [COLUMN] c …`) or renames to (`RENAME COLUMN c TO
/// d`: `d`), lower-cased: a view that reads one of them was missing it (halted by a `DROP` of it
/// just before, most often) and is read again. Not `ADD … IF NOT EXISTS`, binlogged also when
/// the column was there (idempotent migrations would read the views again each time), and of a
/// parenthesised `ADD (a …, b …)` only the first (this lexer does not tell the list's commas
/// from other signs).
pub fn columns_added(text: &str) -> Vec<String> {
    let tokens = lex(text);
    let words = unquoted_words(&tokens);
    if !alters_a_table(&words) {
        return Vec::new();
    }
    let keyword = |i: usize, word: &str| matches!(tokens.get(i), Some(Token::Word { text, quoted: false }) if text.eq_ignore_ascii_case(word));
    let name = |i: usize| match tokens.get(i) {
        Some(Token::Word { text, quoted }) if text != "(" => Some((text, *quoted)),
        _ => None,
    };
    let mut added = Vec::new();
    for i in 0..tokens.len() {
        if keyword(i, "RENAME") && keyword(i + 1, "COLUMN") && keyword(i + 3, "TO") {
            added.extend(name(i + 4).map(|(text, _)| text.to_ascii_lowercase()));
            continue;
        }
        if !keyword(i, "ADD") {
            continue;
        }
        let mut at = i + 1;
        let column = keyword(at, "COLUMN");
        if column {
            at += 1;
        }
        if keyword(at, "IF") && keyword(at + 1, "NOT") && keyword(at + 2, "EXISTS") {
            continue;
        }
        if matches!(tokens.get(at), Some(Token::Word { text, .. }) if text == "(") {
            added.extend(name(at + 1).map(|(text, _)| text.to_ascii_lowercase()));
            continue;
        }
        if let Some((text, quoted)) = name(at) {
            let other =
                !column && !quoted && NOT_COLUMNS.iter().any(|w| text.eq_ignore_ascii_case(w));
            if !other {
                added.push(text.to_ascii_lowercase());
            }
        }
    }
    added
}

/// The unquoted words of a statement, in upper case (keywords and unquoted names).
fn unquoted_words(tokens: &[Token]) -> Vec<String> {
    tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word {
                text,
                quoted: false,
            } => Some(text.to_ascii_uppercase()),
            _ => None,
        })
        .collect()
}

/// The table of `watched` a `db.table` or `table` name (in `schema` by default) names.
fn watched_table(
    watched: &Watched,
    schema: &str,
    (database, table): &(Option<String>, String),
) -> Option<TableRef> {
    watched
        .find(database.as_deref().unwrap_or(schema), table)
        .cloned()
}

/// `db.table` and `table` names up to the first unquoted word in `stop`.
fn qualified_names(tokens: &[Token], stop: &[&str]) -> Vec<(Option<String>, String)> {
    let mut names = Vec::new();
    let mut i = 1;
    while i < tokens.len() {
        let Token::Word { text, quoted } = &tokens[i] else {
            i += 1;
            continue;
        };
        if !quoted && stop.iter().any(|s| text.eq_ignore_ascii_case(s)) {
            break;
        }
        match (tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(Token::Dot), Some(Token::Word { text: table, .. })) => {
                names.push((Some(text.clone()), table.clone()));
                i += 3;
            }
            _ => {
                names.push((None, text.clone()));
                i += 1;
            }
        }
    }
    names
}

/// The tokens of the statement a text runs: [`lex_all`] without a `SET STATEMENT var = value,
/// … FOR` prefix (MariaDB's per-statement variables, logged as written: `SET STATEMENT
/// max_statement_time = 5 FOR TRUNCATE TABLE t` is a TRUNCATE).
fn lex(text: &str) -> Vec<Token> {
    let mut tokens = lex_all(text);
    let is = |token: Option<&Token>, word: &str| matches!(token, Some(Token::Word { text, quoted: false }) if text.eq_ignore_ascii_case(word));
    if is(tokens.first(), "SET") && is(tokens.get(1), "STATEMENT") {
        // A value is a literal or an unquoted word, never `FOR` (a string is `Other`).
        if let Some(at) = (2..tokens.len()).find(|&i| is(tokens.get(i), "FOR")) {
            tokens.drain(..=at);
        }
    }
    tokens
}

/// Words, dots and the rest; comments skipped (the code inside `/*! … */` and MariaDB's
/// `/*M! … */` kept), strings reduced to `Other`.
fn lex_all(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'/' && next == Some(b'*') {
            let executable = match bytes.get(i + 2) {
                Some(b'!') => Some(3),
                Some(b'M') if bytes.get(i + 3) == Some(&b'!') => Some(4),
                _ => None,
            };
            if let Some(marker) = executable {
                // Executable comment: the version digits go, the code stays.
                i += marker;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i = find(bytes, i + 2, b"*/").map_or(bytes.len(), |end| end + 2);
            }
        } else if c == b'*' && next == Some(b'/') {
            i += 2;
        } else if c == b'#' || (c == b'-' && next == Some(b'-')) {
            i = find(bytes, i, b"\n").map_or(bytes.len(), |end| end + 1);
        } else if c == b'\'' || c == b'"' {
            i = skip_string(bytes, i);
            tokens.push(Token::Other);
        } else if c == b'`' {
            let (name, end) = quoted_name(text, i);
            tokens.push(Token::Word {
                text: name,
                quoted: true,
            });
            i = end;
        } else if c == b'.' {
            tokens.push(Token::Dot);
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || bytes[i] == b'$'
                    || bytes[i] >= 0x80)
            {
                i += 1;
            }
            tokens.push(Token::Word {
                text: text[start..i].to_string(),
                quoted: false,
            });
        } else {
            tokens.push(if c == b'(' {
                Token::Word {
                    text: "(".into(),
                    quoted: false,
                }
            } else {
                Token::Other
            });
            i += 1;
        }
    }
    tokens
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| from + at)
}

/// The end of a '…' or "…" string: backslash escapes and doubled quotes inside.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// `text` with its double-quoted names written backquoted (sql_mode ANSI_QUOTES: `"orders"`
/// names a table, strings are single-quoted only), as the rest of this module reads names.
/// Strings, backquoted names and comments are left as they are (the code inside executable
/// comments is read).
pub fn backquoted(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 8);
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        let next = bytes.get(i + 1).copied();
        match bytes[i] {
            b'\'' => i = skip_string(bytes, i),
            b'`' => i = quoted_name(text, i).1,
            b'/' if next == Some(b'*') => {
                let executable = matches!(bytes.get(i + 2), Some(b'!' | b'M'));
                i = if executable {
                    i + 2
                } else {
                    find(bytes, i + 2, b"*/").map_or(bytes.len(), |end| end + 2)
                };
            }
            b'#' => i = find(bytes, i, b"\n").map_or(bytes.len(), |end| end + 1),
            b'-' if next == Some(b'-') => {
                i = find(bytes, i, b"\n").map_or(bytes.len(), |end| end + 1)
            }
            b'"' => {
                // `"` is ASCII: never inside a multi-byte character, so the slices are whole.
                let mut end = i + 1;
                while end < bytes.len() {
                    if bytes[end] == b'"' {
                        if bytes.get(end + 1) == Some(&b'"') {
                            end += 2;
                            continue;
                        }
                        break;
                    }
                    end += 1;
                }
                let name = text[i + 1..end.min(bytes.len())]
                    .replace("\"\"", "\"")
                    .replace('`', "``");
                out.push_str(&text[copied..i]);
                out.push('`');
                out.push_str(&name);
                out.push('`');
                i = (end + 1).min(bytes.len());
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// A backquoted name (doubled backquotes inside) and the index after it.
fn quoted_name(text: &str, start: usize) -> (String, usize) {
    let bytes = text.as_bytes();
    let mut name = String::new();
    let mut i = start + 1;
    let mut from = i;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            name.push_str(&text[from..i]);
            if bytes.get(i + 1) == Some(&b'`') {
                name.push('`');
                i += 2;
                from = i;
            } else {
                return (name, i + 1);
            }
        } else {
            i += 1;
        }
    }
    name.push_str(&text[from..]);
    (name, bytes.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_dropped_or_renamed_away_are_named() {
        assert_eq!(
            columns_moved("ALTER TABLE people DROP COLUMN First"),
            vec!["first"]
        );
        assert_eq!(
            columns_moved("alter table people drop if exists `a`, drop column b, add c int"),
            vec!["a", "b"]
        );
        assert_eq!(
            columns_moved("ALTER TABLE people RENAME COLUMN first TO tmp"),
            vec!["first"]
        );
        assert_eq!(
            columns_moved("ALTER TABLE people DROP INDEX i, DROP PRIMARY KEY, DROP FOREIGN KEY f, DROP CONSTRAINT c, DROP CHECK k, DROP PARTITION p0, ALTER COLUMN d DROP DEFAULT, DROP SYSTEM VERSIONING"),
            Vec::<String>::new()
        );
        assert_eq!(
            columns_moved("ALTER TABLE people ADD x INT"),
            Vec::<String>::new()
        );
        assert_eq!(
            columns_moved("ALTER TABLE people DROP COLUMN system, DROP COLUMN `period`"),
            vec!["system", "period"]
        );
        assert_eq!(
            columns_moved(
                "ALTER EVENT e ON SCHEDULE EVERY 1 DAY DO ALTER TABLE people DROP COLUMN a"
            ),
            Vec::<String>::new()
        );
        assert_eq!(columns_moved("DROP TABLE people"), Vec::<String>::new());
    }

    #[test]
    fn double_quoted_names_are_backquoted() {
        assert_eq!(
            backquoted(r#"TRUNCATE TABLE "shop"."orders""#),
            "TRUNCATE TABLE `shop`.`orders`"
        );
        assert_eq!(
            backquoted(r#"ALTER TABLE "a""b" COMMENT 'say "hi"' /* "c" */ -- "d""#),
            r#"ALTER TABLE `a"b` COMMENT 'say "hi"' /* "c" */ -- "d""#
        );
        assert_eq!(
            backquoted("DROP TABLE \"x`y\", `z\"`"),
            "DROP TABLE `x``y`, `z\"`"
        );
        assert_eq!(
            backquoted(r#"/*!40101 DROP TABLE "t" */"#),
            "/*!40101 DROP TABLE `t` */"
        );
        assert_eq!(
            backquoted(r#"RENAME TABLE "é" TO "ü""#),
            "RENAME TABLE `é` TO `ü`"
        );
        let watched = vec![TableRef::parse("shop.orders").unwrap()];
        assert_eq!(
            truncated_tables(
                &backquoted(r#"TRUNCATE TABLE "orders""#),
                "shop",
                &any_case(&watched)
            ),
            watched
        );
    }

    #[test]
    fn columns_added_or_renamed_to_are_named() {
        assert_eq!(
            columns_added("ALTER TABLE people ADD COLUMN Price INT NOT NULL DEFAULT 5"),
            vec!["price"]
        );
        assert_eq!(
            columns_added("alter table people add if not exists `a` int, add column b int, drop c"),
            vec!["b"]
        );
        assert_eq!(
            columns_added("ALTER TABLE people RENAME COLUMN tmp TO First"),
            vec!["first"]
        );
        assert_eq!(
            columns_added("ALTER TABLE people ADD INDEX i (a), ADD PRIMARY KEY (id), ADD CONSTRAINT c CHECK (a > 0), ADD UNIQUE KEY u (b), ADD FOREIGN KEY (x) REFERENCES t (y)"),
            Vec::<String>::new()
        );
        assert_eq!(
            columns_added("ALTER TABLE people ADD (a INT, b VARCHAR(3), INDEX i (c))"),
            vec!["a"]
        );
        assert_eq!(
            columns_added("ALTER TABLE people ADD COLUMN system INT, ADD `period` INT"),
            vec!["system", "period"]
        );
        assert_eq!(
            columns_added("SET STATEMENT a=1 FOR ALTER TABLE orders ADD note TEXT"),
            vec!["note"]
        );
        assert_eq!(
            columns_added("CREATE TABLE people (a INT)"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn set_statement_prefixes_and_mariadb_executable_comments_are_read_through() {
        let watched = vec![TableRef::parse("shop.orders").unwrap()];
        let orders = TableRef::parse("shop.orders").unwrap();
        let truncated = |text: &str| truncated_tables(text, "shop", &any_case(&watched));
        assert_eq!(
            truncated(
                "SET STATEMENT max_statement_time = 5, sql_mode = 'a,b' FOR TRUNCATE TABLE orders"
            ),
            vec![orders.clone()]
        );
        assert_eq!(
            truncated("/*M!100100 TRUNCATE TABLE orders */"),
            vec![orders.clone()]
        );
        assert_eq!(
            truncated("/*!40000 TRUNCATE shop.orders */"),
            vec![orders.clone()]
        );
        assert_eq!(
            truncated("SET STATEMENT x = 1 FOR SELECT 1 FROM orders"),
            Vec::<TableRef>::new()
        );
        assert_eq!(
            table_moves(
                "set statement lock_wait_timeout=3 for rename table orders to old_orders",
                "shop",
                &any_case(&watched)
            ),
            TableMoves {
                gone: vec![orders.clone()],
                back: vec![]
            }
        );
        assert_eq!(
            altered_table(
                "SET STATEMENT max_statement_time=60 FOR ALTER TABLE orders DROP COLUMN note",
                "shop",
                &any_case(&watched)
            ),
            Some((orders.clone(), Alter::Columns))
        );
        assert_eq!(
            columns_moved("SET STATEMENT a=1 FOR ALTER TABLE orders DROP COLUMN note"),
            vec!["note"]
        );
        assert_eq!(
            dml_kind("SET STATEMENT max_statement_time=1 FOR DELETE FROM orders"),
            Some("DELETE")
        );
        // A plain SET is no statement of a table.
        assert_eq!(dml_kind("SET @a = 1"), None);
        assert_eq!(kind("SET STATEMENT a=1 FOR ALTER USER u"), "ALTER USER");
    }

    #[test]
    fn partitions_exchanged_or_converted_move_the_other_table() {
        let watched = vec![TableRef::parse("shop.orders").unwrap()];
        let orders = TableRef::parse("shop.orders").unwrap();
        let moves = |text: &str| partition_moves(text, "shop", &any_case(&watched));
        let back = TableMoves {
            gone: vec![],
            back: vec![orders.clone()],
        };
        let gone = TableMoves {
            gone: vec![orders.clone()],
            back: vec![],
        };
        assert_eq!(
            moves("ALTER TABLE archive EXCHANGE PARTITION p0 WITH TABLE orders"),
            back
        );
        assert_eq!(
            moves("alter table archive exchange partition p0 with table `shop`.`orders` without validation"),
            back
        );
        assert_eq!(
            moves("ALTER TABLE archive CONVERT PARTITION p0 TO TABLE orders"),
            back
        );
        assert_eq!(
            moves(
                "ALTER TABLE archive CONVERT TABLE orders TO PARTITION p1 VALUES LESS THAN (2000)"
            ),
            gone
        );
        assert_eq!(
            moves("ALTER TABLE archive EXCHANGE PARTITION p0 WITH TABLE other.orders"),
            TableMoves::default()
        );
        assert_eq!(
            moves("ALTER TABLE orders RENAME TO t2"),
            TableMoves::default()
        );
        // An event's definition runs nothing (found by a review).
        assert_eq!(
            moves("ALTER EVENT rotate ON SCHEDULE EVERY 1 MONTH DO ALTER TABLE sales EXCHANGE PARTITION p0 WITH TABLE orders"),
            TableMoves::default()
        );
        assert_eq!(
            moves("ALTER DEFINER = CURRENT_USER EVENT e DO ALTER TABLE sales CONVERT TABLE orders TO PARTITION p1 VALUES LESS THAN (9)"),
            TableMoves::default()
        );
        assert_eq!(
            moves("ALTER ONLINE TABLE archive EXCHANGE PARTITION p0 WITH TABLE orders"),
            back.clone()
        );
        assert_eq!(
            moves("ALTER TABLE orders DROP PARTITION p0"),
            TableMoves::default()
        );
        // The altered table's own rows change too.
        let altered = |text: &str| altered_table(text, "shop", &any_case(&watched));
        assert_eq!(
            altered(
                "ALTER TABLE orders CONVERT TABLE archive TO PARTITION p1 VALUES LESS THAN (9)"
            ),
            Some((orders.clone(), Alter::Rows))
        );
        assert_eq!(
            altered("ALTER TABLE orders EXCHANGE PARTITION p0 WITH TABLE archive"),
            Some((orders, Alter::Rows))
        );
    }

    #[test]
    fn alter_table_names_the_table_it_changes() {
        let watched = vec![TableRef::parse("shop.orders").unwrap()];
        let t = TableRef::parse("shop.orders").unwrap();
        let altered = |text: &str| altered_table(text, "shop", &any_case(&watched));
        let columns = Some((t.clone(), Alter::Columns));
        assert_eq!(altered("ALTER TABLE orders ADD COLUMN x INT"), columns);
        assert_eq!(
            altered("ALTER TABLE orders ADD x INT, ADD INDEX (x)"),
            columns
        );
        let retyped = Some((t.clone(), Alter::Retyped));
        assert_eq!(
            altered("alter online table `shop`.`orders` modify x bigint"),
            retyped
        );
        assert_eq!(
            altered("ALTER TABLE orders CHANGE x y VARCHAR(20), ADD z INT"),
            retyped
        );
        assert_eq!(altered("ALTER TABLE orders DROP COLUMN x"), columns);
        assert_eq!(altered("ALTER TABLE orders RENAME COLUMN a TO b"), columns);
        assert_eq!(
            altered("ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4"),
            retyped
        );
        assert_eq!(altered("ALTER TABLE orders ADD INDEX by_x (x)"), None);
        assert_eq!(altered("ALTER TABLE orders DROP FOREIGN KEY fk_x"), None);
        assert_eq!(
            altered("ALTER TABLE orders ALTER COLUMN x SET DEFAULT 1"),
            None
        );
        assert_eq!(altered("ALTER TABLE orders ENGINE = InnoDB"), None);
        assert_eq!(altered("ALTER TABLE orders COMMENT 'x'"), None);
        assert_eq!(
            altered("ALTER TABLE orders DROP PARTITION p2019"),
            Some((t.clone(), Alter::Rows))
        );
        assert_eq!(altered("ALTER TABLE orders RENAME TO orders2"), None);
        // Rows deleted or replaced without row events (found by a review).
        let rows = Some((t.clone(), Alter::Rows));
        assert_eq!(
            altered("ALTER IGNORE TABLE orders ADD UNIQUE (email)"),
            rows
        );
        assert_eq!(
            altered("ALTER ONLINE IGNORE TABLE orders ADD PRIMARY KEY (id)"),
            rows
        );
        assert_eq!(altered("ALTER TABLE orders IMPORT TABLESPACE"), rows);
        assert_eq!(altered("ALTER TABLE orders ADD UNIQUE (email)"), None);
        assert_eq!(altered("ALTER TABLE orders DISCARD TABLESPACE"), None);
        assert_eq!(
            altered("ALTER TABLE orders ADD SYSTEM VERSIONING"),
            Some((t.clone(), Alter::Versioned))
        );
        assert_eq!(altered("ALTER TABLE orders DROP SYSTEM VERSIONING"), None);
        // Partitions reorganised keep every row: no backfill.
        for kept in [
            "ALTER TABLE orders REORGANIZE PARTITION pmax INTO (PARTITION p1 VALUES LESS THAN (10), PARTITION pmax VALUES LESS THAN MAXVALUE)",
            "ALTER TABLE orders COALESCE PARTITION 2",
            "ALTER TABLE orders REMOVE PARTITIONING",
        ] {
            assert_eq!(altered(kept), None, "{kept}");
        }
        assert_eq!(altered("ALTER TABLE other ADD COLUMN x INT"), None);
        assert_eq!(altered("CREATE TABLE orders (id INT)"), None);
    }

    #[test]
    fn drops_renames_and_creates_of_watched_tables() {
        let watched = vec![
            TableRef::parse("shop.orders").unwrap(),
            TableRef::parse("shop.lines").unwrap(),
        ];
        let moves = |text: &str| table_moves(text, "shop", &any_case(&watched));
        let t = |name: &str| TableRef::parse(name).unwrap();
        assert_eq!(
            moves("DROP TABLE IF EXISTS `orders`, other").gone,
            vec![t("shop.orders")]
        );
        assert_eq!(
            moves("drop table shop.lines /* generated by server */").gone,
            vec![t("shop.lines")]
        );
        let renamed = moves("RENAME TABLE orders TO orders_old, orders_new TO orders");
        assert_eq!(renamed.gone, vec![t("shop.orders")]);
        assert_eq!(renamed.back, vec![t("shop.orders")]);
        let altered = moves("ALTER TABLE lines RENAME TO lines2");
        assert_eq!(altered.gone, vec![t("shop.lines")]);
        assert!(altered.back.is_empty());
        assert_eq!(
            moves("ALTER TABLE lines RENAME COLUMN a TO b"),
            TableMoves::default()
        );
        // A table rename after another clause, and WAIT's seconds (found by a review: both
        // were missed, the pairs shifted by the number).
        let both = moves("ALTER TABLE lines RENAME COLUMN a TO b, RENAME TO lines2");
        assert_eq!(both.gone, vec![t("shop.lines")]);
        assert!(both.back.is_empty());
        assert_eq!(
            moves("alter table other rename as shop.orders").back,
            vec![t("shop.orders")]
        );
        let waited = moves("RENAME TABLE orders WAIT 5 TO orders_old, orders_new TO orders");
        assert_eq!(waited.gone, vec![t("shop.orders")]);
        assert_eq!(waited.back, vec![t("shop.orders")]);
        assert_eq!(
            moves("ALTER TABLE lines ADD COLUMN x INT"),
            TableMoves::default()
        );
        assert_eq!(
            moves("CREATE TABLE orders (id INT PRIMARY KEY)").back,
            vec![t("shop.orders")]
        );
        assert_eq!(
            moves("CREATE TABLE IF NOT EXISTS shop.lines LIKE x").back,
            vec![t("shop.lines")]
        );
        assert_eq!(
            moves("CREATE TEMPORARY TABLE orders (id INT)"),
            TableMoves::default()
        );
        assert_eq!(moves("CREATE TABLE other (id INT)"), TableMoves::default());
        assert_eq!(moves("DROP TEMPORARY TABLE orders"), TableMoves::default());
        // The database goes, and every watched table in it.
        assert_eq!(
            moves("DROP DATABASE IF EXISTS `shop`").gone,
            vec![t("shop.orders"), t("shop.lines")]
        );
        assert_eq!(
            moves("drop schema shop").gone,
            vec![t("shop.orders"), t("shop.lines")]
        );
        assert_eq!(moves("DROP DATABASE other"), TableMoves::default());
        assert_eq!(
            moves("DROP DATABASE SHOP").gone,
            vec![t("shop.orders"), t("shop.lines")],
            "as DROP TABLE names match (lower_case_table_names)"
        );
    }

    /// Names the server folds are compared lowercased, letters beyond ASCII too; two spellings
    /// of one table among the watched are found.
    #[test]
    fn folded_names_compare_lowercased() {
        let t = |name: &str| TableRef::parse(name).unwrap();
        let watched = any_case(&[t("shop.Äpfel"), t("Shop.orders")]);
        assert_eq!(
            truncated_tables("TRUNCATE äPFEL", "SHOP", &watched),
            vec![t("shop.Äpfel")]
        );
        assert!(truncated_tables("TRUNCATE apfel", "shop", &watched).is_empty());
        let tables = [t("shop.orders"), t("shop.lines"), t("SHOP.Orders")];
        assert_eq!(
            spelled_twice(&tables, true),
            Some((t("SHOP.Orders"), t("shop.orders")))
        );
        assert_eq!(spelled_twice(&tables, false), None);
        assert_eq!(spelled_twice(&[t("a.b"), t("a.b")], true), None);
    }

    /// On a server that tells names apart by case (`lower_case_table_names = 0`), a statement
    /// on `Orders` or in `SHOP` is not one on the watched `shop.orders`.
    #[test]
    fn exact_names_tell_another_case_apart() {
        let t = |name: &str| TableRef::parse(name).unwrap();
        let watched = Watched {
            tables: vec![t("shop.orders")],
            folded: false,
        };
        let none = TableMoves::default();
        assert_eq!(table_moves("DROP TABLE Orders", "shop", &watched), none);
        assert_eq!(table_moves("DROP DATABASE SHOP", "shop", &watched), none);
        assert_eq!(
            table_moves("RENAME TABLE x TO ORDERS", "shop", &watched),
            none
        );
        assert!(truncated_tables("TRUNCATE Orders", "shop", &watched).is_empty());
        assert_eq!(
            altered_table("ALTER TABLE Orders DROP COLUMN a", "shop", &watched),
            None
        );
        assert!(changed_tables("UPDATE Orders SET a = 1", "shop", &watched).is_empty());
        assert!(changed_tables("UPDATE orders SET a = 1", "Shop", &watched).is_empty());
        assert_eq!(
            table_moves("DROP TABLE orders", "shop", &watched).gone,
            vec![t("shop.orders")]
        );
        assert_eq!(
            changed_tables("UPDATE `shop`.`orders` SET a = 1", "x", &watched),
            vec![t("shop.orders")]
        );
    }

    #[test]
    fn logs_see_the_kind_of_a_statement_never_its_text() {
        let watched = [table("shop", "orders")];
        assert_eq!(
            kind("ALTER USER 'a'@'%' IDENTIFIED BY 'hunter2'"),
            "ALTER USER"
        );
        assert_eq!(
            kind("  /* x */ alter table orders add c int"),
            "ALTER TABLE"
        );
        assert_eq!(kind("GRANT ALL ON *.* TO x"), "GRANT ALL");
        assert_eq!(kind("'secret'"), "(statement)");
        assert_eq!(
            named_tables(
                "ALTER TABLE `orders` ADD c INT",
                "shop",
                &any_case(&watched)
            ),
            watched.to_vec()
        );
        assert!(named_tables(
            "ALTER USER u IDENTIFIED BY 'orders'",
            "shop",
            &any_case(&watched)
        )
        .is_empty());
    }

    #[test]
    fn truncate_names_its_table() {
        let watched = vec![
            TableRef::parse("shop.orders").unwrap(),
            TableRef::parse("shop.lines").unwrap(),
        ];
        assert_eq!(
            truncated_tables("TRUNCATE TABLE orders", "shop", &any_case(&watched)),
            vec![watched[0].clone()]
        );
        assert_eq!(
            truncated_tables("truncate `shop`.`lines`", "other", &any_case(&watched)),
            vec![watched[1].clone()]
        );
        assert!(truncated_tables("TRUNCATE TABLE other", "shop", &any_case(&watched)).is_empty());
        assert!(truncated_tables("DROP TABLE orders", "shop", &any_case(&watched)).is_empty());
    }
    use super::*;

    /// `tables` watched on a server that compares names lowercased.
    fn any_case(tables: &[TableRef]) -> Watched {
        Watched {
            tables: tables.to_vec(),
            folded: true,
        }
    }

    fn table(database: &str, table: &str) -> TableRef {
        TableRef {
            database: database.into(),
            table: table.into(),
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(dml_kind("UPDATE notes SET a = 1"), Some("UPDATE"));
        assert_eq!(
            dml_kind("  /* app */ insert into t values (1)"),
            Some("INSERT")
        );
        assert_eq!(dml_kind("/*!40000 DELETE */ FROM t"), Some("DELETE"));
        assert_eq!(dml_kind("-- x\nREPLACE t VALUES (1)"), Some("REPLACE"));
        assert_eq!(dml_kind("ALTER TABLE notes ADD c INT"), None);
        assert_eq!(dml_kind("BEGIN"), None);
        assert_eq!(dml_kind("`UPDATE`"), None);
        assert_eq!(dml_kind("TRUNCATE notes"), None);
    }

    #[test]
    fn tables_it_changes() {
        let watched = [
            table("app", "notes"),
            table("app", "others"),
            table("x", "y"),
        ];
        let changed = |sql: &str| changed_tables(sql, "app", &any_case(&watched));
        assert_eq!(
            changed("UPDATE notes SET body = 'others' WHERE id = 1"),
            [table("app", "notes")]
        );
        assert_eq!(
            changed("update `app`.`Notes` set a = 1"),
            [table("app", "notes")]
        );
        assert_eq!(
            changed("INSERT INTO archive SELECT * FROM notes"),
            Vec::<TableRef>::new()
        );
        assert_eq!(
            changed("INSERT LOW_PRIORITY IGNORE INTO x.y (a) VALUES ('notes')"),
            [table("x", "y")]
        );
        assert_eq!(
            changed("UPDATE notes n JOIN others o ON n.id = o.id SET n.a = o.a"),
            [table("app", "notes"), table("app", "others")]
        );
        assert_eq!(
            changed("DELETE FROM others WHERE id IN (SELECT id FROM notes)"),
            [table("app", "others")]
        );
        assert_eq!(
            changed("DELETE /* notes */ FROM `other``s` WHERE 1"),
            Vec::<TableRef>::new()
        );
        assert_eq!(
            changed("REPLACE INTO notes SET id = 1"),
            [table("app", "notes")]
        );
        assert_eq!(
            changed("WITH c AS (SELECT 1) UPDATE others SET v = 1"),
            [table("app", "others")]
        );
        assert_eq!(
            changed("UPDATE t SET note = 'it''s \\' notes' WHERE notes = 1"),
            Vec::<TableRef>::new()
        );
    }
}
