//! Reading the CRM graph.
// Resolvers take Relay's four paging arguments plus filter and order: the GraphQL
// signature, not a design choice to fold into a struct.
#![allow(clippy::too_many_arguments)]

use crate::error::OrGraphql;
use crate::graphql::connection::{Conn, ConnArgs, page_cost};
use crate::graphql::enums::Scope;
use crate::graphql::filters::*;
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::types::*;
use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use rapport_engine::crm::duplicates::{self, DuplicateReason};
use rapport_engine::platform::records::{self, Record};
use rapport_engine::{platform::auth, values};
use rapport_schema as s;
use sea_orm::{DatabaseConnection, EntityTrait, ModelTrait};

/// Reads.
#[derive(Default)]
pub struct Query;

async fn by_id<E>(ctx: &Context<'_>, id: &ID) -> Result<E::Model>
where
    E: Record,
    E::Model: ModelTrait<Entity = E> + Sync,
{
    let ws = principal(ctx)?.workspace_id;
    records::get::<E>(
        ctx.data_unchecked::<DatabaseConnection>(),
        ws,
        parse_id("id", id)?,
    )
    .await
    .gql()
}

/// The caller: its workspace and what its key may do.
#[derive(SimpleObject)]
pub struct Viewer {
    pub workspace_id: ID,
    pub workspace_name: String,
    pub scopes: Vec<Scope>,
    /// The person signed in to the console; null for an API key.
    pub user: Option<User>,
    /// Changes reach only records the caller owns or nobody owns (a member).
    pub owner_bound: bool,
}

/// Why contacts look like one person.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum DuplicateKind {
    /// One's email address is another's.
    SameEmail,
    /// The same phone number once normalised.
    SamePhone,
    /// Nearly the same name at the same company.
    SimilarName,
}

/// Contacts that are probably one person.
#[derive(SimpleObject)]
pub struct DuplicateGroup {
    pub reason: DuplicateKind,
    pub contacts: Vec<Contact>,
}

