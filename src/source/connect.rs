//! Connections to the source server: the options of `[source]` with TLS resolved, for the
//! binlog stream, the snapshot and join reads (a pool) and write-back alike.
//!
//! TLS goes through rustls. `preferred` asks for TLS and falls back to plain TCP only when the
//! server does not offer it; `required` accepts any certificate; `verify_ca` checks the chain
//! against `ca_file` (or the public roots) but no host name; `verify_identity` checks both. With
//! TLS on, rowcast stays on TCP (mysql_async would otherwise move a loopback connection to the
//! server's Unix socket, which has no TLS).

use std::sync::Once;

use mysql_async::{Conn, Opts, OptsBuilder, Pool, SslOpts};

use super::SourceError;
use crate::config::{SourceConnection, TlsMode};

/// rustls needs one process-wide crypto provider; the AWS SDK already links aws-lc-rs.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err: another part of the process installed one first, which serves as well.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

fn ssl_opts(connection: &SourceConnection, host_override: Option<String>) -> SslOpts {
    let mut ssl = SslOpts::default();
    if let Some(ca) = &connection.ca_file {
        ssl = ssl
            .with_root_certs(vec![ca.clone().into()])
            .with_disable_built_in_roots(true);
    }
    match connection.tls {
        TlsMode::Preferred | TlsMode::Required => ssl
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true),
        _ => match host_override {
            Some(name) => ssl.with_danger_tls_hostname_override(Some(name)),
            None => ssl,
        },
    }
}

fn with_tls(connection: &SourceConnection, host_override: Option<String>) -> OptsBuilder {
    plain(connection)
        .prefer_socket(false)
        .ssl_opts(Some(ssl_opts(connection, host_override)))
}

fn plain(connection: &SourceConnection) -> OptsBuilder {
    // The address was parsed when the config was compiled.
    connection
        .plain_opts()
        .unwrap_or_else(|_| OptsBuilder::default())
        // What a packet received may hold, as a replica's `slave_max_allowed_packet` (1 GiB,
        // the protocol's largest): a binlog event is as large as its rows, and the session's
        // `max_allowed_packet` (16 MB by default), which mysql_async reads otherwise, would
        // refuse a larger one on every reconnect and stall the stream for good.
        .max_allowed_packet(Some(1 << 30))
        // A server gone dark (a failover, a dropped connection-tracking entry) without closing
        // the connection: without keepalive a query waiting for its answer (a snapshot read the
        // stream is held for) would wait for ever; with it, the kernel gives up after 30 s and
        // its probes (about 11 minutes with Linux's defaults) and the read fails and is retried.
        .tcp_keepalive(Some(std::time::Duration::from_secs(30)))
}

/// The names (DNS or IP) a certificate presents, from rustls' "not valid for name" error: the
/// chain was verified before the name was compared, so `verify_ca` may connect under one of them.
fn presented_names(error: &mysql_async::Error) -> Option<Vec<String>> {
    let mysql_async::Error::Io(mysql_async::IoError::Io(io)) = error else {
        return None;
    };
    let rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
        presented,
        ..
    }) = io.get_ref()?.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    // Each is the Debug text of a subject-alternative name: `DnsName("db.internal")`. A
    // wildcard name cannot be connected under; IP names are not used (the URL's host did not
    // match them).
    Some(
        presented
            .iter()
            .filter_map(|name| {
                let inner = name.strip_prefix("DnsName(\"")?.strip_suffix("\")")?;
                (!inner.contains('*')).then(|| inner.to_string())
            })
            .collect(),
    )
}

/// Whether `error` says the server has no TLS (for `preferred`).
fn no_tls_offered(error: &mysql_async::Error) -> bool {
    matches!(
        error,
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
    )
}

/// Connection options with TLS resolved: one trial connection decides what `preferred` and
/// `verify_ca` need (plain TCP when no TLS is offered; the certificate's own name when it does
/// not name the host). The trial connection is returned for use.
pub async fn resolve(connection: &SourceConnection) -> Result<(Opts, Conn), SourceError> {
    install_crypto_provider();
    if connection.tls == TlsMode::Disabled {
        let opts = Opts::from(plain(connection));
        let conn = Conn::new(opts.clone()).await.map_err(tls_error)?;
        return Ok((opts, conn));
    }
    let opts = Opts::from(with_tls(connection, None));
    match Conn::new(opts.clone()).await {
        Ok(conn) => Ok((opts, conn)),
        Err(error) if connection.tls == TlsMode::Preferred && no_tls_offered(&error) => {
            let opts = Opts::from(plain(connection));
            let conn = Conn::new(opts.clone()).await.map_err(tls_error)?;
            Ok((opts, conn))
        }
        Err(error) if connection.tls == TlsMode::VerifyCa => {
            // The chain verified, the name did not: connect under a name the certificate has.
            let names = presented_names(&error).unwrap_or_default();
            let mut last = error;
            for name in names {
                let opts = Opts::from(with_tls(connection, Some(name)));
                match Conn::new(opts.clone()).await {
                    Ok(conn) => return Ok((opts, conn)),
                    Err(error) => last = error,
                }
            }
            Err(tls_error(last))
        }
        Err(error) => Err(tls_error(error)),
    }
}

/// A connection error, with TLS failures said plainly (they need an operator, not a retry).
fn tls_error(error: mysql_async::Error) -> SourceError {
    if no_tls_offered(&error) {
        return SourceError::Tls(
            "the server does not offer TLS, and [source] tls requires it".into(),
        );
    }
    if let mysql_async::Error::Io(mysql_async::IoError::Io(io)) = &error {
        if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            let hint = match tls {
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                    "the server's certificate is not signed by a CA in [source] ca_file"
                }
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ) => "the server's certificate does not name the host in [source] url (verify_identity), or has no DNS name to connect under (verify_ca)",
                _ => "the TLS handshake failed",
            };
            return SourceError::Tls(format!("{hint}: {tls}"));
        }
    }
    if let mysql_async::Error::Io(mysql_async::IoError::Tls(tls)) = &error {
        return SourceError::Tls(format!("TLS setup failed: {tls}"));
    }
    SourceError::Connect(error)
}

/// A pool of connections with `connection`'s options (TLS resolved by one trial connection).
pub async fn pool(connection: &SourceConnection) -> Result<Pool, SourceError> {
    let (opts, conn) = resolve(connection).await?;
    let _ = conn.disconnect().await;
    Ok(Pool::new(opts))
}
