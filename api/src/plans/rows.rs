//! The rows a plan reads and the fields it writes straight from them: the plain columns of
//! contacts, companies, deals, activities and stages, and the relations between them. Each
//! value is written as the schema's resolver would give it (`api/src/graphql/types`); the
//! differential tests (`tests/e2e/planned_queries.rs`) hold the two to the same bytes.

use async_graphql::InputType;
use chrono::{DateTime, Utc};
use rapport_schema as s;
use std::io::Write;

use crate::graphql::enums::{ActivityKind, DealStatus, Direction, LifecycleStage};

/// The object types a plan can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Contact,
    Company,
    Deal,
    Activity,
    Stage,
}

impl Kind {
    /// The GraphQL type name (`__typename`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Contact => "Contact",
            Kind::Company => "Company",
            Kind::Deal => "Deal",
            Kind::Activity => "Activity",
            Kind::Stage => "Stage",
        }
    }
}

/// One row of any of the [`Kind`]s.
#[derive(Clone, Debug)]
pub enum Row {
    Contact(s::contact::Model),
    Company(s::company::Model),
    Deal(s::deal::Model),
    Activity(s::activity::Model),
    Stage(s::stage::Model),
}

impl Row {
    /// The row's id.
    pub fn id(&self) -> i64 {
        match self {
            Row::Contact(r) => r.id,
            Row::Company(r) => r.id,
            Row::Deal(r) => r.id,
            Row::Activity(r) => r.id,
            Row::Stage(r) => r.id,
        }
    }

    /// When it was created, last updated and put in the trash (a stage shows none).
    fn times(&self) -> Option<Times<'_>> {
        match self {
            Row::Contact(r) => Some((&r.created_at, &r.updated_at, r.deleted_at.as_ref())),
            Row::Company(r) => Some((&r.created_at, &r.updated_at, r.deleted_at.as_ref())),
            Row::Deal(r) => Some((&r.created_at, &r.updated_at, r.deleted_at.as_ref())),
            Row::Activity(r) => Some((&r.created_at, &r.updated_at, r.deleted_at.as_ref())),
            Row::Stage(_) => None,
        }
    }

    /// The id of the row `one` points at, if it points at one.
    pub fn points_at(&self, one: One) -> Option<i64> {
        match (one, self) {
            (One::ContactCompany, Row::Contact(r)) => r.company_id,
            (One::DealContact, Row::Deal(r)) => r.contact_id,
            (One::DealCompany, Row::Deal(r)) => r.company_id,
            (One::DealStage, Row::Deal(r)) => Some(r.stage_id),
            (One::ActivityContact, Row::Activity(r)) => r.contact_id,
            (One::ActivityDeal, Row::Activity(r)) => r.deal_id,
            _ => None,
        }
    }
}

/// A row's creation, last update and trash times.
type Times<'a> = (
    &'a DateTime<Utc>,
    &'a DateTime<Utc>,
    Option<&'a DateTime<Utc>>,
);

/// A field read from one row's own columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Id,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
    Name,
    ContactFirstName,
    ContactLastName,
    ContactEmail,
    ContactOtherEmails,
    ContactPhone,
    ContactLifecycleStage,
    ContactSource,
    ContactTags,
    ContactAttributes,
    ContactTimezone,
    ContactMergedIntoId,
    ContactHasUnsubscribeUrl,
    CompanyDomain,
    CompanyIndustry,
    CompanySize,
    CompanyCountry,
    DealAmount,
    DealAmountMinor,
    DealCurrency,
    DealExpectedCloseDate,
    DealStatus,
    DealLostReason,
    DealCompetitor,
    DealExternalId,
    DealClosedAt,
    ActivityKind,
    ActivityDirection,
    ActivitySubject,
    ActivityBody,
    ActivityOccurredAt,
    StagePosition,
    StageWinProbability,
    StageIsWon,
    StageIsLost,
}

