//! What went wrong with a DynamoDB call: transient (throttling, a server error, the network) or
//! definite (validation, access, a missing table).

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::error::ErrorClass;

/// What went wrong with a DynamoDB call, classified.
#[derive(Debug, Clone)]
pub struct SdkErrorInfo {
    pub class: ErrorClass,
    pub code: Option<String>,
    pub message: String,
    pub throttled: bool,
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

/// A conditional write whose condition did not hold.
pub fn is_condition_failure(info: &SdkErrorInfo) -> bool {
    info.code.as_deref() == Some("ConditionalCheckFailedException")
}
