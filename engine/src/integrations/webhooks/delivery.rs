//! Sending what the outbox holds. A dispatcher claims due deliveries (a lease in
//! `claimed_at`) and queues `DeliverWebhooks` jobs, one endpoint each; a job sends its
//! deliveries grouped by subject — subjects side by side, each subject's in order — and
//! records every attempt.
//!
//! Order per endpoint and subject holds because a delivery is claimed only when no earlier
//! one of the same endpoint and subject is still waiting for a retry or held by a live
//! claim, and a job stops a subject at its first failure, handing the rest back.
//!
//! Each request is signed the Standard Webhooks way: headers `webhook-id` (the event's,
//! the same on every retry and replay), `webhook-timestamp` (seconds) and
//! `webhook-signature` (`v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed by
//! the secret after `whsec_`). A 2xx answer delivers; anything else, a network error or
//! the timeout is retried with exponential back-off and jitter for about 30 hours; 410
//! Gone disables the endpoint at once, and an endpoint that kept failing for
//! [`Settings::disable_after`] is disabled and its admins are told by email.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use rand::Rng as _;
use rapport_schema::{user, webhook_attempt, webhook_delivery, webhook_endpoint, webhook_event};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, Set, Statement,
};
use tracing::Instrument as _;

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::email::{self, Mailer, Outgoing};
use crate::platform::health::{self, Health};
use crate::platform::links::hmac_sha256;
use crate::platform::queue::{Job, Queue};
use crate::values::EmailAddress;

/// How deliveries are made.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Whether endpoints may be private addresses (loopback, private ranges); off in
    /// production, on for tests and closed networks.
    pub allow_private: bool,
    /// How long one attempt may take, connection to last byte.
    pub timeout: Duration,
    /// The first retry's wait; the schedule ([`RETRY_STEPS`]) multiplies it.
    pub retry_base: Duration,
    /// How often the dispatcher looks for due deliveries.
    pub every: Duration,
    /// How long a claimed delivery belongs to its job before the dispatcher presumes the
    /// worker dead and claims it again (each attempt renews it; at least three timeouts).
    pub lease: Duration,
    /// How long an endpoint may fail without a success before it is disabled.
    pub disable_after: chrono::Duration,
    /// The sender of the email that tells admins an endpoint was disabled.
    pub notify_from: Option<EmailAddress>,
    /// How long events are kept once nothing is owed for them (the delivery log's reach).
    pub retention: chrono::Duration,
}

impl Settings {
    /// The defaults, which the command line's flags also start from.
    pub fn new() -> Settings {
        Settings {
            allow_private: false,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(5),
            every: Duration::from_millis(500),
            lease: Duration::from_secs(120),
            disable_after: chrono::Duration::days(5),
            notify_from: None,
            retention: chrono::Duration::days(30),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new()
    }
}

/// Waits before each retry, in units of [`Settings::retry_base`]: with the default 5 s,
/// 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 6 h, 8 h, 8 h — about 30 hours.
pub const RETRY_STEPS: [u32; 11] = [1, 6, 24, 120, 360, 720, 1440, 2880, 4320, 5760, 5760];
/// Attempts a delivery gets: the first and one per retry step.
pub const MAX_ATTEMPTS: i32 = RETRY_STEPS.len() as i32 + 1;
/// Deliveries one job carries at most.
pub const JOB_SIZE: usize = 200;
/// Subjects a job sends to at once.
const PARALLEL_SUBJECTS: usize = 16;
/// Bytes of an answer kept in the log.
const EXCERPT: usize = 500;

/// The wait before retry `attempt` (1 after the first failure), with ±20 % jitter so
/// endpoints that failed together do not all come back together.
pub fn retry_delay(base: Duration, attempt: i32) -> Duration {
    let step = RETRY_STEPS[(attempt.max(1) as usize - 1).min(RETRY_STEPS.len() - 1)];
    let wait = base.saturating_mul(step);
    let jitter = rand::rng().random_range(0.8..1.2);
    wait.mul_f64(jitter)
}

/// A delivery's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for its (next) attempt.
    Pending,
    /// Claimed by a job.
    Sending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed, or the endpoint was gone.
    Failed,
}