/// The column field `name` of `kind`, if it is one a plan writes.
pub fn column(kind: Kind, name: &str) -> Option<Column> {
    use Column::*;
    let shared = match name {
        "id" => Some(Id),
        // A stage shows neither its times nor a trash.
        "createdAt" if kind != Kind::Stage => Some(CreatedAt),
        "updatedAt" if kind != Kind::Stage => Some(UpdatedAt),
        "deletedAt" if kind != Kind::Stage => Some(DeletedAt),
        "name" if kind != Kind::Activity => Some(Name),
        _ => None,
    };
    if shared.is_some() {
        return shared;
    }
    Some(match (kind, name) {
        (Kind::Contact, "firstName") => ContactFirstName,
        (Kind::Contact, "lastName") => ContactLastName,
        (Kind::Contact, "email") => ContactEmail,
        (Kind::Contact, "otherEmails") => ContactOtherEmails,
        (Kind::Contact, "phone") => ContactPhone,
        (Kind::Contact, "lifecycleStage") => ContactLifecycleStage,
        (Kind::Contact, "source") => ContactSource,
        (Kind::Contact, "tags") => ContactTags,
        (Kind::Contact, "attributes") => ContactAttributes,
        (Kind::Contact, "timezone") => ContactTimezone,
        (Kind::Contact, "mergedIntoId") => ContactMergedIntoId,
        (Kind::Contact, "hasUnsubscribeUrl") => ContactHasUnsubscribeUrl,
        (Kind::Company, "domain") => CompanyDomain,
        (Kind::Company, "industry") => CompanyIndustry,
        (Kind::Company, "size") => CompanySize,
        (Kind::Company, "country") => CompanyCountry,
        (Kind::Deal, "amount") => DealAmount,
        (Kind::Deal, "amountMinor") => DealAmountMinor,
        (Kind::Deal, "currency") => DealCurrency,
        (Kind::Deal, "expectedCloseDate") => DealExpectedCloseDate,
        (Kind::Deal, "status") => DealStatus,
        (Kind::Deal, "lostReason") => DealLostReason,
        (Kind::Deal, "competitor") => DealCompetitor,
        (Kind::Deal, "externalId") => DealExternalId,
        (Kind::Deal, "closedAt") => DealClosedAt,
        (Kind::Activity, "kind") => ActivityKind,
        (Kind::Activity, "direction") => ActivityDirection,
        (Kind::Activity, "subject") => ActivitySubject,
        (Kind::Activity, "body") => ActivityBody,
        (Kind::Activity, "occurredAt") => ActivityOccurredAt,
        (Kind::Stage, "position") => StagePosition,
        (Kind::Stage, "winProbability") => StageWinProbability,
        (Kind::Stage, "isWon") => StageIsWon,
        (Kind::Stage, "isLost") => StageIsLost,
        _ => return None,
    })
}

/// A field naming one row of another table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum One {
    ContactCompany,
    DealContact,
    DealCompany,
    DealStage,
    ActivityContact,
    ActivityDeal,
}

/// The to-one relation `name` of `kind`, and the kind it reaches.
pub fn one(kind: Kind, name: &str) -> Option<(One, Kind)> {
    Some(match (kind, name) {
        (Kind::Contact, "company") => (One::ContactCompany, Kind::Company),
        (Kind::Deal, "contact") => (One::DealContact, Kind::Contact),
        (Kind::Deal, "company") => (One::DealCompany, Kind::Company),
        (Kind::Deal, "stage") => (One::DealStage, Kind::Stage),
        (Kind::Activity, "contact") => (One::ActivityContact, Kind::Contact),
        (Kind::Activity, "deal") => (One::ActivityDeal, Kind::Deal),
        _ => return None,
    })
}

/// A field listing rows of another table that point at this one (a connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Many {
    ContactDeals,
    ContactActivities,
    CompanyContacts,
    CompanyDeals,
}

/// The nested list `name` of `kind`, and the kind it lists.
pub fn many(kind: Kind, name: &str) -> Option<(Many, Kind)> {
    Some(match (kind, name) {
        (Kind::Contact, "deals") => (Many::ContactDeals, Kind::Deal),
        (Kind::Contact, "activities") => (Many::ContactActivities, Kind::Activity),
        (Kind::Company, "contacts") => (Many::CompanyContacts, Kind::Contact),
        (Kind::Company, "deals") => (Many::CompanyDeals, Kind::Deal),
        _ => return None,
    })
}

