//! End to end: the eb-deploy binary against the emulator (moto S3 + our Beanstalk layer) over HTTP.

mod support;

use serde_json::Value;
use support::*;

/// Asserts a full deploy of the multi-docker example: object, zip content, version, environment.
fn assert_deployed(emu: &Emulator, stdout: &str) -> String {
    let keys = emu.keys(BUCKET);
    assert_eq!(keys.len(), 1, "exactly one object: {keys:?}");
    let key = &keys[0];
    let label = key
        .strip_prefix(&format!("{PATH_PREFIX}/"))
        .and_then(|k| k.strip_suffix(".zip"))
        .unwrap_or_else(|| panic!("key {key} is not {PATH_PREFIX}/<label>.zip"))
        .to_string();
    assert!(stdout.contains(&label), "stdout names the label: {stdout}");

    let (names, dockerrun) = zip_entry(&emu.object(BUCKET, key), "Dockerrun.aws.json");
    assert_eq!(names, ["Dockerrun.aws.json"]);
    assert_eq!(
        dockerrun,
        example_dockerrun().as_bytes(),
        "Dockerrun.aws.json byte for byte"
    );

    let state = emu.state(REGION);
    let versions = state["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0]["label"], label.as_str());
    assert_eq!(versions[0]["bucket"], BUCKET);
    assert_eq!(versions[0]["key"], key.as_str());
    assert_eq!(emu.env_label(ENV).as_deref(), Some(label.as_str()));
    assert_eq!(state["environments"][ENV]["status"], "Ready");
    label
}

#[test]
fn the_travis_seed_deploys_multi_docker() {
    let emu = Emulator::seeded();
    let out = emu.seed_command().run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let label = assert_deployed(&emu, &stdout);
    assert!(label.starts_with("git-6f1e2d3c4b5a-"), "{label}");
    assert!(stdout.starts_with("deployed "), "{stdout}");
    // The Travis-style key names were used to sign.
    assert!(
        emu.requests()
            .iter()
            .all(|r| r["access_key_id"] == "AKIDTRAVISTEST")
    );
}

#[test]
fn github_actions_variables_deploy() {
    let emu = Emulator::seeded();
    let out = emu
        .command()
        .env("AWS_ACCESS_KEY_ID", "AKIDGITHUB")
        .env("AWS_SECRET_ACCESS_KEY", "github-secret")
        .env("AWS_REGION", REGION)
        .args(["--app", APP, "--env", ENV, "--bucket-name", BUCKET])
        .args(["--bucket-path", "/docker-multi/"])
        .arg("--bundle-dir")
        .arg(example())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_EVENT_NAME", "push")
        .env("GITHUB_SHA", "abcdef0123456789abcdef0123456789abcdef01")
        .run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let label = assert_deployed(&emu, &stdout);
    assert!(label.starts_with("git-abcdef012345-"), "{label}");
}

#[test]
fn a_prebuilt_zip_is_uploaded_as_it_is() {
    let emu = Emulator::seeded();
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("app.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        zip.start_file(
            "Dockerrun.aws.json",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        std::io::Write::write_all(&mut zip, example_dockerrun().as_bytes()).unwrap();
        zip.finish().unwrap();
    }
    let out = emu
        .seed_command()
        .env_remove("EB_BUNDLE_DIR")
        .env("EB_ZIP_FILE", &zip_path)
        .run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_deployed(&emu, &stdout);
    let key = &emu.keys(BUCKET)[0];
    assert_eq!(emu.object(BUCKET, key), std::fs::read(&zip_path).unwrap());
}

#[test]
fn other_branches_and_pull_requests_are_skipped_without_any_request() {
    let emu = Emulator::seeded();
    let cases: [(&str, &str, &str); 3] = [
        (
            "TRAVIS_BRANCH",
            "feature-x",
            "branch 'feature-x' is not in EB_BRANCH",
        ),
        ("TRAVIS_PULL_REQUEST", "17", "pull request"),
        ("GITHUB_EVENT_NAME", "pull_request", "pull request"),
    ];
    for (var, value, why) in cases {
        let mut cmd = emu.seed_command();
        if var.starts_with("GITHUB") {
            cmd.env_remove("TRAVIS_BRANCH")
                .env_remove("TRAVIS_PULL_REQUEST")
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_REF", "refs/pull/3/merge");
        }
        let out = cmd.env(var, value).run();
        let (stdout, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{var}={value}: {stderr}");
        assert!(stdout.starts_with("skipped: "), "{stdout}");
        assert!(stdout.contains(why), "{stdout}");
        assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    }
    assert_eq!(emu.requests().len(), 0, "no AWS request at all");
    assert!(emu.keys(BUCKET).is_empty());
    assert_eq!(emu.state(REGION)["versions"].as_array().unwrap().len(), 0);
}

#[test]
fn an_unknown_branch_is_refused_unless_any_branch_may_deploy() {
    let emu = Emulator::seeded();
    let out = emu
        .seed_command()
        .env_remove("TRAVIS_BRANCH")
        .env_remove("TRAVIS_PULL_REQUEST")
        .run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("EB_BRANCH / --branch"), "{stderr}");
    assert_eq!(emu.requests().len(), 0);

    let out = emu
        .seed_command()
        .env_remove("TRAVIS_BRANCH")
        .env_remove("TRAVIS_PULL_REQUEST")
        .env("EB_BRANCH", "*")
        .run();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out).1);
}

