//! The CRM graph's object types and their relations.
// Resolvers take Relay's four paging arguments plus filter and order: the GraphQL
// signature, not a design choice to fold into a struct.
#![allow(clippy::too_many_arguments)]

use crate::error::OrGraphql;
use crate::graphql::connection::{Conn, ConnArgs, all_children, list, nested, page_cost};
use crate::graphql::enums::*;
use crate::graphql::filters::*;
use crate::graphql::ids::to_id;
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ID, Json, Object, Result, SimpleObject, Union};
use chrono::{DateTime, NaiveDate, Utc};
use rapport_engine::platform::auth::Principal;
use rapport_engine::platform::pagination::SortDirection;
use rapport_engine::platform::records::{Deleted, Record, scoped};
use rapport_engine::values::{Currency, json_strings};
use rapport_schema as s;
use sea_orm::{ModelTrait, QueryFilter};

use crate::graphql::intelligence::{self, ProbabilitySource, Score, WinProbability};
use crate::graphql::loaders::ById;
use rapport_engine::values::ModelKind as ModelKindValue;

/// The caller of this request.
pub fn principal<'a>(ctx: &Context<'a>) -> Result<&'a Principal> {
    ctx.data::<Principal>()
}

/// Loads a referenced row through the request's batch loader.
pub async fn load<E>(ctx: &Context<'_>, id: Option<i64>) -> Result<Option<E::Model>>
where
    E: Record,
    E::Model: ModelTrait<Entity = E> + Clone + Send + Sync,
{
    match id {
        None => Ok(None),
        Some(id) => {
            ctx.data_unchecked::<DataLoader<ById<E>>>()
                .load_one(id)
                .await
        }
    }
}

fn major(minor: i64, currency: &str) -> f64 {
    Currency::parse("currency", currency)
        .map(|c| c.to_major(minor))
        .unwrap_or(minor as f64 / 100.0)
}

macro_rules! lists {
    ($nested_fn:ident, $list_fn:ident, $module:ident, $node:ident, $filter:ident, $order:ident, [$(($dcol:ident, $ddir:ident)),*]) => {
        fn order_of(order_by: &Option<Vec<$order>>) -> Vec<(s::$module::Column, SortDirection)> {
            let keys = $order::keys(order_by);
            if keys.is_empty() { vec![$((s::$module::Column::$dcol, SortDirection::$ddir)),*] } else { keys }
        }

        /// A nested list of this type under one parent.
        pub async fn $nested_fn(
            ctx: &Context<'_>,
            parent: i64,
            fk: s::$module::Column,
            args: ConnArgs,
            filter: Option<$filter>,
            order_by: Option<Vec<$order>>,
        ) -> Result<Conn<$node>> {
            let ws = principal(ctx)?.workspace_id;
            let description = format!("{filter:?}{order_by:?}");
            let select = move || -> Result<_> {
                let condition = filter.as_ref().map(|f| f.condition(ws)).transpose().gql()?.unwrap_or_else(sea_orm::Condition::all);
                Ok(scoped::<s::$module::Entity>(ws, Deleted::Exclude).filter(condition))
            };
            nested(ctx, parent, fk, select, order_of(&order_by), &args, description, $node).await
        }

        /// A top-level list of this type.
        pub async fn $list_fn(
            ctx: &Context<'_>,
            args: ConnArgs,
            filter: Option<$filter>,
            order_by: Option<Vec<$order>>,
        ) -> Result<Conn<$node>> {
            let ws = principal(ctx)?.workspace_id;
            let condition = filter.as_ref().map(|f| f.condition(ws)).transpose().gql()?.unwrap_or_else(sea_orm::Condition::all);
            let select = scoped::<s::$module::Entity>(ws, Deleted::Exclude).filter(condition);
            list(ctx.data_unchecked(), select, order_of(&order_by), &args, $node).await
        }
    };
}

macro_rules! node_lists {
    ($mod_name:ident: $($body:tt)*) => {
        /// List helpers of one type.
        pub mod $mod_name {
            use super::*;
            lists!($($body)*);
        }
    };
}

node_lists!(contact_lists: of, all, contact, Contact, ContactFilter, ContactOrder, [(Id, Asc)]);
node_lists!(company_lists: of, all, company, Company, CompanyFilter, CompanyOrder, [(Id, Asc)]);
node_lists!(deal_lists: of, all, deal, Deal, DealFilter, DealOrder, [(Id, Asc)]);
node_lists!(activity_lists: of, all, activity, Activity, ActivityFilter, ActivityOrder, [(OccurredAt, Desc)]);
node_lists!(task_lists: of, all, task, Task, TaskFilter, TaskOrder, [(Id, Asc)]);
node_lists!(inquiry_lists: of, all, inquiry, Inquiry, InquiryFilter, InquiryOrder, [(OpenedAt, Desc)]);
node_lists!(order_lists: of, all, order, Order, OrderFilter, OrderOrder, [(PlacedAt, Desc)]);
node_lists!(event_lists: of, all, event, Event, EventFilter, EventOrder, [(OccurredAt, Desc)]);
node_lists!(product_lists: of, all, product, Product, ProductFilter, ProductOrder, [(Id, Asc)]);
node_lists!(user_lists: of, all, user, User, UserFilter, UserOrder, [(Id, Asc)]);
node_lists!(team_lists: of, all, team, Team, TeamFilter, TeamOrder, [(Id, Asc)]);
node_lists!(pipeline_lists: of, all, pipeline, Pipeline, PipelineFilter, PipelineOrder, [(Id, Asc)]);

/// A person the business deals with.
pub struct Contact(pub s::contact::Model);

#[Object]
impl Contact {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn first_name(&self) -> &str {
        &self.0.first_name
    }
    async fn last_name(&self) -> &str {
        &self.0.last_name
    }
    /// First and last name together.
    async fn name(&self) -> String {
        format!("{} {}", self.0.first_name, self.0.last_name)
            .trim()
            .to_string()
    }
    /// Primary email address.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// Further email addresses.
    async fn other_emails(&self) -> Vec<String> {
        json_strings(&self.0.other_emails)
    }
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    async fn lifecycle_stage(&self) -> LifecycleStage {
        LifecycleStage::from_db(&self.0.lifecycle_stage)
    }
    /// Channel or campaign the contact came from.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    async fn tags(&self) -> Vec<String> {
        json_strings(&self.0.tags)
    }
    /// Custom attributes, a JSON object.
    async fn attributes(&self) -> Json<serde_json::Value> {
        Json(self.0.attributes.clone())
    }
    /// IANA time zone.
    async fn timezone(&self) -> Option<&str> {
        self.0.timezone.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Set while the contact is in the trash.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    /// The contact this one was merged into, if it was.
    async fn merged_into_id(&self) -> Option<ID> {
        self.0.merged_into_id.map(to_id)
    }
    async fn company(&self, ctx: &Context<'_>) -> Result<Option<Company>> {
        Ok(load::<s::company::Entity>(ctx, self.0.company_id)
            .await?
            .map(Company))
    }
    /// The current consent per channel and purpose (the latest event of each).
    async fn consent(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::consent::ConsentRecord>> {
        crate::graphql::consent::current(ctx, self.0.id).await
    }
    /// Whether this contact has an address an unsubscribe link would be sent to; the
    /// link itself (`unsubscribeUrl`) needs write scope.
    async fn has_unsubscribe_url(&self) -> bool {
        self.0.email.is_some()
    }
    /// The signed one-click unsubscribe link to put in an email to this contact (it does
    /// not expire; `POST` to it unsubscribes, `GET` shows a confirmation button). Write
    /// scope: the link withdraws the person's consent.
    async fn unsubscribe_url(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "ConsentPurpose::Marketing")] purpose: ConsentPurpose,
    ) -> Result<String> {
        crate::graphql::consent::unsubscribe_url(ctx, self.0.id, purpose).await
    }
    /// Every consent event, oldest first.
    async fn consent_history(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::consent::ConsentRecord>> {
        crate::graphql::consent::history(ctx, self.0.id).await
    }
    /// Whether an email for `purpose` may go to the contact now (consent, suppression
    /// list, address on file), as sending checks it.
    async fn email_permission(
        &self,
        ctx: &Context<'_>,
        purpose: ConsentPurpose,
    ) -> Result<crate::graphql::consent::EmailPermission> {
        crate::graphql::consent::permission(ctx, self.0.id, purpose).await
    }
    /// The contact's drip sequence enrollments, newest first.
    async fn sequence_enrollments(
        &self,
        ctx: &Context<'_>,
        status: Option<crate::graphql::enums::EnrollmentStatus>,
    ) -> Result<Vec<crate::graphql::sequences::SequenceEnrollment>> {
        let who = principal(ctx)?;
        let filter = rapport_engine::engagement::sequences::EnrollmentFilter {
            sequence_id: None,
            contact_id: Some(self.0.id),
            status: status.map(Into::into),
        };
        crate::graphql::sequences::list_enrollments(ctx, who.workspace_id, &filter, 100).await
    }
    /// Every current score: the built-in models' (lead score, churn) and each plugin's,
    /// with their reasons.
    async fn scores(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::plugins::ContactScore>> {
        crate::graphql::plugins::contact_scores(ctx, self.0.id).await
    }
    /// Open actions recommended by enabled plugins, highest priority first.
    async fn next_best_actions(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::plugins::RecommendedAction>> {
        crate::graphql::plugins::next_best_actions(ctx, self.0.id).await
    }
    /// Every score the plugin gave this contact, oldest first.
    async fn plugin_score_history(
        &self,
        ctx: &Context<'_>,
        plugin: String,
    ) -> Result<Vec<crate::graphql::plugins::ScorePoint>> {
        crate::graphql::plugins::score_history(ctx, self.0.id, &plugin).await
    }
    /// Likelihood (0–100) of converting within the lead model's window, with its grade
    /// and reasons; null for customers and until a lead-score model is active.
    async fn lead_score(&self, ctx: &Context<'_>) -> Result<Option<Score>> {
        intelligence::current(ctx, ModelKindValue::LeadScore, self.0.id).await
    }
    /// Expected purchases and spend over the next `weeks` and P(alive), from the active
    /// customer-value model; null without orders or a trained model.
    async fn clv(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 52.0)] weeks: f64,
    ) -> Result<Option<intelligence::Clv>> {
        intelligence::clv(ctx, self.0.id, weeks).await
    }
    /// 1 − P(alive) for customers who bought more than once.
    async fn churn_risk(&self, ctx: &Context<'_>) -> Result<Option<intelligence::ChurnRisk>> {
        intelligence::churn_risk(ctx, self.0.id).await
    }
    /// Recency, frequency and monetary quintile scores and the named segment.
    async fn rfm(&self, ctx: &Context<'_>) -> Result<Option<intelligence::Rfm>> {
        intelligence::rfm(ctx, self.0.id).await
    }
    /// The segments the contact falls in: the RFM segment (for customers) and the
    /// behavioural cluster (once segments are trained).
    async fn segments(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        let rfm = intelligence::rfm(ctx, self.0.id).await?.map(|r| r.segment);
        let cluster = intelligence::current(ctx, ModelKindValue::BehaviourSegments, self.0.id)
            .await?
            .and_then(|s| s.0.grade);
        Ok(rfm.into_iter().chain(cluster).collect())
    }
    /// Products to offer, from what the contact bought (none they own).
    async fn recommendations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] first: i32,
    ) -> Result<Vec<intelligence::ProductRecommendation>> {
        intelligence::recommend(ctx, self.0.id, first).await
    }
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(load::<s::user::Entity>(ctx, self.0.owner_id)
            .await?
            .map(User))
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
        deal_lists::of(
            ctx,
            self.0.id,
            s::deal::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    /// Newest first unless ordered otherwise.
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
        activity_lists::of(
            ctx,
            self.0.id,
            s::activity::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
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
        task_lists::of(
            ctx,
            self.0.id,
            s::task::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
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
        inquiry_lists::of(
            ctx,
            self.0.id,
            s::inquiry::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
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
        order_lists::of(
            ctx,
            self.0.id,
            s::order::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
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
        event_lists::of(
            ctx,
            self.0.id,
            s::event::Column::ContactId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    /// Activities, orders, inquiries and tasks merged by time, newest first.
    #[graphql(complexity = "page_cost(first, None) * child_complexity")]
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<TimelineConnection> {
        let who = principal(ctx)?;
        let first = match first {
            Some(n) if n < 0 => return Err(crate::error::invalid("first", "must not be negative")),
            other => other.map(|n| n as usize),
        };
        let page = rapport_engine::crm::timeline::page(
            ctx.data_unchecked::<sea_orm::DatabaseConnection>(),
            who,
            self.0.id,
            first,
            after.as_deref(),
        )
        .await
        .gql()?;
        Ok(TimelineConnection {
            page_info: PageInfoOut {
                has_next_page: page.has_next_page,
                has_previous_page: page.has_previous_page,
                start_cursor: page.edges.first().map(|(c, _)| c.clone()),
                end_cursor: page.edges.last().map(|(c, _)| c.clone()),
            },
            edges: page
                .edges
                .into_iter()
                .map(|(cursor, item)| TimelineEdge {
                    cursor,
                    occurred_at: item.at(),
                    node: TimelineItem::from(item),
                })
                .collect(),
        })
    }
    /// Earlier merges into this contact, newest first.
    async fn merges(&self, ctx: &Context<'_>) -> Result<Vec<ContactMerge>> {
        let ws = principal(ctx)?.workspace_id;
        let select = scoped::<s::contact_merge::Entity>(ws, Deleted::Exclude);
        let rows = all_children(
            ctx,
            self.0.id,
            s::contact_merge::Column::SurvivorId,
            select,
            vec![(s::contact_merge::Column::Id, SortDirection::Desc)],
        )
        .await?;
        Ok(rows.into_iter().map(ContactMerge).collect())
    }
}

/// An organisation contacts work for.
pub struct Company(pub s::company::Model);

#[Object]
impl Company {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn domain(&self) -> Option<&str> {
        self.0.domain.as_deref()
    }
    async fn industry(&self) -> Option<&str> {
        self.0.industry.as_deref()
    }
    /// Number of employees.
    async fn size(&self) -> Option<i32> {
        self.0.size
    }
    /// ISO 3166-1 alpha-2.
    async fn country(&self) -> Option<&str> {
        self.0.country.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(load::<s::user::Entity>(ctx, self.0.owner_id)
            .await?
            .map(User))
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<ContactFilter>,
        order_by: Option<Vec<ContactOrder>>,
    ) -> Result<Conn<Contact>> {
        contact_lists::of(
            ctx,
            self.0.id,
            s::contact::Column::CompanyId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
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
        deal_lists::of(
            ctx,
            self.0.id,
            s::deal::Column::CompanyId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
}

/// A sales process: ordered stages deals move through.
pub struct Pipeline(pub s::pipeline::Model);

#[Object]
impl Pipeline {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Stages in order.
    async fn stages(&self, ctx: &Context<'_>) -> Result<Vec<Stage>> {
        let ws = principal(ctx)?.workspace_id;
        let select = scoped::<s::stage::Entity>(ws, Deleted::Exclude);
        let order = vec![(s::stage::Column::Position, SortDirection::Asc)];
        Ok(
            all_children(ctx, self.0.id, s::stage::Column::PipelineId, select, order)
                .await?
                .into_iter()
                .map(Stage)
                .collect(),
        )
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
        deal_lists::of(
            ctx,
            self.0.id,
            s::deal::Column::PipelineId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
}

/// One step of a pipeline.
pub struct Stage(pub s::stage::Model);

#[Object]
impl Stage {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Order within the pipeline, from 0.
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// Default win probability in percent.
    async fn win_probability(&self) -> i32 {
        self.0.win_probability
    }
    async fn is_won(&self) -> bool {
        self.0.is_won
    }
    async fn is_lost(&self) -> bool {
        self.0.is_lost
    }
    async fn pipeline(&self, ctx: &Context<'_>) -> Result<Option<Pipeline>> {
        Ok(load::<s::pipeline::Entity>(ctx, Some(self.0.pipeline_id))
            .await?
            .map(Pipeline))
    }
}

/// A potential sale moving through a pipeline.
pub struct Deal(pub s::deal::Model);

#[Object]
impl Deal {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Amount in major units of the currency.
    async fn amount(&self) -> f64 {
        major(self.0.amount_minor, &self.0.currency)
    }
    /// Amount in minor units (cents), exact.
    async fn amount_minor(&self) -> i64 {
        self.0.amount_minor
    }
    /// ISO 4217.
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn expected_close_date(&self) -> Option<NaiveDate> {
        self.0.expected_close_date
    }
    async fn status(&self) -> DealStatus {
        DealStatus::from_db(&self.0.status)
    }
    async fn lost_reason(&self) -> Option<&str> {
        self.0.lost_reason.as_deref()
    }
    async fn competitor(&self) -> Option<&str> {
        self.0.competitor.as_deref()
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, self.0.contact_id)
            .await?
            .map(Contact))
    }
    async fn company(&self, ctx: &Context<'_>) -> Result<Option<Company>> {
        Ok(load::<s::company::Entity>(ctx, self.0.company_id)
            .await?
            .map(Company))
    }
    async fn pipeline(&self, ctx: &Context<'_>) -> Result<Option<Pipeline>> {
        Ok(load::<s::pipeline::Entity>(ctx, Some(self.0.pipeline_id))
            .await?
            .map(Pipeline))
    }
    async fn stage(&self, ctx: &Context<'_>) -> Result<Option<Stage>> {
        Ok(load::<s::stage::Entity>(ctx, Some(self.0.stage_id))
            .await?
            .map(Stage))
    }
    /// The chance of winning: the win-probability model's score for open deals, the
    /// stage default when no model has scored the deal, 100 or 0 once closed.
    async fn win_probability(&self, ctx: &Context<'_>) -> Result<WinProbability> {
        let closed = |won: bool| WinProbability {
            probability: if won { 100.0 } else { 0.0 },
            source: ProbabilitySource::Closed,
            score: None,
        };
        match rapport_engine::values::DealStatus::from_db(&self.0.status) {
            rapport_engine::values::DealStatus::Won => return Ok(closed(true)),
            rapport_engine::values::DealStatus::Lost => return Ok(closed(false)),
            rapport_engine::values::DealStatus::Open => {}
        }
        if let Some(score) =
            intelligence::current(ctx, ModelKindValue::WinProbability, self.0.id).await?
        {
            return Ok(WinProbability {
                probability: score.0.score,
                source: ProbabilitySource::Model,
                score: Some(score),
            });
        }
        let stage = load::<s::stage::Entity>(ctx, Some(self.0.stage_id)).await?;
        Ok(WinProbability {
            probability: stage.map_or(0.0, |s| f64::from(s.win_probability)),
            source: ProbabilitySource::StageDefault,
            score: None,
        })
    }
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(load::<s::user::Entity>(ctx, self.0.owner_id)
            .await?
            .map(User))
    }
    /// Every stage the deal entered, oldest first.
    async fn stage_history(&self, ctx: &Context<'_>) -> Result<Vec<DealStageChange>> {
        let ws = principal(ctx)?.workspace_id;
        let select = scoped::<s::deal_stage_change::Entity>(ws, Deleted::Exclude);
        let order = vec![(s::deal_stage_change::Column::MovedAt, SortDirection::Asc)];
        Ok(all_children(
            ctx,
            self.0.id,
            s::deal_stage_change::Column::DealId,
            select,
            order,
        )
        .await?
        .into_iter()
        .map(DealStageChange)
        .collect())
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
        activity_lists::of(
            ctx,
            self.0.id,
            s::activity::Column::DealId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
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
        task_lists::of(
            ctx,
            self.0.id,
            s::task::Column::DealId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
}

/// A deal entering a stage.
pub struct DealStageChange(pub s::deal_stage_change::Model);

#[Object]
impl DealStageChange {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// The stage it left (none when the deal was created).
    #[graphql(name = "fromStage")]
    async fn left_stage(&self, ctx: &Context<'_>) -> Result<Option<Stage>> {
        Ok(load::<s::stage::Entity>(ctx, self.0.from_stage_id)
            .await?
            .map(Stage))
    }
    async fn to_stage(&self, ctx: &Context<'_>) -> Result<Option<Stage>> {
        Ok(load::<s::stage::Entity>(ctx, Some(self.0.to_stage_id))
            .await?
            .map(Stage))
    }
    async fn moved_at(&self) -> DateTime<Utc> {
        self.0.moved_at
    }
    /// The API key that made the move.
    async fn moved_by_key_id(&self) -> Option<ID> {
        self.0.moved_by_key_id.map(to_id)
    }
    async fn deal(&self, ctx: &Context<'_>) -> Result<Option<Deal>> {
        Ok(load::<s::deal::Entity>(ctx, Some(self.0.deal_id))
            .await?
            .map(Deal))
    }
}

/// An email, call, meeting, note, chat or social touch.
pub struct Activity(pub s::activity::Model);

#[Object]
impl Activity {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn kind(&self) -> ActivityKind {
        ActivityKind::from_db(&self.0.kind)
    }
    async fn direction(&self) -> Option<Direction> {
        self.0.direction.as_deref().map(Direction::from_db)
    }
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }
    async fn body(&self) -> Option<&str> {
        self.0.body.as_deref()
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, self.0.contact_id)
            .await?
            .map(Contact))
    }
    async fn deal(&self, ctx: &Context<'_>) -> Result<Option<Deal>> {
        Ok(load::<s::deal::Entity>(ctx, self.0.deal_id)
            .await?
            .map(Deal))
    }
    async fn author(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(load::<s::user::Entity>(ctx, self.0.author_id)
            .await?
            .map(User))
    }
}

/// A follow-up for a team member.
pub struct Task(pub s::task::Model);

#[Object]
impl Task {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn due_at(&self) -> Option<DateTime<Utc>> {
        self.0.due_at
    }
    async fn status(&self) -> TaskStatus {
        TaskStatus::from_db(&self.0.status)
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    async fn assignee(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(load::<s::user::Entity>(ctx, self.0.assignee_id)
            .await?
            .map(User))
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, self.0.contact_id)
            .await?
            .map(Contact))
    }
    async fn deal(&self, ctx: &Context<'_>) -> Result<Option<Deal>> {
        Ok(load::<s::deal::Entity>(ctx, self.0.deal_id)
            .await?
            .map(Deal))
    }
}

/// A question or request a customer raised.
pub struct Inquiry(pub s::inquiry::Model);

#[Object]
impl Inquiry {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    async fn channel(&self) -> InquiryChannel {
        InquiryChannel::from_db(&self.0.channel)
    }
    async fn status(&self) -> InquiryStatus {
        InquiryStatus::from_db(&self.0.status)
    }
    async fn priority(&self) -> Priority {
        Priority::from_db(&self.0.priority)
    }
    async fn opened_at(&self) -> DateTime<Utc> {
        self.0.opened_at
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, self.0.contact_id)
            .await?
            .map(Contact))
    }
}

/// Something the business sells.
pub struct Product(pub s::product::Model);

#[Object]
impl Product {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// Products most often in the same orders, by lift (needs a trained recommender).
    async fn frequently_bought_together(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] first: i32,
    ) -> Result<Vec<intelligence::BoughtTogether>> {
        intelligence::bought_together(ctx, self.0.id, first).await
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    /// Unit price in major units.
    async fn price(&self) -> f64 {
        major(self.0.price_minor, &self.0.currency)
    }
    async fn price_minor(&self) -> i64 {
        self.0.price_minor
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
}

/// A purchase.
pub struct Order(pub s::order::Model);

#[Object]
impl Order {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn placed_at(&self) -> DateTime<Utc> {
        self.0.placed_at
    }
    async fn status(&self) -> OrderStatus {
        OrderStatus::from_db(&self.0.status)
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// Sum of the lines in major units.
    async fn total(&self) -> f64 {
        major(self.0.total_minor, &self.0.currency)
    }
    async fn total_minor(&self) -> i64 {
        self.0.total_minor
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, Some(self.0.contact_id))
            .await?
            .map(Contact))
    }
    async fn lines(&self, ctx: &Context<'_>) -> Result<Vec<OrderLine>> {
        let ws = principal(ctx)?.workspace_id;
        let select = scoped::<s::order_line::Entity>(ws, Deleted::Exclude);
        let rows = all_children(
            ctx,
            self.0.id,
            s::order_line::Column::OrderId,
            select,
            vec![],
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|l| OrderLine(l, self.0.currency.clone()))
            .collect())
    }
}

/// One line of an order (with the order's currency).
pub struct OrderLine(pub s::order_line::Model, pub String);

#[Object]
impl OrderLine {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn quantity(&self) -> i32 {
        self.0.quantity
    }
    async fn unit_price(&self) -> f64 {
        major(self.0.unit_price_minor, &self.1)
    }
    async fn unit_price_minor(&self) -> i64 {
        self.0.unit_price_minor
    }
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        Ok(load::<s::product::Entity>(ctx, self.0.product_id)
            .await?
            .map(Product))
    }
}

/// Something a contact did (viewed a page, submitted a form, ...).
pub struct Event(pub s::event::Model);

#[Object]
impl Event {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    #[graphql(name = "type")]
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    async fn properties(&self) -> Json<serde_json::Value> {
        Json(self.0.properties.clone())
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, Some(self.0.contact_id))
            .await?
            .map(Contact))
    }
}

