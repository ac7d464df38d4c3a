//! Revenue forecasts: the open pipeline weighted by each deal's win probability, placed
//! in the month or quarter it is expected to close, and a time-series forecast of
//! closed-won revenue with its backtested error.
//!
//! Amounts are never added across currencies: every figure is per currency.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rapport_schema as s;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::clock;
use crate::error::{EngineError, Result};
use crate::intelligence::models::forecast::{Smoother, backtest};
use crate::platform::auth::Principal;
use crate::values::{Currency, DealStatus, ModelKind};

/// How time is bucketed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// `2026-03`.
    Month,
    /// `2026-Q1`.
    Quarter,
}

impl Period {
    fn label(&self, year: i32, month0: u32) -> String {
        match self {
            Period::Month => format!("{year:04}-{:02}", month0 + 1),
            Period::Quarter => format!("{year:04}-Q{}", month0 / 3 + 1),
        }
    }
}

/// Open deals expected to close in one period.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineBucket {
    /// The period, or `None` for deals without an expected close date.
    pub period: Option<String>,
    /// ISO currency.
    pub currency: String,
    /// Open deals.
    pub deals: usize,
    /// Their amounts, summed.
    pub amount: f64,
    /// Amount × win probability, summed.
    pub weighted: f64,
}

/// The forecast of closed-won revenue in one currency.
#[derive(Clone, Debug, PartialEq)]
pub struct RevenueForecast {
    /// ISO currency.
    pub currency: String,
    /// `holt_linear` or `holt_winters_additive`; `None` with too little history.
    pub method: Option<&'static str>,
    /// Won revenue per past period (complete months only).
    pub history: Vec<(String, f64)>,
    /// Forecast per coming period, starting with the current one.
    pub forecast: Vec<(String, f64)>,
    /// MAPE of the same method on the last months it was not shown.
    pub backtest_mape: Option<f64>,
    /// How many months the backtest held out.
    pub backtest_months: usize,
}

/// Both forecasts.
#[derive(Clone, Debug, PartialEq)]
pub struct Forecast {
    /// The weighted pipeline, by period and currency.
    pub pipeline: Vec<PipelineBucket>,
    /// Won revenue, per currency.
    pub revenue: Vec<RevenueForecast>,
}

fn month_index(year: i32, month0: u32) -> i32 {
    year * 12 + month0 as i32
}

fn from_index(index: i32) -> (i32, u32) {
    (index.div_euclid(12), index.rem_euclid(12) as u32)
}

fn major(minor: i64, currency: &str) -> f64 {
    Currency::parse("currency", currency)
        .map(|c| c.to_major(minor))
        .unwrap_or(minor as f64 / 100.0)
}

