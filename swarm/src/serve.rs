//! The responding side: accepted connections, one request per bidirectional stream,
//! answered from the local store.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use fleetcache_store::{ReadError, Store};
use tokio::sync::{Semaphore, mpsc};
use tracing::Instrument;

use crate::identity::NodeName;
use crate::service::{BodyChunk, FleetService, UrlReply};
use crate::swarm::Counters;
use crate::wire::{
    BodyFrame, Decoded, ErrorCode, MAX_BODY_FRAME, MAX_MESSAGE_LEN, MAX_REQUEST_LEN, Request,
    RequestKind, Response,
};

/// Encoded bytes handed from the blocking encoder to the sending task at a time.
const SEND_CHUNK: usize = 256 * 1024;
/// Chunks in flight between the encoder and the sender.
const SEND_QUEUE: usize = 4;

/// What every stream handler shares.
#[derive(Debug)]
pub(crate) struct Responder {
    pub(crate) store: Store,
    pub(crate) counters: Arc<Counters>,
    /// GET streams being answered at once; past this a GET is answered OVERLOADED.
    pub(crate) uploads: Arc<Semaphore>,
    /// HAVE lookups at once: each is an index read on the blocking pool, and a
    /// flood of them must not crowd out everything else; past this a HAVE is
    /// answered OVERLOADED (the asker counts it as "not held here").
    pub(crate) lookups: Arc<Semaphore>,
    /// How long a requester may take to send its request.
    pub(crate) request_timeout: Duration,
    /// The gateway's answers to URL requests and purges, once installed.
    pub(crate) service: Arc<OnceLock<Arc<dyn FleetService>>>,
}

/// Answers every stream a peer opens until the connection ends.
pub(crate) async fn serve_connection(
    connection: quinn::Connection,
    name: NodeName,
    responder: Arc<Responder>,
) {
    // Unidirectional streams need no handling: the transport allows peers none.
    loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                let responder = responder.clone();
                let name = name.clone();
                tokio::spawn(
                    async move { responder.answer(send, recv, &name).await }.in_current_span(),
                );
            }
            Err(err) => {
                tracing::debug!("connection ended: {err}");
                return;
            }
        }
    }
}

impl Responder {
    async fn answer(
        &self,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        from: &NodeName,
    ) {
        let request = match self.read_request(&mut recv).await {
            Ok(request) => request,
            Err(code) => {
                tracing::debug!(?code, "bad request stream");
                let _ = recv.stop(code.to_u32().into());
                let _ = send.reset(code.to_u32().into());
                return;
            }
        };
        let result = match request {
            Request::Ping => write_header(&mut send, &Response::Pong).await,
            Request::Have { hash, ranges } => {
                // An index lookup only: a peer's miss must not open the object's
                // files or move it up this node's LRU order.
                let response = match self.lookups.clone().try_acquire_owned() {
                    Err(_) => {
                        self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
                        Response::Overloaded
                    }
                    Ok(permit) => {
                        let held = self.holds(hash).await;
                        drop(permit);
                        if held {
                            Response::Have(ranges)
                        } else {
                            Response::NotFound
                        }
                    }
                };
                write_header(&mut send, &response).await
            }
            Request::Get { hash, ranges } => {
                let span = tracing::debug_span!("upload", %hash);
                self.upload(&mut send, hash, ranges.to_chunk_ranges())
                    .instrument(span)
                    .await
            }
            Request::FetchUrl(request) => {
                let span = tracing::debug_span!("url_answer", asker = %from);
                self.answer_url(&mut send, from, request)
                    .instrument(span)
                    .await
            }
            Request::Purge(request) => {
                self.answer_message(&mut send, from, RequestKind::Purge, request)
                    .await
            }
            Request::PurgeLog(request) => {
                self.answer_message(&mut send, from, RequestKind::PurgeLog, request)
                    .await
            }
        };
        match result {
            Ok(()) => {
                let _ = send.finish();
            }
            Err(code) => {
                let _ = send.reset(code.to_u32().into());
            }
        }
    }

    /// Reads the whole request up to the requester's FIN, within the size limit.
    async fn read_request(&self, recv: &mut quinn::RecvStream) -> Result<Request, ErrorCode> {
        let read = tokio::time::timeout(self.request_timeout, recv.read_to_end(MAX_REQUEST_LEN));
        let bytes = match read.await {
            Err(_) => return Err(ErrorCode::Cancelled),
            Ok(Err(quinn::ReadToEndError::TooLong)) => return Err(ErrorCode::TooLarge),
            Ok(Err(_)) => return Err(ErrorCode::Cancelled),
            Ok(Ok(bytes)) => bytes,
        };
        match Request::decode(&bytes) {
            Ok(Decoded::Frame(request, used)) if used == bytes.len() => Ok(request),
            Ok(_) => Err(ErrorCode::Malformed),
            Err(err) => Err(err.code()),
        }
    }

