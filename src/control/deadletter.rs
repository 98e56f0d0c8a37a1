//! The dead-letter store: items DynamoDB can never accept (over 400 KB, an empty key, a value out
//! of DynamoDB's range) are recorded with the view, key, reason and source position, and the
//! rest keeps flowing. Records go to the control table (`pk = "deadletter#<view>"`,
//! `sk = "<seq>#<n>"`) or to a JSON-lines file. Each record also raises
//! `rowcast_dead_letters_total` and is logged once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tokio::sync::Mutex;
use tracing::{error, warn};

use super::{CONTROL_PK, CONTROL_SK};
use crate::dynamo::{classify_sdk_error, SdkErrorInfo};
use crate::error::Classify;
use crate::metrics::metrics;
use crate::pipeline::DeadLetter;

/// How long a dead letter is tried again while its store fails transiently (a full volume,
/// DynamoDB throttling or out of reach) before it goes to the log only.
pub const KEEP_TRYING: std::time::Duration = std::time::Duration::from_secs(60);

pub enum DeadLetterStore {
    Table {
        client: Client,
        table: String,
        /// `deadletter#`, or `deadletter#<pipeline name>#` with `[pipeline] name`; the view
        /// follows.
        prefix: String,
        counter: AtomicU64,
        failing: Failing,
    },
    File {
        path: PathBuf,
        lock: Mutex<()>,
        failing: Failing,
    },
}

/// The store's spell of failures: when it began and when it last failed, shared by every
/// letter, so that once the store has failed for [`KEEP_TRYING`] a burst of letters goes to the
/// log one try each instead of [`KEEP_TRYING`] each (a lane waits for them all). A spell ends
/// when a record goes in, or after [`KEEP_TRYING`] without a failure.
#[derive(Default)]
pub struct Failing(std::sync::Mutex<Option<(Instant, Instant)>>);

impl Failing {
    /// A failure at `now`: when its spell began.
    fn failed_at(&self, now: Instant) -> Instant {
        let mut spell = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let since = match *spell {
            Some((since, last)) if now.saturating_duration_since(last) < KEEP_TRYING => since,
            _ => now,
        };
        *spell = Some((since, now));
        since
    }

    fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead-letter file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dead-letter table {table}: {info}")]
    Dynamo { table: String, info: SdkErrorInfo },
}

impl crate::error::Classify for DeadLetterError {
    fn class(&self) -> crate::error::ErrorClass {
        use std::io::ErrorKind;
        match self {
            // A file that cannot be made where it is asked for (a path through a regular file
            // says AlreadyExists when its directory is made), or not by this process, stays so
            // until an operator acts: the letter goes to the log at once.
            DeadLetterError::File { source, .. }
                if matches!(
                    source.kind(),
                    ErrorKind::NotADirectory
                        | ErrorKind::IsADirectory
                        | ErrorKind::NotFound
                        | ErrorKind::AlreadyExists
                        | ErrorKind::PermissionDenied
                        | ErrorKind::ReadOnlyFilesystem
                        | ErrorKind::InvalidInput
                ) =>
            {
                crate::error::ErrorClass::Definite
            }
            DeadLetterError::File { .. } => crate::error::ErrorClass::Transient,
            DeadLetterError::Dynamo { info, .. } => info.class,
        }
    }
}

impl DeadLetterStore {
    pub fn table(client: Client, table: String, prefix: String) -> Self {
        DeadLetterStore::Table {
            client,
            table,
            prefix,
            // From a random start, so that two instances' letters of one source change in one
            // millisecond (a takeover's replay) never share a sort key and overwrite each other.
            counter: AtomicU64::new(crate::util::random_u64() >> 16),
            failing: Failing::default(),
        }
    }

    /// The store the daemon config names.
    pub fn from_config(config: &crate::config::Config, client: &Client) -> Self {
        match &config.dead_letter {
            crate::config::DeadLetterConfig::Table(table) => Self::table(
                client.clone(),
                table.clone(),
                config.control_prefix("deadletter"),
            ),
            crate::config::DeadLetterConfig::File(path) => Self::file(path.clone()),
        }
    }

    pub fn file(path: PathBuf) -> Self {
        DeadLetterStore::File {
            path,
            lock: Mutex::new(()),
            failing: Failing::default(),
        }
    }

