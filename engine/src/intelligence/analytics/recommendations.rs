//! Item-to-item recommendations from orders: products bought in the same orders are
//! neighbours, scored by cosine similarity and lift.
//!
//! Training counts co-occurrences and keeps each product's strongest neighbours; a
//! contact's recommendations are then the neighbours of what they bought, summed, minus
//! what they already own. Quality is a leave-last-order-out hit rate: for customers with
//! at least two orders, recommend from all but the last and check whether a product of
//! the last order is among the top 1 and top 5 ([`HIT_AT`]), against the same rates for
//! simply recommending the best sellers.

use std::collections::{BTreeSet, HashMap};

use rapport_schema as s;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, JoinType, QueryFilter,
    QueryOrder, QuerySelect, RelationDef,
};
use serde::{Deserialize, Serialize};

use super::registry::{self, Trained, TrainingRun};
use crate::clock;
use crate::error::Result;
use crate::values::{ModelKind, OrderStatus};
use rapport_schema::model_version;

/// Neighbours kept per product.
pub const NEIGHBOURS: usize = 20;
/// Orders two products must share before they count as bought together.
pub const MIN_TOGETHER: u32 = 2;
/// The cut-offs the hit rate is reported at.
pub const HIT_AT: [usize; 2] = [1, 5];

/// A product's neighbour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The other product.
    pub product_id: i64,
    /// Orders with both.
    pub together: u32,
    /// co / √(orders with a · orders with b).
    pub cosine: f64,
    /// P(b | a) / P(b): how much more likely b is in an order that has a.
    pub lift: f64,
}

/// What is stored: each product's strongest neighbours, best first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecommendationModel {
    /// Neighbours by product id.
    pub neighbours: HashMap<i64, Vec<Neighbour>>,
    /// Products by number of orders, best sellers first (the fallback).
    pub popular: Vec<i64>,
}

/// One recommended product.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    /// The product.
    pub product_id: i64,
    /// Summed cosine similarity to what the contact bought.
    pub score: f64,
    /// The purchases that led to it, strongest first.
    pub because: Vec<i64>,
}

impl RecommendationModel {
    /// Counts co-occurrences over baskets (the distinct products of each order).
    pub fn fit(baskets: &[BTreeSet<i64>]) -> Self {
        let mut count: HashMap<i64, u32> = HashMap::new();
        let mut pairs: HashMap<(i64, i64), u32> = HashMap::new();
        for basket in baskets {
            for &a in basket {
                *count.entry(a).or_default() += 1;
                for &b in basket.range(a + 1..) {
                    *pairs.entry((a, b)).or_default() += 1;
                }
            }
        }
        let n = baskets.len() as f64;
        let mut neighbours: HashMap<i64, Vec<Neighbour>> = HashMap::new();
        for (&(a, b), &together) in &pairs {
            if together < MIN_TOGETHER {
                continue;
            }
            let (ca, cb) = (f64::from(count[&a]), f64::from(count[&b]));
            let cosine = f64::from(together) / (ca * cb).sqrt();
            let lift = f64::from(together) * n / (ca * cb);
            for (from, to) in [(a, b), (b, a)] {
                neighbours.entry(from).or_default().push(Neighbour {
                    product_id: to,
                    together,
                    cosine,
                    lift,
                });
            }
        }
        for list in neighbours.values_mut() {
            list.sort_by(|x, y| {
                y.cosine
                    .total_cmp(&x.cosine)
                    .then(x.product_id.cmp(&y.product_id))
            });
            list.truncate(NEIGHBOURS);
        }
        let mut popular: Vec<(i64, u32)> = count.into_iter().collect();
        popular.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        RecommendationModel {
            neighbours,
            popular: popular.into_iter().map(|(p, _)| p).collect(),
        }
    }

