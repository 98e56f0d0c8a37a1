//! Settling candidates: which are differences, with no false positive while the daemon streams
//! (see the module doc of `verify`, step 3).

use super::digest::{differing_attributes, item_hash};
use std::collections::HashMap;

use super::{
    checkpoint_passes, dynamo_error, source, table, Difference, Kind, Pacer, Run, VerifyError,
};
use crate::sql::{begin_snapshot, end_snapshot, SqlError, TableCache};
use crate::view::project::Item;
use crate::view::ItemKey;

/// Settling rounds before a key still changing is given up on (unsettled).
const ROUNDS: usize = 8;

/// What a settling round saw of one key in DynamoDB: absent, or present at a version (and,
/// for a view with write-back, with these contents: an application's update keeps the
/// version).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Absent,
    At(Option<u128>, Option<u128>),
}

struct Pending {
    key: ItemKey,
    previous: Option<Seen>,
    absent_reads: u8,
}

impl Pending {
    fn new(key: ItemKey) -> Pending {
        Pending {
            key,
            previous: None,
            absent_reads: 0,
        }
    }
}

/// What settling found: the differences, and the keys dropped because their row makes an item
/// DynamoDB cannot take.
pub struct Settled {
    pub differences: Vec<Difference>,
    pub unwritable: u64,
}

/// The differences among `keys`; keys still changing after the last round, not provable
/// because the checkpoint did not pass a round's snapshot in time, or whose key parses back in
/// too many ways to be looked up, are counted unsettled.
pub async fn settle(run: &mut Run<'_, '_>, keys: Vec<ItemKey>) -> Result<Settled, VerifyError> {
    let (view, services, options) = (run.view, run.services, run.options);
    let mut tables = TableCache::new(services.pool.clone());
    let table = tables.get(&view.source).await?;
    let mut pending: Vec<Pending> = keys.into_iter().map(Pending::new).collect();
    let (mut found, mut unwritable) = (Vec::new(), 0u64);
    // Each round reads its keys on both sides: within the pace of each.
    let pacer = Pacer::new(options.rate);
    for round in 0..ROUNDS {
        if pending.is_empty() {
            break;
        }
        // What the last round saw of a write-back view's item may be an application's change
        // on its way to SQL: compared again only once it would have reached SQL (see
        // `writeback.rs`).
        // Once the consumer was not caught up in time, the view's later batches of candidates
        // do not wait for it again (each would wait the whole time): they are unsettled.
        if view.writeback_enabled
            && round > 0
            && (run.summary.writeback_behind
                || !services
                    .writeback
                    .caught_up(&view.table, options.checkpoint_wait)
                    .await)
        {
            run.summary.writeback_behind = true;
            break;
        }
        let keys: Vec<ItemKey> = pending.iter().map(|p| p.key.clone()).collect();
        pacer.take(keys.len() as u64).await;
        let mut conn = services.pool.get_conn().await.map_err(SqlError::Connect)?;
        let position = begin_snapshot(&mut conn).await?;
        let mut unread = Vec::new();
        let expected =
            source::items_at(&mut conn, &mut tables, (view, &table), &keys, &mut unread).await;
        end_snapshot(&mut conn).await;
        let mut expected = expected?;
        // Not looked up: never taken for keys the source makes nothing under.
        if !unread.is_empty() {
            run.summary.unsettled += unread.len() as u64;
            pending.retain(|p| !unread.contains(&p.key));
        }
        if !checkpoint_passes(services.checkpoint, &position, options.checkpoint_wait).await? {
            // Nothing is provable without it.
            run.summary.daemon_behind = true;
            break;
        }
        let mut stored = table::get_items(services.client, run.owner(), &keys)
            .await
            .map_err(dynamo_error(view))?;
        let mut next = Vec::new();
        for entry in pending {
            let Some(expected) = source_item(&mut expected, &entry.key, &mut unwritable) else {
                continue;
            };
            let actual = stored.remove(&entry.key);
            match judge(entry, expected, actual, view.writeback_enabled) {
                Some(Ok(confirmed)) => found.push(confirmed),
                Some(Err(again)) => next.push(again),
                None => {}
            }
        }
        pending = next;
    }
    run.summary.unsettled += pending.len() as u64;
    Ok(Settled {
        differences: found,
        unwritable,
    })
}

/// One round's verdict on a key: `None` equal, `Ok` a confirmed difference, `Err` the key
/// again for the next round. `writeback`: the view writes back, so applications change its
/// items without moving their version.
fn judge(
    mut entry: Pending,
    expected: Option<Item>,
    actual: Option<table::Stored>,
    writeback: bool,
) -> Option<Result<Difference, Pending>> {
    let equal = match (&expected, &actual) {
        (None, None) => true,
        (Some(e), Some(a)) => item_hash(e) == item_hash(&a.item),
        _ => false,
    };
    if equal {
        return None;
    }
    let seen = match &actual {
        Some(stored) => Seen::At(stored.version, writeback.then(|| item_hash(&stored.item))),
        None => Seen::Absent,
    };
    let unchanged = entry.previous.as_ref() == Some(&seen);
    entry.absent_reads = if seen == Seen::Absent {
        entry.absent_reads + 1
    } else {
        0
    };
    let confirmed = match seen {
        Seen::At(..) => unchanged,
        Seen::Absent => entry.absent_reads >= 3,
    };
    if confirmed {
        let version = actual.as_ref().and_then(|s| s.version);
        Some(Ok(difference(
            entry.key,
            expected,
            actual.map(|s| s.item),
            version,
        )))
    } else {
        entry.previous = Some(seen);
        Some(Err(entry))
    }
}

/// The source's item of `key` in a round's read (`Some(None)`: it makes none). `None` for an
/// item DynamoDB cannot take, counted: the daemon dead-lettered it, so it is neither reported
/// nor repaired (a repair would only make another dead letter of it).
fn source_item(
    expected: &mut HashMap<ItemKey, Option<Item>>,
    key: &ItemKey,
    unwritable: &mut u64,
) -> Option<Option<Item>> {
    match expected.remove(key) {
        Some(None) => {
            *unwritable += 1;
            None
        }
        found => Some(found.flatten()),
    }
}

fn difference(
    key: ItemKey,
    expected: Option<Item>,
    actual: Option<Item>,
    version: Option<u128>,
) -> Difference {
    let (kind, attributes) = match (&expected, &actual) {
        (Some(e), Some(a)) => (Kind::Different, differing_attributes(e, a)),
        (Some(_), None) => (Kind::Missing, Vec::new()),
        _ => (Kind::Extra, Vec::new()),
    };
    Difference {
        key,
        kind,
        attributes,
        expected,
        actual,
        version,
    }
}
