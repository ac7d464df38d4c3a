//! CSV imports as jobs: a person uploads a file with a column mapping, the file is kept
//! in the database in chunks (any process's worker can read it), a worker imports it with
//! [`bulk::import`] while the import's row shows its progress, and the refused rows are
//! kept as a reject file to download. A dry run checks everything and writes nothing;
//! confirming it imports the same file without a second upload.
//!
//! An import's file is deleted once it was imported; dry runs' files, reject files and the
//! rows themselves go after [`RETENTION_DAYS`], since they hold people's data that an
//! erasure cannot pick out of a CSV.

use std::collections::HashMap;
use std::io::{Read, Seek, Write};

use rapport_schema::{import, import_chunk};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::bulk::{self, Kind, Report, Target};
use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::audit;
use crate::platform::auth::Principal;
use crate::platform::queue::{Job, Queue};
use crate::values::{Scope, Text};

/// Bytes a chunk of a stored file holds.
pub const CHUNK: usize = 1 << 20;

/// Days an import (its row, reject file and a dry run's file) is kept.
pub const RETENTION_DAYS: i64 = 14;

/// Where an import is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportState {
    /// Waiting for a worker.
    Queued,
    /// A worker is reading the file.
    Running,
    /// Every row was read: the counts say what happened to them.
    Done,
    /// The import as a whole failed; the row says why.
    Failed,
}

impl ImportState {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportState::Queued => "queued",
            ImportState::Running => "running",
            ImportState::Done => "done",
            ImportState::Failed => "failed",
        }
    }

    /// From the stored text (unknown text reads as failed).
    pub fn from_db(raw: &str) -> Self {
        match raw {
            "queued" => ImportState::Queued,
            "running" => ImportState::Running,
            "done" => ImportState::Done,
            _ => ImportState::Failed,
        }
    }
}

/// A column of an import's file and where it goes, as stored with the import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The header, as in the file.
    pub header: String,
    /// The target (`email`, `attributes.plan`, `skip`, …).
    pub target: String,
}

/// The part of an import a chunk belongs to.
const FILE: &str = "file";
const REJECTS: &str = "rejects";

/// An upload to import: the file's name as the client gave it, and its bytes.
pub struct Upload<R> {
    /// The name, for people to recognise it (1–255 characters; "upload.csv" if none).
    pub file_name: String,
    /// The bytes.
    pub content: R,
}

/// Stores an upload and queues its import (write scope, not a member). The header row is
/// read and the mapping checked against it ([`bulk::import::columns`]) before anything is
/// stored, so a wrong mapping is an error at once, not a failed job.
pub async fn start<R: Read>(
    db: &DatabaseConnection,
    queue: &Queue,
    who: &Principal,
    kind: Kind,
    mut upload: Upload<R>,
    mapping: &HashMap<String, Target>,
    dry_run: bool,
) -> Result<import::Model> {
    bulk::import::require_importer(who)?;
    let file_name = if upload.file_name.trim().is_empty() {
        "upload.csv".to_string()
    } else {
        Text::parse("file", &upload.file_name, 255)?.into_string()
    };
    let first = read_chunk(&mut upload.content)?;
    if first.is_empty() {
        return Err(EngineError::invalid("file", "the file is empty"));
    }
    if first.len() == CHUNK && !first.contains(&b'\n') {
        return Err(EngineError::invalid(
            "file",
            format!("the header row is longer than {CHUNK} bytes"),
        ));
    }
    let headers = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(first.as_slice())
        .headers()
        .map_err(|e| EngineError::invalid("file", format!("the header row does not read: {e}")))?
        .clone();
    let headers: Vec<&str> = headers.iter().collect();
    let targets = bulk::import::columns(kind, &headers, mapping)?;
    let columns = describe(&headers, &targets);
    let tx = crate::platform::db::write(db).await?;
    let row = queued(who, kind.as_str(), dry_run, file_name, 0, &columns)
        .insert(&tx)
        .await?;
    let mut bytes = first.len();
    store_chunk(&tx, row.id, FILE, 0, first).await?;
    let mut seq = 1;
    loop {
        let chunk = read_chunk(&mut upload.content)?;
        if chunk.is_empty() {
            break;
        }
        bytes += chunk.len();
        store_chunk(&tx, row.id, FILE, seq, chunk).await?;
        seq += 1;
    }
    let row = import::ActiveModel {
        id: Set(row.id),
        file_bytes: Set(bytes as i64),
        ..Default::default()
    }
    .update(&tx)
    .await?;
    tx.commit().await?;
    queue_job(db, queue, row).await
}

