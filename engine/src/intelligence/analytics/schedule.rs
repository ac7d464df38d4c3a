//! Keeping models and scores fresh inside `rapport serve`: contacts whose data changed
//! are rescored within a minute, every score is recomputed at least every six hours, and
//! every model is retrained daily (a retrained version that measures worse stays a
//! candidate, so the schedule never makes scores worse on its own). Plugins follow the same
//! rhythm: changed contacts, and everyone at each full rescore, are queued as `RunPlugins`
//! jobs for the workers.
//!
//! Every `serve` process runs the schedule, and they share it: each run of each kind of work
//! is taken by one process through [`periodic`] (a row per kind of work in
//! `schedule_slots`), so a second process does none of the first's runs over again. A
//! process that dies mid-run loses its lease and another takes the run over.

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
use crate::platform::periodic::{self, Claim};
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

/// The kinds of work, biggest first: a tick does the biggest one that is due.
#[derive(Clone, Copy, Debug)]
struct Kind {
    name: &'static str,
    every: fn(&Schedule) -> Duration,
    /// How long a process may hold a run before another takes it over. Retraining a
    /// large workspace takes minutes; a holder still at it after this shares the run.
    lease: Duration,
}

const KINDS: [Kind; 3] = [
    Kind {
        name: "retrain",
        every: |s| s.retrain_every,
        lease: Duration::from_secs(3600),
    },
    Kind {
        name: "rescore",
        every: |s| s.rescore_every,
        lease: Duration::from_secs(3600),
    },
    Kind {
        name: "changes",
        every: |s| s.changes_every,
        lease: Duration::from_secs(600),
    },
];

use crate::platform::periodic::after;

/// Changes stamped by a process whose clock runs a little behind, or committed just after
/// a scan read past them, are caught by the next scan: each looks back this far beyond
/// where the last one got to (rescoring a contact twice changes nothing).
const SCAN_OVERLAP: Duration = Duration::from_secs(60);

/// After a failed run, the work waits this long at least (doubling, up to its own
/// interval) before it is tried again, so a run that keeps failing does not retrain every
/// model each minute or starve the smaller kinds of work.
fn retry_in(kind: &Kind, schedule: &Schedule, failures: u32) -> Duration {
    let every = (kind.every)(schedule);
    let first = schedule.changes_every.max(Duration::from_secs(60));
    first
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(every.max(schedule.changes_every))
}

/// Takes the biggest kind of work that is due and nobody holds.
async fn claim_due(
    db: &DatabaseConnection,
    schedule: &Schedule,
    holder: &str,
    started: DateTime<Utc>,
) -> Result<Option<(Kind, Claim)>> {
    let now = clock::now();
    for kind in KINDS {
        // Retraining rescores everyone: a rescore while it runs would be done twice.
        if kind.name == "rescore" && periodic::held(db, "retrain", now).await? {
            continue;
        }
        // The first process ever to ask starts the clock: retraining is first due a day
        // after it, the change scan a minute after.
        let first_due = after(started, (kind.every)(schedule));
        if let Some(claim) =
            periodic::claim(db, kind.name, holder, now, kind.lease, first_due).await?
        {
            return Ok(Some((kind, claim)));
        }
    }
    Ok(None)
}

/// Does a run this process took, and says so in `schedule_slots`.
async fn run_claimed(
    db: &DatabaseConnection,
    schedule: &Schedule,
    kind: Kind,
    claim: &Claim,
    started: DateTime<Utc>,
) -> Result<()> {
    use futures_util::FutureExt as _;
    use tracing::Instrument;
    let checked_at = clock::now();
    let work = match kind.name {
        "retrain" => Work::Retrain,
        "rescore" => Work::Rescore,
        // Changes since the last scan that finished; the first scan looks back to when
        // the schedule started.
        _ => Work::Changes(claim.covered_until.map_or(started, |c| {
            c - chrono::Duration::from_std(SCAN_OVERLAP).expect("a minute")
        })),
    };
    let run = std::panic::AssertUnwindSafe(
        tick(db, work).instrument(tracing::info_span!("schedule", work = ?work)),
    )
    .catch_unwind();
    tokio::pin!(run);
    // A long run (retraining many workspaces) keeps its lease while it works, so no other
    // process takes it over and does it again.
    let mut heartbeat = tokio::time::interval(kind.lease / 3);
    heartbeat.tick().await;
    let outcome = loop {
        tokio::select! {
            done = &mut run => break done.unwrap_or_else(|_| {
                Err(crate::EngineError::internal("a scheduled rescoring panicked"))
            }),
            _ = heartbeat.tick() => {
                if let Err(e) = periodic::extend(db, claim, after(clock::now(), kind.lease)).await {
                    tracing::warn!(error = ?e, "extending the schedule's lease failed");
                }
            }
        }
    };
    let now = clock::now();
    match outcome {
        Ok(()) => {
            periodic::finish(
                db,
                claim,
                now,
                after(now, (kind.every)(schedule)),
                checked_at,
            )
            .await?;
            if work == Work::Retrain {
                // Retraining rescored everyone.
                periodic::postpone(db, "rescore", after(now, schedule.rescore_every)).await?;
            }
            Ok(())
        }
        Err(e) => {
            let retry = after(now, retry_in(&kind, schedule, claim.failures));
            if let Err(release) =
                periodic::release(db, claim, retry, &crate::platform::health::describe(&e)).await
            {
                tracing::warn!(error = ?release, "releasing a failed scheduled run failed");
            }
            Err(e)
        }
    }
}

/// Runs the schedule until `stop` resolves, sharing each run with the other processes on
/// the database. A tick that fails (the database is away) or panics is reported to
/// `health` and retried a tick later, by whichever process asks first.
pub async fn run(
    db: DatabaseConnection,
    schedule: Schedule,
    health: std::sync::Arc<crate::platform::health::Health>,
    stop: impl Future<Output = ()>,
) {
    const NAME: &str = "model schedule";
    health.running(NAME);
    tokio::pin!(stop);
    let holder = periodic::holder_name();
    let started = clock::now();
    loop {
        tokio::select! {
            _ = &mut stop => {
                health.stopped(NAME);
                return;
            }
            _ = tokio::time::sleep(schedule.changes_every) => {}
        }
        let outcome = match claim_due(&db, &schedule, &holder, started).await {
            Ok(Some((kind, claim))) => run_claimed(&db, &schedule, kind, &claim, started).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => health.running(NAME),
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