#[test]
fn bad_settings_exit_2_name_the_setting_and_write_nothing() {
    let emu = Emulator::seeded();
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("EB_APP", None, "EB_APP / --app"),
        ("EB_APP", Some(""), "EB_APP / --app"),
        ("EB_ENV", None, "EB_ENV / --env"),
        ("EB_ENV", Some("  "), "EB_ENV / --env"),
        ("EB_BUCKET_NAME", None, "EB_BUCKET_NAME / --bucket-name"),
        (
            "EB_BUCKET_NAME",
            Some("Not_A_Bucket"),
            "EB_BUCKET_NAME / --bucket-name",
        ),
        ("EB_REGION", None, "EB_REGION / --region"),
        ("EB_REGION", Some("US East 2"), "EB_REGION / --region"),
        (
            "EB_BUCKET_PATH",
            Some("a/../b"),
            "EB_BUCKET_PATH / --bucket-path",
        ),
        (
            "EB_BUCKET_PATH",
            Some("a//b"),
            "EB_BUCKET_PATH / --bucket-path",
        ),
        ("EB_LABEL", Some("has space"), "EB_LABEL / --label"),
        ("EB_DRY_RUN", Some("maybe"), "EB_DRY_RUN / --dry-run"),
        ("EB_OUTPUT", Some("yaml"), "EB_OUTPUT / --output"),
        (
            "EB_WAIT_TIMEOUT",
            Some("ten minutes"),
            "EB_WAIT_TIMEOUT / --wait-timeout",
        ),
        (
            "EB_BUNDLE_DIR",
            Some("/nonexistent/bundle"),
            "EB_BUNDLE_DIR / --bundle-dir",
        ),
    ];
    for (var, value, expected) in cases {
        let mut cmd = emu.seed_command();
        match value {
            Some(v) => cmd.env(var, v),
            None => cmd.env_remove(var),
        };
        let out = cmd.run();
        let (stdout, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{var}={value:?}: {stderr}");
        assert!(stderr.contains(expected), "{var}={value:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
    // The flag wins over the env var, and flags are checked the same way.
    let out = emu.seed_command().args(["--app", ""]).run();
    assert_eq!(out.status.code(), Some(2));
    assert!(output_text(&out).1.contains("EB_APP / --app"));
    assert_eq!(emu.requests().len(), 0, "no AWS request at all");
}

#[test]
fn bad_bundles_exit_2_name_the_file_container_and_field() {
    let emu = Emulator::seeded();
    let empty = tempfile::tempdir().unwrap();
    let out = emu.seed_command().env("EB_BUNDLE_DIR", empty.path()).run();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        output_text(&out)
            .1
            .contains("Dockerrun.aws.json: not found")
    );

    let base: Value = serde_json::from_str(&example_dockerrun()).unwrap();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut doc = base.clone();
        edit(&mut doc);
        serde_json::to_string_pretty(&doc).unwrap()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            "{\n  \"AWSEBDockerrunVersion\": 2,\n  \"containerDefinitions\": [\n}".into(),
            "line 4 column 1",
        ),
        (
            with(&|d| d["AWSEBDockerrunVersion"] = 7.into()),
            "AWSEBDockerrunVersion must be 1, 2 or 3",
        ),
        (
            with(&|d| d["containerDefinitions"] = serde_json::json!([])),
            "containerDefinitions",
        ),
        (
            with(&|d| d["containerDefinitions"][1]["name"] = "client".into()),
            "name 'client' is used by two",
        ),
        (
            with(&|d| {
                d["containerDefinitions"][2]
                    .as_object_mut()
                    .unwrap()
                    .remove("image");
            }),
            "container 'worker': image",
        ),
        (
            with(&|d| {
                d["containerDefinitions"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("memory");
            }),
            "container 'client': memory or memoryReservation",
        ),
        (
            with(&|d| d["containerDefinitions"][0]["memory"] = 0.into()),
            "container 'client': memory must be",
        ),
        (
            with(&|d| d["containerDefinitions"][0]["memoryReservation"] = 256.into()),
            "container 'client': memory (128) must be greater",
        ),
        (
            with(&|d| d["containerDefinitions"][3]["essential"] = false.into()),
            "no container is essential",
        ),
        (
            with(&|d| d["containerDefinitions"][3]["links"] = serde_json::json!(["client", "api"])),
            "container 'nginx': links names 'api'",
        ),
        (
            with(&|d| {
                d["containerDefinitions"][0]["portMappings"] =
                    serde_json::json!([{"hostPort": 80, "containerPort": 3000}])
            }),
            "hostPort 80 is already used",
        ),
        (
            with(&|d| {
                d["containerDefinitions"][1]["mountPoints"] =
                    serde_json::json!([{"sourceVolume": "logs", "containerPath": "/l"}])
            }),
            "container 'server': mountPoints sourceVolume 'logs'",
        ),
        (
            with(&|d| {
                d["containerDefinitions"][1]["volumesFrom"] =
                    serde_json::json!([{"sourceContainer": "db"}])
            }),
            "container 'server': volumesFrom sourceContainer 'db'",
        ),
    ];
    for (dockerrun, expected) in cases {
        let dir = bundle_dir(&dockerrun);
        let out = emu.seed_command().env("EB_BUNDLE_DIR", dir.path()).run();
        let (_, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{expected}: {stderr}");
        assert!(stderr.contains("Dockerrun.aws.json: "), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert_eq!(emu.requests().len(), 0, "no AWS request at all");
}

#[test]
fn rerunning_the_same_build_reuses_its_version() {
    let emu = Emulator::seeded();
    for run in 0..2 {
        let out = emu.seed_command().run();
        let (stdout, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "run {run}: {stderr}");
        assert_deployed(&emu, &stdout);
        if run == 1 {
            assert!(stdout.contains("version reused"), "{stdout}");
        }
    }
    // The second run's conditional PutObject (If-None-Match: *) is refused: nothing is replaced.
    let puts: Vec<u64> = emu
        .requests()
        .iter()
        .filter(|r| r["operation"] == "PutObject")
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(puts, [200, 412], "one object stored, never overwritten");
}

#[test]
fn an_explicit_label_with_other_content_is_refused_and_the_object_kept() {
    let emu = Emulator::seeded();
    let out = emu.seed_command().env("EB_LABEL", "v1").run();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out).1);
    let key = format!("{PATH_PREFIX}/v1.zip");
    let original = emu.object(BUCKET, &key);

    let changed = example_dockerrun().replace("\"memory\": 128", "\"memory\": 256");
    let dir = bundle_dir(&changed);
    let out = emu
        .seed_command()
        .env("EB_LABEL", "v1")
        .env("EB_BUNDLE_DIR", dir.path())
        .run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("'v1' already exists with different content"),
        "{stderr}"
    );
    assert_eq!(
        emu.object(BUCKET, &key),
        original,
        "the object is untouched"
    );
    assert_eq!(emu.keys(BUCKET).len(), 1);
    assert_eq!(emu.state(REGION)["versions"].as_array().unwrap().len(), 1);
}

