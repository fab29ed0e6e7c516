//! The objects a fleetcache-vs-nginx comparison serves: random bytes on
//! disk, ingested into fleetcache, laid out for nginx at the same
//! `/blake3/<hash>` paths, and checked to come back identical from both
//! servers, over plain HTTP/1.1 or over HTTPS.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::http1::{self, Upload};
use crate::https::{self, Protocol, SelfSigned};

/// An object both servers serve.
#[derive(Debug, Clone)]
pub struct Object {
    pub size: u64,
    /// BLAKE3 hex.
    pub hash: String,
    /// The file nginx serves (`<root>/blake3/<hash>`).
    pub file: PathBuf,
}

impl Object {
    /// The URL path, the same on both servers.
    pub fn path(&self) -> String {
        format!("/blake3/{}", self.hash)
    }
}

/// Writes `size` random bytes to `<root>/blake3/<hash>`, hashing on the way.
pub fn create(root: &Path, size: u64) -> Result<Object> {
    let dir = root.join("blake3");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let staging = dir.join(format!(".staging-{size}"));
    let hash = crate::write_random_file(&staging, size)?
        .to_hex()
        .to_string();
    let file = dir.join(&hash);
    std::fs::rename(&staging, &file)
        .with_context(|| format!("renaming {} to {}", staging.display(), file.display()))?;
    Ok(Object { size, hash, file })
}

/// `POST /blobs` on fleetcache's admin listener; checks the reported hash.
pub fn ingest(admin: SocketAddr, object: &Object) -> Result<()> {
    let mut file =
        File::open(&object.file).with_context(|| format!("opening {}", object.file.display()))?;
    let upload = Upload {
        reader: &mut file,
        len: object.size,
    };
    let (head, body) = http1::fetch(admin, "POST", "/blobs", Some(upload))?;
    let text = String::from_utf8_lossy(&body);
    if head.status != 200 && head.status != 201 {
        bail!("ingest answered {}: {text}", head.status);
    }
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("ingest response {text:?}"))?;
    let hash = json.get("hash").and_then(|v| v.as_str());
    let size = json.get("size").and_then(serde_json::Value::as_u64);
    ensure!(
        hash == Some(object.hash.as_str()) && size == Some(object.size),
        "fleetcache stored {text} but the object is {{hash: {}, size: {}}}",
        object.hash,
        object.size
    );
    Ok(())
}

/// GETs the object from `addr` over plain HTTP/1.1 and checks status,
/// length and content: byte for byte if `expect` is given, else by BLAKE3
/// hash (streamed).
pub fn check(server: &str, addr: SocketAddr, object: &Object, expect: Option<&[u8]>) -> Result<()> {
    let path = object.path();
    let what = format!("{server} GET http://{addr}{path}");
    check_response(&what, object, expect, |sink| {
        let head = http1::exchange(addr, "GET", &path, None, sink)?;
        let length = head.header("content-length").map(str::to_owned);
        Ok((head.status, length))
    })
}

/// [`check`] over HTTPS, with `protocol` negotiated by ALPN.
pub fn check_https(
    server: &str,
    cert: &SelfSigned,
    addr: SocketAddr,
    protocol: Protocol,
    object: &Object,
    expect: Option<&[u8]>,
) -> Result<()> {
    let path = object.path();
    let what = format!("{server} GET https://{addr}{path} ({})", protocol.alpn());
    check_response(&what, object, expect, |sink| {
        let reply = https::get(cert, addr, protocol, &path, sink)?;
        Ok((reply.status, reply.content_length))
    })
}

/// Runs `fetch` (which writes the body to its sink and returns the status
/// and Content-Length) and checks what came back against `object`.
fn check_response(
    what: &str,
    object: &Object,
    expect: Option<&[u8]>,
    fetch: impl FnOnce(&mut dyn Write) -> Result<(u16, Option<String>)>,
) -> Result<()> {
    let mut hasher = blake3::Hasher::new();
    let mut bytes = Vec::new();
    let (status, length) = if expect.is_some() {
        fetch(&mut bytes)?
    } else {
        fetch(&mut hasher)?
    };
    ensure!(status == 200, "{what}: status {status}");
    ensure!(
        length.as_deref() == Some(object.size.to_string().as_str()),
        "{what}: Content-Length {length:?}, expected {}",
        object.size
    );
    match expect {
        Some(expect) => ensure!(bytes == expect, "{what}: body differs from the object"),
        None => {
            let got = hasher.finalize().to_hex();
            ensure!(
                got.as_str() == object.hash,
                "{what}: body hashes to {got}, expected {}",
                object.hash
            );
        }
    }
    Ok(())
}
