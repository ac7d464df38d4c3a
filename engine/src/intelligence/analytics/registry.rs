//! The model registry: trained versions with their metrics, which one is active, and the
//! scores the active version gave.
//!
//! A new version is activated only when it measures at least as well as the active one
//! (AUC on its held-out rows); otherwise it stays a candidate that a person can activate
//! by hand. A version trained on too little data is recorded with the reason and never
//! scores anything.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rapport_schema::{model_version, score, score_history};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::error::{EngineError, Result};
use crate::intelligence::models::classifier::{Classifier, Contribution, Report};
use crate::platform::auth::Principal;
use crate::values::{ModelKind, ModelStatus, WebhookEventType};

/// How probabilities become letter grades.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GradeRule {
    /// A for the top quarter of the scored population, then B, C, D.
    Quartiles,
    /// A at or above the first score (0–100), B at or above the second, C the third.
    Thresholds([f64; 3]),
}

impl GradeRule {
    /// Checks that thresholds are within 0–100 and descending.
    pub fn thresholds(values: &[f64]) -> Result<Self> {
        let [a, b, c] = values else {
            return Err(EngineError::invalid(
                "gradeThresholds",
                "give three scores: the lowest A, the lowest B and the lowest C",
            ));
        };
        if !((0.0..=100.0).contains(c) && c <= b && b <= a && *a <= 100.0) {
            return Err(EngineError::invalid(
                "gradeThresholds",
                "thresholds must lie in 0–100 and descend (A ≥ B ≥ C)",
            ));
        }
        Ok(GradeRule::Thresholds([*a, *b, *c]))
    }

    /// The lowest A, B and C scores, for quartiles taken over `population`.
    pub fn cutoffs(&self, population: &[f64]) -> [f64; 3] {
        match self {
            GradeRule::Thresholds(t) => *t,
            GradeRule::Quartiles => {
                let mut sorted = population.to_vec();
                sorted.sort_by(|a, b| b.total_cmp(a));
                let at = |q: f64| {
                    sorted
                        .get(((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1))
                        .copied()
                        .unwrap_or(0.0)
                };
                [at(0.25), at(0.5), at(0.75)]
            }
        }
    }

    /// The grade of one score under the cut-offs.
    pub fn grade(score: f64, cutoffs: &[f64; 3]) -> &'static str {
        if score >= cutoffs[0] {
            "A"
        } else if score >= cutoffs[1] {
            "B"
        } else if score >= cutoffs[2] {
            "C"
        } else {
            "D"
        }
    }

    /// Grades every score (0–100) of one scoring run against each other.
    pub fn grade_all(&self, scores: &[f64]) -> Vec<&'static str> {
        let cut = self.cutoffs(scores);
        scores.iter().map(|&s| Self::grade(s, &cut)).collect()
    }
}

/// What a stored version needs to score: the fitted pipeline and how to grade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredModel {
    /// Encoder and coefficients.
    pub classifier: Classifier,
    /// Letter grades.
    pub grades: GradeRule,
}

/// A finished training run, before it is recorded.
#[derive(Clone, Debug)]
pub enum Trained {
    /// A model and its measurements.
    Model {
        /// What scoring needs, as stored.
        parameters: serde_json::Value,
        /// Everything measured.
        metrics: serde_json::Value,
        /// The held-out AUC that decides activation, for classifiers.
        auc: Option<f64>,
    },
    /// Training refused: too little data.
    Refused {
        /// Why, in words a user can act on.
        message: String,
    },
}

impl Trained {
    /// A trained classifier and its held-out report.
    pub fn classifier(model: StoredModel, report: &Report) -> Self {
        Trained::Model {
            parameters: serde_json::to_value(model).expect("a model serialises"),
            metrics: serde_json::to_value(report).expect("a report serialises"),
            auc: report.auc,
        }
    }
}

