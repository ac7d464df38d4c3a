//! The contact filter: a contact's columns, tags, custom attributes and company, and
//! what other rooms record about it (see [`super::behaviour`]).

use rapport_schema as s;
use sea_orm::sea_query::{BinOper, Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition};
use serde::Deserialize;

use super::behaviour::{self, *};
use super::records::{CompanyFilter, DealFilter};
use super::scalars::*;
use super::{Evaluation, Filter, MAX_DEPTH, too_deep};
use crate::error::Result;
use crate::values;

record_filter!(
    /// Which contacts: a list, a segment, a campaign's audience.
    ContactFilter, contact {
        id: IdFilter => Id,
        first_name: StringFilter => FirstName,
        last_name: StringFilter => LastName,
        email: StringFilter => Email,
        phone: StringFilter => PhoneNormalized,
        company_id: IdFilter => CompanyId,
        owner_id: IdFilter => OwnerId,
        lifecycle_stage: EnumFilter<values::LifecycleStage> => LifecycleStage,
        source: StringFilter => Source,
        timezone: StringFilter => Timezone,
        created_at: DateTimeFilter => CreatedAt,
        updated_at: DateTimeFilter => UpdatedAt,
    },
    extra {
        /// Conditions on its tags.
        tags: TagsFilter,
        /// Conditions on its company.
        company: CompanyFilter,
        /// Conditions on custom attributes, all of which must hold.
        attributes: Vec<AttributeFilter>,
        /// Its lead score (the built-in model's, 0–100) and grade.
        lead_score: ScoreFilter,
        /// Its behaviour cluster's name (once behaviour segments are trained).
        cluster: StringFilter,
        /// Scores that plugins gave it, all of which must hold.
        plugin_scores: Vec<PluginScoreFilter>,
        /// Opens and clicks of the email campaigns and sequences sent it.
        engagement: EngagementFilter,
        /// Events it did, all of which must hold.
        events: Vec<EventCondition>,
        /// Its orders.
        orders: OrdersCondition,
        /// It has a deal that matches.
        deals: DealFilter,
        /// It is (or was) enrolled in a sequence.
        sequence: SequenceCondition,
        /// Where its consent to email stands, all of which must hold.
        consent: Vec<ConsentCondition>,
    } => contact_extras
);

/// A condition on one custom attribute, whose value is compared as text (numbers and
/// booleans as they are written in JSON: `5`, `true`).
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeFilter {
    /// The attribute's name.
    pub key: AttributeKey,
    /// The condition on its value; a missing attribute is null.
    pub value: StringFilter,
}

impl AttributeFilter {
    fn condition(&self) -> Condition {
        // `->>` reads a JSON member as SQL on both databases (SQLite 3.38+, PostgreSQL
        // jsonb); the cast makes SQLite's numbers text like PostgreSQL's.
        let member = Expr::col(s::contact::Column::Attributes.as_column_ref())
            .binary(BinOper::Custom("->>"), Expr::val(self.key.as_str()));
        self.value.condition(member.cast_as("TEXT"))
    }
}

impl TagsFilter {
    fn condition(&self) -> Condition {
        use s::contact_tag::Column as T;
        let with_tags = |tags: Vec<String>| {
            Query::select()
                .column(T::ContactId)
                .from(s::contact_tag::Entity)
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

fn contact_extras(f: &ContactFilter, at: Evaluation, depth: usize) -> Result<Condition> {
    let ws = at.workspace_id;
    let mut c = Condition::all();
    for a in f.attributes.iter().flatten() {
        c = c.add(a.condition());
    }
    if let Some(t) = &f.tags {
        c = c.add(t.condition());
    }
    if let Some(company) = &f.company {
        // The companies of this workspace only: company ids are not secret, and a
        // contact's company id must not let a filter read another workspace's companies.
        let ids = Query::select()
            .column(s::company::Column::Id)
            .from(s::company::Entity)
            .and_where(s::company::Column::WorkspaceId.eq(ws))
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
