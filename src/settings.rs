//! Validated, typed settings built from the command line and the environment. Every error names the
//! env var and the flag; empty values are rejected (CI turns a missing secret into "").

use crate::cli::Cli;
use crate::error::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

/// Longest version label Beanstalk accepts.
pub const MAX_LABEL: usize = 100;
/// Longest version description Beanstalk accepts.
pub const MAX_DESCRIPTION: usize = 200;

/// Which branches may deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchRule {
    Any,
    Only(Vec<String>),
}

impl BranchRule {
    /// Whether `branch` may deploy under this rule.
    pub fn allows(&self, branch: &str) -> bool {
        match self {
            BranchRule::Any => true,
            BranchRule::Only(list) => list.iter().any(|b| b == branch),
        }
    }
}

/// Where the bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Build a deterministic zip from this folder.
    Dir(PathBuf),
    /// Upload this prebuilt zip as it is.
    Zip(PathBuf),
}

/// How the result is printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// The lowest environment health that counts as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Green,
    Yellow,
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    pub app: String,
    /// None only with `only_create_app_version`.
    pub env: Option<String>,
    pub bucket: String,
    /// Normalised key prefix without leading or trailing '/', possibly empty.
    pub bucket_path: String,
    pub branches: BranchRule,
    pub source: Source,
    pub label: Option<String>,
    pub description: Option<String>,
    pub only_create_app_version: bool,
    pub dry_run: bool,
    pub output: Output,
    pub wait: bool,
    pub wait_timeout: Duration,
    pub health: Health,
    /// The role to assume, and its session length.
    pub role: Option<(String, Duration)>,
    /// How long one HTTP attempt may wait for an answer.
    pub http_timeout: Duration,
}