    async fn holds(&self, hash: fleetcache_store::Hash) -> bool {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.contains(&hash)).await {
            Ok(Ok(found)) => found,
            Ok(Err(err)) => {
                tracing::warn!(%hash, "lookup for a peer failed: {err}");
                false
            }
            Err(_) => false,
        }
    }

    async fn lookup(&self, hash: fleetcache_store::Hash) -> Option<fleetcache_store::Blob> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.get(&hash)).await {
            Ok(Ok(blob)) => blob,
            Ok(Err(err)) => {
                tracing::warn!(%hash, "lookup for a peer failed: {err}");
                None
            }
            Err(_) => None,
        }
    }

    async fn upload(
        &self,
        send: &mut quinn::SendStream,
        hash: fleetcache_store::Hash,
        ranges: bao_tree::ChunkRanges,
    ) -> Result<(), ErrorCode> {
        let Ok(permit) = self.uploads.clone().try_acquire_owned() else {
            self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
            return write_header(send, &Response::Overloaded).await;
        };
        let Some(blob) = self.lookup(hash).await else {
            return write_header(send, &Response::NotFound).await;
        };
        write_header(send, &Response::Get { size: blob.size() }).await?;
        let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(SEND_QUEUE);
        let encoder = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            blob.encode_ranges_batched(&ranges, SEND_CHUNK, |pieces| {
                tx.blocking_send(pieces).map_err(|_| {
                    io::Error::new(io::ErrorKind::ConnectionReset, "requester went away")
                })
            })
        });
        let mut sent = 0u64;
        let mut send_failed = false;
        while let Some(mut pieces) = rx.recv().await {
            let len: u64 = pieces.iter().map(|piece| piece.len() as u64).sum();
            if let Err(err) = send.write_all_chunks(&mut pieces).await {
                tracing::debug!("requester stopped reading: {err}");
                send_failed = true;
                break;
            }
            sent += len;
        }
        // Dropping the receiver makes the encoder's next send fail, ending it.
        drop(rx);
        self.counters.bytes_sent.fetch_add(sent, Ordering::Relaxed);
        let result = encoder.await.map_err(|_| ErrorCode::Internal)?;
        match result {
            Ok(()) if !send_failed => {
                self.counters.uploads.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(()) | Err(ReadError::Output(_)) => Err(ErrorCode::Cancelled),
            Err(err @ ReadError::Corrupt { .. }) => {
                tracing::error!("stopped serving a peer: {err}");
                Err(ErrorCode::NotFound)
            }
            Err(err) => {
                tracing::warn!("serving a peer failed: {err}");
                Err(ErrorCode::Internal)
            }
        }
    }
}

impl Responder {
    /// A URL request for this node as the URL's owner: the gateway answers it
    /// (from its cache, or from its own single-flight origin fetch); the body is
    /// framed, hashed as it is sent, and ended with that hash and its size.
    async fn answer_url(
        &self,
        send: &mut quinn::SendStream,
        from: &NodeName,
        request: Bytes,
    ) -> Result<(), ErrorCode> {
        let Some(service) = self.service.get().cloned() else {
            return write_header(send, &Response::NotFound).await;
        };
        // URL answers share the upload limit: each one streams a body.
        let Ok(_permit) = self.uploads.clone().try_acquire_owned() else {
            self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
            return write_header(send, &Response::Overloaded).await;
        };
        let (head, mut body) = match service.fetch_url(from, request).await {
            UrlReply::Declined => return write_header(send, &Response::NotFound).await,
            UrlReply::Overloaded => {
                self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
                return write_header(send, &Response::Overloaded).await;
            }
            UrlReply::Response { head, body } => (head, body),
        };
        if head.len() > MAX_MESSAGE_LEN {
            tracing::warn!(len = head.len(), "URL response head over the limit");
            return Err(ErrorCode::Internal);
        }
        write_header(send, &Response::Message(head)).await?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        loop {
            match body.recv().await {
                Some(BodyChunk::Data(mut bytes)) => {
                    hasher.update(&bytes);
                    size += bytes.len() as u64;
                    while !bytes.is_empty() {
                        let part = bytes.split_to(bytes.len().min(MAX_BODY_FRAME));
                        let header = BodyFrame::Data(part.len())
                            .encode()
                            .map_err(|_| ErrorCode::Internal)?;
                        send.write_all(&header)
                            .await
                            .map_err(|_| ErrorCode::Cancelled)?;
                        send.write_chunk(part)
                            .await
                            .map_err(|_| ErrorCode::Cancelled)?;
                    }
                }
                Some(BodyChunk::End) => {
                    let hash = fleetcache_store::Hash::from_bytes(*hasher.finalize().as_bytes());
                    let end = BodyFrame::End { hash, size }
                        .encode()
                        .map_err(|_| ErrorCode::Internal)?;
                    send.write_all(&end)
                        .await
                        .map_err(|_| ErrorCode::Cancelled)?;
                    self.counters.bytes_sent.fetch_add(size, Ordering::Relaxed);
                    self.counters.url_answers.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Some(BodyChunk::Failed(reason)) => {
                    tracing::debug!(sent = size, "URL body failed: {reason}");
                    return Err(ErrorCode::Internal);
                }
                None => {
                    tracing::warn!(sent = size, "URL body ended without its end");
                    return Err(ErrorCode::Internal);
                }
            }
        }
    }

    /// A PURGE or PURGE_LOG: the gateway's answer, or NOT_FOUND if it declines.
    async fn answer_message(
        &self,
        send: &mut quinn::SendStream,
        from: &NodeName,
        kind: RequestKind,
        request: Bytes,
    ) -> Result<(), ErrorCode> {
        let Some(service) = self.service.get().cloned() else {
            return write_header(send, &Response::NotFound).await;
        };
        let answer = match kind {
            RequestKind::Purge => service.purge(from, request).await,
            _ => service.purge_log(from, request).await,
        };
        let response = answer.map_or(Response::NotFound, Response::Message);
        write_header(send, &response).await
    }
}

async fn write_header(send: &mut quinn::SendStream, response: &Response) -> Result<(), ErrorCode> {
    let frame = response.encode().map_err(|_| ErrorCode::Internal)?;
    send.write_all(&frame)
        .await
        .map_err(|_| ErrorCode::Cancelled)
}
