//! Durable checkpoint stores: an item in the DynamoDB control table (the default, so the sidecar
//! can be stateless) or a local JSON file (written to a temporary file, synced, renamed).
//!
//! The control table has a string partition key `pk` and sort key `sk`; the checkpoint of a
//! binlog reader is the item `pk = "checkpoint#<pipeline name>"` (`checkpoint#<server_id>`
//! without `[pipeline] name`), `sk = "stream"`. A save is
//! conditional on the stored counter not being ahead, so an older instance can never move the
//! checkpoint back.
//!
//! The item also names its owner: an instance claims it at start (before loading it), every
//! save is conditional on still owning it, and ownership is checked every second
//! (`checkpoint/tracker.rs`). A second instance started with the same control table and server
//! id therefore takes over and the first one is fenced within about a second and stops. Between
//! checks, each confirmation of ownership lets the instance send writes for one lease term only
//! (see `lease.rs`): one that stalled, was taken over meanwhile and resumes sends nothing
//! before it is fenced. An instance that takes the item from an owner that did
//! not release it (a clean stop releases it) waits one term and a margin for requests in
//! flight before it writes anything. A file checkpoint's owner is a lock on `<path>.owner`
//! instead (`files::FileOwner`): a second instance waits for the first to stop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use tokio::time::Instant;

use super::{write_durably, Lease, CONTROL_PK, CONTROL_SK};
use crate::dynamo::{classify_sdk_error, is_condition_failure, SdkErrorInfo};
use crate::error::{Classify, ErrorClass};
use crate::pipeline::{Checkpoint, Position};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint file {path} is not a checkpoint")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("checkpoint table {table}: {info}")]
    Dynamo { table: String, info: SdkErrorInfo },
    #[error("checkpoint item in {table} is malformed: {reason}")]
    Malformed { table: String, reason: String },
    #[error("checkpoint in {table} was taken over by another instance (owner {owner}, ours {ours}) or moved ahead of ours: this instance stops")]
    Fenced {
        table: String,
        ours: String,
        owner: String,
    },
}

impl Classify for CheckpointError {
    fn class(&self) -> ErrorClass {
        match self {
            // Mid-run a checkpoint that cannot be saved only lags (and may heal: a remount, a
            // ticket renewed); at start see `unwritable`.
            CheckpointError::File { .. } => ErrorClass::Transient,
            CheckpointError::Dynamo { info, .. } => info.class,
            CheckpointError::Corrupt { .. }
            | CheckpointError::Malformed { .. }
            | CheckpointError::Fenced { .. } => ErrorClass::Definite,
        }
    }
}

impl CheckpointError {
    /// Whether a running daemon waits for it rather than stop: a transient error, or a refusal
    /// of this instance's credentials or access (unknown or expired credentials, a policy that
    /// does not allow it yet) — what a credential refresh or an operator mends, and what the
    /// view tables' writes wait for too. Writes wait meanwhile for the lease, which no check
    /// confirms. At start such a refusal stops rowcast with the cause, and a control table
    /// gone (deleted, being created again: its item and the ownership in it are gone) stops a
    /// running daemon as before (`tests/edges.rs`). Before 2026-12-07 the first refused
    /// ownership check stopped a running daemon, which then restarted into the lease it had
    /// not released (found by a review; `tests/services.rs`, seen failing).
    pub fn waited_for(&self) -> bool {
        const GONE: [&str; 2] = ["ResourceNotFoundException", "ResourceInUseException"];
        match self {
            CheckpointError::Dynamo { info, .. } if info.is_table_wide() => {
                !(info.code.as_deref()).is_some_and(|code| GONE.contains(&code))
            }
            other => other.is_transient(),
        }
    }

    /// A file the process is not let write (a read-only volume, another user's directory, a
    /// path through a file): at start that stops rowcast with the path, rather than retrying for
    /// ever as if a server were away.
    pub fn unwritable(&self) -> bool {
        let CheckpointError::File { source, .. } = self else {
            return false;
        };
        matches!(
            source.kind(),
            std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::ReadOnlyFilesystem
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::IsADirectory
        )
    }
}

