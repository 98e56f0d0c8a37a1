//! DDL on a table a view reads: an added column carries on (implicit attributes pick it up); a
//! dropped column that a view needs halts that view only, with a metric, while other views go on;
//! the halted view's progress is held, so a restart reads the change again and halts again
//! rather than skipping it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{eventually, Env};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn ddl_compatible_carries_on_incompatible_halts_one_view() {
    let env = Env::new("ddl").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE products (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, price INT NOT NULL)",
    )
    .await;
    env.write_view(
        "all_columns.toml",
        &"name = \"all_columns\"\ntable = \"TABLE\"\nsource = \"{DB}.products\"\n[key]\npk = \"P#{id}\"\nsk = \"ALL\"\n".replace("TABLE", &table),
    );
    env.write_view(
        "priced.toml",
        &"name = \"priced\"\ntable = \"TABLE\"\nsource = \"{DB}.products\"\n[key]\npk = \"P#{id}\"\nsk = \"PRICE\"\n[attributes]\nprice = \"price\"\n".replace("TABLE", &table),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    env.sql("INSERT INTO products VALUES (1, 'tea', 3)").await;
    env.sql("ALTER TABLE products ADD COLUMN color VARCHAR(10) NULL")
        .await;
    env.sql("INSERT INTO products VALUES (2, 'mug', 9, 'red')")
        .await;
    env.converge(
        &table,
        vec![
            json!({"pk": "P#1", "sk": "ALL", "id": 1, "name": "tea", "price": 3}),
            json!({"pk": "P#1", "sk": "PRICE", "price": 3}),
            json!({"pk": "P#2", "sk": "ALL", "id": 2, "name": "mug", "price": 9, "color": "red"}),
            json!({"pk": "P#2", "sk": "PRICE", "price": 9}),
        ],
        Duration::from_secs(20),
    )
    .await;
    env.sql("ALTER TABLE products DROP COLUMN price").await;
    env.sql("INSERT INTO products VALUES (3, 'pot', 'blue')")
        .await;
    env.sql("UPDATE products SET name = 'green tea' WHERE id = 1")
        .await;
    env.converge(
        &table,
        vec![
            json!({"pk": "P#1", "sk": "ALL", "id": 1, "name": "green tea"}),
            json!({"pk": "P#1", "sk": "PRICE", "price": 3}),
            json!({"pk": "P#2", "sk": "ALL", "id": 2, "name": "mug", "price": 9, "color": "red"}),
            json!({"pk": "P#2", "sk": "PRICE", "price": 9}),
            json!({"pk": "P#3", "sk": "ALL", "id": 3, "name": "pot", "color": "blue"}),
        ],
        Duration::from_secs(20),
    )
    .await;
    eventually("priced halted", Duration::from_secs(10), || async {
        let (_, metrics) = daemon.get("/metrics").await;
        metrics.contains("rowcast_view_halted{view=\"priced\"} 1")
            && metrics.contains("rowcast_view_halted{view=\"all_columns\"} 0")
    })
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(metrics.contains("rowcast_ddl_events_total"), "{metrics}");
    assert!(daemon.terminate().success());
    // The checkpoint did not pass the change that halted `priced`: it halts again.
    let daemon = env.start().await;
    eventually("priced halted again", Duration::from_secs(20), || async {
        let (_, metrics) = daemon.get("/metrics").await;
        metrics.contains("rowcast_view_halted{view=\"priced\"} 1")
    })
    .await;
    env.converge(
        &table,
        vec![
            json!({"pk": "P#1", "sk": "ALL", "id": 1, "name": "green tea"}),
            json!({"pk": "P#1", "sk": "PRICE", "price": 3}),
            json!({"pk": "P#2", "sk": "ALL", "id": 2, "name": "mug", "price": 9, "color": "red"}),
            json!({"pk": "P#2", "sk": "PRICE", "price": 9}),
            json!({"pk": "P#3", "sk": "ALL", "id": 3, "name": "pot", "color": "blue"}),
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(daemon.terminate().success());
}
