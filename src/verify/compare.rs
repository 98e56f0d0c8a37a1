//! Finding the candidates: digests of both sides per bucket of keys, then the differing buckets
//! narrowed down to keys a group at a time (an eager view); or every stored item, a batch at a
//! time (a lazy view). Each group's candidates are settled and repaired before the next group.

use std::collections::{HashMap, HashSet};

use futures_util::future::try_join_all;

use super::digest::{bucket_of, item_hash, Digests};
use super::table::{self, Pages, Stored};
use super::{
    checkpoint_passes, dynamo_error, source, Pacer, Run, VerifyError, BUCKETS, NARROW_ITEMS,
    SETTLE_BATCH,
};
use crate::sql::{SqlError, TableCache};
use crate::view::project::Item;
use crate::view::ItemKey;

/// An eager view: digests, then the differing buckets group by group.
pub async fn digests(run: &mut Run<'_, '_>) -> Result<(), VerifyError> {
    let (view, services, options) = (run.view, run.services, run.options);
    let mut tables = TableCache::new(services.pool.clone());
    let table = tables.get(&view.source).await?;
    let mut conn = services.pool.get_conn().await.map_err(SqlError::Connect)?;
    let chunk = options.chunk_rows;
    let mut source = Digests::new(BUCKETS);
    let mut add = |key: ItemKey, item: Item| source.add(&key, item_hash(&item));
    let pacer = Pacer::new(options.rate);
    let (_, unwritable, position) = source::each_item(
        &mut conn,
        &mut tables,
        (view, &table),
        chunk,
        &pacer,
        &mut add,
    )
    .await?;
    run.summary.checked = source.items();
    run.summary.unwritable = unwritable;
    // Fewer candidates when the items are read once the daemon has written up to the source's.
    if let Some(position) = &position {
        checkpoint_passes(services.checkpoint, position, options.checkpoint_wait).await?;
    }
    let stored = scan(
        run,
        |_| true,
        |digests: &mut Digests, key, stored| digests.add(&key, item_hash(&stored.item)),
    )
    .await?;
    let mut all = Digests::new(BUCKETS);
    for part in &stored {
        all.merge(part);
    }
    for group in groups(&source.differing(&all)) {
        // A backfill pass began meanwhile (see `Run::pass_moved`): nothing more is proven.
        if run.summary.not_filled {
            break;
        }
        let source_hashes = {
            let mut hashes = HashMap::new();
            let mut keep = |key: ItemKey, item: Item| {
                if group.contains(&bucket_of(&key, BUCKETS)) {
                    hashes.insert(key, item_hash(&item));
                }
            };
            let pacer = Pacer::new(options.rate);
            source::each_item(
                &mut conn,
                &mut tables,
                (view, &table),
                chunk,
                &pacer,
                &mut keep,
            )
            .await?;
            hashes
        };
        let in_group = |key: &ItemKey| group.contains(&bucket_of(key, BUCKETS));
        let stored: Vec<HashMap<ItemKey, u128>> = scan(
            run,
            in_group,
            |hashes: &mut HashMap<ItemKey, u128>, key, stored| {
                hashes.insert(key, item_hash(&stored.item));
            },
        )
        .await?;
        let candidates = differing_keys(source_hashes, stored.into_iter().flatten().collect());
        tracing::info!(view = %view.name, candidates = candidates.len(), "keys to check again");
        run.check(candidates).await?;
    }
    Ok(())
}

/// The keys whose hashes differ between the source's and the stored items, either side
/// missing included.
fn differing_keys(source: HashMap<ItemKey, u128>, stored: HashMap<ItemKey, u128>) -> Vec<ItemKey> {
    let mut candidates: Vec<ItemKey> = source
        .iter()
        .filter(|(key, hash)| stored.get(*key) != Some(*hash))
        .map(|(key, _)| key.clone())
        .collect();
    candidates.extend(stored.into_keys().filter(|key| !source.contains_key(key)));
    candidates
}

/// The view's items read with parallel Scan segments, those `keep` takes folded into one
/// accumulator per segment.
async fn scan<A: Default + Send>(
    run: &Run<'_, '_>,
    keep: impl Fn(&ItemKey) -> bool + Sync,
    fold: impl Fn(&mut A, ItemKey, Stored) + Sync,
) -> Result<Vec<A>, VerifyError> {
    let (view, services, options) = (run.view, run.services, run.options);
    let pacer = Pacer::new(options.rate);
    let segments = options.segments.max(1);
    let mut parts: Vec<A> = (0..segments).map(|_| A::default()).collect();
    try_join_all(parts.iter_mut().enumerate().map(|(i, part)| {
        let (pacer, keep, fold) = (&pacer, &keep, &fold);
        async move {
            let mut visit = |key: ItemKey, stored: Stored| {
                if keep(&key) {
                    fold(part, key, stored);
                }
            };
            let segment = (i as i32, segments);
            table::scan_segment(services.client, run.owner(), segment, pacer, &mut visit).await
        }
    }))
    .await
    .map_err(dynamo_error(view))?;
    Ok(parts)
}

/// Differing buckets in groups of at most [`NARROW_ITEMS`] items (a bucket larger than that
/// is a group of its own).
fn groups(differing: &[(usize, u64)]) -> Vec<HashSet<usize>> {
    let mut out = Vec::new();
    let mut group = HashSet::new();
    let mut items = 0;
    for &(bucket, count) in differing {
        if !group.is_empty() && items + count > NARROW_ITEMS {
            out.push(std::mem::take(&mut group));
            items = 0;
        }
        group.insert(bucket);
        items += count;
    }
    if !group.is_empty() {
        out.push(group);
    }
    out
}

/// A lazy view: every stored item, checked a batch at a time.
pub async fn stored(run: &mut Run<'_, '_>) -> Result<(), VerifyError> {
    let (view, services) = (run.view, run.services);
    let pacer = Pacer::new(run.options.rate);
    let schema = run.schema.clone();
    let owner = table::Owner {
        view,
        views: services.views,
        schema: Some(&schema),
    };
    let mut pages = Pages::new(services.client, owner, (0, 1));
    let mut batch = Vec::new();
    while let Some(page) = pages.next(&pacer).await.map_err(dynamo_error(view))? {
        batch.extend(page.into_iter().map(|(key, _)| key));
        if batch.len() >= SETTLE_BATCH {
            run.summary.checked += batch.len() as u64;
            run.check(std::mem::take(&mut batch)).await?;
        }
    }
    run.summary.checked += batch.len() as u64;
    run.check(batch).await
}
