//! The CRM graph's object types and their relations.
// Resolvers take Relay's four paging arguments plus filter and order: the GraphQL
// signature, not a design choice to fold into a struct.
#![allow(clippy::too_many_arguments)]

use crate::error::OrGraphql;
use crate::graphql::connection::{Conn, ConnArgs, all_children, list, nested, page_cost};
pub use crate::graphql::context::{as_of, load, principal};
use crate::graphql::enums::*;
use crate::graphql::filters::*;
use crate::graphql::ids::to_id;
use async_graphql::{Context, ID, Json, Object, Result, SimpleObject, Union};
use chrono::{DateTime, NaiveDate, Utc};
use rapport_engine::crm::filters::Evaluation;
use rapport_engine::platform::pagination::SortDirection;
use rapport_engine::platform::records::{Deleted, scoped};
use rapport_engine::values::{Currency, json_strings};
use rapport_schema as s;
use sea_orm::QueryFilter;

use crate::graphql::intelligence::{self, ProbabilitySource, Score, WinProbability};
use rapport_engine::intelligence::analytics::recommendations;
use rapport_engine::values::ModelKind as ModelKindValue;

/// An amount in minor units as major units of its currency (cents to dollars).
pub fn major(minor: i64, currency: &str) -> f64 {
    Currency::parse("currency", currency)
        .map(|c| c.to_major(minor))
        .unwrap_or(minor as f64 / 100.0)
}

macro_rules! lists {
    ($nested_fn:ident, $list_fn:ident, $list_where_fn:ident, $module:ident, $node:ident, $filter:ident, $order:ident, [$(($dcol:ident, $ddir:ident)),*]) => {
        /// The sort keys of `order_by`, or the default order of this type.
        pub fn order_of(order_by: &Option<Vec<$order>>) -> Vec<(s::$module::Column, SortDirection)> {
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
            let at = Evaluation::new(ws, as_of(ctx));
            let description = format!("{filter:?}{order_by:?}");
            let select = move || -> Result<_> {
                let condition = filter.as_ref().map(|f| f.condition(at)).transpose().gql()?.unwrap_or_else(sea_orm::Condition::all);
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
            let at = Evaluation::new(principal(ctx)?.workspace_id, as_of(ctx));
            let condition = filter.as_ref().map(|f| f.condition(at)).transpose().gql()?.unwrap_or_else(sea_orm::Condition::all);
            $list_where_fn(ctx, args, condition, order_by).await
        }

        /// A top-level list of the rows that meet `condition` (a saved segment's).
        pub async fn $list_where_fn(
            ctx: &Context<'_>,
            args: ConnArgs,
            condition: sea_orm::Condition,
            order_by: Option<Vec<$order>>,
        ) -> Result<Conn<$node>> {
            let ws = principal(ctx)?.workspace_id;
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

node_lists!(contact_lists: of, all, all_where, contact, Contact, ContactFilter, ContactOrder, [(Id, Asc)]);
/// Contacts sorted by a typed field first (`lead`), then by `order_by` in its direction.
pub async fn contacts_by_attribute<T>(
    ctx: &Context<'_>,
    args: ConnArgs,
    filter: Option<ContactFilter>,
    lead: &rapport_engine::platform::pagination::LeadKey,
    order_by: Option<Vec<ContactOrder>>,
) -> Result<Conn<Contact>>
where
    T: sea_orm::TryGetable + Into<sea_orm::Value> + Send + Sync,
{
    let ws = principal(ctx)?.workspace_id;
    let at = Evaluation::new(ws, as_of(ctx));
    let condition = filter
        .as_ref()
        .map(|f| f.condition(at))
        .transpose()
        .gql()?
        .unwrap_or_else(sea_orm::Condition::all);
    let select = scoped::<s::contact::Entity>(ws, Deleted::Exclude).filter(condition);
    crate::graphql::connection::list_led::<_, _, T>(
        ctx.data_unchecked(),
        select,
        lead,
        ContactOrder::keys(&order_by),
        &args,
        Contact,
    )
    .await
}

node_lists!(company_lists: of, all, all_where, company, Company, CompanyFilter, CompanyOrder, [(Id, Asc)]);
node_lists!(deal_lists: of, all, all_where, deal, Deal, DealFilter, DealOrder, [(Id, Asc)]);
node_lists!(activity_lists: of, all, all_where, activity, Activity, ActivityFilter, ActivityOrder, [(OccurredAt, Desc)]);
node_lists!(task_lists: of, all, all_where, task, Task, TaskFilter, TaskOrder, [(Id, Asc)]);
node_lists!(inquiry_lists: of, all, all_where, inquiry, Inquiry, InquiryFilter, InquiryOrder, [(OpenedAt, Desc)]);
node_lists!(order_lists: of, all, all_where, order, Order, OrderFilter, OrderOrder, [(PlacedAt, Desc)]);
node_lists!(event_lists: of, all, all_where, event, Event, EventFilter, EventOrder, [(OccurredAt, Desc)]);
node_lists!(product_lists: of, all, all_where, product, Product, ProductFilter, ProductOrder, [(Id, Asc)]);
node_lists!(user_lists: of, all, all_where, user, User, UserFilter, UserOrder, [(Id, Asc)]);
node_lists!(team_lists: of, all, all_where, team, Team, TeamFilter, TeamOrder, [(Id, Asc)]);
node_lists!(pipeline_lists: of, all, all_where, pipeline, Pipeline, PipelineFilter, PipelineOrder, [(Id, Asc)]);

mod activity;
mod api_key;
mod commerce;
mod company;
mod contact;
mod contact_merge;
mod deal;
mod event;
mod inquiry;
mod pipeline;
mod sequence;
mod task;
mod team;
mod timeline;

pub use activity::Activity;
pub use api_key::ApiKey;
pub use commerce::{BoughtTogether, Order, OrderLine, Product, ProductRecommendation};
pub use company::Company;
pub use contact::Contact;
pub use contact_merge::ContactMerge;
pub use deal::{Deal, DealStageChange};
pub use event::Event;
pub use inquiry::Inquiry;
pub use pipeline::{Pipeline, Stage};
pub use sequence::{
    Sequence, SequenceEnrollment, SequenceMessage, SequenceStepEvent, SequenceStepStats,
    SequenceVersion, list_enrollments,
};
pub use task::Task;
pub use team::{Team, User};
pub use timeline::{
    EmailKind, EmailSent, LifecycleChange, PageInfoOut, TimelineConnection, TimelineEdge,
    TimelineItem,
};
