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
        hermod::say::warning(format_args!("{e}; an interrupted run leaves its staging to the next one"));
    }

    let cli = hermod::cli::Cli::parse();
    hermod::say::set_quiet(cli.global.quiet);
    // -v: the build logs line by line as the sandbox writes them.
    hermod::watch::set_follow(!cli.global.quiet && cli.global.verbose >= 1);
    // hermod's own crates get the asked level; dependencies stay at warn
    // until -vvv (at debug, the OpenPGP crate dumps every packet it parses).
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,hermod=info,hermod_sandbox=info,hermod_hostfs=info",
        (false, 2) => "warn,hermod=debug,hermod_sandbox=debug,hermod_hostfs=debug",
        (false, _) => "debug",
    };
    // Colours only for a terminal, and never with NO_COLOR (https://no-color.org).
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HERMOD_LOG").unwrap_or_else(|_| level.into()))
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .without_time()
        .init();

    if let Err(err) = hermod::cli::run(&cli) {
        hermod::say::failure(format_args!("error: {err}"));
        std::process::exit(hermod::cli::exit_code(&err));
    }
}
