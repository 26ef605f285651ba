//! eb-deploy: deploy an application bundle to AWS Elastic Beanstalk from any CI.

pub mod aws;
pub mod beanstalk;
pub mod bundle;
pub mod ci;
pub mod cli;
pub mod deploy;
pub mod dockerrun;
pub mod error;
pub mod github;
pub mod report;
pub mod settings;
pub mod upload;
pub mod watch;

use crate::beanstalk::SdkBeanstalk;
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
    let plan = deploy::plan(settings, &build).await?;
    if plan.settings.dry_run {
        return Ok(plan.outcome(report::Result::DryRun, started));
    }
    let clients = aws::clients(&plan.settings.region, var).await;
    let s3 = S3Storage { client: clients.s3 };
    let eb = SdkBeanstalk {
        client: clients.beanstalk,
    };
    deploy::execute(&plan, &s3, &eb, started, deadline)
        .await
        .map_err(|error| Failed {
            known: Some(plan.outcome(report::failure_result(&error), started)),
            error,
        })
}
