//! The rules between views that share an index of one table (an overloaded GSI).

use std::collections::HashMap;
use std::sync::Arc;

use super::compile::Problems;
use crate::view::spec::{Attributes, View};

/// Views of one table that name the same index agree on its key attributes and projection
/// (a GSI has one of each), and no view of the table holds an index key attribute as a plain
/// attribute (its value need not be a string, which the index key requires).
pub(super) fn check_shared_indexes(views: &[Arc<View>], problems: &mut Problems) {
    let mut seen: HashMap<(&str, &str), (&View, usize)> = HashMap::new();
    for view in views {
        for (i, index) in view.indexes.iter().enumerate() {
            let field = format!("index[{i}]");
            match seen.get(&(&*view.table, index.name.as_str())) {
                None => {
                    seen.insert((&*view.table, &index.name), (view, i));
                }
                Some((other, j)) => {
                    let first = &other.indexes[*j];
                    let same_keys = first.pk_attribute == index.pk_attribute
                        && first.sk_attribute == index.sk_attribute;
                    if !same_keys {
                        problems.add(&view.file, &field, format!(
                            "index {} of table {} has key attributes {}/{:?} in {}, here {}/{:?}: views sharing an index use one pair of attribute names",
                            index.name, view.table, first.pk_attribute, first.sk_attribute,
                            other.file.display(), index.pk_attribute, index.sk_attribute
                        ));
                    }
                    if first.projection != index.projection {
                        problems.add(&view.file, format!("{field}.projection"), format!(
                            "index {} of table {} has the projection {} in {}, here {}: an index has one projection",
                            index.name, view.table, first.projection, other.file.display(), index.projection
                        ));
                    }
                }
            }
            for other in views.iter().filter(|o| o.table == view.table) {
                for name in index.attributes() {
                    let plain = match &other.attributes {
                        Attributes::Explicit(specs) => specs.iter().any(|s| s.name == *name),
                        Attributes::Implicit => false,
                    } || other.joins.iter().any(|j| j.adds_attribute(name));
                    if plain && !Arc::ptr_eq(other, view) {
                        problems.add(&view.file, &field, format!(
                            "{name:?} is an attribute of view {:?} ({}) in the same table: an index key attribute holds index keys only",
                            other.name, other.file.display()
                        ));
                    }
                }
            }
        }
    }
}
