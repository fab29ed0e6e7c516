//! Child processes of a benchmark: finding the tools it needs, starting
//! servers in their own process group, and the guard that kills the whole
//! group however the benchmark ends.

use std::ffi::OsStr;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{http1, interrupt, procfs};

/// How long a server gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a killed server gets to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// The sbin directories a non-root PATH often lacks (nginx, varnishd).
pub const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// Looks `name` up on PATH, then in `extra_dirs`.
pub fn which(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// First line of a tool's version output (stdout or stderr, any exit code).
pub fn version_line(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .and_then(|out| {
            let text = [out.stdout, out.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// An external program a benchmark needs, and the Debian package with it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub package: &'static str,
    /// Searched after PATH.
    pub extra_dirs: &'static [&'static str],
}

impl Tool {
    pub const fn new(
        name: &'static str,
        package: &'static str,
        extra_dirs: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            package,
            extra_dirs,
        }
    }
}

/// [`require`] for a fixed list: the paths in the same order.
pub fn require_each<const N: usize>(tools: [Tool; N]) -> Result<[PathBuf; N]> {
    <[PathBuf; N]>::try_from(require(&tools)?)
        .map_err(|_| anyhow::anyhow!("tool lookup returned the wrong count"))
}

/// Resolves every tool, in order, or fails naming all the missing ones and
/// the `apt-get` line that installs them.
pub fn require(tools: &[Tool]) -> Result<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = tools
        .iter()
        .map(|tool| which(tool.name, tool.extra_dirs))
        .collect();
    let missing: Vec<&Tool> = tools
        .iter()
        .zip(&found)
        .filter(|(_, path)| path.is_none())
        .map(|(tool, _)| tool)
        .collect();
    if !missing.is_empty() {
        bail!("{}", missing_message(&missing));
    }
    Ok(found.into_iter().flatten().collect())
}

fn missing_message(missing: &[&Tool]) -> String {
    let names: Vec<&str> = missing.iter().map(|t| t.name).collect();
    let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    packages.dedup();
    let mut message = format!(
        "missing on PATH: {}\ninstall (Debian/Ubuntu): sudo apt-get update && sudo apt-get install -y {}",
        names.join(", "),
        packages.join(" ")
    );
    if names.contains(&"nginx") {
        message.push_str("\n(nginx-light is enough in place of nginx)");
    }
    message
}

/// A running server in its own process group; the whole group is killed
/// and the server reaped on drop.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Spawns `command` as the leader of a new process group, with stdout
    /// and stderr going to `log`. The group keeps a terminal's Ctrl-C away
    /// from the server (the benchmark stops it) and lets [`Server::cpu_ticks`]
    /// count every process the server forks.
    pub fn spawn(name: impl Into<String>, mut command: Command, log: PathBuf) -> Result<Self> {
        let name = name.into();
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Self { name, child, log })
    }

    /// The server's process id (and process group id). `setpriv` and
    /// `taskset` exec the server, so this is the server itself.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime, in clock ticks, of every live process in the server's
    /// process group (a master and its workers, or Varnish's manager and
    /// its cache process).
    pub fn cpu_ticks(&self) -> Result<u64> {
        procfs::group_cpu_ticks(self.pid())
    }

    /// Waits up to `limit` for the process to exit by itself (a command
    /// that is not a server); fails if it does not (dropping the `Server`
    /// then kills it).
    pub fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            interrupt::check()?;
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "{} still running after {limit:?}; log:\n{}",
            self.name,
            self.log_tail()
        )
    }

    /// Stops the server the way a service manager does: SIGTERM, then waits
    /// up to `limit` for it to exit (dropping the `Server` kills it if not).
    pub fn terminate(&mut self, limit: Duration) -> Result<ExitStatus> {
        let kill = which("kill", &["/bin", "/usr/bin"]).context("no kill on PATH")?;
        let status = Command::new(kill)
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed ({status})", self.pid());
        }
        self.wait_exit(limit)
    }

    /// Fails (with the end of its log) if the server has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); log:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the server's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Polls `GET addr path` until it answers 200, the server dies, or
    /// [`READY_TIMEOUT`] passes.
    pub fn wait_ready(&mut self, addr: SocketAddr, path: &str) -> Result<()> {
        self.wait_ready_polling(addr, path, Duration::from_millis(50))
    }

    /// [`Server::wait_ready`], polling every `every` (a start-up that is
    /// timed wants a short interval).
    pub fn wait_ready_polling(
        &mut self,
        addr: SocketAddr,
        path: &str,
        every: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            interrupt::check()?;
            self.check_alive()?;
            match http1::fetch(addr, "GET", path, None) {
                Ok((head, _)) if head.status == 200 => return Ok(()),
                Ok((head, _)) => last = format!("status {}", head.status),
                Err(err) => last = format!("{err:#}"),
            }
            std::thread::sleep(every);
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
        // The group first: children the server forked outlive its leader.
        let group = format!("-{}", self.pid());
        let killed_group = which("kill", &["/bin", "/usr/bin"]).is_some_and(|kill| {
            Command::new(kill)
                .args(["-KILL", "--", &group])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        });
        if !killed_group {
            let _ = self.child.kill();
        }
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
pub fn orphan_proof(program: impl AsRef<OsStr>) -> Command {
    match which("setpriv", &[]) {
        Some(setpriv) => {
            let mut command = Command::new(setpriv);
            command.arg("--pdeathsig").arg("KILL").arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// `orphan_proof` + `taskset -c cpu program`: the program pinned to `cpu`.
pub fn pinned(cpu: usize, program: impl AsRef<OsStr>) -> Command {
    let mut command = orphan_proof("taskset");
    command.arg("-c").arg(cpu.to_string()).arg(program);
    command
}

/// Runs `command` (in its own process group, output to `log`) to
/// completion; fails with the end of its output if it fails or is still
/// running after `limit`.
pub fn run_to_completion(
    name: impl Into<String>,
    command: Command,
    log: PathBuf,
    limit: Duration,
) -> Result<()> {
    let mut process = Server::spawn(name, command, log)?;
    let status = process.wait_exit(limit)?;
    if !status.success() {
        bail!(
            "{} failed ({status}); output:\n{}",
            process.name,
            process.log_tail()
        );
    }
    Ok(())
}

/// Pins this process (every thread) to `cpu`, e.g. so that clients it runs
/// stay off the servers' core.
pub fn pin_self(cpu: usize) -> Result<()> {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .context("running taskset -p")?;
    if !status.success() {
        bail!("taskset -a -p -c {cpu} failed ({status})");
    }
    Ok(())
}

/// `N` distinct free loopback TCP ports: bind them all to port 0 at once,
/// then release them.
pub fn free_ports<const N: usize>() -> Result<[SocketAddr; N]> {
    let ports = free_tcp_ports(N)?;
    <[SocketAddr; N]>::try_from(ports).map_err(|_| anyhow::anyhow!("wrong count of free ports"))
}

/// `n` distinct free loopback TCP ports (see [`free_ports`]).
pub fn free_tcp_ports(n: usize) -> Result<Vec<SocketAddr>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("binding TCP 127.0.0.1:0"))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().context("local_addr"))
        .collect()
}

/// `n` distinct free loopback UDP ports (for QUIC listeners): bind them all
/// to port 0 at once, then release them.
pub fn free_udp_ports(n: usize) -> Result<Vec<SocketAddr>> {
    let sockets = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").context("binding UDP 127.0.0.1:0"))
        .collect::<Result<Vec<_>>>()?;
    sockets
        .iter()
        .map(|s| s.local_addr().context("local_addr"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_name_their_packages() {
        let nginx = Tool {
            name: "nginx",
            package: "nginx",
            extra_dirs: SBIN_DIRS,
        };
        let varnish = Tool {
            name: "varnishd",
            package: "varnish",
            extra_dirs: SBIN_DIRS,
        };
        let text = missing_message(&[&nginx, &varnish]);
        assert!(text.contains("missing on PATH: nginx, varnishd"));
        assert!(text.contains("apt-get install -y nginx varnish"));
        assert!(text.contains("nginx-light"));
    }

    #[test]
    fn free_ports_are_distinct() -> Result<()> {
        let tcp = free_tcp_ports(4)?;
        let udp = free_udp_ports(4)?;
        for ports in [&tcp, &udp] {
            let mut seen: Vec<u16> = ports.iter().map(SocketAddr::port).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 4);
        }
        let [a, b] = free_ports::<2>()?;
        assert_ne!(a, b);
        Ok(())
    }

    #[test]
    fn commands_run_to_completion_or_fail_with_their_output() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo fine"]);
        run_to_completion("ok", ok, dir.path().join("ok.log"), Duration::from_secs(10))?;
        let mut bad = Command::new("sh");
        bad.args(["-c", "echo broken; exit 3"]);
        let err = run_to_completion(
            "bad",
            bad,
            dir.path().join("bad.log"),
            Duration::from_secs(10),
        )
        .map_err(|e| e.to_string());
        assert!(err.as_ref().is_err_and(|e| e.contains("broken")), "{err:?}");
        let mut slow = Command::new("sleep");
        slow.arg("30");
        let err = run_to_completion(
            "slow",
            slow,
            dir.path().join("slow.log"),
            Duration::from_millis(200),
        )
        .map_err(|e| e.to_string());
        assert!(
            err.as_ref().is_err_and(|e| e.contains("still running")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn finds_a_shell_and_not_nonsense() {
        assert!(which("sh", &["/bin", "/usr/bin"]).is_some());
        assert!(which("no-such-tool-fleetcache-benches", &[]).is_none());
    }
}
