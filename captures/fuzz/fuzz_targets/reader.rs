//! Any byte string given to the readers must produce records or one clear error,
//! never a panic, a hang or an unbounded allocation.
#![no_main]

use std::io::Cursor;

use captures::{CaptureReader, ResultsReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = CaptureReader::new(Cursor::new(data)) {
        let mut errors = 0;
        for item in reader {
            if item.is_err() {
                errors += 1;
            }
        }
        assert!(errors <= 1, "a reader yields at most one error, then stops");
    }
    if let Ok(reader) = ResultsReader::new(Cursor::new(data)) {
        for item in reader {
            let _ = item;
        }
    }
});
