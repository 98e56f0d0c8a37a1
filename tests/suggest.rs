//! `rowcast suggest` on real schemas: the demo's (no declared foreign keys: read from column
//! names) and a 17-table one with composite keys, self-references, many-to-many link tables, a
//! table without a primary key and one with a cascading foreign key (both reported, not
//! guessed). Each time the output passes `check --connect` unchanged, `tables create` makes
//! the table and its GSIs, `rowcast run` on it converges, and `rowcast verify` finds the views
//! equal to the source after changes that go through the joins.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{code_and_output, mysql_admin_url, Env};

const LIBRARY: &str = "
CREATE TABLE authors (id INT PRIMARY KEY, name VARCHAR(80) NOT NULL, email VARCHAR(80) NULL UNIQUE,
  mentor_id INT NULL, CONSTRAINT author_mentor FOREIGN KEY (mentor_id) REFERENCES authors (id));
CREATE TABLE publishers (id SMALLINT UNSIGNED PRIMARY KEY, name VARCHAR(80) NOT NULL);
CREATE TABLE books (id INT PRIMARY KEY, publisher_id SMALLINT UNSIGNED NOT NULL, title VARCHAR(120) NOT NULL,
  isbn CHAR(13) NOT NULL UNIQUE, price DECIMAL(8,2) NOT NULL, published DATE NULL, KEY by_published (published),
  CONSTRAINT book_publisher FOREIGN KEY (publisher_id) REFERENCES publishers (id));
CREATE TABLE book_authors (book_id INT NOT NULL, author_id INT NOT NULL, PRIMARY KEY (book_id, author_id),
  CONSTRAINT ba_book FOREIGN KEY (book_id) REFERENCES books (id),
  CONSTRAINT ba_author FOREIGN KEY (author_id) REFERENCES authors (id));
CREATE TABLE genres (code VARCHAR(12) PRIMARY KEY, label VARCHAR(40) NOT NULL);
CREATE TABLE book_genres (book_id INT NOT NULL, genre_code VARCHAR(12) NOT NULL, PRIMARY KEY (book_id, genre_code),
  CONSTRAINT bg_book FOREIGN KEY (book_id) REFERENCES books (id),
  CONSTRAINT bg_genre FOREIGN KEY (genre_code) REFERENCES genres (code));
CREATE TABLE members (id BIGINT PRIMARY KEY, name VARCHAR(80) NOT NULL, tier ENUM('basic','plus') NOT NULL,
  referrer_id BIGINT NULL, prefs JSON NULL,
  CONSTRAINT member_referrer FOREIGN KEY (referrer_id) REFERENCES members (id));
CREATE TABLE loans (member_id BIGINT NOT NULL, book_id INT NOT NULL, loaned_at DATETIME NOT NULL,
  returned_at DATETIME NULL, PRIMARY KEY (member_id, book_id, loaned_at),
  CONSTRAINT loan_member FOREIGN KEY (member_id) REFERENCES members (id),
  CONSTRAINT loan_book FOREIGN KEY (book_id) REFERENCES books (id));
CREATE TABLE reviews (id INT PRIMARY KEY, book_id INT NOT NULL, member_id BIGINT NOT NULL, stars TINYINT NOT NULL,
  body TEXT NULL, KEY by_stars (stars),
  CONSTRAINT review_book FOREIGN KEY (book_id) REFERENCES books (id),
  CONSTRAINT review_member FOREIGN KEY (member_id) REFERENCES members (id));
CREATE TABLE branches (id INT PRIMARY KEY, name VARCHAR(60) NOT NULL, flags BIT(8) NOT NULL,
  features SET('wifi','cafe','parking') NOT NULL DEFAULT '');
CREATE TABLE copies (branch_id INT NOT NULL, copy_no SMALLINT NOT NULL, book_id INT NOT NULL,
  PRIMARY KEY (branch_id, copy_no),
  CONSTRAINT copy_branch FOREIGN KEY (branch_id) REFERENCES branches (id),
  CONSTRAINT copy_book FOREIGN KEY (book_id) REFERENCES books (id));
