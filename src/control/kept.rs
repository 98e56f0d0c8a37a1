//! Writes of unknown outcome kept across a stop. A clean stop (SIGTERM, a rolling deploy)
//! saves the items whose writes `sink::unsure` still kept, beside the checkpoint (control table
//! item `sk = "unsure"`; with a file checkpoint, `<path>.unsure.json`), before it releases the
//! checkpoint; the next start reads them, and writes each of them again, guarded, once its
//! replay has delivered the item's latest write and the item's time has come. A request lost
//! before the stop that lands after the next start's replay is so still written over.

use serde::{Deserialize, Serialize};

use super::beside::Beside;
use super::{CheckpointError, CheckpointStore};

/// One item kept: its view, its key, whether a lost write of it was a delete, and when it is
/// due (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptWrite {
    pub view: String,
    pub table: String,
    pub pk_attribute: String,
    pub pk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sk_attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sk: Option<String>,
    pub absent_ok: bool,
    pub due_ms: u64,
}

/// The most the saved list takes, in bytes of JSON: a control table item holds 400 KB.
pub const MAX_BYTES: usize = 300_000;

const RECORD: Beside = Beside {
    sort_key: "unsure",
    attribute: "writes",
    extension: "unsure.json",
    what: "writes of unknown outcome",
};

/// What the last clean stop kept (empty when none).
pub async fn load(store: &CheckpointStore) -> Result<Vec<KeptWrite>, CheckpointError> {
    Ok(RECORD.load(store).await?.unwrap_or_default())
}

/// Replaces what is saved with `kept` (removes it when `kept` is empty); the first ones that
/// fit in [`MAX_BYTES`]. Returns how many were left out.
pub async fn save(store: &CheckpointStore, kept: &[KeptWrite]) -> Result<usize, CheckpointError> {
    let mut fitting = kept.len();
    let mut text = serde_json::to_string(kept).expect("kept writes always serialise");
    while text.len() > MAX_BYTES && fitting > 0 {
        fitting = fitting * MAX_BYTES / text.len();
        text = serde_json::to_string(&kept[..fitting]).expect("kept writes always serialise");
    }
    RECORD.write(store, (fitting > 0).then_some(text)).await?;
    Ok(kept.len() - fitting)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(pk: &str) -> KeptWrite {
        KeptWrite {
            view: "v".into(),
            table: "t".into(),
            pk_attribute: "pk".into(),
            pk: pk.into(),
            sk_attribute: None,
            sk: None,
            absent_ok: false,
            due_ms: 1,
        }
    }

    /// Saved beside a file checkpoint, read back, cut to the bound, removed when empty.
    #[tokio::test]
    async fn a_file_checkpoint_keeps_the_list_beside_it_within_the_bound() {
        let dir = std::env::temp_dir().join(format!("rowcast-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = CheckpointStore::File(dir.join("checkpoint.json"));
        assert!(load(&store).await.unwrap().is_empty(), "none saved yet");
        let two = [kept("a"), kept("b")];
        assert_eq!(save(&store, &two).await.unwrap(), 0);
        assert_eq!(load(&store).await.unwrap(), two);
        let long = "x".repeat(1000);
        let many: Vec<KeptWrite> = (0..1000).map(|i| kept(&format!("{long}{i}"))).collect();
        let left_out = save(&store, &many).await.unwrap();
        let back = load(&store).await.unwrap();
        assert!(left_out > 0 && back.len() + left_out == many.len());
        assert_eq!(back[..], many[..back.len()]);
        assert!(
            std::fs::metadata(RECORD.file(&dir.join("checkpoint.json")))
                .unwrap()
                .len()
                <= MAX_BYTES as u64
        );
        assert_eq!(save(&store, &[]).await.unwrap(), 0);
        assert!(!RECORD.file(&dir.join("checkpoint.json")).exists());
        assert!(load(&store).await.unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