    /// The products to offer someone who bought `owned`, best first, none of them owned.
    pub fn recommend(&self, owned: &BTreeSet<i64>, first: usize) -> Vec<Recommendation> {
        let mut scores: HashMap<i64, (f64, Vec<(f64, i64)>)> = HashMap::new();
        for &p in owned {
            for n in self.neighbours.get(&p).into_iter().flatten() {
                if owned.contains(&n.product_id) {
                    continue;
                }
                let entry = scores.entry(n.product_id).or_default();
                entry.0 += n.cosine;
                entry.1.push((n.cosine, p));
            }
        }
        let mut ranked: Vec<Recommendation> = scores
            .into_iter()
            .map(|(product_id, (score, mut because))| {
                because.sort_by(|a, b| b.0.total_cmp(&a.0));
                Recommendation {
                    product_id,
                    score,
                    because: because.into_iter().map(|(_, p)| p).collect(),
                }
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.product_id.cmp(&b.product_id))
        });
        ranked.truncate(first);
        ranked
    }
}

fn line_to_order() -> RelationDef {
    s::order_line::Entity::belongs_to(s::order::Entity)
        .from(s::order_line::Column::OrderId)
        .to(s::order::Column::Id)
        .into()
}

/// Each paid order's distinct products, with the customer and time, oldest first.
async fn baskets(
    db: &impl ConnectionTrait,
    workspace_id: i64,
) -> Result<Vec<(i64, BTreeSet<i64>)>> {
    let lines: Vec<(i64, i64, String, Option<i64>)> = s::order_line::Entity::find()
        .select_only()
        .column(s::order_line::Column::OrderId)
        .column(s::order::Column::ContactId)
        .column(s::order::Column::Status)
        .column(s::order_line::Column::ProductId)
        .join(JoinType::InnerJoin, line_to_order())
        .filter(s::order_line::Column::WorkspaceId.eq(workspace_id))
        .filter(s::order::Column::DeletedAt.is_null())
        .order_by_asc(s::order::Column::PlacedAt)
        .order_by_asc(s::order_line::Column::OrderId)
        .into_tuple()
        .all(db)
        .await?;
    let mut out: Vec<(i64, i64, BTreeSet<i64>)> = Vec::new();
    for (order, contact, status, product) in lines {
        if matches!(
            OrderStatus::from_db(&status),
            OrderStatus::Cancelled | OrderStatus::Refunded
        ) {
            continue;
        }
        let Some(product) = product else { continue };
        match out.last_mut() {
            Some((o, _, basket)) if *o == order => {
                basket.insert(product);
            }
            _ => out.push((order, contact, BTreeSet::from([product]))),
        }
    }
    Ok(out.into_iter().map(|(_, c, b)| (c, b)).collect())
}

/// Leave-last-order-out hit rates at each of [`HIT_AT`]: (recommender, best sellers),
/// and the number of customers tested.
fn hit_rates(baskets: &[(i64, BTreeSet<i64>)]) -> (Vec<(f64, f64)>, usize) {
    let mut by_customer: HashMap<i64, Vec<&BTreeSet<i64>>> = HashMap::new();
    for (c, b) in baskets {
        by_customer.entry(*c).or_default().push(b);
    }
    // Train without each repeat customer's last order.
    let mut training = Vec::new();
    let mut tests = Vec::new();
    for orders in by_customer.values() {
        let (last, earlier) = orders.split_last().expect("at least one order");
        training.extend(earlier.iter().map(|b| (*b).clone()));
        if earlier.is_empty() {
            training.push((*last).clone());
            continue;
        }
        let owned: BTreeSet<i64> = earlier.iter().flat_map(|b| b.iter().copied()).collect();
        let new: BTreeSet<i64> = last.difference(&owned).copied().collect();
        if !new.is_empty() {
            tests.push((owned, new));
        }
    }
    let model = RecommendationModel::fit(&training);
    let n = tests.len().max(1) as f64;
    let rates = HIT_AT
        .iter()
        .map(|&k| {
            let (mut hits, mut popular_hits) = (0usize, 0usize);
            for (owned, new) in &tests {
                let offered = model.recommend(owned, k);
                hits += usize::from(offered.iter().any(|r| new.contains(&r.product_id)));
                let mut best_sellers = model.popular.iter().filter(|p| !owned.contains(p)).take(k);
                popular_hits += usize::from(best_sellers.any(|p| new.contains(p)));
            }
            (hits as f64 / n, popular_hits as f64 / n)
        })
        .collect();
    (rates, tests.len())
}

