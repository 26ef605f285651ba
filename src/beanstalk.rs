//! Elastic Beanstalk: the calls a deploy makes, and the translation of their answers.

use crate::aws::{aws_error, failure};
use crate::error::{Error, Result};
use aws_sdk_elasticbeanstalk::operation::RequestId;
use aws_sdk_elasticbeanstalk::primitives::DateTime;
use aws_sdk_elasticbeanstalk::types::{EventSeverity, S3Location};
use serde::Serialize;
use std::time::SystemTime;

/// An environment as DescribeEnvironments reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EnvState {
    pub name: String,
    pub status: String,
    pub health: String,
    pub version_label: Option<String>,
    pub cname: Option<String>,
}

impl EnvState {
    /// The environment's public URL, from its CNAME.
    pub fn url(&self) -> Option<String> {
        self.cname.as_ref().map(|c| format!("http://{c}"))
    }
}

/// An application version's source bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub bucket: Option<String>,
    pub key: Option<String>,
}

/// One Beanstalk event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// RFC 3339, as Beanstalk dates it.
    pub date: String,
    #[serde(skip)]
    pub epoch_millis: i64,
    pub severity: String,
    pub message: String,
}

/// Whether CreateApplicationVersion made the version or found it there already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    AlreadyExists,
}

/// The Beanstalk operations a deploy needs; a fake stands in for them in unit tests.
pub trait Beanstalk {
    /// The environment named `env` of `app`, or None when there is no such (live or terminated) one.
    fn environment(&self, app: &str, env: &str) -> impl Future<Output = Result<Option<EnvState>>>;
    /// The version `label` of `app`, or None.
    fn version(&self, app: &str, label: &str) -> impl Future<Output = Result<Option<VersionInfo>>>;
    /// Creates the version pointing at `bucket/key`.
    fn create_version(
        &self,
        app: &str,
        label: &str,
        description: Option<&str>,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Created>>;
    /// Starts the deploy of `label` to `env`; returns the request id that tags its events.
    fn update_environment(
        &self,
        app: &str,
        env: &str,
        label: &str,
    ) -> impl Future<Output = Result<String>>;
    /// The events of `env` tagged with `request_id`, from `since` on, oldest first.
    fn events(
        &self,
        app: &str,
        env: &str,
        request_id: &str,
        since: SystemTime,
    ) -> impl Future<Output = Result<Vec<Event>>>;
}

/// `2026-11-26T05:19:07.490Z`: always three fraction digits, so event lines align.
fn millis_rfc3339(date: &DateTime) -> String {
    let text = date
        .fmt(aws_sdk_elasticbeanstalk::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default();
    let Some(base) = text.strip_suffix('Z') else {
        return text;
    };
    let (whole, fraction) = base.split_once('.').unwrap_or((base, ""));
    format!("{whole}.{:0<3.3}Z", fraction)
}

/// Beanstalk through the SDK.
pub struct SdkBeanstalk {
    pub client: aws_sdk_elasticbeanstalk::Client,
}

/// True when an UpdateEnvironment was refused because another operation is running.
pub fn is_not_ready(err: &Error) -> bool {
    matches!(err, Error::Aws { message, .. } if message.contains("invalid state for this operation"))
}

impl Beanstalk for SdkBeanstalk {
    async fn environment(&self, app: &str, env: &str) -> Result<Option<EnvState>> {
        let out = self
            .client
            .describe_environments()
            .application_name(app)
            .environment_names(env)
            .include_deleted(false)
            .send()
            .await
            .map_err(|e| aws_error("DescribeEnvironments", e))?;
        Ok(out
            .environments()
            .iter()
            .find(|e| e.environment_name() == Some(env))
            .map(|e| EnvState {
                name: env.to_string(),
                status: e
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                health: e
                    .health()
                    .map(|h| h.as_str().to_string())
                    .unwrap_or_default(),
                version_label: e.version_label().map(str::to_string),
                cname: e.cname().filter(|c| !c.is_empty()).map(str::to_string),
            }))
    }

    async fn version(&self, app: &str, label: &str) -> Result<Option<VersionInfo>> {
        let out = self
            .client
            .describe_application_versions()
            .application_name(app)
            .version_labels(label)
            .send()
            .await
            .map_err(|e| aws_error("DescribeApplicationVersions", e))?;
        Ok(out
            .application_versions()
            .iter()
            .find(|v| v.version_label() == Some(label))
            .map(|v| VersionInfo {
                bucket: v
                    .source_bundle()
                    .and_then(|b| b.s3_bucket())
                    .map(str::to_string),
                key: v
                    .source_bundle()
                    .and_then(|b| b.s3_key())
                    .map(str::to_string),
            }))
    }

    async fn create_version(
        &self,
        app: &str,
        label: &str,
        description: Option<&str>,
        bucket: &str,
        key: &str,
    ) -> Result<Created> {
        let bundle = S3Location::builder().s3_bucket(bucket).s3_key(key).build();
        let result = self
            .client
            .create_application_version()
            .application_name(app)
            .version_label(label)
            .set_description(description.map(str::to_string))
            .source_bundle(bundle)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::New),
            Err(err) => {
                let f = failure(&err);
                if f.message.contains("already exists") {
                    Ok(Created::AlreadyExists)
                } else {
                    Err(f.into_error("CreateApplicationVersion"))
                }
            }
        }
    }

    async fn update_environment(&self, app: &str, env: &str, label: &str) -> Result<String> {
        let out = self
            .client
            .update_environment()
            .application_name(app)
            .environment_name(env)
            .version_label(label)
            .send()
            .await
            .map_err(|e| aws_error("UpdateEnvironment", e))?;
        Ok(out.request_id().unwrap_or_default().to_string())
    }

    async fn events(
        &self,
        app: &str,
        env: &str,
        request_id: &str,
        since: SystemTime,
    ) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_events()
                .application_name(app)
                .environment_name(env)
                .request_id(request_id)
                .start_time(DateTime::from(since))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| aws_error("DescribeEvents", e))?;
            for e in out.events() {
                let date = e.event_date();
                events.push(Event {
                    date: date.map(millis_rfc3339).unwrap_or_default(),
                    epoch_millis: date
                        .map(|d| d.to_millis().unwrap_or_default())
                        .unwrap_or_default(),
                    severity: e
                        .severity()
                        .map(EventSeverity::as_str)
                        .unwrap_or("INFO")
                        .to_string(),
                    message: e.message().unwrap_or_default().to_string(),
                });
            }
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        // Beanstalk lists newest first.
        events.reverse();
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_dates_have_three_fraction_digits() {
        let at = |millis| millis_rfc3339(&DateTime::from_millis(millis));
        assert_eq!(at(1_795_670_347_490), "2026-11-26T05:19:07.490Z");
        assert_eq!(at(1_795_670_347_000), "2026-11-26T05:19:07.000Z");
        assert_eq!(at(1_795_670_347_005), "2026-11-26T05:19:07.005Z");
    }
}
