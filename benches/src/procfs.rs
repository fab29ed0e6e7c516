//! What `/proc` tells us about a server process (CPU time, resident memory)
//! and about the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// `AT_CLKTCK` in the ELF auxiliary vector: the kernel's `USER_HZ`.
const AT_CLKTCK: usize = 17;

/// Clock ticks per second for `/proc/<pid>/stat` times, and where the number
/// came from. Read from `/proc/self/auxv` (what `sysconf(_SC_CLK_TCK)`
/// returns, without `unsafe`); 100 if that fails.
pub fn clock_ticks_per_second() -> (u64, &'static str) {
    match auxv_value(AT_CLKTCK) {
        Some(hz) if hz > 0 => (hz as u64, "AT_CLKTCK from /proc/self/auxv"),
        _ => (
            100,
            "assumed 100 (could not read AT_CLKTCK from /proc/self/auxv)",
        ),
    }
}

fn auxv_value(key: usize) -> Option<usize> {
    let bytes = std::fs::read("/proc/self/auxv").ok()?;
    let word = std::mem::size_of::<usize>();
    bytes.chunks_exact(2 * word).find_map(|pair| {
        let (k, v) = pair.split_at(word);
        let k = usize::from_ne_bytes(k.try_into().ok()?);
        let v = usize::from_ne_bytes(v.try_into().ok()?);
        (k == key).then_some(v)
    })
}

/// utime + stime of the whole process (all threads, live and exited), in
/// clock ticks: fields 14 and 15 of `/proc/<pid>/stat`.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat_ticks(&text).with_context(|| format!("parsing {path}: {text:?}"))
}

/// Every live process whose process group is `pgid` (field 5 of
/// `/proc/<pid>/stat`): its pid and utime + stime in clock ticks. Processes
/// that exit while `/proc` is read are skipped; none at all is an error.
fn group_members(pgid: u32) -> Result<Vec<(u32, u64)>> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let entry = entry.context("reading /proc")?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Ok((group, ticks)) = parse_group_and_ticks(&text)
            && group == u64::from(pgid)
        {
            members.push((pid, ticks));
        }
    }
    if members.is_empty() {
        bail!("no process in process group {pgid}");
    }
    Ok(members)
}

/// utime + stime, in clock ticks, of every live process in process group
/// `pgid` (see [`group_members`]).
pub fn group_cpu_ticks(pgid: u32) -> Result<u64> {
    Ok(group_members(pgid)?.iter().map(|&(_, ticks)| ticks).sum())
}

/// VmRSS summed over every live process in process group `pgid` (pages two
/// of them share count twice), bytes.
pub fn group_rss_bytes(pgid: u32) -> Result<u64> {
    Ok(group_members(pgid)?
        .iter()
        .filter_map(|&(pid, _)| rss_bytes(pid).ok())
        .sum())
}

fn parse_group_and_ticks(text: &str) -> Result<(u64, u64)> {
    let fields = stat_fields_after_comm(text)?;
    Ok((
        stat_field(&fields, 5)?,
        stat_field(&fields, 14)? + stat_field(&fields, 15)?,
    ))
}

/// cutime + cstime of this process: CPU ticks of the children it has waited
/// for (fields 16 and 17 of `/proc/self/stat`). The delta across one wrk run
/// is wrk's CPU time, since the servers are only reaped at the end.
pub fn waited_children_cpu_ticks() -> Result<u64> {
    let path = "/proc/self/stat";
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let fields = stat_fields_after_comm(&text)?;
    Ok(stat_field(&fields, 16)? + stat_field(&fields, 17)?)
}

fn stat_fields_after_comm(text: &str) -> Result<Vec<&str>> {
    // Field 2 (comm) is in parentheses and may hold spaces or ')': split
    // after the last ')'. What follows starts at field 3 (state).
    let (_, rest) = text.rsplit_once(')').context("no ')' after comm")?;
    Ok(rest.split_whitespace().collect())
}

/// Field `n` (1-based, as in proc(5)) from [`stat_fields_after_comm`].
fn stat_field(fields: &[&str], n: usize) -> Result<u64> {
    let raw = fields
        .get(n.checked_sub(3).context("fields 1 and 2 are not numbers")?)
        .with_context(|| format!("no field {n}"))?;
    raw.parse().with_context(|| format!("field {n} = {raw:?}"))
}

fn parse_stat_ticks(text: &str) -> Result<u64> {
    let fields = stat_fields_after_comm(text)?;
    Ok(stat_field(&fields, 14)? + stat_field(&fields, 15)?)
}

/// Where one CPU's time went, in ticks (`/proc/stat`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreTicks {
    /// Not idle, for anyone: user, nice, system, irq, softirq, steal.
    pub busy: u64,
    /// irq + softirq (loopback TCP work is largely softirq). Whether it is
    /// also in the running process's stime depends on the kernel's
    /// `CONFIG_IRQ_TIME_ACCOUNTING`.
    pub irq: u64,
}

impl CoreTicks {
    pub fn since(self, earlier: CoreTicks) -> CoreTicks {
        CoreTicks {
            busy: self.busy.saturating_sub(earlier.busy),
            irq: self.irq.saturating_sub(earlier.irq),
        }
    }
}

/// CPU `cpu`'s time so far. Against a server's own CPU time this shows how
/// much of its core went to interrupts and to other processes during a run.
pub fn core_ticks(cpu: usize) -> Result<CoreTicks> {
    stat_ticks(&format!("cpu{cpu}"))
}

