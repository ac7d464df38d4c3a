//! Keeping models and scores fresh inside `rapport serve`: contacts whose data changed
//! are rescored within a minute, every score is recomputed at least every six hours, and
//! every model is retrained daily (a retrained version that measures worse stays a
//! candidate, so the schedule never makes scores worse on its own). Plugins follow the same
//! rhythm: changed contacts, and everyone at each full rescore, are queued as `RunPlugins`
//! jobs for the workers.
//!
//! The schedule lives in one process. Several API processes sharing a database each run
//! it unless started with `--no-scheduler`; the work is idempotent, only repeated.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rapport_schema as s;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};

use super::{lead_score, win_probability};
use crate::clock;
use crate::error::Result;
use crate::platform::auth::Principal;
use crate::values::ModelKind;

/// How often each kind of refresh runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Rescore contacts whose data changed since the last check.
    pub changes_every: Duration,
    /// Rescore everyone.
    pub rescore_every: Duration,
    /// Retrain every model.
    pub retrain_every: Duration,
}

impl Schedule {
    /// The defaults `rapport serve` starts with (its flags read them from here).
    pub const DEFAULT: Schedule = Schedule {
        changes_every: Duration::from_secs(60),
        rescore_every: Duration::from_secs(6 * 3600),
        retrain_every: Duration::from_secs(24 * 3600),
    };
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::DEFAULT
    }
}

/// More changed contacts than this and a full rescore is cheaper than a partial one.
const PARTIAL_LIMIT: usize = 5000;

/// Contacts whose own row, activities, events, orders or deals changed at or after `since`.
pub async fn changed_contacts(
    db: &DatabaseConnection,
    workspace_id: i64,
    since: DateTime<Utc>,
) -> Result<Vec<i64>> {
    let mut ids: BTreeSet<i64> = BTreeSet::new();
    ids.extend(
        s::contact::Entity::find()
            .select_only()
            .column(s::contact::Column::Id)
            .filter(s::contact::Column::WorkspaceId.eq(workspace_id))
            .filter(s::contact::Column::UpdatedAt.gte(since))
            .into_tuple::<i64>()
            .all(db)
            .await?,
    );
    ids.extend(
        s::activity::Entity::find()
            .select_only()
            .column(s::activity::Column::ContactId)
            .filter(s::activity::Column::WorkspaceId.eq(workspace_id))
            .filter(s::activity::Column::UpdatedAt.gte(since))
            .into_tuple::<Option<i64>>()
            .all(db)
            .await?
            .into_iter()
            .flatten(),
    );
    // Events carry only the time they happened; one recorded late is picked up by the
    // six-hourly full rescore.
    ids.extend(
        s::event::Entity::find()
            .select_only()
            .column(s::event::Column::ContactId)
            .filter(s::event::Column::WorkspaceId.eq(workspace_id))
            .filter(s::event::Column::OccurredAt.gte(since))
            .into_tuple::<i64>()
            .all(db)
            .await?,
    );
    ids.extend(
        s::order::Entity::find()
            .select_only()
            .column(s::order::Column::ContactId)
            .filter(s::order::Column::WorkspaceId.eq(workspace_id))
            .filter(s::order::Column::UpdatedAt.gte(since))
            .into_tuple::<i64>()
            .all(db)
            .await?,
    );
    ids.extend(
        s::deal::Entity::find()
            .select_only()
            .column(s::deal::Column::ContactId)
            .filter(s::deal::Column::WorkspaceId.eq(workspace_id))
            .filter(s::deal::Column::UpdatedAt.gte(since))
            .into_tuple::<Option<i64>>()
            .all(db)
            .await?
            .into_iter()
            .flatten(),
    );
    Ok(ids.into_iter().collect())
}

