//! Raw → validated. Collects every problem with its file and field.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawAttribute, RawConfig, RawView};
use super::{
    CheckpointStoreConfig, Config, ConfigErrors, DeadLetterConfig, DynamoConfig, Problem,
    SourceConfig, WriteMode, WriterConfig,
};
use crate::view::filter::Expr;
use crate::view::spec::{
    Aggregate, AttributeSpec, Attributes, FillMode, Join, JoinKind, KeySpec, OrderBy, TableRef,
    View,
};
use crate::view::template::Template;
use crate::view::value::Conversion;

struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    fn add(&mut self, file: &Path, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem {
            file: file.to_path_buf(),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// `${VAR}` from the environment; a missing variable is a problem.
fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
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

fn toml_problem(file: &Path, text: &str, error: &toml::de::Error, problems: &mut Problems) {
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
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            problems.add(path, "", format!("cannot read: {error}"));
            return Err(ConfigErrors(problems.list));
        }
    };
    let raw: RawConfig = match toml::from_str(&text) {
        Ok(raw) => raw,
        Err(error) => {
            toml_problem(path, &text, &error, &mut problems);
            return Err(ConfigErrors(problems.list));
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));

    let url = match expand_env(&raw.source.url, env) {
        Ok(url) => url,
        Err(message) => {
            problems.add(path, "source.url", message);
            String::new()
        }
    };
    if !url.is_empty() {
        if let Err(error) = mysql_async::Opts::from_url(&url) {
            problems.add(path, "source.url", format!("not a mysql:// URL: {error}"));
        }
    }
    if raw.source.server_id == 0 {
        problems.add(
            path,
            "source.server_id",
            "must be a positive replica server id",
        );
    }
    let start_at_beginning = match raw.source.start.as_deref() {
        None | Some("end") => false,
        Some("beginning") => true,
        Some(other) => {
            problems.add(
                path,
                "source.start",
                format!("{other:?}: expected \"end\" or \"beginning\""),
            );
            false
        }
    };
    let resume_by_gtid = match raw.source.resume.as_deref() {
        None | Some("file") => false,
        Some("gtid") => true,
        Some(other) => {
            problems.add(
                path,
                "source.resume",
                format!("{other:?}: expected \"file\" or \"gtid\""),
            );
            false
        }
    };
    let rebackfill_on_purged = match raw.source.on_purged.as_deref() {
        None | Some("stop") => false,
        Some("rebackfill") => true,
        Some(other) => {
            problems.add(
                path,
                "source.on_purged",
                format!("{other:?}: expected \"stop\" or \"rebackfill\""),
            );
            false
        }
    };
    let heartbeat_ms = raw.source.heartbeat_interval_ms.unwrap_or(1000);
    if heartbeat_ms == 0 {
        problems.add(path, "source.heartbeat_interval_ms", "must be positive");
    }
    let idle_ms = raw
        .source
        .idle_timeout_ms
        .unwrap_or(heartbeat_ms.saturating_mul(5).max(5000));
    if idle_ms <= heartbeat_ms {
        problems.add(
            path,
            "source.idle_timeout_ms",
            "must be longer than heartbeat_interval_ms",
        );
    }

    let checkpoint = match (&raw.checkpoint.table, &raw.checkpoint.path) {
        (Some(_), Some(_)) => {
            problems.add(path, "checkpoint", "set either table or path, not both");
            None
        }
        (Some(table), None) => {
            check_table_name(path, "checkpoint.table", table, &mut problems);
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

    let listen = raw.metrics.listen.as_deref().unwrap_or("127.0.0.1:9187");
    let metrics_listen = match listen.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(error) => {
            problems.add(path, "metrics.listen", format!("{listen:?}: {error}"));
            SocketAddr::from(([127, 0, 0, 1], 9187))
        }
    };

    let writer = compile_writer(path, &raw, &mut problems);

    if raw.views.is_empty() {
        problems.add(path, "views", "no view globs given");
    }
    let mut view_files = Vec::new();
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
                view_files.extend(matched);
            }
        }
    }
    view_files.dedup();

    let mut views: Vec<Arc<View>> = Vec::new();
    let mut names: HashMap<String, PathBuf> = HashMap::new();
    let mut table_keys: HashMap<String, (PathBuf, String, Option<String>)> = HashMap::new();
    for file in &view_files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) => {
                problems.add(file, "", format!("cannot read: {error}"));
                continue;
            }
        };
        let raw_view: RawView = match toml::from_str(&text) {
            Ok(raw_view) => raw_view,
            Err(error) => {
                toml_problem(file, &text, &error, &mut problems);
                continue;
            }
        };
        let before = problems.list.len();
        let Some(view) = compile_view_into(file, raw_view, &mut problems) else {
            continue;
        };
        if let Some(other) = names.insert(view.name.clone(), file.clone()) {
            problems.add(
                file,
                "name",
                format!(
                    "{:?} is also the name of the view in {}",
                    view.name,
                    other.display()
                ),
            );
        }
        let keys = (
            file.clone(),
            view.key.pk_attribute.clone(),
            view.key.sk_attribute.clone(),
        );
        if let Some((other, pk, sk)) = table_keys.get(&view.table) {
            if *pk != keys.1 || *sk != keys.2 {
                problems.add(file, "key", format!(
                    "table {} is shared with the view in {} whose key attributes differ ({pk}/{sk:?} vs {}/{:?})",
                    view.table, other.display(), keys.1, keys.2
                ));
            }
        } else {
            table_keys.insert(view.table.clone(), keys);
        }
        if problems.list.len() == before {
            views.push(Arc::new(view));
        }
    }

    check_unambiguous_writeback(&views, &mut problems);
    if !problems.list.is_empty() {
        return Err(ConfigErrors(problems.list));
    }
    Ok(Config {
        file: path.to_path_buf(),
        source: SourceConfig {
            url,
            server_id: raw.source.server_id,
            heartbeat_interval: Duration::from_millis(heartbeat_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            start_at_beginning,
            resume_by_gtid,
            rebackfill_on_purged,
            max_backoff: Duration::from_millis(raw.source.max_backoff_ms.unwrap_or(10_000)),
        },
        dynamodb: DynamoConfig {
            endpoint_url: raw.dynamodb.endpoint_url,
            region: raw.dynamodb.region,
        },
        checkpoint: checkpoint.expect("a checkpoint problem was reported above"),
        checkpoint_interval: Duration::from_millis(raw.checkpoint.interval_ms.unwrap_or(1000)),
        metrics_listen,
        writer,
        dead_letter,
        streams_poll_interval: Duration::from_millis(
            raw.streams
                .poll_interval_ms
                .unwrap_or(250)
                .clamp(10, 60_000),
        ),
        streams_skip_replication: raw.streams.skip_replication.unwrap_or(false),
        backfill_chunk_rows: raw.backfill.chunk_rows.unwrap_or(1000).clamp(1, 100_000),
        join_max_dirty_keys: raw.backfill.join_max_dirty_keys.unwrap_or(100_000).max(1),
        views,
    })
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
        max_window_items: max_window_items.max(1),
        queue_capacity: queue_capacity.max(1),
        mode,
    }
}

