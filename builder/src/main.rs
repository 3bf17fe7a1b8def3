//! The hermod binary: parse the command line, run it, map errors to exit codes.

use clap::Parser;

fn main() {
    // The sandbox re-executes this binary to set up its namespaces in a fresh,
    // single-threaded process; that must happen before anything else runs.
    hermod_sandbox::enter_if_requested();

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
