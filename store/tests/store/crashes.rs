//! Stores killed with SIGKILL mid-work (a child test process writing or only
//! reading) reopen whole: no record without its blob, nothing lost that was
//! committed, fsck clean.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleetcache_store::{Hash, Store, WriteError, fsck};

use crate::support::{KIB, new_record, options, pattern, read_all};

const CHILD_ENV: &str = "FLEETCACHE_RECORDS_CRASH_CHILD";

/// Not a test on its own: the body of the child process the crash test kills. It writes
/// until killed (or for at most a minute, should the parent die first).
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let round: u64 = std::env::var("FLEETCACHE_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    // Small, so eviction runs all the time.
    let store = Store::open(options(Path::new(&dir), 4 << 20)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let store = store.clone();
            s.spawn(move || {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    let seed = (round << 40) | (t << 32) | i;
                    let size = [100, 20 * KIB, 200 * KIB, 500 * KIB][(i % 4) as usize];
                    let key = format!("k{round}-{t}-{i}");
                    let mut ingest = store.ingest(None).unwrap();
                    ingest.write(&pattern(size, seed)).unwrap();
                    ingest
                        .attach_record(new_record(&key, "", &["kill"], &key))
                        .unwrap();
                    let hash = ingest.finish().unwrap().hash;
                    println!("committed {key} {hash}");
                    // Other record traffic in the same batches, on other keys.
                    let extra = format!("x{round}-{t}-{i}");
                    match store.put_record(hash, new_record(&extra, "", &["extra"], "")) {
                        Ok(_) | Err(WriteError::BlobNotFound { .. }) => {}
                        Err(err) => panic!("{err}"),
                    }
                    if i.is_multiple_of(5) {
                        store.remove_records_by_tag(b"extra").unwrap();
                    }
                }
            });
        }
    });
}

#[test]
fn a_killed_store_leaves_no_record_without_its_blob() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut committed: Vec<(String, Hash)> = Vec::new();
    for round in 0..3u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crashes::crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("FLEETCACHE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let wanted = 30 + 17 * round as usize;
        let mut seen = 0;
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("committed ") {
                let (key, hash) = rest.split_once(' ').unwrap();
                committed.push((key.to_owned(), hash.parse().unwrap()));
                seen += 1;
                if seen == wanted {
                    break;
                }
            }
        }
        assert_eq!(seen, wanted, "the child stopped early");
        // SIGKILL, while its writers are mid-ingest and mid-commit.
        child.kill().unwrap();
        child.wait().unwrap();

        let store = Store::open(options(dir.path(), 4 << 20)).unwrap();
        let mut present = 0;
        for (key, hash) in &committed {
            let records = store.records(key.as_bytes()).unwrap();
            // Committed means durable: the record is there exactly while its blob is
            // (bodies are unique, so only eviction removes either).
            match store.get(hash).unwrap() {
                Some(blob) => {
                    present += 1;
                    assert_eq!(records.len(), 1, "{key}: committed record lost");
                    assert_eq!(records[0].blob, *hash);
                    assert_eq!(Hash::from(blake3::hash(&read_all(&blob))), *hash);
                }
                None => assert!(records.is_empty(), "{key}: record without its blob"),
            }
        }
        assert!(present > 0);
        let records = store.stats().records;
        store.close().unwrap();
        // Every record there is, committed lines or not, points at a durable blob.
        let report = fsck(dir.path(), false).unwrap();
        assert!(report.is_clean(), "round {round}: {report:?}");
        assert_eq!(report.records_checked, records);
    }
}

const READS_CHILD_ENV: &str = "FLEETCACHE_READS_CRASH_CHILD";

/// Not a test on its own: a child that stores objects with records, then only reads
/// them, so its writer commits nothing but read hints (without an fsync) until killed.
#[test]
fn reads_crash_child() {
    let Some(dir) = std::env::var_os(READS_CHILD_ENV) else {
        return;
    };
    let store = Store::open(options(Path::new(&dir), 64 << 20)).unwrap();
    let hashes: Vec<Hash> = (0..20u64)
        .map(|i| {
            let mut ingest = store.ingest(None).unwrap();
            ingest
                .write(&pattern(if i % 2 == 0 { 100 } else { 40 * KIB }, i))
                .unwrap();
            let key = format!("r{i}");
            ingest
                .attach_record(new_record(&key, "", &["read"], &key))
                .unwrap();
            ingest.finish().unwrap().hash
        })
        .collect();
    println!("stored");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut flushed = 0;
    while Instant::now() < deadline {
        // One object per pass: every flush of read hints has something to write.
        let hash = &hashes[flushed % hashes.len()];
        drop(store.get(hash).unwrap().unwrap());
        std::thread::sleep(Duration::from_millis(1100));
        flushed += 1;
        println!("read {flushed}");
    }
}

#[test]
fn a_store_killed_while_only_reading_reopens_whole() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..2 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crashes::reads_crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(READS_CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // A few read-hint commits after the last durable one.
        let mut reads = 0;
        for line in stdout.lines() {
            if line.unwrap().starts_with("read ") {
                reads += 1;
                if reads == 3 {
                    break;
                }
            }
        }
        assert_eq!(reads, 3, "round {round}: the child stopped early");
        child.kill().unwrap();
        child.wait().unwrap();

        let store = Store::open(options(dir.path(), 64 << 20)).unwrap();
        assert_eq!(store.stats().objects, 20, "round {round}");
        assert_eq!(store.stats().records, 20, "round {round}");
        for i in 0..20 {
            let records = store.records(format!("r{i}").as_bytes()).unwrap();
            let blob = store.get(&records[0].blob).unwrap().expect("stored");
            assert_eq!(Hash::from(blake3::hash(&read_all(&blob))), records[0].blob);
        }
        store.close().unwrap();
        let report = fsck(dir.path(), false).unwrap();
        assert!(report.is_clean(), "round {round}: {report:?}");
    }
}
