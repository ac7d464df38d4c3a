//! Quality measures for probabilistic classifiers and forecasts.

use serde::{Deserialize, Serialize};

/// Area under the ROC curve: the chance that a random positive is ranked above a random
/// negative, ties counting half (the Mann–Whitney statistic). `None` without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += rank;
            }
        }
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// Mean negative log-likelihood of the labels, probabilities clipped away from 0 and 1.
pub fn log_loss(probabilities: &[f64], labels: &[bool]) -> f64 {
    let eps = 1e-15;
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(&p, &l)| {
            let p = p.clamp(eps, 1.0 - eps);
            -(if l { p.ln() } else { (1.0 - p).ln() })
        })
        .sum();
    total / probabilities.len().max(1) as f64
}

/// One calibration bin: rows whose predicted probability fell in `[from, to)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lower edge.
    pub from: f64,
    /// Upper edge.
    pub to: f64,
    /// Rows in the bin.
    pub rows: usize,
    /// Mean predicted probability.
    pub predicted: f64,
    /// Share of the rows that were positive.
    pub observed: f64,
}

/// Ten equal-width bins of predicted probability, empty bins left out.
pub fn calibration(probabilities: &[f64], labels: &[bool]) -> Vec<CalibrationBin> {
    let mut sums = [(0usize, 0.0f64, 0usize); 10];
    for (&p, &l) in probabilities.iter().zip(labels) {
        let bin = ((p * 10.0) as usize).min(9);
        sums[bin].0 += 1;
        sums[bin].1 += p;
        sums[bin].2 += usize::from(l);
    }
    sums.iter()
        .enumerate()
        .filter(|(_, s)| s.0 > 0)
        .map(|(i, &(rows, p, pos))| CalibrationBin {
            from: i as f64 / 10.0,
            to: (i + 1) as f64 / 10.0,
            rows,
            predicted: p / rows as f64,
            observed: pos as f64 / rows as f64,
        })
        .collect()
}

/// Lift of the top tenth: the positive share among the highest-scored 10% of rows (at
/// least one row) over the positive share of all rows — how much a team working the
/// list from the top gains over working it at random. `None` without a positive.
pub fn lift_top_decile(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let top = scores.len().div_ceil(10).max(1);
    // Rows tied with the last one taken count by the share of the tie that fits, so the
    // order among equal scores does not decide the figure.
    let edge = scores[order[top - 1]];
    let above = order.iter().take_while(|&&i| scores[i] > edge).count();
    let tied: Vec<usize> = order[above..]
        .iter()
        .copied()
        .take_while(|&i| scores[i] == edge)
        .collect();
    let hits_above = order[..above].iter().filter(|&&i| labels[i]).count() as f64;
    let hits_tied = tied.iter().filter(|&&i| labels[i]).count() as f64;
    let hits = hits_above + hits_tied * (top - above) as f64 / tied.len() as f64;
    let base = positives as f64 / labels.len() as f64;
    Some(hits / top as f64 / base)
}

/// Mean absolute percentage error over the points whose actual value is not zero;
/// `None` when there are none.
pub fn mape(actual: &[f64], forecast: &[f64]) -> Option<f64> {
    let errors: Vec<f64> = actual
        .iter()
        .zip(forecast)
        .filter(|(a, _)| a.abs() > f64::EPSILON)
        .map(|(a, f)| ((a - f) / a).abs())
        .collect();
    (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lift_compares_the_top_tenth_with_everyone() {
        // 20 rows, 4 positive (20%); the top two by score are both positive: lift 5.
        let scores: Vec<f64> = (0..20).map(f64::from).collect();
        let labels: Vec<bool> = (0..20).map(|i| i >= 18 || i == 3 || i == 7).collect();
        assert_eq!(lift_top_decile(&scores, &labels), Some(5.0));
        // Scores that ignore the label: the top tenth holds none of them.
        let reversed: Vec<f64> = scores.iter().map(|s| -s).collect();
        assert_eq!(lift_top_decile(&reversed, &labels), Some(0.0));
        assert_eq!(lift_top_decile(&scores, &[false; 20]), None);
        // Equal scores: the top two slots take a share of the tie, whatever its order.
        let flat = [1.0; 20];
        assert!((lift_top_decile(&flat, &labels).unwrap() - 1.0).abs() < 1e-12);
    }
    use proptest::prelude::*;

    #[test]
    fn auc_of_known_rankings() {
        assert_eq!(
            auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        // One positive ranked above one of two negatives.
        assert_eq!(auc(&[0.1, 0.3, 0.2], &[false, false, true]), Some(0.5));
        assert_eq!(auc(&[0.1], &[true]), None);
    }

    #[test]
    fn log_loss_and_mape() {
        assert!((log_loss(&[0.5, 0.5], &[true, false]) - 2f64.ln()).abs() < 1e-12);
        assert!(log_loss(&[1.0], &[false]) > 30.0, "clipped, not infinite");
        assert!((mape(&[100.0, 0.0, 50.0], &[110.0, 5.0, 40.0]).unwrap() - 0.15).abs() < 1e-12);
        assert_eq!(mape(&[0.0], &[1.0]), None);
    }

    #[test]
    fn calibration_bins_count_every_row() {
        let bins = calibration(&[0.05, 0.07, 0.95, 1.0], &[false, true, true, true]);
        assert_eq!(bins.len(), 2);
        assert_eq!(bins[0].rows, 2);
        assert_eq!(bins[0].observed, 0.5);
        assert_eq!(bins[1].rows, 2);
    }

    proptest! {
        #[test]
        fn auc_is_a_probability_and_flips_with_the_scores(
            rows in proptest::collection::vec((0.0f64..1.0, any::<bool>()), 2..60)
        ) {
            let scores: Vec<f64> = rows.iter().map(|r| r.0).collect();
            let labels: Vec<bool> = rows.iter().map(|r| r.1).collect();
            if let Some(a) = auc(&scores, &labels) {
                prop_assert!((0.0..=1.0).contains(&a));
                let negated: Vec<f64> = scores.iter().map(|s| -s).collect();
                let b = auc(&negated, &labels).unwrap();
                prop_assert!((a + b - 1.0).abs() < 1e-9);
            }
        }
    }
}
