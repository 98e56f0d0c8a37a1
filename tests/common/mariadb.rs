//! A MariaDB of a test's own, beside the shared one: started by `deploy/local-services.sh` with
//! its own state directory, port and settings (`ROWCAST_*` variables of that script), stopped
//! and removed when dropped.

use std::path::PathBuf;
use std::process::Command;

pub struct OwnMariaDb {
    pub state: PathBuf,
    pub port: u16,
    settings: Vec<(String, String)>,
}

impl OwnMariaDb {
    /// Starts one named `name` (its state under `/var/tmp`) with these script variables.
    pub fn start(name: &str, settings: &[(&str, &str)]) -> OwnMariaDb {
        let server = OwnMariaDb {
            state: PathBuf::from(format!("/var/tmp/rowcast-{name}-{}", std::process::id())),
            port: super::free_port(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let _ = std::fs::remove_dir_all(&server.state);
        server.services("start-mariadb");
        server
    }

    /// `local-services.sh command` for this server; panics with its output if it fails.
    pub fn services(&self, command: &str) {
        let out = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/local-services.sh"
            ))
            .arg(command)
            .env("ROWCAST_STATE", &self.state)
            .env("ROWCAST_MYSQL_PORT", self.port.to_string())
            .envs(self.settings.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "local-services.sh {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A pool of its admin account.
    pub fn admin(&self) -> mysql_async::Pool {
        let url = format!("mysql://rowcast_admin:rowcast@127.0.0.1:{}", self.port);
        mysql_async::Pool::new(url.as_str())
    }
}

impl Drop for OwnMariaDb {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/local-services.sh"
            ))
            .arg("stop-mariadb")
            .env("ROWCAST_STATE", &self.state)
            .output();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