/// Forecasts the caller's workspace `months` months ahead.
pub async fn forecast(
    db: &DatabaseConnection,
    who: &Principal,
    period: Period,
    months: usize,
) -> Result<Forecast> {
    if !(1..=36).contains(&months) {
        return Err(EngineError::invalid("months", "must be between 1 and 36"));
    }
    let ws = who.workspace_id;
    let deals = s::deal::Entity::find()
        .filter(s::deal::Column::WorkspaceId.eq(ws))
        .filter(s::deal::Column::DeletedAt.is_null())
        .all(db)
        .await?;
    let stage_default: HashMap<i64, f64> = s::stage::Entity::find()
        .filter(s::stage::Column::WorkspaceId.eq(ws))
        .all(db)
        .await?
        .into_iter()
        .map(|st| (st.id, f64::from(st.win_probability) / 100.0))
        .collect();
    let open: Vec<&s::deal::Model> = deals
        .iter()
        .filter(|d| DealStatus::from_db(&d.status) == DealStatus::Open)
        .collect();
    let ids: Vec<i64> = open.iter().map(|d| d.id).collect();
    let scored = super::registry::scores_for(db, ws, ModelKind::WinProbability, &ids).await?;
    let mut buckets: BTreeMap<(Option<(i32, u32)>, String), PipelineBucket> = BTreeMap::new();
    for d in &open {
        let p = scored
            .get(&d.id)
            .map(|s| s.score / 100.0)
            .or_else(|| stage_default.get(&d.stage_id).copied())
            .unwrap_or(0.0);
        let when = d.expected_close_date.map(|e: NaiveDate| {
            let month0 = match period {
                Period::Month => e.month0(),
                Period::Quarter => e.month0() / 3 * 3,
            };
            (e.year(), month0)
        });
        let amount = major(d.amount_minor, &d.currency);
        let bucket = buckets
            .entry((when, d.currency.clone()))
            .or_insert_with(|| PipelineBucket {
                period: when.map(|(y, m)| period.label(y, m)),
                currency: d.currency.clone(),
                deals: 0,
                amount: 0.0,
                weighted: 0.0,
            });
        bucket.deals += 1;
        bucket.amount += amount;
        bucket.weighted += amount * p;
    }
    let now = clock::now();
    let won: Vec<(DateTime<Utc>, &str, f64)> = deals
        .iter()
        .filter(|d| DealStatus::from_db(&d.status) == DealStatus::Won)
        .filter_map(|d| {
            d.closed_at
                .map(|c| (c, d.currency.as_str(), major(d.amount_minor, &d.currency)))
        })
        .collect();
    let mut currencies: Vec<&str> = won.iter().map(|w| w.1).collect();
    currencies.sort_unstable();
    currencies.dedup();
    let revenue = currencies
        .into_iter()
        .map(|currency| revenue_forecast(&won, currency, now, period, months))
        .collect();
    Ok(Forecast {
        // Deals without a date sort first in the map; they read better last.
        pipeline: {
            let (dated, undated): (Vec<_>, Vec<_>) =
                buckets.into_values().partition(|b| b.period.is_some());
            dated.into_iter().chain(undated).collect()
        },
        revenue,
    })
}

fn revenue_forecast(
    won: &[(DateTime<Utc>, &str, f64)],
    currency: &str,
    now: DateTime<Utc>,
    period: Period,
    months: usize,
) -> RevenueForecast {
    let current = month_index(now.year(), now.month0());
    let mut monthly: BTreeMap<i32, f64> = BTreeMap::new();
    for (at, c, amount) in won {
        let m = month_index(at.year(), at.month0());
        if *c == currency && m < current {
            *monthly.entry(m).or_default() += amount;
        }
    }
    let first = monthly.keys().next().copied().unwrap_or(current);
    // Months with no wins are zeros, not gaps.
    let series: Vec<f64> = (first..current)
        .map(|m| monthly.get(&m).copied().unwrap_or(0.0))
        .collect();
    let fitted = Smoother::fit(&series);
    let held_out = (series.len() / 4).clamp(1, 6);
    let ahead = fitted
        .as_ref()
        .map(|f| f.forecast(months))
        .unwrap_or_default();
    let label = |index: i32| {
        let (y, m) = from_index(index);
        period.label(y, m)
    };
    RevenueForecast {
        currency: currency.to_string(),
        method: fitted.as_ref().map(|f| f.method.name()),
        history: group(
            series
                .iter()
                .enumerate()
                .map(|(i, v)| (label(first + i as i32), *v)),
        ),
        forecast: group(
            ahead
                .iter()
                .enumerate()
                .map(|(i, v)| (label(current + i as i32), *v)),
        ),
        backtest_mape: backtest(&series, held_out),
        backtest_months: held_out,
    }
}

/// Sums consecutive entries with the same label (months into quarters).
fn group(points: impl Iterator<Item = (String, f64)>) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for (label, v) in points {
        match out.last_mut() {
            Some((l, total)) if *l == label => *total += v,
            _ => out.push((label, v)),
        }
    }
    out
}
