//! Changing the CRM graph. Every mutation needs the `write` scope; hard deletes and key
//! management need `admin`.

use crate::error::OrGraphql;
use crate::graphql::enums::Scope;
use crate::graphql::ids::{parse_id, parse_ids};
use crate::graphql::inputs::*;
use crate::graphql::types::*;
use crate::keys::VerifiedKeys;
use async_graphql::{Context, Enum, ID, Json, Object, Result, SimpleObject};
use rapport_engine::platform::auth::{self, Principal};
use rapport_engine::platform::records::{self, Record};
use rapport_engine::values::{self as v};
use rapport_engine::{
    crm::activities, crm::commerce, crm::companies, crm::contacts, crm::deals, crm::events,
    crm::inquiries, crm::tasks, crm::team,
};
use rapport_schema as s;
use sea_orm::DatabaseConnection;
use std::sync::Arc;

/// Writes.
#[derive(Default)]
pub struct Mutation;

fn writer<'a>(ctx: &Context<'a>) -> Result<(&'a Principal, &'a DatabaseConnection)> {
    let who = principal(ctx)?;
    who.require(v::Scope::Write).gql()?;
    Ok((who, ctx.data_unchecked::<DatabaseConnection>()))
}

/// [`writer`] for a change to row `id` of an owned table: a member changes only their
/// own rows and rows nobody owns.
async fn owner_writer<'a, E: records::Owned>(
    ctx: &Context<'a>,
    id: i64,
) -> Result<(&'a Principal, &'a DatabaseConnection)> {
    let (who, db) = writer(ctx)?;
    records::ensure_may_change::<E>(db, who, id).await.gql()?;
    Ok((who, db))
}

/// [`writer`] for a change to activity `id`: a member changes activities they wrote, or of
/// contacts and deals they may change.
async fn activity_writer<'a>(
    ctx: &Context<'a>,
    id: i64,
) -> Result<(&'a Principal, &'a DatabaseConnection)> {
    let (who, db) = writer(ctx)?;
    if who.owner_bound {
        let a = records::get_with::<s::activity::Entity>(
            db,
            who.workspace_id,
            id,
            records::Deleted::Include,
        )
        .await
        .gql()?;
        records::ensure_may_change_attached(db, who, a.author_id, a.contact_id, a.deal_id)
            .await
            .gql()?;
    }
    Ok((who, db))
}

/// [`writer`] for a change to task `id`: a member changes tasks assigned to them, or of
/// contacts and deals they may change.
async fn task_writer<'a>(
    ctx: &Context<'a>,
    id: i64,
) -> Result<(&'a Principal, &'a DatabaseConnection)> {
    let (who, db) = writer(ctx)?;
    if who.owner_bound {
        let t = records::get_with::<s::task::Entity>(
            db,
            who.workspace_id,
            id,
            records::Deleted::Include,
        )
        .await
        .gql()?;
        records::ensure_may_change_attached(db, who, t.assignee_id, t.contact_id, t.deal_id)
            .await
            .gql()?;
    }
    Ok((who, db))
}

/// Soft delete (to the trash) or, with `hard` and the admin scope, delete for good.
async fn delete<E: Record>(ctx: &Context<'_>, id: &ID, hard: bool) -> Result<ID> {
    let (who, db) = writer(ctx)?;
    let row = parse_id("id", id)?;
    if hard {
        who.require(v::Scope::Admin).gql()?;
        records::hard_delete::<E>(db, who.workspace_id, row)
            .await
            .gql()?;
        // What plugins of deals and companies said about it goes with it.
        use rapport_engine::intelligence::plugins::{Subject, record_scores};
        let subject = match E::KIND {
            "Deal" => Some(Subject::Deal),
            "Company" => Some(Subject::Company),
            _ => None,
        };
        if let Some(subject) = subject {
            record_scores::forget(db, who.workspace_id, subject, &[row])
                .await
                .gql()?;
        }
    } else {
        records::soft_delete::<E>(db, who.workspace_id, row)
            .await
            .gql()?;
    }
    Ok(id.clone())
}

