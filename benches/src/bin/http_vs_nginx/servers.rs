//! Starting fleetcache and nginx as pinned child processes, and the guard
//! that kills them however the benchmark ends.

use std::ffi::OsStr;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::http1;

/// How long a server gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a killed server gets to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server; killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Spawns `argv` with stdout and stderr going to `log`.
    fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Self { name, child, log })
    }

    /// The server's process id. `taskset` execs the server, so this is the
    /// server itself.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails (with the end of its log) if the server has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); log:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the server's output.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Polls `GET addr path` until it answers 200, the server dies, or
    /// [`READY_TIMEOUT`] passes.
    pub(crate) fn wait_ready(&mut self, addr: SocketAddr, path: &str) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            crate::interrupt::check()?;
            self.check_alive()?;
            match http1::fetch(addr, "GET", path, None) {
                Ok((head, _)) if head.status == 200 => return Ok(()),
                Ok((head, _)) => last = format!("status {}", head.status),
                Err(err) => last = format!("{err:#}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} not ready at http://{addr}{path} after {READY_TIMEOUT:?} (last: {last}); log:\n{}",
            self.name,
            self.log_tail()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = self.child.kill();
        let deadline = Instant::now() + REAP_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                _ => return,
            }
        }
        eprintln!(
            "warning: {} (pid {}) did not exit after SIGKILL",
            self.name,
            self.pid()
        );
    }
}

/// A command for `program` that dies with this process even if we are
/// killed without unwinding: `setpriv --pdeathsig KILL` (util-linux, like
/// taskset) when it is on PATH, which execs the program, so the pid stays
/// the program's.
pub(crate) fn orphan_proof(program: impl AsRef<OsStr>) -> Command {
    match crate::which("setpriv", &[]) {
        Some(setpriv) => {
            let mut command = Command::new(setpriv);
            command.arg("--pdeathsig").arg("KILL").arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// `N` distinct free loopback ports: bind them all to port 0 at once, then
/// release them.
pub(crate) fn free_ports<const N: usize>() -> Result<[SocketAddr; N]> {
    let mut listeners = Vec::with_capacity(N);
    let mut addrs = [SocketAddr::from(([127, 0, 0, 1], 0)); N];
    for addr in &mut addrs {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        *addr = listener.local_addr().context("local_addr")?;
        listeners.push(listener);
    }
    Ok(addrs)
}

/// Where the fleetcache node listens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FleetcacheAddrs {
    pub(crate) public: SocketAddr,
    pub(crate) admin: SocketAddr,
}

/// Starts `fleetcache serve` pinned to `cpu` and waits for `/readyz`.
pub(crate) fn start_fleetcache(
    binary: &Path,
    cpu: usize,
    addrs: FleetcacheAddrs,
    data_dir: &Path,
    log: PathBuf,
) -> Result<Server> {
    let mut command = orphan_proof("taskset");
    command
        .arg("-c")
        .arg(cpu.to_string())
        .arg(binary)
        .arg("serve")
        .arg("--listen")
        .arg(addrs.public.to_string())
        .arg("--admin-listen")
        .arg(addrs.admin.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .env("FLEETCACHE_STORE_CAPACITY", "4GiB")
        .env("FLEETCACHE_LOG_LEVEL", "warn");
    let mut server = Server::spawn("fleetcache", command, log)?;
    server.wait_ready(addrs.admin, "/readyz")?;
    Ok(server)
}

/// Writes nginx's config under `prefix` and returns its path.
pub(crate) fn write_nginx_conf(prefix: &Path, root: &Path, listen: SocketAddr) -> Result<PathBuf> {
    let temp = prefix.join("temp");
    for dir in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(temp.join(dir))?;
    }
    let t = temp.display();
    let conf = format!(
        r#"# Written by http-vs-nginx: one foreground process, files from disk.
daemon off;
master_process off;
worker_processes 1;
pid "{prefix}/nginx.pid";
error_log stderr warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    etag on;
    types {{ }}
    default_type application/octet-stream;
    client_body_temp_path "{t}/client_body";
    proxy_temp_path "{t}/proxy";
    fastcgi_temp_path "{t}/fastcgi";
    uwsgi_temp_path "{t}/uwsgi";
    scgi_temp_path "{t}/scgi";

    server {{
        listen {listen};
        root "{root}";
        location /blake3/ {{ }}
    }}
}}
"#,
        prefix = prefix.display(),
        root = root.display(),
    );
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Starts nginx (config from [`write_nginx_conf`]) pinned to `cpu` and waits
/// until it serves `ready_path`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_nginx(
    nginx: &Path,
    has_e_flag: bool,
    cpu: usize,
    prefix: &Path,
    conf: &Path,
    listen: SocketAddr,
    ready_path: &str,
    log: PathBuf,
) -> Result<Server> {
    let mut command = orphan_proof("taskset");
    command
        .arg("-c")
        .arg(cpu.to_string())
        .arg(nginx)
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf);
    if has_e_flag {
        // Without -e (nginx < 1.19.5) the compiled-in error log is opened
        // before the config's `error_log stderr` applies: harmless noise.
        command.arg("-e").arg("stderr");
    }
    let mut server = Server::spawn("nginx", command, log)?;
    server.wait_ready(listen, ready_path)?;
    Ok(server)
}
