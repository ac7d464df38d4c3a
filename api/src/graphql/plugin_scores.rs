//! Scores on the graph: a contact's (built-in models' and plugins') and a deal's or
//! company's (plugins of deals and companies), read through the plugin loader; and a
//! plugin's scores of one contact over time.

use async_graphql::{Context, Enum, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::intelligence::plugins::Subject;
use rapport_schema as s;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::error::{OrGraphql, to_graphql};
use crate::graphql::intelligence;
use crate::graphql::plugins::{PluginKey, PluginRow, plugin_of, row, version_of};

/// Where a score came from.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScoreSource {
    /// One of Rapport's own models.
    BuiltIn,
    /// A WebAssembly plugin.
    Plugin,
}

/// One factor of a score.
#[derive(SimpleObject, Clone)]
pub struct Factor {
    pub feature: String,
    /// Built-in models: log-odds relative to an average row; plugins: points.
    pub contribution: f64,
    pub note: Option<String>,
}

/// A score of a contact, from a built-in model or a plugin.
#[derive(SimpleObject)]
pub struct ContactScore {
    pub source: ScoreSource,
    /// The model kind (`lead_score`, `churn`) or the plugin's name.
    pub name: String,
    /// The model version or plugin version that gave it.
    pub version: i32,
    /// 0–100.
    pub score: f64,
    pub grade: Option<String>,
    pub reasons: Vec<Factor>,
    pub computed_at: DateTime<Utc>,
}

/// Every current score of a contact: built-in models first, then plugins by name.
pub async fn contact_scores(ctx: &Context<'_>, contact_id: i64) -> Result<Vec<ContactScore>> {
    let mut out = Vec::new();
    for kind in [
        rapport_engine::values::ModelKind::LeadScore,
        rapport_engine::values::ModelKind::Churn,
    ] {
        if let Some(score) = intelligence::current(ctx, kind, contact_id).await? {
            let version = intelligence::version_number(ctx, score.0.model_version_id).await?;
            out.push(ContactScore {
                source: ScoreSource::BuiltIn,
                name: kind.as_str().to_string(),
                version,
                score: score.0.score,
                grade: score.0.grade.clone(),
                reasons: intelligence::reason_list(&score.0.reasons)
                    .into_iter()
                    .map(|r| Factor {
                        feature: r.feature,
                        contribution: r.contribution,
                        note: None,
                    })
                    .collect(),
                computed_at: score.0.computed_at,
            });
        }
    }
    let Some(PluginRow::Scores(scores)) = row(ctx, PluginKey::Scores(contact_id)).await? else {
        return Ok(out);
    };
    let mut from_plugins = Vec::new();
    for sc in scores {
        let (name, version) = source_of(ctx, sc.plugin_id, sc.version_id).await?;
        from_plugins.push(ContactScore {
            source: ScoreSource::Plugin,
            name,
            version,
            score: sc.score,
            grade: None,
            reasons: plugin_factors(&sc.reasons),
            computed_at: sc.computed_at,
        });
    }
    from_plugins.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(from_plugins);
    Ok(out)
}

/// A plugin's score of a deal or company.
#[derive(SimpleObject)]
pub struct RecordScore {
    /// The plugin's name.
    pub plugin: String,
    /// The plugin version that gave it.
    pub version: i32,
    /// 0–100.
    pub score: f64,
    pub reasons: Vec<Factor>,
    pub computed_at: DateTime<Utc>,
}

/// The current plugin scores of a deal or company, by plugin name.
pub async fn record_scores(
    ctx: &Context<'_>,
    subject: Subject,
    id: i64,
) -> Result<Vec<RecordScore>> {
    let Some(PluginRow::RecordScores(scores)) =
        row(ctx, PluginKey::RecordScores(subject, id)).await?
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(scores.len());
    for sc in scores {
        let (plugin, version) = source_of(ctx, sc.plugin_id, sc.version_id).await?;
        out.push(RecordScore {
            plugin,
            version,
            score: sc.score,
            reasons: plugin_factors(&sc.reasons),
            computed_at: sc.computed_at,
        });
    }
    out.sort_by(|a, b| a.plugin.cmp(&b.plugin));
    Ok(out)
}

/// The name of the plugin and the number of the version that gave a score.
async fn source_of(ctx: &Context<'_>, plugin_id: i64, version_id: i64) -> Result<(String, i32)> {
    let name = plugin_of(ctx, plugin_id)
        .await?
        .map(|p| p.name)
        .unwrap_or_default();
    let version = version_of(ctx, version_id).await?.map_or(0, |v| v.version);
    Ok((name, version))
}

/// A plugin's stored reasons as factors.
fn plugin_factors(reasons: &serde_json::Value) -> Vec<Factor> {
    let reasons: Vec<rapport_engine::intelligence::plugins::Reason> =
        serde_json::from_value(reasons.clone()).unwrap_or_default();
    reasons
        .into_iter()
        .map(|r| Factor {
            feature: r.feature,
            contribution: r.contribution,
            note: Some(r.note),
        })
        .collect()
}

/// A point of a plugin's score history.
#[derive(SimpleObject)]
pub struct ScorePoint {
    pub score: f64,
    pub version: i32,
    pub computed_at: DateTime<Utc>,
}

/// A plugin's scores of one contact over time, oldest first.
pub async fn score_history(
    ctx: &Context<'_>,
    contact_id: i64,
    plugin: &str,
) -> Result<Vec<ScorePoint>> {
    let ws = crate::graphql::context::principal(ctx)?.workspace_id;
    let db = ctx.data_unchecked::<sea_orm::DatabaseConnection>();
    let p = rapport_engine::intelligence::plugins::registry::by_name(db, ws, plugin)
        .await
        .gql()?;
    let rows = s::plugin_score_history::Entity::find()
        .filter(s::plugin_score_history::Column::WorkspaceId.eq(ws))
        .filter(s::plugin_score_history::Column::PluginId.eq(p.id))
        .filter(s::plugin_score_history::Column::ContactId.eq(contact_id))
        .order_by_asc(s::plugin_score_history::Column::ComputedAt)
        .order_by_asc(s::plugin_score_history::Column::Id)
        .all(db)
        .await
        .map_err(|e| to_graphql(e.into()))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let version = version_of(ctx, r.version_id)
            .await?
            .map_or(0, |v| v.version);
        out.push(ScorePoint {
            score: r.score,
            version,
            computed_at: r.computed_at,
        });
    }
    Ok(out)
}