CREATE TABLE events_log (at DATETIME NOT NULL, message VARCHAR(200) NOT NULL);
CREATE TABLE wishlist (id INT PRIMARY KEY, member_id BIGINT NOT NULL,
  CONSTRAINT wish_member FOREIGN KEY (member_id) REFERENCES members (id) ON DELETE CASCADE);
CREATE TABLE settings (name VARCHAR(40) PRIMARY KEY, value VARCHAR(200) NOT NULL);
CREATE TABLE featured (publisher_id SMALLINT UNSIGNED NOT NULL, book_id INT NOT NULL, PRIMARY KEY (publisher_id, book_id),
  CONSTRAINT feat_publisher FOREIGN KEY (publisher_id) REFERENCES publishers (id),
  CONSTRAINT feat_book FOREIGN KEY (book_id) REFERENCES books (id));
CREATE TABLE follows (follower_id BIGINT NOT NULL, followee_id BIGINT NOT NULL, PRIMARY KEY (follower_id, followee_id),
  CONSTRAINT f_follower FOREIGN KEY (follower_id) REFERENCES members (id),
  CONSTRAINT f_followee FOREIGN KEY (followee_id) REFERENCES members (id));
CREATE TABLE blocks (blocker_id BIGINT NOT NULL, blocked_id BIGINT NOT NULL, PRIMARY KEY (blocker_id, blocked_id),
  CONSTRAINT b_blocker FOREIGN KEY (blocker_id) REFERENCES members (id),
  CONSTRAINT b_blocked FOREIGN KEY (blocked_id) REFERENCES members (id));
INSERT INTO authors VALUES (1, 'Ursula', 'u@example.com', NULL), (2, 'Ted', NULL, 1), (3, 'Nnedi', 'n@example.com', 1);
INSERT INTO publishers VALUES (1, 'Ace'), (2, 'Tor');
INSERT INTO books VALUES (10, 1, 'The Dispossessed', '9780060512750', 9.99, '1974-05-01'),
  (11, 2, 'Stories of Your Life', '9781101972120', 14.50, NULL), (12, 2, 'Binti', '9780765385253', 7.00, '2015-09-22');
INSERT INTO book_authors VALUES (10, 1), (11, 2), (12, 3), (12, 1);
INSERT INTO genres VALUES ('sf', 'Science fiction'), ('short', 'Short stories');
INSERT INTO book_genres VALUES (10, 'sf'), (11, 'sf'), (11, 'short'), (12, 'sf');
INSERT INTO members VALUES (100, 'Ann', 'plus', NULL, '{\"lang\": \"en\", \"digest\": true}'), (101, 'Bo', 'basic', 100, NULL);
INSERT INTO loans VALUES (100, 10, '2026-01-02 10:00:00', NULL), (100, 12, '2026-01-03 11:30:00', '2026-01-20 09:00:00'), (101, 11, '2026-02-01 08:00:00', NULL);
INSERT INTO reviews VALUES (1, 10, 100, 5, 'Great'), (2, 12, 101, 4, NULL);
INSERT INTO branches VALUES (1, 'Main', b'00000101', 'wifi,cafe'), (2, 'East', b'0', '');
INSERT INTO copies VALUES (1, 1, 10), (1, 2, 10), (2, 1, 12);
INSERT INTO events_log VALUES (NOW(), 'boot');
INSERT INTO wishlist VALUES (1, 100);
INSERT INTO settings VALUES ('loan_days', '21');
INSERT INTO featured VALUES (1, 10), (2, 10);
INSERT INTO follows VALUES (100, 101), (101, 100);
INSERT INTO blocks VALUES (100, 101);
";

