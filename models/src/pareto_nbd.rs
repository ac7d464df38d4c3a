//! Pareto/NBD (Schmittlein, Morrison & Colombo 1987): repeat purchases at a Gamma-
//! distributed rate while alive, with a lifetime that ends at any moment (BG/NBD lets a
//! customer drop out only just after a purchase). It often fits better where customers
//! leave without a last purchase to mark it, at the price of a likelihood that runs
//! through hypergeometric series.
//!
//! The likelihood is Fader & Hardie's (2005, "A Note on Deriving the Pareto/NBD Model
//! and Related Expressions", eq. 22). Its gradient is exact, carried through the series
//! by [`Dual`] numbers, and the fit maximises it in log-parameter space with the same
//! BFGS-then-Newton search as BG/NBD, to a gradient that leaves the parameters stable to
//! about 10⁻⁸ relative.

use serde::{Deserialize, Serialize};

use super::clv::{Fitted, Grouped, PurchaseHistory, fittable};
use super::dual::{Dual, ln_hyp2f1};
use super::optimize::minimize;
use crate::error::Result;

/// Fitted Pareto/NBD parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParetoNbd {
    /// Shape of the Gamma distribution of purchase rates.
    pub r: f64,
    /// Scale of the Gamma distribution of purchase rates.
    pub alpha: f64,
    /// Shape of the Gamma distribution of drop-out rates.
    pub s: f64,
    /// Scale of the Gamma distribution of drop-out rates.
    pub beta: f64,
}

/// A customer's likelihood without its head (the factor that depends on the
/// parameters and the frequency alone): the "alive throughout" and "dropped out since the
/// last purchase" terms, in logs. P(alive) is the first's share of their sum.
struct Parts {
    alive: Dual,
    dropped: Option<Dual>,
}

/// ln [Γ(r + x) αʳ βˢ / Γ(r)] with Γ(r + x) given, as the fit computes it once per frequency.
fn head(p: [Dual; 4], ln_gamma_rx: Dual, ln_gamma_r: Dual) -> Dual {
    let [r, alpha, s, beta] = p;
    ln_gamma_rx - ln_gamma_r + r * alpha.ln() + s * beta.ln()
}

fn parts(p: [Dual; 4], h: &PurchaseHistory) -> Parts {
    let [r, alpha, s, beta] = p;
    let (x, t_x, age) = (h.frequency, h.recency, h.age);
    let rx = r + x;
    let alive = -(rx * (alpha + age).ln()) - s * (beta + age).ln();
    // A purchase at the very end leaves no time to have dropped out since.
    if t_x >= age {
        return Parts {
            alive,
            dropped: None,
        };
    }
    let rsx = r + s + x;
    // The series' argument at the last purchase, where it is largest.
    let z = if alpha.v >= beta.v {
        (alpha.v - beta.v) / (alpha.v + t_x)
    } else {
        (beta.v - alpha.v) / (beta.v + t_x)
    };
    if z > SERIES_UP_TO {
        return Parts {
            alive,
            dropped: Some(s.ln() + ln_dropout_integral(p, x, t_x, age)),
        };
    }
    // The series in the form whose argument is below 1 (Fader & Hardie's A₀).
    let term = |t: f64| {
        if alpha.v >= beta.v {
            ln_hyp2f1(rsx, s + 1.0, rsx + 1.0, (alpha - beta) / (alpha + t))
                - rsx * (alpha + t).ln()
        } else {
            ln_hyp2f1(rsx, rx, rsx + 1.0, (beta - alpha) / (beta + t)) - rsx * (beta + t).ln()
        }
    };
    let (at_last, at_end) = (term(t_x), term(age));
    // A₀ = F(tₓ) − F(T), positive because F falls with t.
    let ln_a0 = at_last + (at_end - at_last).ln_one_minus_exp();
    Parts {
        alive,
        dropped: Some((s / rsx).ln() + ln_a0),
    }
}

/// Above this argument the ₂F₁ series needs more than about 170 terms, and near 1
/// thousands (a drop-out scale far above the purchase scale, as on data with little
/// visible drop-out): the same quantity is then integrated instead.
const SERIES_UP_TO: f64 = 0.8;
/// Gauss-Legendre nodes per panel of the integral.
const NODES: usize = 24;

