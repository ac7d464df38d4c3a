//! Win probability for open deals, learnt from the deals that already closed.
//!
//! A closed deal is described as it stood just before it closed (its last open stage,
//! its age and its contact's engagement at that moment) and labelled won or lost; an
//! open deal is described as it stands now. Without a trained model a deal's stage
//! default is the answer, and callers are told which one they got.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rapport_schema as s;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};

use super::behaviour::{Behaviour, Instant, days};
use super::registry::{self, GradeRule, StoredModel, Trained, TrainingRun};
use crate::clock;
use crate::error::Result;
use crate::intelligence::models::classifier::{
    Algorithm, Classifier, DEFAULT_MIN_POSITIVES, Split,
};
use crate::intelligence::models::features::{Column, FeatureTable};
use crate::values::{DealStatus, ModelKind, ModelStatus};
use rapport_schema::model_version;

/// One deal as the model sees it.
#[derive(Clone, Debug)]
struct DealRow {
    id: i64,
    contact: Option<i64>,
    owner: Option<i64>,
    pipeline: i64,
    amount_minor: i64,
    status: DealStatus,
    created: Instant,
    closed: Option<Instant>,
    expected_close: Option<NaiveDate>,
    has_competitor: bool,
}

struct Deals {
    rows: Vec<DealRow>,
    /// Stage moves per deal: (when, to stage).
    moves: HashMap<i64, Vec<(Instant, i64)>>,
    /// Stage id → (name, closed?).
    stages: HashMap<i64, (String, bool)>,
    current_stage: HashMap<i64, i64>,
}

async fn load(db: &DatabaseConnection, workspace_id: i64) -> Result<Deals> {
    let deals = s::deal::Entity::find()
        .filter(s::deal::Column::WorkspaceId.eq(workspace_id))
        .filter(s::deal::Column::DeletedAt.is_null())
        .all(db)
        .await?;
    let mut current_stage = HashMap::new();
    let rows = deals
        .into_iter()
        .map(|d| {
            current_stage.insert(d.id, d.stage_id);
            DealRow {
                id: d.id,
                contact: d.contact_id,
                owner: d.owner_id,
                pipeline: d.pipeline_id,
                amount_minor: d.amount_minor,
                status: DealStatus::from_db(&d.status),
                created: d.created_at.timestamp(),
                closed: d.closed_at.map(|c| c.timestamp()),
                expected_close: d.expected_close_date,
                has_competitor: d.competitor.is_some(),
            }
        })
        .collect();
    let history: Vec<(i64, i64, DateTime<Utc>)> = s::deal_stage_change::Entity::find()
        .select_only()
        .columns([
            s::deal_stage_change::Column::DealId,
            s::deal_stage_change::Column::ToStageId,
            s::deal_stage_change::Column::MovedAt,
        ])
        .filter(s::deal_stage_change::Column::WorkspaceId.eq(workspace_id))
        .into_tuple()
        .all(db)
        .await?;
    let mut moves: HashMap<i64, Vec<(Instant, i64)>> = HashMap::new();
    for (deal, stage, at) in history {
        moves.entry(deal).or_default().push((at.timestamp(), stage));
    }
    for list in moves.values_mut() {
        list.sort_unstable();
    }
    let stages = s::stage::Entity::find()
        .filter(s::stage::Column::WorkspaceId.eq(workspace_id))
        .all(db)
        .await?
        .into_iter()
        .map(|st| (st.id, (st.name, st.is_won || st.is_lost)))
        .collect();
    Ok(Deals {
        rows,
        moves,
        stages,
        current_stage,
    })
}

