//! A small accounts table, its view, a seeded random workload over it, and the view evaluated
//! independently over MariaDB.

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use super::Env;

const VIEW: &str = r#"
name = "accounts"
table = "TABLE"
source = "{DB}.accounts"
filter = "state <> 'closed'"

[key]
pk = "OWNER#{owner}"
sk = "ACC#{id:06}"

[attributes]
balance = "balance"
state = "state"
"#;

pub async fn expected(env: &Env) -> Vec<Value> {
    let rows: Vec<(i64, i64, i64, String)> = env
        .query("SELECT id, owner, balance, state FROM accounts WHERE state <> 'closed'")
        .await;
    rows.into_iter()
        .map(|(id, owner, balance, state)| json!({"pk": format!("OWNER#{owner}"), "sk": format!("ACC#{id:06}"), "balance": balance, "state": state}))
        .collect()
}

pub async fn setup(name: &str, extra_config: &str) -> (Env, String) {
    setup_in(Env::new(name).await, extra_config).await
}

pub async fn setup_in(env: Env, extra_config: &str) -> (Env, String) {
    let table = env.table("views");
    env.sql("CREATE TABLE accounts (id INT PRIMARY KEY, owner INT NOT NULL, balance BIGINT NOT NULL, state VARCHAR(10) NOT NULL)").await;
    env.write_view("accounts.toml", &VIEW.replace("TABLE", &table));
    env.write_config(extra_config);
    env.create_tables();
    (env, table)
}

/// A seeded xorshift generator: `next(n)` is in `0..n`, the same sequence for the same seed.
pub fn random(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed.max(1);
    move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    }
}

/// A deterministic pseudo-random workload of small transactions: inserts, balance updates,
/// owner moves (key moves), closes and reopens (filter exits and entries), deletes.
pub async fn workload(env: &Env, seed: u64, transactions: usize) {
    let mut next = random(seed);
    let mut conn = env.admin.get_conn().await.unwrap();
    conn.query_drop(format!("USE {}", env.db)).await.unwrap();
    for _ in 0..transactions {
        let mut statements = vec!["START TRANSACTION".to_string()];
        for _ in 0..=next(3) {
            let id = next(300);
            let statement = match next(10) {
                0..=2 => format!("INSERT INTO accounts VALUES ({id}, {}, {}, 'open') ON DUPLICATE KEY UPDATE balance = balance + 1", next(20), next(1000)),
                3..=5 => format!("UPDATE accounts SET balance = balance + {} WHERE id = {id}", next(100)),
                6 => format!("UPDATE accounts SET owner = {} WHERE id = {id}", next(20)),
                7 => format!("UPDATE accounts SET state = IF(state = 'open', 'closed', 'open') WHERE id = {id}"),
                8 => format!("DELETE FROM accounts WHERE id = {id}"),
                _ => format!("UPDATE accounts SET balance = {}, owner = {} WHERE owner = {}", next(1000), next(20), next(20)),
            };
            statements.push(statement);
        }
        statements.push("COMMIT".into());
        conn.query_drop(statements.join(";")).await.unwrap();
    }
}
