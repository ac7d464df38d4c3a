//! Running every enabled plugin over contacts: input queries in batches, one sandboxed
//! call per contact and export, results stored with history, failures counted by the
//! circuit breaker.

use std::collections::HashMap;

use rapport_plugins::{Input, Limits};
use rapport_schema::{
    plugin, plugin_action, plugin_run, plugin_score, plugin_score_history, plugin_version,
};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use tracing::Instrument;

use super::call_records::{self, Export};
use super::registry::{self, record_event};
use super::{Host, Subject, blocking};
use crate::clock;
use crate::error::Result;
use crate::platform::metrics;

/// Complexity one batched input query may reach; with a query's own cost this gives the
/// batch size.
const BATCH_COST: i32 = 200_000;
/// The most contacts one input query fetches.
const MAX_BATCH: usize = 100;

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Plugins that ran.
    pub plugins: usize,
    /// Contacts looked at (per plugin).
    pub contacts: usize,
    /// Scores stored.
    pub scored: usize,
    /// Actions stored.
    pub actions: usize,
    /// Calls or inputs that failed.
    pub failures: Vec<Failure>,
    /// Plugins the circuit breaker disabled during the run.
    pub disabled: Vec<String>,
}

/// One failed call or input.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The plugin.
    pub plugin: String,
    /// The contact.
    pub contact_id: i64,
    /// What went wrong, naming the plugin and the limit or fault.
    pub message: String,
}

/// What one call produced for one contact.
struct Outcome {
    contact_id: i64,
    score: Option<
        std::result::Result<rapport_plugins::Call<rapport_plugins::Score>, rapport_plugins::Error>,
    >,
    actions: Option<
        std::result::Result<
            rapport_plugins::Call<Vec<rapport_plugins::Action>>,
            rapport_plugins::Error,
        >,
    >,
}

impl Outcome {
    /// The call's fault, if any; saying "unsupported" or "not for this input" is an
    /// answer, not a fault.
    fn fault(&self) -> Option<&rapport_plugins::Error> {
        let score = self.score.as_ref().and_then(|r| r.as_ref().err());
        let actions = self.actions.as_ref().and_then(|r| r.as_ref().err());
        [score, actions]
            .into_iter()
            .flatten()
            .find(|e| !matches!(e, rapport_plugins::Error::Refused { .. }))
    }

    /// Whether any export answered.
    fn answered(&self) -> bool {
        [
            self.score.as_ref().map(|r| r.is_ok()),
            self.actions.as_ref().map(|r| r.is_ok()),
        ]
        .into_iter()
        .flatten()
        .any(|ok| ok)
    }
}

/// Runs every enabled plugin of contacts in the workspace (or only `only`) over
/// `contacts`.
pub async fn run(
    db: &DatabaseConnection,
    host: &Host,
    workspace_id: i64,
    contacts: &[i64],
    only: Option<&str>,
) -> Result<Summary> {
    run_records(db, host, workspace_id, Subject::Contact, contacts, only).await
}

