//! The CSV import: a file read row by row, each row checked as the API checks its input,
//! batches upserted in a transaction each, refused rows written to a reject file.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};

use rapport_schema::{company, contact, deal};
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};

use super::rows::{References, Row, to_row};
use super::{Kind, Target, suggest};
use crate::crm::companies::{self, CompanyInput};
use crate::crm::contacts;
use crate::crm::deals::{self, DealInput};
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;

/// What an import did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Rows read.
    pub processed: u64,
    /// New records.
    pub created: u64,
    /// Records that existed (by their key) and were updated.
    pub updated: u64,
    /// Rows refused, each in the reject file with its reason.
    pub failed: u64,
    /// Bytes of the file read so far.
    pub bytes: u64,
}

/// Rows upserted in one transaction: 1,000 (the bulk APIs' limit) measured 10% faster than
/// 500 on PostgreSQL, fewer statements and commits for the same rows.
const BATCH: usize = 1000;
/// Rows written before the statistics of the tables an import grows are first refreshed.
const FIRST_STATISTICS: u64 = 1000;
/// Bytes one row may hold.
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// Columns a file may have.
pub const MAX_COLUMNS: usize = 200;

/// The target of each column of a file whose header row is `headers`: what `mapping`
/// (header → target) says, else what the header suggests ([`suggest`]; a field an earlier
/// column took is not suggested again). Refuses a mapping that names a header the file
/// lacks or maps two columns to one field, and a file with no column for the kind's
/// required field.
pub fn columns(
    kind: Kind,
    headers: &[&str],
    mapping: &HashMap<String, Target>,
) -> Result<Vec<Target>> {
    if headers.len() > MAX_COLUMNS {
        return Err(EngineError::invalid(
            "file",
            format!(
                "at most {MAX_COLUMNS} columns (the file has {})",
                headers.len()
            ),
        ));
    }
    if let Some(missing) = mapping.keys().find(|h| !headers.contains(&h.as_str())) {
        return Err(EngineError::invalid(
            "mapping",
            format!(
                "the file has no column {missing:?} (its columns: {})",
                headers.join(", ")
            ),
        ));
    }
    let mut taken: HashMap<Target, &str> = HashMap::new();
    for (header, target) in mapping {
        if target != &Target::Skip
            && let Some(other) = taken.insert(target.clone(), header)
        {
            return Err(EngineError::invalid(
                "mapping",
                format!("{other:?} and {header:?} both map to {}", target.name()),
            ));
        }
    }
    let targets = assign(kind, headers, mapping);
    let (required, why) = kind.required();
    if !targets.contains(&Target::Field(required)) {
        return Err(EngineError::invalid(
            "mapping",
            format!("no column is mapped to {required}, {why}"),
        ));
    }
    Ok(targets)
}

/// What each header suggests for `kind` ([`suggest`]), a field taken once: what an import
/// with no mapping would do.
pub fn suggested(kind: Kind, headers: &[&str]) -> Vec<Target> {
    assign(kind, headers, &HashMap::new())
}

/// The mapped target of each header, else its suggestion unless a column took it already.
fn assign(kind: Kind, headers: &[&str], mapping: &HashMap<String, Target>) -> Vec<Target> {
    let mut taken: HashSet<Target> = mapping.values().cloned().collect();
    headers
        .iter()
        .map(|header| match mapping.get(*header) {
            Some(t) => t.clone(),
            None => match suggest(kind, header) {
                t if taken.contains(&t) => Target::Skip,
                t => {
                    if t != Target::Skip {
                        taken.insert(t.clone());
                    }
                    t
                }
            },
        })
        .collect()
}

