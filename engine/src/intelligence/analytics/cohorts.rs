//! Monthly cohort retention: customers grouped by the month of their first order, and
//! the share of each cohort that ordered again in each later month.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Utc};
use rapport_schema as s;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};

use crate::clock;
use crate::error::{EngineError, Result};
use crate::values::OrderStatus;

/// One cohort.
#[derive(Clone, Debug, PartialEq)]
pub struct Cohort {
    /// The month of the first order, `2026-03`.
    pub month: String,
    /// Customers whose first order fell in that month.
    pub customers: usize,
    /// `active[k]`: how many of them ordered in month `k` after it (`active[0]` is all).
    pub active: Vec<usize>,
    /// `active[k] / customers`.
    pub retention: Vec<f64>,
}

/// Months since year 0, so month arithmetic is integer arithmetic.
fn month_index(at: DateTime<Utc>) -> i32 {
    at.year() * 12 + at.month0() as i32
}

fn month_name(index: i32) -> String {
    format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    )
}

/// Cohorts of the last `months` months (the current one included), each followed until
/// now. Cancelled and refunded orders do not count.
pub async fn monthly(
    db: &DatabaseConnection,
    workspace_id: i64,
    months: u32,
) -> Result<Vec<Cohort>> {
    if !(1..=120).contains(&months) {
        return Err(EngineError::invalid("months", "must be between 1 and 120"));
    }
    let orders: Vec<(i64, String, DateTime<Utc>)> = s::order::Entity::find()
        .select_only()
        .columns([
            s::order::Column::ContactId,
            s::order::Column::Status,
            s::order::Column::PlacedAt,
        ])
        .filter(s::order::Column::WorkspaceId.eq(workspace_id))
        .filter(s::order::Column::DeletedAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    let mut active_months: HashMap<i64, BTreeSet<i32>> = HashMap::new();
    for (contact, status, placed) in orders {
        if matches!(
            OrderStatus::from_db(&status),
            OrderStatus::Cancelled | OrderStatus::Refunded
        ) {
            continue;
        }
        active_months
            .entry(contact)
            .or_default()
            .insert(month_index(placed));
    }
    let now = month_index(clock::now());
    let first_shown = now - months as i32 + 1;
    let mut cohorts: BTreeMap<i32, Vec<&BTreeSet<i32>>> = BTreeMap::new();
    for months in active_months.values() {
        let first = *months.first().expect("at least one order");
        if first >= first_shown {
            cohorts.entry(first).or_default().push(months);
        }
    }
    Ok(cohorts
        .into_iter()
        .map(|(start, members)| {
            let active: Vec<usize> = (0..=(now - start))
                .map(|k| members.iter().filter(|m| m.contains(&(start + k))).count())
                .collect();
            let size = members.len();
            Cohort {
                month: month_name(start),
                customers: size,
                retention: active.iter().map(|&a| a as f64 / size as f64).collect(),
                active,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_round_trip() {
        let at = DateTime::parse_from_rfc3339("2026-01-15T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(month_name(month_index(at)), "2026-01");
        assert_eq!(month_name(month_index(at) - 1), "2025-12");
    }
}
