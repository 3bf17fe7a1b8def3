//! Where an `s3://` shared cache finds its endpoint, region and credentials:
//! where the AWS CLI and SDKs look, so a host set up for `aws s3` needs
//! nothing more.
//!
//! - credentials: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with
//!   `AWS_SESSION_TOKEN` if set); else the profile `AWS_PROFILE` (default
//!   `default`) of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
//!   default `~/.aws/credentials`), else of the config file (`AWS_CONFIG_FILE`,
//!   default `~/.aws/config`, sections `[profile NAME]`); else none: requests
//!   go unsigned, which only a public-read bucket answers.
//! - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, config `s3_region`, the
//!   profile's `region` in the config file, else `us-east-1`.
//! - endpoint: `HERMOD_S3_ENDPOINT`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`,
//!   config `s3_endpoint`; else AWS.
//!
//! A place named explicitly (a file variable, `AWS_PROFILE`) that does not
//! hold what it should is an error; a default place that is absent is not.
//! No message ever holds a secret: a malformed line is named by number only.
//! The environment is read through the lookup [`super::Settings::resolve`]
//! is given (only `cli/` reads the process's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::s3::{Credentials, S3Settings};
use super::{RemoteError, S3_ENDPOINT, S3_REGION};
use crate::config::Config;

/// Credential and config files are a few lines.
const MAX_FILE: u64 = 1 << 20;

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A variable's value, trimmed; an empty one counts as unset.
fn var(env: Env, name: &str) -> Option<String> {
    env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn setting(setting: &'static str, why: String) -> RemoteError {
    RemoteError::Setting { setting, why }
}

/// The S3 settings from `env` and `config`.
pub fn resolve(config: &Config, env: Env) -> Result<S3Settings, RemoteError> {
    let endpoint = var(env, S3_ENDPOINT.env)
        .or_else(|| var(env, "AWS_ENDPOINT_URL_S3"))
        .or_else(|| var(env, "AWS_ENDPOINT_URL"))
        .or_else(|| config.s3_endpoint.clone());
    let home = var(env, "HOME").map(PathBuf::from);
    let explicit_profile = var(env, "AWS_PROFILE");
    let profile = explicit_profile.clone().unwrap_or_else(|| "default".into());
    let file = |variable: &'static str, default: &str| -> Result<Option<(PathBuf, String)>, RemoteError> {
        let (path, explicit) = match var(env, variable) {
            Some(path) => (PathBuf::from(path), true),
            None => match &home {
                Some(home) => (home.join(default), false),
                None => return Ok(None),
            },
        };
        if !explicit && !path.exists() {
            return Ok(None);
        }
        crate::bounded::read_user_text(&path, MAX_FILE)
            .map(|text| Some((path.clone(), text)))
            .map_err(|e| setting(variable, format!("cannot read {}: {e}", path.display())))
    };
    let credentials_file = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials")?;
    let config_file = file("AWS_CONFIG_FILE", ".aws/config")?;
    let section = |(path, text): &(PathBuf, String), name: &str, variable: &'static str| {
        sections(text)
            .map_err(|line| setting(variable, format!("{} line {line}: not `key = value`", path.display())))
            .map(|mut all| all.remove(name))
    };
    let from_credentials_file = match &credentials_file {
        Some(f) => section(f, &profile, "AWS_SHARED_CREDENTIALS_FILE")?,
        None => None,
    };
    let config_name = if profile == "default" { profile.clone() } else { format!("profile {profile}") };
    let from_config_file = match &config_file {
        Some(f) => section(f, &config_name, "AWS_CONFIG_FILE")?,
        None => None,
    };

    let credentials = match (var(env, "AWS_ACCESS_KEY_ID"), var(env, "AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Some(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: var(env, "AWS_SESSION_TOKEN"),
            from: "AWS_ACCESS_KEY_ID".into(),
        }),
        (Some(_), None) | (None, Some(_)) => {
            return Err(setting(
                "AWS_ACCESS_KEY_ID",
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: one is set, the other is not".into(),
            ))
        }
        (None, None) => {
            let found = [(&credentials_file, &from_credentials_file), (&config_file, &from_config_file)]
                .into_iter()
                .find_map(|(file, section)| Some((&file.as_ref()?.0, section.as_ref()?)))
                .filter(|(_, section)| {
                    section.contains_key("aws_access_key_id") || section.contains_key("aws_secret_access_key")
                });
            match found {
                Some((path, section)) => Some(from_profile(path, &profile, section)?),
                None if explicit_profile.is_some() && from_credentials_file.is_none() && from_config_file.is_none() => {
                    return Err(setting(
                        "AWS_PROFILE",
                        format!(
                            "no profile {profile:?} in {} or {}",
                            shown(&credentials_file, "~/.aws/credentials"),
                            shown(&config_file, "~/.aws/config")
                        ),
                    ))
                }
                None => None,
            }
        }
    };
    let region = var(env, "AWS_REGION")
        .or_else(|| var(env, "AWS_DEFAULT_REGION"))
        .or_else(|| config.s3_region.clone())
        .or_else(|| from_config_file.as_ref().and_then(|s| s.get("region").cloned()));
    if let Some(region) = &region {
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(setting(S3_REGION.label, format!("{region:?} is not a region name (like eu-west-1)")));
        }
    }
    Ok(S3Settings { endpoint, region, credentials })
}

fn shown(file: &Option<(PathBuf, String)>, default: &str) -> String {
    file.as_ref().map_or(format!("{default} (absent)"), |(path, _)| path.display().to_string())
}