fn check_table_name(file: &Path, field: &str, name: &str, problems: &mut Problems) {
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

fn check_attribute_name(file: &Path, field: &str, name: &str, problems: &mut Problems) {
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

fn compile_attribute(
    file: &Path,
    field: &str,
    name: &str,
    raw: &RawAttribute,
    problems: &mut Problems,
) -> AttributeSpec {
    let (column, conversion) = match raw {
        RawAttribute::Column(column) => (column.clone(), Conversion::Native),
        RawAttribute::Spec(spec) => {
            let conversion = match spec.conversion.as_deref() {
                None => Conversion::Native,
                Some(text) => Conversion::parse(text).unwrap_or_else(|| {
                    problems.add(file, format!("{field}.as"), format!(
                        "{text:?}: expected one of string, number, epoch_seconds, epoch_millis, json_string"
                    ));
                    Conversion::Native
                }),
            };
            (spec.column.clone(), conversion)
        }
    };
    if column.is_empty() {
        problems.add(file, field, "column name is empty");
    }
    AttributeSpec {
        name: name.to_string(),
        column,
        conversion,
    }
}

/// Compiles one view spec; `None` when a problem makes the rest meaningless.
pub fn compile_view(file: &Path, text: &str) -> Result<View, ConfigErrors> {
    let mut problems = Problems { list: Vec::new() };
    let raw: RawView = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(error) => {
            toml_problem(file, text, &error, &mut problems);
            return Err(ConfigErrors(problems.list));
        }
    };
    match compile_view_into(file, raw, &mut problems) {
        Some(view) if problems.list.is_empty() => Ok(view),
        _ => Err(ConfigErrors(problems.list)),
    }
}

fn compile_view_into(file: &Path, raw: RawView, problems: &mut Problems) -> Option<View> {
    if raw.name.is_empty()
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        problems.add(
            file,
            "name",
            format!("{:?} must match [a-z0-9_]+", raw.name),
        );
    }
    check_table_name(file, "table", &raw.table, problems);
    let source = TableRef::parse(&raw.source);
    if source.is_none() {
        problems.add(
            file,
            "source",
            format!("{:?} must be database.table", raw.source),
        );
    }
    let filter = raw
        .filter
        .as_deref()
        .and_then(|text| match Expr::parse(text) {
            Ok(expr) => Some(expr),
            Err(error) => {
                problems.add(file, "filter", error.to_string());
                None
            }
        });
    let mut template = |field: &str, text: &str| match Template::parse(text) {
        Ok(t) => Some(t),
        Err(error) => {
            problems.add(file, field, format!("{text:?}: {error}"));
            None
        }
    };
    let pk = template("key.pk", &raw.key.pk);
    let sk = raw.key.sk.as_deref().map(|text| template("key.sk", text));
    if raw.key.pk.is_empty() {
        problems.add(file, "key.pk", "the partition key template is empty");
    }
    let pk_attribute = raw
        .key
        .pk_attribute
        .clone()
        .unwrap_or_else(|| "pk".to_string());
    check_attribute_name(file, "key.pk_attribute", &pk_attribute, problems);
    let sk_attribute = match (&raw.key.sk, &raw.key.sk_attribute) {
        (None, Some(_)) => {
            problems.add(file, "key.sk_attribute", "set without key.sk");
            None
        }
        (None, None) => None,
        (Some(_), attr) => Some(attr.clone().unwrap_or_else(|| "sk".to_string())),
    };
    if let Some(sk_attribute) = &sk_attribute {
        check_attribute_name(file, "key.sk_attribute", sk_attribute, problems);
        if *sk_attribute == pk_attribute {
            problems.add(
                file,
                "key.sk_attribute",
                "must differ from key.pk_attribute",
            );
        }
    }
    let attributes = match &raw.attributes {
        None => Attributes::Implicit,
        Some(map) => Attributes::Explicit(compile_attributes(
            file,
            map,
            &pk_attribute,
            sk_attribute.as_deref(),
            problems,
        )),
    };
    let joins = compile_joins(
        file,
        &raw,
        &attributes,
        [&pk_attribute, sk_attribute.as_deref().unwrap_or("")],
        problems,
    );
    let fill = match raw.fill.as_ref().and_then(|f| f.mode.as_deref()) {
        None | Some("eager") => FillMode::Eager,
        Some("lazy") => FillMode::Lazy,
        Some(other) => {
            problems.add(
                file,
                "fill.mode",
                format!("{other:?}: expected \"eager\" or \"lazy\""),
            );
            FillMode::Eager
        }
    };
    let writeback_enabled = raw
        .writeback
        .as_ref()
        .and_then(|w| w.enabled)
        .unwrap_or(false);
    let writeback_attributes = raw
        .writeback
        .as_ref()
        .and_then(|w| w.attributes.clone())
        .unwrap_or_default();
    if let Attributes::Explicit(specs) = &attributes {
        for (i, name) in writeback_attributes.iter().enumerate() {
            if !specs.iter().any(|s| s.name == *name) {
                problems.add(
                    file,
                    format!("writeback.attributes[{i}]"),
                    format!("{name:?} is not an attribute of this view"),
                );
            }
        }
    }
    let key_columns: Vec<String> = pk
        .iter()
        .chain(sk.iter().flatten())
        .flat_map(|t| t.columns().map(str::to_string))
        .collect();
    for (i, name) in writeback_attributes.iter().enumerate() {
        let field = format!("writeback.attributes[{i}]");
        if name == &pk_attribute || Some(name.as_str()) == sk_attribute.as_deref() {
            problems.add(
                file,
                &field,
                format!("{name:?} is a key attribute: keys are parsed back, not written"),
            );
        } else if let Some(column) = key_column_of(&attributes, name, &key_columns) {
            problems.add(
                file,
                &field,
                format!(
                    "{name:?} maps to key column {column}: write-back never assigns key columns"
                ),
            );
        } else if joins.iter().any(|j| j.adds_attribute(name)) {
            problems.add(file, &field, format!("{name:?} comes from a join; only the root table's attributes can be written back"));
        }
    }
    if writeback_enabled && writeback_attributes.is_empty() {
        problems.add(
            file,
            "writeback.attributes",
            "write-back is enabled but no attribute is writable",
        );
    }
    Some(View {
        name: raw.name,
        file: file.to_path_buf(),
        table: raw.table,
        source: source?,
        filter,
        key: KeySpec {
            pk: pk?,
            sk: match sk {
                None => None,
                Some(t) => Some(t?),
            },
            pk_attribute,
            sk_attribute,
        },
        attributes,
        fill,
        writeback_enabled,
        writeback_attributes,
        joins,
    })
}