pub enum CheckpointStore {
    File(PathBuf),
    Table {
        client: Client,
        table: String,
        id: String,
        /// This instance's claim on the item.
        owner: String,
        /// Confirmed by every claim, save and check that finds the item still ours.
        lease: Lease,
        /// The lease's term, recorded in the item by the claim for a successor to wait out.
        lease_term: Duration,
        /// Whether this store has claimed the item (a daemon; `rowcast export` never claims).
        claimed: AtomicBool,
        /// Saves sent since the claim. Each carries its number (`saves`) and is conditional on
        /// the stored one being no higher, so a save that lands late (its answer lost, the
        /// request delivered after a later save) never moves the checkpoint back, also where
        /// both hold the same transaction number (an idle binlog's rotation, a backfill's
        /// progress). A retry of one save carries the same number. The claim removes it. It never
        /// refuses a save of a healthy instance: saves are sent one at a time (prepare's, then
        /// the tracker's), and every generation claims the item under a new owner name.
        /// Before 2026-12-07 the condition was the transaction number alone (found by a review;
        /// `tests/services.rs`, seen failing: the checkpoint went back to the rotated file).
        saves: AtomicU64,
    },
}

/// The owner an instance leaves in the item when it releases it after a clean stop (followed
/// by its own name): no instance owns it, and none that was paused meanwhile can take it back
/// for its own (a missing owner would look like no fence at all).
const RELEASED: &str = "released by ";
/// Attribute of the checkpoint item: the owner's write lease term, in milliseconds.
const LEASE_ATTRIBUTE: &str = "lease_ms";
/// The number of the owner's save the item holds (see `CheckpointStore::Table::saves`).
const SAVES_ATTRIBUTE: &str = "saves";
/// Attributes of the checkpoint item: the owner and the lease term the last claim took it
/// from, kept by the claim itself so that a claimer whose answer was lost still knows what to
/// wait out (see [`CheckpointStore::claim`]).
const PREVIOUS_OWNER_ATTRIBUTE: &str = "previous_owner";
const PREVIOUS_LEASE_ATTRIBUTE: &str = "previous_lease_ms";

/// The instance a claim took the checkpoint from, which did not release it: it may still be
/// running, and send writes within its lease.
#[derive(Debug)]
pub struct Predecessor {
    pub owner: String,
    /// The lease term it recorded (`None`: unknown, e.g. from a version that did not record it).
    pub lease_term: Option<Duration>,
}

/// A name no other instance uses: the process id, the start time and a random part (containers
/// often all run as pid 1).
fn owner_name() -> String {
    format!(
        "{}-{}-{:08x}",
        std::process::id(),
        crate::util::now_millis(),
        crate::util::random_u64() as u32
    )
}

impl CheckpointStore {
    /// The checkpoint item `id` (`Config::checkpoint_id`) in the control table `table`; each
    /// confirmation of its ownership lets this instance write for `lease_term` (see
    /// [`Lease`]).
    pub fn table(client: Client, table: String, id: String, lease_term: Duration) -> Self {
        Self::table_owned_by(client, table, id, lease_term, owner_name())
    }

    /// [`CheckpointStore::table`] under a given owner name: for tests (two stores of one
    /// instance), never for a running daemon, whose name must be its own.
    #[doc(hidden)]
    pub fn table_owned_by(
        client: Client,
        table: String,
        id: String,
        lease_term: Duration,
        owner: String,
    ) -> Self {
        CheckpointStore::Table {
            client,
            table,
            id,
            owner,
            lease: Lease::new(lease_term),
            lease_term,
            claimed: AtomicBool::new(false),
            saves: AtomicU64::new(0),
        }
    }

    /// The name this instance claims the item under (`None` for a file checkpoint).
    pub fn owner(&self) -> Option<&str> {
        match self {
            CheckpointStore::File(_) => None,
            CheckpointStore::Table { owner, .. } => Some(owner),
        }
    }

    /// What the writes of this instance wait for (see [`Lease`]).
    pub fn lease(&self) -> Lease {
        match self {
            CheckpointStore::File(_) => Lease::unowned(),
            CheckpointStore::Table { lease, .. } => lease.clone(),
        }
    }

