//! The command line: every flag also reads an `EB_*` env var (the flag wins). This is the only place
//! that names them; values are checked in `settings.rs`.

use clap::Parser;
use std::path::PathBuf;

/// Deploy an application bundle to AWS Elastic Beanstalk from any CI.
///
/// Every option is also an environment variable: dpl's option `foo` is `EB_FOO` / `--foo`.
/// Boolean options take true/false (also 1/0, yes/no); a bare flag means true.
#[derive(Debug, Parser)]
#[command(name = "eb-deploy", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// AWS region [default: AWS_REGION, then AWS_DEFAULT_REGION]
    #[arg(long, env = "EB_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// Elastic Beanstalk application name
    #[arg(long, env = "EB_APP", value_name = "NAME")]
    pub app: Option<String>,

    /// Environment to update (not needed with --only-create-app-version)
    #[arg(long, env = "EB_ENV", value_name = "NAME")]
    pub env: Option<String>,

    /// S3 bucket that receives the bundle
    #[arg(long, env = "EB_BUCKET_NAME", value_name = "BUCKET")]
    pub bucket_name: Option<String>,

    /// Key prefix in the bucket: the bundle goes to <path>/<label>.zip
    #[arg(long, env = "EB_BUCKET_PATH", value_name = "PATH")]
    pub bucket_path: Option<String>,

    /// Branches allowed to deploy, comma-separated; `*` means any [default: main,master]
    #[arg(long, env = "EB_BRANCH", value_name = "LIST")]
    pub branch: Option<String>,

    /// Folder holding Dockerrun.aws.json (and .ebextensions/, .platform/, docker-compose.yml) [default: .]
    #[arg(long, env = "EB_BUNDLE_DIR", value_name = "DIR")]
    pub bundle_dir: Option<PathBuf>,

    /// Upload this prebuilt zip instead of building one from --bundle-dir
    #[arg(long, env = "EB_ZIP_FILE", value_name = "FILE")]
    pub zip_file: Option<PathBuf>,

    /// Version label, at most 100 characters [default: derived from the commit and the bundle's hash]
    #[arg(long, env = "EB_LABEL", value_name = "LABEL")]
    pub label: Option<String>,

    /// Version description, at most 200 characters [default: the commit message, when known]
    #[arg(long, env = "EB_DESCRIPTION", value_name = "TEXT")]
    pub description: Option<String>,

    /// Create the application version but do not update the environment [default: false]
    #[arg(long, env = "EB_ONLY_CREATE_APP_VERSION", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub only_create_app_version: Option<String>,

    /// Resolve settings, build and validate the bundle, print the plan; no AWS call at all [default: false]
    #[arg(long, env = "EB_DRY_RUN", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub dry_run: Option<String>,

    /// Result format on stdout: text or json [default: text]
    #[arg(long, env = "EB_OUTPUT", value_name = "FORMAT")]
    pub output: Option<String>,

    /// Wait for the environment to run the new version, healthy [default: true]
    #[arg(long, env = "EB_WAIT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub wait: Option<String>,

    /// One deadline for the whole run: 600, 600s, 10m, 1h [default: 10m]
    #[arg(long, env = "EB_WAIT_TIMEOUT", value_name = "DURATION")]
    pub wait_timeout: Option<String>,

    /// Lowest health that counts as success: green or yellow [default: green]
    #[arg(long, env = "EB_HEALTH", value_name = "COLOR")]
    pub health: Option<String>,

    /// How long one HTTP attempt may wait for an answer before it is retried: 1s to 10m [default: 60s]
    #[arg(long, env = "EB_HTTP_TIMEOUT", value_name = "DURATION")]
    pub http_timeout: Option<String>,

    /// IAM role to assume: with GitHub's OIDC token in Actions, else with the current credentials
    #[arg(long, env = "EB_ROLE_ARN", value_name = "ARN")]
    pub role_arn: Option<String>,

    /// Session length of the assumed role: 900s to 12h [default: 1h]
    #[arg(long, env = "EB_ROLE_DURATION", value_name = "DURATION")]
    pub role_duration: Option<String>,
}
