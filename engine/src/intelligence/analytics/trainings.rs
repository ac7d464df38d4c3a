//! Training as a job: a person asks for a new version of a model, a worker trains it,
//! and the request's row says where it is (queued, running and at which stage, done with
//! the version it made, or failed and why), so nobody holds a request open for the
//! seconds or minutes a large workspace takes.

use rapport_schema::model_training;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use super::lead_score::TrainOptions;
use super::registry::GradeRule;
use crate::clock;
use crate::error::{EngineError, Result};
use crate::intelligence::models::classifier::Algorithm;
use crate::platform::auth::Principal;
use crate::platform::queue::{Job, Queue};
use crate::values::{ModelKind, Scope};

/// What a training was asked to do, as stored with it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainRequest {
    /// Lead score: lowest A, B and C scores (default: quartiles).
    pub grade_thresholds: Option<Vec<f64>>,
    /// Fewest examples of each class to train on (default 50).
    pub min_positives: Option<i32>,
    /// Lead score: the conversion window in days (default 90).
    pub window_days: Option<i32>,
    /// Lead score, win probability, churn: the classifier (default auto).
    pub algorithm: Option<Algorithm>,
}

impl TrainRequest {
    /// The training options, each value checked and named when it is out of bounds.
    pub fn options(&self) -> Result<TrainOptions> {
        let mut options = TrainOptions::default();
        if let Some(t) = &self.grade_thresholds {
            options.grades = GradeRule::thresholds(t)?;
        }
        if let Some(m) = self.min_positives {
            if !(1..=1_000_000).contains(&m) {
                return Err(EngineError::invalid(
                    "minPositives",
                    "must be between 1 and 1000000",
                ));
            }
            options.min_positives = m as usize;
        }
        if let Some(w) = self.window_days {
            if !(1..=730).contains(&w) {
                return Err(EngineError::invalid(
                    "windowDays",
                    "must be between 1 and 730",
                ));
            }
            options.window_days = i64::from(w);
        }
        if let Some(a) = self.algorithm {
            options.algorithm = a;
        }
        Ok(options)
    }
}

/// Where a training is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainingState {
    /// Waiting for a worker.
    Queued,
    /// A worker is training.
    Running,
    /// Finished: the version is recorded (active, candidate or insufficient data).
    Done,
    /// Failed; the row says why.
    Failed,
}

impl TrainingState {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TrainingState::Queued => "queued",
            TrainingState::Running => "running",
            TrainingState::Done => "done",
            TrainingState::Failed => "failed",
        }
    }

    /// From the stored text (unknown text reads as failed).
    pub fn from_db(raw: &str) -> Self {
        match raw {
            "queued" => TrainingState::Queued,
            "running" => TrainingState::Running,
            "done" => TrainingState::Done,
            _ => TrainingState::Failed,
        }
    }
}