/// Imports `kind` records from CSV `input` (a header row, then one record per row),
/// mapping columns by [`columns`]. Rows are checked as the API checks them and upserted
/// by the kind's key, a batch per transaction; a refused row goes to `rejects` (the file's
/// columns and an `error` column) and the rest go on. With `dry_run`, nothing is written
/// and the report says what would have been. `progress` hears the report after every
/// batch. Imports are for managers and admins: a member's session may not.
#[allow(clippy::too_many_arguments)]
pub async fn import(
    db: &DatabaseConnection,
    who: &Principal,
    kind: Kind,
    input: impl Read,
    mapping: &HashMap<String, Target>,
    dry_run: bool,
    rejects: &mut impl Write,
    mut progress: impl FnMut(&Report),
) -> Result<Report> {
    require_importer(who)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| EngineError::invalid("file", format!("the header row does not read: {e}")))?
        .clone();
    let targets = columns(kind, &headers.iter().collect::<Vec<_>>(), mapping)?;
    let mut out = Batches {
        db,
        who,
        kind,
        dry_run,
        would_create: HashSet::new(),
        report: Report::default(),
        rejected: csv::Writer::from_writer(rejects),
        next_statistics: FIRST_STATISTICS,
        refused: Vec::new(),
        in_flight: VecDeque::new(),
        depth: match db.get_database_backend() {
            DatabaseBackend::Postgres => 3,
            _ => 1,
        },
    };
    let mut out_headers: Vec<&str> = headers.iter().collect();
    out_headers.push("error");
    out.rejected
        .write_record(&out_headers)
        .map_err(|e| EngineError::internal_from("writing the reject file", e))?;
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
    let mut record = csv::StringRecord::new();
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // A row that does not read as CSV (bad quoting, invalid UTF-8) is refused;
                // the reader goes on with the next line.
                out.report.processed += 1;
                let line = e.position().map_or(out.report.processed + 1, |p| p.line());
                out.refuse(line, csv::StringRecord::new(), format!("not CSV: {e}"));
                continue;
            }
        };
        if !more {
            break;
        }
        out.report.processed += 1;
        out.report.bytes = reader.position().byte();
        let line = record
            .position()
            .map_or(out.report.processed + 1, |p| p.line());
        let field = format!("line {line}");
        let bytes: usize = record.iter().map(str::len).sum();
        let checked = if bytes > MAX_ROW_BYTES {
            Err(EngineError::invalid(
                &field,
                format!("longer than {MAX_ROW_BYTES} bytes"),
            ))
        } else {
            to_row(kind, &record, &targets, &field)
        };
        let (row, key) = match checked {
            Ok(done) => done,
            Err(e) => {
                out.refuse(line, record.clone(), e.to_string());
                continue;
            }
        };
        // One record per transaction: a second row with the same key waits for the next
        // batch, so it updates what the first created.
        if key.is_some() && batch.iter().any(|p| p.key == key) {
            out.write(&mut batch).await?;
            progress(&out.report);
        }
        batch.push(Pending {
            record: record.clone(),
            row,
            key,
        });
        if batch.len() >= BATCH {
            out.write(&mut batch).await?;
            progress(&out.report);
        }
    }
    out.write(&mut batch).await?;
    out.finish().await?;
    out.rejected
        .flush()
        .map_err(|e| EngineError::internal_from("writing the reject file", e))?;
    progress(&out.report);
    Ok(out.report)
}

/// Imports change records in bulk, whoever owns them: write scope, and not a member's
/// session.
pub fn require_importer(who: &Principal) -> Result<()> {
    who.require(crate::values::Scope::Write)?;
    if who.owner_bound {
        return Err(EngineError::Forbidden(
            "imports are run by managers and admins".into(),
        ));
    }
    Ok(())
}

/// A row checked and waiting for its batch.
pub(super) struct Pending {
    pub(super) record: csv::StringRecord,
    pub(super) row: Row,
    /// The upsert key (email, domain, external id), normalised.
    pub(super) key: Option<String>,
}

/// A row ready to write: its references looked up.
#[derive(Clone)]
enum Ready {
    Contact(contacts::Checked),
    Company(CompanyInput),
    Deal(DealInput),
}

/// Where batches go, and what they did so far.
struct Batches<'a, W: Write> {
    db: &'a DatabaseConnection,
    who: &'a Principal,
    kind: Kind,
    dry_run: bool,
    /// A dry run writes nothing, so it remembers the keys it would have created: a later
    /// row with the same key would update.
    would_create: HashSet<String>,
    report: Report,
    rejected: csv::Writer<W>,
    /// Rows written when the tables' statistics are refreshed next (see
    /// [`crate::platform::db::refresh_statistics`]); four times as many each time.
    next_statistics: u64,
    /// Rows refused since the last batch was sent, by line: they go to the reject file
    /// with that batch's, so the file keeps the input's order.
    refused: Vec<Refused>,
    /// Batches being written, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Batches written at once. On PostgreSQL three transactions keep both cores busy
    /// (most of an import's time is the server's index and foreign-key work) while this
    /// task reads the next rows: two left a fifth of the CPU idle, four measured no better
    /// than three. SQLite writes one at a time, so one is in flight there.
    depth: usize,
}

/// A refused row: its line, its values and why.
type Refused = (u64, csv::StringRecord, String);

/// A batch written by its own task.
struct InFlight {
    task: Writing,
    /// Its rows (line, values, input), to try one by one when the batch is refused.
    rows: Vec<(u64, csv::StringRecord, Ready)>,
    /// Its keys: a later batch with one of them waits for this one.
    keys: HashSet<String>,
    /// Rows refused before it was sent.
    refused: Vec<Refused>,
}

