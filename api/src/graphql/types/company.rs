//! A company and its lists.

use super::*;

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
}
