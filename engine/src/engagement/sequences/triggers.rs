//! What enrolls contacts besides a person: events, deals entering a stage, lifecycle
//! changes, scores entering a band and churn levels or RFM segments changing (each read
//! from its table past a per-workspace cursor, so every row enrolls at most once however
//! many processes scan), and segment membership and date attributes (evaluated on each
//! slow pass).
//!
//! A cursor moves in the same transaction as the enrollments its rows made, and only from
//! the value the scan read: two scanners racing cannot both enroll from the same rows.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use rapport_schema::{
    contact, deal, deal_stage_change, event, insight_change, lifecycle_change, plugin,
    plugin_score_history, score_history, segment, sequence, sequence_cursor, sequence_enrollment,
    sequence_version,
};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};

use super::definition::Trigger;
use super::{Sequence, enroll_in};
use crate::engagement::outbound::Context;
use crate::error::Result;
use crate::platform::records::{self, Deleted};
use crate::values::{InsightField, LifecycleStage, SequenceStatus};

/// Rows of one source read per pass.
const PAGE: u64 = 2000;

/// The tables triggers read, by cursor name.
const SOURCES: [&str; 6] = [
    "events",
    "deal_stage_changes",
    "lifecycle_changes",
    "score_history",
    "plugin_score_history",
    "insight_changes",
];

/// Whether trigger `t` reads table `source`.
fn reads(source: &str, t: &Trigger) -> bool {
    match (source, t) {
        ("events", Trigger::Event { .. })
        | ("deal_stage_changes", Trigger::DealStage { .. })
        | ("lifecycle_changes", Trigger::Lifecycle { .. })
        | ("insight_changes", Trigger::ChurnLevel { .. } | Trigger::RfmSegment { .. }) => true,
        ("score_history", Trigger::Score { model, .. }) => model.is_some(),
        ("plugin_score_history", Trigger::Score { plugin, .. }) => plugin.is_some(),
        _ => false,
    }
}

async fn max_id(db: &impl ConnectionTrait, ws: i64, source: &str) -> Result<i64> {
    let id: Option<Option<i64>> = match source {
        "score_history" => {
            score_history::Entity::find()
                .select_only()
                .column_as(score_history::Column::Id.max(), "m")
                .filter(score_history::Column::WorkspaceId.eq(ws))
                .into_tuple()
                .one(db)
                .await?
        }
        "plugin_score_history" => {
            plugin_score_history::Entity::find()
                .select_only()
                .column_as(plugin_score_history::Column::Id.max(), "m")
                .filter(plugin_score_history::Column::WorkspaceId.eq(ws))
                .into_tuple()
                .one(db)
                .await?
        }
        "insight_changes" => {
            insight_change::Entity::find()
                .select_only()
                .column_as(insight_change::Column::Id.max(), "m")
                .filter(insight_change::Column::WorkspaceId.eq(ws))
                .into_tuple()
                .one(db)
                .await?
        }
        "events" => {
            event::Entity::find()
                .select_only()
                .column_as(event::Column::Id.max(), "m")
                .filter(event::Column::WorkspaceId.eq(ws))
                .into_tuple()
                .one(db)
                .await?
        }
        "deal_stage_changes" => {
            deal_stage_change::Entity::find()
                .select_only()
                .column_as(deal_stage_change::Column::Id.max(), "m")
                .filter(deal_stage_change::Column::WorkspaceId.eq(ws))
                .into_tuple()
                .one(db)
                .await?
        }
        _ => {
            lifecycle_change::Entity::find()
                .select_only()
                .column_as(lifecycle_change::Column::Id.max(), "m")
                .filter(lifecycle_change::Column::WorkspaceId.eq(ws))
                .into_tuple()
                .one(db)
                .await?
        }
    };
    Ok(id.flatten().unwrap_or(0))
}

