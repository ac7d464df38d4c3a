//! Companies: creating, changing and bulk upserting by domain.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::records;
use crate::values::{CountryCode, Domain, Patch, Text};
use rapport_schema::{company, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use std::collections::HashMap;

/// The most companies one bulk call may upsert.
pub const BULK_LIMIT: usize = 1000;

/// Fields of a company as a client sends them; on update, absent fields are kept.
#[derive(Clone, Debug, Default)]
pub struct CompanyInput {
    /// Display name.
    pub name: Option<String>,
    /// Web domain, the natural key.
    pub domain: Patch<String>,
    /// Industry, free text.
    pub industry: Patch<String>,
    /// Number of employees.
    pub size: Patch<i32>,
    /// ISO 3166-1 alpha-2 country.
    pub country: Patch<String>,
    /// The team member who owns the account.
    pub owner_id: Patch<i64>,
}

struct Parsed {
    name: Option<String>,
    domain: Patch<Domain>,
    industry: Patch<String>,
    size: Patch<i32>,
    country: Patch<CountryCode>,
    owner_id: Patch<i64>,
}

fn parse(input: CompanyInput, field: &str) -> Result<Parsed> {
    let f = |name: &str| {
        if field.is_empty() {
            name.to_string()
        } else {
            format!("{field}.{name}")
        }
    };
    Ok(Parsed {
        name: input
            .name
            .map(|n| Text::parse(&f("name"), &n, 200).map(Text::into_string))
            .transpose()?,
        domain: input.domain.parse(|d| Domain::parse(&f("domain"), &d))?,
        industry: input
            .industry
            .parse(|s| Text::parse(&f("industry"), &s, 100).map(Text::into_string))?,
        size: input.size.parse(|n| {
            if n < 0 {
                Err(EngineError::invalid(f("size"), "must not be negative"))
            } else {
                Ok(n)
            }
        })?,
        country: input
            .country
            .parse(|c| CountryCode::parse(&f("country"), &c))?,
        owner_id: input.owner_id,
    })
}

async fn ensure_domain_free(
    db: &impl ConnectionTrait,
    ws: i64,
    domain: &Domain,
    except: Option<i64>,
) -> Result<()> {
    let mut q = company::Entity::find()
        .filter(company::Column::WorkspaceId.eq(ws))
        .filter(company::Column::Domain.eq(domain.as_str()));
    if let Some(id) = except {
        q = q.filter(company::Column::Id.ne(id));
    }
    if let Some(other) = q.one(db).await? {
        return Err(EngineError::Conflict(format!(
            "company {} already has the domain {}",
            other.id,
            domain.as_str()
        )));
    }
    Ok(())
}

async fn write(
    db: &impl ConnectionTrait,
    ws: i64,
    mut am: company::ActiveModel,
    p: Parsed,
) -> Result<company::Model> {
    if let Patch::Set(id) = p.owner_id {
        records::ensure_exists::<user::Entity>(db, ws, id).await?;
    }
    if let Some(n) = p.name {
        am.name = Set(n);
    }
    (p.domain.parse(|d| Ok(d.as_str().to_string()))?).apply(&mut am.domain);
    p.industry.apply(&mut am.industry);
    p.size.apply(&mut am.size);
    (p.country.parse(|c| Ok(c.as_str().to_string()))?).apply(&mut am.country);
    p.owner_id.apply(&mut am.owner_id);
    am.updated_at = Set(clock::now());
    Ok(if matches!(am.id, sea_orm::ActiveValue::NotSet) {
        am.insert(db).await?
    } else {
        am.update(db).await?
    })
}

fn new_row(ws: i64) -> company::ActiveModel {
    let now = clock::now();
    company::ActiveModel {
        workspace_id: Set(ws),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// Inserts a company with only a name (used by lead conversion).
pub(crate) async fn insert_named(
    db: &impl ConnectionTrait,
    ws: i64,
    name: &str,
) -> Result<company::Model> {
    let mut am = new_row(ws);
    am.name = Set(name.to_string());
    Ok(am.insert(db).await?)
}

/// The ids of the company's live contacts, as a subquery: what a company's activities,
/// inquiries and timeline roll up.
pub fn people_of(ws: i64, company_id: i64) -> sea_orm::sea_query::SelectStatement {
    use rapport_schema::contact;
    sea_orm::sea_query::Query::select()
        .column(contact::Column::Id)
        .from(contact::Entity)
        .and_where(contact::Column::WorkspaceId.eq(ws))
        .and_where(contact::Column::CompanyId.eq(company_id))
        .and_where(contact::Column::DeletedAt.is_null())
        .to_owned()
}

/// The ids of the company's live deals, as a subquery.
pub fn deals_of(ws: i64, company_id: i64) -> sea_orm::sea_query::SelectStatement {
    use rapport_schema::deal;
    sea_orm::sea_query::Query::select()
        .column(deal::Column::Id)
        .from(deal::Entity)
        .and_where(deal::Column::WorkspaceId.eq(ws))
        .and_where(deal::Column::CompanyId.eq(company_id))
        .and_where(deal::Column::DeletedAt.is_null())
        .to_owned()
}

/// Creates a company.
pub async fn create(
    db: &DatabaseConnection,
    who: &Principal,
    input: CompanyInput,
) -> Result<company::Model> {
    let ws = who.workspace_id;
    let p = parse(input, "")?;
    if p.name.is_none() {
        return Err(EngineError::invalid("name", "is required"));
    }
    let tx = crate::platform::db::write(db).await?;
    if let Patch::Set(d) = &p.domain {
        ensure_domain_free(&tx, ws, d, None).await?;
    }
    let saved = write(&tx, ws, new_row(ws), p).await?;
    tx.commit().await?;
    Ok(saved)
}

/// Changes the given fields of a company.
pub async fn update(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
    input: CompanyInput,
) -> Result<company::Model> {
    let ws = who.workspace_id;
    let p = parse(input, "")?;
    let tx = crate::platform::db::write(db).await?;
    let current = records::get::<company::Entity>(&tx, ws, id).await?;
    if let Patch::Set(d) = &p.domain {
        ensure_domain_free(&tx, ws, d, Some(id)).await?;
    }
    let saved = write(&tx, ws, current.into(), p).await?;
    tx.commit().await?;
    Ok(saved)
}

/// Checks one input as [`bulk_upsert`] would before writing (every value parsed, the
/// domain present), without touching the database; errors name `field`.
pub fn check_upsert(input: &CompanyInput, field: &str) -> Result<()> {
    let p = parse(input.clone(), field)?;
    if !matches!(p.domain, Patch::Set(_)) {
        return Err(EngineError::invalid(
            format!("{field}.domain"),
            "is required to upsert (it is the key)",
        ));
    }
    Ok(())
}

/// Creates or updates many companies keyed by domain, all or nothing.
pub async fn bulk_upsert(
    db: &DatabaseConnection,
    who: &Principal,
    inputs: Vec<CompanyInput>,
) -> Result<Vec<(company::Model, bool)>> {
    let ws = who.workspace_id;
    if inputs.len() > BULK_LIMIT {
        return Err(EngineError::invalid(
            "companies",
            format!(
                "at most {BULK_LIMIT} companies per call (got {})",
                inputs.len()
            ),
        ));
    }
    let mut parsed = Vec::with_capacity(inputs.len());
    let mut seen = HashMap::new();
    for (i, input) in inputs.into_iter().enumerate() {
        let field = format!("companies[{i}]");
        let p = parse(input, &field)?;
        let Patch::Set(domain) = &p.domain else {
            return Err(EngineError::invalid(
                format!("{field}.domain"),
                "is required to upsert (it is the key)",
            ));
        };
        if let Some(j) = seen.insert(domain.as_str().to_string(), i) {
            return Err(EngineError::invalid(
                format!("{field}.domain"),
                format!("{} also appears at companies[{j}]", domain.as_str()),
            ));
        }
        parsed.push(p);
    }
    let tx = crate::platform::db::write(db).await?;
    let existing: HashMap<String, company::Model> = crate::platform::db::planned_lookup(
        &tx,
        company::Entity::find()
            .filter(company::Column::WorkspaceId.eq(ws))
            .filter(company::Column::Domain.is_in(seen.into_keys()))
            .all(&tx),
    )
    .await?
    .into_iter()
    .filter_map(|c| c.domain.clone().map(|d| (d, c)))
    .collect();
    let mut out = Vec::with_capacity(parsed.len());
    for (i, p) in parsed.into_iter().enumerate() {
        let Patch::Set(domain) = &p.domain else {
            unreachable!("checked above")
        };
        let (am, created) = match existing.get(domain.as_str()).cloned() {
            Some(c) if c.deleted_at.is_some() => {
                return Err(EngineError::Conflict(format!(
                    "companies[{i}]: company {} is deleted; restore it first",
                    c.id
                )));
            }
            Some(c) => (c.into(), false),
            None if p.name.is_none() => {
                return Err(EngineError::invalid(
                    format!("companies[{i}].name"),
                    "is required for a new company",
                ));
            }
            None => (new_row(ws), true),
        };
        out.push((write(&tx, ws, am, p).await?, created));
    }
    tx.commit().await?;
    Ok(out)
}