impl State {
    /// The stored spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sending => "sending",
            State::Delivered => "delivered",
            State::Failed => "failed",
        }
    }

    /// Reads the stored spelling.
    pub fn from_db(raw: &str) -> State {
        match raw {
            "sending" => State::Sending,
            "delivered" => State::Delivered,
            "failed" => State::Failed,
            _ => State::Pending,
        }
    }
}

/// The `webhook-signature` header for a body: `v1,` and the base64 HMAC-SHA256 of
/// `id.timestamp.body` keyed by the secret's bytes.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|k| STANDARD.decode(k).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let signed = format!("{id}.{timestamp}.{body}");
    format!(
        "v1,{}",
        STANDARD.encode(hmac_sha256(&key, signed.as_bytes()))
    )
}

/// The `webhook-id` of an event.
pub fn message_id(event_id: i64) -> String {
    format!("evt_{event_id}")
}

#[derive(FromQueryResult)]
struct Claimed {
    workspace_id: i64,
    endpoint_id: i64,
    id: i64,
    subject: String,
}

/// A claimed delivery: workspace, endpoint, delivery and subject.
pub type ClaimedDelivery = (i64, i64, i64, String);

/// Claims up to `limit` due deliveries of enabled endpoints whose subject has nothing
/// earlier still owed; returns them in id order.
pub async fn claim_due(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    lease: Duration,
    limit: usize,
) -> Result<Vec<ClaimedDelivery>> {
    let stale = now - chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(2));
    let backend = db.get_database_backend();
    // An earlier delivery of the same endpoint and subject holds the later ones back while
    // it waits for a retry or is held by a live claim.
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE webhook_deliveries SET state = 'sending', claimed_at = $1 WHERE id IN (\
             SELECT d.id FROM webhook_deliveries d WHERE \
             ((d.state = 'pending' AND d.next_attempt_at <= $1) OR (d.state = 'sending' AND d.claimed_at < $2)) \
             AND d.endpoint_id IN (SELECT id FROM webhook_endpoints WHERE enabled) \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.endpoint_id = d.endpoint_id \
               AND e.subject = d.subject AND e.id < d.id AND \
               ((e.state = 'pending' AND e.next_attempt_at > $1) OR (e.state = 'sending' AND e.claimed_at >= $2))) \
             ORDER BY d.id LIMIT $3) RETURNING workspace_id, endpoint_id, id, subject"
        }
        _ => {
            "UPDATE webhook_deliveries SET state = 'sending', claimed_at = ?1 WHERE id IN (\
             SELECT d.id FROM webhook_deliveries d WHERE \
             ((d.state = 'pending' AND d.next_attempt_at <= ?1) OR (d.state = 'sending' AND d.claimed_at < ?2)) \
             AND d.endpoint_id IN (SELECT id FROM webhook_endpoints WHERE enabled) \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.endpoint_id = d.endpoint_id \
               AND e.subject = d.subject AND e.id < d.id AND \
               ((e.state = 'pending' AND e.next_attempt_at > ?1) OR (e.state = 'sending' AND e.claimed_at >= ?2))) \
             ORDER BY d.id LIMIT ?3) RETURNING workspace_id, endpoint_id, id, subject"
        }
    };
    let tx = crate::platform::db::write(db).await?;
    if backend == DbBackend::Postgres {
        // One dispatcher claims at a time across processes: two claiming side by side
        // could each take a different delivery of one subject and break its order.
        tx.execute_unprepared("SELECT pg_advisory_xact_lock(7356841)")
            .await?;
    }
    let mut rows = Claimed::find_by_statement(Statement::from_sql_and_values(
        backend,
        sql,
        [now.into(), stale.into(), (limit as i64).into()],
    ))
    .all(&tx)
    .await?;
    tx.commit().await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows
        .into_iter()
        .map(|r| (r.workspace_id, r.endpoint_id, r.id, r.subject))
        .collect())
}

