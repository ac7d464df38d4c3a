//! Conditions on what other rooms record about a contact: the scores models and plugins
//! stored, the email it opened and clicked, its events, orders, sequence enrollments and
//! consent.
//!
//! Each reads those tables through the schema (never the code of the rooms that write
//! them) and becomes `contacts.id IN (…)` over the workspace's rows — or `NOT IN (…)`
//! where a count of zero must match, so "no order in 30 days" includes the contacts that
//! never ordered.

use chrono::{DateTime, Duration, Utc};
use rapport_schema as s;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query, SelectStatement};
use sea_orm::{ColumnTrait, Condition, EntityName, IdenStatic};
use serde::Deserialize;

use super::scalars::*;
use super::{ContactFilter, Evaluation};
use crate::error::Result;
use crate::values::{
    ConsentPurpose, ConsentStatus, EnrollmentStatus, ModelKind, OrderStatus, RfmSegment, RiskLevel,
};

/// Conditions on a number with a fractional part (a score).
pub type FloatFilter = OrderedFilter<f64>;

/// Conditions on a score a built-in model stored: its value (0–100) and its grade. A
/// contact the model has not scored matches none.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreFilter {
    /// The score, 0–100.
    pub score: Option<FloatFilter>,
    /// The grade (`A`–`D` for lead scores).
    pub grade: Option<StringFilter>,
}

/// A condition on the current score one plugin gave the contact.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginScoreFilter {
    /// The plugin's name.
    pub plugin: String,
    /// The score, 0–100.
    pub score: FloatFilter,
}

/// Conditions on a customer's churn risk, as the last rescoring stored it. A contact
/// without one (not a customer, or no customer-value or churn model) matches none.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChurnRiskFilter {
    /// The risk, 0–1.
    pub risk: Option<FloatFilter>,
    /// Its band: low below 0.3, high from 0.7.
    pub level: Option<EnumFilter<RiskLevel>>,
}

/// Conditions on a customer's RFM scores (1 worst to 5 best) and named segment, as the
/// last rescoring stored them. A contact without them matches none.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RfmFilter {
    /// The named segment.
    pub segment: Option<EnumFilter<RfmSegment>>,
    /// How recently they bought, 1–5.
    pub recency: Option<IntFilter>,
    /// How often, 1–5.
    pub frequency: Option<IntFilter>,
    /// How much, 1–5.
    pub monetary: Option<IntFilter>,
}

/// Conditions on a customer's value under the customer-value model over the next 52
/// weeks, as the last rescoring stored it. A contact without one matches none.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClvFilter {
    /// Expected spend, in major units (null when spend could not be fitted).
    pub expected_value: Option<FloatFilter>,
    /// Expected purchases.
    pub expected_purchases: Option<FloatFilter>,
    /// P(still buying), 0–1.
    pub probability_alive: Option<FloatFilter>,
}

/// Opens and clicks of the email sent to the contact.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EngagementFilter {
    /// Opened such an email.
    pub opened: Option<MessageActivity>,
    /// Clicked a link in such an email.
    pub clicked: Option<MessageActivity>,
}

/// Which email, and how recently: a campaign, a sequence, either of the two when both are
/// named, any campaign or sequence when neither is.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageActivity {
    /// A campaign's id.
    pub campaign_id: Option<RecordId>,
    /// A sequence's id.
    pub sequence_id: Option<RecordId>,
    /// Within the last so many days.
    pub within_days: Option<Days>,
}

/// Events of one type the contact did.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventCondition {
    /// The event type (`page_view`, `form_submitted`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Within the last so many days.
    pub within_days: Option<Days>,
    /// How many (at least one when not given or empty); `{eq: 0}` means none.
    pub count: Option<IntFilter>,
}

/// The contact's orders, cancelled and refunded ones left out.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrdersCondition {
    /// How many (at least one when neither this nor `totalMinor` is given, or both are
    /// empty); `{eq: 0}` means none.
    pub count: Option<IntFilter>,
    /// Their total, in minor units of their currency.
    pub total_minor: Option<IntFilter>,
    /// Placed within the last so many days.
    pub within_days: Option<Days>,
    /// Only orders with this product in them.
    pub product_id: Option<RecordId>,
}

