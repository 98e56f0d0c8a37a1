//! Raw → validated, for a view spec: name, table, source, filter, key templates, attributes,
//! fill mode, write-back; its joins are compiled in `joins.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::compile::{check_attribute_name, check_table_name, choice, toml_problem, Problems};
use super::index::{compile_indexes, Taken};
use super::joins::compile_joins;
use super::raw::{RawAttribute, RawView};
use super::ConfigErrors;
use crate::view::filter::Expr;
use crate::view::name::Name;
use crate::view::row::same_column_name;
use crate::view::spec::{
    AttributeSpec, Attributes, FillMode, IndexSpec, Join, KeySpec, TableRef, View,
};
use crate::view::template::Template;
use crate::view::value::Conversion;

pub(super) fn compile_attribute(
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
        name: Name::interned(name),
        column: column.into(),
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

fn check_view_name(file: &Path, name: &str, problems: &mut Problems) {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        problems.add(file, "name", format!("{name:?} must match [a-z0-9_]+"));
    }
}

pub(super) fn compile_view_into(
    file: &Path,
    raw: RawView,
    problems: &mut Problems,
) -> Option<View> {
    check_view_name(file, &raw.name, problems);
    check_table_name(file, "table", &raw.table, problems);
    let source = TableRef::parse(&raw.source);
    if source.is_none() {
        let message = format!("{:?} must be database.table", raw.source);
        problems.add(file, "source", message);
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
    let key = compile_key(file, &raw, problems);
    let attributes = match &raw.attributes {
        None => Attributes::Implicit,
        Some(map) => Attributes::Explicit(compile_attributes(
            file,
            map,
            &key.pk_attribute,
            key.sk_attribute.as_deref(),
            problems,
        )),
    };
    let key_attributes = [&key.pk_attribute, key.sk_attribute.as_deref().unwrap_or("")];
    let joins = compile_joins(file, &raw, &attributes, key_attributes, problems);
    let taken = Taken {
        key: key_attributes,
        attributes: &attributes,
        joins: &joins,
    };
    let indexes = compile_indexes(file, &raw, &taken, problems);
    let fill_mode = raw.fill.as_ref().and_then(|f| f.mode.as_deref());
    let fill = match choice(file, "fill.mode", fill_mode, ["eager", "lazy"], problems) {
        false => FillMode::Eager,
        true => FillMode::Lazy,
    };
    let writeback = compile_writeback(file, &raw, &key, &attributes, (&joins, &indexes), problems);
    Some(View {
        name: raw.name,
        file: file.to_path_buf(),
        table: Name::interned(&raw.table),
        source: source?,
        filter,
        key: KeySpec {
            pk: key.pk?,
            sk: match key.sk {
                None => None,
                Some(t) => Some(t?),
            },
            pk_attribute: Name::interned(&key.pk_attribute),
            sk_attribute: key.sk_attribute.as_deref().map(Name::interned),
        },
        attributes,
        fill,
        writeback_enabled: writeback.0,
        mark_removals: writeback.0,
        writeback_attributes: writeback.1,
        joins,
        indexes,
    })
}

/// A view's key as compiled; a template that does not parse is `None` (its problem listed).
struct CompiledKey {
    pk: Option<Template>,
    sk: Option<Option<Template>>,
    pk_attribute: String,
    sk_attribute: Option<String>,
}

impl CompiledKey {
    /// The columns the key templates name.
    fn columns(&self) -> Vec<String> {
        self.pk
            .iter()
            .chain(self.sk.iter().flatten())
            .flat_map(|t| t.columns().map(str::to_string))
            .collect()
    }

    fn is_key_attribute(&self, name: &str) -> bool {
        name == self.pk_attribute || Some(name) == self.sk_attribute.as_deref()
    }
}

fn compile_key(file: &Path, raw: &RawView, problems: &mut Problems) -> CompiledKey {
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
    let pk_attribute = raw.key.pk_attribute.clone().unwrap_or_else(|| "pk".into());
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
    CompiledKey {
        pk,
        sk,
        pk_attribute,
        sk_attribute,
    }
}

/// `[writeback]`: whether it is enabled, and the writable attributes — attributes of the view,
/// none a key, none mapped to a key column, none from a join.
fn compile_writeback(
    file: &Path,
    raw: &RawView,
    key: &CompiledKey,
    attributes: &Attributes,
    (joins, indexes): (&[Join], &[IndexSpec]),
    problems: &mut Problems,
) -> (bool, Vec<String>) {
    let enabled = raw
        .writeback
        .as_ref()
        .and_then(|w| w.enabled)
        .unwrap_or(false);
    let writable = raw
        .writeback
        .as_ref()
        .and_then(|w| w.attributes.clone())
        .unwrap_or_default();
    let key_columns = key.columns();
    for (i, name) in writable.iter().enumerate() {
        let field = format!("writeback.attributes[{i}]");
        let unknown = match attributes {
            Attributes::Explicit(specs) => !specs.iter().any(|s| *s.name == **name),
            Attributes::Implicit => false,
        };
        let problem = if unknown {
            Some(format!("{name:?} is not an attribute of this view"))
        } else if key.is_key_attribute(name) {
            Some(format!(
                "{name:?} is a key attribute: keys are parsed back, not written"
            ))
        } else if let Some(column) = key_column_of(attributes, name, &key_columns) {
            Some(format!(
                "{name:?} maps to key column {column}: write-back never assigns key columns"
            ))
        } else if joins.iter().any(|j| j.adds_attribute(name)) {
            Some(format!(
                "{name:?} comes from a join; only the root table's attributes can be written back"
            ))
        } else {
            let index = indexes
                .iter()
                .find(|x| x.attributes().any(|a| **a == **name));
            index.map(|index| {
                format!(
                    "{name:?} is a key attribute of index {}: index keys are rendered, not written",
                    index.name
                )
            })
        };
        if let Some(message) = problem {
            problems.add(file, field, message);
        }
    }
    if enabled && writable.is_empty() {
        problems.add(
            file,
            "writeback.attributes",
            "write-back is enabled but no attribute is writable",
        );
    }
    (enabled, writable)
}

/// The key column an attribute maps to, if it maps to one.
fn key_column_of(attributes: &Attributes, name: &str, key_columns: &[String]) -> Option<String> {
    let column = match attributes {
        Attributes::Implicit => name.to_string(),
        Attributes::Explicit(specs) => specs.iter().find(|s| &*s.name == name)?.column.to_string(),
    };
    // Without case: `ID` is key column `id` (MariaDB names columns so).
    let same = |key: &String| crate::view::row::same_column_name(key, &column);
    key_columns.iter().any(same).then_some(column)
}

/// Write-back finds an item's view by parsing its key: the keys of a write-back view must not
/// be keys another view of its table could write.
pub(super) fn check_unambiguous_writeback(views: &[Arc<View>], problems: &mut Problems) {
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

/// Warnings, not problems: columns of one source table that two write-back views write back.
/// DynamoDB Streams orders one item's changes only, so an application's changes of the two
/// views' items can reach SQL in the other order than it made them, and the later one is lost
/// (Known limitations). Shown by `rowcast check` and logged at start and at a reload, so that
/// the operator chooses one view to write each column back.
pub fn shared_writeback_columns(views: &[Arc<View>]) -> Vec<String> {
    let mut warnings = Vec::new();
    let writers: Vec<&Arc<View>> = views.iter().filter(|v| v.writeback_enabled).collect();
    for (i, view) in writers.iter().enumerate() {
        for other in &writers[i + 1..] {
            if view.source != other.source {
                continue;
            }
            let columns = |v: &View| -> Vec<String> {
                let attributes = v.writeback_attributes.iter();
                attributes
                    .filter_map(|a| v.writable(a))
                    .map(|(c, _)| c)
                    .collect()
            };
            let theirs = columns(other);
            let mut shared: Vec<String> = columns(view)
                .into_iter()
                .filter(|c| theirs.iter().any(|t| same_column_name(c, t)))
                .collect();
            shared.sort_by_key(|c| c.to_lowercase());
            shared.dedup_by(|a, b| same_column_name(a, b));
            if !shared.is_empty() {
                warnings.push(format!(
                    "{}: write-back views {:?} and {:?} ({}) both write column(s) {} of {} back: DynamoDB Streams orders each item's changes only, so an application's changes of the two items can reach SQL in the other order, the later one lost; write each column back through one view",
                    view.file.display(),
                    view.name,
                    other.name,
                    other.file.display(),
                    shared.join(", "),
                    view.source,
                ));
            }
        }
    }
    warnings
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
