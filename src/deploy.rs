//! The story of a deploy: gate -> bundle -> label -> (dry run stops here) -> pre-flight -> upload ->
//! version -> update -> wait.

use crate::Failed;
use crate::beanstalk::{self, Beanstalk, Created, EnvState, VersionInfo};
use crate::bundle::{self, Bundle};
use crate::cancel::Cancel;
use crate::ci::BuildContext;
use crate::error::{Error, Result};
use crate::github;
use crate::report::{self, BundleReport, Outcome};
use crate::settings::{BranchRule, Settings, Source, sanitise_description};
use crate::upload::{ObjectInfo, Put, Storage};
use crate::watch;
use tokio::task::JoinHandle;
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

/// Checks the bundle's input (files, links, size, Dockerrun.aws.json) without building it. Local
/// only: a bad bundle is reported before any AWS call.
pub fn check(source: &Source) -> Result<bundle::Checked> {
    match source {
        Source::Dir(dir) => bundle::check_dir(dir),
        Source::Zip(zip) => bundle::check_zip(zip),
    }
}

/// Builds the zip (or hashes the prebuilt one) off the async runtime.
pub fn finish(checked: bundle::Checked) -> JoinHandle<Result<Bundle>> {
    tokio::task::spawn_blocking(move || checked.finish())
}

/// A deploy that passed the gate, with its bundle built and checked.
pub struct Plan {
    pub settings: Settings,
    pub bundle: Bundle,
    pub label: String,
    pub description: Option<String>,
    pub key: String,
}

impl Plan {
    /// Names the version and its key.
    pub fn new(settings: Settings, build: &BuildContext, bundle: Bundle) -> Plan {
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
        Plan {
            settings,
            bundle,
            label,
            description,
            key,
        }
    }

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
    }
}

/// What the pre-flight found.
struct Preflight {
    environment: Option<EnvState>,
    /// The version of an explicit label, when it exists already.
    version: Option<VersionInfo>,
}

/// The checks that need no bundle, run together while the zip is built: the environment exists and
/// is not terminated, the bucket is in our region, and an explicit label's version.
async fn preflight<S: Storage, B: Beanstalk>(s: &Settings, s3: &S, eb: &B) -> Result<Preflight> {
    let environment = async {
        match &s.env {
            Some(env) => match eb.environment(&s.app, env).await? {
                None => Err(watch::gone(&s.app, env, "missing")),
                Some(state) if matches!(state.status.as_str(), "Terminating" | "Terminated") => {
                    Err(watch::gone(&s.app, env, &state.status))
                }
                Some(state) => Ok(Some(state)),
            },
            None => Ok(None),
        }
    };
    let version = async {
        match &s.label {
            Some(label) => eb.version(&s.app, label).await,
            None => Ok(None),
        }
    };
    let (environment, region, version) =
        tokio::join!(environment, s3.bucket_region(&s.bucket), version);
    let region = region?;
    if !region.is_empty() && region != s.region {
        return Err(Error::setting(
            "EB_BUCKET_NAME",
            "--bucket-name",
            format!(
                "bucket {} is in {region}, but the environment is in {} (EB_REGION / --region); \
                 Beanstalk reads bundles only from a bucket in its own region",
                s.bucket, s.region
            ),
        ));
    }
    Ok(Preflight {
        environment: environment?,
        version: version?,
    })
}

/// Runs the deploy against AWS: the zip is finished while the pre-flight checks run; then upload,
/// version, update, wait. The critical path is three requests: PutObject, CreateApplicationVersion,
/// UpdateEnvironment.
#[allow(clippy::too_many_arguments)]
pub async fn execute<S: Storage, B: Beanstalk>(
    settings: Settings,
    build: &BuildContext,
    zip: JoinHandle<Result<Bundle>>,
    s3: &S,
    eb: &B,
    cancel: &Cancel,
    started: Instant,
    deadline: Instant,
) -> std::result::Result<Outcome, Failed> {
    let (bundle, checks) = tokio::join!(zip, preflight(&settings, s3, eb));
    let bundle = bundle.expect("the bundle task does not panic")?;
    let plan = Plan::new(settings, build, bundle);
    let known = |error: Error| Failed {
        known: Some(plan.outcome(report::failure_result(&error), started)),
        error,
    };
    let checks = checks.map_err(known)?;
    deploy(&plan, checks, s3, eb, cancel, started, deadline)
        .await
        .map_err(known)
}

