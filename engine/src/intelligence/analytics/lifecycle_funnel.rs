//! The lifecycle funnel: of the contacts created in a window, how many reached each
//! stage of the ladder Lead → Qualified → Opportunity → Customer, how many stand there
//! now, how many went on to the next stage, and how long reaching each took.
//!
//! Counts come from the lifecycle history, not only from where contacts stand today: a
//! contact that reached Customer passed Qualified and Opportunity even if it skipped
//! them, and a churned customer was a customer. `lost` is off the ladder.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rapport_schema::{contact, lifecycle_change};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};

use crate::error::Result;
use crate::intelligence::models::features::median;
use crate::platform::auth::Principal;
use crate::platform::records::{self, Deleted};
use crate::values::LifecycleStage;

/// The stages of the ladder, in order.
pub const LADDER: [LifecycleStage; 4] = [
    LifecycleStage::Lead,
    LifecycleStage::Qualified,
    LifecycleStage::Opportunity,
    LifecycleStage::Customer,
];

/// How far up the ladder a stage is; `None` off it (`lost`).
fn rung(stage: LifecycleStage) -> Option<usize> {
    match stage {
        LifecycleStage::Lead => Some(0),
        LifecycleStage::Qualified => Some(1),
        LifecycleStage::Opportunity => Some(2),
        // A churned contact was a customer first.
        LifecycleStage::Customer | LifecycleStage::Churned => Some(3),
        LifecycleStage::Lost => None,
    }
}

/// One stage of the funnel.
#[derive(Clone, Debug, PartialEq)]
pub struct StageCount {
    /// The stage.
    pub stage: LifecycleStage,
    /// Contacts that reached it (or a later stage).
    pub reached: usize,
    /// Contacts in it now.
    pub current: usize,
    /// Share of those that reached it that reached the next stage (none for the last,
    /// or when nobody reached it).
    pub conversion_to_next: Option<f64>,
    /// Median days from a contact's creation to reaching the stage.
    pub median_days_to_reach: Option<f64>,
}

/// The funnel of the contacts created in `[from, to)` (either end open).
pub async fn funnel(
    db: &DatabaseConnection,
    who: &Principal,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<StageCount>> {
    let ws = who.workspace_id;
    let mut people = records::scoped::<contact::Entity>(ws, Deleted::Exclude)
        .select_only()
        .column(contact::Column::Id)
        .column(contact::Column::CreatedAt)
        .column(contact::Column::LifecycleStage);
    if let Some(from) = from {
        people = people.filter(contact::Column::CreatedAt.gte(from));
    }
    if let Some(to) = to {
        people = people.filter(contact::Column::CreatedAt.lt(to));
    }
    let people: Vec<(i64, DateTime<Utc>, String)> = people.into_tuple().all(db).await?;
    // When each contact first stood on each rung or higher.
    let mut first: HashMap<i64, [Option<DateTime<Utc>>; 4]> = HashMap::new();
    for chunk in people.chunks(5000) {
        let changes: Vec<(i64, String, DateTime<Utc>)> = lifecycle_change::Entity::find()
            .select_only()
            .column(lifecycle_change::Column::ContactId)
            .column(lifecycle_change::Column::ToStage)
            .column(lifecycle_change::Column::ChangedAt)
            .filter(lifecycle_change::Column::WorkspaceId.eq(ws))
            .filter(lifecycle_change::Column::ContactId.is_in(chunk.iter().map(|p| p.0)))
            .into_tuple()
            .all(db)
            .await?;
        for (id, stage, at) in changes {
            let Some(top) = rung(LifecycleStage::from_db(&stage)) else {
                continue;
            };
            let times = first.entry(id).or_default();
            for slot in times.iter_mut().take(top + 1) {
                if slot.is_none_or(|t| at < t) {
                    *slot = Some(at);
                }
            }
        }
    }
    let mut reached = [0usize; 4];
    let mut current = [0usize; 4];
    let mut days: [Vec<f64>; 4] = Default::default();
    for (id, created, stage) in &people {
        let now = rung(LifecycleStage::from_db(stage));
        let mut times = first.get(id).copied().unwrap_or_default();
        // Where a contact stands counts even if its history was written before history
        // was kept: it reached that rung no later than now.
        if let Some(top) = now {
            for slot in times.iter_mut().take(top + 1) {
                slot.get_or_insert(*created);
            }
        }
        for (k, at) in times.iter().enumerate() {
            if let Some(at) = at {
                reached[k] += 1;
                days[k].push(((*at - *created).num_seconds().max(0)) as f64 / 86_400.0);
            }
        }
        if let Some(top) = now
            && LifecycleStage::from_db(stage) != LifecycleStage::Churned
        {
            current[top] += 1;
        }
    }
    Ok(LADDER
        .iter()
        .enumerate()
        .map(|(k, &stage)| StageCount {
            stage,
            reached: reached[k],
            current: current[k],
            conversion_to_next: (k + 1 < LADDER.len() && reached[k] > 0)
                .then(|| reached[k + 1] as f64 / reached[k] as f64),
            median_days_to_reach: median(&mut days[k]),
        })
        .collect())
}
