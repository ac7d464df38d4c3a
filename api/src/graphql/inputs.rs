//! Input objects of mutations and their conversion to engine inputs.
//!
//! One input type per record serves create and update: on update, fields left out are
//! kept and fields set to null are cleared; on create, the engine names what is missing.

use crate::graphql::enums::*;
use crate::graphql::ids::parse_id;
use async_graphql::{ID, InputObject, Json, MaybeUndefined, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rapport_engine::values::{self as v, Patch};
use rapport_engine::{
    crm::activities, crm::commerce, crm::companies, crm::contacts, crm::deals, crm::inquiries,
    crm::tasks, crm::team,
};

fn patch<T>(m: MaybeUndefined<T>) -> Patch<T> {
    match m {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(x) => Patch::Set(x),
    }
}

fn patch_id(field: &str, m: MaybeUndefined<ID>) -> Result<Patch<i64>> {
    Ok(match m {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(id) => Patch::Set(parse_id(field, &id)?),
    })
}

fn opt_id(field: &str, id: Option<ID>) -> Result<Option<i64>> {
    id.map(|i| parse_id(field, &i)).transpose()
}

/// A contact's fields.
#[derive(InputObject, Default)]
pub struct ContactInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: MaybeUndefined<String>,
    pub other_emails: Option<Vec<String>>,
    pub phone: MaybeUndefined<String>,
    pub company_id: MaybeUndefined<ID>,
    pub owner_id: MaybeUndefined<ID>,
    pub lifecycle_stage: Option<LifecycleStage>,
    pub source: MaybeUndefined<String>,
    /// Replaces the tag list.
    pub tags: Option<Vec<String>>,
    /// Replaces the custom attributes (a JSON object).
    pub attributes: Option<Json<serde_json::Value>>,
    pub timezone: MaybeUndefined<String>,
}

impl ContactInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> Result<contacts::ContactInput> {
        Ok(contacts::ContactInput {
            first_name: self.first_name,
            last_name: self.last_name,
            email: patch(self.email),
            other_emails: self.other_emails,
            phone: patch(self.phone),
            company_id: patch_id("companyId", self.company_id)?,
            owner_id: patch_id("ownerId", self.owner_id)?,
            lifecycle_stage: self.lifecycle_stage.map(Into::into),
            source: patch(self.source),
            tags: self.tags,
            attributes: self.attributes.map(|j| j.0),
            timezone: patch(self.timezone),
        })
    }
}

/// A company's fields.
#[derive(InputObject, Default)]
pub struct CompanyInput {
    pub name: Option<String>,
    pub domain: MaybeUndefined<String>,
    pub industry: MaybeUndefined<String>,
    pub size: MaybeUndefined<i32>,
    pub country: MaybeUndefined<String>,
    pub owner_id: MaybeUndefined<ID>,
}

impl CompanyInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> Result<companies::CompanyInput> {
        Ok(companies::CompanyInput {
            name: self.name,
            domain: patch(self.domain),
            industry: patch(self.industry),
            size: patch(self.size),
            country: patch(self.country),
            owner_id: patch_id("ownerId", self.owner_id)?,
        })
    }
}

/// A stage's fields.
#[derive(InputObject, Default)]
pub struct StageInput {
    pub name: Option<String>,
    /// Default win probability in percent (0-100).
    pub win_probability: Option<i32>,
    pub is_won: Option<bool>,
    pub is_lost: Option<bool>,
    /// Position in the pipeline when adding a stage (0 first).
    pub position: Option<i32>,
}

impl StageInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> deals::StageInput {
        deals::StageInput {
            name: self.name,
            win_probability: self.win_probability,
            is_won: self.is_won,
            is_lost: self.is_lost,
            position: self.position,
        }
    }
}

/// A new pipeline with its stages in order.
#[derive(InputObject)]
pub struct PipelineInput {
    pub name: String,
    pub stages: Vec<StageInput>,
}

/// A deal's fields.
#[derive(InputObject, Default)]
pub struct DealInput {
    pub name: Option<String>,
    pub contact_id: MaybeUndefined<ID>,
    pub company_id: MaybeUndefined<ID>,
    pub pipeline_id: Option<ID>,
    pub stage_id: Option<ID>,
    /// In major units (dollars, not cents); not negative.
    pub amount: Option<f64>,
    /// ISO 4217; USD by default.
    pub currency: Option<String>,
    pub expected_close_date: MaybeUndefined<NaiveDate>,
    pub owner_id: MaybeUndefined<ID>,
    /// The deal's id in another system, unique in the workspace: what a deal import
    /// upserts by.
    pub external_id: MaybeUndefined<String>,
}

impl DealInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> Result<deals::DealInput> {
        Ok(deals::DealInput {
            name: self.name,
            contact_id: patch_id("contactId", self.contact_id)?,
            company_id: patch_id("companyId", self.company_id)?,
            pipeline_id: opt_id("pipelineId", self.pipeline_id)?,
            stage_id: opt_id("stageId", self.stage_id)?,
            amount: self.amount,
            currency: self.currency,
            expected_close_date: patch(self.expected_close_date),
            owner_id: patch_id("ownerId", self.owner_id)?,
            external_id: patch(self.external_id),
        })
    }
}

