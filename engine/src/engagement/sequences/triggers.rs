//! What enrolls contacts besides a person: events, deals entering a stage, lifecycle
//! changes (each read from its table past a per-workspace cursor, so every row enrolls at
//! most once however many processes scan), and segment membership and date attributes
//! (evaluated on each slow pass).
//!
//! A cursor moves in the same transaction as the enrollments its rows made, and only from
//! the value the scan read: two scanners racing cannot both enroll from the same rows.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use rapport_schema::{
    contact, deal, deal_stage_change, event, lifecycle_change, segment, sequence, sequence_cursor,
    sequence_enrollment, sequence_version,
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
use crate::values::{LifecycleStage, SequenceStatus};

/// Rows of one source read per pass.
const PAGE: u64 = 2000;

/// The tables triggers read, by cursor name.
const SOURCES: [&str; 3] = ["events", "deal_stage_changes", "lifecycle_changes"];

async fn max_id(db: &impl ConnectionTrait, ws: i64, source: &str) -> Result<i64> {
    let id: Option<Option<i64>> = match source {
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
            let wanted = sequences.iter().any(|s| {
                s.definition.triggers.iter().any(|t| {
                    matches!(
                        (source, t),
                        ("events", Trigger::Event { .. })
                            | ("deal_stage_changes", Trigger::DealStage { .. })
                            | ("lifecycle_changes", Trigger::Lifecycle { .. })
                    )
                })
            });
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
type SourceRow = (i64, i64, DateTime<Utc>, String);

async fn rows_after(
    db: &impl ConnectionTrait,
    ws: i64,
    source: &str,
    after: i64,
) -> Result<Vec<SourceRow>> {
    Ok(match source {
        "events" => event::Entity::find()
            .filter(event::Column::WorkspaceId.eq(ws))
            .filter(event::Column::Id.gt(after))
            .order_by_asc(event::Column::Id)
            .limit(PAGE)
            .all(db)
            .await?
            .into_iter()
            .map(|e| (e.id, e.contact_id, e.occurred_at, e.event_type))
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
                    (m.id, contact, m.moved_at, m.to_stage_id.to_string())
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
            .map(|c| (c.id, c.contact_id, c.changed_at, c.to_stage))
            .collect(),
    })
}

fn matches(source: &str, t: &Trigger, what: &str) -> bool {
    match (source, t) {
        ("events", Trigger::Event { event_type }) => event_type == what,
        ("deal_stage_changes", Trigger::DealStage { stage_id }) => stage_id.to_string() == what,
        ("lifecycle_changes", Trigger::Lifecycle { to }) => {
            LifecycleStage::from_db(to) == LifecycleStage::from_db(what)
        }
        _ => false,
    }
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