/// One pass of the dispatcher: claims every due delivery and queues them in jobs of about
/// [`JOB_SIZE`], one endpoint per job. A subject's deliveries always go in one job, which
/// sends them in order: split over two jobs running side by side, a later one could go
/// out while an earlier one fails. Returns how many it queued.
pub async fn dispatch(
    db: &DatabaseConnection,
    queue: &Queue,
    settings: &Settings,
) -> Result<usize> {
    const CLAIM: usize = JOB_SIZE * 20;
    let mut queued = 0;
    loop {
        let now = clock::now();
        // An attempt renews its row's lease, so the lease need only outlast one attempt.
        let lease = settings.lease.max(settings.timeout * 3);
        let claimed = claim_due(db, now, lease, CLAIM).await?;
        for ((workspace_id, endpoint_id), ids) in jobs(&claimed) {
            queue
                .push(
                    Job::DeliverWebhooks {
                        workspace_id,
                        endpoint_id,
                        delivery_ids: ids,
                        claimed_at: now,
                    },
                    None,
                )
                .await?;
        }
        queued += claimed.len();
        if claimed.len() < CLAIM {
            return Ok(queued);
        }
    }
}

/// Cuts claimed deliveries into jobs: per endpoint, whole subjects (in id order) until a
/// job holds [`JOB_SIZE`]; a subject with more than that is a job of its own.
pub fn jobs(claimed: &[ClaimedDelivery]) -> Vec<((i64, i64), Vec<i64>)> {
    let mut by_endpoint: HashMap<(i64, i64), Vec<(&str, i64)>> = HashMap::new();
    for (ws, endpoint, id, subject) in claimed {
        by_endpoint
            .entry((*ws, *endpoint))
            .or_default()
            .push((subject.as_str(), *id));
    }
    let mut out = Vec::new();
    for (key, rows) in by_endpoint {
        let mut subjects: Vec<(&str, Vec<i64>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (subject, id) in rows {
            let at = *index.entry(subject).or_insert_with(|| {
                subjects.push((subject, Vec::new()));
                subjects.len() - 1
            });
            subjects[at].1.push(id);
        }
        let mut job: Vec<i64> = Vec::new();
        for (_, ids) in subjects {
            if !job.is_empty() && job.len() + ids.len() > JOB_SIZE {
                out.push((key, std::mem::take(&mut job)));
            }
            job.extend(ids);
        }
        if !job.is_empty() {
            out.push((key, job));
        }
    }
    out
}

/// What sends deliveries: the guarded HTTP client, the settings and, for the email that
/// tells admins an endpoint was disabled, the mail transport.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    /// The settings it was built with.
    pub settings: Settings,
    mailer: Option<Mailer>,
}

impl Sender {
    /// A sender with its own client.
    pub fn new(settings: Settings, mailer: Option<Mailer>) -> Result<Sender> {
        Ok(Sender {
            client: super::targets::client(settings.allow_private, settings.timeout)?,
            settings,
            mailer,
        })
    }
}

