//! `hermod key` and `hermod cache …`: glue between the command line and
//! `keyinfo`, `cache_admin` and `trust`.

use super::*;

/// `hermod cache ...`: the work is in `cache_admin`; this is glue.
pub(super) fn cache_command(global: &Global, command: &CacheCommand) -> Result<(), AppError> {
    use crate::cache_admin;
    if let CacheCommand::Keygen { file, name } = command {
        return keygen(file, name.as_deref());
    }
    let store = open_store(global)?;
    match command {
        CacheCommand::Stats { json } => {
            let stats = cache_admin::stats(&store)?;
            if *json {
                println!("{}", serde_json::to_string(&stats).expect("stats serialize"));
            } else {
                print!("{}", cache_admin::stats_text(&stats));
            }
        }
        CacheCommand::Gc { max_size, older_than, dry_run } => {
            let max = match max_size {
                Some(text) => Some(
                    crate::limits::parse_size(text)
                        .map_err(|why| crate::cache::CacheError::BadSize { value: text.clone(), why })?,
                ),
                None => None,
            };
            let older = older_than.map(|days| Duration::from_secs(days * 86400));
            let r = cache_admin::gc(&store, max, older, *dry_run)?;
            let verb = if *dry_run { "would remove" } else { "removed" };
            for what in &r.removed {
                println!("{verb} {what}");
            }
            println!(
                "{}{verb} {} entries and {} blobs ({:.1} MiB); {:.1} MiB left",
                if *dry_run { "dry run: " } else { "" },
                r.entries_removed,
                r.blobs_removed,
                r.bytes_freed as f64 / 1048576.0,
                r.bytes_left as f64 / 1048576.0
            );
            if r.records_removed > 0 {
                println!("removed {} records of failed or skipped builds", r.records_removed);
            }
        }
        CacheCommand::Keygen { .. } => unreachable!("handled above: it needs no store"),
        CacheCommand::Push => {
            let Some(shared) = shared_cache(global)?.filter(|s| s.pushes()) else {
                return Err(crate::shared_cache::RemoteError::Setting {
                    setting: crate::shared_cache::REMOTE_PUSH.label,
                    why: "cache push needs a shared cache to push to: set HERMOD_REMOTE (remote), \
                          HERMOD_REMOTE_PUSH=1 (remote_push = true) and HERMOD_SIGNING_KEY (signing_key)"
                        .into(),
                }
                .into());
            };
            let r = cache_admin::push(&store, &shared)?;
            for what in &r.pushed {
                println!("pushed {what}");
            }
            for what in &r.failed {
                println!("not pushed {what}");
            }
            say::note(format_args!(
                "{} pushed to {}, {} already there, {} failed",
                r.pushed.len(),
                shared.base(),
                r.present,
                r.failed.len()
            ));
            if !r.failed.is_empty() {
                return Err(crate::shared_cache::RemoteError::PushFailed { count: r.failed.len() }.into());
            }
        }
        CacheCommand::Verify => {
            let r = cache_admin::verify(&store)?;
            println!("{} entries verified, {} bad (quarantined; rebuilt on next use)", r.entries_ok, r.bad.len());
            for key in &r.bad {
                println!("  bad: {key}");
            }
            if !r.bad.is_empty() {
                return Err(crate::cache::CacheError::Corrupt { count: r.bad.len() }.into());
            }
        }
    }
    Ok(())
}

/// `hermod cache keygen`: a new signing key for the shared cache (see `trust.rs`).
fn keygen(file: &Path, name: Option<&str>) -> Result<(), AppError> {
    let name = match name {
        Some(name) => name.to_owned(),
        None => crate::trust::name_from_path(file)?,
    };
    let key = crate::trust::SecretKey::generate(&name)?;
    key.write_new(file)?;
    println!("{}", key.public());
    crate::say::note(format_args!(
        "wrote the secret key {} (keep it private; HERMOD_SIGNING_KEY on the hosts that push); \
         trust it with HERMOD_TRUSTED_KEYS={}",
        file.display(),
        key.public()
    ));
    Ok(())
}

/// `hermod key`: compute the key as a build would, without building.
pub(super) fn key_command(global: &Global, args: &KeyArgs) -> Result<(), AppError> {
    use crate::keyinfo::{self, KeyRecord};
    let ctx = Context::new(
        archives(global, args.lock.as_deref())?,
        BuildOptions {
            signing: args.signing.load(global)?,
            ..build_options(global, None, DEFAULT_TIMEOUT, BuildLimits::default())
        },
    );
    let kernel = match &args.kernel {
        Some(k) => k.clone(),
        None => ctx.archives.default_kernel()?,
    };
    let needs = &args.needs.build_depends;
    let input = Input::parse(&args.source)?.prepare(&ctx.archives, &kernel, &args.source, needs)?;
    let source = crate::source::SourceTree::scan(&input.dir)?;
    let lock = ctx.archives.lock_with(&kernel, &input.build_depends)?;
    let overrides = ctx.dkms_overrides(Path::new(&input.label), &source, &lock, &ctx.settings(&lock), &mut None)?;
    let key = ctx.key_for(&source, &lock, &overrides);
    keyinfo::remember(ctx.archives.store(), &key);
    let now = KeyRecord::from(&key);
    let mut stdout = std::io::stdout().lock();
    let text = match &args.against {
        Some(spec) => {
            let before = keyinfo::load(ctx.archives.store(), spec)?;
            let differences = keyinfo::diff(&before, &now);
            if args.json {
                serde_json::json!({"key": now.key, "against": before.key, "differs": differences}).to_string() + "\n"
            } else {
                keyinfo::explain_diff(&before, &now, &differences)
            }
        }
        None if args.json => serde_json::to_string(&now).expect("a key record serializes") + "\n",
        None if args.explain => keyinfo::explain(&now),
        None => format!("{}\n", now.key),
    };
    let _ = stdout.write_all(text.as_bytes());
    Ok(())
}
