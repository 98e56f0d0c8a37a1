//! Other join shapes than the shop's: a self-join (an employee's manager), a composite join
//! (tasks on `(dept, badge)`), an embed of every column ordered by `priority DESC, due`,
//! aggregates over DATE, strings and DECIMAL, and join values that are equal only by MariaDB's
//! collation (`'OPS'`, `'qa '`), which must not join. Evaluated independently over MariaDB.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use serde_json::{json, Map, Value};

use super::accounts::random;
use super::{dec, Env};

pub const SCHEMA: &str = "
CREATE TABLE depts (code VARCHAR(8) PRIMARY KEY, name VARCHAR(30) NOT NULL);
CREATE TABLE staff (id INT PRIMARY KEY, dept VARCHAR(8) NULL, badge INT NOT NULL, manager_id INT NULL, name VARCHAR(30) NOT NULL, UNIQUE KEY (dept, badge), KEY (manager_id));
CREATE TABLE tasks (id INT PRIMARY KEY, dept VARCHAR(8) NULL, badge INT NULL, title VARCHAR(30) NOT NULL, priority TINYINT NULL, due DATE NULL, hours DECIMAL(6,2) NULL, KEY (dept, badge));
";

pub const VIEW: &str = r#"
name = "staff_card"
table = "TABLE"
source = "{DB}.staff"

[key]
pk = "STAFF#{id}"
sk = "CARD"

[attributes]
name = "name"

[[lookup]]
from = "{DB}.depts"
on = { code = "dept" }
attributes = { dept_name = "name" }

[[lookup]]
from = "{DB}.staff"
on = { id = "manager_id" }
attributes = { manager = "name" }

[[embed]]
attribute = "tasks"
from = "{DB}.tasks"
on = { dept = "dept", badge = "badge" }
order_by = ["priority DESC", "due"]

[[aggregate]]
attribute = "hours"
from = "{DB}.tasks"
on = { dept = "dept", badge = "badge" }
function = "sum:hours"

[[aggregate]]
attribute = "next_due"
from = "{DB}.tasks"
on = { dept = "dept", badge = "badge" }
function = "min:due"

[[aggregate]]
attribute = "last_title"
from = "{DB}.tasks"
on = { dept = "dept", badge = "badge" }
function = "max:title"
"#;

type Staff = (i64, Option<String>, i64, Option<i64>, String);
type Task = (
    i64,
    Option<String>,
    Option<i64>,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

pub async fn expected(env: &Env) -> Vec<Value> {
    let depts: Vec<(String, String)> = env.query("SELECT code, name FROM depts").await;
    let depts: BTreeMap<String, String> = depts.into_iter().collect();
    let staff: Vec<Staff> = env
        .query("SELECT id, dept, badge, manager_id, name FROM staff")
        .await;
    let names: BTreeMap<i64, String> = staff.iter().map(|s| (s.0, s.4.clone())).collect();
    let tasks: Vec<Task> = env
        .query("SELECT id, dept, badge, title, priority, CAST(due AS CHAR), CAST(hours AS CHAR) FROM tasks")
        .await;
    let mut out = Vec::new();
    for (id, dept, badge, manager_id, name) in &staff {
        let mut item = Map::new();
        item.insert("pk".into(), json!(format!("STAFF#{id}")));
        item.insert("sk".into(), json!("CARD"));
        item.insert("name".into(), json!(name));
        if let Some(dept_name) = dept.as_ref().and_then(|d| depts.get(d)) {
            item.insert("dept_name".into(), json!(dept_name));
        }
        if let Some(manager) = manager_id.and_then(|m| names.get(&m)) {
            item.insert("manager".into(), json!(manager));
        }
        // Exact matches only: byte-equal strings, and NULL matches nothing.
        let mut mine: Vec<&Task> = tasks
            .iter()
            .filter(|t| dept.is_some() && t.1 == *dept && t.2 == Some(*badge))
            .collect();
        // priority DESC, due ASC, NULLs first in both; ties by id.
        mine.sort_by(|a, b| {
            let priority = match (a.4, b.4) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => y.cmp(&x),
            };
            priority
                .then_with(|| a.5.cmp(&b.5))
                .then_with(|| a.0.cmp(&b.0))
        });
        let list: Vec<Value> = mine
            .iter()
            .map(|(tid, tdept, tbadge, title, priority, due, hours)| {
                let mut m = json!({"id": tid, "title": title});
                if let Some(d) = tdept {
                    m["dept"] = json!(d);
                }
                if let Some(b) = tbadge {
                    m["badge"] = json!(b);
                }
                if let Some(p) = priority {
                    m["priority"] = json!(p);
                }
                if let Some(d) = due {
                    m["due"] = json!(d);
                }
                if let Some(h) = hours {
                    m["hours"] = dec(h);
                }
                m
            })
            .collect();
        item.insert("tasks".into(), Value::Array(list));
        let cents: i64 = mine
            .iter()
            .filter_map(|t| t.6.as_deref())
            .map(|h| h.replace('.', "").parse::<i64>().unwrap())
            .sum();
        item.insert(
            "hours".into(),
            dec(&format!(
                "{}{}.{:02}",
                if cents < 0 { "-" } else { "" },
                cents.abs() / 100,
                cents.abs() % 100
            )),
        );
        if let Some(due) = mine.iter().filter_map(|t| t.5.clone()).min() {
            item.insert("next_due".into(), json!(due));
        }
        if let Some(title) = mine.iter().map(|t| t.3.as_bytes()).max() {
            item.insert(
                "last_title".into(),
                json!(String::from_utf8(title.to_vec()).unwrap()),
            );
        }
        out.push(Value::Object(item));
    }
    out
}

