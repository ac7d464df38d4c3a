//! CSV imports on the graph: ask what a file's headers suggest, upload a file with a
//! column mapping (as a dry run or for real), watch the job's state and counts, confirm a
//! dry run, and download the refused rows from `rejectsUrl`.

use std::collections::HashMap;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject, Upload};
use chrono::{DateTime, Utc};
use rapport_engine::integrations::bulk::{self, Kind, Target};
use rapport_engine::integrations::imports::{self, ImportState as State};
use rapport_engine::platform::queue::Queue;
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, invalid};
use crate::graphql::context::principal;
use crate::graphql::ids::{parse_id, to_id};

/// What a file holds.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ImportKind {
    /// People, upserted by email.
    Contacts,
    /// Accounts, upserted by domain.
    Companies,
    /// Deals, upserted by external id (a row without one is a new deal).
    Deals,
}

impl From<ImportKind> for Kind {
    fn from(k: ImportKind) -> Self {
        match k {
            ImportKind::Contacts => Kind::Contacts,
            ImportKind::Companies => Kind::Companies,
            ImportKind::Deals => Kind::Deals,
        }
    }
}

impl From<Kind> for ImportKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Contacts => ImportKind::Contacts,
            Kind::Companies => ImportKind::Companies,
            Kind::Deals => ImportKind::Deals,
        }
    }
}

/// Where an import is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ImportState {
    /// Waiting for a worker.
    Queued,
    /// A worker is reading the file: `processed` of `total` rows so far.
    Running,
    /// Every row was read: the counts say what happened to each.
    Done,
    /// The import as a whole failed: `error` says why.
    Failed,
}

impl From<State> for ImportState {
    fn from(s: State) -> Self {
        match s {
            State::Queued => ImportState::Queued,
            State::Running => ImportState::Running,
            State::Done => ImportState::Done,
            State::Failed => ImportState::Failed,
        }
    }
}

/// A column of a file and the field it fills.
#[derive(SimpleObject, Clone)]
pub struct ImportColumn {
    /// The header, as in the file.
    pub header: String,
    /// The field: one of the kind's fields, `attributes.<key>` (contacts) or `skip`.
    pub target: String,
}

/// Where one column goes.
#[derive(InputObject)]
pub struct ColumnMappingInput {
    /// The header, as in the file.
    pub header: String,
    /// The field: one of the kind's fields (contacts: email, firstName, lastName, phone,
    /// source, timezone, lifecycleStage, tags; companies: name, domain, industry, size,
    /// country; deals: externalId, name, amount, currency, pipeline, stage, contactEmail,
    /// companyDomain, expectedCloseDate), `attributes.<key>` (contacts) or `skip`.
    pub target: String,
}

/// A count as GraphQL's 32-bit `Int` (an upload is far smaller than 2³¹ rows or bytes).
fn int(n: i64) -> i32 {
    n.clamp(0, i64::from(i32::MAX)) as i32
}

/// A CSV import, worked by the job queue.
pub struct Import(pub s::import::Model);

