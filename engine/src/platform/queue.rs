//! The job queue: apalis over the database Rapport already uses — its SQLite storage for
//! the embedded default, its PostgreSQL storage when the database is PostgreSQL — so the
//! queue needs nothing installed and every API and worker process that shares the
//! database shares the queue.
//!
//! Jobs are small: they name what to work on, and the work itself re-reads the database
//! and claims rows before acting, so a job that runs twice (a worker killed mid-job has
//! its job re-queued) repeats nothing that matters. Failed jobs are retried in the worker
//! with exponential backoff; one that exhausts its attempts stays in the queue's table as
//! `Failed` — the dead letters that [`failed`] lists and [`retry`] re-queues.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use apalis::layers::WorkerBuilderExt;
use apalis::layers::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use apalis::layers::retry::{HasherRng, RetryPolicy};
use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, FromQueryResult, Statement};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// Name of the one queue all of Rapport's jobs share.
const QUEUE: &str = "rapport";
/// Attempts a job gets before it becomes a dead letter.
pub const MAX_ATTEMPTS: usize = 5;

/// A unit of background work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Start sending a scheduled campaign: expand its segment into message rows.
    LaunchCampaign {
        /// Workspace.
        workspace_id: i64,
        /// Campaign.
        campaign_id: i64,
    },
    /// Send a batch of a campaign's queued messages.
    SendBatch {
        /// Workspace.
        workspace_id: i64,
        /// Campaign.
        campaign_id: i64,
        /// Message rows to send.
        message_ids: Vec<i64>,
    },
    /// End a campaign's A/B test: pick the winning variant and send it to the rest.
    PickWinner {
        /// Workspace.
        workspace_id: i64,
        /// Campaign.
        campaign_id: i64,
    },
    /// See whether the mail server is back for a campaign that paused itself.
    ResumeWhenReachable {
        /// Workspace.
        workspace_id: i64,
        /// Campaign.
        campaign_id: i64,
        /// Checks made so far (the wait doubles with each).
        attempt: u32,
    },
    /// Run every enabled plugin over some contacts and store what they say.
    RunPlugins {
        /// Workspace.
        workspace_id: i64,
        /// Contacts (a batch of at most a few hundred).
        contact_ids: Vec<i64>,
    },
    /// Run every enabled plugin of deals or of companies over some of them and store
    /// their scores.
    ScorePluginRecords {
        /// Workspace.
        workspace_id: i64,
        /// Deals or companies.
        subject: crate::values::PluginSubject,
        /// Their ids (a batch of at most a few hundred).
        record_ids: Vec<i64>,
    },
    /// Call the plugins hooked on some tracked events with each event.
    PluginHooks {
        /// Workspace.
        workspace_id: i64,
        /// The events (at most a few hundred), in order.
        event_ids: Vec<i64>,
    },
    /// Run the due steps of sequence enrollments the ticker claimed.
    AdvanceEnrollments {
        /// Workspace.
        workspace_id: i64,
        /// Enrollments (at most a few hundred).
        enrollment_ids: Vec<i64>,
        /// The claim the ticker made: a job whose enrollments were claimed again since
        /// (its worker presumed dead) leaves them to the newer job.
        #[serde(default)]
        claimed_at: Option<DateTime<Utc>>,
    },
    /// Send one transactional email an app asked for.
    SendTransactional {
        /// Workspace.
        workspace_id: i64,
        /// The message.
        message_id: i64,
    },
    /// Send webhook deliveries the dispatcher claimed for one endpoint.
    DeliverWebhooks {
        /// Workspace.
        workspace_id: i64,
        /// The endpoint.
        endpoint_id: i64,
        /// Deliveries (at most a few hundred), in order.
        delivery_ids: Vec<i64>,
        /// The claim: deliveries claimed again since belong to the newer job.
        claimed_at: DateTime<Utc>,
    },
    /// Train a new version of a model, as a person asked (a `model_trainings` row).
    TrainModel {
        /// Workspace.
        workspace_id: i64,
        /// The request.
        training_id: i64,
    },
    /// Import an uploaded CSV file (an `imports` row).
    ImportCsv {
        /// Workspace.
        workspace_id: i64,
        /// The import.
        import_id: i64,
    },
}

