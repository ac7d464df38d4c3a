//! RFM segmentation: recency, frequency and monetary value scored 1–5 by quintile, and
//! named segments a marketer can act on.
//!
//! Scores are quintiles of the customers' ranks, so they say where a customer stands
//! among the others, not against a fixed threshold. Customers with equal values get equal
//! scores (the score of the first of them in rank order). Recency scores 5 for the most
//! recent buyers.

use chrono::{DateTime, Utc};

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

/// Quintile scores of `values` (higher value, higher score).
fn quintiles(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut scores = vec![0u8; n];
    let mut rank = 0;
    while rank < n {
        // Ties share the score of the first of them.
        let score = (rank * 5 / n) as u8 + 1;
        let value = values[order[rank]];
        while rank < n && values[order[rank]] == value {
            scores[order[rank]] = score;
            rank += 1;
        }
    }
    scores
}

/// Scores every customer against the others, as of `now`.
pub fn score(customers: &[Purchases], now: DateTime<Utc>) -> Vec<RfmScore> {
    // Fewer days since the last purchase is better, so recency ranks the negated age.
    let recency: Vec<f64> = customers
        .iter()
        .map(|c| -((now - c.last_purchase).num_seconds() as f64))
        .collect();
    let frequency: Vec<f64> = customers.iter().map(|c| f64::from(c.orders)).collect();
    let monetary: Vec<f64> = customers.iter().map(|c| c.total).collect();
    let (r, f, m) = (
        quintiles(&recency),
        quintiles(&frequency),
        quintiles(&monetary),
    );
    (0..customers.len())
        .map(|i| RfmScore {
            recency: r[i],
            frequency: f[i],
            monetary: m[i],
        })
        .collect()
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
