//! The pipeline every built-in classifier runs: split, encode, fit, measure, explain.
//!
//! Lead scoring, win probability and churn all build a [`FeatureTable`] and labels and
//! hand them here; `rapport model evaluate --kind classifier` runs the same code on a
//! user's CSV, so what a user measures on their export is what the product does.

use std::time::Instant;

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};

use super::features::{Column, Encoder, FeatureTable};
use super::logistic::{FitOptions, LogisticRegression, sigmoid};
use super::metrics::{self, CalibrationBin};
use crate::error::{EngineError, Result};

/// The share of rows held out for testing when no split is given.
pub const TEST_SHARE: f64 = 0.2;
/// The seed of the held-out split, fixed so a report can be reproduced.
pub const SPLIT_SEED: u64 = 20_260_101;

/// Which rows train and which test.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Rows the model learns from.
    pub train: Vec<usize>,
    /// Rows it is measured on.
    pub test: Vec<usize>,
}

impl Split {
    /// A stratified split: [`TEST_SHARE`] of each class, chosen with a fixed seed.
    pub fn stratified(labels: &[bool]) -> Split {
        let mut rng = StdRng::seed_from_u64(SPLIT_SEED);
        let mut split = Split {
            train: Vec::new(),
            test: Vec::new(),
        };
        for class in [true, false] {
            let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
            rows.shuffle(&mut rng);
            let test = (rows.len() as f64 * TEST_SHARE).round() as usize;
            split.test.extend_from_slice(&rows[..test]);
            split.train.extend_from_slice(&rows[test..]);
        }
        split.train.sort_unstable();
        split.test.sort_unstable();
        split
    }
}

/// What a training run measured on the held-out rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Area under the ROC curve on the test rows (`None` if they hold one class only).
    pub auc: Option<f64>,
    /// Mean log loss on the test rows.
    pub log_loss: f64,
    /// Rows trained on.
    pub rows_train: usize,
    /// Rows measured.
    pub rows_test: usize,
    /// Positive training rows.
    pub positives_train: usize,
    /// Positive test rows.
    pub positives_test: usize,
    /// Seconds spent encoding and fitting.
    pub fit_seconds: f64,
    /// Missing values filled in, over training and test rows.
    pub imputed: usize,
    /// Predicted against observed rates on the test rows.
    pub calibration: Vec<CalibrationBin>,
}

/// A fitted encoder and model, storable as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Classifier {
    /// How raw rows become model inputs.
    pub encoder: Encoder,
    /// The fitted coefficients.
    pub model: LogisticRegression,
}

/// One feature's push on one row's score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The raw feature.
    pub feature: String,
    /// Its share of the logit, relative to an average training row.
    pub weight: f64,
}

/// A scored row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// P(positive).
    pub probability: f64,
    /// Every raw feature's contribution, strongest first.
    pub contributions: Vec<Contribution>,
}

/// The smallest class a model is trained on; below it a score would be noise.
pub const DEFAULT_MIN_POSITIVES: usize = 50;

impl Classifier {
    /// Fits on the split's training rows and measures on its test rows.
    pub fn train(table: &FeatureTable, labels: &[bool], split: &Split) -> Result<(Self, Report)> {
        if labels.len() != table.rows() {
            return Err(EngineError::invalid("label", "one label per row is needed"));
        }
        let started = Instant::now();
        let encoder = Encoder::fit(table, &split.train)?;
        let train = encoder.encode(table, &split.train)?;
        let train_labels: Vec<bool> = split.train.iter().map(|&i| labels[i]).collect();
        let model =
            LogisticRegression::fit(train.matrix.view(), &train_labels, FitOptions::default())?;
        let fit_seconds = started.elapsed().as_secs_f64();
        let test = encoder.encode(table, &split.test)?;
        let test_labels: Vec<bool> = split.test.iter().map(|&i| labels[i]).collect();
        let probabilities = model.predict(test.matrix.view());
        let report = Report {
            auc: metrics::auc(&probabilities, &test_labels),
            log_loss: metrics::log_loss(&probabilities, &test_labels),
            rows_train: split.train.len(),
            rows_test: split.test.len(),
            positives_train: train_labels.iter().filter(|&&l| l).count(),
            positives_test: test_labels.iter().filter(|&&l| l).count(),
            fit_seconds,
            imputed: train.imputed + test.imputed,
            calibration: metrics::calibration(&probabilities, &test_labels),
        };
        Ok((Classifier { encoder, model }, report))
    }

