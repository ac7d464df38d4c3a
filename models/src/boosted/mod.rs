//! Histogram-based gradient-boosted trees for a yes/no label, beside logistic regression.
//!
//! Logistic regression adds up one push per feature; it cannot see that a heavy caller on
//! the basic plan churns while a heavy caller on the international plan does not. Trees
//! can. This is the method of LightGBM and scikit-learn's `HistGradientBoostingClassifier`:
//! columns are cut into at most 256 bins ([`bins`]), each round fits a tree of at most 31
//! leaves to the log-loss gradients ([`tree`]), and rounds stop when the validation rows'
//! loss has not improved for ten of them, keeping the best round.
//!
//! Missing values are a bin of their own and text columns are split as sets of levels,
//! so neither needs filling in or one-hot columns. The raw margin is then calibrated by
//! Platt scaling on the validation rows, so a probability of 0.3 means three in ten.
//!
//! A score's reasons are path contributions: on a row's way to its leaf in each tree,
//! every split credits its feature with the change in expected value its answer brings.
//! They add up, with the training average, to the margin exactly, as TreeSHAP's do,
//! at the cost of one walk per tree rather than one per leaf; that keeps rescoring a
//! whole workspace as fast as with logistic regression.

pub mod bins;
pub mod tree;

use serde::{Deserialize, Serialize};

use self::bins::{Binned, Binner};
use self::tree::{GrowOptions, Tree};
use super::features::FeatureTable;
use super::logistic::{FitOptions, LogisticRegression, sigmoid};
use super::metrics;
use crate::error::{Invalid, Result};

/// How the ensemble is fitted; the defaults are scikit-learn's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoostOptions {
    /// Rounds (trees) at most.
    pub max_rounds: usize,
    /// Rounds without a better validation loss before stopping.
    pub patience: usize,
    /// How each tree grows.
    pub grow: GrowOptions,
}

impl Default for BoostOptions {
    fn default() -> Self {
        BoostOptions {
            max_rounds: 100,
            patience: 10,
            grow: GrowOptions {
                max_leaves: 31,
                min_rows_leaf: 20,
                l2: 0.0,
                learning_rate: 0.1,
            },
        }
    }
}

/// Platt scaling of the margin: `P = σ(scale · margin + shift)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    /// Multiplies the margin.
    pub scale: f64,
    /// Added after.
    pub shift: f64,
}

/// A fitted ensemble, storable as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Boosted {
    /// How raw columns become bins.
    pub binner: Binner,
    /// The margin before any tree: the training rows' log-odds.
    pub base: f64,
    /// The trees of the best round (or, refitted on all the training rows, as many as
    /// that round scaled to the rows).
    pub trees: Vec<Tree>,
    /// The calibration fitted on the validation rows' margins (a refitted ensemble keeps
    /// the one its early-stopped fit measured).
    pub platt: Platt,
}

/// A scored row's calibrated logit and each raw feature's part in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    /// The calibrated logit: `σ(logit)` is the probability.
    pub logit: f64,
    /// One contribution per raw feature, in the binner's order, summing to `logit`
    /// minus the calibrated average margin of the training rows.
    pub contributions: Vec<f64>,
}

