//! Reloading the configuration (`SIGHUP`, `POST /v1/reload`) without stopping the daemon.
//!
//! The new configuration is read and checked first — its files, then the servers, as at start —
//! while the running pipeline goes on; nothing changes when it has a problem. A valid, different
//! configuration is applied by draining the pipeline (what was read is written and checkpointed,
//! as at shutdown) and starting it again from that checkpoint with the new views, in the same
//! process: the HTTP listener keeps answering, no view is backfilled again unless its definition
//! changed or it is new, and the binlog is read on from the checkpoint. Why a drain rather than
//! changing the running stages in place: every stage holds the view set (routing, join marks,
//! backfill groups, write-back consumers), and the drain-and-resume path is the one every restart
//! already proves; its cost is a pause of change capture of about a second.

use std::collections::BTreeMap;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::prepare;
use crate::config::{self, Config};
use crate::error::{chain, Classify};
use crate::pipeline::{ReloadAnswer, ReloadRequest};

/// What a reload would change, in words; `None` when the configuration read is the running one.
pub fn changes(running: &Config, read: &Config) -> Option<String> {
    let before: BTreeMap<&str, String> = running
        .views
        .iter()
        .map(|v| (v.name.as_str(), v.fingerprint()))
        .collect();
    let after: BTreeMap<&str, String> = read
        .views
        .iter()
        .map(|v| (v.name.as_str(), v.fingerprint()))
        .collect();
    let added: Vec<&str> = after
        .keys()
        .filter(|n| !before.contains_key(*n))
        .copied()
        .collect();
    let removed: Vec<&str> = before
        .keys()
        .filter(|n| !after.contains_key(*n))
        .copied()
        .collect();
    let changed: Vec<&str> = after
        .iter()
        .filter(|(n, f)| before.get(*n).is_some_and(|was| was != *f))
        .map(|(n, _)| *n)
        .collect();
    // Everything else (settings, a view's write-back or fill mode): the whole configuration as
    // compiled, compared (never shown: it holds the source URL).
    let other = format!("{running:?}") != format!("{read:?}");
    if added.is_empty() && removed.is_empty() && changed.is_empty() && !other {
        return None;
    }
    let list = |names: &[&str]| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let mut text = format!(
        "reloading: views added: {}; removed: {}; changed (backfilled again, old items removed): {}",
        list(&added),
        list(&removed),
        list(&changed)
    );
    if read.metrics_listen != running.metrics_listen {
        text.push_str("; metrics.listen takes effect at the next restart");
    }
    Some(text)
}

/// Reads the configuration file again and checks it: the answer, and the configuration to apply
/// when it is `Applying`.
pub async fn consider(running: &Config) -> (ReloadAnswer, Option<Config>) {
    let read = match config::load(&running.file) {
        Ok(read) => read,
        Err(errors) => {
            let problems: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            return (ReloadAnswer::Rejected(problems.join("\n")), None);
        }
    };
    let Some(what) = changes(running, &read) else {
        return (ReloadAnswer::Unchanged, None);
    };
    let client = crate::dynamo::client(&read.dynamodb).await;
    match prepare::check_servers(&read, &client).await {
        Ok(problems) if problems.is_empty() => (ReloadAnswer::Applying(what), Some(read)),
        Ok(problems) => {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            (ReloadAnswer::Rejected(problems.join("\n")), None)
        }
        Err(error) if error.is_transient() => (ReloadAnswer::Unavailable(chain(&error)), None),
        Err(error) => (ReloadAnswer::Rejected(chain(&error)), None),
    }
}

/// Logs a reload's outcome.
pub fn log(answer: &ReloadAnswer) {
    match answer {
        ReloadAnswer::Unchanged => info!("reload: the configuration is unchanged"),
        ReloadAnswer::Applying(what) => {
            info!(%what, "reload: draining, then starting again from the checkpoint")
        }
        ReloadAnswer::Rejected(problems) => {
            for problem in problems.lines() {
                warn!(%problem, "reload rejected; the running configuration stays");
            }
        }
        ReloadAnswer::Unavailable(reason) => {
            warn!(%reason, "reload not checked: the servers are unreachable; the running configuration stays")
        }
    }
}

/// `SIGHUP` asks for a reload; its outcome is logged.
pub async fn on_sighup(reloads: mpsc::Sender<ReloadRequest>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        warn!("cannot listen for SIGHUP: reload through POST /v1/reload only");
        return;
    };
    while hangups.recv().await.is_some() {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if reloads.try_send(ReloadRequest { reply }).is_err() {
            warn!("SIGHUP: a reload is already pending");
            continue;
        }
        // Logged where it is decided.
        tokio::spawn(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(views: &[(&str, &str)]) -> Config {
        let dir = std::env::temp_dir().join(format!(
            "rowcast-reload-{}-{}",
            std::process::id(),
            views.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("views")).unwrap();
        for (name, filter) in views {
            std::fs::write(
                dir.join("views").join(format!("{name}.toml")),
                format!("name = \"{name}\"\ntable = \"items\"\nsource = \"db.t\"\nfilter = \"{filter}\"\n[key]\npk = \"T#{{id}}\"\n"),
            )
            .unwrap();
        }
        let path = dir.join("rowcast.toml");
        std::fs::write(&path, "views = [\"views/*.toml\"]\n[source]\nurl = \"mysql://u:p@127.0.0.1:3306\"\nserver_id = 7\n[checkpoint]\npath = \"cp.json\"\n").unwrap();
        config::load(&path).unwrap_or_else(|e| panic!("{:?}", e.0))
    }

    #[test]
    fn names_what_a_reload_changes() {
        let running = config(&[("a", "id > 1"), ("b", "id > 1")]);
        assert_eq!(changes(&running, &running.clone()), None);
        let read = config(&[("a", "id > 2"), ("c", "id > 1"), ("d", "id > 1")]);
        let what = changes(&running, &read).unwrap();
        assert!(what.contains("added: c, d;"), "{what}");
        assert!(what.contains("removed: b;"), "{what}");
        assert!(what.contains("removed): a"), "{what}");
    }
}