/// Builds the workspace's recommender from its orders and records it.
pub async fn train(
    db: &DatabaseConnection,
    workspace_id: i64,
    min_orders: usize,
) -> Result<model_version::Model> {
    let now = clock::now();
    let all = baskets(db, workspace_id).await?;
    let multi = all.iter().filter(|(_, b)| b.len() > 1).count();
    let trained = if multi < min_orders {
        Trained::Refused {
            message: format!(
                "too little data: {multi} of {} orders hold more than one product; at least \
                 {min_orders} are needed",
                all.len()
            ),
        }
    } else {
        let ((rates, customers), model) = super::cpu_bound(|| {
            (
                hit_rates(&all),
                RecommendationModel::fit(&all.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>()),
            )
        });
        Trained::Model {
            parameters: serde_json::to_value(model).expect("a model serialises"),
            metrics: serde_json::json!({
                "orders": all.len(),
                "orders_with_several_products": multi,
                "hit_rate_at_1": rates[0].0,
                "best_seller_hit_rate_at_1": rates[0].1,
                "hit_rate_at_5": rates[1].0,
                "best_seller_hit_rate_at_5": rates[1].1,
                "customers_tested": customers,
            }),
            auc: None,
        }
    };
    registry::record(
        db,
        workspace_id,
        TrainingRun {
            kind: ModelKind::Recommendations,
            features: vec!["order_lines".into()],
            rows: all.len(),
            positives: multi,
            window_from: now,
            window_to: now,
            trained,
        },
    )
    .await
}

/// The distinct products each of `contacts` has bought (paid orders).
pub async fn owned_by(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    contacts: &[i64],
) -> Result<HashMap<i64, BTreeSet<i64>>> {
    let rows: Vec<(i64, Option<i64>, String)> = s::order_line::Entity::find()
        .select_only()
        .column(s::order::Column::ContactId)
        .column(s::order_line::Column::ProductId)
        .column(s::order::Column::Status)
        .join(JoinType::InnerJoin, line_to_order())
        .filter(s::order_line::Column::WorkspaceId.eq(workspace_id))
        .filter(s::order::Column::ContactId.is_in(contacts.iter().copied()))
        .filter(s::order::Column::DeletedAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    let mut owned: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    for (contact, product, status) in rows {
        if let (Some(p), false) = (
            product,
            matches!(
                OrderStatus::from_db(&status),
                OrderStatus::Cancelled | OrderStatus::Refunded
            ),
        ) {
            owned.entry(contact).or_default().insert(p);
        }
    }
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basket(items: &[i64]) -> BTreeSet<i64> {
        items.iter().copied().collect()
    }

    #[test]
    fn neighbours_and_lift_by_hand() {
        // 1 and 2 always together (3 orders), 3 alone twice, 1 with 3 once.
        let baskets = [
            basket(&[1, 2]),
            basket(&[1, 2]),
            basket(&[1, 2]),
            basket(&[3]),
            basket(&[3]),
            basket(&[1, 3]),
        ];
        let m = RecommendationModel::fit(&baskets);
        let n = &m.neighbours[&1][0];
        assert_eq!(n.product_id, 2);
        assert_eq!(n.together, 3);
        // cosine = 3 / √(4·3); lift = 3·6 / (4·3).
        assert!((n.cosine - 3.0 / 12f64.sqrt()).abs() < 1e-12);
        assert!((n.lift - 1.5).abs() < 1e-12);
        // 1–3 shared one order only: below MIN_TOGETHER.
        assert!(m.neighbours[&1].iter().all(|n| n.product_id != 3));
        // 2 and 3 are in three orders each: the tie goes to the lower id.
        assert_eq!(m.popular, [1, 2, 3]);
        let recs = m.recommend(&basket(&[1]), 5);
        assert_eq!(recs[0].product_id, 2);
        assert_eq!(recs[0].because, [1]);
        assert!(
            m.recommend(&basket(&[1, 2]), 5).is_empty(),
            "owned products are left out"
        );
    }
}