async fn restore<E: Record>(ctx: &Context<'_>, id: &ID) -> Result<E::Model>
where
    E::Model: Sync,
{
    let (who, db) = writer(ctx)?;
    let row = parse_id("id", id)?;
    records::restore::<E>(db, who.workspace_id, row)
        .await
        .gql()?;
    records::get::<E>(db, who.workspace_id, row).await.gql()
}

/// One upserted record and whether it was new.
#[derive(SimpleObject)]
pub struct UpsertedContact {
    pub contact: Contact,
    pub created: bool,
}

/// One upserted company and whether it was new.
#[derive(SimpleObject)]
pub struct UpsertedCompany {
    pub company: Company,
    pub created: bool,
}

/// How a deal ended.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum DealOutcome {
    Won,
    Lost,
}

/// What a lead conversion produced.
#[derive(SimpleObject)]
pub struct ConvertLeadPayload {
    pub contact: Contact,
    pub deal: Deal,
    pub company: Option<Company>,
}

/// A new API key; `key` is shown this once.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    pub key: String,
    pub api_key: ApiKey,
}

#[Object]
impl Mutation {
    async fn create_contact(&self, ctx: &Context<'_>, input: ContactInput) -> Result<Contact> {
        let (who, db) = writer(ctx)?;
        Ok(Contact(
            contacts::create(db, who, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ContactInput,
    ) -> Result<Contact> {
        let row = parse_id("id", &id)?;
        let (who, db) = owner_writer::<s::contact::Entity>(ctx, row).await?;
        Ok(Contact(
            contacts::update(db, who, row, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    /// Moves a contact to the trash; `hard: true` (admin) erases it and everything
    /// personal attached to it for good.
    async fn delete_contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        owner_writer::<s::contact::Entity>(ctx, parse_id("id", &id)?).await?;
        if !hard {
            let (who, db) = writer(ctx)?;
            rapport_engine::crm::contacts::delete(db, who, parse_id("id", &id)?)
                .await
                .gql()?;
            return Ok(id);
        }
        let (who, db) = writer(ctx)?;
        who.require(v::Scope::Admin).gql()?;
        rapport_engine::contact_data::erase(db, who, parse_id("id", &id)?)
            .await
            .gql()?;
        Ok(id)
    }
    async fn restore_contact(&self, ctx: &Context<'_>, id: ID) -> Result<Contact> {
        owner_writer::<s::contact::Entity>(ctx, parse_id("id", &id)?).await?;
        let (who, db) = writer(ctx)?;
        Ok(Contact(
            rapport_engine::crm::contacts::restore(db, who, parse_id("id", &id)?)
                .await
                .gql()?,
        ))
    }
    /// Creates or updates up to 1000 contacts keyed by email, all or nothing.
    async fn bulk_upsert_contacts(
        &self,
        ctx: &Context<'_>,
        contacts: Vec<ContactInput>,
    ) -> Result<Vec<UpsertedContact>> {
        let (who, db) = writer(ctx)?;
        if who.owner_bound {
            // An upsert by key can reach any record of that key, a colleague's included.
            return Err(crate::error::to_graphql(
                rapport_engine::EngineError::Forbidden(
                    "bulk upserts change anyone's records: they need a manager or an admin".into(),
                ),
            ));
        }
        let inputs = contacts
            .into_iter()
            .map(ContactInput::into_engine)
            .collect::<Result<Vec<_>>>()?;
        let done = contacts::bulk_upsert(db, who, inputs).await.gql()?;
        Ok(done
            .into_iter()
            .map(|u| UpsertedContact {
                contact: Contact(u.contact),
                created: u.created,
            })
            .collect())
    }
    /// Turns a lead into an opportunity with a deal (and a company, if named).
    async fn convert_lead(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
        #[graphql(default)] input: ConvertLeadInput,
    ) -> Result<ConvertLeadPayload> {
        let contact = parse_id("contactId", &contact_id)?;
        let (who, db) = owner_writer::<s::contact::Entity>(ctx, contact).await?;
        let c = contacts::convert_lead(db, who, contact, input.into_engine()?)
            .await
            .gql()?;
        Ok(ConvertLeadPayload {
            contact: Contact(c.contact),
            deal: Deal(c.deal),
            company: c.company.map(Company),
        })
    }
    /// Merges contacts into a survivor, moving every related row to it.
    async fn merge_contacts(
        &self,
        ctx: &Context<'_>,
        survivor_id: ID,
        merged_ids: Vec<ID>,
    ) -> Result<Contact> {
        let survivor = parse_id("survivorId", &survivor_id)?;
        let merged = parse_ids("mergedIds", &merged_ids)?;
        let (who, db) = owner_writer::<s::contact::Entity>(ctx, survivor).await?;
        if who.owner_bound {
            let unique: std::collections::BTreeSet<i64> = merged.iter().copied().collect();
            for m in unique {
                records::ensure_may_change::<s::contact::Entity>(db, who, m)
                    .await
                    .gql()?;
            }
        }
        Ok(Contact(
            rapport_engine::contact_data::merge(db, who, survivor, &merged)
                .await
                .gql()?,
        ))
    }

    async fn create_company(&self, ctx: &Context<'_>, input: CompanyInput) -> Result<Company> {
        let (who, db) = writer(ctx)?;
        Ok(Company(
            companies::create(db, who, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn update_company(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CompanyInput,
    ) -> Result<Company> {
        let row = parse_id("id", &id)?;
        let (who, db) = owner_writer::<s::company::Entity>(ctx, row).await?;
        Ok(Company(
            companies::update(db, who, row, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn delete_company(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        owner_writer::<s::company::Entity>(ctx, parse_id("id", &id)?).await?;
        delete::<s::company::Entity>(ctx, &id, hard).await
    }
    async fn restore_company(&self, ctx: &Context<'_>, id: ID) -> Result<Company> {
        owner_writer::<s::company::Entity>(ctx, parse_id("id", &id)?).await?;
        Ok(Company(restore::<s::company::Entity>(ctx, &id).await?))
    }
    /// Creates or updates up to 1000 companies keyed by domain, all or nothing.
    async fn bulk_upsert_companies(
        &self,
        ctx: &Context<'_>,
        companies: Vec<CompanyInput>,
    ) -> Result<Vec<UpsertedCompany>> {
        let (who, db) = writer(ctx)?;
        if who.owner_bound {
            // An upsert by key can reach any record of that key, a colleague's included.
            return Err(crate::error::to_graphql(
                rapport_engine::EngineError::Forbidden(
                    "bulk upserts change anyone's records: they need a manager or an admin".into(),
                ),
            ));
        }
        let inputs = companies
            .into_iter()
            .map(CompanyInput::into_engine)
            .collect::<Result<Vec<_>>>()?;
        let done = companies::bulk_upsert(db, who, inputs).await.gql()?;
        Ok(done
            .into_iter()
            .map(|(c, created)| UpsertedCompany {
                company: Company(c),
                created,
            })
            .collect())
    }

    async fn create_pipeline(&self, ctx: &Context<'_>, input: PipelineInput) -> Result<Pipeline> {
        let (who, db) = writer(ctx)?;
        who.require_manager().gql()?;
        let stages = input
            .stages
            .into_iter()
            .map(StageInput::into_engine)
            .collect();
        let tx = sea_orm::TransactionTrait::begin(db)
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?;
        let p = deals::create_pipeline(&tx, who, &input.name, stages)
            .await
            .gql()?;
        tx.commit()
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?;
        Ok(Pipeline(p))
    }
    async fn rename_pipeline(&self, ctx: &Context<'_>, id: ID, name: String) -> Result<Pipeline> {
        let (who, db) = writer(ctx)?;
        who.require_manager().gql()?;
        Ok(Pipeline(
            deals::rename_pipeline(db, who, parse_id("id", &id)?, &name)
                .await
                .gql()?,
        ))
    }
    async fn delete_pipeline(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        writer(ctx)?.0.require_manager().gql()?;
        delete::<s::pipeline::Entity>(ctx, &id, hard).await
    }
    /// Adds a stage (last, unless a position is given).
    async fn create_stage(
        &self,
        ctx: &Context<'_>,
        pipeline_id: ID,
        input: StageInput,
    ) -> Result<Stage> {
        let (who, db) = writer(ctx)?;
        who.require_manager().gql()?;
        Ok(Stage(
            deals::add_stage(
                db,
                who,
                parse_id("pipelineId", &pipeline_id)?,
                input.into_engine(),
            )
            .await
            .gql()?,
        ))
    }
    async fn update_stage(&self, ctx: &Context<'_>, id: ID, input: StageInput) -> Result<Stage> {
        let (who, db) = writer(ctx)?;
        who.require_manager().gql()?;
        Ok(Stage(
            deals::update_stage(db, who, parse_id("id", &id)?, input.into_engine())
                .await
                .gql()?,
        ))
    }

    async fn create_deal(&self, ctx: &Context<'_>, input: DealInput) -> Result<Deal> {
        let (who, db) = writer(ctx)?;
        Ok(Deal(
            deals::create(db, who, input.into_engine()?).await.gql()?,
        ))
    }
    async fn update_deal(&self, ctx: &Context<'_>, id: ID, input: DealInput) -> Result<Deal> {
        let row = parse_id("id", &id)?;
        let (who, db) = owner_writer::<s::deal::Entity>(ctx, row).await?;
        Ok(Deal(
            deals::update(db, who, row, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn delete_deal(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        owner_writer::<s::deal::Entity>(ctx, parse_id("id", &id)?).await?;
        delete::<s::deal::Entity>(ctx, &id, hard).await
    }
    async fn restore_deal(&self, ctx: &Context<'_>, id: ID) -> Result<Deal> {
        owner_writer::<s::deal::Entity>(ctx, parse_id("id", &id)?).await?;
        Ok(Deal(restore::<s::deal::Entity>(ctx, &id).await?))
    }
    /// Moves a deal to another stage of its pipeline and records the move.
    async fn move_deal_to_stage(
        &self,
        ctx: &Context<'_>,
        deal_id: ID,
        stage_id: ID,
    ) -> Result<Deal> {
        let (who, db) = owner_writer::<s::deal::Entity>(ctx, parse_id("dealId", &deal_id)?).await?;
        Ok(Deal(
            deals::move_to_stage(
                db,
                who,
                parse_id("dealId", &deal_id)?,
                parse_id("stageId", &stage_id)?,
            )
            .await
            .gql()?,
        ))
    }
    /// Closes an open deal as won or lost.
    async fn close_deal(
        &self,
        ctx: &Context<'_>,
        id: ID,
        outcome: DealOutcome,
        reason: Option<String>,
        competitor: Option<String>,
    ) -> Result<Deal> {
        let (who, db) = owner_writer::<s::deal::Entity>(ctx, parse_id("id", &id)?).await?;
        let outcome = match outcome {
            DealOutcome::Won => deals::Outcome::Won,
            DealOutcome::Lost => deals::Outcome::Lost,
        };
        Ok(Deal(
            deals::close(db, who, parse_id("id", &id)?, outcome, reason, competitor)
                .await
                .gql()?,
        ))
    }

    async fn create_activity(&self, ctx: &Context<'_>, input: ActivityInput) -> Result<Activity> {
        let (who, db) = writer(ctx)?;
        let input = input.into_engine()?;
        // The activity and its webhook event commit together.
        let tx = rapport_engine::platform::db::write(db)
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?;
        let saved = activities::create(&tx, who, input).await.gql()?;
        tx.commit()
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?;
        Ok(Activity(saved))
    }
    async fn update_activity(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ActivityInput,
    ) -> Result<Activity> {
        let row = parse_id("id", &id)?;
        let (who, db) = activity_writer(ctx, row).await?;
        Ok(Activity(
            activities::update(db, who, row, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn delete_activity(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        activity_writer(ctx, parse_id("id", &id)?).await?;
        delete::<s::activity::Entity>(ctx, &id, hard).await
    }
    async fn restore_activity(&self, ctx: &Context<'_>, id: ID) -> Result<Activity> {
        activity_writer(ctx, parse_id("id", &id)?).await?;
        Ok(Activity(restore::<s::activity::Entity>(ctx, &id).await?))
    }

    async fn create_task(&self, ctx: &Context<'_>, input: TaskInput) -> Result<Task> {
        let (who, db) = writer(ctx)?;
        Ok(Task(
            tasks::create(db, who, input.into_engine()?).await.gql()?,
        ))
    }
    async fn update_task(&self, ctx: &Context<'_>, id: ID, input: TaskInput) -> Result<Task> {
        let row = parse_id("id", &id)?;
        let (who, db) = task_writer(ctx, row).await?;
        Ok(Task(
            tasks::update(db, who, row, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn delete_task(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        task_writer(ctx, parse_id("id", &id)?).await?;
        delete::<s::task::Entity>(ctx, &id, hard).await
    }
    async fn restore_task(&self, ctx: &Context<'_>, id: ID) -> Result<Task> {
        task_writer(ctx, parse_id("id", &id)?).await?;
        Ok(Task(restore::<s::task::Entity>(ctx, &id).await?))
    }

    async fn create_inquiry(&self, ctx: &Context<'_>, input: InquiryInput) -> Result<Inquiry> {
        let (who, db) = writer(ctx)?;
        Ok(Inquiry(
            inquiries::create(db, who, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn update_inquiry(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: InquiryInput,
    ) -> Result<Inquiry> {
        let (who, db) = writer(ctx)?;
        Ok(Inquiry(
            inquiries::update(db, who, parse_id("id", &id)?, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn delete_inquiry(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        delete::<s::inquiry::Entity>(ctx, &id, hard).await
    }
    async fn restore_inquiry(&self, ctx: &Context<'_>, id: ID) -> Result<Inquiry> {
        Ok(Inquiry(restore::<s::inquiry::Entity>(ctx, &id).await?))
    }

    async fn create_product(&self, ctx: &Context<'_>, input: ProductInput) -> Result<Product> {
        let (who, db) = writer(ctx)?;
        Ok(Product(
            commerce::create_product(db, who, input.into_engine())
                .await
                .gql()?,
        ))
    }
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ProductInput,
    ) -> Result<Product> {
        let (who, db) = writer(ctx)?;
        Ok(Product(
            commerce::update_product(db, who, parse_id("id", &id)?, input.into_engine())
                .await
                .gql()?,
        ))
    }
    async fn delete_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        delete::<s::product::Entity>(ctx, &id, hard).await
    }
    async fn restore_product(&self, ctx: &Context<'_>, id: ID) -> Result<Product> {
        Ok(Product(restore::<s::product::Entity>(ctx, &id).await?))
    }

    /// Records an order; its total is the sum of its lines.
    async fn create_order(&self, ctx: &Context<'_>, input: OrderInput) -> Result<Order> {
        let (who, db) = writer(ctx)?;
        Ok(Order(
            commerce::create_order(db, who, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn update_order_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: crate::graphql::enums::OrderStatus,
    ) -> Result<Order> {
        let (who, db) = writer(ctx)?;
        Ok(Order(
            commerce::set_order_status(db, who, parse_id("id", &id)?, status.into())
                .await
                .gql()?,
        ))
    }
    async fn delete_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        delete::<s::order::Entity>(ctx, &id, hard).await
    }
    async fn restore_order(&self, ctx: &Context<'_>, id: ID) -> Result<Order> {
        Ok(Order(restore::<s::order::Entity>(ctx, &id).await?))
    }

    /// Records something a contact did.
    async fn track_event(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
        #[graphql(name = "type")] event_type: String,
        properties: Option<Json<serde_json::Value>>,
        occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Event> {
        let (who, db) = writer(ctx)?;
        let input = events::EventInput {
            contact_id: parse_id("contactId", &contact_id)?,
            event_type,
            properties: properties.map(|p| p.0).unwrap_or(serde_json::Value::Null),
            occurred_at,
        };
        Ok(Event(events::track(db, who, input).await.gql()?))
    }

    async fn create_user(&self, ctx: &Context<'_>, input: UserInput) -> Result<User> {
        let (who, db) = writer(ctx)?;
        who.require(v::Scope::Admin).gql()?;
        Ok(User(
            team::create_user(db, who, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    async fn update_user(&self, ctx: &Context<'_>, id: ID, input: UserInput) -> Result<User> {
        let (who, db) = writer(ctx)?;
        who.require(v::Scope::Admin).gql()?;
        let row = parse_id("id", &id)?;
        if who.user_id == Some(row) && input.role.is_some() {
            // An admin demoting themselves could leave nobody to undo it.
            return Err(crate::error::invalid(
                "input.role",
                "you cannot change your own role; ask another admin",
            ));
        }
        let demoted = input
            .role
            .is_some_and(|r| v::UserRole::from(r) != v::UserRole::Admin);
        let updated = team::update_user(db, who, row, input.into_engine()?)
            .await
            .gql()?;
        // Only admins make API keys, and a key keeps the scopes it was made with: one who
        // is no longer an admin must not keep admin keys.
        if demoted
            && auth::revoke_keys_of(db, who.workspace_id, row)
                .await
                .gql()?
                > 0
        {
            ctx.data_unchecked::<Arc<VerifiedKeys>>().forget_all();
        }
        Ok(User(updated))
    }
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        let (who, db) = writer(ctx)?;
        who.require(v::Scope::Admin).gql()?;
        let row = parse_id("id", &id)?;
        if who.user_id == Some(row) {
            return Err(crate::error::invalid(
                "id",
                "you cannot remove yourself; ask another admin",
            ));
        }
        let removed = delete::<s::user::Entity>(ctx, &id, hard).await?;
        // A removed person's sessions end now, not at their expiry, and the keys they made
        // stop working with them.
        rapport_engine::platform::accounts::sign_out_everywhere(db, row)
            .await
            .gql()?;
        if auth::revoke_keys_of(db, who.workspace_id, row)
            .await
            .gql()?
            > 0
        {
            ctx.data_unchecked::<Arc<VerifiedKeys>>().forget_all();
        }
        Ok(removed)
    }
    async fn create_team(&self, ctx: &Context<'_>, name: String) -> Result<Team> {
        let (who, db) = writer(ctx)?;
        who.require_manager().gql()?;
        Ok(Team(team::create_team(db, who, &name).await.gql()?))
    }
    async fn rename_team(&self, ctx: &Context<'_>, id: ID, name: String) -> Result<Team> {
        let (who, db) = writer(ctx)?;
        who.require_manager().gql()?;
        Ok(Team(
            team::rename_team(db, who, parse_id("id", &id)?, &name)
                .await
                .gql()?,
        ))
    }
    async fn delete_team(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] hard: bool,
    ) -> Result<ID> {
        writer(ctx)?.0.require_manager().gql()?;
        delete::<s::team::Entity>(ctx, &id, hard).await
    }

    /// Creates an API key for this workspace (admin). The key is shown only here.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        scopes: Vec<Scope>,
    ) -> Result<CreatedApiKey> {
        let (who, db) = writer(ctx)?;
        who.require(v::Scope::Admin).gql()?;
        let scopes: Vec<v::Scope> = scopes.into_iter().map(Into::into).collect();
        let issued = auth::create_key_by(db, who.workspace_id, &name, &scopes, who.user_id)
            .await
            .gql()?;
        Ok(CreatedApiKey {
            key: issued.key,
            api_key: ApiKey(issued.record),
        })
    }
    /// Revokes an API key of this workspace (admin); it stops working at once.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey> {
        let (who, db) = writer(ctx)?;
        who.require(v::Scope::Admin).gql()?;
        let row = parse_id("id", &id)?;
        let revoked = auth::revoke_key(db, Some(who.workspace_id), &row.to_string())
            .await
            .gql()?;
        // After the write: a request verified in between cannot re-cache the key.
        ctx.data_unchecked::<Arc<VerifiedKeys>>().forget_all();
        Ok(ApiKey(revoked))
    }
}