#[test]
fn a_dry_run_prints_the_plan_and_sends_nothing() {
    let emu = Emulator::seeded();
    let out = emu.seed_command().arg("--dry-run").run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("dry run: would upload"), "{stdout}");
    assert!(
        stdout.contains(&format!("s3://{BUCKET}/{PATH_PREFIX}/git-6f1e2d3c4b5a-")),
        "{stdout}"
    );
    assert!(stdout.contains(ENV), "{stdout}");

    let out = emu
        .seed_command()
        .env("EB_DRY_RUN", "true")
        .env("EB_OUTPUT", "json")
        .run();
    assert_eq!(out.status.code(), Some(0));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["result"], "dry-run");
    assert_eq!(plan["environment"], ENV);
    assert_eq!(plan["bucket"], BUCKET);
    assert!(
        plan["s3_key"]
            .as_str()
            .unwrap()
            .starts_with("docker-multi/git-")
    );
    assert_eq!(plan["bundle"]["entries"][0]["name"], "Dockerrun.aws.json");
    assert_eq!(plan["bundle"]["sha256"].as_str().unwrap().len(), 64);

    assert_eq!(emu.requests().len(), 0, "no request reached the emulator");
}

#[test]
fn only_create_app_version_leaves_the_environment_alone() {
    let emu = Emulator::seeded();
    let out = emu
        .seed_command()
        .env_remove("EB_ENV")
        .env("EB_ONLY_CREATE_APP_VERSION", "true")
        .run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("environment not updated"), "{stdout}");
    assert_eq!(emu.state(REGION)["versions"].as_array().unwrap().len(), 1);
    assert_eq!(emu.env_label(ENV), None);
    assert!(!emu.operations().iter().any(|o| o == "UpdateEnvironment"));
}

