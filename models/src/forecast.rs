//! Exponential smoothing for monthly revenue: Holt's linear trend, and Holt-Winters with
//! additive seasonality when there are at least two full seasons of history.
//!
//! Smoothing constants are chosen on a grid by one-step-ahead squared error over the
//! history, so nothing is tuned by hand; [`backtest`] measures the chosen method on the
//! last months it did not see.

use super::metrics::mape;

/// The season length of monthly data.
pub const SEASON: usize = 12;

/// Which method produced a forecast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Level and trend.
    Holt,
    /// Level, trend and additive monthly seasonality.
    HoltWinters,
}

impl Method {
    /// The method for a history of `n` points.
    pub fn for_length(n: usize) -> Method {
        if n >= 2 * SEASON {
            Method::HoltWinters
        } else {
            Method::Holt
        }
    }

    /// Its name as reported.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Holt => "holt_linear",
            Method::HoltWinters => "holt_winters_additive",
        }
    }
}

/// A fitted smoother.
#[derive(Clone, Debug, PartialEq)]
pub struct Smoother {
    /// The method.
    pub method: Method,
    /// Level, trend and seasonal smoothing constants.
    pub alpha: f64,
    /// Trend smoothing.
    pub beta: f64,
    /// Seasonal smoothing (0 for Holt).
    pub gamma: f64,
    level: f64,
    trend: f64,
    season: Vec<f64>,
    /// Points fitted.
    n: usize,
}

/// Runs the recursions; returns the fitted state and the one-step squared error.
fn run(series: &[f64], method: Method, alpha: f64, beta: f64, gamma: f64) -> (Smoother, f64) {
    let seasonal = method == Method::HoltWinters;
    let (mut level, mut trend, mut season) = if seasonal {
        let first: f64 = series[..SEASON].iter().sum::<f64>() / SEASON as f64;
        let second: f64 = series[SEASON..2 * SEASON].iter().sum::<f64>() / SEASON as f64;
        let season = series[..SEASON].iter().map(|v| v - first).collect();
        (first, (second - first) / SEASON as f64, season)
    } else {
        let trend = if series.len() > 1 {
            series[1] - series[0]
        } else {
            0.0
        };
        (series[0], trend, vec![0.0; SEASON])
    };
    let start = if seasonal { SEASON } else { 1 };
    let mut sse = 0.0;
    for (t, &y) in series.iter().enumerate().skip(start) {
        let s = if seasonal { season[t % SEASON] } else { 0.0 };
        let predicted = level + trend + s;
        sse += (y - predicted).powi(2);
        let previous = level;
        level = alpha * (y - s) + (1.0 - alpha) * (level + trend);
        trend = beta * (level - previous) + (1.0 - beta) * trend;
        if seasonal {
            season[t % SEASON] = gamma * (y - level) + (1.0 - gamma) * s;
        }
    }
    (
        Smoother {
            method,
            alpha,
            beta,
            gamma,
            level,
            trend,
            season,
            n: series.len(),
        },
        sse,
    )
}

impl Smoother {
    /// Fits the method suited to the history's length; `None` for fewer than 3 points.
    pub fn fit(series: &[f64]) -> Option<Smoother> {
        if series.len() < 3 {
            return None;
        }
        let method = Method::for_length(series.len());
        let grid: Vec<f64> = (1..=9).map(|i| f64::from(i) / 10.0).collect();
        let gammas: &[f64] = if method == Method::HoltWinters {
            &grid
        } else {
            &[0.0]
        };
        let mut best: Option<(Smoother, f64)> = None;
        for &alpha in &grid {
            for &beta in &grid {
                for &gamma in gammas {
                    let (s, sse) = run(series, method, alpha, beta, gamma);
                    if best.as_ref().is_none_or(|b| sse < b.1) {
                        best = Some((s, sse));
                    }
                }
            }
        }
        best.map(|b| b.0)
    }

    /// The next `h` points; revenue does not go below zero.
    pub fn forecast(&self, h: usize) -> Vec<f64> {
        (1..=h)
            .map(|k| {
                let s = if self.method == Method::HoltWinters {
                    self.season[(self.n + k - 1) % SEASON]
                } else {
                    0.0
                };
                (self.level + k as f64 * self.trend + s).max(0.0)
            })
            .collect()
    }
}

/// Fits on all but the last `h` points and scores the forecast of those with MAPE;
/// `None` when there is too little history or the held-out months are all zero.
pub fn backtest(series: &[f64], h: usize) -> Option<f64> {
    if h == 0 || series.len() < h + 3 {
        return None;
    }
    let (train, test) = series.split_at(series.len() - h);
    let fitted = Smoother::fit(train)?;
    mape(test, &fitted.forecast(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_straight_line() {
        let series: Vec<f64> = (0..12).map(|i| 100.0 + 10.0 * f64::from(i)).collect();
        let s = Smoother::fit(&series).unwrap();
        assert_eq!(s.method, Method::Holt);
        let next = s.forecast(2);
        assert!((next[0] - 220.0).abs() < 1e-6, "{next:?}");
        assert!((next[1] - 230.0).abs() < 1e-6, "{next:?}");
        assert!(backtest(&series, 3).unwrap() < 1e-9);
    }

    #[test]
    fn learns_a_season() {
        // Three years of a December peak on a rising base.
        let series: Vec<f64> = (0..36)
            .map(|i| 1000.0 + 5.0 * f64::from(i) + if i % 12 == 11 { 500.0 } else { 0.0 })
            .collect();
        let s = Smoother::fit(&series).unwrap();
        assert_eq!(s.method, Method::HoltWinters);
        let next = s.forecast(12);
        // The next December (index 47, the 12th step) stands out again.
        let december = next[11];
        let others = next[..11].iter().sum::<f64>() / 11.0;
        assert!(december > others + 300.0, "{next:?}");
        assert!(backtest(&series, 12).unwrap() < 0.05);
    }

    #[test]
    fn too_short_to_fit() {
        assert!(Smoother::fit(&[1.0, 2.0]).is_none());
        assert!(backtest(&[1.0, 2.0, 3.0], 1).is_none());
    }
}
