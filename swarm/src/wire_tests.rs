#![allow(clippy::unwrap_used)]

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn hash(byte: u8) -> Hash {
    Hash::from_bytes([byte; 32])
}

fn get(ranges: RangeSpec) -> Request {
    Request::Get {
        hash: hash(7),
        ranges,
    }
}

/// Decodes `bytes` as a whole frame, checking that every strict prefix is `Incomplete`.
fn decode_whole<T: std::fmt::Debug + PartialEq>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<Decoded<T>, WireError>,
) -> T {
    for end in 0..bytes.len() {
        assert_eq!(
            decode(&bytes[..end]).unwrap(),
            Decoded::Incomplete,
            "prefix {end}"
        );
    }
    // Trailing bytes belong to whatever follows the frame and are not consumed.
    let mut longer = bytes.to_vec();
    longer.extend_from_slice(b"trailing");
    match decode(&longer).unwrap() {
        Decoded::Frame(frame, used) => {
            assert_eq!(used, bytes.len());
            frame
        }
        Decoded::Incomplete => panic!("whole frame reported incomplete"),
    }
}

#[test]
fn ping_is_two_bytes() {
    let bytes = Request::Ping.encode().unwrap();
    assert_eq!(bytes, [2, 1]);
    assert_eq!(decode_whole(&bytes, Request::decode), Request::Ping);
}

#[test]
fn protocol_md_examples() {
    let bytes = get(RangeSpec::all()).encode().unwrap();
    assert_eq!(bytes[..2], [2, 3]);
    assert_eq!(bytes[34..], [0, 1, 0x00]);

    let first_group = RangeSpec::from_boundaries(vec![0, 16]).unwrap();
    assert_eq!(get(first_group).encode().unwrap()[34..], [0, 2, 0x00, 0x10]);

    let last = get(RangeSpec::last_chunk()).encode().unwrap();
    assert_eq!(last[34..36], [0, 10]);
    assert_eq!(
        last[36..],
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
    );
    assert_eq!(last.len(), 46);
}

#[test]
fn requests_round_trip() {
    let ranges = RangeSpec::from_boundaries(vec![3, 5, 300, 1 << 40, u64::MAX]).unwrap();
    for request in [
        Request::Ping,
        Request::Have {
            hash: hash(1),
            ranges: ranges.clone(),
        },
        Request::Get {
            hash: hash(2),
            ranges,
        },
    ] {
        let bytes = request.encode().unwrap();
        assert_eq!(decode_whole(&bytes, Request::decode), request);
    }
}

