//! Privileges as `SHOW GRANTS` lists them, resolved per table: global (`*.*`), database
//! (`app`.*, with the `_` and `%` wildcards of a database pattern such as `shop\_%`), and
//! table grants (`app`.`orders`), through roles too (the caller adds the grants of each role a
//! line grants). Column-level grants are not counted: a snapshot reads whole rows.

/// One `GRANT privileges ON object TO …` line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Upper-case privilege names; `ALL` for `ALL [PRIVILEGES]`.
    pub privileges: Vec<String>,
    pub object: Object,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Global,
    /// A database name or pattern (`_` and `%` wildcards unless escaped with `\`).
    Database(String),
    Table(String, String),
    /// Not a table privilege (a procedure, a proxy grant): ignored.
    Other,
}

/// What a `SHOW GRANTS` line grants: privileges on an object, or roles (`GRANT r1, r2 TO u`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Privileges(Grant),
    Roles(Vec<String>),
}

/// A `name` or `` `name` `` at the start of `text`, and the rest.
fn name(text: &str) -> Option<(String, &str)> {
    if let Some(rest) = text.strip_prefix('`') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if rest[i + 1..].starts_with('`') {
                    out.push('`');
                    chars.next();
                } else {
                    return Some((out, &rest[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        return None;
    }
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '*'))
        .unwrap_or(text.len());
    (end > 0).then(|| (text[..end].to_string(), &text[end..]))
}

fn object(text: &str) -> Object {
    let text = text.trim();
    if text.starts_with("FUNCTION ")
        || text.starts_with("PROCEDURE ")
        || text.starts_with("PACKAGE ")
    {
        return Object::Other;
    }
    let text = text.strip_prefix("TABLE ").unwrap_or(text);
    let Some((first, rest)) = name(text) else {
        return Object::Other;
    };
    let Some(rest) = rest.strip_prefix('.') else {
        // `ON t`: a table of the current database, which SHOW GRANTS never prints.
        return Object::Other;
    };
    let Some((second, _)) = name(rest) else {
        return Object::Other;
    };
    match (first.as_str(), second.as_str()) {
        ("*", "*") => Object::Global,
        (_, "*") => Object::Database(first),
        _ => Object::Table(first, second),
    }
}

/// Parses one line of `SHOW GRANTS`; `None` for what grants nothing here.
pub fn parse(line: &str) -> Option<Line> {
    let rest = line.trim().strip_prefix("GRANT ")?;
    let to = rest.rfind(" TO ")?;
    let head = &rest[..to];
    let Some(on) = head.find(" ON ") else {
        let roles = head
            .split(',')
            .filter_map(|role| name(role.trim()).map(|(n, _)| n))
            .collect();
        return Some(Line::Roles(roles));
    };
    let privileges = head[..on]
        .split(',')
        .map(|p| p.trim().to_ascii_uppercase())
        // Column grants (`SELECT (a, b)`) split at their commas: none counts.
        .filter(|p| !p.contains('(') && !p.contains(')'))
        .map(|p| {
            if p == "ALL PRIVILEGES" {
                "ALL".to_string()
            } else {
                p
            }
        })
        .collect();
    Some(Line::Privileges(Grant {
        privileges,
        object: object(&head[on + 4..]),
    }))
}

/// Whether a database `pattern` of a grant covers `database` (`_` one character, `%` any run,
/// `\_` and `\%` themselves), compared as MariaDB and MySQL do on Linux: case-sensitively.
fn matches(pattern: &str, database: &str) -> bool {
    fn go(p: &[char], d: &[char]) -> bool {
        match p.split_first() {
            None => d.is_empty(),
            Some(('%', rest)) => (0..=d.len()).any(|i| go(rest, &d[i..])),
            Some(('_', rest)) => !d.is_empty() && go(rest, &d[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                d.first() == Some(&rest[0]) && go(&rest[1..], &d[1..])
            }
            Some((c, rest)) => d.first() == Some(c) && go(rest, &d[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let d: Vec<char> = database.chars().collect();
    go(&p, &d)
}

/// Whether `grants` give `privilege` on `database.table` (`table` `None`: globally).
pub fn has(grants: &[Grant], privilege: &str, database: Option<(&str, &str)>) -> bool {
    grants.iter().any(|grant| {
        let named = grant
            .privileges
            .iter()
            .any(|p| p == "ALL" || p == privilege);
        named
            && match (&grant.object, database) {
                (Object::Global, _) => true,
                (Object::Database(pattern), Some((db, _))) => matches(pattern, db),
                (Object::Table(db, table), Some((d, t))) => db == d && table == t,
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(lines: &[&str]) -> Vec<Grant> {
        lines
            .iter()
            .filter_map(|l| match parse(l) {
                Some(Line::Privileges(g)) => Some(g),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn database_table_wildcard_and_global_grants_resolve() {
        let g = grants(&[
            "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `rc`@`%`",
            "GRANT ALL PRIVILEGES ON `app`.* TO `rc`@`%`",
            "GRANT SELECT ON `shop\\_%`.* TO `rc`@`%`",
            "GRANT SELECT, INSERT ON `crm`.`people` TO `rc`@`%`",
            "GRANT SELECT (`id`, `name`) ON `crm`.`secret` TO `rc`@`%`",
        ]);
        assert!(has(&g, "REPLICATION SLAVE", None));
        assert!(!has(&g, "SELECT", None));
        assert!(has(&g, "SELECT", Some(("app", "orders"))));
        assert!(has(&g, "DELETE", Some(("app", "orders"))));
        assert!(has(&g, "SELECT", Some(("shop_eu", "orders"))));
        assert!(
            !has(&g, "SELECT", Some(("shopXeu", "orders"))),
            "\\_ is a literal _"
        );
        assert!(!has(&g, "SELECT", Some(("shop", "orders"))));
        assert!(has(&g, "SELECT", Some(("crm", "people"))));
        assert!(!has(&g, "UPDATE", Some(("crm", "people"))));
        assert!(!has(&g, "SELECT", Some(("crm", "other"))));
        assert!(
            !has(&g, "SELECT", Some(("crm", "secret"))),
            "column grants do not count"
        );
    }

    #[test]
    fn role_lines_name_their_roles() {
        assert_eq!(
            parse("GRANT `cdc_reader`, `app_rw` TO `rc`@`%`"),
            Some(Line::Roles(vec!["cdc_reader".into(), "app_rw".into()]))
        );
        assert_eq!(
            parse("GRANT USAGE ON *.* TO `rc`@`%` IDENTIFIED BY PASSWORD '*AB'"),
            Some(Line::Privileges(Grant {
                privileges: vec!["USAGE".into()],
                object: Object::Global
            }))
        );
        assert_eq!(parse("SET DEFAULT ROLE `r` FOR `rc`@`%`"), None);
    }
}
