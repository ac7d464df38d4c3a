//! The contact filter: a contact's columns, tags, custom attributes and company, and
//! what other rooms record about it (see [`super::behaviour`]).

use rapport_schema as s;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, Condition};
use serde::Deserialize;

use super::attributes::AttributeFilter;
use super::behaviour::{self, *};
use super::records::{CompanyFilter, DealFilter};
use super::scalars::*;
use super::{Evaluation, Filter, MAX_DEPTH, too_deep};
use crate::error::{EngineError, Result};
use crate::values;

// Fields are boxed: a parser (serde here, async-graphql's for the API's input) keeps a
// node's fields on the stack while it reads the nodes below, so a node's size times the
// depth the bounds allow must fit a worker thread's stack with room to spare.
record_filter!(
    /// Which contacts: a list, a segment, a campaign's audience.
    ContactFilter, contact {
        id: Box<IdFilter> => Id,
        first_name: Box<StringFilter> => FirstName,
        last_name: Box<StringFilter> => LastName,
        email: Box<StringFilter> => Email,
        phone: Box<StringFilter> => PhoneNormalized,
        company_id: Box<IdFilter> => CompanyId,
        owner_id: Box<IdFilter> => OwnerId,
        lifecycle_stage: Box<EnumFilter<values::LifecycleStage>> => LifecycleStage,
        source: Box<StringFilter> => Source,
        timezone: Box<StringFilter> => Timezone,
        created_at: Box<DateTimeFilter> => CreatedAt,
        updated_at: Box<DateTimeFilter> => UpdatedAt,
    },
    extra {
        /// Conditions on its tags.
        tags: Box<TagsFilter>,
        /// Conditions on its company.
        company: Box<CompanyFilter>,
        /// Conditions on custom attributes, all of which must hold.
        attributes: Vec<AttributeFilter>,
        /// Its lead score (the built-in model's, 0–100) and grade.
        lead_score: Box<ScoreFilter>,
        /// Its behaviour cluster's name (once behaviour segments are trained).
        cluster: Box<StringFilter>,
        /// Scores that plugins gave it, all of which must hold.
        plugin_scores: Vec<PluginScoreFilter>,
        /// Its churn risk (customers only, as of the last rescoring).
        churn_risk: Box<ChurnRiskFilter>,
        /// Its RFM scores and segment (customers only, as of the last rescoring).
        rfm: Box<RfmFilter>,
        /// Its expected value over the next 52 weeks (customers only, as of the last
        /// rescoring).
        clv: Box<ClvFilter>,
        /// Opens and clicks of the email campaigns and sequences sent it.
        engagement: Box<EngagementFilter>,
        /// Events it did, all of which must hold.
        events: Vec<EventCondition>,
        /// Its orders.
        orders: Box<OrdersCondition>,
        /// It has a deal that matches.
        deals: Box<DealFilter>,
        /// It is (or was) enrolled in a sequence.
        sequence: Box<SequenceCondition>,
        /// Where its consent to email stands, all of which must hold.
        consent: Vec<ConsentCondition>,
        /// It may be emailed for this purpose now: an address, not suppressed, and the
        /// purpose's consent as the send-time check wants it (marketing granted;
        /// transactional not refused).
        email_permission: EnumValue<values::ConsentPurpose>,
    } => contact_extras
);

impl TagsFilter {
    fn condition(&self, ws: i64) -> Condition {
        use s::contact_tag::Column as T;
        let with_tags = |tags: Vec<String>| {
            Query::select()
                .column(T::ContactId)
                .from(s::contact_tag::Entity)
                .and_where(T::WorkspaceId.eq(ws))
                .and_where(T::Tag.is_in(tags))
                .to_owned()
        };
        let id = s::contact::Column::Id;
        let mut c = Condition::all();
        if let Some(t) = &self.has {
            c = c.add(id.in_subquery(with_tags(vec![t.clone()])));
        }
        if let Some(ts) = &self.has_any {
            c = c.add(id.in_subquery(with_tags(ts.clone())));
        }
        for t in self.has_all.iter().flatten() {
            c = c.add(id.in_subquery(with_tags(vec![t.clone()])));
        }
        if let Some(ts) = &self.has_none {
            c = c.add(id.not_in_subquery(with_tags(ts.clone())));
        }
        c
    }
}

