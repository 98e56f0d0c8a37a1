//! DynamoDB plumbing shared by the writer, the checkpoint store and the table tools: the client,
//! value encoding, and error classification.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::config::DynamoConfig;
use crate::error::ErrorClass;
use crate::view::project::Item;
use crate::view::value::Attr;
use crate::view::ItemKey;

/// Metadata attribute holding the item version (the source transaction counter).
pub const VERSION_ATTRIBUTE: &str = "_version";
/// Metadata attribute that marks an item of a write-back view that rowcast is about to remove:
/// the stream record of the removal carries it in its old image, which is how write-back tells
/// rowcast's removals from an application's DeleteItem (see `writeback/inverse.rs`).
pub const REMOVAL_ATTRIBUTE: &str = "_removing";
/// Metadata attribute of an item rewritten from SQL after write-back rejected an application's
/// change of it: a fresh value on every such write, which is how write-back tells that write
/// (made at the version the item already holds) from an application's.
pub const RESTORED_ATTRIBUTE: &str = "_restored";
/// DynamoDB's limit on one item, names and values included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

pub async fn client(config: &DynamoConfig) -> Client {
    let shared = shared_config(config).await;
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .build();
    let conf = aws_sdk_dynamodb::config::Builder::from(&shared)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .timeout_config(timeouts)
        .build();
    Client::from_conf(conf)
}

/// Region, endpoint and credentials for the AWS clients (DynamoDB and DynamoDB Streams).
pub async fn shared_config(config: &DynamoConfig) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.endpoint_url {
        loader = loader.endpoint_url(endpoint);
        // DynamoDB Local accepts any credentials; don't make the operator invent some.
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && std::env::var_os("AWS_PROFILE").is_none()
        {
            loader = loader.credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "rowcast-local",
            ));
        }
        if config.region.is_none() && std::env::var_os("AWS_REGION").is_none() {
            loader = loader.region(Region::new("us-east-1"));
        }
    }
    loader.load().await
}

/// What went wrong with a DynamoDB call, classified.
#[derive(Debug, Clone)]
pub struct SdkErrorInfo {
    pub class: ErrorClass,
    pub code: Option<String>,
    pub message: String,
    pub throttled: bool,
}

impl std::fmt::Display for SdkErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

const THROTTLE_CODES: [&str; 4] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
];

pub fn classify_sdk_error<E, R>(error: &SdkError<E, R>) -> SdkErrorInfo
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().map(str::to_string);
            let message = err.message().unwrap_or_default().to_string();
            let throttled = code.as_deref().is_some_and(|c| THROTTLE_CODES.contains(&c));
            let transient = throttled
                || matches!(
                    code.as_deref(),
                    Some(
                        "InternalServerError"
                            | "ServiceUnavailable"
                            | "InternalFailure"
                            | "TransactionInProgressException"
                    )
                )
                || code.is_none();
            SdkErrorInfo {
                class: if transient {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Definite
                },
                code,
                message,
                throttled,
            }
        }
        SdkError::ConstructionFailure(_) => SdkErrorInfo {
            class: ErrorClass::Definite,
            code: None,
            message: crate::error::chain(error),
            throttled: false,
        },
        _ => SdkErrorInfo {
            class: ErrorClass::Transient,
            code: None,
            message: crate::error::chain(error),
            throttled: false,
        },
    }
}

pub fn to_attribute_value(attr: &Attr) -> AttributeValue {
    match attr {
        Attr::S(s) => AttributeValue::S(s.clone()),
        Attr::N(n) => AttributeValue::N(n.clone()),
        Attr::B(b) => AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b.clone())),
        Attr::Ss(items) => AttributeValue::Ss(items.clone()),
        Attr::M(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), to_attribute_value(v)))
                .collect(),
        ),
        Attr::L(items) => AttributeValue::L(items.iter().map(to_attribute_value).collect()),
        Attr::Bool(b) => AttributeValue::Bool(*b),
        Attr::Null => AttributeValue::Null(true),
    }
}

pub fn from_attribute_value(value: &AttributeValue) -> Option<Attr> {
    Some(match value {
        AttributeValue::S(s) => Attr::S(s.clone()),
        AttributeValue::N(n) => Attr::N(n.clone()),
        AttributeValue::B(b) => Attr::B(b.as_ref().to_vec()),
        AttributeValue::Ss(items) => Attr::Ss(items.clone()),
        AttributeValue::M(map) => Attr::M(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), from_attribute_value(v)?)))
                .collect(),
        ),
        AttributeValue::L(items) => {
            Attr::L(items.iter().filter_map(from_attribute_value).collect())
        }
        AttributeValue::Bool(b) => Attr::Bool(*b),
        AttributeValue::Null(_) => Attr::Null,
        _ => return None,
    })
}

