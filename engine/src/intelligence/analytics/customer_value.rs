//! Customer value from orders: BG/NBD repeat purchases and Gamma-Gamma spend (so
//! probability alive, expected purchases, lifetime value and churn risk), and the RFM
//! scale customers are scored against.
//!
//! Training fits the parameters on every customer's order history and stores them with
//! the RFM population; a contact's figures are then computed from their own orders at
//! read time, so they move the moment an order lands. Time is measured in weeks, as in
//! Fader, Hardie & Lee (2005); purchases on the same day count once.
//!
//! Quality is measured on a holdout: the model is fitted on orders before the last
//! [`HOLDOUT_WEEKS`] weeks and its predicted repeat purchases in those weeks are
//! compared with what customers actually did.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use super::behaviour::{Behaviour, Instant};
use super::registry::{self, Trained, TrainingRun};
use crate::clock;
use crate::error::Result;
use crate::intelligence::models::clv::{
    BgNbd, GammaGamma, PurchaseHistory, RepeatPurchases, Spend,
};
use crate::intelligence::models::pareto_nbd::ParetoNbd;
use crate::intelligence::models::rfm::{Purchases, RfmScale, RfmScore};
use crate::values::ModelKind;
use rapport_schema::model_version;

const WEEK: f64 = 7.0 * 86_400.0;
const DAY: i64 = 86_400;
/// The holdout period the model is checked on.
pub const HOLDOUT_WEEKS: f64 = 13.0;

/// What is stored for a workspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomerValueModel {
    /// Repeat purchasing by BG/NBD.
    pub bg: BgNbd,
    /// Repeat purchasing by Pareto/NBD, when it predicted the holdout weeks better than
    /// BG/NBD; it is then the one used (versions trained before it existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pareto_nbd: Option<ParetoNbd>,
    /// Spend per purchase; absent when the spend could not be fitted (for example
    /// every order has the same value).
    pub gg: Option<GammaGamma>,
    /// The population RFM scores are relative to.
    pub rfm: RfmScale,
}

/// A customer's orders as the models read them.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderSummary {
    /// Repeat purchases, recency and age, in weeks.
    pub history: PurchaseHistory,
    /// Orders, total and last purchase, for RFM.
    pub purchases: Purchases,
    /// Mean order value in major units.
    pub mean_value: f64,
}

/// Summarises orders `(placed at, total in minor units)` as of `now`; `None` without
/// orders before `now`.
pub fn summarise(orders: &[(Instant, i64)], now: Instant) -> Option<OrderSummary> {
    let before: Vec<&(Instant, i64)> = orders.iter().filter(|(at, _)| *at <= now).collect();
    let last = before.iter().map(|(at, _)| *at).max()?;
    let days: BTreeSet<i64> = before.iter().map(|(at, _)| at.div_euclid(DAY)).collect();
    let total: f64 = before.iter().map(|(_, t)| *t as f64 / 100.0).sum();
    // Purchases are counted in days, so recency runs from the first purchase day to the
    // last (0 for a one-day customer, as BG/NBD requires).
    let (first_day, last_day) = (*days.first()?, *days.last()?);
    let history = PurchaseHistory::parse(
        (days.len() - 1) as f64,
        ((last_day - first_day) * DAY) as f64 / WEEK,
        (now - first_day * DAY) as f64 / WEEK,
    )
    .ok()?;
    Some(OrderSummary {
        history,
        purchases: Purchases {
            last_purchase: DateTime::from_timestamp(last, 0)?,
            orders: before.len() as u32,
            total,
        },
        mean_value: total / before.len() as f64,
    })
}

/// A contact's figures under a fitted model.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomerValue {
    /// P(the customer is still buying).
    pub probability_alive: f64,
    /// Expected purchases over the horizon.
    pub expected_purchases: f64,
    /// Expected spend over the horizon (major units), when spend was fitted.
    pub expected_value: Option<f64>,
    /// RFM scores.
    pub rfm: RfmScore,
    /// The summary they came from.
    pub summary: OrderSummary,
}

impl CustomerValueModel {
    /// The repeat-purchase model in use.
    pub fn repeat(&self) -> &dyn RepeatPurchases {
        match &self.pareto_nbd {
            Some(p) => p,
            None => &self.bg,
        }
    }