impl Settings {
    /// Checks the command line; `var` reads the environment for the AWS_REGION fallbacks.
    pub fn from_cli(cli: Cli, var: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
        let only_create_app_version = boolean(
            cli.only_create_app_version,
            false,
            "EB_ONLY_CREATE_APP_VERSION",
            "--only-create-app-version",
        )?;
        let region = match non_empty(cli.region, "EB_REGION", "--region")? {
            Some(region) => region,
            None => var("AWS_REGION")
                .filter(|v| !v.is_empty())
                .or_else(|| var("AWS_DEFAULT_REGION").filter(|v| !v.is_empty()))
                .ok_or_else(|| {
                    Error::setting(
                        "EB_REGION",
                        "--region",
                        "is required (neither it nor AWS_REGION / AWS_DEFAULT_REGION is set)",
                    )
                })?,
        };
        check_region(&region)?;
        let app = required(cli.app, "EB_APP", "--app")?;
        check_name(&app, 1, 100, "EB_APP", "--app", "application name")?;
        let env = match non_empty(cli.env, "EB_ENV", "--env")? {
            Some(env) => {
                check_environment(&env)?;
                Some(env)
            }
            None if only_create_app_version => None,
            None => {
                return Err(Error::setting(
                    "EB_ENV",
                    "--env",
                    "is required (unless EB_ONLY_CREATE_APP_VERSION=true)",
                ));
            }
        };
        let bucket = required(cli.bucket_name, "EB_BUCKET_NAME", "--bucket-name")?;
        check_bucket(&bucket)?;
        let bucket_path = match cli.bucket_path {
            Some(path) => normalise_bucket_path(&path)?,
            None => String::new(),
        };
        let branches = match non_empty(cli.branch, "EB_BRANCH", "--branch")? {
            None => BranchRule::Only(vec!["main".into(), "master".into()]),
            Some(list) => parse_branches(&list)?,
        };
        let source = match (
            non_empty_path(cli.zip_file, "EB_ZIP_FILE", "--zip-file")?,
            non_empty_path(cli.bundle_dir, "EB_BUNDLE_DIR", "--bundle-dir")?,
        ) {
            (Some(_), Some(_)) => {
                return Err(Error::setting(
                    "EB_ZIP_FILE",
                    "--zip-file",
                    "cannot be combined with EB_BUNDLE_DIR / --bundle-dir: set one of them",
                ));
            }
            (Some(zip), None) => Source::Zip(zip),
            (None, dir) => Source::Dir(dir.unwrap_or_else(|| PathBuf::from("."))),
        };
        let label = non_empty(cli.label, "EB_LABEL", "--label")?;
        if let Some(label) = &label {
            check_label(label)?;
        }
        let description = non_empty(cli.description, "EB_DESCRIPTION", "--description")?;
        if let Some(description) = &description {
            check_description(description)?;
        }
        let description = description.map(|d| sanitise_description(&d));
        let output = match non_empty(cli.output, "EB_OUTPUT", "--output")?.as_deref() {
            None | Some("text") => Output::Text,
            Some("json") => Output::Json,
            Some(other) => {
                return Err(Error::setting(
                    "EB_OUTPUT",
                    "--output",
                    format!("must be 'text' or 'json', not '{other}'"),
                ));
            }
        };
        let wait_timeout = match non_empty(cli.wait_timeout, "EB_WAIT_TIMEOUT", "--wait-timeout")? {
            None => Duration::from_secs(600),
            Some(text) => parse_duration(&text).ok_or_else(|| {
                Error::setting(
                    "EB_WAIT_TIMEOUT",
                    "--wait-timeout",
                    format!("'{text}' is not a duration like 600, 600s, 10m or 1h (at least 1s)"),
                )
            })?,
        };
        let health = match non_empty(cli.health, "EB_HEALTH", "--health")?
            .map(|h| h.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("green") => Health::Green,
            Some("yellow") => Health::Yellow,
            Some(other) => {
                return Err(Error::setting(
                    "EB_HEALTH",
                    "--health",
                    format!("must be 'green' or 'yellow', not '{other}'"),
                ));
            }
        };
        let role = match non_empty(cli.role_arn, "EB_ROLE_ARN", "--role-arn")? {
            None => None,
            Some(arn) => {
                check_role_arn(&arn)?;
                let duration =
                    match non_empty(cli.role_duration, "EB_ROLE_DURATION", "--role-duration")? {
                        None => Duration::from_secs(3600),
                        Some(text) => parse_duration(&text)
                            .filter(|d| (900..=43200).contains(&d.as_secs()))
                            .ok_or_else(|| {
                                Error::setting(
                                    "EB_ROLE_DURATION",
                                    "--role-duration",
                                    format!("'{text}' is not a duration from 900s (15m) to 12h"),
                                )
                            })?,
                    };
                Some((arn, duration))
            }
        };
        let http_timeout = match non_empty(cli.http_timeout, "EB_HTTP_TIMEOUT", "--http-timeout")? {
            None => Duration::from_secs(60),
            Some(text) => parse_duration(&text)
                .filter(|d| d.as_secs() <= 600)
                .ok_or_else(|| {
                    Error::setting(
                        "EB_HTTP_TIMEOUT",
                        "--http-timeout",
                        format!("'{text}' is not a duration from 1s to 10m"),
                    )
                })?,
        };
        check_retry_env(var)?;
        Ok(Settings {
            region,
            app,
            env,
            bucket,
            bucket_path,
            branches,
            source,
            label,
            description,
            only_create_app_version,
            dry_run: boolean(cli.dry_run, false, "EB_DRY_RUN", "--dry-run")?,
            output,
            wait: boolean(cli.wait, true, "EB_WAIT", "--wait")?,
            wait_timeout,
            health,
            role,
            http_timeout,
        })
    }

    /// The S3 key of the bundle for `label`: `<path>/<label>.zip`, or `<label>.zip` without a path.
    pub fn key_for(&self, label: &str) -> String {
        if self.bucket_path.is_empty() {
            format!("{label}.zip")
        } else {
            format!("{}/{label}.zip", self.bucket_path)
        }
    }
}

fn non_empty(
    value: Option<String>,
    var: &'static str,
    flag: &'static str,
) -> Result<Option<String>> {
    match value {
        Some(v) if v.trim().is_empty() => Err(Error::setting(
            var,
            flag,
            "is empty (a CI secret or variable that is not set?)",
        )),
        Some(v) if v.trim() != v => Err(Error::setting(
            var,
            flag,
            "has leading or trailing white space",
        )),
        other => Ok(other),
    }
}

fn non_empty_path(
    value: Option<PathBuf>,
    var: &'static str,
    flag: &'static str,
) -> Result<Option<PathBuf>> {
    match value {
        Some(p) if p.as_os_str().is_empty() => Err(Error::setting(var, flag, "is empty")),
        other => Ok(other),
    }
}

fn required(value: Option<String>, var: &'static str, flag: &'static str) -> Result<String> {
    non_empty(value, var, flag)?.ok_or_else(|| Error::setting(var, flag, "is required"))
}