impl Job {
    /// The job's kind, as logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::LaunchCampaign { .. } => "launch_campaign",
            Job::SendBatch { .. } => "send_batch",
            Job::PickWinner { .. } => "pick_winner",
            Job::ResumeWhenReachable { .. } => "resume_when_reachable",
            Job::RunPlugins { .. } => "run_plugins",
            Job::ScorePluginRecords { .. } => "score_plugin_records",
            Job::PluginHooks { .. } => "plugin_hooks",
            Job::AdvanceEnrollments { .. } => "advance_enrollments",
            Job::SendTransactional { .. } => "send_transactional",
            Job::TrainModel { .. } => "train_model",
            Job::DeliverWebhooks { .. } => "deliver_webhooks",
            Job::ImportCsv { .. } => "import_csv",
        }
    }

    /// The workspace the job works in.
    pub fn workspace_id(&self) -> i64 {
        match self {
            Job::LaunchCampaign { workspace_id, .. }
            | Job::SendBatch { workspace_id, .. }
            | Job::PickWinner { workspace_id, .. }
            | Job::ResumeWhenReachable { workspace_id, .. }
            | Job::RunPlugins { workspace_id, .. }
            | Job::ScorePluginRecords { workspace_id, .. }
            | Job::PluginHooks { workspace_id, .. }
            | Job::AdvanceEnrollments { workspace_id, .. }
            | Job::SendTransactional { workspace_id, .. }
            | Job::TrainModel { workspace_id, .. }
            | Job::DeliverWebhooks { workspace_id, .. }
            | Job::ImportCsv { workspace_id, .. } => *workspace_id,
        }
    }
}

/// The queue, on the database's own backend.
#[derive(Clone)]
pub enum Queue {
    /// apalis-sqlite, in the same SQLite file.
    Sqlite(SqliteStorage<Job>),
    /// apalis-postgres, in the same PostgreSQL database (schema `apalis`).
    Postgres(PostgresStorage<Job>),
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Queue::Sqlite(_) => "Queue::Sqlite",
            Queue::Postgres(_) => "Queue::Postgres",
        })
    }
}

/// Creates the queue's tables (apalis's own migrations; idempotent).
pub async fn setup(db: &DatabaseConnection) -> Result<()> {
    match db.get_database_backend() {
        // Only the migrations: `SqliteStorage::setup` would also change pragmas.
        DbBackend::Sqlite => SqliteStorage::<()>::migrations()
            .run(db.get_sqlite_connection_pool())
            .await
            .map_err(queue_error),
        _ => PostgresStorage::<()>::setup(db.get_postgres_connection_pool())
            .await
            .map_err(queue_error),
    }
}

fn queue_error(e: impl std::fmt::Display) -> EngineError {
    tracing::error!(error = %e, "job queue");
    EngineError::internal("the job queue is unavailable")
}

impl Queue {
    /// The queue in `db` (its tables come with [`setup`], which `db::migrate` runs).
    pub fn new(db: &DatabaseConnection) -> Result<Queue> {
        match db.get_database_backend() {
            DbBackend::Sqlite => Ok(Queue::Sqlite(
                SqliteStorage::new(db.get_sqlite_connection_pool())
                    .with_config(apalis_sqlite::Config::default().queue(QUEUE)),
            )),
            DbBackend::Postgres => Ok(Queue::Postgres(
                PostgresStorage::new(db.get_postgres_connection_pool())
                    .with_config(apalis_postgres::Config::default().queue(QUEUE)),
            )),
            other => Err(EngineError::invalid(
                "database",
                format!("{other:?} is not supported"),
            )),
        }
    }