/// Writes `column` of `row` as JSON.
pub fn write_column(out: &mut Vec<u8>, row: &Row, column: Column) {
    use Column as C;
    match (row, column) {
        (_, C::Id) => id(out, row.id()),
        (_, C::CreatedAt) => nullable(out, row.times().map(|t| t.0), time),
        (_, C::UpdatedAt) => nullable(out, row.times().map(|t| t.1), time),
        (_, C::DeletedAt) => nullable(out, row.times().and_then(|t| t.2), time),
        (Row::Contact(r), C::Name) => text(out, format!("{} {}", r.first_name, r.last_name).trim()),
        (Row::Company(r), C::Name) => text(out, &r.name),
        (Row::Deal(r), C::Name) => text(out, &r.name),
        (Row::Stage(r), C::Name) => text(out, &r.name),
        (Row::Contact(r), C::ContactFirstName) => text(out, &r.first_name),
        (Row::Contact(r), C::ContactLastName) => text(out, &r.last_name),
        (Row::Contact(r), C::ContactEmail) => opt_text(out, &r.email),
        (Row::Contact(r), C::ContactOtherEmails) => strings(out, &r.other_emails),
        (Row::Contact(r), C::ContactPhone) => opt_text(out, &r.phone),
        (Row::Contact(r), C::ContactLifecycleStage) => {
            enumeration(out, LifecycleStage::from_db(&r.lifecycle_stage))
        }
        (Row::Contact(r), C::ContactSource) => opt_text(out, &r.source),
        (Row::Contact(r), C::ContactTags) => strings(out, &r.tags),
        (Row::Contact(r), C::ContactAttributes) => json(out, &r.attributes),
        (Row::Contact(r), C::ContactTimezone) => opt_text(out, &r.timezone),
        (Row::Contact(r), C::ContactMergedIntoId) => nullable(out, r.merged_into_id, id),
        (Row::Contact(r), C::ContactHasUnsubscribeUrl) => boolean(out, r.email.is_some()),
        (Row::Company(r), C::CompanyDomain) => opt_text(out, &r.domain),
        (Row::Company(r), C::CompanyIndustry) => opt_text(out, &r.industry),
        (Row::Company(r), C::CompanySize) => nullable(out, r.size, number),
        (Row::Company(r), C::CompanyCountry) => opt_text(out, &r.country),
        (Row::Deal(r), C::DealAmount) => float(
            out,
            crate::graphql::types::major(r.amount_minor, &r.currency),
        ),
        (Row::Deal(r), C::DealAmountMinor) => number(out, r.amount_minor),
        (Row::Deal(r), C::DealCurrency) => text(out, &r.currency),
        (Row::Deal(r), C::DealExpectedCloseDate) => nullable(out, r.expected_close_date, |o, d| {
            text(o, &d.format("%Y-%m-%d").to_string())
        }),
        (Row::Deal(r), C::DealStatus) => enumeration(out, DealStatus::from_db(&r.status)),
        (Row::Deal(r), C::DealLostReason) => opt_text(out, &r.lost_reason),
        (Row::Deal(r), C::DealCompetitor) => opt_text(out, &r.competitor),
        (Row::Deal(r), C::DealExternalId) => opt_text(out, &r.external_id),
        (Row::Deal(r), C::DealClosedAt) => nullable(out, r.closed_at.as_ref(), time),
        (Row::Activity(r), C::ActivityKind) => enumeration(out, ActivityKind::from_db(&r.kind)),
        (Row::Activity(r), C::ActivityDirection) => {
            nullable(out, r.direction.as_deref(), |o, d| {
                enumeration(o, Direction::from_db(d))
            })
        }
        (Row::Activity(r), C::ActivitySubject) => opt_text(out, &r.subject),
        (Row::Activity(r), C::ActivityBody) => opt_text(out, &r.body),
        (Row::Activity(r), C::ActivityOccurredAt) => time(out, &r.occurred_at),
        (Row::Stage(r), C::StagePosition) => number(out, r.position),
        (Row::Stage(r), C::StageWinProbability) => number(out, r.win_probability),
        (Row::Stage(r), C::StageIsWon) => boolean(out, r.is_won),
        (Row::Stage(r), C::StageIsLost) => boolean(out, r.is_lost),
        // The planner pairs each column with its kind; a mismatch is a bug there, and
        // null is the answer a nullable field would give.
        _ => out.extend_from_slice(b"null"),
    }
}

/// A JSON string, escaped as serde_json escapes the schema's answers.
pub fn text(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn opt_text(out: &mut Vec<u8>, s: &Option<String>) {
    nullable(out, s.as_deref(), text)
}

fn nullable<T>(out: &mut Vec<u8>, v: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        Some(v) => write(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

fn id(out: &mut Vec<u8>, id: i64) {
    let _ = write!(out, "\"{id}\"");
}

fn number(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

fn float(out: &mut Vec<u8>, f: f64) {
    match serde_json::Number::from_f64(f) {
        Some(n) => {
            let _ = serde_json::to_writer(&mut *out, &n);
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn time(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    text(out, &t.to_rfc3339());
}

fn enumeration<E: InputType>(out: &mut Vec<u8>, e: E) {
    match e.to_value() {
        async_graphql::Value::Enum(name) => text(out, name.as_str()),
        _ => out.extend_from_slice(b"null"),
    }
}

fn strings(out: &mut Vec<u8>, v: &serde_json::Value) {
    out.push(b'[');
    let items = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str());
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        text(out, s);
    }
    out.push(b']');
}

fn json(out: &mut Vec<u8>, v: &serde_json::Value) {
    let _ = serde_json::to_writer(&mut *out, v);
}