fn from_profile(path: &Path, profile: &str, section: &BTreeMap<String, String>) -> Result<Credentials, RemoteError> {
    let get = |key: &str| section.get(key).filter(|v| !v.is_empty()).cloned();
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: get("aws_session_token"),
            from: format!("{} [{profile}]", path.display()),
        }),
        _ => Err(setting(
            "AWS_PROFILE",
            format!("profile {profile:?} of {} needs both aws_access_key_id and aws_secret_access_key", path.display()),
        )),
    }
}

/// The sections of an INI file (`[name]`, `key = value`, `#`/`;` comments;
/// indented lines continue a nested setting and are skipped): name → keys.
/// A line that is none of these: its number.
fn sections(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, usize> {
    let mut all: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let indented = line.starts_with([' ', '\t']);
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) || indented {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            all.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let (key, value) = line.split_once('=').ok_or(number + 1)?;
        if let Some(section) = &current {
            let keys = all.entry(section.clone()).or_default();
            keys.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |var: &str| pairs.iter().find(|(k, _)| *k == var).map(|(_, v)| v.clone())
    }

    #[test]
    fn credentials_region_and_endpoint_from_the_usual_places() {
        let home = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "# comment\n[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\n\n\
             [ci]\naws_access_key_id=AKIDCI\naws_secret_access_key=cisecret\naws_session_token=citoken\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            "[default]\nregion = eu-central-1\n[profile ci]\nregion = eu-north-1\ns3 =\n  addressing_style = path\n\
             [profile only-config]\naws_access_key_id = AKIDCONF\naws_secret_access_key = confsecret\n",
        )
        .unwrap();
        let config = Config::default();
        let h = || ("HOME", home.path().display().to_string());
        let resolve = |pairs: Vec<(&'static str, String)>| resolve(&config, &env_of(pairs));

        let s = resolve(vec![h()]).unwrap();
        let c = s.credentials.unwrap();
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str()), ("AKIDFILE", "filesecret"));
        assert!(c.from.ends_with(".aws/credentials [default]"), "{}", c.from);
        assert_eq!((s.region.as_deref(), s.endpoint), (Some("eu-central-1"), None));

        let s = resolve(vec![h(), ("AWS_PROFILE", "ci".into())]).unwrap();
        let c = s.credentials.unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token.as_deref()), ("AKIDCI", Some("citoken")));
        assert_eq!(s.region.as_deref(), Some("eu-north-1"));
        let s = resolve(vec![h(), ("AWS_PROFILE", "only-config".into())]).unwrap();
        assert_eq!(s.credentials.unwrap().access_key_id, "AKIDCONF");

        // The environment wins over the files.
        let s = resolve(vec![
            h(),
            ("AWS_ACCESS_KEY_ID", "AKIDENV".into()),
            ("AWS_SECRET_ACCESS_KEY", "envsecret".into()),
            ("AWS_REGION", "us-west-2".into()),
            ("AWS_DEFAULT_REGION", "ap-south-1".into()),
            ("HERMOD_S3_ENDPOINT", "http://127.0.0.1:9000".into()),
            ("AWS_ENDPOINT_URL", "http://other:9000".into()),
        ])
        .unwrap();
        assert_eq!(s.credentials.unwrap().from, "AWS_ACCESS_KEY_ID");
        assert_eq!((s.region.as_deref(), s.endpoint.as_deref()), (Some("us-west-2"), Some("http://127.0.0.1:9000")));
        let s = resolve(vec![("AWS_ENDPOINT_URL", "http://other:9000".into())]).unwrap();
        assert_eq!((s.endpoint.as_deref(), s.credentials, s.region), (Some("http://other:9000"), None, None));

        // Config keys come after the environment, before ~/.aws/config.
        let file = Config::parse("s3_endpoint = \"http://minio:9000\"\ns3_region = \"garage\"\n", Path::new("c.toml"))
            .unwrap();
        let s = super::resolve(&file, &env_of(vec![h()])).unwrap();
        assert_eq!((s.endpoint.as_deref(), s.region.as_deref()), (Some("http://minio:9000"), Some("garage")));

        // Errors name the setting and never a secret.
        let errors = [
            (
                vec![h(), ("AWS_ACCESS_KEY_ID", "AKID".into())],
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together",
            ),
            (vec![h(), ("AWS_PROFILE", "nope".into())], "no profile \"nope\""),
            (vec![h(), ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/creds".into())], "cannot read /nonexistent/creds"),
            (vec![h(), ("AWS_REGION", "eu west".into())], "not a region name"),
        ];
        for (env, why) in errors {
            let e = resolve(env).unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
        std::fs::write(aws.join("broken"), "[default]\naws_secret_access_key: leaked\n").unwrap();
        let broken = ("AWS_SHARED_CREDENTIALS_FILE", aws.join("broken").display().to_string());
        let e = resolve(vec![h(), broken]).unwrap_err().to_string();
        assert!(e.contains("broken line 2: not `key = value`") && !e.contains("leaked"), "{e}");
        std::fs::write(aws.join("half"), "[default]\naws_access_key_id = AKID\n").unwrap();
        let half = ("AWS_SHARED_CREDENTIALS_FILE", aws.join("half").display().to_string());
        let e = resolve(vec![h(), half]).unwrap_err().to_string();
        assert!(e.contains("needs both aws_access_key_id and aws_secret_access_key"), "{e}");

        // No home, no variables: anonymous, AWS, the default region.
        assert_eq!(resolve(vec![]).unwrap(), S3Settings::default());
    }
}