impl Boosted {
    /// Fits on the `fit` rows, stopping early and calibrating on the `validation` rows.
    pub fn fit(
        table: &FeatureTable,
        labels: &[bool],
        fit: &[usize],
        validation: &[usize],
        options: &BoostOptions,
    ) -> Result<Boosted> {
        let y: Vec<bool> = fit.iter().map(|&i| labels[i]).collect();
        let y_valid: Vec<bool> = validation.iter().map(|&i| labels[i]).collect();
        let positives = y.iter().filter(|&&l| l).count();
        if positives == 0 || positives == y.len() {
            return Err(Invalid::new(
                "label",
                "the training rows hold only one class; both are needed",
            ));
        }
        let binner = Binner::fit(table, fit)?;
        let binned = binner.bin(table, fit)?;
        let binned_valid = binner.bin(table, validation)?;
        let rate = positives as f64 / y.len() as f64;
        let base = (rate / (1.0 - rate)).ln();
        let mut margins = vec![base; y.len()];
        let mut margins_valid = vec![base; y_valid.len()];
        let mut g = vec![0.0; y.len()];
        let mut h = vec![0.0; y.len()];
        let mut rows: Vec<u32> = (0..y.len() as u32).collect();
        let mut trees = Vec::new();
        let mut best = (f64::INFINITY, 0);
        for round in 0..options.max_rounds {
            for i in 0..y.len() {
                let p = sigmoid(margins[i]);
                g[i] = p - f64::from(u8::from(y[i]));
                h[i] = (p * (1.0 - p)).max(1e-16);
            }
            let tree = Tree::grow(
                &binned,
                &binner,
                &mut rows,
                (&g, &h),
                &mut margins,
                &options.grow,
            );
            for (r, m) in margins_valid.iter_mut().enumerate() {
                *m += tree.nodes[tree.leaf(|f| binned_valid.columns[f][r])].value;
            }
            // A tree that could not split will be followed by the same tree.
            let stump = tree.nodes.len() == 1;
            trees.push(tree);
            if validation.is_empty() {
                if stump {
                    break;
                }
                continue;
            }
            let probabilities: Vec<f64> = margins_valid.iter().map(|&m| sigmoid(m)).collect();
            let loss = metrics::log_loss(&probabilities, &y_valid);
            if loss < best.0 - 1e-7 {
                best = (loss, round + 1);
            } else if round + 1 - best.1 >= options.patience {
                break;
            }
            if stump {
                break;
            }
        }
        if !validation.is_empty() {
            trees.truncate(best.1.max(1));
        }
        let mut model = Boosted {
            binner,
            base,
            trees,
            platt: Platt {
                scale: 1.0,
                shift: 0.0,
            },
        };
        model.platt = model.calibrate(&binned_valid, &y_valid);
        Ok(model)
    }

    /// Platt scaling fitted on the validation rows' margins; none when they hold a
    /// single class (nothing to calibrate against).
    fn calibrate(&self, binned: &Binned, labels: &[bool]) -> Platt {
        let identity = Platt {
            scale: 1.0,
            shift: 0.0,
        };
        let positives = labels.iter().filter(|&&l| l).count();
        if positives == 0 || positives == labels.len() {
            return identity;
        }
        let margins = ndarray::Array2::from_shape_vec((labels.len(), 1), self.margins(binned))
            .expect("one margin per row");
        let options = FitOptions {
            l2: 0.0,
            balanced: false,
            max_iterations: 50,
        };
        match LogisticRegression::fit(margins.view(), labels, options) {
            // A negative scale would turn the ranking upside down: keep the raw margin.
            Ok(fit) if fit.coefficients[0] > 0.0 => Platt {
                scale: fit.coefficients[0],
                shift: fit.intercept,
            },
            _ => identity,
        }
    }

    /// The raw (uncalibrated) margin of every binned row.
    pub fn margins(&self, binned: &Binned) -> Vec<f64> {
        (0..binned.rows)
            .map(|r| {
                self.base
                    + self
                        .trees
                        .iter()
                        .map(|t| t.nodes[t.leaf(|f| binned.columns[f][r])].value)
                        .sum::<f64>()
            })
            .collect()
    }

    /// Calibrated P(positive) for the listed rows.
    pub fn predict(&self, table: &FeatureTable, rows: &[usize]) -> Result<Vec<f64>> {
        let binned = self.binner.bin(table, rows)?;
        Ok(self
            .margins(&binned)
            .into_iter()
            .map(|m| sigmoid(self.platt.scale * m + self.platt.shift))
            .collect())
    }

    /// Scores and explains the listed rows.
    pub fn explain(&self, table: &FeatureTable, rows: &[usize]) -> Result<Vec<Explained>> {
        let binned = self.binner.bin(table, rows)?;
        let features = self.binner.columns.len();
        Ok((0..binned.rows)
            .map(|r| {
                let mut contributions = vec![0.0; features];
                let mut margin = self.base;
                for tree in &self.trees {
                    margin += tree.attribute(|f| binned.columns[f][r], &mut contributions);
                }
                for c in &mut contributions {
                    *c *= self.platt.scale;
                }
                Explained {
                    logit: self.platt.scale * margin + self.platt.shift,
                    contributions,
                }
            })
            .collect())
    }

    /// The calibrated logit of a training-average row, which contributions are relative to.
    pub fn expected_logit(&self) -> f64 {
        let expected = self.base + self.trees.iter().map(|t| t.nodes[0].value).sum::<f64>();
        self.platt.scale * expected + self.platt.shift
    }
}

#[cfg(test)]
mod tests;
