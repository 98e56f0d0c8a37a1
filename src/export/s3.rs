//! An export to S3 (or an S3-compatible store): every data file is a multipart upload whose
//! parts go as soon as [`MIN_PART_BYTES`] of compressed data are gathered (S3's minimum part
//! size; the last part may be smaller), so a file of any size holds at most one part in memory.
//! The manifest is a single PutObject, written last. A failed upload is aborted.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use super::ExportError;
use crate::config::DynamoConfig;

/// S3 takes parts of at least 5 MiB, but the last.
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

pub struct S3Dest {
    client: Client,
    pub bucket: String,
    /// The key prefix, empty or ending in `/`.
    pub prefix: String,
}

pub struct S3Upload {
    key: String,
    id: String,
    parts: Vec<CompletedPart>,
    buffer: Vec<u8>,
}

fn failed(what: &str, key: &str, error: impl std::error::Error) -> ExportError {
    ExportError::Destination(format!("s3: {what} {key}: {}", crate::error::chain(&error)))
}

/// An S3 client with the default credential chain and region (`region` if set), at
/// [`endpoint`] when there is one (path-style addressing, as S3-compatible stores expect).
async fn client(endpoint_url: Option<&str>, region: Option<&str>) -> Client {
    let endpoint_url = endpoint(endpoint_url, |name| std::env::var(name).ok());
    let shared = crate::dynamo::shared_config(&DynamoConfig {
        endpoint_url: endpoint_url.clone(),
        region: region.map(str::to_string),
    })
    .await;
    Client::from_conf(config(&shared, endpoint_url.is_some()))
}

/// The S3 endpoint: `--s3-endpoint-url` (`flag`), else the one the SDK would take from the
/// environment (`AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), read here so that either way gets path-style
/// addressing. Before, only the flag did: with the variable, the SDK put the bucket in the
/// endpoint's host name (`bucket.minio:9000`), which no resolver knows (found by a review; an
/// address like 127.0.0.1 never had the problem, the SDK addresses one by path).
fn endpoint(flag: Option<&str>, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(url) = flag {
        return Some(url.to_string());
    }
    if var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|name| var(name).filter(|url| !url.is_empty()))
}

/// The S3 client's settings: `shared`'s, path-style when an endpoint is set.
fn config(shared: &aws_config::SdkConfig, custom_endpoint: bool) -> aws_sdk_s3::Config {
    aws_sdk_s3::config::Builder::from(shared)
        .force_path_style(custom_endpoint)
        .build()
}

/// The bytes of `s3://bucket/key` (`location`), read with [`client`]'s settings.
pub async fn read(
    location: &str,
    endpoint_url: Option<&str>,
    region: Option<&str>,
) -> Result<Vec<u8>, ExportError> {
    let rest = location.strip_prefix("s3://").unwrap_or(location);
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let object = client(endpoint_url, region)
        .await
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|error| failed("read", key, error))?;
    let bytes = (object.body.collect().await).map_err(|error| failed("read", key, error))?;
    Ok(bytes.into_bytes().to_vec())
}

