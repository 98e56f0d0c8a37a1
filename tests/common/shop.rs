//! A shop (customers, orders, order lines) with three views on one DynamoDB table — an order
//! with its customer, lines, and aggregates (`ORDER#id / META`), the lines as items of the same
//! collection (`ORDER#id / LINE#n`), and orders under their customer (`CUSTOMER#c / ORDER#id`) —
//! a seeded random workload over the three tables, and every view evaluated independently over
//! MariaDB (plain SQL reads, the join done here, not by rowcast's code).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use serde_json::{json, Map, Value};

use super::accounts::random;
use super::{dec, Env};

pub const SCHEMA: &str = "
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, email VARCHAR(60) NULL, tier VARCHAR(10) NOT NULL DEFAULT 'std');
CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NULL, status VARCHAR(12) NOT NULL, note VARCHAR(30) NULL, KEY by_customer (customer_id));
CREATE TABLE order_items (id INT PRIMARY KEY, order_id INT NULL, line_no INT NOT NULL, sku VARCHAR(20) NOT NULL, quantity INT NOT NULL, price DECIMAL(10,2) NULL, KEY by_order (order_id));
";

pub const ORDER_VIEW: &str = r#"
name = "order_summary"
table = "TABLE"
source = "{DB}.orders"
filter = "status <> 'deleted'"

[key]
pk = "ORDER#{id}"
sk = "META"

[attributes]
status = "status"
customer = { column = "customer_id", as = "string" }

[[lookup]]
from = "{DB}.customers"
on = { id = "customer_id" }
attributes = { customer_name = "name", customer_email = "email" }

[[embed]]
attribute = "lines"
from = "{DB}.order_items"
on = { order_id = "id" }
order_by = "line_no"
attributes = { sku = "sku", qty = "quantity", price = "price" }

[[aggregate]]
attribute = "line_count"
from = "{DB}.order_items"
on = { order_id = "id" }
function = "count"

[[aggregate]]
attribute = "quantity_total"
from = "{DB}.order_items"
on = { order_id = "id" }
function = "sum:quantity"

[[aggregate]]
attribute = "amount_total"
from = "{DB}.order_items"
on = { order_id = "id" }
function = "sum:price"

[[aggregate]]
attribute = "max_price"
from = "{DB}.order_items"
on = { order_id = "id" }
function = "max:price"

[[aggregate]]
attribute = "first_sku"
from = "{DB}.order_items"
on = { order_id = "id" }
function = "min:sku"
"#;

pub const LINES_VIEW: &str = r#"
name = "order_lines"
table = "TABLE"
source = "{DB}.order_items"

[key]
pk = "ORDER#{order_id}"
sk = "LINE#{line_no:04}#{id}"

[attributes]
sku = "sku"
qty = "quantity"
"#;

pub const CUSTOMER_ORDERS_VIEW: &str = r#"
name = "customer_orders"
table = "TABLE"
source = "{DB}.orders"
filter = "status <> 'deleted'"

[key]
pk = "CUSTOMER#{customer_id}"
sk = "ORDER#{id:06}"

[attributes]
status = "status"

[[lookup]]
from = "{DB}.customers"
on = { id = "customer_id" }
attributes = { name = "name", tier = "tier" }
"#;

/// Creates the tables and the three views (in one DynamoDB table, returned).
pub async fn setup(env: &Env, extra_config: &str) -> String {
    let table = env.table("shop");
    env.sql(SCHEMA).await;
    for (file, text) in [
        ("order_summary.toml", ORDER_VIEW),
        ("order_lines.toml", LINES_VIEW),
        ("customer_orders.toml", CUSTOMER_ORDERS_VIEW),
    ] {
        env.write_view(file, &text.replace("TABLE", &table));
    }
    env.write_config(extra_config);
    env.create_tables();
    table
}

type Customer = (i64, String, Option<String>, String);
type Order = (i64, Option<i64>, String);
type Line = (i64, Option<i64>, i64, String, i64, Option<String>);

