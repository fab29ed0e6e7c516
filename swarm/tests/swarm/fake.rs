//! A fleet member that misbehaves for the multi-source tests: a real QUIC endpoint with
//! a valid fleet certificate that answers PING, HAVE and GET for one object, honestly
//! for size proofs (the last chunk alone) and in a chosen bad way for data.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bao_tree::BlockSize;
use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::io::sync::encode_ranges_validated;
use fleetcache_store::Hash;
use fleetcache_swarm::{Decoded, NodeIdentity, Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Flips one bit halfway through every data answer.
    FlipBit,
    /// Sends half of its first data answer, then closes its endpoint: a holder that
    /// dies in the middle of a piece.
    DieMidway,
}

pub struct FakeHolder {
    pub addr: SocketAddr,
    endpoint: quinn::Endpoint,
    /// Data GETs (anything but a size proof) it was asked.
    pub data_gets: Arc<AtomicU64>,
}

impl FakeHolder {
    pub fn start(identity: &NodeIdentity, data: Vec<u8>, how: Misbehaviour) -> FakeHolder {
        let config = identity.quic_server_config().unwrap();
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        // Encoded once: a fake that hashed 16 MiB per request would be the slowest
        // holder every time, hedged away before its misbehaviour was ever read.
        let outboard = PreOrderMemOutboard::create(&data[..], BlockSize::from_chunk_log(4));
        let data = Arc::new(Object { data, outboard });
        let data_gets = Arc::new(AtomicU64::new(0));
        let (accept, gets) = (endpoint.clone(), data_gets.clone());
        tokio::spawn(async move {
            while let Some(incoming) = accept.accept().await {
                let (data, gets, endpoint) = (data.clone(), gets.clone(), accept.clone());
                tokio::spawn(async move {
                    let Ok(connection) = incoming.await else {
                        return;
                    };
                    while let Ok((send, recv)) = connection.accept_bi().await {
                        let answer = Answer {
                            data: data.clone(),
                            gets: gets.clone(),
                            endpoint: endpoint.clone(),
                            how,
                        };
                        tokio::spawn(answer.run(send, recv));
                    }
                });
            }
        });
        FakeHolder {
            addr,
            endpoint,
            data_gets,
        }
    }
}

impl Drop for FakeHolder {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"bye");
    }
}

struct Object {
    data: Vec<u8>,
    outboard: PreOrderMemOutboard,
}

struct Answer {
    data: Arc<Object>,
    gets: Arc<AtomicU64>,
    endpoint: quinn::Endpoint,
    how: Misbehaviour,
}

impl Answer {
    async fn run(self, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
        let hash = Hash::from(self.data.outboard.root);
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
            Request::Get {
                hash: asked,
                ranges,
            } if asked == hash => {
                let proof = ranges.boundaries() == [u64::MAX];
                let mut encoded = Vec::new();
                encode_ranges_validated(
                    &self.data.data[..],
                    &self.data.outboard,
                    &ranges.to_chunk_ranges(),
                    &mut encoded,
                )
                .unwrap();
                let mut reply = Response::Get {
                    size: self.data.data.len() as u64,
                }
                .encode()
                .unwrap();
                if !proof {
                    self.gets.fetch_add(1, Ordering::Relaxed);
                    match self.how {
                        Misbehaviour::FlipBit => {
                            let middle = encoded.len() / 2;
                            encoded[middle] ^= 0x01;
                        }
                        Misbehaviour::DieMidway => {
                            encoded.truncate(encoded.len() / 2);
                            reply.extend_from_slice(&encoded);
                            let _ = send.write_all(&reply).await;
                            self.endpoint.close(0u32.into(), b"died");
                            return;
                        }
                    }
                }
                reply.extend_from_slice(&encoded);
                reply
            }
            _ => Response::NotFound.encode().unwrap(),
        };
        let _ = send.write_all(&reply).await;
        let _ = send.finish();
        let _ = send.stopped().await;
    }
}
