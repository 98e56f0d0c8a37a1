//! Write-back never harms the source of truth (issue 11), against MariaDB and DynamoDB Local:
//! rowcast's own removals are never written back (filter exit and re-entry, key move and back,
//! key column NULL and back, delete and re-insert in one transaction, REPLACE INTO); a
//! write-back touches exactly the row behind the item (a new item colliding on a secondary
//! unique key, a new item for a filtered-out row, an update whose row moved away or left the
//! filter); history is never replayed (a changed server id finds its positions, deleted
//! positions start at the stream's latest record); one bad record never stops a table (a
//! SIGNALing trigger, a multibyte DATE, a dropped column); DDL is followed (a widened ENUM);
//! two write-back tables share a file checkpoint without losing each other's positions;
//! write-back turned off and on again replays nothing from while it was off.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::app::{dead_letters, delete, key, n, put, s, stored, update, Key};
use common::{eventually, metric, Env};
use serde_json::{json, Value};

const VIEW: &str = r#"
name = "ledger"
table = "TABLE"
source = "{DB}.ledger"
filter = "status <> 'closed'"

[key]
pk = "REGION#{region}"
sk = "ACC#{id}"

[attributes]
status = "status"
email = "email"
note = "note"
day = "day"

[writeback]
enabled = true
attributes = ["status", "email", "note", "day"]
"#;

/// Writer settings that write every change on its own (a flush between a delete and a put of
/// one key).
const ONE_BY_ONE: &str = "[writer]\nlanes = 1\nflush_interval_ms = 1\nmax_window_items = 1\n";

/// [`ONE_BY_ONE`], and a slow poll so that SQL moves on before write-back reads a record.
const RACY: &str = "[writer]\nlanes = 1\nflush_interval_ms = 1\nmax_window_items = 1\n\n[streams]\npoll_interval_ms = 2000\n\n[dead_letter]\npath = \"dead.jsonl\"\n";

