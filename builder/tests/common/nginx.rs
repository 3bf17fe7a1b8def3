//! A real nginx (Debian's nginx-light) on a free loopback port, with its own
//! prefix, config and logs in a temporary directory; killed with its workers
//! when dropped (also when a test panics). [`Nginx::serve`] serves one host
//! directory; `remote_cache.rs` runs a WebDAV server with [`Nginx::start`].

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Serve `dir` at `http://127.0.0.1:PORT/<location>/`. As root the workers
    /// run as nobody: `dir` and its files must be world-readable.
    pub fn serve(dir: &Path, location: &str) -> Nginx {
        let server = format!("location /{location}/ {{ alias {}/; }}", dir.display());
        Nginx::start(|_| (), "", |_| server)
    }

    /// nginx with `http` (more directives of the http block) and the server
    /// block's directives `server(prefix)` writes (after `listen`). `prepare`
    /// fills the prefix first (document roots, password files). As root the
    /// workers run as nobody.
    pub fn start(prepare: impl FnOnce(&Path), http: &str, server: impl FnOnce(&Path) -> String) -> Nginx {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).exists());
        let nginx = nginx.expect("nginx is not installed (apt-get install nginx-light; .ci/run does)");
        let dir = tempfile::Builder::new().prefix("hermod-nginx-").tempdir_in("/var/tmp").unwrap();
        let prefix = dir.path().to_owned();
        std::fs::create_dir_all(prefix.join("tmp")).unwrap();
        prepare(&prefix);
        let root = nix::unistd::geteuid().is_root();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let p = prefix.display();
        let config = format!(
            r#"
{user}
worker_processes 1;
daemon off;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    {http}
    server {{
        listen 127.0.0.1:{port};
        {server}
    }}
}}
"#,
            user = if root { "user nobody nogroup;" } else { "" },
            server = server(&prefix),
        );
        std::fs::write(prefix.join("nginx.conf"), config).unwrap();
        use std::os::unix::process::CommandExt;
        let child = Command::new(nginx)
            .args(["-p", &p.to_string(), "-c", &format!("{p}/nginx.conf"), "-e", &format!("{p}/error.log")])
            .stdin(Stdio::null())
            // Its own process group: the guard kills master and workers at once.
            .process_group(0)
            .spawn()
            .expect("nginx starts");
        let mut server = Nginx { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "nginx exited ({status}): {}",
                    std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {port} within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The prefix directory: config, logs and whatever `prepare` put there.
    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
