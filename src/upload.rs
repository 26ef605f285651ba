//! S3: is the bundle already there, and uploading it, streamed from disk.

use crate::aws::aws_error;
use crate::bundle::Bundle;
use crate::error::Result;
use aws_sdk_s3::primitives::ByteStream;

/// The metadata key that records the bundle's sha256 on the object, so a re-run can prove the
/// object holds the same content.
pub const SHA256_METADATA: &str = "eb-deploy-sha256";

/// What is known of an existing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub sha256: Option<String>,
    pub size: i64,
}

/// The bucket operations a deploy needs; a fake stands in for S3 in unit tests.
pub trait Storage {
    /// The object at `key`, or None when there is none.
    fn head(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Option<ObjectInfo>>>;
    /// The region the bucket is in.
    fn bucket_region(&self, bucket: &str) -> impl Future<Output = Result<String>>;
    /// Uploads the bundle to `key`, recording its sha256.
    fn put(&self, bucket: &str, key: &str, bundle: &Bundle) -> impl Future<Output = Result<()>>;
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

    async fn put(&self, bucket: &str, key: &str, bundle: &Bundle) -> Result<()> {
        let body = ByteStream::from_path(bundle.path()).await.map_err(|e| {
            crate::error::Error::bundle(bundle.path().display().to_string(), e.to_string())
        })?;
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/zip")
            .content_length(bundle.size as i64)
            .metadata(SHA256_METADATA, &bundle.sha256)
            .body(body)
            .send()
            .await
            .map_err(|err| aws_error("PutObject", err))?;
        Ok(())
    }
}