    /// The same queue with workers that report every `heartbeat` and take over the jobs
    /// of a worker silent for three of them.
    pub fn with_heartbeat(self, heartbeat: Duration) -> Queue {
        match self {
            Queue::Sqlite(s) => Queue::Sqlite(
                s.with_config(
                    apalis_sqlite::Config::default()
                        .queue(QUEUE)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(3),
                ),
            ),
            Queue::Postgres(s) => Queue::Postgres(
                s.with_config(
                    apalis_postgres::Config::default()
                        .queue(QUEUE)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(3),
                ),
            ),
        }
    }

    /// Enqueues a job to run at `at` (now when `None`).
    pub async fn push(&self, job: Job, at: Option<DateTime<Utc>>) -> Result<()> {
        let mut task = TaskBuilder::new(job).max_attempts(MAX_ATTEMPTS);
        if let Some(at) = at {
            task = task.run_at_time(SystemTime::from(at));
        }
        let task = task.build();
        match self {
            Queue::Sqlite(s) => s.clone().push_task(task).await.map_err(queue_error),
            Queue::Postgres(s) => s.clone().push_task(task).await.map_err(queue_error),
        }
    }
}

/// How workers run.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Jobs one process runs at the same time.
    pub concurrency: usize,
    /// How long shutdown waits for jobs in flight before leaving them to be re-queued.
    pub shutdown_timeout: Duration,
    /// First retry delay; each retry doubles it.
    pub retry_delay: Duration,
    /// How often workers report that they are alive; a worker silent for three of these
    /// is presumed dead and its jobs go back to the queue.
    pub heartbeat: Duration,
    /// How often an idle worker looks for jobs that became due.
    pub poll_interval: Duration,
    /// A name for this process's workers, unique among processes sharing the queue.
    pub name: String,
}

/// Jobs one process runs at once, by default (the command line's flag starts from it).
pub const DEFAULT_CONCURRENCY: usize = 4;
/// The first retry delay, by default.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(2);
/// How often workers report that they are alive, by default.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: DEFAULT_CONCURRENCY,
            shutdown_timeout: Duration::from_secs(30),
            retry_delay: DEFAULT_RETRY_DELAY,
            heartbeat: DEFAULT_HEARTBEAT,
            poll_interval: Duration::from_millis(250),
            name: format!("rapport-{}-{}", hostname(), std::process::id()),
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into())
}

/// What runs jobs: the queue knows none of Rapport's features, so whoever starts the
/// workers says what each job does (the engine's `worker` module).
pub trait Handler: Send + Sync + 'static {
    /// Does `job`; an error makes the queue retry it with back-off, and, once it has no
    /// attempts left, keep it as a dead letter.
    fn handle(&self, job: &Job) -> impl std::future::Future<Output = Result<()>> + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct JobFailed(String);

async fn run<H: Handler>(job: Job, handler: Data<Arc<H>>) -> std::result::Result<(), BoxDynError> {
    let span = tracing::info_span!("job", kind = job.kind(), workspace = job.workspace_id());
    let outcome = tracing::Instrument::instrument(handler.handle(&job), span).await;
    crate::platform::metrics::JOBS.inc(&[job.kind(), if outcome.is_ok() { "ok" } else { "error" }]);
    outcome.map_err(|e| {
        tracing::warn!(error = %e, ?job, "job failed");
        Box::new(JobFailed(e.to_string())) as BoxDynError
    })
}