/// Creates the workspace's cursors at the sources' ends, where missing: a sequence
/// activated now reacts to what happens from now on.
pub async fn start_cursors(db: &impl ConnectionTrait, ws: i64) -> Result<()> {
    for source in SOURCES {
        let last = max_id(db, ws, source).await?;
        sequence_cursor::Entity::insert(sequence_cursor::ActiveModel {
            workspace_id: Set(ws),
            source: Set(source.into()),
            last_id: Set(last),
        })
        .on_conflict(
            OnConflict::columns([
                sequence_cursor::Column::WorkspaceId,
                sequence_cursor::Column::Source,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// Active sequences with triggers, by workspace.
async fn triggered(db: &DatabaseConnection) -> Result<HashMap<i64, Vec<Sequence>>> {
    let rows = sequence::Entity::find()
        .filter(sequence::Column::Status.eq(SequenceStatus::Active.as_str()))
        .all(db)
        .await?;
    let versions: HashMap<i64, sequence_version::Model> = sequence_version::Entity::find()
        .filter(
            sequence_version::Column::Id.is_in(rows.iter().filter_map(|s| s.current_version_id)),
        )
        .all(db)
        .await?
        .into_iter()
        .map(|v| (v.id, v))
        .collect();
    let mut out: HashMap<i64, Vec<Sequence>> = HashMap::new();
    for s in rows {
        let Some(v) = s.current_version_id.and_then(|v| versions.get(&v)) else {
            continue;
        };
        let Ok(definition) = super::stored_definition(v) else {
            continue;
        };
        if definition.triggers.is_empty() {
            continue;
        }
        out.entry(s.workspace_id).or_default().push(Sequence {
            sequence: s,
            version: v.clone(),
            definition,
        });
    }
    Ok(out)
}

/// One scan of every trigger source; the slow ones (segments, dates) too when `slow`.
pub async fn scan(ctx: &Context, now: DateTime<Utc>, slow: bool) -> Result<()> {
    let db = &ctx.db;
    for (ws, sequences) in triggered(db).await? {
        for source in SOURCES {
            let wanted = sequences
                .iter()
                .any(|s| s.definition.triggers.iter().any(|t| reads(source, t)));
            if wanted {
                scan_source(db, ws, source, &sequences, now).await?;
            }
        }
        if slow {
            for s in &sequences {
                for t in &s.definition.triggers {
                    match t {
                        Trigger::Segment { segment_id } => {
                            segment_members(ctx, s, *segment_id, t, now).await?
                        }
                        Trigger::DateAttribute {
                            attribute,
                            days_before,
                        } => dates_near(db, s, attribute, *days_before, t, now).await?,
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// (row id, contact, when, what) of rows past the cursor.
type SourceRow = (i64, i64, DateTime<Utc>, What);

/// What a source row says happened.
#[derive(Clone, Debug, PartialEq)]
enum What {
    /// An event's type, a deal's new stage, a new lifecycle stage.
    Text(String),
    /// A score replaced: by `lead_score`, `churn`, ... or `plugin:NAME`.
    Score {
        model: String,
        previous: Option<(f64, Option<String>)>,
        score: f64,
        grade: Option<String>,
    },
    /// A churn level or RFM segment changed.
    Insight {
        field: String,
        value: Option<String>,
    },
}

/// Models whose history rows are about contacts (a win probability's subject is a deal).
fn contact_model(kind: &str) -> bool {
    super::definition::SCORE_TRIGGER_MODELS
        .iter()
        .any(|k| k.as_str() == kind)
}

async fn rows_after(
    db: &impl ConnectionTrait,
    ws: i64,
    source: &str,
    after: i64,
) -> Result<Vec<SourceRow>> {
    Ok(match source {
        "score_history" => score_history::Entity::find()
            .filter(score_history::Column::WorkspaceId.eq(ws))
            .filter(score_history::Column::Id.gt(after))
            .order_by_asc(score_history::Column::Id)
            .limit(PAGE)
            .all(db)
            .await?
            .into_iter()
            .map(|h| {
                // Rows about deals move the cursor but name no contact.
                let contact = if contact_model(&h.kind) {
                    h.subject_id
                } else {
                    0
                };
                let what = What::Score {
                    model: h.kind,
                    previous: h.previous_score.map(|p| (p, h.previous_grade)),
                    score: h.score,
                    grade: h.grade,
                };
                (h.id, contact, h.computed_at, what)
            })
            .collect(),
        "plugin_score_history" => {
            let rows = plugin_score_history::Entity::find()
                .filter(plugin_score_history::Column::WorkspaceId.eq(ws))
                .filter(plugin_score_history::Column::Id.gt(after))
                .order_by_asc(plugin_score_history::Column::Id)
                .limit(PAGE)
                .all(db)
                .await?;
            let names: HashMap<i64, String> = plugin::Entity::find()
                .select_only()
                .column(plugin::Column::Id)
                .column(plugin::Column::Name)
                .filter(plugin::Column::WorkspaceId.eq(ws))
                .into_tuple::<(i64, String)>()
                .all(db)
                .await?
                .into_iter()
                .collect();
            rows.into_iter()
                .map(|h| {
                    let name = names.get(&h.plugin_id).cloned().unwrap_or_default();
                    let what = What::Score {
                        model: format!("plugin:{name}"),
                        previous: h.previous_score.map(|p| (p, None)),
                        score: h.score,
                        grade: None,
                    };
                    (h.id, h.contact_id, h.computed_at, what)
                })
                .collect()
        }
        "insight_changes" => insight_change::Entity::find()
            .filter(insight_change::Column::WorkspaceId.eq(ws))
            .filter(insight_change::Column::Id.gt(after))
            .order_by_asc(insight_change::Column::Id)
            .limit(PAGE)
            .all(db)
            .await?
            .into_iter()
            .map(|c| {
                let what = What::Insight {
                    field: c.field,
                    value: c.value,
                };
                (c.id, c.contact_id, c.changed_at, what)
            })
            .collect(),
        "events" => event::Entity::find()
            .filter(event::Column::WorkspaceId.eq(ws))
            .filter(event::Column::Id.gt(after))
            .order_by_asc(event::Column::Id)
            .limit(PAGE)
            .all(db)
            .await?
            .into_iter()
            .map(|e| (e.id, e.contact_id, e.occurred_at, What::Text(e.event_type)))
            .collect(),
        "deal_stage_changes" => {
            let moves = deal_stage_change::Entity::find()
                .filter(deal_stage_change::Column::WorkspaceId.eq(ws))
                .filter(deal_stage_change::Column::Id.gt(after))
                .order_by_asc(deal_stage_change::Column::Id)
                .limit(PAGE)
                .all(db)
                .await?;
            let owners: HashMap<i64, Option<i64>> = deal::Entity::find()
                .select_only()
                .column(deal::Column::Id)
                .column(deal::Column::ContactId)
                .filter(deal::Column::Id.is_in(moves.iter().map(|m| m.deal_id)))
                .into_tuple::<(i64, Option<i64>)>()
                .all(db)
                .await?
                .into_iter()
                .collect();
            moves
                .into_iter()
                .map(|m| {
                    let contact = owners.get(&m.deal_id).copied().flatten().unwrap_or(0);
                    (
                        m.id,
                        contact,
                        m.moved_at,
                        What::Text(m.to_stage_id.to_string()),
                    )
                })
                .collect()
        }
        _ => lifecycle_change::Entity::find()
            .filter(lifecycle_change::Column::WorkspaceId.eq(ws))
            .filter(lifecycle_change::Column::Id.gt(after))
            .order_by_asc(lifecycle_change::Column::Id)
            .limit(PAGE)
            .all(db)
            .await?
            .into_iter()
            .map(|c| (c.id, c.contact_id, c.changed_at, What::Text(c.to_stage)))
            .collect(),
    })
}

fn matches(source: &str, t: &Trigger, what: &What) -> bool {
    match (source, t, what) {
        ("events", Trigger::Event { event_type }, What::Text(what)) => event_type == what,
        ("deal_stage_changes", Trigger::DealStage { stage_id }, What::Text(what)) => {
            stage_id.to_string() == *what
        }
        ("lifecycle_changes", Trigger::Lifecycle { to }, What::Text(what)) => {
            LifecycleStage::from_db(to) == LifecycleStage::from_db(what)
        }
        ("score_history" | "plugin_score_history", Trigger::Score { .. }, What::Score { .. }) => {
            enters_band(t, what)
        }
        ("insight_changes", Trigger::ChurnLevel { to }, What::Insight { field, value }) => {
            field == InsightField::ChurnLevel.as_str()
                && value.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(to))
        }
        ("insight_changes", Trigger::RfmSegment { to }, What::Insight { field, value }) => {
            field == InsightField::RfmSegment.as_str()
                && value.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(to))
        }
        _ => false,
    }
}

/// Whether a replaced score is the score trigger's model's and entered its band: in it
/// now and not before (a first score was in no band).
fn enters_band(t: &Trigger, what: &What) -> bool {
    let (
        Trigger::Score {
            model,
            plugin,
            at_least,
            below,
            grade,
        },
        What::Score {
            model: scored_by,
            previous,
            score,
            grade: new_grade,
        },
    ) = (t, what)
    else {
        return false;
    };
    let named = match (model, plugin) {
        (Some(m), _) => m.eq_ignore_ascii_case(scored_by),
        (None, Some(p)) => scored_by.strip_prefix("plugin:") == Some(p.as_str()),
        (None, None) => false,
    };
    let in_band = |score: f64, g: Option<&str>| {
        at_least.is_none_or(|a| score >= a)
            && below.is_none_or(|b| score < b)
            && grade
                .as_deref()
                .is_none_or(|want| g.is_some_and(|g| g.eq_ignore_ascii_case(want)))
    };
    named
        && in_band(*score, new_grade.as_deref())
        && !previous
            .as_ref()
            .is_some_and(|(p, g)| in_band(*p, g.as_deref()))
}

async fn scan_source(
    db: &DatabaseConnection,
    ws: i64,
    source: &str,
    sequences: &[Sequence],
    now: DateTime<Utc>,
) -> Result<()> {
    let found = sequence_cursor::Entity::find_by_id((ws, source.to_string()))
        .one(db)
        .await?;
    let Some(cursor) = found.map(|c| c.last_id) else {
        // Activation creates the cursors; a sequence activated before they existed gets
        // them now, at the sources' ends.
        return start_cursors(db, ws).await;
    };
    let rows = rows_after(db, ws, source, cursor).await?;
    let Some(last) = rows.last().map(|r| r.0) else {
        return Ok(());
    };
    let live = live_contacts(db, ws, rows.iter().map(|r| r.1)).await?;
    let tx = crate::platform::db::write(db).await?;
    let moved = sequence_cursor::Entity::update_many()
        .col_expr(sequence_cursor::Column::LastId, Expr::value(last))
        .filter(sequence_cursor::Column::WorkspaceId.eq(ws))
        .filter(sequence_cursor::Column::Source.eq(source))
        .filter(sequence_cursor::Column::LastId.eq(cursor))
        .exec(&tx)
        .await?
        .rows_affected;
    if moved == 0 {
        // Another scanner took these rows.
        return Ok(());
    }
    for s in sequences {
        let activated = s.sequence.activated_at.unwrap_or(now);
        for t in &s.definition.triggers {
            let mut contacts = Vec::new();
            let mut seen = HashSet::new();
            for (_, contact, at, what) in &rows {
                if *at >= activated
                    && live.contains(contact)
                    && matches(source, t, what)
                    && seen.insert(*contact)
                {
                    contacts.push(*contact);
                }
            }
            if !contacts.is_empty() {
                let done = enroll_in(&tx, s, &contacts, &t.label(), now).await?;
                tracing::info!(
                    sequence = s.sequence.id,
                    trigger = t.label(),
                    enrolled = done.enrollments.len(),
                    "trigger enrolled contacts"
                );
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn live_contacts(
    db: &impl ConnectionTrait,
    ws: i64,
    ids: impl Iterator<Item = i64>,
) -> Result<HashSet<i64>> {
    let ids: HashSet<i64> = ids.collect();
    Ok(records::scoped::<contact::Entity>(ws, Deleted::Exclude)
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::Id.is_in(ids))
        .into_tuple::<i64>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// Contacts enrolled in `s` by trigger `label` at some time.
async fn enrolled_by(db: &impl ConnectionTrait, s: &Sequence, label: &str) -> Result<HashSet<i64>> {
    Ok(sequence_enrollment::Entity::find()
        .select_only()
        .column(sequence_enrollment::Column::ContactId)
        .filter(sequence_enrollment::Column::SequenceId.eq(s.sequence.id))
        .filter(sequence_enrollment::Column::Trigger.eq(label))
        .into_tuple::<i64>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// Members of the segment not yet enrolled by it.
async fn segment_members(
    ctx: &Context,
    s: &Sequence,
    segment_id: i64,
    t: &Trigger,
    now: DateTime<Utc>,
) -> Result<()> {
    let db = &ctx.db;
    let ws = s.sequence.workspace_id;
    let Some(seg) = segment::Entity::find_by_id(segment_id)
        .filter(segment::Column::WorkspaceId.eq(ws))
        .filter(segment::Column::DeletedAt.is_null())
        .one(db)
        .await?
    else {
        tracing::warn!(
            segment = segment_id,
            "a sequence trigger names a missing segment"
        );
        return Ok(());
    };
    let condition = crate::engagement::audiences::members(&seg, now)?;
    let members: Vec<i64> = records::scoped::<contact::Entity>(ws, Deleted::Exclude)
        .select_only()
        .column(contact::Column::Id)
        .filter(condition)
        .into_tuple()
        .all(db)
        .await?;
    let label = t.label();
    let done = enrolled_by(db, s, &label).await?;
    let fresh: Vec<i64> = members.into_iter().filter(|c| !done.contains(c)).collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let tx = crate::platform::db::write(db).await?;
    for chunk in fresh.chunks(super::ENROLL_LIMIT) {
        enroll_in(&tx, s, chunk, &label, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Contacts whose date attribute falls within `days_before` days from today, enrolled
/// once per date.
async fn dates_near(
    db: &DatabaseConnection,
    s: &Sequence,
    attribute: &str,
    days_before: u32,
    t: &Trigger,
    now: DateTime<Utc>,
) -> Result<()> {
    if !attribute
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Ok(());
    }
    let ws = s.sequence.workspace_id;
    let today = now.date_naive();
    let from = today.format("%Y-%m-%d").to_string();
    let to = (today + Duration::days(days_before as i64))
        .format("%Y-%m-%d")
        .to_string();
    let backend = db.get_database_backend();
    let (sql, path) = match backend {
        DbBackend::Postgres => (
            "SELECT id, attributes->>$2 AS d FROM contacts WHERE workspace_id = $1 AND deleted_at IS NULL \
             AND substr(attributes->>$2, 1, 10) BETWEEN $3 AND $4",
            attribute.to_string(),
        ),
        _ => (
            "SELECT id, json_extract(attributes, ?2) AS d FROM contacts WHERE workspace_id = ?1 AND deleted_at IS NULL \
             AND substr(json_extract(attributes, ?2), 1, 10) BETWEEN ?3 AND ?4",
            format!("$.{attribute}"),
        ),
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [ws.into(), path.into(), from.into(), to.into()],
        ))
        .await?;
    let mut by_date: HashMap<String, Vec<i64>> = HashMap::new();
    for r in rows {
        let id: i64 = r.try_get("", "id")?;
        let d: String = r.try_get("", "d")?;
        by_date
            .entry(d.chars().take(10).collect())
            .or_default()
            .push(id);
    }
    for (date, contacts) in by_date {
        let label = format!("{}:{date}", t.label());
        let done = enrolled_by(db, s, &label).await?;
        let fresh: Vec<i64> = contacts.into_iter().filter(|c| !done.contains(c)).collect();
        if fresh.is_empty() {
            continue;
        }
        let tx = crate::platform::db::write(db).await?;
        enroll_in(&tx, s, &fresh, &label, now).await?;
        tx.commit().await?;
    }
    Ok(())
}
