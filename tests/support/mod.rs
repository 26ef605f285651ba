//! Test support: the emulator process (moto + our Beanstalk layer) on 127.0.0.1, a tiny HTTP client
//! for its control endpoints, and the eb-deploy command with a clean environment.
#![allow(dead_code)]

pub mod proxy;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

pub const REGION: &str = "us-east-2";
pub const APP: &str = "multi-docker";
pub const ENV: &str = "MultiDocker-env";
pub const BUCKET: &str = "elasticbeanstalk-us-east-2-761185896481";
pub const PATH_PREFIX: &str = "docker-multi";

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The multi-docker example bundle folder.
pub fn example() -> PathBuf {
    root().join("examples/multi-docker")
}

/// A running emulator; stopped when dropped (and by itself when this process dies: it watches stdin).
pub struct Emulator {
    child: Child,
    _stdin: ChildStdin,
    pub url: String,
    addr: String,
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("EB_EMULATOR_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

impl Emulator {
    /// Starts an emulator whose deploys take `deploy_delay` seconds.
    pub fn start_with_delay(deploy_delay: f64) -> Emulator {
        let mut child = Command::new(python())
            .arg(root().join("tests/emulator/server.py"))
            .args(["--port", "0", "--quiet", "--deploy-delay"])
            .arg(deploy_delay.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the emulator (run scripts/test, which installs it)");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("emulator did not start: {line:?}"))
            .to_string();
        let addr = url.trim_start_matches("http://").to_string();
        Emulator {
            child,
            _stdin: stdin,
            url,
            addr,
        }
    }

    /// Starts an emulator with quick deploys (0.3 s).
    pub fn start() -> Emulator {
        Self::start_with_delay(0.3)
    }

    /// Starts an emulator holding the seed's bucket, application and environment.
    pub fn seeded() -> Emulator {
        let emu = Self::start();
        emu.setup(REGION, BUCKET, APP, ENV);
        emu
    }

    /// Sends a control request; returns status and body.
    pub fn http(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response");
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, raw[split + 4..].to_vec())
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, bytes) = self.http(method, path, body);
        assert!(
            status < 300,
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Creates a bucket, an application and an environment.
    pub fn setup(&self, region: &str, bucket: &str, app: &str, env: &str) {
        self.json(
            "POST",
            "/_emulator/setup",
            Some(&json!({"region": region, "bucket": bucket, "app": app, "env": env})),
        );
    }

    /// Every AWS request the emulator has served, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.json("GET", "/_emulator/requests", None)
            .as_array()
            .unwrap()
            .clone()
    }

    /// The operations of the AWS requests served so far, in order.
    pub fn operations(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r["operation"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// Beanstalk state of `region`: applications, versions, environments, events.
    pub fn state(&self, region: &str) -> Value {
        let all = self.json("GET", &format!("/_emulator/state?region={region}"), None);
        all.get(region).cloned().unwrap_or(json!({
            "applications": [], "versions": [], "environments": {}, "events": []
        }))
    }

    /// The objects of `bucket`: key, size, sha256, metadata; and open multipart uploads.
    pub fn bucket(&self, bucket: &str) -> Value {
        self.json("GET", &format!("/_emulator/s3?bucket={bucket}"), None)
    }

    /// The keys in `bucket`.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.bucket(bucket)["objects"]
            .as_array()
            .map(|objects| {
                objects
                    .iter()
                    .map(|o| o["key"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One object's bytes.
    pub fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        let (status, bytes) = self.http(
            "GET",
            &format!("/_emulator/s3/object?bucket={bucket}&key={key}"),
            None,
        );
        assert_eq!(status, 200, "no object s3://{bucket}/{key}");
        bytes
    }

    /// Scripts the next deploy of `env`: success, fail, rollback, slow, yellow.
    pub fn script(&self, env: &str, outcome: &str, delay: Option<f64>) {
        self.json(
            "POST",
            "/_emulator/script",
            Some(&json!({"region": REGION, "env": env, "outcome": outcome, "delay": delay})),
        );
    }

    /// Holds `env` in Updating for `seconds`, as another deploy would.
    pub fn hold_busy(&self, env: &str, seconds: f64) {
        self.json(
            "POST",
            "/_emulator/busy",
            Some(&json!({"region": REGION, "env": env, "seconds": seconds})),
        );
    }

    /// The seed environment's current version label.
    pub fn env_label(&self, env: &str) -> Option<String> {
        self.state(REGION)["environments"][env]["label"]
            .as_str()
            .map(str::to_string)
    }

    /// eb-deploy with an empty environment but for the emulator endpoint, trace logging, and
    /// known secret values (which [`Run::run`] then looks for in everything written).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eb-deploy"));
        cmd.env_clear()
            .env("AWS_ENDPOINT_URL", &self.url)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", std::env::temp_dir().join("eb-deploy-test-home"))
            .env("RUST_LOG", "trace")
            .current_dir(std::env::temp_dir());
        cmd
    }

    /// The seed's settings (the Travis block), with Travis variables and Travis-style key names.
    pub fn seed_command(&self) -> Command {
        let mut cmd = self.command();
        cmd.env("AWS_ACCESS_KEY", "AKIDTRAVISTEST")
            .env("AWS_SECRET_KEY", SECRET_KEY)
            .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
            .env("EB_REGION", REGION)
            .env("EB_APP", APP)
            .env("EB_ENV", ENV)
            .env("EB_BUCKET_NAME", BUCKET)
            .env("EB_BUCKET_PATH", PATH_PREFIX)
            .env("EB_BRANCH", "master")
            .env("EB_BUNDLE_DIR", example())
            .env("TRAVIS_BRANCH", "master")
            .env("TRAVIS_PULL_REQUEST", "false")
            .env("TRAVIS_COMMIT", "6f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6");
        cmd
    }
}

/// The secret key every seeded run holds; it must never be written anywhere.
pub const SECRET_KEY: &str = "travis-secret-key-wJalrXUtnFEMI";
/// The session token every seeded run holds; it must never be written anywhere.
pub const SESSION_TOKEN: &str = "session-token-FwoGZXIvYXdzEJr";
/// The env vars whose values are secrets, as eb-deploy treats them.
pub const SECRET_VARS: [&str; 4] = [
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECRET_KEY",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
];

/// Fails if any of `secrets` is in `text`, but for `::add-mask::` lines, which exist to carry them.
pub fn assert_no_secrets(text: &str, secrets: &[String], what: &str) {
    for line in text.lines().filter(|l| !l.starts_with("::add-mask::")) {
        for secret in secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a secret leaked into {what}: {line}"
            );
        }
    }
}

/// Running eb-deploy and checking that nothing it wrote holds a secret.
pub trait Run {
    /// Runs to the end; checks stdout, stderr, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY for the values
    /// of the command's secret env vars and any `extra` secrets.
    fn run_with_secrets(&mut self, extra: &[String]) -> std::process::Output;
    /// [`Run::run_with_secrets`] with no extra secrets.
    fn run(&mut self) -> std::process::Output {
        self.run_with_secrets(&[])
    }
}

impl Run for Command {
    fn run_with_secrets(&mut self, extra: &[String]) -> std::process::Output {
        let out = self.output().expect("run eb-deploy");
        let mut secrets: Vec<String> = extra.to_vec();
        let mut files = Vec::new();
        for (name, value) in self.get_envs() {
            let (Some(name), Some(value)) = (name.to_str(), value) else {
                continue;
            };
            if SECRET_VARS.contains(&name) {
                secrets.push(value.to_string_lossy().to_string());
            }
            if name == "GITHUB_OUTPUT" || name == "GITHUB_STEP_SUMMARY" {
                files.push(PathBuf::from(value));
            }
        }
        let (stdout, stderr) = output_text(&out);
        assert_no_secrets(&stdout, &secrets, "stdout");
        assert_no_secrets(&stderr, &secrets, "stderr");
        for file in files {
            if let Ok(text) = std::fs::read_to_string(&file) {
                assert_no_secrets(&text, &secrets, &file.display().to_string());
            }
        }
        out
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The names of the entries of a zip, and the bytes of one of them.
pub fn zip_entry(zip: &[u8], name: &str) -> (Vec<String>, Vec<u8>) {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let names = archive
        .file_names()
        .map(|n| n.unwrap().to_string())
        .collect();
    let mut bytes = Vec::new();
    archive
        .by_name(name)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    (names, bytes)
}

/// A bundle folder holding `dockerrun` as its Dockerrun.aws.json.
pub fn bundle_dir(dockerrun: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerrun.aws.json"), dockerrun).unwrap();
    dir
}

/// stdout and stderr of a finished command, as text.
pub fn output_text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The Dockerrun.aws.json of the multi-docker example.
pub fn example_dockerrun() -> String {
    std::fs::read_to_string(example().join("Dockerrun.aws.json")).unwrap()
}

/// A bundle folder with the example's Dockerrun.aws.json and `mib` MiB of incompressible bytes.
pub fn big_bundle(mib: usize) -> tempfile::TempDir {
    let dir = bundle_dir(&example_dockerrun());
    std::fs::create_dir_all(dir.path().join(".ebextensions")).unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut bytes = Vec::with_capacity(mib << 20);
    while bytes.len() < mib << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(dir.path().join(".ebextensions/assets.bin"), bytes).unwrap();
    dir
}
