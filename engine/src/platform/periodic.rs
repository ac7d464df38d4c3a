//! Periodic work that several processes on one database share: each run of a kind of work
//! is done by one of them. Every process wakes on its own timer and asks for the work; a
//! conditional update on the work's row in `schedule_slots` lets exactly one of them take a
//! run that is due. The taker holds a lease; if it dies mid-run the lease runs out and the
//! next process to ask takes the run over, so a run is never lost, only late.
//!
//! The database decides, not the processes' clocks agreeing: "due" and "lease ran out" are
//! compared with the time the asking process passes in, and every process writes the next
//! due time from its own clock, so clocks a few seconds apart only move a run by that much.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rapport_schema::schedule_slot;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Condition,
};

use crate::error::Result;

/// `t` plus `d`, a span of at most a century: a configured interval too large to add
/// would otherwise panic, or write a date past 9999 that sorts wrongly as text.
pub fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t + chrono::Duration::from_std(d.min(CENTURY)).expect("a century fits")
}

/// Names this process as a holder: its id and a random part, so a restarted process
/// reusing an id is still someone else.
pub fn holder_name() -> String {
    format!("pid {} #{:08x}", std::process::id(), rand::random::<u32>())
}

/// A run this process took; finish or release it.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// The kind of work.
    pub work: &'static str,
    /// Who took it.
    pub holder: String,
    /// Where the previous successful run got to (`None` before the first).
    pub covered_until: Option<DateTime<Utc>>,
    /// Runs that failed in a row before this one.
    pub failures: u32,
}

/// Takes `work` if it is due at `now` and nobody holds it, for `lease`. The first time the
/// work is asked for anywhere it becomes due at `first_due`.
pub async fn claim(
    db: &impl ConnectionTrait,
    work: &'static str,
    holder: &str,
    now: DateTime<Utc>,
    lease: Duration,
    first_due: DateTime<Utc>,
) -> Result<Option<Claim>> {
    schedule_slot::Entity::insert(schedule_slot::ActiveModel {
        work: Set(work.to_string()),
        due_at: Set(first_due),
        covered_until: Set(None),
        holder: Set(None),
        lease_until: Set(None),
        done_at: Set(None),
        runs: Set(0),
        failures: Set(0),
        last_error: Set(None),
    })
    .on_conflict(
        OnConflict::column(schedule_slot::Column::Work)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let lease_until = after(now, lease);
    let taken = schedule_slot::Entity::update_many()
        .col_expr(schedule_slot::Column::Holder, Expr::value(holder))
        .col_expr(schedule_slot::Column::LeaseUntil, Expr::value(lease_until))
        .filter(schedule_slot::Column::Work.eq(work))
        .filter(schedule_slot::Column::DueAt.lte(now))
        .filter(
            Condition::any()
                .add(schedule_slot::Column::LeaseUntil.is_null())
                .add(schedule_slot::Column::LeaseUntil.lte(now)),
        )
        .exec(db)
        .await?;
    if taken.rows_affected != 1 {
        return Ok(None);
    }
    let row = schedule_slot::Entity::find_by_id(work.to_string())
        .one(db)
        .await?;
    Ok(row.map(|row| Claim {
        work,
        holder: holder.to_string(),
        covered_until: row.covered_until,
        failures: u32::try_from(row.failures).unwrap_or(u32::MAX),
    }))
}

/// Ends a run that succeeded: the work is next due at `next_due`, and changes before
/// `covered_until` have been looked at. Does nothing if another process took the run
/// over after the lease ran out (its finish is the one that counts).
pub async fn finish(
    db: &impl ConnectionTrait,
    claim: &Claim,
    now: DateTime<Utc>,
    next_due: DateTime<Utc>,
    covered_until: DateTime<Utc>,
) -> Result<bool> {
    let done = schedule_slot::Entity::update_many()
        .col_expr(schedule_slot::Column::DueAt, Expr::value(next_due))
        .col_expr(
            schedule_slot::Column::CoveredUntil,
            Expr::value(covered_until),
        )
        .col_expr(schedule_slot::Column::Holder, Expr::value(None::<String>))
        .col_expr(
            schedule_slot::Column::LeaseUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(schedule_slot::Column::DoneAt, Expr::value(now))
        .col_expr(
            schedule_slot::Column::Runs,
            Expr::col(schedule_slot::Column::Runs).add(1),
        )
        .col_expr(
            schedule_slot::Column::LastError,
            Expr::value(None::<String>),
        )
        .col_expr(schedule_slot::Column::Failures, Expr::value(0))
        .filter(schedule_slot::Column::Work.eq(claim.work))
        .filter(schedule_slot::Column::Holder.eq(claim.holder.as_str()))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Keeps holding a long run: its lease now ends at `lease_until`. False if the run was
/// taken over meanwhile (the lease had already run out).
pub async fn extend(
    db: &impl ConnectionTrait,
    claim: &Claim,
    lease_until: DateTime<Utc>,
) -> Result<bool> {
    let kept = schedule_slot::Entity::update_many()
        .col_expr(schedule_slot::Column::LeaseUntil, Expr::value(lease_until))
        .filter(schedule_slot::Column::Work.eq(claim.work))
        .filter(schedule_slot::Column::Holder.eq(claim.holder.as_str()))
        .exec(db)
        .await?;
    Ok(kept.rows_affected == 1)
}

/// Whether some process holds `work` at `now`.
pub async fn held(db: &impl ConnectionTrait, work: &str, now: DateTime<Utc>) -> Result<bool> {
    Ok(schedule_slot::Entity::find_by_id(work.to_string())
        .one(db)
        .await?
        .is_some_and(|row| row.holder.is_some() && row.lease_until.is_some_and(|l| l > now)))
}

/// Gives up a run that failed: it stays due, and any process may take it again at
/// `retry_at`.
pub async fn release(
    db: &impl ConnectionTrait,
    claim: &Claim,
    retry_at: DateTime<Utc>,
    error: &str,
) -> Result<()> {
    schedule_slot::Entity::update_many()
        .col_expr(schedule_slot::Column::DueAt, Expr::value(retry_at))
        .col_expr(schedule_slot::Column::Holder, Expr::value(None::<String>))
        .col_expr(
            schedule_slot::Column::LeaseUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(
            schedule_slot::Column::LastError,
            Expr::value(error.chars().take(1000).collect::<String>()),
        )
        .col_expr(
            schedule_slot::Column::Failures,
            Expr::col(schedule_slot::Column::Failures).add(1),
        )
        .filter(schedule_slot::Column::Work.eq(claim.work))
        .filter(schedule_slot::Column::Holder.eq(claim.holder.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Moves `work`'s next run to no earlier than `due_at`, unless someone holds it now (a run
/// that covered it, such as retraining, which rescores everyone, makes it unneeded).
pub async fn postpone(
    db: &impl ConnectionTrait,
    work: &'static str,
    due_at: DateTime<Utc>,
) -> Result<()> {
    schedule_slot::Entity::update_many()
        .col_expr(schedule_slot::Column::DueAt, Expr::value(due_at))
        .filter(schedule_slot::Column::Work.eq(work))
        .filter(schedule_slot::Column::Holder.is_null())
        .filter(schedule_slot::Column::DueAt.lt(due_at))
        .exec(db)
        .await?;
    Ok(())
}

/// Every kind of work's row, for an operator's look.
pub async fn slots(db: &impl ConnectionTrait) -> Result<Vec<schedule_slot::Model>> {
    Ok(schedule_slot::Entity::find().all(db).await?)
}
