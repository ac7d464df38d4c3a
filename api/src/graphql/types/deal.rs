//! Deals and their stage history.

use super::*;

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
    /// Its id in another system (unique in the workspace).
    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_deref()
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
    /// Current scores from plugins of deals (their input query declares `$dealId`), by
    /// plugin name.
    async fn scores(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<crate::graphql::plugin_scores::RecordScore>> {
        crate::graphql::plugin_scores::record_scores(
            ctx,
            rapport_engine::intelligence::plugins::Subject::Deal,
            self.0.id,
        )
        .await
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
    /// The person who made the move in the console.
    async fn moved_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Ok(load::<s::user::Entity>(ctx, self.0.moved_by_user_id)
            .await?
            .map(User))
    }
    async fn deal(&self, ctx: &Context<'_>) -> Result<Option<Deal>> {
        Ok(load::<s::deal::Entity>(ctx, Some(self.0.deal_id))
            .await?
            .map(Deal))
    }
}
