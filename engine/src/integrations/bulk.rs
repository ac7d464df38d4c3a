//! Contacts in and out in bulk: a CSV import that streams its file (any size, a batch in
//! memory at a time), checks every row as the API would, upserts by email and writes the
//! rows it refused to a reject file with the reason; and an export of the contacts a filter
//! picks, a page at a time, as CSV or JSON lines.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};

use rapport_schema::contact;
use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Map, Value};

use crate::crm::contacts::{self, ContactInput};
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::values::{LifecycleStage, Patch, Scope};

/// Where a CSV column goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The primary email: the key rows are upserted by.
    Email,
    /// Given name.
    FirstName,
    /// Family name.
    LastName,
    /// Phone number.
    Phone,
    /// Where the contact came from.
    Source,
    /// IANA time zone.
    Timezone,
    /// Lifecycle stage (`lead`, `customer`, …).
    LifecycleStage,
    /// Tags, separated by `;` or `,`.
    Tags,
    /// A custom attribute, by key.
    Attribute(String),
    /// Not imported.
    Skip,
}

impl Target {
    /// Parses a mapping's target: `email`, `firstName`, …, `attributes.<key>` or `skip`.
    pub fn parse(field: &str, text: &str) -> Result<Target> {
        Ok(match text {
            "email" => Target::Email,
            "firstName" => Target::FirstName,
            "lastName" => Target::LastName,
            "phone" => Target::Phone,
            "source" => Target::Source,
            "timezone" => Target::Timezone,
            "lifecycleStage" => Target::LifecycleStage,
            "tags" => Target::Tags,
            "skip" => Target::Skip,
            other => match other.strip_prefix("attributes.") {
                Some(key) if !key.is_empty() && key.len() <= 64 => {
                    Target::Attribute(key.to_string())
                }
                _ => {
                    return Err(EngineError::invalid(
                        field,
                        format!(
                            "{other:?} is not a contact field: use email, firstName, lastName, \
                             phone, source, timezone, lifecycleStage, tags, attributes.<key> or skip"
                        ),
                    ));
                }
            },
        })
    }
}

/// The target a header suggests: the usual spellings of each field (`E-mail`,
/// `First name`, `given_name`, …); anything else becomes a custom attribute named after
/// the header.
pub fn suggest(header: &str) -> Target {
    let key: String = header
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    match key.as_str() {
        "email" | "emailaddress" | "mail" => Target::Email,
        "firstname" | "givenname" | "first" | "forename" => Target::FirstName,
        "lastname" | "surname" | "familyname" | "last" => Target::LastName,
        "phone" | "phonenumber" | "mobile" | "telephone" | "tel" => Target::Phone,
        "source" | "leadsource" => Target::Source,
        "timezone" | "tz" => Target::Timezone,
        "lifecyclestage" | "stage" | "lifecycle" => Target::LifecycleStage,
        "tags" | "tag" | "labels" => Target::Tags,
        "" => Target::Skip,
        _ => Target::Attribute(key),
    }
}

/// What an import did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Rows read.
    pub processed: u64,
    /// New contacts.
    pub created: u64,
    /// Contacts that existed (by email) and were updated.
    pub updated: u64,
    /// Rows refused, each in the reject file with its reason.
    pub failed: u64,
    /// Bytes of the file read so far.
    pub bytes: u64,
}

/// Rows upserted in one transaction.
const BATCH: usize = 500;
/// Bytes one row may hold.
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// Columns a file may have.
pub const MAX_COLUMNS: usize = 200;

