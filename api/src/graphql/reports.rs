//! Reports computed from the graph: the sales funnel and cohort retention.

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::intelligence::analytics::{cohorts, forecast, funnel, lifecycle_funnel};
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, invalid};
use crate::graphql::ids::parse_id;
use crate::graphql::loaders::ById;
use crate::graphql::types::{Contact, Deal, Stage, Team, User, principal};

/// How a funnel is split.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum FunnelGrouping {
    /// One funnel with every deal.
    None,
    /// One funnel per deal owner.
    Owner,
    /// One per owner's team.
    Team,
    /// One per month of deal creation.
    Month,
}

/// One stage of a funnel.
pub struct FunnelStage(funnel::StageCounts);

async fn load_many<E>(ctx: &Context<'_>, ids: &[i64], first: i32) -> Result<Vec<E::Model>>
where
    E: rapport_engine::platform::records::Record,
    E::Model: sea_orm::ModelTrait<Entity = E> + Clone + Send + Sync,
{
    if !(0..=500).contains(&first) {
        return Err(invalid("first", "must be between 0 and 500"));
    }
    let wanted: Vec<i64> = ids.iter().copied().take(first as usize).collect();
    let found = ctx
        .data_unchecked::<DataLoader<ById<E>>>()
        .load_many(wanted.iter().copied())
        .await?;
    Ok(wanted
        .iter()
        .filter_map(|id| found.get(id).cloned())
        .collect())
}

#[Object]
impl FunnelStage {
    async fn stage(&self) -> Stage {
        Stage(self.0.stage.clone())
    }
    /// Deals with a history entry into this stage.
    async fn entered(&self) -> i32 {
        self.0.entered as i32
    }
    /// Deals that entered this stage or a later open one, or won.
    async fn reached(&self) -> i32 {
        self.0.reached as i32
    }
    /// Deals in this stage now.
    async fn current(&self) -> i32 {
        self.0.current as i32
    }
    /// Share of the deals that reached this stage and went on to the next (for the last
    /// open stage: won). Null for won and lost stages.
    async fn conversion_to_next(&self) -> Option<f64> {
        self.0.conversion_to_next
    }
    /// 1 − conversionToNext.
    async fn drop_off(&self) -> Option<f64> {
        self.0.conversion_to_next.map(|c| 1.0 - c)
    }
    /// Median hours a deal spent in the stage, over the visits that ended.
    async fn median_hours_in_stage(&self) -> Option<f64> {
        self.0.median_hours_in_stage
    }
    /// Drill-down: the deals that reached the stage.
    async fn deals(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<Deal>> {
        Ok(load_many::<s::deal::Entity>(ctx, &self.0.deal_ids, first)
            .await?
            .into_iter()
            .map(Deal)
            .collect())
    }
    /// Drill-down: the contacts of those deals, each once.
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<Contact>> {
        Ok(
            load_many::<s::contact::Entity>(ctx, &self.0.contact_ids, first)
                .await?
                .into_iter()
                .map(Contact)
                .collect(),
        )
    }
}

/// One group's funnel.
pub struct FunnelGroup {
    inner: funnel::FunnelGroup,
    grouping: FunnelGrouping,
}

#[Object]
impl FunnelGroup {
    /// The owner id, team id or month (`2026-03`); null for the whole funnel or for deals
    /// without an owner or team.
    async fn key(&self) -> Option<&str> {
        self.inner.key.as_deref()
    }
    /// The owner, when grouped by owner.
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        if self.grouping != FunnelGrouping::Owner {
            return Ok(None);
        }
        let id = self.inner.key.as_deref().and_then(|k| k.parse().ok());
        Ok(crate::graphql::types::load::<s::user::Entity>(ctx, id)
            .await?
            .map(User))
    }
    /// The team, when grouped by team.
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<Team>> {
        if self.grouping != FunnelGrouping::Team {
            return Ok(None);
        }
        let id = self.inner.key.as_deref().and_then(|k| k.parse().ok());
        Ok(crate::graphql::types::load::<s::team::Entity>(ctx, id)
            .await?
            .map(Team))
    }
    async fn deals(&self) -> i32 {
        self.inner.deals as i32
    }
    async fn won(&self) -> i32 {
        self.inner.won as i32
    }
    async fn lost(&self) -> i32 {
        self.inner.lost as i32
    }
    /// Won / (won + lost); null before any deal closed.
    async fn win_rate(&self) -> Option<f64> {
        let closed = self.inner.won + self.inner.lost;
        (closed > 0).then(|| self.inner.won as f64 / closed as f64)
    }
    /// Stages in pipeline order.
    async fn stages(&self) -> Vec<FunnelStage> {
        self.inner.stages.iter().cloned().map(FunnelStage).collect()
    }
}

/// A monthly cohort of first-time buyers.
#[derive(SimpleObject)]
pub struct Cohort {
    /// Month of the first order, `2026-03`.
    pub month: String,
    /// Customers in the cohort.
    pub customers: i32,
    /// How many ordered in each month since (index 0 is the first month).
    pub active: Vec<i32>,
    /// The same as shares of the cohort.
    pub retention: Vec<f64>,
}

/// How a forecast buckets time.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ForecastPeriod {
    Month,
    Quarter,
}

/// Open deals expected to close in one period, in one currency.
#[derive(SimpleObject)]
pub struct PipelineForecast {
    /// `2026-03` or `2026-Q1`; null for deals without an expected close date.
    pub period: Option<String>,
    pub currency: String,
    pub deals: i32,
    /// Sum of the deals' amounts.
    pub amount: f64,
    /// Sum of amount × win probability (the model's, else the stage default).
    pub weighted: f64,
}