#[test]
fn a_missing_environment_is_exit_3_before_any_upload() {
    let emu = Emulator::seeded();
    let out = emu.seed_command().env("EB_ENV", "NoSuch-env").run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("'NoSuch-env'") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(emu.keys(BUCKET).is_empty(), "nothing uploaded");
}

#[test]
fn a_large_bundle_goes_up_in_parallel_parts() {
    let emu = Emulator::seeded();
    let dir = big_bundle(20);
    let out = emu
        .seed_command()
        .env("EB_BUNDLE_DIR", dir.path())
        .env("EB_OUTPUT", "json")
        .run();
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    let ops = emu.operations();
    let count = |name: &str| ops.iter().filter(|o| *o == name).count();
    assert_eq!(count("CreateMultipartUpload"), 1, "{ops:?}");
    assert_eq!(count("UploadPart"), 3, "20 MiB in 8 MiB parts: {ops:?}");
    assert_eq!(count("CompleteMultipartUpload"), 1);
    assert_eq!(count("PutObject"), 0);
    let bucket = emu.bucket(BUCKET);
    assert_eq!(bucket["multipart_uploads"].as_array().unwrap().len(), 0);
    let object = &bucket["objects"][0];
    assert_eq!(
        object["sha256"], result["bundle"]["sha256"],
        "the object is the bundle, byte for byte"
    );
    assert_eq!(object["size"], result["bundle"]["size"]);
    assert_eq!(emu.env_label(ENV).as_deref(), result["label"].as_str());
}