    /// Records a dead letter: transient failures are retried with `retry` while the store has
    /// failed for less than [`KEEP_TRYING`]; a record the store refuses for good (too large, no
    /// access, a file that cannot be made), or one that fails after that, is written to the log
    /// instead, counted in `rowcast_dead_letters_unstored_total`, and the caller goes on. It
    /// never wedges the caller (a lane waits for its letters before it acknowledges anything).
    pub async fn keep(&self, letter: &DeadLetter, retry: &crate::error::RetryPolicy) {
        let mut backoff = retry.backoff();
        let started = Instant::now();
        let failing = match self {
            DeadLetterStore::Table { failing, .. } | DeadLetterStore::File { failing, .. } => {
                failing
            }
        };
        loop {
            let error = match self.record(letter).await {
                Ok(()) => {
                    failing.clear();
                    return;
                }
                Err(error) => error,
            };
            // At most KEEP_TRYING for this letter, less once the store's spell is that old
            // (another lane's success may end the spell; this letter's own bound stays).
            if !error.is_transient()
                || failing.failed_at(Instant::now()).min(started).elapsed() >= KEEP_TRYING
            {
                let json = serde_json::to_string(&letter.bounded()).unwrap_or_default();
                error!(error = %crate::error::chain(&error), letter = %json, "the dead-letter store refused a record; it is kept in this log line only");
                metrics()
                    .dead_letters_unstored
                    .with_label_values(&[&letter.view])
                    .inc();
                return;
            }
            warn!(error = %crate::error::chain(&error), "cannot record a dead letter; retrying");
            tokio::time::sleep(backoff.next().unwrap_or(retry.max)).await;
        }
    }

    /// Records one dead letter, bounded in size to what the store takes (see
    /// [`DeadLetter::bounded_to`]).
    pub async fn record(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        match self {
            DeadLetterStore::File { path, lock, .. } => {
                let json =
                    serde_json::to_string(&letter.bounded_to(crate::pipeline::FILE_RECORD_BYTES))
                        .expect("a dead letter always serialises");
                let _guard = lock.lock().await;
                let target = path.clone();
                let line = format!("{json}\n");
                // Under the file lock a `deadletters` command takes to rewrite the file.
                super::with_file_lock(path, move || {
                    use std::io::Write;
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&target)?;
                    file.write_all(line.as_bytes())?;
                    file.sync_data()
                })
                .await
                .map_err(|source| DeadLetterError::File {
                    path: path.clone(),
                    source,
                })?;
            }
            DeadLetterStore::Table {
                client,
                table,
                prefix,
                counter,
                ..
            } => {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let (record_name, record) = table_record(letter);
                client
                    .put_item()
                    .table_name(table)
                    .item(
                        CONTROL_PK,
                        AttributeValue::S(format!("{prefix}{}", letter.view)),
                    )
                    .item(
                        CONTROL_SK,
                        AttributeValue::S(format!("{:020}#{}#{n}", letter.seq, letter.at_ms)),
                    )
                    .item(record_name, record)
                    .send()
                    .await
                    .map_err(|e| DeadLetterError::Dynamo {
                        table: table.clone(),
                        info: classify_sdk_error(&e),
                    })?;
            }
        }
        metrics()
            .dead_letters
            .with_label_values(&[&letter.view, letter.reason_kind])
            .inc();
        warn!(view = %letter.view, key = ?letter.key, reason = %letter.reason, position = %letter.position, "item sent to the dead-letter store");
        Ok(())
    }
}

/// The attribute of a control-table letter that holds its JSON as text.
pub const TEXT_RECORD: &str = "record";
/// The attribute that holds it gzipped (binary) instead, where the JSON itself would be over
/// the item's bound.
pub const GZIP_RECORD: &str = "record_gzip";