type Ledger = (i64, Option<String>, String, Option<String>, Option<String>);
/// A ledger row with its day, as text.
type LedgerDay = (
    i64,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn setup(name: &str, config: &str) -> (Env, String) {
    setup_in(Env::new(name).await, config).await
}

async fn setup_in(env: Env, config: &str) -> (Env, String) {
    let table = env.table("views");
    env.sql(
        "CREATE TABLE ledger (id INT PRIMARY KEY, region VARCHAR(8) NULL, status ENUM('open','closed','frozen') NOT NULL, email VARCHAR(40) NULL UNIQUE, note VARCHAR(40) NULL, day DATE NULL)",
    )
    .await;
    let values: Vec<String> = (1..=9)
        .map(|id| {
            let status = if id == 9 { "closed" } else { "open" };
            format!("({id}, 'eu', '{status}', 'e{id}@x', 'n{id}', NULL)")
        })
        .collect();
    env.sql(&format!("INSERT INTO ledger VALUES {}", values.join(", ")))
        .await;
    env.write_view("ledger.toml", &VIEW.replace("TABLE", &table));
    env.write_config(config);
    env.create_tables();
    (env, table)
}

async fn rows(env: &Env) -> Vec<Ledger> {
    env.query("SELECT id, region, CAST(status AS CHAR), email, note FROM ledger ORDER BY id")
        .await
}

async fn row(env: &Env, id: i64) -> Option<Ledger> {
    rows(env).await.into_iter().find(|r| r.0 == id)
}

/// The view evaluated over the table.
async fn expected(env: &Env) -> Vec<Value> {
    let rows: Vec<LedgerDay> = env
        .query("SELECT id, region, CAST(status AS CHAR), email, note, CAST(day AS CHAR) FROM ledger WHERE status <> 'closed' AND region IS NOT NULL")
        .await;
    rows.into_iter()
        .map(|(id, region, status, email, note, day)| {
            let mut item = json!({"pk": format!("REGION#{}", region.unwrap()), "sk": format!("ACC#{id}"), "status": status});
            for (name, value) in [("email", email), ("note", note), ("day", day)] {
                if let Some(value) = value {
                    item[name] = json!(value);
                }
            }
            item
        })
        .collect()
}

fn item(region: &str, id: i64) -> Key {
    key(&[
        ("pk", &format!("REGION#{region}")),
        ("sk", &format!("ACC#{id}")),
    ])
}

/// Waits until write-back has taken every record now in the table's stream.
async fn caught_up(env: &Env, table: &str) {
    eventually(
        "write-back to read every stream record",
        Duration::from_secs(60),
        || common::app::caught_up(env, table),
    )
    .await;
}

/// An application's UpdateItem of item `id`'s note.
async fn update_note(env: &Env, table: &str, id: i64, note: &str) {
    update(
        env,
        table,
        item("eu", id),
        "SET note = :n",
        &[(":n", s(note))],
    )
    .await;
}

async fn converge(env: &Env, table: &str) {
    env.converge(table, expected(env).await, Duration::from_secs(30))
        .await;
}

/// An application's PutItem of a copy of row `id`'s item it read earlier, with SQL's newer
/// `email` and a new `note`; waits until the note reaches SQL.
async fn put_copy_with_note(
    env: &Env,
    table: &str,
    mut copy: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    id: i64,
    email: &str,
    note: &str,
) {
    copy.insert("email".into(), s(email));
    copy.insert("note".into(), s(note));
    env.ddb
        .put_item()
        .table_name(table)
        .set_item(Some(copy))
        .send()
        .await
        .unwrap();
    eventually(
        "the copy's change to reach SQL",
        Duration::from_secs(30),
        || async { row(env, id).await.unwrap().4.as_deref() == Some(note) },
    )
    .await;
}

fn letters_for(env: &Env, sk: &str) -> Vec<Value> {
    dead_letters(env)
        .into_iter()
        .filter(|l| l["key"].as_str().is_some_and(|k| k.contains(sk)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rowcasts_own_removals_never_delete_rows() {
    let (env, table) = setup("wbownremovals", RACY).await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    // Each pair is two transactions that follow each other at once: write-back reads rowcast's
    // removal after the row makes the item again (and rowcast's new item 70 after its row is
    // gone: it must not come back).
    env.sql(
        "UPDATE ledger SET status = 'closed' WHERE id = 1; UPDATE ledger SET status = 'open' WHERE id = 1;
         UPDATE ledger SET region = 'us' WHERE id = 2; UPDATE ledger SET region = 'eu' WHERE id = 2;
         UPDATE ledger SET region = NULL WHERE id = 3; UPDATE ledger SET region = 'eu' WHERE id = 3;
         START TRANSACTION; DELETE FROM ledger WHERE id = 4; INSERT INTO ledger VALUES (4, 'eu', 'open', 'e4@x', 'n4-again', NULL); COMMIT;
         REPLACE INTO ledger VALUES (5, 'eu', 'open', 'e5@x', 'n5-replaced', NULL);
         INSERT INTO ledger VALUES (70, 'eu', 'open', 'e70@x', 'n70', NULL); DELETE FROM ledger WHERE id = 70;",
    )
    .await;
    // An application's DeleteItem of an item whose row still makes it deletes the row.
    delete(&env, &table, item("eu", 6)).await;
    eventually(
        "the application's delete to reach MariaDB",
        Duration::from_secs(30),
        || async { row(&env, 6).await.is_none() },
    )
    .await;
    converge(&env, &table).await;
    caught_up(&env, &table).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    caught_up(&env, &table).await;
    let ids: Vec<i64> = rows(&env).await.iter().map(|r| r.0).collect();
    assert_eq!(
        ids,
        [1, 2, 3, 4, 5, 7, 8, 9],
        "write-back deleted rows rowcast removed items of, or brought back a deleted one"
    );
    assert_eq!(row(&env, 4).await.unwrap().4.as_deref(), Some("n4-again"));
    assert_eq!(
        row(&env, 5).await.unwrap().4.as_deref(),
        Some("n5-replaced")
    );
    converge(&env, &table).await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "rowcast_writeback_stream_records_total{outcome=\"applied\""
        ),
        1.0,
        "only the application's delete is applied: {metrics}"
    );
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_back_touches_exactly_the_row_behind_the_item() {
    let (env, table) = setup("wbexactrow", RACY).await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    // A new item whose email collides with row 1's UNIQUE email: rejected, row 1 untouched.
    put(
        &env,
        &table,
        &[
            ("pk", s("REGION#eu")),
            ("sk", s("ACC#50")),
            ("status", s("open")),
            ("email", s("e1@x")),
            ("note", s("intruder")),
        ],
    )
    .await;
    // A new item for row 9, which exists but is filtered out (closed): rejected.
    put(
        &env,
        &table,
        &[
            ("pk", s("REGION#eu")),
            ("sk", s("ACC#9")),
            ("status", s("open")),
            ("note", s("reopened")),
        ],
    )
    .await;
    // Updates whose rows moved away (7) or left the filter (8) before write-back read them.
    update_note(&env, &table, 7, "from-app-7").await;
    update_note(&env, &table, 8, "from-app-8").await;
    env.sql(
        "UPDATE ledger SET region = 'us' WHERE id = 7; UPDATE ledger SET status = 'closed' WHERE id = 8",
    )
    .await;
    eventually("four dead letters", Duration::from_secs(60), || async {
        ["ACC#50", "ACC#9]", "ACC#7", "ACC#8"]
            .iter()
            .all(|sk| !letters_for(&env, sk).is_empty())
    })
    .await;
    let all = rows(&env).await;
    let find = |id: i64| all.iter().find(|r| r.0 == id).cloned();
    assert_eq!(
        find(1),
        Some((
            1,
            Some("eu".into()),
            "open".into(),
            Some("e1@x".into()),
            Some("n1".into())
        )),
        "the colliding new item changed another row"
    );
    assert_eq!(find(50), None);
    assert_eq!(
        find(9),
        Some((
            9,
            Some("eu".into()),
            "closed".into(),
            Some("e9@x".into()),
            Some("n9".into())
        ))
    );
    assert_eq!(find(7).unwrap().4.as_deref(), Some("n7"));
    assert_eq!(find(8).unwrap().4.as_deref(), Some("n8"));
    let collision = &letters_for(&env, "ACC#50")[0];
    assert!(
        collision["reason"]
            .as_str()
            .unwrap()
            .contains("Duplicate entry"),
        "{collision}"
    );
    assert!(collision["record"].is_object(), "{collision}");
    // The view follows SQL again: rejected new items are gone, the others rewritten.
    converge(&env, &table).await;
    // One letter each: rowcast's mark before it removes a rejected new item is its own, not
    // the application's insert again (a second letter, or a row inserted where the cause has
    // passed; found by a review of 2026-12-06's eighth stop).
    caught_up(&env, &table).await;
    for sk in ["ACC#50", "ACC#9]"] {
        let letters = letters_for(&env, sk);
        assert_eq!(letters.len(), 1, "{sk}: {letters:?}");
    }
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn history_is_never_replayed() {
    let (mut env, table) = setup("wbhistory", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    update_note(&env, &table, 1, "app-old").await;
    eventually(
        "the update to reach SQL",
        Duration::from_secs(30),
        || async { row(&env, 1).await.unwrap().4.as_deref() == Some("app-old") },
    )
    .await;
    env.sql("UPDATE ledger SET note = 'sql-newer' WHERE id = 1")
        .await;
    converge(&env, &table).await;
    caught_up(&env, &table).await;
    assert!(daemon.terminate().success());

    // Another replica id: the shard positions belong to the table's stream, not to the binlog
    // connection. A change made while rowcast was down is applied, the old one is not replayed.
    env.server_id += 1;
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    update_note(&env, &table, 2, "while-down").await;
    let daemon = env.start().await;
    eventually(
        "the change made while down to reach SQL",
        Duration::from_secs(30),
        || async { row(&env, 2).await.unwrap().4.as_deref() == Some("while-down") },
    )
    .await;
    caught_up(&env, &table).await;
    assert_eq!(
        row(&env, 1).await.unwrap().4.as_deref(),
        Some("sql-newer"),
        "an old application change was replayed over a newer SQL change"
    );
    env.sql("UPDATE ledger SET note = 'sql-newest' WHERE id = 2")
        .await;
    converge(&env, &table).await;
    assert!(daemon.terminate().success());

    // Positions deleted: the consumer starts at the stream's latest record and says so.
    let control = env.table("control");
    let scan = env.ddb.scan().table_name(&control).send().await.unwrap();
    for entry in scan.items() {
        let pk = entry["pk"].clone();
        if pk.as_s().unwrap().starts_with("writeback#") {
            env.ddb
                .delete_item()
                .table_name(&control)
                .key("pk", pk)
                .key("sk", entry["sk"].clone())
                .send()
                .await
                .unwrap();
        }
    }
    let daemon = env.start().await;
    started_at_latest(&daemon).await;
    update_note(&env, &table, 3, "after-restart").await;
    eventually(
        "a change after the start to reach SQL",
        Duration::from_secs(30),
        || async { row(&env, 3).await.unwrap().4.as_deref() == Some("after-restart") },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(row(&env, 1).await.unwrap().4.as_deref(), Some("sql-newer"));
    assert_eq!(
        row(&env, 2).await.unwrap().4.as_deref(),
        Some("sql-newest"),
        "an old application change was replayed over a newer SQL change"
    );
    converge(&env, &table).await;
    assert!(daemon.terminate().success());
}

/// Write-back turned off and on again (the README's way back from a migration step): while it
/// was off, rowcast removed items without marking them (a row leaving the filter and coming
/// back, a key moved and moved back). Those removals must never reach SQL as an application's
/// DeleteItem when write-back is on again.
#[tokio::test(flavor = "multi_thread")]
async fn write_back_turned_off_and_on_again_never_replays_the_time_it_was_off() {
    let config = format!("{ONE_BY_ONE}\n[dead_letter]\npath = \"dead.jsonl\"\n");
    let (env, table) = setup("wboffon", &config).await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    note_reaches_sql(&env, &table, 4, "while-on").await;
    caught_up(&env, &table).await;
    assert!(daemon.terminate().success());

    // Off: rowcast's removals are plain deletes; an application's change is not written back.
    env.write_view(
        "ledger.toml",
        &VIEW
            .replace("TABLE", &table)
            .replace("enabled = true", "enabled = false"),
    );
    let daemon = env.start().await;
    env.sql("UPDATE ledger SET status = 'closed' WHERE id = 1")
        .await;
    env.sql("UPDATE ledger SET status = 'open' WHERE id = 1")
        .await;
    env.sql("UPDATE ledger SET region = 'us' WHERE id = 2")
        .await;
    env.sql("UPDATE ledger SET region = 'eu' WHERE id = 2")
        .await;
    // The views end as they began: a later change shows that rowcast read all of it.
    env.sql("UPDATE ledger SET note = 'off' WHERE id = 6").await;
    converge(&env, &table).await;
    assert!(daemon.terminate().success());

    // On again.
    env.write_view("ledger.toml", &VIEW.replace("TABLE", &table));
    let daemon = env.start().await;
    note_reaches_sql(&env, &table, 3, "on-again").await;
    // Records are read in order: had the consumer gone on from where it stopped, it would have
    // applied the ones from while it was off by now; two more polls to be sure.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in [1, 2] {
        assert!(
            row(&env, id).await.is_some(),
            "row {id} was deleted by a removal rowcast made while write-back was off"
        );
    }
    converge(&env, &table).await;
    assert!(daemon.terminate().success());
}

/// A view of a table with a write-back view marks its removals even without write-back of its
/// own: should its write-back be turned on before the table's consumer has read them, they are
/// still rowcast's (here the consumer polls every 10 s, so it has not).
#[tokio::test(flavor = "multi_thread")]
async fn removals_of_a_view_without_write_back_are_marked_where_its_table_has_write_back() {
    let config = format!(
        "{ONE_BY_ONE}\n[streams]\npoll_interval_ms = 10000\n\n[dead_letter]\npath = \"dead.jsonl\"\n"
    );
    let (env, table) = setup("wbsharedmark", &config).await;
    env.sql("CREATE TABLE memo (id INT PRIMARY KEY, state VARCHAR(8) NOT NULL, body VARCHAR(20))")
        .await;
    env.sql("INSERT INTO memo VALUES (1, 'live', 'b1'), (2, 'live', 'b2')")
        .await;
    let memo = |writeback: bool| {
        format!(
            "name = \"memo\"\ntable = \"{table}\"\nsource = \"{{DB}}.memo\"\nfilter = \"state = 'live'\"\n\n[key]\npk = \"MEMO#{{id}}\"\nsk = \"M\"\n\n[attributes]\nbody = \"body\"\n\n[writeback]\nenabled = {writeback}\nattributes = [\"body\"]\n"
        )
    };
    env.write_view("memo.toml", &memo(false));
    let daemon = env.start().await;
    for key in [item("eu", 4), key(&[("pk", "MEMO#2"), ("sk", "M")])] {
        eventually("the backfill", Duration::from_secs(30), || {
            exists(&env, &table, key.clone())
        })
        .await;
    }
    note_reaches_sql(&env, &table, 4, "saved").await;
    // The memo view removes its item 1 and makes it again, before the consumer reads again.
    env.sql("UPDATE memo SET state = 'gone' WHERE id = 1").await;
    env.sql("UPDATE memo SET state = 'live' WHERE id = 1").await;
    // Item 2 leaves after them (one lane): once it is gone, item 1 was removed and made again.
    env.sql("UPDATE memo SET state = 'gone' WHERE id = 2").await;
    eventually(
        "memo item 2 to be removed",
        Duration::from_secs(30),
        || async { !exists(&env, &table, key(&[("pk", "MEMO#2"), ("sk", "M")])).await },
    )
    .await;
    assert!(exists(&env, &table, key(&[("pk", "MEMO#1"), ("sk", "M")])).await);
    assert!(daemon.terminate().success());

    env.write_view("memo.toml", &memo(true));
    let daemon = env.start().await;
    note_reaches_sql(&env, &table, 3, "after").await;
    let memos: Vec<(i64,)> = env.query("SELECT id FROM memo ORDER BY id").await;
    assert_eq!(
        memos,
        vec![(1,), (2,)],
        "a removal rowcast made for the memo view deleted its row"
    );
    assert!(daemon.terminate().success());
}

async fn started_at_latest(daemon: &common::Daemon) {
    eventually(
        "write-back to start at the latest record",
        Duration::from_secs(30),
        || async {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, "rowcast_writeback_started_at_latest_total") >= 1.0
        },
    )
    .await;
}

/// An application's UpdateItem of the note of ledger item `id`, waited for in SQL.
async fn note_reaches_sql(env: &Env, table: &str, id: i64, note: &str) {
    update_note(env, table, id, note).await;
    eventually(
        "an application's update to reach SQL",
        Duration::from_secs(60),
        || async { row(env, id).await.unwrap().4.as_deref() == Some(note) },
    )
    .await;
}

async fn exists(env: &Env, table: &str, key: Key) -> bool {
    stored(env, table, key).await.is_some()
}

/// Forgetting positions in the control table takes several requests, marked by an item written
/// first and deleted last: positions with the mark are never used, the next start finishes
/// forgetting them and starts at the stream's latest record. Nor are shard positions without
/// the start they all begin with (saved late, after a forget).
#[tokio::test(flavor = "multi_thread")]
async fn positions_whose_forgetting_was_cut_short_are_not_used() {
    let (env, table) = setup("wbforgetting", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    note_reaches_sql(&env, &table, 4, "saved").await;
    caught_up(&env, &table).await;
    assert!(daemon.terminate().success());
    let partition = format!("writeback#{}", common::app::stream_arn(&env, &table).await);
    let control = env.table("control");
    env.ddb
        .put_item()
        .table_name(&control)
        .item("pk", s(&partition))
        .item("sk", s("#forgetting"))
        .send()
        .await
        .unwrap();
    let daemon = env.start().await;
    started_at_latest(&daemon).await;
    let left = env
        .ddb
        .query()
        .table_name(&control)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s(&partition))
        .send()
        .await
        .unwrap();
    let sort_keys: Vec<&str> = left
        .items()
        .iter()
        .map(|item| item["sk"].as_s().unwrap().as_str())
        .collect();
    assert!(
        !sort_keys.contains(&"#forgetting"),
        "the forget was not finished: {sort_keys:?}"
    );
    note_reaches_sql(&env, &table, 5, "after-forget").await;
    assert!(daemon.terminate().success());

    // Shard positions without the start every set of positions begins with: saved after they
    // were forgotten, by an instance still stopping. Not used either.
    env.ddb
        .delete_item()
        .table_name(&control)
        .key("pk", s(&partition))
        .key("sk", s("#start"))
        .send()
        .await
        .unwrap();
    let daemon = env.start().await;
    started_at_latest(&daemon).await;
    assert!(daemon.terminate().success());
}

/// The table's stream disabled and enabled again while application changes are unread, one of
/// them waiting for a row lock when rowcast stops: the earlier stream's records are all
/// applied before the new stream's, and its closed shard is not taken for finished when the
/// stop came in the middle of its last records.
#[tokio::test(flavor = "multi_thread")]
async fn an_earlier_streams_unread_changes_are_applied_before_the_new_streams() {
    use mysql_async::prelude::Queryable;
    let config = "[streams]\npoll_interval_ms = 4000\n\n[dead_letter]\npath = \"dead.jsonl\"\n";
    let (env, table) = setup("wbnewstream", config).await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    note_reaches_sql(&env, &table, 4, "first").await;
    let mut holder = env.admin.get_conn().await.unwrap();
    holder
        .query_drop(format!(
            "USE {}; START TRANSACTION; SELECT * FROM ledger WHERE id = 1 FOR UPDATE",
            env.db
        ))
        .await
        .unwrap();
    update_three_notes(&env, &table).await;
    // Disabled: the stream's shard is closed, its last records come with no next iterator.
    set_stream(&env, &table, false).await;
    eventually(
        "the locked row's record to be retried",
        Duration::from_secs(30),
        || async {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, "rowcast_writeback_retries_total{reason=\"retry\"") >= 1.0
        },
    )
    .await;
    assert!(daemon.terminate().success());
    holder.query_drop("COMMIT").await.unwrap();
    set_stream(&env, &table, true).await;
    let daemon = env.start().await;
    earlier_then_new_stream(&env, &table).await;
    assert!(daemon.terminate().success());
}

/// The same while rowcast runs: the stream is disabled and enabled again while application
/// changes are unread (the consumer polls every 15 s, so it looks for a new stream before it
/// reads again): the earlier stream is read to its end before the new one is followed.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_replaced_while_running_is_read_to_its_end_first() {
    let config = "[streams]\npoll_interval_ms = 15000\n\n[dead_letter]\npath = \"dead.jsonl\"\n";
    let (env, table) = setup("wbstreamswap", config).await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    note_reaches_sql(&env, &table, 4, "first").await;
    update_three_notes(&env, &table).await;
    set_stream(&env, &table, false).await;
    set_stream(&env, &table, true).await;
    earlier_then_new_stream(&env, &table).await;
    assert!(daemon.terminate().success());
}

/// An earlier stream left with unread records after the new stream was read (an earlier version
/// of rowcast switched streams without reading the old one to its end): what is left there is
/// older than what was applied from the new stream, so it is never applied over it.
#[tokio::test(flavor = "multi_thread")]
async fn an_earlier_stream_left_unread_after_the_new_one_was_read_is_not_applied() {
    let (env, table) = setup("wbstreamleft", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    note_reaches_sql(&env, &table, 4, "first").await;
    assert!(daemon.terminate().success());
    // Unread in the earlier stream: its positions as they are now are kept aside.
    let earlier = common::app::stream_arn(&env, &table).await;
    update_note(&env, &table, 1, "stale").await;
    let control = env.table("control");
    let partition = format!("writeback#{earlier}");
    let kept = env
        .ddb
        .query()
        .table_name(&control)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s(&partition))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert!(!kept.is_empty(), "no positions saved for {partition}");
    set_stream(&env, &table, false).await;
    set_stream(&env, &table, true).await;
    let daemon = env.start().await;
    eventually(
        "the earlier stream's change to reach SQL",
        Duration::from_secs(60),
        || async { row(&env, 1).await.unwrap().4.as_deref() == Some("stale") },
    )
    .await;
    note_reaches_sql(&env, &table, 1, "newer").await;
    assert!(daemon.terminate().success());
    // The earlier stream's positions put back as they were before it was read to its end.
    for position in kept {
        env.ddb
            .put_item()
            .table_name(&control)
            .set_item(Some(position))
            .send()
            .await
            .unwrap();
    }
    let daemon = env.start().await;
    note_reaches_sql(&env, &table, 2, "later").await;
    assert_eq!(
        row(&env, 1).await.unwrap().4.as_deref(),
        Some("newer"),
        "the earlier stream's change was applied over the new stream's"
    );
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "rowcast_writeback_trimmed_total"),
        1.0,
        "the unread earlier stream is not counted"
    );
    assert!(daemon.terminate().success());
}

