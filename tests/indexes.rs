//! `[[index]]` against DynamoDB Local: `check --connect` finds a missing or different index,
//! `tables create` adds the missing ones to an existing table, and the items carry index keys
//! that follow key moves, filter exits and NULLs (a sparse index), with one index shared by two
//! views (an overloaded GSI) — read back with Query on the indexes.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{code_and_output, Env};
use serde_json::{json, Value};

const CUSTOMERS: &str = r#"
name = "customers"
table = "TABLE"
source = "{DB}.customers"
[key]
pk = "CUSTOMER#{id:010}"
sk = "PROFILE"
[attributes]
email = "email"
status = "status"
"#;

const CUSTOMER_INDEXES: &str = r#"
[[index]]
name = "by_email"
pk = "EMAIL#{email}"
projection = "keys_only"
[[index]]
name = "gsi1"
pk = "STATUS#{status}"
sk = "CUSTOMER#{id:010}"
pk_attribute = "gsi1pk"
sk_attribute = "gsi1sk"
"#;

const ORDERS: &str = r#"
name = "orders"
table = "TABLE"
source = "{DB}.orders"
filter = "status <> 'deleted'"
[key]
pk = "CUSTOMER#{customer_id:010}"
sk = "ORDER#{id:010}"
[attributes]
status = "status"
[[index]]
name = "gsi1"
pk = "STATUS#{status}"
sk = "ORDER#{id:010}"
pk_attribute = "gsi1pk"
sk_attribute = "gsi1sk"
"#;

fn customer(id: i64, email: Option<&str>, status: &str) -> Value {
    let key = format!("CUSTOMER#{id:010}");
    let mut item = json!({
        "pk": key, "sk": "PROFILE", "status": status,
        "gsi1pk": format!("STATUS#{status}"), "gsi1sk": key,
    });
    if let Some(email) = email {
        item["email"] = json!(email);
        item["by_email_pk"] = json!(format!("EMAIL#{email}"));
    }
    item
}

fn order(id: i64, customer: i64, status: &str) -> Value {
    json!({
        "pk": format!("CUSTOMER#{customer:010}"), "sk": format!("ORDER#{id:010}"),
        "status": status, "gsi1pk": format!("STATUS#{status}"), "gsi1sk": format!("ORDER#{id:010}"),
    })
}