#[Object]
impl Query {
    /// Who is asking.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let ws = s::workspace::Entity::find_by_id(who.workspace_id)
            .one(db)
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?;
        Ok(Viewer {
            workspace_id: to_id(who.workspace_id),
            workspace_name: ws.map(|w| w.name).unwrap_or_default(),
            scopes: who.scopes.iter().copied().map(Scope::from).collect(),
            user: crate::graphql::context::load::<s::user::Entity>(ctx, who.user_id)
                .await?
                .map(User),
            owner_bound: who.owner_bound,
        })
    }

    async fn contact(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Contact>> {
        // Through the batch loader, so a document asking for many contacts by id (a
        // plugin's batched input query) costs one statement.
        let wanted = parse_id("id", &id)?;
        match load::<s::contact::Entity>(ctx, Some(wanted)).await? {
            Some(c) if c.deleted_at.is_none() => Ok(Some(Contact(c))),
            _ => Err(crate::error::to_graphql(
                rapport_engine::EngineError::not_found("Contact", wanted),
            )),
        }
    }
    /// Everything Rapport holds about a contact, as one JSON document, for a data-subject
    /// access request (admins): the contact and the contacts merged into it, every row of
    /// every table that names them, their scores, the webhook events still kept and the
    /// audit log's rows about them. Works on a contact in the trash too.
    #[graphql(complexity = 1000)]
    async fn export_contact_data(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<async_graphql::Json<serde_json::Value>> {
        let who = crate::graphql::context::principal(ctx)?;
        who.require(values::Scope::Admin).gql()?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let exported = rapport_engine::contact_data::export(db, who, parse_id("id", &id)?)
            .await
            .gql()?;
        Ok(async_graphql::Json(exported))
    }
    #[graphql(
        complexity = "page_cost(first, last) * child_complexity + crate::graphql::filters::contact_filter_cost(&filter) + if order_by_attribute.is_some() { crate::graphql::orders::ATTRIBUTE_ORDER_COST } else { 0 }"
    )]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ContactFilter>,
        order_by: Option<Vec<ContactOrder>>,
        order_by_attribute: Option<crate::graphql::orders::AttributeOrder>,
    ) -> Result<Conn<Contact>> {
        let args = ConnArgs::new(first, after, last, before);
        let Some(by) = order_by_attribute else {
            return contact_lists::all(ctx, args, filter, order_by).await;
        };
        let ws = principal(ctx)?.workspace_id;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        use rapport_engine::crm::fields::{self, FieldSort};
        match fields::sort_by(db, ws, &by.key, by.direction.into())
            .await
            .gql()?
        {
            FieldSort::Number(lead) => {
                contacts_by_attribute::<f64>(ctx, args, filter, &lead, order_by).await
            }
            FieldSort::Text(lead) => {
                contacts_by_attribute::<String>(ctx, args, filter, &lead, order_by).await
            }
        }
    }
    async fn company(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Company>> {
        Ok(Some(Company(by_id::<s::company::Entity>(ctx, &id).await?)))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn companies(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<CompanyFilter>,
        order_by: Option<Vec<CompanyOrder>>,
    ) -> Result<Conn<Company>> {
        company_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    async fn deal(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Deal>> {
        Ok(Some(Deal(by_id::<s::deal::Entity>(ctx, &id).await?)))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn deals(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<DealFilter>,
        order_by: Option<Vec<DealOrder>>,
    ) -> Result<Conn<Deal>> {
        deal_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    async fn pipeline(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Pipeline>> {
        Ok(Some(Pipeline(
            by_id::<s::pipeline::Entity>(ctx, &id).await?,
        )))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn pipelines(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<PipelineFilter>,
        order_by: Option<Vec<PipelineOrder>>,
    ) -> Result<Conn<Pipeline>> {
        pipeline_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    async fn stage(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Stage>> {
        Ok(Some(Stage(by_id::<s::stage::Entity>(ctx, &id).await?)))
    }
    async fn activity(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Activity>> {
        Ok(Some(Activity(
            by_id::<s::activity::Entity>(ctx, &id).await?,
        )))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn activities(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ActivityFilter>,
        order_by: Option<Vec<ActivityOrder>>,
    ) -> Result<Conn<Activity>> {
        activity_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    async fn task(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Task>> {
        Ok(Some(Task(by_id::<s::task::Entity>(ctx, &id).await?)))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<TaskFilter>,
        order_by: Option<Vec<TaskOrder>>,
    ) -> Result<Conn<Task>> {
        task_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    async fn inquiry(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Inquiry>> {
        Ok(Some(Inquiry(by_id::<s::inquiry::Entity>(ctx, &id).await?)))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn inquiries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<InquiryFilter>,
        order_by: Option<Vec<InquiryOrder>>,
    ) -> Result<Conn<Inquiry>> {
        inquiry_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        Ok(Some(Product(by_id::<s::product::Entity>(ctx, &id).await?)))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ProductFilter>,
        order_by: Option<Vec<ProductOrder>>,
    ) -> Result<Conn<Product>> {
        product_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    async fn order(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Order>> {
        Ok(Some(Order(by_id::<s::order::Entity>(ctx, &id).await?)))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<OrderFilter>,
        order_by: Option<Vec<OrderOrder>>,
    ) -> Result<Conn<Order>> {
        order_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    async fn event(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Event>> {
        Ok(Some(Event(by_id::<s::event::Entity>(ctx, &id).await?)))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<EventFilter>,
        order_by: Option<Vec<EventOrder>>,
    ) -> Result<Conn<Event>> {
        event_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        Ok(Some(User(by_id::<s::user::Entity>(ctx, &id).await?)))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<UserFilter>,
        order_by: Option<Vec<UserOrder>>,
    ) -> Result<Conn<User>> {
        user_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    async fn team(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Team>> {
        Ok(Some(Team(by_id::<s::team::Entity>(ctx, &id).await?)))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn teams(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<TeamFilter>,
        order_by: Option<Vec<TeamOrder>>,
    ) -> Result<Conn<Team>> {
        team_lists::all(
            ctx,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }

    /// The workspace's API keys (admin scope).
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let who = principal(ctx)?;
        who.require(values::Scope::Admin).gql()?;
        Ok(
            auth::list_keys(ctx.data_unchecked::<DatabaseConnection>(), who.workspace_id)
                .await
                .gql()?
                .into_iter()
                .map(ApiKey)
                .collect(),
        )
    }

    /// Groups of contacts that are probably the same person: one's email is another's,
    /// the same normalised phone, or nearly the same name at the same company. With
    /// `contactId`, only the groups that contain that contact.
    // Comparing every contact with every other is the costliest read there is: priced so
    // a request holds a handful of them, however many aliases it writes.
    #[graphql(complexity = "10_000 + limit.clamp(1, 500) as usize * child_complexity")]
    async fn find_duplicates(
        &self,
        ctx: &Context<'_>,
        contact_id: Option<ID>,
        #[graphql(default = 50)] limit: i32,
    ) -> Result<Vec<DuplicateGroup>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let contact_id = contact_id.map(|i| parse_id("contactId", &i)).transpose()?;
        let groups = duplicates::find(db, who, contact_id, limit.clamp(1, 500) as usize)
            .await
            .gql()?;
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let mut contacts = Vec::with_capacity(g.contact_ids.len());
            for id in g.contact_ids {
                contacts.push(Contact(
                    records::get::<s::contact::Entity>(db, who.workspace_id, id)
                        .await
                        .gql()?,
                ));
            }
            let reason = match g.reason {
                DuplicateReason::SameEmail => DuplicateKind::SameEmail,
                DuplicateReason::SamePhone => DuplicateKind::SamePhone,
                DuplicateReason::SimilarName => DuplicateKind::SimilarName,
            };
            out.push(DuplicateGroup { reason, contacts });
        }
        Ok(out)
    }
}