#[Object]
impl Import {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn kind(&self) -> ImportKind {
        Kind::parse("kind", &self.0.kind)
            .map(Into::into)
            .unwrap_or(ImportKind::Contacts)
    }
    async fn state(&self) -> ImportState {
        State::from_db(&self.0.state).into()
    }
    /// Checks every row and writes nothing; `confirmImport` runs it for real.
    async fn dry_run(&self) -> bool {
        self.0.dry_run
    }
    async fn file_name(&self) -> &str {
        &self.0.file_name
    }
    async fn file_bytes(&self) -> i32 {
        int(self.0.file_bytes)
    }
    /// The file's columns in order, with the field each fills.
    async fn columns(&self) -> Vec<ImportColumn> {
        serde_json::from_value::<Vec<imports::Column>>(self.0.columns.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| ImportColumn {
                header: c.header,
                target: c.target,
            })
            .collect()
    }
    /// Rows in the file, once a worker has counted them.
    async fn total(&self) -> Option<i32> {
        self.0.total.map(int)
    }
    /// Rows read so far.
    async fn processed(&self) -> i32 {
        int(self.0.processed)
    }
    /// Records created (a dry run: that would be).
    async fn created(&self) -> i32 {
        int(self.0.created)
    }
    /// Records that existed by their key and were updated (a dry run: would be).
    async fn updated(&self) -> i32 {
        int(self.0.updated)
    }
    /// Rows refused, each with its reason in the reject file.
    async fn failed(&self) -> i32 {
        int(self.0.failed)
    }
    /// Why the import as a whole failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// Where the refused rows are (the file's columns and an `error` column), to fix
    /// and import again: a GET with the same credentials. Null until the import is done,
    /// or when no row was refused.
    async fn rejects_url(&self) -> Option<String> {
        (State::from_db(&self.0.state) == State::Done && self.0.failed > 0)
            .then(|| format!("/imports/{}/rejects", self.0.id))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// Reading imports.
#[derive(Default)]
pub struct ImportQuery;

#[Object]
impl ImportQuery {
    /// The latest imports, newest first (`first`: 1–100).
    async fn imports(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<Import>> {
        if !(1..=100).contains(&first) {
            return Err(invalid("first", "must be between 1 and 100"));
        }
        let ws = principal(ctx)?.workspace_id;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(imports::list(db, ws, first as u64)
            .await
            .gql()?
            .into_iter()
            .map(Import)
            .collect())
    }

    async fn import(&self, ctx: &Context<'_>, id: ID) -> Result<Import> {
        let ws = principal(ctx)?.workspace_id;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(Import(
            imports::get(db, ws, parse_id("id", &id)?).await.gql()?,
        ))
    }

    /// The field each header would fill if the import named no mapping: what a form
    /// shows before the upload, for people to correct.
    async fn suggested_import_mapping(
        &self,
        ctx: &Context<'_>,
        kind: ImportKind,
        headers: Vec<String>,
    ) -> Result<Vec<ImportColumn>> {
        principal(ctx)?;
        if headers.len() > bulk::import::MAX_COLUMNS {
            return Err(invalid(
                "headers",
                format!("at most {} columns", bulk::import::MAX_COLUMNS),
            ));
        }
        if let Some(i) = headers.iter().position(|h| h.len() > MAX_HEADER) {
            return Err(invalid(
                &format!("headers[{i}]"),
                format!("at most {MAX_HEADER} bytes"),
            ));
        }
        let names: Vec<&str> = headers.iter().map(String::as_str).collect();
        Ok(names
            .iter()
            .zip(bulk::import::suggested(kind.into(), &names))
            .map(|(h, t)| ImportColumn {
                header: (*h).to_string(),
                target: t.name(),
            })
            .collect())
    }
}

/// Bytes a header in a mapping may have.
const MAX_HEADER: usize = 1024;

fn mapping_of(
    kind: Kind,
    mapping: Option<Vec<ColumnMappingInput>>,
) -> Result<HashMap<String, Target>> {
    let mut out = HashMap::new();
    let mapping = mapping.unwrap_or_default();
    if mapping.len() > bulk::import::MAX_COLUMNS {
        return Err(invalid(
            "mapping",
            format!("at most {} columns", bulk::import::MAX_COLUMNS),
        ));
    }
    for (i, m) in mapping.into_iter().enumerate() {
        if m.header.len() > MAX_HEADER {
            return Err(invalid(
                &format!("mapping[{i}].header"),
                format!("at most {MAX_HEADER} bytes"),
            ));
        }
        let target = Target::parse(kind, &format!("mapping[{i}].target"), &m.target).gql()?;
        if out.insert(m.header.clone(), target).is_some() {
            return Err(invalid(
                &format!("mapping[{i}].header"),
                format!("{:?} is mapped twice", m.header),
            ));
        }
    }
    Ok(out)
}

/// Starting imports.
#[derive(Default)]
pub struct ImportMutation;

#[Object]
impl ImportMutation {
    /// Uploads a CSV file (multipart upload, with a header row) and imports it as a job;
    /// answers at once, follow it with `import(id)`. Columns are matched by their header
    /// unless `mapping` says otherwise (see `suggestedImportMapping`); contacts are upserted
    /// by email, companies by domain, deals by external id. With `dryRun`, every row is
    /// checked and nothing written; `confirmImport` then imports the same file. Managers
    /// and admins only.
    async fn import_csv(
        &self,
        ctx: &Context<'_>,
        kind: ImportKind,
        file: Upload,
        mapping: Option<Vec<ColumnMappingInput>>,
        #[graphql(default = false)] dry_run: bool,
    ) -> Result<Import> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let kind: Kind = kind.into();
        let mapping = mapping_of(kind, mapping)?;
        let upload = file
            .value(ctx)
            .map_err(|_| invalid("file", "the upload could not be read"))?;
        let queue = Queue::new(db).gql()?;
        let upload = imports::Upload {
            file_name: upload.filename.clone(),
            content: upload.into_read(),
        };
        Ok(Import(
            imports::start(db, &queue, who, kind, upload, &mapping, dry_run)
                .await
                .gql()?,
        ))
    }

    /// Imports the file of a finished dry run for real (with its mapping, or `mapping`),
    /// as a new import; the file is not uploaded again. A dry run is confirmed once.
    async fn confirm_import(
        &self,
        ctx: &Context<'_>,
        id: ID,
        mapping: Option<Vec<ColumnMappingInput>>,
    ) -> Result<Import> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let id = parse_id("id", &id)?;
        let dry = imports::get(db, who.workspace_id, id).await.gql()?;
        let kind = Kind::parse("kind", &dry.kind).gql()?;
        let mapping = match mapping {
            Some(m) => Some(mapping_of(kind, Some(m))?),
            None => None,
        };
        let queue = Queue::new(db).gql()?;
        Ok(Import(
            imports::confirm(db, &queue, who, id, mapping.as_ref())
                .await
                .gql()?,
        ))
    }
}
