//! Shadow versions: a new version of a plugin that runs beside the active one — its
//! scores kept apart in `plugin_shadow_scores`, never shown on a contact, never written to
//! the score history that triggers and webhooks read, its actions never asked for — so it
//! can be measured ([`super::backtest`], and its live scores beside the active ones)
//! before anyone acts on it. Registering with `shadow` makes one; [`promote`] makes it
//! the active version, [`discard`] drops it.

use rapport_plugins::{Input, Limits};
use rapport_schema::{plugin, plugin_shadow_score, plugin_version};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set,
};

use super::call_records::{self, Export};
use super::registry::{self, by_name, record_event};
use super::runs::{Failure, Summary, batch_size, clean_json, rate_trips};
use super::{Host, blocking};
use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::values::Scope;

/// Scores `contacts` with the plugin's shadow version, if it has one, and keeps the
/// scores apart. A shadow failing counts against nothing live: its failures are reported
/// in the summary (and recorded as runs), and once most of a run's calls fail the rest
/// of that run is skipped.
pub(super) async fn run(
    db: &DatabaseConnection,
    host: &Host,
    p: &plugin::Model,
    contacts: &[i64],
    summary: &mut Summary,
) -> Result<()> {
    let Some(id) = p.shadow_version_id else {
        return Ok(());
    };
    let Some(v) = plugin_version::Entity::find_by_id(id).one(db).await? else {
        return Ok(());
    };
    let loaded = registry::loaded(db, host, &v).await?;
    let limits: Limits = serde_json::from_value(v.limits.clone()).unwrap_or_default();
    let config = v.config.to_string();
    let label = format!("{} (shadow version {})", p.name, v.version);
    let (mut made, mut failed) = (0u32, 0u32);
    for chunk in contacts.chunks(batch_size(v.input_cost)) {
        if rate_trips(made, failed) {
            tracing::warn!(plugin = %label, made, failed, "shadow version skipped for the rest of the run");
            break;
        }
        let now = clock::now();
        let data = host
            .inputs
            .fetch(p.workspace_id, &v.input_query, v.input_cost, chunk, now)
            .await?;
        let as_of = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let calls: Vec<Input> = chunk
            .iter()
            .zip(data)
            .filter_map(|(&id, d)| {
                d.ok().map(|data| Input {
                    contact_id: id.to_string(),
                    data,
                    config: config.clone(),
                    as_of: as_of.clone(),
                })
            })
            .collect();
        let (l, lim, capture) = (loaded.clone(), limits.clone(), host.capture.clone());
        let (results, captured) = blocking(move || {
            let mut captured = Vec::new();
            let results: Vec<_> = calls
                .iter()
                .map(|input| {
                    let a = l.attempt_score(input, &lim);
                    captured.extend(call_records::capture(&capture, Export::Score, input, &a));
                    (
                        input.contact_id.parse::<i64>().unwrap_or_default(),
                        a.into_call(),
                    )
                })
                .collect();
            (results, captured)
        })
        .await?;
        let mut scores = Vec::new();
        for (contact_id, result) in results {
            made += 1;
            match result {
                Ok(call) => scores.push((contact_id, call.value)),
                Err(rapport_plugins::Error::Refused { .. }) => {}
                Err(e) => {
                    failed += 1;
                    summary.failures.push(Failure {
                        plugin: label.clone(),
                        contact_id,
                        message: format!("plugin {label} {e}"),
                    });
                }
            }
        }
        store(db, p, &v, scores, captured, now).await?;
    }
    Ok(())
}

/// Stores one batch's shadow scores and run records, for the contacts still present.
async fn store(
    db: &DatabaseConnection,
    p: &plugin::Model,
    v: &plugin_version::Model,
    mut scores: Vec<(i64, rapport_plugins::Score)>,
    mut captured: Vec<call_records::Captured>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let txn = crate::platform::db::write(db).await?;
    // A version promoted or discarded while this batch ran keeps no shadow scores.
    let still = plugin::Entity::find_by_id(p.id)
        .one(&txn)
        .await?
        .is_some_and(|now| now.shadow_version_id == Some(v.id));
    if !still {
        scores.clear();
    }
    let mut ids: Vec<i64> = scores.iter().map(|(id, _)| *id).collect();
    ids.extend(captured.iter().map(|c| c.contact_id));
    // As for live scores: nothing is stored about a contact erased meanwhile.
    let here = crate::crm::contacts::lock_present(&txn, p.workspace_id, ids).await?;
    scores.retain(|(id, _)| here.contains(id));
    captured.retain(|c| here.contains(&c.contact_id));
    call_records::store(&txn, p, v.id, super::Subject::Contact, captured, now).await?;
    let rows: Vec<plugin_shadow_score::ActiveModel> = scores
        .into_iter()
        .map(|(contact_id, s)| plugin_shadow_score::ActiveModel {
            workspace_id: Set(p.workspace_id),
            plugin_id: Set(p.id),
            version_id: Set(v.id),
            contact_id: Set(contact_id),
            score: Set(s.score),
            reasons: Set(clean_json(
                serde_json::to_value(&s.reasons).expect("reasons serialise"),
            )),
            computed_at: Set(now),
            ..Default::default()
        })
        .collect();
    if !rows.is_empty() {
        plugin_shadow_score::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    plugin_shadow_score::Column::VersionId,
                    plugin_shadow_score::Column::ContactId,
                ])
                .update_columns([
                    plugin_shadow_score::Column::Score,
                    plugin_shadow_score::Column::Reasons,
                    plugin_shadow_score::Column::ComputedAt,
                ])
                .to_owned(),
            )
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Where a shadow version stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    /// The version.
    pub version: plugin_version::Model,
    /// Contacts it has scored.
    pub scored: u64,
    /// Its mean score over them; `None` before its first score.
    pub mean: Option<f64>,
    /// The live version's mean over the same contacts, for comparison.
    pub active_mean: Option<f64>,
    /// When it last scored.
    pub last_scored_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The plugin's shadow version and what it has scored so far; `None` without one.
