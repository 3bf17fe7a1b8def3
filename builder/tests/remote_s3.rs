//! The shared cache in an S3 bucket, against a real S3-compatible server
//! (s3s-fs, which checks every request's SigV4 signature) on loopback: the
//! same trust and tampering tests as the WebDAV backend's
//! (`remote_cache.rs`). Store A builds and pushes with credentials from the
//! environment; an empty store B with no build root and no packages gets the
//! same .deb with credentials from a shared credentials file, without
//! compiling; every way of tampering with the bucket's objects, a blob that
//! is missing, a wrong secret key (the server answers 403) and a server that
//! is down or hangs are each a warning and a local build with the right bytes.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use common::remote::{as_strs, assert_pulled, forget, hermod_with, report, seconds_lost};
use common::s3::{require_s3s_fs, S3Server};
use common::*;
use hermod::shared_cache::{Client, Credentials, S3Settings};
use hermod::trust::{Entry, SecretKey};

const BUCKET: &str = "fleet-cache";
const REMOTE: &str = "s3://fleet-cache/hermod";

fn credentials(server: &S3Server, secret: &str) -> Option<Credentials> {
    Some(Credentials {
        access_key_id: server.access_key.clone(),
        secret_access_key: secret.into(),
        session_token: None,
        from: "test".into(),
    })
}

