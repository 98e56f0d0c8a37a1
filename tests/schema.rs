//! DDL on a table a view reads: an added or dropped column reaches every item of a view that
//! takes every column (it is backfilled again); a column retyped (`MODIFY`) reaches every item
//! of every view that reads the table; a
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
    // `all_columns` takes every column: it is backfilled again, and no item keeps `price`.
    env.converge(
        &table,
        vec![
            json!({"pk": "P#1", "sk": "ALL", "id": 1, "name": "green tea"}),
            json!({"pk": "P#1", "sk": "PRICE", "price": 3}),
            json!({"pk": "P#2", "sk": "ALL", "id": 2, "name": "mug", "color": "red"}),
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
    // `all_columns` takes every column: it is backfilled again, and no item keeps `price`.
    env.converge(
        &table,
        vec![
            json!({"pk": "P#1", "sk": "ALL", "id": 1, "name": "green tea"}),
            json!({"pk": "P#1", "sk": "PRICE", "price": 3}),
            json!({"pk": "P#2", "sk": "ALL", "id": 2, "name": "mug", "color": "red"}),
            json!({"pk": "P#2", "sk": "PRICE", "price": 9}),
            json!({"pk": "P#3", "sk": "ALL", "id": 3, "name": "pot", "color": "blue"}),
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(daemon.terminate().success());
}

/// DROP a column a view needs, change and DELETE rows, ADD the column back: the view halts at
/// the first change it cannot project (or at the first row of the pass the DROP began) and
/// applies the removals meanwhile; the ADD begins a pass that rebuilds it (since 2026-12-05;
/// before, a view halted by the DROP's pass stayed halted until a restart or `rowcast snapshot
/// --view`). The deleted row's item is gone and every other item is the row as it is now.
#[tokio::test(flavor = "multi_thread")]
async fn drop_delete_add_then_rebuild_leaves_no_deleted_item() {
    let env = Env::new("ddlgap").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE products (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, price INT NOT NULL)",
    )
    .await;
    env.write_view(
        "priced.toml",
        &"name = \"priced\"\ntable = \"TABLE\"\nsource = \"{DB}.products\"\n[key]\npk = \"P#{id}\"\n[attributes]\nprice = \"price\"\n".replace("TABLE", &table),
    );
    env.write_config("");
    env.create_tables();
    env.sql("INSERT INTO products VALUES (1, 'tea', 3), (2, 'mug', 9), (3, 'pot', 20)")
        .await;
    let expected = |rows: Vec<(i64, i64)>| -> Vec<serde_json::Value> {
        rows.into_iter()
            .map(|(id, price)| json!({"pk": format!("P#{id}"), "price": price}))
            .collect()
    };
    let daemon = env.start().await;
    env.converge(
        &table,
        expected(env.query("SELECT id, price FROM products").await),
        Duration::from_secs(30),
    )
    .await;
    env.sql("ALTER TABLE products DROP COLUMN price").await;
    env.sql("UPDATE products SET name = 'green tea' WHERE id = 1")
        .await;
    env.sql("DELETE FROM products WHERE id = 2").await;
    env.sql("ALTER TABLE products ADD COLUMN price INT NOT NULL DEFAULT 5")
        .await;
    let now: Vec<(i64, i64)> = env.query("SELECT id, price FROM products").await;
    assert_eq!(now, vec![(1, 5), (3, 5)]);
    env.converge(&table, expected(now), Duration::from_secs(30))
        .await;
    eventually("the view to run again", Duration::from_secs(10), || async {
        !priced_halted(&daemon).await
    })
    .await;
    env.sql("UPDATE products SET price = 7 WHERE id = 3").await;
    env.converge(
        &table,
        expected(env.query("SELECT id, price FROM products").await),
        Duration::from_secs(30),
    )
    .await;
    assert!(daemon.terminate().success());
}

/// A column added with a default reaches every item of a view that takes every column (the view
/// is backfilled again), not only the rows that change afterwards; a view with named attributes
/// is not backfilled again. On the code before, the existing items never got the column.
#[tokio::test(flavor = "multi_thread")]
async fn an_added_column_reaches_every_item_of_an_every_column_view() {
    let env = Env::new("ddladd").await;
    let table = env.table("views");
    env.sql("CREATE TABLE products (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)")
        .await;
    env.sql("INSERT INTO products VALUES (1, 'tea'), (2, 'mug')")
        .await;
    env.write_view(
        "all_columns.toml",
        &"name = \"all_columns\"\ntable = \"TABLE\"\nsource = \"{DB}.products\"\n[key]\npk = \"P#{id}\"\nsk = \"ALL\"\n".replace("TABLE", &table),
    );
    env.write_view(
        "named.toml",
        &"name = \"named\"\ntable = \"TABLE\"\nsource = \"{DB}.products\"\n[key]\npk = \"P#{id}\"\nsk = \"NAME\"\n[attributes]\nname = \"name\"\n".replace("TABLE", &table),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    env.sql("ALTER TABLE products ADD COLUMN size INT NOT NULL DEFAULT 1")
        .await;
    env.converge(
        &table,
        vec![
            json!({"pk": "P#1", "sk": "ALL", "id": 1, "name": "tea", "size": 1}),
            json!({"pk": "P#1", "sk": "NAME", "name": "tea"}),
            json!({"pk": "P#2", "sk": "ALL", "id": 2, "name": "mug", "size": 1}),
            json!({"pk": "P#2", "sk": "NAME", "name": "mug"}),
        ],
        Duration::from_secs(30),
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metrics.contains("rowcast_backfill_rows_total{view=\"named\"} 2\n"),
        "the named view was backfilled once: {metrics}"
    );
    assert!(daemon.terminate().success());
}

/// `ALTER TABLE … MODIFY` rewrites every row without row events: a view that names the column
/// (not one that takes every column) still gets the new values into every item, and an item
/// whose key renders differently now (a DECIMAL scale in the key) is replaced, not kept beside
/// the new one. On the code before, the untouched rows kept a number where the column holds
/// text now, and the old keys stayed.
#[tokio::test(flavor = "multi_thread")]
async fn a_column_retyped_reaches_every_item_of_a_view_that_names_it() {
    let env = Env::new("ddlretype").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE codes (id INT PRIMARY KEY, code INT NOT NULL, rate DECIMAL(6,1) NOT NULL)",
    )
    .await;
    env.sql("INSERT INTO codes VALUES (1, 7, 1.5), (2, 8, 2.5)")
        .await;
    env.write_view(
        "codes.toml",
        &"name = \"codes\"\ntable = \"TABLE\"\nsource = \"{DB}.codes\"\n[key]\npk = \"C#{id}\"\nsk = \"R#{rate}\"\n[attributes]\ncode = \"code\"\n".replace("TABLE", &table),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    env.converge(
        &table,
        vec![
            json!({"pk": "C#1", "sk": "R#1.5", "code": 7}),
            json!({"pk": "C#2", "sk": "R#2.5", "code": 8}),
        ],
        Duration::from_secs(20),
    )
    .await;
    env.sql(
        "ALTER TABLE codes MODIFY code VARCHAR(10) NOT NULL, MODIFY rate DECIMAL(6,2) NOT NULL",
    )
    .await;
    env.sql("INSERT INTO codes VALUES (3, 'x9', 3.25)").await;
    env.converge(
        &table,
        vec![
            json!({"pk": "C#1", "sk": "R#1.50", "code": "7"}),
            json!({"pk": "C#2", "sk": "R#2.50", "code": "8"}),
            json!({"pk": "C#3", "sk": "R#3.25", "code": "x9"}),
        ],
        Duration::from_secs(60),
    )
    .await;
    assert!(daemon.terminate().success());
}

/// `ALTER TABLE archive EXCHANGE PARTITION p0 WITH TABLE orders` swaps a watched table's rows for
/// a partition's of another table, with no row events: the views of `orders` are backfilled
/// again and the items of the rows that left are removed. The statement names the watched
/// table second; on the code before only the first name was looked at, and the items stayed
/// those of the old rows for good, with no metric (found by a review).
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_exchanged_with_a_watched_table_replaces_its_items() {
    let env = Env::new("ddlexchange").await;
    let table = env.table("views");
    env.sql("CREATE TABLE orders (id INT PRIMARY KEY, v INT NOT NULL); CREATE TABLE archive (id INT PRIMARY KEY, v INT NOT NULL) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (1000), PARTITION p1 VALUES LESS THAN MAXVALUE); INSERT INTO orders VALUES (1, 1), (2, 2); INSERT INTO archive VALUES (5, 5), (2000, 2000)")
        .await;
    env.write_view(
        "orders.toml",
        &"name = \"orders\"\ntable = \"TABLE\"\nsource = \"{DB}.orders\"\n[key]\npk = \"O#{id}\"\n[attributes]\nv = \"v\"\n".replace("TABLE", &table),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    env.converge(
        &table,
        vec![json!({"pk": "O#1", "v": 1}), json!({"pk": "O#2", "v": 2})],
        Duration::from_secs(30),
    )
    .await;
    env.sql("ALTER TABLE archive EXCHANGE PARTITION p0 WITH TABLE orders")
        .await;
    env.converge(
        &table,
        vec![json!({"pk": "O#5", "v": 5})],
        Duration::from_secs(30),
    )
    .await;
    env.sql("INSERT INTO orders VALUES (6, 6)").await;
    env.converge(
        &table,
        vec![json!({"pk": "O#5", "v": 5}), json!({"pk": "O#6", "v": 6})],
        Duration::from_secs(30),
    )
    .await;
    assert!(daemon.terminate().success());
}

/// Columns a view names renamed into each other's places, or dropped and added again, with no
/// row change in between: the rows' values under those names changed without row events, so
/// the view is backfilled again (`RENAME COLUMN` and `DROP COLUMN` name the columns they move
/// away). On the code before, a view with named attributes was not: its items kept the old
/// columns' values for good, with no halt and no metric (found by a review).
#[tokio::test(flavor = "multi_thread")]
async fn columns_swapped_or_dropped_and_added_again_reach_every_item() {
    let env = Env::new("ddlswap").await;
    let table = env.table("views");
    env.sql("CREATE TABLE people (id INT PRIMARY KEY, first VARCHAR(20) NOT NULL, last VARCHAR(20) NOT NULL, nick VARCHAR(20) NOT NULL); INSERT INTO people VALUES (1, 'ada', 'lovelace', 'countess'), (2, 'alan', 'turing', 'prof')")
        .await;
    env.write_view(
        "names.toml",
        &"name = \"names\"\ntable = \"TABLE\"\nsource = \"{DB}.people\"\n[key]\npk = \"P#{id}\"\n[attributes]\nfirst = \"first\"\nnick = \"nick\"\n".replace("TABLE", &table),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    let expected = |rows: Vec<(i64, String, String)>| -> Vec<serde_json::Value> {
        rows.into_iter()
            .map(|(id, first, nick)| json!({"pk": format!("P#{id}"), "first": first, "nick": nick}))
            .collect()
    };
    let now = || env.query::<(i64, String, String)>("SELECT id, first, nick FROM people");
    env.converge(&table, expected(now().await), Duration::from_secs(30))
        .await;
    env.sql("ALTER TABLE people RENAME COLUMN first TO tmp; ALTER TABLE people RENAME COLUMN last TO first; ALTER TABLE people RENAME COLUMN tmp TO last")
        .await;
    env.sql("ALTER TABLE people DROP COLUMN nick; ALTER TABLE people ADD COLUMN nick VARCHAR(20) NOT NULL DEFAULT 'none'")
        .await;
    let mut want = expected(now().await);
    assert_eq!(want[0]["first"], "lovelace");
    want.sort_by_key(|v| v.to_string());
    // The pass reads the table when it comes to it: after the last ALTER, the items follow;
    // between two of them (a column missing), the view halts, and a rebuild makes them.
    let halted = || async {
        let (_, metrics) = daemon.get("/metrics").await;
        metrics.contains("rowcast_view_halted{view=\"names\"} 1")
    };
    eventually(
        "the items to follow the columns, or the view to halt",
        Duration::from_secs(30),
        || async { halted().await || env.items(&table).await == want },
    )
    .await;
    if halted().await {
        env.snapshot("names");
    }
    env.converge(&table, want, Duration::from_secs(30)).await;
    env.sql("UPDATE people SET nick = 'enigma' WHERE id = 2")
        .await;
    env.converge(&table, expected(now().await), Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}

async fn priced_halted(daemon: &common::Daemon) -> bool {
    let (_, metrics) = daemon.get("/metrics").await;
    metrics.contains("rowcast_view_halted{view=\"priced\"} 1")
}

/// Two columns swapped by renames under views that take every column: an eager one keyed on
/// one of them is backfilled again and its items under the old keys removed; a lazy one keeps
/// no item with the old values (its items from before are removed). On the code before, the
/// eager view was refilled without a cleanup (its old keys stayed beside the new ones) and the
/// lazy view was left as it was (found by a review of the fix for named attributes).
#[tokio::test(flavor = "multi_thread")]
async fn columns_swapped_under_views_of_every_column_leave_no_old_item() {
    let env = Env::new("ddlswapall").await;
    let eager = env.table("eager");
    let lazy = env.table("lazy");
    env.sql("CREATE TABLE people (id INT PRIMARY KEY, first VARCHAR(20) NOT NULL, last VARCHAR(20) NOT NULL); INSERT INTO people VALUES (1, 'ada', 'lovelace')")
        .await;
    env.write_view(
        "eager.toml",
        &format!("name = \"eager\"\ntable = \"{eager}\"\nsource = \"{{DB}}.people\"\n[key]\npk = \"F#{{first}}\"\n"),
    );
    env.write_view(
        "lazy.toml",
        &format!("name = \"lazy\"\ntable = \"{lazy}\"\nsource = \"{{DB}}.people\"\n[key]\npk = \"L#{{id}}\"\n[fill]\nmode = \"lazy\"\n"),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    env.sql("UPDATE people SET last = 'byron' WHERE id = 1")
        .await;
    env.converge(
        &lazy,
        vec![json!({"pk": "L#1", "id": 1, "first": "ada", "last": "byron"})],
        Duration::from_secs(30),
    )
    .await;
    env.converge(
        &eager,
        vec![json!({"pk": "F#ada", "id": 1, "first": "ada", "last": "byron"})],
        Duration::from_secs(30),
    )
    .await;
    env.sql("ALTER TABLE people RENAME COLUMN first TO tmp; ALTER TABLE people RENAME COLUMN last TO first; ALTER TABLE people RENAME COLUMN tmp TO last")
        .await;
    let eager_items = || async {
        let halted = {
            let (_, metrics) = daemon.get("/metrics").await;
            metrics.contains("rowcast_view_halted{view=\"eager\"} 1")
        };
        halted
            || env.items(&eager).await
                == vec![json!({"pk": "F#byron", "id": 1, "first": "byron", "last": "ada"})]
    };
    eventually(
        "the eager view rebuilt or halted",
        Duration::from_secs(30),
        eager_items,
    )
    .await;
    {
        let (_, metrics) = daemon.get("/metrics").await;
        if metrics.contains("rowcast_view_halted{view=\"eager\"} 1") {
            env.snapshot("eager");
        }
    }
    env.converge(
        &eager,
        vec![json!({"pk": "F#byron", "id": 1, "first": "byron", "last": "ada"})],
        Duration::from_secs(30),
    )
    .await;
    env.converge(&lazy, vec![], Duration::from_secs(30)).await;
    assert!(daemon.terminate().success());
}

/// A column a view reads dropped, the view halted by the pass the DROP began (it read the table
/// without the column), and the column added back: the ADD begins a pass that rebuilds the
/// view. On the code before, the view stayed halted, holding the checkpoint, until `rowcast
/// snapshot --view` or a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_column_added_back_after_its_drop_halted_the_view_rebuilds_it() {
    let env = Env::new("ddladdback").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE products (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, price INT NOT NULL);
         INSERT INTO products VALUES (1, 'tea', 3), (2, 'mug', 9)",
    )
    .await;
    env.write_view(
        "priced.toml",
        &"name = \"priced\"\ntable = \"TABLE\"\nsource = \"{DB}.products\"\n[key]\npk = \"P#{id}\"\n[attributes]\nprice = \"price\"\n".replace("TABLE", &table),
    );
    env.write_config("");
    env.create_tables();
    let expected = |rows: Vec<(i64, i64)>| -> Vec<serde_json::Value> {
        rows.into_iter()
            .map(|(id, price)| json!({"pk": format!("P#{id}"), "price": price}))
            .collect()
    };
    let daemon = env.start().await;
    env.converge(
        &table,
        expected(env.query("SELECT id, price FROM products").await),
        Duration::from_secs(30),
    )
    .await;
    env.sql("ALTER TABLE products DROP COLUMN price").await;
    eventually(
        "the DROP's pass to halt the view",
        Duration::from_secs(30),
        || async { priced_halted(&daemon).await },
    )
    .await;
    env.sql("ALTER TABLE products ADD COLUMN `Price` INT NOT NULL DEFAULT 5")
        .await;
    env.sql("UPDATE products SET price = 7 WHERE id = 2").await;
    env.converge(
        &table,
        expected(env.query("SELECT id, price FROM products").await),
        Duration::from_secs(30),
    )
    .await;
    eventually("the view to run again", Duration::from_secs(10), || async {
        !priced_halted(&daemon).await
    })
    .await;
    assert!(daemon.terminate().success());
}

/// A table `people` (`id`, `email`) holding `rows`, and a view of it with `email`: the
/// environment, the view's DynamoDB table, the configuration file.
async fn people(name: &str, rows: &str) -> (Env, String, std::path::PathBuf) {
    let env = Env::new(name).await;
    let table = env.table("views");
    env.sql(&format!(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(20) NOT NULL);
         INSERT INTO people VALUES {rows}"
    ))
    .await;
    env.write_view(
        "people.toml",
        &"name = \"people\"\ntable = \"TABLE\"\nsource = \"{DB}.people\"\n[key]\npk = \"P#{id}\"\n[attributes]\nemail = \"email\"\n".replace("TABLE", &table),
    );
    let config = env.write_config("");
    env.create_tables();
    (env, table, config)
}

/// `ALTER IGNORE TABLE … ADD UNIQUE` deletes the duplicate rows without row events: the view is
/// backfilled again and the deleted rows' items removed, as after a TRUNCATE. On the code
/// before, the ALTER was taken for an index change and the items stayed for good (found by a
/// review).
#[tokio::test(flavor = "multi_thread")]
async fn duplicates_deleted_by_alter_ignore_leave_no_item() {
    let (env, table, _) = people("ddlignore", "(1, 'a'), (2, 'a'), (3, 'b')").await;
    let expected = |rows: Vec<(i64, String)>| -> Vec<serde_json::Value> {
        rows.into_iter()
            .map(|(id, email)| json!({"pk": format!("P#{id}"), "email": email}))
            .collect()
    };
    let daemon = env.start().await;
    env.converge(
        &table,
        expected(env.query("SELECT id, email FROM people").await),
        Duration::from_secs(30),
    )
    .await;
    env.sql("ALTER IGNORE TABLE people ADD UNIQUE (email)")
        .await;
    let now: Vec<(i64, String)> = env.query("SELECT id, email FROM people").await;
    assert_eq!(now.len(), 2, "{now:?}");
    env.converge(&table, expected(now), Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}

/// MariaDB's system-versioned tables log deletes and updates with history rows: system
/// versioning added to a watched table halts its views, and `check --connect` (and `run`)
/// refuse a view of such a table. On the code before, the ALTER was taken for a constraint
/// change and the history rows were read as the rows' state (found by a review).
#[tokio::test(flavor = "multi_thread")]
async fn system_versioning_halts_the_views_and_is_refused_at_start() {
    let (env, table, config) = people("versioned", "(1, 'a'), (2, 'b')").await;
    let daemon = env.start().await;
    env.converge(
        &table,
        vec![
            json!({"pk": "P#1", "email": "a"}),
            json!({"pk": "P#2", "email": "b"}),
        ],
        Duration::from_secs(30),
    )
    .await;
    env.sql("ALTER TABLE people ADD SYSTEM VERSIONING").await;
    eventually("the view to halt", Duration::from_secs(30), || async {
        let (_, metrics) = daemon.get("/metrics").await;
        metrics.contains("rowcast_view_halted{view=\"people\"} 1")
    })
    .await;
    assert!(daemon.terminate().success());
    let out = env.rowcast(&["check", "--connect", "--config", config.to_str().unwrap()]);
    let (code, text) = common::code_and_output(&out);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("system-versioned"), "{text}");
}
