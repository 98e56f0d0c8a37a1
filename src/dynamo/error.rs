//! What went wrong with a DynamoDB call: transient (throttling, a server error, the network) or
//! definite (validation, access, a missing table).

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::error::ErrorClass;

/// What went wrong with a DynamoDB call, classified.
#[derive(Debug, Clone)]
pub struct SdkErrorInfo {
    pub class: ErrorClass,
    pub code: Option<String>,
    pub message: String,
    pub throttled: bool,
    /// The request may have been applied, or may still be (a timeout, a connection lost after
    /// the request went out, a server error): a plain write's items are written again later,
    /// guarded (`sink::unsure`). `false` where DynamoDB answered that it did not apply it
    /// (throttling, a refusal) or the request never left (a refused connection).
    pub unsure: bool,
}

/// Refusals that concern a whole table, not one item: no access, no such table (deleted, being
/// created again), bad or expired credentials. Writing the item elsewhere or later as a dead
/// letter would lose it; the writes wait until DynamoDB takes them.
const TABLE_WIDE_CODES: [&str; 10] = [
    "ResourceNotFoundException",
    "ResourceInUseException",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidClientTokenId",
];

impl SdkErrorInfo {
    /// A refusal of every write to the table, not of one item (see [`TABLE_WIDE_CODES`]).
    pub fn is_table_wide(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|code| TABLE_WIDE_CODES.contains(&code))
    }
}

impl std::fmt::Display for SdkErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// Throttling in all but name: retried with backoff, counted as throttles. The AWS SDKs' list.
const THROTTLE_CODES: [&str; 14] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "BandwidthLimitExceeded",
    "SlowDown",
    "EC2ThrottledException",
    "PriorRequestNotComplete",
    "TransactionInProgressException",
];

/// Answers after which a request may have been applied, or may still be: DynamoDB's internal
/// errors and timeouts (also any answer with a 5xx status). A retry may fix them.
const UNSURE_CODES: [&str; 6] = [
    "InternalServerError",
    "ServiceUnavailable",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
    "TimeoutError",
];

/// Failures a retry may fix besides [`UNSURE_CODES`] and any 5xx: a write that met another
/// writer's transaction on the item (an application's TransactWriteItems, a multi-Region
/// global table's replicated write: answered 400, and a dead letter would lose the change).
const CONFLICT_CODES: [&str; 2] = [
    "TransactionConflictException",
    "ReplicatedWriteConflictException",
];

/// Transient (retry), throttled, or definite (the request itself is refused). The writers retry
/// by themselves (their client sends each request once: `dynamo::sending_once`), so this is
/// where throttling and transient answers are told apart from refusals.
pub fn classify_sdk_error<E>(error: &SdkError<E, HttpResponse>) -> SdkErrorInfo
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().map(str::to_string);
            let message = err.message().unwrap_or_default().to_string();
            let throttled = code.as_deref().is_some_and(|c| THROTTLE_CODES.contains(&c));
            let status = service.raw().status().as_u16();
            let unsure = !throttled
                && ((500..600).contains(&status)
                    || code.as_deref().is_some_and(|c| UNSURE_CODES.contains(&c)));
            let transient = throttled
                || unsure
                || code.as_deref().is_some_and(|c| CONFLICT_CODES.contains(&c))
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
                unsure,
            }
        }
        SdkError::ConstructionFailure(_) => SdkErrorInfo {
            class: ErrorClass::Definite,
            code: None,
            message: crate::error::chain(error),
            throttled: false,
            unsure: false,
        },
        // A timeout, a connection lost, an answer that could not be read: the request may have
        // reached DynamoDB, unless the connection was never made.
        _ => SdkErrorInfo {
            class: ErrorClass::Transient,
            code: None,
            message: crate::error::chain(error),
            throttled: false,
            unsure: !never_sent(error),
        },
    }
}

/// A failure to connect, or to get credentials: the request never left. Told by the HTTP
/// client's connect error (DNS, TCP, TLS) or a refused connection among the error's causes, the
/// SDK's connect timeout, or a credentials provider's error (the SDK resolves credentials
/// before it signs and sends, and reports their failure as a dispatch failure); anything else
/// may have sent it. Of one attempt: a client that retries reports its last attempt's error,
/// and an earlier one may have landed; the writer, whose writes alone are kept by this, sends
/// each request once (`dynamo::sending_once`).
fn never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    use aws_credential_types::provider::error::CredentialsError;
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        if error
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
        {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            ) {
                return true;
            }
        }
        if error.to_string().contains("HTTP connect timeout") {
            return true;
        }
        cause = error.source();
    }
    false
}

