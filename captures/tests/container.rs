//! The container's promises: round trips, streaming, truncation and corruption handling.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::Cursor;
use std::time::Duration;

use captures::{
    CaptureEnd, CaptureReader, CaptureWriter, Error, Record, ResultRecord, ResultsReader,
    ResultsWriter, WriterOptions,
};
use proptest::prelude::*;

/// Small chunks so a few hundred records span many of them.
fn small_chunks() -> WriterOptions {
    WriterOptions {
        chunk_bytes: 512,
        max_delay: Duration::from_secs(3600),
        level: 3,
    }
}

fn write_capture(records: &[Record], opts: WriterOptions) -> Vec<u8> {
    let mut w = CaptureWriter::new(Vec::new(), &common::meta(), opts).unwrap();
    for r in records {
        w.append(r).unwrap();
    }
    w.finish().unwrap()
}

/// Reads everything, returning the good records and the terminating error, if any.
fn read_all(bytes: &[u8]) -> Result<(Vec<Record>, Option<Error>), Error> {
    let reader = CaptureReader::new(Cursor::new(bytes))?;
    let mut records = Vec::new();
    for item in reader {
        match item {
            Ok(r) => records.push(r),
            Err(e) => return Ok((records, Some(e))),
        }
    }
    Ok((records, None))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_capture_record_round_trips(records in prop::collection::vec(common::record(), 0..60)) {
        let bytes = write_capture(&records, small_chunks());
        let reader = CaptureReader::new(Cursor::new(&bytes)).unwrap();
        prop_assert_eq!(reader.header(), &common::meta());
        let back: Vec<Record> = reader.map(|r| r.unwrap()).collect();
        prop_assert_eq!(back, records);
    }

    #[test]
    fn every_results_record_round_trips(records in prop::collection::vec(common::result_record(), 0..60)) {
        let mut w = ResultsWriter::new(Vec::new(), &common::run_meta(), small_chunks()).unwrap();
        for r in &records {
            w.append(r).unwrap();
        }
        let bytes = w.finish().unwrap();
        let reader = ResultsReader::new(Cursor::new(&bytes)).unwrap();
        prop_assert_eq!(reader.header(), &common::run_meta());
        let back: Vec<ResultRecord> = reader.map(|r| r.unwrap()).collect();
        prop_assert_eq!(back, records);
    }
}

#[test]
fn empty_capture_is_valid() {
    let bytes = write_capture(&[], WriterOptions::default());
    let (records, err) = read_all(&bytes).unwrap();
    assert!(records.is_empty());
    assert!(err.is_none());
}

/// Chunk boundaries (offset just past each complete chunk) and the records each prefix
/// holds, derived by reading prefixes that end exactly on boundaries.
fn chunk_ends(bytes: &[u8]) -> Vec<u64> {
    let mut reader = CaptureReader::new(Cursor::new(bytes)).unwrap();
    let mut ends = vec![reader.bytes_read()];
    while let Some(item) = reader.next() {
        item.unwrap();
        if *ends.last().unwrap() != reader.bytes_read() {
            ends.push(reader.bytes_read());
        }
    }
    ends
}

#[test]
fn truncation_at_every_offset_yields_exactly_the_complete_chunks() {
    let records = common::sample_records(300);
    let bytes = write_capture(&records, small_chunks());
    let ends = chunk_ends(&bytes);
    assert!(ends.len() > 10, "want many chunks, got {}", ends.len());
    assert_eq!(*ends.last().unwrap(), bytes.len() as u64);

    // How many records the file holds up to each boundary.
    let mut counts = Vec::new();
    for &end in &ends {
        let (recs, err) = read_all(&bytes[..end as usize]).unwrap();
        assert!(err.is_none(), "clean boundary {end} reported {err:?}");
        counts.push(recs.len());
    }

    let header_len = ends[0] as usize;
    for cut in 0..bytes.len() {
        let prefix = &bytes[..cut];
        if cut < header_len {
            assert!(
                read_all(prefix).is_err(),
                "header cut at {cut} must fail to open"
            );
            continue;
        }
        let (recs, err) = read_all(prefix).unwrap();
        // Index of the last boundary at or before the cut.
        let k = ends.iter().rposition(|&e| e as usize <= cut).unwrap();
        assert_eq!(recs.len(), counts[k], "cut at {cut}");
        assert_eq!(&recs[..], &records[..counts[k]], "cut at {cut}");
        if ends[k] as usize == cut {
            assert!(err.is_none(), "cut on a boundary at {cut} is clean");
        } else {
            let err = err.unwrap_or_else(|| panic!("cut at {cut} must report truncation"));
            assert!(err.is_truncation(), "cut at {cut}: {err}");
            assert_eq!(err.position(), Some((k as u64, ends[k])), "cut at {cut}");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("chunk {k}")) && msg.contains(&ends[k].to_string()),
                "{msg}"
            );
        }
    }
}

#[test]
fn flipped_byte_is_a_checksum_error_after_all_earlier_chunks() {
    let records = common::sample_records(300);
    let bytes = write_capture(&records, small_chunks());
    let ends = chunk_ends(&bytes);
    let header_len = ends[0] as usize;
    // Flip one byte in the payload of each chunk in turn (past its 8-byte frame header).
    for k in 0..ends.len() - 1 {
        let at = ends[k] as usize + 8 + (ends[k + 1] - ends[k]) as usize / 3;
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x40;
        let (recs, err) = read_all(&damaged).unwrap();
        let good = read_all(&bytes[..ends[k] as usize]).unwrap().0;
        assert_eq!(recs, good, "chunk {k}");
        match err {
            Some(Error::Checksum { chunk, offset, .. }) => {
                assert_eq!((chunk, offset), (k as u64, ends[k]));
            }
            other => panic!("chunk {k}: expected checksum error, got {other:?}"),
        }
    }
    assert!(header_len > 14);
}