    /// Evaluates one customer's orders over the next `weeks`.
    pub fn evaluate(
        &self,
        orders: &[(Instant, i64)],
        now: DateTime<Utc>,
        weeks: f64,
    ) -> Option<CustomerValue> {
        let summary = summarise(orders, now.timestamp())?;
        let h = &summary.history;
        let expected_purchases = self.repeat().expected_purchases(h, weeks);
        let expected_value = self.gg.as_ref().map(|g| {
            let spend = Spend {
                frequency: h.frequency,
                mean_value: summary.mean_value,
            };
            // One-time buyers have no repeat spend to shrink towards, so they get the
            // population mean.
            let per_purchase = if h.frequency > 0.0 {
                g.expected_mean_value(&spend)
            } else {
                g.p * g.v / (g.q - 1.0)
            };
            expected_purchases * per_purchase
        });
        Some(CustomerValue {
            probability_alive: self.repeat().probability_alive(h),
            expected_purchases,
            expected_value,
            rfm: self.rfm.score(&summary.purchases, now),
            summary,
        })
    }
}

/// Fits the workspace's customer-value model and records it.
pub async fn train(
    db: &DatabaseConnection,
    workspace_id: i64,
    min_repeat_customers: usize,
) -> Result<model_version::Model> {
    let now = clock::now();
    let behaviour = Behaviour::load(db, workspace_id).await?;
    let t_now = now.timestamp();
    let summaries: Vec<OrderSummary> = behaviour
        .orders
        .values()
        .filter_map(|o| summarise(o, t_now))
        .collect();
    let repeaters = summaries
        .iter()
        .filter(|s| s.history.frequency > 0.0)
        .count();
    let first_order = behaviour
        .orders
        .values()
        .flatten()
        .map(|(at, _)| *at)
        .min()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .unwrap_or(now);
    let trained = if repeaters < min_repeat_customers {
        Trained::Refused {
            message: format!(
                "too little data: {repeaters} of {} customers bought more than once; at least \
                 {min_repeat_customers} repeat customers are needed",
                summaries.len()
            ),
        }
    } else {
        super::cpu_bound(|| fit(&behaviour, &summaries, now))?
    };
    registry::record(
        db,
        workspace_id,
        TrainingRun {
            kind: ModelKind::CustomerValue,
            features: ["frequency", "recency_weeks", "age_weeks", "mean_value"]
                .map(String::from)
                .to_vec(),
            rows: summaries.len(),
            positives: repeaters,
            window_from: first_order,
            window_to: now,
            trained,
        },
    )
    .await
}