/// Runs workers until `shutdown` resolves, then lets jobs in flight finish (up to the
/// timeout); what is still running is re-queued by the next worker's orphan check.
///
/// The workers are supervised: when they stop on their own — apalis ends a worker for
/// good when fetching jobs fails, say while the database is locked or down — they are
/// started again after a back-off, and `health` reports them as restarting meanwhile.
pub async fn work<H: Handler>(
    queue: Queue,
    handler: H,
    options: WorkerOptions,
    health: Arc<crate::platform::health::Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use futures_util::FutureExt as _;
    const NAME: &str = "job workers";
    let handler = Arc::new(handler);
    let shutdown = shutdown.boxed().shared();
    let mut backoff = crate::platform::health::Backoff::default();
    loop {
        health.running(NAME);
        let started = std::time::Instant::now();
        let last_error = Arc::new(std::sync::Mutex::new(None::<String>));
        let outcome = run_workers(
            &queue,
            handler.clone(),
            &options,
            last_error.clone(),
            shutdown.clone(),
        )
        .await;
        if shutdown.peek().is_some() {
            health.stopped(NAME);
            return outcome;
        }
        let error = match outcome {
            Err(e) => e.to_string(),
            Ok(()) => last_error
                .lock()
                .expect("last error")
                .take()
                .unwrap_or_else(|| "the workers stopped without an error".into()),
        };
        let wait = backoff.after(started.elapsed());
        tracing::error!(error = %error, retry_in = ?wait, "the job workers stopped; starting them again");
        health.failed(NAME, error, wait);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.clone() => {
                health.stopped(NAME);
                return Ok(());
            }
        }
    }
}

/// One run of the workers, until they stop or `shutdown` resolves; the last error a
/// worker reported is left in `last_error`.
async fn run_workers<H: Handler>(
    queue: &Queue,
    handler: Arc<H>,
    options: &WorkerOptions,
    last_error: Arc<std::sync::Mutex<Option<String>>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let backoff = || {
        ExponentialBackoffMaker::new(
            options.retry_delay,
            options.retry_delay * 64,
            0.2,
            HasherRng::default(),
        )
        .expect("valid backoff bounds")
        .make_backoff()
    };
    let policy = RetryPolicy::retries(MAX_ATTEMPTS - 1).with_backoff(backoff());
    let monitor = match queue.clone().with_heartbeat(options.heartbeat) {
        Queue::Sqlite(storage) => {
            let (ctx, policy, opts) = (handler.clone(), policy.clone(), options.clone());
            Monitor::new().register(move |_| {
                WorkerBuilder::new(opts.name.as_str())
                    // Without a strategy an idle worker looks for work only at heartbeats.
                    .backend(storage.clone().poll_with_interval(opts.poll_interval))
                    .concurrency(opts.concurrency)
                    .retry(policy.clone())
                    .enable_tracing()
                    .catch_panic()
                    .data(ctx.clone())
                    .parallelize(tokio::spawn)
                    .build(run::<H>)
            })
        }
        Queue::Postgres(storage) => {
            let (ctx, policy, opts) = (handler.clone(), policy.clone(), options.clone());
            Monitor::new().register(move |_| {
                WorkerBuilder::new(opts.name.as_str())
                    // New jobs are announced (LISTEN/NOTIFY); jobs that become due later
                    // and work released by dead workers are found by polling.
                    .backend(
                        storage.clone().poll_with_strategy(
                            Strategy::new()
                                .stream(apalis_postgres::Pubsub::new(
                                    storage.pool().clone(),
                                    QUEUE.into(),
                                ))
                                .interval(opts.poll_interval),
                        ),
                    )
                    .concurrency(opts.concurrency)
                    .retry(policy.clone())
                    .enable_tracing()
                    .catch_panic()
                    .data(ctx.clone())
                    .parallelize(tokio::spawn)
                    .build(run::<H>)
            })
        }
    };
    monitor
        // A worker that ends on an error is not restarted here, at once and without a
        // pause, but by `work`, after a back-off; its error is kept for the health report.
        .should_restart(move |_, error| {
            *last_error.lock().expect("last error") = Some(error.to_string());
            false
        })
        .shutdown_timeout(options.shutdown_timeout)
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await
        .map_err(queue_error)
}

