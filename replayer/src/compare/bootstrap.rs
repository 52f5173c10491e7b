//! Bootstrap confidence intervals for a ratio of quantiles.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Resamples per interval: enough for a stable 95 % interval of a quantile ratio,
/// cheap enough for hundreds of classes.
const RESAMPLES: usize = 400;

/// `new_q / base_q` and its 95 % percentile-bootstrap interval. Seeded, so the same
/// inputs always give the same report.
pub fn ratio_ci(base: &[u64], new: &[u64], q: f64, seed: u64) -> (f64, [f64; 2]) {
    if base.is_empty() || new.is_empty() {
        return (f64::NAN, [f64::NAN, f64::NAN]);
    }
    let mut base_sorted = base.to_vec();
    base_sorted.sort_unstable();
    let mut new_sorted = new.to_vec();
    new_sorted.sort_unstable();
    let point = quantile(&new_sorted, q) / quantile(&base_sorted, q);

    let mut rng = SmallRng::seed_from_u64(seed);
    let mut idx = Vec::with_capacity(base.len().max(new.len()));
    let mut ratios: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let b = resampled_quantile(&base_sorted, q, &mut rng, &mut idx);
            let n = resampled_quantile(&new_sorted, q, &mut rng, &mut idx);
            n / b
        })
        .collect();
    ratios.sort_unstable_by(f64::total_cmp);
    let lo = ratios[(RESAMPLES as f64 * 0.025) as usize];
    let hi = ratios[((RESAMPLES as f64 * 0.975) as usize).min(RESAMPLES - 1)];
    (point, [lo, hi])
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    let k = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[k].max(1) as f64
}

/// The q-quantile of a resample with replacement of `sorted`: the k-th smallest of n
/// uniformly drawn indices into the sorted data (selection, not a sort: O(n)).
fn resampled_quantile(sorted: &[u64], q: f64, rng: &mut SmallRng, idx: &mut Vec<usize>) -> f64 {
    let n = sorted.len();
    idx.clear();
    idx.extend((0..n).map(|_| rng.random_range(0..n)));
    let k = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
    let (_, kth, _) = idx.select_nth_unstable(k);
    sorted[*kth].max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_give_an_interval_around_one() {
        let a: Vec<u64> = (1..=1000).collect();
        let (r, [lo, hi]) = ratio_ci(&a, &a, 0.5, 1);
        assert!((r - 1.0).abs() < 1e-9);
        assert!(lo <= 1.0 && hi >= 1.0, "{lo} {hi}");
    }

    #[test]
    fn doubled_latencies_give_an_interval_around_two() {
        let a: Vec<u64> = (1..=1000).collect();
        let b: Vec<u64> = a.iter().map(|x| x * 2).collect();
        let (r, [lo, hi]) = ratio_ci(&a, &b, 0.99, 7);
        assert!((r - 2.0).abs() < 0.01, "{r}");
        assert!(lo > 1.5 && hi < 2.5, "{lo} {hi}");
    }
}
