//! The ticker: claims enrollments whose next step is due (a lease in `claimed_at`),
//! runs the triggers, and queues `AdvanceEnrollments` jobs for what it claimed.

use super::*;

#[derive(FromQueryResult)]
struct Claimed {
    workspace_id: i64,
    id: i64,
}

/// Claims up to `limit` due enrollments of active sequences; returns (workspace, id).
pub async fn claim_due(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    lease: std::time::Duration,
    limit: usize,
) -> Result<Vec<(i64, i64)>> {
    let lease = Duration::from_std(lease).unwrap_or(Duration::minutes(10));
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE sequence_enrollments SET claimed_at = $1 WHERE id IN (\
             SELECT id FROM sequence_enrollments WHERE status = 'active' AND next_run_at <= $1 \
             AND (claimed_at IS NULL OR claimed_at < $2) \
             AND sequence_id IN (SELECT id FROM sequences WHERE status = 'active') \
             ORDER BY next_run_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING workspace_id, id"
        }
        _ => {
            "UPDATE sequence_enrollments SET claimed_at = ?1 WHERE id IN (\
             SELECT id FROM sequence_enrollments WHERE status = 'active' AND next_run_at <= ?1 \
             AND (claimed_at IS NULL OR claimed_at < ?2) \
             AND sequence_id IN (SELECT id FROM sequences WHERE status = 'active') \
             ORDER BY next_run_at LIMIT ?3) RETURNING workspace_id, id"
        }
    };
    let rows = Claimed::find_by_statement(Statement::from_sql_and_values(
        backend,
        sql,
        [now.into(), (now - lease).into(), (limit as i64).into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.workspace_id, r.id)).collect())
}

/// One pass of the ticker: triggers enroll (segments and dates too when `slow`), then
/// every due enrollment is claimed and queued in jobs of [`JOB_SIZE`]. Returns how many
/// enrollments it queued.
pub async fn tick(ctx: &Context, lease: std::time::Duration, slow: bool) -> Result<usize> {
    let now = ctx.clock.now();
    triggers::scan(ctx, now, slow).await?;
    let mut queued = 0;
    loop {
        let claimed = claim_due(&ctx.db, now, lease, JOB_SIZE * 8).await?;
        if claimed.is_empty() {
            break;
        }
        let mut by_ws: HashMap<i64, Vec<i64>> = HashMap::new();
        for (ws, id) in &claimed {
            by_ws.entry(*ws).or_default().push(*id);
        }
        for (ws, ids) in by_ws {
            for chunk in ids.chunks(JOB_SIZE) {
                ctx.queue
                    .push(
                        Job::AdvanceEnrollments {
                            workspace_id: ws,
                            enrollment_ids: chunk.to_vec(),
                            claimed_at: Some(now),
                        },
                        None,
                    )
                    .await?;
            }
        }
        queued += claimed.len();
        if claimed.len() < JOB_SIZE * 8 {
            break;
        }
    }
    Ok(queued)
}

/// How often the ticker runs.
#[derive(Clone, Copy, Debug)]
pub struct Ticking {
    /// Due steps and the table-fed triggers.
    pub every: std::time::Duration,
    /// Segment membership and date attributes, which cost a query per sequence.
    pub slow_every: std::time::Duration,
    /// How long a claimed enrollment belongs to its job; after that the ticker presumes
    /// the worker dead and claims it again.
    pub lease: std::time::Duration,
}

impl Ticking {
    /// The defaults, which the command line's flags also start from.
    pub const DEFAULT: Ticking = Ticking {
        every: std::time::Duration::from_secs(2),
        slow_every: std::time::Duration::from_secs(60),
        lease: std::time::Duration::from_secs(600),
    };
}

impl Default for Ticking {
    fn default() -> Self {
        Ticking::DEFAULT
    }
}

/// Runs [`tick`] on the [`Ticking`] rhythm until `shutdown` resolves.
///
/// A failed or panicking tick is logged and reported to `health` as restarting; the
/// next tick runs as usual, and a good tick reports the ticker running again.
pub async fn run_ticker(
    ctx: Arc<Context>,
    ticking: Ticking,
    health: Arc<crate::platform::health::Health>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use futures_util::FutureExt as _;
    const NAME: &str = "sequence ticker";
    health.running(NAME);
    tokio::pin!(shutdown);
    let mut interval = tokio::time::interval(ticking.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_slow: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                health.stopped(NAME);
                return;
            }
            _ = interval.tick() => {
                let slow = last_slow.is_none_or(|t| t.elapsed() >= ticking.slow_every);
                if slow {
                    last_slow = Some(std::time::Instant::now());
                }
                let outcome = std::panic::AssertUnwindSafe(
                    tick(&ctx, ticking.lease, slow)
                        .instrument(tracing::info_span!("sequence_tick", slow)),
                )
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(crate::EngineError::internal("a sequence tick panicked")));
                match outcome {
                    Ok(n) => {
                        health.running(NAME);
                        if n > 0 {
                            tracing::info!(queued = n, "sequence steps queued");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "sequence tick failed");
                        health.failed(NAME, crate::platform::health::describe(&e), ticking.every);
                    }
                }
            }
        }
    }
}
