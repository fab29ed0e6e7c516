//! Starting the servers the benchmarks compare: fleetcache nodes,
//! single-process nginx instances (plain, or as a `proxy_cache` with
//! `proxy_cache_lock`) and Varnish in front of a backend, each pinned to a
//! core, and how each says a response came from its cache.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::https::SelfSigned;
use crate::process::{self, SBIN_DIRS, Server, Tool};

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

/// fleetcache's HTTPS listener: where, and the certificate it presents.
#[derive(Debug, Clone, Copy)]
pub struct HttpsListener<'a> {
    pub listen: SocketAddr,
    pub cert: &'a SelfSigned,
}

/// fleetcache's memory tier in the benchmarks: as much as Varnish's malloc
/// storage in `http-vs-nginx`, room for the 256 MiB object (a tier admits
/// objects up to half its size).
pub const FLEETCACHE_MEMORY_CACHE: &str = "512MiB";

/// Starts `fleetcache serve` pinned to `cpu` (in front of `origin`, if
/// given; with an HTTPS listener too, if given) and waits for `/readyz`.
pub fn start_fleetcache(
    binary: &Path,
    cpu: usize,
    addrs: FleetcacheAddrs,
    data_dir: &Path,
    origin: Option<&str>,
    https: Option<HttpsListener<'_>>,
    log: PathBuf,
) -> Result<Server> {
    let command = fleetcache_command(binary, cpu, addrs, data_dir, origin, https);
    let mut server = Server::spawn("fleetcache", command, log)?;
    server.wait_ready(addrs.admin, "/readyz")?;
    Ok(server)
}

/// The command [`start_fleetcache`] runs: `fleetcache serve` pinned to
/// `cpu`, a 4 GiB store, warnings only in its log.
pub fn fleetcache_command(
    binary: &Path,
    cpu: usize,
    addrs: FleetcacheAddrs,
    data_dir: &Path,
    origin: Option<&str>,
    https: Option<HttpsListener<'_>>,
) -> std::process::Command {
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
        .env("FLEETCACHE_STORE_MEMORY_CACHE", FLEETCACHE_MEMORY_CACHE)
        .env("FLEETCACHE_LOG_LEVEL", "warn");
    if let Some(origin) = origin {
        command.arg("--origin").arg(origin);
    }
    if let Some(https) = https {
        command
            .arg("--tls-listen")
            .arg(https.listen.to_string())
            .arg("--tls-cert")
            .arg(&https.cert.cert_file)
            .arg("--tls-key")
            .arg(&https.cert.key_file);
    }
    command
}

/// Starts `fleetcache serve --config config` pinned to `cpu` as `name`
/// and waits for `/readyz` on `admin` (the config's admin listener). The
/// file says everything: `FLEETCACHE_*` variables in our environment, which
/// would override it, are not passed on.
pub fn start_fleetcache_with_config(
    name: &str,
    binary: &Path,
    cpu: usize,
    config: &Path,
    admin: SocketAddr,
    log: PathBuf,
) -> Result<Server> {
    let mut command = process::pinned(cpu, binary);
    command.arg("serve").arg("--config").arg(config);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FLEETCACHE_") {
            command.env_remove(key);
        }
    }
    let mut server = Server::spawn(name, command, log)?;
    server.wait_ready(admin, "/readyz")?;
    Ok(server)
}

/// Whether a fleetcache `Cache-Status` value says the response was served
/// from its cache: RFC 9211 `fleetcache; hit; ttl=3600`, ours being the
/// last member (members are appended hop by hop).
pub fn fleetcache_says_hit(value: Option<&str>) -> bool {
    value
        .and_then(|value| value.rsplit(',').next())
        .is_some_and(|member| {
            let mut params = member.split(';').map(str::trim);
            params.next() == Some("fleetcache") && params.any(|p| p == "hit")
        })
}

/// How long nginx's `proxy_cache_lock` waiters wait for the lock holder
/// before fetching for themselves (default 5 s), and the lock's age: far
/// above a cold fetch, so what is measured is the lock, not its timeout.
pub const NGINX_LOCK_TIMEOUT_SECS: u64 = 120;