/// A team member.
pub struct User(pub s::user::Model);

#[Object]
impl User {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn role(&self) -> UserRole {
        UserRole::from_db(&self.0.role)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<Team>> {
        Ok(load::<s::team::Entity>(ctx, self.0.team_id)
            .await?
            .map(Team))
    }
}

/// A group of team members.
pub struct Team(pub s::team::Model);

#[Object]
impl Team {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    #[graphql(complexity = "page_cost(first, last) * child_complexity")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<UserFilter>,
        order_by: Option<Vec<UserOrder>>,
    ) -> Result<Conn<User>> {
        user_lists::of(
            ctx,
            self.0.id,
            s::user::Column::TeamId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
}

/// A record that contacts were merged (the merged contact as it was is kept).
pub struct ContactMerge(pub s::contact_merge::Model);

#[Object]
impl ContactMerge {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn merged_id(&self) -> ID {
        to_id(self.0.merged_id)
    }
    /// The merged contact as it was before the merge.
    async fn merged_snapshot(&self) -> Json<serde_json::Value> {
        Json(self.0.merged_snapshot.clone())
    }
    /// How many rows of each kind moved.
    async fn moved(&self) -> Json<serde_json::Value> {
        Json(self.0.moved.clone())
    }
    async fn merged_at(&self) -> DateTime<Utc> {
        self.0.merged_at
    }
    async fn survivor(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, Some(self.0.survivor_id))
            .await?
            .map(Contact))
    }
}

