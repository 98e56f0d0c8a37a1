//! Secrets: the source password from `password_file` or `${VAR}`, holding characters a URL
//! cannot (`@ / # ? % : '`), reaches the server; it never appears in a log or an error; and the
//! binlog's statement text (an `ALTER USER … IDENTIFIED BY`, a DDL with data in it) is never
//! logged, only the statement's kind.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Env, SOURCE_URL};

const PASSWORD: &str = "p@ss/w#rd?=%41:'x";

/// `env`'s config with the source user `rc_secret` and these lines for the password.
fn source_lines(env: &Env, lines: &str) -> String {
    env.write_config("");
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace(&format!("url = \"{SOURCE_URL}\""), lines);
    std::fs::write(env.config_path(), text).unwrap();
    env.config_path().to_str().unwrap().to_string()
}

fn check_connect(config: &str, vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rowcast"))
        .args(["check", "--connect", "--config", config])
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    common::code_and_output(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_with_any_character_connect_and_never_reach_a_log() {
    let env = Env::new("secrets").await;
    let sql_password = PASSWORD.replace('\'', "''");
    env.sql(&format!(
        "DROP USER IF EXISTS 'rc_secret'@'127.0.0.1', 'rc_other'@'127.0.0.1';
         CREATE USER 'rc_secret'@'127.0.0.1' IDENTIFIED BY '{sql_password}';
         GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, INSERT, UPDATE, DELETE ON *.* TO 'rc_secret'@'127.0.0.1';
         CREATE USER 'rc_other'@'127.0.0.1' IDENTIFIED BY 'first'"
    ))
    .await;
    let table = env.notes_view().await;
    env.write_config("");
    env.create_tables();

    // ${VAR}: the value is taken as it is, whatever it holds.
    let config = source_lines(
        &env,
        "url = \"mysql://rc_secret:${RC_SECRET_PW}@127.0.0.1:3306\"",
    );
    let (code, text) = check_connect(&config, &[("RC_SECRET_PW", PASSWORD)]);
    assert_eq!(code, Some(0), "{text}");

    // A wrong password: a clear error (exit 3) that does not quote it.
    std::fs::write(env.dir.join("pw.txt"), "wrong-pw-canary\n").unwrap();
    let config = source_lines(
        &env,
        "url = \"mysql://rc_secret@127.0.0.1:3306\"\npassword_file = \"pw.txt\"",
    );
    let (code, text) = check_connect(&config, &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("Access denied"), "{text}");
    assert!(!text.contains("wrong-pw-canary"), "{text}");

    // password_file (one trailing line break ignored), used by the daemon.
    std::fs::write(env.dir.join("pw.txt"), format!("{PASSWORD}\n")).unwrap();
    let (code, text) = check_connect(&config, &[]);
    assert_eq!(code, Some(0), "{text}");
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (1, 'one')").await;
    env.sql("ALTER USER 'rc_other'@'127.0.0.1' IDENTIFIED BY 'leak-canary-42'")
        .await;
    env.sql("CREATE TABLE other (c INT COMMENT 'ddl-canary-7'); ALTER TABLE notes COMMENT 'x'")
        .await;
    env.sql("INSERT INTO notes VALUES (2, 'two')").await;
    env.converge(
        &table,
        Env::notes(&[(1, "one"), (2, "two")]),
        Duration::from_secs(30),
    )
    .await;
    assert!(daemon.terminate().success());
    let log = std::fs::read_to_string(env.dir.join("rowcast.log")).unwrap();
    // The statements were seen and logged, by kind and table.
    assert!(log.contains("ALTER USER"), "{log}");
    assert!(log.contains("ALTER TABLE"), "{log}");
    for secret in [PASSWORD, "leak-canary-42", "ddl-canary-7", "IDENTIFIED"] {
        assert!(!log.contains(secret), "{secret:?} in the log");
    }
    env.sql("DROP USER 'rc_secret'@'127.0.0.1', 'rc_other'@'127.0.0.1'")
        .await;
}