fn fit(behaviour: &Behaviour, summaries: &[OrderSummary], now: DateTime<Utc>) -> Result<Trained> {
    let started = std::time::Instant::now();
    let histories: Vec<PurchaseHistory> = summaries.iter().map(|s| s.history).collect();
    let bg = BgNbd::fit(&histories)?;
    // Pareto/NBD is the alternative; when it cannot be fitted BG/NBD serves alone.
    let pareto = ParetoNbd::fit(&histories).ok();
    let spend: Vec<Spend> = summaries
        .iter()
        .filter(|s| s.history.frequency > 0.0)
        .map(|s| Spend {
            frequency: s.history.frequency,
            mean_value: s.mean_value,
        })
        .collect();
    let gg = GammaGamma::fit(&spend).ok();
    let purchases: Vec<Purchases> = summaries.iter().map(|s| s.purchases).collect();
    let fit_seconds = started.elapsed().as_secs_f64();
    let holdout = holdout_check(behaviour, now);
    let error = |h: Option<Holdout>, pick: fn(&Holdout) -> Option<f64>| {
        h.and_then(|h| {
            let predicted = pick(&h)?;
            (h.actual > 0.0).then(|| (predicted - h.actual).abs() / h.actual)
        })
    };
    let bg_error = error(holdout, |h| Some(h.bg_nbd));
    let pareto_error = error(holdout, |h| h.pareto_nbd);
    // The model whose holdout prediction was closer; BG/NBD without a holdout to judge by.
    let use_pareto =
        pareto.is_some() && matches!((bg_error, pareto_error), (Some(b), Some(p)) if p < b);
    let (chosen_error, chosen_predicted) = if use_pareto {
        (pareto_error, holdout.and_then(|h| h.pareto_nbd))
    } else {
        (bg_error, holdout.map(|h| h.bg_nbd))
    };
    let metrics = serde_json::json!({
        "model": if use_pareto { "pareto-nbd" } else { "bgnbd" },
        "log_likelihood": if use_pareto {
            pareto.map_or(bg.log_likelihood, |p| p.log_likelihood)
        } else {
            bg.log_likelihood
        },
        "bgnbd_log_likelihood": bg.log_likelihood,
        "pareto_nbd_log_likelihood": pareto.map(|p| p.log_likelihood),
        "bgnbd_holdout_error": bg_error,
        "pareto_nbd_holdout_error": pareto_error,
        "customers": summaries.len(),
        "repeat_customers": spend.len(),
        "spend_fitted": gg.is_some(),
        "fit_seconds": fit_seconds,
        "holdout_weeks": HOLDOUT_WEEKS,
        "holdout_predicted_purchases": chosen_predicted,
        "holdout_actual_purchases": holdout.map(|h| h.actual),
        "holdout_error": chosen_error,
    });
    let model = CustomerValueModel {
        bg: bg.model,
        pareto_nbd: pareto.filter(|_| use_pareto).map(|p| p.model),
        gg: gg.map(|g| g.model),
        rfm: RfmScale::fit(&purchases, now),
    };
    Ok(Trained::Model {
        parameters: serde_json::to_value(model).expect("a model serialises"),
        metrics,
        auc: None,
    })
}

/// Predicted and actual repeat purchases in the holdout weeks, for the customers who had
/// bought before it; `None` when the calibration period cannot be fitted.
/// Repeat purchases in the holdout weeks: each model's prediction and what happened.
#[derive(Clone, Copy, Debug)]
struct Holdout {
    bg_nbd: f64,
    pareto_nbd: Option<f64>,
    actual: f64,
}

/// Both models fitted on the orders before the holdout weeks, and their predictions
/// for those weeks against the purchases made in them.
fn holdout_check(behaviour: &Behaviour, now: DateTime<Utc>) -> Option<Holdout> {
    let cutoff = now.timestamp() - (HOLDOUT_WEEKS * WEEK) as i64;
    let mut histories = Vec::new();
    let mut actual = 0.0;
    for orders in behaviour.orders.values() {
        let Some(s) = summarise(orders, cutoff) else {
            continue;
        };
        histories.push(s.history);
        let later: BTreeSet<i64> = orders
            .iter()
            .filter(|(at, _)| *at > cutoff)
            .map(|(at, _)| at.div_euclid(DAY))
            .collect();
        actual += later.len() as f64;
    }
    let predicted = |m: &dyn RepeatPurchases| -> f64 {
        histories
            .iter()
            .map(|h| m.expected_purchases(h, HOLDOUT_WEEKS))
            .sum()
    };
    let bg = BgNbd::fit(&histories).ok()?;
    let pareto = ParetoNbd::fit(&histories).ok();
    Some(Holdout {
        bg_nbd: predicted(&bg.model),
        pareto_nbd: pareto.map(|p| predicted(&p.model)),
        actual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_days_and_weeks() {
        let day = DAY;
        // Two orders on day 0 (one purchase), one on day 14; now is day 28.
        let orders = [(0, 1000), (3600, 500), (14 * day + 60, 1500)];
        let s = summarise(&orders, 28 * day).unwrap();
        assert_eq!(s.history.frequency, 1.0);
        assert!((s.history.recency - 2.0).abs() < 1e-9);
        assert!((s.history.age - 4.0).abs() < 1e-9);
        assert_eq!(s.purchases.orders, 3);
        assert!((s.purchases.total - 30.0).abs() < 1e-9);
        assert!(summarise(&orders, -1).is_none());
        // Two orders hours apart are one purchase day: no repeat, recency 0.
        let same_day = summarise(&[(100, 1), (7200, 1)], 2 * day).unwrap();
        assert_eq!(
            (same_day.history.frequency, same_day.history.recency),
            (0.0, 0.0)
        );
    }
}