/// Application changes of three notes, unread when the stream is replaced.
const THREE_NOTES: [(i64, &str); 3] = [(1, "one"), (2, "two"), (3, "three")];

/// An application's updates of [`THREE_NOTES`].
async fn update_three_notes(env: &Env, table: &str) {
    for (id, note) in THREE_NOTES {
        update_note(env, table, id, note).await;
    }
}

/// The changes of [`THREE_NOTES`] reach SQL, then one made on the new stream; the view follows.
async fn earlier_then_new_stream(env: &Env, table: &str) {
    for (id, note) in THREE_NOTES {
        eventually(
            "the earlier stream's changes to reach SQL",
            Duration::from_secs(60),
            || async { row(env, id).await.unwrap().4.as_deref() == Some(note) },
        )
        .await;
    }
    note_reaches_sql(env, table, 5, "new-stream").await;
    converge(env, table).await;
}

/// Turns the table's stream (NEW_AND_OLD_IMAGES) on or off.
async fn set_stream(env: &Env, table: &str, enabled: bool) {
    let mut spec = aws_sdk_dynamodb::types::StreamSpecification::builder().stream_enabled(enabled);
    if enabled {
        spec = spec.stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages);
    }
    env.ddb
        .update_table()
        .table_name(table)
        .stream_specification(spec.build().unwrap())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signaling_trigger_is_a_dead_letter_and_the_next_record_flows() {
    let (env, table) = setup("wbtrigger", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    env.sql(
        "CREATE TRIGGER ledger_guard BEFORE UPDATE ON ledger FOR EACH ROW BEGIN IF NEW.note = 'forbidden' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'notes may not be forbidden'; END IF; END",
    )
    .await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    update_note(&env, &table, 1, "forbidden").await;
    update_note(&env, &table, 2, "fine").await;
    eventually(
        "the good record after the bad one to reach SQL",
        Duration::from_secs(30),
        || async { row(&env, 2).await.unwrap().4.as_deref() == Some("fine") },
    )
    .await;
    let letters = letters_for(&env, "ACC#1]");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("notes may not be forbidden"),
        "{letters:?}"
    );
    assert_eq!(row(&env, 1).await.unwrap().4.as_deref(), Some("n1"));
    converge(&env, &table).await;
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multibyte_date_is_a_dead_letter_not_a_panic() {
    let (env, table) = setup("wbmultibyte", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    // Row 7: a later row of the backfill chunk, whose item holds a higher version than the
    // first row's; the restore after the rejection must still replace it.
    update(
        &env,
        &table,
        item("eu", 7),
        "SET #d = :d",
        &[(":d", s("2024年1月1日"))],
    )
    .await;
    update_note(&env, &table, 2, "after").await;
    eventually(
        "the next record to reach SQL",
        Duration::from_secs(30),
        || async { row(&env, 2).await.unwrap().4.as_deref() == Some("after") },
    )
    .await;
    let letters = letters_for(&env, "ACC#7]");
    assert!(
        letters[0]["reason"].as_str().unwrap().contains("day"),
        "{letters:?}"
    );
    converge(&env, &table).await;
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn write_back_follows_ddl() {
    let (env, table) = setup("wbddl", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    env.sql("ALTER TABLE ledger ADD COLUMN spare INT NULL, MODIFY region ENUM('eu','us') NULL")
        .await;
    // A first write-back makes the consumer read the table's schema.
    update_note(&env, &table, 1, "first").await;
    eventually("the first update", Duration::from_secs(30), || async {
        row(&env, 1).await.unwrap().4.as_deref() == Some("first")
    })
    .await;
    // A column the view does not use is dropped: the next write-back still applies.
    env.sql("ALTER TABLE ledger DROP COLUMN spare").await;
    update_note(&env, &table, 5, "after-unrelated-drop").await;
    eventually(
        "the update after an unrelated DDL",
        Duration::from_secs(30),
        || async { row(&env, 5).await.unwrap().4.as_deref() == Some("after-unrelated-drop") },
    )
    .await;
    assert!(letters_for(&env, "ACC#5]").is_empty());
    // A widened ENUM: the new label is accepted.
    env.sql("ALTER TABLE ledger MODIFY status ENUM('open','closed','frozen','vip') NOT NULL")
        .await;
    update(
        &env,
        &table,
        item("eu", 2),
        "SET #s = :s",
        &[(":s", s("vip"))],
    )
    .await;
    eventually(
        "the new ENUM label to reach SQL",
        Duration::from_secs(30),
        || async { row(&env, 2).await.unwrap().2 == "vip" },
    )
    .await;
    // A key column's ENUM widened, and a row moved to the new label: its
    // item's change is the view's (before 2026-12-07 the cached schema read its key as no
    // view's, and the change was dropped as `other-view` with nothing in the log; found by a
    // review, seen failing).
    env.sql("ALTER TABLE ledger MODIFY region ENUM('eu','us','ap') NULL; UPDATE ledger SET region = 'ap' WHERE id = 6")
        .await;
    eventually("the moved item", Duration::from_secs(30), || async {
        stored(&env, &table, item("ap", 6)).await.is_some()
    })
    .await;
    update(
        &env,
        &table,
        item("ap", 6),
        "SET note = :n",
        &[(":n", s("moved-note"))],
    )
    .await;
    eventually(
        "the change of the moved item to reach SQL",
        Duration::from_secs(30),
        || async { row(&env, 6).await.unwrap().4.as_deref() == Some("moved-note") },
    )
    .await;
    // A dropped column: a write of it is a dead letter, and the next record flows.
    env.sql("ALTER TABLE ledger DROP COLUMN day").await;
    update(
        &env,
        &table,
        item("eu", 3),
        "SET #d = :d",
        &[(":d", s("2024-01-01"))],
    )
    .await;
    update_note(&env, &table, 4, "after-drop").await;
    eventually(
        "the next record to reach SQL",
        Duration::from_secs(30),
        || async { row(&env, 4).await.unwrap().4.as_deref() == Some("after-drop") },
    )
    .await;
    assert!(!letters_for(&env, "ACC#3]").is_empty());
    assert!(daemon.terminate().success());
}

/// An application's new item whose key holds a label an `ALTER` just gave a key column, read
/// before the binlog reader has passed the `ALTER` on (held 6 s by failpoint): the cached
/// schema knows no such label, so the schema is read again before the item is taken for no
/// view's (once a second at most), and its row is inserted. Before 2026-12-07 it was skipped
/// as `other-view` (found by the review of the DDL count; seen failing).
#[tokio::test(flavor = "multi_thread")]
async fn a_new_item_with_a_label_sql_just_gained_reaches_sql() {
    let (env, table) = setup("wbnewlabel", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    env.sql("ALTER TABLE ledger MODIFY region ENUM('eu','us') NULL")
        .await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "source.before_ddl=sleep6000")]);
    daemon.wait_ready().await;
    converge(&env, &table).await;
    // The consumer reads the schema (region: eu, us).
    update_note(&env, &table, 1, "first").await;
    eventually("the first update", Duration::from_secs(30), || async {
        row(&env, 1).await.unwrap().4.as_deref() == Some("first")
    })
    .await;
    env.sql("ALTER TABLE ledger MODIFY region ENUM('eu','us','ap') NULL")
        .await;
    put(
        &env,
        &table,
        &[
            ("pk", s("REGION#ap")),
            ("sk", s("ACC#60")),
            ("status", s("open")),
            ("note", s("new")),
        ],
    )
    .await;
    eventually("the new row in SQL", Duration::from_secs(30), || async {
        row(&env, 60)
            .await
            .is_some_and(|r| r.1.as_deref() == Some("ap"))
    })
    .await;
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_write_back_tables_keep_their_positions_in_one_file() {
    let env = Env::new("wbtwofile").await;
    let (first, second) = (env.table("first"), env.table("second"));
    env.sql("CREATE TABLE tags (id INT PRIMARY KEY, tag VARCHAR(20) NOT NULL); CREATE TABLE labels (id INT PRIMARY KEY, label VARCHAR(20) NOT NULL)")
        .await;
    env.sql("INSERT INTO tags VALUES (1, 't'), (2, 't'), (3, 't'), (4, 't'); INSERT INTO labels VALUES (1, 'l'), (2, 'l'), (3, 'l'), (4, 'l')")
        .await;
    for (file, name, table, source, column) in [
        ("tags.toml", "tags", &first, "tags", "tag"),
        ("labels.toml", "labels", &second, "labels", "label"),
    ] {
        env.write_view(
            file,
            &format!("name = \"{name}\"\ntable = \"{table}\"\nsource = \"{{DB}}.{source}\"\n[key]\npk = \"ID#{{id}}\"\n[attributes]\n{column} = \"{column}\"\n[writeback]\nenabled = true\nattributes = [\"{column}\"]\n"),
        );
    }
    let config = "[checkpoint]\npath = \"state/checkpoint.json\"\ninterval_ms = 200\n\n[streams]\npoll_interval_ms = 20\n";
    env.write_config(config);
    env.create_tables();
    let daemon = env.start().await;
    let writes = |table: String, column: &'static str| {
        let env = &env;
        async move {
            for i in 0..40 {
                let id = (i % 4 + 1).to_string();
                update(
                    env,
                    &table,
                    key(&[("pk", &format!("ID#{id}"))]),
                    &format!("SET {column} = :v"),
                    &[(":v", s(&format!("{column}-{i}")))],
                )
                .await;
            }
        }
    };
    tokio::join!(
        writes(first.clone(), "tag"),
        writes(second.clone(), "label")
    );
    eventually("every update in SQL", Duration::from_secs(60), || async {
        let tags: Vec<String> = env.query("SELECT tag FROM tags ORDER BY id").await;
        let labels: Vec<String> = env.query("SELECT label FROM labels ORDER BY id").await;
        tags == ["tag-36", "tag-37", "tag-38", "tag-39"]
            && labels == ["label-36", "label-37", "label-38", "label-39"]
    })
    .await;
    for _ in 0..2 {
        caught_up(&env, &first).await;
        caught_up(&env, &second).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(daemon.terminate().success());
    // Restarted, neither table reads a record again (each resumes after its last one), and
    // both still follow their streams.
    let daemon = env.start().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "rowcast_writeback_stream_records_total"),
        0.0,
        "records were read again after the restart: a position was lost\n{metrics}"
    );
    update(
        &env,
        &first,
        key(&[("pk", "ID#1")]),
        "SET tag = :v",
        &[(":v", s("after"))],
    )
    .await;
    update(
        &env,
        &second,
        key(&[("pk", "ID#1")]),
        "SET label = :v",
        &[(":v", s("after"))],
    )
    .await;
    eventually("both updates in SQL", Duration::from_secs(30), || async {
        let tag: Vec<String> = env.query("SELECT tag FROM tags WHERE id = 1").await;
        let label: Vec<String> = env.query("SELECT label FROM labels WHERE id = 1").await;
        tag == ["after"] && label == ["after"]
    })
    .await;
    assert!(daemon.terminate().success());
}

/// Two write-back tables whose rows are tied by a foreign key: the application's new order
/// read before its new customer (the customers' consumer held 4 s by failpoint), then its
/// customer's delete read before the order's. A statement a foreign key refuses waits for the
/// record that may come from another table or shard, up to a minute, while the other shards
/// and tables go on. Before 2026-12-07 the order was rejected at once (error 1452), and the
/// application's new item removed from DynamoDB: the order existed only in a dead letter
/// (found by a review; seen failing).
#[tokio::test(flavor = "multi_thread")]
async fn a_change_a_foreign_key_refuses_waits_for_the_record_it_needs() {
    let (env, customers, orders) = customers_and_orders("wbforeign").await;
    let held =
        |env: &Env| env.spawn_with(&[("ROWCAST_FAILPOINTS", "writeback.before_apply=sleep4000")]);
    let daemon = held(&env);
    daemon.wait_ready().await;
    // The log goes on from one daemon to the next: the n-th hold in it.
    let hit =
        |daemon: &common::Daemon, n: usize| daemon.logged("failpoint writeback.before_apply") >= n;
    put(
        &env,
        &customers,
        &[("pk", s("CUST#101")), ("name", s("new"))],
    )
    .await;
    eventually(
        "the customer's record held",
        Duration::from_secs(30),
        || async { hit(&daemon, 1) },
    )
    .await;
    put(
        &env,
        &orders,
        &[
            ("pk", s("ORD#900")),
            ("customer_id", n("101")),
            ("note", s("x")),
        ],
    )
    .await;
    eventually("both new rows in SQL", Duration::from_secs(60), || async {
        let rows: Vec<(i64, i64)> = env
            .query("SELECT id, customer_id FROM orders WHERE id = 900")
            .await;
        rows == [(900, 101)]
    })
    .await;
    let order = stored(&env, &orders, key(&[("pk", "ORD#900")])).await;
    assert!(order.is_some(), "the application's order item was removed");
    assert!(daemon.terminate().success());

    // The other way: the customer's delete read before its order's.
    let daemon = held(&env);
    daemon.wait_ready().await;
    delete(&env, &orders, key(&[("pk", "ORD#900")])).await;
    eventually(
        "the order's record held",
        Duration::from_secs(30),
        || async { hit(&daemon, 2) },
    )
    .await;
    delete(&env, &customers, key(&[("pk", "CUST#101")])).await;
    eventually("both rows gone from SQL", Duration::from_secs(60), || async {
        let left: Vec<i64> = env
            .query("SELECT id FROM customers WHERE id = 101 UNION ALL SELECT id FROM orders WHERE id = 900")
            .await;
        left.is_empty()
    })
    .await;
    let customer = stored(&env, &customers, key(&[("pk", "CUST#101")])).await;
    assert!(customer.is_none(), "the customer's item was put back");
    assert!(dead_letters(&env).is_empty(), "{:?}", dead_letters(&env));
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metric(
            &metrics,
            "rowcast_writeback_retries_total{reason=\"foreign_key\""
        ) >= 1.0,
        "{metrics}"
    );
    assert!(daemon.terminate().success());
}

