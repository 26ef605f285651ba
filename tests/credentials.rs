//! End to end: GitHub OIDC and AssumeRole through moto's STS, secrets kept out of every output,
//! the bucket region check, and input sanitising.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use support::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/eb-deploy";
const OIDC_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm9jdG8vYXBwIn0.c2lnbmF0dXJl";
const REQUEST_TOKEN: &str = "github-request-bearer-7d2f1c";

/// A stand-in for GitHub's token endpoint on 127.0.0.1: answers every request with `status` and
/// `body` (or closes the connection when `body` is None), and records the request lines and headers.
struct TokenEndpoint {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl TokenEndpoint {
    fn start(status: u16, body: Option<String>) -> TokenEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/_apis/distributedtask/token?api-version=2.0",
            listener.local_addr().unwrap()
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                record.lock().unwrap().push(head);
                match &body {
                    Some(body) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    None => {
                        let mut sink = [0u8; 1];
                        let _ = stream.set_nonblocking(true);
                        let _ = stream.read(&mut sink);
                    }
                }
            }
        });
        TokenEndpoint { url, seen }
    }
}

/// A GitHub Actions job with `id-token: write`, the role, and no AWS keys at all.
fn oidc_command(emu: &Emulator, endpoint: &TokenEndpoint) -> std::process::Command {
    let mut cmd = emu.command();
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_EVENT_NAME", "push")
        .env("GITHUB_SHA", "0badc0de0badc0de0badc0de0badc0de0badc0de")
        .env("GITHUB_REPOSITORY", "octo/app")
        .env("GITHUB_RUN_ID", "4242")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &endpoint.url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
        .env("EB_ROLE_ARN", ROLE)
        .env("EB_REGION", REGION)
        .env("EB_APP", APP)
        .env("EB_ENV", ENV)
        .env("EB_BUCKET_NAME", BUCKET)
        .env("EB_BUCKET_PATH", PATH_PREFIX)
        .env("EB_BUNDLE_DIR", example());
    cmd
}

fn identities(emu: &Emulator) -> Vec<Value> {
    let (status, body) = emu.http("GET", "/_emulator/identities", None);
    assert_eq!(status, 200);
    serde_json::from_slice::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn github_oidc_alone_deploys_as_the_assumed_role() {
    let emu = Emulator::seeded();
    let endpoint = TokenEndpoint::start(
        200,
        Some(format!("{{\"count\":1,\"value\":\"{OIDC_TOKEN}\"}}")),
    );
    let out = oidc_command(&emu, &endpoint).run_with_secrets(&[OIDC_TOKEN.to_string()]);
    let (stdout, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("deployed git-0badc0de0bad-"), "{stdout}");

    // GitHub's endpoint was asked for an STS token with the request bearer.
    let seen = endpoint.seen.lock().unwrap().join("\n");
    assert!(seen.contains("&audience=sts.amazonaws.com"), "{seen}");
    assert!(
        seen.to_lowercase()
            .contains(&format!("authorization: bearer {REQUEST_TOKEN}").to_lowercase()),
        "{seen}"
    );

    // STS handed out one session for our role, and every deploy call was signed with it.
    let sessions = identities(&emu);
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = &sessions[0];
    assert_eq!(
        session["arn"],
        "arn:aws:sts::123456789012:assumed-role/eb-deploy/eb-deploy-octo-app-4242"
    );
    let requests = emu.requests();
    assert_eq!(requests[0]["operation"], "AssumeRoleWithWebIdentity");
    assert!(requests.len() > 4);
    for r in &requests[1..] {
        assert_eq!(r["access_key_id"], session["access_key_id"], "{r}");
    }

    // The session's secrets were masked for the runner before anything else, and appear nowhere else.
    let masks: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("::add-mask::"))
        .collect();
    for secret in [
        OIDC_TOKEN,
        session["secret_access_key"].as_str().unwrap(),
        session["session_token"].as_str().unwrap(),
    ] {
        assert!(masks.contains(&secret), "not masked: {masks:?}");
        assert_no_secrets(&stderr, &[secret.to_string()], "stderr");
        assert_no_secrets(&stdout, &[secret.to_string()], "stdout");
    }
    assert_eq!(
        emu.env_label(ENV)
            .map(|l| l.starts_with("git-0badc0de0bad-")),
        Some(true)
    );
}

