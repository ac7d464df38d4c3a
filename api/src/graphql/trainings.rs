//! Training models as jobs on the graph: start one, then watch its state, stage and
//! progress until it names the version it made (or says why it failed).

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use rapport_engine::intelligence::analytics::trainings::{self, TrainRequest, TrainingState};
use rapport_engine::platform::queue::Queue;
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, invalid};
use crate::graphql::context::principal;
use crate::graphql::enums::{ClassifierAlgorithm, ModelKind};
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::intelligence::ModelVersion;

/// Where a training is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ModelTrainingState {
    /// Waiting for a worker.
    Queued,
    /// A worker is training.
    Running,
    /// Finished: `version` is the version it recorded.
    Done,
    /// Failed: `error` says why.
    Failed,
}

impl From<TrainingState> for ModelTrainingState {
    fn from(s: TrainingState) -> Self {
        match s {
            TrainingState::Queued => ModelTrainingState::Queued,
            TrainingState::Running => ModelTrainingState::Running,
            TrainingState::Done => ModelTrainingState::Done,
            TrainingState::Failed => ModelTrainingState::Failed,
        }
    }
}

/// A request to train a model, worked by the job queue.
pub struct ModelTraining(pub s::model_training::Model);

#[Object]
impl ModelTraining {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn kind(&self) -> ModelKind {
        ModelKind::from_db(&self.0.kind)
    }
    async fn state(&self) -> ModelTrainingState {
        TrainingState::from_db(&self.0.state).into()
    }
    /// What it is doing now, in words.
    async fn stage(&self) -> &str {
        &self.0.stage
    }
    /// How far along, 0 to 1.
    async fn progress(&self) -> f64 {
        self.0.progress
    }
    /// The version it recorded (active, candidate or insufficient data), once done.
    async fn version(&self, ctx: &Context<'_>) -> Result<Option<ModelVersion>> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let Some(id) = self.0.version_id else {
            return Ok(None);
        };
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(s::model_version::Entity::find_by_id(id)
            .filter(s::model_version::Column::WorkspaceId.eq(self.0.workspace_id))
            .one(db)
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?
            .map(ModelVersion))
    }
    /// Why it failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// Reading trainings.
#[derive(Default)]
pub struct TrainingQuery;

#[Object]
impl TrainingQuery {
    /// The latest trainings, newest first (`first`: 1–100).
    async fn model_trainings(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<ModelTraining>> {
        if !(1..=100).contains(&first) {
            return Err(invalid("first", "must be between 1 and 100"));
        }
        let ws = principal(ctx)?.workspace_id;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(trainings::list(db, ws, first as u64)
            .await
            .gql()?
            .into_iter()
            .map(ModelTraining)
            .collect())
    }
    async fn model_training(&self, ctx: &Context<'_>, id: ID) -> Result<ModelTraining> {
        let ws = principal(ctx)?.workspace_id;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(ModelTraining(
            trainings::get(db, ws, parse_id("id", &id)?).await.gql()?,
        ))
    }
}

/// Starting trainings.
#[derive(Default)]
pub struct TrainingMutation;

#[Object]
impl TrainingMutation {
    /// Trains a new version of a model as a job and answers at once; follow it with
    /// `modelTraining(id)`. It becomes active (and rescores) only when it measures at least
    /// as well as the active version. One training per model at a time (else CONFLICT).
    async fn start_model_training(
        &self,
        ctx: &Context<'_>,
        kind: ModelKind,
        #[graphql(desc = "Lead score: lowest A, B and C scores (default: quartiles).")]
        grade_thresholds: Option<Vec<f64>>,
        #[graphql(desc = "Fewest examples of each class to train on (default 50).")]
        min_positives: Option<i32>,
        #[graphql(desc = "Lead score: the conversion window in days (default 90).")]
        window_days: Option<i32>,
        #[graphql(
            desc = "Lead score, win probability, churn: the classifier (default AUTO, the better validation AUC)."
        )]
        algorithm: Option<ClassifierAlgorithm>,
    ) -> Result<ModelTraining> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let queue = Queue::new(db).gql()?;
        let asked = TrainRequest {
            grade_thresholds,
            min_positives,
            window_days,
            algorithm: algorithm.map(Into::into),
        };
        Ok(ModelTraining(
            trainings::request(db, &queue, who, kind.into(), asked)
                .await
                .gql()?,
        ))
    }
}
