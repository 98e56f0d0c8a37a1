//! Text columns in charsets other than UTF-8 decode alike from the binlog (raw bytes in the
//! column's charset, turned into text by rowcast) and from SQL (the backfill's reads, converted
//! by the server to utf8mb4): one row makes one item, whichever way it came.
//!
//! MySQL's `latin1` is cp1252 (0x80 is '€'; its five undefined bytes are U+0081, U+008D,
//! U+008F, U+0090 and U+009D); the other charsets have their own tables, compared here with the
//! server's conversions character by character.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Env;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use rowcast::source::decode::decode_value;
use rowcast::view::row::ColumnKind;
use rowcast::view::value::Cell;
use serde_json::{json, Value};

const WORDS: &str = r#"
name = "words"
table = "TABLE"
source = "{DB}.words"
[key]
pk = "W#{id}"
[attributes]
body = "body"
other = "other"
"#;

async fn expected_words(env: &Env) -> Vec<Value> {
    let rows: Vec<(String, String, String)> = env.query("SELECT id, body, other FROM words").await;
    rows.into_iter()
        .map(|(id, body, other)| json!({"pk": format!("W#{id}"), "body": body, "other": other}))
        .collect()
}

/// The issue's case: '€' (and other cp1252 letters) in a latin1 primary key. The rows backfilled
/// (SQL) and the changes read from the binlog must name the same items: an UPDATE of a
/// backfilled row updates its item, a DELETE removes it, a key change moves it.
#[tokio::test(flavor = "multi_thread")]
async fn a_latin1_table_with_euro_in_a_key_column() {
    let env = Env::new("charsetlatin1").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE words (id VARCHAR(20) CHARACTER SET latin1 PRIMARY KEY, \
         body VARCHAR(40) CHARACTER SET latin1 NOT NULL, \
         other VARCHAR(40) CHARACTER SET cp1250 NOT NULL)",
    )
    .await;
    env.sql(
        "INSERT INTO words VALUES ('€uro', 'ŠšŽž', 'ŠšŽž ő'), ('per‰mille', 'é‰', 'ďábel'), \
         ('old€', 'before €', 'před'), ('gone€', 'Œuvre', 'Łódź'), \
         (_latin1 0x7881, _latin1 0x8D8F909D, _cp1250 0x7981)",
    )
    .await;
    env.write_view("words.toml", &WORDS.replace("TABLE", &table));
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    env.converge(&table, expected_words(&env).await, Duration::from_secs(30))
        .await;

    env.sql(
        "INSERT INTO words VALUES ('new€', '‰ ŠšŽž é', 'Žluťoučký kůň'), \
         (_latin1 0x7A8F90, _latin1 0x80819D, _cp1250 0x7A98)",
    )
    .await;
    env.sql("UPDATE words SET body = 'after € ž', other = 'potom ř' WHERE id = 'old€'")
        .await;
    env.sql("UPDATE words SET body = 'ŽŸ' WHERE id = _latin1 0x7881")
        .await;
    env.sql("UPDATE words SET id = 'moved‰€' WHERE id = 'per‰mille'")
        .await;
    env.sql("DELETE FROM words WHERE id = 'gone€'").await;
    let expected = expected_words(&env).await;
    assert_eq!(expected.len(), 6, "{expected:?}");
    env.converge(&table, expected, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}

