//! The test objects: random bytes on disk, ingested into fleetcache, laid
//! out for nginx at the same `/blake3/<hash>` paths, and checked to come
//! back identical from both servers.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use fleetcache_benches::http1::{self, Upload};

/// An object both servers serve.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub(crate) size: u64,
    /// BLAKE3 hex.
    pub(crate) hash: String,
    /// The file nginx serves (`<root>/blake3/<hash>`).
    pub(crate) file: PathBuf,
}

impl Object {
    /// The URL path, the same on both servers.
    pub(crate) fn path(&self) -> String {
        format!("/blake3/{}", self.hash)
    }
}

/// Writes `size` random bytes to `<root>/blake3/<hash>`, hashing on the way.
pub(crate) fn create(root: &Path, size: u64) -> Result<Object> {
    let dir = root.join("blake3");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let staging = dir.join(format!(".staging-{size}"));
    let hash = fleetcache_benches::write_random_file(&staging, size)?
        .to_hex()
        .to_string();
    let file = dir.join(&hash);
    std::fs::rename(&staging, &file)
        .with_context(|| format!("renaming {} to {}", staging.display(), file.display()))?;
    Ok(Object { size, hash, file })
}

/// `POST /blobs` on fleetcache's admin listener; checks the reported hash.
pub(crate) fn ingest(admin: SocketAddr, object: &Object) -> Result<()> {
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

/// GETs the object from `addr` and checks status, length and content:
/// byte for byte if `expect` is given, else by BLAKE3 hash (streamed).
pub(crate) fn check(
    server: &str,
    addr: SocketAddr,
    object: &Object,
    expect: Option<&[u8]>,
) -> Result<()> {
    let path = object.path();
    let mut hasher = blake3::Hasher::new();
    let mut bytes = Vec::new();
    let head = if expect.is_some() {
        http1::exchange(addr, "GET", &path, None, &mut bytes)?
    } else {
        http1::exchange(addr, "GET", &path, None, &mut hasher)?
    };
    let what = format!("{server} GET {path}");
    ensure!(head.status == 200, "{what}: status {}", head.status);
    let length = head.header("content-length");
    ensure!(
        length == Some(object.size.to_string().as_str()),
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