#[test]
fn a_signed_shared_cache_in_s3_serves_builds_and_refuses_tampering() {
    if !require_s3s_fs() {
        return;
    }
    let server = S3Server::start(&[BUCKET]);
    let object = |rel: &str| -> PathBuf { server.object(BUCKET, &format!("hermod/{rel}")) };
    let kernel = kernel();
    let shared = shared_store();

    // Keys: the fleet's, one nobody trusts, and another named like the fleet's.
    let keys = tempfile::tempdir().unwrap();
    let keygen = |name: &str, extra: &[&str]| -> (PathBuf, String) {
        let path = keys.path().join(format!("{name}.key"));
        let mut args = vec!["cache", "keygen", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = run(&shared, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        (path, stdout(&out).trim().to_owned())
    };
    let (fleet_key, fleet_public) = keygen("fleet", &[]);
    let (evil_key, _) = keygen("evil", &[]);
    let (impostor_key, _) = keygen("impostor", &["--name", "fleet"]);

    // A source of this run's own (never a local hit of an earlier run); one lock for A and B.
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("hello");
    copy_tree(&testdata("modules/hello"), &source);
    let nonce = format!("{:?} {} s3", std::time::SystemTime::now(), std::process::id());
    std::fs::write(source.join("remote-test-nonce"), nonce).unwrap();
    let lock = work.path().join("hello.lock");
    let locked = run(&shared, &["rootfs", "lock", "--kernel", &kernel, "--out", lock.to_str().unwrap()]);
    assert!(locked.status.success());
    let build_args = |out: &Path| -> Vec<String> {
        ["build", source.to_str().unwrap(), "--lock", lock.to_str().unwrap(), "--json", "--out", out.to_str().unwrap()]
            .map(String::from)
            .to_vec()
    };

    // A builds and pushes, with the credentials in the environment.
    let pusher = [
        ("HERMOD_REMOTE", REMOTE.to_string()),
        ("HERMOD_S3_ENDPOINT", server.endpoint()),
        ("AWS_ACCESS_KEY_ID", server.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key.clone()),
        ("HERMOD_REMOTE_PUSH", "1".into()),
        ("HERMOD_SIGNING_KEY", fleet_key.display().to_string()),
        ("HERMOD_TRUSTED_KEYS", fleet_public.clone()),
    ];
    let out_a = tempfile::tempdir().unwrap();
    let a_out = hermod_with(&shared, &package_cache(), &pusher, &as_strs(&build_args(out_a.path())));
    assert!(!stderr(&a_out).contains(&server.secret_key), "the secret is never printed");
    let a = report(&a_out);
    assert_eq!(a["cache"], "miss");
    let key = a["key"].as_str().unwrap().to_owned();
    let sha = a["sha256"].as_str().unwrap().to_owned();
    let entry_path = object(&format!("ac/{key}"));
    let entry_text = std::fs::read_to_string(&entry_path).expect("A pushed its entry under the prefix");
    let entry = Entry::parse(entry_text.as_bytes()).unwrap();
    assert!(entry_text.contains("\nsignature: fleet:"), "{entry_text}");
    assert_eq!((entry.cache_key.as_str(), entry.sha256.as_str()), (key.as_str(), sha.as_str()));
    let blob_path = object(&format!("cas/{}", entry.blake3));
    let blob = std::fs::read(&blob_path).expect("A pushed its blob");
    assert_eq!(sha256(&blob_path), sha);

    // The server checks signatures: the right key reads, a wrong secret or no
    // signature at all is refused (403), a missing object is a miss.
    let settings = |secret: Option<&str>| S3Settings {
        endpoint: Some(server.endpoint()),
        region: None,
        credentials: secret.and_then(|s| credentials(&server, s)),
    };
    let right = Client::s3(REMOTE, &settings(Some(&server.secret_key))).unwrap();
    assert_eq!(right.head(&format!("cas/{}", entry.blake3)).unwrap(), Some(blob.len() as u64));
    assert_eq!(right.get(&format!("ac/{}", "0".repeat(64)), 1024).unwrap(), None, "a 404 is a miss");
    let wrong_secret = "0".repeat(40);
    let wrong = Client::s3(REMOTE, &settings(Some(&wrong_secret))).unwrap();
    for refused in [
        wrong.get(&format!("ac/{key}"), 1 << 16).unwrap_err().to_string(),
        wrong.put("cas/x", b"x").unwrap_err().to_string(),
        Client::s3(REMOTE, &settings(None)).unwrap().get(&format!("ac/{key}"), 1 << 16).unwrap_err().to_string(),
    ] {
        assert!(refused.contains("HTTP 403"), "{refused}");
        assert!(!refused.contains(&wrong_secret), "{refused}");
    }
    assert!(!object("cas/x").exists(), "a refused PUT wrote nothing");

    // `hermod plan` on a host that has nothing marks the build as in the shared cache.
    let files = tempfile::tempdir().unwrap();
    let credentials_file = files.path().join("credentials");
    std::fs::write(
        &credentials_file,
        format!(
            "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n[fleet]\n\
             aws_access_key_id = {}\naws_secret_access_key = {}\n",
            server.access_key, server.secret_key
        ),
    )
    .unwrap();
    let reader = [
        ("HERMOD_REMOTE", REMOTE.to_string()),
        ("HERMOD_S3_ENDPOINT", server.endpoint()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials_file.display().to_string()),
        ("AWS_PROFILE", "fleet".into()),
        ("HERMOD_TRUSTED_KEYS", fleet_public.clone()),
    ];
    let planner = private_store("remote-s3-plan");
    let planned = hermod_with(
        planner.path(),
        &package_cache(),
        &reader,
        &["plan", "--modules", source.to_str().unwrap(), "--kernels", &kernel],
    );
    let planned = report(&planned);
    assert_eq!(planned["include"][0]["key"], key.as_str(), "plan computes the key build computed");
    assert_eq!(planned["include"][0]["cached_in"], "shared");

    // B: an empty store, no build root, no packages: the .deb from the bucket,
    // with the credentials from the file's profile.
    let b = private_store("remote-s3-b");
    let no_packages = tempfile::tempdir().unwrap();
    let out_b = tempfile::tempdir().unwrap();
    let pulled_out = hermod_with(b.path(), no_packages.path(), &reader, &as_strs(&build_args(out_b.path())));
    assert_pulled(&pulled_out, b.path(), no_packages.path(), &key, &sha, &entry.blake3);
    let local = report(&hermod_with(b.path(), no_packages.path(), &reader, &as_strs(&build_args(out_b.path()))));
    assert_eq!(local["cache"], "hit", "once pulled, it is B's own");

    // Each way the bucket can betray B: a warning naming the entry and the reason,
    // and a local build (now with packages) of the right bytes.
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
    let rejected = |why: &str| format!("rejected {REMOTE}/ac/{key}: {why}");
    // (case, the object, its tampered bytes or None to remove it, the warning)
    let cases: Vec<(&str, PathBuf, Option<Vec<u8>>, String)> = vec![
        (
            "a flipped blob byte",
            blob_path.clone(),
            Some(flipped),
            rejected("the blob does not match the signed entry: its blake3"),
        ),
        (
            "a missing blob",
            blob_path.clone(),
            None,
            format!("{REMOTE}/ac/{key} names blob {} which the server does not have", entry.blake3),
        ),
        ("no signature", entry_path.clone(), Some(unsigned.into_bytes()), rejected("the entry is not signed")),
        (
            "an untrusted signer",
            entry_path.clone(),
            Some(sign_as(&evil_key, &entry).into_bytes()),
            rejected("signed only by untrusted key(s) evil"),
        ),
        (
            "a forged signature under the trusted name",
            entry_path.clone(),
            Some(sign_as(&impostor_key, &entry).into_bytes()),
            rejected("bad signature: it does not verify with the trusted key \"fleet\""),
        ),
        (
            "another key's entry",
            entry_path.clone(),
            Some(sign_as(&fleet_key, &moved).into_bytes()),
            format!("the entry is for cache key {}, served under {key}", "f".repeat(64)),
        ),
        ("a garbage entry", entry_path.clone(), Some(b"{\"deb\": \"x\"}\n".to_vec()), rejected("malformed entry")),
    ];
    for (case, path, bytes, warning) in cases {
        eprintln!("--- tampering: {case}");
        forget(b.path());
        let original = std::fs::read(&path).unwrap();
        match &bytes {
            Some(bytes) => std::fs::write(&path, bytes).unwrap(),
            None => std::fs::remove_file(&path).unwrap(),
        }
        let out_case = tempfile::tempdir().unwrap();
        let output = hermod_with(b.path(), &package_cache(), &reader, &as_strs(&build_args(out_case.path())));
        std::fs::write(&path, original).unwrap();
        let r = report(&output);
        let err = stderr(&output);
        assert_eq!(r["cache"], "miss", "{case}");
        assert!(err.contains(&warning), "{case}: expected a warning with {warning:?}: {err}");
        assert_eq!(r["sha256"], sha.as_str(), "{case}: the local build gives the right bytes");
        assert_eq!(sha256(&out_case.path().join(&entry.deb)), sha, "{case}");
        assert_eq!(list(&b.path().join("cas")), [entry.blake3.as_str()], "{case}: nothing refused was stored");
    }

    // A wrong secret key: the server refuses (403), B warns without printing
    // the secret, and builds locally.
    eprintln!("--- a wrong secret key");
    forget(b.path());
    let mut wrong_env = reader.to_vec();
    wrong_env.retain(|(var, _)| !var.starts_with("AWS_"));
    wrong_env.push(("AWS_ACCESS_KEY_ID", server.access_key.clone()));
    wrong_env.push(("AWS_SECRET_ACCESS_KEY", wrong_secret.clone()));
    let out_case = tempfile::tempdir().unwrap();
    let output = hermod_with(b.path(), &package_cache(), &wrong_env, &as_strs(&build_args(out_case.path())));
    let r = report(&output);
    let err = stderr(&output);
    assert_eq!((r["cache"].as_str(), r["sha256"].as_str()), (Some("miss"), Some(sha.as_str())));
    assert!(
        err.contains(&format!("shared cache {REMOTE} unavailable"))
            && err.contains(&format!("GET {REMOTE}/ac/{key}: the server answered HTTP 403"))
            && err.contains("check the S3 credentials"),
        "{err}"
    );
    assert!(!err.contains(&wrong_secret) && !err.contains(&server.secret_key), "secrets never printed: {err}");

    // A wrong secret on a pusher: its pull before the build is refused (403), so the
    // server is given up on; the build succeeds, nothing is pushed or written.
    let fresh = tempfile::tempdir().unwrap();
    let source2 = fresh.path().join("hello");
    copy_tree(&source, &source2);
    std::fs::write(source2.join("remote-test-nonce"), format!("{key} again")).unwrap();
    let mut bad_pusher = pusher.to_vec();
    bad_pusher.retain(|(var, _)| *var != "AWS_SECRET_ACCESS_KEY");
    bad_pusher.push(("AWS_SECRET_ACCESS_KEY", wrong_secret.clone()));
    let out_case = tempfile::tempdir().unwrap();
    let args = ["build", source2.to_str().unwrap(), "--lock", lock.to_str().unwrap(), "--json", "--out"];
    let mut args: Vec<&str> = args.to_vec();
    args.push(out_case.path().to_str().unwrap());
    let output = hermod_with(&shared, &package_cache(), &bad_pusher, &args);
    let r = report(&output);
    assert_eq!(r["cache"], "miss");
    let err = stderr(&output);
    assert!(err.contains("HTTP 403") && err.contains("not pushing"), "{err}");
    assert!(!object(&format!("ac/{}", r["key"].as_str().unwrap())).exists(), "a refused push wrote no entry");

    // A server that is down, and one that accepts connections and never answers:
    // a warning, and the local build after less than 5 s.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    for (case, addr) in [("down", closed), ("hanging", hanging.local_addr().unwrap())] {
        eprintln!("--- a server that is {case}");
        forget(b.path());
        let mut env = reader.to_vec();
        env.retain(|(var, _)| *var != "HERMOD_S3_ENDPOINT");
        env.push(("HERMOD_S3_ENDPOINT", format!("http://{addr}")));
        let out_case = tempfile::tempdir().unwrap();
        let output = hermod_with(b.path(), &package_cache(), &env, &as_strs(&build_args(out_case.path())));
        let r = report(&output);
        assert_eq!((r["cache"].as_str(), r["sha256"].as_str()), (Some("miss"), Some(sha.as_str())), "{case}");
        let err = stderr(&output);
        assert!(err.contains(&format!("shared cache {REMOTE} unavailable")), "{case}: {err}");
        let lost = seconds_lost(&err);
        assert!(lost < 5.0, "{case}: {lost} s lost to the server");
    }
    drop(hanging);
}

/// Settings that cannot work are refused before anything is built (exit 3):
/// pushing to a bucket without credentials, half a key pair, a profile that
/// does not exist, a malformed s3:// URL.
#[test]
fn s3_settings_that_cannot_work_are_refused() {
    let store = private_store("remote-s3-settings");
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("fleet.key");
    let out = run(store.path(), &["cache", "keygen", key.to_str().unwrap()]);
    let public = stdout(&out).trim().to_owned();
    let base = |more: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut env = vec![("HERMOD_REMOTE", REMOTE.to_string()), ("HERMOD_TRUSTED_KEYS", public.clone())];
        env.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
        env
    };
    let key_path = key.display().to_string();
    let cases: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        (
            base(&[("HERMOD_REMOTE_PUSH", "1"), ("HERMOD_SIGNING_KEY", &key_path)]),
            "pushing to s3://fleet-cache/hermod needs S3 credentials",
        ),
        (base(&[("AWS_ACCESS_KEY_ID", "AKID")]), "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together"),
        (base(&[("AWS_PROFILE", "missing")]), "no profile \"missing\""),
        (
            vec![("HERMOD_REMOTE", "s3://key:secretpw@bucket".into()), ("HERMOD_TRUSTED_KEYS", public.clone())],
            "credentials come from AWS_ACCESS_KEY_ID",
        ),
        (base(&[("HERMOD_S3_ENDPOINT", "ftp://minio")]), "HERMOD_S3_ENDPOINT (config: s3_endpoint)"),
    ];
    for (env, why) in cases {
        let out = hermod_with(store.path(), &package_cache(), &env, &["build", "/nonexistent-source"]);
        assert_eq!(out.status.code(), Some(3), "{why}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{why}: {}", stderr(&out));
        assert!(!stderr(&out).contains("secretpw"), "{}", stderr(&out));
    }
}
