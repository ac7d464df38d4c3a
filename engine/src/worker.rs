//! The one place that knows what every kind of job does: campaigns' launches, sends and
//! A/B decisions, sequence steps, transactional email, plugin runs, model training, webhook deliveries, CSV imports. The queue ([`crate::platform::queue`])
//! stores and retries jobs without knowing any feature; a process that works them builds
//! a [`Worker`] and hands it to [`work`].

use std::sync::Arc;

use crate::engagement::outbound::Context;
use crate::engagement::{campaigns, sequences, transactional};
use crate::error::{EngineError, Result};
use crate::integrations::{imports, webhooks};
use crate::intelligence::analytics::trainings;
use crate::intelligence::plugins;
use crate::platform::health::Health;
use crate::platform::queue::{self, Handler, Job, WorkerOptions};

/// What a job worker needs: engagement's context and, for plugin runs, the plugin host.
#[derive(Clone)]
pub struct Worker {
    /// The database, queue, mail transport and clock campaigns and sequences use.
    pub engagement: Context,
    /// The plugin host, for `RunPlugins` (none: such jobs fail and are retried elsewhere).
    pub plugins: Option<plugins::Host>,
    /// What sends webhook deliveries.
    pub webhooks: webhooks::delivery::Sender,
}

impl Handler for Worker {
    async fn handle(&self, job: &Job) -> Result<()> {
        let ctx = &self.engagement;
        match job {
            Job::LaunchCampaign {
                workspace_id,
                campaign_id,
            } => campaigns::launch(ctx, *workspace_id, *campaign_id).await,
            Job::SendBatch {
                workspace_id,
                campaign_id,
                message_ids,
            } => campaigns::send_batch(ctx, *workspace_id, *campaign_id, message_ids).await,
            Job::PickWinner {
                workspace_id,
                campaign_id,
            } => campaigns::pick_winner(ctx, *workspace_id, *campaign_id).await,
            Job::ResumeWhenReachable {
                workspace_id,
                campaign_id,
                attempt,
            } => campaigns::resume_when_reachable(ctx, *workspace_id, *campaign_id, *attempt).await,
            Job::PluginHooks {
                workspace_id,
                event_ids,
            } => {
                let Some(host) = &self.plugins else {
                    return Err(EngineError::internal("this worker has no plugin host"));
                };
                let actions = plugins::hooks::call(&ctx.db, host, *workspace_id, event_ids).await?;
                tracing::info!(events = event_ids.len(), actions, "plugin hooks called");
                Ok(())
            }
            Job::RunPlugins {
                workspace_id,
                contact_ids,
            } => {
                let Some(host) = &self.plugins else {
                    return Err(EngineError::internal("this worker has no plugin host"));
                };
                let summary =
                    plugins::runs::run(&ctx.db, host, *workspace_id, contact_ids, None).await?;
                tracing::info!(
                    scored = summary.scored,
                    actions = summary.actions,
                    failures = summary.failures.len(),
                    "plugins ran"
                );
                Ok(())
            }
            Job::ScorePluginRecords {
                workspace_id,
                subject,
                record_ids,
            } => {
                let Some(host) = &self.plugins else {
                    return Err(EngineError::internal("this worker has no plugin host"));
                };
                let summary = plugins::runs::run_records(
                    &ctx.db,
                    host,
                    *workspace_id,
                    *subject,
                    record_ids,
                    None,
                )
                .await?;
                tracing::info!(
                    subject = subject.as_str(),
                    scored = summary.scored,
                    failures = summary.failures.len(),
                    "plugins of records ran"
                );
                Ok(())
            }
            Job::AdvanceEnrollments {
                workspace_id,
                enrollment_ids,
                claimed_at,
            } => {
                let done =
                    sequences::runner::advance(ctx, *workspace_id, enrollment_ids, *claimed_at)
                        .await?;
                tracing::info!(
                    steps = done.steps,
                    emails = done.emails,
                    finished = done.finished,
                    "sequence steps ran"
                );
                Ok(())
            }
            Job::SendTransactional {
                workspace_id,
                message_id,
            } => transactional::deliver(ctx, *workspace_id, *message_id).await,
            Job::TrainModel {
                workspace_id,
                training_id,
            } => trainings::run(&ctx.db, *workspace_id, *training_id).await,
            Job::ImportCsv {
                workspace_id,
                import_id,
            } => imports::run(&ctx.db, *workspace_id, *import_id).await,
            Job::DeliverWebhooks {
                workspace_id,
                endpoint_id,
                delivery_ids,
                claimed_at,
            } => {
                webhooks::delivery::deliver(
                    &ctx.db,
                    &self.webhooks,
                    *workspace_id,
                    *endpoint_id,
                    delivery_ids,
                    *claimed_at,
                )
                .await
            }
        }
    }
}

/// Runs job workers on the engagement context's queue until `shutdown` resolves (see
/// [`queue::work`] for supervision and shutdown).
pub async fn work(
    worker: Worker,
    options: WorkerOptions,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let queue = worker.engagement.queue.clone();
    queue::work(queue, worker, options, health, shutdown).await
}