/// ln ∫ from tₓ to T of (α+τ)^−(r+x) (β+τ)^−(s+1) dτ, which is A₀ / (r+s+x): the chance
/// of having dropped out between the last purchase and now, up to the head's factors.
/// Integrated in u = ln(m + τ), m = min(α, β), where the integrand is smooth and
/// exponential-like, by Gauss-Legendre panels of half-width at most 1 in u; the nearest
/// singularities lie π off the real axis, so 24 nodes a panel leave no visible error.
fn ln_dropout_integral(p: [Dual; 4], x: f64, t_x: f64, age: f64) -> Dual {
    let [r, alpha, s, beta] = p;
    let m = if alpha.v <= beta.v { alpha } else { beta };
    let (from, to) = ((m + t_x).ln(), (m + age).ln());
    let panels = ((to.v - from.v) / 2.0).ceil().max(1.0);
    let width = (to - from) * (1.0 / panels);
    let (nodes, weights) = gauss_legendre();
    let mut total: Option<Dual> = None;
    for panel in 0..panels as usize {
        let start = from + width * panel as f64;
        for (&xi, &w) in nodes.iter().zip(weights) {
            let u = start + width * (0.5 * (xi + 1.0));
            let tau = u.exp() - m;
            // ln of integrand · dτ/du · weight · half-width.
            let ln_f = u - (r + x) * (alpha + tau).ln() - (s + 1.0) * (beta + tau).ln()
                + (width * (0.5 * w)).ln();
            total = Some(match total {
                Some(t) => t.ln_add_exp(ln_f),
                None => ln_f,
            });
        }
    }
    total.expect("at least one panel")
}

/// The nodes and weights of 24-point Gauss-Legendre quadrature on [−1, 1], computed once
/// by Newton's method on the Legendre polynomial.
fn gauss_legendre() -> &'static ([f64; NODES], [f64; NODES]) {
    static RULE: std::sync::OnceLock<([f64; NODES], [f64; NODES])> = std::sync::OnceLock::new();
    RULE.get_or_init(|| {
        let n = NODES;
        let (mut nodes, mut weights) = ([0.0; NODES], [0.0; NODES]);
        for i in 0..n.div_ceil(2) {
            let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
            let mut slope;
            loop {
                let (mut p1, mut p2) = (1.0, 0.0);
                for j in 0..n {
                    let p3 = p2;
                    p2 = p1;
                    p1 = ((2 * j + 1) as f64 * z * p2 - j as f64 * p3) / (j + 1) as f64;
                }
                slope = n as f64 * (z * p1 - p2) / (z * z - 1.0);
                let previous = z;
                z = previous - p1 / slope;
                if (z - previous).abs() < 1e-15 {
                    break;
                }
            }
            nodes[i] = -z;
            nodes[n - 1 - i] = z;
            let w = 2.0 / ((1.0 - z * z) * slope * slope);
            weights[i] = w;
            weights[n - 1 - i] = w;
        }
        (nodes, weights)
    })
}

/// The log of the likelihood's sum of terms.
fn ln_terms(p: [Dual; 4], h: &PurchaseHistory) -> Dual {
    let Parts { alive, dropped } = parts(p, h);
    match dropped {
        Some(dropped) => alive.ln_add_exp(dropped),
        None => alive,
    }
}

impl ParetoNbd {
    fn constants(&self) -> [Dual; 4] {
        [self.r, self.alpha, self.s, self.beta].map(Dual::constant)
    }

    /// Log-likelihood of one customer.
    pub fn log_likelihood_of(&self, h: &PurchaseHistory) -> f64 {
        let p = self.constants();
        let (r, x) = (p[0], h.frequency);
        (head(p, (r + x).ln_gamma(), r.ln_gamma()) + ln_terms(p, h)).v
    }