/// An API key (the secret itself is never shown again after creation).
pub struct ApiKey(pub s::api_key::Model);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The public part of the key, `rk_<prefix>_...`.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn scopes(&self) -> Vec<Scope> {
        self.0
            .scopes
            .split(',')
            .filter_map(|s| rapport_engine::values::Scope::parse("scopes", s).ok())
            .map(Scope::from)
            .collect()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// One entry of a contact's timeline.
#[derive(Union)]
pub enum TimelineItem {
    Activity(Activity),
    Order(Order),
    Inquiry(Inquiry),
    Task(Task),
}

impl From<rapport_engine::crm::timeline::TimelineItem> for TimelineItem {
    fn from(i: rapport_engine::crm::timeline::TimelineItem) -> Self {
        use rapport_engine::crm::timeline::TimelineItem as T;
        match i {
            T::Activity(a) => Self::Activity(Activity(a)),
            T::Order(o) => Self::Order(Order(o)),
            T::Inquiry(q) => Self::Inquiry(Inquiry(q)),
            T::Task(t) => Self::Task(Task(t)),
        }
    }
}

/// Paging state of a list.
#[derive(SimpleObject)]
#[graphql(name = "TimelinePageInfo")]
pub struct PageInfoOut {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// A timeline entry with its cursor and time.
#[derive(SimpleObject)]
pub struct TimelineEdge {
    pub cursor: String,
    pub occurred_at: DateTime<Utc>,
    pub node: TimelineItem,
}

/// A page of a contact's timeline.
#[derive(SimpleObject)]
pub struct TimelineConnection {
    pub page_info: PageInfoOut,
    pub edges: Vec<TimelineEdge>,
}
