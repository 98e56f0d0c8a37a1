//! Least-privilege setups pass `check --connect`: SELECT granted on the watched database only,
//! through a database wildcard, or through a role, rather than globally; and a missing
//! privilege is named exactly (which privilege, on which table, for what).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Env, SOURCE_URL};

/// `check --connect` as `user` (password `pw`): the exit code and the output.
fn check_as(env: &Env, user: &str) -> (Option<i32>, String) {
    env.write_config("");
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        &format!("url = \"{SOURCE_URL}\""),
        &format!("url = \"mysql://{user}:pw@127.0.0.1:3306\""),
    );
    std::fs::write(env.config_path(), text).unwrap();
    let config = env.config_path();
    let out = env.rowcast(&["check", "--connect", "--config", config.to_str().unwrap()]);
    common::code_and_output(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn database_wildcard_and_role_grants_are_enough_and_what_lacks_is_named() {
    let env = Env::new("lpgrants").await;
    env.notes_view().await;
    env.write_config("");
    env.create_tables();
    let users = "'rc_lp_db'@'127.0.0.1', 'rc_lp_wild'@'127.0.0.1', 'rc_lp_role'@'127.0.0.1', 'rc_lp_none'@'127.0.0.1', 'rc_lp_idle'@'127.0.0.1'";
    env.sql(&format!(
        "DROP USER IF EXISTS {users};
         DROP ROLE IF EXISTS rc_lp_reader;
         CREATE ROLE rc_lp_reader;
         GRANT SELECT ON rc_lpgrants.* TO rc_lp_reader;"
    ))
    .await;
    for user in [
        "rc_lp_db",
        "rc_lp_wild",
        "rc_lp_role",
        "rc_lp_none",
        "rc_lp_idle",
    ] {
        env.sql(&format!(
            "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw';
             GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'127.0.0.1'"
        ))
        .await;
    }
    env.sql(
        "GRANT ALL ON rc_lpgrants.* TO 'rc_lp_db'@'127.0.0.1';
         GRANT SELECT ON `rc\\_lp%`.* TO 'rc_lp_wild'@'127.0.0.1';
         GRANT rc_lp_reader TO 'rc_lp_role'@'127.0.0.1';
         GRANT rc_lp_reader TO 'rc_lp_idle'@'127.0.0.1';
         SET DEFAULT ROLE rc_lp_reader FOR 'rc_lp_role'@'127.0.0.1'",
    )
    .await;

    for user in ["rc_lp_db", "rc_lp_wild", "rc_lp_role"] {
        let (code, text) = check_as(&env, user);
        assert_eq!(code, Some(0), "{user}: {text}");
    }
    // A role granted but not active (no default role; rowcast never runs SET ROLE) gives
    // nothing.
    for user in ["rc_lp_none", "rc_lp_idle"] {
        let (code, text) = check_as(&env, user);
        assert_eq!(code, Some(3), "{user}: {text}");
    }
    let (code, text) = check_as(&env, "rc_lp_none");
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("lacks SELECT on rc_lpgrants.notes (needed for snapshots and schemas)"),
        "{text}"
    );
    env.sql(&format!("DROP USER {users}; DROP ROLE rc_lp_reader"))
        .await;
}

/// A write-back view against a server that takes no writes from rowcast's user (`read_only`:
/// a replica's, or a switchover's) is named by `check --connect` up front; a user that may
/// write through it (READ_ONLY ADMIN) passes, unless sessions begin read-only (a global
/// `tx_read_only`, `transaction_read_only` since MariaDB 11.1 and on MySQL, named since
/// 2026-12-07). Before 2026-12-06's eighth stop nothing
/// said so until the first application change waited an hour and was dead-lettered.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_server_is_named_for_a_write_back_view() {
    let env = Env::alone("lpreadonly").await;
    env.sql("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40))")
        .await;
    let table = env.table("notes");
    env.write_view(
        "notes.toml",
        &format!(
            "name = \"notes\"\ntable = \"{table}\"\nsource = \"{{DB}}.notes\"\n[key]\npk = \"N#{{id}}\"\nsk = \"NOTE\"\n[attributes]\nbody = \"body\"\n[writeback]\nenabled = true\nattributes = [\"body\"]\n"
        ),
    );
    env.write_config("");
    env.create_tables();
    env.sql(
        "DROP USER IF EXISTS 'rc_ro_plain'@'127.0.0.1', 'rc_ro_admin'@'127.0.0.1';
         CREATE USER 'rc_ro_plain'@'127.0.0.1' IDENTIFIED BY 'pw';
         CREATE USER 'rc_ro_admin'@'127.0.0.1' IDENTIFIED BY 'pw';
         GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, INSERT, UPDATE, DELETE ON *.* TO 'rc_ro_plain'@'127.0.0.1';
         GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, INSERT, UPDATE, DELETE, READ_ONLY ADMIN ON *.* TO 'rc_ro_admin'@'127.0.0.1'",
    )
    .await;
    let (code, text) = check_as(&env, "rc_ro_plain");
    let writable = (code, text.clone());
    env.sql("SET GLOBAL read_only = ON").await;
    let plain = check_as(&env, "rc_ro_plain");
    let admin = check_as(&env, "rc_ro_admin");
    env.sql("SET GLOBAL read_only = OFF").await;
    // Sessions that begin read-only refuse every user's writes (1792), READ_ONLY ADMIN or not.
    env.sql("SET GLOBAL tx_read_only = ON").await;
    let sessions = check_as(&env, "rc_ro_admin");
    env.sql("SET GLOBAL tx_read_only = OFF").await;
    env.sql("DROP USER 'rc_ro_plain'@'127.0.0.1', 'rc_ro_admin'@'127.0.0.1'")
        .await;
    assert_eq!(writable.0, Some(0), "{}", writable.1);
    assert_eq!(plain.0, Some(3), "{}", plain.1);
    assert!(
        plain.1.contains("the server is read-only (read_only=ON)"),
        "{}",
        plain.1
    );
    assert_eq!(admin.0, Some(0), "{}", admin.1);
    assert_eq!(sessions.0, Some(3), "{}", sessions.1);
    assert!(sessions.1.contains("tx_read_only=ON"), "{}", sessions.1);
}
