//! One error type for the whole library, and the documented exit code of each kind.

use std::fmt;

/// Everything that can stop a deploy. Each variant maps to one exit code (see [`Error::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing, empty or malformed. Nothing was sent to AWS.
    #[error("{var} / {flag}: {reason}")]
    Setting {
        var: &'static str,
        flag: &'static str,
        reason: String,
    },
    /// The bundle (folder, zip or Dockerrun.aws.json) is unusable. Nothing was sent to AWS.
    #[error("{file}: {message}")]
    Bundle { file: String, message: String },
    /// The version label is taken by other content; the existing S3 object was left untouched.
    #[error(
        "version label '{label}' already exists with different content ({detail}); \
         choose another EB_LABEL / --label, or leave it unset to derive one from the bundle"
    )]
    LabelConflict { label: String, detail: String },
    /// An AWS request failed (auth, permission, not found, network after retries).
    #[error("{operation} failed: {message}{}", RequestId(.request_id))]
    Aws {
        operation: &'static str,
        code: Option<String>,
        message: String,
        request_id: Option<String>,
    },
    /// Credentials could not be obtained (OIDC token, STS).
    #[error("{message}")]
    Credentials { message: String },
    /// Beanstalk ran the update and it failed, or it rolled back.
    #[error("deployment of '{label}' to {environment} failed: {reason}")]
    DeployFailed {
        environment: String,
        label: String,
        reason: String,
    },
    /// SIGINT or SIGTERM stopped the run; `state` says what AWS is left with.
    #[error("cancelled by {signal}: {state}")]
    Cancelled {
        signal: &'static str,
        code: u8,
        state: String,
    },
    /// The deadline passed before the environment settled.
    #[error(
        "timed out after {waited_secs}s waiting for {environment} to run '{label}' ({last_state}); \
         the update may still be running in AWS: check with \
         `aws elasticbeanstalk describe-environments --environment-names {environment}` \
         or the environment's Events page in the console"
    )]
    Timeout {
        environment: String,
        label: String,
        waited_secs: u64,
        last_state: String,
    },
}

struct RequestId<'a>(&'a Option<String>);

impl fmt::Display for RequestId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (request id {id})"),
            None => Ok(()),
        }
    }
}

impl Error {
    /// The process exit code for this error, as documented in the README.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::DeployFailed { .. } => 1,
            Error::Setting { .. } | Error::Bundle { .. } | Error::LabelConflict { .. } => 2,
            Error::Aws { .. } | Error::Credentials { .. } => 3,
            Error::Timeout { .. } => 4,
            Error::Cancelled { code, .. } => *code,
        }
    }

    /// A settings error naming the env var and the flag.
    pub fn setting(var: &'static str, flag: &'static str, reason: impl Into<String>) -> Self {
        Error::Setting {
            var,
            flag,
            reason: reason.into(),
        }
    }

    /// A bundle error naming the file.
    pub fn bundle(file: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Bundle {
            file: file.into(),
            message: message.into(),
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Error::setting("EB_APP", "--app", "is empty").exit_code(), 2);
        assert_eq!(Error::bundle("Dockerrun.aws.json", "bad").exit_code(), 2);
        let aws = Error::Aws {
            operation: "PutObject",
            code: None,
            message: "denied".into(),
            request_id: Some("abc".into()),
        };
        assert_eq!(aws.exit_code(), 3);
        assert_eq!(aws.to_string(), "PutObject failed: denied (request id abc)");
        let failed = Error::DeployFailed {
            environment: "e".into(),
            label: "l".into(),
            reason: "r".into(),
        };
        assert_eq!(failed.exit_code(), 1);
    }

    #[test]
    fn setting_errors_name_the_var_and_the_flag() {
        let e = Error::setting("EB_APP", "--app", "is required");
        assert_eq!(e.to_string(), "EB_APP / --app: is required");
    }
}
