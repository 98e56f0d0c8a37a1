//! DynamoDB plumbing every stage uses: the clients, error classification, item encoding, the
//! metadata attributes rowcast adds to items, marked removals, and the table tools.

pub mod body;
mod error;
pub mod import;
pub mod index_check;
pub mod indexes;
mod item;
mod layout;
mod remove;
pub mod tables;

use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::Client;

pub use body::BatchBody;
pub use error::{classify_sdk_error, is_condition_failure, SdkErrorInfo};
pub use item::{
    encode_item, encode_key, from_attribute_value, item_size, item_version, origin, size_over,
    to_attribute_value, types_value, MAX_ITEM_BYTES, ORIGIN_ATTRIBUTE, ORIGIN_BYTES,
    REMOVAL_ATTRIBUTE, RESTORED_ATTRIBUTE, VERSION_ATTRIBUTE, VIEW_ATTRIBUTE,
};
pub use remove::{remove_at_version, remove_marked, RemovalGuard};
pub use tables::{CONTROL_PK, CONTROL_SK};

use crate::config::DynamoConfig;

pub async fn client(config: &DynamoConfig) -> Client {
    let shared = shared_config(config).await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&shared)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .timeout_config(timeouts())
        .build();
    Client::from_conf(conf)
}

/// The clients' timeouts: 3 s to connect, 10 s per attempt.
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .build()
}

/// `client` whose requests the SDK sends once, for a caller that retries them itself: the
/// writer, which confirms its write lease before each send (`control::Lease`), so that no
/// attempt leaves after the lease has ended.
///
/// Without the SDK's stalled-stream protection: the writer's requests and answers are small
/// bodies, which the attempt timeout (10 s) already bounds whole, and the protection wraps
/// both bodies in a throughput monitor with a timer on every request (about 300 instructions
/// per item of the writer bench under callgrind: under 1 %, but for nothing).
pub fn sending_once(client: &Client) -> Client {
    let conf = client
        .config()
        .to_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .stalled_stream_protection(
            aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled(),
        )
        .build();
    Client::from_conf(conf)
}

/// Region, endpoint and credentials for the AWS clients (DynamoDB and DynamoDB Streams).
pub async fn shared_config(config: &DynamoConfig) -> aws_config::SdkConfig {
    shared_config_from(
        aws_config::defaults(aws_config::BehaviorVersion::latest()),
        config,
    )
    .await
}

/// [`shared_config`] from `loader` (the tests' names their profile files).
async fn shared_config_from(
    mut loader: aws_config::ConfigLoader,
    config: &DynamoConfig,
) -> aws_config::SdkConfig {
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.endpoint_url {
        loader = loader.endpoint_url(endpoint);
        let local = is_loopback(endpoint);
        // DynamoDB Local accepts any credentials; don't make the operator invent some. Only for
        // a loopback endpoint with no credentials configured: any other endpoint (a VPC
        // endpoint, a proxy) gets the default chain, and so does a local one when the operator
        // configured credentials.
        if local && !credentials_configured() {
            loader = loader.credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "rowcast-local",
            ));
        }
        // DynamoDB Local takes any region, and asking the chain would make every start wait for
        // the instance metadata service's timeout.
        if local && config.region.is_none() && std::env::var_os("AWS_REGION").is_none() {
            loader = loader.region(Region::new("us-east-1"));
        }
    }
    let shared = loader.load().await;
    // Any other endpoint (a VPC endpoint, a proxy) signs for the default chain's region
    // (`AWS_REGION`, `AWS_DEFAULT_REGION`, the profile, the instance's), and only without one
    // for us-east-1. Before 2026-12-06's seventh stop it was us-east-1 whenever `region` and
    // `AWS_REGION` were unset: with the region in the profile only, every request to a VPC
    // endpoint in another region was refused, and the writes held for ever (found by a review).
    if config.endpoint_url.is_some() && shared.region().is_none() {
        return shared
            .into_builder()
            .region(Region::new("us-east-1"))
            .build();
    }
    shared
}