/// Imports the file of a finished dry run for real, with its mapping or a new one
/// (checked against the file's header), without uploading it again: the file moves to
/// the new import, so a dry run is confirmed once.
pub async fn confirm(
    db: &DatabaseConnection,
    queue: &Queue,
    who: &Principal,
    id: i64,
    mapping: Option<&HashMap<String, Target>>,
) -> Result<import::Model> {
    bulk::import::require_importer(who)?;
    let ws = who.workspace_id;
    let tx = crate::platform::db::write(db).await?;
    let dry = get(&tx, ws, id).await?;
    if !dry.dry_run || ImportState::from_db(&dry.state) != ImportState::Done {
        return Err(EngineError::Conflict(format!(
            "import {id} is not a finished dry run"
        )));
    }
    let kind = Kind::parse("kind", &dry.kind)?;
    let mut columns: Vec<Column> = serde_json::from_value(dry.columns.clone())
        .map_err(|e| EngineError::internal_from("reading an import's columns", e))?;
    if let Some(mapping) = mapping {
        let headers: Vec<&str> = columns.iter().map(|c| c.header.as_str()).collect();
        let targets = bulk::import::columns(kind, &headers, mapping)?;
        columns = describe(&headers, &targets);
    }
    let has_file = import_chunk::Entity::find()
        .filter(import_chunk::Column::ImportId.eq(id))
        .filter(import_chunk::Column::Part.eq(FILE))
        .select_only()
        .column(import_chunk::Column::Seq)
        .into_tuple::<i32>()
        .one(&tx)
        .await?
        .is_some();
    if !has_file {
        return Err(EngineError::Conflict(format!(
            "the file of import {id} was already imported or has expired; upload it again"
        )));
    }
    let row = queued(
        who,
        &dry.kind,
        false,
        dry.file_name.clone(),
        dry.file_bytes,
        &columns,
    )
    .insert(&tx)
    .await?;
    import_chunk::Entity::update_many()
        .col_expr(import_chunk::Column::ImportId, Expr::value(row.id))
        .filter(import_chunk::Column::ImportId.eq(id))
        .filter(import_chunk::Column::Part.eq(FILE))
        .exec(&tx)
        .await?;
    tx.commit().await?;
    queue_job(db, queue, row).await
}

/// A new import's row, queued, counts at zero.
fn queued(
    who: &Principal,
    kind: &str,
    dry_run: bool,
    file_name: String,
    file_bytes: i64,
    columns: &[Column],
) -> import::ActiveModel {
    import::ActiveModel {
        workspace_id: Set(who.workspace_id),
        kind: Set(kind.into()),
        state: Set(ImportState::Queued.as_str().into()),
        dry_run: Set(dry_run),
        file_name: Set(file_name),
        file_bytes: Set(file_bytes),
        columns: Set(serde_json::to_value(columns).expect("columns serialise")),
        processed: Set(0),
        created: Set(0),
        updated: Set(0),
        failed: Set(0),
        requested_by_key_id: Set(who.key_id),
        requested_by_user_id: Set(who.user_id),
        created_at: Set(clock::now()),
        ..Default::default()
    }
}

fn describe(headers: &[&str], targets: &[Target]) -> Vec<Column> {
    headers
        .iter()
        .zip(targets)
        .map(|(h, t)| Column {
            header: (*h).to_string(),
            target: t.name(),
        })
        .collect()
}

async fn queue_job(
    db: &DatabaseConnection,
    queue: &Queue,
    row: import::Model,
) -> Result<import::Model> {
    let job = Job::ImportCsv {
        workspace_id: row.workspace_id,
        import_id: row.id,
    };
    if let Err(e) = queue.push(job, None).await {
        // An import no worker will ever see must not sit as queued for ever.
        finish(
            db,
            row.id,
            &Report::default(),
            Some("the job could not be queued"),
        )
        .await?;
        return Err(e);
    }
    Ok(row)
}

/// Reads up to [`CHUNK`] bytes (fewer only at the end).
fn read_chunk(content: &mut impl Read) -> Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(CHUNK);
    content
        .take(CHUNK as u64)
        .read_to_end(&mut chunk)
        .map_err(|e| EngineError::internal_from("reading an upload", e))?;
    Ok(chunk)
}

