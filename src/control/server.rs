//! Which server a checkpoint was taken on. Binlog file positions mean something on one server
//! only: resuming at `binlog.000042:1234` of another server would skip or repeat changes
//! silently. So the server's identity is kept beside the checkpoint (control table item
//! `sk = "server"` next to the checkpoint's `sk = "stream"`; with a file checkpoint,
//! `<path>.server.json`) and compared at every start (`app::prepare`).

use serde::{Deserialize, Serialize};

use super::beside::Beside;
use super::{CheckpointError, CheckpointStore};

/// What identifies a source server, as far as checkpoints go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// `@@server_id` of the server (not rowcast's replica id).
    pub server_id: u32,
    /// MySQL's `@@server_uuid` (MariaDB has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_uuid: Option<String>,
    /// MariaDB's `@@gtid_domain_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_domain_id: Option<u32>,
}

impl std::fmt::Display for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server_id {}", self.server_id)?;
        if let Some(uuid) = &self.server_uuid {
            write!(f, ", server_uuid {uuid}")?;
        }
        if let Some(domain) = self.gtid_domain_id {
            write!(f, ", gtid_domain_id {domain}")?;
        }
        Ok(())
    }
}

impl ServerIdentity {
    /// Whether a checkpoint taken on `self` may be resumed on `now`: the same server for file
    /// positions; for GTID resumption, any server of the same GTID domain (a failover keeps the
    /// GTIDs, not the server id).
    pub fn resumable_on(&self, now: &ServerIdentity, by_gtid: bool) -> bool {
        if by_gtid {
            self.gtid_domain_id == now.gtid_domain_id
        } else {
            self.server_id == now.server_id && self.server_uuid == now.server_uuid
        }
    }
}

const RECORD: Beside = Beside {
    sort_key: "server",
    attribute: "identity",
    extension: "server.json",
    what: "server identity",
};

/// The identity stored beside the checkpoint, if any (checkpoints of older versions have none).
pub async fn load(store: &CheckpointStore) -> Result<Option<ServerIdentity>, CheckpointError> {
    RECORD.load(store).await
}

/// Stores `identity` beside the checkpoint.
pub async fn save(
    store: &CheckpointStore,
    identity: &ServerIdentity,
) -> Result<(), CheckpointError> {
    let text = serde_json::to_string(identity).expect("an identity always serialises");
    RECORD.write(store, Some(text)).await
}

#[cfg(test)]
mod tests {
    use super::ServerIdentity;

    #[test]
    fn file_positions_stay_on_their_server_gtids_on_their_domain() {
        let mariadb = |server_id, domain| ServerIdentity {
            server_id,
            server_uuid: None,
            gtid_domain_id: Some(domain),
        };
        assert!(mariadb(1, 0).resumable_on(&mariadb(1, 0), false));
        assert!(!mariadb(1, 0).resumable_on(&mariadb(2, 0), false));
        assert!(
            mariadb(1, 0).resumable_on(&mariadb(2, 0), true),
            "a failover"
        );
        assert!(!mariadb(1, 0).resumable_on(&mariadb(1, 7), true));
        let mysql = |uuid: &str| ServerIdentity {
            server_id: 1,
            server_uuid: Some(uuid.into()),
            gtid_domain_id: None,
        };
        assert!(!mysql("a").resumable_on(&mysql("b"), false));
    }
}