async fn deploy<S: Storage, B: Beanstalk>(
    plan: &Plan,
    checks: Preflight,
    s3: &S,
    eb: &B,
    cancel: &Cancel,
    started: Instant,
    deadline: Instant,
) -> Result<Outcome> {
    let s = &plan.settings;
    let (app, bucket, key, label) = (&s.app, &s.bucket, &plan.key, &plan.label);
    let conflict = |detail: String| Error::LabelConflict {
        label: label.clone(),
        detail,
    };
    let points_here = |v: &VersionInfo| {
        v.bucket.as_deref() == Some(bucket.as_str()) && v.key.as_deref() == Some(key.as_str())
    };
    let same_bundle = |o: &ObjectInfo| o.sha256.as_deref() == Some(plan.bundle.sha256.as_str());

    let reused = if let Some(existing) = checks.version {
        // An explicit label that exists: fine only if it is this very bundle.
        if !points_here(&existing) {
            return Err(conflict(format!(
                "it points at s3://{}/{}",
                existing.bucket.unwrap_or_default(),
                existing.key.unwrap_or_default()
            )));
        }
        match s3.head(bucket, key).await? {
            Some(object) if same_bundle(&object) => {}
            _ => {
                return Err(conflict(format!(
                    "s3://{bucket}/{key} holds another bundle"
                )));
            }
        }
        tracing::info!("version {label} already exists with this bundle; reusing it");
        true
    } else {
        cancel.check(|| "nothing was written".into())?;
        tracing::info!(
            "uploading {} bytes to s3://{bucket}/{key}",
            plan.bundle.size
        );
        match s3.put(bucket, key, &plan.bundle, cancel).await? {
            Put::Stored => {}
            Put::Exists(object) if same_bundle(&object) => {
                tracing::info!("s3://{bucket}/{key} already holds this bundle; not replacing it");
            }
            Put::Exists(_) => {
                return Err(conflict(format!(
                    "s3://{bucket}/{key} holds another bundle, left untouched"
                )));
            }
        }
        cancel.check(|| format!("the bundle is at s3://{bucket}/{key}; no version was created"))?;
        let created = eb
            .create_version(app, label, plan.description.as_deref(), bucket, key)
            .await?;
        if created == Created::AlreadyExists {
            // A re-run, another run, or a retried request made it: fine if it is this bundle.
            match eb.version(app, label).await? {
                Some(v) if points_here(&v) => {}
                other => {
                    let at = other
                        .map(|v| {
                            format!(
                                "s3://{}/{}",
                                v.bucket.unwrap_or_default(),
                                v.key.unwrap_or_default()
                            )
                        })
                        .unwrap_or_else(|| "another bundle".into());
                    return Err(conflict(format!("it points at {at}")));
                }
            }
            tracing::info!("version {label} already exists with this bundle; reusing it");
            true
        } else {
            tracing::info!("created version {label} of {app}");
            false
        }
    };

    let (Some(env), Some(mut state)) = (&s.env, checks.environment) else {
        let mut outcome = plan.outcome(report::Result::VersionCreated, started);
        outcome.version_reused = reused;
        return Ok(outcome);
    };

    let request_id = loop {
        if state.status != "Ready" {
            state = watch::until_ready(eb, app, env, state, cancel, deadline, started).await?;
        }
        cancel.check(|| format!("version {label} exists; {env} was not updated"))?;
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
        watch::Target {
            app,
            env,
            label,
            request_id: &request_id,
            min: s.health,
        },
        cancel,
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
    use crate::cancel::Signal;
    use crate::settings::{Health, Output};
    use std::cell::RefCell;
    use std::time::Duration;

    /// Records every call; answers from its fields.
    #[derive(Default)]
    struct Fake {
        calls: RefCell<Vec<String>>,
        env_statuses: RefCell<Vec<&'static str>>,
        existing_version: Option<VersionInfo>,
    }

    impl Fake {
        fn log(&self, call: &str) {
            self.calls.borrow_mut().push(call.to_string());
        }
        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Storage for Fake {
        async fn head(&self, _: &str, _: &str) -> Result<Option<ObjectInfo>> {
            self.log("head");
            Ok(None)
        }
        async fn bucket_region(&self, _: &str) -> Result<String> {
            self.log("bucket_region");
            Ok("us-east-2".into())
        }
        async fn put(&self, _: &str, key: &str, _: &Bundle, _: &Cancel) -> Result<Put> {
            self.log(&format!("put {key}"));
            Ok(Put::Stored)
        }
    }

    impl Beanstalk for Fake {
        async fn environment(&self, _: &str, env: &str) -> Result<Option<EnvState>> {
            self.log("environment");
            let mut statuses = self.env_statuses.borrow_mut();
            let status = if statuses.len() > 1 {
                statuses.remove(0)
            } else {
                statuses[0]
            };
            Ok(Some(EnvState {
                name: env.into(),
                status: status.into(),
                health: "Green".into(),
                version_label: None,
                cname: None,
            }))
        }
        async fn version(&self, _: &str, label: &str) -> Result<Option<VersionInfo>> {
            self.log(&format!("version {label}"));
            Ok(self.existing_version.clone())
        }
        async fn create_version(
            &self,
            _: &str,
            label: &str,
            _: Option<&str>,
            _: &str,
            _: &str,
        ) -> Result<Created> {
            self.log(&format!("create_version {label}"));
            Ok(Created::New)
        }
        async fn update_environment(&self, _: &str, _: &str, label: &str) -> Result<String> {
            self.log(&format!("update_environment {label}"));
            Ok("req-1".into())
        }
        async fn events(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: std::time::SystemTime,
        ) -> Result<Vec<beanstalk::Event>> {
            Ok(vec![])
        }
    }

    fn settings(dir: &std::path::Path, label: Option<&str>) -> Settings {
        Settings {
            region: "us-east-2".into(),
            app: "app".into(),
            env: Some("app-env".into()),
            bucket: "bucket".into(),
            bucket_path: "path".into(),
            branches: BranchRule::Any,
            source: Source::Dir(dir.to_path_buf()),
            label: label.map(str::to_string),
            description: None,
            only_create_app_version: false,
            dry_run: false,
            output: Output::Text,
            wait: false,
            wait_timeout: Duration::from_secs(60),
            health: Health::Green,
            role: None,
            http_timeout: Duration::from_secs(60),
        }
    }

    async fn run_with(
        fake: &Fake,
        label: Option<&str>,
        cancel: &Cancel,
    ) -> std::result::Result<Outcome, Failed> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerrun.aws.json"),
            include_str!("../examples/multi-docker/Dockerrun.aws.json"),
        )
        .unwrap();
        let s = settings(dir.path(), label);
        let zip = finish(check(&s.source).unwrap());
        let build = BuildContext {
            provider: "test",
            sha: Some("abc123".into()),
            ..Default::default()
        };
        let started = Instant::now();
        execute(
            s,
            &build,
            zip,
            fake,
            fake,
            cancel,
            started,
            started + Duration::from_secs(60),
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_deploy_is_three_writes_after_the_checks() {
        let fake = Fake {
            env_statuses: RefCell::new(vec!["Ready"]),
            ..Default::default()
        };
        let outcome = run_with(&fake, None, &Cancel::never()).await.ok().unwrap();
        let label = outcome.label.unwrap();
        assert!(label.starts_with("git-abc123-"));
        let calls = fake.calls();
        assert_eq!(calls.len(), 5, "{calls:?}");
        let checks: std::collections::HashSet<&str> =
            calls[..2].iter().map(String::as_str).collect();
        assert_eq!(
            checks,
            ["environment", "bucket_region"].into_iter().collect()
        );
        assert_eq!(
            calls[2..],
            [
                format!("put path/{label}.zip"),
                format!("create_version {label}"),
                format!("update_environment {label}")
            ]
        );
        assert_eq!(outcome.result, report::Result::UpdateStarted);
    }

    #[tokio::test(start_paused = true)]
    async fn an_explicit_label_taken_elsewhere_writes_nothing() {
        let fake = Fake {
            env_statuses: RefCell::new(vec!["Ready"]),
            existing_version: Some(VersionInfo {
                bucket: Some("other".into()),
                key: Some("x.zip".into()),
            }),
            ..Default::default()
        };
        let failed = run_with(&fake, Some("v1"), &Cancel::never())
            .await
            .err()
            .unwrap();
        assert_eq!(failed.error.exit_code(), 2);
        assert!(failed.error.to_string().contains("s3://other/x.zip"));
        assert!(
            !fake
                .calls()
                .iter()
                .any(|c| c.starts_with("put") || c.starts_with("create"))
        );
        assert_eq!(failed.known.unwrap().label.as_deref(), Some("v1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_environment_is_waited_for_before_the_update() {
        let fake = Fake {
            env_statuses: RefCell::new(vec!["Updating", "Updating", "Ready"]),
            ..Default::default()
        };
        run_with(&fake, Some("v2"), &Cancel::never())
            .await
            .ok()
            .unwrap();
        let calls = fake.calls();
        let update = calls
            .iter()
            .position(|c| c == "update_environment v2")
            .unwrap();
        let looks = calls[..update]
            .iter()
            .filter(|c| *c == "environment")
            .count();
        assert_eq!(looks, 3, "{calls:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_before_the_upload_writes_nothing() {
        let fake = Fake {
            env_statuses: RefCell::new(vec!["Ready"]),
            ..Default::default()
        };
        let (cancel, fire) = Cancel::manual();
        fire(Signal::Terminate);
        let failed = run_with(&fake, None, &cancel).await.err().unwrap();
        assert_eq!(failed.error.exit_code(), 143);
        assert!(!fake.calls().iter().any(|c| c.starts_with("put")));
    }

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
