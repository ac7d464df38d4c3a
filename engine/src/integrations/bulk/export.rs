//! Export: the live records of a workspace that a filter picks, a page at a time in id
//! order, rendered as CSV or JSON lines with the API's field names.

use rapport_schema::{company, contact, deal};
use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use serde_json::{Map, Value};

use super::Kind;
use crate::error::{EngineError, Result};
use crate::platform::outbox::camel;

/// How an export is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, a header row first.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

/// Records one page of an export reads.
pub const EXPORT_PAGE: u64 = 1000;

/// The stored columns an export of `kind` holds, in order (named in the API's camelCase
/// in the output). Internal columns (hashes, merge links, the workspace) stay out.
pub fn columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Contacts => &[
            "id",
            "email",
            "first_name",
            "last_name",
            "phone",
            "lifecycle_stage",
            "source",
            "timezone",
            "company_id",
            "owner_id",
            "tags",
            "attributes",
            "created_at",
            "updated_at",
        ],
        Kind::Companies => &[
            "id",
            "name",
            "domain",
            "industry",
            "size",
            "country",
            "owner_id",
            "created_at",
            "updated_at",
        ],
        Kind::Deals => &[
            "id",
            "external_id",
            "name",
            "pipeline_id",
            "stage_id",
            "status",
            "amount_minor",
            "currency",
            "contact_id",
            "company_id",
            "owner_id",
            "expected_close_date",
            "closed_at",
            "lost_reason",
            "competitor",
            "created_at",
            "updated_at",
        ],
    }
}

/// The header an export begins with (CSV only).
pub fn export_header(kind: Kind, format: Format) -> Vec<u8> {
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let names: Vec<String> = columns(kind).iter().map(|c| camel(c)).collect();
            let _ = w.write_record(&names);
            w.into_inner().unwrap_or_default()
        }
        Format::JsonLines => Vec::new(),
    }
}

/// The next page of a workspace's live `kind` records that `condition` picks, past id
/// `after`, rendered; the last id, or `None` once there are no more.
pub async fn export_page(
    db: &DatabaseConnection,
    kind: Kind,
    workspace_id: i64,
    condition: Condition,
    after: i64,
    format: Format,
) -> Result<Option<(Vec<u8>, i64)>> {
    use contact::Column as C;
    use {company::Column as Co, deal::Column as D};
    let page = match kind {
        Kind::Contacts => {
            let cols = [C::WorkspaceId, C::Id, C::DeletedAt];
            page::<contact::Entity>(db, cols, workspace_id, after, condition).await?
        }
        Kind::Companies => {
            let cols = [Co::WorkspaceId, Co::Id, Co::DeletedAt];
            page::<company::Entity>(db, cols, workspace_id, after, condition).await?
        }
        Kind::Deals => {
            let cols = [D::WorkspaceId, D::Id, D::DeletedAt];
            page::<deal::Entity>(db, cols, workspace_id, after, condition).await?
        }
    };
    let Some(last) = page.last().and_then(|row| row["id"].as_i64()) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    match format {
        Format::JsonLines => {
            for row in &page {
                let mut object = Map::new();
                for column in columns(kind) {
                    object.insert(camel(column), cell(column, &row[*column]));
                }
                serde_json::to_writer(&mut out, &object)
                    .map_err(|e| EngineError::internal_from("rendering an export", e))?;
                out.push(b'\n');
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            for row in &page {
                let cells = columns(kind)
                    .iter()
                    .map(|column| match cell(column, &row[*column]) {
                        Value::Null => String::new(),
                        Value::String(s) => s,
                        Value::Array(items) => items
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(";"),
                        other => other.to_string(),
                    });
                w.write_record(cells)
                    .map_err(|e| EngineError::internal_from("rendering an export", e))?;
            }
            w.flush()
                .map_err(|e| EngineError::internal_from("rendering an export", e))?;
        }
    }
    Ok(Some((out, last)))
}

/// A stored value as the API shows it: ids as strings (the API's `ID`).
fn cell(column: &str, value: &Value) -> Value {
    match value {
        Value::Number(n) if column == "id" || column.ends_with("_id") => {
            Value::String(n.to_string())
        }
        other => other.clone(),
    }
}

/// One page of `E`'s rows, as their stored JSON; `cols` are its workspace, id and
/// deletion columns.
async fn page<E>(
    db: &DatabaseConnection,
    [workspace, id, deleted]: [E::Column; 3],
    workspace_id: i64,
    after: i64,
    condition: Condition,
) -> Result<Vec<Value>>
where
    E: EntityTrait,
    E::Model: Serialize,
{
    let models = E::find()
        .filter(workspace.eq(workspace_id))
        .filter(deleted.is_null())
        .filter(id.gt(after))
        .filter(condition)
        .order_by_asc(id)
        .limit(EXPORT_PAGE)
        .all(db)
        .await?;
    models
        .iter()
        .map(|m| {
            serde_json::to_value(m)
                .map_err(|e| EngineError::internal_from("rendering an export", e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_as_the_api_names_them() {
        assert_eq!(camel("expected_close_date"), "expectedCloseDate");
        assert_eq!(camel("id"), "id");
        assert_eq!(cell("owner_id", &Value::from(7)), Value::from("7"));
        assert_eq!(cell("size", &Value::from(7)), Value::from(7));
        let header = String::from_utf8(export_header(Kind::Deals, Format::Csv)).unwrap();
        assert!(header.starts_with("id,externalId,name,"), "{header}");
    }
}
