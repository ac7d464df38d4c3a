//! A company and its lists.

use super::*;
use rapport_engine::crm::companies;
use sea_orm::ColumnTrait;

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
    /// Current scores from plugins of companies (their input query declares `$companyId`), by
    /// plugin name.
    async fn scores(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::plugin_scores::RecordScore>> {
        crate::graphql::plugin_scores::record_scores(
            ctx,
            rapport_engine::intelligence::plugins::Subject::Company,
            self.0.id,
        )
        .await
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
    #[graphql(
        complexity = "page_cost(first, last) * child_complexity + crate::graphql::filters::contact_filter_cost(&filter)"
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
    /// Activities with the company's contacts and on its deals, newest first by default.
    /// Read per company (not batched across a list of companies): ask for it on one
    /// company, or a short list.
    #[graphql(complexity = "10 * page_cost(first, last) * child_complexity")]
    #[allow(clippy::too_many_arguments)]
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
        let ws = principal(ctx)?.workspace_id;
        let at = Evaluation::new(ws, as_of(ctx));
        let mut condition = sea_orm::Condition::all().add(
            sea_orm::Condition::any()
                .add(
                    s::activity::Column::ContactId.in_subquery(companies::people_of(ws, self.0.id)),
                )
                .add(s::activity::Column::DealId.in_subquery(companies::deals_of(ws, self.0.id))),
        );
        if let Some(f) = &filter {
            condition = condition.add(f.condition(at).gql()?);
        }
        activity_lists::all_where(
            ctx,
            ConnArgs::new(first, after, last, before),
            condition,
            order_by,
        )
        .await
    }
    /// Inquiries from the company's contacts, newest first by default (read per company,
    /// as `activities`).
    #[graphql(complexity = "10 * page_cost(first, last) * child_complexity")]
    #[allow(clippy::too_many_arguments)]
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
        let ws = principal(ctx)?.workspace_id;
        let at = Evaluation::new(ws, as_of(ctx));
        let mut condition = sea_orm::Condition::all()
            .add(s::inquiry::Column::ContactId.in_subquery(companies::people_of(ws, self.0.id)));
        if let Some(f) = &filter {
            condition = condition.add(f.condition(at).gql()?);
        }
        inquiry_lists::all_where(
            ctx,
            ConnArgs::new(first, after, last, before),
            condition,
            order_by,
        )
        .await
    }
    /// Everything about the company's contacts merged by time, newest first (as a
    /// contact's timeline), with the activities of its deals.
    #[graphql(complexity = "10 * page_cost(first, None) * child_complexity")]
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<TimelineConnection> {
        super::timeline::connection(
            ctx,
            rapport_engine::timeline::Subject::Company(self.0.id),
            first,
            after,
        )
        .await
    }
}
