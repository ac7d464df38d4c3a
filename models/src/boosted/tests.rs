use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;
use crate::classifier::Split;
use crate::features::Column;

/// Rows where buying needs both many visits and the "pro" plan (an interaction a sum of
/// one push per feature cannot express), a missing "budget" that is itself a strong
/// signal, and a noise column.
fn interaction(n: usize, seed: u64) -> (FeatureTable, Vec<bool>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut visits, mut plan, mut budget, mut noise, mut labels) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let v: f64 = rng.random_range(0.0..10.0);
        let p = ["free", "pro", "team", "trial"][rng.random_range(0..4)];
        let has_budget = rng.random::<f64>() < 0.7;
        let z =
            if (v > 5.0) == (p == "pro") { 1.5 } else { -1.5 } + if has_budget { 0.0 } else { 1.5 };
        labels.push(rng.random::<f64>() < sigmoid(z - 1.0));
        visits.push(Some(v));
        plan.push(Some(p.to_string()));
        budget.push(has_budget.then(|| rng.random_range(0.0..1000.0)));
        noise.push(Some(rng.random::<f64>()));
    }
    let mut t = FeatureTable::with_rows(n);
    t.push("visits", Column::Numeric(visits)).unwrap();
    t.push("plan", Column::Text(plan)).unwrap();
    t.push("budget", Column::Numeric(budget)).unwrap();
    t.push("noise", Column::Numeric(noise)).unwrap();
    (t, labels)
}

fn fitted(n: usize) -> (FeatureTable, Vec<bool>, Boosted, Split) {
    let (table, labels) = interaction(n, 5);
    let split = Split::stratified(&labels);
    let train_labels: Vec<bool> = split.train.iter().map(|&i| labels[i]).collect();
    let inner = Split::stratified(&train_labels);
    let fit: Vec<usize> = inner.train.iter().map(|&i| split.train[i]).collect();
    let validation: Vec<usize> = inner.test.iter().map(|&i| split.train[i]).collect();
    let model =
        Boosted::fit(&table, &labels, &fit, &validation, &BoostOptions::default()).expect("fits");
    (table, labels, model, split)
}

#[test]
fn learns_an_interaction_and_a_telling_gap() {
    let (table, labels, model, split) = fitted(8000);
    let test_labels: Vec<bool> = split.test.iter().map(|&i| labels[i]).collect();
    let p = model.predict(&table, &split.test).unwrap();
    let auc = metrics::auc(&p, &test_labels).unwrap();
    assert!(auc > 0.8, "boosted AUC {auc}");
    // The same rows through logistic regression, which cannot see the interaction.
    let encoder = super::super::features::Encoder::fit(&table, &split.train).unwrap();
    let train_labels: Vec<bool> = split.train.iter().map(|&i| labels[i]).collect();
    let linear = LogisticRegression::fit(
        encoder.encode(&table, &split.train).unwrap().matrix.view(),
        &train_labels,
        FitOptions::default(),
    )
    .unwrap();
    let linear_p = linear.predict(encoder.encode(&table, &split.test).unwrap().matrix.view());
    let linear_auc = metrics::auc(&linear_p, &test_labels).unwrap();
    assert!(
        auc > linear_auc + 0.1,
        "boosted {auc} vs logistic {linear_auc}"
    );
    assert!(
        model.trees.len() < 100,
        "stopped early: {}",
        model.trees.len()
    );
}

#[test]
fn contributions_add_up_to_the_margin() {
    let (table, _, model, split) = fitted(3000);
    let explained = model.explain(&table, &split.test).unwrap();
    let p = model.predict(&table, &split.test).unwrap();
    let expected = model.expected_logit();
    for (e, p) in explained.iter().zip(&p) {
        let sum: f64 = e.contributions.iter().sum();
        assert!((expected + sum - e.logit).abs() < 1e-9, "{e:?}");
        assert!((sigmoid(e.logit) - p).abs() < 1e-12);
    }
    // Noise explains little next to what matters.
    let mean_abs = |f: usize| {
        explained
            .iter()
            .map(|e| e.contributions[f].abs())
            .sum::<f64>()
            / explained.len() as f64
    };
    assert!(
        mean_abs(3) * 2.0 < mean_abs(0),
        "{} {}",
        mean_abs(3),
        mean_abs(0)
    );
    assert!(mean_abs(2) > mean_abs(3), "a missing budget matters");
}

#[test]
fn calibrated_probabilities_match_the_observed_rate() {
    let (table, labels, model, split) = fitted(8000);
    let test_labels: Vec<bool> = split.test.iter().map(|&i| labels[i]).collect();
    let p = model.predict(&table, &split.test).unwrap();
    for bin in metrics::calibration(&p, &test_labels) {
        if bin.rows >= 100 {
            assert!(
                (bin.predicted - bin.observed).abs() < 0.1,
                "{bin:?} is off the diagonal"
            );
        }
    }
    let mean = p.iter().sum::<f64>() / p.len() as f64;
    let rate = test_labels.iter().filter(|&&l| l).count() as f64 / p.len() as f64;
    assert!((mean - rate).abs() < 0.03, "mean {mean} vs rate {rate}");
}

#[test]
fn noise_stops_after_a_few_rounds() {
    let mut rng = StdRng::seed_from_u64(9);
    let n = 2000;
    let mut t = FeatureTable::with_rows(n);
    t.push(
        "x",
        Column::Numeric((0..n).map(|_| Some(rng.random::<f64>())).collect()),
    )
    .unwrap();
    let labels: Vec<bool> = (0..n).map(|_| rng.random::<f64>() < 0.3).collect();
    let rows: Vec<usize> = (0..n).collect();
    let model = Boosted::fit(
        &t,
        &labels,
        &rows[..1600],
        &rows[1600..],
        &BoostOptions::default(),
    )
    .unwrap();
    assert!(
        model.trees.len() <= 12,
        "{} rounds on noise",
        model.trees.len()
    );
}

#[test]
fn a_stored_model_scores_the_same() {
    let (table, _, model, split) = fitted(2000);
    let json = serde_json::to_string(&model).unwrap();
    let back: Boosted = serde_json::from_str(&json).unwrap();
    let (a, b) = (
        back.predict(&table, &split.test).unwrap(),
        model.predict(&table, &split.test).unwrap(),
    );
    // JSON keeps every float to its last digit or one short of it.
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-12));
}