#[test]
fn responses_round_trip() {
    let cases = [
        (RequestKind::Ping, Response::Pong),
        (
            RequestKind::Have,
            Response::Have(RangeSpec::from_boundaries(vec![0, 4, 9]).unwrap()),
        ),
        (RequestKind::Get, Response::Get { size: 0 }),
        (RequestKind::Get, Response::Get { size: u64::MAX }),
        (RequestKind::Get, Response::NotFound),
        (RequestKind::Have, Response::Overloaded),
    ];
    for (kind, response) in cases {
        let bytes = response.encode().unwrap();
        assert_eq!(
            decode_whole(&bytes, |b| Response::decode(kind, b)),
            response
        );
    }
    // The size is little-endian, as bao-tree writes it.
    assert_eq!(
        Response::Get { size: 1 }.encode().unwrap(),
        [0, 1, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn malformed_requests_are_typed_errors() {
    let mut header = vec![2, 3];
    header.extend_from_slice(&[0; 32]);
    let with_ranges = |len: u16, body: &[u8]| {
        let mut frame = header.clone();
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(body);
        Request::decode(&frame)
    };
    assert_eq!(Request::decode(&[1]), Err(WireError::UnsupportedVersion(1)));
    assert_eq!(Request::decode(&[2, 9]), Err(WireError::UnknownKind(9)));
    // Too large is known from the length field alone, before the body arrives.
    assert_eq!(
        with_ranges(1025, &[]),
        Err(WireError::TooLarge {
            len: 1025,
            limit: MAX_RANGES_LEN
        })
    );
    assert_eq!(with_ranges(0, &[]), Err(WireError::EmptyRanges));
    assert_eq!(with_ranges(2, &[0x80, 0x00]), Err(WireError::BadVarint));
    assert_eq!(with_ranges(1, &[0x80]), Err(WireError::BadVarint));
    assert_eq!(with_ranges(2, &[5, 0]), Err(WireError::NotIncreasing));
    let mut overflow = vec![0xff; 9];
    overflow.push(0x01);
    overflow.push(0x01);
    assert_eq!(with_ranges(11, &overflow), Err(WireError::NotIncreasing));
    let mut eleven = vec![0xff; 10];
    eleven.push(0x01);
    assert_eq!(with_ranges(11, &eleven), Err(WireError::BadVarint));
    let mut top = vec![0xff; 9];
    top.push(0x02);
    assert_eq!(with_ranges(10, &top), Err(WireError::BadVarint));
    assert_eq!(
        Response::decode(RequestKind::Get, &[7]),
        Err(WireError::UnknownStatus(7))
    );
    assert_eq!(
        WireError::TooLarge {
            len: 2000,
            limit: MAX_RANGES_LEN
        }
        .code(),
        ErrorCode::TooLarge
    );
    assert_eq!(WireError::BadVarint.code(), ErrorCode::Malformed);
}

#[test]
fn oversized_ranges_do_not_encode() {
    // 400 boundaries of three-byte varints exceed the 1024-byte limit.
    let boundaries: Vec<u64> = (1..=400).map(|i| i << 14).collect();
    let request = get(RangeSpec::from_boundaries(boundaries).unwrap());
    assert!(matches!(request.encode(), Err(WireError::TooLarge { .. })));
}

#[test]
fn error_codes_round_trip() {
    for code in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_u64(code.to_u32().into()), Some(code));
    }
    assert_eq!(ErrorCode::from_u64(0), None);
    assert_eq!(ErrorCode::from_u64(7), None);
}

#[test]
fn range_spec_matches_bao_tree_ranges() {
    assert_eq!(RangeSpec::all().to_chunk_ranges(), ChunkRanges::all());
    let spec = RangeSpec::from_boundaries(vec![2, 4, 10]).unwrap();
    let ranges = spec.to_chunk_ranges();
    assert_eq!(
        ranges,
        ChunkRanges::from(ChunkNum(2)..ChunkNum(4)) | ChunkRanges::from(ChunkNum(10)..)
    );
    assert_eq!(RangeSpec::from_chunk_ranges(&ranges), Some(spec));
    assert_eq!(RangeSpec::from_chunk_ranges(&ChunkRanges::empty()), None);
    assert_eq!(RangeSpec::from_boundaries(vec![]), None);
    assert_eq!(RangeSpec::from_boundaries(vec![3, 3]), None);
}

fn random_spec(rng: &mut StdRng) -> RangeSpec {
    let count = rng.random_range(1..=40);
    let mut boundaries = Vec::with_capacity(count);
    let mut next: u64 = rng.random_range(0..1 << 20);
    for _ in 0..count {
        boundaries.push(next);
        // Mix small steps with huge ones so every varint length shows up.
        let step = if rng.random_bool(0.1) {
            rng.random::<u64>() >> 1
        } else {
            rng.random_range(1..5000)
        };
        match next.checked_add(step) {
            Some(n) => next = n,
            None => break,
        }
    }
    RangeSpec::from_boundaries(boundaries).unwrap()
}

#[test]
fn random_valid_frames_round_trip() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for _ in 0..2000 {
        let spec = random_spec(&mut rng);
        assert_eq!(
            RangeSpec::from_chunk_ranges(&spec.to_chunk_ranges()),
            Some(spec.clone())
        );
        let request = if rng.random_bool(0.5) {
            Request::Have {
                hash: hash(rng.random()),
                ranges: spec.clone(),
            }
        } else {
            Request::Get {
                hash: hash(rng.random()),
                ranges: spec.clone(),
            }
        };
        let bytes = request.encode().unwrap();
        assert!(bytes.len() <= MAX_REQUEST_LEN);
        assert_eq!(
            Request::decode(&bytes).unwrap(),
            Decoded::Frame(request, bytes.len())
        );
        let response = Response::Have(spec);
        let bytes = response.encode().unwrap();
        let decoded = Response::decode(RequestKind::Have, &bytes).unwrap();
        assert_eq!(decoded, Decoded::Frame(response, bytes.len()));
    }
}