/// Customers and their orders, a foreign key between them, each a write-back view of its own
/// table; the dead letters in `dead.jsonl`. Customer 1 has order 1 (note `first`).
async fn customers_and_orders(name: &str) -> (Env, String, String) {
    let env = Env::new(name).await;
    let (customers, orders) = (env.table("customers"), env.table("orders"));
    env.sql("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL); CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, note VARCHAR(20) NULL, FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE RESTRICT); INSERT INTO customers VALUES (1, 'one'); INSERT INTO orders VALUES (1, 1, 'first')")
        .await;
    env.write_view(
        "customers.toml",
        &format!("name = \"customers\"\ntable = \"{customers}\"\nsource = \"{{DB}}.customers\"\n[key]\npk = \"CUST#{{id}}\"\n[attributes]\nname = \"name\"\n[writeback]\nenabled = true\nattributes = [\"name\"]\n"),
    );
    env.write_view(
        "orders.toml",
        &format!("name = \"orders\"\ntable = \"{orders}\"\nsource = \"{{DB}}.orders\"\n[key]\npk = \"ORD#{{id}}\"\n[attributes]\ncustomer_id = \"customer_id\"\nnote = \"note\"\n[writeback]\nenabled = true\nattributes = [\"customer_id\", \"note\"]\n"),
    );
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    (env, customers, orders)
}

