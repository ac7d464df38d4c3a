//! The sales funnel of one pipeline: how many deals reached each stage, how many moved
//! on, how long they stayed, by owner, team or month.
//!
//! Counts come from the stage history, not from where deals stand today, so a deal that
//! passed through "Proposal" and was lost in "Negotiation" counts for both stages.
//! A stage is *reached* by a deal that entered it or any later open stage, or won:
//! deals sometimes skip stages, and a skipped stage was still passed.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Utc};
use rapport_schema as s;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::crm::deals;
use crate::error::{EngineError, Result};
use crate::intelligence::models::features::median;
use crate::platform::auth::Principal;
use crate::platform::records;
use crate::values::DealStatus;

/// How deals are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// One group with every deal.
    Nothing,
    /// By deal owner.
    Owner,
    /// By the owner's team.
    Team,
    /// By the month the deal was created (`2026-03`).
    Month,
}

/// Which deals and how to cut them.
#[derive(Clone, Debug, PartialEq)]
pub struct FunnelQuery {
    /// The pipeline.
    pub pipeline_id: i64,
    /// Deals created at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Deals created before this time.
    pub to: Option<DateTime<Utc>>,
    /// Grouping.
    pub group_by: GroupBy,
}

/// One stage of one group.
#[derive(Clone, Debug, PartialEq)]
pub struct StageCounts {
    /// The stage.
    pub stage: s::stage::Model,
    /// Deals with a history entry into this stage.
    pub entered: usize,
    /// Deals that entered this stage or a later open one, or won.
    pub reached: usize,
    /// Deals in this stage now.
    pub current: usize,
    /// Share of the deals that reached this stage and reached the next (for the last
    /// open stage, the next is winning). `None` for won/lost stages or when none reached.
    pub conversion_to_next: Option<f64>,
    /// Median time in the stage, in hours, over the visits that ended.
    pub median_hours_in_stage: Option<f64>,
    /// The deals that reached the stage, for drill-down.
    pub deal_ids: Vec<i64>,
    /// Their contacts (each once).
    pub contact_ids: Vec<i64>,
}

/// One group's funnel.
#[derive(Clone, Debug, PartialEq)]
pub struct FunnelGroup {
    /// Owner id, team id or month; `None` for the ungrouped funnel or deals with no owner.
    pub key: Option<String>,
    /// Deals in the group.
    pub deals: usize,
    /// Won deals.
    pub won: usize,
    /// Lost deals.
    pub lost: usize,
    /// Stages in pipeline order.
    pub stages: Vec<StageCounts>,
}

struct DealFacts {
    id: i64,
    contact: Option<i64>,
    stage: i64,
    status: String,
    key: Option<String>,
    /// (when, to stage), in time order.
    moves: Vec<(DateTime<Utc>, i64)>,
}

/// Computes the funnel of one pipeline in the caller's workspace.
pub async fn funnel(
    db: &DatabaseConnection,
    who: &Principal,
    query: &FunnelQuery,
) -> Result<Vec<FunnelGroup>> {
    let ws = who.workspace_id;
    records::get::<s::pipeline::Entity>(db, ws, query.pipeline_id).await?;
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from >= to
    {
        return Err(EngineError::invalid("to", "must be after from"));
    }
    let stages = deals::stages_of(db, ws, query.pipeline_id).await?;
    let mut select = s::deal::Entity::find()
        .filter(s::deal::Column::WorkspaceId.eq(ws))
        .filter(s::deal::Column::PipelineId.eq(query.pipeline_id))
        .filter(s::deal::Column::DeletedAt.is_null());
    if let Some(from) = query.from {
        select = select.filter(s::deal::Column::CreatedAt.gte(from));
    }
    if let Some(to) = query.to {
        select = select.filter(s::deal::Column::CreatedAt.lt(to));
    }
    let rows = select.all(db).await?;
    let teams: HashMap<i64, Option<i64>> = if query.group_by == GroupBy::Team {
        s::user::Entity::find()
            .filter(s::user::Column::WorkspaceId.eq(ws))
            .all(db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.team_id))
            .collect()
    } else {
        HashMap::new()
    };
    let mut moves: HashMap<i64, Vec<(DateTime<Utc>, i64)>> = HashMap::new();
    for m in s::deal_stage_change::Entity::find()
        .filter(s::deal_stage_change::Column::WorkspaceId.eq(ws))
        .filter(
            s::deal_stage_change::Column::DealId
                .in_subquery(deal_ids_subquery(ws, query.pipeline_id)),
        )
        .all(db)
        .await?
    {
        moves
            .entry(m.deal_id)
            .or_default()
            .push((m.moved_at, m.to_stage_id));
    }
    let mut groups: BTreeMap<Option<String>, Vec<DealFacts>> = BTreeMap::new();
    for d in rows {
        let key = match query.group_by {
            GroupBy::Nothing => None,
            GroupBy::Owner => d.owner_id.map(|o| o.to_string()),
            GroupBy::Team => d
                .owner_id
                .and_then(|o| teams.get(&o).copied().flatten())
                .map(|t| t.to_string()),
            GroupBy::Month => Some(format!(
                "{:04}-{:02}",
                d.created_at.year(),
                d.created_at.month()
            )),
        };
        let mut history = moves.remove(&d.id).unwrap_or_default();
        history.sort();
        groups.entry(key.clone()).or_default().push(DealFacts {
            id: d.id,
            contact: d.contact_id,
            stage: d.stage_id,
            status: d.status,
            key,
            moves: history,
        });
    }
    if groups.is_empty() && query.group_by == GroupBy::Nothing {
        groups.insert(None, Vec::new());
    }
    Ok(groups
        .into_values()
        .map(|facts| count_group(&stages, &facts))
        .collect())
}