#[test]
fn token_endpoint_failures_are_exit_3_and_name_the_cause() {
    let cases = [
        (
            403,
            Some("{\"message\":\"forbidden\"}".to_string()),
            "HTTP 403",
        ),
        (
            200,
            Some("<html>not json</html>".to_string()),
            "not JSON with a \"value\"",
        ),
        (200, None, "could not get GitHub's OIDC token"),
    ];
    for (status, body, expected) in cases {
        let emu = Emulator::seeded();
        let endpoint = TokenEndpoint::start(status, body);
        let out = oidc_command(&emu, &endpoint)
            .env("EB_WAIT_TIMEOUT", "30s")
            .run();
        let (_, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(3), "{expected}: {stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(
            emu.requests().is_empty(),
            "no AWS request after a failed token fetch"
        );
    }
}

#[test]
fn a_job_without_id_token_permission_is_told_so() {
    let emu = Emulator::seeded();
    let endpoint = TokenEndpoint::start(200, Some("{}".into()));
    let out = oidc_command(&emu, &endpoint)
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        .run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("permissions: id-token: write"), "{stderr}");
    assert!(emu.requests().is_empty());
}

#[test]
fn a_role_with_ordinary_keys_is_a_plain_assume_role() {
    let emu = Emulator::seeded();
    let out = emu.seed_command().env("EB_ROLE_ARN", ROLE).run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let requests = emu.requests();
    assert_eq!(requests[0]["operation"], "AssumeRole");
    assert_eq!(requests[0]["access_key_id"], "AKIDTRAVISTEST");
    let session = &identities(&emu)[0];
    assert!(
        session["arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:sts::123456789012:assumed-role/eb-deploy/")
    );
    assert!(
        requests[1..]
            .iter()
            .all(|r| r["access_key_id"] == session["access_key_id"])
    );
}

#[test]
fn a_bucket_in_another_region_is_exit_2_before_any_write() {
    let emu = Emulator::seeded();
    emu.setup("eu-west-1", "bundles-in-ireland", "", "");
    let out = emu
        .seed_command()
        .env("EB_BUCKET_NAME", "bundles-in-ireland")
        .run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("EB_BUCKET_NAME / --bucket-name"),
        "{stderr}"
    );
    assert!(
        stderr.contains("eu-west-1") && stderr.contains("us-east-2"),
        "{stderr}"
    );
    assert!(emu.keys("bundles-in-ireland").is_empty());
    assert!(
        !emu.operations()
            .iter()
            .any(|o| o == "PutObject" || o == "CreateApplicationVersion")
    );
}

#[test]
fn labels_and_descriptions_are_sanitised_or_refused_clearly() {
    let emu = Emulator::seeded();
    for label in ["release-🚀", "two\nlines", &"x".repeat(300)] {
        let out = emu.seed_command().env("EB_LABEL", label).run();
        let (_, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("EB_LABEL / --label"), "{stderr}");
        assert!(!stderr.contains("ValidationError"), "{stderr}");
    }
    let out = emu
        .seed_command()
        .env("EB_DESCRIPTION", "d".repeat(300))
        .run();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("EB_DESCRIPTION / --description") && stderr.contains("at most 200"),
        "{stderr}"
    );
    assert!(emu.requests().is_empty());

    let out = emu
        .seed_command()
        .env("EB_LABEL", "d1")
        .env("EB_DESCRIPTION", "ship it 🚀\nwith <xml> & \u{7} bell")
        .run();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out).1);
    let out = emu
        .seed_command()
        .env("EB_LABEL", "d2")
        .env(
            "TRAVIS_COMMIT_MESSAGE",
            format!("{}\n\nbody", "long ".repeat(80)),
        )
        .run();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out).1);
    let versions = emu.state(REGION)["versions"].as_array().unwrap().clone();
    let description = |label: &str| {
        versions.iter().find(|v| v["label"] == label).unwrap()["description"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(description("d1"), "ship it ? with <xml> & bell");
    assert_eq!(description("d2").chars().count(), 200);
    assert!(description("d2").ends_with("..."));
}
