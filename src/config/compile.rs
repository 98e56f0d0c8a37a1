//! Raw → validated, for the daemon config: collects every problem with its file and field.
//! View specs are compiled in `view.rs` (their joins in `joins.rs`).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawConfig, RawView};
use super::shared_index::check_shared_indexes;
use super::view::{check_unambiguous_writeback, compile_view_into};
use super::{
    CheckpointStoreConfig, Config, ConfigErrors, DeadLetterConfig, DynamoConfig, Problem,
    SourceConfig, VerifyConfig, WriteMode, WriterConfig,
};
use crate::view::name::Name;
use crate::view::spec::View;

pub(super) struct Problems {
    pub(super) list: Vec<Problem>,
}

impl Problems {
    pub(super) fn add(
        &mut self,
        file: &Path,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.list.push(Problem {
            file: file.to_path_buf(),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// `${VAR}` from the environment; a missing variable is a problem.
pub(super) fn expand_env(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("unclosed ${".to_string());
        };
        let name = &after[..end];
        match env(name) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(super) fn toml_problem(
    file: &Path,
    text: &str,
    error: &toml::de::Error,
    problems: &mut Problems,
) {
    let message = error.message().trim().to_string();
    let field = error
        .span()
        .map(|span| field_at(text, span.start))
        .unwrap_or_default();
    problems.add(file, field, message);
}

/// The dotted name of the field at byte `offset` (`source.server_id`, `attributes.total`),
/// with its line, from the nearest `[table]` header above and the key on the offset's line.
fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let header = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let trimmed = line.trim();
    let key = if trimmed.starts_with('[') {
        None
    } else {
        trimmed
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
    };
    let name = match (header, key) {
        (Some(h), Some(k)) => format!("{h}.{k}"),
        (Some(h), None) => h,
        (None, Some(k)) => k,
        (None, None) => String::new(),
    };
    if name.is_empty() {
        format!("line {line_no}")
    } else {
        format!("{name} (line {line_no})")
    }
}

pub(super) fn load(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut problems = Problems { list: Vec::new() };
    let Some(raw) = read_toml::<RawConfig>(path, &mut problems) else {
        return Err(ConfigErrors(problems.list));
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let source = compile_source(path, &raw, env, &mut problems);
    let (checkpoint, dead_letter) = compile_stores(path, base, &raw, &mut problems);
    let listen = raw.metrics.listen.as_deref().unwrap_or("127.0.0.1:9187");
    let metrics_listen = listen.parse::<SocketAddr>().unwrap_or_else(|error| {
        problems.add(path, "metrics.listen", format!("{listen:?}: {error}"));
        SocketAddr::from(([127, 0, 0, 1], 9187))
    });
    let api = super::source::compile_api(path, base, &raw.api, &mut problems);
    if api.listen == metrics_listen {
        problems.add(path, "api.listen", "must differ from metrics.listen");
    }
    let pipeline_name = pipeline_name(path, &raw, &mut problems);
    let writer = compile_writer(path, &raw, &mut problems);
    let checkpoint_interval = positive_ms(
        path,
        "checkpoint.interval_ms",
        raw.checkpoint.interval_ms,
        1000,
        &mut problems,
    );
    let verify = raw.verify.as_ref().map(|v| VerifyConfig {
        interval: Duration::from_secs(v.interval_s.unwrap_or(3600)),
        max_items_per_second: Some(v.max_items_per_second.unwrap_or(1000)).filter(|&r| r > 0),
        repair: v.repair.unwrap_or(false),
        segments: v.segments.unwrap_or(2).clamp(1, 64),
    });
    if raw.verify.as_ref().is_some_and(|v| v.interval_s == Some(0)) {
        problems.add(path, "verify.interval_s", "must be at least 1".to_string());
    }
    let view_files = view_files(path, base, &raw, &mut problems);
    let views = load_views(&view_files, &mut problems);
    if !problems.list.is_empty() {
        return Err(ConfigErrors(problems.list));
    }
    Ok(Config {
        file: path.to_path_buf(),
        source,
        dynamodb: DynamoConfig {
            endpoint_url: raw.dynamodb.endpoint_url,
            region: raw.dynamodb.region,
        },
        checkpoint: checkpoint.expect("a checkpoint problem was reported above"),
        checkpoint_interval,
        metrics_listen,
        pipeline_name,
        api,
        writer,
        dead_letter,
        streams_poll_interval: Duration::from_millis(
            raw.streams
                .poll_interval_ms
                .unwrap_or(200)
                .clamp(10, 60_000),
        ),
        streams_skip_replication: raw.streams.skip_replication.unwrap_or(false),
        backfill_chunk_rows: raw.backfill.chunk_rows.unwrap_or(1000).clamp(1, 100_000),
        join_max_dirty_keys: raw.backfill.join_max_dirty_keys.unwrap_or(100_000).max(1),
        backfill_max_items_per_second: raw.backfill.max_items_per_second.filter(|&r| r > 0),
        verify,
        views,
    })
}

/// A duration in milliseconds that must be positive (zero would spin or panic).
fn positive_ms(
    path: &Path,
    field: &str,
    value: Option<u64>,
    default: u64,
    problems: &mut Problems,
) -> Duration {
    let ms = value.unwrap_or(default);
    if ms == 0 {
        problems.add(path, field, "must be positive");
        return Duration::from_millis(default);
    }
    Duration::from_millis(ms)
}

/// A TOML file as `T`; `None` (with the problem listed) when it cannot be read or parsed.
pub(super) fn read_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    problems: &mut Problems,
) -> Option<T> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            problems.add(path, "", format!("cannot read: {error}"));
            return None;
        }
    };
    match toml::from_str(&text) {
        Ok(raw) => Some(raw),
        Err(error) => {
            toml_problem(path, &text, &error, problems);
            None
        }
    }
}

