//! TLS to the source against a real MariaDB: a second server, started by
//! `deploy/local-services.sh` with a certificate from a CA this test makes (openssl) and
//! `require_secure_transport=ON`, so that no plain TCP connection gets through. Wrong CA and
//! wrong host name are clear errors (exit 3 from `check --connect`, never a panic); with the
//! right ones the daemon backfills, streams and writes back over TLS.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{free_ports, Env};
use mysql_async::prelude::Queryable;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`{name}.pem`, `{name}-key.pem`).
fn make_ca(dir: &Path, name: &str) {
    let key = format!("{name}-key.pem");
    let cert = format!("{name}.pem");
    let subject = format!("/CN=rowcast test {name}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &cert,
            "-days", "2", "-subj", &subject,
        ],
    );
}

/// `server-cert.pem` / `server-key.pem` signed by `ca`, valid for `san` only.
fn make_server_cert(dir: &Path, ca: &str, san: &str) {
    std::fs::write(dir.join("san.ext"), format!("subjectAltName={san}\n")).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=mariadb test server",
        ],
    );
    let ca_cert = format!("{ca}.pem");
    let ca_key = format!("{ca}-key.pem");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            "server-cert.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

fn connection(port: u16, tls: rowcast::config::TlsMode) -> rowcast::config::SourceConnection {
    rowcast::config::SourceConnection {
        address: format!("mysql://127.0.0.1:{port}"),
        user: Some("rowcast_admin".into()),
        password: rowcast::config::Secret::new("rowcast".into()),
        tls,
        ca_file: None,
    }
}

/// Writes `env`'s config with a `[source]` of this server and these TLS settings.
fn source_config(env: &Env, port: u16, tls_lines: &str) -> String {
    env.write_config("");
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        &format!("url = \"{}\"", common::SOURCE_URL),
        &format!("url = \"mysql://rowcast:rowcast@127.0.0.1:{port}\"\n{tls_lines}"),
    );
    std::fs::write(env.config_path(), &text).unwrap();
    env.config_path().to_str().unwrap().to_string()
}