/// Every item of the three views, evaluated over the source tables.
pub async fn expected(env: &Env) -> Vec<Value> {
    let customers: Vec<Customer> = env
        .query("SELECT id, name, email, tier FROM customers")
        .await;
    let customers: BTreeMap<i64, Customer> = customers.into_iter().map(|c| (c.0, c)).collect();
    let orders: Vec<Order> = env
        .query("SELECT id, customer_id, status FROM orders")
        .await;
    let mut lines: Vec<Line> = env
        .query("SELECT id, order_id, line_no, sku, quantity, CAST(price AS CHAR) FROM order_items")
        .await;
    lines.sort_by_key(|l| (l.2, l.0));
    let mut out = Vec::new();
    for (id, order_id, line_no, sku, quantity, _) in &lines {
        if let Some(order_id) = order_id {
            out.push(json!({"pk": format!("ORDER#{order_id}"), "sk": format!("LINE#{line_no:04}#{id}"), "sku": sku, "qty": quantity}));
        }
    }
    for (id, customer_id, status) in &orders {
        if status == "deleted" {
            continue;
        }
        let customer = customer_id.and_then(|c| customers.get(&c));
        let mut summary = Map::new();
        summary.insert("pk".into(), json!(format!("ORDER#{id}")));
        summary.insert("sk".into(), json!("META"));
        summary.insert("status".into(), json!(status));
        if let Some(c) = customer_id {
            summary.insert("customer".into(), json!(c.to_string()));
        }
        if let Some((_, name, email, _)) = customer {
            summary.insert("customer_name".into(), json!(name));
            if let Some(email) = email {
                summary.insert("customer_email".into(), json!(email));
            }
        }
        let mine: Vec<&Line> = lines.iter().filter(|l| l.1 == Some(*id)).collect();
        let list: Vec<Value> = mine
            .iter()
            .map(|(_, _, _, sku, quantity, price)| {
                let mut m = json!({"sku": sku, "qty": quantity});
                if let Some(p) = price {
                    m["price"] = dec(p);
                }
                m
            })
            .collect();
        summary.insert("lines".into(), Value::Array(list));
        summary.insert("line_count".into(), json!(mine.len()));
        summary.insert(
            "quantity_total".into(),
            json!(mine.iter().map(|l| l.4).sum::<i64>()),
        );
        let cents: i64 = mine
            .iter()
            .filter_map(|l| l.5.as_deref())
            .map(|p| {
                let (whole, frac) = p.split_once('.').unwrap();
                let sign = if whole.starts_with('-') { -1 } else { 1 };
                whole.parse::<i64>().unwrap() * 100 + sign * frac.parse::<i64>().unwrap()
            })
            .sum();
        summary.insert(
            "amount_total".into(),
            dec(&format!(
                "{}{}.{:02}",
                if cents < 0 { "-" } else { "" },
                cents.abs() / 100,
                cents.abs() % 100
            )),
        );
        let max_price = mine.iter().filter_map(|l| l.5.as_deref()).max_by(|a, b| {
            a.parse::<f64>()
                .unwrap()
                .partial_cmp(&b.parse::<f64>().unwrap())
                .unwrap()
        });
        if let Some(max) = max_price {
            summary.insert("max_price".into(), dec(max));
        }
        if let Some(first) = mine.iter().map(|l| l.3.as_bytes()).min() {
            summary.insert(
                "first_sku".into(),
                json!(String::from_utf8(first.to_vec()).unwrap()),
            );
        }
        out.push(Value::Object(summary));
        if let Some(c) = customer_id {
            let mut item = json!({"pk": format!("CUSTOMER#{c}"), "sk": format!("ORDER#{id:06}"), "status": status});
            if let Some((_, name, _, tier)) = customer {
                item["name"] = json!(name);
                item["tier"] = json!(tier);
            }
            out.push(item);
        }
    }
    out
}

const SKUS: [&str; 6] = ["apple", "Banana", "cherry", "Date", "elder", "fig"];

/// A seeded workload of small transactions over the three tables: customers added, renamed
/// (fan-out to their orders), given or stripped of an email, deleted; orders placed, moved to
/// another customer, re-keyed, status changed, deleted; lines added, changed, moved between
/// orders, deleted; several tables in one transaction; bursts on one hot order.
pub async fn workload(env: &Env, seed: u64, transactions: usize) {
    let mut next = random(seed);
    let mut conn = env.admin.get_conn().await.unwrap();
    conn.query_drop(format!("USE {}", env.db)).await.unwrap();
    for t in 0..transactions {
        let mut statements = vec!["START TRANSACTION".to_string()];
        for _ in 0..=next(3) {
            let customer = next(25);
            let order = next(120);
            let line = next(400);
            let sku = SKUS[next(SKUS.len() as u64) as usize];
            let statement = match next(20) {
                0 => format!("INSERT INTO customers VALUES ({customer}, 'c{customer}-{t}', NULL, 'std') ON DUPLICATE KEY UPDATE name = VALUES(name)"),
                1 => format!("UPDATE customers SET name = CONCAT('n', {t}, '-', id), tier = IF(tier = 'std', 'gold', 'std') WHERE id = {customer}"),
                2 => format!("UPDATE customers SET email = IF(email IS NULL, CONCAT('c', id, '@example.com'), NULL) WHERE id = {customer}"),
                3 => format!("DELETE FROM customers WHERE id = {customer}"),
                4 | 5 => format!("INSERT INTO orders VALUES ({order}, {customer}, 'open', NULL) ON DUPLICATE KEY UPDATE status = 'open'"),
                6 => format!("UPDATE orders SET customer_id = {customer} WHERE id = {order}"),
                7 => format!("UPDATE orders SET status = IF(status = 'open', 'deleted', 'shipped') WHERE id = {order}"),
                8 => format!("DELETE FROM orders WHERE id = {order}"),
                9 => format!("UPDATE IGNORE orders SET id = {} WHERE id = {order}", 120 + next(40)),
                10..=12 => format!("INSERT INTO order_items VALUES ({line}, {order}, {}, '{sku}', {}, {}) ON DUPLICATE KEY UPDATE quantity = quantity + 1", next(9), next(50), match next(5) { 0 => "NULL".to_string(), n => format!("{}.{:02}", next(500) as i64 - 100 * (n as i64 % 2), next(100)) }),
                13 | 14 => format!("UPDATE order_items SET quantity = {}, price = {}.{:02} WHERE id = {line}", next(50), next(900), next(100)),
                15 => format!("UPDATE order_items SET order_id = {order} WHERE id = {line}"),
                16 => format!("DELETE FROM order_items WHERE id = {line}"),
                17 => format!("UPDATE order_items SET sku = '{sku}', line_no = {} WHERE id = {line}", next(9)),
                18 => format!("UPDATE customers SET name = CONCAT('hot', {t}) WHERE id = 1"),
                // A burst on one hot order: many lines in one go.
                _ => format!("UPDATE order_items SET quantity = quantity + 1 WHERE order_id = 7 OR id % 37 = {}", next(37)),
            };
            statements.push(statement);
        }
        statements.push("COMMIT".into());
        conn.query_drop(statements.join(";")).await.unwrap();
    }
}
