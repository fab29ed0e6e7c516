//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream`: one request
//! per connection (`Connection: close`), bodies streamed both ways. Enough
//! for readiness probes, ingest and correctness checks; not for timing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Socket timeout for connecting and for each read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Refuse response heads larger than this (a broken server, not a real one).
const MAX_HEAD: usize = 64 * 1024;

/// The status line and headers of a response.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request body: `len` bytes read from `reader`.
pub struct Upload<'a> {
    pub reader: &'a mut dyn Read,
    pub len: u64,
}

impl std::fmt::Debug for Upload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Sends one request and returns the head and the whole body in memory.
pub fn fetch(
    addr: SocketAddr,
    method: &str,
    path: &str,
    upload: Option<Upload<'_>>,
) -> Result<(Head, Vec<u8>)> {
    let mut body = Vec::new();
    let head = exchange(addr, method, path, upload, &mut body)?;
    Ok((head, body))
}

/// Sends one request and writes the response body to `sink`; returns the head.
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    upload: Option<Upload<'_>>,
    sink: &mut dyn Write,
) -> Result<Head> {
    let what = format!("{method} http://{addr}{path}");
    exchange_inner(addr, method, path, upload, sink).with_context(|| what)
}

/// The site every benchmark client names in `Host`: a cache keys URLs by
/// host, and every node of a fleet must see the same key, as the clients of a
/// CDN name one site whichever node they reach.
pub const SITE: &str = "site.bench";

fn exchange_inner(
    addr: SocketAddr,
    method: &str,
    path: &str,
    upload: Option<Upload<'_>>,
    sink: &mut dyn Write,
) -> Result<Head> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).context("connecting")?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;

    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {SITE}\r\nUser-Agent: fleetcache-benches\r\nConnection: close\r\n"
    );
    if let Some(upload) = &upload {
        head.push_str(&format!(
            "Content-Length: {}\r\nContent-Type: application/octet-stream\r\n",
            upload.len
        ));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .context("sending the request head")?;
    if let Some(upload) = upload {
        let sent = std::io::copy(&mut upload.reader.take(upload.len), &mut stream)
            .context("sending the request body")?;
        if sent != upload.len {
            bail!("request body ended after {sent} of {} bytes", upload.len);
        }
    }
    stream.flush()?;

    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let head = read_head(&mut reader)?;
    if method == "HEAD" || head.status == 204 || head.status == 304 {
        return Ok(head);
    }
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        read_chunked(&mut reader, sink)?;
    } else if let Some(len) = head.header("content-length") {
        let len: u64 = len
            .trim()
            .parse()
            .with_context(|| format!("bad Content-Length {len:?}"))?;
        let got = std::io::copy(&mut (&mut reader).take(len), sink).context("reading the body")?;
        if got != len {
            bail!("response body ended after {got} of {len} bytes");
        }
    } else {
        std::io::copy(&mut reader, sink).context("reading the body")?;
    }
    Ok(head)
}

fn read_line(reader: &mut impl BufRead, budget: &mut usize) -> Result<String> {
    let mut line = Vec::new();
    let n = reader
        .take(*budget as u64)
        .read_until(b'\n', &mut line)
        .context("reading the response head")?;
    if n == 0 {
        bail!("connection closed before a complete response head");
    }
    *budget = budget.saturating_sub(n);
    if !line.ends_with(b"\n") {
        bail!("response head too long or truncated");
    }
    let text = String::from_utf8(line).context("response head is not UTF-8")?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_head(reader: &mut impl BufRead) -> Result<Head> {
    let mut budget = MAX_HEAD;
    let status_line = read_line(reader, &mut budget)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x response: {status_line:?}");
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, &mut budget)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(Head { status, headers })
}

fn read_chunked(reader: &mut impl BufRead, sink: &mut dyn Write) -> Result<()> {
    loop {
        let mut budget = MAX_HEAD;
        let line = read_line(reader, &mut budget)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size line {line:?}"))?;
        if size == 0 {
            // Trailers, then the blank line.
            while !read_line(reader, &mut budget)?.is_empty() {}
            return Ok(());
        }
        let got = std::io::copy(&mut (&mut *reader).take(size), sink)?;
        if got != size {
            bail!("chunk ended after {got} of {size} bytes");
        }
        if !read_line(reader, &mut budget)?.is_empty() {
            bail!("missing CRLF after a chunk");
        }
    }
}