/// All CPUs' time so far, summed: what a run cost the whole machine, every
/// process and interrupt included.
pub fn machine_ticks() -> Result<CoreTicks> {
    stat_ticks("cpu")
}

fn stat_ticks(label: &str) -> Result<CoreTicks> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label))
        .with_context(|| format!("no {label} line in /proc/stat"))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad /proc/stat line {line:?}"))?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let sum = |indices: &[usize]| -> u64 {
        indices
            .iter()
            .map(|&i| values.get(i).copied().unwrap_or(0))
            .sum()
    };
    Ok(CoreTicks {
        busy: sum(&[0, 1, 2, 5, 6, 7]),
        irq: sum(&[5, 6]),
    })
}

/// VmRSS of a process in bytes (`/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .with_context(|| format!("no VmRSS in {path}"))?;
    let kib: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("bad VmRSS line {line:?}"))?;
    Ok(kib * 1024)
}

/// Samples the VmRSS of a process group (a server and every process it
/// forked, summed: see [`group_rss_bytes`]) on a thread every `interval`
/// until stopped.
#[derive(Debug)]
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl RssSampler {
    /// Starts sampling process group `pgid`; sampling also ends by itself
    /// after `max_duration`.
    pub fn start(pgid: u32, interval: Duration, max_duration: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + max_duration;
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                // A failed read means the group is gone; the caller notices.
                if let Ok(rss) = group_rss_bytes(pgid) {
                    peak = peak.max(rss);
                }
                std::thread::sleep(interval);
            }
            peak
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the peak VmRSS seen, in bytes.
    pub fn finish(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let peak = match self.thread.take() {
            Some(thread) => match thread.join() {
                Ok(peak) => peak,
                Err(_) => bail!("the RSS sampling thread panicked"),
            },
            None => 0,
        };
        Ok(peak)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), as text.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// UDP datagrams the kernel dropped for want of room in a socket's receive
/// buffer, machine-wide since boot (`RcvbufErrors` in `/proc/net/snmp`,
/// IPv4 and IPv6 together); `None` if unreadable.
pub fn udp_receive_buffer_drops() -> Option<u64> {
    let v4 = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let v6 = std::fs::read_to_string("/proc/net/snmp6").unwrap_or_default();
    Some(
        snmp_field(&v4, "Udp", "RcvbufErrors")? + snmp6_field(&v6, "Udp6RcvbufErrors").unwrap_or(0),
    )
}

/// A field of `/proc/net/snmp`: a header line and a value line per protocol.
fn snmp_field(text: &str, protocol: &str, field: &str) -> Option<u64> {
    let prefix = format!("{protocol}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let names = lines.next()?.split_whitespace().skip(1);
    let values = lines.next()?.split_whitespace().skip(1);
    names
        .zip(values)
        .find(|(name, _)| *name == field)
        .and_then(|(_, value)| value.parse().ok())
}

/// A field of `/proc/net/snmp6`: one `name value` per line.
fn snmp6_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(field))
            .then(|| parts.next()?.parse().ok())
            .flatten()
    })
}

/// A description of the machine for the report.
#[derive(Debug)]
pub struct Machine {
    /// CPUs this process may run on (what `nproc` prints).
    pub nproc: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Self {
        let nproc = std::thread::available_parallelism().map_or(0, usize::from);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                matches!(key.trim(), "model name" | "Model" | "cpu model")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Self {
            nproc,
            cpu_model,
            kernel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_tricky_comm() -> Result<()> {
        let line = "1234 (a b) c) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 15 16 17";
        assert_eq!(parse_stat_ticks(line)?, 333);
        assert_eq!(parse_group_and_ticks(line)?, (2, 333));
        Ok(())
    }

    #[test]
    fn snmp_counters() {
        let v4 = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                  Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                  Udp: 2869984 8430 70642 2950432 70642 0\n\
                  UdpLite: InDatagrams RcvbufErrors\nUdpLite: 0 5\n";
        assert_eq!(snmp_field(v4, "Udp", "RcvbufErrors"), Some(70642));
        assert_eq!(snmp_field(v4, "UdpLite", "RcvbufErrors"), Some(5));
        assert_eq!(snmp_field(v4, "Tcp", "RcvbufErrors"), None);
        let v6 = "Udp6InDatagrams                 \t12\nUdp6RcvbufErrors                \t3\n";
        assert_eq!(snmp6_field(v6, "Udp6RcvbufErrors"), Some(3));
        assert_eq!(snmp6_field(v6, "Udp6SndbufErrors"), None);
    }

    #[test]
    fn own_process_is_readable() -> Result<()> {
        let pid = std::process::id();
        cpu_ticks(pid)?;
        waited_children_cpu_ticks()?;
        core_ticks(0)?;
        let own_group = std::fs::read_to_string("/proc/self/stat")?;
        let (group, _) = parse_group_and_ticks(&own_group)?;
        let group = u32::try_from(group)?;
        group_cpu_ticks(group)?;
        assert!(group_members(group)?.iter().any(|&(p, _)| p == pid));
        // Other tests' threads allocate meanwhile: compare with this process's
        // RSS on either side of the group's.
        let before = rss_bytes(pid)?;
        let group_rss = group_rss_bytes(group)?;
        let after = rss_bytes(pid)?;
        assert!(
            group_rss >= before.min(after),
            "{group_rss} < {before}/{after}"
        );
        assert!(rss_bytes(pid)? > 0);
        assert!(clock_ticks_per_second().0 > 0);
        Ok(())
    }
}
