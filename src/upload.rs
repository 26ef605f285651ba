//! S3: the bucket's region, and uploading the bundle, streamed from disk, never over another object.
//! Small bundles go in one conditional PutObject (`If-None-Match: *`), large ones as a multipart
//! upload with parts sent in parallel; a failed or cancelled multipart upload is aborted.

use crate::aws::aws_error;
use crate::bundle::Bundle;
use crate::cancel::{Cancel, cancelled};
use crate::error::{Error, Result};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use std::path::{Path, PathBuf};
use tokio::task::JoinSet;

/// The metadata key that records the bundle's sha256 on the object, so a re-run can prove the
/// object holds the same content.
pub const SHA256_METADATA: &str = "eb-deploy-sha256";
/// Bundles from this size on are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// The size of each part but the last.
pub const PART_SIZE: u64 = 8 * 1024 * 1024;
/// Parts in flight at once: bounds memory and connections.
pub const PARALLEL_PARTS: usize = 4;

/// What is known of an existing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub sha256: Option<String>,
    pub size: i64,
}

/// What an upload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// The bundle is now at the key.
    Stored,
    /// Something already was; it was left untouched.
    Exists(ObjectInfo),
}

/// The bucket operations a deploy needs; a fake stands in for S3 in unit tests.
pub trait Storage {
    /// The object at `key`, or None when there is none.
    fn head(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Option<ObjectInfo>>>;
    /// The region the bucket is in.
    fn bucket_region(&self, bucket: &str) -> impl Future<Output = Result<String>>;
    /// Uploads the bundle to `key` unless an object is there already.
    fn put(
        &self,
        bucket: &str,
        key: &str,
        bundle: &Bundle,
        cancel: &Cancel,
    ) -> impl Future<Output = Result<Put>>;
}

/// S3 through the SDK.
pub struct S3Storage {
    pub client: aws_sdk_s3::Client,
}

impl Storage for S3Storage {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                sha256: out.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned(),
                size: out.content_length().unwrap_or_default(),
            })),
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(None)
            }
            Err(err) => Err(aws_error("HeadObject", err)),
        }
    }

    async fn bucket_region(&self, bucket: &str) -> Result<String> {
        // S3 names the bucket's region in this header even when it refuses the request because
        // it went to the wrong region (301/400), which is exactly the case we want to explain.
        let header = |headers: &aws_sdk_s3::config::http::HttpResponse| {
            headers
                .headers()
                .get("x-amz-bucket-region")
                .map(str::to_string)
        };
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(out) => Ok(out.bucket_region().unwrap_or_default().to_string()),
            Err(err) => match err.raw_response().and_then(header) {
                Some(region) => Ok(region),
                None => Err(aws_error("HeadBucket", err)),
            },
        }
    }

    async fn put(&self, bucket: &str, key: &str, bundle: &Bundle, cancel: &Cancel) -> Result<Put> {
        if bundle.size >= MULTIPART_THRESHOLD {
            if let Some(existing) = self.head(bucket, key).await? {
                return Ok(Put::Exists(existing));
            }
            return self.put_multipart(bucket, key, bundle, cancel).await;
        }
        let body = ByteStream::from_path(bundle.path())
            .await
            .map_err(|e| Error::bundle(bundle.path().display().to_string(), e.to_string()))?;
        let request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .if_none_match("*")
            .content_type("application/zip")
            .content_length(bundle.size as i64)
            .metadata(SHA256_METADATA, &bundle.sha256)
            .body(body)
            .send();
        let result = tokio::select! {
            result = request => result,
            signal = cancel.wait() => {
                return Err(cancelled(signal, format!(
                    "the upload to s3://{bucket}/{key} was stopped before it completed; \
                     nothing was created in Beanstalk"
                )));
            }
        };
        match result {
            Ok(_) => Ok(Put::Stored),
            // 412: the key is taken; 409: a concurrent conditional write to it is in progress.
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
            {
                match self.head(bucket, key).await? {
                    Some(existing) => Ok(Put::Exists(existing)),
                    None => Err(aws_error("PutObject", err)),
                }
            }
            Err(err) => Err(aws_error("PutObject", err)),
        }
    }
}

impl S3Storage {
    async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        bundle: &Bundle,
        cancel: &Cancel,
    ) -> Result<Put> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type("application/zip")
            .metadata(SHA256_METADATA, &bundle.sha256)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| aws_error("CreateMultipartUpload", e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let parts = tokio::select! {
            parts = self.upload_parts(bucket, key, &upload_id, bundle.path(), bundle.size) => parts,
            signal = cancel.wait() => Err(cancelled(signal, String::new())),
        };
        let completed = match parts {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| Put::Stored)
                .map_err(|e| aws_error("CompleteMultipartUpload", e)),
            Err(err) => Err(err),
        };
        if let Err(err) = completed {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
            let what = match aborted {
                Ok(_) => format!("the multipart upload to s3://{bucket}/{key} was aborted"),
                Err(e) => format!(
                    "aborting the multipart upload {upload_id} to s3://{bucket}/{key} failed too \
                     ({}); S3 keeps its parts until a lifecycle rule removes them",
                    aws_error("AbortMultipartUpload", e)
                ),
            };
            tracing::warn!("{what}");
            return Err(match err {
                Error::Cancelled { signal, code, .. } => Error::Cancelled {
                    signal,
                    code,
                    state: format!("{what}; nothing was created in Beanstalk"),
                },
                other => other,
            });
        }
        completed
    }

    /// Sends the parts, at most [`PARALLEL_PARTS`] at once, each streamed from its file range.
    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        path: &Path,
        size: u64,
    ) -> Result<Vec<CompletedPart>> {
        let count = size.div_ceil(PART_SIZE);
        let mut done = Vec::with_capacity(count as usize);
        let mut running = JoinSet::new();
        let mut next = 1u64;
        while next <= count || !running.is_empty() {
            while next <= count && running.len() < PARALLEL_PARTS {
                let offset = (next - 1) * PART_SIZE;
                let length = PART_SIZE.min(size - offset);
                running.spawn(upload_part(
                    self.client.clone(),
                    bucket.to_string(),
                    key.to_string(),
                    upload_id.to_string(),
                    path.to_path_buf(),
                    next as i32,
                    offset,
                    length,
                ));
                next += 1;
            }
            if let Some(joined) = running.join_next().await {
                done.push(joined.expect("an upload task does not panic")?);
            }
        }
        done.sort_by_key(|p| p.part_number());
        tracing::info!("uploaded {count} parts of {size} bytes");
        Ok(done)
    }
}

#[allow(clippy::too_many_arguments)]
async fn upload_part(
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    path: PathBuf,
    number: i32,
    offset: u64,
    length: u64,
) -> Result<CompletedPart> {
    let body = ByteStream::read_from()
        .path(&path)
        .offset(offset)
        .length(Length::Exact(length))
        .build()
        .await
        .map_err(|e| Error::bundle(path.display().to_string(), e.to_string()))?;
    let out = client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .content_length(length as i64)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(body)
        .send()
        .await
        .map_err(|e| aws_error("UploadPart", e))?;
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_string))
        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
        .build())
}
