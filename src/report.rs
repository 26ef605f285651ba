//! The result of a run: one line of text or a JSON document on stdout. Progress goes to stderr.

use crate::beanstalk::Event;
use crate::bundle::Entry;
use crate::error::Error;
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

/// Prints a failure: the message on stderr, and with JSON output a document on stdout too.
pub fn print_error(error: &Error, output: Option<Output>) {
    if std::env::var_os("GITHUB_ACTIONS").is_some() {
        eprintln!(
            "::error title=eb-deploy::{}",
            escape_command(&error.to_string())
        );
    } else {
        eprintln!("error: {error}");
    }
    if output == Some(Output::Json) {
        let doc = serde_json::json!({
            "result": "failed",
            "exit_code": error.exit_code(),
            "error": error.to_string(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    }
}

/// One Beanstalk event on stderr: time, severity, message.
pub fn event(event: &Event) {
    eprintln!("  {}  {:<5}  {}", event.date, event.severity, event.message);
}

/// Escapes a GitHub workflow command's message: %, CR and LF would otherwise end or forge commands.
pub fn escape_command(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}
