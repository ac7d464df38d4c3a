//! Models applied to a workspace's own data: training from its history, scoring its
//! contacts and deals, and the reports (funnel, cohorts, forecast) built from it.
//!
//! The algorithms live in [`crate::intelligence::models`] and know nothing about the database; this
//! module turns the CRM graph into their inputs and stores what they produce.

pub mod behaviour;
pub mod churn;
pub mod cohorts;
pub mod customer_value;
pub mod forecast;
pub mod funnel;
pub mod insights;
pub mod lead_score;
pub mod lifecycle_funnel;
pub mod recommendations;
pub mod registry;
pub mod schedule;
pub mod segments;
pub mod trainings;
pub mod win_probability;

use crate::error::Result;
use crate::platform::auth::Principal;
use crate::values::{ModelKind, Scope};
use rapport_schema::model_version;
use sea_orm::DatabaseConnection;

/// Runs the CPU-heavy part of training (fitting, k-means, holdout checks: seconds on a
/// large workspace) without stalling the async workers that answer requests: on a
/// multi-threaded runtime this worker hands its other tasks on and blocks for the duration;
/// on a single-threaded one (engine tests) it simply runs.
pub(crate) fn cpu_bound<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Trains a new version of a model from the caller's workspace (write scope), in this
/// request; [`trainings::request`] does the same as a job.
pub async fn train(
    db: &DatabaseConnection,
    who: &Principal,
    kind: ModelKind,
    options: &lead_score::TrainOptions,
) -> Result<model_version::Model> {
    who.require(Scope::Write)?;
    let version = fit(db, who.workspace_id, kind, options).await?;
    if rescores_contacts(kind, &version) {
        insights::refresh_contacts(db, who.workspace_id, None).await?;
    }
    Ok(version)
}

/// Fits, measures and records a new version of `kind` for the workspace.
async fn fit(
    db: &DatabaseConnection,
    workspace_id: i64,
    kind: ModelKind,
    options: &lead_score::TrainOptions,
) -> Result<model_version::Model> {
    match kind {
        ModelKind::LeadScore => lead_score::train(db, workspace_id, options).await,
        ModelKind::WinProbability => {
            win_probability::train(
                db,
                workspace_id,
                Some(options.min_positives),
                options.algorithm,
            )
            .await
        }
        ModelKind::CustomerValue => {
            customer_value::train(db, workspace_id, options.min_positives).await
        }
        ModelKind::Recommendations => {
            recommendations::train(db, workspace_id, options.min_positives).await
        }
        ModelKind::BehaviourSegments => {
            segments::train(db, workspace_id, options.min_positives).await
        }
        ModelKind::Churn => {
            churn::train(db, workspace_id, options.min_positives, options.algorithm).await
        }
    }
}

/// Whether a new version of `kind` changes what contacts' insights say (customer value,
/// churn and recommendations feed them), once it is active.
fn rescores_contacts(kind: ModelKind, version: &model_version::Model) -> bool {
    matches!(
        kind,
        ModelKind::CustomerValue | ModelKind::Churn | ModelKind::Recommendations
    ) && version.status == crate::values::ModelStatus::Active.as_str()
}

/// Rescores with the active versions of every model; returns how many subjects. What
/// contacts did is loaded once for all of them, and not at all when none is active.
pub async fn rescore_all(db: &DatabaseConnection, workspace_id: i64) -> Result<usize> {
    let mut any = false;
    for kind in [
        ModelKind::LeadScore,
        ModelKind::WinProbability,
        ModelKind::Churn,
        ModelKind::CustomerValue,
        ModelKind::Recommendations,
    ] {
        any |= registry::active::<serde_json::Value>(db, workspace_id, kind)
            .await?
            .is_some();
    }
    if !any {
        return Ok(0);
    }
    let b = behaviour::Behaviour::load(db, workspace_id).await?;
    let scored = lead_score::rescore_with(db, workspace_id, &b, None).await?
        + win_probability::rescore_with(db, workspace_id, &b).await?
        + churn::rescore_with(db, workspace_id, &b).await?;
    // After churn: a one-time buyer's churn risk is the churn score just given.
    insights::refresh(db, workspace_id, &b, None).await?;
    Ok(scored)
}
