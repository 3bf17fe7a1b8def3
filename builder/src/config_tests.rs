//! Tests for [`super`] (`config.rs`).

use super::*;

const FULL: &str = r#"
use_system_sources = false
local_debs = ["/srv/debs"]

[[sources]]
uri = "http://snapshot.debian.org/archive/debian/20250520T000000Z/"
suites = ["bookworm", "bookworm-updates"]
components = ["main"]
signed_by = "/usr/share/keyrings/debian-archive-keyring.gpg"
check_valid_until = false

[[sources]]
uri = "file:/srv/mirror"
suites = ["bookworm"]
components = ["main", "contrib"]
signed_by = ["/a.gpg", "/b.asc"]
architectures = ["amd64"]
"#;

#[test]
fn sources_local_dirs_and_mirrors() {
    let config = Config::parse(FULL, Path::new("/etc/hermod/config.toml")).unwrap();
    let sources = config.package_sources().unwrap();
    let got: Vec<(&str, &str)> = sources.archives.iter().map(|s| (s.uri.as_str(), s.suite.as_str())).collect();
    let snapshot = "http://snapshot.debian.org/archive/debian/20250520T000000Z";
    assert_eq!(got, [(snapshot, "bookworm"), (snapshot, "bookworm-updates"), ("file:/srv/mirror", "bookworm")]);
    assert!(!sources.archives[0].check_valid_until && sources.archives[2].check_valid_until);
    assert_eq!(sources.archives[2].signed_by, SignedBy::Keyrings(vec!["/a.gpg".into(), "/b.asc".into()]));
    assert!(!sources.archives[2].serves("arm64"));
    assert_eq!(sources.local_dirs, [PathBuf::from("/srv/debs")]);
    assert_eq!(sources.mirrors(), [snapshot, "file:/srv/mirror", "file:/srv/debs"]);
}

#[test]
fn defaults_use_the_system_sources() {
    let config = Config::parse("", Path::new("c.toml")).unwrap();
    assert!(config.use_system_sources && config.sources.is_empty() && config.local_debs.is_empty());
    let missing = Config::load(Some(Path::new("/nonexistent/hermod.toml"))).unwrap_err().to_string();
    assert!(missing.starts_with("cannot read config file /nonexistent/hermod.toml"), "{missing}");
}

#[test]
fn input_limits_are_read() {
    let config =
        Config::parse("[input_limits]\nmax_unpacked_size = \"2G\"\nmax_entries = 10\n", Path::new("c")).unwrap();
    assert_eq!(config.input_limits.max_unpacked_size, 2 << 30);
    assert_eq!(config.input_limits.max_entries, 10);
    assert_eq!(config.input_limits.max_file_size, InputLimits::default().max_file_size);
    assert_eq!(Config::parse("", Path::new("c")).unwrap().input_limits, InputLimits::default());
    let e = Config::parse("[input_limits]\nmax_size = 1\n", Path::new("c")).unwrap_err().to_string();
    assert!(e.contains("unknown field `max_size`"), "{e}");
}

#[test]
fn mistakes_are_named() {
    let cases = [
        ("use_sytem_sources = false", "unknown field `use_sytem_sources`"),
        (
            "[[sources]]\nuri = \"http://x\"\nsuites = [\"s\"]\ncomponents = [\"main\"]\nsigned-by = \"/k\"",
            "unknown field `signed-by`",
        ),
        ("use_system_sources = \"no\"", "invalid type"),
        ("local_debs = [\"debs\"]", "local_debs: debs is not an absolute path"),
        (
            "[[sources]]\nuri = \"ftp://x\"\nsuites = [\"s\"]\ncomponents = [\"main\"]",
            "sources[0] (ftp://x): uri must start with",
        ),
        ("[[sources]]\nuri = \"http://x\"\nsuites = []\ncomponents = [\"main\"]", "at least one suite"),
        (
            "[[sources]]\nuri = \"http://x\"\nsuites = [\"s\"]\ncomponents = [\"main\"]\nsigned_by = \"k.gpg\"",
            "not an absolute keyring path",
        ),
        ("[[sources]]\nuri = \"http://x\"\ncomponents = [\"main\"]", "missing field `suites`"),
    ];
    for (text, message) in cases {
        let e = Config::parse(text, Path::new("/etc/hermod/config.toml")).unwrap_err().to_string();
        assert!(e.starts_with("config file /etc/hermod/config.toml: ") && e.contains(message), "{text}: {e}");
    }
}

