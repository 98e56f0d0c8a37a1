//! Names that items, keys and schemas share: attribute names, table names, ENUM and SET labels.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

/// A name, shared rather than copied by every item, key and cell that holds it.
///
/// The names a view's definition or a table's schema gives are interned: one copy for the life
/// of the process, which a clone copies as a pointer. A reference count would cost an atomic
/// instruction for each clone and each drop, about 5 ns each on these machines and twenty-odd
/// of each for one row change of the bench's view (`benches/cpu.rs`), a fifth of its CPU path.
/// The interned copies are never freed: they are bounded by the distinct names ever configured
/// (a reload's too, even one refused) and the distinct labels and column names ever seen in the
/// schemas of the tables read, which grow with DDL and reloads, never with rows or data.
///
/// Names read from data (the attribute names of items DynamoDB returns, which an application
/// chooses) are counted instead, so memory never grows with the data.
#[derive(Clone)]
pub enum Name {
    Interned(&'static str),
    Counted(Arc<str>),
}

impl Name {
    /// The one copy of `text` for the life of the process: made on its first call, found on
    /// the next ones. For names a definition or a schema gives, never for data.
    pub fn interned(text: &str) -> Name {
        static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
        let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
        let names = names.get_or_insert_with(HashSet::new);
        if let Some(&name) = names.get(text) {
            return Name::Interned(name);
        }
        let name: &'static str = Box::leak(text.into());
        names.insert(name);
        Name::Interned(name)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Name::Interned(name) => name,
            Name::Counted(name) => name,
        }
    }
}

impl Deref for Name {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Name {
        Name::Counted(text.into())
    }
}

impl From<String> for Name {
    fn from(text: String) -> Name {
        Name::Counted(text.into())
    }
}

/// Compared, ordered and hashed as its text, however it is held.
impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn interned_names_are_one_copy_and_equal_counted_ones() {
        let a = Name::interned("status");
        let b = Name::interned(&String::from("status"));
        let (Name::Interned(x), Name::Interned(y)) = (&a, &b) else {
            panic!("interned")
        };
        assert!(std::ptr::eq(*x, *y), "one copy");
        let counted = Name::from("status");
        assert!(matches!(counted, Name::Counted(_)));
        assert_eq!(a, counted);
        assert_eq!(a.cmp(&counted), std::cmp::Ordering::Equal);
        assert_eq!(
            Name::interned("a").cmp(&Name::from("b")),
            std::cmp::Ordering::Less
        );
        let mut map = HashMap::new();
        map.insert(counted, 1);
        assert_eq!(map.get(&a), Some(&1));
        assert_eq!(map.get("status"), Some(&1));
        assert_eq!(format!("{a} {a:?}"), "status \"status\"");
    }
}