/// A conditional write whose condition did not hold.
pub fn is_condition_failure(info: &SdkErrorInfo) -> bool {
    info.code.as_deref() == Some("ConditionalCheckFailedException")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;

    fn answer(code: Option<&str>, status: u16) -> SdkErrorInfo {
        let mut meta = ErrorMetadata::builder().message("an answer");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(status.try_into().expect("a status"), "".into());
        classify_sdk_error(&SdkError::service_error(
            PutItemError::generic(meta.build()),
            raw,
        ))
    }

    /// The writers send each request once and retry by themselves: every answer the AWS SDKs
    /// would retry must read as transient here (throttling as throttling), or a write would go
    /// to the dead letters; a refusal of the request itself stays definite.
    #[test]
    fn answers_the_sdks_retry_are_transient_and_refusals_definite() {
        for code in THROTTLE_CODES {
            let info = answer(Some(code), 400);
            assert!(
                info.throttled && info.class == ErrorClass::Transient,
                "{code}"
            );
        }
        for code in UNSURE_CODES.iter().chain(&CONFLICT_CODES) {
            let info = answer(Some(code), 400);
            assert!(
                !info.throttled && info.class == ErrorClass::Transient,
                "{code}"
            );
        }
        for status in [500, 502, 503, 504] {
            let info = answer(Some("SomethingNew"), status);
            assert_eq!(info.class, ErrorClass::Transient, "{status}");
        }
        assert_eq!(answer(None, 400).class, ErrorClass::Transient);
        // Another writer's transaction on the item (an application's TransactWriteItems, a
        // multi-Region global table's replicated write): the write was not refused, it waits.
        for code in [
            "TransactionConflictException",
            "ReplicatedWriteConflictException",
        ] {
            assert_eq!(
                answer(Some(code), 400).class,
                ErrorClass::Transient,
                "{code}"
            );
        }
        for code in ["ValidationException", "ConditionalCheckFailedException"] {
            assert_eq!(
                answer(Some(code), 400).class,
                ErrorClass::Definite,
                "{code}"
            );
        }
    }

    /// Which failures leave a write's outcome unknown: DynamoDB's internal errors and timeouts
    /// (any 5xx), the client's timeout; not throttling, a refusal, or another writer's
    /// transaction (DynamoDB answered that it did not apply the request).
    #[test]
    fn a_write_may_have_been_applied_after_a_server_error_or_a_timeout() {
        for code in UNSURE_CODES {
            assert!(answer(Some(code), 400).unsure, "{code}");
        }
        for status in [500, 502, 503, 504] {
            assert!(answer(Some("SomethingNew"), status).unsure, "{status}");
        }
        for code in THROTTLE_CODES.iter().chain(&[
            "TransactionConflictException",
            "ValidationException",
            "ConditionalCheckFailedException",
            "ResourceNotFoundException",
        ]) {
            assert!(!answer(Some(code), 400).unsure, "{code}");
        }
        // Throttling answered with a 5xx status is still throttling: nothing was applied.
        assert!(!answer(Some("ThrottlingException"), 503).unsure);
        let timeout: SdkError<PutItemError, HttpResponse> =
            SdkError::timeout_error("attempt timeout occurred after 10s");
        assert!(classify_sdk_error(&timeout).unsure);
    }

    /// Credentials that cannot be had (an expired session, a credential process that fails, a
    /// metadata service out of reach) fail the request before it is signed: nothing was sent,
    /// a known outcome. Before 2026-12-07's seventh stop it was taken for an unknown one (the
    /// SDK reports it as a dispatch failure), and every write of the spell was kept, written
    /// again guarded and held its lane's checkpoint for `recheck_after_ms`.
    #[tokio::test]
    async fn credentials_that_fail_are_a_known_outcome() {
        #[derive(Debug)]
        struct Failing;
        impl aws_sdk_dynamodb::config::ProvideCredentials for Failing {
            fn provide_credentials<'a>(
                &'a self,
            ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
            where
                Self: 'a,
            {
                aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                    aws_credential_types::provider::error::CredentialsError::provider_error(
                        "the session expired",
                    ),
                ))
            }
        }
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            // Nothing listens there; the request fails before it would connect.
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(Failing)
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let error = client
            .put_item()
            .table_name("t")
            .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
            .send()
            .await
            .expect_err("no credentials");
        let info = classify_sdk_error(&error);
        assert!(!info.unsure, "{}", info.message);
        assert_eq!(info.class, ErrorClass::Transient, "{}", info.message);
    }
}