/// The contact's enrollments in sequences.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SequenceCondition {
    /// In this sequence (any when not given).
    pub id: Option<RecordId>,
    /// With an enrollment in this state (any when not given).
    pub status: Option<EnumFilter<EnrollmentStatus>>,
}

/// Where the contact's consent to email for one purpose stands: its latest consent
/// record. A contact with no record for the purpose matches none (use `not` for "not
/// granted").
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsentCondition {
    /// The purpose.
    pub purpose: EnumValue<ConsentPurpose>,
    /// Its status.
    pub status: EnumFilter<ConsentStatus>,
}

/// A number of days back from now: 1 to 3,650.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(try_from = "i64")]
pub struct Days(u32);

impl TryFrom<i64> for Days {
    type Error = String;
    fn try_from(days: i64) -> std::result::Result<Self, String> {
        match u32::try_from(days) {
            Ok(d @ 1..=3650) => Ok(Days(d)),
            _ => Err(format!("{days} is not a number of days from 1 to 3650")),
        }
    }
}

impl Days {
    fn before(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - Duration::days(i64::from(self.0))
    }
}

/// Every condition of this module in `f`, all of which must hold.
pub(super) fn conditions(f: &ContactFilter, at: Evaluation) -> Result<Condition> {
    let mut c = Condition::all();
    if let Some(score) = &f.lead_score {
        c = c.add(stored_score(
            at,
            ModelKind::LeadScore,
            score.score.as_ref(),
            score.grade.as_ref(),
        ));
    }
    if let Some(cluster) = &f.cluster {
        c = c.add(stored_score(
            at,
            ModelKind::BehaviourSegments,
            None,
            Some(cluster),
        ));
    }
    for p in f.plugin_scores.iter().flatten() {
        c = c.add(plugin_score(at, p));
    }
    if let Some(r) = &f.churn_risk {
        c = c.add(insights(at, |q| {
            use s::contact_insight::Column as I;
            q.and_where(col(I::ChurnLevel).is_not_null());
            if let Some(f) = &r.risk {
                q.cond_where(f.condition(col(I::ChurnRisk)));
            }
            if let Some(f) = &r.level {
                q.cond_where(f.condition(col(I::ChurnLevel)));
            }
        }));
    }
    if let Some(r) = &f.rfm {
        c = c.add(insights(at, |q| {
            use s::contact_insight::Column as I;
            q.and_where(col(I::RfmSegment).is_not_null());
            if let Some(f) = &r.segment {
                q.cond_where(f.condition(col(I::RfmSegment)));
            }
            for (f, column) in [
                (&r.recency, I::RfmRecency),
                (&r.frequency, I::RfmFrequency),
                (&r.monetary, I::RfmMonetary),
            ] {
                if let Some(f) = f {
                    q.cond_where(f.condition(col(column)));
                }
            }
        }));
    }
    if let Some(v) = &f.clv {
        c = c.add(insights(at, |q| {
            use s::contact_insight::Column as I;
            q.and_where(col(I::ProbabilityAlive).is_not_null());
            for (f, column) in [
                (&v.expected_value, I::ExpectedValue),
                (&v.expected_purchases, I::ExpectedPurchases),
                (&v.probability_alive, I::ProbabilityAlive),
            ] {
                if let Some(f) = f {
                    q.cond_where(f.condition(col(column)));
                }
            }
        }));
    }
    if let Some(e) = &f.engagement {
        if let Some(a) = &e.opened {
            c = c.add(engaged(at, a, Engaged::Opened));
        }
        if let Some(a) = &e.clicked {
            c = c.add(engaged(at, a, Engaged::Clicked));
        }
    }
    for e in f.events.iter().flatten() {
        c = c.add(events(at, e));
    }
    if let Some(o) = &f.orders {
        c = c.add(orders(at, o));
    }
    if let Some(s) = &f.sequence {
        c = c.add(sequence(at, s));
    }
    for consent in f.consent.iter().flatten() {
        c = c.add(consent_now(at, consent));
    }
    if let Some(purpose) = &f.email_permission {
        c = c.add(email_permission(at, purpose.0));
    }
    Ok(c)
}