fn check_connect(env: &Env, port: u16, tls_lines: &str) -> (Option<i32>, String) {
    let config = source_config(env, port, tls_lines);
    let out = env.rowcast(&["check", "--connect", "--config", &config]);
    let (code, text) = common::code_and_output(&out);
    assert!(!text.contains("panicked"), "{text}");
    (code, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_to_the_source_verifies_the_ca_and_the_host_name_and_carries_the_whole_pipeline() {
    let certs = std::env::temp_dir().join(format!("rowcast-tls-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&certs);
    std::fs::create_dir_all(&certs).unwrap();
    make_ca(&certs, "ca");
    make_ca(&certs, "other-ca");
    // First a certificate for another host name than the one rowcast connects to.
    make_server_cert(&certs, "ca", "DNS:mariadb.test");
    // The TLS-only MariaDB of this test.
    let server = common::mariadb::OwnMariaDb::start(
        "tls",
        &[("ROWCAST_MYSQL_TLS_DIR", certs.to_str().unwrap())],
    );
    let port = server.port;

    let mut env = Env::new("tls").await;
    env.admin = rowcast::source::pool(&connection(port, rowcast::config::TlsMode::Required))
        .await
        .unwrap();
    let mut conn = env.admin.get_conn().await.unwrap();
    conn.query_drop(format!("CREATE DATABASE {}", env.db))
        .await
        .unwrap();
    drop(conn);
    let table = env.notes_view().await;
    // With write-back, so that the write-back side's connections go over TLS too.
    let view = std::fs::read_to_string(env.dir.join("views/notes.toml")).unwrap();
    env.write_view(
        "notes.toml",
        &format!("{view}[writeback]\nenabled = true\nattributes = [\"body\"]\n"),
    );
    source_config(&env, port, "");
    env.create_tables();
    let ca = certs.join("ca.pem");
    let other_ca = certs.join("other-ca.pem");

    // Plain TCP is refused by the server: a clear error, exit 3.
    let (code, text) = check_connect(&env, port, "tls = \"disabled\"");
    assert_eq!(code, Some(3), "{text}");
    // A CA that did not sign the server's certificate.
    let (code, text) = check_connect(
        &env,
        port,
        &format!("tls = \"verify_ca\"\nca_file = {other_ca:?}"),
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("not signed by a CA in [source] ca_file"),
        "{text}"
    );
    // The right CA, but the certificate names another host.
    let (code, text) = check_connect(
        &env,
        port,
        &format!("tls = \"verify_identity\"\nca_file = {ca:?}"),
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("does not name the host"), "{text}");
    // verify_ca does not compare host names; required checks nothing; preferred takes TLS.
    for tls in [
        format!("tls = \"verify_ca\"\nca_file = {ca:?}"),
        "tls = \"required\"".to_string(),
        "tls = \"preferred\"".to_string(),
    ] {
        let (code, text) = check_connect(&env, port, &tls);
        assert_eq!(code, Some(0), "{tls}: {text}");
    }

    // A certificate that names 127.0.0.1, loaded by the running server (FLUSH SSL).
    make_server_cert(&certs, "ca", "IP:127.0.0.1");
    let live = server.state.join("mariadb/tls");
    for file in ["server-cert.pem", "server-key.pem"] {
        std::fs::copy(certs.join(file), live.join(file)).unwrap();
    }
    let mut conn = env.admin.get_conn().await.unwrap();
    conn.query_drop("FLUSH SSL").await.unwrap();
    drop(conn);
    let (code, text) = check_connect(
        &env,
        port,
        &format!("tls = \"verify_identity\"\nca_file = {ca:?}"),
    );
    assert_eq!(code, Some(0), "{text}");

    // The whole pipeline over TLS: rows before the start are backfilled (snapshot reads), rows
    // after it streamed (binlog), and the server takes no plain connection.
    env.sql("INSERT INTO notes VALUES (1, 'one'), (2, 'two')")
        .await;
    // Listener ports picked now: the many connections of the checks above took ephemeral ports,
    // one of which may be the port picked at the start (seen once: "Address already in use").
    (env.port, env.api_port) = free_ports();
    source_config(
        &env,
        port,
        &format!("tls = \"verify_identity\"\nca_file = {ca:?}"),
    );
    let daemon = env.start().await;
    env.sql("INSERT INTO notes VALUES (3, 'three'); UPDATE notes SET body = 'uno' WHERE id = 1")
        .await;
    env.converge(
        &table,
        Env::notes(&[(1, "uno"), (2, "two"), (3, "three")]),
        Duration::from_secs(30),
    )
    .await;
    // Write-back over TLS: an application's change in DynamoDB reaches the row.
    common::app::update(
        &env,
        &table,
        common::app::key(&[("pk", "N#2"), ("sk", "NOTE")]),
        "SET body = :b",
        &[(":b", common::app::s("dos"))],
    )
    .await;
    common::eventually(
        "the change to reach MariaDB",
        Duration::from_secs(30),
        || async {
            env.query::<String>("SELECT body FROM notes WHERE id = 2")
                .await
                .first()
                .is_some_and(|body| body == "dos")
        },
    )
    .await;
    // Every connection of the daemon's user is TCP (a socket would bypass TLS), and the server
    // refuses TCP without TLS (the first check above).
    let hosts: Vec<String> = env
        .query("SELECT HOST FROM information_schema.PROCESSLIST WHERE USER = 'rowcast'")
        .await;
    assert!(!hosts.is_empty());
    assert!(
        hosts.iter().all(|h| h.starts_with("127.0.0.1:")),
        "{hosts:?}"
    );
    assert!(daemon.terminate().success());
    let _ = std::fs::remove_dir_all(&certs);
}
