//! Derivative-free minimisation (Nelder-Mead), for likelihoods whose gradients are not
//! worth deriving by hand.

/// The result of a minimisation.
#[derive(Clone, Debug)]
pub struct Minimum {
    /// Where the minimum is.
    pub point: Vec<f64>,
    /// The function's value there.
    pub value: f64,
    /// Function evaluations spent.
    pub evaluations: usize,
}

/// Minimises `f` from `start` with the Nelder-Mead simplex method, restarting from the
/// best point until a restart no longer improves it (a collapsed simplex is the usual way
/// the method stops short of the minimum).
pub fn nelder_mead(
    f: impl Fn(&[f64]) -> f64,
    start: &[f64],
    tolerance: f64,
    max_evaluations: usize,
) -> Minimum {
    let mut best = simplex_run(&f, start, tolerance, max_evaluations);
    for _ in 0..20 {
        if best.evaluations >= max_evaluations {
            break;
        }
        let again = simplex_run(
            &f,
            &best.point,
            tolerance,
            max_evaluations - best.evaluations,
        );
        let improved = best.value - again.value > tolerance * (1.0 + best.value.abs());
        let evaluations = best.evaluations + again.evaluations;
        if again.value < best.value {
            best = Minimum {
                evaluations,
                ..again
            };
        } else {
            best.evaluations = evaluations;
        }
        if !improved {
            break;
        }
    }
    best
}

fn simplex_run(
    f: &impl Fn(&[f64]) -> f64,
    start: &[f64],
    tolerance: f64,
    max_evaluations: usize,
) -> Minimum {
    let n = start.len();
    let evaluations = std::cell::Cell::new(0usize);
    let eval = |x: &[f64]| {
        evaluations.set(evaluations.get() + 1);
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((start.to_vec(), eval(start)));
    for i in 0..n {
        let mut p = start.to_vec();
        p[i] += if p[i].abs() > 1e-8 {
            0.1 * p[i].abs().max(0.5)
        } else {
            0.25
        };
        let v = eval(&p);
        simplex.push((p, v));
    }
    loop {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let spread = simplex[n].1 - simplex[0].1;
        // Relative to the value: a log-likelihood summed over many thousands of customers
        // carries rounding noise far above any fixed absolute tolerance.
        if spread.abs() < tolerance * (1.0 + simplex[0].1.abs())
            || evaluations.get() >= max_evaluations
        {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|(p, _)| p[j]).sum::<f64>() / n as f64)
            .collect();
        let along = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|j| centroid[j] + t * (simplex[n].0[j] - centroid[j]))
                .collect()
        };
        let reflected = along(-1.0);
        let fr = eval(&reflected);
        if fr < simplex[0].1 {
            let expanded = along(-2.0);
            let fe = eval(&expanded);
            simplex[n] = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (reflected, fr);
        } else {
            let (contracted, fc) = if fr < simplex[n].1 {
                let c = along(-0.5);
                let v = eval(&c);
                (c, v)
            } else {
                let c = along(0.5);
                let v = eval(&c);
                (c, v)
            };
            if fc < simplex[n].1.min(fr) {
                simplex[n] = (contracted, fc);
            } else {
                // Shrink everything towards the best point.
                let best = simplex[0].0.clone();
                for item in simplex.iter_mut().skip(1) {
                    let p: Vec<f64> = (0..n)
                        .map(|j| best[j] + 0.5 * (item.0[j] - best[j]))
                        .collect();
                    let v = eval(&p);
                    *item = (p, v);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (point, value) = simplex.swap_remove(0);
    Minimum {
        point,
        value,
        evaluations: evaluations.get(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let rosen = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = nelder_mead(rosen, &[-1.2, 1.0], 1e-14, 20_000);
        assert!(
            (m.point[0] - 1.0).abs() < 1e-4 && (m.point[1] - 1.0).abs() < 1e-4,
            "{m:?}"
        );
    }
}
