//! The hermod binary: parse the command line, run it, map errors to exit codes.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    // The sandbox re-executes this binary to set up its namespaces in a fresh,
    // single-threaded process; that must happen before anything else runs.
    hermod_sandbox::enter_if_requested();
    // Before any thread starts (they inherit the signal mask): SIGINT and
    // SIGTERM then remove this run's staging and cgroups before exiting.
    if let Err(e) = hermod::interrupt::install() {
        eprintln!("hermod: warning: {e}; an interrupted run leaves its staging to the next one");
    }

    let cli = hermod::cli::Cli::parse();
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HERMOD_LOG").unwrap_or_else(|_| level.into()))
        .with_writer(std::io::stderr)
        .without_time()
        .init();

    if let Err(err) = hermod::cli::run(&cli) {
        eprintln!("hermod: error: {err}");
        std::process::exit(hermod::cli::exit_code(&err));
    }
}
