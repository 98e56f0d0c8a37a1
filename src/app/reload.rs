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

/// The views `read` adds, removes and changes (their definitions' fingerprints differ) against
/// `running`, each by name.
fn view_changes<'a>(running: &'a Config, read: &'a Config) -> [Vec<&'a str>; 3] {
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
    [added, removed, changed]
}

/// What a reload would change, in words; `None` when the configuration read is the running one.
pub fn changes(running: &Config, read: &Config) -> Option<String> {
    let [added, removed, changed] = view_changes(running, read);
    // Everything else (settings, a view's write-back or fill mode): the whole configuration as
    // compiled, compared; the password and the API token apart, as their Debug text hides
    // them (a rotated password is applied by a reload; a rotated token is told to need a
    // restart, not answered "unchanged").
    let other = format!("{running:?}") != format!("{read:?}")
        || running.source.connection != read.source.connection
        || running.api != read.api;
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
        "reloading: views added: {}; removed: {}; changed: {}",
        list(&added),
        list(&removed),
        list(&changed)
    );
    if read.metrics_listen != running.metrics_listen {
        text.push_str("; metrics.listen takes effect at the next restart");
    }
    if read.api != running.api {
        text.push_str("; [api] takes effect at the next restart");
    }
    Some(text)
}

/// Settings a reload cannot change: what the checkpoint belongs to (the source server and the
/// replica identity it was read with, the store it is kept in). The user, password and TLS
/// settings may change (a rotated password).
fn restart_only(running: &Config, read: &Config) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if running.source.connection.address != read.source.connection.address {
        fields.push("source.url");
    }
    if running.source.server_id != read.source.server_id {
        fields.push("source.server_id");
    }
    // Resuming by GTID accepts another server of the domain (a failover) that a resume by file
    // refuses: the change would stop the daemon at the restart after the drain.
    if running.source.resume_by_gtid != read.source.resume_by_gtid {
        fields.push("source.resume");
    }
    if running.checkpoint != read.checkpoint {
        fields.push("checkpoint");
    }
    if running.pipeline_name != read.pipeline_name {
        fields.push("pipeline.name");
    }
    if running.dynamodb != read.dynamodb {
        fields.push("dynamodb");
    }
    fields
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
    // Every problem is listed: the settings only a restart changes, then the servers' checks.
    let mut problems: Vec<String> = restart_only(running, &read)
        .iter()
        .map(|field| format!("{}: {field}: changes only at a restart (the checkpoint and the positions belong to the server and store it names)", running.file.display()))
        .collect();
    let client = crate::dynamo::client(&read.dynamodb).await;
    // The views it adds or changes — in anything, write-back and fill settings included — are
    // checked against the tables as `check --connect` checks them (columns, joins, writable
    // attributes): one naming a column or table that is not there would otherwise be accepted,
    // then halt, stop every view's backfill, or dead-letter every change written back.
    let checked = views_to_check(running, &read);
    match prepare::check_servers(&read, &client, &checked).await {
        Ok(found) => problems.extend(found.iter().map(ToString::to_string)),
        // Retry later, unless it is refused anyway.
        Err(error) if error.is_transient() && problems.is_empty() => {
            return (ReloadAnswer::Unavailable(chain(&error)), None)
        }
        Err(error) => problems.push(chain(&error)),
    }
    if problems.is_empty() {
        for warning in config::shared_writeback_columns(&read.views) {
            tracing::warn!("{warning}");
        }
        (ReloadAnswer::Applying(what), Some(read))
    } else {
        (ReloadAnswer::Rejected(problems.join("\n")), None)
    }
}

/// The views of `read` that are new or differ from the running ones in anything (a
/// definition's fingerprint leaves write-back and fill settings out: they do not change items).
fn views_to_check<'a>(running: &Config, read: &'a Config) -> Vec<&'a str> {
    read.views
        .iter()
        .filter(|view| {
            running
                .views
                .iter()
                .find(|v| v.name == view.name)
                .is_none_or(|was| format!("{was:?}") != format!("{view:?}"))
        })
        .map(|view| view.name.as_str())
        .collect()
}