pub async fn standing(db: &DatabaseConnection, p: &plugin::Model) -> Result<Option<Standing>> {
    let Some(id) = p.shadow_version_id else {
        return Ok(None);
    };
    let Some(version) = plugin_version::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let (scored, mean, last): (i64, Option<f64>, Option<chrono::DateTime<chrono::Utc>>) =
        plugin_shadow_score::Entity::find()
            .select_only()
            .column_as(plugin_shadow_score::Column::Id.count(), "n")
            .column_as(
                sea_orm::sea_query::Expr::col(plugin_shadow_score::Column::Score).avg(),
                "mean",
            )
            .column_as(plugin_shadow_score::Column::ComputedAt.max(), "last")
            .filter(plugin_shadow_score::Column::VersionId.eq(id))
            .into_tuple()
            .one(db)
            .await?
            .unwrap_or((0, None, None));
    let active_mean = active_mean_over_shadowed(db, p, id).await?;
    Ok(Some(Standing {
        version,
        scored: u64::try_from(scored).unwrap_or(0),
        mean,
        active_mean,
        last_scored_at: last,
    }))
}

/// The live scores' mean over the contacts the shadow version scored.
async fn active_mean_over_shadowed(
    db: &DatabaseConnection,
    p: &plugin::Model,
    shadow_id: i64,
) -> Result<Option<f64>> {
    use rapport_schema::plugin_score;
    use sea_orm::sea_query::Query;

    let shadowed = Query::select()
        .column(plugin_shadow_score::Column::ContactId)
        .from(plugin_shadow_score::Entity)
        .and_where(Expr::col(plugin_shadow_score::Column::VersionId).eq(Expr::val(shadow_id)))
        .to_owned();
    let mean: Option<Option<f64>> = plugin_score::Entity::find()
        .select_only()
        .column_as(Expr::col(plugin_score::Column::Score).avg(), "mean")
        .filter(plugin_score::Column::PluginId.eq(p.id))
        .filter(plugin_score::Column::ContactId.in_subquery(shadowed))
        .into_tuple()
        .one(db)
        .await?;
    Ok(mean.flatten())
}

/// Makes the shadow version the active one: from now on it is shown and acted on. Its
/// shadow scores go; the next run scores everyone with it.
pub async fn promote(
    db: &DatabaseConnection,
    who: &Principal,
    name: &str,
) -> Result<plugin::Model> {
    let p = leave_shadow(db, who, name, true).await?;
    super::registry::restart_hooks(db, &p).await;
    if let Err(e) = super::runs::enqueue(db, who.workspace_id, None).await {
        tracing::warn!(error = %e, "queueing plugin runs failed");
    }
    Ok(p)
}

/// Drops the shadow version (the version itself stays, for the record) and its scores.
pub async fn discard(
    db: &DatabaseConnection,
    who: &Principal,
    name: &str,
) -> Result<plugin::Model> {
    leave_shadow(db, who, name, false).await
}

/// Ends the plugin's shadow version — made active when `promote`, else dropped — with
/// its shadow scores and an event, in one transaction.
async fn leave_shadow(
    db: &DatabaseConnection,
    who: &Principal,
    name: &str,
    promote: bool,
) -> Result<plugin::Model> {
    who.require(Scope::Admin)?;
    let p = by_name(db, who.workspace_id, name).await?;
    let Some(shadow) = p.shadow_version_id else {
        let what = if promote { " to promote" } else { "" };
        return Err(EngineError::invalid(
            "name",
            format!("plugin {name} has no shadow version{what}"),
        ));
    };
    let txn = crate::platform::db::write(db).await?;
    let version = version_number(&txn, shadow).await?;
    let mut update = plugin::Entity::update_many()
        .col_expr(
            plugin::Column::ShadowVersionId,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(plugin::Column::UpdatedAt, Expr::value(clock::now()));
    if promote {
        update = update.col_expr(plugin::Column::ActiveVersionId, Expr::value(shadow));
    }
    // Only the shadow read above: one registered meanwhile is not ended unseen.
    let moved = update
        .filter(plugin::Column::Id.eq(p.id))
        .filter(plugin::Column::ShadowVersionId.eq(shadow))
        .exec(&txn)
        .await?
        .rows_affected;
    if moved == 0 {
        return Err(EngineError::Conflict(format!(
            "plugin {name}'s shadow version changed meanwhile; look again"
        )));
    }
    let p = by_name(&txn, p.workspace_id, name).await?;
    forget(&txn, shadow).await?;
    let (kind, message) = if promote {
        ("promoted", format!("version {version} is active"))
    } else {
        (
            "shadow_discarded",
            format!("shadow version {version} discarded"),
        )
    };
    record_event(&txn, &p, Some(shadow), kind, Some(message), who.key_id).await?;
    txn.commit().await?;
    Ok(p)
}

async fn version_number(db: &impl ConnectionTrait, id: i64) -> Result<i32> {
    Ok(plugin_version::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("PluginVersion", id))?
        .version)
}

/// Deletes a shadow version's scores.
pub(super) async fn forget(db: &impl ConnectionTrait, version_id: i64) -> Result<()> {
    plugin_shadow_score::Entity::delete_many()
        .filter(plugin_shadow_score::Column::VersionId.eq(version_id))
        .exec(db)
        .await?;
    Ok(())
}