/// A record a foreign key refuses for longer than the patience (an order of a customer that
/// never comes) is rejected: a dead letter saying so, the application's new item removed, and
/// its shard goes on to the records behind it. The patience is a minute; failpoint
/// `writeback.foreign_key_patience` makes it 2 s here.
#[tokio::test(flavor = "multi_thread")]
async fn an_orphan_a_foreign_key_refuses_past_the_patience_is_rejected_and_its_shard_goes_on() {
    let (env, _, orders) = customers_and_orders("wborphan").await;
    let daemon = env.spawn_with(&[(
        "ROWCAST_FAILPOINTS",
        "writeback.foreign_key_patience=error@*",
    )]);
    daemon.wait_ready().await;
    eventually("order 1's item", Duration::from_secs(30), || async {
        stored(&env, &orders, key(&[("pk", "ORD#1")]))
            .await
            .is_some()
    })
    .await;
    put(
        &env,
        &orders,
        &[
            ("pk", s("ORD#901")),
            ("customer_id", n("999")),
            ("note", s("orphan")),
        ],
    )
    .await;
    // Behind it in the stream (DynamoDB Local gives a table one shard).
    update(
        &env,
        &orders,
        key(&[("pk", "ORD#1")]),
        "SET note = :n",
        &[(":n", s("later"))],
    )
    .await;
    eventually(
        "the later change in SQL",
        Duration::from_secs(60),
        || async {
            let notes: Vec<String> = env.query("SELECT note FROM orders WHERE id = 1").await;
            notes == ["later"]
        },
    )
    .await;
    let letters = dead_letters(&env);
    assert_eq!(letters.len(), 1, "{letters:?}");
    let reason = letters[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("a foreign key still refused it after"),
        "{letters:?}"
    );
    eventually(
        "the orphan's item removed",
        Duration::from_secs(30),
        || async {
            stored(&env, &orders, key(&[("pk", "ORD#901")]))
                .await
                .is_none()
        },
    )
    .await;
    let rows: Vec<i64> = env.query("SELECT id FROM orders WHERE id = 901").await;
    assert!(rows.is_empty(), "{rows:?}");
    assert!(daemon.terminate().success());
}

