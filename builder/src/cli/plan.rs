//! `hermod plan`: the glue between the command line, the pipeline's key
//! computation, the caches and [`crate::plan`]'s renderings.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{archives, build_options, shared_cache, AppError, Global, NeedsArgs, SigningArgs, DEFAULT_TIMEOUT};
use crate::apt::{self, Archive};
use crate::limits::BuildLimits;
use crate::pipeline::{Archives, BuildOptions, Context, PipelineError};
use crate::plan::{self, Cached, Entry, PlanError};
use crate::rootfs::RootfsError;
use crate::source::SourceTree;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Module sources, as `hermod build` takes them: directories holding dkms.conf,
    /// *-dkms .debs, pkg:NAME[=VERSION]
    #[arg(long = "modules", value_name = "SOURCE", num_args = 1.., required = true)]
    pub modules: Vec<String>,
    /// Kernel releases, or `all` (every plain-flavour kernel of every release) or
    /// `all:FLAVOURS` (globs: `all:cloud-amd64`, `all:*`) [default: the newest
    /// linux-headers-amd64 of the machine's own release]
    #[arg(long = "kernels", value_name = "KREL", num_args = 1.., conflicts_with = "kernels_from")]
    pub kernels: Vec<String>,
    /// The kernels an APT repository offers (its linux-image-* and linux-headers-* packages),
    /// given as an apt sources file (deb822 .sources or one-line .list) with its Signed-By;
    /// the headers are still taken from hermod's configured archive
    #[arg(long, value_name = "SOURCES_FILE")]
    pub kernels_from: Option<PathBuf>,
    /// The CI engine the matrix is for
    #[arg(long, value_enum, default_value_t = Format::Github)]
    pub format: Format,
    /// Only the entries no cache holds: what CI must build
    #[arg(long)]
    pub misses_only: bool,
    /// GitLab: the hidden job the generated build jobs extend
    #[arg(long, value_name = "JOB", default_value = ".hermod-build")]
    pub gitlab_extends: String,
    /// GitLab: a project file the child pipeline includes (where that job is defined; repeatable)
    #[arg(long, value_name = "FILE")]
    pub gitlab_include: Vec<String>,
    #[command(flatten)]
    pub needs: NeedsArgs,
    #[command(flatten)]
    pub signing: SigningArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `{"include": [...]}` for `strategy.matrix: ${{ fromJSON(...) }}`
    Github,
    /// A child-pipeline document with `parallel:matrix` jobs
    Gitlab,
}

/// The context keys are computed in, as `hermod build` computes them (the
/// signing certificate and the shared cache included; nothing is built):
/// `plan`'s and `status`'s.
pub(super) fn key_context(global: &Global, signing: &SigningArgs) -> Result<Context, AppError> {
    Ok(Context::new(
        archives(global, None)?,
        BuildOptions {
            signing: signing.load(global)?,
            shared: shared_cache(global)?,
            ..build_options(global, None, DEFAULT_TIMEOUT, BuildLimits::default())
        },
    ))
}

/// `hermod plan`.
pub fn plan(global: &Global, args: &PlanArgs) -> Result<(), AppError> {
    let ctx = key_context(global, &args.signing)?;

    let kernels = kernels(&ctx.archives, args)?;
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut left_out = std::collections::BTreeSet::new();
    let (inputs, pairs) =
        super::prepare_per_release(&ctx.archives, &args.modules, &kernels, &args.needs.build_depends)?;
    let mut scanned: Vec<Option<SourceTree>> = inputs.iter().map(|_| None).collect();
    for (i, kernel) in &pairs {
        let input = &inputs[*i];
        let arg = input.label.as_str();
        seen.insert(arg);
        if scanned[*i].is_none() {
            scanned[*i] = Some(SourceTree::scan(&input.dir)?);
        }
        let source = scanned[*i].as_ref().expect("scanned above");
        match entry(&ctx, arg, input, source, kernel) {
            Ok(entry) => entries.push(entry),
            // A repository's kernel whose headers the archive lacks cannot be
            // built by anyone: said, and left out; a kernel asked for by name fails.
            Err(PipelineError::Rootfs(RootfsError::NoHeaders { .. })) if args.kernels_from.is_some() => {
                left_out.insert(kernel.as_str());
            }
            Err(e) => return Err(e.into()),
        }
    }

    if !left_out.is_empty() {
        let list: Vec<&str> = left_out.iter().copied().collect();
        crate::say::warning(format_args!(
            "{} kernel(s) of --kernels-from left out of the plan: the archive has no headers for them: {}",
            list.len(),
            list.join(", ")
        ));
    }
    let cached = entries.iter().filter(|e| e.cached).count();
    let shared = entries.iter().filter(|e| e.cached_in == Some(Cached::Shared)).count();
    crate::say::note(format_args!(
        "plan: {} builds ({} modules x {} kernels), {cached} cached ({} local, {shared} shared), {} to build",
        entries.len(),
        seen.len(),
        kernels.len() - left_out.len(),
        cached - shared,
        entries.len() - cached
    ));
    if args.misses_only {
        entries.retain(|e| !e.cached);
    }
    let document = match args.format {
        Format::Github => plan::github(&entries)?,
        Format::Gitlab => plan::gitlab(
            &entries,
            &plan::Gitlab { extends: args.gitlab_extends.clone(), include: args.gitlab_include.clone() },
        ),
    };
    // One line: what `echo "matrix=$(hermod plan …)" >> $GITHUB_OUTPUT` needs.
    let mut stdout = std::io::stdout().lock();
    Ok(writeln!(stdout, "{document}")
        .map_err(|source| PipelineError::Io { path: PathBuf::from("<stdout>"), source })?)
}

