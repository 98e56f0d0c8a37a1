//! Repairing differences through the daemon, in the stream's order, and only where that is
//! safe: a key that parses back unambiguously into its row's columns (otherwise the read could
//! find the wrong rows and remove a live item); never an item of a write-back view (an
//! application's change there may be on its way to SQL, and rewriting the item would undo it).

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::warn;

use super::digest::item_hash;
use super::{settle, table, Difference, Kind, Pacer, Run, VerifyError};
use crate::dynamo::{remove_marked, RemovalGuard};
use crate::pipeline::FillRequest;
use crate::view::project::MAX_KEY_READINGS;
use crate::view::{key_readings, parse_item_key, ItemKey, View};

/// Where repairs go: the running daemon's API listener (`rowcast verify --repair`), or, inside
/// the daemon (`[verify] repair = true`), the snapshot worker's queue of fills.
#[derive(Clone)]
pub enum RepairVia {
    Http(crate::util::http::Api),
    Fills(mpsc::Sender<FillRequest>),
}

impl std::fmt::Display for RepairVia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepairVia::Http(api) => write!(f, "the daemon's API on {}", api.addr),
            RepairVia::Fills(_) => write!(f, "the snapshot worker"),
        }
    }
}

/// One item through the daemon: read again from the source and merged at the read's position
/// (or removed there when no row makes it).
async fn repair_one(via: &RepairVia, view: &View, key: &ItemKey) -> Result<(), String> {
    match via {
        RepairVia::Http(api) => {
            use crate::util::http::{query_value, request};
            let mut path = format!("/v1/views/{}/repair?pk={}", view.name, query_value(&key.pk));
            if let Some(sk) = &key.sk {
                path.push_str(&format!("&sk={}", query_value(sk)));
            }
            match request(api, "POST", &path, Duration::from_secs(30)).await {
                Ok((200, _)) => Ok(()),
                Ok((status, body)) => Err(format!("{status} {body}")),
                Err(error) => Err(error.to_string()),
            }
        }
        RepairVia::Fills(fills) => {
            let key = parse_item_key(view, &key.pk, key.sk.as_deref())?;
            let (reply, answer) = tokio::sync::oneshot::channel();
            let request = FillRequest {
                view: view.name.clone(),
                key,
                reply,
                restore: None,
                repair: true,
            };
            fills
                .send(request)
                .await
                .map_err(|_| "the pipeline is stopping".to_string())?;
            match tokio::time::timeout(Duration::from_secs(30), answer).await {
                Ok(Ok(Ok(_))) => Ok(()),
                Ok(Ok(Err(error))) => Err(error),
                _ => Err("no answer in time".into()),
            }
        }
    }
}

/// Waits (up to 10 s) until the repair of `difference` shows in DynamoDB: the item gone, there,
/// or at another version.
async fn written(run: &Run<'_, '_>, difference: &Difference) -> Result<(), VerifyError> {
    let (view, services) = (run.view, run.services);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let keys = [difference.key.clone()];
    // 20 ms, doubling up to half a second: about 25 reads in the 10 s, not 500.
    let mut pause = Duration::from_millis(20);
    while tokio::time::Instant::now() < deadline {
        let stored = table::get_items(services.client, run.owner(), &keys)
            .await
            .map_err(super::dynamo_error(view))?;
        let now = stored.get(&difference.key);
        let landed = match (difference.kind, now) {
            (Kind::Extra, None) | (Kind::Missing, Some(_)) => true,
            (Kind::Different, Some(now)) => {
                now.version != difference.version
                    || difference
                        .actual
                        .as_ref()
                        .is_none_or(|a| item_hash(a) != item_hash(&now.item))
            }
            (Kind::Different, None) => true,
            _ => false,
        };
        if landed {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
    Ok(())
}

/// Sends the differences that can be repaired safely, waits for them to land, then settles those
/// keys again: `repaired` counts the ones now equal, `not_repaired` the rest.
pub async fn repair(run: &mut Run<'_, '_>, found: &[Difference]) -> Result<(), VerifyError> {
    let Some(via) = run.options.repair_via.clone() else {
        return Ok(());
    };
    let view = run.view;
    if view.writeback_enabled {
        warn!(view = %view.name, differences = found.len(), "not repaired: a write-back view (an application's change may be on its way to SQL); see README, Verify and repair");
        run.summary.not_repaired += found.len() as u64;
        return Ok(());
    }
    let mut sent = Vec::new();
    // A repair reads the source and writes the item: within the pace.
    let pacer = Pacer::new(run.options.rate);
    for difference in found {
        pacer.take(1).await;
        let key = &difference.key;
        // Read again through the daemon from every row that could make it (each reading of
        // its key: `view::key_readings`), so also removed there when none does.
        let readable = matches!(key_readings(view, key), Some(readings) if !readings.is_empty());
        let outcome = if readable {
            repair_one(&via, view, key).await
        } else if let (Kind::Extra, Some(version), Some(start)) =
            (difference.kind, difference.version, run.pass_start)
        {
            // An item written before the view's current pass whose key its templates cannot
            // read (an older definition's): no row can make it, and it is removed only as read.
            if version >= start {
                Err("its key does not parse back with the view's templates".to_string())
            } else {
                remove_marked(run.services.client, key, RemovalGuard::UpTo(version))
                    .await
                    .map(|_| ())
                    .map_err(|info| info.to_string())
            }
        } else {
            Err(format!(
                "its key does not parse back with the view's templates, or in more than {MAX_KEY_READINGS} ways"
            ))
        };
        match outcome {
            Ok(()) => {
                written(run, difference).await?;
                sent.push(key.clone());
            }
            Err(reason) => {
                warn!(view = %view.name, key = %key, %reason, "difference not repaired");
                run.summary.not_repaired += 1;
            }
        }
    }
    let unsettled = run.summary.unsettled;
    let settled = settle::settle(run, sent.clone()).await?;
    let left = settled.differences.len() as u64;
    let still_changing = run.summary.unsettled - unsettled;
    // Grown past what DynamoDB takes meanwhile: the repair made a dead letter, not the item.
    run.summary.not_repaired += settled.unwritable;
    run.summary.repaired +=
        (sent.len() as u64).saturating_sub(left + still_changing + settled.unwritable);
    Ok(())
}