/// Random input never panics, and whatever decodes re-encodes to exactly the bytes
/// it was decoded from: the encoding is canonical, so a frame has one spelling.
#[test]
fn random_bytes_never_panic_and_decode_canonically() {
    let mut rng = StdRng::seed_from_u64(0xf1ee7);
    let mut frames = 0;
    for _ in 0..20_000 {
        let len = rng.random_range(0..=80);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        // Bias towards plausible headers so decoding gets past the first bytes.
        if len >= 36 && rng.random_bool(0.7) {
            bytes[0] = VERSION;
            bytes[1] = rng.random_range(1..=6);
            if bytes[1] >= 4 {
                let body = u32::try_from(rng.random_range(0..=len - 6)).unwrap();
                bytes[2..6].copy_from_slice(&body.to_be_bytes());
            } else {
                let body = u16::try_from(rng.random_range(0..=len - 36)).unwrap();
                bytes[34..36].copy_from_slice(&body.to_be_bytes());
            }
        }
        if let Ok(Decoded::Frame(request, used)) = Request::decode(&bytes) {
            assert!(used <= bytes.len());
            assert_eq!(request.encode().unwrap(), bytes[..used]);
            frames += 1;
        }
        for kind in [
            RequestKind::Ping,
            RequestKind::Have,
            RequestKind::Get,
            RequestKind::FetchUrl,
            RequestKind::PurgeLog,
        ] {
            if let Ok(Decoded::Frame(response, used)) = Response::decode(kind, &bytes) {
                assert!(used <= bytes.len());
                assert_eq!(response.encode().unwrap(), bytes[..used]);
            }
        }
    }
    // The bias must actually exercise the success path, or the property says little.
    assert!(
        frames > 100,
        "only {frames} random inputs decoded as requests"
    );
}

#[test]
fn messages_round_trip_within_their_limits() {
    let message = Bytes::from_static(b"GET / HTTP/1.1");
    for request in [
        Request::FetchUrl(message.clone()),
        Request::Purge(message.clone()),
        Request::PurgeLog(Bytes::new()),
    ] {
        let bytes = request.encode().unwrap();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode_whole(&bytes, Request::decode), request);
    }
    let fetch = Request::FetchUrl(message.clone()).encode().unwrap();
    assert_eq!(fetch[..6], [2, 4, 0, 0, 0, 14]);

    let over = Bytes::from(vec![0; MAX_MESSAGE_LEN + 1]);
    assert!(matches!(
        Request::Purge(over.clone()).encode(),
        Err(WireError::TooLarge { .. })
    ));
    let mut frame = vec![VERSION, 0x04];
    frame.extend_from_slice(&u32::try_from(MAX_MESSAGE_LEN + 1).unwrap().to_be_bytes());
    assert_eq!(
        Request::decode(&frame),
        Err(WireError::TooLarge {
            len: MAX_MESSAGE_LEN + 1,
            limit: MAX_MESSAGE_LEN
        })
    );

    // A URL response head is bounded by the message limit, a purge log by its own.
    let answer = Response::Message(message);
    let bytes = answer.encode().unwrap();
    let decode = |kind| move |b: &[u8]| Response::decode(kind, b);
    assert_eq!(decode_whole(&bytes, decode(RequestKind::FetchUrl)), answer);
    let log = Response::Message(over).encode().unwrap();
    assert!(matches!(
        Response::decode(RequestKind::FetchUrl, &log),
        Err(WireError::TooLarge { .. })
    ));
    assert!(matches!(
        Response::decode(RequestKind::PurgeLog, &log),
        Ok(Decoded::Frame(Response::Message(_), _))
    ));
}

#[test]
fn body_frames_round_trip_and_are_bounded() {
    let data = BodyFrame::Data(5);
    assert_eq!(data.encode().unwrap(), [0, 0, 0, 5]);
    assert_eq!(decode_whole(&[0, 0, 0, 5], BodyFrame::decode), data);
    let end = BodyFrame::End {
        hash: hash(9),
        size: 1 << 40,
    };
    let bytes = end.encode().unwrap();
    assert_eq!(bytes.len(), 44);
    assert_eq!(decode_whole(&bytes, BodyFrame::decode), end);
    assert!(BodyFrame::Data(0).encode().is_err());
    assert!(BodyFrame::Data(MAX_BODY_FRAME + 1).encode().is_err());
    let too_big = u32::try_from(MAX_BODY_FRAME + 1).unwrap().to_be_bytes();
    assert_eq!(
        BodyFrame::decode(&too_big),
        Err(WireError::TooLarge {
            len: MAX_BODY_FRAME + 1,
            limit: MAX_BODY_FRAME
        })
    );
}