/// Whether `endpoint` (`http://127.0.0.1:8000`) names this machine.
fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether the default chain has something to find without asking the instance metadata
/// service (which would make every start against DynamoDB Local wait for its timeout): keys,
/// a profile, web identity (EKS IRSA), container credentials (ECS, EKS Pod Identity), or a
/// shared credentials or config file (SSO, credential_process).
fn credentials_configured() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let vars = [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ];
    if vars.iter().any(|name| set(name)) {
        return true;
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
            .is_some_and(|path| path.is_file())
    };
    file("AWS_SHARED_CREDENTIALS_FILE", "credentials") || file("AWS_CONFIG_FILE", "config")
}

/// The DynamoDB Streams client, with the timeouts of [`client`]. Before 2026-12-07 it had only
/// aws-config's connect timeout: a GetRecords whose answer never came (a connection the
/// network dropped without a reset, a proxy that hangs) was waited for without end, and
/// write-back of its table stopped with nothing in the log or the metrics (found by a review;
/// `tests/services.rs` `a_stream_read_never_answered_is_given_up_and_read_again`, seen
/// failing). A GetRecords answer is 1 MB at most.
pub async fn streams_client(config: &DynamoConfig) -> aws_sdk_dynamodbstreams::Client {
    let shared = shared_config(config).await;
    let conf = aws_sdk_dynamodbstreams::config::Builder::from(&shared)
        .timeout_config(timeouts())
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The region [`shared_config_from`] gives an endpoint when the profile (in `profile`)
    /// names one and the configuration does not. (`ProfileFiles` is aws-config's deprecated
    /// alias of aws-runtime's `EnvConfigFiles`, which rowcast does not depend on; the loader
    /// takes either.)
    #[allow(deprecated)]
    fn region_with_profile(endpoint: &str, profile: &str) -> Option<String> {
        let dir = std::env::temp_dir().join(format!(
            "rowcast-region-{}-{}",
            std::process::id(),
            endpoint.len()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let file = dir.join("config");
        std::fs::write(&file, profile).expect("the profile written");
        let files = aws_config::profile::profile_file::ProfileFiles::builder()
            .with_file(
                aws_config::profile::profile_file::ProfileFileKind::Config,
                &file,
            )
            .build();
        let loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).profile_files(files);
        let config = DynamoConfig {
            endpoint_url: Some(endpoint.to_string()),
            region: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let shared = runtime.block_on(shared_config_from(loader, &config));
        let _ = std::fs::remove_dir_all(&dir);
        shared.region().map(ToString::to_string)
    }

    /// A VPC endpoint signs for the profile's region (before: us-east-1, refused); DynamoDB
    /// Local gets us-east-1 without asking the chain. `AWS_REGION`, where the machine sets it,
    /// comes first in both.
    #[test]
    fn an_endpoint_elsewhere_takes_the_profiles_region_and_a_local_one_us_east_1() {
        let env = std::env::var("AWS_REGION").ok();
        let profile = "[default]\nregion = eu-west-1\n";
        let vpc = "https://vpce-1.dynamodb.eu-west-1.vpce.amazonaws.com";
        assert_eq!(
            region_with_profile(vpc, profile),
            Some(env.clone().unwrap_or_else(|| "eu-west-1".into()))
        );
        assert_eq!(
            region_with_profile("http://127.0.0.1:8000", profile),
            Some(env.unwrap_or_else(|| "us-east-1".into()))
        );
    }

    #[test]
    fn loopback_endpoints_are_told_apart() {
        for local in [
            "http://127.0.0.1:8000",
            "http://localhost:8000/",
            "http://[::1]:8000",
        ] {
            assert!(super::is_loopback(local), "{local}");
        }
        for remote in [
            "https://dynamodb.eu-west-1.amazonaws.com",
            "https://vpce-1.dynamodb.eu-west-1.vpce.amazonaws.com",
            "http://10.0.0.5:8000",
        ] {
            assert!(!super::is_loopback(remote), "{remote}");
        }
    }
}
