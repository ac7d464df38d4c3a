//! Pipelines and their stages.

use super::*;

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
    /// The deals in this stage.
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
            s::deal::Column::StageId,
            ConnArgs::new(first, after, last, before),
            filter,
            order_by,
        )
        .await
    }
    /// The open deals in this stage, counted and summed per currency (one owner's only,
    /// with `ownerId`), however many there are.
    async fn open_totals(
        &self,
        ctx: &Context<'_>,
        owner_id: Option<ID>,
    ) -> Result<Vec<StageTotal>> {
        let ws = principal(ctx)?.workspace_id;
        let owner = owner_id
            .map(|id| crate::graphql::ids::parse_id("ownerId", &id))
            .transpose()?;
        let db = ctx.data_unchecked::<sea_orm::DatabaseConnection>();
        Ok(
            rapport_engine::crm::deals::open_totals(db, ws, self.0.id, owner)
                .await
                .gql()?
                .into_iter()
                .map(|t| StageTotal {
                    amount: major(t.amount_minor, &t.currency),
                    currency: t.currency,
                    deals: t.deals as i32,
                })
                .collect(),
        )
    }
}

/// Open deals of one currency in a stage.
#[derive(SimpleObject)]
pub struct StageTotal {
    pub currency: String,
    pub deals: i32,
    /// In major units (dollars for USD).
    pub amount: f64,
}