/// `(pk, sk, attribute names)` of the items of one index partition.
async fn query_index(
    env: &Env,
    table: &str,
    index: &str,
    attribute: &str,
    value: &str,
) -> Vec<(String, String, Vec<String>)> {
    let out = env
        .ddb
        .query()
        .table_name(table)
        .index_name(index)
        .key_condition_expression("#k = :v")
        .expression_attribute_names("#k", attribute)
        .expression_attribute_values(":v", AttributeValue::S(value.into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("query {index}: {e:?}"));
    let text = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
        item[name].as_s().unwrap().clone()
    };
    out.items()
        .iter()
        .map(|item| {
            let mut names: Vec<String> = item.keys().cloned().collect();
            names.sort();
            (text(item, "pk"), text(item, "sk"), names)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn indexes_are_created_checked_and_follow_the_rows() {
    let env = Env::new("gsi").await;
    env.sql(
        "CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(50) NULL, status VARCHAR(10) NOT NULL);
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, status VARCHAR(10) NOT NULL);
         INSERT INTO customers VALUES (1, 'a@x', 'active'), (2, NULL, 'active'), (3, 'c@x', 'closed');
         INSERT INTO orders VALUES (10, 1, 'open'), (11, 1, 'deleted'), (12, 3, 'open');",
    )
    .await;
    let table = env.table("views");
    let config = env.write_config("").to_str().unwrap().to_string();

    // The table exists without its indexes (views written before the indexes were added).
    env.write_view("customers.toml", &CUSTOMERS.replace("TABLE", &table));
    env.create_tables();
    env.write_view(
        "customers.toml",
        &format!("{CUSTOMERS}{CUSTOMER_INDEXES}").replace("TABLE", &table),
    );
    env.write_view("orders.toml", &ORDERS.replace("TABLE", &table));
    let (code, err) = code_and_output(&env.rowcast(&["check", "--connect", "--config", &config]));
    assert_eq!(code, Some(3), "{err}");
    for needle in [
        "customers.toml: index[0]: index by_email does not exist",
        "customers.toml: index[1]: index gsi1 does not exist",
        "orders.toml: index[0]: index gsi1 does not exist",
    ] {
        assert!(err.contains(needle), "{needle:?} not in\n{err}");
    }

    // `tables create` adds both to the existing table and waits until they are active.
    let out = env.rowcast(&["tables", "--config", &config, "create"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", code_and_output(&out).1);
    assert!(
        stdout.contains(&format!("created index by_email on {table}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("created index gsi1 on {table}")),
        "{stdout}"
    );
    let (code, err) = code_and_output(&env.rowcast(&["check", "--connect", "--config", &config]));
    assert_eq!(code, Some(0), "{err}");

    // Backfill, then changes: an index key moves, NULL → value, value → NULL, a filter exit, a
    // filter entry and an item key move.
    let daemon = env.start().await;
    env.sql(
        "UPDATE customers SET email = 'a2@x' WHERE id = 1;
         UPDATE customers SET email = 'b@x' WHERE id = 2;
         UPDATE customers SET email = NULL, status = 'active' WHERE id = 3;
         UPDATE orders SET status = 'deleted' WHERE id = 10;
         UPDATE orders SET status = 'shipped' WHERE id = 11;
         UPDATE orders SET customer_id = 1 WHERE id = 12;",
    )
    .await;
    let expected = vec![
        customer(1, Some("a2@x"), "active"),
        customer(2, Some("b@x"), "active"),
        customer(3, None, "active"),
        order(11, 1, "shipped"),
        order(12, 1, "open"),
    ];
    env.converge(&table, expected, Duration::from_secs(60))
        .await;

    // Read through the indexes as an application would.
    let by_email = query_index(&env, &table, "by_email", "by_email_pk", "EMAIL#a2@x").await;
    let keys_only = ["by_email_pk", "pk", "sk"].map(String::from).to_vec();
    assert_eq!(
        by_email,
        vec![(format!("CUSTOMER#{:010}", 1), "PROFILE".into(), keys_only)]
    );
    assert!(
        query_index(&env, &table, "by_email", "by_email_pk", "EMAIL#a@x")
            .await
            .is_empty()
    );
    assert!(
        query_index(&env, &table, "by_email", "by_email_pk", "EMAIL#c@x")
            .await
            .is_empty()
    );
    let active = query_index(&env, &table, "gsi1", "gsi1pk", "STATUS#active").await;
    let ids: Vec<&str> = active.iter().map(|(pk, _, _)| pk.as_str()).collect();
    assert_eq!(
        ids,
        [
            "CUSTOMER#0000000001",
            "CUSTOMER#0000000002",
            "CUSTOMER#0000000003"
        ]
    );
    assert!(active[0].2.contains(&"email".to_string()), "projection all");
    let open = query_index(&env, &table, "gsi1", "gsi1pk", "STATUS#open").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].1, "ORDER#0000000012");
    assert!(
        query_index(&env, &table, "gsi1", "gsi1pk", "STATUS#deleted")
            .await
            .is_empty()
    );
    let _ = daemon.terminate();

    // An index whose key the views changed is reported, not silently used.
    env.write_view(
        "orders.toml",
        &ORDERS
            .replace("TABLE", &table)
            .replace("pk = \"STATUS#{status}\"", "pk = \"STATUS#{state}\"")
            .replace(
                "sk_attribute = \"gsi1sk\"",
                "sk_attribute = \"gsi1sk\"\nprojection = \"keys_only\"",
            ),
    );
    env.write_view(
        "customers.toml",
        &format!("{CUSTOMERS}{CUSTOMER_INDEXES}")
            .replace("TABLE", &table)
            .replace(
                "sk_attribute = \"gsi1sk\"",
                "sk_attribute = \"gsi1sk\"\nprojection = \"keys_only\"",
            )
            .replace(
                "pk = \"EMAIL#{email}\"",
                "pk = \"EMAIL#{email}\"\nsk = \"C#{id}\"",
            ),
    );
    let (code, err) = code_and_output(&env.rowcast(&["check", "--connect", "--config", &config]));
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("customers.toml: index[0]: index by_email has the key by_email_pk, the views need by_email_pk/by_email_sk"),
        "{err}"
    );
    assert!(
        err.contains("orders.toml: index[0]: index gsi1 projects all, the views ask for keys_only"),
        "{err}"
    );
    assert!(
        err.contains("orders.toml: index[0].pk: column state is not in"),
        "{err}"
    );
    let out = env.rowcast(&["tables", "--config", &config, "create"]);
    assert!(
        !out.status.success(),
        "a different index is not replaced silently"
    );
}

/// An index key attribute the table defines as a number: DynamoDB would refuse every item that
/// carries the view's string key, so `tables create` and `check --connect` report it and `run`
/// stops on it instead of dead-lettering every row.
#[tokio::test(flavor = "multi_thread")]
async fn an_index_key_attribute_typed_other_than_s_stops_run() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let env = Env::new("gsitype").await;
    env.sql("CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(50) NULL, status VARCHAR(10) NOT NULL)")
        .await;
    let table = env.table("views");
    let attr = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name("by_email")
        .key_schema(key("by_email_pk", KeyType::Hash))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .unwrap();
    env.ddb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk", ScalarAttributeType::S))
        .attribute_definitions(attr("sk", ScalarAttributeType::S))
        .attribute_definitions(attr("by_email_pk", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(gsi)
        .send()
        .await
        .unwrap();
    let view = format!(
        "{CUSTOMERS}[[index]]\nname = \"by_email\"\npk = \"EMAIL#{{email}}\"\nprojection = \"keys_only\"\n"
    );
    env.write_view("customers.toml", &view.replace("TABLE", &table));
    let config = env.write_config("").to_str().unwrap().to_string();
    let needle = "customers.toml: index[0]: index key attribute by_email_pk is not a string (S)";
    // tables create makes the control table and refuses the views table as it is.
    let (code, text) = code_and_output(&env.rowcast(&["tables", "--config", &config, "create"]));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(needle), "{text}");
    let (code, text) = code_and_output(&env.rowcast(&["check", "--connect", "--config", &config]));
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains(needle), "{text}");
    let mut daemon = env.spawn();
    let status = daemon.exited(Duration::from_secs(60)).await;
    assert!(!status.success());
    let log = common::tail(&daemon.log);
    assert!(log.contains("is not a string (S)"), "{log}");
}
