//! End to end: waiting for the deploy and reporting the truth, against the emulator's scripted
//! outcomes; GitHub Actions outputs.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::*;

/// Parses a GITHUB_OUTPUT file the way the runner does: `name=value` or `name<<DELIM` ... `DELIM`.
fn parse_outputs(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_string(), value.to_string());
        } else {
            panic!("unparseable GITHUB_OUTPUT line {line:?} in {text:?}");
        }
    }
    out
}

#[test]
fn a_deploy_is_followed_to_ready_green_with_events_and_outputs() {
    let emu = Emulator::seeded();
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("output");
    let summary = dir.path().join("summary.md");
    let out = emu
        .seed_command()
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("EB_OUTPUT", "json")
        .run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    // Events, streamed once each, in the order Beanstalk recorded them.
    let printed: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  20")).collect();
    let order = [
        "Environment update is starting.",
        "Deploying new version to instance(s).",
        "New application version was deployed to running EC2 instances.",
        "Environment update completed successfully.",
    ];
    assert_eq!(printed.len(), order.len(), "{printed:#?}");
    for (line, message) in printed.iter().zip(order) {
        assert!(line.ends_with(message), "{line} is not {message}");
        assert!(line.contains("Z  INFO "), "time, severity, message: {line}");
    }

    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["result"], "deployed");
    assert_eq!(result["status"], "Ready");
    assert_eq!(result["health"], "Green");
    assert_eq!(result["version_reused"], false);
    assert!(
        result["environment_url"]
            .as_str()
            .unwrap()
            .contains("elasticbeanstalk.com")
    );
    assert_eq!(result["events"].as_array().unwrap().len(), 4);
    let label = result["label"].as_str().unwrap();
    assert_eq!(emu.env_label(ENV).as_deref(), Some(label));

    let parsed = parse_outputs(&outputs);
    assert_eq!(parsed["result"], "deployed");
    assert_eq!(parsed["version-label"], label);
    assert_eq!(parsed["s3-key"], format!("{PATH_PREFIX}/{label}.zip"));
    assert_eq!(parsed["version-reused"], "false");
    assert!(parsed["environment-url"].starts_with("http://"));
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.contains(&format!("| Version label | {label} |")),
        "{summary}"
    );
}

#[test]
fn a_failed_deploy_is_exit_1_with_the_failing_event() {
    let emu = Emulator::seeded();
    emu.script(ENV, "fail", None);
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("output");
    let out = emu
        .seed_command()
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &outputs)
        .run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let annotation = stderr
        .lines()
        .find(|l| l.starts_with("::error"))
        .unwrap_or_else(|| panic!("no ::error:: in {stderr}"));
    assert!(
        annotation.contains("Failed to deploy application.")
            || annotation.contains("Unsuccessful command"),
        "{annotation}"
    );
    assert!(
        stderr.contains("::group::Waiting for MultiDocker-env"),
        "{stderr}"
    );
    assert_eq!(parse_outputs(&outputs)["result"], "failed");
}

#[test]
fn a_rollback_to_the_previous_label_is_exit_1() {
    let emu = Emulator::seeded();
    let first = emu.seed_command().env("EB_LABEL", "v1").run();
    assert_eq!(first.status.code(), Some(0));
    emu.script(ENV, "rollback", None);
    let out = emu.seed_command().env("EB_LABEL", "v2").run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("runs 'v1', not 'v2' (rolled back)"),
        "{stderr}"
    );
    assert_eq!(emu.env_label(ENV).as_deref(), Some("v1"));
}

#[test]
fn a_slow_deploy_past_the_deadline_is_exit_4_on_time() {
    let emu = Emulator::seeded();
    emu.script(ENV, "slow", Some(60.0));
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("output");
    let started = Instant::now();
    let out = emu
        .seed_command()
        .env("EB_WAIT_TIMEOUT", "2s")
        .env("GITHUB_OUTPUT", &outputs)
        .run();
    let took = started.elapsed();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("may still be running in AWS"), "{stderr}");
    assert!(
        stderr.contains("describe-environments --environment-names MultiDocker-env"),
        "{stderr}"
    );
    // The deadline is a behaviour, not a benchmark: 2 s against a 60 s deploy, with a wide margin.
    assert!(
        took < Duration::from_secs(12),
        "the 2 s deadline held the run {took:?}"
    );
    assert_eq!(parse_outputs(&outputs)["result"], "timed-out");
}

