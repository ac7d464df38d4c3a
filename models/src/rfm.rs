//! RFM segmentation: recency, frequency and monetary value scored 1–5 by quintile, and
//! named segments a marketer can act on.
//!
//! Scores are quintiles of the customers' ranks, so they say where a customer stands
//! among the others, not against a fixed threshold. Customers with equal values get equal
//! scores (the score of the first of them in rank order). Recency scores 5 for the most
//! recent buyers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the scoring needs about one customer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Purchases {
    /// When they last bought.
    pub last_purchase: DateTime<Utc>,
    /// How many orders.
    pub orders: u32,
    /// Total spent.
    pub total: f64,
}

/// A customer's three scores, each 1 (worst) to 5 (best).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RfmScore {
    /// How recently they bought.
    pub recency: u8,
    /// How often they bought.
    pub frequency: u8,
    /// How much they spent.
    pub monetary: u8,
}

/// Named RFM segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Bought recently and often (R ≥ 4, F ≥ 4).
    Champions,
    /// Buy regularly (R ≥ 3, F ≥ 3).
    Loyal,
    /// First bought recently (R ≥ 4, F = 1).
    NewCustomers,
    /// Recent, not yet frequent (R ≥ 3, F ≤ 2).
    PotentialLoyalists,
    /// Used to buy often, not lately (R ≤ 2, F ≥ 3).
    AtRisk,
    /// Not recent, not frequent (R = 2, F ≤ 2).
    Hibernating,
    /// Least recent and infrequent (R = 1, F ≤ 2).
    Lost,
}

impl Segment {
    /// The segment's name as marketers say it.
    pub fn name(&self) -> &'static str {
        match self {
            Segment::Champions => "Champions",
            Segment::Loyal => "Loyal",
            Segment::NewCustomers => "New customers",
            Segment::PotentialLoyalists => "Potential loyalists",
            Segment::AtRisk => "At risk",
            Segment::Hibernating => "Hibernating",
            Segment::Lost => "Lost",
        }
    }
}

impl RfmScore {
    /// The segment the scores fall in; the rules are checked in the order listed on
    /// [`Segment`], so each customer has exactly one.
    pub fn segment(&self) -> Segment {
        let (r, f) = (self.recency, self.frequency);
        if r >= 4 && f >= 4 {
            Segment::Champions
        } else if r >= 3 && f >= 3 {
            Segment::Loyal
        } else if r >= 4 && f == 1 {
            Segment::NewCustomers
        } else if r >= 3 {
            Segment::PotentialLoyalists
        } else if f >= 3 {
            Segment::AtRisk
        } else if r == 2 {
            Segment::Hibernating
        } else {
            Segment::Lost
        }
    }
}

/// One dimension's population, sorted and thinned to at most [`SCALE_POINTS`] values,
/// so a stored scale stays small however many customers there are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quintiles(Vec<f64>);

/// How many values a stored quintile scale keeps.
pub const SCALE_POINTS: usize = 1000;

impl Quintiles {
    fn fit(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        if sorted.len() > SCALE_POINTS {
            let n = sorted.len();
            sorted = (0..SCALE_POINTS)
                .map(|i| sorted[i * n / SCALE_POINTS])
                .collect();
        }
        Quintiles(sorted)
    }

    /// 1–5 by the share of the population strictly below `value`: ties share the score
    /// of the first of them.
    fn score(&self, value: f64) -> u8 {
        if self.0.is_empty() {
            return 3;
        }
        let below = self.0.partition_point(|&x| x < value);
        ((below * 5 / self.0.len()) as u8 + 1).min(5)
    }
}

/// The three populations a customer is scored against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RfmScale {
    /// Negated days since the last purchase (so higher is better).
    pub recency: Quintiles,
    /// Orders.
    pub frequency: Quintiles,
    /// Total spent.
    pub monetary: Quintiles,
}

fn recency_value(c: &Purchases, now: DateTime<Utc>) -> f64 {
    -((now - c.last_purchase).num_seconds() as f64 / 86_400.0)
}

impl RfmScale {
    /// The scale of a population of customers, as of `now`.
    pub fn fit(customers: &[Purchases], now: DateTime<Utc>) -> Self {
        let column =
            |f: &dyn Fn(&Purchases) -> f64| -> Vec<f64> { customers.iter().map(f).collect() };
        RfmScale {
            recency: Quintiles::fit(&column(&|c| recency_value(c, now))),
            frequency: Quintiles::fit(&column(&|c| f64::from(c.orders))),
            monetary: Quintiles::fit(&column(&|c| c.total)),
        }
    }

    /// One customer's scores against the population, as of `now`.
    pub fn score(&self, c: &Purchases, now: DateTime<Utc>) -> RfmScore {
        RfmScore {
            recency: self.recency.score(recency_value(c, now)),
            frequency: self.frequency.score(f64::from(c.orders)),
            monetary: self.monetary.score(c.total),
        }
    }
}

/// Scores every customer against the others, as of `now`.
pub fn score(customers: &[Purchases], now: DateTime<Utc>) -> Vec<RfmScore> {
    let scale = RfmScale::fit(customers, now);
    customers.iter().map(|c| scale.score(c, now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_hand_computed_table() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // (days since last purchase, orders, total)
        let table = [
            (1, 10, 900.0),
            (3, 8, 800.0),
            (5, 1, 20.0),
            (30, 6, 600.0),
            (40, 2, 50.0),
            (60, 2, 40.0),
            (200, 7, 700.0),
            (250, 1, 10.0),
            (300, 1, 15.0),
            (400, 3, 30.0),
        ];
        let customers: Vec<Purchases> = table
            .iter()
            .map(|&(d, o, t)| Purchases {
                last_purchase: now - Duration::days(d),
                orders: o,
                total: t,
            })
            .collect();
        let s = score(&customers, now);
        // Ten customers: two per quintile. Recency ranks (oldest first): 400,300 → 1; 250,200 → 2;
        // 60,40 → 3; 30,5 → 4; 3,1 → 5.
        let r: Vec<u8> = s.iter().map(|x| x.recency).collect();
        assert_eq!(r, vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1]);
        // Orders sorted: 1,1,1 (ranks 0-2 → score 1), 2,2 (ranks 3-4 → 2), 3 (rank 5 → 3),
        // 6 (rank 6 → 4), 7 (rank 7 → 4), 8 (rank 8 → 5), 10 (rank 9 → 5).
        let f: Vec<u8> = s.iter().map(|x| x.frequency).collect();
        assert_eq!(f, vec![5, 5, 1, 4, 2, 2, 4, 1, 1, 3]);
        let m: Vec<u8> = s.iter().map(|x| x.monetary).collect();
        assert_eq!(m, vec![5, 5, 2, 4, 3, 3, 4, 1, 1, 2]);
        let segments: Vec<Segment> = s.iter().map(RfmScore::segment).collect();
        use Segment::*;
        assert_eq!(
            segments,
            vec![
                Champions,
                Champions,
                NewCustomers,
                Champions,
                PotentialLoyalists,
                PotentialLoyalists,
                AtRisk,
                Hibernating,
                Lost,
                AtRisk
            ]
        );
    }
}
