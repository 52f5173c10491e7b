//! The one latency histogram every part of the replayer records into.

use hdrhistogram::Histogram;

/// Latencies in µs, 1 µs .. 1 h at 3 significant digits: fixed size (~200 KiB)
/// whatever the run, and one precision everywhere, so histograms of a run, a class and
/// a phase can be merged and compared.
pub fn histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant, valid bounds: cannot fail
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}