/// `table.column`, qualified, for conditions inside subqueries.
fn col<C: ColumnTrait>(c: C) -> Expr {
    Expr::col(c.as_column_ref())
}

fn contact_in(ids: SelectStatement) -> Condition {
    Condition::all().add(s::contact::Column::Id.in_subquery(ids))
}

fn stored_score(
    at: Evaluation,
    kind: ModelKind,
    score: Option<&FloatFilter>,
    grade: Option<&StringFilter>,
) -> Condition {
    use s::score::Column as S;
    let mut q = Query::select();
    q.column(S::SubjectId)
        .from(s::score::Entity)
        .and_where(col(S::WorkspaceId).eq(at.workspace_id))
        .and_where(col(S::Kind).eq(kind.as_str()));
    if let Some(f) = score {
        q.cond_where(f.condition(col(S::Score)));
    }
    if let Some(f) = grade {
        q.cond_where(f.condition(col(S::Grade)));
    }
    contact_in(q)
}

/// Contacts whose stored insights meet what `conditions` adds.
fn insights(at: Evaluation, conditions: impl FnOnce(&mut SelectStatement)) -> Condition {
    use s::contact_insight::Column as I;
    let mut q = Query::select();
    q.column(I::ContactId)
        .from(s::contact_insight::Entity)
        .and_where(col(I::WorkspaceId).eq(at.workspace_id));
    conditions(&mut q);
    contact_in(q)
}

fn plugin_score(at: Evaluation, f: &PluginScoreFilter) -> Condition {
    use s::plugin_score::Column as P;
    let plugin = Query::select()
        .column(s::plugin::Column::Id)
        .from(s::plugin::Entity)
        .and_where(col(s::plugin::Column::WorkspaceId).eq(at.workspace_id))
        .and_where(col(s::plugin::Column::Name).eq(f.plugin.as_str()))
        .to_owned();
    let q = Query::select()
        .column(P::ContactId)
        .from(s::plugin_score::Entity)
        .and_where(col(P::WorkspaceId).eq(at.workspace_id))
        .and_where(P::PluginId.in_subquery(plugin))
        .cond_where(f.score.condition(col(P::Score)))
        .to_owned();
    contact_in(q)
}

#[derive(Clone, Copy)]
enum Engaged {
    Opened,
    Clicked,
}

fn engaged(at: Evaluation, a: &MessageActivity, what: Engaged) -> Condition {
    let since = a.within_days.map(|d| d.before(at.now));
    // One subquery per kind of message; the columns are named alike in both tables.
    fn of<E, C>(
        at: Evaluation,
        table: E,
        [ws, contact, when, owner]: [C; 4],
        owner_id: Option<RecordId>,
        since: Option<DateTime<Utc>>,
    ) -> Condition
    where
        E: EntityName + IdenStatic + 'static,
        C: ColumnTrait,
    {
        let mut q = Query::select();
        q.column(contact)
            .from(table)
            .and_where(col(ws).eq(at.workspace_id))
            .and_where(col(when).is_not_null());
        if let Some(id) = owner_id {
            q.and_where(col(owner).eq(id.0));
        }
        if let Some(since) = since {
            q.and_where(col(when).gte(since));
        }
        contact_in(q)
    }
    use s::campaign_message::Column as C;
    use s::sequence_message::Column as Q;
    let campaign_when = match what {
        Engaged::Opened => C::OpenedAt,
        Engaged::Clicked => C::ClickedAt,
    };
    let sequence_when = match what {
        Engaged::Opened => Q::OpenedAt,
        Engaged::Clicked => Q::ClickedAt,
    };
    let campaigns = |id| {
        of(
            at,
            s::campaign_message::Entity,
            [C::WorkspaceId, C::ContactId, campaign_when, C::CampaignId],
            id,
            since,
        )
    };
    let sequences = |id| {
        of(
            at,
            s::sequence_message::Entity,
            [Q::WorkspaceId, Q::ContactId, sequence_when, Q::SequenceId],
            id,
            since,
        )
    };
    match (a.campaign_id, a.sequence_id) {
        (Some(c), None) => campaigns(Some(c)),
        (None, Some(s)) => sequences(Some(s)),
        (Some(c), Some(s)) => Condition::any()
            .add(campaigns(Some(c)))
            .add(sequences(Some(s))),
        (None, None) => Condition::any().add(campaigns(None)).add(sequences(None)),
    }
}