/// Imports contacts from CSV `input` (a header row, then one contact per row), mapping
/// columns by `mapping` (header → target; headers it does not name are suggested by
/// [`suggest`]). Rows are checked as the API checks them and upserted by email, a batch
/// per transaction; a refused row goes to `rejects` (the file's columns and an `error`
/// column) and the rest go on. With `dry_run`, nothing is written and the report says
/// what would have been. `progress` hears the report after every batch.
pub async fn import_contacts(
    db: &DatabaseConnection,
    who: &Principal,
    input: impl Read,
    mapping: &HashMap<String, Target>,
    dry_run: bool,
    rejects: &mut impl Write,
    mut progress: impl FnMut(&Report),
) -> Result<Report> {
    who.require(Scope::Write)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| EngineError::invalid("file", format!("the header row does not read: {e}")))?
        .clone();
    if headers.len() > MAX_COLUMNS {
        return Err(EngineError::invalid(
            "file",
            format!(
                "at most {MAX_COLUMNS} columns (the file has {})",
                headers.len()
            ),
        ));
    }
    let targets: Vec<Target> = headers
        .iter()
        .map(|h| mapping.get(h).cloned().unwrap_or_else(|| suggest(h)))
        .collect();
    if !targets.contains(&Target::Email) {
        return Err(EngineError::invalid(
            "mapping",
            "no column is mapped to email, the key contacts are upserted by",
        ));
    }
    let mut rejected = csv::Writer::from_writer(rejects);
    let mut out_headers: Vec<&str> = headers.iter().collect();
    out_headers.push("error");
    rejected
        .write_record(&out_headers)
        .map_err(|e| EngineError::internal_from("writing the reject file", e))?;
    let mut report = Report::default();
    // A dry run writes nothing, so it remembers what it would have created: a later row
    // with the same email would update it.
    let mut would_create = HashSet::new();
    let mut batch: Vec<(csv::StringRecord, ContactInput, String)> = Vec::with_capacity(BATCH);
    let mut record = csv::StringRecord::new();
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // A row that does not read as CSV (bad quoting, invalid UTF-8) is refused;
                // the reader goes on with the next line.
                report.processed += 1;
                report.failed += 1;
                reject(
                    &mut rejected,
                    &csv::StringRecord::new(),
                    &format!("not CSV: {e}"),
                )?;
                continue;
            }
        };
        if !more {
            break;
        }
        report.processed += 1;
        report.bytes = reader.position().byte();
        let line = record.position().map_or(report.processed + 1, |p| p.line());
        let field = format!("line {line}");
        let bytes: usize = record.iter().map(str::len).sum();
        let checked = if bytes > MAX_ROW_BYTES {
            Err(EngineError::invalid(
                &field,
                format!("longer than {MAX_ROW_BYTES} bytes"),
            ))
        } else {
            to_input(&record, &targets, &field)
                .and_then(|input| contacts::check_upsert(&input, &field).map(|()| input))
        };
        let input = match checked {
            Ok(input) => input,
            Err(e) => {
                report.failed += 1;
                reject(&mut rejected, &record, &e.to_string())?;
                continue;
            }
        };
        let email = match &input.email {
            Patch::Set(e) => e.trim().to_ascii_lowercase(),
            _ => unreachable!("checked above"),
        };
        // One contact per transaction: a second row with the same email waits for the
        // next batch, so it updates what the first created.
        if batch.iter().any(|(_, _, e)| *e == email) {
            write_batch(
                db,
                who,
                &mut batch,
                dry_run,
                &mut would_create,
                &mut report,
                &mut rejected,
            )
            .await?;
            progress(&report);
        }
        batch.push((record.clone(), input, email));
        if batch.len() >= BATCH {
            write_batch(
                db,
                who,
                &mut batch,
                dry_run,
                &mut would_create,
                &mut report,
                &mut rejected,
            )
            .await?;
            progress(&report);
        }
    }
    write_batch(
        db,
        who,
        &mut batch,
        dry_run,
        &mut would_create,
        &mut report,
        &mut rejected,
    )
    .await?;
    rejected
        .flush()
        .map_err(|e| EngineError::internal_from("writing the reject file", e))?;
    progress(&report);
    Ok(report)
}

fn reject<W: Write>(out: &mut csv::Writer<W>, record: &csv::StringRecord, why: &str) -> Result<()> {
    let mut row: Vec<&str> = record.iter().collect();
    row.push(why);
    out.write_record(&row)
        .map_err(|e| EngineError::internal_from("writing the reject file", e))
}