/// The data window and counts of a training run.
#[derive(Clone, Debug)]
pub struct TrainingRun {
    /// Which model.
    pub kind: ModelKind,
    /// The raw feature names.
    pub features: Vec<String>,
    /// Rows labelled.
    pub rows: usize,
    /// Positive rows.
    pub positives: usize,
    /// Start of the period the labels look at.
    pub window_from: DateTime<Utc>,
    /// Its end.
    pub window_to: DateTime<Utc>,
    /// The outcome.
    pub trained: Trained,
}

/// Stores a training run as a new version and activates it when it is no worse than the
/// active version.
pub async fn record(
    db: &DatabaseConnection,
    workspace_id: i64,
    run: TrainingRun,
) -> Result<model_version::Model> {
    let tx = crate::platform::db::write(db).await?;
    let kind = run.kind.as_str();
    let latest: Option<i32> = model_version::Entity::find()
        .select_only()
        .column_as(model_version::Column::Version.max(), "v")
        .filter(model_version::Column::WorkspaceId.eq(workspace_id))
        .filter(model_version::Column::Kind.eq(kind))
        .into_tuple::<Option<i32>>()
        .one(&tx)
        .await?
        .flatten();
    let active = active_version(&tx, workspace_id, run.kind).await?;
    let now = clock::now();
    let (status, message, metrics, parameters) = match &run.trained {
        Trained::Refused { message } => (
            ModelStatus::InsufficientData,
            Some(message.clone()),
            serde_json::json!({}),
            None,
        ),
        Trained::Model {
            parameters,
            metrics,
            auc,
        } => {
            let active_auc = active
                .as_ref()
                .and_then(|a| a.metrics.get("auc").and_then(|v| v.as_f64()));
            let (status, message) = match (active_auc, *auc) {
                (Some(old), Some(new)) if new < old => (
                    ModelStatus::Candidate,
                    Some(format!(
                        "not activated: AUC {new:.4} is below the active version's {old:.4}"
                    )),
                ),
                _ => (ModelStatus::Active, None),
            };
            (status, message, metrics.clone(), Some(parameters.clone()))
        }
    };
    if status == ModelStatus::Active
        && let Some(old) = &active
    {
        retire(&tx, old.id).await?;
    }
    let version = model_version::ActiveModel {
        workspace_id: Set(workspace_id),
        kind: Set(kind.to_string()),
        version: Set(latest.unwrap_or(0) + 1),
        status: Set(status.as_str().to_string()),
        message: Set(message),
        metrics: Set(metrics),
        features: Set(serde_json::json!(run.features)),
        parameters: Set(parameters),
        rows_used: Set(run.rows as i64),
        positives: Set(run.positives as i64),
        window_from: Set(run.window_from),
        window_to: Set(run.window_to),
        trained_at: Set(now),
        activated_at: Set((status == ModelStatus::Active).then_some(now)),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    prune_parameters(&tx, workspace_id, run.kind).await?;
    tx.commit().await?;
    Ok(version)
}

/// How many of a model's newest versions keep their parameters (the active version always
/// does). Older ones keep their metrics, features and window, so the history of how the
/// model measured stays; a boosted version's trees are about a megabyte, and the schedule
/// retrains daily.
pub const PARAMETERS_KEPT: u64 = 5;

/// Drops the parameters of versions of `kind` older than the newest [`PARAMETERS_KEPT`],
/// except the active one's; returns how many were dropped.
pub async fn prune_parameters(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: ModelKind,
) -> Result<u64> {
    let newest: Vec<i64> = model_version::Entity::find()
        .select_only()
        .column(model_version::Column::Id)
        .filter(model_version::Column::WorkspaceId.eq(workspace_id))
        .filter(model_version::Column::Kind.eq(kind.as_str()))
        .order_by_desc(model_version::Column::Version)
        .limit(PARAMETERS_KEPT)
        .into_tuple::<i64>()
        .all(db)
        .await?;
    let dropped = model_version::Entity::update_many()
        .col_expr(
            model_version::Column::Parameters,
            sea_orm::sea_query::Expr::value(sea_orm::Value::Json(None)),
        )
        .filter(model_version::Column::WorkspaceId.eq(workspace_id))
        .filter(model_version::Column::Kind.eq(kind.as_str()))
        .filter(model_version::Column::Status.ne(ModelStatus::Active.as_str()))
        .filter(model_version::Column::Parameters.is_not_null())
        .filter(model_version::Column::Id.is_not_in(newest))
        .exec(db)
        .await?;
    Ok(dropped.rows_affected)
}

async fn retire(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    model_version::ActiveModel {
        id: Set(id),
        status: Set(ModelStatus::Retired.as_str().to_string()),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(())
}

async fn active_version(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: ModelKind,
) -> Result<Option<model_version::Model>> {
    Ok(model_version::Entity::find()
        .filter(model_version::Column::WorkspaceId.eq(workspace_id))
        .filter(model_version::Column::Kind.eq(kind.as_str()))
        .filter(model_version::Column::Status.eq(ModelStatus::Active.as_str()))
        .one(db)
        .await?)
}

/// The active version of a model and its stored parameters, if one is active.
pub async fn active<T: serde::de::DeserializeOwned>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: ModelKind,
) -> Result<Option<(model_version::Model, T)>> {
    let Some(version) = active_version(db, workspace_id, kind).await? else {
        return Ok(None);
    };
    let model = version
        .parameters
        .clone()
        .and_then(|p| serde_json::from_value::<T>(p).ok());
    Ok(model.map(|m| (version, m)))
}

/// Makes a trained version the active one (for a candidate a person has judged good).
pub async fn activate(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
) -> Result<model_version::Model> {
    who.require(crate::values::Scope::Admin)?;
    let tx = crate::platform::db::write(db).await?;
    let version = model_version::Entity::find_by_id(id)
        .filter(model_version::Column::WorkspaceId.eq(who.workspace_id))
        .one(&tx)
        .await?
        .ok_or_else(|| EngineError::not_found("Model", id))?;
    if version.parameters.is_none() {
        return Err(EngineError::Conflict(
            if version.status == ModelStatus::InsufficientData.as_str() {
                "this version was not trained (too little data) and cannot score".into()
            } else {
                format!(
                    "this version's parameters were dropped (only the newest {PARAMETERS_KEPT} versions keep them); train the model again"
                )
            },
        ));
    }
    let kind = ModelKind::from_db(&version.kind);
    if let Some(old) = active_version(&tx, who.workspace_id, kind).await?
        && old.id != id
    {
        retire(&tx, old.id).await?;
    }
    let now = clock::now();
    // Only while it still has its parameters: a retraining committing meanwhile may
    // have pruned them, and an active version without them would score nothing.
    let activated = model_version::Entity::update_many()
        .col_expr(
            model_version::Column::Status,
            sea_orm::sea_query::Expr::value(ModelStatus::Active.as_str()),
        )
        .col_expr(
            model_version::Column::Message,
            sea_orm::sea_query::Expr::value(None::<String>),
        )
        .col_expr(
            model_version::Column::ActivatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(model_version::Column::Id.eq(id))
        .filter(model_version::Column::Parameters.is_not_null())
        .exec(&tx)
        .await?;
    if activated.rows_affected != 1 {
        return Err(EngineError::Conflict(format!(
            "this version's parameters were dropped (only the newest {PARAMETERS_KEPT} versions keep them); train the model again"
        )));
    }
    let updated = model_version::Entity::find_by_id(id)
        .one(&tx)
        .await?
        .ok_or_else(|| EngineError::not_found("Model", id))?;
    tx.commit().await?;
    Ok(updated)
}

/// Every version of every model in the workspace, newest first.
pub async fn versions(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: Option<ModelKind>,
) -> Result<Vec<model_version::Model>> {
    let mut query =
        model_version::Entity::find().filter(model_version::Column::WorkspaceId.eq(workspace_id));
    if let Some(kind) = kind {
        query = query.filter(model_version::Column::Kind.eq(kind.as_str()));
    }
    Ok(query
        .order_by_desc(model_version::Column::TrainedAt)
        .order_by_desc(model_version::Column::Id)
        .all(db)
        .await?)
}

/// One subject's new score.
#[derive(Clone, Debug, PartialEq)]
pub struct NewScore {
    /// The contact or deal.
    pub subject_id: i64,
    /// 0–100.
    pub score: f64,
    /// A–D, when the model grades.
    pub grade: Option<String>,
    /// The strongest contributions.
    pub reasons: Vec<Contribution>,
}

/// How many reasons are kept per score in each direction: the strongest few for and
/// against are what a rep reads, the long tail is noise.
pub const REASONS_KEPT: usize = 3;

const BATCH: usize = 400;

/// Replaces the current scores of the given subjects and appends those that changed (or
/// are new) to the history.
pub async fn store_scores(
    db: &DatabaseConnection,
    workspace_id: i64,
    kind: ModelKind,
    model_version_id: i64,
    scores: &[NewScore],
) -> Result<()> {
    let now = clock::now();
    for chunk in scores.chunks(BATCH) {
        let tx = crate::platform::db::write(db).await?;
        // What these replace goes into the history beside them: a threshold crossed or a
        // grade changed is then one row to read, for triggers and webhooks.
        let previous: HashMap<i64, (f64, Option<String>)> = score::Entity::find()
            .select_only()
            .column(score::Column::SubjectId)
            .column(score::Column::Score)
            .column(score::Column::Grade)
            .filter(score::Column::Kind.eq(kind.as_str()))
            .filter(score::Column::SubjectId.is_in(chunk.iter().map(|s| s.subject_id)))
            .into_tuple::<(i64, f64, Option<String>)>()
            .all(&tx)
            .await?
            .into_iter()
            .map(|(id, score, grade)| (id, (score, grade)))
            .collect();
        let rows = chunk.iter().map(|s| score::ActiveModel {
            workspace_id: Set(workspace_id),
            kind: Set(kind.as_str().to_string()),
            subject_id: Set(s.subject_id),
            model_version_id: Set(model_version_id),
            score: Set(s.score),
            grade: Set(s.grade.clone()),
            reasons: Set(serde_json::to_value(&s.reasons).expect("reasons serialise")),
            computed_at: Set(now),
            ..Default::default()
        });
        score::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([score::Column::Kind, score::Column::SubjectId])
                    .update_columns([
                        score::Column::ModelVersionId,
                        score::Column::Score,
                        score::Column::Grade,
                        score::Column::Reasons,
                        score::Column::ComputedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&tx)
            .await?;
        // History is of changes: a rescore that gives the same score and grade (most of
        // the every-minute and every-six-hours refreshes) adds nothing to read.
        let moved = |s: &&NewScore| match previous.get(&s.subject_id) {
            None => true,
            Some((score, grade)) => (score - s.score).abs() > 1e-9 || grade != &s.grade,
        };
        let history: Vec<score_history::ActiveModel> = chunk
            .iter()
            .filter(moved)
            .map(|s| score_history::ActiveModel {
                workspace_id: Set(workspace_id),
                kind: Set(kind.as_str().to_string()),
                subject_id: Set(s.subject_id),
                model_version_id: Set(model_version_id),
                score: Set(s.score),
                grade: Set(s.grade.clone()),
                computed_at: Set(now),
                previous_score: Set(previous.get(&s.subject_id).map(|p| p.0)),
                previous_grade: Set(previous.get(&s.subject_id).and_then(|p| p.1.clone())),
                ..Default::default()
            })
            .collect();
        if !history.is_empty() {
            score_history::Entity::insert_many(history)
                .exec_without_returning(&tx)
                .await?;
        }
        tell_changes(
            &tx,
            workspace_id,
            kind,
            model_version_id,
            chunk,
            &previous,
            now,
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Whether a score moved enough to tell anyone: a new whole point, a new grade, or a
/// first score. Rescoring moves most scores by fractions as time passes; those are noise.
pub fn score_moved(previous: Option<(f64, Option<&str>)>, score: f64, grade: Option<&str>) -> bool {
    match previous {
        None => true,
        Some((old, old_grade)) => old.round() != score.round() || old_grade != grade,
    }
}

/// Tells subscribers (`scoreChanged`) and webhooks (`score.changed`) about the scores of a
/// batch that moved, with the old and new values; one look for listening endpoints,
/// no event built when none listens.
async fn tell_changes(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: ModelKind,
    model_version_id: i64,
    chunk: &[NewScore],
    previous: &HashMap<i64, (f64, Option<String>)>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    use crate::platform::{live, outbox};
    let endpoints = outbox::listeners(db, workspace_id, WebhookEventType::ScoreChanged).await?;
    let typename = if kind == ModelKind::WinProbability {
        "Deal"
    } else {
        "Contact"
    };
    let mut notices = Vec::new();
    for s in chunk {
        let before = previous.get(&s.subject_id);
        let old = before.map(|(score, grade)| (*score, grade.as_deref()));
        if !score_moved(old, s.score, s.grade.as_deref()) {
            continue;
        }
        if typename == "Contact" {
            notices.push(live::Notice {
                workspace_id,
                topic: live::Topic::Score,
                scope_id: s.subject_id,
                object_id: s.subject_id,
            });
        }
        if endpoints.is_empty() {
            continue;
        }
        let subject = outbox::Subject {
            typename,
            id: s.subject_id,
        };
        let data = serde_json::json!({
            "object": {
                "__typename": "Score",
                "kind": kind.as_str(),
                "subject": { "__typename": typename, "id": s.subject_id.to_string() },
                "score": s.score,
                "grade": s.grade,
                "modelVersionId": model_version_id.to_string(),
                "computedAt": now,
            },
            "previous": before.map(|(score, grade)| serde_json::json!({ "score": score, "grade": grade })),
        });
        outbox::emit_to(
            db,
            workspace_id,
            WebhookEventType::ScoreChanged,
            subject,
            data,
            &endpoints,
            now,
        )
        .await?;
    }
    live::publish_many(db, &notices).await?;
    Ok(())
}

/// How many current scores a version has given.
pub async fn count_scores(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: ModelKind,
    model_version_id: i64,
) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(score::Entity::find()
        .filter(score::Column::WorkspaceId.eq(workspace_id))
        .filter(score::Column::Kind.eq(kind.as_str()))
        .filter(score::Column::ModelVersionId.eq(model_version_id))
        .count(db)
        .await?)
}

/// Replaces a kind's current scores with a full run's: stores them, then drops the scores
/// of subjects the run no longer covers (a lead who became a customer, a closed deal).
pub async fn replace_scores(
    db: &DatabaseConnection,
    workspace_id: i64,
    kind: ModelKind,
    model_version_id: i64,
    scores: &[NewScore],
) -> Result<()> {
    let started = clock::now();
    store_scores(db, workspace_id, kind, model_version_id, scores).await?;
    forget_older(db, workspace_id, kind, started).await
}

/// Turns a classifier's predictions for `subjects` into 0–100 scores with their grades
/// and strongest reasons. Quartile grades are taken over these scores together with
/// `others` (the current scores of subjects a partial run leaves alone).
pub fn graded(
    subjects: &[i64],
    predictions: Vec<crate::intelligence::models::classifier::Prediction>,
    rule: &GradeRule,
    others: &[f64],
) -> Vec<NewScore> {
    let scores: Vec<f64> = predictions.iter().map(|p| p.probability * 100.0).collect();
    let population: Vec<f64> = others.iter().chain(&scores).copied().collect();
    let cutoffs = rule.cutoffs(&population);
    subjects
        .iter()
        .zip(predictions)
        .zip(scores)
        .map(|((&subject_id, prediction), score)| NewScore {
            subject_id,
            score,
            grade: Some(GradeRule::grade(score, &cutoffs).to_string()),
            reasons: top_reasons(prediction.contributions),
        })
        .collect()
}

/// Current scores of one kind for a batch of subjects.
pub async fn scores_for(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: ModelKind,
    subjects: &[i64],
) -> Result<HashMap<i64, score::Model>> {
    Ok(score::Entity::find()
        .filter(score::Column::WorkspaceId.eq(workspace_id))
        .filter(score::Column::Kind.eq(kind.as_str()))
        .filter(score::Column::SubjectId.is_in(subjects.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.subject_id, s))
        .collect())
}

/// Every current score of one kind in the workspace, except those of `excluded` subjects.
pub async fn population(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: ModelKind,
    excluded: &[i64],
) -> Result<Vec<f64>> {
    let rows: Vec<(i64, f64)> = score::Entity::find()
        .select_only()
        .column(score::Column::SubjectId)
        .column(score::Column::Score)
        .filter(score::Column::WorkspaceId.eq(workspace_id))
        .filter(score::Column::Kind.eq(kind.as_str()))
        .into_tuple()
        .all(db)
        .await?;
    let excluded: std::collections::HashSet<i64> = excluded.iter().copied().collect();
    Ok(rows
        .into_iter()
        .filter(|(id, _)| !excluded.contains(id))
        .map(|(_, s)| s)
        .collect())
}

/// Drops the current scores of the given subjects (history stays).
pub async fn forget_scores(
    db: &impl ConnectionTrait,
    kind: ModelKind,
    subjects: &[i64],
) -> Result<()> {
    if subjects.is_empty() {
        return Ok(());
    }
    score::Entity::delete_many()
        .filter(score::Column::Kind.eq(kind.as_str()))
        .filter(score::Column::SubjectId.is_in(subjects.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// Drops the workspace's current scores of one kind given before `before` (after a full
/// run: the subjects it no longer scores, such as leads who became customers).
pub async fn forget_older(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: ModelKind,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    score::Entity::delete_many()
        .filter(score::Column::WorkspaceId.eq(workspace_id))
        .filter(score::Column::Kind.eq(kind.as_str()))
        .filter(score::Column::ComputedAt.lt(before))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes every score and score history row about the given contacts (erasure).
pub async fn erase_contact_scores(db: &impl ConnectionTrait, contacts: &[i64]) -> Result<()> {
    let kinds = contact_kinds();
    score::Entity::delete_many()
        .filter(score::Column::Kind.is_in(kinds))
        .filter(score::Column::SubjectId.is_in(contacts.iter().copied()))
        .exec(db)
        .await?;
    score_history::Entity::delete_many()
        .filter(score_history::Column::Kind.is_in(kinds))
        .filter(score_history::Column::SubjectId.is_in(contacts.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// The kinds of built-in score whose subject is a contact.
pub fn contact_kinds() -> [&'static str; 3] {
    [
        ModelKind::LeadScore,
        ModelKind::BehaviourSegments,
        ModelKind::Churn,
    ]
    .map(|k| k.as_str())
}

/// Keeps the strongest positive and the strongest negative reasons of a prediction
/// (each at most [`REASONS_KEPT`]), strongest first.
pub fn top_reasons(contributions: Vec<Contribution>) -> Vec<Contribution> {
    let (mut up, mut down): (Vec<Contribution>, Vec<Contribution>) =
        contributions.into_iter().partition(|c| c.weight >= 0.0);
    up.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    down.sort_by(|a, b| a.weight.total_cmp(&b.weight));
    up.truncate(REASONS_KEPT);
    down.truncate(REASONS_KEPT);
    let mut kept: Vec<Contribution> = up.into_iter().chain(down).collect();
    kept.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartile_grades_split_the_population() {
        let scores: Vec<f64> = (1..=8).map(f64::from).collect();
        assert_eq!(
            GradeRule::Quartiles.grade_all(&scores),
            ["D", "D", "C", "C", "B", "B", "A", "A"]
        );
        let fixed = GradeRule::thresholds(&[80.0, 50.0, 20.0]).unwrap();
        assert_eq!(fixed.grade_all(&[90.0, 50.0, 19.9]), ["A", "B", "D"]);
        assert!(GradeRule::thresholds(&[20.0, 50.0, 80.0]).is_err());
        assert!(GradeRule::thresholds(&[80.0]).is_err());
    }
}
