//! The story of a deploy: gate -> bundle -> label -> (dry run stops here) -> pre-flight -> upload ->
//! version -> update -> wait.

use crate::beanstalk::{self, Beanstalk, Created};
use crate::bundle::{self, Bundle};
use crate::ci::BuildContext;
use crate::error::{Error, Result};
use crate::github;
use crate::report::{self, BundleReport, Outcome};
use crate::settings::{BranchRule, Settings, Source, sanitise_description};
use crate::upload::Storage;
use crate::watch;
use tokio::time::Instant;

/// Whether this build may deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Deploy,
    Skip(String),
}

/// Applies the branch rule: pull requests never deploy, other branches are skipped, and a build whose
/// branch is unknown is refused unless any branch may deploy.
pub fn gate(rule: &BranchRule, build: &BuildContext) -> Result<Gate> {
    if let Some(pr) = &build.pull_request {
        return Ok(Gate::Skip(format!(
            "this is a pull request build (#{pr} on {}); pull requests never deploy",
            build.provider
        )));
    }
    match (&build.branch, rule) {
        (_, BranchRule::Any) => Ok(Gate::Deploy),
        (Some(branch), rule) if rule.allows(branch) => Ok(Gate::Deploy),
        (Some(branch), BranchRule::Only(list)) => Ok(Gate::Skip(format!(
            "branch '{branch}' is not in EB_BRANCH ({})",
            list.join(",")
        ))),
        (None, _) => Err(Error::setting(
            "EB_BRANCH",
            "--branch",
            match &build.tag {
                Some(tag) => format!(
                    "this build is for tag '{tag}', not a branch; set EB_BRANCH='*' to deploy tags"
                ),
                None => format!(
                    "the branch of this build cannot be determined ({}); refusing to guess. Run in a \
                     supported CI or a git checkout, or set EB_BRANCH='*'",
                    build.provider
                ),
            },
        )),
    }
}

/// A deploy that passed the gate, with its bundle built and checked.
pub struct Plan {
    pub settings: Settings,
    pub bundle: Bundle,
    pub label: String,
    pub description: Option<String>,
    pub key: String,
}

/// Builds (or checks) the bundle and names the version. Reads local files only.
pub async fn plan(settings: Settings, build: &BuildContext) -> Result<Plan> {
    let source = settings.source.clone();
    let bundle = tokio::task::spawn_blocking(move || match source {
        Source::Dir(dir) => bundle::build(&dir),
        Source::Zip(zip) => bundle::prebuilt(&zip),
    })
    .await
    .expect("the bundle task does not panic")?;
    let label = match &settings.label {
        Some(label) => label.clone(),
        None => derive_label(build.sha.as_deref(), &bundle.sha256),
    };
    let description = settings
        .description
        .clone()
        .or_else(|| build.message.as_deref().map(sanitise_description))
        .filter(|d| !d.is_empty());
    let key = settings.key_for(&label);
    Ok(Plan {
        settings,
        bundle,
        label,
        description,
        key,
    })
}

/// `git-<commit>-<bundle hash>`, or `bundle-<hash>` without a commit: the same build gives the same
/// label, so a re-run reuses its version instead of failing.
pub fn derive_label(sha: Option<&str>, bundle_sha256: &str) -> String {
    let commit: String = sha
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    if commit.is_empty() {
        format!("bundle-{}", &bundle_sha256[..16])
    } else {
        format!("git-{commit}-{}", &bundle_sha256[..12])
    }
}

/// The outcome of a run that stopped at the branch gate.
pub fn skipped(settings: &Settings, reason: String, started: Instant) -> Outcome {
    Outcome {
        result: report::Result::Skipped,
        reason: Some(reason),
        ..base(settings, started)
    }
}

fn base(settings: &Settings, started: Instant) -> Outcome {
    Outcome {
        result: report::Result::Skipped,
        reason: None,
        app: settings.app.clone(),
        environment: settings.env.clone(),
        region: settings.region.clone(),
        label: None,
        bucket: settings.bucket.clone(),
        s3_key: None,
        description: None,
        version_reused: false,
        bundle: None,
        status: None,
        health: None,
        environment_url: None,
        duration_ms: started.elapsed().as_millis(),
        events: vec![],
        error: None,
    }
}

impl Plan {
    /// The outcome of a run that ends here, and what it would have done.
    pub fn outcome(&self, result: report::Result, started: Instant) -> Outcome {
        Outcome {
            result,
            label: Some(self.label.clone()),
            s3_key: Some(self.key.clone()),
            description: self.description.clone(),
            bundle: Some(BundleReport {
                sha256: self.bundle.sha256.clone(),
                size: self.bundle.size,
                entries: self.bundle.entries.clone(),
            }),
            ..base(&self.settings, started)
        }
    }
}

