//! The built-in models on the graph: scores on contacts and deals, the model registry,
//! and the mutations that train and activate versions.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Enum, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::analytics::{self, lead_score::TrainOptions, registry};
use rapport_engine::values;
use rapport_schema as s;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::error::{OrGraphql, invalid, to_graphql};
use crate::graphql::batching::Dispatcher;
use crate::graphql::enums::{ModelKind, ModelStatus};
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::types::principal;

/// Current scores by (model kind, subject id), one statement per kind per batch.
pub struct Scores {
    db: DatabaseConnection,
    workspace_id: i64,
}

impl Loader<(values::ModelKind, i64)> for Scores {
    type Value = s::score::Model;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[(values::ModelKind, i64)],
    ) -> Result<HashMap<(values::ModelKind, i64), s::score::Model>, Self::Error> {
        let mut by_kind: HashMap<values::ModelKind, Vec<i64>> = HashMap::new();
        for (kind, id) in keys {
            by_kind.entry(*kind).or_default().push(*id);
        }
        let mut found = HashMap::new();
        for (kind, ids) in by_kind {
            let scores = registry::scores_for(&self.db, self.workspace_id, kind, &ids)
                .await
                .map_err(to_graphql)?;
            found.extend(scores.into_iter().map(|(id, s)| ((kind, id), s)));
        }
        Ok(found)
    }
}

/// Model versions by id.
pub struct Versions {
    db: DatabaseConnection,
    workspace_id: i64,
}

impl Loader<i64> for Versions {
    type Value = s::model_version::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        Ok(s::model_version::Entity::find()
            .filter(s::model_version::Column::WorkspaceId.eq(self.workspace_id))
            .filter(s::model_version::Column::Id.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(|e| to_graphql(e.into()))?
            .into_iter()
            .map(|v| (v.id, v))
            .collect())
    }
}

/// Adds the score loaders to one request.
pub fn attach(
    request: async_graphql::Request,
    d: &Dispatcher,
    db: &DatabaseConnection,
    workspace_id: i64,
) -> async_graphql::Request {
    let scores = Scores {
        db: db.clone(),
        workspace_id,
    };
    let versions = Versions {
        db: db.clone(),
        workspace_id,
    };
    request
        .data(DataLoader::new(scores, d.spawner()).delay(std::time::Duration::ZERO))
        .data(DataLoader::new(versions, d.spawner()).delay(std::time::Duration::ZERO))
}

/// The current score of one subject by one kind of model.
pub async fn current(
    ctx: &Context<'_>,
    kind: values::ModelKind,
    subject: i64,
) -> Result<Option<Score>> {
    Ok(ctx
        .data_unchecked::<DataLoader<Scores>>()
        .load_one((kind, subject))
        .await?
        .map(Score))
}

/// One feature's push on a score.
#[derive(SimpleObject)]
pub struct ScoreReason {
    /// The feature, as named in the model's feature list.
    pub feature: String,
    /// Its contribution to the log-odds, relative to an average row: positive raises the
    /// score, negative lowers it.
    pub contribution: f64,
}

fn reasons(json: &serde_json::Value) -> Vec<ScoreReason> {
    serde_json::from_value::<Vec<rapport_engine::models::classifier::Contribution>>(json.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| ScoreReason {
            feature: c.feature,
            contribution: c.weight,
        })
        .collect()
}

/// A score given by a trained model.
pub struct Score(pub s::score::Model);

#[Object]
impl Score {
    /// 0–100: the model's probability, in percent.
    async fn score(&self) -> f64 {
        self.0.score
    }
    /// A (best) to D.
    async fn grade(&self) -> Option<&str> {
        self.0.grade.as_deref()
    }
    /// The strongest contributions, largest first.
    async fn reasons(&self) -> Vec<ScoreReason> {
        reasons(&self.0.reasons)
    }
    async fn computed_at(&self) -> DateTime<Utc> {
        self.0.computed_at
    }
    /// The model version that gave it.
    async fn model(&self, ctx: &Context<'_>) -> Result<Option<ModelVersion>> {
        Ok(ctx
            .data_unchecked::<DataLoader<Versions>>()
            .load_one(self.0.model_version_id)
            .await?
            .map(ModelVersion))
    }
}

/// Where a win probability came from.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProbabilitySource {
    /// The active win-probability model.
    Model,
    /// The stage's default probability (no model is active or the deal is unscored).
    StageDefault,
    /// The deal is closed: 100 when won, 0 when lost.
    Closed,
}