/// The key column an attribute maps to, if it maps to one.
fn key_column_of(attributes: &Attributes, name: &str, key_columns: &[String]) -> Option<String> {
    let column = match attributes {
        Attributes::Implicit => name.to_string(),
        Attributes::Explicit(specs) => specs.iter().find(|s| s.name == name)?.column.clone(),
    };
    key_columns.contains(&column).then_some(column)
}

/// Write-back finds an item's view by parsing its key: the keys of a write-back view must not
/// be keys another view of its table could write.
fn check_unambiguous_writeback(views: &[Arc<View>], problems: &mut Problems) {
    for view in views.iter().filter(|v| v.writeback_enabled) {
        for other in views {
            if Arc::ptr_eq(view, other) || other.table != view.table {
                continue;
            }
            let pk = view.key.pk.may_overlap(&other.key.pk);
            let sk = match (&view.key.sk, &other.key.sk) {
                (Some(a), Some(b)) => a.may_overlap(b),
                _ => true,
            };
            if pk && sk {
                problems.add(
                    &view.file,
                    "key",
                    format!(
                        "a key of this write-back view could also be a key of view {:?} ({}) in table {}: write-back could not tell whose item it is; give the templates distinct literal prefixes (ORDER#…, CUSTOMER#…)",
                        other.name,
                        other.file.display(),
                        view.table
                    ),
                );
            }
        }
    }
}

