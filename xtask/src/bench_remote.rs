//! `cargo xtask bench`, shared-cache part (beside `bench_cache.rs`'s local hits): a whole-process remote hit of the
//! hello module from nginx on loopback (an empty store, `--lock`, so no index
//! is read and no build root is made) next to a local hit of the same entry in
//! the same store right after, measured in the same run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{median, ms, run_quiet};

/// nginx serving a WebDAV document root from a temporary prefix; killed on drop.
/// One process (`master_process off`): enough for a bench, and one pid to kill.
struct Nginx {
    child: Child,
    port: u16,
    _prefix: tempfile::TempDir,
}

impl Nginx {
    fn start(nginx: &Path) -> Result<Nginx> {
        let prefix = tempfile::Builder::new().prefix("hermod-bench-nginx-").tempdir_in("/var/tmp")?;
        let p = prefix.path().display().to_string();
        std::fs::create_dir_all(prefix.path().join("www/hermod"))?;
        std::fs::create_dir_all(prefix.path().join("tmp"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = format!(
            "master_process off;\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {p}/tmp; \
             server {{ listen 127.0.0.1:{port}; root {p}/www; \
             location /hermod/ {{ dav_methods PUT; create_full_put_path on; }} }} }}\n"
        );
        std::fs::write(prefix.path().join("nginx.conf"), config)?;
        let child = Command::new(nginx)
            .args(["-p", &p, "-c", &format!("{p}/nginx.conf"), "-e", &format!("{p}/error.log")])
            .stdin(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let mut server = Nginx { child, port, _prefix: prefix };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if server.child.try_wait()?.is_some() || Instant::now() > deadline {
                bail!("nginx did not start: {}", std::fs::read_to_string(format!("{p}/error.log")).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Push a fresh hello from `store` to nginx, then pull it `runs` times into
/// empty stores (the remote hit) and hit it again locally in each.
pub fn bench(hermod: &Path, store: &Path, packages: &Path, kernel: &str, runs: usize) -> Result<()> {
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().map(Path::new).find(|p| p.exists()) else {
        println!("remote hit of hello:    skipped (nginx is not installed: apt-get install nginx-light)");
        return Ok(());
    };
    let server = Nginx::start(nginx)?;
    let url = format!("http://127.0.0.1:{}/hermod", server.port);
    let work = tempfile::tempdir()?;
    let src = super::fresh_hello(work.path(), 3000)?;
    let out = work.path().join("out");
    let cmd = |store: &Path| {
        let mut c = Command::new(hermod);
        c.env("HERMOD_STORE", store).env("HERMOD_PACKAGE_CACHE", packages).env("HERMOD_REMOTE", &url).arg("-q");
        c
    };

    let key = work.path().join("bench.key");
    let keygen = cmd(store).args(["cache", "keygen"]).arg(&key).output()?;
    if !keygen.status.success() {
        bail!("hermod cache keygen: {}", String::from_utf8_lossy(&keygen.stderr));
    }
    let public = String::from_utf8(keygen.stdout)?.trim().to_owned();
    let lock = work.path().join("hello.lock");
    run_quiet(cmd(store).args(["rootfs", "lock", "--kernel", kernel, "--out"]).arg(&lock))?;
    let build = |c: &mut Command| {
        c.arg("build").arg(&src).arg("--lock").arg(&lock).arg("--out").arg(&out);
    };
    let mut push = cmd(store);
    build(push.env("HERMOD_REMOTE_PUSH", "1").env("HERMOD_SIGNING_KEY", &key));
    run_quiet(&mut push)?;

    let (mut remote, mut local) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let empty = tempfile::Builder::new().prefix("hermod-bench-pull-").tempdir_in("/var/tmp")?;
        let mut pull = cmd(empty.path());
        pull.env("HERMOD_TRUSTED_KEYS", &public);
        build(&mut pull);
        remote.push(run_quiet(&mut pull)?);
        local.push(run_quiet(&mut pull)?);
        if std::fs::read_dir(empty.path().join("rootfs"))?.next().is_some() {
            bail!("a remote hit made a build root");
        }
    }
    println!(
        "remote hit of hello:    {}  (nginx on loopback, empty store, --lock; goal <= 50 ms)  local hit in that store {}",
        ms(median(remote)),
        ms(median(local))
    );
    Ok(())
}