    /// Whether the checkpoint has an owner that fences another instance (the control table;
    /// a file has none).
    pub fn has_owner(&self) -> bool {
        matches!(self, CheckpointStore::Table { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            CheckpointStore::File(path) => format!("file {}", path.display()),
            CheckpointStore::Table { table, id, .. } => format!("table {table} item {id}"),
        }
    }

    /// Takes the checkpoint over: from now on only this instance's saves succeed. Called before
    /// `load`, so that what is loaded is final. Returns the instance it took it from, if one
    /// held it and did not release it (it may still be running until it notices).
    pub async fn claim(&self) -> Result<Option<Predecessor>, CheckpointError> {
        let CheckpointStore::Table {
            client,
            table,
            id,
            owner,
            lease,
            lease_term,
            claimed,
            saves: _,
        } = self
        else {
            return Ok(None);
        };
        let sent = Instant::now();
        let result = client
            .update_item()
            .table_name(table)
            .set_key(Some(item_key(id)))
            .update_expression("SET #owner = :me, #lease = :lease, #powner = if_not_exists(#owner, :nobody), #please = if_not_exists(#lease, :lease) REMOVE #saves")
            .condition_expression("attribute_not_exists(#owner) OR #owner <> :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#saves", SAVES_ATTRIBUTE)
            .expression_attribute_names("#lease", LEASE_ATTRIBUTE)
            .expression_attribute_names("#powner", PREVIOUS_OWNER_ATTRIBUTE)
            .expression_attribute_names("#please", PREVIOUS_LEASE_ATTRIBUTE)
            .expression_attribute_values(":me", AttributeValue::S(owner.clone()))
            .expression_attribute_values(":nobody", AttributeValue::S(format!("{RELEASED}nobody")))
            .expression_attribute_values(
                ":lease",
                AttributeValue::N(lease_term.as_millis().to_string()),
            )
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await;
        let out = match result {
            Ok(out) => Some(out),
            Err(error) => {
                let info = classify_sdk_error(&error);
                if !is_condition_failure(&info) {
                    return Err(CheckpointError::Dynamo {
                        table: table.clone(),
                        info,
                    });
                }
                None // the item is ours already
            }
        };
        lease.confirmed(sent);
        let claimed_before = claimed.swap(true, Ordering::Relaxed);
        let predecessor = match out {
            Some(out) => taken_from(&out.attributes.unwrap_or_default()),
            // Claimed by an earlier start-up attempt of this instance, which went on to wait
            // out its predecessor.
            None if claimed_before => return Ok(None),
            // Claimed by a try of this claim whose answer was lost (the SDK sent it again): the
            // claim kept whom it took the item from. Before 2026-12-07 that was unknown, and
            // only this instance's own lease was waited out, however longer the predecessor's
            // (found by a review; `tests/services.rs`
            // `a_claim_whose_answer_was_lost_waits_out_the_predecessors_lease`, seen failing).
            None => match kept_predecessor(client, table, id, owner).await {
                Ok(predecessor) => predecessor,
                Err(error) => {
                    // Not known yet: the next try of the claim reads it again.
                    claimed.store(false, Ordering::Relaxed);
                    return Err(error);
                }
            },
        };
        // Taken from an instance that did not release it: its lease (or a longer one it was
        // itself still waiting out) stays in the item, so that a claimer after this one, should
        // this one die while it waits, waits that out too.
        match predecessor.as_ref().and_then(|p| p.lease_term) {
            Some(theirs) if theirs > *lease_term => self.keep_lease(theirs).await,
            _ => {}
        }
        Ok(predecessor)
    }

    /// Records `term` as the item's lease (while the item is this store's). A failure is not
    /// the claim's: the claim stands (a claim tried again would find the item its own and wait
    /// for no predecessor), and this instance waits the longer term out anyway; only a claimer
    /// after it could wait less.
    async fn keep_lease(&self, term: Duration) {
        if let Err(error) = self.write_lease(term).await {
            tracing::warn!(error = %crate::error::chain(&error), "cannot keep the predecessor's longer lease in the checkpoint item; waiting it out all the same");
        }
    }

    async fn write_lease(&self, term: Duration) -> Result<(), CheckpointError> {
        let CheckpointStore::Table {
            client,
            table,
            id,
            owner,
            ..
        } = self
        else {
            return Ok(());
        };
        let kept = client
            .update_item()
            .table_name(table)
            .set_key(Some(item_key(id)))
            .update_expression("SET #lease = :lease")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#lease", LEASE_ATTRIBUTE)
            .expression_attribute_values(":me", AttributeValue::S(owner.clone()))
            .expression_attribute_values(":lease", AttributeValue::N(term.as_millis().to_string()))
            .send()
            .await;
        match kept {
            Err(error) => {
                let info = classify_sdk_error(&error);
                if is_condition_failure(&info) {
                    // Taken over meanwhile: the next check fences this instance.
                    return Ok(());
                }
                Err(CheckpointError::Dynamo {
                    table: table.clone(),
                    info,
                })
            }
            Ok(_) => Ok(()),
        }
    }

    /// Gives the checkpoint up after a clean stop, so that the next instance need not wait for
    /// this one to notice it was taken over. Nothing is written after: the lease ends.
    pub async fn release(&self) -> Result<(), CheckpointError> {
        let CheckpointStore::Table {
            client,
            table,
            id,
            owner,
            lease,
            ..
        } = self
        else {
            return Ok(());
        };
        // The lease ends with the release: the tracker releases only once every write-back
        // consumer has ended (`checkpoint::Tracker::run`), so no stream position is left to
        // save, and one saved after it could land over a successor's later one.
        lease.end();
        let result = client
            .update_item()
            .table_name(table)
            .set_key(Some(item_key(id)))
            .update_expression("SET #owner = :released")
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", AttributeValue::S(owner.clone()))
            .expression_attribute_values(
                ":released",
                AttributeValue::S(format!("{RELEASED}{owner}")),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                let info = classify_sdk_error(&error);
                if is_condition_failure(&info) {
                    return Ok(()); // not ours any more: nothing to give up
                }
                Err(CheckpointError::Dynamo {
                    table: table.clone(),
                    info,
                })
            }
        }
    }

