//! The UDP sockets under the node's QUIC endpoints (the swarm's, and the
//! gateway's HTTP/3 one), with receive and send buffers larger than the
//! kernel's default.
//!
//! A busy endpoint does not always drain its socket in time: with the
//! default receive buffer (`net.core.rmem_default`, 208 KiB on Linux) the
//! kernel drops the datagrams of a burst from many connections
//! (`RcvbufErrors` in `/proc/net/snmp`), and every drop is a loss for QUIC
//! to detect and repair, with its congestion window cut.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

/// The receive and send buffer asked for on every QUIC socket. The kernel
/// caps it at `net.core.rmem_max` / `net.core.wmem_max`.
pub const UDP_BUFFER_BYTES: usize = 4 << 20;

/// What `getsockopt` reports for `SO_RCVBUF` when `asked` bytes were
/// granted in full: Linux doubles the value it stores (for its own
/// bookkeeping) and reports that.
fn reported_when_granted(asked: usize) -> usize {
    if cfg!(target_os = "linux") {
        asked.saturating_mul(2)
    } else {
        asked
    }
}

/// The buffer sizes a socket has, as the kernel reports them (on Linux twice
/// what it granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UdpBuffers {
    /// `SO_RCVBUF`.
    pub(crate) recv: usize,
    /// `SO_SNDBUF`.
    pub(crate) send: usize,
}

/// Binds a UDP socket on `addr` with receive and send buffers of `bytes`,
/// or as much as the kernel allows: a cap is logged at warn, naming `what`
/// (`swarm`, `http3`) and the sysctl to raise, and is not an error.
pub(crate) fn bind_udp(
    addr: SocketAddr,
    bytes: usize,
    what: &str,
) -> io::Result<(std::net::UdpSocket, UdpBuffers)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Failing to resize is not fatal: the socket works with what it has.
    if let Err(err) = socket.set_recv_buffer_size(bytes) {
        tracing::warn!(socket = what, "setting SO_RCVBUF to {bytes}: {err}");
    }
    if let Err(err) = socket.set_send_buffer_size(bytes) {
        tracing::warn!(socket = what, "setting SO_SNDBUF to {bytes}: {err}");
    }
    let buffers = UdpBuffers {
        recv: socket.recv_buffer_size()?,
        send: socket.send_buffer_size()?,
    };
    let full = reported_when_granted(bytes);
    for (granted, which, sysctl) in [
        (buffers.recv, "receive", "net.core.rmem_max"),
        (buffers.send, "send", "net.core.wmem_max"),
    ] {
        if granted < full {
            tracing::warn!(
                socket = what,
                asked = bytes,
                granted,
                "the kernel capped this UDP socket's {which} buffer; raise {sysctl} to at \
                 least {bytes} to avoid dropped datagrams under load"
            );
        }
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok((socket.into(), buffers))
}

/// A quinn server endpoint on a socket from [`bind_udp`] with
/// [`UDP_BUFFER_BYTES`] buffers: what `quinn::Endpoint::server` does, plus
/// the buffers. Must run inside a tokio runtime.
pub fn quic_server_endpoint(
    config: quinn::ServerConfig,
    addr: SocketAddr,
    what: &str,
) -> io::Result<quinn::Endpoint> {
    let (socket, _) = bind_udp(addr, UDP_BUFFER_BYTES, what)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| io::Error::other("no async runtime for the QUIC endpoint"))?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        Arc::clone(&runtime),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What the kernel grants at most, as it reports it: `net.core.*mem_max`
    /// doubled on Linux; unknown elsewhere (then `asked` is expected).
    fn granted_at_most(sysctl: &str, asked: usize) -> usize {
        let max = std::fs::read_to_string(format!("/proc/sys/net/core/{sysctl}"))
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok())
            .unwrap_or(asked);
        reported_when_granted(asked.min(max))
    }

    #[test]
    fn sockets_get_the_buffers_the_kernel_allows() {
        let asked = UDP_BUFFER_BYTES;
        let (socket, buffers) = bind_udp("127.0.0.1:0".parse().unwrap(), asked, "test").unwrap();
        assert!(socket.local_addr().unwrap().port() != 0);
        assert!(
            buffers.recv >= granted_at_most("rmem_max", asked),
            "{buffers:?}"
        );
        assert!(
            buffers.send >= granted_at_most("wmem_max", asked),
            "{buffers:?}"
        );
        // What was reported is what the socket has.
        let sock = socket2::SockRef::from(&socket);
        assert_eq!(sock.recv_buffer_size().unwrap(), buffers.recv);
        assert_eq!(sock.send_buffer_size().unwrap(), buffers.send);
    }

    #[test]
    fn ipv6_sockets_too() {
        // Machines without IPv6 on loopback cannot bind [::1]; nothing to test there.
        let Ok((socket, buffers)) = bind_udp("[::1]:0".parse().unwrap(), 1 << 20, "test") else {
            return;
        };
        assert!(socket.local_addr().unwrap().is_ipv6());
        assert!(buffers.recv >= granted_at_most("rmem_max", 1 << 20));
    }
}