/// Revenue in one period.
#[derive(SimpleObject)]
pub struct PeriodAmount {
    pub period: String,
    pub amount: f64,
}

/// Closed-won revenue, past and forecast, in one currency.
#[derive(SimpleObject)]
pub struct RevenueForecast {
    pub currency: String,
    /// `holt_linear` or `holt_winters_additive` (with two years of history); null when
    /// there are fewer than three complete months.
    pub method: Option<String>,
    /// Won revenue per complete past period.
    pub history: Vec<PeriodAmount>,
    /// Forecast per period, from the current one.
    pub forecast: Vec<PeriodAmount>,
    /// Mean absolute percentage error of the method on the last months held out.
    pub backtest_mape: Option<f64>,
    pub backtest_months: i32,
}

/// Both forecasts.
#[derive(SimpleObject)]
pub struct Forecast {
    pub pipeline: Vec<PipelineForecast>,
    pub revenue: Vec<RevenueForecast>,
}

fn amounts(points: Vec<(String, f64)>) -> Vec<PeriodAmount> {
    points
        .into_iter()
        .map(|(period, amount)| PeriodAmount { period, amount })
        .collect()
}

/// One stage of the lifecycle funnel.
pub struct LifecycleFunnelStage(lifecycle_funnel::StageCount);

#[Object]
impl LifecycleFunnelStage {
    async fn stage(&self) -> crate::graphql::enums::LifecycleStage {
        self.0.stage.into()
    }
    /// Contacts that reached it or a later stage (from the lifecycle history).
    async fn reached(&self) -> i32 {
        self.0.reached as i32
    }
    /// Contacts in it now.
    async fn current(&self) -> i32 {
        self.0.current as i32
    }
    /// Share of those that reached it that reached the next stage.
    async fn conversion_to_next(&self) -> Option<f64> {
        self.0.conversion_to_next
    }
    /// Median days from a contact's creation to reaching the stage.
    async fn median_days_to_reach(&self) -> Option<f64> {
        self.0.median_days_to_reach
    }
}

/// Reports.
#[derive(Default)]
pub struct ReportsQuery;

#[Object]
impl ReportsQuery {
    /// The funnel of one pipeline, for deals created in [from, to).
    async fn sales_funnel(
        &self,
        ctx: &Context<'_>,
        pipeline_id: ID,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        #[graphql(default_with = "FunnelGrouping::None")] group_by: FunnelGrouping,
    ) -> Result<Vec<FunnelGroup>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let query = funnel::FunnelQuery {
            pipeline_id: parse_id("pipelineId", &pipeline_id)?,
            from,
            to,
            group_by: match group_by {
                FunnelGrouping::None => funnel::GroupBy::Nothing,
                FunnelGrouping::Owner => funnel::GroupBy::Owner,
                FunnelGrouping::Team => funnel::GroupBy::Team,
                FunnelGrouping::Month => funnel::GroupBy::Month,
            },
        };
        Ok(funnel::funnel(db, who, &query)
            .await
            .gql()?
            .into_iter()
            .map(|inner| FunnelGroup {
                inner,
                grouping: group_by,
            })
            .collect())
    }

    /// The contact lifecycle funnel (Lead → Qualified → Opportunity → Customer) of the
    /// contacts created in [from, to), from their lifecycle history: beside the deal
    /// funnel, where contacts come from and where they stop.
    async fn lifecycle_funnel(
        &self,
        ctx: &Context<'_>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<LifecycleFunnelStage>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(lifecycle_funnel::funnel(db, who, from, to)
            .await
            .gql()?
            .into_iter()
            .map(LifecycleFunnelStage)
            .collect())
    }

    /// The weighted open pipeline by expected close period, and a forecast of
    /// closed-won revenue `months` ahead with its backtested error.
    async fn forecast(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "ForecastPeriod::Month")] period: ForecastPeriod,
        #[graphql(default = 6)] months: i32,
    ) -> Result<Forecast> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let months = usize::try_from(months).map_err(|_| invalid("months", "must be positive"))?;
        let period = match period {
            ForecastPeriod::Month => forecast::Period::Month,
            ForecastPeriod::Quarter => forecast::Period::Quarter,
        };
        let f = forecast::forecast(db, who, period, months).await.gql()?;
        Ok(Forecast {
            pipeline: f
                .pipeline
                .into_iter()
                .map(|b| PipelineForecast {
                    period: b.period,
                    currency: b.currency,
                    deals: b.deals as i32,
                    amount: b.amount,
                    weighted: b.weighted,
                })
                .collect(),
            revenue: f
                .revenue
                .into_iter()
                .map(|r| RevenueForecast {
                    currency: r.currency,
                    method: r.method.map(String::from),
                    history: amounts(r.history),
                    forecast: amounts(r.forecast),
                    backtest_mape: r.backtest_mape,
                    backtest_months: r.backtest_months as i32,
                })
                .collect(),
        })
    }

    /// Monthly cohort retention over the last `months` months.
    async fn cohorts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 12)] months: i32,
    ) -> Result<Vec<Cohort>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let months = u32::try_from(months).map_err(|_| invalid("months", "must be positive"))?;
        Ok(cohorts::monthly(db, who.workspace_id, months)
            .await
            .gql()?
            .into_iter()
            .map(|c| Cohort {
                month: c.month,
                customers: c.customers as i32,
                active: c.active.into_iter().map(|a| a as i32).collect(),
                retention: c.retention,
            })
            .collect())
    }
}
