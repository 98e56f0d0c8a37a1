//! Positions in the source binlog, and the checkpoint: the position up to which every
//! transaction's writes are acknowledged, with the transaction counter versions come from.

use serde::{Deserialize, Serialize};

/// A position in the source binlog: the end of a transaction (an event boundary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub file: String,
    pub pos: u64,
    /// The GTID of the transaction that ends here, when the server has GTIDs
    /// (`domain-server-seq` on MariaDB, `uuid:n` on MySQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if let Some(gtid) = &self.gtid {
            write!(f, " (gtid {gtid})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub position: Position,
    /// Transaction counter of the last transaction covered; item versions derive from it.
    pub seq: u64,
    pub updated_ms: u64,
    /// Backfill progress per eager view.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub backfill: super::BackfillState,
}

/// Whether position `a` comes before `b` in the binlog. Binlog files are numbered by their
/// suffix, which grows past six digits (`mysql-bin.999999` is followed by `mysql-bin.1000000`):
/// the suffix compares as a number, the rest as text.
pub fn position_before(a: &Position, b: &Position) -> bool {
    (file_order(&a.file), a.pos) < (file_order(&b.file), b.pos)
}

fn file_order(file: &str) -> (&str, usize, &str) {
    match file.rsplit_once('.') {
        Some((base, suffix))
            if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) =>
        {
            let digits = suffix.trim_start_matches('0');
            (base, digits.len(), digits)
        }
        _ => (file, 0, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &str, pos: u64) -> Position {
        Position {
            file: file.into(),
            pos,
            gtid: None,
        }
    }

    #[test]
    fn binlog_files_compare_by_their_number() {
        assert!(position_before(
            &at("bin.000009", 900),
            &at("bin.000010", 4)
        ));
        assert!(position_before(
            &at("bin.999999", 900),
            &at("bin.1000000", 4)
        ));
        assert!(!position_before(
            &at("bin.1000000", 4),
            &at("bin.999999", 900)
        ));
        assert!(position_before(&at("bin.000010", 4), &at("bin.000010", 5)));
        assert!(!position_before(&at("bin.000010", 5), &at("bin.000010", 5)));
    }
}

/// Where a restart must read from so that a mark is made again: the counter of the transaction
/// before the marking one, and the position the marking one starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct Restart {
    pub seq: u64,
    pub position: Position,
}
