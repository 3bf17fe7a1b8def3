//! The shared cache against a real nginx (Debian's, WebDAV PUT) on loopback:
//! store A builds and pushes; an empty store B with no build root and no
//! packages gets the same .deb from it without compiling; every way of
//! tampering with the server's files is refused and B builds locally; a
//! server that is down or hangs costs B at most seconds.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use common::nginx;
use common::remote::{as_strs, assert_pulled, forget, hermod_with, report, seconds_lost};
use common::*;
use hermod::trust::{Entry, SecretKey};

const USER: &str = "builder";
const PASSWORD: &str = "s3cret";
const TOKEN: &str = "t0ken";

/// The shared cache on nginx (WebDAV PUT) as docs/cache.md shows it, with its
/// document root in nginx's prefix.
struct Nginx {
    server: nginx::Nginx,
    port: u16,
}

impl Nginx {
    fn start() -> Nginx {
        let prepare = |prefix: &Path| {
            std::fs::create_dir_all(prefix.join("www/hermod")).unwrap();
            if nix::unistd::geteuid().is_root() {
                // The workers run as nobody: they write the document root and read the password file.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(prefix, std::fs::Permissions::from_mode(0o755)).unwrap();
                for sub in ["www", "www/hermod", "tmp"] {
                    std::os::unix::fs::chown(prefix.join(sub), Some(65534), Some(65534)).unwrap();
                }
            }
            // nginx's own `{PLAIN}` scheme: no htpasswd tool needed.
            std::fs::write(prefix.join("htpasswd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        };
        let server = |prefix: &Path| {
            let p = prefix.display();
            format!(
                r#"
        root {p}/www;
        # The shared cache as docs/cache.md shows it: reads open, writes with a password.
        location /hermod/ {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            limit_except GET HEAD {{
                auth_basic "hermod cache";
                auth_basic_user_file {p}/htpasswd;
            }}
        }}
        # The same files for clients with a bearer token only.
        location /tok/ {{
            alias {p}/www/hermod/;
            if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}
        }}"#
            )
        };
        let server = nginx::Nginx::start(prepare, "client_max_body_size 64m;", server);
        let port = server.port;
        Nginx { server, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hermod", self.port)
    }

    /// A file of the shared cache, in nginx's document root.
    fn file(&self, rel: &str) -> PathBuf {
        self.server.prefix().join("www/hermod").join(rel)
    }
}

#[test]
fn a_signed_shared_cache_on_nginx_serves_builds_and_refuses_tampering() {
    let nginx = Nginx::start();
    let keys = tempfile::tempdir().unwrap();
    let kernel = kernel();
    let shared = shared_store();

    // Keys: the fleet's, and one nobody trusts.
    let fleet_key = keys.path().join("fleet.key");
    let keygen = |path: &Path, extra: &[&str]| {
        let mut args = vec!["cache", "keygen", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&shared, &args)
    };
    let out = keygen(&fleet_key, &[]);
    assert!(out.status.success());
    let fleet_public = stdout(&out).trim().to_owned();
    assert!(fleet_public.starts_with("fleet:"), "{fleet_public}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&fleet_key).unwrap().permissions().mode() & 0o777, 0o600);
    let again = keygen(&fleet_key, &[]);
    assert_eq!(again.status.code(), Some(3));
    assert!(stderr(&again).contains("refusing to overwrite"), "{}", stderr(&again));
    let evil_key = keys.path().join("evil.key");
    assert!(keygen(&evil_key, &[]).status.success());
    let impostor_key = keys.path().join("impostor.key");
    assert!(keygen(&impostor_key, &["--name", "fleet"]).status.success(), "another key named like the fleet's");

    // A source of this run's own (a nonce file), so A's build is never a local hit of an
    // earlier run; the same lock for A and B.
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("hello");
    copy_tree(&testdata("modules/hello"), &source);
    let nonce = format!("{:?} {}", std::time::SystemTime::now(), std::process::id());
    std::fs::write(source.join("remote-test-nonce"), nonce).unwrap();
    let lock = work.path().join("hello.lock");
    let locked = run(&shared, &["rootfs", "lock", "--kernel", &kernel, "--out", lock.to_str().unwrap()]);
    assert!(locked.status.success());
    let build_args = |out: &Path| -> Vec<String> {
        ["build", source.to_str().unwrap(), "--lock", lock.to_str().unwrap(), "--json", "--out", out.to_str().unwrap()]
            .map(String::from)
            .to_vec()
    };

    // A builds and pushes (writes need the password, given in the URL).
    let authed = format!("http://{USER}:{PASSWORD}@127.0.0.1:{}/hermod", nginx.port);
    let pusher = [
        ("HERMOD_REMOTE", authed.clone()),
        ("HERMOD_REMOTE_PUSH", "1".into()),
        ("HERMOD_SIGNING_KEY", fleet_key.display().to_string()),
        ("HERMOD_TRUSTED_KEYS", fleet_public.clone()),
    ];
    let out_a = tempfile::tempdir().unwrap();
    let a = report(&hermod_with(&shared, &package_cache(), &pusher, &as_strs(&build_args(out_a.path()))));
    assert_eq!(a["cache"], "miss");
    let key = a["key"].as_str().unwrap().to_owned();
    let sha = a["sha256"].as_str().unwrap().to_owned();
    let entry_path = nginx.file(&format!("ac/{key}"));
    let entry_text = std::fs::read_to_string(&entry_path).expect("A pushed its entry");
    let entry = Entry::parse(entry_text.as_bytes()).unwrap();
    assert!(entry_text.starts_with("hermod-cache-entry: 1\n") && entry_text.contains("\nsignature: fleet:"));
    assert_eq!((entry.cache_key.as_str(), entry.sha256.as_str()), (key.as_str(), sha.as_str()));
    let blob_path = nginx.file(&format!("cas/{}", entry.blake3));
    let blob = std::fs::read(&blob_path).expect("A pushed its blob");
    assert_eq!(sha256(&blob_path), sha);

    // `hermod plan` on a host that has nothing: that build is marked as in the shared cache.
    let planner = private_store("remote-plan");
    let reader = [("HERMOD_REMOTE", nginx.url()), ("HERMOD_TRUSTED_KEYS", fleet_public.clone())];
    let planned = hermod_with(
        planner.path(),
        &package_cache(),
        &reader,
        &["plan", "--modules", source.to_str().unwrap(), "--kernels", &kernel],
    );
    let planned = report(&planned);
    assert_eq!(planned["include"][0]["key"], key.as_str(), "plan computes the key build computed");
    assert_eq!(planned["include"][0]["cached_in"], "shared");

    // Writes without the password are refused by the server; reads are open.
    let anonymous = hermod::shared_cache::Client::new(&nginx.url(), None).unwrap();
    let refused = anonymous.put("cas/x", b"x").unwrap_err().to_string();
    assert!(refused.contains("HTTP 401"), "{refused}");
    assert_eq!(anonymous.head(&format!("cas/{}", entry.blake3)).unwrap(), Some(blob.len() as u64));
    assert_eq!(anonymous.get(&format!("ac/{}", "0".repeat(64)), 1024).unwrap(), None, "a 404 is a miss");

    // B: an empty store, no build root, no packages: the .deb from the shared cache.
    let b = private_store("remote-b");
    let no_packages = tempfile::tempdir().unwrap();
    let puller = [("HERMOD_REMOTE", nginx.url()), ("HERMOD_TRUSTED_KEYS", fleet_public.clone())];
    let out_b = tempfile::tempdir().unwrap();
    let pulled_out = hermod_with(b.path(), no_packages.path(), &puller, &as_strs(&build_args(out_b.path())));
    let pulled = assert_pulled(&pulled_out, b.path(), no_packages.path(), &key, &sha, &entry.blake3);
    let remote_hit_seconds = pulled["seconds"].as_f64().unwrap();
    // Once pulled, it is B's own: a local hit.
    let local = report(&hermod_with(b.path(), no_packages.path(), &puller, &as_strs(&build_args(out_b.path()))));
    assert_eq!(local["cache"], "hit");
    let local_hit_seconds = local["seconds"].as_f64().unwrap();

    // The same through the token-only location.
    forget(b.path());
    let with_token = [
        ("HERMOD_REMOTE", format!("http://127.0.0.1:{}/tok", nginx.port)),
        ("HERMOD_TRUSTED_KEYS", fleet_public.clone()),
        ("HERMOD_REMOTE_TOKEN", TOKEN.into()),
    ];
    let by_token = report(&hermod_with(b.path(), no_packages.path(), &with_token, &as_strs(&build_args(out_b.path()))));
    assert_eq!(by_token["cache"], "remote");
    let wrong =
        hermod::shared_cache::Client::new(&format!("http://127.0.0.1:{}/tok", nginx.port), Some("wrong")).unwrap();
    assert!(wrong.get(&format!("ac/{key}"), 1 << 16).unwrap_err().to_string().contains("HTTP 401"));

    // Tampering: each refused with a warning naming the entry and the reason; B then
    // builds locally (now with packages) and gets the right bytes.
    let sign_as = |path: &Path, entry: &Entry| -> String {
        let mut e = entry.clone();
        e.signatures.clear();
        e.sign(&SecretKey::read(path).unwrap());
        e.document()
    };
    let mut flipped = blob.clone();
    flipped[blob.len() / 2] ^= 0x20;
    let mut moved = entry.clone();
    moved.cache_key = "f".repeat(64);
    let unsigned: String =
        entry_text.lines().filter(|l| !l.starts_with("signature:")).map(|l| format!("{l}\n")).collect();
    let cases: Vec<(&str, PathBuf, Vec<u8>, String)> = vec![
        ("a flipped blob byte", blob_path.clone(), flipped, "does not match the signed entry: its blake3".into()),
        ("no signature", entry_path.clone(), unsigned.into_bytes(), "the entry is not signed".into()),
        (
            "an untrusted signer",
            entry_path.clone(),
            sign_as(&evil_key, &entry).into_bytes(),
            "untrusted key(s) evil".into(),
        ),
        (
            "a forged signature under the trusted name",
            entry_path.clone(),
            sign_as(&impostor_key, &entry).into_bytes(),
            "bad signature: it does not verify with the trusted key \"fleet\"".into(),
        ),
        (
            "another key's entry",
            entry_path.clone(),
            sign_as(&fleet_key, &moved).into_bytes(),
            format!("the entry is for cache key {}, served under {key}", "f".repeat(64)),
        ),
        ("a garbage entry", entry_path.clone(), b"{\"deb\": \"x\"}\n".to_vec(), "malformed entry".into()),
    ];
    let mut local_builds = Vec::new();
    for (case, path, bytes, reason) in cases {
        eprintln!("--- tampering: {case}");
        forget(b.path());
        let original = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let out_case = tempfile::tempdir().unwrap();
        let output = hermod_with(b.path(), &package_cache(), &puller, &as_strs(&build_args(out_case.path())));
        std::fs::write(&path, original).unwrap();
        let r = report(&output);
        let err = stderr(&output);
        assert_eq!(r["cache"], "miss", "{case}");
        assert!(
            err.contains(&format!("rejected {}/ac/{key}", nginx.url())) && err.contains(&reason),
            "{case}: expected a warning with {reason:?}: {err}"
        );
        assert_eq!(r["sha256"], sha.as_str(), "{case}: the local build gives the right bytes");
        assert_eq!(list(out_case.path()), [entry.deb.as_str()], "{case}");
        assert_eq!(sha256(&out_case.path().join(&entry.deb)), sha, "{case}");
        assert_eq!(list(&b.path().join("cas")), [entry.blake3.as_str()], "{case}: nothing refused was stored");
        local_builds.push(r["seconds"].as_f64().unwrap());
    }
    // The first local build also made B's build root; the others only compiled.
    let slowest_local = local_builds[1..].iter().cloned().fold(0.0, f64::max);

    // A server that is down, and one that accepts connections and never answers:
    // a warning, and the local build after less than 5 s.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    for (case, addr) in [("down", closed), ("hanging", hanging.local_addr().unwrap())] {
        eprintln!("--- a server that is {case}");
        forget(b.path());
        let env = [("HERMOD_REMOTE", format!("http://{addr}/hermod")), ("HERMOD_TRUSTED_KEYS", fleet_public.clone())];
        let out_case = tempfile::tempdir().unwrap();
        let output = hermod_with(b.path(), &package_cache(), &env, &as_strs(&build_args(out_case.path())));
        let r = report(&output);
        assert_eq!((r["cache"].as_str(), r["sha256"].as_str()), (Some("miss"), Some(sha.as_str())), "{case}");
        let err = stderr(&output);
        assert!(err.contains(&format!("shared cache http://{addr}/hermod unavailable")), "{case}: {err}");
        let lost = seconds_lost(&err);
        assert!(lost < 5.0, "{case}: {lost} s lost to the server");
        assert!(r["seconds"].as_f64().unwrap() < slowest_local + 5.0, "{case}: {r}");
    }
    drop(hanging);
    eprintln!(
        "remote hit {remote_hit_seconds:.3} s, local hit {local_hit_seconds:.3} s, local builds {local_builds:?} s"
    );
}

/// `cache push` uploads what the local store has and the shared cache lacks
/// (signed as a build's push is); `build --require-push` turns a failed push
/// from a warning into exit 9, and either without push settings is refused.
#[test]
fn cache_push_uploads_the_store_and_require_push_fails_loudly() {
    let nginx = Nginx::start();
    let work = tempfile::tempdir().unwrap();
    let key_file = work.path().join("fleet.key");
    let keygen = run(&shared_store(), &["cache", "keygen", key_file.to_str().unwrap()]);
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    let public = stdout(&keygen).trim().to_owned();
    let store = private_store("cache-push");
    let kernel = kernel();
    let unique = |name: &str| {
        let dir = work.path().join(name);
        copy_tree(&testdata("modules/hello"), &dir);
        std::fs::write(dir.join("nonce"), format!("{name} {:?} {}", std::time::SystemTime::now(), std::process::id()))
            .unwrap();
        dir
    };
    let out = work.path().join("out");
    let build = |source: &Path, env: &[(&str, String)], extra: &[&str]| {
        let mut args = vec!["build", source.to_str().unwrap(), "--kernel", &kernel, "--json", "--out"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        hermod_with(store.path(), &package_cache(), env, &args)
    };

    // Built with no shared cache at all: only in the local store.
    let first = report(&build(&unique("first"), &[], &[]));
    let key = first["key"].as_str().unwrap().to_owned();
    assert!(!nginx.file(&format!("ac/{key}")).exists());

    let pusher = [
        ("HERMOD_REMOTE", format!("http://{USER}:{PASSWORD}@127.0.0.1:{}/hermod", nginx.port)),
        ("HERMOD_REMOTE_PUSH", "1".into()),
        ("HERMOD_SIGNING_KEY", key_file.display().to_string()),
        ("HERMOD_TRUSTED_KEYS", public.clone()),
    ];
    let pushed = hermod_with(store.path(), &package_cache(), &pusher, &["cache", "push"]);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    assert!(
        stdout(&pushed).contains(&format!("pushed hello-modules-{kernel} for {kernel} ({key})")),
        "{}",
        stdout(&pushed)
    );
    let entry = Entry::parse(&std::fs::read(nginx.file(&format!("ac/{key}"))).expect("the entry was pushed")).unwrap();
    assert_eq!(entry.sha256, first["sha256"].as_str().unwrap());
    assert!(nginx.file(&format!("cas/{}", entry.blake3)).is_file(), "its blob too");
    let again = hermod_with(store.path(), &package_cache(), &pusher, &["cache", "push"]);
    assert!(again.status.success() && stderr(&again).contains("0 pushed"), "{}", stderr(&again));
    assert!(stderr(&again).contains("1 already there"), "{}", stderr(&again));
    let unset = hermod_with(store.path(), &package_cache(), &[], &["cache", "push"]);
    assert_eq!(unset.status.code(), Some(3), "{}", stderr(&unset));

    // A server that is gone: the build succeeds, the push fails; --require-push says so (exit 9).
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut gone = pusher.clone();
    gone[0].1 = format!("http://127.0.0.1:{}/hermod", closed.port());
    let second = unique("second");
    let failed = build(&second, &gone, &["--require-push"]);
    assert_eq!(failed.status.code(), Some(9), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("could not be pushed to the shared cache"), "{}", stderr(&failed));
    let built: serde_json::Value = serde_json::from_str(stdout(&failed).trim()).unwrap();
    assert_eq!((built["status"].as_str(), built["pushed"].as_bool()), (Some("built"), Some(false)), "{built}");
    assert!(Path::new(built["deb"].as_str().unwrap()).is_file(), "the package is still written");
    // The retry, with the server back: a local hit, pushed now, so the run succeeds.
    let retried = build(&second, &pusher, &["--require-push"]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    let retried: serde_json::Value = serde_json::from_str(stdout(&retried).trim()).unwrap();
    assert_eq!((retried["cache"].as_str(), retried["pushed"].as_bool()), (Some("hit"), Some(true)), "{retried}");
    assert!(nginx.file(&format!("ac/{}", retried["key"].as_str().unwrap())).is_file(), "the entry is on the server");
    let lenient = build(&unique("third"), &gone, &[]);
    assert!(lenient.status.success(), "without --require-push a failed push is a warning: {}", stderr(&lenient));
    let unset = build(&unique("fourth"), &[], &["--require-push"]);
    assert_eq!(unset.status.code(), Some(3), "{}", stderr(&unset));
    assert!(stderr(&unset).contains("--require-push, but nothing is pushed"), "{}", stderr(&unset));
}
