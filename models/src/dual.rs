//! Forward-mode automatic differentiation over four parameters.
//!
//! Pareto/NBD's likelihood runs through Gauss hypergeometric series whose parameters
//! are the model's, and writing their derivatives out by hand is where such code goes
//! wrong. A [`Dual`] carries a value and its exact gradient through the same arithmetic,
//! so the gradient is analytic (no step size, no truncation) at about five times the
//! cost of the value, and it lives on the stack: evaluating allocates nothing.

use std::ops::{Add, Div, Mul, Neg, Sub};

use super::special::{digamma, ln_gamma};

/// A value with its gradient with respect to four parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dual {
    /// The value.
    pub v: f64,
    /// ∂value/∂θᵢ.
    pub d: [f64; 4],
}

impl Dual {
    /// A constant: no gradient.
    pub fn constant(v: f64) -> Self {
        Dual { v, d: [0.0; 4] }
    }

    /// The `i`-th parameter itself.
    pub fn parameter(v: f64, i: usize) -> Self {
        let mut d = [0.0; 4];
        d[i] = 1.0;
        Dual { v, d }
    }

    fn chain(self, v: f64, slope: f64) -> Self {
        Dual {
            v,
            d: self.d.map(|x| x * slope),
        }
    }

    /// The natural logarithm.
    pub fn ln(self) -> Self {
        self.chain(self.v.ln(), 1.0 / self.v)
    }

    /// The exponential.
    pub fn exp(self) -> Self {
        let e = self.v.exp();
        self.chain(e, e)
    }

    /// ln Γ(x).
    pub fn ln_gamma(self) -> Self {
        self.chain(ln_gamma(self.v), digamma(self.v))
    }

    /// ln(1 − eˣ) for x < 0, accurate near 0.
    pub fn ln_one_minus_exp(self) -> Self {
        let e = self.v.exp();
        self.chain((-self.v.exp_m1()).ln(), -e / (1.0 - e))
    }

    /// ln(eᵃ + eᵇ) without overflow.
    pub fn ln_add_exp(self, other: Dual) -> Self {
        let m = self.v.max(other.v);
        let (ea, eb) = ((self.v - m).exp(), (other.v - m).exp());
        let total = ea + eb;
        let (wa, wb) = (ea / total, eb / total);
        let mut d = [0.0; 4];
        for (i, x) in d.iter_mut().enumerate() {
            *x = wa * self.d[i] + wb * other.d[i];
        }
        Dual {
            v: m + total.ln(),
            d,
        }
    }
}

impl Add for Dual {
    type Output = Dual;
    fn add(self, o: Dual) -> Dual {
        let mut d = self.d;
        for (x, y) in d.iter_mut().zip(o.d) {
            *x += y;
        }
        Dual { v: self.v + o.v, d }
    }
}

impl Add<f64> for Dual {
    type Output = Dual;
    fn add(self, o: f64) -> Dual {
        Dual {
            v: self.v + o,
            d: self.d,
        }
    }
}

impl Sub for Dual {
    type Output = Dual;
    fn sub(self, o: Dual) -> Dual {
        self + (-o)
    }
}

impl Neg for Dual {
    type Output = Dual;
    fn neg(self) -> Dual {
        Dual {
            v: -self.v,
            d: self.d.map(|x| -x),
        }
    }
}

impl Mul for Dual {
    type Output = Dual;
    fn mul(self, o: Dual) -> Dual {
        let mut d = [0.0; 4];
        for (i, x) in d.iter_mut().enumerate() {
            *x = self.d[i] * o.v + self.v * o.d[i];
        }
        Dual { v: self.v * o.v, d }
    }
}

impl Mul<f64> for Dual {
    type Output = Dual;
    fn mul(self, o: f64) -> Dual {
        self.chain(self.v * o, o)
    }
}

impl Div for Dual {
    type Output = Dual;
    fn div(self, o: Dual) -> Dual {
        let v = self.v / o.v;
        let mut d = [0.0; 4];
        for (i, x) in d.iter_mut().enumerate() {
            *x = (self.d[i] - v * o.d[i]) / o.v;
        }
        Dual { v, d }
    }
}

/// Terms of a ₂F₁ series at most. An argument so close to 1 that this is not enough
/// only occurs far from any maximum (a search probing an extreme), so the value is then
/// reported as not finite and the search steps back, rather than summing for minutes.
const MAX_TERMS: u32 = 5_000;

/// ln ₂F₁(a, b; c; z) for 0 ≤ z < 1 with its gradient, summed until the terms stop
/// mattering (each term's gradient follows from the previous one's); NaN when
/// [`MAX_TERMS`] terms do not get there.
pub fn ln_hyp2f1(a: Dual, b: Dual, c: Dual, z: Dual) -> Dual {
    let mut term = Dual::constant(1.0);
    let mut sum = Dual::constant(1.0);
    for k in 0..MAX_TERMS {
        let k = f64::from(k);
        term = term * (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum = sum + term;
        if term.v.abs() < 1e-16 * sum.v.abs() {
            return sum.ln();
        }
    }
    Dual::constant(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_match_differences() {
        let f = |p: [f64; 4]| {
            let [a, b, c, z] = [0, 1, 2, 3].map(|i| Dual::parameter(p[i], i));
            ln_hyp2f1(a, b, c, z * 0.5) + (a * b).ln_gamma() - (c / a).exp()
                + (z * -1.0).ln_one_minus_exp().ln_add_exp(b.ln())
        };
        let at = [0.8, 1.7, 2.9, 0.6];
        let exact = f(at);
        for i in 0..4 {
            let (mut up, mut down) = (at, at);
            up[i] += 1e-6;
            down[i] -= 1e-6;
            let slope = (f(up).v - f(down).v) / 2e-6;
            assert!(
                (exact.d[i] - slope).abs() < 1e-6 * (1.0 + slope.abs()),
                "∂{i}: {} vs {slope}",
                exact.d[i]
            );
        }
        // ₂F₁(1, 1; 2; z) = −ln(1 − z) / z.
        let one = Dual::constant(1.0);
        let v = ln_hyp2f1(one, one, Dual::constant(2.0), Dual::constant(0.5)).v;
        assert!((v - (2f64.ln() / 0.5).ln()).abs() < 1e-13);
    }
}