impl S3Dest {
    /// `s3://bucket/prefix` with the default credential chain and region (`[dynamodb] region`
    /// if set), at `endpoint_url` when given (path-style addressing, as S3-compatible stores
    /// expect; `AWS_ENDPOINT_URL_S3` works too).
    pub async fn open(
        to: &str,
        endpoint_url: Option<&str>,
        region: Option<&str>,
    ) -> Result<S3Dest, ExportError> {
        let rest = to.strip_prefix("s3://").unwrap_or(to);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ExportError::Destination(format!("{to}: no bucket")));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = match prefix.is_empty() {
            true => String::new(),
            false => format!("{prefix}/"),
        };
        let dest = S3Dest {
            client: client(endpoint_url, region).await,
            bucket: bucket.to_string(),
            prefix,
        };
        // Claimed first, then found empty but for the claim: an export that finished between
        // a look and a claim would otherwise be written over.
        dest.claim().await?;
        let listed = dest
            .client
            .list_objects_v2()
            .bucket(&dest.bucket)
            .prefix(&dest.prefix)
            .max_keys(2)
            .send()
            .await
            .map_err(|e| failed("listing", to, e));
        let claim = dest.claim_key();
        let empty = listed.map(|listed| {
            (listed.contents().iter()).all(|object| object.key() == Some(claim.as_str()))
        });
        match empty {
            Ok(true) => Ok(dest),
            Ok(false) => {
                dest.release().await;
                Err(ExportError::Destination(format!(
                    "{to}: not empty (an export writes under an empty prefix: an import takes every object under it)"
                )))
            }
            Err(error) => {
                dest.release().await;
                Err(error)
            }
        }
    }

    fn claim_key(&self) -> String {
        format!("{}{}", self.prefix, super::claim::CLAIM_FILE)
    }

    /// Removes the claim if it is this export's (one an operator removed and another export
    /// made since is left alone).
    pub async fn release(&self) {
        let key = self.claim_key();
        match self.claim_is_ours().await {
            Ok(true) => self.remove(super::claim::CLAIM_FILE).await,
            Ok(false) => {
                tracing::warn!(key = %key, "the destination's claim is not this export's any more: left as it is")
            }
            Err(error) => {
                tracing::warn!(key = %key, error = %error, "the destination's claim could not be read: left; remove it once no export runs there")
            }
        }
    }

    /// Whether the claim holds this export's bytes (`Ok(false)`: another's, or none).
    async fn claim_is_ours(&self) -> Result<bool, String> {
        let read = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.claim_key())
            .send()
            .await;
        match read {
            Ok(object) => match object.body.collect().await {
                Ok(bytes) => Ok(bytes.into_bytes().as_ref() == super::claim::claim_text()),
                Err(error) => Err(error.to_string()),
            },
            Err(error)
                if error
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(false)
            }
            Err(error) => Err(crate::error::chain(&error)),
        }
    }

    pub async fn begin(&self, path: &str) -> Result<S3Upload, ExportError> {
        let key = format!("{}{path}", self.prefix);
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| failed("starting the upload of", &key, e))?;
        let id = out.upload_id().unwrap_or_default().to_string();
        Ok(S3Upload {
            key,
            id,
            parts: Vec::new(),
            buffer: Vec::new(),
        })
    }

    pub async fn write(&self, upload: &mut S3Upload, bytes: Vec<u8>) -> Result<(), ExportError> {
        if upload.buffer.is_empty() {
            upload.buffer = bytes;
        } else {
            upload.buffer.extend_from_slice(&bytes);
        }
        if upload.buffer.len() >= MIN_PART_BYTES {
            self.send_part(upload).await?;
        }
        Ok(())
    }

    async fn send_part(&self, upload: &mut S3Upload) -> Result<(), ExportError> {
        let number = upload.parts.len() as i32 + 1;
        let body = std::mem::take(&mut upload.buffer);
        let result = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&upload.key)
            .upload_id(&upload.id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await;
        match result {
            Ok(out) => {
                let part = CompletedPart::builder()
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .part_number(number)
                    .build();
                upload.parts.push(part);
                Ok(())
            }
            Err(error) => {
                self.abort(upload).await;
                Err(failed("uploading a part of", &upload.key, error))
            }
        }
    }

    pub async fn finish(&self, mut upload: S3Upload) -> Result<(), ExportError> {
        if !upload.buffer.is_empty() || upload.parts.is_empty() {
            self.send_part(&mut upload).await?;
        }
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(std::mem::take(&mut upload.parts)))
            .build();
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&upload.key)
            .upload_id(&upload.id)
            .multipart_upload(parts)
            .send()
            .await;
        if let Err(error) = result {
            self.abort(&upload).await;
            return Err(failed("completing the upload of", &upload.key, error));
        }
        Ok(())
    }

    /// Best effort: an upload left open costs storage until a lifecycle rule removes it.
    pub async fn abort(&self, upload: &S3Upload) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&upload.key)
            .upload_id(&upload.id)
            .send()
            .await;
    }

    /// Best effort: removes a completed object (an export given up).
    pub async fn remove(&self, path: &str) {
        let key = format!("{}{path}", self.prefix);
        let _ = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
    }

    /// Creates the claim object only if it does not exist (`If-None-Match: *`, which S3 honours
    /// since 2024): `Err` when another export holds the prefix.
    async fn claim(&self) -> Result<(), ExportError> {
        let key = self.claim_key();
        let bytes = super::claim::claim_text();
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // 412: the object exists (perhaps this very PUT, landed and retried after its
            // answer was lost: then it is ours); 409: another conditional write of it is under
            // way.
            Err(error)
                if matches!(
                    error.raw_response().map(|r| r.status().as_u16()),
                    Some(409 | 412)
                ) =>
            {
                if self.claim_is_ours().await == Ok(true) {
                    return Ok(());
                }
                Err(ExportError::Destination(format!(
                    "s3://{}/{}: {}",
                    self.bucket,
                    self.prefix,
                    super::claim::CLAIMED
                )))
            }
            Err(error) => {
                // It may have landed all the same (an answer lost): not left behind.
                self.release().await;
                Err(failed("claiming", &key, error))
            }
        }
    }

    /// A small object written whole (the manifest).
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), ExportError> {
        let key = format!("{}{path}", self.prefix);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| failed("writing", &key, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
    use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
    use aws_sdk_s3::error::BoxError;
    use std::sync::{Arc, Mutex};

    /// An environment of `set`'s variables.
    fn vars<'a>(set: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            set.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_flag_then_the_sdks_variables_name_the_endpoint() {
        let s3 = [("AWS_ENDPOINT_URL_S3", "http://minio:9000")];
        assert_eq!(
            endpoint(Some("http://a:1"), vars(&s3)).as_deref(),
            Some("http://a:1")
        );
        assert_eq!(
            endpoint(None, vars(&s3)).as_deref(),
            Some("http://minio:9000")
        );
        let both = [
            ("AWS_ENDPOINT_URL", "http://all:1"),
            ("AWS_ENDPOINT_URL_S3", "http://s3:1"),
        ];
        assert_eq!(endpoint(None, vars(&both)).as_deref(), Some("http://s3:1"));
        let general = [
            ("AWS_ENDPOINT_URL", "http://all:1"),
            ("AWS_ENDPOINT_URL_S3", ""),
        ];
        assert_eq!(
            endpoint(None, vars(&general)).as_deref(),
            Some("http://all:1")
        );
        let ignored = [
            ("AWS_ENDPOINT_URL_S3", "http://minio:9000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"),
        ];
        assert_eq!(endpoint(None, vars(&ignored)), None);
        assert_eq!(endpoint(None, vars(&[])), None);
    }

    /// Catches the request's address once the endpoint is applied, then fails the request
    /// before credentials are resolved or anything is sent.
    #[derive(Debug)]
    struct Catch(Arc<Mutex<String>>);

    impl Intercept for Catch {
        fn name(&self) -> &'static str {
            "Catch"
        }

        fn read_before_signing(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            *self.0.lock().expect("not poisoned") = context.request().uri().to_string();
            Err("caught".into())
        }
    }

    /// The address of a PutObject to `bucket/key` with [`config`]'s settings at a host name.
    fn address(custom_endpoint: bool) -> String {
        let shared = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://s3-compatible.invalid:9000")
            .build();
        let caught = Arc::new(Mutex::new(String::new()));
        let client = Client::from_conf(config(&shared, custom_endpoint));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let sent = runtime.block_on(
            client
                .put_object()
                .bucket("bucket")
                .key("key")
                .customize()
                .interceptor(Catch(caught.clone()))
                .send(),
        );
        assert!(sent.is_err(), "caught before it was sent");
        let uri = caught.lock().expect("not poisoned").clone();
        uri
    }

    #[test]
    fn an_endpoint_at_a_host_name_is_addressed_by_path() {
        assert_eq!(
            address(true),
            "http://s3-compatible.invalid:9000/bucket/key?x-id=PutObject"
        );
        // What the SDK does otherwise, and did with `AWS_ENDPOINT_URL_S3` before: the bucket in
        // the host name.
        assert_eq!(
            address(false),
            "http://bucket.s3-compatible.invalid:9000/key?x-id=PutObject"
        );
    }
}
