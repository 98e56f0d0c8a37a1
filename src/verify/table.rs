//! The DynamoDB side of a verification: a view's items, read with parallel Scan segments
//! (strongly consistent) or fetched by key (BatchGetItem, strongly consistent).
//!
//! A table may hold several views: an item belongs to the view its `_view` attribute names
//! (even when the view's key templates no longer parse its key: an item an older definition of
//! the view made), or, written before rowcast named the view in items, when its key parses
//! through the view's key templates (as `GET /v1/views/{view}/item` parses it).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;

use super::Pacer;
use crate::dynamo::{
    classify_sdk_error, encode_key, from_attribute_value, SdkErrorInfo, VERSION_ATTRIBUTE,
    VIEW_ATTRIBUTE,
};
use crate::view::project::Item;
use crate::view::value::Attr;
use crate::view::{parse_item_key, ItemKey, View};

/// One item as read: its attributes (metadata left out) and its version, if it has one.
pub struct Stored {
    pub item: Item,
    pub version: Option<u128>,
}

/// The view's item in a raw DynamoDB item, or `None` when the item is not the view's.
pub fn view_item(view: &View, raw: &HashMap<String, AttributeValue>) -> Option<(ItemKey, Stored)> {
    let pk = raw.get(&view.key.pk_attribute)?.as_s().ok()?;
    let sk = match &view.key.sk_attribute {
        Some(name) => Some(raw.get(name)?.as_s().ok()?.as_str()),
        None => None,
    };
    let named = raw.get(VIEW_ATTRIBUTE).and_then(|v| v.as_s().ok());
    let key = match (named, parse_item_key(view, pk, sk)) {
        (Some(name), _) if *name != view.name => return None,
        (_, Ok((key, _))) => key,
        (Some(_), Err(_)) => ItemKey {
            table: view.table.clone(),
            pk_attribute: view.key.pk_attribute.clone(),
            pk: pk.clone(),
            sk_attribute: view.key.sk_attribute.clone(),
            sk: sk.map(str::to_string),
        },
        (None, Err(_)) => return None,
    };
    let item = raw
        .iter()
        .filter(|(name, _)| !name.starts_with('_'))
        .map(|(name, value)| {
            // A type rowcast never writes (a number or binary set) still counts as a value.
            let attr = from_attribute_value(value)
                .unwrap_or_else(|| Attr::S(format!("\u{0}unsupported {value:?}")));
            (name.clone(), attr)
        })
        .collect();
    let version = raw
        .get(VERSION_ATTRIBUTE)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok());
    Some((key, Stored { item, version }))
}

/// Every item of the view in one Scan segment of the table.
pub async fn scan_segment(
    client: &Client,
    view: &View,
    (segment, total): (i32, i32),
    pacer: &Pacer,
    visit: &mut (dyn FnMut(ItemKey, Stored) + Send),
) -> Result<(), SdkErrorInfo> {
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = client
            .scan()
            .table_name(&view.table)
            .segment(segment)
            .total_segments(total)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e))?;
        let items = page.items.unwrap_or_default();
        pacer.take(items.len() as u64).await;
        for raw in &items {
            if let Some((key, stored)) = view_item(view, raw) {
                visit(key, stored);
            }
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(()),
        }
    }
}

/// The items stored under `keys` (strongly consistent reads; absent keys are absent).
pub async fn get_items(
    client: &Client,
    view: &View,
    keys: &[ItemKey],
) -> Result<HashMap<ItemKey, Stored>, SdkErrorInfo> {
    let mut out = HashMap::new();
    for batch in keys.chunks(100) {
        let mut request = KeysAndAttributes::builder().consistent_read(true);
        for key in batch {
            request = request.keys(encode_key(key));
        }
        let mut pending = Some(request.build().map_err(|e| SdkErrorInfo {
            class: crate::error::ErrorClass::Definite,
            code: None,
            message: e.to_string(),
            throttled: false,
        })?);
        let mut pause = Duration::from_millis(20);
        while let Some(request) = pending.take() {
            let out_page = client
                .batch_get_item()
                .request_items(&view.table, request)
                .send()
                .await
                .map_err(|e| classify_sdk_error(&e))?;
            for raw in out_page
                .responses
                .and_then(|mut r| r.remove(&view.table))
                .unwrap_or_default()
            {
                if let Some((key, stored)) = view_item(view, &raw) {
                    out.insert(key, stored);
                }
            }
            pending = out_page
                .unprocessed_keys
                .and_then(|mut u| u.remove(&view.table))
                .filter(|k| !k.keys.is_empty());
            if pending.is_some() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
    Ok(out)
}