/// One of a few words, the first being the default.
pub(super) fn choice(
    path: &Path,
    field: &str,
    value: Option<&str>,
    words: [&str; 2],
    problems: &mut Problems,
) -> bool {
    match value {
        None => false,
        Some(word) if word == words[0] => false,
        Some(word) if word == words[1] => true,
        Some(other) => {
            problems.add(
                path,
                field,
                format!("{other:?}: expected {:?} or {:?}", words[0], words[1]),
            );
            false
        }
    }
}

fn compile_source(
    path: &Path,
    raw: &RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> SourceConfig {
    let source = &raw.source;
    let connection = super::source::compile_connection(path, source, env, problems);
    if source.server_id == 0 {
        problems.add(
            path,
            "source.server_id",
            "must be a positive replica server id",
        );
    }
    let start = source.start.as_deref();
    let start_at_beginning = choice(path, "source.start", start, ["end", "beginning"], problems);
    let resume = source.resume.as_deref();
    let resume_by_gtid = choice(path, "source.resume", resume, ["file", "gtid"], problems);
    let on_purged = source.on_purged.as_deref();
    let rebackfill_on_purged = choice(
        path,
        "source.on_purged",
        on_purged,
        ["stop", "rebackfill"],
        problems,
    );
    let heartbeat_ms = source.heartbeat_interval_ms.unwrap_or(1000);
    if heartbeat_ms == 0 {
        problems.add(path, "source.heartbeat_interval_ms", "must be positive");
    }
    let idle_ms = source
        .idle_timeout_ms
        .unwrap_or(heartbeat_ms.saturating_mul(5).max(5000));
    if idle_ms <= heartbeat_ms {
        problems.add(
            path,
            "source.idle_timeout_ms",
            "must be longer than heartbeat_interval_ms",
        );
    }
    SourceConfig {
        connection,
        server_id: source.server_id,
        heartbeat_interval: Duration::from_millis(heartbeat_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        start_at_beginning,
        resume_by_gtid,
        rebackfill_on_purged,
        max_backoff: positive_ms(
            path,
            "source.max_backoff_ms",
            source.max_backoff_ms,
            10_000,
            problems,
        ),
    }
}

/// `[pipeline] name`: `[a-z0-9_-]{1,64}`, as it becomes part of control-table keys.
fn pipeline_name(path: &Path, raw: &RawConfig, problems: &mut Problems) -> Option<String> {
    let name = raw.pipeline.name.clone()?;
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        // All digits would be the key of an unnamed pipeline with that server_id.
        && !name.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        let message = format!("{name:?}: expected [a-z0-9_-]{{1,64}}, not only digits");
        problems.add(path, "pipeline.name", message);
    }
    Some(name)
}

/// Where checkpoints and dead letters go.
fn compile_stores(
    path: &Path,
    base: &Path,
    raw: &RawConfig,
    problems: &mut Problems,
) -> (Option<CheckpointStoreConfig>, DeadLetterConfig) {
    let checkpoint = match (&raw.checkpoint.table, &raw.checkpoint.path) {
        (Some(_), Some(_)) => {
            problems.add(path, "checkpoint", "set either table or path, not both");
            None
        }
        (Some(table), None) => {
            check_table_name(path, "checkpoint.table", table, problems);
            Some(CheckpointStoreConfig::Table(table.clone()))
        }
        (None, Some(file)) => Some(CheckpointStoreConfig::File(base.join(file))),
        (None, None) => Some(CheckpointStoreConfig::Table(
            "rowcast_checkpoints".to_string(),
        )),
    };
    let dead_letter = match (&raw.dead_letter.path, &checkpoint) {
        (Some(file), _) => DeadLetterConfig::File(base.join(file)),
        (None, Some(CheckpointStoreConfig::Table(t))) => DeadLetterConfig::Table(t.clone()),
        (None, Some(CheckpointStoreConfig::File(f))) => {
            let mut name = f.clone().into_os_string();
            name.push(".deadletters.jsonl");
            DeadLetterConfig::File(PathBuf::from(name))
        }
        (None, None) => DeadLetterConfig::Table("rowcast_checkpoints".to_string()),
    };
    (checkpoint, dead_letter)
}

/// The view files the globs of `views` match, in order, each once.
fn view_files(path: &Path, base: &Path, raw: &RawConfig, problems: &mut Problems) -> Vec<PathBuf> {
    if raw.views.is_empty() {
        problems.add(path, "views", "no view globs given");
    }
    let mut files = Vec::new();
    for (i, pattern) in raw.views.iter().enumerate() {
        let field = format!("views[{i}]");
        let full = base.join(pattern);
        let Some(full) = full.to_str() else {
            problems.add(path, field, "path is not UTF-8");
            continue;
        };
        match glob::glob(full) {
            Err(error) => problems.add(path, field, format!("bad glob {pattern:?}: {error}")),
            Ok(paths) => {
                let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                if matched.is_empty() {
                    problems.add(path, field, format!("glob {pattern:?} matches no file"));
                }
                matched.sort();
                files.extend(matched);
            }
        }
    }
    // A file two globs match is loaded once, where it is first matched.
    let mut seen = std::collections::HashSet::new();
    files.retain(|file| seen.insert(file.clone()));
    files
}

/// Every view spec compiled; names unique, views of one table with the same key attributes,
/// write-back views unambiguous.
fn load_views(files: &[PathBuf], problems: &mut Problems) -> Vec<Arc<View>> {
    let mut views: Vec<Arc<View>> = Vec::new();
    let mut names: HashMap<String, PathBuf> = HashMap::new();
    // A shared table's first view file and key attribute names.
    type Keys = (PathBuf, Name, Option<Name>);
    let mut table_keys: HashMap<Name, Keys> = HashMap::new();
    for file in files {
        let Some(raw_view) = read_toml::<RawView>(file, problems) else {
            continue;
        };
        let before = problems.list.len();
        let Some(view) = compile_view_into(file, raw_view, problems) else {
            continue;
        };
        if let Some(other) = names.insert(view.name.clone(), file.clone()) {
            let message = format!(
                "{:?} is also the name of the view in {}",
                view.name,
                other.display()
            );
            problems.add(file, "name", message);
        }
        let keys = (
            file.clone(),
            view.key.pk_attribute.clone(),
            view.key.sk_attribute.clone(),
        );
        match table_keys.get(&*view.table) {
            Some((other, pk, sk)) if *pk != keys.1 || *sk != keys.2 => {
                problems.add(file, "key", format!(
                    "table {} is shared with the view in {} whose key attributes differ ({pk}/{sk:?} vs {}/{:?})",
                    view.table, other.display(), keys.1, keys.2
                ));
            }
            Some(_) => {}
            None => {
                table_keys.insert(view.table.clone(), keys);
            }
        }
        if problems.list.len() == before {
            views.push(Arc::new(view));
        }
    }
    check_unambiguous_writeback(&views, problems);
    check_shared_indexes(&views, problems);
    mark_removals(views)
}

/// Every view of a DynamoDB table that has a write-back view marks its removals.
fn mark_removals(views: Vec<Arc<View>>) -> Vec<Arc<View>> {
    let tables: HashSet<Name> = views
        .iter()
        .filter(|v| v.writeback_enabled)
        .map(|v| v.table.clone())
        .collect();
    views
        .into_iter()
        .map(|view| {
            if view.mark_removals || !tables.contains(&view.table) {
                return view;
            }
            let mut view = Arc::unwrap_or_clone(view);
            view.mark_removals = true;
            Arc::new(view)
        })
        .collect()
}

fn compile_writer(path: &Path, raw: &RawConfig, problems: &mut Problems) -> WriterConfig {
    let w = &raw.writer;
    let lanes = w.lanes.unwrap_or(8);
    if !(1..=256).contains(&lanes) {
        problems.add(path, "writer.lanes", "must be between 1 and 256");
    }
    let max_window_items = w.max_window_items.unwrap_or(100);
    if max_window_items == 0 {
        problems.add(path, "writer.max_window_items", "must be positive");
    }
    if w.linger_ms.is_some_and(|ms| ms > 10_000) {
        problems.add(path, "writer.linger_ms", "must be at most 10000");
    }
    let recheck_after_ms = w.recheck_after_ms.unwrap_or(60_000);
    if !(1_000..=3_600_000).contains(&recheck_after_ms) {
        problems.add(
            path,
            "writer.recheck_after_ms",
            "must be between 1000 and 3600000",
        );
    }
    let queue_capacity = w.queue_capacity.unwrap_or(1024);
    if queue_capacity == 0 {
        problems.add(path, "writer.queue_capacity", "must be positive");
    }
    let mode = match w.mode.as_deref() {
        None | Some("auto") => WriteMode::Auto,
        Some("conditional") => WriteMode::Conditional,
        Some(other) => {
            problems.add(
                path,
                "writer.mode",
                format!("{other:?}: expected \"auto\" or \"conditional\""),
            );
            WriteMode::Auto
        }
    };
    WriterConfig {
        lanes: lanes.clamp(1, 256),
        flush_interval: Duration::from_millis(w.flush_interval_ms.unwrap_or(20)),
        linger: Duration::from_millis(w.linger_ms.unwrap_or(0)),
        max_window_items: max_window_items.max(1),
        queue_capacity: queue_capacity.max(1),
        mode,
        recheck_after: Duration::from_millis(recheck_after_ms.clamp(1_000, 3_600_000)),
    }
}

pub(super) fn check_table_name(file: &Path, field: &str, name: &str, problems: &mut Problems) {
    let valid = (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !valid {
        problems.add(
            file,
            field,
            format!("{name:?} is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)"),
        );
    }
}

pub(super) fn check_attribute_name(file: &Path, field: &str, name: &str, problems: &mut Problems) {
    if name.is_empty() {
        problems.add(file, field, "attribute name is empty");
    } else if name.starts_with('_') {
        problems.add(
            file,
            field,
            format!("{name:?}: names beginning with '_' are reserved for rowcast's metadata"),
        );
    }
}

#[cfg(test)]
pub(super) fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load(path, env)
}
