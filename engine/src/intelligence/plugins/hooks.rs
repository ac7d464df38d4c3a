//! Event hooks: a plugin version names event types (`page_view`, `demo_requested`), and
//! when one is tracked for a contact its next-best-actions export is called with the
//! contact's input and the event, and what it recommends is stored as any run's actions.
//!
//! A dispatcher beside the workers reads events past a per-workspace cursor (in
//! `sequence_cursors`, under `plugin_hooks`; the one that moves it takes the events, so
//! several processes never queue an event twice) and queues `PluginHooks` jobs for the
//! events a hook names. A hook's input `data` is the input query's result with `event`
//! beside it: `{"contact": {...}, "event": {"id", "type", "properties", "occurredAt"}}`.
//! Events can come from a website's public ingest key: their properties are the
//! visitor's to choose, and a job calls a plugin once per contact with the latest one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rapport_plugins::{Input, Limits};
use rapport_schema::{event, plugin, plugin_version, sequence_cursor};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use tracing::Instrument;

use super::call_records::{self, Export};
use super::{Host, blocking, registry, runs};
use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::health::{self, Health};
use crate::platform::queue::{Job, Queue};

/// The most event types one version hooks.
pub const MAX_HOOKS: usize = 20;
/// The cursor's name in `sequence_cursors`.
const SOURCE: &str = "plugin_hooks";
/// Events one pass takes per workspace.
const PAGE: u64 = 500;