/// The `http` block of an nginx `proxy_cache` in front of `origin`: a disk
/// cache in `cache_dir` keyed by URI (query included), one fetch per key at
/// a time (`proxy_cache_lock`, see [`NGINX_LOCK_TIMEOUT_SECS`]), keep-alive
/// to the origin, and `X-Cache-Status` on every answer.
pub fn nginx_proxy_cache_conf(cache_dir: &Path, listen: SocketAddr, origin: SocketAddr) -> String {
    format!(
        r#"    access_log off;
    proxy_cache_path "{cache}" levels=1:2 keys_zone=bench:16m max_size=16g inactive=1h use_temp_path=off;

    upstream origin {{
        server {origin};
        keepalive 16;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
            proxy_cache_lock_timeout {NGINX_LOCK_TIMEOUT_SECS}s;
            proxy_cache_lock_age {NGINX_LOCK_TIMEOUT_SECS}s;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
"#,
        cache = cache_dir.display(),
    )
}

/// Whether an nginx `X-Cache-Status` value says hit.
pub fn nginx_says_hit(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("HIT"))
}

/// The response header Varnish's VCL ([`Varnish::start`]) sets to `HIT`
/// or `MISS`.
pub const VARNISH_CACHE_HEADER: &str = "x-cache";

/// Whether a Varnish [`VARNISH_CACHE_HEADER`] value says hit.
pub fn varnish_says_hit(value: Option<&str>) -> bool {
    // Our VCL's header, spelled as nginx's `X-Cache-Status`.
    nginx_says_hit(value)
}

/// The Varnish daemon and its version.
#[derive(Debug, Clone)]
pub struct Varnish {
    pub path: PathBuf,
    /// `varnishd -V`'s first line.
    pub version: String,
}

impl Varnish {
    /// How to find `varnishd` (in an sbin directory on Debian).
    pub const TOOL: Tool = Tool::new("varnishd", "varnish", SBIN_DIRS);

    /// Asks `path -V` for its version.
    pub fn probe(path: PathBuf) -> Self {
        Self {
            version: process::version_line(&path, "-V"),
            path,
        }
    }

    /// Starts `varnishd -F` pinned to `cpu` in front of `backend`, with
    /// `storage` (`-s`, e.g. `malloc,512M`) and its work dir, VCL and log
    /// under `dir`; ready when `listen` serves `ready_path` (through to the
    /// backend). Manager and cache process run in the foreground, both in
    /// the server's process group (so its CPU time and memory count both),
    /// with no jail, so they run as us in our temp dir, and no management
    /// port.
    pub fn start(
        &self,
        cpu: usize,
        dir: &Path,
        storage: &str,
        listen: SocketAddr,
        backend: SocketAddr,
        ready_path: &str,
    ) -> Result<Server> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let vcl = dir.join("bench.vcl");
        std::fs::write(&vcl, varnish_vcl(backend))
            .with_context(|| format!("writing {}", vcl.display()))?;
        let mut command = process::pinned(cpu, &self.path);
        command
            .arg("-F")
            .args(["-j", "none"])
            .arg("-n")
            .arg(dir.join("work"))
            .arg("-a")
            .arg(listen.to_string())
            .arg("-f")
            .arg(&vcl)
            .args(["-T", "none"])
            .args(["-s", storage]);
        let mut server = Server::spawn("varnish", command, dir.join("varnishd.log"))?;
        server.wait_ready(listen, ready_path)?;
        Ok(server)
    }
}