/// Asks for a new version of `kind` (write scope, not a member): checks the options, records the
/// request and queues its job. One training per model kind at a time: another while one
/// is queued or running is a `CONFLICT`.
pub async fn request(
    db: &DatabaseConnection,
    queue: &Queue,
    who: &Principal,
    kind: ModelKind,
    asked: TrainRequest,
) -> Result<model_training::Model> {
    who.require(Scope::Write)?;
    // A new version rescores everyone's contacts: not a member's call to make.
    if who.owner_bound {
        return Err(EngineError::Forbidden(
            "models are trained by managers and admins".into(),
        ));
    }
    asked.options()?;
    let busy = model_training::Entity::find()
        .filter(model_training::Column::WorkspaceId.eq(who.workspace_id))
        .filter(model_training::Column::Kind.eq(kind.as_str()))
        .filter(model_training::Column::State.is_in([
            TrainingState::Queued.as_str(),
            TrainingState::Running.as_str(),
        ]))
        .select_only()
        .column(model_training::Column::Id)
        .into_tuple::<i64>()
        .one(db)
        .await?;
    if let Some(id) = busy {
        return Err(EngineError::Conflict(format!(
            "this model is already being trained (training {id})"
        )));
    }
    let row = model_training::ActiveModel {
        workspace_id: Set(who.workspace_id),
        kind: Set(kind.as_str().into()),
        state: Set(TrainingState::Queued.as_str().into()),
        stage: Set("waiting for a worker".into()),
        progress: Set(0.0),
        options: Set(serde_json::to_value(&asked).expect("options serialise")),
        requested_by_key_id: Set(who.key_id),
        created_at: Set(clock::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    if let Err(e) = queue
        .push(
            Job::TrainModel {
                workspace_id: who.workspace_id,
                training_id: row.id,
            },
            None,
        )
        .await
    {
        // A request that no worker will ever see must not block the next one.
        finish(db, row.id, Err("the job could not be queued".into())).await?;
        return Err(e);
    }
    Ok(row)
}

async fn stage(db: &impl ConnectionTrait, id: i64, text: &str, progress: f64) -> Result<()> {
    model_training::Entity::update_many()
        .col_expr(
            model_training::Column::Stage,
            sea_orm::sea_query::Expr::value(text),
        )
        .col_expr(
            model_training::Column::Progress,
            sea_orm::sea_query::Expr::value(progress),
        )
        .filter(model_training::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

async fn finish(
    db: &impl ConnectionTrait,
    id: i64,
    outcome: std::result::Result<i64, String>,
) -> Result<()> {
    let (state, stage, version, error) = match outcome {
        Ok(version) => (TrainingState::Done, "finished", Some(version), None),
        Err(why) => (TrainingState::Failed, "failed", None, Some(why)),
    };
    model_training::ActiveModel {
        id: Set(id),
        state: Set(state.as_str().into()),
        stage: Set(stage.into()),
        progress: Set(1.0),
        version_id: Set(version),
        error: Set(error),
        finished_at: Set(Some(clock::now())),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(())
}

/// Works one training (the `TrainModel` job): fits, measures and records the version,
/// rescoring the contacts when it became active. A training already finished is left
/// alone (a job run twice trains once); a failure the caller can read (too little data
/// is not one: that is a version with its reason) is stored with its message.
pub async fn run(db: &DatabaseConnection, workspace_id: i64, training_id: i64) -> Result<()> {
    let Some(t) = model_training::Entity::find_by_id(training_id)
        .filter(model_training::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
    else {
        return Ok(());
    };
    if matches!(
        TrainingState::from_db(&t.state),
        TrainingState::Done | TrainingState::Failed
    ) {
        return Ok(());
    }
    model_training::ActiveModel {
        id: Set(t.id),
        state: Set(TrainingState::Running.as_str().into()),
        stage: Set("reading the workspace's history".into()),
        progress: Set(0.1),
        started_at: Set(Some(clock::now())),
        ..Default::default()
    }
    .update(db)
    .await?;
    let kind = ModelKind::from_db(&t.kind);
    let asked: TrainRequest = serde_json::from_value(t.options.clone()).unwrap_or_default();
    let outcome = async {
        let options = asked.options()?;
        stage(db, t.id, "fitting and measuring on held-out data", 0.3).await?;
        let version = super::fit(db, workspace_id, kind, &options).await?;
        if super::rescores_contacts(kind, &version) {
            stage(db, t.id, "scoring every contact with the new version", 0.8).await?;
            super::insights::refresh_contacts(db, workspace_id, None).await?;
        }
        Ok::<_, EngineError>(version.id)
    }
    .await;
    match outcome {
        Ok(version) => finish(db, t.id, Ok(version)).await,
        Err(e) => {
            tracing::warn!(training = t.id, error = %crate::error::chain(&e), "training failed");
            finish(db, t.id, Err(e.to_string())).await
        }
    }
}

/// The workspace's trainings, newest first (at most `first`).
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    first: u64,
) -> Result<Vec<model_training::Model>> {
    Ok(model_training::Entity::find()
        .filter(model_training::Column::WorkspaceId.eq(workspace_id))
        .order_by_desc(model_training::Column::Id)
        .limit(first)
        .all(db)
        .await?)
}

/// One training of the workspace.
pub async fn get(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<model_training::Model> {
    model_training::Entity::find_by_id(id)
        .filter(model_training::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("ModelTraining", id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_out_of_bounds_name_their_field() {
        let e = TrainRequest {
            window_days: Some(0),
            ..Default::default()
        }
        .options()
        .unwrap_err();
        assert!(matches!(e, EngineError::Validation { ref field, .. } if field == "windowDays"));
        let e = TrainRequest {
            min_positives: Some(0),
            ..Default::default()
        }
        .options()
        .unwrap_err();
        assert!(matches!(e, EngineError::Validation { ref field, .. } if field == "minPositives"));
        assert_eq!(
            TrainRequest::default().options().unwrap().window_days,
            TrainOptions::default().window_days
        );
    }

    #[test]
    fn states_read_back_as_written() {
        for s in [
            TrainingState::Queued,
            TrainingState::Running,
            TrainingState::Done,
            TrainingState::Failed,
        ] {
            assert_eq!(TrainingState::from_db(s.as_str()), s);
        }
    }
}
