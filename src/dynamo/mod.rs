//! DynamoDB plumbing every stage uses: the clients, error classification, item encoding, the
//! metadata attributes rowcast adds to items, marked removals, and the table tools.

mod error;
mod item;
mod remove;
pub mod tables;

use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::Client;

pub use error::{classify_sdk_error, is_condition_failure, SdkErrorInfo};
pub use item::{
    encode_item, encode_key, from_attribute_value, item_size, to_attribute_value, types_value,
    MAX_ITEM_BYTES, REMOVAL_ATTRIBUTE, RESTORED_ATTRIBUTE, VERSION_ATTRIBUTE, VIEW_ATTRIBUTE,
};
pub use remove::{remove_at_version, remove_marked, RemovalGuard};
pub use tables::{CONTROL_PK, CONTROL_SK};

use crate::config::DynamoConfig;

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

pub async fn streams_client(config: &DynamoConfig) -> aws_sdk_dynamodbstreams::Client {
    let shared = shared_config(config).await;
    aws_sdk_dynamodbstreams::Client::new(&shared)
}
