//! A real S3-compatible server on a free loopback port: `s3s-fs`, the S3
//! server of the `s3s` project (crates.io), which keeps each bucket as a
//! directory and each object as a file under it, and checks every request's
//! AWS SigV4 signature against the one access key it is given. `cargo xtask
//! ci` installs it with `cargo install` (xtask/src/setup.rs: why this one);
//! killed when dropped (also when a test panics).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server's binary (`cargo xtask ci` installs it: xtask/src/setup.rs).
pub const S3S_FS: &str = "s3s-fs";

pub struct S3Server {
    child: Child,
    pub port: u16,
    root: tempfile::TempDir,
    pub access_key: String,
    pub secret_key: String,
}

/// Where `cargo xtask ci` installs the test tools that are no Debian
/// package (`HERMOD_TEST_TOOLS`, default /var/cache/hermod-test/tools, kept
/// across runs like the package cache).
pub fn test_tools() -> PathBuf {
    std::env::var_os("HERMOD_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/hermod-test/tools"))
}

/// The s3s-fs binary: the test tools' or one on PATH.
pub fn s3s_fs() -> Option<PathBuf> {
    let installed = test_tools().join("bin").join(S3S_FS);
    installed.is_file().then_some(installed).or_else(|| super::tool_path(S3S_FS))
}

/// Whether s3s-fs is installed; if not, like [`super::require_tool`]: a
/// panic under `HERMOD_TEST_REQUIRE_TOOLS`, else `skipped:` and false.
pub fn require_s3s_fs() -> bool {
    s3s_fs().is_some()
        || super::skip_or_panic(&format!(
            "{S3S_FS} in {}/bin or on PATH (`cargo xtask ci` installs it; by hand: \
             cargo install --locked s3s-fs --version 0.14.1 --features binary --root {})",
            test_tools().display(),
            test_tools().display()
        ))
}

impl S3Server {
    /// s3s-fs over a new directory holding the empty `buckets`, requiring
    /// signatures by one fresh access key.
    pub fn start(buckets: &[&str]) -> S3Server {
        let binary = s3s_fs().expect("s3s-fs is installed (check require_s3s_fs first)");
        let root = tempfile::Builder::new().prefix("hermod-s3-").tempdir_in("/var/tmp").unwrap();
        for bucket in buckets {
            std::fs::create_dir(root.path().join(bucket)).unwrap();
        }
        let nonce = format!("{}{:?}", std::process::id(), Instant::now());
        let access_key = format!("HERMODTEST{}", blake3::hash(nonce.as_bytes()).to_hex()[..10].to_uppercase());
        let secret_key = blake3::hash(format!("secret {nonce}").as_bytes()).to_hex()[..40].to_owned();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(log_of(root.path())).unwrap();
        use std::os::unix::process::CommandExt;
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()));
        let mut server = S3Server { child, port, root, access_key, secret_key };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("s3s-fs exited ({status}): {}", std::fs::read_to_string(server.log()).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port} within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `http://127.0.0.1:PORT`, the endpoint (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The file that holds `key` of `bucket`.
    pub fn object(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    /// The server's own log (beside its root, not in a bucket).
    pub fn log(&self) -> PathBuf {
        log_of(self.root.path())
    }
}

fn log_of(root: &Path) -> PathBuf {
    root.with_file_name(format!("{}.log", root.file_name().unwrap().to_string_lossy()))
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.log());
    }
}
