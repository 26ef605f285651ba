//! Which CI we run in, and what it says about the build: branch, tag, pull request, commit.

use std::path::Path;
use std::process::Command;

/// What the CI environment (or `git`, outside CI) tells about this build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildContext {
    /// The CI system, or "git" / "unknown".
    pub provider: &'static str,
    pub branch: Option<String>,
    pub tag: Option<String>,
    /// The pull or merge request number when this build is one.
    pub pull_request: Option<String>,
    pub sha: Option<String>,
    pub message: Option<String>,
}

/// Reads CI variables through `var` (the process environment in production, a map in tests); falls
/// back to `git` in `dir` when no CI system is recognised.
pub fn detect(var: &dyn Fn(&str) -> Option<String>, dir: &Path) -> BuildContext {
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let is = |name: &str, value: &str| get(name).is_some_and(|v| v.eq_ignore_ascii_case(value));

    if is("TRAVIS", "true") || get("TRAVIS_BRANCH").is_some() {
        let pr = get("TRAVIS_PULL_REQUEST").filter(|v| v != "false");
        let tag = get("TRAVIS_TAG");
        return BuildContext {
            provider: "Travis CI",
            // On a pull request TRAVIS_BRANCH is the target branch; the gate refuses PRs anyway.
            branch: if tag.is_some() {
                None
            } else {
                get("TRAVIS_BRANCH")
            },
            tag,
            pull_request: pr,
            sha: get("TRAVIS_COMMIT"),
            message: get("TRAVIS_COMMIT_MESSAGE"),
        };
    }
    if is("GITHUB_ACTIONS", "true") {
        let reference = get("GITHUB_REF").unwrap_or_default();
        let event = get("GITHUB_EVENT_NAME").unwrap_or_default();
        let pull_request = if event.starts_with("pull_request") {
            Some(pr_number(&reference).unwrap_or_else(|| "?".into()))
        } else {
            None
        };
        let (branch, tag) = split_ref(&reference);
        return BuildContext {
            provider: "GitHub Actions",
            branch: if pull_request.is_some() {
                get("GITHUB_HEAD_REF")
            } else {
                branch
            },
            tag,
            pull_request,
            sha: get("GITHUB_SHA"),
            message: None,
        };
    }
    if is("GITLAB_CI", "true") {
        return BuildContext {
            provider: "GitLab CI",
            branch: get("CI_COMMIT_BRANCH"),
            tag: get("CI_COMMIT_TAG"),
            pull_request: get("CI_MERGE_REQUEST_IID"),
            sha: get("CI_COMMIT_SHA"),
            message: get("CI_COMMIT_MESSAGE"),
        };
    }
    if is("CIRCLECI", "true") {
        return BuildContext {
            provider: "CircleCI",
            branch: get("CIRCLE_BRANCH"),
            tag: get("CIRCLE_TAG"),
            pull_request: get("CIRCLE_PR_NUMBER").or_else(|| get("CIRCLE_PULL_REQUEST")),
            sha: get("CIRCLE_SHA1"),
            message: None,
        };
    }
    if get("BITBUCKET_BUILD_NUMBER").is_some() {
        return BuildContext {
            provider: "Bitbucket Pipelines",
            branch: get("BITBUCKET_BRANCH"),
            tag: get("BITBUCKET_TAG"),
            pull_request: get("BITBUCKET_PR_ID"),
            sha: get("BITBUCKET_COMMIT"),
            message: None,
        };
    }
    if is("BUILDKITE", "true") {
        return BuildContext {
            provider: "Buildkite",
            branch: get("BUILDKITE_BRANCH"),
            tag: get("BUILDKITE_TAG"),
            pull_request: get("BUILDKITE_PULL_REQUEST").filter(|v| v != "false"),
            sha: get("BUILDKITE_COMMIT"),
            message: get("BUILDKITE_MESSAGE"),
        };
    }
    if is("TF_BUILD", "true") {
        let reference = get("BUILD_SOURCEBRANCH").unwrap_or_default();
        let pull_request = get("SYSTEM_PULLREQUEST_PULLREQUESTNUMBER")
            .or_else(|| get("SYSTEM_PULLREQUEST_PULLREQUESTID"))
            .or_else(|| pr_number(&reference));
        let (branch, tag) = split_ref(&reference);
        return BuildContext {
            provider: "Azure Pipelines",
            branch,
            tag,
            pull_request,
            sha: get("BUILD_SOURCEVERSION"),
            message: get("BUILD_SOURCEVERSIONMESSAGE"),
        };
    }
    if get("JENKINS_URL").is_some() {
        let branch = get("BRANCH_NAME").or_else(|| {
            get("GIT_BRANCH").map(|b| b.strip_prefix("origin/").unwrap_or(&b).to_string())
        });
        return BuildContext {
            provider: "Jenkins",
            branch,
            tag: get("TAG_NAME"),
            pull_request: get("CHANGE_ID"),
            sha: get("GIT_COMMIT"),
            message: None,
        };
    }
    from_git(dir)
}

fn split_ref(reference: &str) -> (Option<String>, Option<String>) {
    if let Some(branch) = reference.strip_prefix("refs/heads/") {
        (Some(branch.to_string()), None)
    } else if let Some(tag) = reference.strip_prefix("refs/tags/") {
        (None, Some(tag.to_string()))
    } else {
        (None, None)
    }
}

fn pr_number(reference: &str) -> Option<String> {
    let rest = reference.strip_prefix("refs/pull/")?;
    rest.split('/').next().map(str::to_string)
}