/// A job that exhausted its attempts.
#[derive(Clone, Debug)]
pub struct FailedJob {
    /// The queue's id for it.
    pub id: String,
    /// What it was.
    pub job: Job,
    /// Attempts made.
    pub attempts: i32,
    /// The last error.
    pub error: Option<String>,
    /// When it last ended.
    pub failed_at: Option<DateTime<Utc>>,
}

#[derive(FromQueryResult)]
struct JobRow {
    id: String,
    job: Vec<u8>,
    attempts: i32,
    last_result: Option<String>,
    done_at: Option<i64>,
}

/// Dead letters of one workspace, newest first.
pub async fn failed(
    db: &DatabaseConnection,
    workspace_id: i64,
    limit: u64,
) -> Result<Vec<FailedJob>> {
    let backend = db.get_database_backend();
    // Jobs are stored as compact JSON, so the workspace is picked out in SQL (the member is
    // followed by a comma or the closing brace) rather than by reading every workspace's
    // dead letters; the decoded job is checked again below.
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT id, job, attempts, last_result::text AS last_result, \
             CAST(EXTRACT(EPOCH FROM done_at) AS BIGINT) AS done_at FROM apalis.jobs \
             WHERE job_type = $1 AND ((status = 'Failed' AND attempts >= max_attempts) OR status = 'Killed') \
             AND (convert_from(job, 'UTF8') LIKE $2 OR convert_from(job, 'UTF8') LIKE $3) \
             ORDER BY done_at DESC NULLS LAST LIMIT $4"
        }
        _ => {
            "SELECT id, job, attempts, last_result, done_at FROM Jobs \
             WHERE job_type = ? AND ((status = 'Failed' AND attempts >= max_attempts) OR status = 'Killed') \
             AND (CAST(job AS TEXT) LIKE ? OR CAST(job AS TEXT) LIKE ?) \
             ORDER BY done_at DESC LIMIT ?"
        }
    };
    let member = format!("%\"workspace_id\":{workspace_id}");
    let rows = JobRow::find_by_statement(Statement::from_sql_and_values(
        backend,
        sql,
        [
            QUEUE.into(),
            format!("{member},%").into(),
            format!("{member}}}%").into(),
            (limit.min(10_000) as i64).into(),
        ],
    ))
    .all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let job: Job = serde_json::from_slice(&r.job).ok()?;
            (job.workspace_id() == workspace_id).then(|| FailedJob {
                id: r.id,
                job,
                attempts: r.attempts,
                error: r.last_result.as_deref().map(error_text),
                failed_at: r.done_at.and_then(|t| DateTime::from_timestamp(t, 0)),
            })
        })
        .take(limit as usize)
        .collect())
}

/// The message in a stored job result, which apalis keeps as JSON (a string, or an
/// object around one).
fn error_text(raw: &str) -> String {
    fn first_string(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(m) => m.values().find_map(first_string),
            serde_json::Value::Array(a) => a.iter().find_map(first_string),
            _ => None,
        }
    }
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| first_string(&v))
        .unwrap_or_else(|| raw.to_string())
}

/// Puts a dead letter of the workspace back in the queue with fresh attempts.
pub async fn retry(db: &DatabaseConnection, workspace_id: i64, id: &str) -> Result<()> {
    let known = failed(db, workspace_id, u64::MAX)
        .await?
        .into_iter()
        .any(|j| j.id == id);
    if !known {
        return Err(EngineError::not_found("FailedJob", id));
    }
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE apalis.jobs SET status = 'Pending', attempts = 0, lock_by = NULL, lock_at = NULL, \
             done_at = NULL, run_at = now() WHERE id = $1"
        }
        _ => {
            "UPDATE Jobs SET status = 'Pending', attempts = 0, lock_by = NULL, lock_at = NULL, \
             done_at = NULL, run_at = strftime('%s', 'now') WHERE id = ?"
        }
    };
    db.execute_raw(Statement::from_sql_and_values(backend, sql, [id.into()]))
        .await?;
    Ok(())
}
