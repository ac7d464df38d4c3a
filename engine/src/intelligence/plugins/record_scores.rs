//! Plugins of deals and companies: their scores (a deal's risk, an account's fit), kept
//! apart from contacts' because they are not one person's data, and the queueing of
//! their runs. Running them is [`super::runs::run_records`]; they are asked only for
//! scores, never actions, hooks or shadow runs (those are about contacts).

use std::collections::HashMap;

use rapport_plugins::{Call, Score};
use rapport_schema::{company, deal, plugin, plugin_record_score, plugin_version};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::call_records::{self, Captured};
use super::{Subject, registry};
use crate::clock;
use crate::error::Result;
use crate::platform::records::{Deleted, scoped};

/// Stores one batch's scores of deals or companies (replacing each record's score from
/// this plugin) and its run records, in one transaction. Scores of records deleted while
/// the batch ran are not stored. Returns the scores stored.
pub(super) async fn store(
    db: &DatabaseConnection,
    p: &plugin::Model,
    v: &plugin_version::Model,
    subject: Subject,
    scores: Vec<(i64, Call<Score>)>,
    captured: Vec<Captured>,
) -> Result<usize> {
    let now = clock::now();
    let txn = crate::platform::db::write(db).await?;
    let mut ids: Vec<i64> = scores.iter().map(|(id, _)| *id).collect();
    ids.extend(captured.iter().map(|c| c.contact_id));
    let live: std::collections::HashSet<i64> = live_among(&txn, p.workspace_id, subject, &ids)
        .await?
        .into_iter()
        .collect();
    // Nothing is kept of a record deleted while the batch ran, its run records included.
    let captured = captured
        .into_iter()
        .filter(|c| live.contains(&c.contact_id))
        .collect();
    call_records::store(&txn, p, v.id, subject, captured, now).await?;
    let rows: Vec<plugin_record_score::ActiveModel> = scores
        .into_iter()
        .filter(|(id, _)| live.contains(id))
        .map(|(id, call)| plugin_record_score::ActiveModel {
            workspace_id: Set(p.workspace_id),
            plugin_id: Set(p.id),
            version_id: Set(v.id),
            subject: Set(subject.as_str().to_string()),
            record_id: Set(id),
            score: Set(call.value.score),
            reasons: Set(super::runs::clean_json(
                serde_json::to_value(&call.value.reasons).expect("reasons serialise"),
            )),
            fuel_used: Set(call.fuel_used.min(i64::MAX as u64) as i64),
            computed_at: Set(now),
            ..Default::default()
        })
        .collect();
    let stored = rows.len();
    for chunk in rows.chunks(500) {
        plugin_record_score::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    plugin_record_score::Column::PluginId,
                    plugin_record_score::Column::Subject,
                    plugin_record_score::Column::RecordId,
                ])
                .update_columns([
                    plugin_record_score::Column::VersionId,
                    plugin_record_score::Column::Score,
                    plugin_record_score::Column::Reasons,
                    plugin_record_score::Column::FuelUsed,
                    plugin_record_score::Column::ComputedAt,
                ])
                .to_owned(),
            )
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(stored)
}

/// The live (not deleted) records of `subject` among `ids` (every live one when `None`)
/// updated since `since` (when given), in id order.
async fn live_ids(
    db: &impl sea_orm::ConnectionTrait,
    workspace_id: i64,
    subject: Subject,
    ids: Option<&[i64]>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<u64>,
) -> Result<Vec<i64>> {
    macro_rules! ids_of {
        ($entity:ident) => {{
            let mut q = scoped::<$entity::Entity>(workspace_id, Deleted::Exclude)
                .select_only()
                .column($entity::Column::Id);
            if let Some(ids) = ids {
                q = q.filter($entity::Column::Id.is_in(ids.iter().copied()));
            }
            if let Some(since) = since {
                q = q.filter($entity::Column::UpdatedAt.gte(since));
            }
            q.order_by_asc($entity::Column::Id)
                .limit(limit)
                .into_tuple::<i64>()
                .all(db)
                .await?
        }};
    }
    Ok(match subject {
        Subject::Contact => {
            use rapport_schema::contact;
            ids_of!(contact)
        }
        Subject::Deal => ids_of!(deal),
        Subject::Company => ids_of!(company),
    })
}

async fn live_among(
    db: &impl sea_orm::ConnectionTrait,
    workspace_id: i64,
    subject: Subject,
    ids: &[i64],
) -> Result<Vec<i64>> {
    let mut live = Vec::with_capacity(ids.len());
    // In chunks: a bind parameter per id.
    for chunk in ids.chunks(1000) {
        live.extend(live_ids(db, workspace_id, subject, Some(chunk), None, None).await?);
    }
    Ok(live)
}

/// Every live record of `subject` in the workspace, in id order.
pub async fn everyone(
    db: &DatabaseConnection,
    workspace_id: i64,
    subject: Subject,
) -> Result<Vec<i64>> {
    live_ids(db, workspace_id, subject, None, None, None).await
}

/// The first live record of `subject`, for a plugin's sample run.
pub(super) async fn first(
    db: &DatabaseConnection,
    workspace_id: i64,
    subject: Subject,
) -> Result<Option<i64>> {
    // The smallest id: a sample that stays the same from one upload to the next.
    Ok(live_ids(db, workspace_id, subject, None, None, Some(1))
        .await?
        .into_iter()
        .next())
}