    /// Scores every row of `table`, with each raw feature's contribution.
    pub fn predict(&self, table: &FeatureTable) -> Result<Vec<Prediction>> {
        let rows: Vec<usize> = (0..table.rows()).collect();
        let encoded = self.encoder.encode(table, &rows)?;
        let sources = self.encoder.column_sources();
        let names: Vec<&str> = self.encoder.features.iter().map(|f| f.name()).collect();
        Ok(encoded
            .matrix
            .rows()
            .into_iter()
            .map(|row| {
                let mut weights = vec![0.0; names.len()];
                for ((value, coefficient), &source) in
                    row.iter().zip(&self.model.coefficients).zip(&sources)
                {
                    weights[source] += value * coefficient;
                }
                let logit = self.model.intercept + weights.iter().sum::<f64>();
                let mut contributions: Vec<Contribution> = names
                    .iter()
                    .zip(weights)
                    .map(|(name, weight)| Contribution {
                        feature: name.to_string(),
                        weight,
                    })
                    .collect();
                contributions.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
                Prediction {
                    probability: sigmoid(logit),
                    contributions,
                }
            })
            .collect())
    }
}

/// A labelled table read from a CSV export.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledTable {
    /// The feature columns.
    pub table: FeatureTable,
    /// One label per row.
    pub labels: Vec<bool>,
    /// The split, when the file names one.
    pub split: Option<Split>,
}

/// How to read a labelled CSV.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsvSpec {
    /// The label column.
    pub label: String,
    /// The label value that counts as positive; by default `1`, `true` or `yes`.
    pub positive: Option<String>,
    /// An id column, left out of the features.
    pub id: Option<String>,
    /// A column whose values `train` / `test` say where each row goes.
    pub split: Option<String>,
}