/// Features of each deal as of its moment (closing time for closed deals, `now` else).
fn features(deals: &Deals, behaviour: &Behaviour, rows: &[&DealRow], now: Instant) -> FeatureTable {
    let at = |d: &DealRow| d.closed.unwrap_or(now);
    let last_open_stage = |d: &DealRow| -> Option<String> {
        let before = at(d);
        let mut moved = deals.moves.get(&d.id).into_iter().flatten();
        let open = moved
            .rfind(|(when, stage)| {
                *when <= before && deals.stages.get(stage).is_some_and(|(_, closed)| !closed)
            })
            .map(|(_, stage)| *stage)
            .or_else(|| deals.current_stage.get(&d.id).copied());
        open.and_then(|s| deals.stages.get(&s))
            .map(|(name, _)| name.clone())
    };
    let touches_before = |d: &DealRow| -> (f64, Option<f64>) {
        let Some(contact) = d.contact else {
            return (0.0, None);
        };
        let before = at(d);
        let mut count = 0.0;
        let mut last: Option<Instant> = None;
        for &(_, when) in behaviour.touches.get(&contact).into_iter().flatten() {
            // The same 90-day window for every deal, so an old open deal is not credited
            // with a longer history than the closed deals the model learnt from.
            if when < before && days(when, before) <= 90.0 {
                count += 1.0;
                last = Some(last.map_or(when, |l| l.max(when)));
            }
        }
        (count, last.map(|l| days(l, before)))
    };
    let touches: Vec<(f64, Option<f64>)> = rows.iter().map(|d| touches_before(d)).collect();
    let columns = [
        (
            "stage",
            Column::Text(rows.iter().map(|d| last_open_stage(d)).collect()),
        ),
        (
            "pipeline",
            Column::Text(rows.iter().map(|d| Some(d.pipeline.to_string())).collect()),
        ),
        (
            "owner",
            Column::Text(
                rows.iter()
                    .map(|d| d.owner.map(|o| o.to_string()))
                    .collect(),
            ),
        ),
        (
            "amount_log",
            Column::Numeric(
                rows.iter()
                    .map(|d| Some((d.amount_minor.max(0) as f64 / 100.0).ln_1p()))
                    .collect(),
            ),
        ),
        (
            "age_days",
            Column::Numeric(
                rows.iter()
                    .map(|d| Some(days(d.created, at(d)).max(0.0)))
                    .collect(),
            ),
        ),
        (
            "stage_moves",
            Column::Numeric(
                rows.iter()
                    .map(|d| {
                        let moved = deals.moves.get(&d.id).into_iter().flatten();
                        Some(moved.filter(|(when, _)| *when < at(d)).count() as f64)
                    })
                    .collect(),
            ),
        ),
        (
            "touches",
            Column::Numeric(touches.iter().map(|t| Some(t.0)).collect()),
        ),
        (
            "days_since_last_touch",
            Column::Numeric(touches.iter().map(|t| t.1).collect()),
        ),
        (
            "has_competitor",
            Column::Numeric(
                rows.iter()
                    .map(|d| Some(f64::from(u8::from(d.has_competitor))))
                    .collect(),
            ),
        ),
        (
            "days_to_expected_close",
            Column::Numeric(
                rows.iter()
                    .map(|d| {
                        d.expected_close.map(|e| {
                            let close = e.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
                            days(at(d), close.timestamp())
                        })
                    })
                    .collect(),
            ),
        ),
    ];
    let mut table = FeatureTable::with_rows(rows.len());
    for (name, column) in columns {
        table
            .push(name, column)
            .expect("every column has one value per deal");
    }
    table
}

/// Trains on every closed deal, records the version and rescores open deals when it
/// became active.
pub async fn train(
    db: &DatabaseConnection,
    workspace_id: i64,
    min_positives: Option<usize>,
    algorithm: Algorithm,
) -> Result<model_version::Model> {
    let min_positives = min_positives.unwrap_or(DEFAULT_MIN_POSITIVES);
    let now = clock::now();
    let deals = load(db, workspace_id).await?;
    let behaviour = Behaviour::load(db, workspace_id).await?;
    let closed: Vec<&DealRow> = deals
        .rows
        .iter()
        .filter(|d| d.status != DealStatus::Open && d.closed.is_some())
        .collect();
    let labels: Vec<bool> = closed.iter().map(|d| d.status == DealStatus::Won).collect();
    let won = labels.iter().filter(|&&l| l).count();
    let lost = labels.len() - won;
    let table = features(&deals, &behaviour, &closed, now.timestamp());
    let window_from = closed
        .iter()
        .filter_map(|d| d.closed)
        .min()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .unwrap_or(now);
    let trained = if won.min(lost) < min_positives {
        Trained::Refused {
            message: format!(
                "too little data: {won} won and {lost} lost deals; at least {min_positives} of each are needed"
            ),
        }
    } else {
        let split = Split::stratified(&labels);
        let (classifier, report) =
            super::cpu_bound(|| Classifier::train(&table, &labels, &split, algorithm))?;
        let model = StoredModel {
            classifier,
            grades: GradeRule::Thresholds([70.0, 40.0, 15.0]),
        };
        Trained::classifier(model, &report)
    };
    let version = registry::record(
        db,
        workspace_id,
        TrainingRun {
            kind: ModelKind::WinProbability,
            features: table.names().to_vec(),
            rows: closed.len(),
            positives: won,
            window_from,
            window_to: now,
            trained,
        },
    )
    .await?;
    if version.status == ModelStatus::Active.as_str() {
        rescore_with(db, workspace_id, &behaviour).await?;
    }
    Ok(version)
}

/// Scores every open deal with the active version; returns how many.
pub async fn rescore(db: &DatabaseConnection, workspace_id: i64) -> Result<usize> {
    if registry::active::<serde_json::Value>(db, workspace_id, ModelKind::WinProbability)
        .await?
        .is_none()
    {
        return Ok(0);
    }
    let behaviour = Behaviour::load(db, workspace_id).await?;
    rescore_with(db, workspace_id, &behaviour).await
}

/// Scores every open deal from already loaded behaviour.
pub async fn rescore_with(
    db: &DatabaseConnection,
    workspace_id: i64,
    behaviour: &Behaviour,
) -> Result<usize> {
    let Some((version, model)) =
        registry::active::<StoredModel>(db, workspace_id, ModelKind::WinProbability).await?
    else {
        return Ok(0);
    };
    let deals = load(db, workspace_id).await?;
    let open: Vec<&DealRow> = deals
        .rows
        .iter()
        .filter(|d| d.status == DealStatus::Open)
        .collect();
    let table = features(&deals, behaviour, &open, clock::now().timestamp());
    let predictions = model.classifier.predict(&table)?;
    let ids: Vec<i64> = open.iter().map(|d| d.id).collect();
    let new = registry::graded(&ids, predictions, &model.grades, &[]);
    registry::replace_scores(
        db,
        workspace_id,
        ModelKind::WinProbability,
        version.id,
        &new,
    )
    .await?;
    Ok(new.len())
}
