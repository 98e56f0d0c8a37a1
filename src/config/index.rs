//! Raw → validated, for a view's `[[index]]` sections (global secondary indexes); the rules
//! between views that share an index of one table are in `shared_index.rs`.

use std::path::Path;

use super::compile::{check_attribute_name, Problems};
use super::raw::{RawIndex, RawView};
use crate::view::name::Name;
use crate::view::spec::{Attributes, IndexProjection, IndexSpec, Join};
use crate::view::template::Template;

/// DynamoDB's limit on the non-key attributes projected into the indexes of a table.
const MAX_PROJECTED_ATTRIBUTES: usize = 100;

/// The attribute names a view's items carry besides the index keys: its key attributes, its
/// explicit attributes and those its joins add.
pub(super) struct Taken<'a> {
    pub key: [&'a str; 2],
    pub attributes: &'a Attributes,
    pub joins: &'a [Join],
}

impl Taken<'_> {
    fn holds(&self, name: &str) -> Option<&'static str> {
        if self.key.contains(&name) {
            return Some("a key attribute of this view");
        }
        if let Attributes::Explicit(specs) = self.attributes {
            if specs.iter().any(|s| &*s.name == name) {
                return Some("an attribute of this view");
            }
        }
        self.joins
            .iter()
            .any(|j| j.adds_attribute(name))
            .then_some("an attribute a join of this view adds")
    }
}

pub(super) fn compile_indexes(
    file: &Path,
    raw: &RawView,
    taken: &Taken,
    problems: &mut Problems,
) -> Vec<IndexSpec> {
    let mut out: Vec<IndexSpec> = Vec::new();
    for (i, raw_index) in raw.index.iter().flatten().enumerate() {
        let field = format!("index[{i}]");
        let Some(index) = compile_index(file, &field, raw_index, problems) else {
            continue;
        };
        let names = [
            ("pk_attribute", Some(&index.pk_attribute)),
            ("sk_attribute", index.sk_attribute.as_ref()),
        ];
        for (suffix, name) in names.into_iter().filter_map(|(s, n)| Some((s, n?))) {
            let field = format!("{field}.{suffix}");
            if let Some(what) = taken.holds(name) {
                problems.add(file, &field, format!("{name:?} is {what}"));
            }
            if let Some(other) = out.iter().find(|o| o.attributes().any(|a| a == name)) {
                let message = format!("{name:?} is also a key attribute of index {}", other.name);
                problems.add(file, &field, message);
            }
        }
        if out.iter().any(|o| o.name == index.name) {
            let message = format!("index {:?} is named twice in this view", index.name);
            problems.add(file, format!("{field}.name"), message);
        }
        if let (IndexProjection::Include(names), Attributes::Explicit(_)) =
            (&index.projection, taken.attributes)
        {
            for name in names {
                if taken.holds(name).is_none() {
                    let message = format!("{name:?} is not an attribute of this view");
                    problems.add(file, format!("{field}.projection"), message);
                }
            }
        }
        out.push(index);
    }
    out
}

fn compile_index(
    file: &Path,
    field: &str,
    raw: &RawIndex,
    problems: &mut Problems,
) -> Option<IndexSpec> {
    let valid_name = (3..=255).contains(&raw.name.len())
        && raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid_name {
        let message = format!(
            "{:?}: an index name is 3 to 255 of A-Z a-z 0-9 _ - .",
            raw.name
        );
        problems.add(file, format!("{field}.name"), message);
    }
    let mut template = |suffix: &str, text: &str| match Template::parse(text) {
        Ok(t) => Some(t),
        Err(error) => {
            problems.add(
                file,
                format!("{field}.{suffix}"),
                format!("{text:?}: {error}"),
            );
            None
        }
    };
    let pk = template("pk", &raw.pk);
    let sk = raw.sk.as_deref().map(|text| template("sk", text));
    if raw.pk.is_empty() {
        problems.add(
            file,
            format!("{field}.pk"),
            "the index key template is empty",
        );
    }
    let pk_attribute = raw
        .pk_attribute
        .clone()
        .unwrap_or_else(|| format!("{}_pk", raw.name));
    check_attribute_name(
        file,
        &format!("{field}.pk_attribute"),
        &pk_attribute,
        problems,
    );
    let sk_attribute = match (&raw.sk, &raw.sk_attribute) {
        (None, Some(_)) => {
            problems.add(file, format!("{field}.sk_attribute"), "set without sk");
            None
        }
        (None, None) => None,
        (Some(_), name) => Some(name.clone().unwrap_or_else(|| format!("{}_sk", raw.name))),
    };
    if let Some(sk_attribute) = &sk_attribute {
        let sk_field = format!("{field}.sk_attribute");
        check_attribute_name(file, &sk_field, sk_attribute, problems);
        if *sk_attribute == pk_attribute {
            problems.add(file, sk_field, "must differ from pk_attribute");
        }
    }
    let projection = compile_projection(file, field, raw.projection.as_ref(), problems);
    Some(IndexSpec {
        name: raw.name.clone(),
        pk: pk?,
        sk: match sk {
            None => None,
            Some(t) => Some(t?),
        },
        pk_attribute: Name::interned(&pk_attribute),
        sk_attribute: sk_attribute.as_deref().map(Name::interned),
        projection,
    })
}

fn compile_projection(
    file: &Path,
    field: &str,
    raw: Option<&toml::Value>,
    problems: &mut Problems,
) -> IndexProjection {
    let field = format!("{field}.projection");
    match raw {
        None => IndexProjection::All,
        Some(toml::Value::String(text)) if text == "all" => IndexProjection::All,
        Some(toml::Value::String(text)) if text == "keys_only" => IndexProjection::KeysOnly,
        Some(toml::Value::Array(items)) => {
            let mut names = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(name) => {
                        check_attribute_name(file, &field, name, problems);
                        names.push(name.to_string());
                    }
                    None => problems.add(file, &field, "expected attribute names (strings)"),
                }
            }
            if names.is_empty() {
                problems.add(file, &field, "an empty list: use \"keys_only\"");
            }
            if names.len() > MAX_PROJECTED_ATTRIBUTES {
                let message = format!(
                    "{} attributes: DynamoDB projects at most {MAX_PROJECTED_ATTRIBUTES}",
                    names.len()
                );
                problems.add(file, &field, message);
            }
            names.sort();
            names.dedup();
            IndexProjection::Include(names)
        }
        Some(other) => {
            let message =
                format!("expected \"all\", \"keys_only\" or a list of attributes, found {other}");
            problems.add(file, &field, message);
            IndexProjection::All
        }
    }
}