/// A batch's task, stopped if the import stops first (its transaction rolls back).
struct Writing(tokio::task::JoinHandle<Result<Vec<bool>>>);

impl Drop for Writing {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<W: Write> Batches<'_, W> {
    fn refuse(&mut self, line: u64, record: csv::StringRecord, why: String) {
        self.report.failed += 1;
        self.refused.push((line, record, why));
    }

    /// Writes refused rows to the reject file in line order.
    fn write_refused(&mut self, mut refused: Vec<Refused>) -> Result<()> {
        refused.sort_by_key(|(line, _, _)| *line);
        for (_, record, why) in refused {
            let mut row: Vec<&str> = record.iter().collect();
            row.push(&why);
            self.rejected
                .write_record(&row)
                .map_err(|e| EngineError::internal_from("writing the reject file", e))?;
        }
        Ok(())
    }

    fn count(&mut self, created: bool) {
        if created {
            self.report.created += 1;
        } else {
            self.report.updated += 1;
        }
    }

    /// Sends a batch to be upserted (in a dry run, counts what it would create and
    /// update). A batch sharing a key with one in flight, or over the depth, waits for
    /// the earlier ones first.
    async fn write(&mut self, batch: &mut Vec<Pending>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(batch);
        let references = match self.kind {
            Kind::Deals => {
                let tx = self.db.begin().await?;
                crate::platform::db::plan_each(&tx).await?;
                let found = References::load(&tx, self.who.workspace_id, &rows).await?;
                tx.commit().await?;
                Some(found)
            }
            _ => None,
        };
        let mut ready = Vec::with_capacity(rows.len());
        let mut keys = HashSet::with_capacity(rows.len());
        for p in rows {
            let line = p.record.position().map_or(0, |at| at.line());
            let resolved = match p.row {
                Row::Contact(i) => Ok(Ready::Contact(i)),
                Row::Company(i) => Ok(Ready::Company(i)),
                Row::Deal {
                    input,
                    pipeline,
                    stage,
                    contact_email,
                    company_domain,
                } => references
                    .as_ref()
                    .expect("loaded for deals")
                    .resolve(
                        &format!("line {line}"),
                        input,
                        pipeline,
                        stage,
                        contact_email,
                        company_domain,
                    )
                    .map(Ready::Deal),
            };
            match resolved {
                Ok(r) => {
                    if let Some(k) = &p.key {
                        keys.insert(k.clone());
                    }
                    ready.push((line, p.record, r, p.key));
                }
                Err(e) => self.refuse(line, p.record, e.to_string()),
            }
        }
        if self.dry_run {
            return self.count_dry(ready).await;
        }
        while self.in_flight.len() >= self.depth
            || self.in_flight.iter().any(|f| !f.keys.is_disjoint(&keys))
        {
            self.settle_oldest().await?;
        }
        let inputs: Vec<Ready> = ready.iter().map(|(_, _, r, _)| r.clone()).collect();
        let (db, who) = (self.db.clone(), self.who.clone());
        let work =
            crate::platform::audit::carry_into(crate::platform::audit::carried(), async move {
                upsert(&db, &who, inputs).await
            });
        let task = tokio::spawn(tracing::Instrument::instrument(
            work,
            tracing::Span::current(),
        ));
        self.in_flight.push_back(InFlight {
            task: Writing(task),
            rows: ready
                .into_iter()
                .map(|(l, rec, r, _)| (l, rec, r))
                .collect(),
            keys,
            refused: std::mem::take(&mut self.refused),
        });
        Ok(())
    }

    /// What a dry run's batch would do: the keys the workspace or an earlier row of the
    /// file holds are updates.
    async fn count_dry(
        &mut self,
        ready: Vec<(u64, csv::StringRecord, Ready, Option<String>)>,
    ) -> Result<()> {
        let keys: Vec<String> = ready.iter().filter_map(|(_, _, _, k)| k.clone()).collect();
        let tx = self.db.begin().await?;
        crate::platform::db::plan_each(&tx).await?;
        let known = known_keys(&tx, self.who.workspace_id, self.kind, keys).await?;
        tx.commit().await?;
        for (_, _, _, key) in ready {
            let Some(key) = key else {
                self.count(true);
                continue;
            };
            let created = !known.contains(&key) && !self.would_create.contains(&key);
            if created {
                self.would_create.insert(key);
            }
            self.count(created);
        }
        let refused = std::mem::take(&mut self.refused);
        self.write_refused(refused)
    }

