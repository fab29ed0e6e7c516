//! A fleet member that lies: a real QUIC endpoint with a valid fleet certificate that
//! speaks the wire protocol for one object, but damages large GET answers in a chosen
//! way. Small answers (the size proof) are honest unless the lie is about the size.
//! As a URL's owner it answers every FETCH_URL with that object as a cacheable 200,
//! damaged by the `Url*` lies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bao_tree::BlockSize;
use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::io::sync::encode_ranges_validated;
use fleetcache_store::Hash;
use fleetcache_swarm::{BodyFrame, Decoded, NodeIdentity, Request, Response};

/// Answers bigger than this count as "the data", smaller ones as proofs.
const PROOF_MAX: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// Flip one bit in the middle of the data stream.
    FlipBit,
    /// Finish the stream cleanly halfway through the data.
    Truncate,
    /// Claim a size one group larger than the real one, on every GET.
    WrongSize,
    /// Send half the data, then nothing, keeping the stream open.
    Stall,
    /// Answer HAVE, but never a byte of any GET.
    Silent,
    /// Claim the largest size there is.
    HugeSize,
    /// A URL answer whose closing hash is not the hash of the bytes sent.
    UrlWrongHash,
    /// A URL answer whose closing size is one more than the bytes sent.
    UrlWrongSize,
    /// A URL answer that finishes the stream halfway, without its end frame.
    UrlCut,
    /// Never answers a URL request (holds the stream open).
    UrlSilent,
    /// Honest, but answers a size proof only once a GET for the data has arrived
    /// (or after 10 s, counted in `Liar::proofs_unpaired`): a requester that waits
    /// for the proof before asking for the data pays that time.
    ProofAfterData,
}

/// What the `ProofAfterData` holder has seen.
#[derive(Default)]
struct Pairing {
    data_asked: std::sync::atomic::AtomicBool,
    arrived: tokio::sync::Notify,
    unpaired: AtomicU64,
}

pub struct Liar {
    pub addr: SocketAddr,
    endpoint: quinn::Endpoint,
    data: Arc<Mutex<Arc<Vec<u8>>>>,
    pub gets: Arc<AtomicU64>,
    pairing: Arc<Pairing>,
}

impl Liar {
    /// Binds on loopback; it holds nothing until [`Liar::hold`].
    pub fn start(identity: &NodeIdentity, lie: Lie) -> Liar {
        let config = identity.quic_server_config().expect("server config");
        let endpoint =
            quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).expect("bind liar");
        let addr = endpoint.local_addr().unwrap();
        let data = Arc::new(Mutex::new(Arc::new(Vec::new())));
        let gets = Arc::new(AtomicU64::new(0));
        let accept = endpoint.clone();
        let pairing = Arc::new(Pairing::default());
        let (shared, counter, paired) = (data.clone(), gets.clone(), pairing.clone());
        tokio::spawn(async move {
            while let Some(incoming) = accept.accept().await {
                let (shared, counter, paired) = (shared.clone(), counter.clone(), paired.clone());
                tokio::spawn(async move {
                    let Ok(connection) = incoming.await else {
                        return;
                    };
                    while let Ok((send, recv)) = connection.accept_bi().await {
                        let data = shared.lock().unwrap().clone();
                        let paired = paired.clone();
                        tokio::spawn(answer(send, recv, data, lie, counter.clone(), paired));
                    }
                });
            }
        });
        Liar {
            addr,
            endpoint,
            data,
            gets,
            pairing,
        }
    }

    /// Size proofs it had to answer without a data GET having arrived.
    pub fn proofs_unpaired(&self) -> u64 {
        self.pairing.unpaired.load(Ordering::Relaxed)
    }

    /// The object it claims to hold (and damages).
    pub fn hold(&self, data: Vec<u8>) -> Hash {
        let hash = Hash::from(blake3::hash(&data));
        *self.data.lock().unwrap() = Arc::new(data);
        hash
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"bye");
    }
}