/// A letter as a control-table item holds it (under 400 KB): its JSON whole; gzipped whole where
/// that is over [`crate::pipeline::TABLE_RECORD_BYTES`]; else without the record's old image,
/// as text or gzipped; else cut ([`DeadLetter::bounded_to`]). A write-back rejection's record is
/// the only place an application's change survives: before 2026-12-06's eighth stop one over
/// 360 KB was cut to its length and sequence here (`tests/writeback_safety.rs`, seen failing).
fn table_record(letter: &DeadLetter) -> (&'static str, AttributeValue) {
    use std::io::Write;
    let most = crate::pipeline::TABLE_RECORD_BYTES;
    for bound in [crate::pipeline::FILE_RECORD_BYTES, most] {
        let json = serde_json::to_string(&letter.bounded_to(bound))
            .expect("a dead letter always serialises");
        if json.len() <= most {
            return (TEXT_RECORD, AttributeValue::S(json));
        }
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let zipped = gzip
            .write_all(json.as_bytes())
            .and_then(|()| gzip.finish())
            .expect("writing into memory does not fail");
        if zipped.len() <= most {
            return (GZIP_RECORD, AttributeValue::B(zipped.into()));
        }
    }
    let json =
        serde_json::to_string(&letter.bounded_to(most)).expect("a dead letter always serialises");
    (TEXT_RECORD, AttributeValue::S(json))
}

/// The JSON text of a control-table letter (see [`table_record`]); empty when it holds none.
pub fn table_record_text(item: &std::collections::HashMap<String, AttributeValue>) -> String {
    use std::io::Read;
    match (item.get(TEXT_RECORD), item.get(GZIP_RECORD)) {
        (Some(AttributeValue::S(text)), _) => text.clone(),
        (_, Some(AttributeValue::B(zipped))) => {
            let mut text = String::new();
            match flate2::read::GzDecoder::new(zipped.as_ref()).read_to_string(&mut text) {
                Ok(_) => text,
                Err(_) => String::new(),
            }
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_table_letter_is_kept_whole_when_it_compresses_under_the_bound() {
        let record = |text: String| serde_json::json!({"new": {"note": text}, "old": {"note": "n1"}, "sequence": "7"});
        let letter = |record| DeadLetter {
            view: "v".into(),
            key: Some("t[K#1]".into()),
            pk: Some("K#1".into()),
            sk: None,
            reason: "rejected".into(),
            reason_kind: "writeback_rejected",
            position: crate::pipeline::Position {
                file: "binlog.000001".into(),
                pos: 4,
                gtid: None,
            },
            seq: 1,
            at_ms: 0,
            record: Some(record),
        };
        let read = |(name, value): (&str, AttributeValue)| {
            let item = std::collections::HashMap::from([(name.to_string(), value)]);
            serde_json::from_str::<serde_json::Value>(&table_record_text(&item)).unwrap()
        };
        // Small: text.
        let small = letter(record("short".into()));
        let (name, _) = table_record(&small);
        assert_eq!(name, TEXT_RECORD);
        assert_eq!(
            read(table_record(&small))["record"],
            small.record.clone().unwrap()
        );
        // 380 KB that compresses: whole, gzipped.
        let large = letter(record("x".repeat(380_000)));
        let (name, value) = table_record(&large);
        assert_eq!(name, GZIP_RECORD);
        assert!(matches!(&value, AttributeValue::B(b) if b.as_ref().len() < 10_000));
        assert_eq!(read((name, value))["record"], large.record.clone().unwrap());
        // What does not compress under the bound (the base64 of 400 KB of random bytes, as a
        // binary attribute's JSON holds it): bounded as before, under the item's limit.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let noise: String = (0..540_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(alphabet[(state % 64) as usize])
            })
            .collect();
        let noisy = letter(record(noise));
        let (name, value) = table_record(&noisy);
        let bytes = match &value {
            AttributeValue::S(text) => text.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            _ => unreachable!(),
        };
        assert!(
            bytes <= crate::pipeline::TABLE_RECORD_BYTES + 16 * 1024,
            "{name} {bytes}"
        );
        assert_eq!(read((name, value))["record"]["truncated"], true);
    }

    #[test]
    fn a_spell_of_failures_lasts_until_a_success_or_a_quiet_while() {
        let failing = Failing::default();
        let start = Instant::now();
        let at = |secs: u64| start + std::time::Duration::from_secs(secs);
        assert_eq!(failing.failed_at(at(0)), at(0));
        assert_eq!(failing.failed_at(at(50)), at(0));
        // Failures less than KEEP_TRYING apart keep the spell going.
        assert_eq!(failing.failed_at(at(100)), at(0));
        // A quiet while longer than KEEP_TRYING begins a new one.
        assert_eq!(failing.failed_at(at(200)), at(200));
        failing.clear();
        assert_eq!(failing.failed_at(at(201)), at(201));
    }
}
