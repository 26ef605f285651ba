use clap::Parser;
use eb_deploy::{ci, cli::Cli, github::GitHub, report, secrets, settings::Settings};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    eb_deploy::aws::prefer_ca_bundle_file();
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_writer(secrets::RedactingStderr)
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("eb_deploy=info")),
        )
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