/// Columns of the multi-byte, UTF-16/32 and other single-byte charsets, one text each (with the
/// characters whose tables differ between MySQL and the WHATWG encodings: '〜' in the Japanese
/// charsets, kana in big5), backfilled and then changed through the binlog.
const TEXTS: [(&str, &str); 27] = [
    ("latin2", "Łódź Žluťoučký"),
    ("cp1250", "Žluťoučký kůň €"),
    ("cp1251", "Привет, мир! №"),
    ("cp1256", "مرحبا بالعالم"),
    ("cp1257", "Ąčęėįšųūž „“"),
    ("koi8r", "Привет, мир!"),
    ("koi8u", "Україна ґ •"),
    ("greek", "Καλημέρα κόσμε"),
    ("hebrew", "שלום עולם"),
    ("latin7", "Ąčęėįšųūž ’"),
    ("latin5", "İstanbul ğüşöç"),
    ("cp866", "Привет ²ⁿ"),
    ("macroman", "café ∑ ≠ π"),
    ("tis620", "ภาษาไทย"),
    ("gbk", "中文汉字，龘"),
    ("gb2312", "简体中文・"),
    ("big5", "中文繁體 あア Жж ①"),
    ("sjis", "日本語のテスト〜"),
    ("cp932", "日本語①ｱ～"),
    ("ujis", "日本語〜ｱ"),
    ("eucjpms", "日本語①"),
    ("euckr", "한국어 텍스트"),
    ("ucs2", "Ωü€"),
    ("utf16", "ü😀€"),
    ("utf16le", "ü😀€"),
    ("utf32", "ü😀€"),
    ("utf8mb4", "ü😀€"),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_supported_charset_decodes_alike_from_backfill_and_binlog() {
    let env = Env::new("charsetall").await;
    let table = env.table("views");
    let columns: Vec<String> = TEXTS
        .iter()
        .map(|(cs, _)| format!("c_{cs} VARCHAR(40) CHARACTER SET {cs} NOT NULL"))
        .collect();
    env.sql(&format!(
        "CREATE TABLE texts (id INT PRIMARY KEY, {})",
        columns.join(", ")
    ))
    .await;
    let values = |id: i32, reversed: bool| {
        let texts: Vec<String> = TEXTS
            .iter()
            .map(|(_, text)| {
                let text: String = if reversed {
                    text.chars().rev().collect()
                } else {
                    text.to_string()
                };
                format!("'{text}'")
            })
            .collect();
        format!("({id}, {})", texts.join(", "))
    };
    env.sql(&format!(
        "INSERT INTO texts VALUES {}, {}",
        values(1, false),
        values(2, false)
    ))
    .await;
    let attributes: Vec<String> = TEXTS
        .iter()
        .map(|(cs, _)| format!("c_{cs} = \"c_{cs}\""))
        .collect();
    env.write_view(
        "texts.toml",
        &format!(
            "name = \"texts\"\ntable = \"{table}\"\nsource = \"{{DB}}.texts\"\n[key]\npk = \"T#{{id}}\"\n[attributes]\n{}\n",
            attributes.join("\n")
        ),
    );
    env.write_config("");
    env.create_tables();
    let daemon = env.start().await;
    env.converge(&table, expected_texts(&env).await, Duration::from_secs(30))
        .await;
    // Through the binlog: a new row, a changed row, and one the same as the backfilled row 2.
    env.sql(&format!(
        "INSERT INTO texts VALUES {}, {}",
        values(3, false),
        values(4, true)
    ))
    .await;
    let sets: Vec<String> = TEXTS
        .iter()
        .map(|(cs, text)| format!("c_{cs} = '{}'", text.chars().rev().collect::<String>()))
        .collect();
    env.sql(&format!(
        "UPDATE texts SET {} WHERE id = 1",
        sets.join(", ")
    ))
    .await;
    let expected = expected_texts(&env).await;
    assert_eq!(expected.len(), 4);
    env.converge(&table, expected, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}

async fn expected_texts(env: &Env) -> Vec<Value> {
    let names: Vec<String> = TEXTS.iter().map(|(cs, _)| format!("c_{cs}")).collect();
    let rows: Vec<mysql_async::Row> = env
        .query(&format!("SELECT id, {} FROM texts", names.join(", ")))
        .await;
    rows.into_iter()
        .map(|row| {
            let id: i64 = row.get(0).unwrap();
            let mut item = json!({"pk": format!("T#{id}")});
            for (i, name) in names.iter().enumerate() {
                let text: String = row.get(i + 1).unwrap();
                item[name] = json!(text);
            }
            item
        })
        .collect()
}

/// What rowcast makes of `bytes` read from the binlog in a column of collation `id`.
fn binlog_text(bytes: &[u8], id: u16) -> String {
    let value = BinlogValue::Value(mysql_async::Value::Bytes(bytes.to_vec()));
    match decode_value(&ColumnKind::Text, &value, id) {
        Ok(Cell::Text(text)) => text,
        other => panic!("{bytes:02X?} in collation {id}: {other:?}"),
    }
}

/// The collation ids of each charset, as the server lists them.
async fn collation_ids(env: &Env) -> BTreeMap<String, Vec<u16>> {
    let mut conn = env.admin.get_conn().await.unwrap();
    // MariaDB 10.10+ lists some collations' ids only here; older servers in COLLATIONS.
    let rows: Vec<(u16, String)> = match conn
        .query(
            "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY \
             WHERE ID IS NOT NULL",
        )
        .await
    {
        Ok(rows) => rows,
        Err(_) => conn
            .query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
            .await
            .unwrap(),
    };
    let mut ids: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for (id, charset) in rows {
        ids.entry(charset).or_default().push(id);
    }
    ids
}

/// The codes of `codes` (a SELECT of one binary column `code`) that a column of `charset` stores
/// as they are (the server refuses ill-formed ones), with the text SQL reads from that column.
async fn server_texts(env: &Env, charset: &str, codes: &str) -> Vec<(Vec<u8>, String)> {
    let table = format!("codes_{charset}");
    env.sql(&format!(
        "SET SESSION sql_mode = ''; DROP TABLE IF EXISTS {table}; \
         CREATE TABLE {table} (code VARBINARY(16), text VARCHAR(8) CHARACTER SET {charset}); \
         INSERT INTO {table} SELECT code, code FROM ({codes}) AS codes"
    ))
    .await;
    let rows: Vec<(Vec<u8>, Vec<u8>)> = env
        .query(&format!(
            "SELECT code, text FROM {table} WHERE CAST(text AS BINARY) = code"
        ))
        .await;
    rows.into_iter()
        .map(|(code, text)| (code, String::from_utf8(text).unwrap()))
        .collect()
}

const SINGLE: [&str; 15] = [
    "latin1", "latin2", "cp1250", "cp1251", "cp1256", "cp1257", "koi8r", "koi8u", "greek",
    "hebrew", "latin7", "latin5", "cp866", "macroman", "tis620",
];
const MULTI: [&str; 8] = [
    "gbk", "gb2312", "big5", "sjis", "cp932", "ujis", "eucjpms", "euckr",
];

/// Every code that a column of a supported charset stores (each byte of the single-byte
/// charsets; each byte, pair and EUC-JP triple of the multi-byte ones that the server accepts as
/// well-formed, mapped or not) decodes from the binlog as SQL reads it, under every collation id
/// of the charset.
#[tokio::test(flavor = "multi_thread")]
async fn every_character_decodes_as_the_server_converts_it() {
    let env = Env::new("charsetbytes").await;
    let ids = collation_ids(&env).await;
    let mut mismatches = Vec::new();
    let mut check = |charset: &str, samples: &[(Vec<u8>, String)]| {
        let charset_ids = ids
            .get(charset)
            .unwrap_or_else(|| panic!("no {charset} here"));
        for (code, server) in samples {
            for &id in charset_ids {
                let ours = binlog_text(code, id);
                if &ours != server {
                    mismatches.push(format!(
                        "{charset} ({id}) {code:02X?}: server {server:?}, binlog {ours:?}"
                    ));
                }
            }
        }
        let unmapped = samples.iter().filter(|(_, text)| text == "?").count();
        eprintln!(
            "{charset}: {} codes ({unmapped} read as '?'), {} collation ids",
            samples.len(),
            charset_ids.len()
        );
    };
    let bytes = "SELECT UNHEX(LPAD(HEX(b.seq), 2, '0')) AS code FROM seq_0_to_255 b";
    for charset in SINGLE {
        let samples = server_texts(&env, charset, bytes).await;
        assert_eq!(samples.len(), 256);
        check(charset, &samples);
    }
    let pairs = "SELECT CONCAT(UNHEX(LPAD(HEX(a.seq), 2, '0')), UNHEX(LPAD(HEX(b.seq), 2, '0'))) \
                 AS code FROM seq_129_to_254 a, seq_64_to_254 b";
    let triples = "SELECT CONCAT(0x8F, UNHEX(LPAD(HEX(a.seq), 2, '0')), \
                   UNHEX(LPAD(HEX(b.seq), 2, '0'))) AS code FROM seq_161_to_254 a, seq_161_to_254 b";
    for charset in MULTI {
        let mut samples = server_texts(&env, charset, bytes).await;
        samples.extend(server_texts(&env, charset, pairs).await);
        if charset == "ujis" || charset == "eucjpms" {
            samples.extend(server_texts(&env, charset, triples).await);
        }
        assert!(samples.len() > 8000, "{charset}: {} codes", samples.len());
        check(charset, &samples);
    }
    // The wide charsets: a sample with a character outside the BMP (not in ucs2).
    for (charset, text) in [
        ("ucs2", "aü€Ω"),
        ("utf16", "aü€😀"),
        ("utf16le", "aü€😀"),
        ("utf32", "aü€😀"),
        ("utf8mb3", "aü€"),
        ("utf8mb4", "aü€😀"),
    ] {
        let samples = server_texts(
            &env,
            charset,
            &format!("SELECT CAST(CONVERT(_utf8mb4 '{text}' USING {charset}) AS BINARY) AS code"),
        )
        .await;
        assert_eq!(samples.len(), 1);
        check(charset, &samples);
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first 40:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(40)].join("\n")
    );
}

/// ENUM and SET labels in a latin1 column, with letters outside ASCII: the binlog's table map
/// carries them in latin1, SQL gives them as UTF-8; one row makes one item either way. On the
/// code before: the binlog's labels were read as UTF-8 ('caf\u{FFFD}'), so a change of a
/// backfilled row moved its item to another key.
#[tokio::test(flavor = "multi_thread")]
async fn latin1_enum_and_set_labels_decode_alike() {
    let env = Env::new("charsetlabels").await;
    let table = env.table("views");
    env.sql(
        "CREATE TABLE labels (id INT PRIMARY KEY, \
         e ENUM('café', 'naïve', 'plain') CHARACTER SET latin1 NOT NULL, \
         s SET('über', 'äpfel', 'x') CHARACTER SET latin1 NOT NULL)",
    )
    .await;
    env.sql("INSERT INTO labels VALUES (1, 'café', 'über'), (2, 'plain', 'x')")
        .await;
    env.write_view(
        "labels.toml",
        &format!("name = \"labels\"\ntable = \"{table}\"\nsource = \"{{DB}}.labels\"\n[key]\npk = \"L#{{id}}\"\nsk = \"{{e}}/{{s}}\"\n[attributes]\nid = \"id\"\n"),
    );
    env.write_config("");
    env.create_tables();
    let expected = || async {
        let rows: Vec<(i64, String, String)> = env
            .query("SELECT id, CAST(e AS CHAR), CAST(s AS CHAR) FROM labels")
            .await;
        rows.into_iter()
            .map(|(id, e, s)| json!({"pk": format!("L#{id}"), "sk": format!("{e}/{s}"), "id": id}))
            .collect::<Vec<Value>>()
    };
    let daemon = env.start().await;
    env.converge(&table, expected().await, Duration::from_secs(30))
        .await;
    env.sql("UPDATE labels SET e = 'naïve', s = 'über,äpfel' WHERE id = 1; INSERT INTO labels VALUES (3, 'café', 'äpfel')")
        .await;
    env.converge(&table, expected().await, Duration::from_secs(30))
        .await;
    assert!(daemon.terminate().success());
}
