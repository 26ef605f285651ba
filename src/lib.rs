//! eb-deploy: deploy an application bundle to AWS Elastic Beanstalk from any CI.

pub mod aws;
pub mod beanstalk;
pub mod bundle;
pub mod cancel;
pub mod ci;
pub mod cli;
pub mod credentials;
pub mod deploy;
pub mod dockerrun;
pub mod error;
pub mod github;
pub mod report;
pub mod secrets;
pub mod settings;
pub mod upload;
pub mod watch;

use crate::beanstalk::SdkBeanstalk;
use crate::cancel::Cancel;
use crate::ci::BuildContext;
use crate::deploy::Gate;
use crate::error::Error;
use crate::report::Outcome;
use crate::settings::Settings;
use crate::upload::S3Storage;
use tokio::time::Instant;

/// A failed run: the error, and what was known of the deploy when it failed (label, key, bundle).
pub struct Failed {
    pub error: Error,
    pub known: Option<Outcome>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed { error, known: None }
    }
}

/// Runs one deploy. `var` reads the environment (credentials fallbacks, endpoint overrides).
pub async fn run(
    settings: Settings,
    build: BuildContext,
    var: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Outcome, Failed> {
    let started = Instant::now();
    let deadline = started + settings.wait_timeout;
    if let Gate::Skip(reason) = deploy::gate(&settings.branches, &build)? {
        return Ok(deploy::skipped(&settings, reason, started));
    }
    let checked = deploy::check(&settings.source)?;
    // The zip is built while credentials are obtained and the pre-flight checks run.
    let zip = deploy::finish(checked);
    if settings.dry_run {
        let bundle = zip.await.expect("the bundle task does not panic")?;
        let plan = deploy::Plan::new(settings, &build, bundle);
        return Ok(plan.outcome(report::Result::DryRun, started));
    }
    let cancel = Cancel::on_signals();
    let mut config = aws::config(&settings.region, settings.http_timeout, var).await;
    if let Some((arn, duration)) = &settings.role {
        let role = credentials::RoleSettings {
            arn: arn.clone(),
            duration: *duration,
            session_name: credentials::session_name(var),
        };
        let token = credentials::TokenRequest::from_env(var);
        config = credentials::assume_role(&config, &role, token, expects_oidc(var)).await?;
    }
    let clients = aws::clients(&config, var);
    let s3 = S3Storage { client: clients.s3 };
    let eb = SdkBeanstalk {
        client: clients.beanstalk,
    };
    deploy::execute(settings, &build, zip, &s3, &eb, &cancel, started, deadline).await
}

/// In GitHub Actions with no other credentials configured, a role can only come through OIDC.
fn expects_oidc(var: &dyn Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    var("GITHUB_ACTIONS").as_deref() == Some("true")
        && ![
            "AWS_ACCESS_KEY_ID",
            "AWS_ACCESS_KEY",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ]
        .iter()
        .any(|name| set(name))
}
