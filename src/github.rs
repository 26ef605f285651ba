//! GitHub Actions: step outputs, the step summary, log groups and error annotations.

use crate::report::Outcome;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

static ACTIONS: AtomicBool = AtomicBool::new(false);

/// Where GitHub Actions wants to hear from us.
#[derive(Debug, Clone, Default)]
pub struct GitHub {
    pub output: Option<PathBuf>,
    pub summary: Option<PathBuf>,
}

impl GitHub {
    /// Reads GITHUB_ACTIONS, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY; turns workflow commands on when in
    /// Actions.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> GitHub {
        ACTIONS.store(
            var("GITHUB_ACTIONS").is_some_and(|v| v == "true"),
            Ordering::Relaxed,
        );
        let path = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        GitHub {
            output: path("GITHUB_OUTPUT"),
            summary: path("GITHUB_STEP_SUMMARY"),
        }
    }

    /// Writes the step outputs and the summary for this run's end.
    pub fn publish(&self, outcome: Option<&Outcome>, result: &str) -> io::Result<()> {
        if let Some(path) = &self.output {
            let text = outputs(outcome, result, &delimiter());
            append(path, &text)?;
        }
        if let (Some(path), Some(outcome)) = (&self.summary, outcome) {
            append(path, &summary(outcome, result))?;
        }
        Ok(())
    }
}

/// True when workflow commands (`::group::`, `::error::`) should be printed.
pub fn in_actions() -> bool {
    ACTIONS.load(Ordering::Relaxed)
}

/// Opens a collapsible log group in Actions.
pub fn group(title: &str) {
    if in_actions() {
        eprintln!("::group::{}", escape(title));
    }
}

/// Closes the log group.
pub fn end_group() {
    if in_actions() {
        eprintln!("::endgroup::");
    }
}

/// Escapes a workflow command's message: %, CR and LF would otherwise end it or forge another.
pub fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn append(path: &PathBuf, text: &str) -> io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// A delimiter no value can guess: 128 random bits.
fn delimiter() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // No /dev/urandom (an empty container root): time and pid still differ per run.
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        use sha2::Digest;
        bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes())[..16]);
    }
    format!("ghadelimiter_{}", crate::bundle::hex(&bytes))
}

/// The step outputs in the heredoc form `name<<DELIM\nvalue\nDELIM`, so a value holding a newline
/// stays one value.
fn outputs(outcome: Option<&Outcome>, result: &str, delimiter: &str) -> String {
    let mut pairs: Vec<(&str, String)> = vec![("result", result.to_string())];
    if let Some(o) = outcome {
        pairs.push(("version-label", o.label.clone().unwrap_or_default()));
        pairs.push(("s3-key", o.s3_key.clone().unwrap_or_default()));
        pairs.push((
            "environment-url",
            o.environment_url.clone().unwrap_or_default(),
        ));
        pairs.push(("version-reused", o.version_reused.to_string()));
    }
    pairs
        .into_iter()
        .map(|(name, value)| {
            // A value that contains the delimiter line could end the heredoc early; drop such lines.
            let value: String = value
                .lines()
                .filter(|l| *l != delimiter)
                .collect::<Vec<_>>()
                .join("\n");
            format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
        })
        .collect()
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn summary(o: &Outcome, result: &str) -> String {
    let rows = [
        ("Result", result.to_string()),
        ("Application", o.app.clone()),
        ("Environment", o.environment.clone().unwrap_or_default()),
        ("Version label", o.label.clone().unwrap_or_default()),
        (
            "Bundle",
            o.s3_key
                .as_ref()
                .map(|k| format!("s3://{}/{k}", o.bucket))
                .unwrap_or_default(),
        ),
        (
            "Status / health",
            format!(
                "{} / {}",
                o.status.as_deref().unwrap_or("-"),
                o.health.as_deref().unwrap_or("-")
            ),
        ),
        ("URL", o.environment_url.clone().unwrap_or_default()),
        (
            "Duration",
            format!("{:.1} s", o.duration_ms as f64 / 1000.0),
        ),
    ];
    let mut text = String::from("### eb-deploy\n\n| | |\n|---|---|\n");
    for (name, value) in rows {
        text.push_str(&format!("| {name} | {} |\n", cell(&value)));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_in_a_value_cannot_add_an_output() {
        let text = outputs(None, "failed\nversion-label=evil", "D");
        assert_eq!(text, "result<<D\nfailed\nversion-label=evil\nD\n");
        let forged = outputs(None, "x\nD\nversion-label<<D\nevil", "D");
        assert_eq!(forged.matches("\nD\n").count(), 1, "{forged}");
    }

    #[test]
    fn delimiters_differ() {
        assert_ne!(delimiter(), delimiter());
        assert_eq!(delimiter().len(), "ghadelimiter_".len() + 32);
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a%b\nc\r"), "a%25b%0Ac%0D");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