const DEPTS: [&str; 5] = ["ops", "dev", "OPS", "qa ", "qa"];
const TITLES: [&str; 5] = ["alpha", "Beta", "gamma", "Delta", "émoi"];

/// Seeded changes over the three tables, with NULLs, moves on both sides of every join, dept
/// codes renamed (the lookup's key), managers changed and deleted (self-join).
pub async fn workload(env: &Env, seed: u64, transactions: usize) {
    let mut next = random(seed);
    let mut conn = env.admin.get_conn().await.unwrap();
    conn.query_drop(format!("USE {}", env.db)).await.unwrap();
    for t in 0..transactions {
        let mut statements = vec!["START TRANSACTION".to_string()];
        for _ in 0..=next(3) {
            let dept = DEPTS[next(DEPTS.len() as u64) as usize];
            let other = DEPTS[next(DEPTS.len() as u64) as usize];
            let staff = next(40);
            let task = next(150);
            let badge = next(6);
            let title = TITLES[next(TITLES.len() as u64) as usize];
            let nullable = |n: u64, v: String| if n == 0 { "NULL".to_string() } else { v };
            let statement = match next(16) {
                0 => format!("INSERT IGNORE INTO depts VALUES ('{dept}', 'D{t}')"),
                1 => format!("UPDATE depts SET name = 'N{t}' WHERE code = '{dept}'"),
                2 => format!("UPDATE IGNORE depts SET code = '{other}' WHERE code = '{dept}'"),
                3 => format!("DELETE FROM depts WHERE code = '{dept}'"),
                4 | 5 => format!("INSERT IGNORE INTO staff VALUES ({staff}, {}, {badge}, {}, 's{t}')", nullable(next(6), format!("'{dept}'")), nullable(next(3), next(40).to_string())),
                6 => format!("UPDATE IGNORE staff SET dept = {}, badge = {badge} WHERE id = {staff}", nullable(next(6), format!("'{dept}'"))),
                7 => format!("UPDATE staff SET manager_id = {} WHERE id = {staff}", nullable(next(4), next(40).to_string())),
                8 => format!("UPDATE staff SET name = 'r{t}' WHERE id = {staff}"),
                9 => format!("DELETE FROM staff WHERE id = {staff}"),
                10 | 11 => format!(
                    "INSERT INTO tasks VALUES ({task}, {}, {}, '{title}', {}, {}, {}) ON DUPLICATE KEY UPDATE title = VALUES(title)",
                    nullable(next(8), format!("'{dept}'")),
                    nullable(next(8), badge.to_string()),
                    nullable(next(3), next(5).to_string()),
                    nullable(next(3), format!("'2026-{:02}-{:02}'", 1 + next(12), 1 + next(28))),
                    nullable(next(3), format!("{}.{:02}", next(40), next(100))),
                ),
                12 => format!("UPDATE tasks SET dept = {}, badge = {badge} WHERE id = {task}", nullable(next(8), format!("'{dept}'"))),
                13 => format!("UPDATE tasks SET priority = {}, due = {} WHERE id = {task}", nullable(next(3), next(5).to_string()), nullable(next(3), format!("'2026-{:02}-{:02}'", 1 + next(12), 1 + next(28)))),
                14 => format!("UPDATE tasks SET hours = {}, title = '{title}' WHERE id = {task}", nullable(next(3), format!("{}.{:02}", next(40), next(100)))),
                _ => format!("DELETE FROM tasks WHERE id = {task}"),
            };
            statements.push(statement);
        }
        statements.push("COMMIT".into());
        conn.query_drop(statements.join(";")).await.unwrap();
    }
}