    /// Whether this instance still owns the checkpoint (`Fenced` if not); confirms its lease.
    pub async fn check_owner(&self) -> Result<(), CheckpointError> {
        let CheckpointStore::Table {
            client,
            table,
            id,
            lease,
            ..
        } = self
        else {
            return Ok(());
        };
        let sent = Instant::now();
        crate::util::failpoint::delay("checkpoint.before_confirm").await;
        let item = read_item(client, table, id).await?;
        self.owned(item.as_ref())?;
        lease.confirmed(sent);
        Ok(())
    }

    /// `Fenced` unless the stored item names this instance as its owner. An item without an
    /// owner is not ours: a claim always sets one, and a release leaves [`RELEASED`].
    fn owned(&self, item: Option<&HashMap<String, AttributeValue>>) -> Result<(), CheckpointError> {
        let CheckpointStore::Table { table, owner, .. } = self else {
            return Ok(());
        };
        match item.and_then(|item| item.get("owner")) {
            Some(AttributeValue::S(current)) if current == owner => Ok(()),
            current => Err(CheckpointError::Fenced {
                table: table.clone(),
                ours: owner.clone(),
                owner: match current {
                    Some(AttributeValue::S(current)) => current.clone(),
                    _ => "none (the item has no owner)".into(),
                },
            }),
        }
    }