async fn answer(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    data: Arc<Vec<u8>>,
    lie: Lie,
    gets: Arc<AtomicU64>,
    pairing: Arc<Pairing>,
) {
    let hash = Hash::from(blake3::hash(&data));
    let Ok(frame) = recv.read_to_end(fleetcache_swarm::MAX_REQUEST_LEN).await else {
        return;
    };
    let Ok(Decoded::Frame(request, _)) = Request::decode(&frame) else {
        return;
    };
    let reply = match request {
        Request::Ping => Response::Pong.encode().unwrap(),
        Request::Have {
            hash: asked,
            ranges,
        } if asked == hash => Response::Have(ranges).encode().unwrap(),
        Request::Get { hash: asked, .. } if asked == hash && lie == Lie::Silent => {
            gets.fetch_add(1, Ordering::Relaxed);
            // Hold the stream open without a byte until the requester gives up.
            let _ = send.stopped().await;
            return;
        }
        Request::Get {
            hash: asked,
            ranges,
        } if asked == hash => {
            gets.fetch_add(1, Ordering::Relaxed);
            if lie == Lie::ProofAfterData {
                if ranges.boundaries() == [u64::MAX] {
                    let arrived = pairing.arrived.notified();
                    if !pairing.data_asked.load(Ordering::SeqCst)
                        && tokio::time::timeout(Duration::from_secs(10), arrived)
                            .await
                            .is_err()
                    {
                        pairing.unpaired.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    pairing.data_asked.store(true, Ordering::SeqCst);
                    pairing.arrived.notify_waiters();
                }
            }
            let size = data.len() as u64;
            let outboard = PreOrderMemOutboard::create(&data[..], BlockSize::from_chunk_log(4));
            let mut encoded = Vec::new();
            encode_ranges_validated(
                &data[..],
                &outboard,
                &ranges.to_chunk_ranges(),
                &mut encoded,
            )
            .unwrap();
            let claimed = match lie {
                Lie::WrongSize => size + 16 * 1024,
                Lie::HugeSize => u64::MAX,
                _ => size,
            };
            let mut reply = Response::Get { size: claimed }.encode().unwrap();
            let is_data = encoded.len() > PROOF_MAX;
            match lie {
                Lie::FlipBit if is_data => {
                    let middle = encoded.len() / 2;
                    encoded[middle] ^= 0x01;
                }
                Lie::Truncate if is_data => encoded.truncate(encoded.len() / 2),
                Lie::Stall if is_data => {
                    encoded.truncate(encoded.len() / 2);
                    reply.extend_from_slice(&encoded);
                    let _ = send.write_all(&reply).await;
                    // Hold the stream open, sending nothing, until the requester gives up.
                    let _ = send.stopped().await;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                _ => {}
            }
            reply.extend_from_slice(&encoded);
            reply
        }
        Request::FetchUrl(_) if lie == Lie::UrlSilent => {
            let _ = send.stopped().await;
            return;
        }
        Request::FetchUrl(_) => url_answer(&data, lie),
        _ => Response::NotFound.encode().unwrap(),
    };
    let _ = send.write_all(&reply).await;
    let _ = send.finish();
    let _ = send.stopped().await;
}

/// A FETCH_URL answer carrying `data` as a 200 with `max-age=300`, damaged as `lie`
/// says. The head is written out by hand in the gateway's format (see
/// `swarm/PROTOCOL.md`, *URL requests*), which also pins that format.
fn url_answer(data: &[u8], lie: Lie) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut entry = vec![1];
    entry.extend_from_slice(&200u16.to_be_bytes());
    entry.extend_from_slice(&now.to_be_bytes());
    entry.extend_from_slice(&now.to_be_bytes());
    let length = data.len().to_string();
    let fields = [
        ("cache-control", "max-age=300"),
        ("content-length", length.as_str()),
    ];
    entry.push(fields.len() as u8);
    for (name, value) in fields {
        entry.push(name.len() as u8);
        entry.extend_from_slice(name.as_bytes());
        entry.push(value.len() as u8);
        entry.extend_from_slice(value.as_bytes());
    }
    entry.push(0); // no Surrogate-Control
    entry.push(0); // no Vary
    let mut head = vec![1, 0];
    head.extend_from_slice(&200u16.to_be_bytes());
    head.extend_from_slice(&(data.len() as u64).to_be_bytes());
    head.extend_from_slice(&entry);

    let mut out = Response::Message(head.into()).encode().unwrap();
    let sent = if lie == Lie::UrlCut {
        &data[..data.len() / 2]
    } else {
        data
    };
    for chunk in sent.chunks(64 * 1024) {
        out.extend_from_slice(&BodyFrame::Data(chunk.len()).encode().unwrap());
        out.extend_from_slice(chunk);
    }
    if lie == Lie::UrlCut {
        return out;
    }
    let (hash, size) = match lie {
        Lie::UrlWrongHash => (
            Hash::from(blake3::hash(b"something else")),
            data.len() as u64,
        ),
        Lie::UrlWrongSize => (Hash::from(blake3::hash(data)), data.len() as u64 + 1),
        _ => (Hash::from(blake3::hash(data)), data.len() as u64),
    };
    out.extend_from_slice(&BodyFrame::End { hash, size }.encode().unwrap());
    out
}