    /// Waits for the oldest batch in flight and counts what it did. A batch the database
    /// refused as a whole is tried row by row, so one row's conflict refuses only that
    /// row; our side failing fails the import.
    async fn settle_oldest(&mut self) -> Result<()> {
        let Some(mut done) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let outcome = (&mut done.task.0)
            .await
            .map_err(|e| EngineError::internal_from("an import batch's task", e))?;
        let mut refused = std::mem::take(&mut done.refused);
        match outcome {
            Ok(created) => created.into_iter().for_each(|c| self.count(c)),
            Err(EngineError::Internal(e)) => return Err(EngineError::Internal(e)),
            Err(_) => {
                for (line, record, input) in std::mem::take(&mut done.rows) {
                    match upsert(self.db, self.who, vec![input]).await {
                        Ok(created) => self.count(created.first().copied().unwrap_or(false)),
                        Err(EngineError::Internal(e)) => return Err(EngineError::Internal(e)),
                        Err(e) => {
                            self.report.failed += 1;
                            refused.push((line, record, e.to_string()));
                        }
                    }
                }
            }
        }
        self.write_refused(refused)?;
        let written = self.report.created + self.report.updated;
        if written >= self.next_statistics {
            self.next_statistics = written.saturating_mul(4);
            crate::platform::db::refresh_statistics(self.db, self.kind.tables()).await?;
        }
        Ok(())
    }

    /// Waits for every batch in flight and writes the rows refused after the last.
    async fn finish(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        let refused = std::mem::take(&mut self.refused);
        self.write_refused(refused)
    }
}

/// Upserts rows of one kind in one transaction; whether each was created.
async fn upsert(db: &DatabaseConnection, who: &Principal, rows: Vec<Ready>) -> Result<Vec<bool>> {
    let mut people = Vec::new();
    let mut accounts = Vec::new();
    let mut deals_in = Vec::new();
    for r in rows {
        match r {
            Ready::Contact(i) => people.push(i),
            Ready::Company(i) => accounts.push(i),
            Ready::Deal(i) => deals_in.push(i),
        }
    }
    Ok(if !people.is_empty() {
        contacts::upsert_checked(db, who, people)
            .await?
            .into_iter()
            .map(|u| u.created)
            .collect()
    } else if !accounts.is_empty() {
        companies::bulk_upsert(db, who, accounts)
            .await?
            .into_iter()
            .map(|(_, created)| created)
            .collect()
    } else {
        deals::bulk_upsert(db, who, deals_in)
            .await?
            .into_iter()
            .map(|(_, created)| created)
            .collect()
    })
}

/// Which of `keys` already name a record of the workspace.
async fn known_keys(
    db: &impl sea_orm::ConnectionTrait,
    ws: i64,
    kind: Kind,
    keys: Vec<String>,
) -> Result<HashSet<String>> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let found: Vec<Option<String>> = match kind {
        Kind::Contacts => {
            contact::Entity::find()
                .select_only()
                .column(contact::Column::Email)
                .filter(contact::Column::WorkspaceId.eq(ws))
                .filter(contact::Column::Email.is_in(keys))
                .into_tuple()
                .all(db)
                .await?
        }
        Kind::Companies => {
            company::Entity::find()
                .select_only()
                .column(company::Column::Domain)
                .filter(company::Column::WorkspaceId.eq(ws))
                .filter(company::Column::Domain.is_in(keys))
                .into_tuple()
                .all(db)
                .await?
        }
        Kind::Deals => {
            deal::Entity::find()
                .select_only()
                .column(deal::Column::ExternalId)
                .filter(deal::Column::WorkspaceId.eq(ws))
                .filter(deal::Column::ExternalId.is_in(keys))
                .into_tuple()
                .all(db)
                .await?
        }
    };
    Ok(found.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_the_mapping_then_the_headers() {
        let mut mapping = HashMap::new();
        mapping.insert("Work mail".to_string(), Target::Field("email"));
        let t = columns(Kind::Contacts, &["Email", "Work mail", "Name"], &mapping).unwrap();
        assert_eq!(
            t,
            [
                Target::Skip,
                Target::Field("email"),
                Target::Attribute("name".into())
            ],
            "the mapped column takes email; the suggested one steps aside"
        );
        mapping.insert("Nope".to_string(), Target::Skip);
        assert!(columns(Kind::Contacts, &["Email"], &mapping).is_err());
        assert!(columns(Kind::Companies, &["Name"], &HashMap::new()).is_err());
        let mut twice = HashMap::new();
        twice.insert("A".to_string(), Target::Field("name"));
        twice.insert("B".to_string(), Target::Field("name"));
        assert!(columns(Kind::Deals, &["A", "B"], &twice).is_err());
    }
}