/// The kernels asked for: `--kernels-from`'s repository, `--kernels` (with
/// `all`), or the default kernel.
fn kernels(archives: &Archives, args: &PlanArgs) -> Result<Vec<String>, AppError> {
    if let Some(file) = &args.kernels_from {
        let arch = &archives.platforms()[0].recipe().architecture;
        let sources = read_sources_file(file)?;
        let archive = Archive::from_sources(&sources, &archives.store().indices(), arch, archives.quiet())?;
        let found = plan::kernels_offered(&archive);
        if found.is_empty() {
            return Err(PlanError::NoKernels { origin: file.display().to_string(), arch: arch.clone() }.into());
        }
        return Ok(found);
    }
    Ok(archives.kernels(&args.kernels)?)
}

/// An apt sources file of either format, its sources with the machine's
/// default keyrings where it names none (as apt reads it).
fn read_sources_file(file: &Path) -> Result<Vec<apt::Source>, PlanError> {
    use apt::sources::{default_keyrings, parse_deb822_file, parse_one_line_file, SourcesError};
    let bad = |error| PlanError::SourcesFile { path: file.to_owned(), error };
    let text = crate::bounded::read_user_text(file, crate::bounded::MAX_USER_FILE)
        .map_err(|source| bad(SourcesError::Read { path: file.to_owned(), source }))?;
    let defaults = default_keyrings(Path::new("/etc/apt")).map_err(bad)?;
    let sources = if file.extension().is_some_and(|e| e == "sources") {
        parse_deb822_file(&text, file, &defaults)
    } else {
        parse_one_line_file(&text, file, &defaults)
    }
    .map_err(bad)?;
    if sources.is_empty() {
        return Err(PlanError::NoSources { path: file.to_owned() });
    }
    Ok(sources)
}

/// One matrix entry: the key `hermod build` would compute, and where its
/// package already is. The local store is only read (no use is recorded).
/// (`status` computes its keys so too.)
pub(super) fn entry(
    ctx: &Context,
    arg: &str,
    input: &crate::input::Prepared,
    source: &SourceTree,
    kernel: &str,
) -> Result<Entry, PipelineError> {
    let lock = ctx.archives.lock_with(kernel, &input.build_depends)?;
    let overrides = ctx.dkms_overrides(Path::new(&input.label), source, &lock, &ctx.settings(&lock), &mut None)?;
    let key = ctx.key_for(source, &lock, &overrides);
    let cached_in = plan::cached_in(ctx, &key.hex, kernel);
    Ok(Entry::new(arg, kernel, &lock.architecture, &key.hex, cached_in))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::Cli;

    /// The `hermod …` command lines of a CI document, with the engine's
    /// expressions (`${{ … }}`, `$VAR`) as placeholders, up to a redirection.
    fn commands(text: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim().trim_start_matches("- ");
            let Some(start) = line.find("hermod ").filter(|&i| i == 0 || line[..i].ends_with("$(")) else {
                continue;
            };
            let mut command = &line[start..];
            if let Some(end) = command.find(['>', '|', ')', ';']) {
                command = &command[..end];
            }
            let mut words = Vec::new();
            let mut rest = command;
            while let Some(open) = rest.find("${{") {
                words.push(rest[..open].to_owned());
                let close = rest[open..].find("}}").expect("a closed expression") + open + 2;
                words.push("PLACEHOLDER".to_owned());
                rest = &rest[close..];
            }
            words.push(rest.to_owned());
            let joined = words.concat().replace('"', "");
            let argv: Vec<String> = joined
                .split_whitespace()
                .map(|w| if w.starts_with('$') { "PLACEHOLDER".to_owned() } else { w.to_owned() })
                .collect();
            out.push(argv);
        }
        out
    }

    #[test]
    fn the_example_pipelines_use_commands_hermod_accepts() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ci");
        let mut seen = std::collections::BTreeSet::new();
        let mut count = 0;
        for name in ["github-actions.yml", "gitlab-ci.yml", "hermod-build.gitlab-ci.yml"] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            for argv in commands(&text) {
                if let Err(e) = Cli::try_parse_from(&argv) {
                    panic!("{name}: `{}` does not parse:\n{e}", argv.join(" "));
                }
                seen.insert(argv[1].clone());
                count += 1;
            }
        }
        assert!(count >= 7, "only {count} hermod commands found");
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["build", "plan", "publish"]);
    }

    #[test]
    fn a_wrong_flag_in_a_pipeline_would_be_caught() {
        let argv = &commands("    - hermod plan --modules m --kernel all > x")[0];
        assert_eq!(argv, &["hermod", "plan", "--modules", "m", "--kernel", "all"]);
        assert!(Cli::try_parse_from(argv).is_err(), "plan takes --kernels, not --kernel");
    }
}
