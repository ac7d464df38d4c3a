//! Weighted, L2-regularised logistic regression fitted by Newton's method.
//!
//! Written here rather than taken from linfa-logistic because linfa-logistic 0.8 ignores
//! sample weights, and class weighting is what keeps a rare "converted" class from being
//! drowned by the many leads that never convert. With a few dozen encoded columns the
//! Newton system is tiny, so each iteration is one pass over the rows (accumulating
//! `XᵀWX` in blocks) and a Cholesky solve; it converges in under ten iterations.
//!
//! Class weights distort the intercept: a model fitted on balanced weights predicts as if
//! half the rows were positive. [`LogisticRegression::fit`] undoes that with the prior
//! correction of King & Zeng (2001), subtracting `ln(w₊/w₋)` from the intercept, so the
//! returned probabilities are on the real base rate again.

use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use serde::{Deserialize, Serialize};

use crate::error::{Invalid, Result};

/// A fitted model: `P(y=1|x) = σ(intercept + coefficients·x)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegression {
    /// The bias term.
    pub intercept: f64,
    /// One weight per encoded column.
    pub coefficients: Vec<f64>,
    /// Newton iterations used.
    pub iterations: usize,
}

/// How to fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitOptions {
    /// L2 penalty on the coefficients (not the intercept), relative to the row count.
    pub l2: f64,
    /// Weight the classes so each carries half the total weight.
    pub balanced: bool,
    /// Stop after this many Newton steps.
    pub max_iterations: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            l2: 1e-3,
            balanced: true,
            max_iterations: 50,
        }
    }
}

const BLOCK: usize = 8192;

impl LogisticRegression {
    /// Fits to rows `x` and labels `y` (true = positive).
    pub fn fit(x: ArrayView2<f64>, y: &[bool], options: FitOptions) -> Result<Self> {
        let (n, d) = x.dim();
        if n != y.len() {
            return Err(Invalid::new("label", "one label per row is needed"));
        }
        let positives = y.iter().filter(|&&v| v).count();
        if positives == 0 || positives == n {
            return Err(Invalid::new(
                "label",
                "the training rows hold only one class; both are needed",
            ));
        }
        let (w_pos, w_neg) = if options.balanced {
            (
                n as f64 / (2.0 * positives as f64),
                n as f64 / (2.0 * (n - positives) as f64),
            )
        } else {
            (1.0, 1.0)
        };
        let weight = |label: bool| if label { w_pos } else { w_neg };
        // Parameters: [intercept, coefficients...]; the penalty scales with n so its
        // strength does not depend on how much data there is.
        let penalty = options.l2 * n as f64;
        let mut beta = Array1::<f64>::zeros(d + 1);
        let base = positives as f64 / n as f64;
        beta[0] = (base / (1.0 - base)).ln() + (w_pos / w_neg).ln();
        let mut loss = objective(x, y, &beta, &weight, penalty);
        let mut iterations = 0;
        while iterations < options.max_iterations {
            iterations += 1;
            let (gradient, hessian) = derivatives(x, y, &beta, &weight, penalty);
            let step = cholesky_solve(hessian, &gradient).ok_or_else(|| {
                Invalid::new("features", "the features are degenerate (singular system)")
            })?;
            // Newton steps on this convex objective rarely overshoot; halving guards the
            // first steps from a poor start.
            let mut t = 1.0;
            let mut next;
            loop {
                next = &beta - &(&step * t);
                let next_loss = objective(x, y, &next, &weight, penalty);
                if next_loss <= loss + 1e-12 || t < 1e-6 {
                    loss = next_loss;
                    break;
                }
                t /= 2.0;
            }
            let change = (&next - &beta).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            beta = next;
            if change < 1e-8 {
                break;
            }
        }
        Ok(LogisticRegression {
            intercept: beta[0] - (w_pos / w_neg).ln(),
            coefficients: beta.slice(s![1..]).to_vec(),
            iterations,
        })
    }

    /// The linear score of one encoded row.
    pub fn logit(&self, row: &[f64]) -> f64 {
        self.intercept
            + self
                .coefficients
                .iter()
                .zip(row)
                .map(|(c, v)| c * v)
                .sum::<f64>()
    }

