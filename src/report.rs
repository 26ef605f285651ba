//! The result of a run: one line of text or a JSON document on stdout. Progress goes to stderr.

use crate::beanstalk::Event;
use crate::bundle::Entry;
use crate::error::Error;
use crate::github::{self, GitHub};
use crate::secrets;
use crate::settings::Output;
use serde::Serialize;

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Result {
    /// The new version is live and healthy.
    Deployed,
    /// UpdateEnvironment was accepted; we did not wait (EB_WAIT=false).
    UpdateStarted,
    /// Only the application version was created (EB_ONLY_CREATE_APP_VERSION).
    VersionCreated,
    /// The branch rule said no; nothing was done.
    Skipped,
    /// Nothing was sent to AWS: this is what would be done.
    DryRun,
    /// The run failed (exit 1, 2 or 3).
    Failed,
    /// The deadline passed (exit 4).
    TimedOut,
    /// SIGINT or SIGTERM (exit 130 or 143).
    Cancelled,
}

impl Result {
    /// The name used in JSON and in the `result` step output.
    pub fn name(self) -> &'static str {
        match self {
            Result::Deployed => "deployed",
            Result::UpdateStarted => "update-started",
            Result::VersionCreated => "version-created",
            Result::Skipped => "skipped",
            Result::DryRun => "dry-run",
            Result::Failed => "failed",
            Result::TimedOut => "timed-out",
            Result::Cancelled => "cancelled",
        }
    }
}

/// The bundle, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    pub sha256: String,
    pub size: u64,
    pub entries: Vec<Entry>,
}

/// Everything the run can tell, for people and scripts.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub result: Result,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub app: String,
    pub environment: Option<String>,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub bucket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// True when the version already existed with this bundle and was deployed again.
    pub version_reused: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<String>,
    pub duration_ms: u128,
    pub events: Vec<Event>,
}

impl Outcome {
    /// The one-line summary.
    pub fn summary(&self) -> String {
        let env = self.environment.as_deref().unwrap_or("-");
        let label = self.label.as_deref().unwrap_or("-");
        let key = self.s3_key.as_deref().unwrap_or("-");
        let secs = self.duration_ms as f64 / 1000.0;
        match self.result {
            Result::Deployed => format!(
                "deployed {label} to {env} ({}, {}) in {secs:.1}s{}{}",
                self.status.as_deref().unwrap_or("?"),
                self.health.as_deref().unwrap_or("?"),
                self.environment_url
                    .as_deref()
                    .map(|u| format!(": {u}"))
                    .unwrap_or_default(),
                if self.version_reused {
                    " (version reused)"
                } else {
                    ""
                }
            ),
            Result::UpdateStarted => format!(
                "update started: {env} is deploying {label} (not waited for; EB_WAIT=false)"
            ),
            Result::VersionCreated => format!(
                "version {label} {} for {} at s3://{}/{key}; environment not updated",
                if self.version_reused {
                    "already existed"
                } else {
                    "created"
                },
                self.app,
                self.bucket
            ),
            Result::Skipped => format!(
                "skipped: {}",
                self.reason.as_deref().unwrap_or("not deployable")
            ),
            // Failures are printed by `print_error`, with their error.
            Result::Failed | Result::TimedOut | Result::Cancelled => {
                format!("{} {label} on {env}", self.result.name())
            }
            Result::DryRun => {
                let bundle = self.bundle.as_ref();
                format!(
                    "dry run: would upload {} ({} bytes, {} entries) to s3://{}/{key} as version {label} of {} and {}",
                    bundle.map(|b| b.sha256.as_str()).unwrap_or("?"),
                    bundle.map(|b| b.size).unwrap_or_default(),
                    bundle.map(|b| b.entries.len()).unwrap_or_default(),
                    self.bucket,
                    self.app,
                    match &self.environment {
                        Some(env) => format!("deploy it to {env} in {}", self.region),
                        None => "not update any environment".into(),
                    }
                )
            }
        }
    }
}

/// Prints the result on stdout.
pub fn print(outcome: &Outcome, output: Output) {
    match output {
        Output::Text => println!("{}", outcome.summary()),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(outcome).expect("an Outcome always serialises")
        ),
    }
}

/// Prints a failure: the message once on stderr (as an annotation in GitHub Actions), and with JSON
/// output the result document, with what was known, on stdout.
pub fn print_error(error: &Error, known: Option<&Outcome>, output: Option<Output>) {
    if github::in_actions() {
        eprintln!(
            "::error title=eb-deploy::{}",
            github::escape(&secrets::redact(&error.to_string()))
        );
    } else {
        eprintln!("error: {}", secrets::redact(&error.to_string()));
    }
    if output == Some(Output::Json) {
        let mut doc = known
            .map(|o| serde_json::to_value(o).expect("an Outcome always serialises"))
            .unwrap_or_else(|| serde_json::json!({}));
        doc["result"] = failure_result(error).name().into();
        doc["exit_code"] = error.exit_code().into();
        doc["error"] = secrets::redact(&error.to_string()).into();
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    }
}

/// Reports how a run ended, on stdout, stderr and to GitHub Actions; returns the exit code.
pub fn finish(
    run: std::result::Result<Outcome, crate::Failed>,
    output: Option<Output>,
    github: &GitHub,
) -> u8 {
    let (known, result, code) = match &run {
        Ok(outcome) => {
            print(outcome, output.unwrap_or(Output::Text));
            (Some(outcome), outcome.result, 0)
        }
        Err(failed) => {
            print_error(&failed.error, failed.known.as_ref(), output);
            (
                failed.known.as_ref(),
                failure_result(&failed.error),
                failed.error.exit_code(),
            )
        }
    };
    if let Err(err) = github.publish(known, result.name()) {
        tracing::warn!("could not write the GitHub Actions outputs or summary: {err}");
    }
    code
}

/// How a failure is named in results.
pub fn failure_result(error: &Error) -> Result {
    match error {
        Error::Timeout { .. } => Result::TimedOut,
        Error::Cancelled { .. } => Result::Cancelled,
        _ => Result::Failed,
    }
}

/// One Beanstalk event on stderr: time, severity, message.
pub fn event(event: &Event) {
    let line = format!("  {}  {:<5}  {}", event.date, event.severity, event.message);
    eprintln!("{}", secrets::redact(&line));
}
