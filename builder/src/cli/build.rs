//! `hermod build` (and its `--dry-run`) and `hermod completions`: glue between
//! the command line and the pipeline's builds.

use super::*;
use crate::pipeline::CacheStatus;

/// `hermod build`: every (source, kernel) pair built (or taken from a cache),
/// each outcome printed, the first failure the exit status.
pub(super) fn build(global: &Global, args: &BuildArgs) -> Result<(), AppError> {
    let ctx = Context::new(
        archives(global, args.lock.as_deref())?,
        BuildOptions {
            signing: args.signing.load(global)?,
            shared: shared_cache(global)?,
            ..build_flags(global, args.jobs, args.timeout, &args.limits)?
        },
    );
    if args.require_push && !ctx.options.shared.as_ref().is_some_and(|s| s.pushes()) {
        return Err(crate::shared_cache::RemoteError::Setting {
            setting: crate::shared_cache::REMOTE_PUSH.label,
            why: "--require-push, but nothing is pushed: set HERMOD_REMOTE (remote), HERMOD_REMOTE_PUSH=1 \
                  (remote_push = true) and HERMOD_SIGNING_KEY (signing_key)"
                .into(),
        }
        .into());
    }
    let kernels = ctx.archives.kernels(&args.kernels)?;
    let (inputs, wanted) = prepare_per_release(&ctx.archives, &args.sources, &kernels, &args.needs.build_depends)?;
    let pairs: Vec<(&Prepared, String)> = wanted.into_iter().map(|(i, k)| (&inputs[i], k)).collect();
    if args.dry_run {
        return build_dry_run(&ctx, &pairs, args.json);
    }
    let out = &args.out;
    let mut results =
        if pairs.len() == 1 { vec![ctx.build_one(pairs[0].0, &pairs[0].1, out)] } else { ctx.build_many(&pairs, out) };
    if args.require_push {
        // A local hit may be a build whose push failed before (a CI retry):
        // the shared cache must hold it too.
        for report in results.iter_mut().flatten().filter(|r| r.cache == Some(CacheStatus::Hit)) {
            report.pushed = Some(push_if_missing(&ctx, report));
        }
    }
    // Built here (or found here, with --require-push), and not in the shared cache.
    let unpushed = results.iter().filter(|r| matches!(r, Ok(r) if r.pushed == Some(false))).count();
    let stdout = std::io::stdout();
    let mut first_error = None;
    let failures = results.iter().filter(|r| r.is_err()).count();
    let skipped = results.iter().filter(|r| matches!(r, Ok(r) if r.status == Status::Skipped)).count();
    for ((input, kernel), result) in pairs.iter().zip(results) {
        if args.json {
            // Every (source, kernel) outcome is one object, failures too: CI
            // reports per build from stdout alone.
            let line = match &result {
                Ok(report) => serde_json::json!({ "source": input.label, "report": report }),
                Err(e) => serde_json::json!({
                    "source": input.label,
                    "kernel": kernel,
                    "status": "failed",
                    "exit_code": crate::exit::HasExitCode::exit_code(e).number(),
                    "message": e.to_string(),
                    "log": e.log(),
                }),
            };
            let line = flatten_report(line);
            let _ = writeln!(stdout.lock(), "{line}");
        }
        match result {
            Ok(report) => {
                let line = match (&report.deb, &report.reason) {
                    _ if args.json => continue,
                    (Some(deb), _) => deb.display().to_string(),
                    (None, reason) => format!(
                        "skipped: {} for {}: {}",
                        report.package,
                        report.kernel,
                        reason.as_deref().unwrap_or("excluded by dkms.conf")
                    ),
                };
                let _ = writeln!(stdout.lock(), "{line}");
            }
            // With several builds, each failure is told as it is found; the
            // first decides the exit status (main prints it last).
            Err(e) if first_error.is_none() => first_error = Some(e),
            Err(e) => say::failure(format_args!("error: {e}")),
        }
    }
    if first_error.is_none() && args.require_push && unpushed > 0 {
        return Err(crate::shared_cache::RemoteError::PushFailed { count: unpushed }.into());
    }
    match first_error {
        // Every requested build skipped: nothing built, as DKMS's exit 77 says.
        None if skipped == pairs.len() => {
            let what = if pairs.len() == 1 { "the build was" } else { "every requested build was" };
            Err(PipelineError::Skipped(format!("{what} skipped (dkms.conf's BUILD_EXCLUSIVE_* directives)")).into())
        }
        None => Ok(()),
        Some(e) => {
            if pairs.len() > 1 {
                say::failure(format_args!("{failures} of {} builds failed", pairs.len()));
            }
            Err(e.into())
        }
    }
}

/// The config file, read once per process: every command reads it through here.
/// Whether the shared cache holds `report`'s key, after pushing it from the
/// local store if it did not.
fn push_if_missing(ctx: &Context, report: &crate::pipeline::Report) -> bool {
    let Some(shared) = ctx.options.shared.as_ref() else { return false };
    if shared.holds(&report.key, &report.kernel).is_some() {
        return true;
    }
    match crate::cache::read_entry(ctx.archives.store(), &report.key) {
        Some((manifest, bytes)) => shared.push(&report.key, &manifest, &bytes),
        None => false,
    }
}

/// `build --dry-run`: each (source, kernel)'s key and whether a cache holds
/// it (what `plan` computes), nothing built, nothing written to `--out`.
fn build_dry_run(ctx: &Context, pairs: &[(&Prepared, String)], json: bool) -> Result<(), AppError> {
    let mut stdout = std::io::stdout().lock();
    let io = |source| PipelineError::Io { path: PathBuf::from("<stdout>"), source };
    // Each source tree scanned once, however many kernels it is built for.
    let mut scanned: std::collections::HashMap<&Path, crate::source::SourceTree> = Default::default();
    for (input, kernel) in pairs {
        if !scanned.contains_key(input.dir.as_path()) {
            scanned.insert(&input.dir, crate::source::SourceTree::scan(&input.dir)?);
        }
        let entry = plan::entry(ctx, &input.label, input, &scanned[input.dir.as_path()], kernel)?;
        let what = match entry.cached_in {
            Some(crate::plan::Cached::Local) => "cached (local store)",
            Some(crate::plan::Cached::Shared) => "cached (shared cache)",
            None => "to build",
        };
        let line = if json {
            serde_json::json!({
                "source": entry.source, "kernel": entry.kernel, "architecture": entry.architecture,
                "key": entry.key, "status": if entry.cached { "cached" } else { "to-build" },
                "cached_in": entry.cached_in,
            })
            .to_string()
        } else {
            format!("{} for {}: {what} (key {})", entry.source, entry.kernel, &entry.key[..16])
        };
        writeln!(stdout, "{line}").map_err(io)?;
    }
    Ok(())
}

/// `{"source": S, "report": {…}}` as one flat object: the report's fields
/// beside `source` (a report never has a field of that name).
fn flatten_report(line: serde_json::Value) -> serde_json::Value {
    match line {
        serde_json::Value::Object(mut map) => {
            if let Some(serde_json::Value::Object(report)) = map.remove("report") {
                map.extend(report);
            }
            serde_json::Value::Object(map)
        }
        other => other,
    }
}

/// `hermod completions SHELL`: the completion script clap makes from the grammar.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<(), AppError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "hermod", &mut script);
    let mut stdout = std::io::stdout().lock();
    Ok(stdout.write_all(&script).map_err(|source| PipelineError::Io { path: PathBuf::from("<stdout>"), source })?)
}