fn deal_ids_subquery(ws: i64, pipeline: i64) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::QuerySelect;
    use sea_orm::QueryTrait;
    s::deal::Entity::find()
        .select_only()
        .column(s::deal::Column::Id)
        .filter(s::deal::Column::WorkspaceId.eq(ws))
        .filter(s::deal::Column::PipelineId.eq(pipeline))
        .into_query()
}

fn count_group(stages: &[s::stage::Model], facts: &[DealFacts]) -> FunnelGroup {
    let open: Vec<&s::stage::Model> = stages.iter().filter(|s| !s.is_won && !s.is_lost).collect();
    let open_index: HashMap<i64, usize> = open.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let won_ids: Vec<i64> = stages.iter().filter(|s| s.is_won).map(|s| s.id).collect();
    // How far along the open stages each deal got (None: it never entered one).
    let furthest: Vec<Option<usize>> = facts
        .iter()
        .map(|d| {
            if d.status == DealStatus::Won.as_str()
                || d.moves.iter().any(|(_, s)| won_ids.contains(s))
            {
                return Some(open.len().saturating_sub(1));
            }
            d.moves
                .iter()
                .filter_map(|(_, s)| open_index.get(s).copied())
                .max()
        })
        .collect();
    let mut counts: Vec<StageCounts> = stages
        .iter()
        .map(|stage| {
            let entered: Vec<&DealFacts> = facts
                .iter()
                .filter(|d| d.moves.iter().any(|(_, s)| *s == stage.id))
                .collect();
            let reached: Vec<&DealFacts> = match open_index.get(&stage.id) {
                Some(&k) => facts
                    .iter()
                    .zip(&furthest)
                    .filter(|(_, f)| f.is_some_and(|f| f >= k))
                    .map(|(d, _)| d)
                    .collect(),
                None => entered.clone(),
            };
            let mut hours: Vec<f64> = facts
                .iter()
                .flat_map(|d| {
                    d.moves
                        .windows(2)
                        .filter(move |w| w[0].1 == stage.id)
                        .map(|w| (w[1].0 - w[0].0).num_seconds() as f64 / 3600.0)
                })
                .collect();
            let mut contact_ids: Vec<i64> = reached.iter().filter_map(|d| d.contact).collect();
            contact_ids.sort_unstable();
            contact_ids.dedup();
            StageCounts {
                stage: stage.clone(),
                entered: entered.len(),
                reached: reached.len(),
                current: facts.iter().filter(|d| d.stage == stage.id).count(),
                conversion_to_next: None,
                median_hours_in_stage: median(&mut hours),
                deal_ids: reached.iter().map(|d| d.id).collect(),
                contact_ids,
            }
        })
        .collect();
    let won = facts
        .iter()
        .filter(|d| d.status == DealStatus::Won.as_str())
        .count();
    for (k, stage) in open.iter().enumerate() {
        let next = match open.get(k + 1) {
            Some(n) => counts
                .iter()
                .find(|c| c.stage.id == n.id)
                .map(|c| c.reached),
            None => Some(won),
        };
        let c = counts
            .iter_mut()
            .find(|c| c.stage.id == stage.id)
            .expect("every open stage is counted");
        c.conversion_to_next = next
            .filter(|_| c.reached > 0)
            .map(|n| n as f64 / c.reached as f64);
    }
    FunnelGroup {
        key: facts.first().and_then(|d| d.key.clone()),
        deals: facts.len(),
        won,
        lost: facts
            .iter()
            .filter(|d| d.status == DealStatus::Lost.as_str())
            .count(),
        stages: counts,
    }
}