/// The VCL: the built-in logic (which honours `Cache-Control: max-age`,
/// coalesces misses and streams), objects keyed by URL alone, and
/// `X-Cache: HIT|MISS` on every answer. The key leaves out `Host`, as
/// nginx's `proxy_cache` key does, so that the benchmarks' own checks
/// (`Host: site.bench`) and wrk (`Host: 127.0.0.1:<port>`) reach the same
/// object.
fn varnish_vcl(backend: SocketAddr) -> String {
    format!(
        r#"vcl 4.1;

backend origin {{
    .host = "{ip}";
    .port = "{port}";
}}

sub vcl_hash {{
    hash_data(req.url);
    return (lookup);
}}

sub vcl_deliver {{
    if (obj.hits > 0) {{
        set resp.http.X-Cache = "HIT";
    }} else {{
        set resp.http.X-Cache = "MISS";
    }}
}}
"#,
        ip = backend.ip(),
        port = backend.port(),
    )
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

/// The version in `nginx -v`'s line (`nginx version: nginx/1.22.1`).
fn nginx_version(line: &str) -> Option<(u32, u32, u32)> {
    let number = line.split('/').nth(1)?.split_whitespace().next()?;
    let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
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

    /// The lines of a `server` block that serve HTTPS on `listen` with
    /// `cert`: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN (`http2 on`
    /// from nginx 1.25.1, `listen … http2` before).
    pub fn https_listen(&self, listen: SocketAddr, cert: &SelfSigned) -> String {
        let http2_directive = nginx_version(&self.version) >= Some((1, 25, 1));
        let (listen_flags, http2_line) = if http2_directive {
            ("ssl", "\n        http2 on;")
        } else {
            ("ssl http2", "")
        };
        format!(
            r#"        listen {listen} {listen_flags};{http2_line}
        ssl_certificate "{cert}";
        ssl_certificate_key "{key}";
        ssl_protocols TLSv1.2 TLSv1.3;
"#,
            cert = cert.cert_file.display(),
            key = cert.key_file.display(),
        )
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
        name: &str,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleetcache_hits() {
        assert!(fleetcache_says_hit(Some("fleetcache; hit; ttl=3600")));
        assert!(fleetcache_says_hit(Some(
            "upstream; fwd=miss, fleetcache; hit"
        )));
        assert!(!fleetcache_says_hit(Some(
            "fleetcache; fwd=uri-miss; fwd-status=200; ttl=3600; stored"
        )));
        assert!(!fleetcache_says_hit(Some(
            "fleetcache; hit, other; fwd=miss"
        )));
        assert!(!fleetcache_says_hit(Some("other; hit")));
        assert!(!fleetcache_says_hit(None));
    }

    #[test]
    fn nginx_hits() {
        assert!(nginx_says_hit(Some("HIT")));
        assert!(!nginx_says_hit(Some("MISS")));
        assert!(!nginx_says_hit(Some("EXPIRED")));
        assert!(!nginx_says_hit(None));
    }

    #[test]
    fn varnish_hits() {
        assert!(varnish_says_hit(Some("HIT")));
        assert!(!varnish_says_hit(Some("MISS")));
        assert!(!varnish_says_hit(None));
    }

    #[test]
    fn vcl_names_the_backend_and_keys_by_url() {
        let backend: SocketAddr = ([127, 0, 0, 1], 4321).into();
        let vcl = varnish_vcl(backend);
        assert!(vcl.contains(".host = \"127.0.0.1\";"));
        assert!(vcl.contains(".port = \"4321\";"));
        assert!(vcl.contains("sub vcl_hash {\n    hash_data(req.url);\n    return (lookup);"));
        assert!(vcl.contains("set resp.http.X-Cache = \"HIT\";"));
    }

    #[test]
    fn nginx_versions() {
        assert_eq!(
            nginx_version("nginx version: nginx/1.22.1"),
            Some((1, 22, 1))
        );
        assert_eq!(
            nginx_version("nginx version: nginx/1.25.1 (Ubuntu)"),
            Some((1, 25, 1))
        );
        assert_eq!(nginx_version("unknown"), None);
    }

    #[test]
    fn https_listen_picks_the_http2_syntax() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let cert = SelfSigned::generate(dir.path())?;
        let listen: SocketAddr = ([127, 0, 0, 1], 8443).into();
        let nginx = |version: &str| Nginx {
            path: PathBuf::from("nginx"),
            has_e_flag: true,
            version: version.to_owned(),
        };
        let old = nginx("nginx version: nginx/1.22.1").https_listen(listen, &cert);
        assert!(old.contains("listen 127.0.0.1:8443 ssl http2;"), "{old}");
        assert!(!old.contains("http2 on;"), "{old}");
        let new = nginx("nginx version: nginx/1.27.0").https_listen(listen, &cert);
        assert!(new.contains("listen 127.0.0.1:8443 ssl;"), "{new}");
        assert!(new.contains("http2 on;"), "{new}");
        assert!(new.contains("ssl_protocols TLSv1.2 TLSv1.3;"), "{new}");
        Ok(())
    }

    #[test]
    fn proxy_cache_conf_names_the_origin_and_locks() {
        let origin: SocketAddr = ([127, 0, 0, 1], 4321).into();
        let listen: SocketAddr = ([127, 0, 0, 1], 1234).into();
        let conf = nginx_proxy_cache_conf(Path::new("/tmp/c"), listen, origin);
        assert!(conf.contains("server 127.0.0.1:4321;"));
        assert!(conf.contains("listen 127.0.0.1:1234;"));
        assert!(conf.contains("proxy_cache_lock on;"));
        assert!(conf.contains("proxy_cache_lock_timeout 120s;"));
    }
}