/// Rescores what changed since `since`; returns how many contacts were looked at.
pub async fn refresh_changed(
    db: &DatabaseConnection,
    workspace_id: i64,
    since: DateTime<Utc>,
) -> Result<usize> {
    // Deals and companies that plugins score, changed since: queued whatever contacts
    // did, and a failure here keeps no contact from being rescored.
    let records =
        crate::intelligence::plugins::record_scores::enqueue(db, workspace_id, Some(since)).await;
    if let Err(e) = records {
        tracing::warn!(workspace_id, error = %e, "queueing changed deals and companies failed");
    }
    let changed = changed_contacts(db, workspace_id, since).await?;
    if changed.is_empty() {
        return Ok(0);
    }
    crate::intelligence::plugins::runs::enqueue(db, workspace_id, Some(&changed)).await?;
    if changed.len() > PARTIAL_LIMIT {
        lead_score::rescore(db, workspace_id).await?;
    } else {
        lead_score::rescore_contacts(db, workspace_id, Some(&changed)).await?;
    }
    win_probability::rescore(db, workspace_id).await?;
    if changed.len() > PARTIAL_LIMIT {
        super::insights::refresh_contacts(db, workspace_id, None).await?;
    } else {
        super::insights::refresh_contacts(db, workspace_id, Some(&changed)).await?;
    }
    Ok(changed.len())
}

/// Trains every model of one workspace; failures are logged, not fatal.
pub async fn retrain_all(db: &DatabaseConnection, workspace_id: i64) {
    let who = Principal::owner(workspace_id);
    for &kind in ModelKind::ALL {
        let options = lead_score::TrainOptions::default();
        match super::train(db, &who, kind, &options).await {
            Ok(v) => {
                tracing::info!(workspace_id, kind = %kind, version = v.version, status = %v.status, "model retrained")
            }
            Err(e) => tracing::warn!(workspace_id, kind = %kind, error = %e, "retraining failed"),
        }
    }
}

async fn workspaces(db: &DatabaseConnection) -> Result<Vec<i64>> {
    Ok(s::workspace::Entity::find()
        .select_only()
        .column(s::workspace::Column::Id)
        .into_tuple::<i64>()
        .all(db)
        .await?)
}

/// Every built-in score now, every plugin score (of contacts, deals and companies)
/// through the job queue.
async fn rescore_everyone(db: &DatabaseConnection, workspace_id: i64) -> Result<usize> {
    crate::intelligence::plugins::runs::enqueue(db, workspace_id, None).await?;
    crate::intelligence::plugins::record_scores::enqueue(db, workspace_id, None).await?;
    super::rescore_all(db, workspace_id).await
}

/// What one tick does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    Changes(DateTime<Utc>),
    Rescore,
    Retrain,
}

async fn tick(db: &DatabaseConnection, work: Work) -> crate::Result<()> {
    let ids = workspaces(db).await?;
    for ws in ids {
        let done = match work {
            Work::Retrain => {
                retrain_all(db, ws).await;
                rescore_everyone(db, ws).await
            }
            Work::Rescore => rescore_everyone(db, ws).await,
            Work::Changes(since) => refresh_changed(db, ws, since).await,
        };
        if let Err(e) = done {
            tracing::warn!(workspace_id = ws, error = %e, "rescoring failed");
        }
    }
    Ok(())
}

/// Runs the schedule until `stop` resolves. A tick that fails (the database is away) or
/// panics is reported to `health`; the next tick runs as usual.
pub async fn run(
    db: DatabaseConnection,
    schedule: Schedule,
    health: std::sync::Arc<crate::platform::health::Health>,
    stop: impl Future<Output = ()>,
) {
    use futures_util::FutureExt as _;
    use tracing::Instrument;
    const NAME: &str = "model schedule";
    health.running(NAME);
    tokio::pin!(stop);
    let started = tokio::time::Instant::now();
    let (mut last_full, mut last_train) = (started, started);
    let mut since = clock::now();
    loop {
        tokio::select! {
            _ = &mut stop => {
                health.stopped(NAME);
                return;
            }
            _ = tokio::time::sleep(schedule.changes_every) => {}
        }
        let checked_at = clock::now();
        let now = tokio::time::Instant::now();
        let work = if now - last_train >= schedule.retrain_every {
            last_train = now;
            last_full = now;
            Work::Retrain
        } else if now - last_full >= schedule.rescore_every {
            last_full = now;
            Work::Rescore
        } else {
            Work::Changes(since)
        };
        let outcome = std::panic::AssertUnwindSafe(
            tick(&db, work).instrument(tracing::info_span!("schedule", work = ?work)),
        )
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(crate::EngineError::internal(
                "a scheduled rescoring panicked",
            ))
        });
        match outcome {
            Ok(()) => {
                health.running(NAME);
                since = checked_at;
            }
            Err(e) => {
                tracing::warn!(error = ?e, "the model schedule's tick failed");
                health.failed(
                    NAME,
                    crate::platform::health::describe(&e),
                    schedule.changes_every,
                );
            }
        }
    }
}