/// Contacts whose rows in `q` (grouped by contact) meet `having`; when a contact with no
/// rows at all meets it too (`zero_matches`), those with no row that fails it.
///
/// The second form is a correlated `NOT EXISTS` on the row table's contact index, not
/// `NOT IN`: PostgreSQL runs `NOT IN (subquery)` as a re-scan per contact once the
/// subquery's rows outgrow its memory, and `NOT IN` over a null matches nothing.
fn aggregate<C: ColumnTrait>(
    mut q: SelectStatement,
    contact: C,
    having: Condition,
    zero_matches: bool,
) -> Condition {
    if zero_matches {
        q.and_where(col(contact).equals(s::contact::Column::Id.as_column_ref()));
        q.cond_having(having.not());
        Condition::all().add(Expr::exists(q).not())
    } else {
        q.cond_having(having);
        contact_in(q)
    }
}

fn events(at: Evaluation, e: &EventCondition) -> Condition {
    use s::event::Column as E;
    let mut q = Query::select();
    q.column(E::ContactId)
        .from(s::event::Entity)
        .and_where(col(E::WorkspaceId).eq(at.workspace_id))
        .and_where(col(E::EventType).eq(e.event_type.as_str()))
        // `NOT IN` over a null matches nothing: keep nulls out of every subquery.
        .and_where(col(E::ContactId).is_not_null())
        .group_by_col(E::ContactId);
    if let Some(d) = e.within_days {
        q.and_where(col(E::OccurredAt).gte(d.before(at.now)));
    }
    let count = Expr::from(Func::count(col(E::Id)));
    // An empty `count: {}` is "at least one", as a missing one is, never "any count,
    // none included", which would match every contact.
    match given(&e.count) {
        Some(f) => aggregate(q, E::ContactId, f.condition(count), f.matches(&0)),
        None => aggregate(q, E::ContactId, Condition::all().add(count.gte(1)), false),
    }
}

fn orders(at: Evaluation, o: &OrdersCondition) -> Condition {
    use s::order::Column as O;
    let mut q = Query::select();
    q.column(O::ContactId)
        .from(s::order::Entity)
        .and_where(col(O::WorkspaceId).eq(at.workspace_id))
        .and_where(col(O::DeletedAt).is_null())
        .and_where(col(O::ContactId).is_not_null())
        .and_where(col(O::Status).is_not_in([
            OrderStatus::Cancelled.as_str(),
            OrderStatus::Refunded.as_str(),
        ]))
        .group_by_col(O::ContactId);
    if let Some(d) = o.within_days {
        q.and_where(col(O::PlacedAt).gte(d.before(at.now)));
    }
    if let Some(p) = o.product_id {
        let with_product = Query::select()
            .column(s::order_line::Column::OrderId)
            .from(s::order_line::Entity)
            .and_where(col(s::order_line::Column::WorkspaceId).eq(at.workspace_id))
            .and_where(col(s::order_line::Column::ProductId).eq(p.0))
            .to_owned();
        q.and_where(O::Id.in_subquery(with_product));
    }
    let count = Expr::from(Func::count(col(O::Id)));
    let total = Expr::from(Func::sum(col(O::TotalMinor)));
    let mut having = Condition::all();
    let mut zero = true;
    match (given(&o.count), given(&o.total_minor)) {
        (None, None) => {
            having = having.add(count.gte(1));
            zero = false;
        }
        (count_filter, total_filter) => {
            if let Some(f) = count_filter {
                having = having.add(f.condition(count));
                zero &= f.matches(&0);
            }
            if let Some(f) = total_filter {
                having = having.add(f.condition(total));
                zero &= f.matches(&0);
            }
        }
    }
    aggregate(q, O::ContactId, having, zero)
}