    /// Maximum-likelihood fit. Refuses data that cannot identify the model.
    pub fn fit(histories: &[PurchaseHistory]) -> Result<Fitted<Self>> {
        fittable(histories, "Pareto/NBD")?;
        let data = Grouped::of(histories);
        let mut heads = vec![Dual::constant(0.0); data.frequencies.len()];
        let objective = |theta: &[f64], grad: &mut [f64]| {
            negative_log_likelihood(&data, theta, grad, &mut heads)
        };
        let mean_age = histories.iter().map(|h| h.age).sum::<f64>() / histories.len() as f64;
        let scale = mean_age.max(1e-3).ln().min(5.0);
        // Log-parameters held within ±12, as for BG/NBD: a flat ridge ends at the wall.
        let min = minimize(objective, &[0.0, scale, 0.0, scale], 12.0, 1e-13, 1_000);
        let p = &min.point;
        Ok(Fitted {
            model: Self {
                r: p[0].exp(),
                alpha: p[1].exp(),
                s: p[2].exp(),
                beta: p[3].exp(),
            },
            log_likelihood: -min.value,
            evaluations: min.evaluations,
        })
    }

    /// Probability that the customer is still active at the end of the period.
    pub fn probability_alive(&self, h: &PurchaseHistory) -> f64 {
        let Parts { alive, dropped, .. } = parts(self.constants(), h);
        match dropped {
            Some(dropped) => 1.0 / (1.0 + (dropped.v - alive.v).exp()),
            None => 1.0,
        }
    }

    /// Expected purchases in the next `t` time units.
    pub fn expected_purchases(&self, h: &PurchaseHistory, t: f64) -> f64 {
        let Self { r, alpha, s, beta } = *self;
        let (x, age) = (h.frequency, h.age);
        let rate = (r + x) / (alpha + age);
        // E[min(lifetime, t)] · rate for a Gamma(s, β + T) drop-out rate; s = 1 is the
        // logarithmic limit of the general form.
        let span = if (s - 1.0).abs() < 1e-9 {
            (beta + age) * ((beta + age + t) / (beta + age)).ln()
        } else {
            (beta + age) / (s - 1.0) * (1.0 - ((beta + age) / (beta + age + t)).powf(s - 1.0))
        };
        rate * span * self.probability_alive(h)
    }
}