/// How one attempt went.
struct Outcome {
    status: Option<u16>,
    latency_ms: i64,
    error: Option<String>,
    excerpt: Option<String>,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends the deliveries a `DeliverWebhooks` job names, if they are still its claim.
pub async fn deliver(
    db: &DatabaseConnection,
    sender: &Sender,
    workspace_id: i64,
    endpoint_id: i64,
    delivery_ids: &[i64],
    claimed_at: DateTime<Utc>,
) -> Result<()> {
    let Some(endpoint) = webhook_endpoint::Entity::find_by_id(endpoint_id)
        .filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
    else {
        return Ok(()); // deleted since: its deliveries went with it
    };
    let rows = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Id.is_in(delivery_ids.iter().copied()))
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
        .filter(webhook_delivery::Column::State.eq(State::Sending.as_str()))
        .filter(webhook_delivery::Column::ClaimedAt.eq(claimed_at))
        .order_by_asc(webhook_delivery::Column::Id)
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    if !endpoint.enabled {
        release(
            db,
            &rows.iter().map(|d| d.id).collect::<Vec<_>>(),
            claimed_at,
        )
        .await?;
        return Ok(());
    }
    let events: HashMap<i64, webhook_event::Model> = webhook_event::Entity::find()
        .filter(webhook_event::Column::Id.is_in(rows.iter().map(|d| d.event_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    let mut subjects: Vec<(String, Vec<webhook_delivery::Model>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for d in rows {
        let at = *index.entry(d.subject.clone()).or_insert_with(|| {
            subjects.push((d.subject.clone(), Vec::new()));
            subjects.len() - 1
        });
        subjects[at].1.push(d);
    }
    let endpoint = &endpoint;
    let events = &events;
    let half_lease =
        chrono::Duration::from_std(sender.settings.lease.max(sender.settings.timeout * 3) / 2)
            .unwrap_or(chrono::Duration::seconds(60));
    // A 410 from any subject stops the whole job: the endpoint is gone for all of them.
    let gone = &std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Result<()>> = futures_util::stream::iter(subjects)
        .map(|(_, group)| async move {
            let mut rest = group.into_iter();
            while let Some(d) = rest.next() {
                if gone.load(std::sync::atomic::Ordering::SeqCst) {
                    release(db, &[d.id], claimed_at).await?;
                    continue;
                }
                // Past half the lease, the claim is checked and renewed before each
                // attempt: a job slower than the lease finds its rows taken over and
                // leaves them to the newer job. Before that no dispatcher can have taken
                // them, and the record of the attempt checks the claim anyway.
                let claim = if clock::now() - claimed_at < half_lease {
                    claimed_at
                } else {
                    match renew(db, d.id, claimed_at).await? {
                        Some(claim) => claim,
                        None => continue,
                    }
                };
                let Some(event) = events.get(&d.event_id) else {
                    continue;
                };
                let outcome = attempt(sender, endpoint, event).await;
                if outcome.status == Some(410) {
                    gone.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let ok = outcome.delivered();
                record(db, sender, endpoint, &d, claim, &outcome).await?;
                if !ok {
                    // The subject waits for this one's retry: hand the rest back.
                    let ids: Vec<i64> = rest.map(|d| d.id).collect();
                    release(db, &ids, claimed_at).await?;
                    break;
                }
            }
            Ok(())
        })
        .buffer_unordered(PARALLEL_SUBJECTS)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(())
}

/// Takes one claimed delivery for an attempt: still this job's claim (`claimed_at`
/// unchanged) and still `sending`, its lease renewed to now. `None`: another job has it.
async fn renew(
    db: &impl ConnectionTrait,
    id: i64,
    claimed_at: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let now = clock::now().max(claimed_at + chrono::Duration::microseconds(1));
    let taken = webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::ClaimedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(webhook_delivery::Column::Id.eq(id))
        .filter(webhook_delivery::Column::State.eq(State::Sending.as_str()))
        .filter(webhook_delivery::Column::ClaimedAt.eq(claimed_at))
        .exec(db)
        .await?
        .rows_affected;
    Ok((taken == 1).then_some(now))
}

/// Hands claimed deliveries back, untried, for the dispatcher to claim again — those
/// still held by this claim.
async fn release(db: &impl ConnectionTrait, ids: &[i64], claimed_at: DateTime<Utc>) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::State,
            sea_orm::sea_query::Expr::value(State::Pending.as_str()),
        )
        .col_expr(
            webhook_delivery::Column::ClaimedAt,
            sea_orm::sea_query::Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_delivery::Column::Id.is_in(ids.iter().copied()))
        .filter(webhook_delivery::Column::State.eq(State::Sending.as_str()))
        .filter(webhook_delivery::Column::ClaimedAt.eq(claimed_at))
        .exec(db)
        .await?;
    Ok(())
}

/// One signed POST of an event to an endpoint.
async fn attempt(
    sender: &Sender,
    endpoint: &webhook_endpoint::Model,
    event: &webhook_event::Model,
) -> Outcome {
    let started = Instant::now();
    let elapsed = |s: Instant| s.elapsed().as_millis().min(i64::MAX as u128) as i64;
    let url = match super::targets::TargetUrl::parse("url", &endpoint.url) {
        Ok(u) => u,
        Err(e) => {
            return Outcome {
                status: None,
                latency_ms: 0,
                error: Some(e.to_string()),
                excerpt: None,
            };
        }
    };
    if let Err(e) = super::targets::check_literal(url.url(), sender.settings.allow_private) {
        return Outcome {
            status: None,
            latency_ms: 0,
            error: Some(e),
            excerpt: None,
        };
    }
    let body = event.payload.to_string();
    let id = message_id(event.id);
    let timestamp = clock::now().timestamp();
    let response = sender
        .client
        .post(url.url().clone())
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature(&endpoint.secret, &id, timestamp, &body),
        )
        .body(body)
        .send()
        .await;
    match response {
        Ok(mut r) => {
            let status = r.status().as_u16();
            // Only the start of the answer is read, whatever its size.
            let mut bytes = Vec::new();
            while bytes.len() < EXCERPT {
                match r.chunk().await {
                    Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            bytes.truncate(EXCERPT);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            Outcome {
                status: Some(status),
                latency_ms: elapsed(started),
                error: (!(200..300).contains(&status))
                    .then(|| format!("the endpoint answered {status}")),
                excerpt: (!text.is_empty()).then_some(text),
            }
        }
        Err(e) => Outcome {
            status: None,
            latency_ms: elapsed(started),
            error: Some(describe(&e)),
            excerpt: None,
        },
    }
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_redirect() {
        "a redirect was refused"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    format!("{what}: {}", health::describe(e))
}

/// Stores an attempt and what follows from it for the delivery (if it is still held by
/// `claim`) and the endpoint.
async fn record(
    db: &DatabaseConnection,
    sender: &Sender,
    endpoint: &webhook_endpoint::Model,
    d: &webhook_delivery::Model,
    claim: DateTime<Utc>,
    outcome: &Outcome,
) -> Result<()> {
    let now = clock::now();
    let attempts = d.attempts + 1;
    let gone = outcome.status == Some(410);
    let delivered = outcome.delivered();
    crate::platform::metrics::WEBHOOK_ATTEMPTS.inc(&[if delivered {
        "delivered"
    } else if gone {
        "gone"
    } else {
        "failed"
    }]);
    let tx = crate::platform::db::write(db).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        // Lost in a crash, this record means one more delivery of an event the receiver
        // already has (the same webhook-id): not worth waiting for the disk per attempt.
        tx.execute_unprepared("SET LOCAL synchronous_commit TO OFF")
            .await?;
    }
    webhook_attempt::ActiveModel {
        workspace_id: Set(d.workspace_id),
        endpoint_id: Set(d.endpoint_id),
        delivery_id: Set(d.id),
        attempted_at: Set(now),
        status: Set(outcome.status.map(i32::from)),
        latency_ms: Set(outcome.latency_ms),
        error: Set(outcome.error.clone()),
        response_excerpt: Set(outcome.excerpt.clone()),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    let (state, delivered_at, next_attempt_at) = if delivered {
        (State::Delivered, Some(now), d.next_attempt_at)
    } else if gone || attempts >= MAX_ATTEMPTS {
        (State::Failed, None, d.next_attempt_at)
    } else {
        let wait = retry_delay(sender.settings.retry_base, attempts);
        let next = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
        (State::Pending, None, next)
    };
    use sea_orm::sea_query::Expr;
    let mine = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempts))
        .col_expr(
            webhook_delivery::Column::ClaimedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_delivery::Column::LastStatus,
            Expr::value(outcome.status.map(i32::from)),
        )
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value(outcome.error.clone()),
        )
        .col_expr(webhook_delivery::Column::State, Expr::value(state.as_str()))
        .col_expr(
            webhook_delivery::Column::DeliveredAt,
            Expr::value(delivered_at),
        )
        .col_expr(
            webhook_delivery::Column::NextAttemptAt,
            Expr::value(next_attempt_at),
        )
        .filter(webhook_delivery::Column::Id.eq(d.id))
        .filter(webhook_delivery::Column::ClaimedAt.eq(claim))
        .exec(&tx)
        .await?
        .rows_affected;
    if mine == 0 {
        // Taken over meanwhile (this attempt outlived the lease): the attempt is in the log,
        // the delivery's state is the newer job's.
        tx.commit().await?;
        return Ok(());
    }
    // The endpoint's health: a success ends a run of failures; a run that lasted too long,
    // or a 410, disables it. A success for an endpoint that was not failing when the job
    // began needs no look (a run that began since ends with the next success).
    if delivered && endpoint.failing_since.is_none() {
        tx.commit().await?;
        return Ok(());
    }
    let current = webhook_endpoint::Entity::find_by_id(endpoint.id)
        .one(&tx)
        .await?;
    let mut disabled = None;
    if let Some(current) = current {
        let mut am: webhook_endpoint::ActiveModel = current.clone().into();
        let mut changed = false;
        if delivered {
            if current.failing_since.is_some() {
                am.failing_since = Set(None);
                changed = true;
            }
        } else {
            let since = current.failing_since.unwrap_or(now);
            if current.failing_since.is_none() {
                am.failing_since = Set(Some(now));
                changed = true;
            }
            let reason = if gone {
                Some("the endpoint answered 410 Gone".to_string())
            } else if now - since >= sender.settings.disable_after {
                Some(format!(
                    "every delivery failed since {} (last: {})",
                    since.format("%Y-%m-%d %H:%M UTC"),
                    outcome.error.as_deref().unwrap_or("no answer")
                ))
            } else {
                None
            };
            if let Some(reason) = reason
                && current.enabled
            {
                // Only the one write that turns it off tells the admins.
                let turned_off = webhook_endpoint::Entity::update_many()
                    .col_expr(
                        webhook_endpoint::Column::Enabled,
                        sea_orm::sea_query::Expr::value(false),
                    )
                    .col_expr(
                        webhook_endpoint::Column::DisabledReason,
                        sea_orm::sea_query::Expr::value(Some(reason.clone())),
                    )
                    .filter(webhook_endpoint::Column::Id.eq(current.id))
                    .filter(webhook_endpoint::Column::Enabled.eq(true))
                    .exec(&tx)
                    .await?
                    .rows_affected;
                if turned_off == 1 {
                    disabled = Some(reason);
                }
            }
        }
        if changed {
            am.updated_at = Set(now);
            am.update(&tx).await?;
        }
    }
    tx.commit().await?;
    if let Some(reason) = disabled {
        tracing::warn!(endpoint = endpoint.id, %reason, "webhook endpoint disabled");
        if let Err(e) = notify_admins(db, sender, endpoint, &reason).await {
            tracing::warn!(error = ?e, "telling admins about a disabled webhook endpoint");
        }
    }
    Ok(())
}

/// Emails the workspace's admins that an endpoint was disabled, and why.
async fn notify_admins(
    db: &DatabaseConnection,
    sender: &Sender,
    endpoint: &webhook_endpoint::Model,
    reason: &str,
) -> Result<()> {
    let (Some(mailer), Some(from)) = (&sender.mailer, &sender.settings.notify_from) else {
        return Ok(());
    };
    let admins = user::Entity::find()
        .filter(user::Column::WorkspaceId.eq(endpoint.workspace_id))
        .filter(user::Column::Role.eq("admin"))
        .filter(user::Column::DeletedAt.is_null())
        .all(db)
        .await?;
    for admin in admins {
        let Ok(to) = EmailAddress::parse("email", &admin.email) else {
            continue;
        };
        let url = email::escape_html(&endpoint.url);
        let why = email::escape_html(reason);
        let message = email::build(&Outgoing {
            from: from.clone(),
            from_name: Some("Rapport".into()),
            to,
            subject: "A webhook endpoint was disabled".into(),
            html: format!(
                "<p>Rapport stopped sending webhooks to <code>{url}</code>: {why}.</p>\
                 <p>Nothing more is sent to it until an admin enables it again; deliveries it was still owed wait, and the delivery log can replay any event.</p>"
            ),
            text: format!(
                "Rapport stopped sending webhooks to {}: {reason}.\n\nNothing more is sent to it until an admin enables it again; deliveries it was still owed wait, and the delivery log can replay any event.\n",
                endpoint.url
            ),
            key: format!(
                "webhook-disabled/{}/{}",
                endpoint.id,
                clock::now().timestamp()
            ),
            unsubscribe_url: None,
        })?;
        mailer.send(message).await?;
    }
    Ok(())
}

/// Deletes events older than `retention` with nothing still owed (no delivery pending or
/// being sent), and with them their deliveries and attempts. Returns how many went.
pub async fn prune(db: &DatabaseConnection, retention: chrono::Duration) -> Result<u64> {
    use sea_orm::sea_query::{Expr, ExprTrait, Query};
    let before = clock::now() - retention;
    let owed = Query::select()
        .column(webhook_delivery::Column::EventId)
        .from(webhook_delivery::Entity)
        .and_where(
            Expr::col(webhook_delivery::Column::State)
                .is_in([State::Pending.as_str(), State::Sending.as_str()]),
        )
        .to_owned();
    Ok(webhook_event::Entity::delete_many()
        .filter(webhook_event::Column::CreatedAt.lt(before))
        .filter(webhook_event::Column::Id.not_in_subquery(owed))
        .exec(db)
        .await?
        .rows_affected)
}

/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs [`dispatch`] every [`Settings::every`] until `shutdown` resolves; a failed or
/// panicking pass is logged and reported to `health`, and the next one runs as usual.
pub async fn run_dispatcher(
    db: DatabaseConnection,
    queue: Queue,
    settings: Settings,
    health: std::sync::Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use futures_util::FutureExt as _;
    const NAME: &str = "webhook dispatcher";
    health.running(NAME);
    tokio::pin!(shutdown);
    let mut interval = tokio::time::interval(settings.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                health.stopped(NAME);
                return;
            }
            _ = interval.tick() => {
                if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                    last_prune = Some(Instant::now());
                    match prune(&db, settings.retention).await {
                        Ok(n) if n > 0 => tracing::info!(events = n, "old webhook events pruned"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = ?e, "pruning old webhook events"),
                    }
                }
                let outcome = std::panic::AssertUnwindSafe(
                    dispatch(&db, &queue, &settings).instrument(tracing::info_span!("webhook_dispatch")),
                )
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(EngineError::internal("a webhook dispatch panicked")));
                match outcome {
                    Ok(n) => {
                        health.running(NAME);
                        if n > 0 {
                            tracing::debug!(queued = n, "webhook deliveries queued");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "webhook dispatch failed");
                        health.failed(NAME, health::describe(&e), settings.every);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // From the Standard Webhooks specification's test vectors.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_subject_never_spans_two_jobs() {
        let mut claimed = Vec::new();
        // Endpoint 1: subject A has 150 deliveries, B 100, C 1, interleaved; endpoint 2: one.
        for i in 0..150 {
            claimed.push((1, 1, i * 3, "A".to_string()));
            if i < 100 {
                claimed.push((1, 1, i * 3 + 1, "B".to_string()));
            }
        }
        claimed.push((1, 1, 1000, "C".to_string()));
        claimed.push((1, 2, 1001, "A".to_string()));
        let jobs = jobs(&claimed);
        let subject_of: HashMap<i64, (i64, &str)> = claimed
            .iter()
            .map(|(_, e, id, s)| (*id, (*e, s.as_str())))
            .collect();
        let mut seen: HashMap<(i64, &str), usize> = HashMap::new();
        for (n, ((_, endpoint), ids)) in jobs.iter().enumerate() {
            for id in ids {
                let (e, s) = subject_of[id];
                assert_eq!(e, *endpoint);
                let job = *seen.entry((e, s)).or_insert(n);
                assert_eq!(job, n, "subject {s} of endpoint {e} is in two jobs");
            }
            // Within a subject, ids stay in order.
            let a: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|i| subject_of[i].1 == "A")
                .collect();
            assert!(a.windows(2).all(|w| w[0] < w[1]));
        }
        assert_eq!(
            jobs.iter().map(|(_, ids)| ids.len()).sum::<usize>(),
            claimed.len()
        );
        assert!(jobs.iter().all(|(_, ids)| ids.len() <= JOB_SIZE
            || ids.iter().all(|i| subject_of[i].1 == subject_of[&ids[0]].1)));
    }

    #[test]
    fn retries_back_off_for_more_than_a_day() {
        let base = Duration::from_secs(5);
        let total: f64 = (1..MAX_ATTEMPTS)
            .map(|a| {
                base.saturating_mul(RETRY_STEPS[a as usize - 1])
                    .as_secs_f64()
            })
            .sum();
        assert!(total > 24.0 * 3600.0, "{total}");
        for a in 1..MAX_ATTEMPTS {
            let d = retry_delay(base, a).as_secs_f64();
            let nominal = base
                .saturating_mul(RETRY_STEPS[a as usize - 1])
                .as_secs_f64();
            assert!(d >= nominal * 0.8 && d <= nominal * 1.2);
        }
    }
}