fn compile_on(
    file: &Path,
    field: &str,
    on: &BTreeMap<String, String>,
    problems: &mut Problems,
) -> Vec<(String, String)> {
    if on.is_empty() {
        problems.add(
            file,
            format!("{field}.on"),
            "needs at least one column pair",
        );
    }
    let mut pairs = Vec::new();
    for (from_column, root_column) in on {
        if from_column.is_empty() || root_column.is_empty() {
            problems.add(
                file,
                format!("{field}.on.{from_column}"),
                "column name is empty",
            );
        }
        pairs.push((from_column.clone(), root_column.clone()));
    }
    pairs
}

fn compile_from(file: &Path, field: &str, text: &str, problems: &mut Problems) -> TableRef {
    TableRef::parse(text).unwrap_or_else(|| {
        problems.add(
            file,
            format!("{field}.from"),
            format!("{text:?} must be database.table"),
        );
        TableRef {
            database: String::new(),
            table: String::new(),
        }
    })
}

fn compile_order_by(
    file: &Path,
    field: &str,
    raw: Option<&toml::Value>,
    problems: &mut Problems,
) -> Vec<OrderBy> {
    let texts: Vec<String> = match raw {
        None => return Vec::new(),
        Some(toml::Value::String(text)) => text.split(',').map(str::to_string).collect(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().unwrap_or("").to_string())
            .collect(),
        Some(other) => {
            problems.add(
                file,
                format!("{field}.order_by"),
                format!(
                    "expected a column, \"col DESC\" or a list of them, found a {}",
                    other.type_str()
                ),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for text in texts {
        let words: Vec<&str> = text.split_whitespace().collect();
        let parsed = match words.as_slice() {
            [column] => Some((column, false)),
            [column, dir] if dir.eq_ignore_ascii_case("desc") => Some((column, true)),
            [column, dir] if dir.eq_ignore_ascii_case("asc") => Some((column, false)),
            _ => None,
        };
        match parsed {
            Some((column, descending)) => out.push(OrderBy {
                column: column.to_string(),
                descending,
            }),
            None => problems.add(
                file,
                format!("{field}.order_by"),
                format!("{text:?}: expected \"column\" or \"column DESC\""),
            ),
        }
    }
    out
}

/// Lookups, embeds and aggregates; every attribute they add must be new to the item.
fn compile_joins(
    file: &Path,
    raw: &RawView,
    attributes: &Attributes,
    keys: [&str; 2],
    problems: &mut Problems,
) -> Vec<Join> {
    let mut taken: Vec<String> = keys
        .iter()
        .filter(|k| !k.is_empty())
        .map(|k| k.to_string())
        .collect();
    if let Attributes::Explicit(specs) = attributes {
        taken.extend(specs.iter().map(|s| s.name.clone()));
    }
    let mut claim = |field: &str, name: &str, problems: &mut Problems| {
        check_attribute_name(file, field, name, problems);
        if taken.iter().any(|t| t == name) {
            problems.add(
                file,
                field,
                format!("{name:?} is already an attribute of this view"),
            );
        }
        taken.push(name.to_string());
    };
    let mut joins = Vec::new();
    for (i, lookup) in raw.lookup.iter().flatten().enumerate() {
        let field = format!("lookup[{i}]");
        if lookup.attributes.is_empty() {
            problems.add(file, format!("{field}.attributes"), "copies no attribute");
        }
        let mut specs = Vec::new();
        for (name, attribute) in &lookup.attributes {
            let attr_field = format!("{field}.attributes.{name}");
            claim(&attr_field, name, problems);
            specs.push(compile_attribute(
                file,
                &attr_field,
                name,
                attribute,
                problems,
            ));
        }
        joins.push(Join {
            from: compile_from(file, &field, &lookup.from, problems),
            on: compile_on(file, &field, &lookup.on, problems),
            kind: JoinKind::Lookup { attributes: specs },
            field,
        });
    }
    for (i, embed) in raw.embed.iter().flatten().enumerate() {
        let field = format!("embed[{i}]");
        claim(&format!("{field}.attribute"), &embed.attribute, problems);
        let specs = embed.attributes.as_ref().map(|map| {
            map.iter()
                .map(|(name, attribute)| {
                    let attr_field = format!("{field}.attributes.{name}");
                    if name.is_empty() {
                        problems.add(file, &attr_field, "attribute name is empty");
                    }
                    compile_attribute(file, &attr_field, name, attribute, problems)
                })
                .collect()
        });
        joins.push(Join {
            from: compile_from(file, &field, &embed.from, problems),
            on: compile_on(file, &field, &embed.on, problems),
            kind: JoinKind::Embed {
                attribute: embed.attribute.clone(),
                order_by: compile_order_by(file, &field, embed.order_by.as_ref(), problems),
                attributes: specs,
            },
            field,
        });
    }
    for (i, aggregate) in raw.aggregate.iter().flatten().enumerate() {
        let field = format!("aggregate[{i}]");
        claim(
            &format!("{field}.attribute"),
            &aggregate.attribute,
            problems,
        );
        let function = Aggregate::parse(&aggregate.function).unwrap_or_else(|| {
            problems.add(
                file,
                format!("{field}.function"),
                format!(
                    "{:?}: expected count, sum:COLUMN, min:COLUMN or max:COLUMN",
                    aggregate.function
                ),
            );
            Aggregate::Count
        });
        joins.push(Join {
            from: compile_from(file, &field, &aggregate.from, problems),
            on: compile_on(file, &field, &aggregate.on, problems),
            kind: JoinKind::Aggregate {
                attribute: aggregate.attribute.clone(),
                function,
            },
            field,
        });
    }
    joins
}

fn compile_attributes(
    file: &Path,
    map: &BTreeMap<String, RawAttribute>,
    pk_attribute: &str,
    sk_attribute: Option<&str>,
    problems: &mut Problems,
) -> Vec<AttributeSpec> {
    let mut specs = Vec::new();
    for (name, raw) in map {
        let field = format!("attributes.{name}");
        check_attribute_name(file, &field, name, problems);
        if name == pk_attribute || Some(name.as_str()) == sk_attribute {
            problems.add(
                file,
                &field,
                format!("{name:?} is a key attribute of this view"),
            );
        }
        specs.push(compile_attribute(file, &field, name, raw, problems));
    }
    specs
}

#[cfg(test)]
pub(super) fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load(path, env)
}
