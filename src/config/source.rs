//! `[source]` connection settings: the URL, the password (from the URL, `${VAR}` or
//! `password_file`) and TLS. The password never reaches a log, an error or a `Debug` output: it
//! is kept apart from the URL in a [`Secret`], and the URL rowcast keeps has no credentials in it.

use std::path::{Path, PathBuf};

use super::compile::{expand_env, Problems};
use super::raw::{RawApi, RawSource};
use super::ApiConfig;

/// Text that must never be shown: its `Debug` prints a placeholder, it has no `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Self {
        Secret(text)
    }

    /// The secret itself, for the one place that must send it (the connection handshake).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// `[source] tls`: how the connection to the server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP.
    Disabled,
    /// TLS when the server offers it (the certificate is not checked), plain TCP otherwise.
    Preferred,
    /// TLS or no connection; the certificate is not checked.
    Required,
    /// TLS with a certificate signed by `ca_file` (or a public CA); any host name.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host rowcast connects to.
    VerifyIdentity,
}

impl TlsMode {
    pub const NAMES: [&'static str; 5] = [
        "disabled",
        "preferred",
        "required",
        "verify_ca",
        "verify_identity",
    ];

    fn parse(text: &str) -> Option<TlsMode> {
        Some(match text {
            "disabled" => TlsMode::Disabled,
            "preferred" => TlsMode::Preferred,
            "required" => TlsMode::Required,
            "verify_ca" => TlsMode::VerifyCa,
            "verify_identity" => TlsMode::VerifyIdentity,
            _ => return None,
        })
    }
}

/// Where and how to connect to the source server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConnection {
    /// `mysql://host:port[/db][?params]`, with `${VAR}` expanded and no user or password.
    pub address: String,
    pub user: Option<String>,
    pub password: Secret,
    pub tls: TlsMode,
    /// CA certificates (PEM) the server's certificate must chain to (verify modes).
    pub ca_file: Option<PathBuf>,
}

impl SourceConnection {
    /// The connection options without TLS (the source module adds it, see `source::opts`).
    pub fn plain_opts(&self) -> Result<mysql_async::OptsBuilder, mysql_async::UrlError> {
        let opts = mysql_async::Opts::from_url(&self.address)?;
        let password = self.password.expose();
        Ok(mysql_async::OptsBuilder::from_opts(opts)
            .user(self.user.clone())
            .pass((!password.is_empty()).then(|| password.to_string())))
    }
}

/// `%XX` escapes of a URL's user or password decoded; other text as it is.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a % not followed by two hex digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes that are not UTF-8".to_string())
}

/// The user or password part of the URL: literal text percent-decoded, `${VAR}` values taken
/// as they are (so a password from the environment may hold any character).
fn credential(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&percent_decode(&rest[..start])?);
        let after = &rest[start..];
        let end = after.find('}').ok_or("unclosed ${")?;
        out.push_str(&expand_env(&after[..=end], env)?);
        rest = &after[end + 1..];
    }
    out.push_str(&percent_decode(rest)?);
    Ok(out)
}

/// Reads `password_file`: its text without one trailing line break.
fn read_password_file(file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
}

/// Compiles `[api]`: the listener and the token from `token_file` (one trailing line break
/// ignored; an empty token is a problem, not "no token").
pub(super) fn compile_api(
    path: &Path,
    base: &Path,
    raw: &RawApi,
    problems: &mut Problems,
) -> ApiConfig {
    let text = raw.listen.as_deref().unwrap_or("127.0.0.1:9188");
    let listen = text.parse().unwrap_or_else(|error| {
        problems.add(path, "api.listen", format!("{text:?}: {error}"));
        std::net::SocketAddr::from(([127, 0, 0, 1], 9188))
    });
    let token =
        raw.token_file
            .as_ref()
            .and_then(|file| match read_password_file(&base.join(file)) {
                Ok(token) if token.trim().is_empty() => {
                    problems.add(path, "api.token_file", "is empty");
                    None
                }
                Ok(token) => Some(Secret::new(token.trim().to_string())),
                Err(message) => {
                    problems.add(path, "api.token_file", message);
                    None
                }
            });
    ApiConfig { listen, token }
}