fn boolean(
    value: Option<String>,
    default: bool,
    var: &'static str,
    flag: &'static str,
) -> Result<bool> {
    let Some(text) = non_empty(value, var, flag)? else {
        return Ok(default);
    };
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::setting(
            var,
            flag,
            format!("'{text}' is not a boolean (true or false)"),
        )),
    }
}

/// Region names look like `us-east-2`, `eu-central-1`, `us-gov-west-1`, `cn-north-1`.
fn check_region(region: &str) -> Result<()> {
    let parts: Vec<&str> = region.split('-').collect();
    let well_formed = parts.len() >= 3
        && parts[0].len() >= 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1].iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts.last().is_some_and(|p| {
            !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit())
        });
    if well_formed {
        Ok(())
    } else {
        Err(Error::setting(
            "EB_REGION",
            "--region",
            format!("'{region}' is not an AWS region name like us-east-2"),
        ))
    }
}

fn check_name(
    value: &str,
    min: usize,
    max: usize,
    var: &'static str,
    flag: &'static str,
    what: &str,
) -> Result<()> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(Error::setting(
            var,
            flag,
            format!("{what} must be {min} to {max} characters, got {len}"),
        ));
    }
    if value.chars().any(|c| c.is_control() || c == '/') {
        return Err(Error::setting(
            var,
            flag,
            format!("{what} must not contain '/' or control characters"),
        ));
    }
    Ok(())
}

/// Beanstalk: 4 to 40 characters, letters, digits and hyphens, not starting or ending with a hyphen.
fn check_environment(env: &str) -> Result<()> {
    let ok = (4..=40).contains(&env.len())
        && env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !env.starts_with('-')
        && !env.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::setting(
            "EB_ENV",
            "--env",
            format!(
                "'{env}' is not a Beanstalk environment name (4 to 40 letters, digits and hyphens, \
                 not starting or ending with a hyphen)"
            ),
        ))
    }
}

/// S3 bucket naming rules: 3-63 of a-z 0-9 . -, starting and ending with a letter or digit, no "..".
fn check_bucket(bucket: &str) -> Result<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric()
        && !bucket.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::setting(
            "EB_BUCKET_NAME",
            "--bucket-name",
            format!(
                "'{bucket}' is not a valid S3 bucket name (3 to 63 lowercase letters, digits, dots \
                 and hyphens)"
            ),
        ))
    }
}

/// Strips leading and trailing '/', and refuses what would make a surprising key: empty or `.`/`..`
/// segments, and characters outside S3's safe set.
pub fn normalise_bucket_path(path: &str) -> Result<String> {
    let bad = |reason: String| Error::setting("EB_BUCKET_PATH", "--bucket-path", reason);
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for segment in trimmed.split('/') {
        match segment {
            "" => return Err(bad(format!("'{path}' contains '//'"))),
            "." | ".." => return Err(bad(format!("'{path}' contains a '{segment}' segment"))),
            _ => {}
        }
    }
    if let Some(c) = trimmed
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()/".contains(*c)))
    {
        return Err(bad(format!(
            "'{path}' contains {c:?}; use letters, digits and ! - _ . * ' ( ) /"
        )));
    }
    if trimmed.len() > 900 {
        return Err(bad("is longer than 900 characters".into()));
    }
    Ok(trimmed.to_string())
}

fn parse_branches(list: &str) -> Result<BranchRule> {
    let names: Vec<String> = list
        .split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if names.is_empty() {
        return Err(Error::setting("EB_BRANCH", "--branch", "names no branch"));
    }
    if names.iter().any(|b| b == "*") {
        return Ok(BranchRule::Any);
    }
    Ok(BranchRule::Only(names))
}

