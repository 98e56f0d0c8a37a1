//! Backfill progress as it rides on barriers and is committed with the checkpoint.

use std::collections::BTreeMap;

use mysql_async::Value;
use serde::{Deserialize, Serialize};

/// A primary-key value as stored in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub enum KeyValue {
    I(i64),
    U(u64),
    /// Bytes as hex.
    B(String),
}

impl KeyValue {
    pub fn from_value(value: &Value) -> KeyValue {
        match value {
            Value::Int(v) => KeyValue::I(*v),
            Value::UInt(v) => KeyValue::U(*v),
            Value::Bytes(b) => KeyValue::B(b.iter().map(|x| format!("{x:02x}")).collect()),
            other => KeyValue::B(
                other
                    .as_sql(true)
                    .trim_matches('\'')
                    .bytes()
                    .map(|x| format!("{x:02x}"))
                    .collect(),
            ),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            KeyValue::I(v) => Value::Int(*v),
            KeyValue::U(v) => Value::UInt(*v),
            KeyValue::B(hex) => Value::Bytes(
                (0..hex.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                    .collect(),
            ),
        }
    }
}

/// Backfill progress of one view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Progress {
    pub done: bool,
    /// Primary key of the last row copied; the next chunk starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<KeyValue>>,
    #[serde(default)]
    pub rows: u64,
    /// Counter of the last transaction before the pass's first chunk: every row of the pass was
    /// read after it, so a change before it (a halt read again after a restart) is superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Fingerprint of the view definition the items were made with (`View::fingerprint`);
    /// `None` in a checkpoint written before fingerprints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// The view's items may include stale ones (its definition changed, its table was
    /// truncated): once this pass is done, a verification with repair removes what no row makes,
    /// and this is cleared. Survives restarts until then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleanup: bool,
    /// Version of the pass's first row: every item the pass or a later change writes is at this
    /// version or above, so a view's item below it after the pass is done is stale (what the
    /// cleanup removes). For a lazy view after a TRUNCATE, the TRUNCATE's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<u128>,
    /// XA transactions prepared and not decided when the pass began (`XA RECOVER`, named as
    /// the binlog names them): their rows are in none of its snapshots. When one of them
    /// commits and the reader never read its PREPARE (it lies before where the reader started:
    /// a first start, or a reload or restart that added the view), its rows reach no item, so
    /// the view is backfilled again (`merge`). Decided and read, it is forgotten.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xa_pending: Vec<String>,
    /// The view is halted, for this reason: this is its progress as of the halt, and it starts
    /// halted after a restart until a backfill pass rebuilds it. Kept here because the change
    /// that halted it may not be read again (its binlog file purged, a failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
}

impl Progress {
    /// An eager view whose definition changed: backfilled again from its first row under
    /// `definition`, then the items only the old definition made are removed.
    pub fn redefined(definition: String) -> Progress {
        Progress {
            definition: Some(definition),
            cleanup: true,
            ..Progress::default()
        }
    }

    /// A lazy view's cleanup due at once (after a TRUNCATE or a purged binlog): its items below
    /// transaction `seq`'s first version are removed; `definition` is the view's fingerprint.
    pub fn lazy_cleanup(seq: u64, definition: String) -> Progress {
        Progress {
            done: true,
            cleanup: true,
            since: Some(seq),
            from_version: Some(super::route::version_of(seq, 0)),
            definition: Some(definition),
            ..Progress::default()
        }
    }

    /// A lazy view's cleanup due at once, decided while transaction `seq`'s rows are being read
    /// (rolled back, or their marks overflowed): its items below the first snapshot version
    /// after that transaction are removed — the transaction's own row changes included, a fill
    /// merged after it not.
    pub fn lazy_cleanup_after(seq: u64, definition: String) -> Progress {
        Progress {
            from_version: Some(super::route::version_of(seq, SNAPSHOT_INDEX_BASE)),
            ..Progress::lazy_cleanup(seq, definition)
        }
    }

    /// A pass from the first row again, keeping the definition and a pending cleanup.
    pub fn restarted(&self) -> Progress {
        Progress {
            definition: self.definition.clone(),
            cleanup: self.cleanup,
            ..Progress::default()
        }
    }
}

/// Progress of every eager view, as committed with the checkpoint.
pub type BackfillState = BTreeMap<String, Progress>;

/// Version index of the first snapshot row merged after a transaction: after every row change of
/// the transaction (their indexes count from 0), before the next transaction. Rows of later
/// merges after the same transaction count on from there.
pub const SNAPSHOT_INDEX_BASE: u32 = 0x8000_0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_round_trip() {
        for value in [
            Value::Int(-5),
            Value::UInt(u64::MAX),
            Value::Bytes(b"ab\x00c".to_vec()),
        ] {
            let key = KeyValue::from_value(&value);
            let json = serde_json::to_string(&key).unwrap();
            let back: KeyValue = serde_json::from_str(&json).unwrap();
            assert_eq!(back.to_value(), value);
        }
    }
}