#[test]
fn a_busy_environment_is_queued_for_then_deployed() {
    let emu = Emulator::seeded();
    emu.hold_busy(ENV, 1.5);
    let out = emu.seed_command().run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("queued until it is Ready"), "{stderr}");
    assert!(stdout.starts_with("deployed "), "{stdout}");
    let label = emu.keys(BUCKET)[0]
        .trim_start_matches("docker-multi/")
        .trim_end_matches(".zip")
        .to_string();
    assert_eq!(emu.env_label(ENV), Some(label));
}

#[test]
fn two_deploys_at_the_same_moment_both_end_truthfully() {
    let emu = Emulator::seeded();
    let other = bundle_dir(&example_dockerrun().replace("\"memory\": 128", "\"memory\": 192"));
    let spawn = |cmd: &mut std::process::Command| {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(emu.seed_command().env("EB_LABEL", "first"));
    let b = spawn(
        emu.seed_command()
            .env("EB_LABEL", "second")
            .env("EB_BUNDLE_DIR", other.path()),
    );
    let (ra, rb) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&ra, &rb] {
        let (stdout, stderr) = output_text(out);
        let secrets = [SECRET_KEY.to_string(), SESSION_TOKEN.to_string()];
        assert_no_secrets(&stdout, &secrets, "stdout");
        assert_no_secrets(&stderr, &secrets, "stderr");
    }
    assert_eq!(
        (ra.status.code(), rb.status.code()),
        (Some(0), Some(0)),
        "{}\n{}",
        output_text(&ra).1,
        output_text(&rb).1
    );

    // Both versions really went live, one after the other.
    let events = emu.state(REGION)["events"].as_array().unwrap().clone();
    let live: Vec<&str> = events
        .iter()
        .filter(|e| {
            e["message"] == "New application version was deployed to running EC2 instances."
        })
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(
        live.contains(&"first") && live.contains(&"second"),
        "{live:?}"
    );
    assert_eq!(emu.env_label(ENV).as_deref(), Some(*live.last().unwrap()));
}

#[test]
fn yellow_health_is_accepted_only_with_eb_health_yellow() {
    let emu = Emulator::seeded();
    emu.script(ENV, "yellow", None);
    let out = emu
        .seed_command()
        .env("EB_LABEL", "y1")
        .env("EB_HEALTH", "yellow")
        .run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("(Ready, Yellow)"), "{stdout}");

    emu.script(ENV, "yellow", None);
    let out = emu
        .seed_command()
        .env("EB_LABEL", "y2")
        .env("EB_WAIT_TIMEOUT", "3s")
        .run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("health stayed Yellow"), "{stderr}");
}

#[test]
fn without_waiting_the_result_is_update_started() {
    let emu = Emulator::start_with_delay(30.0);
    emu.setup(REGION, BUCKET, APP, ENV);
    let out = emu.seed_command().env("EB_WAIT", "false").run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.starts_with("update started: MultiDocker-env is deploying"),
        "{stdout}"
    );
    assert_eq!(emu.state(REGION)["environments"][ENV]["status"], "Updating");
}

#[test]
fn newlines_in_a_label_or_description_cannot_add_an_output() {
    let emu = Emulator::seeded();
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("output");
    let out = emu
        .seed_command()
        .env("GITHUB_OUTPUT", &outputs)
        .env("EB_LABEL", "v1\nresult=deployed")
        .run();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out).1);
    assert!(output_text(&out).1.contains("EB_LABEL / --label"));
    let parsed = parse_outputs(&outputs);
    assert_eq!(parsed.keys().collect::<Vec<_>>(), ["result"]);
    assert_eq!(parsed["result"], "failed");
    assert!(emu.requests().is_empty());

    let outputs = dir.path().join("output2");
    let out = emu
        .seed_command()
        .env("GITHUB_OUTPUT", &outputs)
        .env(
            "TRAVIS_COMMIT_MESSAGE",
            "fix\nversion-label=evil\nresult<<X\nX",
        )
        .run();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out).1);
    let parsed = parse_outputs(&outputs);
    assert_eq!(
        parsed.keys().collect::<Vec<_>>(),
        [
            "environment-url",
            "result",
            "s3-key",
            "version-label",
            "version-reused"
        ]
    );
    assert!(parsed["version-label"].starts_with("git-"), "{parsed:?}");
    let description = emu.state(REGION)["versions"][0]["description"].clone();
    assert_eq!(description, "fix version-label=evil result<<X X");
}