/// Runs the plan against AWS: pre-flight, upload, version, update, wait.
pub async fn execute<S: Storage, B: Beanstalk>(
    plan: &Plan,
    s3: &S,
    eb: &B,
    started: Instant,
    deadline: Instant,
) -> Result<Outcome> {
    let s = &plan.settings;
    let (app, bucket, key, label) = (&s.app, &s.bucket, &plan.key, &plan.label);

    // Pre-flight, concurrently: the environment, the label, the object.
    let environment = async {
        match &s.env {
            Some(env) => eb.environment(app, env).await.map(Some),
            None => Ok(None),
        }
    };
    let (environment, version, object, bucket_region) = tokio::join!(
        environment,
        eb.version(app, label),
        s3.head(bucket, key),
        s3.bucket_region(bucket)
    );
    let bucket_region = bucket_region?;
    if !bucket_region.is_empty() && bucket_region != s.region {
        return Err(Error::setting(
            "EB_BUCKET_NAME",
            "--bucket-name",
            format!(
                "bucket {bucket} is in {bucket_region}, but the environment is in {} \
                 (EB_REGION / --region); Beanstalk reads bundles only from a bucket in its own region",
                s.region
            ),
        ));
    }
    let environment = match (&s.env, environment?) {
        (Some(env), Some(None)) => return Err(watch::gone(app, env, "missing")),
        (_, found) => found.flatten(),
    };
    if let Some(state) = &environment {
        if matches!(state.status.as_str(), "Terminating" | "Terminated") {
            return Err(watch::gone(app, &state.name, &state.status));
        }
    }
    let (version, object) = (version?, object?);
    let same_object = object
        .as_ref()
        .is_some_and(|o| o.sha256.as_deref() == Some(plan.bundle.sha256.as_str()));

    let reused = match version {
        Some(existing) => {
            let points_here = existing.bucket.as_deref() == Some(bucket.as_str())
                && existing.key.as_deref() == Some(key.as_str());
            if !(points_here && same_object) {
                return Err(Error::LabelConflict {
                    label: label.clone(),
                    detail: if points_here {
                        format!("s3://{bucket}/{key} holds another bundle")
                    } else {
                        format!(
                            "it points at s3://{}/{}",
                            existing.bucket.unwrap_or_default(),
                            existing.key.unwrap_or_default()
                        )
                    },
                });
            }
            tracing::info!("version {label} already exists with this bundle; reusing it");
            true
        }
        None => {
            if same_object {
                tracing::info!(
                    "s3://{bucket}/{key} already holds this bundle; not uploading again"
                );
            } else if object.is_some() {
                return Err(Error::LabelConflict {
                    label: label.clone(),
                    detail: format!("s3://{bucket}/{key} holds another bundle, left untouched"),
                });
            } else {
                tracing::info!(
                    "uploading {} bytes to s3://{bucket}/{key}",
                    plan.bundle.size
                );
                s3.put(bucket, key, &plan.bundle).await?;
            }
            let created = eb
                .create_version(app, label, plan.description.as_deref(), bucket, key)
                .await?;
            if created == Created::AlreadyExists {
                // Another run (or a retried request) made it meanwhile: fine if it is this bundle.
                let again = eb.version(app, label).await?;
                if again.as_ref().and_then(|v| v.key.as_deref()) != Some(key.as_str()) {
                    return Err(Error::LabelConflict {
                        label: label.clone(),
                        detail: "it was created meanwhile for another bundle".into(),
                    });
                }
            }
            tracing::info!("created version {label} of {app}");
            created == Created::AlreadyExists
        }
    };

    let (Some(env), Some(mut state)) = (&s.env, environment) else {
        let mut outcome = plan.outcome(report::Result::VersionCreated, started);
        outcome.version_reused = reused;
        return Ok(outcome);
    };

    let request_id = loop {
        if state.status != "Ready" {
            state = watch::until_ready(eb, app, env, state, deadline, started).await?;
        }
        match eb.update_environment(app, env, label).await {
            Ok(id) => break id,
            // Someone else started an update between our look and ours: queue behind it.
            Err(err) if beanstalk::is_not_ready(&err) => {
                state.status = "Updating".into();
            }
            Err(err) => return Err(err),
        }
    };
    tracing::info!("update of {env} to {label} started (request {request_id})");

    let mut outcome = plan.outcome(report::Result::UpdateStarted, started);
    outcome.version_reused = reused;
    outcome.environment_url = state.url();
    if !s.wait {
        return Ok(outcome);
    }
    github::group(&format!("Waiting for {env} to run {label}"));
    let watched = watch::deploy(
        eb,
        app,
        env,
        label,
        &request_id,
        s.health,
        deadline,
        started,
    )
    .await;
    github::end_group();
    let watched = watched?;
    outcome.result = report::Result::Deployed;
    outcome.status = Some(watched.state.status.clone());
    outcome.health = Some(watched.state.health.clone());
    outcome.environment_url = watched.state.url().or(outcome.environment_url);
    outcome.events = watched.events;
    outcome.duration_ms = started.elapsed().as_millis();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(branch: Option<&str>, pr: Option<&str>) -> BuildContext {
        BuildContext {
            provider: "test",
            branch: branch.map(str::to_string),
            pull_request: pr.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn the_gate() {
        let rule = BranchRule::Only(vec!["master".into()]);
        assert_eq!(
            gate(&rule, &ctx(Some("master"), None)).unwrap(),
            Gate::Deploy
        );
        assert!(
            matches!(gate(&rule, &ctx(Some("dev"), None)).unwrap(), Gate::Skip(r) if r.contains("'dev'"))
        );
        assert!(
            matches!(gate(&BranchRule::Any, &ctx(Some("master"), Some("4"))).unwrap(), Gate::Skip(r) if r.contains("pull request"))
        );
        assert_eq!(
            gate(&BranchRule::Any, &ctx(None, None)).unwrap(),
            Gate::Deploy
        );
        let err = gate(&rule, &ctx(None, None)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().starts_with("EB_BRANCH / --branch"));
    }

    #[test]
    fn labels_are_derived_from_commit_and_content() {
        let hash = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            derive_label(Some("a1b2c3d4e5f6a7b8"), hash),
            "git-a1b2c3d4e5f6-0123456789ab"
        );
        assert_eq!(derive_label(None, hash), "bundle-0123456789abcdef");
    }
}