/// An activity's fields.
#[derive(InputObject, Default)]
pub struct ActivityInput {
    pub kind: Option<ActivityKind>,
    pub direction: MaybeUndefined<Direction>,
    pub subject: MaybeUndefined<String>,
    pub body: MaybeUndefined<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub contact_id: MaybeUndefined<ID>,
    pub deal_id: MaybeUndefined<ID>,
    pub author_id: MaybeUndefined<ID>,
}

impl ActivityInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> Result<activities::ActivityInput> {
        Ok(activities::ActivityInput {
            kind: self.kind.map(Into::into),
            direction: patch(self.direction)
                .parse(|d| Ok(v::Direction::from(d)))
                .map_err(crate::error::to_graphql)?,
            subject: patch(self.subject),
            body: patch(self.body),
            occurred_at: self.occurred_at,
            contact_id: patch_id("contactId", self.contact_id)?,
            deal_id: patch_id("dealId", self.deal_id)?,
            author_id: patch_id("authorId", self.author_id)?,
        })
    }
}

/// A task's fields.
#[derive(InputObject, Default)]
pub struct TaskInput {
    pub title: Option<String>,
    pub due_at: MaybeUndefined<DateTime<Utc>>,
    pub status: Option<TaskStatus>,
    pub assignee_id: MaybeUndefined<ID>,
    pub contact_id: MaybeUndefined<ID>,
    pub deal_id: MaybeUndefined<ID>,
}

impl TaskInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> Result<tasks::TaskInput> {
        Ok(tasks::TaskInput {
            title: self.title,
            due_at: patch(self.due_at),
            status: self.status.map(Into::into),
            assignee_id: patch_id("assigneeId", self.assignee_id)?,
            contact_id: patch_id("contactId", self.contact_id)?,
            deal_id: patch_id("dealId", self.deal_id)?,
        })
    }
}

/// An inquiry's fields.
#[derive(InputObject, Default)]
pub struct InquiryInput {
    pub subject: Option<String>,
    pub channel: Option<InquiryChannel>,
    pub status: Option<InquiryStatus>,
    pub priority: Option<Priority>,
    pub contact_id: MaybeUndefined<ID>,
    pub opened_at: Option<DateTime<Utc>>,
}

impl InquiryInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> Result<inquiries::InquiryInput> {
        Ok(inquiries::InquiryInput {
            subject: self.subject,
            channel: self.channel.map(Into::into),
            status: self.status.map(Into::into),
            priority: self.priority.map(Into::into),
            contact_id: patch_id("contactId", self.contact_id)?,
            opened_at: self.opened_at,
        })
    }
}

/// A product's fields.
#[derive(InputObject, Default)]
pub struct ProductInput {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub category: MaybeUndefined<String>,
    /// Unit price in major units.
    pub price: Option<f64>,
    pub currency: Option<String>,
    /// The product's page (http or https), for links in email.
    pub url: MaybeUndefined<String>,
}

impl ProductInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> commerce::ProductInput {
        commerce::ProductInput {
            sku: self.sku,
            name: self.name,
            category: patch(self.category),
            price: self.price,
            currency: self.currency,
            url: patch(self.url),
        }
    }
}

/// One line of a new order.
#[derive(InputObject)]
pub struct OrderLineInput {
    pub product_id: Option<ID>,
    pub quantity: i32,
    /// Price per unit in major units; the product's price by default.
    pub unit_price: Option<f64>,
}

/// A new order.
#[derive(InputObject)]
pub struct OrderInput {
    pub contact_id: ID,
    pub placed_at: Option<DateTime<Utc>>,
    pub status: Option<OrderStatus>,
    pub currency: Option<String>,
    pub lines: Vec<OrderLineInput>,
}

impl OrderInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> Result<commerce::OrderInput> {
        Ok(commerce::OrderInput {
            contact_id: parse_id("contactId", &self.contact_id)?,
            placed_at: self.placed_at,
            status: self.status.map(Into::into),
            currency: self.currency,
            lines: self
                .lines
                .into_iter()
                .map(|l| {
                    Ok(commerce::OrderLineInput {
                        product_id: opt_id("productId", l.product_id)?,
                        quantity: l.quantity,
                        unit_price: l.unit_price,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }
}

/// A user's fields.
#[derive(InputObject, Default)]
pub struct UserInput {
    pub name: Option<String>,
    pub email: Option<String>,
    pub role: Option<UserRole>,
    pub team_id: MaybeUndefined<ID>,
    /// How the user signs email (plain text; templates' `owner.signature`).
    pub signature: MaybeUndefined<String>,
}

impl UserInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> Result<team::UserInput> {
        Ok(team::UserInput {
            name: self.name,
            email: self.email,
            role: self.role.map(Into::into),
            team_id: patch_id("teamId", self.team_id)?,
            signature: patch(self.signature),
        })
    }
}

/// What converting a lead creates.
#[derive(InputObject, Default)]
pub struct ConvertLeadInput {
    pub deal_name: Option<String>,
    pub pipeline_id: Option<ID>,
    pub amount: Option<f64>,
    pub currency: Option<String>,
    /// Creates or finds this company and links the contact, if it has none.
    pub company_name: Option<String>,
}

impl ConvertLeadInput {
    /// The engine's view of this input.
    pub fn into_engine(self) -> Result<contacts::ConvertLeadInput> {
        Ok(contacts::ConvertLeadInput {
            deal_name: self.deal_name,
            pipeline_id: opt_id("pipelineId", self.pipeline_id)?,
            amount: self.amount,
            currency: self.currency,
            company_name: self.company_name,
        })
    }
}