/// Compiles `[source] url`, `password_file`, `tls` and `ca_file`. Problems never quote the
/// password.
pub(super) fn compile_connection(
    path: &Path,
    source: &RawSource,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> SourceConnection {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut connection = SourceConnection {
        address: String::new(),
        user: None,
        password: Secret::default(),
        tls: TlsMode::Preferred,
        ca_file: None,
    };
    let Some(rest) = source.url.strip_prefix("mysql://") else {
        problems.add(path, "source.url", "must start with mysql://");
        return connection;
    };
    // The credentials end at the last '@'; the address follows.
    let (userinfo, address) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    match expand_env(address, env) {
        Ok(address) => connection.address = format!("mysql://{address}"),
        Err(message) => problems.add(path, "source.url", message),
    }
    compile_credentials(path, base, source, userinfo, env, problems, &mut connection);
    if !connection.address.is_empty() {
        if let Err(error) = connection.plain_opts() {
            problems.add(path, "source.url", format!("not a mysql:// URL: {error}"));
        }
    }
    compile_tls(path, base, source, problems, &mut connection);
    connection
}

/// The user and password: from the URL's user information (`${VAR}` taken as it is) or
/// `password_file`.
fn compile_credentials(
    path: &Path,
    base: &Path,
    source: &RawSource,
    userinfo: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
    connection: &mut SourceConnection,
) {
    let (user, url_password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (Some(user), Some(password)),
            None => (Some(info), None),
        },
        None => (None, None),
    };
    if let Some(user) = user {
        match credential(user, env) {
            // `${CREDS}` holding `user:password` would send the password as the user name.
            Ok(user) if user.contains(':') => problems.add(
                path,
                "source.url",
                "user: contains ':' (a password in the user part?); put the password after the ':' of the URL or in password_file",
            ),
            Ok(user) => connection.user = Some(user),
            Err(message) => problems.add(path, "source.url", format!("user: {message}")),
        }
    }
    if let Some(password) = url_password {
        match credential(password, env) {
            Ok(password) => connection.password = Secret::new(password),
            // The message names the problem (an unset variable, a bad escape), never the text.
            Err(message) => problems.add(path, "source.url", format!("password: {message}")),
        }
    }
    if let Some(file) = &source.password_file {
        if url_password.is_some() {
            problems.add(
                path,
                "source.password_file",
                "the url has a password too; give it in one place",
            );
        }
        match read_password_file(&base.join(file)) {
            Ok(password) => connection.password = Secret::new(password),
            Err(message) => problems.add(path, "source.password_file", message),
        }
    }
}

/// `tls` and `ca_file`.
fn compile_tls(
    path: &Path,
    base: &Path,
    source: &RawSource,
    problems: &mut Problems,
    connection: &mut SourceConnection,
) {
    if let Some(tls) = &source.tls {
        match TlsMode::parse(tls) {
            Some(mode) => connection.tls = mode,
            None => problems.add(
                path,
                "source.tls",
                format!("{tls:?}: expected one of {}", TlsMode::NAMES.join(", ")),
            ),
        }
    }
    if connection.tls == TlsMode::VerifyCa && source.ca_file.is_none() {
        problems.add(
            path,
            "source.ca_file",
            "tls = \"verify_ca\" needs the CA that signed the server's certificate (any public certificate for any name would pass without it)",
        );
    }
    let socket = mysql_async::Opts::from_url(&connection.address)
        .ok()
        .and_then(|opts| opts.socket().map(str::to_string));
    if socket.is_some() && !matches!(connection.tls, TlsMode::Disabled | TlsMode::Preferred) {
        problems.add(
            path,
            "source.url",
            "a socket= parameter with TLS: a Unix socket connection has no TLS; set tls = \"disabled\" or connect over TCP",
        );
    }
    if let Some(ca) = &source.ca_file {
        let ca = base.join(ca);
        if !ca.is_file() {
            problems.add(
                path,
                "source.ca_file",
                format!("{} is not a readable file", ca.display()),
            );
        }
        if !matches!(connection.tls, TlsMode::VerifyCa | TlsMode::VerifyIdentity) {
            problems.add(
                path,
                "source.ca_file",
                "is only used with tls = \"verify_ca\" or \"verify_identity\" (\"required\" checks no certificate)",
            );
        }
        connection.ca_file = Some(ca);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(url: &str, vars: &[(&str, &str)]) -> (SourceConnection, Vec<String>) {
        let source: RawSource = toml::from_str(&format!("url = {url:?}\nserver_id = 1\n")).unwrap();
        let env = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        let mut problems = Problems { list: Vec::new() };
        let connection = compile_connection(Path::new("c.toml"), &source, &env, &mut problems);
        let messages = problems.list.iter().map(|p| p.to_string()).collect();
        (connection, messages)
    }

    #[test]
    fn a_password_from_the_environment_may_hold_any_character() {
        let hard = "p@ss/w#rd?x=1%20:é";
        let (c, problems) = compile("mysql://app:${PW}@127.0.0.1:3306/shop", &[("PW", hard)]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.password.expose(), hard);
        assert_eq!(c.user.as_deref(), Some("app"));
        assert_eq!(c.address, "mysql://127.0.0.1:3306/shop");
        let opts = mysql_async::Opts::from(c.plain_opts().unwrap());
        assert_eq!(opts.pass(), Some(hard));
        assert_eq!(opts.db_name(), Some("shop"));
        assert!(!format!("{c:?}").contains("p@ss"), "{c:?}");
    }

    #[test]
    fn literal_credentials_are_percent_decoded() {
        let (c, problems) = compile("mysql://a%40b:s%2Fcret@127.0.0.1", &[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.user.as_deref(), Some("a@b"));
        assert_eq!(c.password.expose(), "s/cret");
    }

    #[test]
    fn problems_never_quote_the_password() {
        let (_, problems) = compile("mysql://app:hunter2%zz@127.0.0.1", &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(!problems[0].contains("hunter2"), "{problems:?}");
        let (_, problems) = compile("mysql://app:${MISSING}@127.0.0.1", &[]);
        assert!(problems[0].contains("MISSING"), "{problems:?}");
    }
}