/// A label of at most 100 characters among letters, digits and `. _ - + @ =`; it becomes part of
/// an S3 key, so nothing that needs escaping there.
pub fn check_label(label: &str) -> Result<()> {
    let len = label.chars().count();
    if len > MAX_LABEL {
        return Err(Error::setting(
            "EB_LABEL",
            "--label",
            format!("is {len} characters; Beanstalk allows at most {MAX_LABEL}"),
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-+@=".contains(*c)))
    {
        return Err(Error::setting(
            "EB_LABEL",
            "--label",
            format!("contains {c:?}; use letters, digits and . _ - + @ ="),
        ));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<()> {
    let len = description.chars().count();
    if len > MAX_DESCRIPTION {
        return Err(Error::setting(
            "EB_DESCRIPTION",
            "--description",
            format!("is {len} characters; Beanstalk allows at most {MAX_DESCRIPTION}"),
        ));
    }
    Ok(())
}

/// Makes text safe for a Beanstalk description: control characters become spaces, characters outside
/// the Basic Multilingual Plane (emoji) become '?', runs of white space fold, and the result is cut to
/// 200 characters.
pub fn sanitise_description(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if (c as u32) > 0xFFFF => '?',
            c => c,
        })
        .collect();
    let folded = mapped.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= MAX_DESCRIPTION {
        folded
    } else {
        let mut cut: String = folded.chars().take(MAX_DESCRIPTION - 3).collect();
        cut.push_str("...");
        cut
    }
}

/// The SDK reads AWS_MAX_ATTEMPTS and AWS_RETRY_MODE itself, and panics on values it cannot use
/// (`legacy`, `0`): refuse them here with a clear message instead.
fn check_retry_env(var: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    if let Some(mode) = var("AWS_RETRY_MODE") {
        if !matches!(mode.to_ascii_lowercase().as_str(), "standard" | "adaptive") {
            return Err(Error::setting(
                "AWS_RETRY_MODE",
                "(env only)",
                format!("'{mode}' is not supported: use standard or adaptive"),
            ));
        }
    }
    if let Some(attempts) = var("AWS_MAX_ATTEMPTS") {
        if !attempts.parse::<u32>().is_ok_and(|n| (1..=20).contains(&n)) {
            return Err(Error::setting(
                "AWS_MAX_ATTEMPTS",
                "(env only)",
                format!("'{attempts}' is not a whole number of attempts from 1 to 20"),
            ));
        }
    }
    Ok(())
}

/// An IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<path/name>`.
fn check_role_arn(arn: &str) -> Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty());
    if ok {
        Ok(())
    } else {
        Err(Error::setting(
            "EB_ROLE_ARN",
            "--role-arn",
            format!("'{arn}' is not an IAM role ARN like arn:aws:iam::123456789012:role/deploy"),
        ))
    }
}

/// `600`, `600s`, `10m`, `1h`, `1h30m`; at least one second.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return (secs > 0).then(|| Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        total = total.checked_add(value.checked_mul(unit)?)?;
    }
    (number.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_path_is_normalised_or_refused() {
        assert_eq!(
            normalise_bucket_path("docker-multi").unwrap(),
            "docker-multi"
        );
        assert_eq!(normalise_bucket_path("/a/b/").unwrap(), "a/b");
        assert_eq!(normalise_bucket_path("/").unwrap(), "");
        for bad in ["a//b", "a/../b", "./a", "a b", "a\\b", "é"] {
            let err = normalise_bucket_path(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("EB_BUCKET_PATH / --bucket-path"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("600s"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        for bad in ["", "0", "10x", "m", "5m3", "-1"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn regions() {
        for good in [
            "us-east-2",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-3",
        ] {
            assert!(check_region(good).is_ok(), "{good}");
        }
        for bad in [
            "us east 2",
            "US-EAST-2",
            "useast2",
            "us-east-",
            "us-east-two",
        ] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_and_descriptions() {
        assert!(check_label("git-abc-123").is_ok());
        assert!(check_label(&"a".repeat(101)).is_err());
        assert!(check_label("has space").is_err());
        assert!(check_label("a/b").is_err());
        let clean = sanitise_description("fix: 🚀 launch\n\nbody\ttext");
        assert_eq!(clean, "fix: ? launch body text");
        assert_eq!(sanitise_description(&"x".repeat(300)).chars().count(), 200);
    }

    #[test]
    fn role_arns() {
        assert!(check_role_arn("arn:aws:iam::123456789012:role/deploy").is_ok());
        assert!(check_role_arn("arn:aws-us-gov:iam::123456789012:role/ci/deploy").is_ok());
        for bad in [
            "deploy",
            "arn:aws:iam::1234:role/x",
            "arn:aws:iam::123456789012:user/x",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn branch_rules() {
        assert_eq!(parse_branches("*").unwrap(), BranchRule::Any);
        let rule = parse_branches("main, release").unwrap();
        assert!(rule.allows("release") && !rule.allows("dev"));
        assert!(parse_branches(",").is_err());
    }
}