/// A reload being checked, beside the running pipeline.
pub struct Check {
    task: tokio::task::JoinHandle<(ReloadAnswer, Option<Config>)>,
    request: Option<ReloadRequest>,
}

/// How long the check of a reload may wait on the servers.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Checks the configuration a reload reads.
pub fn check(running: Config, request: ReloadRequest) -> Check {
    let task = tokio::spawn(async move {
        match tokio::time::timeout(CHECK_TIMEOUT, consider(&running)).await {
            Ok(decided) => decided,
            Err(_) => {
                let reason =
                    format!("the servers did not answer the checks within {CHECK_TIMEOUT:?}");
                (ReloadAnswer::Unavailable(reason), None)
            }
        }
    });
    Check {
        task,
        request: Some(request),
    }
}

impl Check {
    /// The pipeline stopped first: the check ends here, and its request is told so.
    pub fn abandon(mut self) {
        self.task.abort();
        if let Some(request) = self.request.take() {
            let answer = ReloadAnswer::Unavailable("rowcast is stopping".into());
            let _ = request.reply.send(answer);
        }
    }
}

/// Once the check in progress ends: answers its request and returns the configuration to
/// apply, unless `stopping` (the pipeline drains for another cause: the request is told so).
/// Pending while there is no check.
///
/// `applying` gets a configuration to apply before its request is answered, so that what the
/// answer tells the caller is in place when the caller acts on it.
pub async fn checked(
    check: &mut Option<Check>,
    stopping: bool,
    applying: impl FnOnce(&Config),
) -> Option<Config> {
    let Some(current) = check else {
        return std::future::pending().await;
    };
    let (answer, read) = match (&mut current.task).await {
        Ok(decided) => decided,
        Err(error) => (
            ReloadAnswer::Unavailable(format!("the check failed: {error}")),
            None,
        ),
    };
    let (answer, read) = match (answer, read) {
        (ReloadAnswer::Applying(_), Some(_)) if stopping => {
            let answer = ReloadAnswer::Unavailable("rowcast is stopping".into());
            (answer, None)
        }
        decided => decided,
    };
    log(&answer);
    if let Some(read) = &read {
        applying(read);
    }
    if let Some(request) = current.request.take() {
        let _ = request.reply.send(answer);
    }
    read
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

/// Asks the `consumers` write-back consumers to apply what their streams hold now and waits for
/// their answers, a few seconds at most (a consumer waiting to start again after a failure
/// does not answer): see [`crate::writeback::CatchUpAsk`].
pub async fn catch_up(
    ask: &tokio::sync::watch::Sender<crate::writeback::CatchUpAsk>,
    consumers: usize,
) {
    if consumers == 0 {
        return;
    }
    let (done, mut answers) = mpsc::channel(consumers);
    ask.send_replace(Some(done));
    let all = async {
        let mut tables = std::collections::BTreeSet::new();
        while tables.len() < consumers {
            match answers.recv().await {
                Some(table) => {
                    tables.insert(table);
                }
                None => break,
            }
        }
    };
    if tokio::time::timeout(CATCH_UP_WAIT, all).await.is_err() {
        warn!("reload: not every write-back consumer caught up with its stream in time; the next ones read on from the saved positions");
    }
    ask.send_replace(None);
}

/// How long a reload waits for the write-back consumers to catch up (their own limit, 5 s,
/// and a read in flight).
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(7);

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
        assert!(what.contains("changed: a"), "{what}");
    }

    /// A rotated API token is not "unchanged" (its `Debug` text is hidden): the answer says it
    /// takes effect at the next restart.
    #[test]
    fn a_rotated_api_token_is_a_change() {
        let running = config(&[("a", "id > 1")]);
        let mut read = running.clone();
        let api = |token: &str| crate::config::ApiConfig {
            listen: "127.0.0.1:9001".parse().unwrap(),
            token: Some(crate::config::Secret::new(token.into())),
        };
        let mut with_token = running.clone();
        with_token.api = api("old");
        read.api = api("new");
        let what = changes(&with_token, &read).expect("a change");
        assert!(
            what.contains("[api] takes effect at the next restart"),
            "{what}"
        );
    }
}