/// Changes that reach items through keys, lookups (a renamed parent), embeds and counts.
const LIBRARY_CHANGES: &str = "
UPDATE authors SET name = 'Ursula K.' WHERE id = 1;
UPDATE publishers SET name = 'Tor Books' WHERE id = 2;
INSERT INTO reviews VALUES (3, 11, 100, 3, 'Dense');
DELETE FROM book_genres WHERE book_id = 11 AND genre_code = 'short';
UPDATE members SET name = 'Ann B.' WHERE id = 100;
UPDATE books SET publisher_id = 1 WHERE id = 12;
INSERT INTO loans VALUES (101, 10, '2026-03-01 12:00:00', NULL);
";

/// `rowcast suggest` into `env.dir/suggested`; the output's stdout and the directory.
fn suggest(env: &Env) -> (String, std::path::PathBuf) {
    let out = env.dir.join("suggested");
    let (code, text) = code_and_output(&env.rowcast(&[
        "suggest",
        "--source",
        &mysql_admin_url(),
        "--database",
        &env.db,
        "--out",
        out.to_str().unwrap(),
        "--dynamodb-table",
        &env.table("single"),
        "--dynamodb-endpoint-url",
        &env.ddb_url,
    ]));
    assert_eq!(code, Some(0), "{text}");
    (text, out)
}

fn rowcast_in(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rowcast"))
        .args(args)
        .current_dir(dir)
        .env("ROWCAST_SOURCE_PASSWORD", "rowcast")
        .output()
        .unwrap();
    code_and_output(&out)
}