fn from_git(dir: &Path) -> BuildContext {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    // One process for all three: commit, the refs pointing at it, subject.
    let Some(out) = git(&["log", "-1", "--format=%H%n%D%n%s"]) else {
        return BuildContext {
            provider: "unknown",
            ..Default::default()
        };
    };
    let mut lines = out.lines();
    let sha = lines.next().map(str::to_string);
    let refs = lines.next().unwrap_or_default();
    BuildContext {
        provider: "git",
        branch: branch_of(refs),
        tag: None,
        pull_request: None,
        sha,
        message: lines.next().map(str::to_string).filter(|m| !m.is_empty()),
    }
}

/// The branch in `git log --format=%D` output (`HEAD -> main, origin/main, tag: v1`); none when
/// HEAD is detached.
fn branch_of(refs: &str) -> Option<String> {
    refs.split(", ")
        .find_map(|r| r.strip_prefix("HEAD -> "))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn detect_with(vars: &[(&str, &str)]) -> BuildContext {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        detect(&|name| map.get(name).cloned(), dir.path())
    }

    #[test]
    fn travis_push_and_pull_request() {
        let push = detect_with(&[
            ("TRAVIS_BRANCH", "master"),
            ("TRAVIS_PULL_REQUEST", "false"),
            ("TRAVIS_COMMIT", "abc123"),
        ]);
        assert_eq!(push.branch.as_deref(), Some("master"));
        assert_eq!(push.pull_request, None);
        assert_eq!(push.sha.as_deref(), Some("abc123"));
        let pr = detect_with(&[("TRAVIS_BRANCH", "master"), ("TRAVIS_PULL_REQUEST", "42")]);
        assert_eq!(pr.pull_request.as_deref(), Some("42"));
    }

    #[test]
    fn github_branch_tag_and_pull_request() {
        let push = detect_with(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_SHA", "deadbeef"),
        ]);
        assert_eq!(push.branch.as_deref(), Some("main"));
        assert_eq!(push.pull_request, None);
        let tag = detect_with(&[("GITHUB_ACTIONS", "true"), ("GITHUB_REF", "refs/tags/v1.2")]);
        assert_eq!((tag.branch, tag.tag.as_deref()), (None, Some("v1.2")));
        let pr = detect_with(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REF", "refs/pull/7/merge"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_HEAD_REF", "feature"),
        ]);
        assert_eq!(pr.pull_request.as_deref(), Some("7"));
    }

    #[test]
    fn other_providers() {
        let gitlab = detect_with(&[
            ("GITLAB_CI", "true"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_SHA", "1"),
        ]);
        assert_eq!(
            (gitlab.provider, gitlab.branch.as_deref()),
            ("GitLab CI", Some("main"))
        );
        let mr = detect_with(&[("GITLAB_CI", "true"), ("CI_MERGE_REQUEST_IID", "3")]);
        assert_eq!(mr.pull_request.as_deref(), Some("3"));
        let circle = detect_with(&[
            ("CIRCLECI", "true"),
            ("CIRCLE_BRANCH", "dev"),
            ("CIRCLE_PR_NUMBER", "9"),
        ]);
        assert_eq!(circle.pull_request.as_deref(), Some("9"));
        let bb = detect_with(&[
            ("BITBUCKET_BUILD_NUMBER", "5"),
            ("BITBUCKET_BRANCH", "master"),
        ]);
        assert_eq!(bb.branch.as_deref(), Some("master"));
        let jenkins = detect_with(&[("JENKINS_URL", "http://j"), ("GIT_BRANCH", "origin/main")]);
        assert_eq!(jenkins.branch.as_deref(), Some("main"));
        let kite = detect_with(&[
            ("BUILDKITE", "true"),
            ("BUILDKITE_BRANCH", "main"),
            ("BUILDKITE_PULL_REQUEST", "false"),
        ]);
        assert_eq!(
            (kite.branch.as_deref(), kite.pull_request),
            (Some("main"), None)
        );
        let azure = detect_with(&[
            ("TF_BUILD", "True"),
            ("BUILD_SOURCEBRANCH", "refs/pull/12/merge"),
        ]);
        assert_eq!(azure.pull_request.as_deref(), Some("12"));
    }

    #[test]
    fn git_refs_name_the_branch_unless_detached() {
        assert_eq!(
            branch_of("HEAD -> main, origin/main, tag: v1").as_deref(),
            Some("main")
        );
        assert_eq!(branch_of("HEAD, origin/main"), None);
        assert_eq!(branch_of(""), None);
    }

    #[test]
    fn a_git_checkout_outside_ci() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .output()
                .unwrap();
            assert!(ok.status.success(), "{ok:?}");
        };
        git(&["init", "-q", "-b", "release"]);
        git(&["commit", "-q", "--allow-empty", "-m", "ship it"]);
        let ctx = detect(&|_| None, dir.path());
        assert_eq!(ctx.provider, "git");
        assert_eq!(ctx.branch.as_deref(), Some("release"));
        assert_eq!(ctx.sha.as_ref().map(String::len), Some(40));
        assert_eq!(ctx.message.as_deref(), Some("ship it"));
        git(&["checkout", "-q", "--detach"]);
        assert_eq!(detect(&|_| None, dir.path()).branch, None);
    }

    #[test]
    fn nothing_known_outside_ci_and_git() {
        let none = detect_with(&[]);
        assert_eq!(none.provider, "unknown");
        assert_eq!(none.branch, None);
    }
}