/// The subjects other than contacts that an enabled plugin of the workspace scores.
async fn scored_subjects(db: &DatabaseConnection, workspace_id: i64) -> Result<Vec<Subject>> {
    let active: Vec<i64> = registry::list(db, workspace_id)
        .await?
        .into_iter()
        .filter(|p| p.enabled)
        .filter_map(|p| p.active_version_id)
        .collect();
    if active.is_empty() {
        return Ok(Vec::new());
    }
    let mut subjects: Vec<Subject> = plugin_version::Entity::find()
        .select_only()
        .column(plugin_version::Column::Subject)
        .filter(plugin_version::Column::Id.is_in(active))
        .into_tuple::<String>()
        .all(db)
        .await?
        .iter()
        .filter_map(|s| Subject::parse(s).ok())
        .filter(|s| *s != Subject::Contact)
        .collect();
    subjects.sort_by_key(|s| s.as_str());
    subjects.dedup();
    Ok(subjects)
}

/// Queues `ScorePluginRecords` jobs for the deals and companies that enabled plugins of
/// the workspace score: every live one when `since` is `None`, else those changed since
/// then. Returns the jobs queued.
pub async fn enqueue(
    db: &DatabaseConnection,
    workspace_id: i64,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<usize> {
    let mut queued = 0;
    for subject in scored_subjects(db, workspace_id).await? {
        let ids = match since {
            None => live_ids(db, workspace_id, subject, None, None, None).await?,
            // Changed: a stage move, a new amount, a new name; and for deals, an activity
            // logged on them (what a deal's risk most often reads).
            Some(since) => {
                let mut ids = live_ids(db, workspace_id, subject, None, Some(since), None).await?;
                if subject == Subject::Deal {
                    ids.extend(touched_deals(db, workspace_id, since).await?);
                    ids.sort_unstable();
                    ids.dedup();
                }
                ids
            }
        };
        queued += enqueue_ids(db, workspace_id, subject, &ids).await?;
    }
    Ok(queued)
}

/// Live deals with an activity logged or changed since `since`.
async fn touched_deals(
    db: &DatabaseConnection,
    workspace_id: i64,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<i64>> {
    use rapport_schema::activity;
    let touched: Vec<i64> = activity::Entity::find()
        .select_only()
        .column(activity::Column::DealId)
        .filter(activity::Column::WorkspaceId.eq(workspace_id))
        .filter(activity::Column::UpdatedAt.gte(since))
        .filter(activity::Column::DealId.is_not_null())
        .distinct()
        .into_tuple::<Option<i64>>()
        .all(db)
        .await?
        .into_iter()
        .flatten()
        .collect();
    live_among(db, workspace_id, Subject::Deal, &touched).await
}

/// Queues `ScorePluginRecords` jobs over `ids` of `subject`, in batches.
pub async fn enqueue_ids(
    db: &DatabaseConnection,
    workspace_id: i64,
    subject: Subject,
    ids: &[i64],
) -> Result<usize> {
    use crate::platform::queue::{Job, Queue};
    if ids.is_empty() {
        return Ok(0);
    }
    let queue = Queue::new(db)?;
    let mut queued = 0;
    for chunk in ids.chunks(super::runs::JOB_BATCH) {
        let job = Job::ScorePluginRecords {
            workspace_id,
            subject,
            record_ids: chunk.to_vec(),
        };
        queue.push(job, None).await?;
        queued += 1;
    }
    Ok(queued)
}

/// Forgets what plugins said about deals or companies deleted for good: their scores
/// and their run records (whose inputs may hold their contacts' data).
pub async fn forget(
    db: &impl sea_orm::ConnectionTrait,
    workspace_id: i64,
    subject: Subject,
    ids: &[i64],
) -> Result<()> {
    use rapport_schema::plugin_run;
    plugin_record_score::Entity::delete_many()
        .filter(plugin_record_score::Column::WorkspaceId.eq(workspace_id))
        .filter(plugin_record_score::Column::Subject.eq(subject.as_str()))
        .filter(plugin_record_score::Column::RecordId.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    plugin_run::Entity::delete_many()
        .filter(plugin_run::Column::WorkspaceId.eq(workspace_id))
        .filter(plugin_run::Column::Subject.eq(subject.as_str()))
        .filter(plugin_run::Column::RecordId.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// Current plugin scores of deals or companies, by record.
pub async fn scores_for(
    db: &DatabaseConnection,
    workspace_id: i64,
    subject: Subject,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<plugin_record_score::Model>>> {
    let mut by_record: HashMap<i64, Vec<plugin_record_score::Model>> = HashMap::new();
    for s in plugin_record_score::Entity::find()
        .filter(plugin_record_score::Column::WorkspaceId.eq(workspace_id))
        .filter(plugin_record_score::Column::Subject.eq(subject.as_str()))
        .filter(plugin_record_score::Column::RecordId.is_in(ids.iter().copied()))
        .order_by_asc(plugin_record_score::Column::PluginId)
        .all(db)
        .await?
    {
        by_record.entry(s.record_id).or_default().push(s);
    }
    Ok(by_record)
}