/// check --connect unchanged (after tables create), then the daemon on it, `changes`, and
/// `rowcast verify` equal.
async fn check_run_verify(env: &Env, dir: &Path, changes: &str) {
    let config = "rowcast.toml";
    let (code, text) = rowcast_in(dir, &["tables", "--config", config, "create"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = rowcast_in(dir, &["check", "--connect", "--config", config]);
    assert_eq!(
        code,
        Some(0),
        "check --connect on the suggestion as written:\n{text}"
    );
    // Listeners of this test (the defaults may be taken by another test), appended.
    let listeners = format!(
        "\n[metrics]\nlisten = \"127.0.0.1:{}\"\n\n[api]\nlisten = \"127.0.0.1:{}\"\n",
        env.port, env.api_port
    );
    let path = dir.join(config);
    let text = std::fs::read_to_string(&path).unwrap() + &listeners;
    std::fs::write(&path, text).unwrap();
    let log = std::fs::File::create(dir.join("rowcast.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rowcast"))
        .args(["run", "--config", config])
        .current_dir(dir)
        .env("ROWCAST_SOURCE_PASSWORD", "rowcast")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let daemon = common::Daemon {
        child,
        port: env.port,
        api_port: env.api_port,
        log: dir.join("rowcast.log"),
    };
    daemon.wait_ready().await;
    env.sql(changes).await;
    let mut last = String::new();
    for _ in 0..20 {
        let (code, text) = rowcast_in(dir, &["verify", "--config", config]);
        if code == Some(0) {
            let _ = daemon.terminate();
            return;
        }
        last = text;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "the views never matched the source:\n{last}\nlog: {}",
        common::tail(&dir.join("rowcast.log"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seventeen_table_schema_is_modelled_run_and_verified() {
    let env = Env::new("suggestlib").await;
    env.sql(LIBRARY).await;
    let (stdout, dir) = suggest(&env);
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    // Reported, not guessed.
    assert!(
        stdout.contains("left out events_log: no primary key"),
        "{stdout}"
    );
    assert!(
        stdout.contains("left out wishlist: foreign key wish_member to members cascades"),
        "{stdout}"
    );
    assert!(!dir.join("views/events_log.toml").exists());
    // A composite key under its parent, zero-padded to the column types.
    let loans = read("views/loans.toml");
    assert!(loans.contains("pk = \"MEMBER#{member_id:019}\""), "{loans}");
    assert!(
        loans.contains("sk = \"LOAN#{member_id:019}#{book_id:010}#{loaned_at}\""),
        "{loans}"
    );
    // A link table: an adjacency list, the inverted GSI, and both sides' names.
    let links = read("views/book_authors.toml");
    assert!(
        links.contains("pk = \"BOOK#{book_id:010}\"\nsk = \"AUTHOR#{author_id:010}\""),
        "{links}"
    );
    assert!(
        links.contains("pk = \"AUTHOR#{author_id:010}\"\nsk = \"BOOK#{book_id:010}\""),
        "{links}"
    );
    assert!(links.contains("author_name = \"name\""), "{links}");
    // Two link tables between the same parents (members follow and block members): each
    // link's sort key carries its own entity, or their rows would share keys.
    let follows = read("views/follows.toml");
    assert!(
        follows.contains("pk = \"MEMBER#{follower_id:019}\"\nsk = \"FOLLOW#{followee_id:019}\""),
        "{follows}"
    );
    let blocks = read("views/blocks.toml");
    assert!(
        blocks.contains("sk = \"BLOCK#{blocked_id:019}\""),
        "{blocks}"
    );
    // A link whose other side lives under the same parent (a publisher features its own book,
    // which is under PUBLISHER#1 already): keyed apart from the book item.
    let featured = read("views/featured.toml");
    assert!(
        featured.contains("sk = \"FEATURED#{book_id:010}\""),
        "{featured}"
    );
    // A self-reference: a lookup of the mentor, never a partition.
    let authors = read("views/authors.toml");
    assert!(
        authors.contains("pk = \"AUTHOR#{id:010}\"\nsk = \"AUTHOR\""),
        "{authors}"
    );
    assert!(
        authors.contains("on = { id = \"mentor_id\" }\nattributes = { mentor_name = \"name\""),
        "{authors}"
    );
    // Unique and secondary keys as GSIs; money as a string; books embed few reviews.
    let books = read("views/books.toml");
    assert!(books.contains("pk = \"BOOK_ISBN#{isbn}\""), "{books}");
    assert!(
        books.contains("pk = \"BOOK_PUBLISHED#{published}\""),
        "{books}"
    );
    assert!(
        books.contains("price = { column = \"price\", as = \"string\" }"),
        "{books}"
    );
    assert!(books.contains("attribute = \"reviews_count\""), "{books}");
    let notes = read("SUGGESTIONS.md");
    for needle in [
        "`events_log`: no primary key",
        "BIT is a number",
        "SET is a string set",
        "JSON maps to native",
        "Query(IndexName=\"gsi1\"",
        "Estimated item size",
    ] {
        assert!(
            notes.contains(needle),
            "{needle:?} not in SUGGESTIONS.md:\n{notes}"
        );
    }
    check_run_verify(&env, &dir, LIBRARY_CHANGES).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_schema_is_modelled_from_column_names_run_and_verified() {
    let env = Env::new("suggestdemo").await;
    let root = env!("CARGO_MANIFEST_DIR");
    for file in ["deploy/sql/menu.sql", "deploy/sql/menu-data.sql"] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("CREATE DATABASE") && !l.starts_with("USE "))
            .collect::<Vec<_>>()
            .join("\n");
        env.sql(&text).await;
    }
    let (stdout, dir) = suggest(&env);
    // No foreign key is declared: the design follows `category_id`, `customer_id`, ….
    assert!(
        stdout.contains("view products: CATEGORY#{category_id:010} / PRODUCT#{id:010}"),
        "{stdout}"
    );
    assert!(
        stdout.contains("view orders: CUSTOMER#{customer_id:020} / ORDER#{id:020}"),
        "{stdout}"
    );
    let notes = std::fs::read_to_string(dir.join("SUGGESTIONS.md")).unwrap();
    assert!(notes.contains("category_id → categories(id)"), "{notes}");
    let changes = "UPDATE channels SET name = 'Website' WHERE code = 'WEB';
        INSERT INTO orders (customer_id, channel_code, total) VALUES (1, 'APP', 4.20);
        UPDATE products SET price = 3.10 WHERE id = 2;";
    check_run_verify(&env, &dir, changes).await;
}