/// Reads of other tables one contact filter may ask for in all (an aggregate over events
/// or orders, say): their number, not the size of the tree, is what a filter costs the
/// database. [`ContactFilter::cost`] reports it, so a request's cost can include it.
pub const MAX_SUBQUERIES: usize = 40;

impl ContactFilter {
    /// How many times the whole filter reads other tables (see [`MAX_SUBQUERIES`]).
    pub fn cost(&self) -> usize {
        self.subqueries(0)
    }

    /// The subqueries this node and those below it ask for.
    fn subqueries(&self, depth: usize) -> usize {
        if depth > MAX_DEPTH {
            return 0;
        }
        let some = |b: bool| usize::from(b);
        // Conditions that read other tables count once per table they read (typed
        // attributes once per subquery); a JSON attribute reads a member of every row and
        // counts once.
        let own = self.tags.as_ref().map_or(0, |t| {
            some(t.has.is_some())
                + some(t.has_any.is_some())
                + t.has_all.as_ref().map_or(0, Vec::len)
                + some(t.has_none.is_some())
        }) + some(self.company.is_some())
            + self
                .attributes
                .iter()
                .flatten()
                .map(AttributeFilter::reads)
                .sum::<usize>()
            + some(self.lead_score.is_some())
            + some(self.cluster.is_some())
            + 2 * self.plugin_scores.as_ref().map_or(0, Vec::len)
            + some(self.churn_risk.is_some())
            + some(self.rfm.is_some())
            + some(self.clv.is_some())
            + self.engagement.as_ref().map_or(0, |e| {
                2 * (some(e.opened.is_some()) + some(e.clicked.is_some()))
            })
            + self.events.as_ref().map_or(0, Vec::len)
            + self
                .orders
                .as_ref()
                .map_or(0, |o| 1 + some(o.product_id.is_some()))
            + some(self.deals.is_some())
            + some(self.sequence.is_some())
            + 2 * self.consent.as_ref().map_or(0, Vec::len)
            + 3 * some(self.email_permission.is_some());
        let below: usize = self
            .and
            .iter()
            .chain(self.or.iter())
            .flatten()
            .chain(self.not.as_deref())
            .map(|f| f.subqueries(depth + 1))
            .sum();
        own + below
    }
}

fn contact_extras(f: &ContactFilter, at: Evaluation, depth: usize) -> Result<Condition> {
    let ws = at.workspace_id;
    if depth == 0 {
        let n = f.subqueries(0);
        if n > MAX_SUBQUERIES {
            return Err(EngineError::invalid(
                "filter",
                format!(
                    "reads other records {n} times (tags, company, scores, events, orders, …); \
                     at most {MAX_SUBQUERIES}"
                ),
            ));
        }
    }
    let mut c = Condition::all();
    for a in f.attributes.iter().flatten() {
        c = c.add(a.condition(ws));
    }
    if let Some(t) = &f.tags {
        c = c.add(t.condition(ws));
    }
    if let Some(company) = &f.company {
        // The companies of this workspace only: company ids are not secret, and a
        // contact's company id must not let a filter read another workspace's companies.
        let ids = Query::select()
            .column(s::company::Column::Id)
            .from(s::company::Entity)
            .and_where(s::company::Column::WorkspaceId.eq(ws))
            .and_where(s::company::Column::DeletedAt.is_null())
            .cond_where(company.condition_at(at, depth + 1)?)
            .to_owned();
        c = c.add(s::contact::Column::CompanyId.in_subquery(ids));
    }
    c = c.add(behaviour::conditions(f, at)?);
    if let Some(deals) = &f.deals {
        // Live deals of this workspace only, as for the company.
        let of = Query::select()
            .column(s::deal::Column::ContactId)
            .from(s::deal::Entity)
            .and_where(s::deal::Column::WorkspaceId.eq(ws))
            .and_where(s::deal::Column::DeletedAt.is_null())
            .and_where(s::deal::Column::ContactId.is_not_null())
            .cond_where(deals.condition_at(at, depth + 1)?)
            .to_owned();
        c = c.add(s::contact::Column::Id.in_subquery(of));
    }
    Ok(c)
}
