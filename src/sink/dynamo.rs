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
