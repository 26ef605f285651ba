//! Faults between eb-deploy and AWS: a proxy in front of the emulator answers chosen requests with
//! 500s, throttling, resets, stalls, cut-short bodies and lost answers. Transient faults must be
//! survived with exactly one version and the environment on our label; persistent ones must end
//! with the documented exit code, the operation and request id named, and AWS left consistent.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::proxy::{Fault, Proxy};
use support::*;

/// An emulator with a proxy in front of it.
fn rig() -> (Emulator, Proxy) {
    let emu = Emulator::start();
    emu.setup(REGION, BUCKET, APP, ENV);
    let proxy = Proxy::start(&emu.url);
    (emu, proxy)
}

/// The seed's deploy of `case` (its own application, environment and key prefix), through the proxy.
fn deploy_cmd(emu: &Emulator, proxy: &Proxy, case: &str) -> Command {
    let app = format!("app-{case}");
    let env = format!("env-{case}");
    emu.setup(REGION, BUCKET, &app, &env);
    let mut cmd = emu.seed_command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.url)
        .env("EB_APP", &app)
        .env("EB_ENV", &env)
        .env("EB_BUCKET_PATH", case)
        .env("RUST_LOG", "eb_deploy=debug");
    cmd
}

fn versions_of(emu: &Emulator, app: &str) -> Vec<serde_json::Value> {
    emu.state(REGION)["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["app"] == app)
        .cloned()
        .collect()
}

fn keys_under(emu: &Emulator, prefix: &str) -> Vec<String> {
    emu.keys(BUCKET)
        .into_iter()
        .filter(|k| k.starts_with(&format!("{prefix}/")))
        .collect()
}

const TRANSIENT: [(&str, Fault); 3] = [
    ("500", Fault::Status500),
    ("throttle", Fault::Throttle),
    ("reset", Fault::Reset),
];

/// One transient fault of each kind on `operation`: the deploy succeeds, exactly one version, the
/// environment on our label, and the fault really happened.
fn survives(operation: &str, bundle: Option<&std::path::Path>) {
    let (emu, proxy) = rig();
    for (name, fault) in TRANSIENT {
        let case = format!("{}-{name}", operation.to_lowercase());
        let before = proxy.faulted(operation);
        proxy.inject(operation, fault, 1);
        let mut cmd = deploy_cmd(&emu, &proxy, &case);
        if let Some(dir) = bundle {
            cmd.env("EB_BUNDLE_DIR", dir);
        }
        let out = cmd.run();
        let (stdout, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{case}: {stderr}");
        assert_eq!(
            proxy.faulted(operation),
            before + 1,
            "{case}: the fault was injected"
        );
        let versions = versions_of(&emu, &format!("app-{case}"));
        assert_eq!(versions.len(), 1, "{case}: exactly one version");
        let label = versions[0]["label"].as_str().unwrap();
        assert!(stdout.contains(label), "{case}: {stdout}");
        assert_eq!(
            emu.env_label(&format!("env-{case}")).as_deref(),
            Some(label),
            "{case}"
        );
        assert_eq!(keys_under(&emu, &case).len(), 1, "{case}");
    }
    assert!(
        emu.bucket(BUCKET)["multipart_uploads"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn transient_faults_on_put_object_are_survived() {
    survives("PutObject", None);
}

#[test]
fn transient_faults_on_upload_part_are_survived() {
    let big = big_bundle(20);
    survives("UploadPart", Some(big.path()));
}

#[test]
fn transient_faults_on_create_application_version_are_survived() {
    survives("CreateApplicationVersion", None);
}

#[test]
fn transient_faults_on_update_environment_are_survived() {
    survives("UpdateEnvironment", None);
}

#[test]
fn transient_faults_on_describe_environments_are_survived() {
    survives("DescribeEnvironments", None);
}

#[test]
fn transient_faults_on_describe_events_are_survived() {
    survives("DescribeEvents", None);
}

#[test]
fn cut_short_and_lost_answers_are_survived_without_duplicates() {
    let (emu, proxy) = rig();
    // The version is created but its answer is lost: the retry's "already exists" for the same
    // label and bundle counts as success.
    proxy.inject("CreateApplicationVersion", Fault::LoseResponse, 1);
    proxy.inject("DescribeEvents", Fault::Truncate, 1);
    proxy.inject("PutObject", Fault::LoseResponse, 1);
    let out = deploy_cmd(&emu, &proxy, "lost").run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for op in ["CreateApplicationVersion", "DescribeEvents", "PutObject"] {
        assert_eq!(proxy.faulted(op), 1, "{op}");
    }
    assert_eq!(versions_of(&emu, "app-lost").len(), 1);
    assert_eq!(keys_under(&emu, "lost").len(), 1);
    let label = versions_of(&emu, "app-lost")[0]["label"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(emu.env_label("env-lost"), Some(label));
}

/// A persistent 500 on `operation`: the documented exit, the operation and request id in the
/// message, and what AWS holds checked by `state`.
fn persistent(
    operation: &str,
    bundle: Option<&std::path::Path>,
    expect_code: i32,
    state: impl Fn(&Emulator, &str),
) {
    let (emu, proxy) = rig();
    let case = format!("{}-down", operation.to_lowercase());
    proxy.inject(operation, Fault::Status500, usize::MAX);
    let mut cmd = deploy_cmd(&emu, &proxy, &case);
    cmd.env("AWS_MAX_ATTEMPTS", "2");
    if let Some(dir) = bundle {
        cmd.env("EB_BUNDLE_DIR", dir);
    }
    let out = cmd.run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(expect_code), "{case}: {stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(error.contains(&format!("{operation} failed")), "{error}");
    assert!(error.contains("request id proxy-"), "{error}");
    assert!(
        emu.bucket(BUCKET)["multipart_uploads"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no open multipart upload"
    );
    // Never a version without its object.
    for v in versions_of(&emu, &format!("app-{case}")) {
        assert!(
            emu.keys(BUCKET)
                .contains(&v["key"].as_str().unwrap().to_string()),
            "{v}"
        );
    }
    state(&emu, &case);
}

#[test]
fn a_dead_put_object_is_exit_3_with_nothing_created() {
    persistent("PutObject", None, 3, |emu, case| {
        assert!(keys_under(emu, case).is_empty());
        assert!(versions_of(emu, &format!("app-{case}")).is_empty());
    });
}

#[test]
fn a_dead_upload_part_is_exit_3_with_the_upload_aborted() {
    let big = big_bundle(20);
    persistent("UploadPart", Some(big.path()), 3, |emu, case| {
        assert!(keys_under(emu, case).is_empty());
        assert!(versions_of(emu, &format!("app-{case}")).is_empty());
        assert!(emu.operations().iter().any(|o| o == "AbortMultipartUpload"));
    });
}

#[test]
fn a_dead_create_application_version_is_exit_3_and_the_environment_untouched() {
    persistent("CreateApplicationVersion", None, 3, |emu, case| {
        assert!(versions_of(emu, &format!("app-{case}")).is_empty());
        assert_eq!(emu.env_label(&format!("env-{case}")), None);
    });
}

#[test]
fn a_dead_update_environment_is_exit_3_with_the_version_kept() {
    persistent("UpdateEnvironment", None, 3, |emu, case| {
        assert_eq!(versions_of(emu, &format!("app-{case}")).len(), 1);
        assert_eq!(emu.env_label(&format!("env-{case}")), None);
    });
}

#[test]
fn a_dead_describe_environments_is_exit_3_before_any_upload() {
    persistent("DescribeEnvironments", None, 3, |emu, case| {
        assert!(keys_under(emu, case).is_empty());
    });
}

#[test]
fn dead_describe_events_end_the_wait_with_exit_3_not_a_success() {
    persistent("DescribeEvents", None, 3, |emu, case| {
        // The update itself went through; eb-deploy could not watch it and did not claim success.
        assert_eq!(versions_of(emu, &format!("app-{case}")).len(), 1);
    });
}

#[test]
fn a_stall_past_the_timeout_is_retried_then_a_clear_error() {
    let (emu, proxy) = rig();
    proxy.inject(
        "DescribeEnvironments",
        Fault::Stall(Duration::from_secs(4)),
        1,
    );
    let out = deploy_cmd(&emu, &proxy, "stall-once")
        .env("EB_HTTP_TIMEOUT", "1s")
        .run();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out).1);
    assert_eq!(proxy.faulted("DescribeEnvironments"), 1);

    proxy.inject(
        "DescribeEnvironments",
        Fault::Stall(Duration::from_secs(4)),
        usize::MAX,
    );
    let out = deploy_cmd(&emu, &proxy, "stall-always")
        .env("EB_HTTP_TIMEOUT", "1s")
        .env("AWS_MAX_ATTEMPTS", "2")
        .run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("DescribeEnvironments failed") && stderr.contains("timeout"),
        "{stderr}"
    );
    assert!(keys_under(&emu, "stall-always").is_empty());
}

#[test]
fn retry_settings_that_would_crash_the_sdk_are_exit_2() {
    let emu = Emulator::seeded();
    for (var, value) in [
        ("AWS_RETRY_MODE", "legacy"),
        ("AWS_MAX_ATTEMPTS", "0"),
        ("AWS_MAX_ATTEMPTS", "many"),
    ] {
        let out = emu.seed_command().env(var, value).run();
        let (_, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
    assert!(emu.requests().is_empty());
}

/// Runs `cmd`, sends `signal` once stderr shows `when`, and returns the exit code and stderr.
fn interrupt(mut cmd: Command, when: &str, signal: &str) -> (Option<i32>, String) {
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut sent = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if !sent && line.contains(when) {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            sent = true;
        }
    }
    assert!(sent, "never saw {when:?} in {seen}");
    (child.wait().unwrap().code(), seen)
}

#[test]
fn sigterm_during_the_upload_aborts_it_and_creates_nothing() {
    let (emu, proxy) = rig();
    let big = big_bundle(20);
    proxy.inject(
        "UploadPart",
        Fault::Stall(Duration::from_secs(30)),
        usize::MAX,
    );
    let mut cmd = deploy_cmd(&emu, &proxy, "term-upload");
    cmd.env("EB_BUNDLE_DIR", big.path());
    let (code, stderr) = interrupt(cmd, "uploading ", "-TERM");
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("cancelled by SIGTERM"), "{stderr}");
    assert!(
        stderr.contains("multipart upload to s3://") && stderr.contains("was aborted"),
        "{stderr}"
    );
    assert!(
        emu.bucket(BUCKET)["multipart_uploads"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(keys_under(&emu, "term-upload").is_empty());
    assert!(versions_of(&emu, "app-term-upload").is_empty());
    assert!(!emu.operations().iter().any(|o| o == "UpdateEnvironment"));
}

#[test]
fn sigterm_and_sigint_during_the_wait_stop_it_and_say_the_update_goes_on() {
    let (emu, proxy) = rig();
    for (signal, code) in [("-TERM", 143), ("-INT", 130)] {
        let case = format!("wait{signal}").to_lowercase();
        let env = format!("env-{case}");
        let cmd = deploy_cmd(&emu, &proxy, &case);
        emu.script(&env, "slow", Some(30.0));
        let (exit, stderr) = interrupt(cmd, "started (request", signal);
        assert_eq!(exit, Some(code), "{stderr}");
        assert!(stderr.contains("goes on in AWS"), "{stderr}");
        assert_eq!(
            emu.state(REGION)["environments"][&env]["status"],
            "Updating"
        );
    }
}