/// Parses the event types a registration hooks: each as `trackEvent` would accept it,
/// at most [`MAX_HOOKS`], repeats dropped.
pub(super) fn parse(raw: &[String]) -> Result<Vec<String>> {
    if raw.len() > MAX_HOOKS {
        return Err(EngineError::invalid(
            "hooks",
            format!("at most {MAX_HOOKS} event types"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for t in raw {
        let t = crate::crm::events::check(t, &serde_json::Value::Null)
            .map_err(|e| EngineError::invalid("hooks", e.to_string()))?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The event types a version hooks.
pub fn types(v: &plugin_version::Model) -> Vec<String> {
    v.hooks
        .as_ref()
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .unwrap_or_default()
}

/// Enabled plugins whose active version hooks events, with the types, by workspace
/// (one workspace when `ws` is given).
async fn hooked(
    db: &DatabaseConnection,
    ws: Option<i64>,
) -> Result<HashMap<i64, Vec<(plugin::Model, plugin_version::Model, HashSet<String>)>>> {
    let mut plugins = plugin::Entity::find()
        .filter(plugin::Column::Enabled.eq(true))
        .filter(plugin::Column::ActiveVersionId.is_not_null());
    if let Some(ws) = ws {
        plugins = plugins.filter(plugin::Column::WorkspaceId.eq(ws));
    }
    let plugins = plugins.all(db).await?;
    let versions: HashMap<i64, plugin_version::Model> = plugin_version::Entity::find()
        .filter(
            plugin_version::Column::Id.is_in(plugins.iter().filter_map(|p| p.active_version_id)),
        )
        .filter(plugin_version::Column::Hooks.is_not_null())
        .all(db)
        .await?
        .into_iter()
        .map(|v| (v.id, v))
        .collect();
    let mut out: HashMap<i64, Vec<_>> = HashMap::new();
    for p in plugins {
        let Some(v) = p.active_version_id.and_then(|id| versions.get(&id)) else {
            continue;
        };
        let types: HashSet<String> = types(v).into_iter().collect();
        if !types.is_empty() && v.recommends {
            out.entry(p.workspace_id)
                .or_default()
                .push((p.clone(), v.clone(), types));
        }
    }
    Ok(out)
}

/// One pass: for each workspace with a hook, takes the events tracked since its cursor
/// and queues a `PluginHooks` job with those a hook names. Returns the events queued.
pub async fn dispatch(db: &DatabaseConnection, queue: &Queue) -> Result<usize> {
    let mut queued = 0;
    for (ws, hooks) in hooked(db, None).await? {
        let wanted: HashSet<&str> = hooks
            .iter()
            .flat_map(|(_, _, t)| t.iter().map(String::as_str))
            .collect();
        let cursor = sequence_cursor::Entity::find_by_id((ws, SOURCE.to_string()))
            .one(db)
            .await?;
        let Some(cursor) = cursor.map(|c| c.last_id) else {
            // A hook reacts to what is tracked from now on.
            start(db, ws).await?;
            continue;
        };
        let rows: Vec<(i64, String)> = event::Entity::find()
            .select_only()
            .column(event::Column::Id)
            .column(event::Column::EventType)
            .filter(event::Column::WorkspaceId.eq(ws))
            .filter(event::Column::Id.gt(cursor))
            .order_by_asc(event::Column::Id)
            .limit(PAGE)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = rows.last().map(|r| r.0) else {
            continue;
        };
        let events: Vec<i64> = rows
            .iter()
            .filter(|(_, t)| wanted.contains(t.as_str()))
            .map(|(id, _)| *id)
            .collect();
        if !move_cursor(db, ws, cursor, last).await? {
            // Another process took these events.
            continue;
        }
        if events.is_empty() {
            continue;
        }
        // Queued once the cursor's move committed (on SQLite a write transaction held
        // open would lock the queue out); if queueing fails, the cursor goes back so the
        // next pass takes the events again.
        let job = Job::PluginHooks {
            workspace_id: ws,
            event_ids: events.clone(),
        };
        if let Err(e) = queue.push(job, None).await {
            if !move_cursor(db, ws, last, cursor).await? {
                tracing::error!(
                    workspace_id = ws,
                    events = events.len(),
                    "hooked events lost"
                );
            }
            return Err(e);
        }
        queued += events.len();
    }
    Ok(queued)
}

/// Moves the workspace's cursor from `from` to `to`; false when it no longer stood at
/// `from` (another process moved it).
async fn move_cursor(db: &DatabaseConnection, ws: i64, from: i64, to: i64) -> Result<bool> {
    let moved = sequence_cursor::Entity::update_many()
        .col_expr(sequence_cursor::Column::LastId, Expr::value(to))
        .filter(sequence_cursor::Column::WorkspaceId.eq(ws))
        .filter(sequence_cursor::Column::Source.eq(SOURCE))
        .filter(sequence_cursor::Column::LastId.eq(from))
        .exec(db)
        .await?
        .rows_affected;
    Ok(moved > 0)
}

/// Puts the workspace's cursor at the last event when `plugin`'s now active version
/// hooks events and no other plugin does: it reacts to what is tracked from now on, not
/// to what piled up while nothing hooked. While another plugin hooks, the cursor is
/// current and stays (moving it would skip that plugin's pending events).
pub(super) async fn restart(db: &DatabaseConnection, ws: i64, plugin_id: i64) -> Result<()> {
    let hooks = hooked(db, Some(ws)).await?.remove(&ws).unwrap_or_default();
    let ours = hooks.iter().any(|(p, _, _)| p.id == plugin_id);
    let others = hooks.iter().any(|(p, _, _)| p.id != plugin_id);
    if !ours || others {
        return Ok(());
    }
    put_cursor(db, ws, true).await
}

async fn last_event(db: &DatabaseConnection, ws: i64) -> Result<i64> {
    let last: Option<i64> = event::Entity::find()
        .select_only()
        .column_as(event::Column::Id.max(), "m")
        .filter(event::Column::WorkspaceId.eq(ws))
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    Ok(last.unwrap_or(0))
}

/// Creates the workspace's cursor at the last event, where missing.
async fn start(db: &DatabaseConnection, ws: i64) -> Result<()> {
    put_cursor(db, ws, false).await
}

/// Puts the workspace's cursor at the last event: over one already there when
/// `overwrite`, else only where missing.
async fn put_cursor(db: &DatabaseConnection, ws: i64, overwrite: bool) -> Result<()> {
    let last = last_event(db, ws).await?;
    let mut conflict = OnConflict::columns([
        sequence_cursor::Column::WorkspaceId,
        sequence_cursor::Column::Source,
    ]);
    if overwrite {
        conflict.update_column(sequence_cursor::Column::LastId);
    } else {
        conflict.do_nothing();
    }
    sequence_cursor::Entity::insert(sequence_cursor::ActiveModel {
        workspace_id: Set(ws),
        source: Set(SOURCE.into()),
        last_id: Set(last),
    })
    .on_conflict(conflict)
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The `PluginHooks` job: calls each hooked plugin's next-best-actions for each event's
/// contact, in event order, and stores what they recommend. Returns the actions stored.
/// A call that fails is recorded as a run and skipped; the rest go on.
pub async fn call(
    db: &DatabaseConnection,
    host: &Host,
    workspace_id: i64,
    event_ids: &[i64],
) -> Result<usize> {
    let Some(hooks) = hooked(db, Some(workspace_id)).await?.remove(&workspace_id) else {
        return Ok(0);
    };
    let events = event::Entity::find()
        .filter(event::Column::WorkspaceId.eq(workspace_id))
        .filter(event::Column::Id.is_in(event_ids.iter().copied()))
        .order_by_asc(event::Column::Id)
        .all(db)
        .await?;
    // One call per plugin and contact per job, with the contact's latest event: a burst
    // of events (a visitor's page views through a public ingest key, say) costs one call.
    let mut latest: HashMap<(i64, i64), usize> = HashMap::new();
    for (at, e) in events.iter().enumerate() {
        for (p, _, types) in &hooks {
            if types.contains(&e.event_type) {
                latest.insert((p.id, e.contact_id), at);
            }
        }
    }
    let mut stored = 0;
    for (at, e) in events.iter().enumerate() {
        for (p, v, types) in &hooks {
            if !types.contains(&e.event_type) || latest.get(&(p.id, e.contact_id)) != Some(&at) {
                continue;
            }
            let span = tracing::info_span!("plugin hook", plugin = %p.name, event = e.id);
            stored += call_one(db, host, p, v, e).instrument(span).await?;
        }
    }
    Ok(stored)
}

async fn call_one(
    db: &DatabaseConnection,
    host: &Host,
    p: &plugin::Model,
    v: &plugin_version::Model,
    e: &event::Model,
) -> Result<usize> {
    let now = clock::now();
    let fetched = host
        .inputs
        .fetch(
            p.workspace_id,
            &v.input_query,
            v.input_cost,
            &[e.contact_id],
            now,
        )
        .await?;
    let data = match fetched.into_iter().next() {
        Some(Ok(data)) => data,
        Some(Err(message)) => {
            tracing::warn!(error = %message, "a hook's input query failed");
            return Ok(0);
        }
        None => return Ok(0),
    };
    let mut data: serde_json::Value =
        serde_json::from_str(&data).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(object) = data.as_object_mut() {
        object.insert(
            "event".into(),
            serde_json::json!({
                "id": e.id.to_string(),
                "type": e.event_type,
                "properties": e.properties,
                "occurredAt": e.occurred_at,
            }),
        );
    }
    let input = Input {
        contact_id: e.contact_id.to_string(),
        data: data.to_string(),
        config: v.config.to_string(),
        as_of: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let loaded = registry::loaded(db, host, v).await?;
    let limits: Limits = serde_json::from_value(v.limits.clone()).unwrap_or_default();
    let capture = host.capture.clone();
    let (result, captured) = blocking(move || {
        let attempt = loaded.attempt_next_best_actions(&input, &limits);
        let captured = call_records::capture(&capture, Export::NextBestActions, &input, &attempt);
        (attempt.into_call(), captured)
    })
    .await?;
    // What the call means to the breaker: a fault, an answer (which resets it), or a
    // refusal of the input, which is neither.
    let breaker = match &result {
        Ok(_) => Some(None),
        Err(rapport_plugins::Error::Refused { .. }) => None,
        Err(err) => {
            tracing::warn!(error = %err, "a plugin hook failed");
            Some(Some(format!("plugin {} {err}", p.name)))
        }
    };
    let stored = runs::store_hooked(
        db,
        p,
        v,
        e.contact_id,
        result,
        captured.into_iter().collect(),
    )
    .await?;
    if let Some(fault) = breaker {
        count_toward_breaker(db, p.id, v.id, fault).await?;
    }
    Ok(stored)
}

/// Counts one hook call toward the plugin's circuit breaker, as a run's calls count: a
/// fault adds one to the failures in a row — disabling the plugin at its threshold, with
/// the event and the `plugin.disabled` webhook — and an answer resets them. Read afresh:
/// a run may have moved the count since the job began.
async fn count_toward_breaker(
    db: &DatabaseConnection,
    plugin_id: i64,
    version_id: i64,
    fault: Option<String>,
) -> Result<()> {
    use sea_orm::ActiveModelTrait as _;
    let txn = crate::platform::db::write(db).await?;
    let Some(current) = plugin::Entity::find_by_id(plugin_id).one(&txn).await? else {
        return Ok(());
    };
    let failures = if fault.is_some() {
        current.consecutive_failures + 1
    } else {
        0
    };
    if !current.enabled || failures == current.consecutive_failures {
        return Ok(());
    }
    let threshold = current.failure_threshold;
    let mut am: plugin::ActiveModel = current.into();
    am.consecutive_failures = Set(failures);
    let trips = failures >= threshold;
    if trips {
        am.enabled = Set(false);
        am.disabled_reason = Set(Some(format!(
            "disabled after {threshold} failed calls in a row; last: {}",
            fault.as_deref().unwrap_or_default()
        )));
    }
    am.updated_at = Set(clock::now());
    let p = am.update(&txn).await?;
    if trips {
        let reason = p.disabled_reason.clone();
        registry::record_event(&txn, &p, Some(version_id), "auto_disabled", reason, None).await?;
        registry::tell_disabled(&txn, &p, "circuit_breaker").await?;
    }
    txn.commit().await?;
    if trips {
        tracing::warn!(plugin = %p.name, reason = ?p.disabled_reason, "plugin disabled by its circuit breaker after hook calls");
    }
    Ok(())
}

/// Runs [`dispatch`] every `every` until `shutdown`, reporting to `health`.
pub async fn run_dispatcher(
    db: DatabaseConnection,
    queue: Queue,
    every: Duration,
    health: std::sync::Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use futures_util::FutureExt as _;
    const NAME: &str = "plugin hook dispatcher";
    health.running(NAME);
    tokio::pin!(shutdown);
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                health.stopped(NAME);
                return;
            }
            _ = interval.tick() => {
                let outcome = std::panic::AssertUnwindSafe(
                    dispatch(&db, &queue).instrument(tracing::info_span!("plugin_hook_dispatch")),
                )
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(EngineError::internal("a plugin hook dispatch panicked")));
                match outcome {
                    Ok(n) => {
                        health.running(NAME);
                        if n > 0 {
                            tracing::debug!(events = n, "plugin hooks queued");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "plugin hook dispatch failed");
                        health.failed(NAME, health::describe(&e), every);
                    }
                }
            }
        }
    }
}