/// A new item the application puts with an attribute write-back does not take is rejected and
/// removed, whatever the attribute's type: a number set or a binary set as well as a string set.
/// Before 2026-12-07 the removal's guard compared the item's sets with lists (the stream's sets
/// are read as lists) and never held: the item stayed, with no row behind it (found by a
/// review; seen failing).
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_new_item_with_a_number_or_binary_set_is_removed() {
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;
    let (env, table) = setup("wbsets", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    let sets = [
        (50, AttributeValue::Ss(vec!["a".into(), "b".into()])),
        (51, AttributeValue::Ns(vec!["1".into(), "2".into()])),
        (
            52,
            AttributeValue::Bs(vec![Blob::new(vec![1u8]), Blob::new(vec![2u8])]),
        ),
    ];
    for (id, tags) in &sets {
        put(
            &env,
            &table,
            &[
                ("pk", s("REGION#eu")),
                ("sk", s(&format!("ACC#{id}"))),
                ("status", s("open")),
                ("tags", tags.clone()),
            ],
        )
        .await;
    }
    eventually(
        "every rejected item removed",
        Duration::from_secs(30),
        || async {
            let mut left = 0;
            for (id, _) in &sets {
                if stored(&env, &table, item("eu", *id)).await.is_some() {
                    left += 1;
                }
            }
            left == 0
        },
    )
    .await;
    assert_eq!(dead_letters(&env).len(), 3, "{:?}", dead_letters(&env));
    assert!(row(&env, 51).await.is_none());
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_row_is_retried_and_shown_in_metrics() {
    use mysql_async::prelude::Queryable;
    let (env, table) = setup("wblocked", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    // The application holds row 1 locked in an open transaction.
    let mut holder = env.admin.get_conn().await.unwrap();
    holder
        .query_drop(format!(
            "USE {}; START TRANSACTION; SELECT * FROM ledger WHERE id = 1 FOR UPDATE",
            env.db
        ))
        .await
        .unwrap();
    update_note(&env, &table, 1, "waited").await;
    // Held for more than six tries of 5 s (a batch job, a copying ALTER): the record waits.
    // Before 2026-12-06's eighth stop it was rejected after five tries, about 30 s: a dead
    // letter, and the item put back to SQL's older state.
    eventually(
        "the record to be retried",
        Duration::from_secs(90),
        || async {
            let (_, metrics) = daemon.get("/metrics").await;
            metric(&metrics, "rowcast_writeback_retries_total{reason=\"retry\"") >= 6.0
                && metric(&metrics, "rowcast_writeback_retrying_seconds") > 30.0
        },
    )
    .await;
    holder.query_drop("COMMIT").await.unwrap();
    eventually(
        "the record to be applied once the lock is gone",
        Duration::from_secs(30),
        || async { row(&env, 1).await.unwrap().4.as_deref() == Some("waited") },
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(metric(&metrics, "rowcast_writeback_retrying_seconds"), 0.0);
    assert!(letters_for(&env, "ACC#1]").is_empty());
    assert!(daemon.terminate().success());
}

/// An application's change made while the server takes no writes (`read_only`, as a
/// switchover sets it on the old primary) waits until writes are taken again, then reaches SQL.
/// Before, the server's 1290 refused the record at once: a dead letter, and the item put back to
/// SQL's older state, so the application's change was lost. Runs alone: `read_only` is global.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_made_while_the_server_is_read_only_waits_and_reaches_sql() {
    let (env, table) = setup_in(
        Env::alone("wbreadonly").await,
        "[dead_letter]\npath = \"dead.jsonl\"\n",
    )
    .await;
    let env = std::sync::Arc::new(env);
    let run = {
        let env = env.clone();
        tokio::spawn(async move {
            let daemon = env.start().await;
            converge(&env, &table).await;
            env.sql("SET GLOBAL read_only = ON").await;
            update_note(&env, &table, 1, "switched").await;
            eventually("the record to wait", Duration::from_secs(30), || async {
                let (_, metrics) = daemon.get("/metrics").await;
                metric(
                    &metrics,
                    "rowcast_writeback_retries_total{reason=\"read_only\"",
                ) >= 3.0
            })
            .await;
            assert_eq!(row(&env, 1).await.unwrap().4.as_deref(), Some("n1"));
            assert!(letters_for(&env, "ACC#1]").is_empty());
            env.sql("SET GLOBAL read_only = OFF").await;
            eventually(
                "the change to reach SQL",
                Duration::from_secs(30),
                || async { row(&env, 1).await.unwrap().4.as_deref() == Some("switched") },
            )
            .await;
            converge(&env, &table).await;
            assert!(letters_for(&env, "ACC#1]").is_empty());
            assert!(daemon.terminate().success());
        })
    };
    let outcome = run.await;
    env.sql("SET GLOBAL read_only = OFF").await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// A rejected change larger than 64 KB (a 70 KB text into a VARCHAR(40)) is kept whole in the
/// dead-letter file: it is the only place the application's change survives, since the item is
/// put back to SQL's state. Before, a record over 64 KB was cut to its length and sequence.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_rejected_change_is_kept_whole_in_its_dead_letter() {
    let (env, table) = setup("wblargeletter", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    let long = "x".repeat(70_000);
    update_note(&env, &table, 1, &long).await;
    eventually("the dead letter", Duration::from_secs(30), || async {
        !letters_for(&env, "ACC#1]").is_empty()
    })
    .await;
    converge(&env, &table).await;
    let letters = letters_for(&env, "ACC#1]");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let record = &letters[0]["record"];
    assert_eq!(
        record["new"]["note"].as_str(),
        Some(long.as_str()),
        "{record}"
    );
    assert_eq!(row(&env, 1).await.unwrap().4.as_deref(), Some("n1"));
    assert!(daemon.terminate().success());
}

/// The same in the control table, whose items hold 400 KB: a rejected change of 380 KB is kept
/// whole (compressed), where before 2026-12-06's eighth stop a record over 360 KB was cut to
/// its length and sequence there, and the application's change survived nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_change_near_400_kb_is_kept_whole_in_the_control_table() {
    let (env, table) = setup("wbhugeletter", "").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    let long = "x".repeat(380_000);
    update_note(&env, &table, 1, &long).await;
    let config = env.config_path();
    let listed = || {
        let out = env.rowcast(&["deadletters", "list", "--config", config.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|line| line.starts_with('{'))
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|l| l["key"].as_str().is_some_and(|k| k.contains("ACC#1]")))
            .collect::<Vec<Value>>()
    };
    eventually("the dead letter", Duration::from_secs(30), || async {
        !listed().is_empty()
    })
    .await;
    converge(&env, &table).await;
    let letters = listed();
    assert_eq!(letters.len(), 1);
    let record = &letters[0]["record"];
    assert_eq!(
        record["new"]["note"].as_str().map(str::len),
        Some(long.len()),
        "{}",
        &record.to_string()[..200.min(record.to_string().len())]
    );
    assert_eq!(row(&env, 1).await.unwrap().4.as_deref(), Some("n1"));
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_positions_stop_the_daemon_with_the_cause() {
    let env = Env::new("wbunreadable").await;
    let table = env.table("views");
    env.sql("CREATE TABLE ledger (id INT PRIMARY KEY, region VARCHAR(8) NULL, status ENUM('open','closed','frozen') NOT NULL, email VARCHAR(40) NULL UNIQUE, note VARCHAR(40) NULL, day DATE NULL); INSERT INTO ledger VALUES (1, 'eu', 'open', NULL, 'n1', NULL)")
        .await;
    env.write_view("ledger.toml", &VIEW.replace("TABLE", &table));
    env.write_config("[checkpoint]\npath = \"state/checkpoint.json\"\ninterval_ms = 200\n");
    env.create_tables();
    // Positions that cannot be read: a definite failure of the write-back stage. rowcast does
    // not follow the stream blindly (it could replay history): it stops, naming the stage and
    // the cause, after draining what it read.
    let positions = env.dir.join("state/checkpoint.writeback.json");
    std::fs::create_dir_all(positions.parent().unwrap()).unwrap();
    std::fs::write(&positions, "{ torn").unwrap();
    let mut daemon = env.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "rowcast did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{status:?}");
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        log.contains("stage write-back") && log.contains("not readable"),
        "{}",
        common::tail(&daemon.log)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn application_writes_are_told_from_rowcasts_by_what_rowcast_wrote() {
    let (env, table) = setup("wbcopies", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    // The application read item 2, rowcast has written it since; the application's PutItem of
    // what it read (old version included) with a new note is still the application's.
    let read = stored(&env, &table, item("eu", 2)).await.unwrap();
    env.sql("UPDATE ledger SET email = 'e2-new@x' WHERE id = 2")
        .await;
    converge(&env, &table).await;
    put_copy_with_note(&env, &table, read, 2, "e2-new@x", "from-an-old-copy").await;
    // The application's own item next to the view's: its key parses with the templates but
    // not with the key column's type. Not write-back's: no dead letter, and it stays.
    put(
        &env,
        &table,
        &[
            ("pk", s("REGION#eu")),
            ("sk", s("ACC#1#SETTINGS")),
            ("theme", s("dark")),
        ],
    )
    .await;
    // A new item rejected (no status), then put again, complete: the row is inserted.
    put(
        &env,
        &table,
        &[
            ("pk", s("REGION#eu")),
            ("sk", s("ACC#60")),
            ("note", s("draft")),
        ],
    )
    .await;
    put(
        &env,
        &table,
        &[
            ("pk", s("REGION#eu")),
            ("sk", s("ACC#60")),
            ("status", s("open")),
            ("note", s("complete")),
        ],
    )
    .await;
    eventually(
        "the complete put to insert its row",
        Duration::from_secs(30),
        || async {
            row(&env, 60)
                .await
                .is_some_and(|r| r.4.as_deref() == Some("complete"))
        },
    )
    .await;
    caught_up(&env, &table).await;
    let settings = env
        .ddb
        .get_item()
        .table_name(&table)
        .set_key(Some(key(&[("pk", "REGION#eu"), ("sk", "ACC#1#SETTINGS")])))
        .send()
        .await
        .unwrap()
        .item;
    assert!(settings.is_some(), "the application's own item was removed");
    assert!(letters_for(&env, "SETTINGS").is_empty());
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(
        metric(
            &metrics,
            "rowcast_writeback_stream_records_total{outcome=\"other-view\""
        ) >= 1.0,
        "{metrics}"
    );
    assert!(daemon.terminate().success());
}

/// A restore marks its write with a `_restored` newer than the item held. An application that
/// read the restored item and puts its copy back after rowcast wrote the item again carries
/// that mark while rowcast's later write has none: before 2026-12-06's eighth stop the
/// copy was taken for a restore, its change never reached SQL and the item kept it.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_of_a_restored_item_put_after_rowcasts_next_write_is_the_applications() {
    let (env, table) = setup("wbrestoredcopy", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    // Rejected (not an ENUM label): rowcast restores the item from SQL, with a `_restored` mark.
    update(
        &env,
        &table,
        item("eu", 3),
        "SET #s = :s",
        &[(":s", s("bogus"))],
    )
    .await;
    let get = || async { stored(&env, &table, item("eu", 3)).await.unwrap() };
    eventually("the restore", Duration::from_secs(30), || async {
        let read = get().await;
        read.contains_key("_restored") && read.get("status") == Some(&s("open"))
    })
    .await;
    let read = get().await;
    env.sql("UPDATE ledger SET email = 'e3-new@x' WHERE id = 3")
        .await;
    converge(&env, &table).await;
    assert!(!get().await.contains_key("_restored"));
    put_copy_with_note(&env, &table, read, 3, "e3-new@x", "from-a-restored-copy").await;
    converge(&env, &table).await;
    assert!(daemon.terminate().success());
}

/// A second restore of an item whose row did not change since the first is written at the
/// version the item holds: only its `_restored` mark, moving forward, tells write-back it is
/// rowcast's. The mark was the clock's alone, so after a failover to a host whose clock is
/// behind the last one's (failpoint `restore.clock_behind`: an hour back, second restore) the
/// restore's record was taken for an application's update of the item to SQL's state (seen
/// failing: its outcome `unchanged` rather than `skipped-own`; with a newer SQL change still
/// in the binlog it would have been written over it). Now the mark is above the item's
/// whatever the clock says.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_made_on_a_clock_behind_the_last_ones_is_still_rowcasts() {
    let (env, table) = setup("wbrestoreclock", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "restore.clock_behind=error@2")]);
    daemon.wait_ready().await;
    converge(&env, &table).await;
    let get = || async { stored(&env, &table, item("eu", 3)).await.unwrap() };
    let mut marks = Vec::new();
    // Rejected twice (not an ENUM label): each time rowcast restores the item from SQL.
    for bogus in ["bogus", "bogus-again"] {
        update(
            &env,
            &table,
            item("eu", 3),
            "SET #s = :s",
            &[(":s", s(bogus))],
        )
        .await;
        eventually("the restore", Duration::from_secs(30), || async {
            let read = get().await;
            read.get("status") == Some(&s("open"))
                && read.get("_restored").is_some_and(|m| !marks.contains(m))
        })
        .await;
        marks.push(get().await["_restored"].clone());
    }
    eventually(
        "write-back read the stream",
        Duration::from_secs(30),
        || common::app::caught_up(&env, &table),
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    let outcome = |name: &str| {
        metric(
            &metrics,
            &format!("rowcast_writeback_stream_records_total{{outcome=\"{name}\""),
        )
    };
    assert_eq!(outcome("rejected"), 2.0, "{metrics}");
    assert_eq!(
        outcome("applied") + outcome("unchanged"),
        0.0,
        "a restore's record was taken for an application's change: {metrics}"
    );
    converge(&env, &table).await;
    assert!(daemon.terminate().success());
}

/// An application's rejected change that also sets `_restored` to something rowcast never
/// writes (here a string) is still undone: a mark that cannot be ordered is written over on
/// the version's condition alone. The first version of the mark above the item's never
/// wrote it (its condition cannot hold against a string: found by a review, seen failing).
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_change_with_a_mark_rowcast_never_writes_is_still_undone() {
    let (env, table) = setup("wbrestorebadmark", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    update(
        &env,
        &table,
        item("eu", 3),
        "SET #s = :s, #r = :r",
        &[(":s", s("bogus")), (":r", s("not a mark"))],
    )
    .await;
    converge(&env, &table).await;
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_sql_stores_as_it_was_leaves_the_item_following_sql() {
    let env = Env::new("wbnochange").await;
    let table = env.table("views");
    env.sql("CREATE TABLE prices (id INT PRIMARY KEY, price DECIMAL(10,2) NOT NULL); INSERT INTO prices VALUES (1, 1.23), (2, 5.00)")
        .await;
    env.write_view(
        "prices.toml",
        &format!("name = \"prices\"\ntable = \"{table}\"\nsource = \"{{DB}}.prices\"\n[key]\npk = \"PRICE#{{id}}\"\n[attributes]\nprice = \"price\"\n[writeback]\nenabled = true\nattributes = [\"price\"]\n"),
    );
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    let daemon = env.start().await;
    let expected = |first: &str, second: &str| {
        vec![
            json!({"pk": "PRICE#1", "price": common::dec(first)}),
            json!({"pk": "PRICE#2", "price": common::dec(second)}),
        ]
    };
    env.converge(&table, expected("1.23", "5.00"), Duration::from_secs(30))
        .await;
    // 1.234 rounds to the 1.23 SQL already holds: no row changes, no binlog event; the item
    // must not keep 1.234. 7.006 rounds to 7.01: the binlog brings that back.
    update(
        &env,
        &table,
        key(&[("pk", "PRICE#1")]),
        "SET price = :p",
        &[(":p", n("1.234"))],
    )
    .await;
    update(
        &env,
        &table,
        key(&[("pk", "PRICE#2")]),
        "SET price = :p",
        &[(":p", n("7.006"))],
    )
    .await;
    env.converge(&table, expected("1.23", "7.01"), Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}

/// A server whose `sql_mode` is not strict (MySQL 5.6's default, some managed-database
/// parameter groups) stores a value that does not fit with a warning: cut, clamped, or the
/// column's implicit default for a NULL. Write-back's session is strict whatever the server's
/// mode, so such a value is refused (a dead letter, the item written again from SQL) instead of
/// changing the row to a value no application wrote. On the code before, the note was cut to
/// 40 characters, committed as `applied`, and echoed to the view (found by a review).
#[tokio::test(flavor = "multi_thread")]
async fn a_value_that_does_not_fit_is_refused_also_where_the_server_is_not_strict() {
    let (env, table) = setup_in(
        Env::alone("wbnotstrict").await,
        "[dead_letter]\npath = \"dead.jsonl\"\n",
    )
    .await;
    let mut admin = env.admin.get_conn().await.unwrap();
    let mode: String =
        mysql_async::prelude::Queryable::query_first(&mut admin, "SELECT @@GLOBAL.sql_mode")
            .await
            .unwrap()
            .unwrap();
    mysql_async::prelude::Queryable::query_drop(&mut admin, "SET GLOBAL sql_mode = ''")
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(120), async {
        let daemon = env.start().await;
        converge(&env, &table).await;
        let long = "x".repeat(60);
        update_note(&env, &table, 1, &long).await;
        update_note(&env, &table, 2, "after").await;
        eventually(
            "the next record to reach SQL",
            Duration::from_secs(30),
            || async { row(&env, 2).await.unwrap().4.as_deref() == Some("after") },
        )
        .await;
        let note = row(&env, 1).await.unwrap().4;
        let letters = letters_for(&env, "ACC#1]");
        converge(&env, &table).await;
        assert!(daemon.terminate().success());
        (note, letters)
    })
    .await;
    mysql_async::prelude::Queryable::query_drop(
        &mut admin,
        format!("SET GLOBAL sql_mode = '{mode}'"),
    )
    .await
    .unwrap();
    let (note, letters) = outcome.expect("the test's steps in time");
    assert_eq!(note.as_deref(), Some("n1"), "the row was changed");
    assert_eq!(letters.len(), 1, "{letters:?}");
}

/// A key template of two text columns, one value holding the template's separator (tenant
/// `acme#eu` in `T#{tenant}#{user}`): an application's update and delete of the item reach the
/// row, found under whichever reading of the key has it. On the code before, write-back looked
/// only under the shortest reading (tenant `acme`, user `eu#bob`), found no row and rejected
/// the change into the dead letters (found by a review).
/// An item whose key the shortest reading cannot parse, because a value holds the separator
/// and a zero-padded placeholder follows it (`ORD#{region}#{id:08}` of region `eu#west`), is
/// still the view's: the change reaches the row. Before, the shortest reading (`eu`, then
/// `west#00000001` for the padded id) failed, the record was counted `other-view` and skipped,
/// its position saved: the application's change was dropped without a trace.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_whose_key_only_a_longer_reading_parses_reaches_sql() {
    let env = Env::new("wbpadded").await;
    let table = env.table("views");
    env.sql("CREATE TABLE orders (region VARCHAR(20) NOT NULL, id INT NOT NULL, status VARCHAR(10) NOT NULL, PRIMARY KEY (region, id)); INSERT INTO orders VALUES ('eu#west', 1, 'open'), ('eu', 2, 'open')")
        .await;
    env.write_view(
        "orders.toml",
        &"name = \"orders\"\ntable = \"TABLE\"\nsource = \"{DB}.orders\"\n[key]\npk = \"ORD#{region}#{id:08}\"\n[attributes]\nstatus = \"status\"\n[writeback]\nenabled = true\nattributes = [\"status\"]\n".replace("TABLE", &table),
    );
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    let daemon = env.start().await;
    let item = |pk: &str, status: &str| json!({"pk": pk, "status": status});
    env.converge(
        &table,
        vec![
            item("ORD#eu#west#00000001", "open"),
            item("ORD#eu#00000002", "open"),
        ],
        Duration::from_secs(30),
    )
    .await;
    // The application's own item, which only a longer reading parses: never the view's (it
    // does not name it), so nothing of it reaches SQL, and it stays. Written first: once the
    // updates below reached SQL, its record was handled.
    common::app::put(
        &env,
        &table,
        &[("pk", s("ORD#eu#AUDIT#00000001")), ("status", s("x"))],
    )
    .await;
    for pk in ["ORD#eu#west#00000001", "ORD#eu#00000002"] {
        update(
            &env,
            &table,
            key(&[("pk", pk)]),
            "SET #s = :s",
            &[(":s", s("closed"))],
        )
        .await;
    }
    eventually(
        "both updates to reach SQL",
        Duration::from_secs(30),
        || async {
            let statuses: Vec<String> = env.query("SELECT status FROM orders").await;
            statuses.iter().all(|s| s == "closed")
        },
    )
    .await;
    let rows: Vec<(String, i64)> = env.query("SELECT region, id FROM orders ORDER BY id").await;
    assert_eq!(rows, vec![("eu#west".into(), 1), ("eu".into(), 2)]);
    env.converge(
        &table,
        vec![
            item("ORD#eu#west#00000001", "closed"),
            item("ORD#eu#00000002", "closed"),
            item("ORD#eu#AUDIT#00000001", "x"),
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(dead_letters(&env).is_empty(), "{:?}", dead_letters(&env));
    assert!(daemon.terminate().success());
}

/// A new item (a lazy view's, not filled yet) whose key reads two ways, `T#acme#eu#bob` of the
/// row (`acme#eu`, `bob`), is taken under the reading that has the row: an insert over an
/// existing row, refused as for any key (a dead letter, the item put back to SQL's state).
/// Before, the insert went under the shortest reading and SQL got a second row (`acme`,
/// `eu#bob`).
#[tokio::test(flavor = "multi_thread")]
async fn a_new_item_whose_key_reads_two_ways_never_makes_a_second_row() {
    let env = Env::new("wbseparatornew").await;
    let table = env.table("views");
    env.sql("CREATE TABLE members (tenant VARCHAR(20) NOT NULL, user VARCHAR(20) NOT NULL, status VARCHAR(10) NOT NULL, PRIMARY KEY (tenant, user)); INSERT INTO members VALUES ('acme#eu', 'bob', 'open')")
        .await;
    env.write_view(
        "members.toml",
        &"name = \"members\"\ntable = \"TABLE\"\nsource = \"{DB}.members\"\n[key]\npk = \"T#{tenant}#{user}\"\n[attributes]\nstatus = \"status\"\n[fill]\nmode = \"lazy\"\n[writeback]\nenabled = true\nattributes = [\"status\"]\n".replace("TABLE", &table),
    );
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    let daemon = env.start().await;
    started_at_latest(&daemon).await;
    common::app::put(
        &env,
        &table,
        &[("pk", s("T#acme#eu#bob")), ("status", s("closed"))],
    )
    .await;
    let members = || {
        env.query::<(String, String, String)>(
            "SELECT tenant, user, status FROM members ORDER BY tenant, user",
        )
    };
    eventually(
        "the record to be refused",
        Duration::from_secs(30),
        || async { !dead_letters(&env).is_empty() },
    )
    .await;
    env.converge(
        &table,
        vec![json!({"pk": "T#acme#eu#bob", "status": "open"})],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        members().await,
        vec![("acme#eu".to_string(), "bob".to_string(), "open".to_string())]
    );
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_value_holding_the_separator_is_written_back() {
    let env = Env::new("wbseparator").await;
    let table = env.table("views");
    env.sql("CREATE TABLE members (tenant VARCHAR(20) NOT NULL, user VARCHAR(20) NOT NULL, status VARCHAR(10) NOT NULL, PRIMARY KEY (tenant, user)); INSERT INTO members VALUES ('acme#eu', 'bob', 'open'), ('acme', 'ann', 'open')")
        .await;
    env.write_view(
        "members.toml",
        &"name = \"members\"\ntable = \"TABLE\"\nsource = \"{DB}.members\"\n[key]\npk = \"T#{tenant}#{user}\"\n[attributes]\nstatus = \"status\"\n[writeback]\nenabled = true\nattributes = [\"status\"]\n".replace("TABLE", &table),
    );
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    let daemon = env.start().await;
    let members = || {
        env.query::<(String, String, String)>(
            "SELECT tenant, user, status FROM members ORDER BY tenant, user",
        )
    };
    env.converge(
        &table,
        vec![
            json!({"pk": "T#acme#eu#bob", "status": "open"}),
            json!({"pk": "T#acme#ann", "status": "open"}),
        ],
        Duration::from_secs(30),
    )
    .await;
    update(
        &env,
        &table,
        key(&[("pk", "T#acme#eu#bob")]),
        "SET #s = :s",
        &[(":s", s("closed"))],
    )
    .await;
    eventually(
        "the update to reach the row",
        Duration::from_secs(30),
        || async {
            members()
                .await
                .iter()
                .any(|m| m.0 == "acme#eu" && m.2 == "closed")
        },
    )
    .await;
    delete(&env, &table, key(&[("pk", "T#acme#eu#bob")])).await;
    eventually(
        "the delete to reach the row",
        Duration::from_secs(30),
        || async { members().await.len() == 1 },
    )
    .await;
    assert_eq!(
        members().await,
        vec![("acme".to_string(), "ann".to_string(), "open".to_string())]
    );
    assert!(dead_letters(&env).is_empty(), "{:?}", dead_letters(&env));
    assert!(daemon.terminate().success());
}

const WIDE_VIEW: &str = r#"
name = "wide"
table = "TABLE"
source = "{DB}.wide"

[key]
pk = "W#{id}"

[attributes]
body = "body"

[writeback]
enabled = true
attributes = ["body"]
"#;

/// An item within a few bytes of DynamoDB's 400 KB limit, on a write-back view: its row's
/// delete is a marked removal, whose mark (`_removing`, a new `_version`) would take the item
/// over the limit. Before 2026-12-07's fifth stop DynamoDB refused the mark, the removal became a
/// `refused` dead letter, and the deleted row's item stayed for good (found by a review).
#[tokio::test(flavor = "multi_thread")]
async fn an_item_at_the_size_limit_is_removed_when_its_row_is_deleted() {
    let env = Env::new("wbsizelimit").await;
    let table = env.table("views");
    env.sql("CREATE TABLE wide (id INT PRIMARY KEY, body LONGTEXT NOT NULL)")
        .await;
    env.write_view("wide.toml", &WIDE_VIEW.replace("TABLE", &table));
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    let daemon = env.start().await;
    // Bodies of consecutive lengths across the limit: the items of some are within a few bytes
    // of it; the longest are too large to write at all (dead letters, no item).
    const ROWS: usize = 80;
    for id in 0..ROWS {
        env.sql(&format!(
            "INSERT INTO wide VALUES ({id}, REPEAT('x', {}))",
            400 * 1024 - 100 + id
        ))
        .await;
    }
    let written = || async {
        let (_, metrics) = daemon.get("/metrics").await;
        metric(
            &metrics,
            "rowcast_items_written_total{op=\"put\",view=\"wide\"}",
        )
    };
    eventually(
        "every row to be written or a dead letter",
        Duration::from_secs(60),
        || async { written().await as usize + dead_letters(&env).len() >= ROWS },
    )
    .await;
    let items = env.scan(&table).await.len();
    assert!(items > 0 && items < ROWS, "{items} items of {ROWS} rows");
    env.sql("DELETE FROM wide").await;
    env.converge(&table, vec![], Duration::from_secs(60)).await;
    let refused: Vec<Value> = dead_letters(&env)
        .into_iter()
        .filter(|l| l["reason_kind"] != "too_large")
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    // Write-back took every record, the emptied marks included, for rowcast's own.
    caught_up(&env, &table).await;
    let (_, metrics) = daemon.get("/metrics").await;
    for outcome in ["applied", "unchanged", "rejected"] {
        let prefix = format!("rowcast_writeback_stream_records_total{{outcome=\"{outcome}\"");
        assert_eq!(metric(&metrics, &prefix), 0.0, "{outcome}: {metrics}");
    }
    assert!(
        metric(
            &metrics,
            "rowcast_writeback_stream_records_total{outcome=\"skipped-own\""
        ) > 0.0
    );
    assert!(daemon.terminate().success());
}

/// An application's DeleteItem removes the row only while the row still holds what the deleted
/// item showed (or what write-back itself last left in it). Read after SQL deleted the row and
/// inserted another under the same key (3), or changed the row (4), the delete is rejected: a
/// dead letter, and the item follows SQL again. A row SQL left alone (5) is deleted. Before
/// 2026-12-07's sixth stop rows 3 and 4 were deleted: the new row 3 and SQL's change of 4 were
/// lost (found by a review of 2026-12-07; seen failing).
#[tokio::test(flavor = "multi_thread")]
async fn an_applications_delete_never_removes_a_row_sql_changed_since_the_item() {
    let (env, table) = setup("wbdelrace", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.spawn_with(&[("ROWCAST_FAILPOINTS", "writeback.before_apply=sleep3000@*")]);
    daemon.wait_ready().await;
    converge(&env, &table).await;
    for id in [3, 4, 5] {
        delete(&env, &table, item("eu", id)).await;
    }
    eventually(
        "the first delete held before SQL",
        Duration::from_secs(30),
        || async { daemon.logged("failpoint writeback.before_apply") >= 1 },
    )
    .await;
    env.sql(
        "DELETE FROM ledger WHERE id = 3; INSERT INTO ledger VALUES (3, 'eu', 'open', 'e3b@x', 'second', NULL); UPDATE ledger SET note = 'sql-4' WHERE id = 4",
    )
    .await;
    eventually("row 5 deleted", Duration::from_secs(60), || async {
        row(&env, 5).await.is_none()
    })
    .await;
    caught_up(&env, &table).await;
    assert_eq!(
        row(&env, 3).await,
        Some((
            3,
            Some("eu".into()),
            "open".into(),
            Some("e3b@x".into()),
            Some("second".into())
        )),
        "the row inserted after the item was deleted is gone"
    );
    assert_eq!(row(&env, 4).await.unwrap().4.as_deref(), Some("sql-4"));
    assert_eq!(letters_for(&env, "ACC#4").len(), 1);
    let letter = &letters_for(&env, "ACC#3")[0];
    assert!(
        letter["reason"].as_str().unwrap().contains("changed"),
        "{letter}"
    );
    converge(&env, &table).await;
    assert!(letters_for(&env, "ACC#5").is_empty());
    assert!(daemon.terminate().success());
}

/// An application's change and then its delete of the same item, both read before rowcast
/// wrote the change back into the item: the row holds what the change made of it (here a
/// timestamp the server sets on update, which the deleted item never showed), and the delete
/// still removes it.
#[tokio::test(flavor = "multi_thread")]
async fn an_applications_change_then_delete_removes_the_row() {
    let env = Env::new("wbupdel").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE memo (id INT PRIMARY KEY, note VARCHAR(40) NULL, price DECIMAL(8,2) NULL, touched TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
    )
    .await;
    env.sql("INSERT INTO memo (id, note, price) VALUES (1, 'a', 1.00), (2, 'b', 2.00)")
        .await;
    env.write_view(
        "memo.toml",
        &format!(
            "name = \"memo\"\ntable = \"{table}\"\nsource = \"{{DB}}.memo\"\n\n[key]\npk = \"MEMO#{{id}}\"\n\n[writeback]\nenabled = true\nattributes = [\"note\", \"price\"]\n"
        ),
    );
    env.write_config("[dead_letter]\npath = \"dead.jsonl\"\n");
    env.create_tables();
    let daemon = env.start().await;
    let memo = |id: i64| key(&[("pk", &format!("MEMO#{id}"))]);
    eventually("both items", Duration::from_secs(30), || async {
        stored(&env, &table, memo(1)).await.is_some()
            && stored(&env, &table, memo(2)).await.is_some()
    })
    .await;
    // 1: a new note (the server moves `touched`); 2: a price SQL rounds (1.234 → 1.23).
    update(&env, &table, memo(1), "SET note = :n", &[(":n", s("z"))]).await;
    delete(&env, &table, memo(1)).await;
    update(
        &env,
        &table,
        memo(2),
        "SET price = :p",
        &[(":p", n("1.234"))],
    )
    .await;
    delete(&env, &table, memo(2)).await;
    eventually("both rows deleted", Duration::from_secs(60), || async {
        let left: Vec<i64> = env.query("SELECT id FROM memo").await;
        left.is_empty()
    })
    .await;
    assert!(dead_letters(&env).is_empty(), "{:?}", dead_letters(&env));
    assert!(daemon.terminate().success());
}

/// A row that makes no item now (here: its view halted, a column it reads dropped) is not the
/// row behind the item the application deleted: the delete is refused, the row stays (found by
/// the review of the change above: the comparison was skipped, and the row deleted; seen
/// failing).
#[tokio::test(flavor = "multi_thread")]
async fn an_applications_delete_of_a_row_that_makes_no_item_now_is_refused() {
    let (env, table) = setup("wbdelhalt", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    env.sql("ALTER TABLE ledger DROP COLUMN day").await;
    delete(&env, &table, item("eu", 6)).await;
    eventually("the delete handled", Duration::from_secs(60), || async {
        !letters_for(&env, "ACC#6").is_empty() || row(&env, 6).await.is_none()
    })
    .await;
    assert!(row(&env, 6).await.is_some(), "the row was deleted");
    let letter = &letters_for(&env, "ACC#6")[0];
    assert!(
        letter["reason"].as_str().unwrap().contains("makes no item"),
        "{letter}"
    );
    assert!(daemon.terminate().success());
}

/// An application that copies an item rowcast wrote to another key (a `GetItem` and a
/// `PutItem` of what it read under a new key: cloning an account) copies its `_version`.
/// A new item, or an item whose version is older than the copied one, then looked like
/// rowcast's own write, and the application's change never reached SQL, silently (before
/// 2026-12-07's seventh stop). rowcast's `_origin` binds each version it writes to the item's
/// key, and a copy under another key does not match.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_of_an_item_put_under_another_key_is_the_applications() {
    let (env, table) = setup("wbkeycopy", "[dead_letter]\npath = \"dead.jsonl\"\n").await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    // Item 2's version is the newest of the view's: copied over item 4, it is above item 4's.
    env.sql("UPDATE ledger SET note = 'n2-new' WHERE id = 2")
        .await;
    converge(&env, &table).await;
    let read = stored(&env, &table, item("eu", 2)).await.unwrap();
    let copy_to = |id: i64, email: &str, note: &str| {
        let mut copy = read.clone();
        copy.insert("sk".into(), s(&format!("ACC#{id}")));
        copy.insert("email".into(), s(email));
        copy.insert("note".into(), s(note));
        copy
    };
    for (id, email, note) in [(70, "e70@x", "cloned"), (4, "e4@x", "copied-over")] {
        env.ddb
            .put_item()
            .table_name(&table)
            .set_item(Some(copy_to(id, email, note)))
            .send()
            .await
            .unwrap();
    }
    eventually(
        "both copies to reach SQL",
        Duration::from_secs(30),
        || async {
            let note = |id| {
                let env = &env;
                async move { row(env, id).await.and_then(|r| r.4) }
            };
            note(70).await.as_deref() == Some("cloned")
                && note(4).await.as_deref() == Some("copied-over")
        },
    )
    .await;
    converge(&env, &table).await;
    assert!(
        letters_for(&env, "ACC#70").is_empty(),
        "{:?}",
        dead_letters(&env)
    );
    // A copy SQL refuses (no such status) is rejected, and the item, which no row makes, is
    // removed. Its guard took only an item without a version for a rejected one, and the
    // copy, which has one, stayed (found by the review of this mend, seen failing).
    let mut bad = copy_to(71, "e71@x", "refused");
    bad.insert("status".into(), s("bogus"));
    env.ddb
        .put_item()
        .table_name(&table)
        .set_item(Some(bad))
        .send()
        .await
        .unwrap();
    eventually(
        "the rejected copy's letter, and its item removed",
        Duration::from_secs(30),
        || async {
            !letters_for(&env, "ACC#71").is_empty()
                && stored(&env, &table, item("eu", 71)).await.is_none()
        },
    )
    .await;
    assert!(row(&env, 71).await.is_none());
    converge(&env, &table).await;
    assert!(daemon.terminate().success());
}

/// An application's change that write-back rejects (no such status), then its DeleteItem of the
/// same item, both made before write-back read either: the delete's old image holds the
/// rejected change, which the row never had. The row still makes what the item showed before
/// that change, so the delete removes it. Before 2026-12-07's seventh stop the delete was
/// refused as a change of SQL's the application never saw (a second dead letter, and the
/// item came back).
#[tokio::test(flavor = "multi_thread")]
async fn an_applications_delete_right_after_its_rejected_change_removes_the_row() {
    let (env, table) = setup("wbrejectdel", RACY).await;
    let daemon = env.start().await;
    converge(&env, &table).await;
    started_at_latest(&daemon).await;
    update(
        &env,
        &table,
        item("eu", 5),
        "SET #s = :s",
        &[(":s", s("bogus"))],
    )
    .await;
    delete(&env, &table, item("eu", 5)).await;
    eventually("row 5 deleted", Duration::from_secs(60), || async {
        row(&env, 5).await.is_none()
    })
    .await;
    converge(&env, &table).await;
    let letters = letters_for(&env, "ACC#5");
    assert_eq!(letters.len(), 1, "only the rejected change: {letters:?}");
    assert!(daemon.terminate().success());
}
