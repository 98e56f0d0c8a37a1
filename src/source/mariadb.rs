//! MariaDB's own binlog events, which mysql_common does not decode.

pub const GTID_EVENT: u8 = 162;
pub const GTID_LIST_EVENT: u8 = 163;
pub const BINLOG_CHECKPOINT_EVENT: u8 = 161;
pub const ANNOTATE_ROWS_EVENT: u8 = 160;
/// `log_bin_compress = ON`: a query (165) or rows event (166–171) compressed, which mysql_common
/// does not read.
pub const QUERY_COMPRESSED_EVENT: u8 = 165;
pub const LAST_COMPRESSED_EVENT: u8 = 171;
/// `FL_STANDALONE`: the GTID's transaction is one statement with no BEGIN/COMMIT (DDL).
pub const FL_STANDALONE: u8 = 1;
/// `FL_PREPARED_XA`: the event group is an XA transaction's XA PREPARE (its XA COMMIT or XA
/// ROLLBACK comes later, in a group of its own).
pub const FL_PREPARED_XA: u8 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtid {
    pub domain: u32,
    pub server_id: u32,
    pub seq_no: u64,
    pub flags: u8,
}

impl MariaGtid {
    /// Parses the body of a GTID event: seq_no u64 LE, domain u32 LE, flags u8.
    pub fn parse(data: &[u8], server_id: u32) -> Option<MariaGtid> {
        let seq_no = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
        let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
        let flags = *data.get(12)?;
        Some(MariaGtid {
            domain,
            server_id,
            seq_no,
            flags,
        })
    }

    pub fn standalone(&self) -> bool {
        self.flags & FL_STANDALONE != 0
    }

    pub fn prepared_xa(&self) -> bool {
        self.flags & FL_PREPARED_XA != 0
    }
}

impl std::fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq_no)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gtid() {
        let mut data = 13u64.to_le_bytes().to_vec();
        data.extend(0u32.to_le_bytes());
        data.push(1);
        let gtid = MariaGtid::parse(&data, 1).unwrap();
        assert_eq!(gtid.to_string(), "0-1-13");
        assert!(gtid.standalone());
        assert!(MariaGtid::parse(&data[..5], 1).is_none());
    }
}
