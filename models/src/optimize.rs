//! Minimisation with analytic gradients: BFGS with a backtracking line search to get
//! close (a gradient 10⁻⁸ of the value), then Newton steps (the Hessian by differences of
//! the gradient) to land on the minimum to the precision the arithmetic allows. Maximum-likelihood fits need the last
//! digits: a fit that stops 10⁻⁵ short moves every prediction made from it.

/// The result of a minimisation.
#[derive(Clone, Debug)]
pub struct Minimum {
    /// Where the minimum is.
    pub point: Vec<f64>,
    /// The function's value there.
    pub value: f64,
    /// Evaluations (value and gradient together) spent.
    pub evaluations: usize,
}

/// A function to minimise: its value at `x`, with its gradient written into `grad`.
pub trait Objective {
    /// The value at `x`; the gradient goes into `grad` (as long as `x`).
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> f64;
}

impl<F: FnMut(&[f64], &mut [f64]) -> f64> Objective for F {
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        self(x, grad)
    }
}

/// Minimises `f` from `start` inside the box `[-bound, bound]ⁿ` (a log-parameter held
/// within it stays a finite, positive parameter: data that cannot identify a parameter
/// walks it to the wall instead of for ever). Stops when the gradient (along the
/// directions the box leaves free) is below `tolerance · (1 + |f|)`, or a step no longer
/// changes anything, or after `max_evaluations`.
pub fn minimize(
    mut f: impl Objective,
    start: &[f64],
    bound: f64,
    tolerance: f64,
    max_evaluations: usize,
) -> Minimum {
    let n = start.len();
    let clamp = |x: &mut [f64]| x.iter_mut().for_each(|v| *v = v.clamp(-bound, bound));
    let evaluations = std::cell::Cell::new(0usize);
    let mut eval = |x: &[f64], g: &mut [f64]| {
        evaluations.set(evaluations.get() + 1);
        let v = f.eval(x, g);
        if v.is_finite() && g.iter().all(|d| d.is_finite()) {
            v
        } else {
            f64::INFINITY
        }
    };
    // The gradient with the components that push against a wall dropped.
    let free = |x: &[f64], g: &[f64]| -> f64 {
        x.iter()
            .zip(g)
            .map(|(&xi, &gi)| {
                let blocked = (xi >= bound && gi < 0.0) || (xi <= -bound && gi > 0.0);
                if blocked { 0.0 } else { gi.abs() }
            })
            .fold(0.0, f64::max)
    };
    let mut x = start.to_vec();
    clamp(&mut x);
    let mut g = vec![0.0; n];
    let mut fx = eval(&x, &mut g);
    // The inverse Hessian's estimate, row-major.
    let mut h = identity(n);
    let mut first = true;
    let (mut trial, mut gt, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    // BFGS descends until Newton's steps converge quadratically (a gradient this small
    // is well inside the basin), then Newton lands: BFGS alone would spend most of its
    // evaluations where the value is flat to rounding and its line search cannot tell
    // better from worse. Should Newton not land (a Hessian not positive definite there),
    // BFGS goes on to the full tolerance and Newton tries again.
    let newton_zone = tolerance.max(1e-8);
    for stop_at in [newton_zone, tolerance] {
        while evaluations.get() < max_evaluations && fx.is_finite() {
            if free(&x, &g) <= stop_at * (1.0 + fx.abs()) {
                break;
            }
            for i in 0..n {
                d[i] = -(0..n).map(|j| h[i * n + j] * g[j]).sum::<f64>();
            }
            let mut unscaled = first;
            if dot(&d, &g) >= 0.0 {
                h = identity(n);
                d.iter_mut().zip(&g).for_each(|(di, gi)| *di = -gi);
                unscaled = true;
            }
            // Along the bare gradient (no curvature learnt yet) a unit step is as long as
            // the gradient, thousands for a likelihood summed over customers: it would probe
            // the box's walls, where a likelihood can be slow to evaluate, and halve back for
            // a dozen evaluations. The first trial moves no parameter by more than 1 instead.
            let longest = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let mut t = if unscaled && longest > 1.0 {
                1.0 / longest
            } else {
                1.0
            };
            let mut moved = false;
            for _ in 0..60 {
                trial
                    .iter_mut()
                    .zip(x.iter().zip(&d))
                    .for_each(|(ti, (xi, di))| *ti = xi + t * di);
                clamp(&mut trial);
                let ft = eval(&trial, &mut gt);
                let step: Vec<f64> = trial.iter().zip(&x).map(|(a, b)| a - b).collect();
                if ft <= fx + 1e-4 * dot(&g, &step) && ft.is_finite() {
                    let y: Vec<f64> = gt.iter().zip(&g).map(|(a, b)| a - b).collect();
                    let sy = dot(&step, &y);
                    if sy > 1e-12 * norm(&step) * norm(&y) {
                        if first {
                            let scale = sy / dot(&y, &y);
                            h.iter_mut().for_each(|v| *v *= scale);
                            first = false;
                        }
                        bfgs_update(&mut h, &step, &y, sy);
                    }
                    moved = step.iter().any(|s| *s != 0.0);
                    std::mem::swap(&mut x, &mut trial);
                    std::mem::swap(&mut g, &mut gt);
                    fx = ft;
                    break;
                }
                t *= 0.5;
            }
            if !moved {
                break;
            }
        }
        // Newton steps: BFGS's estimate is good enough to descend, not to land.
        let mut landed = false;
        for _ in 0..6 {
            if evaluations.get() >= max_evaluations || !fx.is_finite() {
                break;
            }
            let Some(hess) = hessian(&mut eval, &x, &mut gt) else {
                break;
            };
            let Some(step) = solve(hess, g.iter().map(|v| -v).collect()) else {
                break;
            };
            trial
                .iter_mut()
                .zip(x.iter().zip(&step))
                .for_each(|(ti, (xi, si))| *ti = xi + si);
            clamp(&mut trial);
            let ft = eval(&trial, &mut gt);
            // Near the minimum the value is flat to rounding: there the gradient decides,
            // but a step never goes uphill by more than rounding.
            let flat = ft <= fx + 16.0 * f64::EPSILON * fx.abs();
            if !(ft.is_finite() && (ft < fx || (flat && free(&trial, &gt) < free(&x, &g)))) {
                break;
            }
            let size = step.iter().fold(0.0f64, |m, s| m.max(s.abs()));
            std::mem::swap(&mut x, &mut trial);
            std::mem::swap(&mut g, &mut gt);
            fx = ft;
            if size < 1e-13 {
                landed = true;
                break;
            }
        }
        if landed || free(&x, &g) <= tolerance * (1.0 + fx.abs()) {
            break;
        }
    }
    Minimum {
        point: x,
        value: fx,
        evaluations: evaluations.get(),
    }
}

fn identity(n: usize) -> Vec<f64> {
    (0..n * n)
        .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ, ρ = 1 / sᵀy.
fn bfgs_update(h: &mut [f64], s: &[f64], y: &[f64], sy: f64) {
    let n = s.len();
    let rho = 1.0 / sy;
    let hy: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| h[i * n + j] * y[j]).sum())
        .collect();
    let yhy = dot(y, &hy);
    for i in 0..n {
        for j in 0..n {
            h[i * n + j] += rho * ((1.0 + rho * yhy) * s[i] * s[j] - hy[i] * s[j] - s[i] * hy[j]);
        }
    }
}