    pub async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        match self {
            CheckpointStore::File(path) => {
                let bytes = match tokio::fs::read(path).await {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => {
                        return Err(CheckpointError::File {
                            path: path.clone(),
                            source,
                        })
                    }
                };
                serde_json::from_slice(&bytes).map(Some).map_err(|source| {
                    CheckpointError::Corrupt {
                        path: path.clone(),
                        source,
                    }
                })
            }
            CheckpointStore::Table {
                client, table, id, ..
            } => {
                let item = read_item(client, table, id).await?;
                // An item holding only the owner's claim: nothing saved yet.
                let Some(item) = item.filter(|item| item.contains_key("file")) else {
                    return Ok(None);
                };
                decode_item(&item)
                    .map(Some)
                    .map_err(|reason| CheckpointError::Malformed {
                        table: table.clone(),
                        reason,
                    })
            }
        }
    }

    /// Why a save of `seq` was refused: who owns the item now, read without confirming the
    /// lease (this instance stops either way).
    async fn refused(
        &self,
        (client, table, id): (&Client, &str, &str),
        seq: u64,
    ) -> CheckpointError {
        let owner = self.owner().unwrap_or_default();
        let item = read_item(client, table, id).await;
        match item.map(|item| self.owned(item.as_ref())) {
            Ok(Err(fenced)) => fenced,
            _ => CheckpointError::Fenced {
                table: table.to_string(),
                ours: owner.to_string(),
                owner: format!("{owner}, with a later save than this one (seq {seq})"),
            },
        }
    }

    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        match self {
            CheckpointStore::File(path) => save_file(path, checkpoint).await,
            CheckpointStore::Table {
                client,
                table,
                id,
                owner,
                lease,
                lease_term,
                claimed,
                saves,
            } => {
                let mut item = encode_item(checkpoint);
                item.extend(item_key(id));
                let sent = Instant::now();
                crate::util::failpoint::delay("checkpoint.before_confirm").await;
                item.insert("owner".into(), AttributeValue::S(owner.clone()));
                item.insert(
                    LEASE_ATTRIBUTE.into(),
                    AttributeValue::N(lease_term.as_millis().to_string()),
                );
                // A daemon (claimed) saves only while the item names it and holds no later save
                // of its; an export only where no instance owns the item.
                let mut request = client.put_item();
                let owned = if claimed.load(Ordering::Relaxed) {
                    let number = saves.fetch_add(1, Ordering::Relaxed) + 1;
                    item.insert(
                        SAVES_ATTRIBUTE.into(),
                        AttributeValue::N(number.to_string()),
                    );
                    request = request
                        .expression_attribute_names("#saves", SAVES_ATTRIBUTE)
                        .expression_attribute_values(
                            ":saves",
                            AttributeValue::N(number.to_string()),
                        );
                    "#owner = :me AND (attribute_not_exists(#saves) OR #saves <= :saves)"
                } else {
                    request = request.expression_attribute_values(
                        ":released",
                        AttributeValue::S(RELEASED.into()),
                    );
                    "(attribute_not_exists(#owner) OR #owner = :me OR begins_with(#owner, :released))"
                };
                let result = request
                    .table_name(table)
                    .set_item(Some(item))
                    .condition_expression(format!(
                        "(attribute_not_exists(#seq) OR #seq <= :seq) AND {owned}"
                    ))
                    .expression_attribute_names("#seq", "seq")
                    .expression_attribute_names("#owner", "owner")
                    .expression_attribute_values(
                        ":seq",
                        AttributeValue::N(checkpoint.seq.to_string()),
                    )
                    .expression_attribute_values(":me", AttributeValue::S(owner.clone()))
                    .send()
                    .await;
                match result {
                    Ok(_) => {
                        lease.confirmed(sent);
                        Ok(())
                    }
                    Err(error) => {
                        let info = classify_sdk_error(&error);
                        if is_condition_failure(&info) {
                            let at = (client, table.as_str(), id.as_str());
                            return Err(self.refused(at, checkpoint.seq).await);
                        }
                        Err(CheckpointError::Dynamo {
                            table: table.clone(),
                            info,
                        })
                    }
                }
            }
        }
    }
}

