use clap::Parser;
use eb_deploy::{ci, cli::Cli, report, settings::Settings};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("eb_deploy=info")),
        )
        .init();

    let var = |name: &str| std::env::var(name).ok();
    let settings = match Settings::from_cli(cli, &var) {
        Ok(settings) => settings,
        Err(err) => {
            report::print_error(&err, None);
            return ExitCode::from(err.exit_code());
        }
    };
    let output = settings.output;
    let build = ci::detect(&var, std::path::Path::new("."));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(eb_deploy::run(settings, build, &var)) {
        Ok(outcome) => {
            report::print(&outcome, output);
            ExitCode::SUCCESS
        }
        Err(err) => {
            report::print_error(&err, Some(output));
            ExitCode::from(err.exit_code())
        }
    }
}
