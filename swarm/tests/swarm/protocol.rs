//! A fleet member with a valid certificate but hostile requests: every malformed frame
//! is answered with the documented stream error code, the node keeps serving, and good
//! requests get verifiable answers.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bao_tree::io::BaoContentItem;
use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::{BaoTree, BlockSize, ChunkRanges};
use fleetcache_store::Hash;
use fleetcache_swarm::{
    Decoded, ErrorCode, FLEET_SERVER_NAME, FleetCa, RangeSpec, Request, RequestKind, Response,
};

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(10);

async fn connect(ca: &FleetCa, addr: SocketAddr) -> quinn::Connection {
    let mut endpoint = quinn::Endpoint::client((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    endpoint.set_default_client_config(identity(ca, "requester").quic_client_config().unwrap());
    endpoint
        .connect(addr, FLEET_SERVER_NAME)
        .unwrap()
        .await
        .unwrap()
}

/// Sends raw bytes as one request; returns the reply or the stream error code.
async fn exchange(connection: &quinn::Connection, frame: &[u8]) -> Result<Vec<u8>, u64> {
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    // The responder may reset before reading everything.
    let _ = send.write_all(frame).await;
    let _ = send.finish();
    let read = tokio::time::timeout(DEADLINE, recv.read_to_end(64 << 20)).await;
    match read.expect("responder answered in time") {
        Ok(bytes) => Ok(bytes),
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => Err(code.into_inner()),
        Err(other) => panic!("unexpected stream error: {other}"),
    }
}

fn code(code: ErrorCode) -> u64 {
    u64::from(code.to_u32())
}

fn get(hash: Hash, ranges: RangeSpec) -> Vec<u8> {
    Request::Get { hash, ranges }.encode().unwrap()
}

#[tokio::test]
async fn malformed_requests_get_their_error_code_and_the_node_keeps_serving() {
    let ca = FleetCa::generate("fleet").unwrap();
    let node = start(&ca, (Ipv4Addr::LOCALHOST, 0).into(), &[], 8);
    let connection = connect(&ca, node.addr).await;
    let hash = put(&node.store, &pattern(1000));

    let mut ranges_too_long = vec![2, 3];
    ranges_too_long.extend_from_slice(hash.as_bytes());
    ranges_too_long.extend_from_slice(&2000u16.to_be_bytes());
    let mut empty_ranges = vec![2, 3];
    empty_ranges.extend_from_slice(hash.as_bytes());
    empty_ranges.extend_from_slice(&0u16.to_be_bytes());
    let mut non_minimal_varint = vec![2, 3];
    non_minimal_varint.extend_from_slice(hash.as_bytes());
    non_minimal_varint.extend_from_slice(&[0, 2, 0x80, 0x00]);
    let mut trailing = Request::Ping.encode().unwrap();
    trailing.push(0);
    let truncated = get(hash, RangeSpec::all())[..20].to_vec();

    let cases: [(&str, Vec<u8>, ErrorCode); 9] = [
        ("version 1", vec![1, 1], ErrorCode::UnsupportedVersion),
        ("unknown kind", vec![2, 9], ErrorCode::Malformed),
        (
            "ranges over the limit",
            ranges_too_long,
            ErrorCode::TooLarge,
        ),
        ("empty ranges", empty_ranges, ErrorCode::Malformed),
        (
            "non-minimal varint",
            non_minimal_varint,
            ErrorCode::Malformed,
        ),
        ("bytes after the frame", trailing, ErrorCode::Malformed),
        ("frame cut short", truncated, ErrorCode::Malformed),
        ("nothing at all", Vec::new(), ErrorCode::Malformed),
        ("a megabyte of junk", vec![2; 1 << 20], ErrorCode::TooLarge),
    ];
    for (what, frame, expected) in cases {
        assert_eq!(
            exchange(&connection, &frame).await,
            Err(code(expected)),
            "{what}"
        );
    }

    // Unidirectional streams are not part of the protocol: the node allows none.
    let uni = tokio::time::timeout(Duration::from_millis(300), connection.open_uni()).await;
    assert!(uni.is_err(), "a unidirectional stream was allowed");

    // The same connection still works.
    let pong = exchange(&connection, &Request::Ping.encode().unwrap())
        .await
        .unwrap();
    assert_eq!(
        Response::decode(RequestKind::Ping, &pong),
        Ok(Decoded::Frame(Response::Pong, 1))
    );
}

#[tokio::test]
async fn answers_decode_against_the_hash() {
    let ca = FleetCa::generate("fleet").unwrap();
    let node = start(&ca, (Ipv4Addr::LOCALHOST, 0).into(), &[], 8);
    let connection = connect(&ca, node.addr).await;
    let data = pattern(300_000);
    let hash = put(&node.store, &data);

    let have = Request::Have {
        hash,
        ranges: RangeSpec::all(),
    }
    .encode()
    .unwrap();
    let reply = exchange(&connection, &have).await.unwrap();
    assert!(matches!(
        Response::decode(RequestKind::Have, &reply),
        Ok(Decoded::Frame(Response::Have(_), _))
    ));
    let unknown = Hash::from(blake3::hash(b"unknown"));
    let reply = exchange(&connection, &get(unknown, RangeSpec::all()))
        .await
        .unwrap();
    assert_eq!(
        Response::decode(RequestKind::Get, &reply),
        Ok(Decoded::Frame(Response::NotFound, 1))
    );

    for spec in [
        RangeSpec::all(),
        RangeSpec::last_chunk(),
        RangeSpec::from_boundaries(vec![40, 100]).unwrap(),
    ] {
        let reply = exchange(&connection, &get(hash, spec.clone()))
            .await
            .unwrap();
        let Ok(Decoded::Frame(Response::Get { size }, used)) =
            Response::decode(RequestKind::Get, &reply)
        else {
            panic!("not a GET answer: {:?}", &reply[..reply.len().min(16)]);
        };
        assert_eq!(size, data.len() as u64);
        let ranges: ChunkRanges = spec.to_chunk_ranges();
        let tree = BaoTree::new(size, BlockSize::from_chunk_log(4));
        let root = blake3::Hash::from_bytes(*hash.as_bytes());
        let mut leaves = 0;
        for item in DecodeResponseIter::new(root, tree, &reply[used..], &ranges) {
            if let BaoContentItem::Leaf(leaf) = item.expect("verifies") {
                let at = leaf.offset as usize;
                assert_eq!(leaf.data[..], data[at..at + leaf.data.len()]);
                leaves += 1;
            }
        }
        assert!(leaves > 0);
    }
}

#[tokio::test]
async fn uploads_past_the_limit_are_told_overloaded() {
    let ca = FleetCa::generate("fleet").unwrap();
    let node = start(&ca, (Ipv4Addr::LOCALHOST, 0).into(), &[], 1);
    let connection = connect(&ca, node.addr).await;
    let hash = put(&node.store, &pattern(64 << 20));

    // A GET nobody reads holds the only upload slot once flow control stops it.
    let (mut send, _held) = connection.open_bi().await.unwrap();
    send.write_all(&get(hash, RangeSpec::all())).await.unwrap();
    send.finish().unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let reply = exchange(&connection, &get(hash, RangeSpec::last_chunk()))
            .await
            .unwrap();
        if Response::decode(RequestKind::Get, &reply) == Ok(Decoded::Frame(Response::Overloaded, 1))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never overloaded");
    }
    assert!(node.swarm.stats().overloaded >= 1);
}