/// The item as sent: the view's attributes plus the version.
pub fn encode_item(item: &Item, version: u128) -> HashMap<String, AttributeValue> {
    let mut out: HashMap<String, AttributeValue> = item
        .iter()
        .map(|(k, v)| (k.clone(), to_attribute_value(v)))
        .collect();
    out.insert(
        VERSION_ATTRIBUTE.to_string(),
        AttributeValue::N(version.to_string()),
    );
    out
}

pub fn encode_key(key: &ItemKey) -> HashMap<String, AttributeValue> {
    let mut out = HashMap::new();
    out.insert(key.pk_attribute.clone(), AttributeValue::S(key.pk.clone()));
    if let (Some(name), Some(sk)) = (&key.sk_attribute, &key.sk) {
        out.insert(name.clone(), AttributeValue::S(sk.clone()));
    }
    out
}

/// Size of the item as DynamoDB counts it (attribute names plus values), version included.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum::<usize>() + VERSION_ATTRIBUTE.len() + 21
}

/// A version as a number attribute.
pub fn types_value(version: u128) -> AttributeValue {
    AttributeValue::N(version.to_string())
}

/// Which items [`remove_marked`] may remove.
#[derive(Debug, Clone, Copy)]
pub enum RemovalGuard<'a> {
    /// rowcast's delete at version `v`: items with no version or a version up to `v` (the same
    /// delete replayed after a restart marks the item again). The mark sets the version too.
    UpTo(u128),
    /// An application's item that rowcast never wrote (no version) and that still holds these
    /// attributes (keys and metadata aside), e.g. a new item whose write-back was rejected: a
    /// put the application made since is left alone.
    Unversioned(&'a std::collections::BTreeMap<String, Attr>),
}

/// Removes an item so that its stream record says the removal is rowcast's: an UpdateItem first
/// marks it (`_removing`), then a DeleteItem removes it on condition that the mark is still the
/// one just set. `Ok(false)`: the item is absent, newer, or was replaced in between (nothing
/// removed). This costs one more write per removal, only for views with write-back.
pub async fn remove_marked(
    client: &Client,
    key: &ItemKey,
    guard: RemovalGuard<'_>,
) -> Result<bool, SdkErrorInfo> {
    let mut request = client
        .update_item()
        .table_name(&key.table)
        .set_key(Some(encode_key(key)))
        .expression_attribute_names("#k", &key.pk_attribute)
        .expression_attribute_names("#v", VERSION_ATTRIBUTE)
        .expression_attribute_names("#r", REMOVAL_ATTRIBUTE);
    let mark = match guard {
        RemovalGuard::UpTo(version) => {
            request = request
                .update_expression("SET #v = :m, #r = :m")
                .condition_expression(
                    "attribute_exists(#k) AND (attribute_not_exists(#v) OR #v <= :m)",
                );
            version
        }
        RemovalGuard::Unversioned(image) => {
            let mut condition = String::from("attribute_exists(#k) AND attribute_not_exists(#v)");
            let values = image.iter().filter(|(name, _)| {
                !name.starts_with('_')
                    && **name != key.pk_attribute
                    && Some(name.as_str()) != key.sk_attribute.as_deref()
            });
            for (i, (name, value)) in values.enumerate() {
                condition.push_str(&format!(" AND #a{i} = :a{i}"));
                request = request
                    .expression_attribute_names(format!("#a{i}"), name)
                    .expression_attribute_values(format!(":a{i}"), to_attribute_value(value));
            }
            request = request
                .update_expression("SET #r = :m")
                .condition_expression(condition);
            u128::from(crate::metrics::now_micros())
        }
    };
    let marked = request
        .expression_attribute_values(":m", types_value(mark))
        .send()
        .await
        .map_err(|e| classify_sdk_error(&e));
    match marked {
        Ok(_) => {}
        Err(info) if is_condition_failure(&info) => return Ok(false),
        Err(info) => return Err(info),
    }
    let deleted = client
        .delete_item()
        .table_name(&key.table)
        .set_key(Some(encode_key(key)))
        .condition_expression("#r = :m")
        .expression_attribute_names("#r", REMOVAL_ATTRIBUTE)
        .expression_attribute_values(":m", types_value(mark))
        .send()
        .await
        .map_err(|e| classify_sdk_error(&e));
    match deleted {
        Ok(_) => Ok(true),
        Err(info) if is_condition_failure(&info) => Ok(false),
        Err(info) => Err(info),
    }
}

/// A conditional write whose condition did not hold.
pub fn is_condition_failure(info: &SdkErrorInfo) -> bool {
    info.code.as_deref() == Some("ConditionalCheckFailedException")
}
