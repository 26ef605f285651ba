//! The AWS SDK configuration: region, endpoint overrides, credentials, retries and timeouts; and the
//! translation of SDK errors into ours.

use crate::error::Error;
use aws_config::Region;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId;
use std::time::Duration;

/// The clients a deploy uses.
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub beanstalk: aws_sdk_elasticbeanstalk::Client,
}

/// The CA bundles of common distributions, and of our FROM-scratch image.
const CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Points SSL_CERT_FILE at the system's CA bundle when neither it nor SSL_CERT_DIR is set.
/// Otherwise the TLS roots are loaded from the bundle *and* every file of /etc/ssl/certs, which
/// was most of the start-up time. Call it first thing in `main`, before any thread exists.
pub fn prefer_ca_bundle_file() {
    if std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some() {
        return;
    }
    if let Some(bundle) = CA_BUNDLES
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
    {
        // SAFETY: called at the start of main, while the process has a single thread.
        unsafe { std::env::set_var("SSL_CERT_FILE", bundle) };
    }
}

/// Loads the SDK configuration for `region`. Makes no request: credentials are resolved on first use.
pub async fn config(
    region: &str,
    http_timeout: Duration,
    var: &dyn Fn(&str) -> Option<String>,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(http_timeout)
                .build(),
        );
    #[cfg(feature = "tls-ring")]
    {
        use aws_smithy_http_client::tls;
        loader = loader.http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        );
    }
    if let Some(credentials) = travis_style_credentials(var) {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// The S3 and Beanstalk clients for `config`.
pub fn clients(config: &SdkConfig, var: &dyn Fn(&str) -> Option<String>) -> Clients {
    let endpoint_overridden = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .any(|name| var(name).is_some_and(|v| !v.is_empty()));
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        // Emulators and S3-compatible stores serve buckets by path, not by virtual host.
        .force_path_style(endpoint_overridden)
        .build();
    Clients {
        s3: aws_sdk_s3::Client::from_conf(s3_config),
        beanstalk: aws_sdk_elasticbeanstalk::Client::new(config),
    }
}

/// dpl and Travis settings hold keys as AWS_ACCESS_KEY / AWS_SECRET_KEY; accept them when the
/// standard AWS_ACCESS_KEY_ID is absent.
fn travis_style_credentials(var: &dyn Fn(&str) -> Option<String>) -> Option<Credentials> {
    if var("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let key = var("AWS_ACCESS_KEY").filter(|v| !v.is_empty())?;
    let secret = var("AWS_SECRET_KEY").filter(|v| !v.is_empty())?;
    let token = var("AWS_SESSION_TOKEN").filter(|v| !v.is_empty());
    Some(Credentials::new(key, secret, token, None, "AWS_ACCESS_KEY"))
}

/// What an SDK error says, for messages and decisions.
pub struct Failure {
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
}

/// Extracts code, message and request id from any SDK operation error.
pub fn failure<E, R>(err: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
    SdkError<E, R>: RequestId,
{
    let request_id = err.request_id().map(str::to_string);
    match err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            Failure {
                code: inner.code().map(str::to_string),
                message: inner
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| DisplayErrorContext(inner).to_string()),
                request_id,
            }
        }
        other => Failure {
            code: None,
            message: chain(other),
            request_id,
        },
    }
}

/// An error and its sources, `a: b: c`, skipping a source whose text its parent already shows.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

impl Failure {
    /// Our error for a failed `operation`.
    pub fn into_error(self, operation: &'static str) -> Error {
        let message = match &self.code {
            Some(code) if !self.message.starts_with(code.as_str()) => {
                format!("{code}: {}", self.message)
            }
            _ => self.message,
        };
        Error::Aws {
            operation,
            code: self.code,
            message,
            request_id: self.request_id,
        }
    }
}

/// Shorthand: the SDK error of `operation` as ours.
pub fn aws_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
    SdkError<E, R>: RequestId,
{
    failure(&err).into_error(operation)
}