/// The instance a claim took the item from (its old attributes `old`), if it did not release
/// it, with the term to wait out.
fn taken_from(old: &HashMap<String, AttributeValue>) -> Option<Predecessor> {
    let mut predecessor = predecessor_in(old, "owner", LEASE_ATTRIBUTE);
    // The instance taken from had itself claimed the item and not saved since (a
    // save puts the item whole, without these): it may still have been waiting
    // out its own predecessor, which may still write until that one's term ends,
    // and which it may not have recorded as the item's lease yet (`keep_lease`).
    // The review of the kept predecessor found a third claimer waiting out only the
    // second's term.
    let waited = predecessor_in(old, PREVIOUS_OWNER_ATTRIBUTE, PREVIOUS_LEASE_ATTRIBUTE);
    if let (Some(p), Some(theirs)) = (predecessor.as_mut(), waited) {
        p.lease_term = match (p.lease_term, theirs.lease_term) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    predecessor
}

/// The predecessor a claim of this instance (`me`) kept in item `id` (see
/// [`CheckpointStore::claim`]); an item without it (written by an older version) is waited out
/// as if its predecessor had not released it. `Fenced` if another instance claimed the item
/// since; a read that fails is an error (the claim is tried again, and reads it again): the
/// review of the first version found a failed read waiting out only this instance's term.
async fn kept_predecessor(
    client: &Client,
    table: &str,
    id: &str,
    me: &str,
) -> Result<Option<Predecessor>, CheckpointError> {
    let item = read_item(client, table, id).await?.unwrap_or_default();
    match item.get("owner") {
        Some(AttributeValue::S(owner)) if owner == me => {}
        other => {
            let owner = match other {
                Some(AttributeValue::S(owner)) => owner.clone(),
                _ => "none".into(),
            };
            return Err(CheckpointError::Fenced {
                table: table.to_string(),
                ours: me.to_string(),
                owner,
            });
        }
    }
    if !item.contains_key(PREVIOUS_OWNER_ATTRIBUTE) {
        return Ok(Some(Predecessor {
            owner: "unknown (the claim was sent twice and its first answer lost)".into(),
            lease_term: None,
        }));
    }
    Ok(predecessor_in(
        &item,
        PREVIOUS_OWNER_ATTRIBUTE,
        PREVIOUS_LEASE_ATTRIBUTE,
    ))
}

/// The instance that held the checkpoint item without releasing it, and its lease term, as
/// `item` names them in `owner` and `lease` (`None`: released, or never owned).
fn predecessor_in(
    item: &HashMap<String, AttributeValue>,
    owner: &str,
    lease: &str,
) -> Option<Predecessor> {
    match item.get(owner) {
        Some(AttributeValue::S(previous)) if !previous.starts_with(RELEASED) => Some(Predecessor {
            owner: previous.clone(),
            lease_term: match item.get(lease) {
                Some(AttributeValue::N(ms)) => ms.parse().ok().map(Duration::from_millis),
                _ => None,
            },
        }),
        _ => None,
    }
}

/// The key of the checkpoint item `id`.
fn item_key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (CONTROL_PK.to_string(), AttributeValue::S(id.to_string())),
        (CONTROL_SK.to_string(), AttributeValue::S("stream".into())),
    ])
}

/// The checkpoint item as stored (a consistent read).
async fn read_item(
    client: &Client,
    table: &str,
    id: &str,
) -> Result<Option<HashMap<String, AttributeValue>>, CheckpointError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(item_key(id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| CheckpointError::Dynamo {
            table: table.to_string(),
            info: classify_sdk_error(&e),
        })?;
    Ok(out.item)
}

async fn save_file(path: &std::path::Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let bytes = serde_json::to_vec_pretty(checkpoint).expect("a checkpoint always serialises");
    write_durably(path, bytes)
        .await
        .map_err(|source| CheckpointError::File {
            path: path.to_path_buf(),
            source,
        })
}

fn encode_item(c: &Checkpoint) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::new();
    item.insert("file".into(), AttributeValue::S(c.position.file.clone()));
    item.insert("pos".into(), AttributeValue::N(c.position.pos.to_string()));
    if let Some(gtid) = &c.position.gtid {
        item.insert("gtid".into(), AttributeValue::S(gtid.clone()));
    }
    item.insert("seq".into(), AttributeValue::N(c.seq.to_string()));
    if !c.backfill.is_empty() {
        let json = serde_json::to_string(&c.backfill).expect("progress always serialises");
        item.insert("backfill".into(), AttributeValue::S(json));
    }
    item.insert(
        "updated_ms".into(),
        AttributeValue::N(c.updated_ms.to_string()),
    );
    item
}

fn decode_item(item: &HashMap<String, AttributeValue>) -> Result<Checkpoint, String> {
    let s = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(format!("attribute {name} missing or not a string")),
    };
    let n = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n
            .parse::<u64>()
            .map_err(|e| format!("attribute {name}: {e}")),
        _ => Err(format!("attribute {name} missing or not a number")),
    };
    Ok(Checkpoint {
        position: Position {
            file: s("file")?,
            pos: n("pos")?,
            gtid: s("gtid").ok(),
        },
        seq: n("seq")?,
        updated_ms: n("updated_ms").unwrap_or_default(),
        backfill: match s("backfill") {
            Ok(json) => {
                serde_json::from_str(&json).map_err(|e| format!("attribute backfill: {e}"))?
            }
            Err(_) => Default::default(),
        },
    })
}