/// Runs every enabled plugin of `subject` in the workspace (or only `only`) over the
/// records `ids`. Plugins of contacts run their shadow versions too.
pub async fn run_records(
    db: &DatabaseConnection,
    host: &Host,
    workspace_id: i64,
    subject: Subject,
    ids: &[i64],
    only: Option<&str>,
) -> Result<Summary> {
    super::rules::ensure(db, workspace_id).await?;
    // Each record once: a batch stores one row per record and plugin.
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let ids = &unique[..];
    let mut summary = Summary::default();
    for p in registry::list(db, workspace_id).await? {
        if !p.enabled || only.is_some_and(|n| n != p.name) {
            continue;
        }
        // Only plugins of contacts have shadows (registration refuses the others).
        if p.shadow_version_id.is_some() && subject == Subject::Contact {
            let span = tracing::info_span!("plugin shadow", name = %p.name);
            match super::shadow::run(db, host, &p, ids, &mut summary)
                .instrument(span)
                .await
            {
                Ok(()) => {}
                Err(e @ crate::EngineError::Database(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(plugin = %p.name, error = ?e, "a shadow version's run failed");
                    summary.failures.push(Failure {
                        plugin: format!("{} (shadow)", p.name),
                        contact_id: 0,
                        message: e.to_string(),
                    });
                }
            }
        }
        let Some(version_id) = p.active_version_id else {
            continue;
        };
        let Some(v) = plugin_version::Entity::find_by_id(version_id)
            .one(db)
            .await?
        else {
            continue;
        };
        if super::subject_of(&v) != subject {
            continue;
        }
        summary.plugins += 1;
        summary.contacts += ids.len();
        let name = p.name.clone();
        let span = tracing::info_span!("plugin", name = %p.name, version = v.version, subject = subject.as_str());
        // One plugin failing (its output refused by the database, say) must not keep the
        // others from running: its error is reported and the next plugin runs. A database
        // that is away fails the whole run, so that the job is retried.
        match run_plugin(db, host, p, &v, subject, ids, &mut summary)
            .instrument(span)
            .await
        {
            Ok(()) => {}
            Err(e @ crate::EngineError::Database(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(plugin = %name, error = ?e, "a plugin's run failed");
                summary.failures.push(Failure {
                    plugin: name,
                    contact_id: 0,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(summary)
}

/// Contacts per input query for a query of this cost.
pub(super) fn batch_size(cost: i32) -> usize {
    (BATCH_COST / cost.max(1)).clamp(1, MAX_BATCH as i32) as usize
}

/// Calls of one run after which the breaker also looks at the failure rate.
const RATE_WINDOW: u32 = 20;

/// The share of failed calls in a run that opens the breaker (once [`RATE_WINDOW`] calls
/// were made): a plugin failing every other contact never fails many in a row.
const RATE_LIMIT: f64 = 0.5;

/// Text from a plugin, fit to store: NUL is the one character PostgreSQL cannot hold
/// (in text or in JSON), and a plugin must not be able to fail its whole batch with it.
pub(super) fn clean(text: &str) -> String {
    text.replace('\0', "")
}

/// [`clean`] for every string (and key) of a JSON value from a plugin.
pub(super) fn clean_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(clean(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(clean_json).collect()),
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (clean(&k), clean_json(v)))
                .collect(),
        ),
        other => other,
    }
}

async fn run_plugin(
    db: &DatabaseConnection,
    host: &Host,
    mut p: plugin::Model,
    v: &plugin_version::Model,
    subject: Subject,
    contacts: &[i64],
    summary: &mut Summary,
) -> Result<()> {
    let loaded = super::rules::Callee::of(db, host, v).await?;
    let limits: Limits = serde_json::from_value(v.limits.clone()).unwrap_or_default();
    let config = v.config.to_string();
    let batch = batch_size(v.input_cost);
    let mut failures = p.consecutive_failures;
    // This run's calls and failed calls, for the failure rate.
    let (mut run_calls, mut run_failed) = (0u32, 0u32);
    for chunk in contacts.chunks(batch) {
        let now = clock::now();
        let inputs = host
            .inputs
            .fetch(p.workspace_id, &v.input_query, v.input_cost, chunk, now)
            .await?;
        let as_of = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut calls = Vec::with_capacity(chunk.len());
        for (&contact_id, data) in chunk.iter().zip(inputs) {
            match data {
                Ok(data) => calls.push(Input {
                    contact_id: contact_id.to_string(),
                    data,
                    config: config.clone(),
                    as_of: as_of.clone(),
                }),
                // The input query failing is not the plugin's fault: reported, not counted.
                Err(message) => summary.failures.push(Failure {
                    plugin: p.name.clone(),
                    contact_id,
                    message: format!("input query: {message}"),
                }),
            }
        }
        let (l, lim, scores, recommends) = (loaded.clone(), limits.clone(), v.scores, v.recommends);
        let (start, threshold) = (failures, p.failure_threshold);
        let (start_calls, start_failed) = (run_calls, run_failed);
        let capture = host.capture.clone();
        // The breaker is checked between calls: once it opens, the rest of the batch is
        // not run at all. It opens on failures in a row, or on a failure rate.
        let (outcomes, after, calls_after, failed_after, captured) = blocking(move || {
            let (mut failures, mut made, mut failed) = (start, start_calls, start_failed);
            let mut outcomes = Vec::with_capacity(calls.len());
            let mut captured = Vec::new();
            for input in &calls {
                let score = scores.then(|| {
                    let a = l.attempt_score(input, &lim);
                    captured.extend(call_records::capture(&capture, Export::Score, input, &a));
                    a.into_call()
                });
                let actions = recommends.then(|| {
                    let a = l.attempt_next_best_actions(input, &lim);
                    let export = Export::NextBestActions;
                    captured.extend(call_records::capture(&capture, export, input, &a));
                    a.into_call()
                });
                let o = Outcome {
                    contact_id: input.contact_id.parse().unwrap_or_default(),
                    score,
                    actions,
                };
                made += 1;
                if o.fault().is_some() {
                    failures += 1;
                    failed += 1;
                } else if o.answered() {
                    failures = 0;
                }
                outcomes.push(o);
                if failures >= threshold || rate_trips(made, failed) {
                    break;
                }
            }
            (outcomes, failures, made, failed, captured)
        })
        .await?;
        failures = after;
        (run_calls, run_failed) = (calls_after, failed_after);
        for o in &outcomes {
            if let Some(err) = o.fault() {
                let message = format!("plugin {} {err}", p.name);
                tracing::warn!(contact_id = o.contact_id, error = %message, "plugin call failed");
                summary.failures.push(Failure {
                    plugin: p.name.clone(),
                    contact_id: o.contact_id,
                    message,
                });
            }
        }
        let last = || {
            summary
                .failures
                .last()
                .map(|f| f.message.clone())
                .unwrap_or_default()
        };
        let tripped = if failures >= p.failure_threshold {
            Some(format!(
                "disabled after {} failed calls in a row; last: {}",
                p.failure_threshold,
                last()
            ))
        } else if rate_trips(run_calls, run_failed) {
            Some(format!(
                "disabled after {run_failed} of {run_calls} calls failed; last: {}",
                last()
            ))
        } else {
            None
        };
        let (scored, actions) = if subject == Subject::Contact {
            store(db, &p, v, outcomes, captured).await?
        } else {
            count_calls(&outcomes);
            let scores = outcomes
                .into_iter()
                .filter_map(|o| match o.score {
                    Some(Ok(call)) => Some((o.contact_id, call)),
                    _ => None,
                })
                .collect();
            let stored = super::record_scores::store(db, &p, v, subject, scores, captured).await?;
            (stored, 0)
        };
        summary.scored += scored;
        summary.actions += actions;

        let mut am: plugin::ActiveModel = p.clone().into();
        am.consecutive_failures = Set(failures);
        if let Some(reason) = &tripped {
            am.enabled = Set(false);
            am.disabled_reason = Set(Some(reason.clone()));
        }
        am.updated_at = Set(clock::now());
        let txn = crate::platform::db::write(db).await?;
        p = am.update(&txn).await?;
        if tripped.is_some() {
            record_event(
                &txn,
                &p,
                Some(v.id),
                "auto_disabled",
                p.disabled_reason.clone(),
                None,
            )
            .await?;
            super::registry::tell_disabled(&txn, &p, "circuit_breaker").await?;
        }
        txn.commit().await?;
        if tripped.is_some() {
            tracing::warn!(reason = ?p.disabled_reason, "plugin disabled by its circuit breaker");
            summary.disabled.push(p.name.clone());
            break;
        }
    }
    Ok(())
}

/// Tells subscribers (`scoreChanged`) and webhooks (`score.changed`) about the plugin
/// scores of a batch that moved by a whole point or are new, with the old value.
async fn tell_changes(
    db: &impl sea_orm::ConnectionTrait,
    p: &plugin::Model,
    v: &plugin_version::Model,
    outcomes: &[Outcome],
    previous: &HashMap<i64, f64>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    use crate::platform::{live, outbox};
    use crate::values::WebhookEventType;
    let event = WebhookEventType::ScoreChanged;
    let endpoints = outbox::listeners(db, p.workspace_id, event).await?;
    let mut notices = Vec::new();
    for o in outcomes {
        let Some(Ok(call)) = &o.score else { continue };
        let old = previous.get(&o.contact_id).copied();
        let score = call.value.score;
        if !crate::intelligence::analytics::registry::score_moved(
            old.map(|s| (s, None)),
            score,
            None,
        ) {
            continue;
        }
        notices.push(live::Notice {
            workspace_id: p.workspace_id,
            topic: live::Topic::Score,
            scope_id: o.contact_id,
            object_id: o.contact_id,
        });
        if endpoints.is_empty() {
            continue;
        }
        let data = serde_json::json!({
            "object": {
                "__typename": "PluginScore",
                "plugin": p.name,
                "pluginId": p.id.to_string(),
                "versionId": v.id.to_string(),
                "subject": { "__typename": "Contact", "id": o.contact_id.to_string() },
                "score": score,
                "computedAt": now,
            },
            "previous": old.map(|s| serde_json::json!({ "score": s })),
        });
        let subject = outbox::Subject::contact(o.contact_id);
        outbox::emit_to(db, p.workspace_id, event, subject, data, &endpoints, now).await?;
    }
    live::publish_many(db, &notices).await?;
    Ok(())
}

/// Whether `failed` of `made` calls is a failure rate that opens the breaker.
pub(super) fn rate_trips(made: u32, failed: u32) -> bool {
    made >= RATE_WINDOW && f64::from(failed) >= RATE_LIMIT * f64::from(made)
}

/// Stores what a hook's call recommended for one contact (and its run record), replacing
/// the contact's open actions from this plugin, as a run's answer would.
pub(super) async fn store_hooked(
    db: &DatabaseConnection,
    p: &plugin::Model,
    v: &plugin_version::Model,
    contact_id: i64,
    actions: std::result::Result<
        rapport_plugins::Call<Vec<rapport_plugins::Action>>,
        rapport_plugins::Error,
    >,
    captured: Vec<call_records::Captured>,
) -> Result<usize> {
    let outcome = Outcome {
        contact_id,
        score: None,
        actions: Some(actions),
    };
    Ok(store(db, p, v, vec![outcome], captured).await?.1)
}

/// Counts a batch's calls and fuel in the metrics.
fn count_calls(outcomes: &[Outcome]) {
    for o in outcomes {
        for fuel in [
            o.score.as_ref().map(|r| r.as_ref().map(|c| c.fuel_used)),
            o.actions.as_ref().map(|r| r.as_ref().map(|c| c.fuel_used)),
        ]
        .into_iter()
        .flatten()
        {
            match fuel {
                Ok(fuel) => {
                    metrics::PLUGIN_CALLS.inc(&["ok"]);
                    metrics::PLUGIN_FUEL.add(&[], fuel as f64);
                }
                Err(_) => metrics::PLUGIN_CALLS.inc(&["error"]),
            }
        }
    }
}

/// Stores one batch's scores (current and history) and its run records, and replaces the
/// contacts' open actions from this plugin with the new ones, in one transaction.
async fn store(
    db: &DatabaseConnection,
    p: &plugin::Model,
    v: &plugin_version::Model,
    mut outcomes: Vec<Outcome>,
    mut captured: Vec<call_records::Captured>,
) -> Result<(usize, usize)> {
    let now = clock::now();
    let txn = crate::platform::db::write(db).await?;
    // Nothing is stored about a person erased while the batch ran: the contacts still
    // here are locked until this commits, so an erasure after this point waits for it
    // and then removes what it stored.
    let here = crate::crm::contacts::lock_present(
        &txn,
        p.workspace_id,
        outcomes.iter().map(|o| o.contact_id).collect(),
    )
    .await?;
    outcomes.retain(|o| here.contains(&o.contact_id));
    captured.retain(|c| here.contains(&c.contact_id));
    let outcomes = &outcomes[..];
    call_records::store(&txn, p, v.id, Subject::Contact, captured, now).await?;
    let mut scored = 0;
    let mut current = Vec::new();
    let mut history = Vec::new();
    // The scores these replace go into the history beside them: a crossing of a
    // threshold is then one row to read, for triggers and webhooks.
    let previous: HashMap<i64, f64> = plugin_score::Entity::find()
        .select_only()
        .column(plugin_score::Column::ContactId)
        .column(plugin_score::Column::Score)
        .filter(plugin_score::Column::PluginId.eq(p.id))
        .filter(
            plugin_score::Column::ContactId.is_in(
                outcomes
                    .iter()
                    .filter(|o| matches!(o.score, Some(Ok(_))))
                    .map(|o| o.contact_id),
            ),
        )
        .into_tuple::<(i64, f64)>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    count_calls(outcomes);
    for o in outcomes {
        if let Some(Ok(call)) = &o.score {
            current.push(plugin_score::ActiveModel {
                workspace_id: Set(p.workspace_id),
                plugin_id: Set(p.id),
                version_id: Set(v.id),
                contact_id: Set(o.contact_id),
                score: Set(call.value.score),
                reasons: Set(clean_json(
                    serde_json::to_value(&call.value.reasons).expect("reasons serialise"),
                )),
                fuel_used: Set(call.fuel_used.min(i64::MAX as u64) as i64),
                computed_at: Set(now),
                ..Default::default()
            });
            // History is of changes: the same score again adds no row.
            let before = previous.get(&o.contact_id).copied();
            if before.is_some_and(|b| (b - call.value.score).abs() <= 1e-9) {
                scored += 1;
                continue;
            }
            history.push(plugin_score_history::ActiveModel {
                workspace_id: Set(p.workspace_id),
                plugin_id: Set(p.id),
                version_id: Set(v.id),
                contact_id: Set(o.contact_id),
                score: Set(call.value.score),
                computed_at: Set(now),
                previous_score: Set(previous.get(&o.contact_id).copied()),
                ..Default::default()
            });
            scored += 1;
        }
    }
    if !current.is_empty() {
        plugin_score::Entity::insert_many(current)
            .on_conflict(
                OnConflict::columns([
                    plugin_score::Column::PluginId,
                    plugin_score::Column::ContactId,
                ])
                .update_columns([
                    plugin_score::Column::VersionId,
                    plugin_score::Column::Score,
                    plugin_score::Column::Reasons,
                    plugin_score::Column::FuelUsed,
                    plugin_score::Column::ComputedAt,
                ])
                .to_owned(),
            )
            .exec(&txn)
            .await?;
        if !history.is_empty() {
            plugin_score_history::Entity::insert_many(history)
                .exec(&txn)
                .await?;
        }
        tell_changes(&txn, p, v, outcomes, &previous, now).await?;
    }

    let answered: Vec<i64> = outcomes
        .iter()
        .filter(|o| matches!(o.actions, Some(Ok(_))))
        .map(|o| o.contact_id)
        .collect();
    let mut stored_actions = 0;
    if !answered.is_empty() {
        plugin_action::Entity::update_many()
            .col_expr(plugin_action::Column::Status, Expr::value("superseded"))
            .filter(plugin_action::Column::PluginId.eq(p.id))
            .filter(plugin_action::Column::Status.eq("open"))
            .filter(plugin_action::Column::ContactId.is_in(answered))
            .exec(&txn)
            .await?;
        let mut rows = Vec::new();
        for o in outcomes {
            let Some(Ok(call)) = &o.actions else { continue };
            for a in &call.value {
                rows.push(plugin_action::ActiveModel {
                    workspace_id: Set(p.workspace_id),
                    plugin_id: Set(p.id),
                    version_id: Set(v.id),
                    contact_id: Set(o.contact_id),
                    kind: Set(a.kind.as_str().to_string()),
                    params: Set(clean_json(
                        serde_json::to_value(&a.params).expect("params serialise"),
                    )),
                    priority: Set(a.priority as i32),
                    rationale: Set(clean(&a.rationale)),
                    status: Set("open".into()),
                    computed_at: Set(now),
                    responded_at: Set(None),
                    responded_by: Set(None),
                    note: Set(None),
                    outcome: Set(None),
                    ..Default::default()
                });
            }
        }
        stored_actions = rows.len();
        for chunk in rows.chunks(500) {
            plugin_action::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await?;
        }
    }
    txn.commit().await?;
    Ok((scored, stored_actions))
}

/// Contacts one `RunPlugins` job takes.
pub const JOB_BATCH: usize = 500;

/// Queues `RunPlugins` jobs over `contacts` (every live contact of the workspace when
/// `None`), in batches, if the workspace has an enabled plugin. Returns the jobs queued.
/// Deals and companies are queued by [`super::record_scores::enqueue`].
pub async fn enqueue(
    db: &DatabaseConnection,
    workspace_id: i64,
    contacts: Option<&[i64]>,
) -> Result<usize> {
    // Every workspace has the built-in rules, created on their first run.
    super::rules::ensure(db, workspace_id).await?;
    let any_enabled = registry::list(db, workspace_id)
        .await?
        .iter()
        .any(|p| p.enabled && (p.active_version_id.is_some() || p.shadow_version_id.is_some()));
    if !any_enabled {
        return Ok(0);
    }
    let all;
    let contacts = match contacts {
        Some(c) => c,
        None => {
            all = crate::platform::records::scoped::<rapport_schema::contact::Entity>(
                workspace_id,
                crate::platform::records::Deleted::Exclude,
            )
            .select_only()
            .column(rapport_schema::contact::Column::Id)
            .order_by_asc(rapport_schema::contact::Column::Id)
            .into_tuple::<i64>()
            .all(db)
            .await?;
            &all
        }
    };
    let queue = crate::platform::queue::Queue::new(db)?;
    let mut queued = 0;
    for chunk in contacts.chunks(JOB_BATCH) {
        queue
            .push(
                crate::platform::queue::Job::RunPlugins {
                    workspace_id,
                    contact_ids: chunk.to_vec(),
                },
                None,
            )
            .await?;
        queued += 1;
    }
    Ok(queued)
}

/// What plugins said about `from`, on merging it into `to`: answered actions and score
/// history move to the survivor (they are its record now); open actions are superseded
/// and current scores dropped, since they judged data that has changed — the survivor is
/// scored again by the next run.
pub async fn merge_contacts(db: &impl sea_orm::ConnectionTrait, from: i64, to: i64) -> Result<()> {
    plugin_action::Entity::update_many()
        .col_expr(plugin_action::Column::Status, Expr::value("superseded"))
        .filter(plugin_action::Column::ContactId.eq(from))
        .filter(plugin_action::Column::Status.eq("open"))
        .exec(db)
        .await?;
    plugin_action::Entity::update_many()
        .col_expr(plugin_action::Column::ContactId, Expr::value(to))
        .filter(plugin_action::Column::ContactId.eq(from))
        .filter(plugin_action::Column::Status.is_in(["accepted", "rejected"]))
        .exec(db)
        .await?;
    plugin_score_history::Entity::update_many()
        .col_expr(plugin_score_history::Column::ContactId, Expr::value(to))
        .filter(plugin_score_history::Column::ContactId.eq(from))
        .exec(db)
        .await?;
    plugin_score::Entity::delete_many()
        .filter(plugin_score::Column::ContactId.eq(from))
        .exec(db)
        .await?;
    plugin_run::Entity::update_many()
        .col_expr(plugin_run::Column::ContactId, Expr::value(to))
        .filter(plugin_run::Column::ContactId.eq(from))
        .exec(db)
        .await?;
    Ok(())
}

/// Erases everything plugins said about contacts, and the inputs recorded of them (their
/// right to erasure).
pub async fn erase_contacts(db: &impl sea_orm::ConnectionTrait, contacts: &[i64]) -> Result<()> {
    let ids = || contacts.iter().copied();
    // Their deals stay (unlinked), but what plugins of deals were given and said about
    // them held the person's data: those runs and scores go (the next run scores the
    // deals again, without the person).
    let deals: Vec<(i64, i64)> = rapport_schema::deal::Entity::find()
        .select_only()
        .column(rapport_schema::deal::Column::WorkspaceId)
        .column(rapport_schema::deal::Column::Id)
        .filter(rapport_schema::deal::Column::ContactId.is_in(ids()))
        .into_tuple()
        .all(db)
        .await?;
    for (workspace_id, deal) in deals {
        super::record_scores::forget(db, workspace_id, Subject::Deal, &[deal]).await?;
    }
    plugin_score::Entity::delete_many()
        .filter(plugin_score::Column::ContactId.is_in(ids()))
        .exec(db)
        .await?;
    plugin_score_history::Entity::delete_many()
        .filter(plugin_score_history::Column::ContactId.is_in(ids()))
        .exec(db)
        .await?;
    plugin_action::Entity::delete_many()
        .filter(plugin_action::Column::ContactId.is_in(ids()))
        .exec(db)
        .await?;
    plugin_run::Entity::delete_many()
        .filter(plugin_run::Column::ContactId.is_in(ids()))
        .exec(db)
        .await?;
    rapport_schema::plugin_shadow_score::Entity::delete_many()
        .filter(rapport_schema::plugin_shadow_score::Column::ContactId.is_in(ids()))
        .exec(db)
        .await?;
    Ok(())
}

/// Current plugin scores of contacts, by contact.
pub async fn scores_for(
    db: &DatabaseConnection,
    workspace_id: i64,
    contacts: &[i64],
) -> Result<HashMap<i64, Vec<plugin_score::Model>>> {
    let mut by_contact: HashMap<i64, Vec<plugin_score::Model>> = HashMap::new();
    for s in plugin_score::Entity::find()
        .filter(plugin_score::Column::WorkspaceId.eq(workspace_id))
        .filter(plugin_score::Column::ContactId.is_in(contacts.iter().copied()))
        .all(db)
        .await?
    {
        by_contact.entry(s.contact_id).or_default().push(s);
    }
    Ok(by_contact)
}

#[cfg(test)]
mod safety_tests {
    use super::*;

    #[test]
    fn nul_is_taken_out_of_everything_a_plugin_says() {
        let dirty = serde_json::json!({"a\u{0}": ["x\u{0}y", {"k": "\u{0}"}], "n": 1});
        assert_eq!(
            clean_json(dirty),
            serde_json::json!({"a": ["xy", {"k": ""}], "n": 1})
        );
        assert_eq!(clean("why\u{0}not"), "whynot");
    }

    #[test]
    fn the_breaker_opens_on_a_failure_rate_once_the_window_is_full() {
        // Every other call failing: never many in a row, but half of them.
        assert!(!rate_trips(19, 10));
        assert!(rate_trips(20, 10));
        assert!(!rate_trips(100, 49));
        assert!(rate_trips(100, 50));
    }
}
