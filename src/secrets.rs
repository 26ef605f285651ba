//! Secrets never reach an output: every known secret value is registered here, and everything eb-deploy
//! writes to stderr (logs at any level, SDK traces included) passes through [`redact`]. In GitHub
//! Actions, secrets we obtain are also masked with `::add-mask::` so the runner hides them too.

use std::io::{self, Write};
use std::sync::Mutex;
use tracing_subscriber::fmt::MakeWriter;

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What replaces a secret.
pub const REDACTED: &str = "***";

/// The env vars whose values are secrets.
pub const SECRET_VARS: [&str; 4] = [
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECRET_KEY",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
];

/// Remembers `secret` so that it is redacted from everything written. Very short values are ignored:
/// redacting them would mangle ordinary text without protecting anything.
pub fn register(secret: &str) {
    if secret.len() < 6 {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Registers the secret env vars' values.
pub fn register_env(var: &dyn Fn(&str) -> Option<String>) {
    for name in SECRET_VARS {
        if let Some(value) = var(name) {
            register(&value);
        }
    }
}

/// Registers `secret` and, in GitHub Actions, asks the runner to mask it in the job log.
pub fn mask(secret: &str) {
    register(secret);
    if crate::github::in_actions() && !secret.is_empty() {
        // The one place a secret is written on purpose: the runner needs it to mask it.
        eprintln!("::add-mask::{secret}");
    }
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// A string that never shows itself in Debug output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps and registers `value`.
    pub fn new(value: String) -> Secret {
        register(&value);
        Secret(value)
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// stderr, with secrets redacted: the writer for logs.
#[derive(Clone, Copy, Default)]
pub struct RedactingStderr;

/// One log record being written; redacted and written to stderr on flush or drop.
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.0.is_empty() {
            let text = redact(&String::from_utf8_lossy(&self.0));
            self.0.clear();
            io::stderr().lock().write_all(text.as_bytes())?;
        }
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line(Vec::with_capacity(256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_redacted_and_debug_hides_them() {
        register("s3cr3t-value-1");
        register("s3cr3t-value-1-longer");
        register("abc");
        assert_eq!(
            redact("a s3cr3t-value-1-longer b s3cr3t-value-1 abc"),
            "a *** b *** abc"
        );
        let secret = Secret::new("token-xyz-123".into());
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(redact("bearer token-xyz-123"), "bearer ***");
    }

    #[test]
    fn the_log_writer_redacts_whole_records() {
        register("writer-secret-42");
        let mut line = RedactingStderr.make_writer();
        line.write_all(b"x writer-").unwrap();
        line.write_all(b"secret-42 y\n").unwrap();
        // Split across writes: redaction happens on the whole record.
        assert_eq!(redact(&String::from_utf8_lossy(&line.0)), "x *** y\n");
        line.0.clear();
    }
}
