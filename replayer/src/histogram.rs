//! The latency histograms the replayer records into: one place that says how precise
//! and how big they are.

use hdrhistogram::Histogram;

/// Latencies in µs, 1 µs .. 1 h at 3 significant digits: fixed size (~200 KiB)
/// whatever the run, and one precision for a run, a class and a step, so they can be
/// merged and compared.
pub fn histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant, valid bounds: cannot fail
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// The same range at 2 significant digits (a few KiB): for `timeline`, which keeps one
/// per bucket, up to 600 of them, where 200 KiB each would be 120 MiB.
pub fn coarse_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant, valid bounds: cannot fail
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}