/// The Hessian by central differences of the gradient, made symmetric.
fn hessian(
    eval: &mut impl FnMut(&[f64], &mut [f64]) -> f64,
    x: &[f64],
    g: &mut [f64],
) -> Option<Vec<f64>> {
    let n = x.len();
    let mut hess = vec![0.0; n * n];
    let mut p = x.to_vec();
    let mut up = vec![0.0; n];
    for j in 0..n {
        let step = 1e-5 * (1.0 + x[j].abs());
        p[j] = x[j] + step;
        eval(&p, &mut up);
        p[j] = x[j] - step;
        let down = eval(&p, g);
        p[j] = x[j];
        if !down.is_finite() {
            return None;
        }
        for i in 0..n {
            hess[i * n + j] = (up[i] - g[i]) / (2.0 * step);
        }
    }
    for i in 0..n {
        for j in 0..i {
            let m = 0.5 * (hess[i * n + j] + hess[j * n + i]);
            hess[i * n + j] = m;
            hess[j * n + i] = m;
        }
    }
    Some(hess)
}

/// Solves `a · x = b` for a positive definite `a` by Cholesky; `None` when it is not.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for j in 0..n {
        let d = a[j * n + j] - (0..j).map(|k| a[j * n + k].powi(2)).sum::<f64>();
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let s = a[i * n + j] - (0..j).map(|k| a[i * n + k] * a[j * n + k]).sum::<f64>();
            a[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        b[i] = (b[i] - (0..i).map(|k| a[i * n + k] * b[k]).sum::<f64>()) / a[i * n + i];
    }
    for i in (0..n).rev() {
        b[i] = (b[i] - (i + 1..n).map(|k| a[k * n + i] * b[k]).sum::<f64>()) / a[i * n + i];
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum_exactly() {
        let rosen = |x: &[f64], g: &mut [f64]| {
            g[0] = -2.0 * (1.0 - x[0]) - 400.0 * x[0] * (x[1] - x[0] * x[0]);
            g[1] = 200.0 * (x[1] - x[0] * x[0]);
            (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2)
        };
        let m = minimize(rosen, &[-1.2, 1.0], 10.0, 1e-14, 10_000);
        assert!(
            (m.point[0] - 1.0).abs() < 1e-10 && (m.point[1] - 1.0).abs() < 1e-10,
            "{m:?}"
        );
    }

    #[test]
    fn a_minimum_beyond_the_box_stops_at_its_wall() {
        // Decreasing for ever in x[0]: the fit stops at the wall, x[1] still lands.
        let slope = |x: &[f64], g: &mut [f64]| {
            g[0] = -1.0;
            g[1] = 2.0 * (x[1] - 3.0);
            -x[0] + (x[1] - 3.0).powi(2)
        };
        let m = minimize(slope, &[0.0, 0.0], 12.0, 1e-12, 10_000);
        assert_eq!(m.point[0], 12.0, "{m:?}");
        assert!((m.point[1] - 3.0).abs() < 1e-9, "{m:?}");
    }
}