async fn store_chunk(
    db: &impl ConnectionTrait,
    import_id: i64,
    part: &str,
    seq: i32,
    data: Vec<u8>,
) -> Result<()> {
    import_chunk::Entity::insert(import_chunk::ActiveModel {
        import_id: Set(import_id),
        part: Set(part.into()),
        seq: Set(seq),
        data: Set(data),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Chunk `seq` of an import's part, if there is one.
async fn chunk(
    db: &impl ConnectionTrait,
    import_id: i64,
    part: &str,
    seq: i32,
) -> Result<Option<Vec<u8>>> {
    Ok(import_chunk::Entity::find()
        .filter(import_chunk::Column::ImportId.eq(import_id))
        .filter(import_chunk::Column::Part.eq(part))
        .filter(import_chunk::Column::Seq.eq(seq))
        .select_only()
        .column(import_chunk::Column::Data)
        .into_tuple::<Vec<u8>>()
        .one(db)
        .await?)
}

/// Chunk `seq` of an import's reject file (the file's columns and `error`), if the import
/// is the workspace's and the chunk exists; read from 0 until `None`.
pub async fn rejects_chunk(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    import_id: i64,
    seq: i32,
) -> Result<Option<Vec<u8>>> {
    if seq == 0 {
        get(db, workspace_id, import_id).await?;
    }
    chunk(db, import_id, REJECTS, seq).await
}

/// Works one import (the `ImportCsv` job). An import already finished is left alone (a
/// job run twice imports once); one a worker began and never finished is failed with that
/// reason rather than run again, since its first rows may be in. A failure is recorded on
/// the row, not retried.
pub async fn run(db: &DatabaseConnection, workspace_id: i64, import_id: i64) -> Result<()> {
    let Some(row) = import::Entity::find_by_id(import_id)
        .filter(import::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
    else {
        return Ok(());
    };
    match ImportState::from_db(&row.state) {
        ImportState::Queued => {}
        ImportState::Running => {
            let why = "the worker importing it stopped part way; rows it had read are imported, \
                       check them before importing the file again";
            let done = Report {
                processed: row.processed as u64,
                created: row.created as u64,
                updated: row.updated as u64,
                failed: row.failed as u64,
                bytes: 0,
            };
            return finish(db, row.id, &done, Some(why)).await;
        }
        ImportState::Done | ImportState::Failed => return Ok(()),
    }
    import::ActiveModel {
        id: Set(row.id),
        state: Set(ImportState::Running.as_str().into()),
        started_at: Set(Some(clock::now())),
        ..Default::default()
    }
    .update(db)
    .await?;
    let (progress, seen) = tokio::sync::watch::channel(Report::default());
    let follower = tokio::spawn(follow(db.clone(), row.id, seen));
    let outcome = work(db, &row, progress).await;
    let _ = follower.await;
    match outcome {
        Ok(report) => finish(db, row.id, &report, None).await,
        Err(e) => {
            tracing::warn!(import = row.id, error = %crate::error::chain(&e), "an import failed");
            let why = match &e {
                EngineError::Internal(_) => "the import failed on the server's side".to_string(),
                other => other.to_string(),
            };
            finish(db, row.id, &Report::default(), Some(&why)).await
        }
    }
}

async fn work(
    db: &DatabaseConnection,
    row: &import::Model,
    progress: tokio::sync::watch::Sender<Report>,
) -> Result<Report> {
    let io = |e: std::io::Error| EngineError::internal_from("spooling an import", e);
    let kind = Kind::parse("kind", &row.kind)?;
    let columns: Vec<Column> = serde_json::from_value(row.columns.clone())
        .map_err(|e| EngineError::internal_from("reading an import's columns", e))?;
    let mut mapping = HashMap::new();
    for (i, c) in columns.iter().enumerate() {
        let target = Target::parse(kind, &format!("columns[{i}]"), &c.target)?;
        mapping.insert(c.header.clone(), target);
    }
    // The file comes to local disk a chunk at a time: the CSV reader reads a file, and
    // memory holds one chunk whatever the file's size.
    let mut file = tempfile::tempfile().map_err(io)?;
    let mut seq = 0;
    while let Some(data) = chunk(db, row.id, FILE, seq).await? {
        file.write_all(&data).map_err(io)?;
        seq += 1;
    }
    if seq == 0 {
        return Err(EngineError::Conflict(
            "the import's file is gone (imported already or expired)".into(),
        ));
    }
    file.rewind().map_err(io)?;
    let total = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(std::io::BufReader::new(&file))
        .byte_records()
        .count();
    file.rewind().map_err(io)?;
    import::ActiveModel {
        id: Set(row.id),
        total: Set(Some(total as i64)),
        ..Default::default()
    }
    .update(db)
    .await?;
    let who = Principal {
        workspace_id: row.workspace_id,
        key_id: row.requested_by_key_id,
        user_id: row.requested_by_user_id,
        scopes: vec![Scope::Write],
        owner_bound: false,
    };
    let actor = audit::Actor {
        api_key_id: row.requested_by_key_id,
        user_id: row.requested_by_user_id,
        ..Default::default()
    };
    let mut rejects = tempfile::tempfile().map_err(io)?;
    let report = audit::within(actor, async {
        // Every record the import changes is in the audit log under the person who
        // started it.
        audit::begin("importCsv");
        let mut out = std::io::BufWriter::new(&mut rejects);
        let report = bulk::import(
            db,
            &who,
            kind,
            std::io::BufReader::new(&file),
            &mapping,
            row.dry_run,
            &mut out,
            |r| {
                progress.send_replace(r.clone());
            },
        )
        .await;
        audit::end();
        drop(out);
        report
    })
    .await?;
    drop(progress);
    if report.failed > 0 {
        rejects.rewind().map_err(io)?;
        let txn = db.begin().await?;
        let mut seq = 0;
        loop {
            let data = read_chunk(&mut rejects)?;
            if data.is_empty() {
                break;
            }
            store_chunk(&txn, row.id, REJECTS, seq, data).await?;
            seq += 1;
        }
        txn.commit().await?;
    }
    if !row.dry_run {
        import_chunk::Entity::delete_many()
            .filter(import_chunk::Column::ImportId.eq(row.id))
            .filter(import_chunk::Column::Part.eq(FILE))
            .exec(db)
            .await?;
    }
    Ok(report)
}

/// Writes the counts to the import's row as they change, at most twice a second, until
/// the import stops sending them.
async fn follow(db: DatabaseConnection, id: i64, mut seen: tokio::sync::watch::Receiver<Report>) {
    while seen.changed().await.is_ok() {
        let r = seen.borrow_and_update().clone();
        if let Err(e) = counts(id, &r).update(&db).await {
            tracing::warn!(import = id, error = ?e, "recording an import's progress");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn counts(id: i64, r: &Report) -> import::ActiveModel {
    import::ActiveModel {
        id: Set(id),
        processed: Set(r.processed as i64),
        created: Set(r.created as i64),
        updated: Set(r.updated as i64),
        failed: Set(r.failed as i64),
        ..Default::default()
    }
}

async fn finish(
    db: &impl ConnectionTrait,
    id: i64,
    report: &Report,
    error: Option<&str>,
) -> Result<()> {
    let mut am = counts(id, report);
    am.state = Set(match error {
        None => ImportState::Done,
        Some(_) => ImportState::Failed,
    }
    .as_str()
    .into());
    am.error = Set(error.map(str::to_string));
    am.finished_at = Set(Some(clock::now()));
    am.update(db).await?;
    Ok(())
}

/// The workspace's imports, newest first (at most `first`).
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    first: u64,
) -> Result<Vec<import::Model>> {
    Ok(import::Entity::find()
        .filter(import::Column::WorkspaceId.eq(workspace_id))
        .order_by_desc(import::Column::Id)
        .limit(first)
        .all(db)
        .await?)
}

/// One import of the workspace.
pub async fn get(db: &impl ConnectionTrait, workspace_id: i64, id: i64) -> Result<import::Model> {
    import::Entity::find_by_id(id)
        .filter(import::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("Import", id))
}

/// Deletes imports (with their files and reject files) created more than
/// [`RETENTION_DAYS`] ago and no longer running; how many.
pub async fn prune(db: &impl ConnectionTrait) -> Result<u64> {
    let cutoff = clock::now() - chrono::Duration::days(RETENTION_DAYS);
    let old: Vec<i64> = import::Entity::find()
        .filter(import::Column::CreatedAt.lt(cutoff))
        .filter(import::Column::State.ne(ImportState::Running.as_str()))
        .select_only()
        .column(import::Column::Id)
        .limit(1000)
        .into_tuple()
        .all(db)
        .await?;
    if old.is_empty() {
        return Ok(0);
    }
    // Chunks first: SQLite enforces the cascade only with foreign keys on.
    import_chunk::Entity::delete_many()
        .filter(import_chunk::Column::ImportId.is_in(old.clone()))
        .exec(db)
        .await?;
    Ok(import::Entity::delete_many()
        .filter(import::Column::Id.is_in(old))
        .exec(db)
        .await?
        .rows_affected)
}

/// Prunes old imports every hour until `shutdown` resolves (see [`prune`]).
pub async fn run_pruner(
    db: DatabaseConnection,
    health: std::sync::Arc<crate::platform::health::Health>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let every = std::time::Duration::from_secs(3600);
    crate::platform::health::periodic("import pruner", every, health, shutdown, || prune(&db)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written() {
        for s in [
            ImportState::Queued,
            ImportState::Running,
            ImportState::Done,
            ImportState::Failed,
        ] {
            assert_eq!(ImportState::from_db(s.as_str()), s);
        }
    }

    #[test]
    fn chunks_are_full_but_the_last() {
        let data = vec![b'x'; CHUNK + 10];
        let mut r = data.as_slice();
        assert_eq!(read_chunk(&mut r).unwrap().len(), CHUNK);
        assert_eq!(read_chunk(&mut r).unwrap().len(), 10);
        assert!(read_chunk(&mut r).unwrap().is_empty());
    }
}
