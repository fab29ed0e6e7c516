//! Starting the servers the benchmarks compare: a fleetcache node and
//! single-process nginx instances, each pinned to a core.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::process::{self, Server};

/// The fleetcache binary: `explicit`, else `fleetcache` next to this
/// executable; fails saying how to build it (`build`) if it is not there.
pub fn fleetcache_binary(explicit: Option<&Path>, build: &str) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .parent()
            .context("this executable has no parent directory")?
            .join("fleetcache"),
    };
    if !path.is_file() {
        bail!(
            "no fleetcache binary at {}\nbuild it next to this one with `{build}`, or pass --fleetcache PATH",
            path.display()
        );
    }
    Ok(path)
}

/// Where a fleetcache node listens.
#[derive(Debug, Clone, Copy)]
pub struct FleetcacheAddrs {
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

/// Starts `fleetcache serve` pinned to `cpu` (in front of `origin`, if
/// given) and waits for `/readyz`.
pub fn start_fleetcache(
    binary: &Path,
    cpu: usize,
    addrs: FleetcacheAddrs,
    data_dir: &Path,
    origin: Option<&str>,
    log: PathBuf,
) -> Result<Server> {
    let mut command = process::pinned(cpu, binary);
    command
        .arg("serve")
        .arg("--listen")
        .arg(addrs.public.to_string())
        .arg("--admin-listen")
        .arg(addrs.admin.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .env("FLEETCACHE_STORE_CAPACITY", "4GiB")
        .env("FLEETCACHE_LOG_LEVEL", "warn");
    if let Some(origin) = origin {
        command.arg("--origin").arg(origin);
    }
    let mut server = Server::spawn("fleetcache", command, log)?;
    server.wait_ready(addrs.admin, "/readyz")?;
    Ok(server)
}

/// The nginx binary and what it supports.
#[derive(Debug, Clone)]
pub struct Nginx {
    pub path: PathBuf,
    /// `-e stderr` exists (nginx ≥ 1.19.5).
    pub has_e_flag: bool,
    /// `nginx -v`'s line.
    pub version: String,
}

impl Nginx {
    /// Asks `path -h` what it supports.
    pub fn probe(path: PathBuf) -> Result<Self> {
        let help = std::process::Command::new(&path)
            .arg("-h")
            .output()
            .with_context(|| format!("running {} -h", path.display()))?;
        let help = String::from_utf8_lossy(&[help.stdout, help.stderr].concat()).into_owned();
        Ok(Self {
            has_e_flag: help.contains("-e filename"),
            version: process::version_line(&path, "-v"),
            path,
        })
    }

    /// Writes `<prefix>/nginx.conf`: one foreground process (no master, so
    /// the pid we start is the one serving), its temp dirs under `prefix`,
    /// keep-alive for benchmarks, and `http_body` inside the `http` block.
    pub fn write_conf(prefix: &Path, written_by: &str, http_body: &str) -> Result<PathBuf> {
        let temp = prefix.join("temp");
        for dir in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(temp.join(dir))
                .with_context(|| format!("creating {}", temp.join(dir).display()))?;
        }
        let t = temp.display();
        let conf = format!(
            r#"# Written by {written_by}.
daemon off;
master_process off;
worker_processes 1;
pid "{prefix}/nginx.pid";
error_log stderr warn;

events {{
    worker_connections 4096;
}}

http {{
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    types {{ }}
    default_type application/octet-stream;
    client_body_temp_path "{t}/client_body";
    proxy_temp_path "{t}/proxy";
    fastcgi_temp_path "{t}/fastcgi";
    uwsgi_temp_path "{t}/uwsgi";
    scgi_temp_path "{t}/scgi";
{http_body}}}
"#,
            prefix = prefix.display(),
        );
        let path = prefix.join("nginx.conf");
        std::fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Starts nginx with `conf` (from [`Nginx::write_conf`]) pinned to `cpu`
    /// and waits until `listen` serves `ready_path`.
    pub fn start(
        &self,
        name: &'static str,
        cpu: usize,
        conf: &Path,
        listen: SocketAddr,
        ready_path: &str,
        log: PathBuf,
    ) -> Result<Server> {
        let prefix = conf.parent().context("nginx.conf has no directory")?;
        let mut command = process::pinned(cpu, &self.path);
        command.arg("-p").arg(prefix).arg("-c").arg(conf);
        if self.has_e_flag {
            // Without -e (nginx < 1.19.5) the compiled-in error log is opened
            // before the config's `error_log stderr` applies: harmless noise.
            command.arg("-e").arg("stderr");
        }
        let mut server = Server::spawn(name, command, log)?;
        server.wait_ready(listen, ready_path)?;
        Ok(server)
    }
}
