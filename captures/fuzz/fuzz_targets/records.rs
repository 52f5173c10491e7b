//! Arbitrary bytes as the *content* of a well-formed chunk (valid frame, length and
//! checksum), so the fuzzer reaches the record decoder instead of stopping at the crc.
#![no_main]

use std::io::Cursor;

use captures::{CaptureReader, CaptureWriter, Meta, ResultsReader, ResultsWriter, RunMeta, WriterOptions};
use libfuzzer_sys::fuzz_target;

fn framed(mut file: Vec<u8>, content: &[u8]) -> Vec<u8> {
    let Ok(compressed) = zstd::bulk::compress(content, 1) else { return file };
    file.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
    file.extend_from_slice(&crc32c::crc32c(&compressed).to_le_bytes());
    file.extend_from_slice(&compressed);
    file
}

fuzz_target!(|data: &[u8]| {
    let meta = Meta {
        tool: String::new(),
        started_unix_ns: 0,
        upstream: String::new(),
        server_version: String::new(),
        redacted: false,
        labels: Default::default(),
    };
    if let Ok(w) = CaptureWriter::new(Vec::new(), &meta, WriterOptions::default()) {
        if let Ok(head) = w.finish() {
            // The same content under a version 1 header reaches the v1 record decoder
            // (bytes 8..10 of the header are the format version).
            let mut v1 = head.clone();
            v1[8..10].copy_from_slice(&1u16.to_le_bytes());
            for head in [head, v1] {
                if let Ok(reader) = CaptureReader::new(Cursor::new(framed(head, data))) {
                    assert!(reader.filter(|r| r.is_err()).count() <= 1);
                }
            }
        }
    }
    let run = RunMeta {
        tool: String::new(),
        run_id: String::new(),
        label: String::new(),
        target: String::new(),
        server_version: String::new(),
        speed: None,
        scale: 1,
        capture: String::new(),
        captured_ns: 0,
        started_unix_ns: 0,
        labels: Default::default(),
    };
    if let Ok(w) = ResultsWriter::new(Vec::new(), &run, WriterOptions::default()) {
        if let Ok(head) = w.finish() {
            if let Ok(reader) = ResultsReader::new(Cursor::new(framed(head, data))) {
                assert!(reader.filter(|r| r.is_err()).count() <= 1);
            }
        }
    }
});