#[test]
fn fleet_settings() {
    let text = r#"
role = "master"
wanted = ["pkg:v4l2loopback-dkms", { source = "/usr/src/hello-0.1", package = "hello" }, { package = "vendor" }]
state_dir = "/srv/hermod-state"
[repository]
uri = "http://master.example/hermod/"
signed_by = "/etc/apt/keyrings/hermod.asc"
"#;
    let config = Config::parse(text, Path::new("/etc/hermod/config.toml")).unwrap();
    assert_eq!(config.role, Role::Master);
    let wanted: Vec<(Option<&str>, Option<&str>)> = config.wanted.iter().map(|w| (w.source(), w.package())).collect();
    assert_eq!(
        wanted,
        [(Some("pkg:v4l2loopback-dkms"), None), (Some("/usr/src/hello-0.1"), Some("hello")), (None, Some("vendor"))]
    );
    let source = config.repository_source().unwrap();
    assert_eq!((source.uri.as_str(), source.suite.as_str()), ("http://master.example/hermod", "hermod"));
    assert_eq!(source.components, ["main"]);
    assert_eq!(source.signed_by, SignedBy::Keyrings(vec!["/etc/apt/keyrings/hermod.asc".into()]));
    assert_eq!(Config::parse("", Path::new("c")).unwrap().role, Role::Farm);
}

#[test]
fn master_settings() {
    let text = r#"
flavours = ["amd64", "cloud-*"]
[publish]
dir = "/srv/hermod/repo"
sign_key = "/etc/hermod/repo.key"
"#;
    let config = Config::parse(text, Path::new("/etc/hermod/config.toml")).unwrap();
    assert_eq!(config.flavours.as_deref(), Some(&["amd64".to_owned(), "cloud-*".to_owned()][..]));
    let publish = config.publish.unwrap();
    assert_eq!(publish.dir, Path::new("/srv/hermod/repo"));
    assert_eq!((publish.suite.as_str(), publish.component.as_str()), ("hermod", "main"));
    assert_eq!(publish.sign_key.as_deref(), Some(Path::new("/etc/hermod/repo.key")));
    assert!(Config::parse("", Path::new("c")).unwrap().publish.is_none());
}

#[test]
fn fleet_mistakes_are_named() {
    let cases = [
        ("role = \"builder\"", "unknown variant `builder`"),
        ("wanted = [{ }]", "wanted[0]: names neither a source nor a package"),
        ("wanted = [{ package = \"Bad Name\" }]", "is not a Debian package name"),
        ("state_dir = \"var/lib\"", "state_dir: var/lib is not an absolute path"),
        ("[repository]\nuri = \"ftp://x\"\nsigned_by = \"/k.asc\"", "repository (ftp://x): uri must start with"),
        ("[repository]\nuri = \"file:/r\"\nsigned_by = \"k.asc\"", "signed_by k.asc is not an absolute path"),
        ("[repository]\nuri = \"file:/r\"", "missing field `signed_by`"),
        ("[repository]\nuri = \"file:/r\"\nsuite = \"a b\"\nsigned_by = \"/k\"", "\"a b\" is not a suite"),
        ("[publish]\ndir = \"srv/repo\"", "publish: dir srv/repo is not an absolute path"),
        ("[publish]\ndir = \"/srv/repo\"\nsign_key = \"k.key\"", "publish: sign_key k.key is not an absolute path"),
        ("[publish]\ndir = \"/srv/repo\"\ncomponent = \"a/b\"", "publish: \"a/b\" is not a suite"),
        ("[publish]\nsuite = \"x\"", "missing field `dir`"),
        ("flavours = [\"amd64,cloud-amd64\"]", "flavours: \"amd64,cloud-amd64\" is not a kernel flavour"),
    ];
    for (text, message) in cases {
        let e = Config::parse(text, Path::new("/etc/hermod/config.toml")).unwrap_err().to_string();
        assert!(e.contains(message), "{text}: {e}");
    }
}