/// Reads a CSV export: numeric columns are those whose every non-empty value is a number,
/// the rest are text; empty cells (and `NA`, `null`) are missing values.
///
/// The file is read twice, once to learn each column's kind and once to store it typed,
/// so a million-row export costs eight bytes per numeric cell rather than a string each.
pub fn read_labelled_csv(data: &[u8], spec: &CsvSpec) -> Result<LabelledTable> {
    let reader = || {
        csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(data)
    };
    let mut first = reader();
    let header: Vec<String> = first
        .headers()
        .map_err(|e| EngineError::invalid("csv", format!("cannot read the header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let find = |name: &str, what: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            EngineError::invalid(
                what.to_string(),
                format!("no column '{name}' in the header ({})", header.join(",")),
            )
        })
    };
    let label_col = find(&spec.label, "label")?;
    let id_col = spec.id.as_deref().map(|c| find(c, "id")).transpose()?;
    let split_col = spec
        .split
        .as_deref()
        .map(|c| find(c, "split"))
        .transpose()?;
    let missing = |cell: &str| cell.is_empty() || matches!(cell, "NA" | "N/A" | "null" | "NULL");
    let number = |cell: &str| cell.parse::<f64>().ok().filter(|x| x.is_finite());
    // Pass 1: shape and column kinds.
    let mut numeric = vec![true; header.len()];
    let mut rows = 0usize;
    for (i, record) in first.records().enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        let record =
            record.map_err(|e| EngineError::invalid(format!("line {line}"), e.to_string()))?;
        if record.len() != header.len() {
            return Err(EngineError::invalid(
                format!("line {line}"),
                format!(
                    "has {} cells, the header has {}",
                    record.len(),
                    header.len()
                ),
            ));
        }
        for (c, cell) in record.iter().enumerate() {
            if numeric[c] && !missing(cell) && number(cell).is_none() {
                numeric[c] = false;
            }
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(EngineError::invalid("csv", "the file has no data rows"));
    }
    // Pass 2: typed storage.
    let is_positive = |v: &str| match &spec.positive {
        Some(p) => v == p,
        None => matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
    };
    let features: Vec<usize> = (0..header.len())
        .filter(|&c| c != label_col && Some(c) != id_col && Some(c) != split_col)
        .collect();
    let mut columns: Vec<Column> = features
        .iter()
        .map(|&c| {
            if numeric[c] {
                Column::Numeric(Vec::with_capacity(rows))
            } else {
                Column::Text(Vec::with_capacity(rows))
            }
        })
        .collect();
    let mut labels = Vec::with_capacity(rows);
    let mut split = split_col.map(|_| Split {
        train: Vec::new(),
        test: Vec::new(),
    });
    for (i, record) in reader().records().enumerate() {
        let line = i + 2;
        let record =
            record.map_err(|e| EngineError::invalid(format!("line {line}"), e.to_string()))?;
        let label = &record[label_col];
        if missing(label) {
            return Err(EngineError::invalid(
                format!("line {line}, column {}", spec.label),
                "the label is empty",
            ));
        }
        labels.push(is_positive(label));
        if let (Some(c), Some(split)) = (split_col, split.as_mut()) {
            match record[c].to_ascii_lowercase().as_str() {
                "train" => split.train.push(i),
                "test" => split.test.push(i),
                other => {
                    return Err(EngineError::invalid(
                        format!("line {line}, column {}", header[c]),
                        format!("'{other}' is neither train nor test"),
                    ));
                }
            }
        }
        for (column, &c) in columns.iter_mut().zip(&features) {
            let cell = &record[c];
            match column {
                Column::Numeric(v) => v.push(if missing(cell) { None } else { number(cell) }),
                Column::Text(v) => v.push((!missing(cell)).then(|| cell.to_string())),
            }
        }
    }
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || positives == rows {
        return Err(EngineError::invalid(
            spec.label.clone(),
            format!(
                "the label column holds one class only ({positives} positive of {rows} rows); \
                 set --positive to the value that means yes"
            ),
        ));
    }
    if let (Some(c), Some(split)) = (split_col, &split)
        && (split.train.is_empty() || split.test.is_empty())
    {
        return Err(EngineError::invalid(
            header[c].clone(),
            "the split needs both train and test rows",
        ));
    }
    let mut table = FeatureTable::with_rows(rows);
    for (column, &c) in columns.into_iter().zip(&features) {
        table.push(header[c].clone(), column)?;
    }
    Ok(LabelledTable {
        table,
        labels,
        split,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Rows where conversion depends on visits (up) and a "Competitor" source (down),
    /// plus a column of pure noise.
    fn csv_text(n: usize) -> String {
        let mut rng = StdRng::seed_from_u64(3);
        let mut out = String::from("id,visits,source,noise,converted\n");
        for i in 0..n {
            let visits: f64 = rng.random_range(0.0..20.0);
            let source = ["Web", "Referral", "Competitor"][rng.random_range(0..3)];
            let z = -3.0 + 0.3 * visits - if source == "Competitor" { 2.0 } else { 0.0 };
            let converted = rng.random::<f64>() < sigmoid(z);
            let visits = if i % 17 == 0 {
                String::new()
            } else {
                format!("{visits:.2}")
            };
            out.push_str(&format!(
                "{i},{visits},{source},{:.3},{}\n",
                rng.random::<f64>(),
                if converted { "yes" } else { "no" }
            ));
        }
        out
    }

    fn spec() -> CsvSpec {
        CsvSpec {
            label: "converted".into(),
            id: Some("id".into()),
            ..CsvSpec::default()
        }
    }

    #[test]
    fn learns_which_features_matter() {
        let data = read_labelled_csv(csv_text(5000).as_bytes(), &spec()).unwrap();
        assert_eq!(data.table.names(), ["visits", "source", "noise"]);
        let split = Split::stratified(&data.labels);
        assert_eq!(split.test.len(), 1000);
        let (model, report) = Classifier::train(&data.table, &data.labels, &split).unwrap();
        assert!(report.auc.unwrap() > 0.8, "{report:?}");
        assert!(report.imputed > 200, "every 17th visits cell is empty");
        let predictions = model.predict(&data.table).unwrap();
        // For a heavy visitor, visits is the strongest reason and pushes up.
        let heavy = (0..data.table.rows())
            .max_by(|&a, &b| match &data.table.columns()[0] {
                Column::Numeric(v) => v[a].unwrap_or(0.0).total_cmp(&v[b].unwrap_or(0.0)),
                Column::Text(_) => unreachable!(),
            })
            .unwrap();
        let top = &predictions[heavy].contributions[0];
        assert_eq!(top.feature, "visits");
        assert!(top.weight > 0.0);
    }

    #[test]
    fn stratified_split_keeps_the_class_balance() {
        let labels: Vec<bool> = (0..1000).map(|i| i % 10 == 0).collect();
        let split = Split::stratified(&labels);
        assert_eq!(split.test.iter().filter(|&&i| labels[i]).count(), 20);
        assert_eq!(split.test.len(), 200);
        assert_eq!(split, Split::stratified(&labels), "the seed is fixed");
    }

    #[test]
    fn bad_files_name_the_problem() {
        let err = |text: &str, spec: &CsvSpec| {
            read_labelled_csv(text.as_bytes(), spec)
                .unwrap_err()
                .to_string()
        };
        let plain = CsvSpec {
            label: "converted".into(),
            ..CsvSpec::default()
        };
        assert!(err("a,b\n1,2\n", &plain).contains("no column 'converted'"));
        assert!(err("x,converted\n1,no\n2,no\n", &plain).contains("one class only"));
        assert!(err("x,converted\n1,yes\n", &spec()).contains("no column 'id'"));
        let with_split = CsvSpec {
            split: Some("part".into()),
            ..plain.clone()
        };
        assert!(
            err("x,part,converted\n1,train,yes\n2,later,no\n", &with_split)
                .contains("line 3, column part")
        );
        let custom = CsvSpec {
            positive: Some("won".into()),
            ..plain
        };
        let data = read_labelled_csv("x,converted\n1,won\n2,lost\n".as_bytes(), &custom).unwrap();
        assert_eq!(data.labels, [true, false]);
    }
}