/// A row as the API's contact input.
fn to_input(record: &csv::StringRecord, targets: &[Target], field: &str) -> Result<ContactInput> {
    let mut input = ContactInput::default();
    let mut attributes = Map::new();
    for (value, target) in record.iter().zip(targets) {
        if value.is_empty() {
            continue;
        }
        match target {
            Target::Email => input.email = Patch::Set(value.to_string()),
            Target::FirstName => input.first_name = Some(value.to_string()),
            Target::LastName => input.last_name = Some(value.to_string()),
            Target::Phone => input.phone = Patch::Set(value.to_string()),
            Target::Source => input.source = Patch::Set(value.to_string()),
            Target::Timezone => input.timezone = Patch::Set(value.to_string()),
            Target::LifecycleStage => {
                let wanted = value.to_ascii_lowercase().replace([' ', '-'], "_");
                input.lifecycle_stage = Some(
                    LifecycleStage::ALL
                        .iter()
                        .copied()
                        .find(|s| s.as_str() == wanted)
                        .ok_or_else(|| {
                            EngineError::invalid(
                                format!("{field}.lifecycleStage"),
                                format!("{value:?} is not a lifecycle stage"),
                            )
                        })?,
                );
            }
            Target::Tags => {
                input.tags = Some(
                    value
                        .split([';', ','])
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            }
            Target::Attribute(key) => {
                attributes.insert(key.clone(), Value::String(value.to_string()));
            }
            Target::Skip => {}
        }
    }
    if !attributes.is_empty() {
        input.attributes = Some(Value::Object(attributes));
    }
    Ok(input)
}

/// Upserts a batch (or, in a dry run, counts what it would create and update); a batch
/// the database refuses as a whole is tried row by row, so one row's conflict refuses
/// only that row.
async fn write_batch<W: Write>(
    db: &DatabaseConnection,
    who: &Principal,
    batch: &mut Vec<(csv::StringRecord, ContactInput, String)>,
    dry_run: bool,
    would_create: &mut HashSet<String>,
    report: &mut Report,
    rejected: &mut csv::Writer<W>,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(batch);
    if dry_run {
        let emails: Vec<String> = rows.iter().map(|(_, _, e)| e.clone()).collect();
        let known: HashSet<String> = contact::Entity::find()
            .select_only()
            .column(contact::Column::Email)
            .filter(contact::Column::WorkspaceId.eq(who.workspace_id))
            .filter(contact::Column::Email.is_in(emails))
            .into_tuple::<Option<String>>()
            .all(db)
            .await?
            .into_iter()
            .flatten()
            .collect();
        for (_, _, email) in rows {
            if known.contains(&email) || would_create.contains(&email) {
                report.updated += 1;
            } else {
                report.created += 1;
                would_create.insert(email);
            }
        }
        return Ok(());
    }
    let inputs: Vec<ContactInput> = rows.iter().map(|(_, i, _)| i.clone()).collect();
    match contacts::bulk_upsert(db, who, inputs).await {
        Ok(done) => {
            for u in done {
                if u.created {
                    report.created += 1;
                } else {
                    report.updated += 1;
                }
            }
        }
        Err(EngineError::Internal(e)) => return Err(EngineError::Internal(e)),
        Err(_) => {
            for (record, input, _) in rows {
                match contacts::bulk_upsert(db, who, vec![input]).await {
                    Ok(done) if done.first().is_some_and(|u| u.created) => report.created += 1,
                    Ok(_) => report.updated += 1,
                    Err(EngineError::Internal(e)) => return Err(EngineError::Internal(e)),
                    Err(e) => {
                        report.failed += 1;
                        reject(rejected, &record, &e.to_string())?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// How an export is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, a header row first.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

/// The columns of an export, in order.
pub const COLUMNS: &[&str] = &[
    "id",
    "email",
    "firstName",
    "lastName",
    "phone",
    "lifecycleStage",
    "source",
    "timezone",
    "companyId",
    "ownerId",
    "tags",
    "attributes",
    "createdAt",
    "updatedAt",
];

/// Contacts one page of an export reads.
pub const EXPORT_PAGE: u64 = 1000;

/// The header an export begins with (CSV only).
pub fn export_header(format: Format) -> Vec<u8> {
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(COLUMNS);
            w.into_inner().unwrap_or_default()
        }
        Format::JsonLines => Vec::new(),
    }
}

/// The next page of a workspace's live contacts that `condition` picks, past id `after`,
/// rendered; the last id, or `None` once there are no more.
pub async fn export_page(
    db: &DatabaseConnection,
    workspace_id: i64,
    condition: Condition,
    after: i64,
    format: Format,
) -> Result<Option<(Vec<u8>, i64)>> {
    let page = contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .filter(contact::Column::DeletedAt.is_null())
        .filter(contact::Column::Id.gt(after))
        .filter(condition)
        .order_by_asc(contact::Column::Id)
        .limit(EXPORT_PAGE)
        .all(db)
        .await?;
    let Some(last) = page.last().map(|c| c.id) else {
        return Ok(None);
    };
    let rows = page.iter().map(|c| {
        serde_json::json!({
            "id": c.id.to_string(),
            "email": c.email,
            "firstName": c.first_name,
            "lastName": c.last_name,
            "phone": c.phone,
            "lifecycleStage": c.lifecycle_stage,
            "source": c.source,
            "timezone": c.timezone,
            "companyId": c.company_id.map(|i| i.to_string()),
            "ownerId": c.owner_id.map(|i| i.to_string()),
            "tags": c.tags,
            "attributes": c.attributes,
            "createdAt": c.created_at,
            "updatedAt": c.updated_at,
        })
    });
    let mut out = Vec::new();
    match format {
        Format::JsonLines => {
            for row in rows {
                serde_json::to_writer(&mut out, &row)
                    .map_err(|e| EngineError::internal_from("rendering an export", e))?;
                out.push(b'\n');
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            for row in rows {
                let cells: Vec<String> = COLUMNS
                    .iter()
                    .map(|k| match &row[*k] {
                        Value::Null => String::new(),
                        Value::String(s) => s.clone(),
                        Value::Array(items) => items
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(";"),
                        other => other.to_string(),
                    })
                    .collect();
                w.write_record(&cells)
                    .map_err(|e| EngineError::internal_from("rendering an export", e))?;
            }
            w.flush()
                .map_err(|e| EngineError::internal_from("rendering an export", e))?;
        }
    }
    Ok(Some((out, last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_suggest_their_fields() {
        assert_eq!(suggest("E-mail"), Target::Email);
        assert_eq!(suggest("First Name"), Target::FirstName);
        assert_eq!(suggest("surname"), Target::LastName);
        assert_eq!(suggest("Lead Source"), Target::Source);
        assert_eq!(suggest("Plan tier"), Target::Attribute("plantier".into()));
        assert!(Target::parse("m", "attributes.plan").is_ok());
        assert!(Target::parse("m", "password").is_err());
    }

    #[test]
    fn rows_become_contact_inputs() {
        let record = csv::StringRecord::from(vec!["a@b.example", "Ada", "vip; beta", "", "pro"]);
        let targets = [
            Target::Email,
            Target::FirstName,
            Target::Tags,
            Target::Phone,
            Target::Attribute("plan".into()),
        ];
        let input = to_input(&record, &targets, "line 2").unwrap();
        assert_eq!(input.email, Patch::Set("a@b.example".into()));
        assert_eq!(input.tags, Some(vec!["vip".into(), "beta".into()]));
        assert!(
            matches!(input.phone, Patch::Keep),
            "an empty cell keeps the field"
        );
        assert_eq!(input.attributes, Some(serde_json::json!({"plan": "pro"})));
    }
}
