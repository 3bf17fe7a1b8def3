//! The shared cache's settings: each an environment variable and a config
//! file key; the environment wins. An `s3://` remote also reads the AWS
//! variables and files ([`super::aws`]).

use std::path::PathBuf;

use super::s3::S3Settings;
use super::{RemoteError, Setting, REMOTE, REMOTE_PUSH, REMOTE_TOKEN, SIGNING_KEY, TRUSTED_KEYS};
use crate::config::Config;

/// The shared-cache settings, from the environment and the config file
/// (the environment wins; an empty variable unsets the file's value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub url: Option<String>,
    pub push: bool,
    pub signing_key: Option<PathBuf>,
    pub trusted_keys: Vec<String>,
    pub token: Option<String>,
    /// Endpoint, region and credentials of an `s3://` remote (default for others).
    pub s3: S3Settings,
}

impl Settings {
    /// Resolve from `env` (a lookup, so tests need not touch the process environment).
    pub fn resolve(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, RemoteError> {
        let text = |setting: Setting, from_config: Option<String>| match env(setting.env) {
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v.trim().to_owned()),
            None => from_config,
        };
        let push = match env(REMOTE_PUSH.env) {
            None => config.remote_push.unwrap_or(false),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "" | "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(RemoteError::Setting {
                        setting: REMOTE_PUSH.label,
                        why: format!("{v:?} is not 1 or 0 (or true/false, yes/no, on/off)"),
                    })
                }
            },
        };
        let trusted_keys = match env(TRUSTED_KEYS.env) {
            Some(v) => v.split(',').map(str::to_owned).collect(),
            None => config.trusted_keys.as_ref().map(|k| k.items()).unwrap_or_default(),
        };
        let url = text(REMOTE, config.remote.clone());
        // The AWS files are read only for an S3 remote.
        let s3 = match &url {
            Some(url) if url.starts_with("s3://") => super::aws::resolve(config, env)?,
            _ => S3Settings::default(),
        };
        Ok(Settings {
            url,
            push,
            signing_key: text(SIGNING_KEY, config.signing_key.as_ref().map(|p| p.display().to_string()))
                .map(PathBuf::from),
            trusted_keys,
            token: text(REMOTE_TOKEN, config.remote_token.clone()),
            s3,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |var: &str| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }

    #[test]
    fn settings_from_env_and_config() {
        let config = Config::parse(
            "remote = \"http://cache:8080\"\nremote_push = true\nsigning_key = \"/etc/hermod/cache.key\"\n\
             trusted_keys = [\"a:AAAA\", \"b:BBBB\"]\nremote_token = \"t\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let from_file = Settings::resolve(&config, &env_of(&[])).unwrap();
        assert_eq!(from_file.url.as_deref(), Some("http://cache:8080"));
        assert!(from_file.push);
        assert_eq!(from_file.trusted_keys, ["a:AAAA", "b:BBBB"]);
        assert_eq!(from_file.signing_key, Some(PathBuf::from("/etc/hermod/cache.key")));
        assert_eq!(from_file.token.as_deref(), Some("t"));

        let env = env_of(&[
            ("HERMOD_REMOTE", "http://other"),
            ("HERMOD_REMOTE_PUSH", "0"),
            ("HERMOD_TRUSTED_KEYS", "c:CCCC,d:DDDD"),
            ("HERMOD_REMOTE_TOKEN", ""),
        ]);
        let from_env = Settings::resolve(&config, &env).unwrap();
        assert_eq!(from_env.url.as_deref(), Some("http://other"));
        assert!(!from_env.push);
        assert_eq!(from_env.trusted_keys, ["c:CCCC", "d:DDDD"]);
        assert_eq!(from_env.token, None, "an empty variable unsets the file's value");

        let e = Settings::resolve(&config, &env_of(&[("HERMOD_REMOTE_PUSH", "maybe")])).unwrap_err().to_string();
        assert!(e.starts_with("HERMOD_REMOTE_PUSH (config: remote_push): \"maybe\" is not 1 or 0"), "{e}");
        let one_string = Config::parse("trusted_keys = \"a:AAAA, b:BBBB\"", Path::new("c.toml")).unwrap();
        assert_eq!(Settings::resolve(&one_string, &env_of(&[])).unwrap().trusted_keys.len(), 2);
        assert!(Config::parse("remote_pus = true", Path::new("c.toml")).is_err(), "unknown keys are refused");
    }
}
