use clap::Parser;
use eb_deploy::{ci, cli::Cli, github::GitHub, report, secrets, settings::Settings};
use std::process::ExitCode;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

fn main() -> ExitCode {
    let cli = Cli::parse();
    eb_deploy::aws::prefer_ca_bundle_file();
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    // RUST_LOG takes `level` or `target=level,...` (no regex filters: that keeps regex out of the binary).
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_target("eb_deploy", tracing::Level::INFO));
    let format = tracing_subscriber::fmt::layer()
        .with_writer(secrets::RedactingStderr)
        .with_ansi(color)
        .with_target(false)
        .without_time();
    tracing_subscriber::registry()
        .with(format.with_filter(filter))
        .init();

    let var = |name: &str| std::env::var(name).ok();
    secrets::register_env(&var);
    let github = GitHub::from_env(&var);
    let settings = match Settings::from_cli(cli, &var) {
        Ok(settings) => settings,
        Err(err) => return ExitCode::from(report::finish(Err(err.into()), None, &github)),
    };
    let output = settings.output;
    let build = ci::detect(&var, std::path::Path::new("."));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let run = runtime.block_on(eb_deploy::run(settings, build, &var));
    ExitCode::from(report::finish(run, Some(output), &github))
}
