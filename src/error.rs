//! Error classes shared by every module.
//!
//! A *transient* error (network, throttling, a server restarting) is retried with backoff,
//! forever, resuming from the last good position. A *definite* error (purged binlog,
//! incompatible schema, an item DynamoDB can never accept, bad configuration) is never retried:
//! the affected view halts or the row goes to the dead-letter store, a metric rises, and it is
//! logged once.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Transient,
    Definite,
}

pub trait Classify {
    fn class(&self) -> ErrorClass;

    fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }
}

/// Error types that are always definite: bad input (configuration, a view that does not fit,
/// a value or key that cannot be made) is not fixed by trying again.
macro_rules! definite_errors {
    ($($error:ty),+ $(,)?) => {
        $(impl $crate::error::Classify for $error {
            fn class(&self) -> $crate::error::ErrorClass {
                $crate::error::ErrorClass::Definite
            }
        })+
    };
}

pub(crate) use definite_errors;

/// Writes an error and its whole `source()` chain on one line, for logs.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The one retry policy: exponential backoff with jitter, from `min` up to a cap of `max`,
/// without end (a loop that gives up counts its tries itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub min: std::time::Duration,
    pub max: std::time::Duration,
}

impl RetryPolicy {
    pub fn new(min: std::time::Duration, max: std::time::Duration) -> Self {
        RetryPolicy {
            min,
            max: max.max(min),
        }
    }

    /// The delays of one episode of retries.
    pub fn backoff(&self) -> impl Iterator<Item = std::time::Duration> {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// Sleeps for `delay` unless `cancel` fires first; `false` when cancelled.
pub async fn pause(
    cancel: &tokio_util::sync::CancellationToken,
    delay: std::time::Duration,
) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}