    /// P(positive) for each row.
    pub fn predict(&self, x: ArrayView2<f64>) -> Vec<f64> {
        let coefficients = Array1::from(self.coefficients.clone());
        x.dot(&coefficients)
            .iter()
            .map(|z| sigmoid(z + self.intercept))
            .collect()
    }
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn logits(x: ArrayView2<f64>, beta: &Array1<f64>) -> Array1<f64> {
    x.dot(&beta.slice(s![1..])) + beta[0]
}

/// Weighted negative log-likelihood plus the penalty.
fn objective(
    x: ArrayView2<f64>,
    y: &[bool],
    beta: &Array1<f64>,
    weight: &impl Fn(bool) -> f64,
    penalty: f64,
) -> f64 {
    let z = logits(x, beta);
    let nll: f64 = z
        .iter()
        .zip(y)
        .map(|(&z, &label)| {
            // log(1 + e^z) − y·z, computed without overflow.
            let softplus = if z > 0.0 {
                z + (-z).exp().ln_1p()
            } else {
                z.exp().ln_1p()
            };
            weight(label) * (softplus - if label { z } else { 0.0 })
        })
        .sum();
    nll + 0.5 * penalty * beta.slice(s![1..]).iter().map(|b| b * b).sum::<f64>()
}

fn derivatives(
    x: ArrayView2<f64>,
    y: &[bool],
    beta: &Array1<f64>,
    weight: &impl Fn(bool) -> f64,
    penalty: f64,
) -> (Array1<f64>, Array2<f64>) {
    let (n, d) = x.dim();
    let mut gradient = Array1::<f64>::zeros(d + 1);
    let mut hessian = Array2::<f64>::zeros((d + 1, d + 1));
    // Blocks of rows with a leading column of ones, so the intercept rides along in the
    // same matrix products without copying all of x at once.
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        let block = x.slice(s![start..end, ..]);
        let mut design = Array2::<f64>::ones((end - start, d + 1));
        design.slice_mut(s![.., 1..]).assign(&block);
        let z = design.dot(beta);
        let mut residual = Array1::<f64>::zeros(end - start);
        let mut scaled = design.clone();
        for (r, mut row) in scaled.axis_iter_mut(Axis(0)).enumerate() {
            let label = y[start + r];
            let p = sigmoid(z[r]);
            let w = weight(label);
            residual[r] = w * (p - if label { 1.0 } else { 0.0 });
            let curvature = (w * p * (1.0 - p)).max(1e-12);
            row.mapv_inplace(|v| v * curvature);
        }
        gradient += &design.t().dot(&residual);
        hessian += &design.t().dot(&scaled);
        start = end;
    }
    for j in 1..=d {
        gradient[j] += penalty * beta[j];
        hessian[[j, j]] += penalty;
    }
    (gradient, hessian)
}

/// Solves `a·x = b` for a symmetric positive-definite `a`; `None` if it is not.
fn cholesky_solve(mut a: Array2<f64>, b: &Array1<f64>) -> Option<Array1<f64>> {
    let n = a.nrows();
    for j in 0..n {
        let mut diag = a[[j, j]];
        for k in 0..j {
            diag -= a[[j, k]] * a[[j, k]];
        }
        if diag <= 0.0 || !diag.is_finite() {
            return None;
        }
        let diag = diag.sqrt();
        a[[j, j]] = diag;
        for i in j + 1..n {
            let mut v = a[[i, j]];
            for k in 0..j {
                v -= a[[i, k]] * a[[j, k]];
            }
            a[[i, j]] = v / diag;
        }
    }
    let mut z = b.clone();
    for i in 0..n {
        for k in 0..i {
            z[i] -= a[[i, k]] * z[k];
        }
        z[i] /= a[[i, i]];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            z[i] -= a[[k, i]] * z[k];
        }
        z[i] /= a[[i, i]];
    }
    Some(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn synthetic(n: usize, intercept: f64, slope: [f64; 2], seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut x = Array2::zeros((n, 2));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let a: f64 = rng.random_range(-2.0..2.0);
            let b: f64 = rng.random_range(-2.0..2.0);
            x[[i, 0]] = a;
            x[[i, 1]] = b;
            let p = sigmoid(intercept + slope[0] * a + slope[1] * b);
            y.push(rng.random::<f64>() < p);
        }
        (x, y)
    }

    #[test]
    fn recovers_known_coefficients() {
        let (x, y) = synthetic(40_000, -1.0, [2.0, -0.5], 7);
        let options = FitOptions {
            l2: 0.0,
            balanced: false,
            ..FitOptions::default()
        };
        let m = LogisticRegression::fit(x.view(), &y, options).unwrap();
        assert!((m.intercept + 1.0).abs() < 0.06, "{m:?}");
        assert!((m.coefficients[0] - 2.0).abs() < 0.08, "{m:?}");
        assert!((m.coefficients[1] + 0.5).abs() < 0.05, "{m:?}");
        assert!(m.iterations < 15);
    }

    #[test]
    fn balanced_weights_keep_probabilities_on_the_base_rate() {
        // A rare positive class: about 5 % of rows.
        let (x, y) = synthetic(40_000, -4.0, [1.5, 0.0], 11);
        let m = LogisticRegression::fit(x.view(), &y, FitOptions::default()).unwrap();
        let mean_p: f64 = m.predict(x.view()).iter().sum::<f64>() / y.len() as f64;
        let base = y.iter().filter(|&&v| v).count() as f64 / y.len() as f64;
        assert!(base < 0.1);
        assert!(
            (mean_p - base).abs() < 0.02,
            "mean {mean_p} vs base rate {base}"
        );
        assert!((m.coefficients[0] - 1.5).abs() < 0.15, "{m:?}");
    }

    #[test]
    fn refuses_a_single_class() {
        let x = Array2::zeros((3, 1));
        assert!(LogisticRegression::fit(x.view(), &[true; 3], FitOptions::default()).is_err());
    }

    #[test]
    fn cholesky_solves_a_small_system() {
        let a = ndarray::arr2(&[[4.0, 2.0], [2.0, 3.0]]);
        let x = cholesky_solve(a, &ndarray::arr1(&[2.0, 1.0])).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12);
    }
}