/// A deal's chance of being won.
#[derive(SimpleObject)]
pub struct WinProbability {
    /// 0–100.
    pub probability: f64,
    pub source: ProbabilitySource,
    /// The model's score with its reasons, when a model gave it.
    pub score: Option<Score>,
}

/// A trained version of a built-in model.
pub struct ModelVersion(pub s::model_version::Model);

#[Object]
impl ModelVersion {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn kind(&self) -> ModelKind {
        ModelKind::from_db(&self.0.kind)
    }
    /// 1, 2, ... per model kind.
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn status(&self) -> ModelStatus {
        ModelStatus::from_db(&self.0.status)
    }
    /// Why it is not active, or why it could not be trained.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
    /// Area under the ROC curve on held-out rows.
    async fn auc(&self) -> Option<f64> {
        self.0.metrics.get("auc").and_then(|v| v.as_f64())
    }
    /// Mean log loss on held-out rows.
    async fn log_loss(&self) -> Option<f64> {
        self.0.metrics.get("log_loss").and_then(|v| v.as_f64())
    }
    /// Everything measured: AUC, log loss, calibration bins, row counts, fit time.
    async fn metrics(&self) -> Json<serde_json::Value> {
        Json(self.0.metrics.clone())
    }
    /// The raw features the model reads.
    async fn features(&self) -> Vec<String> {
        values::json_strings(&self.0.features)
    }
    /// Labelled rows used (training and held-out).
    async fn rows(&self) -> i64 {
        self.0.rows_used
    }
    async fn positives(&self) -> i64 {
        self.0.positives
    }
    async fn window_from(&self) -> DateTime<Utc> {
        self.0.window_from
    }
    async fn window_to(&self) -> DateTime<Utc> {
        self.0.window_to
    }
    async fn trained_at(&self) -> DateTime<Utc> {
        self.0.trained_at
    }
    async fn activated_at(&self) -> Option<DateTime<Utc>> {
        self.0.activated_at
    }
}

/// Reads about models.
#[derive(Default)]
pub struct IntelligenceQuery;

#[Object]
impl IntelligenceQuery {
    /// Trained model versions, newest first.
    async fn models(
        &self,
        ctx: &Context<'_>,
        kind: Option<ModelKind>,
    ) -> Result<Vec<ModelVersion>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(
            registry::versions(db, who.workspace_id, kind.map(Into::into))
                .await
                .gql()?
                .into_iter()
                .map(ModelVersion)
                .collect(),
        )
    }
}

/// Training and activating models.
#[derive(Default)]
pub struct IntelligenceMutation;

#[Object]
impl IntelligenceMutation {
    /// Trains a new version from this workspace's data. It becomes active (and rescores)
    /// only when it measures at least as well as the active version; with too little
    /// data the version is recorded as INSUFFICIENT_DATA with the reason.
    async fn train_model(
        &self,
        ctx: &Context<'_>,
        kind: ModelKind,
        #[graphql(desc = "Lead score: lowest A, B and C scores (default: quartiles).")]
        grade_thresholds: Option<Vec<f64>>,
        #[graphql(desc = "Fewest examples of each class to train on (default 50).")]
        min_positives: Option<i32>,
        #[graphql(desc = "Lead score: the conversion window in days (default 90).")]
        window_days: Option<i32>,
    ) -> Result<ModelVersion> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let mut options = TrainOptions::default();
        if let Some(t) = grade_thresholds {
            options.grades = registry::GradeRule::thresholds(&t).gql()?;
        }
        if let Some(m) = min_positives {
            if m < 1 {
                return Err(invalid("minPositives", "must be at least 1"));
            }
            options.min_positives = m as usize;
        }
        if let Some(w) = window_days {
            if !(1..=730).contains(&w) {
                return Err(invalid("windowDays", "must be between 1 and 730"));
            }
            options.window_days = i64::from(w);
        }
        Ok(ModelVersion(
            analytics::train(db, who, kind.into(), &options)
                .await
                .gql()?,
        ))
    }

    /// Makes a trained version active (admin), for a candidate judged good by a person.
    async fn activate_model(&self, ctx: &Context<'_>, id: ID) -> Result<ModelVersion> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let version = registry::activate(db, who, parse_id("id", &id)?)
            .await
            .gql()?;
        analytics::rescore_all(db, who.workspace_id).await.gql()?;
        Ok(ModelVersion(version))
    }
}