/// A filter with at least one operator; an empty one counts as not given.
fn given(f: &Option<IntFilter>) -> Option<&IntFilter> {
    f.as_ref().filter(|f| !f.is_empty())
}

fn sequence(at: Evaluation, f: &SequenceCondition) -> Condition {
    use s::sequence_enrollment::Column as S;
    let mut q = Query::select();
    q.column(S::ContactId)
        .from(s::sequence_enrollment::Entity)
        .and_where(col(S::WorkspaceId).eq(at.workspace_id));
    if let Some(id) = f.id {
        q.and_where(col(S::SequenceId).eq(id.0));
    }
    if let Some(status) = &f.status {
        q.cond_where(status.condition(col(S::Status)));
    }
    contact_in(q)
}

/// What the send-time check (`consent::may_email`) decides, in SQL: an address, not on the
/// suppression list (matched by the address's hash, as the list keeps no address), and
/// the purpose's latest consent record as that purpose needs it.
fn email_permission(at: Evaluation, purpose: ConsentPurpose) -> Condition {
    use s::contact::Column as C;
    use s::suppression::Column as S;
    let suppressed = Query::select()
        .expr(Expr::val(1))
        .from(s::suppression::Entity)
        .and_where(col(S::WorkspaceId).eq(at.workspace_id))
        .and_where(col(S::EmailHash).equals(C::EmailHash.as_column_ref()))
        .to_owned();
    let status = |statuses: Vec<ConsentStatus>| ConsentCondition {
        purpose: EnumValue(purpose),
        status: EnumFilter {
            eq: None,
            ne: None,
            in_list: Some(statuses.into_iter().map(EnumValue).collect()),
            not_in: None,
            is_null: None,
        },
    };
    let consent = match purpose {
        ConsentPurpose::Marketing => consent_now(at, &status(vec![ConsentStatus::Granted])),
        ConsentPurpose::Transactional => consent_now(
            at,
            &status(vec![ConsentStatus::Denied, ConsentStatus::Withdrawn]),
        )
        .not(),
    };
    Condition::all()
        .add(C::Email.is_not_null())
        // A row without its hash could not be matched against the list: not permitted.
        .add(C::EmailHash.is_not_null())
        .add(Expr::exists(suppressed).not())
        .add(consent)
}

fn consent_now(at: Evaluation, f: &ConsentCondition) -> Condition {
    use s::consent_event::Column as E;
    // The latest record per contact for this channel and purpose is the one with no
    // later record (the consent room appends and never updates): an anti-join on the
    // (contact, channel, purpose, id) index, which PostgreSQL plans well, where
    // `id IN (SELECT MAX(id) … GROUP BY contact)` misled its estimates into a
    // row-by-row scan.
    let newer = Alias::new("newer");
    let later = Query::select()
        .expr(Expr::val(1))
        .from_as(s::consent_event::Entity, newer.clone())
        .and_where(Expr::col((newer.clone(), E::ContactId)).equals(E::ContactId.as_column_ref()))
        .and_where(Expr::col((newer.clone(), E::Channel)).equals(E::Channel.as_column_ref()))
        .and_where(Expr::col((newer.clone(), E::Purpose)).equals(E::Purpose.as_column_ref()))
        .and_where(Expr::col((newer, E::Id)).gt(col(E::Id)))
        .to_owned();
    let q = Query::select()
        .column(E::ContactId)
        .from(s::consent_event::Entity)
        .and_where(col(E::WorkspaceId).eq(at.workspace_id))
        .and_where(col(E::Channel).eq("email"))
        .and_where(col(E::Purpose).eq(f.purpose.0.as_str()))
        .cond_where(f.status.condition(col(E::Status)))
        .and_where(Expr::exists(later).not())
        .to_owned();
    contact_in(q)
}