/// The grouped data's negative log-likelihood at log-parameters `theta` (ln r, ln α,
/// ln s, ln β), its gradient into `grad`; `heads` holds each frequency's head.
fn negative_log_likelihood(
    data: &Grouped,
    theta: &[f64],
    grad: &mut [f64],
    heads: &mut [Dual],
) -> f64 {
    let p = [0, 1, 2, 3].map(|i| Dual::parameter(theta[i], i).exp());
    let ln_gamma_r = p[0].ln_gamma();
    for (h, &x) in heads.iter_mut().zip(&data.frequencies) {
        *h = head(p, (p[0] + x).ln_gamma(), ln_gamma_r);
    }
    let mut total = Dual::constant(0.0);
    for &(k, recency, age, n) in &data.rows {
        let h = PurchaseHistory {
            frequency: data.frequencies[k],
            recency,
            age,
        };
        total = total + (heads[k] + ln_terms(p, &h)) * n;
    }
    for (g, d) in grad.iter_mut().zip(total.d) {
        *g = -d;
    }
    -total.v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdnow() -> Vec<PurchaseHistory> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/cdnow/cdnow_customers_summary.csv"
        );
        let text = std::fs::read_to_string(path).expect("the CDNOW data in ../shared");
        super::super::clv::read_summary_csv(&text)
            .unwrap()
            .into_iter()
            .map(|r| r.history)
            .collect()
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let data = Grouped::of(&cdnow());
        let mut heads = vec![Dual::constant(0.0); data.frequencies.len()];
        for theta in [[-0.6, 2.4, -0.5, 2.5], [-0.6, 2.5, -0.5, 2.3]] {
            let mut grad = [0.0; 4];
            negative_log_likelihood(&data, &theta, &mut grad, &mut heads);
            let mut scratch = [0.0; 4];
            for i in 0..4 {
                let (mut up, mut down) = (theta, theta);
                up[i] += 1e-6;
                down[i] -= 1e-6;
                let slope = (negative_log_likelihood(&data, &up, &mut scratch, &mut heads)
                    - negative_log_likelihood(&data, &down, &mut scratch, &mut heads))
                    / 2e-6;
                assert!(
                    (grad[i] - slope).abs() < 1e-5 * (1.0 + slope.abs()),
                    "θ{i} at {theta:?}: {grad:?} vs {slope}"
                );
            }
        }
    }

    #[test]
    fn cdnow_fit_matches_the_published_one() {
        let data = cdnow();
        assert_eq!(data.len(), 2357);
        let started = std::time::Instant::now();
        let fit = ParetoNbd::fit(&data).unwrap();
        eprintln!(
            "Pareto/NBD on CDNOW: {} evaluations, {:?}",
            fit.evaluations,
            started.elapsed()
        );
        let m = fit.model;
        // Fader, Hardie & Lee (2005), "Counting your customers the easy way":
        // r = 0.553, α = 10.578, s = 0.606, β = 11.669, LL = −9595.0.
        for (got, want) in [
            (m.r, 0.553),
            (m.alpha, 10.578),
            (m.s, 0.606),
            (m.beta, 11.669),
        ] {
            assert!(((got - want) / want).abs() < 1e-3, "{m:?}");
        }
        assert!(
            (fit.log_likelihood + 9595.0).abs() < 0.05,
            "{}",
            fit.log_likelihood
        );
        // At the maximum the gradient vanishes to the precision the search aims at.
        let mut grad = [0.0; 4];
        let theta = [m.r, m.alpha, m.s, m.beta].map(f64::ln);
        let grouped = Grouped::of(&data);
        let mut heads = vec![Dual::constant(0.0); grouped.frequencies.len()];
        negative_log_likelihood(&grouped, &theta, &mut grad, &mut heads);
        assert!(grad.iter().all(|g| g.abs() < 1e-6), "{grad:?}");
        let direct: f64 = data.iter().map(|h| m.log_likelihood_of(h)).sum();
        assert!((direct - fit.log_likelihood).abs() < 1e-6);
    }

    #[test]
    fn the_integral_and_the_series_agree() {
        let p = [0.55, 10.6, 0.61, 11.7].map(Dual::constant);
        let rule = gauss_legendre();
        assert!((rule.1.iter().sum::<f64>() - 2.0).abs() < 1e-13);
        for (x, t_x, age) in [(2.0, 5.0, 38.0), (0.0, 0.0, 30.0), (7.0, 30.0, 31.0)] {
            let h = PurchaseHistory::parse(x, t_x, age).unwrap();
            let series = parts(p, &h).dropped.unwrap();
            let integral = p[2].ln() + ln_dropout_integral(p, x, t_x, age);
            assert!(
                (series.v - integral.v).abs() < 1e-12,
                "{series:?} {integral:?}"
            );
        }
        // Where only the integral is practical (β far above α): finite, and a customer
        // long silent is less likely alive than one who just bought.
        let m = ParetoNbd {
            r: 0.5,
            alpha: 2.0,
            s: 0.3,
            beta: 5e4,
        };
        let quiet = PurchaseHistory::parse(3.0, 2.0, 40.0).unwrap();
        let recent = PurchaseHistory::parse(3.0, 39.0, 40.0).unwrap();
        assert!(m.log_likelihood_of(&quiet).is_finite());
        assert!(m.probability_alive(&quiet) < m.probability_alive(&recent));
    }

    #[test]
    fn predictions_behave() {
        let m = ParetoNbd {
            r: 0.553,
            alpha: 10.578,
            s: 0.606,
            beta: 11.669,
        };
        let quiet = PurchaseHistory::parse(2.0, 5.0, 38.0).unwrap();
        let recent = PurchaseHistory::parse(2.0, 37.0, 38.0).unwrap();
        assert!(m.probability_alive(&recent) > m.probability_alive(&quiet));
        assert!(m.probability_alive(&quiet) > 0.0);
        assert!(m.expected_purchases(&recent, 39.0) > m.expected_purchases(&quiet, 39.0));
        assert!(m.expected_purchases(&recent, 78.0) > m.expected_purchases(&recent, 39.0));
        // The s = 1 limit joins the general form continuously.
        let near = ParetoNbd { s: 1.0 + 1e-7, ..m };
        let at = ParetoNbd { s: 1.0, ..m };
        let (a, b) = (
            near.expected_purchases(&recent, 39.0),
            at.expected_purchases(&recent, 39.0),
        );
        assert!((a - b).abs() < 1e-5 * b, "{a} {b}");
    }
}