#[test]
fn damaged_length_is_reported_not_allocated() {
    let records = common::sample_records(50);
    let bytes = write_capture(&records, small_chunks());
    let ends = chunk_ends(&bytes);
    let mut damaged = bytes.clone();
    let at = ends[1] as usize;
    damaged[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let (recs, err) = read_all(&damaged).unwrap();
    assert_eq!(recs, read_all(&bytes[..ends[1] as usize]).unwrap().0);
    let err = err.unwrap();
    assert_eq!(err.position(), Some((1, ends[1])), "{err}");
}

#[test]
fn wrong_magic_and_future_version_are_refused_clearly() {
    let bytes = write_capture(&common::sample_records(20), small_chunks());

    let err = ResultsReader::new(Cursor::new(&bytes)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadMagic {
                expected: "results",
                ..
            }
        ),
        "{err}"
    );
    assert!(CaptureReader::new(Cursor::new(b"hello")).is_err());
    assert!(CaptureReader::new(Cursor::new(b"")).is_err());

    let mut future = bytes.clone();
    future[8..10].copy_from_slice(&999u16.to_le_bytes());
    let err = CaptureReader::new(Cursor::new(&future)).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { found: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("999"));
}

#[test]
fn time_based_flush_writes_a_chunk_without_more_records() {
    let opts = WriterOptions {
        chunk_bytes: 1 << 20,
        max_delay: Duration::from_millis(20),
        level: 1,
    };
    let mut w = CaptureWriter::new(Vec::new(), &common::meta(), opts).unwrap();
    w.append(&common::sample_records(1)[0]).unwrap();
    assert!(!w.flush_if_due().unwrap());
    assert_eq!(w.stats().chunks, 0);
    std::thread::sleep(Duration::from_millis(30));
    assert!(w.flush_if_due().unwrap());
    assert_eq!(w.stats().chunks, 1);
}

#[test]
fn size_based_flush_keeps_chunks_near_target() {
    let records = common::sample_records(20_000);
    let mut w = CaptureWriter::new(
        Vec::new(),
        &common::meta(),
        WriterOptions {
            max_delay: Duration::from_secs(3600),
            ..WriterOptions::default()
        },
    )
    .unwrap();
    for r in &records {
        w.append(r).unwrap();
    }
    let stats = w.stats();
    let expected = stats.raw_bytes / (64 << 10);
    assert!(
        stats.chunks >= expected.saturating_sub(1) && stats.chunks <= expected + 1,
        "{stats:?}"
    );
}

#[test]
fn file_writer_creates_0600_and_closes_with_fsync() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlcap");
    let mut w = CaptureWriter::create(&path, &common::meta(), WriterOptions::default()).unwrap();
    let records = common::sample_records(1000);
    for r in &records {
        w.append(r).unwrap();
    }
    let stats = w.close().unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(stats.file_bytes, std::fs::metadata(&path).unwrap().len());
    let back: Vec<Record> = CaptureReader::open(&path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(back, records);
}

#[test]
fn write_errors_are_returned_and_poison_the_writer() {
    /// Accepts the header, then fails like a full disk.
    struct FullDisk(usize);
    impl std::io::Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("No space left on device"));
            }
            self.0 -= 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = CaptureWriter::new(FullDisk(1), &common::meta(), small_chunks()).unwrap();
    let mut failed = None;
    for r in common::sample_records(100) {
        if let Err(e) = w.append(&r) {
            failed = Some(e);
            break;
        }
    }
    let err = failed.expect("the full disk must surface as an error");
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(matches!(
        w.append(&common::sample_records(1)[0]),
        Err(Error::Poisoned)
    ));
}

fn end(commands: u64) -> Record {
    Record::End(CaptureEnd {
        t: 99,
        commands,
        dropped: 0,
    })
}

/// Reads `bytes` to the end (errors included) and says whether it ended cleanly.
fn ended_cleanly(bytes: &[u8]) -> bool {
    let mut reader = CaptureReader::new(Cursor::new(bytes)).unwrap();
    assert!(!reader.ended_cleanly(), "not before the iteration is over");
    for _ in reader.by_ref() {}
    reader.ended_cleanly()
}

#[test]
fn only_a_capture_closed_with_its_end_record_ended_cleanly() {
    let records = common::sample_records(300);
    let mut closed = records.clone();
    closed.push(end(records.len() as u64));
    let clean = write_capture(&closed, small_chunks());
    assert!(ended_cleanly(&clean));
    // The writer killed before it could close: every chunk good, no end record.
    assert!(!ended_cleanly(&write_capture(&records, small_chunks())));
    // Cut inside the last chunk: the end record is lost with it.
    assert!(!ended_cleanly(&clean[..clean.len() - 3]));
    // An end record followed by more records is not an end.
    let mut more = closed.clone();
    more.push(records[0].clone());
    assert!(!ended_cleanly(&write_capture(&more, small_chunks())));
    // A flipped bit in the last chunk: an error, whatever came before.
    let mut damaged = clean.clone();
    let at = damaged.len() - 2;
    damaged[at] ^= 0x40;
    assert!(!ended_cleanly(&damaged));
}

#[test]
fn the_end_record_belongs_to_no_connection() {
    let r = end(3);
    assert_eq!(r.conn(), None);
    assert_eq!(r.t(), 99);
    assert_eq!(common::sample_records(1)[0].conn(), Some(0));
}
